/*
 * SPDX-License-Identifier: MIT
 *
 * The aarch64 smoke test, run under qemu-aarch64 (make check-cross).
 *
 * One process, one thread (qemu-user here hangs at a guest's first
 * pthread_create, so nothing in this test may start a thread, nor make a
 * libc call that would start the shim's deferred sweeper after the trigger:
 * after SIGINT only raw system calls).  It listens on 127.0.0.1, connects
 * to itself (an outbound socket: never the shim's), accepts (tracked by the
 * shim), installs a SIGINT handler and raises SIGINT.  The shim, preloaded,
 * releases the never-used accepted connection from its handler (no sweeper
 * thread in a single-threaded process), so a raw recv() on it returns 0 at
 * once; without the shim it would block (EAGAIN with MSG_DONTWAIT).  The
 * application's handler must have run, and the outbound socket must be
 * untouched, and a vfork child that reset SIGINT first (through the shim's
 * vfork entry point) changed nothing of the parent's.  Also checks the pure parts: the configuration parser and the
 * release policy.
 *
 * Exit 0: with the shim, released (prints "released"); 3: not released
 * (prints "not released": the expected result without the shim); other:
 * a failed check.
 */
#include "config.h"
#include "policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_int(int sig)
{
	(void)sig;
	handled = 1;
}

static void say(const char *s)
{
	syscall(SYS_write, 1, s, strlen(s));
}

static const char *env_of(const char *name, void *ctx)
{
	(void)ctx;
	return !strcmp(name, "GRACESHIM_GRACE") ? "1m30s" : NULL;
}

static int pure_checks(void)
{
	struct cfg c;
	cfg_defaults(&c);
	cfg_parse(&c, env_of, NULL, NULL);
	if (c.grace_ns != 90ull * 1000000000ull)
		return 10;
	struct pol_params p = {POLICY_UNUSED, 0, 1000000000ull, 0};
	struct pol_input in = {.rx = 0,
			       .kernel_rx = 0,
			       .queued = 0,
			       .outq = -1,
			       .age_ns = 1,
			       .quiet_ns = -1,
			       .server_last = -1,
			       .draining = 1};
	struct pol_out out;
	pol_decide(&p, &in, &out);
	if (out.verdict != POL_RELEASE)
		return 11;
	in.kernel_rx = 10;
	in.rx = 10;
	pol_decide(&p, &in, &out);
	if (out.verdict == POL_RELEASE)
		return 12;
	return 0;
}

int main(void)
{
	int rc = pure_checks();
	if (rc)
		return rc;
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		return 20;
	int out = socket(AF_INET, SOCK_STREAM, 0);
	if (out < 0 || connect(out, (struct sockaddr *)&a, sizeof a) < 0)
		return 21;
	int c = accept(l, NULL, NULL);
	if (c < 0)
		return 22;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_int;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0)
		return 23;
	/* Through the shim's vfork entry point (assembly, per architecture):
	 * the child resets SIGINT as CPython's subprocess does; the parent's
	 * handler must still run. */
	pid_t kid = vfork();
	if (kid == 0) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGINT, &dfl, NULL);
		_exit(0);
	}
	int st;
	if (kid < 0 || waitpid(kid, &st, 0) != kid || !WIFEXITED(st))
		return 26;
	raise(SIGINT);
	/* From here on: raw system calls only (see the top). */
	if (!handled)
		return 24;
	char b;
	long r = syscall(SYS_recvfrom, c, &b, 1, MSG_DONTWAIT, NULL, NULL);
	/* The outbound socket is never touched: nothing was shut down there. */
	long w = syscall(SYS_sendto, out, "x", 1, 0, NULL, 0);
	long r2 = syscall(SYS_recvfrom, out, &b, 1, MSG_DONTWAIT, NULL, NULL);
	if (w != 1 || r2 != -1)
		return 25;
	if (r == 0) {
		say("released\n");
		return 0;
	}
	say("not released\n");
	return 3;
}
