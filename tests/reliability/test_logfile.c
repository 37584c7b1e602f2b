/*
 * SPDX-License-Identifier: MIT
 *
 * GRACESHIM_LOG_FILE and GRACESHIM_STATS are paths an operator chooses,
 * often in a shared directory: a planted symlink must never be followed (the
 * shim logs to stderr instead and says why), a created file is 0600 whatever
 * the umask, and a special file planted there must not hang the host.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;
static char dir[64];

static void teardown(void)
{
	harness_teardown();
	rel_rmtree(dir);
}

TestSuite(logfile, .fini = teardown, .timeout = 60);

static void plant(const char *name, const char *content, mode_t mode)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(content, f);
	fclose(f);
	chmod(p, mode);
}

/* hyperlike with the shim at log level debug, one request served (only a
 * process that accepted writes statistics), then SIGINT. */
static void run_hyperlike(const char *var, const char *name)
{
	static char setting[256];
	snprintf(setting, sizeof setting, "%s=%s/%s", var, dir, name);
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", setting, NULL};
	server_start(&srv, true, args, env);
	int c = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
	cr_assert_geq(http_read_response(c, 5000), 0);
	close(c);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0, "stderr:\n%s",
		      server_stderr(&srv));
}

Test(logfile, planted_symlink_to_existing_file_is_not_followed)
{
	char p[128], buf[256];
	struct stat st;
	rel_tmpdir(dir, sizeof dir);
	plant("precious", "precious\n", 0644);
	snprintf(p, sizeof p, "%s/graceshim.log", dir);
	cr_assert(symlink("precious", p) == 0);
	run_hyperlike("GRACESHIM_LOG_FILE", "graceshim.log");
	snprintf(p, sizeof p, "%s/precious", dir);
	cr_assert_str_eq(rel_slurp(p, buf, sizeof buf), "precious\n",
			 "the symlink's target was written");
	snprintf(p, sizeof p, "%s/graceshim.log", dir);
	cr_assert(lstat(p, &st) == 0 && S_ISLNK(st.st_mode), "the symlink was replaced");
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "GRACESHIM_LOG_FILE") && strstr(err, "logging to stderr"),
		  "no clear message on stderr:\n%s", err);
	cr_assert(strstr(err, "symbolic link"), "the message does not say it is a symlink:\n%s",
		  err);
	cr_assert(strstr(err, "DEBUG graceshim["), "log lines did not fall back to stderr:\n%s",
		  err);
}

Test(logfile, dangling_symlink_creates_nothing)
{
	char p[128];
	rel_tmpdir(dir, sizeof dir);
	snprintf(p, sizeof p, "%s/graceshim.log", dir);
	cr_assert(symlink("created-through-link", p) == 0);
	run_hyperlike("GRACESHIM_LOG_FILE", "graceshim.log");
	snprintf(p, sizeof p, "%s/created-through-link", dir);
	cr_assert(access(p, F_OK) != 0, "a file was created through the dangling symlink");
	cr_assert(strstr(server_stderr(&srv), "DEBUG graceshim["), "stderr:\n%s",
		  server_stderr(&srv));
}

Test(logfile, created_log_file_is_0600_whatever_the_umask)
{
	char p[128], buf[8192];
	struct stat st;
	rel_tmpdir(dir, sizeof dir);
	umask(0); /* inherited by the fixture: 0600 must come from the shim */
	run_hyperlike("GRACESHIM_LOG_FILE", "new.log");
	snprintf(p, sizeof p, "%s/new.log", dir);
	cr_assert(lstat(p, &st) == 0, "no log file created");
	cr_assert(S_ISREG(st.st_mode), "not a regular file");
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_assert(rel_slurp(p, buf, sizeof buf) && strstr(buf, "DEBUG graceshim["),
		  "the log lines are not in the file:\n%s", buf);
	cr_assert_null(strstr(server_stderr(&srv), "graceshim["),
		       "log lines went to stderr too:\n%s", server_stderr(&srv));
}

/* A FIFO planted at the log path: opening it for writing blocks until a
 * reader comes, and the shim opens it in its constructor, before main(). */
Test(logfile, planted_fifo_does_not_hang_startup)
{
	char p[128];
	rel_tmpdir(dir, sizeof dir);
	snprintf(p, sizeof p, "%s/graceshim.log", dir);
	cr_assert(mkfifo(p, 0600) == 0);
	/* server_start fails the test if no PORT line comes within 10 s. */
	run_hyperlike("GRACESHIM_LOG_FILE", "graceshim.log");
	cr_assert(strstr(server_stderr(&srv), "GRACESHIM_LOG_FILE"),
		  "no message about the unusable log file:\n%s", server_stderr(&srv));
}

Test(logfile, stats_file_symlink_is_replaced_not_followed)
{
	char p[128], buf[2048];
	struct stat st;
	rel_tmpdir(dir, sizeof dir);
	plant("precious", "precious\n", 0644);
	snprintf(p, sizeof p, "%s/stats.json", dir);
	cr_assert(symlink("precious", p) == 0);
	run_hyperlike("GRACESHIM_STATS", "stats.json");
	snprintf(p, sizeof p, "%s/precious", dir);
	cr_assert_str_eq(rel_slurp(p, buf, sizeof buf), "precious\n",
			 "the symlink's target was written");
	snprintf(p, sizeof p, "%s/stats.json", dir);
	cr_assert(lstat(p, &st) == 0 && S_ISREG(st.st_mode),
		  "stats.json is not a regular file now");
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_assert(rel_slurp(p, buf, sizeof buf) && strstr(buf, "\"pid\":"), "stats: %s", buf);
}
