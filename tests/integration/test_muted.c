/*
 * SPDX-License-Identifier: MIT
 *
 * Nothing reaches a released connection (issue 13).  emptyreply answers the
 * EOF of an empty connection with "400 Bad request", as HAProxy does: with
 * the shim, the EOF of a release must not carry it to the client (a request
 * racing the release would show the user a 400), whichever call the server
 * writes it with, and the server must see that write succeed in full.
 * Without a release (no shim, or the client's own half-close) the 400 is
 * sent: the fixture really writes it, so each test can fail.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server srv;

TestSuite(muted, .fini = harness_teardown, .timeout = 60);

static const char bad_line[] = "HTTP/1.1 400 Bad request";
/* emptyreply's whole 400, for its length */
static const char bad_resp[] =
	"HTTP/1.1 400 Bad request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* A preconnect: connected, silent; SIGINT; the server must exit (the shim
 * released the connection), the client must get EOF without a byte, and
 * the server must have written its 400 in full (as it believes). */
static void released_empty_gets_nothing(const char *with, const char *policy)
{
	const char *const args[] = {"emptyreply", "--with", with, NULL};
	const char *const env[] = {policy, NULL};
	char buf[512], want[64];
	server_start(&srv, true, args, policy ? env : NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	cr_assert_geq(ms, 0, "the empty connection was not released\n%s", server_stderr(&srv));
	size_t got = read_all_for(fd, buf, sizeof buf, 2000);
	close(fd);
	cr_assert_eq(got, 0, "the client of a released connection received %zu byte(s): \"%s\"",
		     got, buf);
	snprintf(want, sizeof want, "400: %zu of %zu bytes (%s)", sizeof bad_resp - 1,
		 sizeof bad_resp - 1, with);
	cr_assert(strstr(server_stderr(&srv), want),
		  "the server's write must have been made and reported whole (\"%s\"):\n%s", want,
		  server_stderr(&srv));
	cr_assert_null(strstr(server_stderr(&srv), "400: failed"), "%s", server_stderr(&srv));
}

Test(muted, released_empty_connection_receives_no_400_send)
{
	released_empty_gets_nothing("send", NULL);
}

Test(muted, released_empty_connection_receives_no_400_write)
{
	released_empty_gets_nothing("write", NULL);
}

Test(muted, released_empty_connection_receives_no_400_writev)
{
	released_empty_gets_nothing("writev", NULL);
}

Test(muted, released_empty_connection_receives_no_400_sendmsg)
{
	released_empty_gets_nothing("sendmsg", NULL);
}

Test(muted, released_empty_connection_receives_no_400_sendfile)
{
	released_empty_gets_nothing("sendfile", NULL);
}

Test(muted, released_empty_connection_receives_no_400_splice)
{
	released_empty_gets_nothing("splice", NULL);
}

/* The strict setting releases never-used connections only; those too. */
Test(muted, released_empty_connection_receives_no_400_under_policy_unused)
{
	released_empty_gets_nothing("send", "GRACESHIM_POLICY=unused");
}

/* The control: without the shim the fixture answers an empty connection's
 * EOF (here the client's half-close) with the 400. */
Test(muted, without_the_shim_the_fixture_sends_its_400)
{
	const char *const args[] = {"emptyreply", NULL};
	char buf[512];
	server_start(&srv, false, args, NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	shutdown(fd, SHUT_WR);
	size_t got = read_all_for(fd, buf, sizeof buf, 3000);
	close(fd);
	cr_assert_geq(got, sizeof bad_line - 1, "got %zu byte(s)", got);
	cr_assert(strstr(buf, bad_line), "%s", buf);
}

/* Only what the shim released is muted: the client's own half-close still
 * gets the server's answer with the shim loaded (no trigger). */
Test(muted, client_half_close_is_not_muted)
{
	const char *const args[] = {"emptyreply", NULL};
	char buf[512];
	server_start(&srv, true, args, NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	shutdown(fd, SHUT_WR);
	size_t got = read_all_for(fd, buf, sizeof buf, 3000);
	close(fd);
	cr_assert(got > 0 && strstr(buf, bad_line), "got %zu byte(s): \"%s\"\n%s", got, buf,
		  server_stderr(&srv));
}

/* A keep-alive connection served `requests` times, then SIGINT: the
 * server must exit (the shim released the idle connection).  Returns the
 * client's socket. */
static int served_then_stopped(const char *const *args, const char *const *env, int requests)
{
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	for (int i = 0; i < requests; i++) {
		cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
		cr_assert_eq(http_read_response(fd, 5000), 5);
	}
	sleep_ms(100);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	cr_assert_geq(ms, 0, "the idle keep-alive connection was not released\n%s",
		      server_stderr(&srv));
	return fd;
}

/* A keep-alive connection released by the default settings between
 * requests: its requests were answered; the release's EOF is met with
 * silence; the server exits. */
Test(muted, keepalive_connection_released_after_its_answers)
{
	const char *const args[] = {"emptyreply", NULL};
	const char *const env[] = {harness_stats_env(), NULL};
	char buf[512];
	int fd = served_then_stopped(args, env, 1);
	/* how soon: the shim's own timeline, not the test's clock */
	long us = harness_stats_num("last_release_us");
	cr_assert_geq(us, 0, "the shim's statistics show no release\n%s", server_stderr(&srv));
	cr_assert_leq(us, RELEASE_BOUND_MS * 1000L, "the shim released %ld ms after the trigger",
		      us / 1000);
	size_t got = read_all_for(fd, buf, sizeof buf, 2000);
	close(fd);
	cr_assert_eq(got, 0, "%zu byte(s) after the answers: \"%s\"", got, buf);
}

/* The same with a server that says goodbye at the EOF of a served
 * connection (--bye): once it has read the release's EOF, its goodbye is
 * dropped, and it sees the write succeed in full.  The connection is past
 * its first bytes, where the wrappers' lane forwards a transfer in the
 * direction of the last one: a muted connection must never take it. */
Test(muted, keepalive_connection_released_hears_no_goodbye)
{
	const char *const args[] = {"emptyreply", "--bye", NULL};
	char buf[512];
	int fd = served_then_stopped(args, NULL, 2);
	size_t got = read_all_for(fd, buf, sizeof buf, 2000);
	close(fd);
	cr_assert_eq(got, 0, "%zu byte(s) after the answers: \"%s\"", got, buf);
	cr_assert(strstr(server_stderr(&srv), "bye: 5 of 5 bytes (send)"),
		  "the server's goodbye must have been made and reported whole:\n%s",
		  server_stderr(&srv));
}

/* The control: the client's own half-close is no release, and the
 * goodbye reaches it (the fixture really writes it). */
Test(muted, client_half_close_hears_the_goodbye)
{
	const char *const args[] = {"emptyreply", "--bye", NULL};
	char buf[512];
	server_start(&srv, true, args, NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(fd, 5000), 5);
	shutdown(fd, SHUT_WR);
	size_t got = read_all_for(fd, buf, sizeof buf, 5000);
	close(fd);
	cr_assert(got == 5 && !memcmp(buf, "bye\r\n", 5), "got %zu byte(s): \"%.*s\"", got,
		  (int)got, buf);
}
