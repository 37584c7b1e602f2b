/*
 * SPDX-License-Identifier: MIT
 *
 * The host closes every fd it does not know (closefrom(3), close_range
 * around its own fds) after the shim started its sweeper, which owns an
 * eventfd.  The shim must recover: SIGINT still releases the never-used
 * connections (one accepted before the purge, one after), the server exits
 * promptly, and no client ever receives a byte the host did not send.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;
static char fds_at_hang[2048]; /* the server's fds when it did not exit */

TestSuite(closefrom, .fini = harness_teardown, .timeout = 60);

/* The fds of the server, still running: "3 pipe, 4 pipe, 5 socket, ...";
 * the shim's sweeper needs an anon_inode:[eventfd] among them to be woken. */
static const char *fd_table(void)
{
	static char out[2048];
	char path[64], target[128];
	size_t o = 0;
	out[0] = 0;
	for (int fd = 0; fd < 64 && o < sizeof out - 160; fd++) {
		snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)srv.pid, fd);
		ssize_t n = readlink(path, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		char *colon = strchr(target, ':');
		if (colon && strncmp(target, "anon_inode:", 11))
			*colon = 0; /* "socket:[123]" -> "socket" */
		o += (size_t)snprintf(out + o, sizeof out - o, "%s%d %s", o ? ", " : "", fd,
				      target);
	}
	return out;
}

/* Returns ms from SIGINT to exit, or -1. */
static long purge_then_sigint(const char *mode, bool shim, bool single)
{
	const char *const args[] = {"rel_closefrom", "--mode", mode,
				    single ? "--single-threaded" : NULL, NULL};
	char line[64], got[64];
	server_start(&srv, shim, args, NULL);
	int before = tcp_connect(AF_INET, srv.port); /* its accept triggers the purge */
	cr_assert(rel_read_line(srv.out_fd, line, sizeof line, 5000) && !strcmp(line, "purged"),
		  "no \"purged\" line (got \"%s\"); stderr:\n%s", line, server_stderr(&srv));
	int after = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, shim ? PROMPT_MS : HANG_MS);
	if (ms < 0 && shim)
		snprintf(fds_at_hang, sizeof fds_at_hang, "%s", fd_table());
	/* Whatever the clients got by now: the host sent nothing. */
	long nb = rel_recv_until_eof(before, got, sizeof got, ms >= 0 ? 2000 : 100);
	long na = rel_recv_until_eof(after, got, sizeof got, ms >= 0 ? 2000 : 100);
	cr_expect(nb <= 0 && na <= 0,
		  "a client received bytes the host never sent (%ld before the purge, %ld after): "
		  "the shim wrote to an fd number the host had reused",
		  nb, na);
	close(before);
	close(after);
	return ms;
}

Test(closefrom, close_range_around_own_fds)
{
	long ms = purge_then_sigint("range", true, false);
	cr_assert_geq(ms, 0,
		      "still running %d ms after SIGINT once the host closed the shim's fds; "
		      "its fds: %s; stderr:\n%s",
		      PROMPT_MS, fds_at_hang, server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

Test(closefrom, compact_own_fds_then_closefrom)
{
	long ms = purge_then_sigint("closefrom", true, false);
	cr_assert_geq(ms, 0,
		      "still running %d ms after SIGINT once the host moved its fds over the "
		      "shim's and closed the rest; its fds: %s; stderr:\n%s",
		      PROMPT_MS, fds_at_hang, server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

/* close_range() that fails (EINVAL: an unknown flag) closes nothing: the
 * connections are still open, still the host's, and must still be released. */
Test(closefrom, failed_close_range_keeps_tracking)
{
	long ms = purge_then_sigint("badflags", true, false);
	cr_assert_geq(ms, 0,
		      "a close_range() that failed made the shim forget open connections; "
		      "stderr:\n%s",
		      server_stderr(&srv));
}

/* A single-threaded host: the shim has not started its sweeper (nor
 * opened its eventfd) before the trigger, so there is nothing to close. */
Test(closefrom, single_threaded_host_closefrom)
{
	long ms = purge_then_sigint("closefrom", true, true);
	cr_assert_geq(ms, 0, "stderr:\n%s", server_stderr(&srv));
}

Test(closefrom, control_no_purge_exits_promptly)
{
	cr_assert_geq(purge_then_sigint("none", true, false), 0, "stderr:\n%s",
		      server_stderr(&srv));
}

Test(closefrom, control_without_shim_hangs)
{
	cr_assert_eq(purge_then_sigint("range", false, false), -1,
		     "without the shim the never-used connections must keep the server running");
}
