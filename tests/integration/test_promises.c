/*
 * SPDX-License-Identifier: MIT
 *
 * The promises of the behaviour added last (issue 27): the unblock release,
 * the workers path, muting, the drain deadline and the identity checks.
 * Each test fails when its promise is broken (tests/mutants/ breaks each
 * one) and asserts on what the server or its client sees; where that
 * cannot differ, on the shim's own report (its debug log, its statistics).
 * The fixture is tests/fixtures/promises.c (one mode per shape) or
 * syncworker; the controls run the same fixture without the shim.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;
static char path[128];

static void teardown(void)
{
	server_stop(&srv);
	if (path[0])
		unlink(path);
	path[0] = 0;
}

TestSuite(promises, .fini = teardown, .timeout = 60);

#define REQ "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

/* The fixture's stdout until it holds `want` or ms pass, appended to out
 * (NUL-terminated, "" at first). */
static bool out_has(const char *want, long ms, char *out, size_t len)
{
	size_t have = strlen(out);
	long end = now_ms() + ms;
	while (!strstr(out, want) && have < len - 1) {
		long left = end - now_ms();
		if (left <= 0)
			break;
		long t = now_ms(), step = left < 100 ? left : 100;
		size_t n = read_all_for(srv.out_fd, out + have, len - have, step);
		have += n;
		out[have] = 0;
		if (n == 0 && now_ms() - t < step - 10)
			break; /* EOF: every process holding the fixture's stdout exited */
	}
	return strstr(out, want) != NULL;
}

/* The shim says it released the connection from this client port: its own
 * line (sweeper), or the count of the release made in its signal handler
 * (a single-threaded host: no log line there). */
static bool shim_released(int port)
{
	const char *log = server_stderr(&srv);
	return shim_release_line(log, port) ||
	       strstr(log, "released 1 connection(s) in the signal handler");
}

/* One line answered "OK\n" on fd within ms. */
static bool answered(int fd, long ms)
{
	char buf[64];
	if (!send_str(fd, "hello\n"))
		return false;
	read_all_for(fd, buf, sizeof buf, ms);
	return strstr(buf, "OK") != NULL;
}

/* ---- 1. GRACESHIM_UNBLOCK_AFTER is honoured, not only its default ------- */

/* syncworker held by a silent connection, a real request waiting behind it;
 * returns ms until that request's answer, or -1. */
static long blocked_request(const char *const *env, long wait_ms)
{
	const char *const args[] = {"syncworker", NULL};
	server_start(&srv, true, args, env);
	int silent = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	int real = tcp_connect(AF_INET, srv.port);
	long t0 = now_ms();
	cr_assert(send_str(real, REQ));
	long got = http_read_response(real, wait_ms);
	long ms = got >= 0 ? now_ms() - t0 : -1;
	close(real);
	close(silent);
	return ms;
}

Test(promises, unblock_after_3s_waits_3s)
{
	const char *const env[] = {"GRACESHIM_UNBLOCK_AFTER=3s", "GRACESHIM_LOG=info", NULL};
	long ms = blocked_request(env, 9000);
	cr_assert_geq(ms, 0, "not answered in 9 s:\n%s", server_stderr(&srv));
	/* The silent connection is 3 s old 2.8 s after the request. */
	cr_assert_geq(ms, 2500, "answered after %ld ms: released before 3 s", ms);
	cr_assert_leq(ms, 7000, "answered only after %ld ms", ms);
}

/* ---- 4. an unblock release counts once in the statistics -------------- */

static long stat_num(const char *json, const char *key)
{
	char k[64];
	snprintf(k, sizeof k, "\"%s\":", key);
	const char *p = strstr(json, k);
	if (!p || !strchr("-0123456789", p[strlen(k)]))
		return -1;
	return strtol(p + strlen(k), NULL, 10);
}

Test(promises, unblock_release_counted_once)
{
	char var[160], buf[4096];
	snprintf(path, sizeof path, "/tmp/graceshim-promises-stats-%d.json", (int)getpid());
	unlink(path);
	snprintf(var, sizeof var, "GRACESHIM_STATS=%s", path);
	const char *const env[] = {var, "GRACESHIM_LOG=info", NULL};
	long ms = blocked_request(env, 8000);
	cr_assert_geq(ms, 0, "not answered in 8 s:\n%s", server_stderr(&srv));
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, 8000), 0, "%s", server_stderr(&srv));
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no stats file:\n%s", server_stderr(&srv));
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	cr_assert_eq(stat_num(buf, "blocking"), 1, "one release while blocked, counted: %s", buf);
	cr_assert_eq(stat_num(buf, "accepted"), 2, "%s", buf);
}

/* ---- 3. a request waiting in the kernel keeps its connection ----------- */

/* A Unix socket has no kernel byte count: only the queue (SIOCINQ) says a
 * request is there.  The fixture reads it 500 ms after SIGINT and treats
 * "request then EOF" as an abort, as hyper 0.14 does. */
static void queued_request(bool shim)
{
	snprintf(path, sizeof path, "/tmp/graceshim-promises-%d.sock", (int)getpid());
	const char *const args[] = {"promises", "unixq", path, NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	char out[512] = "", buf[64];
	server_start(&srv, shim, args, env);
	int fd = unix_connect(path);
	cr_assert_geq(fd, 0);
	cr_assert(send_str(fd, REQ));
	sleep_ms(300); /* accepted, its request queued */
	kill(srv.pid, SIGINT);
	read_all_for(fd, buf, sizeof buf, 5000);
	close(fd);
	cr_assert_geq(server_wait(&srv, 5000), 0, "%s", server_stderr(&srv));
	out_has("served", 100, out, sizeof out);
	cr_assert(strstr(buf, "OK"), "the queued request was not answered (server: %s)\n%s", out,
		  server_stderr(&srv));
	if (shim) {
		const char *log = server_stderr(&srv);
		cr_assert(strstr(log, "SIGINT received: draining"), "no drain:\n%s", log);
		cr_assert_null(strstr(log, " shut down ("),
			       "a connection with its request queued "
			       "was released:\n%s",
			       log);
	}
}

Test(promises, queued_request_on_unix_socket_is_kept)
{
	queued_request(true);
}

Test(promises, queued_request_on_unix_socket_without_shim)
{
	queued_request(false);
}

/* ---- 2. a worker that closes one of its two listeners is not stopping -- */

static void two_listeners(bool shim)
{
	const char *const args[] = {"promises", "twolisten", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	char out[512] = "";
	server_start(&srv, shim, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	sleep_ms(1500); /* accepted, the second listener closed, a sweep made */
	bool ok = answered(fd, 5000);
	close(fd);
	out_has("\n", 3000, out, sizeof out);
	cr_assert(ok, "the worker's client was not answered (worker: %s)\n%s", out,
		  server_stderr(&srv));
	cr_assert_null(strstr(server_stderr(&srv), "draining"), "%s", server_stderr(&srv));
}

Test(promises, worker_closing_one_of_two_listeners_keeps_serving)
{
	two_listeners(true);
}

Test(promises, worker_closing_one_of_two_listeners_without_shim)
{
	two_listeners(false);
}

/* ---- 5. the workers path leaves a fork-per-connection child alone ------ */

static void fork_per_connection(bool shim)
{
	const char *const args[] = {"promises", "forkconn", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	char out[512] = "";
	server_start(&srv, shim, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	sleep_ms(300); /* the child holds it, without the listener */
	kill(srv.pid, SIGINT);
	sleep_ms(1500); /* the master's drain passes (workers: every 250 ms) */
	bool ok = answered(fd, 5000);
	close(fd);
	cr_assert_geq(server_wait(&srv, 5000), 0, "%s", server_stderr(&srv));
	out_has("\n", 100, out, sizeof out);
	cr_assert(ok, "the child's client was not answered (child: %s)\n%s", out,
		  server_stderr(&srv));
	cr_assert_null(strstr(server_stderr(&srv), "held by child processes"), "%s",
		       server_stderr(&srv));
}

Test(promises, fork_per_connection_child_is_not_a_worker)
{
	fork_per_connection(true);
}

Test(promises, fork_per_connection_without_shim)
{
	fork_per_connection(false);
}

/* ---- 6. the workers path waits for GRACESHIM_GRACE --------------------- */

/* ms from connect to the EOF of the worker's silent connection, or -1. */
static long worker_release_ms(bool shim, long wait_ms)
{
	const char *const args[] = {"promises", "prefork", NULL};
	const char *const env[] = {"GRACESHIM_GRACE=2s", "GRACESHIM_LOG=info", NULL};
	server_start(&srv, shim, args, env);
	long t0 = now_ms();
	int fd = tcp_connect(AF_INET, srv.port);
	sleep_ms(100);
	kill(srv.pid, SIGINT);
	long ms = wait_eof(fd, wait_ms);
	close(fd);
	return ms < 0 ? -1 : now_ms() - t0;
}

Test(promises, workers_release_waits_for_the_grace)
{
	long ms = worker_release_ms(true, 8000);
	cr_assert_geq(ms, 0, "the worker's connection was not released:\n%s", server_stderr(&srv));
	cr_assert_geq(ms, 1900, "released %ld ms after connect, before GRACESHIM_GRACE=2s", ms);
	cr_assert_leq(ms, 7000, "released only %ld ms after connect", ms);
	cr_assert_geq(server_wait(&srv, 5000), 0, "%s", server_stderr(&srv));
}

Test(promises, workers_connection_stays_without_shim)
{
	cr_assert_eq(worker_release_ms(false, 3000), -1);
}

/* ---- 7. writes before the host read its EOF pass ----------------------- */

static void goaway(bool shim)
{
	const char *const args[] = {"promises", "goaway", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", "GRACESHIM_IDLE_QUIET=100ms", NULL};
	char buf[256], out[256] = "";
	server_start(&srv, shim, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	int port = sock_port(fd);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(fd, 5000), 5);
	sleep_ms(400); /* idle: quiet longer than 100 ms, the server wrote last */
	kill(srv.pid, SIGINT);
	size_t n = read_all_for(fd, buf, sizeof buf, 8000);
	close(fd);
	cr_assert_geq(server_wait(&srv, 5000), 0, "%s", server_stderr(&srv));
	out_has("\n", 100, out, sizeof out);
	cr_assert(n > 0 && strstr(buf, "GOAWAY"),
		  "what the server wrote before reading the EOF was lost (got %zu byte(s): \"%s\"; "
		  "server: %s)\n%s",
		  n, buf, out, server_stderr(&srv));
	if (shim) {
		cr_assert(shim_released(port), "not released: the test proves nothing\n%s",
			  server_stderr(&srv));
		cr_assert(strstr(out, "readable\n") && !strstr(out, "not readable"), "%s", out);
	}
}

Test(promises, write_before_the_eof_is_read_passes)
{
	goaway(true);
}

Test(promises, write_before_the_eof_without_shim)
{
	goaway(false);
}

/* ---- 8. a muted fd number reused behind the shim's back is written ----- */

/* Runs the promises fixture mode of args: one connection, SIGINT, the
 * server's exit; its first line of output in out.  The connection must
 * have been released, or the test proves nothing. */
static void release_then_reuse(const char *const *args, char *out, size_t len)
{
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	int port = sock_port(fd);
	sleep_ms(200);
	kill(srv.pid, SIGINT);
	cr_assert_geq(server_wait(&srv, 5000), 0, "%s", server_stderr(&srv));
	close(fd);
	out_has("\n", 100, out, len);
	cr_assert(shim_released(port), "not released: the test proves nothing\n%s",
		  server_stderr(&srv));
}

Test(promises, muted_number_reused_for_a_file_is_written)
{
	snprintf(path, sizeof path, "/tmp/graceshim-promises-reuse-%d", (int)getpid());
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	const char *const args[] = {"promises", "reusefile", path, NULL};
	char out[256] = "", buf[64] = "";
	release_then_reuse(args, out, sizeof out);
	cr_assert(strstr(out, "wrote 7"), "%s\n%s", out, server_stderr(&srv));
	f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	cr_assert_str_eq(buf, "reused\n",
			 "the host's write to its file was dropped (file: \"%s\")\n%s", buf,
			 server_stderr(&srv));
}

/* The same with the number reused for a TCP socket that has received
 * nothing, as the released connection had: only the identity check tells
 * them apart (the kernel's byte count cannot). */
Test(promises, muted_number_reused_for_a_socket_is_written)
{
	const char *const args[] = {"promises", "reusesock", NULL};
	char out[256] = "";
	release_then_reuse(args, out, sizeof out);
	cr_assert(strstr(out, "wrote 7, peer got 7"),
		  "the host's write to its new socket was dropped: %s\n%s", out,
		  server_stderr(&srv));
}

/* ---- 9. the unblock release checks the number's identity -------------- */

Test(promises, unblock_leaves_a_reused_number_alone)
{
	const char *const args[] = {"promises", "unblockreuse", NULL};
	const char *const env[] = {"GRACESHIM_UNBLOCK_AFTER=300ms", "GRACESHIM_LOG=debug", NULL};
	char out[256] = "";
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	bool said = out_has("outbound: ", 8000, out, sizeof out) &&
		    out_has("\n", 500, out, sizeof out);
	close(fd);
	cr_assert(said, "%s\n%s", out, server_stderr(&srv));
	cr_assert(strstr(out, "outbound: open"),
		  "the socket that took the released number was shut down: %s\n%s", out,
		  server_stderr(&srv));
}

/* ---- 10. the drain deadline on a quiet server ------------------------- */

/* A connection in the middle of a request, under GRACESHIM_POLICY=unused:
 * the policy keeps it without a time to look again (POL_KEEP), and the
 * server makes no call after the trigger that would wake the sweeper: only
 * the deadline itself can have it cut on time. */
Test(promises, drain_deadline_on_a_quiet_server)
{
	const char *const args[] = {"promises", "partial", NULL};
	const char *const env[] = {"GRACESHIM_DRAIN_TIMEOUT=200ms", "GRACESHIM_POLICY=unused",
				   "GRACESHIM_LOG=debug", NULL};
	char out[256] = "";
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	int port = sock_port(fd);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\n")); /* the rest never comes */
	sleep_ms(300);
	kill(srv.pid, SIGINT);
	cr_assert_geq(server_wait(&srv, 8000), 0, "%s", server_stderr(&srv));
	close(fd);
	out_has("\n", 100, out, sizeof out);
	const char *log = server_stderr(&srv);
	const char *trig = strstr(log, "SIGINT received: draining");
	const char *cut = shim_release_line(log, port);
	cr_assert(trig && cut && strstr(cut, " cut"), "no trigger or no cut:\n%s", log);
	while (trig > log && trig[-1] != '\n')
		trig--;
	long long d = (shim_line_us(cut) - shim_line_us(trig)) / 1000;
	cr_assert_geq(d, 150, "cut %lld ms after the trigger, before the 200 ms deadline\n%s", d,
		      log);
	cr_assert_leq(d, 700, "cut %lld ms after the trigger: 200 ms was asked\n%s", d, log);
	cr_assert(strstr(out, "ended"), "%s", out);
}

/* ---- 11. a child in this process's memory does no bookkeeping --------- */

/* The child of clone(CLONE_VM) resets SIGTERM to SIG_DFL and closes its
 * fds: the parent's handler must still run at SIGTERM (status 3), as
 * without the shim.  (A plain vfork(): the transparency suite's vfork tests.) */
static void clone_child_reset(const char *how, bool shim)
{
	const char *const args[] = {"promises", "clonevm", how, NULL};
	/* ThreadSanitizer defers signal handlers to its own points, which a
	 * raw clone(CLONE_VM) child never reaches: the handler does not run
	 * there even without the shim. */
	const char *san = getenv("GRACESHIM_SAN");
	if (san && !strcmp(san, "thread"))
		cr_skip_test("not under ThreadSanitizer: its deferred signal handlers never run "
			     "around a raw clone(CLONE_VM) child, without the shim as with it");
	char out[256] = "";
	server_start(&srv, shim, args, NULL);
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, 5000), 0, "%s", server_stderr(&srv));
	out_has("handler", 100, out, sizeof out);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 3,
		  "%s: status 0x%x (the handler did not run: SIG_DFL came from the child); "
		  "stdout: %s\n%s",
		  how, srv.status, out, server_stderr(&srv));
	cr_assert(strstr(out, "handler 15"), "%s", out);
}

Test(promises, clone_vfork_child_leaves_the_handler)
{
	clone_child_reset("vfork", true);
}

Test(promises, clone_vm_child_leaves_the_handler)
{
	clone_child_reset("vm", true);
}

Test(promises, clone_children_without_shim)
{
	clone_child_reset("vfork", false);
	server_stop(&srv);
	clone_child_reset("vm", false);
}
