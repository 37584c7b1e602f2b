/*
 * SPDX-License-Identifier: MIT
 *
 * A signal handler re-entering the shim on a thread that is inside it
 * (tests/fixtures/rel_reenter.c).  close(), dup2() and fork() are
 * async-signal-safe, so a handler may call them; when it interrupts its
 * thread inside the shim's table lock (the accept or close wrapper, a few
 * dozen instructions) its close() of a tracked connection, its dup2() onto
 * one, or its fork() must not wait for that lock: the thread holding it is
 * the one running the handler, and the server would hang for good.
 *
 * The fixture makes that window hit often: a thread accepts and closes
 * without ever blocking while a client connects as fast as it can, and
 * thousands of SIGUSR1 are sent to that thread, one at a time.  Each test
 * asserts that the storm ends within STORM_MS with its counts, that the
 * server still serves afterwards, and that on SIGINT the shim still
 * releases the idle connections so the server exits promptly.
 *
 * The storms start once the shim's table has grown to its steady size, so
 * that they test the table lock alone; the cold fork storm below is about
 * the allocations made while it grows.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* A storm runs 3 s (close) or 8 s (fork), longer until it handled its
 * min_signals, 60 s at most (the fixture's --at-least). */
#define STORM_MS 75000

/* Per mode: the storm's length, and the fewest signals that make it worth
 * something (the storm goes on past its length until it has them).  With the library from before the fix (2b4a4b2) a warm close
 * storm hung in 10 of 10 runs (accept churn and dup churn each), a warm
 * fork storm of 1000 signals in 8 of 8 (of 400: 4 of 5); a cold one in 5
 * of 5.  A close storm handles 5000 to 20000 signals in its 3 s on a loaded
 * 2-core machine; a fork costs far more (100 to 400 a second with the shim,
 * fewer under the sanitizers), so that storm counts signals up to 8 s. */
struct plan {
	const char *mode, *churn, *signals, *seconds;
	int min_signals;
	bool cold;
};
static const struct plan close_accept = {"close", "accept", "20000", "3", 1000, false};
static const struct plan close_dup = {"close", "dup", "20000", "3", 1000, false};
static const struct plan fork_accept = {"fork", "accept", "1000", "8", 150, false};
/* From the first accept on; short, as the allocations are in the first
 * thousand accepts, and repeated in fresh processes (see below).  Each run
 * stops after 150 signals or 5 s (once it handled 5); the floor is on all
 * runs together: with two CPU hogs and more a fork took up to half a
 * second (9 signals in 5 s where 50 were required of each run). */
static const struct plan fork_cold = {"fork", "accept", "150", "5", 5, true};
#define COLD_RUNS 8
#define COLD_MIN_SIGNALS 40

static struct server srv;

TestSuite(reenter, .fini = harness_teardown, .timeout = 180);

struct counts {
	int signals, accepts, pooled, closes, dup2s, dups, forks, forkbad;
};

/* Starts the fixture and waits for the end of its storm; false when it
 * did not get there within STORM_MS (a deadlock). */
static bool storm(bool shim, const struct plan *p, struct counts *c)
{
	char at_least[16];
	snprintf(at_least, sizeof at_least, "%d", p->min_signals);
	const char *const args[] = {"rel_reenter", "--mode",    p->mode,
				    "--churn",     p->churn,    "--seconds",
				    p->seconds,    "--signals", p->signals,
				    "--at-least",  at_least,    p->cold ? "--cold" : NULL,
				    NULL};
	char line[256];
	const char *san = getenv("GRACESHIM_SAN");

	/* TSan kills every child that starts a thread after a multi-threaded
	 * fork, and the shim starts its sweeper in a child that inherited
	 * connections: each of the thousand children would only die and leave
	 * a log file. */
	if (!strcmp(p->mode, "fork") && san && !strcmp(san, "thread"))
		cr_skip_test("fork storms not under TSan (die_after_fork)");
	/* ASan's fork interceptor takes its allocator's locks: a fork in a
	 * handler that interrupted an allocation hangs without the shim too
	 * (control_without_shim_fork_cold, seen in check-san). */
	if (!strcmp(p->mode, "fork") && san && !strcmp(san, "address"))
		cr_skip_test("fork-in-handler storms not under ASan (its fork is not "
			     "async-signal-safe)");
	memset(c, 0, sizeof *c);
	server_start(&srv, shim, args, NULL);
	long start = now_ms();
	if (!rel_read_line(srv.out_fd, line, sizeof line, STORM_MS))
		return false;
	cr_assert_eq(sscanf(line,
			    "signals %d accepts %d pooled %d closes %d dup2s %d dups %d forks %d "
			    "forkbad %d",
			    &c->signals, &c->accepts, &c->pooled, &c->closes, &c->dup2s, &c->dups,
			    &c->forks, &c->forkbad),
		     8, "unexpected summary line \"%s\"; stderr:\n%s", line, server_stderr(&srv));
	cr_assert(rel_read_line(srv.out_fd, line, sizeof line, STORM_MS - (now_ms() - start)) &&
			  !strcmp(line, "serving"),
		  "no \"serving\" line after the storm (got \"%s\"); stderr:\n%s", line,
		  server_stderr(&srv));
	cr_log_info("reenter %s/%s %s: signals %d accepts %d pooled %d closes %d dup2s %d dups %d "
		    "forks %d forkbad %d",
		    p->mode, p->churn, shim ? "shim" : "no shim", c->signals, c->accepts, c->pooled,
		    c->closes, c->dup2s, c->dups, c->forks, c->forkbad);
	cr_assert_geq(c->signals, p->min_signals, "only %d signals handled in %s s; stderr:\n%s",
		      c->signals, p->seconds, server_stderr(&srv));
	/* Warm, 4 * 256 accepts came before the storm: the client must have
	 * kept up during it.  Cold, a fork storm may be over within 100 ms, on
	 * a loaded machine before the client thread ever ran: the caller counts
	 * the runs that accepted (handler_forks_while_its_thread_makes_its_first_accepts). */
	if (!p->cold)
		cr_assert_gt(c->accepts, c->signals / 10,
			     "%d accepts for %d signals: the client stalled", c->accepts,
			     c->signals);
	return true;
}

/* After the storm: one connection is served, two never send a byte; SIGINT.
 * Returns ms until exit, or -1 after timeout_ms. */
static long serve_then_sigint(long timeout_ms)
{
	int used = tcp_connect(AF_INET, srv.port);
	int idle[2] = {tcp_connect(AF_INET, srv.port), tcp_connect(AF_INET, srv.port)};
	cr_assert(rel_ping(used, 5000), "no pong after the storm; stderr:\n%s",
		  server_stderr(&srv));
	close(used);
	sleep_ms(100); /* the idle ones accepted: the sweep has them to release */
	long ms = server_signal_and_wait(&srv, SIGINT, timeout_ms);
	close(idle[0]);
	close(idle[1]);
	return ms;
}

static void assert_storm_survived(bool ended)
{
	cr_assert(ended,
		  "the storm did not end within %d ms: a handler waits for the table lock its own "
		  "thread holds (deadlock); stderr:\n%s",
		  STORM_MS, server_stderr(&srv));
	long ms = serve_then_sigint(10000);
	cr_assert_geq(ms, 0,
		      "no exit 10 s after SIGINT (the idle connections were not released); "
		      "stderr:\n%s",
		      server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x; stderr:\n%s",
		  srv.status, server_stderr(&srv));
}

static void assert_children_fine(const struct counts *c)
{
	cr_assert_eq(c->forks, c->signals, "%d forks in %d handlers; stderr:\n%s", c->forks,
		     c->signals, server_stderr(&srv));
	cr_assert_eq(c->forkbad, 0, "%d of %d children did not exit 0; stderr:\n%s", c->forkbad,
		     c->forks, server_stderr(&srv));
}

/* A close storm under the shim that the server survived, with the handlers
 * closing at least one connection in every other signal of the minimum. */
static void close_storm(const struct plan *p, struct counts *c)
{
	bool ended = storm(true, p, c);
	assert_storm_survived(ended);
	cr_assert_gt(c->closes, p->min_signals / 2, "the handlers closed only %d connections",
		     c->closes);
}

Test(reenter, handler_closes_and_dup2s_tracked_fds_while_its_thread_accepts)
{
	struct counts c;
	close_storm(&close_accept, &c);
	cr_assert_gt(c.dup2s, 0, "no dup2() in a handler");
}

/* The thread also dup()s and closes pooled connections whenever nobody is
 * connecting: it is inside the lock far more often. */
Test(reenter, handler_closes_and_dup2s_tracked_fds_while_its_thread_dups)
{
	struct counts c;
	close_storm(&close_dup, &c);
	cr_assert_gt(c.dups, 0, "the thread never dup()ed");
}

Test(reenter, handler_forks_while_its_thread_accepts)
{
	struct counts c;
	bool ended = storm(true, &fork_accept, &c);
	assert_storm_survived(ended);
	assert_children_fine(&c);
}

/* The same fork storm from the process's first accept on, while the
 * shim's table is still growing: its accept then allocates under the table
 * lock (the table, slabs of records, the hash's buckets; on this thread's
 * first malloc glibc also sets up its per-thread cache and an arena, with
 * system calls under malloc's locks).  glibc's fork() takes malloc's locks
 * (__malloc_fork_lock_parent), so a handler that forks there waits forever
 * for a lock its own thread holds; without the shim accept never allocates
 * and the same program never hangs (control_without_shim_fork_cold).
 * About one process in five hit it with the shim of d989c78, so the test
 * takes COLD_RUNS fresh processes and stops at the first that hangs. */
Test(reenter, handler_forks_while_its_thread_makes_its_first_accepts)
{
	struct counts c;
	int total = 0, accepted = 0, run = 0;
	/* A run in which nothing was accepted during the storm (the client
	 * thread did not run before it was over: seen once in CI-like runs
	 * with both cores busy) proves nothing either way: up to twice as
	 * many runs, until COLD_RUNS of them accepted. */
	for (; run < 2 * COLD_RUNS && accepted < COLD_RUNS; run++) {
		bool ended = storm(true, &fork_cold, &c);
		total += c.signals;
		accepted += c.accepts > 0;
		cr_assert(ended,
			  "run %d of %d: the storm did not end within %d ms: a fork() in a handler "
			  "waits for a lock its own thread holds (the shim's accept was inside "
			  "malloc?); stderr:\n%s",
			  run + 1, 2 * COLD_RUNS, STORM_MS, server_stderr(&srv));
		assert_children_fine(&c);
		cr_assert_geq(server_signal_and_wait(&srv, SIGINT, 10000), 0,
			      "no exit 10 s after SIGINT; stderr:\n%s", server_stderr(&srv));
		server_stop(&srv);
	}
	cr_assert_geq(accepted, COLD_RUNS / 2,
		      "only %d of %d cold storms accepted anything: the client stalled", accepted,
		      run);
	cr_assert_geq(total, COLD_MIN_SIGNALS, "only %d signals handled in %d cold storms", total,
		      run);
}

/* Controls: without the shim the same storms end too (the fixture is not
 * what hangs), and the idle connections keep the server from exiting (the
 * prompt exit above is the shim's doing). */
Test(reenter, control_without_shim_close)
{
	struct counts c;
	cr_assert(storm(false, &close_dup, &c), "without the shim the storm did not end either");
	cr_assert_gt(c.closes, 0);
	cr_assert_eq(serve_then_sigint(HANG_MS), -1,
		     "without the shim the idle connections must keep the server running");
}

Test(reenter, control_without_shim_fork)
{
	struct counts c;
	cr_assert(storm(false, &fork_accept, &c), "without the shim the storm did not end either");
	assert_children_fine(&c);
}

Test(reenter, control_without_shim_fork_cold)
{
	struct counts c;
	for (int run = 0; run < COLD_RUNS; run++) {
		cr_assert(storm(false, &fork_cold, &c),
			  "run %d of %d: without the shim the storm did "
			  "not end either",
			  run + 1, COLD_RUNS);
		assert_children_fine(&c);
		server_stop(&srv);
	}
}
