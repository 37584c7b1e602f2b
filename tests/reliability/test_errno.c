/*
 * SPDX-License-Identifier: MIT
 *
 * Return values and errno are the host's: rel_errno calls every interposed
 * function in success and error cases (EBADF, EAGAIN, ENOTSOCK, EINVAL,
 * EINTR from SIGALRM and from the trigger signal SIGINT, ...) and prints one
 * line per call; the transcripts with and without the shim must be equal.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

TestSuite(errno_parity, .fini = harness_teardown, .timeout = 120);

static void transcript(bool shim, char *out, size_t len)
{
	const char *const args[] = {"rel_errno", NULL};
	/* Its last calls follow a trigger (SIGINT), and under the default
	 * policy a connection idle between requests for GRACESHIM_IDLE_QUIET is
	 * then released: the one change the shim makes on purpose, which would
	 * turn a blocked read into an EOF.  The transcript compares wrappers:
	 * no connection of the fixture may qualify, however slow the machine
	 * (or valgrind, test_valgrind.c) makes its pauses. */
	const char *const env[] = {"GRACESHIM_LOG=debug", "GRACESHIM_IDLE_QUIET=3600s", NULL};
	server_start(&srv, shim, args, env);
	int go = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(go, "go\n"));
	long ms = server_wait(&srv, 60000);
	out[0] = '\n'; /* so that every line, the first too, follows a newline */
	read_all_for(srv.out_fd, out + 1, len - 1, 5000);
	close(go);
	cr_assert_geq(ms, 0,
		      "rel_errno (shim=%d) did not finish; transcript so far:\n%s\nstderr:\n%s",
		      shim, out, server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0,
		  "rel_errno (shim=%d) status %#x; stderr:\n%s", shim, srv.status,
		  server_stderr(&srv));
	/* The shim run must really have had the shim: two runs without it
	 * would agree trivially. */
	if (shim)
		cr_assert(strstr(server_stderr(&srv), "DEBUG graceshim["),
			  "the shim did not load; stderr:\n%s", server_stderr(&srv));
}

/* Lines that must be there, so that two equally broken runs cannot pass. */
static const char *const expected[] = {
	"accept go: ret=fd errno=1234",
	"accept EAGAIN: ret=-1 errno=EAGAIN",
	"accept ENOTSOCK: ret=-1 errno=ENOTSOCK",
	"accept EINVAL not listening: ret=-1 errno=EINVAL",
	"accept EINTR: ret=-1 errno=EINTR",
	"accept4 bad flags: ret=-1 errno=EINVAL",
	"accept4 one-byte address: len=16",
	"read: ret=5 errno=1234",
	"read EAGAIN: ret=-1 errno=EAGAIN",
	"read EBADF: ret=-1 errno=EBADF",
	"read EINTR: ret=-1 errno=EINTR",
	"readv EINVAL iovcnt: ret=-1 errno=EINVAL",
	"recv MSG_PEEK: ret=4 errno=1234",
	"recv ENOTSOCK: ret=-1 errno=ENOTSOCK",
	"recvmsg EINTR: ret=-1 errno=EINTR",
	"__read_chk EINTR: ret=-1 errno=EINTR",
	"__recv_chk EAGAIN: ret=-1 errno=EAGAIN",
	"recvmmsg: ret=2 errno=1234",
	"send EPIPE: ret=-1 errno=EPIPE",
	"close EBADF again: ret=-1 errno=EBADF",
	"dup2 same fd: ret=fd errno=1234",
	"dup3 EINVAL same: ret=-1 errno=EINVAL",
	"fcntl EINVAL cmd: ret=-1 errno=EINVAL",
	"close_range EINVAL first>last: ret=-1 errno=EINVAL",
	"close_range EINVAL flags: ret=-1 errno=EINVAL",
	"fd 1500, 1600 after closefrom: -1 -1",
	"sigaction EINVAL SIGKILL: ret=-1 errno=EINVAL",
	"sigaction SIGINT query: ret=0 errno=1234",
	"  old: h_int flags=0 usr2_in_mask=1",
	"signal EINVAL SIG_ERR: ret=SIG_ERR errno=EINVAL",
	"signal SIGINT: ret=h_int errno=1234",
	"sigset SIGTERM hold: ret=h_int errno=1234",
	"signalfd EINVAL not a signalfd: ret=-1 errno=EINVAL",
	"sigtimedwait EAGAIN: ret=-1 errno=EAGAIN",
	"read EINTR by SIGINT: ret=-1 errno=EINTR",
	"accept EINTR by SIGINT: ret=-1 errno=EINTR",
	"read restarted after SIGINT, EINTR by SIGALRM: ret=-1 errno=EINTR",
	"read EOF: ret=0 errno=1234",
	"done",
};

Test(errno_parity, every_wrapper_returns_what_libc_returns)
{
	static char a[32768], b[32768];
	/* TSan's interceptors give signal() and sigaction() semantics of their
	 * own (signal(SIG_ERR) does not fail, handlers run deferred), so the
	 * baseline is not glibc's there. */
	const char *san = getenv("GRACESHIM_SAN");
	if (san && !strcmp(san, "thread"))
		cr_skip_test("not under TSan: its signal interceptors are not glibc's");
	transcript(false, a, sizeof a);
	transcript(true, b, sizeof b);
	for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
		char line[256];
		snprintf(line, sizeof line, "\n%s\n", expected[i]);
		cr_expect(strstr(a, line), "without the shim, no line \"%s\":\n%s", expected[i], a);
	}
	/* Show the first differing line, then everything. */
	const char *pa = a, *pb = b;
	while (*pa && *pa == *pb)
		pa++, pb++;
	while (pa > a && pa[-1] != '\n')
		pa--, pb--;
	cr_assert_str_eq(b, a,
			 "transcripts differ; first difference:\n  without shim: %.*s\n  with "
			 "shim:    %.*s\n"
			 "with shim:\n%s",
			 (int)strcspn(pa, "\n"), pa, (int)strcspn(pb, "\n"), pb, b);
}
