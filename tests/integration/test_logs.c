/*
 * SPDX-License-Identifier: MIT
 *
 * What the logs tell a newcomer (issue 16): the trace close line names the
 * peer even when the kernel no longer can; at info, one line when a process
 * starts serving; a trigger signal the process ignores is said once.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server srv;

TestSuite(logs, .fini = harness_teardown, .timeout = 60);

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static int local_port(int fd)
{
	struct sockaddr_in in;
	socklen_t len = sizeof in;
	cr_assert(getsockname(fd, (struct sockaddr *)&in, &len) == 0);
	return ntohs(in.sin_port);
}

/* The server half-closes at our EOF and closes 100 ms later, in TCP_CLOSE:
 * getpeername() fails there, the close line must still name us. */
Test(logs, trace_close_line_names_the_peer_after_both_fins)
{
	const char *const args[] = {"hyperlike", "--shut-wr-at-eof", NULL};
	const char *const env[] = {"GRACESHIM_LOG=trace", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	char want[96];
	snprintf(want, sizeof want, "connection 127.0.0.1:%d closed (fd", local_port(fd));
	shutdown(fd, SHUT_WR);
	cr_assert_geq(wait_eof(fd, 5000), 0, "the server did not half-close");
	close(fd);
	sleep_ms(300);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, want), "no \"%s\" line:\n%s", want, err);
	cr_assert(!strstr(err, "unknown-peer"), "%s", err);
}

/* At info, before any signal: one line naming the pid, the address, the
 * triggers and the policy; still one after several accepts. */
Test(logs, info_says_once_that_the_process_serves)
{
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, true, args, env);
	for (int i = 0; i < 3; i++) {
		int fd = tcp_connect(AF_INET, srv.port);
		cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
		cr_assert_eq(http_read_response(fd, 5000), 2048);
		close(fd);
	}
	sleep_ms(200);
	const char *err = server_stderr(&srv);
	char want[160];
	snprintf(want, sizeof want, "INFO graceshim[%d] serving: listening on 127.0.0.1:%d",
		 (int)srv.pid, srv.port);
	cr_assert(strstr(err, want), "no \"%s\" line:\n%s", want, err);
	cr_assert_eq(count(err, "serving:"), 1, "%s", err);
	cr_assert(strstr(err,
			 "drain on SIGINT,SIGTERM, or closing its last listener after a handled "
			 "signal; policy idle"),
		  "the triggers and the (default) policy: %s", err);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
}

/* A single-threaded event loop: the release is made in the signal handler,
 * the loop closes the connection at its EOF, and only then does a libc call
 * start the sweeper thread, which announces the drain.  Its count is the
 * connections tracked at the trigger (the never-used one and one with a
 * request in progress, which keeps the server running until the line is
 * said), not what is left by then: "draining, 0 tracked connection(s)"
 * before "released 1" read as a contradiction (seen with lighttpd, tornado,
 * hypercorn). */
Test(logs, drain_line_counts_what_the_handler_found)
{
	const char *const args[] = {"evloop", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, true, args, env);
	int silent = tcp_connect(AF_INET, srv.port);
	int busy = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(busy, "GET / HTTP/1.1\r\nHost: t\r\n"));
	sleep_ms(300);
	cr_assert_eq(kill(srv.pid, SIGINT), 0);
	long end = now_ms() + 10000;
	while (!strstr(server_stderr(&srv), "received: draining") && now_ms() < end)
		sleep_ms(50);
	cr_assert(send_str(busy, "\r\n"));
	cr_assert_geq(http_read_response(busy, 5000), 0,
		      "the request in progress was not answered");
	close(busy);
	cr_assert_geq(server_wait(&srv, PROMPT_MS), 0, "%s", server_stderr(&srv));
	close(silent);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "released 1 connection(s) in the signal handler"),
		  "the release was not made in the handler here:\n%s", err);
	cr_assert(strstr(err, "SIGINT received: draining, 2 tracked connection(s)"),
		  "the drain line does not count the connection the handler released:\n%s", err);
}

Test(logs, warn_level_says_nothing_about_serving)
{
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, true, args, NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	close(fd);
	sleep_ms(200);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
	cr_assert(!strstr(server_stderr(&srv), "graceshim"), "%s", server_stderr(&srv));
}

/* Started with SIGINT ignored (as by `server &` in a script), a server that
 * keeps it ignored and stops on SIGTERM (as multiprocessing's forkserver,
 * Apache's and Puma's workers, which ignore SIGINT by choice): nothing on
 * its stderr at the default level; the serving line (info) says SIGINT is
 * ignored there; SIGTERM still works. */
Test(logs, ignored_sigint_is_not_warned_where_sigterm_reaches)
{
	const char *const args[] = {"hyperlike", "--keep-ignored", NULL};
	const int ignored[] = {SIGINT, SIGQUIT, 0};
	server_start_ignoring(&srv, true, args, NULL, ignored);
	for (int i = 0; i < 2; i++) {
		int fd = tcp_connect(AF_INET, srv.port);
		close(fd);
	}
	sleep_ms(200);
	cr_assert_eq(server_signal_and_wait(&srv, SIGINT, 500), -1, "SIGINT was not ignored");
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, PROMPT_MS), 0);
	const char *err = server_stderr(&srv);
	cr_assert(!strstr(err, "graceshim"), "the shim wrote to the host's stderr:\n%s", err);
}

Test(logs, ignored_sigint_is_said_in_the_serving_line)
{
	const char *const args[] = {"hyperlike", "--keep-ignored", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	const int ignored[] = {SIGINT, 0};
	server_start_ignoring(&srv, true, args, env, ignored);
	int fd = tcp_connect(AF_INET, srv.port);
	close(fd);
	sleep_ms(200);
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, PROMPT_MS), 0);
	const char *err = server_stderr(&srv);
	cr_assert(
		strstr(err, "drain on SIGTERM (SIGINT ignored here), or closing its last listener"),
		"%s", err);
	cr_assert(!strstr(err, "WARN"), "%s", err);
}

/* Both trigger signals ignored: the line says what still starts a drain
 * first, then what is ignored (not "drain on (SIGINT,SIGTERM ignored here),
 * or ..."). */
Test(logs, every_trigger_signal_ignored_is_said_after_what_triggers)
{
	const char *const args[] = {"hyperlike", "--keep-ignored", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	const int ignored[] = {SIGINT, SIGTERM, 0};
	server_start_ignoring(&srv, true, args, env, ignored);
	const char *want = "drain on closing its last listener after a handled signal "
			   "(SIGINT,SIGTERM ignored here); policy";
	for (int i = 0; i < 100 && !strstr(server_stderr(&srv), want); i++)
		sleep_ms(50);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, want), "%s", err);
}

/* Started the same way, a server that sets its handler after listen() (hyper
 * with tokio's ctrl_c()): SIGINT works, so nothing is said. */
Test(logs, handler_set_after_listen_is_not_reported)
{
	const char *const args[] = {"hyperlike", "--handlers-after-listen", NULL};
	const int ignored[] = {SIGINT, SIGQUIT, 0};
	server_start_ignoring(&srv, true, args, NULL, ignored);
	int fd = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0, "%s",
		      server_stderr(&srv));
	close(fd);
	cr_assert(!strstr(server_stderr(&srv), "is ignored"), "%s", server_stderr(&srv));
}

/* The twin: a SIGINT handled as usual is not reported. */
Test(logs, handled_trigger_signal_is_not_reported)
{
	const char *const args[] = {"hyperlike", "--keep-ignored", NULL};
	server_start(&srv, true, args, NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	close(fd);
	sleep_ms(200);
	/* Its stderr on failure: one loaded CI run saw it still running 4 s
	 * after SIGINT (not reproduced in 40 runs under stress-ng). */
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0,
		      "still running %d ms after SIGINT; stderr:\n%s", PROMPT_MS,
		      server_stderr(&srv));
	cr_assert(!strstr(server_stderr(&srv), "is ignored"), "%s", server_stderr(&srv));
}
