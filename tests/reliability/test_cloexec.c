/*
 * SPDX-License-Identifier: MIT
 *
 * The shim's own fds (the sweeper's eventfd, the GRACESHIM_LOG_FILE fd, the
 * GRACESHIM_STATS temporary file) are close-on-exec: a program the host
 * starts, by fork+exec or by posix_spawn, while they are open, never gets
 * them.  tests/fixtures/rel_cloexec.c starts a lister that prints its fds;
 * the server prints its own at the same moment, so each check first shows
 * the shim's fd was open in the server (the check is not vacuous), then
 * that the child did not get it.  The control clears FD_CLOEXEC: the
 * listing must then show them.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* The sweeper's wake-up pipe: the shim keeps it at fd 64 or above, and the
 * fixture makes no pipe up there.  Its target in a listing (" 70:pipe:[123]")
 * is copied to out; "" when there is none. */
static const char *shim_pipe(const char *listing, char *out, size_t len)
{
	out[0] = 0;
	for (const char *p = strstr(listing, ":pipe:["); p; p = strstr(p + 1, ":pipe:[")) {
		const char *q = p;
		while (q > listing && q[-1] >= '0' && q[-1] <= '9')
			q--;
		if (atoi(q) < 64)
			continue;
		size_t n = strcspn(p + 1, " \n");
		snprintf(out, len, "%.*s", (int)n, p + 1);
		return out;
	}
	snprintf(out, len, "(no pipe at fd 64 or above)");
	return out;
}

static struct server srv;
static char dir[64];

static void teardown(void)
{
	harness_teardown();
	rel_rmtree(dir);
}

TestSuite(cloexec, .fini = teardown, .timeout = 60);

struct listing {
	char parent[8192], child[8192];
};

/* Reads "parent <tag> ..." then "child <tag> ..." from the server's stdout. */
static void read_pair(const char *tag, struct listing *l)
{
	char want[64];
	cr_assert(rel_read_line(srv.out_fd, l->parent, sizeof l->parent, 5000),
		  "no listing of the server's fds for %s; stderr:\n%s", tag, server_stderr(&srv));
	snprintf(want, sizeof want, "parent %s ", tag);
	cr_assert(!strncmp(l->parent, want, strlen(want)), "expected \"%s...\", got \"%s\"", want,
		  l->parent);
	cr_assert(rel_read_line(srv.out_fd, l->child, sizeof l->child, 5000),
		  "no listing from the child for %s; stderr:\n%s", tag, server_stderr(&srv));
	snprintf(want, sizeof want, "child %s ", tag);
	cr_assert(!strncmp(l->child, want, strlen(want)), "expected \"%s...\", got \"%s\"", want,
		  l->child);
}

static void command(int fd, const char *cmd, struct listing *l)
{
	char line[16], msg[16];
	snprintf(msg, sizeof msg, "%s\n", cmd);
	cr_assert(send_str(fd, msg));
	cr_assert(rel_read_line(fd, line, sizeof line, 10000) && !strcmp(line, "done"),
		  "no \"done\" after %s; stderr:\n%s", cmd, server_stderr(&srv));
	read_pair(cmd, l);
}

/* One run: a "fork" and a "spawn" while serving, then SIGINT and the two
 * listers the server starts while the shim writes its statistics. */
static void run(bool clear, struct listing *fork_l, struct listing *spawn_l, struct listing *xfork,
		struct listing *xspawn, char *log_path, char *stats_tmp, size_t len)
{
	static char log_env[128], stats_env[128];
	const char *const args[] = {"rel_cloexec", clear ? "--clear-cloexec" : NULL, NULL};
	rel_tmpdir(dir, sizeof dir);
	snprintf(log_path, len, "%s/graceshim.log", dir);
	snprintf(log_env, sizeof log_env, "GRACESHIM_LOG_FILE=%s", log_path);
	snprintf(stats_env, sizeof stats_env, "GRACESHIM_STATS=%s/stats.json", dir);
	const char *const env[] = {"GRACESHIM_LOG=debug", log_env, stats_env, NULL};

	server_start(&srv, true, args, env);
	snprintf(stats_tmp, len, "%s/stats.json.tmp.%d", dir, (int)srv.pid);
	int fd = tcp_connect(AF_INET, srv.port);
	command(fd, "fork", fork_l);
	command(fd, "spawn", spawn_l);
	close(fd);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, 10000), 0, "stderr:\n%s",
		      server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x; stderr:\n%s",
		  srv.status, server_stderr(&srv));
	read_pair("exit-fork", xfork);
	read_pair("exit-spawn", xspawn);
}

/* ":<target>" followed by a space or the end: one fd of the listing. */
static bool has_target(const char *listing, const char *target)
{
	size_t tl = strlen(target);
	for (const char *p = strstr(listing, target); p; p = strstr(p + 1, target))
		if (p > listing && p[-1] == ':' && (p[tl] == ' ' || p[tl] == 0))
			return true;
	return false;
}

static void expect(const struct listing *l, const char *what, const char *target, bool in_parent,
		   bool in_child)
{
	if (in_parent)
		cr_assert(has_target(l->parent, target),
			  "the server had no %s (%s) open at that moment, nothing to check: %s",
			  what, target, l->parent);
	cr_assert_eq(has_target(l->child, target), in_child, "%s (%s) %s in the child: %s", what,
		     target, in_child ? "missing" : "leaked", l->child);
}

Test(cloexec, shim_fds_never_reach_a_child)
{
	struct listing f, s, xf, xs;
	char log_path[128], stats_tmp[128];
	run(false, &f, &s, &xf, &xs, log_path, stats_tmp, sizeof log_path);
	const struct listing *all[] = {&f, &s, &xf, &xs};
	for (int i = 0; i < 4; i++) {
		expect(all[i], "the log file", log_path, true, false);
		/* after fork the shim's atfork handler closes the pipe in the
		 * child itself; posix_spawn runs no atfork handler, so there
		 * only close-on-exec keeps it out */
		char pipe_target[64];
		expect(all[i], "the sweeper's pipe",
		       shim_pipe(all[i]->parent, pipe_target, sizeof pipe_target), true, false);
	}
	expect(&xf, "the statistics temporary file", stats_tmp, true, false);
	expect(&xs, "the statistics temporary file", stats_tmp, true, false);
}

/* The control: with FD_CLOEXEC cleared by the host, the same listings show
 * the same fds in the child, so the check above can fail. */
Test(cloexec, control_cleared_cloexec_is_seen)
{
	struct listing f, s, xf, xs;
	char log_path[128], stats_tmp[128];
	run(true, &f, &s, &xf, &xs, log_path, stats_tmp, sizeof log_path);
	expect(&f, "the log file", log_path, true, true);
	expect(&s, "the log file", log_path, true, true);
	char pipe_target[64];
	expect(&s, "the sweeper's pipe", shim_pipe(s.parent, pipe_target, sizeof pipe_target), true,
	       true);
	expect(&xs, "the statistics temporary file", stats_tmp, true, true);
	expect(&xf, "the statistics temporary file", stats_tmp, true, true);
}
