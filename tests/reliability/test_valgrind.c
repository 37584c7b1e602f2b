/*
 * SPDX-License-Identifier: MIT
 *
 * valgrind memcheck over fixture servers with the shim preloaded (make
 * check-valgrind sets GRACESHIM_VALGRIND=1; otherwise skipped, valgrind is
 * slow).  The fixture rel_valgrind execs valgrind on another fixture, so the
 * harness starts it like any server: LD_PRELOAD reaches the client.
 * Errors (invalid reads and writes, uninitialised values, definite leaks)
 * make valgrind exit 99.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

static void need_valgrind(void)
{
	const char *v = getenv("GRACESHIM_VALGRIND");
	if (!v || strcmp(v, "1"))
		cr_skip_test("set GRACESHIM_VALGRIND=1 (make check-valgrind)");
}

TestSuite(valgrind, .fini = harness_teardown, .timeout = 180);

static void expect_clean(long ms)
{
	cr_assert_geq(ms, 0, "still running under valgrind; stderr:\n%s", server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status), "killed by a signal: %#x; stderr:\n%s", srv.status,
		  server_stderr(&srv));
	cr_assert_neq(WEXITSTATUS(srv.status), 99, "valgrind found errors:\n%s",
		      server_stderr(&srv));
	cr_assert_eq(WEXITSTATUS(srv.status), 0, "exit %d; stderr:\n%s", WEXITSTATUS(srv.status),
		     server_stderr(&srv));
}

/* The scenario of the seed case: a page loaded over one connection, a
 * preconnected one unused, SIGINT, exit. */
Test(valgrind, hyperlike_chrome_like_scenario_is_clean)
{
	need_valgrind();
	const char *const args[] = {"rel_valgrind", "hyperlike", NULL};
	const char *const env[] = {"GRACESHIM_LOG=trace", NULL};
	server_start(&srv, true, args, env);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_geq(http_read_response(used, 20000), 0, "the page must load");
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(1000);
	long ms = server_signal_and_wait(&srv, SIGINT, 30000);
	close(used);
	close(spare);
	expect_clean(ms);
	cr_assert(strstr(server_stderr(&srv), "shut down"), "the shim released nothing:\n%s",
		  server_stderr(&srv));
}

/* Every wrapper, success and error paths. */
Test(valgrind, every_wrapper_is_clean)
{
	need_valgrind();
	const char *const args[] = {"rel_valgrind", "rel_errno", NULL};
	/* No idle release of the fixture's connections after its SIGINT (see
	 * test_errno.c): under valgrind a pause between two of its calls
	 * outlasts the default quiet second, and a released connection turned
	 * a read that waits for SIGALRM into an EOF, leaving its signalling
	 * child waiting (the test hung for its 120 s). */
	const char *const env[] = {"GRACESHIM_IDLE_QUIET=3600s", NULL};
	server_start(&srv, true, args, env);
	int go = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(go, "go\n"));
	long ms = server_wait(&srv, 120000);
	close(go);
	expect_clean(ms);
}
