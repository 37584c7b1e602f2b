/*
 * SPDX-License-Identifier: MIT
 *
 * Server shapes (issue 3): an epoll event loop stopped by a handler, by a
 * signalfd, by sigwaitinfo(); pre-fork workers stopped over a pipe (no
 * signal: only the listener trigger sees it); one socket on several fds;
 * a listener closed and opened again.  Each with-shim case has a
 * without-shim twin that hangs, so each can fail.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

TestSuite(shapes, .fini = harness_teardown, .timeout = 60);

/* Chrome-like: a page on a kept-alive connection and an unused spare. */
static long chrome(bool shim, const char *const *args, const char *const *env)
{
	server_start(&srv, shim, args, env);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_geq(http_read_response(used, 5000), 0);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	long ms = server_signal_and_wait(&srv, SIGINT, shim ? PROMPT_MS : HANG_MS);
	close(used);
	close(spare);
	return ms;
}

#define SHAPE(name, ...)                                                                           \
	Test(shapes, name##_with_shim)                                                             \
	{                                                                                          \
		const char *const args[] = {__VA_ARGS__, NULL};                                    \
		const char *const env[] = {ENV_##name, NULL};                                      \
		long ms = chrome(true, args, env);                                                 \
		cr_assert_geq(ms, 0, "still running after SIGINT; stderr:\n%s",                    \
			      server_stderr(&srv));                                                \
	}                                                                                          \
	Test(shapes, name##_hangs_without_shim)                                                    \
	{                                                                                          \
		const char *const args[] = {__VA_ARGS__, NULL};                                    \
		cr_assert_eq(chrome(false, args, NULL), -1);                                       \
	}

/* Each of these hosts closes its listener when it stops; the signal cases
 * leave the listener trigger out, so only noticing the signal can work. */
#define ENV_evloop_handler "GRACESHIM_TRIGGERS=signal"
#define ENV_evloop_signalfd "GRACESHIM_TRIGGERS=signal"
#define ENV_evloop_sigwaitinfo "GRACESHIM_TRIGGERS=signal"
#define ENV_prefork_workers_stopped_over_pipe "GRACESHIM_TRIGGERS=signal,listener"
#define ENV_dup_of_accepted_socket "GRACESHIM_TRIGGERS=signal"

SHAPE(evloop_handler, "evloop", "--stop", "handler")
SHAPE(evloop_signalfd, "evloop", "--stop", "signalfd")
SHAPE(evloop_sigwaitinfo, "evloop", "--stop", "sigwait")
SHAPE(prefork_workers_stopped_over_pipe, "evloop", "--prefork", "2")
SHAPE(dup_of_accepted_socket, "hyperlike", "--dup-conn")

/* With the signal trigger alone, the workers (stopped over a pipe, no
 * signal of their own) are reached through their master: it drains, and
 * releases their never-used connections itself (workers.c). */
Test(shapes, prefork_workers_reached_through_their_master)
{
	const char *const args[] = {"evloop", "--prefork", "2", NULL};
	const char *const env[] = {"GRACESHIM_TRIGGERS=signal", "GRACESHIM_LOG=info", NULL};
	cr_assert_geq(chrome(true, args, env), 0, "stderr:\n%s", server_stderr(&srv));
	cr_assert(strstr(server_stderr(&srv), "held by child processes"),
		  "not released by the master: stderr:\n%s", server_stderr(&srv));
}

Test(shapes, listener_trigger_alone_releases_prefork_workers)
{
	const char *const args[] = {"evloop", "--prefork", "2", NULL};
	const char *const env[] = {"GRACESHIM_TRIGGERS=listener", NULL};
	cr_assert_geq(chrome(true, args, env), 0, "stderr:\n%s", server_stderr(&srv));
}

/* A process that handled a signal and then closed the listener it made
 * itself is stopping (README, "When it drains"): with the listener trigger
 * alone (SIGINT no trigger signal), it drains.  Closing one's own listener
 * without a signal (socat, one-shot forwarders accept once and close it)
 * is not a trigger: transparency::socat_accept_once_late_first_byte and
 * triggers::accept_once_after_no_signal_is_not_a_drain. */
Test(shapes, own_listener_closed_after_a_handled_signal_drains)
{
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {"GRACESHIM_TRIGGERS=listener", NULL};
	cr_assert_geq(chrome(true, args, env), 0, "not released: stderr:\n%s", server_stderr(&srv));
}

/* Closing the listener and listening again ends the drain: a connection
 * accepted afterwards that takes its time to send is served, not cut. */
Test(shapes, relisten_ends_listener_drain)
{
	const char *const args[] = {"hyperlike", "--relisten", NULL};
	/* Closing the listener after the first accept is a listener trigger:
	 * with grace 0 the first connection is released if the sweep sees it
	 * before its request was sent (a client descheduled between connect and
	 * send: seen under TSan on a loaded machine), as the design says.  300
	 * ms of grace lets it send; the slow connection below stays silent for
	 * 600 ms, so it would still be cut if re-listening did not end the drain. */
	const char *const env[] = {"GRACESHIM_GRACE=300ms", NULL};
	server_start(&srv, true, args, env);
	int first = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(first, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_geq(http_read_response(first, 5000), 0);
	sleep_ms(200);
	int slow = tcp_connect(AF_INET, srv.port);
	sleep_ms(600); /* silent for a while after accept */
	cr_assert(send_str(slow, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"), "the connection was cut");
	cr_assert_geq(http_read_response(slow, 5000), 0, "a connection after re-listen was cut");
	close(first);
	close(slow);
}

/* Limits: detect, then say so. */
Test(shapes, io_uring_server_is_reported)
{
	const char *const args[] = {"uring", NULL};
	server_start(&srv, true, args, NULL);
	int c = tcp_connect(AF_INET, srv.port); /* accepted by a raw system call */
	sleep_ms(300);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
	close(c);
	if (WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 4)
		cr_skip_test("io_uring_setup is not available on this kernel");
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "uses io_uring"), "no io_uring warning:\n%s", err);
	cr_assert(strstr(err, "accepted without libc"), "%s", err);
}
