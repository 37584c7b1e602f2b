/*
 * SPDX-License-Identifier: MIT
 *
 * The statistics carry every drain the log reports.  An nginx worker logged
 * "last listening socket closed: draining" while its statistics said
 * "trigger": null, "drain": null: the process exited (its statistics
 * written at exit) before the sweeper thread had noted the trigger, and the
 * thread logged it meanwhile.  Here the shape that loses that race most:
 * a server (evloop, nginx's shape) with no connection left when its stop
 * comes, which therefore exits at once; for each kind of trigger (a signal
 * handler, a signalfd, sigwaitinfo(), the last listener closed by a
 * pre-fork worker stopped over a pipe), several runs.  In each, the
 * statistics name the trigger and carry a drain, and when the log says
 * "draining" its trigger is the statistics' one.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUNS 12

static struct server srv;
static char dir[128];

static void rm_dir(void)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(dir);
}

static void teardown(void)
{
	server_stop(&srv);
	rm_dir();
}

TestSuite(stats_log, .fini = teardown, .timeout = 120);

struct kind {
	const char *name;
	const char *args[5];
	const char *trigger; /* the statistics' "trigger" */
	const char *logged;  /* the log's drain line */
};
static const struct kind kinds[] = {
	{"handler",
	 {"evloop", "--stop", "handler", NULL},
	 "\"SIGINT\"",
	 "SIGINT received: draining"},
	{"signalfd",
	 {"evloop", "--stop", "signalfd", NULL},
	 "\"SIGINT\"",
	 "SIGINT received: draining"},
	{"sigwait",
	 {"evloop", "--stop", "sigwait", NULL},
	 "\"SIGINT\"",
	 "SIGINT received: draining"},
	/* The worker gets no signal: it closes its listener. */
	{"listener",
	 {"evloop", "--prefork", "1", NULL},
	 "\"listener closed\"",
	 "last listening socket closed: draining"},
};
static int kind_idx[] = {0, 1, 2, 3};

static size_t read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	return n;
}

/* The log line of process pid that contains what, or NULL. */
static const char *log_line_of(const char *log, long pid, const char *what)
{
	char tag[48];
	snprintf(tag, sizeof tag, "graceshim[%ld] ", pid);
	for (const char *l = log; l && *l;) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		const char *t = strstr(l, tag), *w = strstr(l, what);
		if (t && w && t < l + len && w < l + len)
			return l;
		l = end ? end + 1 : NULL;
	}
	return NULL;
}

ParameterizedTestParameters(stats_log, every_drain_logged_is_in_the_statistics)
{
	return cr_make_param_array(int, kind_idx, sizeof kind_idx / sizeof *kind_idx);
}

ParameterizedTest(int *idx, stats_log, every_drain_logged_is_in_the_statistics)
{
	const struct kind *k = &kinds[*idx];
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	static char log[65536], st[4096];
	int logged = 0;

	for (int run = 0; run < RUNS; run++) {
		snprintf(dir, sizeof dir, "/tmp/graceshim-stats-log-%d-%s", (int)getpid(), k->name);
		rm_dir();
		cr_assert_eq(mkdir(dir, 0700), 0);
		char stats[192], logf[192];
		snprintf(stats, sizeof stats, "GRACESHIM_STATS=%s/s.json", dir);
		snprintf(logf, sizeof logf, "GRACESHIM_LOG_FILE=%s/log", dir);
		const char *const env[] = {stats, logf, "GRACESHIM_LOG=info", NULL};
		server_start(&srv, true, k->args, env);
		/* One request on a connection the client then closes: the
		 * process served (it writes statistics) and has nothing open
		 * when the stop comes, so it exits at once. */
		int fd = tcp_connect(AF_INET, srv.port);
		cr_assert(send_str(fd, req));
		cr_assert_gt(http_read_response(fd, 5000), 0);
		close(fd);
		sleep_ms(100); /* the server reads the EOF and closes */
		cr_assert_geq(server_signal_and_wait(&srv, SIGINT, 10000), 0, "%s",
			      server_stderr(&srv));

		/* The statistics of the process that served: s.json, or a
		 * pre-fork worker's s.json.<pid>. */
		char path[512] = "";
		DIR *d = opendir(dir);
		cr_assert_not_null(d);
		struct dirent *e;
		int files = 0;
		while ((e = readdir(d)))
			if (!strncmp(e->d_name, "s.json", 6) && !strstr(e->d_name, ".tmp.")) {
				snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
				files++;
			}
		closedir(d);
		read_file(path, st, sizeof st);
		log[0] = 0;
		snprintf(logf, sizeof logf, "%s/log", dir);
		read_file(logf, log, sizeof log);
		cr_assert_eq(files, 1,
			     "%s run %d: %d statistics files (one process served)\nlog:\n%s",
			     k->name, run, files, log);
		long pid = strtol(strstr(st, "\"pid\":") + 6, NULL, 10);
		char want[64];
		snprintf(want, sizeof want, "\"trigger\":%s", k->trigger);
		const char *line = log_line_of(log, pid, "draining");
		logged += line != NULL;
		if (line) {
			cr_assert_not_null(
				log_line_of(log, pid, k->logged),
				"%s run %d: the log's drain is not the expected one:\n%s", k->name,
				run, log);
		}
		cr_assert_not_null(
			strstr(st, want),
			"%s run %d: the statistics do not carry the drain (log: %s):\n%s\nlog:\n%s",
			k->name, run, line ? "draining" : "silent", st, log);
		cr_assert_null(strstr(st, "\"drain\":null"), "%s run %d: no drain timeline:\n%s",
			       k->name, run, st);
		cr_assert_null(strstr(st, "\"trigger_to_exit_ms\":null"), "%s run %d:\n%s", k->name,
			       run, st);
		server_stop(&srv);
	}
	cr_log_info("%s: the log reported the drain in %d of %d runs", k->name, logged, RUNS);
}

/* Statistics a worker cannot write: nginx's workers run as nobody (its
 * "user" directive) while the master, started as root, made the directory.
 * The line says which process and user, which directory, and what to do;
 * the master, which accepted nothing, writes nothing.  Root only: only
 * root can start workers as another user. */
Test(stats_log, a_worker_that_cannot_write_says_who_where_and_what_to_do)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	if (geteuid() != 0)
		cr_skip_test("needs root (workers that switch to user nobody)");
	snprintf(dir, sizeof dir, "/tmp/graceshim-stats-user-%d", (int)getpid());
	rm_dir();
	cr_assert_eq(mkdir(dir, 0755), 0); /* root's: nobody cannot write here */
	char stats[192];
	snprintf(stats, sizeof stats, "GRACESHIM_STATS=%s/s.json", dir);
	const char *const args[] = {"evloop", "--prefork", "1", "--worker-user", "nobody", NULL};
	const char *const env[] = {stats, NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, req));
	cr_assert_gt(http_read_response(fd, 5000), 0);
	close(fd);
	sleep_ms(100);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, 10000), 0, "%s", server_stderr(&srv));
	const char *err = server_stderr(&srv);
	char where[256];
	snprintf(where, sizeof where, "cannot create a file in %s (Permission denied)", dir);
	cr_assert(strstr(err, "user nobody, uid "), "the user is not named:\n%s", err);
	cr_assert(strstr(err, where), "the directory is not named:\n%s", err);
	cr_assert(strstr(err, "make that directory writable by that user"), "no remedy:\n%s", err);
	const char *first = strstr(err, "GRACESHIM_STATS");
	cr_assert(first && !strstr(first + 1, "GRACESHIM_STATS"), "said more than once:\n%s", err);
}

/* One vocabulary (README, "Release reasons"): the reason each release line
 * gives is a key of the statistics' "released", the drain's summary says
 * only what is not zero, in the same words, and a connection graceshim
 * released is not counted open at exit.  Chrome's pair: the page on a
 * keep-alive connection, and a preconnected spare that never sends a byte. */
Test(stats_log, log_and_statistics_use_one_vocabulary)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	static char st[4096];
	snprintf(dir, sizeof dir, "/tmp/graceshim-vocab-%d", (int)getpid());
	rm_dir();
	cr_assert_eq(mkdir(dir, 0700), 0);
	char stats[256], path[192];
	snprintf(path, sizeof path, "%s/s.json", dir);
	snprintf(stats, sizeof stats, "GRACESHIM_STATS=%s", path);
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {stats, "GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int page = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(page, req));
	cr_assert_gt(http_read_response(page, 5000), 0);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, 10000), 0, "%s", server_stderr(&srv));
	close(page);
	close(spare);
	const char *err = server_stderr(&srv);
	cr_assert(read_file(path, st, sizeof st), "no statistics:\n%s", err);

	/* Each release line's reason is a key of "released", counted. */
	int lines = 0;
	for (const char *l = err; (l = strstr(l, " shut down (")); l++) {
		char word[32] = "";
		cr_assert_eq(sscanf(l, " shut down (%31[a-z_]:", word), 1, "no reason word: %.120s",
			     l);
		char key[48];
		snprintf(key, sizeof key, "\"%s\":", word);
		const char *k = strstr(strstr(st, "\"released\":{"), key);
		cr_assert(k && k[strlen(key)] >= '1' && k[strlen(key)] <= '9',
			  "the log's reason \"%s\" is not counted in the statistics:\n%s\n%s", word,
			  st, err);
		lines++;
	}
	cr_assert_geq(lines, 1, "no release logged:\n%s", err);
	cr_assert(strstr(st, "\"unused\":1"), "%s", st);
	/* The summary, in the same words, and no zero said. */
	const char *sum = strstr(err, "drain: released 1 connection(s) (");
	cr_assert(sum, "no summary:\n%s", err);
	const char *eol = strchr(sum, '\n');
	char line[512];
	snprintf(line, sizeof line, "%.*s", eol ? (int)(eol - sum) : (int)strlen(sum), sum);
	cr_assert(strstr(line, "(unused 1"), "%s", line);
	for (const char *z = line; (z = strstr(z, " 0")); z++)
		cr_assert(z[2] >= '0' && z[2] <= '9', "a zero is said: %s", line);
	cr_assert_null(strstr(line, "(0"), "a zero is said: %s", line);
	cr_assert_null(strstr(line, "never used"), "%s", line);
	cr_assert_null(strstr(line, "no first byte"), "%s", line);
	cr_assert(strstr(st, "\"open_at_exit\":0,"), "released, yet counted open: %s", st);
}
