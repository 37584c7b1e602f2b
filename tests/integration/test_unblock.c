/*
 * SPDX-License-Identifier: MIT
 *
 * A never-used connection never blocks a sync worker while real requests
 * wait (issue 18).  The fixture syncworker serves one connection at a time
 * with a blocking recv(), as gunicorn's sync worker does: a silent
 * connection (a browser's preconnect) holds it, and the next client waits in
 * the listener's queue.  With the shim's default settings that next request
 * is answered once the silent connection is GRACESHIM_UNBLOCK_AFTER (1 s)
 * old; without the shim it is still waiting.  The controls: nothing is
 * released when nobody waits, nor a slow first byte, nor with the setting off.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server srv;

TestSuite(unblock, .fini = harness_teardown, .timeout = 60);

#define REQ "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

/* A silent connection, accepted by the worker; then a real client.
 * Returns ms until the real client's answer, or -1 after wait_ms. */
static long silent_then_request(bool shim, const char *const *env, long wait_ms, int *silent)
{
	const char *const args[] = {"syncworker", NULL};
	server_start(&srv, shim, args, env);
	*silent = tcp_connect(AF_INET, srv.port);
	sleep_ms(200); /* the worker accepted it and blocks in recv() */
	int real = tcp_connect(AF_INET, srv.port);
	long t0 = now_ms();
	cr_assert(send_str(real, REQ));
	long got = http_read_response(real, wait_ms);
	long ms = got >= 0 ? now_ms() - t0 : -1;
	close(real);
	return ms;
}

Test(unblock, waiting_request_answered_by_default)
{
	int silent;
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	long ms = silent_then_request(true, env, 8000, &silent);
	cr_assert_geq(ms, 0, "the request was not answered in 8 s; stderr:\n%s",
		      server_stderr(&srv));
	/* Not before the silent connection is 1 s old, and soon after:
	 * the shim's own record says which connection went and why. */
	cr_assert_geq(ms, 700, "answered after %ld ms: released before 1 s", ms);
	cr_assert_leq(ms, 4000, "answered only after %ld ms", ms);
	cr_assert(strstr(server_stderr(&srv), "clients waited to be accepted"),
		  "no release logged by the shim:\n%s", server_stderr(&srv));
	cr_assert_geq(wait_eof(silent, 3000), 0, "the silent connection was not released");
	close(silent);
}

Test(unblock, waiting_request_stuck_without_shim)
{
	int silent;
	long ms = silent_then_request(false, NULL, 3000, &silent);
	cr_assert_eq(ms, -1, "answered after %ld ms without the shim", ms);
	close(silent);
}

Test(unblock, setting_off_keeps_the_old_behaviour)
{
	int silent;
	const char *const env[] = {"GRACESHIM_UNBLOCK_AFTER=off", NULL};
	long ms = silent_then_request(true, env, 3000, &silent);
	cr_assert_eq(ms, -1, "answered after %ld ms with GRACESHIM_UNBLOCK_AFTER=off", ms);
	close(silent);
}

/* Nobody waits: the silent connection is kept, exactly as without the
 * shim (the worker still reads it, and a late request on it is served). */
Test(unblock, silent_connection_alone_is_never_released)
{
	const char *const args[] = {"syncworker", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, true, args, env);
	int silent = tcp_connect(AF_INET, srv.port);
	sleep_ms(2500);
	cr_assert(send_str(silent, REQ), "the silent connection was cut");
	cr_assert_geq(http_read_response(silent, 5000), 0,
		      "its late request was not answered; "
		      "stderr:\n%s",
		      server_stderr(&srv));
	cr_assert_null(strstr(server_stderr(&srv), "released"), "%s", server_stderr(&srv));
	close(silent);
}

/* A slow first byte (300 ms) on a worker with a client waiting behind it:
 * younger than 1 s, so never cut; both are answered. */
Test(unblock, slow_first_byte_is_not_cut)
{
	const char *const args[] = {"syncworker", NULL};
	const char *const env[] = {"GRACESHIM_LOG=info", NULL};
	server_start(&srv, true, args, env);
	int slow = tcp_connect(AF_INET, srv.port);
	sleep_ms(100);
	int next = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(next, REQ));
	sleep_ms(300);
	cr_assert(send_str(slow, REQ), "the slow connection was cut");
	cr_assert_geq(http_read_response(slow, 5000), 0, "the slow request was not answered");
	cr_assert_geq(http_read_response(next, 5000), 0, "the next request was not answered");
	cr_assert_null(strstr(server_stderr(&srv), "released"), "%s", server_stderr(&srv));
	close(slow);
	close(next);
}

/* Voluntary context switches of pid's thread named name, or -1 if it has
 * none: how often it went to sleep, so how often something woke it. */
static long thread_switches(pid_t pid, const char *name)
{
	char path[320], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long sw = -1;
	struct dirent *e;
	while (sw < 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		bool match = fgets(buf, sizeof buf, f) && !strncmp(buf, name, strlen(name)) &&
			     buf[strlen(name)] == '\n';
		fclose(f);
		if (!match)
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/status", (int)pid, e->d_name);
		if ((f = fopen(path, "r"))) {
			while (fgets(buf, sizeof buf, f))
				if (sscanf(buf, "voluntary_ctxt_switches: %ld", &sw) == 1)
					break;
			fclose(f);
		}
	}
	closedir(d);
	return sw;
}

/* Serves N connections one after the other, each with a request; returns
 * how often the server's graceshim thread was woken meanwhile. */
static long switches_serving(int n)
{
	long before = -1;
	for (int i = 0; i < 100 && before < 0; i++) {
		before = thread_switches(srv.pid, "graceshim");
		if (before < 0)
			sleep_ms(20);
	}
	cr_assert_geq(before, 0, "no graceshim thread in the server after 2 s");
	for (int i = 0; i < n; i++) {
		int fd = tcp_connect(AF_INET, srv.port);
		cr_assert(send_str(fd, REQ));
		cr_assert_geq(http_read_response(fd, 5000), 0, "request %d not answered", i);
		close(fd);
		sleep_ms(20); /* the sweeper's pass over a wake-up ends meanwhile */
	}
	return thread_switches(srv.pid, "graceshim") - before;
}

enum { N_SERVED = 20 };

/* An event loop with a thread beside it (the shape of Node and of the JVM's
 * servers: the sweeper runs) accepts with SOCK_NONBLOCK: its reads cannot
 * block, so none is watched, and serving a connection does not wake the
 * sweeper.  With GRACESHIM_UNBLOCK_AFTER below the sweeper's longest sleep
 * (1 s) a watched read wakes it at once (a write to its pipe in the
 * server's thread, a pass over the table in the sweeper's).  Its own timer
 * may still wake it once or twice meanwhile. */
static void nonblocking_served(const char *const *args)
{
	const char *const env[] = {"GRACESHIM_UNBLOCK_AFTER=500ms", NULL};
	server_start(&srv, true, args, env);
	long woken = switches_serving(N_SERVED);
	cr_assert_lt(woken, N_SERVED / 4, "the sweeper was woken %ld times for %d connections",
		     woken, N_SERVED);
}

Test(unblock, nonblocking_connections_do_not_wake_the_sweeper)
{
	const char *const args[] = {"evloop", "--stop", "sigwait", NULL};
	nonblocking_served(args);
}

/* The same socket made non-blocking after a plain accept(). */
Test(unblock, connections_made_nonblocking_do_not_wake_the_sweeper)
{
	const char *const args[] = {"evloop", "--stop", "sigwait", "--accept-fcntl", NULL};
	nonblocking_served(args);
}

/* A sync worker's reads are watched (they block), but a watch wakes the
 * sweeper only when GRACESHIM_UNBLOCK_AFTER is shorter than its longest
 * sleep (1 s), after which it looks anyway: not once per connection.  A
 * silent connection first makes it start (the worker blocks reading it). */
Test(unblock, blocking_reads_do_not_wake_the_sweeper_each)
{
	const char *const args[] = {"syncworker", NULL};
	server_start(&srv, true, args, NULL);
	int silent = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	close(silent);
	long woken = switches_serving(N_SERVED);
	cr_assert_lt(woken, N_SERVED / 4, "the sweeper was woken %ld times for %d connections",
		     woken, N_SERVED);
}
