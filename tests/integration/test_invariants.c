/*
 * SPDX-License-Identifier: MIT
 *
 * Invariants 1 and 3 against real processes: signal semantics are the same
 * with and without the shim, and only accepted sockets are ever touched.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

TestSuite(invariants, .fini = harness_teardown, .timeout = 60);

/* sigsem prints no PORT line: run it directly. */
static int run_sigsem(bool shim, char *out, size_t len)
{
	int p[2];
	char path[1024], pre[1100];
	const char *b = getenv("GRACESHIM_BUILD");
	cr_assert(b);
	snprintf(path, sizeof path, "%s/fixtures/sigsem", b);
	snprintf(pre, sizeof pre, "LD_PRELOAD=%s/libgraceshim.so", b);
	cr_assert(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		char *env[] = {shim ? pre : NULL, NULL};
		harness_child_signals(NULL);
		dup2(p[1], 1);
		execve(path, (char *[]){path, NULL}, env);
		_exit(127);
	}
	close(p[1]);
	read_all_for(p[0], out, len, 10000);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return st;
}

Test(invariants, signal_semantics_identical_with_and_without_shim)
{
	const char *san = getenv("GRACESHIM_SAN");
	if (san && !strcmp(san, "thread"))
		cr_skip_test(
			"ThreadSanitizer changes signal semantics itself (errno around handlers, "
			"signal(SIG_ERR)): nothing to compare");
	char a[8192], b[8192];
	int sa = run_sigsem(false, a, sizeof a);
	int sb = run_sigsem(true, b, sizeof b);
	/* The transcript itself must show the semantics, so that two equally
	 * broken runs cannot pass. */
	cr_assert(strstr(a, "h1: runs=1 signo=2 pid_ok=1 user=1 usr1_blocked=1 self_blocked=1"),
		  "%s", a);
	cr_assert(strstr(a, "h2: runs=1 self_blocked=0 errno_after=1234"), "%s", a);
	cr_assert(strstr(a, "after SA_RESETHAND: rc=0 handler=SIG_DFL"), "%s", a);
	cr_assert(strstr(a, "h3: runs=2"), "%s", a);
	cr_assert_str_eq(b, a, "transcripts differ.\nwithout shim:\n%s\nwith shim:\n%s", a, b);
	cr_assert(WIFSIGNALED(sa) && WTERMSIG(sa) == SIGTERM, "SIG_DFL SIGTERM must kill");
	cr_assert_eq(sb, sa, "exit status differs: %#x vs %#x", sb, sa);
}

Test(invariants, only_accepted_sockets_are_touched)
{
	int lt = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	setsockopt(lt, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	cr_assert(bind(lt, (struct sockaddr *)&a, sizeof a) == 0 && listen(lt, 4) == 0);
	getsockname(lt, (struct sockaddr *)&a, &al);
	char port[16];
	snprintf(port, sizeof port, "%d", ntohs(a.sin_port));

	const char *const args[] = {"bystander", port, NULL};
	server_start(&srv, true, args, NULL);
	int outbound = accept(lt, NULL, NULL); /* the fixture's outbound connection */
	cr_assert(outbound >= 0);
	int victim = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	kill(srv.pid, SIGINT);
	sleep_ms(300);
	int late = tcp_connect(AF_INET, srv.port); /* the listener must still work */
	/* echo the fixture's byte on the outbound connection */
	struct pollfd p = {.fd = outbound, .events = POLLIN};
	char c;
	cr_assert(poll(&p, 1, 5000) == 1 && read(outbound, &c, 1) == 1, "no byte on outbound");
	cr_assert(write(outbound, &c, 1) == 1);
	long ms = server_wait(&srv, 10000);
	char out[1024] = "";
	read_all_for(srv.out_fd, out, sizeof out, 10000);
	close(victim);
	close(late);
	close(outbound);
	close(lt);
	cr_assert_geq(ms, 0, "bystander did not finish");
	cr_assert(strstr(out, "victim: eof"),
		  "the accepted, unused connection was not released:\n%s", out);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0,
		  "a socket or fd the process did not accept was touched:\n%s", out);
}
