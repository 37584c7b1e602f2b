/*
 * SPDX-License-Identifier: MIT
 *
 * The seed case against the hyper-0.14-like fixture: with the shim the
 * server exits promptly after SIGINT; without it, the same scenario hangs,
 * so every "prompt exit" assertion here is one that can fail.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

TestSuite(hyperlike, .fini = harness_teardown, .timeout = 60);

/* Chrome: one connection loads the page (and stays open for keep-alive),
 * a second, preconnected one never sends a byte. */
static long chrome_like(bool shim, const char *const *args, const char *const *env, int family)
{
	const char *const dflt[] = {"hyperlike", NULL};
	server_start(&srv, shim, args ? args : dflt, env);
	int used = tcp_connect(family, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_geq(http_read_response(used, 5000), 0, "the page must load");
	int spare = tcp_connect(family, srv.port);
	sleep_ms(200); /* let the server accept it */
	long ms = server_signal_and_wait(&srv, SIGINT, shim ? PROMPT_MS : HANG_MS);
	close(used);
	close(spare);
	return ms;
}

Test(hyperlike, chrome_like_client_exits_promptly_with_shim)
{
	long ms = chrome_like(true, NULL, NULL, AF_INET);
	cr_assert_geq(ms, 0, "server still running %d ms after SIGINT; stderr:\n%s", PROMPT_MS,
		      server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

Test(hyperlike, chrome_like_client_hangs_without_shim)
{
	long ms = chrome_like(false, NULL, NULL, AF_INET);
	cr_assert_eq(ms, -1,
		     "without the shim the fixture must wait for the unused connection, "
		     "but it exited after %ld ms",
		     ms);
}

Test(hyperlike, sigterm_triggers_too)
{
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, true, args, NULL);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGTERM, PROMPT_MS);
	close(spare);
	cr_assert_geq(ms, 0, "SIGTERM did not release the unused connection");
}

Test(hyperlike, disabled_shim_is_pass_through)
{
	const char *const env[] = {"GRACESHIM_DISABLE=1", NULL};
	long ms = chrome_like(true, NULL, env, AF_INET);
	cr_assert_eq(ms, -1, "GRACESHIM_DISABLE=1 must leave the host as without the shim");
}

Test(hyperlike, only_configured_signals_trigger)
{
	/* this host closes its listener on SIGINT: leave the listener
	 * trigger out to see the signal list alone */
	const char *const env[] = {"GRACESHIM_SIGNALS=TERM", "GRACESHIM_TRIGGERS=signal", NULL};
	long ms = chrome_like(true, NULL, env, AF_INET);
	cr_assert_eq(ms, -1, "SIGINT is not in GRACESHIM_SIGNALS=TERM: nothing may be released");
}

Test(hyperlike, ipv6_listener)
{
	const char *const args[] = {"hyperlike", "--ipv6", NULL};
	long ms = chrome_like(true, args, NULL, AF_INET6);
	cr_assert_geq(ms, 0, "IPv6: still running after SIGINT");
}

Test(hyperlike, accept4_and_signal_api)
{
	const char *const args[] = {"hyperlike", "--accept4", "--signal-api", "signal", NULL};
	long ms = chrome_like(true, args, NULL, AF_INET);
	cr_assert_geq(ms, 0, "accept4 + signal(): still running after SIGINT");
}

Test(hyperlike, sysv_signal_api)
{
	const char *const args[] = {"hyperlike", "--signal-api", "sysv", NULL};
	long ms = chrome_like(true, args, NULL, AF_INET);
	cr_assert_geq(ms, 0, "sysv_signal(): still running after SIGINT");
}

Test(hyperlike, unix_listener)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/graceshim-test-%d.sock", (int)getpid());
	const char *const args[] = {"hyperlike", "--unix", path, NULL};
	server_start(&srv, true, args, NULL);
	int used = unix_connect(path);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_geq(http_read_response(used, 5000), 0);
	int spare = unix_connect(path);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	close(used);
	close(spare);
	unlink(path);
	cr_assert_geq(ms, 0, "Unix socket: still running after SIGINT");
}

/* Safari/curl: one connection per request, nothing left open: exits with
 * or without the shim, and the shim changes nothing. */
static void curl_like(bool shim)
{
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, shim, args, NULL);
	for (int i = 0; i < 5; i++) {
		int fd = tcp_connect(AF_INET, srv.port);
		cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
		cr_assert_eq(http_read_response(fd, 5000), 2048, "request %d", i);
		close(fd);
	}
	sleep_ms(100);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	cr_assert_geq(ms, 0, "curl-like clients, shim=%d: still running", shim);
}

Test(hyperlike, curl_like_clients_with_shim)
{
	curl_like(true);
}
Test(hyperlike, curl_like_clients_without_shim)
{
	curl_like(false);
}

Test(hyperlike, no_client_exits_promptly)
{
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, true, args, NULL);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	cr_assert_geq(ms, 0);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0);
}

/* A request the server is processing when the signal arrives is answered
 * in full, while the unused spare beside it is released.  After
 * shutdown(SHUT_RD) the server could still answer, so the client alone
 * cannot see a release: the shim's own log must show the spare released
 * and this connection not. */
Test(hyperlike, inflight_request_answered_in_full)
{
	const char *const args[] = {"hyperlike",    "--slow-ms", "600",
				    "--body-bytes", "200000",    NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
	sleep_ms(150); /* the server has read the request and is working */
	kill(srv.pid, SIGINT);
	cr_assert_eq(http_read_response(fd, 10000), 200000, "the in-flight response was cut");
	long ms = server_wait(&srv, PROMPT_MS);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "server did not exit after answering");
	cr_assert_not_null(shim_release_line(err, sock_port(spare)),
			   "the spare was not released:\n%s", err);
	cr_assert_null(shim_release_line(err, sock_port(fd)),
		       "the shim released the connection whose request was in flight:\n%s", err);
	close(fd);
	close(spare);
}

/* Invariant 5: bytes waiting in the kernel, not yet read by the host (it is
 * slow to read), are a request: that connection must not be released, nor
 * once the host has read it and works on it (the shim's log says so; the
 * client would get its answer either way). */
Test(hyperlike, request_waiting_in_kernel_is_not_cut)
{
	const char *const args[] = {"hyperlike", "--read-delay-ms", "800", "--slow-ms", "300",
				    NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200); /* accepted, bytes queued, the host has read nothing */
	kill(srv.pid, SIGINT);
	cr_assert_eq(http_read_response(fd, 10000), 2048,
		     "a connection with a queued request was cut; stderr:\n%s",
		     server_stderr(&srv));
	long ms = server_wait(&srv, PROMPT_MS);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0);
	cr_assert_not_null(shim_release_line(err, sock_port(spare)),
			   "the spare was not released:\n%s", err);
	cr_assert_null(shim_release_line(err, sock_port(fd)),
		       "the shim released the connection with a request waiting:\n%s", err);
	close(fd);
	close(spare);
}

/* GRACESHIM_GRACE: a connection younger than the grace at the signal gets
 * until that age; then it is released and the server exits. */
Test(hyperlike, grace_delays_release_of_young_connection)
{
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {"GRACESHIM_GRACE=1500ms", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(100);
	long ms = server_signal_and_wait(&srv, SIGINT, 6000);
	close(spare);
	cr_assert_geq(ms, 0, "the young connection was never released");
	cr_assert_geq(ms, 1000, "released after %ld ms, before the 1.5 s grace was up", ms);
}

/* Draining: a connection accepted after the signal (this host keeps
 * accepting for a while after it) that never sends a byte is released too;
 * without the shim the host would wait for it. */
static long accepted_after_signal(bool shim)
{
	const char *const args[] = {"hyperlike", "--linger-accept-ms", "500", NULL};
	server_start(&srv, shim, args, NULL);
	kill(srv.pid, SIGINT);
	sleep_ms(100);
	int late = tcp_connect(AF_INET, srv.port);
	long ms = server_wait(&srv, shim ? PROMPT_MS : HANG_MS);
	close(late);
	return ms;
}

Test(hyperlike, connection_accepted_after_signal_released_while_draining)
{
	cr_assert_geq(accepted_after_signal(true), 0, "the late connection was not released");
}

Test(hyperlike, connection_accepted_after_signal_hangs_without_shim)
{
	cr_assert_eq(accepted_after_signal(false), -1);
}

/* fork: the child inherits the records and the accepted socket, has no
 * sweeper thread of its own and never accepts again; SIGINT (relayed by
 * the parent) must still release the unused connection it serves. */
static long forked_child_serves_spare(bool shim)
{
	const char *const args[] = {"hyperlike", "--fork-after-accepts", "2", NULL};
	server_start(&srv, shim, args, NULL);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
	cr_assert_geq(http_read_response(used, 5000), 0);
	close(used);
	sleep_ms(200);
	int spare = tcp_connect(AF_INET, srv.port); /* the 2nd accept forks */
	sleep_ms(300);
	long ms = server_signal_and_wait(&srv, SIGINT, shim ? PROMPT_MS : HANG_MS);
	close(spare);
	return ms;
}

Test(hyperlike, forked_child_releases_inherited_connection)
{
	cr_assert_geq(forked_child_serves_spare(true), 0, "stderr:\n%s", server_stderr(&srv));
}

Test(hyperlike, forked_child_hangs_without_shim)
{
	cr_assert_eq(forked_child_serves_spare(false), -1);
}

/* Bad configuration never stops the host: one line naming the variable and
 * the value, then the default (here grace 0: prompt exit). */
Test(hyperlike, bad_config_warns_once_and_uses_default)
{
	const char *const env[] = {"GRACESHIM_GRACE=banana", NULL};
	long ms = chrome_like(true, NULL, env, AF_INET);
	cr_assert_geq(ms, 0, "with the default grace the server must exit promptly");
	const char *err = server_stderr(&srv);
	const char *hit = strstr(err,
				 "GRACESHIM_GRACE=\"banana\" is not valid: expected a duration");
	cr_assert(hit, "no clear warning in stderr:\n%s", err);
	cr_assert_null(strstr(hit + 1, "GRACESHIM_GRACE"), "warned more than once:\n%s", err);
}
