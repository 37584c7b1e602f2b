/*
 * SPDX-License-Identifier: MIT
 *
 * Signal storm: hundreds of SIGUSR1 (not a trigger; the host has its own
 * handler, without SA_RESTART, so every blocking call in every thread sees
 * EINTR) while the host accepts and serves on several threads and another
 * thread keeps re-installing its handlers; then a few SIGINT.  No crash, no
 * deadlock, every ping answered, and the server exits promptly.
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

TestSuite(storm, .fini = harness_teardown, .timeout = 120);

static long storm(bool shim, int nusr1)
{
	const char *const args[] = {"rel_storm", "--acceptors", "4", NULL};
	int used[4], unused[2];

	server_start(&srv, shim, args, NULL);
	for (int i = 0; i < 4; i++)
		used[i] = tcp_connect(AF_INET, srv.port);
	for (int i = 0; i < 2; i++)
		unused[i] = tcp_connect(AF_INET, srv.port);
	for (int i = 0; i < nusr1; i++) {
		kill(srv.pid, SIGUSR1);
		if (i % 10 == 0)
			cr_assert(rel_ping(used[(i / 10) % 4], 5000),
				  "ping %d unanswered during the storm; stderr:\n%s", i / 10,
				  server_stderr(&srv));
	}
	kill(srv.pid, SIGINT);
	for (int i = 0; i < 100; i++) {
		kill(srv.pid, SIGUSR1);
		if (i % 40 == 39)
			kill(srv.pid, SIGINT);
		sleep_ms(1);
	}
	for (int i = 0; i < 4; i++)
		close(used[i]); /* the clients that were served go away */
	long ms = server_wait(&srv, shim ? 10000 : HANG_MS);
	for (int i = 0; i < 2; i++)
		close(unused[i]);
	return ms;
}

Test(storm, sigusr1_storm_then_sigint_exits_cleanly)
{
	char out[256];
	long ms = storm(true, 500);
	cr_assert_geq(ms, 0, "no exit 10 s after the storm (deadlock?); stderr:\n%s",
		      server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0,
		  "status %#x (crashed?); stderr:\n%s", srv.status, server_stderr(&srv));
	read_all_for(srv.out_fd, out, sizeof out, 2000);
	int usr1 = -1, nint = -1;
	cr_assert(sscanf(out, "usr1 %d int %d", &usr1, &nint) == 2, "stdout: %s", out);
	cr_assert_gt(usr1, 0, "the host's own SIGUSR1 handler never ran");
	cr_assert_geq(nint, 1, "the host's SIGINT handler never ran");
}

Test(storm, without_shim_hangs)
{
	cr_assert_eq(storm(false, 100), -1,
		     "without the shim the unused connections keep it running");
}
