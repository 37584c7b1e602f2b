/*
 * SPDX-License-Identifier: MIT
 *
 * Each trigger alone, and what the shim itself reports (issue 19): a
 * fixture that keeps its listener open, so only the signal can start the
 * drain (SIGINT and SIGTERM, each signal API); the fd identity check; the
 * write side left to the host by a release (SHUT_RD); the release latency
 * the shim's own log shows, with a bound a 2-second poll cannot meet.
 * Assertions are on the shim's record (GRACESHIM_LOG=debug: "connection
 * <peer> shut down") where the client alone could not tell.
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

/* Trigger (or accept while draining) to release, as the shim logs it: it
 * takes about a millisecond; 500 ms holds on a loaded machine and fails a
 * sweeper that only looks every 2 s. */
#define LATENCY_MS 500

static struct server srv;

TestSuite(triggers, .fini = harness_teardown, .timeout = 60);

/* A page on a kept-alive connection and an unused spare; the server keeps
 * its listener open when it stops, so nothing but the signal can start
 * the drain.  Returns ms until exit (-1: still running). */
static long keep_listener(bool shim, int sig, const char *api, const char *triggers,
			  int *spare_port)
{
	const char *const args[] = {"hyperlike", "--keep-listener", "--signal-api", api, NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", triggers, NULL};
	server_start(&srv, shim, args, env);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(used, 5000), 2048);
	int spare = tcp_connect(AF_INET, srv.port);
	*spare_port = sock_port(spare);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, sig, shim ? PROMPT_MS : HANG_MS);
	close(used);
	close(spare);
	return ms;
}

static void signal_alone(int sig, const char *api, const char *triggers)
{
	int port;
	long ms = keep_listener(true, sig, api, triggers, &port);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "still running after SIG%s (%s, %s); stderr:\n%s",
		      sig == SIGINT ? "INT" : "TERM", api, triggers ? triggers : "default triggers",
		      err);
	cr_assert_not_null(shim_release_line(err, port),
			   "the spare was not released by the shim; stderr:\n%s", err);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

Test(triggers, signal_alone_sigint)
{
	signal_alone(SIGINT, "sigaction", "GRACESHIM_TRIGGERS=signal");
}

Test(triggers, signal_alone_sigterm)
{
	signal_alone(SIGTERM, "sigaction", "GRACESHIM_TRIGGERS=signal");
}

Test(triggers, signal_alone_sigterm_default_triggers)
{
	signal_alone(SIGTERM, "sigaction", NULL);
}

Test(triggers, signal_alone_signal_api)
{
	signal_alone(SIGINT, "signal", "GRACESHIM_TRIGGERS=signal");
}

Test(triggers, signal_alone_sysv_api_sigterm)
{
	signal_alone(SIGTERM, "sysv", "GRACESHIM_TRIGGERS=signal");
}

Test(triggers, keep_listener_hangs_without_shim)
{
	int port;
	cr_assert_eq(keep_listener(false, SIGTERM, "sigaction", NULL, &port), -1);
}

/* Invariant 3: an accepted fd closed behind the shim's back, its number
 * reused by an outbound connection, is left alone at the drain. */
Test(triggers, identity_check_leaves_a_reused_fd_alone)
{
	int lt = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	setsockopt(lt, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	cr_assert(bind(lt, (struct sockaddr *)&a, sizeof a) == 0 && listen(lt, 4) == 0);
	getsockname(lt, (struct sockaddr *)&a, &al);
	int lport = ntohs(a.sin_port);
	char port[16];
	snprintf(port, sizeof port, "%d", lport);

	const char *const args[] = {"stale", port, NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int gone = tcp_connect(AF_INET, srv.port);
	int spare = tcp_connect(AF_INET, srv.port);
	struct pollfd p = {.fd = lt, .events = POLLIN};
	cr_assert(poll(&p, 1, 5000) == 1, "no outbound connection; stderr:\n%s",
		  server_stderr(&srv));
	int outbound = accept(lt, NULL, NULL);
	cr_assert(outbound >= 0);
	sleep_ms(100);
	kill(srv.pid, SIGINT);
	/* The byte goes out once the drain pass is over (its summary line):
	 * a connection that received one is "used", which would hide a
	 * missing identity check. */
	long deadline = now_ms() + 5000;
	while (!strstr(server_stderr(&srv), "drain: released") && now_ms() < deadline)
		sleep_ms(10);
	cr_assert(write(outbound, "x", 1) == 1);
	long ms = server_wait(&srv, 10000);
	char out[512];
	read_all_for(srv.out_fd, out, sizeof out, 2000);
	const char *err = server_stderr(&srv);
	char stale[64];
	int fd = -1;
	const char *r = strstr(out, "reused fd ");
	if (r)
		fd = atoi(r + 10);
	snprintf(stale, sizeof stale, "fd %d: stale record", fd);
	close(gone);
	close(spare);
	close(outbound);
	close(lt);
	cr_assert_geq(ms, 0, "stale did not finish; stdout:\n%s\nstderr:\n%s", out, err);
	cr_assert_geq(fd, 0, "the fixture did not reuse the number:\n%s\n%s", out, err);
	cr_assert(strstr(out, "spare: eof"), "the never-used spare was not released:\n%s\n%s", out,
		  err);
	cr_assert(strstr(out, "outbound: ok"),
		  "the outbound connection on a stale record's number "
		  "was shut down:\n%s\nstderr:\n%s",
		  out, err);
	cr_assert_null(shim_release_line(err, lport),
		       "the shim released the outbound connection:\n%s", err);
	cr_assert(strstr(err, stale), "the shim did not drop the stale record (\"%s\"):\n%s", stale,
		  err);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

/* Invariant 4: a release is shutdown(SHUT_RD): the host's read returns 0,
 * and its write side is still its own until it closes the connection.  The
 * fixture, once it has read the EOF, waits 1 s before its close(): the
 * client must see no end in the first 400 ms after the shim's release line
 * (a SHUT_RDWR would have sent the FIN at once), and the end after the
 * host's close.  (What the host writes there is dropped by the shim:
 * nothing reaches a released connection; test_muted.c.) */
Test(triggers, release_leaves_the_write_side_open)
{
	const char *const args[] = {"hyperlike", "--bye-on-eof", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	int port = sock_port(spare);
	sleep_ms(200);
	kill(srv.pid, SIGINT);
	const char *err = server_stderr(&srv);
	for (long t0 = now_ms(); !shim_release_line(err, port) && now_ms() - t0 < 5000;
	     err = server_stderr(&srv))
		sleep_ms(10);
	cr_assert_not_null(shim_release_line(err, port), "not released by the shim:\n%s", err);
	cr_assert_eq(wait_eof(spare, 400), -1,
		     "the client saw the end at once: the release shut the write side down too");
	cr_assert_geq(wait_eof(spare, 5000), 0, "the host's close never reached the client");
	long ms = server_wait(&srv, PROMPT_MS);
	err = server_stderr(&srv);
	close(spare);
	cr_assert_geq(ms, 0, "still running after SIGINT; stderr:\n%s", err);
	cr_assert(strstr(err, "hyperlike: bye: sent"),
		  "the host's write after the release failed:\n%s", err);
}

/* The release latency the shim reports: from the trigger (its statistics'
 * time stamp, taken in its handler) to its "shut down" line, and for connections accepted while
 * draining, the age it logs at their release (accept to release).  Several
 * late connections 300 ms apart: a sweeper that looked only every 2 s could
 * release at most two of them within LATENCY_MS of their accept. */
Test(triggers, release_latency_from_signal_and_accept)
{
	const char *const args[] = {"hyperlike", "--linger-accept-ms", "2500", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", harness_stats_env(), NULL};
	server_start(&srv, true, args, env);
	int early[2], late[4], eport[2], lport[4];
	for (int i = 0; i < 2; i++) {
		early[i] = tcp_connect(AF_INET, srv.port);
		eport[i] = sock_port(early[i]);
	}
	sleep_ms(300); /* accepted; the host has threads, so the sweeper runs */
	kill(srv.pid, SIGINT);
	for (int i = 0; i < 4; i++) {
		sleep_ms(i ? 300 : 100);
		late[i] = tcp_connect(AF_INET, srv.port);
		lport[i] = sock_port(late[i]);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_geq(wait_eof(early[i], 5000), 0, "early %d not released", i);
	for (int i = 0; i < 4; i++)
		cr_assert_geq(wait_eof(late[i], 5000), 0, "late %d not released", i);
	long ms = server_wait(&srv, 8000);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "still running; stderr:\n%s", err);
	long trig_ns = harness_stats_num("trigger_monotonic_ns");
	cr_assert_geq(trig_ns, 0, "no trigger in the shim's statistics; stderr:\n%s", err);
	long long t_sig = harness_mono_to_real_us(trig_ns);
	/* The late ones first: a 2 s poll fails this part whatever its phase. */
	for (int i = 0; i < 4; i++) {
		const char *l = shim_release_line(err, lport[i]);
		cr_assert_not_null(l, "no release logged for late %d:\n%s", i, err);
		long age = shim_line_age_ms(l);
		cr_assert_geq(age, 0, "no age in the release line:\n%s", l);
		cr_assert_leq(age, LATENCY_MS,
			      "late %d released %ld ms after its accept (bound %d ms):\n%s", i, age,
			      LATENCY_MS, err);
		close(late[i]);
	}
	for (int i = 0; i < 2; i++) {
		const char *l = shim_release_line(err, eport[i]);
		cr_assert_not_null(l, "no release logged for early %d:\n%s", i, err);
		long long us = shim_line_us(l);
		cr_assert_geq(us, 0, "unreadable time stamp:\n%s", l);
		long lat = (long)((us - t_sig) / 1000);
		cr_assert_leq(lat, LATENCY_MS,
			      "released %ld ms after the trigger (bound %d ms):\n%s", lat,
			      LATENCY_MS, err);
		close(early[i]);
	}
}

/* Invariant 3 for the shim's own fds: the host takes the numbers of the
 * wake-up pipe behind the shim's back.  The signal's wake-up must not
 * write into the host's file, nor the sweeper read or close it; the drain
 * still happens (the sweeper wakes on its own and makes a new pipe). */
Test(triggers, identity_check_leaves_the_hosts_file_on_a_wake_pipe_number)
{
	char dir[] = "/tmp/graceshim-wakesteal-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	const char *const args[] = {"wakesteal", dir, NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	char out[1024] = "";
	size_t have = 0;
	long deadline = now_ms() + 5000;
	/* Signal only once the fixture has taken both ends. */
	while (now_ms() < deadline &&
	       !(strstr(out, "stole fd") && strstr(strstr(out, "stole fd") + 1, "stole fd"))) {
		have += read_all_for(srv.out_fd, out + have, sizeof out - have, 50);
		out[have] = 0;
	}
	kill(srv.pid, SIGINT);
	long ms = server_wait(&srv, 8000);
	have += read_all_for(srv.out_fd, out + have, sizeof out - have, 2000);
	const char *err = server_stderr(&srv);
	close(spare);
	char path[128];
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof path, "%s/f%d", dir, i);
		unlink(path);
	}
	rmdir(dir);
	cr_assert_geq(ms, 0, "wakesteal did not finish:\n%s\nstderr:\n%s", out, err);
	cr_assert(strstr(out, "spare: eof"), "no drain once the pipe was taken:\n%s\nstderr:\n%s",
		  out, err);
	cr_assert_null(strstr(out, ": written"), "the shim wrote into the host's file:\n%s", out);
	cr_assert_null(strstr(out, ": closed"), "the shim closed the host's file:\n%s", out);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x\n%s\n%s",
		  srv.status, out, err);
}

/* ---- the trigger model (README, "When it drains") -------------------------
 * Servers whose graceful stop is neither SIGINT nor SIGTERM, each stopped as
 * the real one is, and the shapes that must not look like a stop. */

/* A single-process server that handles `sig` and on it closes the listener
 * it made itself, then waits for its connections (HAProxy's soft-stop on
 * SIGUSR1, thin on SIGQUIT): a used keep-alive connection and a never-used
 * spare are open.  Returns ms until exit, -1 if still running. */
static long own_listener_stop(bool shim, const char *sig_name, int sig, int *spare_port)
{
	const char *const args[] = {"tg_stopper", "--signal", sig_name, NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, shim, args, env);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(used, 5000), 3);
	int spare = tcp_connect(AF_INET, srv.port);
	*spare_port = sock_port(spare);
	sleep_ms(300);
	long ms = server_signal_and_wait(&srv, sig, shim ? PROMPT_MS : HANG_MS);
	close(used);
	close(spare);
	return ms;
}

static void own_listener_stop_drains(const char *sig_name, int sig)
{
	int port;
	long ms = own_listener_stop(true, sig_name, sig, &port);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "still running after SIG%s; stderr:\n%s", sig_name, err);
	cr_assert_not_null(shim_release_line(err, port), "the spare was not released; stderr:\n%s",
			   err);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

Test(triggers, soft_stop_on_sigusr1_closing_its_own_listener_drains)
{
	own_listener_stop_drains("USR1", SIGUSR1);
}

Test(triggers, stop_on_sigquit_closing_its_own_listener_drains)
{
	own_listener_stop_drains("QUIT", SIGQUIT);
}

Test(triggers, stop_on_sigwinch_closing_its_own_listener_drains)
{
	own_listener_stop_drains("WINCH", SIGWINCH);
}

Test(triggers, own_listener_stop_hangs_without_shim)
{
	int port;
	cr_assert_eq(own_listener_stop(false, "USR1", SIGUSR1, &port), -1);
}

/* unicorn's shape: SIGQUIT (no trigger signal) to the master, which closes
 * its own listener and tells its sync worker over a pipe; the worker is
 * blocked in recv() on a never-used connection (SA_RESTART, no signal of
 * its own) and never looks at the pipe.  Only the master's drain reaches it
 * (pidfd_getfd + shutdown, workers.c). */
static long unicorn_shape(bool shim)
{
	const char *const args[] = {"syncworker", "--prefork",       "1",    "--stop",
				    "pipe",       "--master-signal", "QUIT", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, shim, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300); /* accepted: the worker is in recv() */
	long ms = server_signal_and_wait(&srv, SIGQUIT, shim ? PROMPT_MS : HANG_MS);
	close(spare);
	return ms;
}

Test(triggers, master_stopped_by_sigquit_reaches_its_worker_over_a_pipe)
{
	long ms = unicorn_shape(true);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "still running after SIGQUIT; stderr:\n%s", err);
	cr_assert(strstr(err, "held by child processes"), "not released by the master:\n%s", err);
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);
}

Test(triggers, master_stopped_by_sigquit_hangs_without_shim)
{
	cr_assert_eq(unicorn_shape(false), -1);
}

/* One request on a connection opened and answered after `delay_ms` of
 * silence: true when the answer came whole. */
static bool request_after(int fd, long delay_ms)
{
	sleep_ms(delay_ms);
	return send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") &&
	       http_read_response(fd, 3000) == 3;
}

/* A handled signal that stops nothing (a JVM's SIGQUIT thread dump, nginx's
 * SIGUSR1 log reopen): no listener closes, so no drain: a connection open
 * across it and one opened after it are served, and nothing is released. */
static void handled_without_stopping(const char *sig_name, int sig)
{
	const char *const args[] = {"tg_stopper",  "--signal", sig_name,
				    "--on-signal", "keep",     NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int before = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	kill(srv.pid, sig);
	sleep_ms(300);
	int after = tcp_connect(AF_INET, srv.port);
	cr_assert(request_after(after, 300),
		  "the connection opened after SIG%s was not served:\n%s", sig_name,
		  server_stderr(&srv));
	cr_assert(request_after(before, 0), "the connection open across SIG%s was not served:\n%s",
		  sig_name, server_stderr(&srv));
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "tg_stopper"), "the signal was not handled:\n%s", err);
	cr_assert(!strstr(err, " shut down ("), "released:\n%s", err);
	close(before);
	close(after);
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, PROMPT_MS), 0);
}

Test(triggers, sigquit_thread_dump_is_not_a_drain)
{
	handled_without_stopping("QUIT", SIGQUIT);
}

Test(triggers, sigusr1_log_reopen_is_not_a_drain)
{
	handled_without_stopping("USR1", SIGUSR1);
}

Test(triggers, sighup_reload_in_place_is_not_a_drain)
{
	handled_without_stopping("HUP", SIGHUP);
}

/* A program that catches SIGINT (a trigger signal) and goes on serving:
 * the drain it started ends as soon as a connection accepted after the
 * signal carries a request, so connections accepted afterwards, whose
 * clients take their time to send, get their request and answer intact. */
Test(triggers, caught_sigint_and_serving_on_ends_the_drain)
{
	const char *const args[] = {"tg_stopper", "--signal", "INT", "--on-signal", "keep", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	kill(srv.pid, SIGINT);
	sleep_ms(300);
	for (int i = 0; i < 4; i++) {
		int fd = tcp_connect(AF_INET, srv.port);
		/* 50 ms: a sweep 2-5 ms after the accept would have released it */
		cr_assert(request_after(fd, i == 3 ? 600 : 50),
			  "connection %d after SIGINT lost its "
			  "request or answer:\n%s",
			  i, server_stderr(&srv));
		close(fd);
	}
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "the drain ends"), "the drain did not end:\n%s", err);
	cr_assert(!strstr(err, "ended before its first byte"), "released:\n%s", err);
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, PROMPT_MS), 0);
}

/* An accept-once program (socat without fork): it closes the listener it
 * made right after its one accept, with no signal: no drain, however long
 * its client stays silent. */
Test(triggers, accept_once_after_no_signal_is_not_a_drain)
{
	const char *const args[] = {"tg_stopper", "--accept-once", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(request_after(fd, 700), "the one connection was not served:\n%s",
		  server_stderr(&srv));
	close(fd);
	cr_assert_geq(server_wait(&srv, PROMPT_MS), 0);
	cr_assert(!strstr(server_stderr(&srv), " shut down ("), "released:\n%s",
		  server_stderr(&srv));
}

/* SO_REUSEPORT siblings: SIGTERM to one drains that one; the other keeps
 * serving, its connections untouched. */
Test(triggers, reuseport_sibling_stopped_leaves_the_other_serving)
{
	const char *const args1[] = {"tg_stopper", "--reuseport", "0", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args1, env);
	char port[16];
	snprintf(port, sizeof port, "%d", srv.port);
	const char *const args2[] = {"tg_stopper", "--reuseport", port, NULL};
	struct server other;
	server_start(&other, true, args2, env);
	int fds[12];
	for (int i = 0; i < 12; i++)
		fds[i] = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, PROMPT_MS), 0, "%s",
		      server_stderr(&srv));
	int served = 0;
	for (int i = 0; i < 12; i++) {
		served += request_after(fds[i], 0);
		close(fds[i]);
	}
	int fresh = tcp_connect(AF_INET, srv.port);
	bool fresh_ok = request_after(fresh, 300);
	close(fresh);
	const char *err = server_stderr(&other);
	bool released = strstr(err, " shut down (") != NULL;
	long ms = server_signal_and_wait(&other, SIGTERM, PROMPT_MS);
	server_stop(&other);
	cr_assert(fresh_ok, "the sibling did not serve a new connection:\n%s", err);
	cr_assert(!released, "the sibling released connections:\n%s", err);
	cr_assert_gt(served, 0, "no connection landed on the sibling");
	cr_assert_geq(ms, 0);
}

/* hitch's reload: SIGHUP to a master that listens on nothing; it starts a
 * new worker and tells the old one over a pipe.  The old worker closes the
 * SO_REUSEPORT listener it made itself (no signal reaches it): a forked
 * worker's share of the address, so that is its stop.  Its never-used
 * connection is released; a new connection is served by the new worker. */
static long reload_shape(bool shim, bool *fresh_ok)
{
	const char *const args[] = {"tg_reload", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, shim, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	long t0 = now_ms(), ms = -1;
	kill(srv.pid, SIGHUP);
	long bound = shim ? PROMPT_MS : HANG_MS;
	while (now_ms() - t0 < bound) {
		if (strstr(server_stderr(&srv), "old worker")) {
			ms = now_ms() - t0;
			break;
		}
		sleep_ms(20);
	}
	int fresh = tcp_connect(AF_INET, srv.port);
	*fresh_ok = request_after(fresh, 0);
	close(fresh);
	close(spare);
	return ms;
}

Test(triggers, reloaded_worker_told_over_a_pipe_closing_its_own_listener_drains)
{
	bool fresh;
	long ms = reload_shape(true, &fresh);
	cr_assert_geq(ms, 0, "the old worker still runs; stderr:\n%s", server_stderr(&srv));
	cr_assert(fresh, "the new worker did not serve:\n%s", server_stderr(&srv));
	cr_assert_geq(server_signal_and_wait(&srv, SIGTERM, PROMPT_MS), 0);
}

Test(triggers, reloaded_worker_lingers_without_shim)
{
	bool fresh;
	cr_assert_eq(reload_shape(false, &fresh), -1, "%s", server_stderr(&srv));
	cr_assert(fresh);
}

/* A lame-duck period: after SIGINT the server goes on accepting and
 * serving for a while (the drain ends when a late connection carries a
 * request), then closes its listener: that starts the drain again, and a
 * never-used connection opened during the lame-duck period (after the
 * first drain ended, so only the second can release it) does not hold the
 * exit. */
Test(triggers, lame_duck_serving_then_closing_its_listener_drains_again)
{
	const char *const args[] = {"hyperlike", "--linger-accept-ms", "1200", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	kill(srv.pid, SIGINT);
	sleep_ms(200);
	int late = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(late, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(late, 5000), 2048, "the late request was not answered:\n%s",
		     server_stderr(&srv));
	/* the drain has ended: a preconnect now is held by nothing but the
	 * server's own wait */
	for (int i = 0; i < 250 && !strstr(server_stderr(&srv), "the drain ends"); i++)
		sleep_ms(20);
	cr_assert(strstr(server_stderr(&srv), "the drain ends"),
		  "the drain did not end while serving:\n%s", server_stderr(&srv));
	int spare2 = tcp_connect(AF_INET, srv.port);
	/* the server closes idle keep-alive connections itself at its stop */
	long ms = server_wait(&srv, 1200 + PROMPT_MS);
	const char *err = server_stderr(&srv);
	cr_assert_geq(ms, 0, "still running after the lame-duck period; stderr:\n%s", err);
	close(late);
	close(spare);
	close(spare2);
}
