/*
 * SPDX-License-Identifier: MIT
 *
 * The host behaves as without the shim (invariant 1), in the shapes
 * CPython's own regression suite showed it did not: a vfork() that a signal
 * interrupts and the kernel restarts, children of a draining parent that are
 * not its workers, a server that speaks first, and a forked child's first
 * log line.  Each pattern runs without and with the shim and each run is
 * checked against the expected result, so a pattern broken both ways fails
 * too.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_MS 15000 /* a program that should exit: generous (loaded CI) */

static struct server srv;

static void teardown(void)
{
	server_stop(&srv);
}

TestSuite(host_unchanged, .fini = teardown, .timeout = 180);

/* What one run showed. */
struct outcome {
	int status;     /* wait status */
	char out[4096]; /* stdout after the PORT line */
	char err[8192]; /* stderr */
};

/* Waits (bounded) for the server to exit on its own, then collects its
 * status, the rest of its stdout and its stderr. */
static void finish_within(struct outcome *o, const char *what, bool shim, long wait_ms)
{
	long ms = server_wait(&srv, wait_ms);
	if (ms < 0) {
		server_stop(&srv);
		cr_assert_fail(
			"%s (%s the shim): still running %ld ms after it should have exited; "
			"stderr:\n%s",
			what, shim ? "with" : "without", wait_ms, server_stderr(&srv));
	}
	o->status = srv.status;
	read_all_for(srv.out_fd, o->out, sizeof o->out, 2000);
	snprintf(o->err, sizeof o->err, "%s", server_stderr(&srv));
	close(srv.out_fd);
}

static void finish(struct outcome *o, const char *what, bool shim)
{
	finish_within(o, what, shim, EXIT_MS);
}

/* ThreadSanitizer changes what these fixtures measure: it runs a signal
 * handler at its own safe points (hu_vfork_storm's SIGTERM handler never
 * runs there, without the shim as with it), and refuses a thread started in
 * the child of a multi-threaded fork (the shim's sweeper in hu_forklog's
 * children). */
static void skip_under_tsan(const char *why)
{
	const char *san = getenv("GRACESHIM_SAN");
	if (san && !strcmp(san, "thread"))
		cr_skip_test("not under ThreadSanitizer: %s", why);
}

static bool exited_with(int status, int code)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* ---- C. vfork restarted by a signal --------------------------------------- */

/* Storms of SIGCHLD and SIGALRM, whose handlers re-arm themselves with
 * signal(), land during vfork() again and again; each child resets SIGTERM
 * to SIG_DFL.  The parent's own SIGTERM handler must still run.  A hit is
 * a matter of timing (the shim before the fix died in about 4 runs of 5):
 * three runs with the shim. */
static void run_vfork_storm(bool shim, struct outcome *o)
{
	const char *const args[] = {"hu_vfork_storm", "1500", NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	finish(o, "hu_vfork_storm", shim);
}

Test(host_unchanged, restarted_vfork_child_does_not_reset_parent_handler)
{
	skip_under_tsan("it defers signal handlers; the fixture's SIGTERM handler never runs, even "
			"without the shim");
	struct outcome o;
	for (int run = 0; run < 4; run++) {
		bool shim = run > 0;
		run_vfork_storm(shim, &o);
		cr_expect(
			exited_with(o.status, 3) && !strcmp(o.out, "handler 15\n"),
			"run %d, %s the shim: status 0x%x (killed by signal %d), stdout \"%s\", "
			"stderr \"%s\": the SIGTERM handler must run, not a vfork child's SIG_DFL",
			run, shim ? "with" : "without", o.status,
			WIFSIGNALED(o.status) ? WTERMSIG(o.status) : 0, o.out, o.err);
	}
}

/* ---- D. children that are not workers -------------------------------------- */

static int connect_to(const char *addr, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, addr, &in.sin_addr);
	cr_assert(connect(fd, (struct sockaddr *)&in, sizeof in) == 0, "connect %s:%d: %s", addr,
		  port, strerror(errno));
	return fd;
}

/* The client opens its connection to the child, the parent alone is told
 * to stop, and a second later the client sends its request. */
static void run_sibling(bool shim, const char *mode, const char *addr, struct outcome *o,
			char *reply, size_t reply_len)
{
	const char *const args[] = {"hu_siblings", mode, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	int fd = connect_to(addr, srv.port);
	sleep_ms(300);
	kill(srv.pid, SIGTERM);
	/* The parent drains meanwhile: its shim's passes over its children,
	 * walking every child from 1 s on (workers.c, a thorough pass). */
	sleep_ms(1600);
	reply[0] = 0;
	if (send(fd, "ping\n", 5, MSG_NOSIGNAL) == 5)
		read_line_for(fd, reply, reply_len, 5000);
	close(fd);
	finish(o, "hu_siblings", shim);
}

static void check_sibling(const char *mode, const char *addr)
{
	struct outcome o;
	char reply[128];
	for (int run = 0; run < 2; run++) {
		bool shim = run > 0;
		run_sibling(shim, mode, addr, &o, reply, sizeof reply);
		cr_expect_str_eq(reply, "echo ping\n",
				 "%s, %s the shim: the child's client got \"%s\"; stdout \"%s\", "
				 "stderr \"%s\"",
				 mode, shim ? "with" : "without", reply, o.out, o.err);
		cr_expect(exited_with(o.status, 0) && !strcmp(o.out, "child served\n"),
			  "%s, %s the shim: status 0x%x, stdout \"%s\"", mode,
			  shim ? "with" : "without", o.status, o.out);
	}
}

Test(host_unchanged, child_with_its_own_reuseport_listener_is_not_a_worker)
{
	check_sibling("reuseport", "127.0.0.1");
}

Test(host_unchanged, child_serving_the_port_on_another_address_is_not_a_worker)
{
	check_sibling("otheraddr", "127.0.0.2");
}

/* ---- E. a server that speaks first ----------------------------------------- */

/* Client a reads the banner and answers it 2 s later, while client b waits
 * in the listener's queue (the shape of the unblock release, whose
 * GRACESHIM_UNBLOCK_AFTER is 1 s by default); then b is served. */
static void run_banner(bool shim, const char *const *env, struct outcome *o, char *got,
		       size_t got_len)
{
	const char *const args[] = {"hu_banner", "2", NULL};
	char buf[128];
	memset(o, 0, sizeof *o);
	got[0] = 0;
	server_start(&srv, shim, args, env);
	int a = tcp_connect(AF_INET, srv.port);
	read_line_for(a, buf, sizeof buf, 5000);
	strncat(got, buf, got_len - strlen(got) - 1);
	int b = tcp_connect(AF_INET, srv.port); /* waits to be accepted */
	sleep_ms(2000);
	if (send(a, "HELO a\n", 7, MSG_NOSIGNAL) == 7) {
		read_line_for(a, buf, sizeof buf, 5000);
		strncat(got, buf, got_len - strlen(got) - 1);
	} else {
		strncat(got, "(a: send failed)\n", got_len - strlen(got) - 1);
	}
	close(a);
	read_line_for(b, buf, sizeof buf, 5000);
	strncat(got, buf, got_len - strlen(got) - 1);
	if (send(b, "HELO b\n", 7, MSG_NOSIGNAL) == 7) {
		read_line_for(b, buf, sizeof buf, 5000);
		strncat(got, buf, got_len - strlen(got) - 1);
	}
	close(b);
	finish(o, "hu_banner", shim);
}

static void check_banner(const char *const *env)
{
	struct outcome o;
	char got[512];
	for (int run = 0; run < 2; run++) {
		bool shim = run > 0;
		run_banner(shim, env, &o, got, sizeof got);
		cr_expect_str_eq(
			got, "220 ready\n250 HELO a\n220 ready\n250 HELO b\n",
			"%s the shim (%s): the clients got \"%s\"; stdout \"%s\", stderr \"%s\"",
			shim ? "with" : "without", env ? env[0] : "default settings", got, o.out,
			o.err);
		cr_expect(exited_with(o.status, 0) && !o.out[0],
			  "%s the shim: status 0x%x, stdout \"%s\"", shim ? "with" : "without",
			  o.status, o.out);
	}
}

Test(host_unchanged, server_speaking_first_is_not_released_while_others_wait)
{
	check_banner(NULL);
}

/* The sweeper's path: a first-byte timeout is for connections that never
 * sent their first byte without being asked; a banner asked. */
Test(host_unchanged, server_speaking_first_is_not_a_missing_first_byte)
{
	const char *const env[] = {"GRACESHIM_FIRST_BYTE_TIMEOUT=1s", "GRACESHIM_UNBLOCK_AFTER=off",
				   NULL};
	check_banner(env);
}

/* ---- F. a forked child's first log line ------------------------------------ */

/* 300 children forked while one thread makes the shim log (trace: each
 * accept) and another reads the local time as a server's access log does.
 * Each child makes one shim log line; none may hang in it.  A hung child is
 * killed by its alarm after 5 s, in batches of 100: a broken logger makes
 * the run last up to 20 s, hence the longer wait. */
Test(host_unchanged, forked_child_logs_while_other_threads_hold_libc_locks)
{
	skip_under_tsan("it kills a child of a multi-threaded fork that starts a thread (the "
			"shim's sweeper)");
	const char *const args[] = {"hu_forklog", "300", NULL};
	const char *const env[] = {"GRACESHIM_LOG=trace", "GRACESHIM_LOG_FILE=/dev/null", NULL};
	struct outcome o;
	for (int run = 0; run < 2; run++) {
		bool shim = run > 0;
		memset(&o, 0, sizeof o);
		server_start(&srv, shim, args, shim ? env : NULL);
		finish_within(&o, "hu_forklog", shim, 90000);
		cr_expect(exited_with(o.status, 0) &&
				  !strcmp(o.out, "children 300 hung 0 failed 0\n"),
			  "%s the shim: status 0x%x, stdout \"%s\", stderr \"%s\"",
			  shim ? "with" : "without", o.status, o.out, o.err);
	}
}

/* ---- G. fd 2 after the host made it a file of its own ------------------------- */

/* Reads the file hu_stderr wrote (PATH in build/), without and with the shim,
 * at the default log level: the shim has a warning to write (SIGINT and
 * SIGTERM ignored) once the host has rearranged fd 2. */
static void run_stderr(const char *mode, bool shim, char *got, size_t len)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/hu_stderr.%s.%d", getenv("GRACESHIM_BUILD"), mode,
		 (int)getpid());
	const char *const args[] = {"hu_stderr", path, mode, NULL};
	struct outcome o;
	memset(&o, 0, sizeof o);
	server_start(&srv, shim, args, NULL);
	finish_within(&o, "hu_stderr", shim, EXIT_MS);
	cr_expect(exited_with(o.status, 0), "hu_stderr %s %s the shim: status 0x%x", mode,
		  shim ? "with" : "without", o.status);
	got[0] = 0;
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(got, 1, len - 1, f);
		got[n] = 0;
		fclose(f);
	}
	unlink(path);
}

/* close(2) then open(): the file is the host's data that happens to sit on
 * fd 2.  The shim's line must not land in it (invariant 3: an identity
 * check before every write, stderr's included). */
Test(host_unchanged, file_opened_on_fd_2_gets_no_shim_line)
{
	char got[4096];
	for (int run = 0; run < 2; run++) {
		run_stderr("open", run > 0, got, sizeof got);
		cr_expect_str_eq(got, "host data\n", "%s the shim, the host's file holds \"%s\"",
				 run ? "with" : "without", got);
	}
}

/* dup2() onto 2 is how a host redirects its stderr (nginx's error log):
 * the shim's lines follow it there. */
Test(host_unchanged, stderr_redirected_with_dup2_gets_shim_lines)
{
	char got[4096];
	run_stderr("dup2", false, got, sizeof got);
	cr_expect_str_eq(got, "host data\n", "without the shim the file holds \"%s\"", got);
	run_stderr("dup2", true, got, sizeof got);
	cr_expect(strstr(got, "WARN graceshim[") && strstr(got, "host data\n"),
		  "with the shim, the redirected stderr holds \"%s\"", got);
}

/* A vfork() child's dup2() onto its fd 2 (CPython's subprocess with
 * stderr=PIPE) is the child's redirect, made in our memory: the parent's
 * stderr is unchanged and still gets the shim's lines. */
Test(host_unchanged, vfork_child_redirecting_its_stderr_leaves_ours)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/hu_stderr.vfork.%d", getenv("GRACESHIM_BUILD"),
		 (int)getpid());
	const char *const args[] = {"hu_stderr", path, "vfork", NULL};
	struct outcome o;
	for (int run = 0; run < 2; run++) {
		bool shim = run > 0;
		memset(&o, 0, sizeof o);
		server_start(&srv, shim, args, NULL);
		finish_within(&o, "hu_stderr vfork", shim, EXIT_MS);
		cr_expect(exited_with(o.status, 0), "%s the shim: status 0x%x",
			  shim ? "with" : "without", o.status);
		cr_expect(shim ? strstr(o.err, "WARN graceshim[") != NULL : !o.err[0],
			  "%s the shim, the host's stderr got \"%s\"", shim ? "with" : "without",
			  o.err);
	}
}
