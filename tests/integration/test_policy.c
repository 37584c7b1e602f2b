/*
 * SPDX-License-Identifier: MIT
 *
 * Policies and timeouts against fixture servers: idle keep-alive and TLS
 * connections (policy idle), a download that idle must not cut, the
 * first-byte timeout without any signal, the drain deadline, and the exit
 * statistics.  Each "released" case has its "not released" twin.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

static struct server srv;

TestSuite(policy, .fini = harness_teardown, .timeout = 60);

/* How soon the shim released, from its own statistics (trigger to last
 * release): the test's clock would add how late a loaded machine runs the
 * test and the server's exit. */
static void assert_released_in_time(void)
{
	long us = harness_stats_num("last_release_us");
	cr_assert_geq(us, 0, "the shim's statistics show no release\n%s", server_stderr(&srv));
	cr_assert_leq(us, RELEASE_BOUND_MS * 1000L, "the shim released %ld ms after the trigger",
		      us / 1000);
}

/* A keep-alive client: one request answered, the connection kept open. */
static long keepalive_idle(const char *const *env)
{
	const char *const args[] = {"hyperlike", "--wait-idle", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(fd, 5000), 2048);
	sleep_ms(100);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	close(fd);
	return ms;
}

Test(policy, unused_policy_leaves_keepalive_idle_connection)
{
	const char *const env[] = {"GRACESHIM_POLICY=unused", NULL};
	cr_assert_eq(keepalive_idle(env), -1, "policy unused must not release a used connection");
}

/* The default settings (issue 13): idle, with its 1 s quiet time.  The
 * request was answered 100 ms before the signal: released about 0.9 s after
 * it, well within the 2.5 s the issue asks. */
Test(policy, default_releases_keepalive_idle_connection)
{
	const char *const env[] = {harness_stats_env(), NULL};
	long ms = keepalive_idle(env);
	cr_assert_geq(ms, 0, "the default settings must release the idle keep-alive connection\n%s",
		      server_stderr(&srv));
	assert_released_in_time();
}

Test(policy, idle_policy_releases_keepalive_idle_connection)
{
	const char *const env[] = {"GRACESHIM_POLICY=idle", "GRACESHIM_IDLE_QUIET=300ms", NULL};
	long ms = keepalive_idle(env);
	cr_assert_geq(ms, 0, "policy idle must release the idle keep-alive connection");
}

/* TLS: the handshake completes, then the client is silent (or, with
 * partial, sends the start of a request that never ends).  alpn: the
 * protocols the ClientHello offers (wire format), or NULL. */
static long tls_client_alpn(const char *const *args, const char *const *env, const char *partial,
			    const unsigned char *alpn, unsigned alpn_len, bool request)
{
	server_start(&srv, true, args, env);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (alpn)
		cr_assert_eq(SSL_CTX_set_alpn_protos(ctx, alpn, alpn_len), 0);
	int fd = tcp_connect(AF_INET, srv.port);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	cr_assert_eq(SSL_connect(ssl), 1, "TLS handshake failed");
	if (request) { /* one request answered: the connection then idles on keep-alive */
		static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
		char buf[256];
		cr_assert_eq(SSL_write(ssl, req, (int)sizeof req - 1), (int)sizeof req - 1);
		cr_assert_gt(SSL_read(ssl, buf, sizeof buf), 0);
	}
	if (partial)
		cr_assert_eq(SSL_write(ssl, partial, (int)strlen(partial)), (int)strlen(partial));
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, partial ? HANG_MS : PROMPT_MS);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return ms;
}

static long tls_client(const char *const *args, const char *const *env, const char *partial)
{
	return tls_client_alpn(args, env, partial, NULL, 0, false);
}

static long tls_idle(const char *const *env)
{
	const char *const args[] = {"tlsserver", NULL};
	return tls_client(args, env, NULL);
}

Test(policy, tls_handshake_then_idle_not_released_by_unused)
{
	const char *const env[] = {"GRACESHIM_POLICY=unused", NULL};
	cr_assert_eq(tls_idle(env), -1, "a TLS connection received a ClientHello: not unused");
}

/* An HTTPS preconnect at the default settings: the handshake is the only
 * traffic, the server's last flight (TLS 1.3 session tickets) is the last
 * word, then silence. */
Test(policy, default_releases_tls_handshake_then_idle)
{
	const char *const env[] = {harness_stats_env(), NULL};
	long ms = tls_idle(env);
	cr_assert_geq(ms, 0, "the default settings must release a TLS preconnect\n%s",
		      server_stderr(&srv));
	assert_released_in_time();
}

Test(policy, tls_handshake_then_idle_released_by_idle)
{
	const char *const env[] = {"GRACESHIM_POLICY=idle", "GRACESHIM_IDLE_QUIET=300ms", NULL};
	cr_assert_geq(tls_idle(env), 0, "policy idle must release the quiet TLS connection");
}

/* TLS 1.2: the server's Finished is the handshake's last word. */
Test(policy, default_releases_tls12_handshake_then_idle)
{
	const char *const args[] = {"tlsserver", "--tls12", NULL};
	const char *const env[] = {harness_stats_env(), NULL};
	long ms = tls_client(args, env, NULL);
	cr_assert_geq(ms, 0, "TLS 1.2 preconnect not released\n%s", server_stderr(&srv));
	assert_released_in_time();
}

/* TLS 1.3 without session tickets: the client's Finished is the last word,
 * so "the server spoke last" never holds; the records the server read (a
 * ClientHello, a ChangeCipherSpec, one application-data record: the
 * Finished) show there is no request. */
Test(policy, default_releases_tls13_without_tickets_handshake_then_idle)
{
	const char *const args[] = {"tlsserver", "--no-tickets", NULL};
	const char *const env[] = {harness_stats_env(), NULL};
	long ms = tls_client(args, env, NULL);
	cr_assert_geq(ms, 0, "ticketless TLS 1.3 preconnect not released\n%s", server_stderr(&srv));
	assert_released_in_time();
}

Test(policy, unused_keeps_tls13_without_tickets)
{
	const char *const args[] = {"tlsserver", "--no-tickets", NULL};
	const char *const env[] = {"GRACESHIM_POLICY=unused", NULL};
	cr_assert_eq(tls_client(args, env, NULL), -1);
}

/* The twin: the client sent the start of a request (a second
 * application-data record) and is silent; the server waits for the rest.
 * The client spoke last and it is a request: never released. */
Test(policy, default_keeps_tls13_without_tickets_request_in_progress)
{
	const char *const args[] = {"tlsserver", "--no-tickets", NULL};
	cr_assert_eq(tls_client(args, NULL, "GET / HTTP/1.1\r\nHost: t\r\n"), -1,
		     "a TLS connection with part of a request was released\n%s",
		     server_stderr(&srv));
}

/* A client that offers HTTP/2 (ALPN, as every browser does) may multiplex:
 * the server may have written one stream's answer after reading another
 * stream's request, still in progress, so "the server spoke last" proves
 * nothing.  Such a connection is released only while it holds no request:
 * a preconnect yes, a keep-alive connection that carried a request no
 * (HTTP/2 servers close those themselves with GOAWAY).  Its twin offers
 * http/1.1 only. */
static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_h1[] = "\x08http/1.1";

Test(policy, default_releases_tls_preconnect_offering_h2)
{
	const char *const args[] = {"tlsserver", NULL};
	long ms = tls_client_alpn(args, NULL, NULL, alpn_h2, sizeof alpn_h2 - 1, false);
	cr_assert_geq(ms, 0, "a preconnect offering h2 holds no request\n%s", server_stderr(&srv));
}

Test(policy, default_keeps_used_tls_connection_offering_h2)
{
	const char *const args[] = {"tlsserver", NULL};
	long ms = tls_client_alpn(args, NULL, NULL, alpn_h2, sizeof alpn_h2 - 1, true);
	cr_assert_eq(ms, -1, "a used connection that may be HTTP/2 was released");
}

Test(policy, default_releases_used_tls_connection_offering_http11_only)
{
	const char *const args[] = {"tlsserver", NULL};
	const char *const env[] = {harness_stats_env(), NULL};
	long ms = tls_client_alpn(args, env, NULL, alpn_h1, sizeof alpn_h1 - 1, true);
	cr_assert_geq(ms, 0, "an idle HTTP/1.1 keep-alive TLS connection was not released\n%s",
		      server_stderr(&srv));
	assert_released_in_time();
}

/* A download in progress, stalled by a slow client: the server has more
 * to send than the peer has taken.  idle must not release it: the shim's
 * log must not show it released (after shutdown(SHUT_RD) the server would
 * still finish the download, so the client alone cannot tell), while an
 * unused spare beside it is. */
Test(policy, idle_policy_does_not_cut_a_stalled_download)
{
	const char *const args[] = {"hyperlike", "--body-bytes", "16000000", NULL};
	const char *const env[] = {"GRACESHIM_POLICY=idle", "GRACESHIM_IDLE_QUIET=200ms",
				   "GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	int small = 65536; /* smaller than the body by far; fast enough to drain */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	int spare = tcp_connect(AF_INET, srv.port), spare_port = sock_port(spare);
	cr_assert(send_str(fd, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
	sleep_ms(300); /* the server fills the buffers and blocks */
	kill(srv.pid, SIGINT);
	sleep_ms(1200); /* well past the quiet time, the download still stalled */
	const char *err = server_stderr(&srv);
	int port = sock_port(fd);
	cr_assert_null(shim_release_line(err, port), "the stalled download was released:\n%s", err);
	long got = http_read_response(fd, 20000);
	cr_assert_eq(got, 16000000, "the stalled download was cut (%ld)\n%s", got,
		     server_stderr(&srv));
	close(fd);
	close(spare);
	cr_assert_geq(server_wait(&srv, PROMPT_MS), 0);
	err = server_stderr(&srv);
	cr_assert_not_null(shim_release_line(err, spare_port), "the spare was not released:\n%s",
			   err);
}

/* SIOCOUTQ under policy idle: the server wrote a whole response and waits
 * for the next request, but the peer (small receive window) has not taken
 * it.  The server spoke last and nothing moves, yet bytes are still on
 * their way: not idle.  Once the peer has read everything, it is. */
Test(policy, idle_policy_keeps_an_unread_response)
{
	const char *const args[] = {"hyperlike", "--wait-idle", "--body-bytes", "300000", NULL};
	const char *const env[] = {"GRACESHIM_POLICY=idle", "GRACESHIM_IDLE_QUIET=200ms",
				   "GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)srv.port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	sleep_ms(300); /* the response sits in the buffers, unread */
	kill(srv.pid, SIGINT);
	sleep_ms(1000); /* five quiet times */
	const char *err = server_stderr(&srv);
	cr_assert_null(shim_release_line(err, sock_port(fd)),
		       "released with a response the peer has not taken:\n%s", err);
	cr_assert_eq(server_wait(&srv, 10), -1, "the server exited while its answer was unread");
	cr_assert_eq(http_read_response(fd, 10000), 300000, "the response was cut");
	/* Taken: now idle, released, and the server exits. */
	long ms = server_wait(&srv, PROMPT_MS);
	err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "not released once the response was read:\n%s", err);
	const char *l = shim_release_line(err, sock_port(fd));
	cr_assert(l && strstr(l, "shut down (idle"), "no idle release logged:\n%s", err);
	close(fd);
}

/* The first-byte timeout applies at any time, with no signal at all. */
Test(policy, first_byte_timeout_without_signal)
{
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {"GRACESHIM_FIRST_BYTE_TIMEOUT=500ms", NULL};
	server_start(&srv, true, args, env);
	long t0 = now_ms();
	int silent = tcp_connect(AF_INET, srv.port);
	int talker = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(talker, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(talker, 5000), 2048);
	long ms = wait_eof(silent, 5000);
	long elapsed = now_ms() - t0;
	cr_assert_geq(ms, 0, "the silent connection was not released");
	cr_assert_geq(elapsed, 450, "released after %ld ms, before the 500 ms timeout", elapsed);
	/* the talker is untouched and still served */
	sleep_ms(700);
	cr_assert(send_str(talker, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(talker, 5000), 2048, "a used connection was cut");
	cr_assert_eq(server_wait(&srv, 10), -1, "the server itself must keep running");
	close(silent);
	close(talker);
}

Test(policy, no_first_byte_timeout_by_default)
{
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, true, args, NULL);
	int silent = tcp_connect(AF_INET, srv.port);
	cr_assert_eq(wait_eof(silent, 1500), -1, "released without a trigger or a timeout");
	close(silent);
}

/* A request that never ends: only the drain deadline may cut it.  bound:
 * how long to wait for the exit after SIGINT. */
static long never_ending_request(const char *const *env, char *err, size_t len, long bound)
{
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n")); /* headers never finish */
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, bound);
	snprintf(err, len, "%s", server_stderr(&srv));
	close(fd);
	return ms;
}

Test(policy, active_request_is_never_cut_without_drain_timeout)
{
	char err[4096];
	cr_assert_eq(never_ending_request(NULL, err, sizeof err, HANG_MS), -1);
}

Test(policy, drain_timeout_cuts_a_never_ending_request)
{
	const char *const env[] = {"GRACESHIM_DRAIN_TIMEOUT=1s", NULL};
	char err[4096];
	/* The deadline, then the exit as prompt as any with the shim (an
	 * instrumented build on a loaded machine took more than 3 s). */
	long ms = never_ending_request(env, err, sizeof err, 1000 + PROMPT_MS);
	cr_assert_neq(ms, -1, "still running %d ms after SIGINT; stderr:\n%s", 1000 + PROMPT_MS,
		      err);
	cr_assert_geq(ms, 800, "cut after %ld ms, before the 1 s deadline", ms);
	cr_assert(strstr(err, "cut (drain_timeout"), "the cut is logged:\n%s", err);
}

Test(policy, stats_json_at_exit)
{
	char path[128], buf[2048] = "";
	snprintf(path, sizeof path, "/tmp/graceshim-stats-%d.json", (int)getpid());
	unlink(path);
	char var[160];
	snprintf(var, sizeof var, "GRACESHIM_STATS=%s", path);
	const char *const args[] = {"hyperlike", NULL};
	const char *const env[] = {var, NULL};
	server_start(&srv, true, args, env);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
	cr_assert_eq(http_read_response(used, 5000), 2048);
	close(used);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
	close(spare);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no stats file");
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	unlink(path);
	cr_assert(strstr(buf, "\"accepted\":2,"), "%s", buf);
	cr_assert(strstr(buf, "\"released\":{\"unused\":1,\"idle\":0,\"first_byte_timeout\":0,"
			      "\"blocking\":0}"),
		  "%s", buf);
	cr_assert(strstr(buf, "\"trigger\":\"SIGINT\""), "%s", buf);
	cr_assert(strstr(buf, "\"open_at_exit\":0"), "%s", buf);
	cr_assert(strstr(buf, "\"bytes_sent\":"), "%s", buf);
	long rx = strtol(strstr(buf, "\"bytes_received\":") + 17, NULL, 10);
	cr_assert_eq(rx, 46, "bytes received: %ld\n%s", rx, buf);
}

/* Invariant 5 against the kernel's clock: a keep-alive client sends request
 * 2 the moment answer 1 lands, in the same clock tick (TCP_INFO's last data
 * times tie: tieserver checks, and a connection without the tie is tried
 * again); the server works on it for 1.5 s, past the 200 ms quiet time,
 * watching the client's socket for EOF as nginx does while proxying; the
 * drain starts 500 ms in.  The request must be answered, and with the shim
 * the connection released once it is (the server then exits).  Returns the
 * body length of answer 2 (4), -1 if none. */
static long tie_in_flight(bool shim, const char *at_fd)
{
	const char *const args[] = {"tieserver",           "--work", "1500",
				    at_fd ? "--fd" : NULL, at_fd,    NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", "GRACESHIM_IDLE_QUIET=200ms", NULL};
	server_start(&srv, shim, args, env);
	int fd = -1;
	long r = -1;
	for (int attempt = 0; attempt < 40 && r != -2; attempt++) {
		if (fd >= 0)
			close(fd);
		fd = tcp_connect(AF_INET, srv.port);
		cr_assert(send_str(fd, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"));
		cr_assert_eq(http_read_response(fd, 5000), 3);
		cr_assert(send_str(fd, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n"));
		r = http_read_response(fd, 500); /* "no-tie\n" at once, or working */
		cr_assert(r == 7 || r == -1, "answer 2 came at once with %ld bytes", r);
		if (r == -1)
			r = -2;
	}
	cr_assert_eq(r, -2, "request 2 never arrived in the tick of answer 1 in 40 tries");
	cr_assert_eq(kill(srv.pid, SIGTERM), 0);
	r = http_read_response(fd, 5000);
	if (shim && r == 4)
		cr_assert_geq(server_wait(&srv, PROMPT_MS), 0,
			      "answered, but not released after that\n%s", server_stderr(&srv));
	close(fd);
	server_wait(&srv, PROMPT_MS);
	return r;
}

Test(policy, request_in_the_tick_of_the_last_answer_is_answered_without_shim)
{
	cr_assert_eq(tie_in_flight(false, NULL), 4, "the fixture did not answer request 2\n%s",
		     server_stderr(&srv));
}

Test(policy, request_in_the_tick_of_the_last_answer_is_not_released)
{
	cr_assert_eq(tie_in_flight(true, NULL), 4,
		     "request 2, read and in work, was lost: its connection released\n%s",
		     server_stderr(&srv));
}

/* The same on an fd number above the fd-indexed filter (CONNTAB_LOW,
 * 65536), where every read takes the slow path and its direction is stored
 * there (track_rx_dir), not in the wrappers' lane. */
Test(policy, request_in_the_tick_of_the_last_answer_is_not_released_on_a_high_fd)
{
	/* The fixture raises its limit; it can if this process can (root
	 * without CAP_SYS_RESOURCE cannot go past the hard limit). */
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max <= 70000) {
		rl.rlim_max = 70001;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			cr_skip_test("fd 70000 is out of reach here: the open-files hard limit is "
				     "below it and cannot be raised (%s)",
				     strerror(errno));
	}
	long r = tie_in_flight(true, "70000");
	cr_assert_eq(r, 4, "request 2, read and in work, was lost: its connection released\n%s",
		     server_stderr(&srv));
}
