/*
 * SPDX-License-Identifier: MIT
 *
 * The release made in our signal handler, for a single-threaded host that
 * has no sweeper thread yet: the pass of release.c, then a master's workers
 * (workers.c), with the log muted; said later by the sweeper or at exit.
 */
#include "sigrelease.h"

#include "conntab.h"
#include "drain.h"
#include "log.h"
#include "proc.h"
#include "release.h"
#include "shim.h"
#include "stats.h"
#include "workers.h"

#include <errno.h>
#include <stdint.h>
#include <sys/single_threaded.h>

/* The release without a sweeper thread.  A single-threaded host gets its
 * sweeper only at its next libc call after the trigger (see
 * sweeper_ensure_started), and a sync worker may make none: gunicorn's sync
 * worker sets SA_RESTART on SIGTERM, so its recv() on the never-used
 * connection is restarted by the kernel after the handler and blocks until
 * the client leaves.  So the release is made here, in our signal handler,
 * when that is safe: the process is single-threaded (no other thread can
 * hold or take the table lock) and the interrupted code is not inside the
 * table (conntab_held_here).  Everything the pass does (release.c) is a system call
 * (fstat, getsockopt, ioctl, shutdown), a lookup in the table or the pure
 * policy; its log lines are muted here (stdio is not async-signal-safe:
 * log_level_cur is swapped, which no other thread can read meanwhile) and
 * counted, and the sweeper, started at the next libc call, says what was
 * done.  Connections that only qualify later are left to that sweeper. */
static unsigned released_in_handler;
static unsigned released_in_workers; /* by workers_release in the handler */
/* 1 + the connections tracked when the handler released (0: it did not):
 * by the time the sweeper announces the drain, the host may have closed
 * every connection the handler released, and "draining, 0 tracked
 * connection(s)" before "released 1" reads as a contradiction. */
static size_t tracked_in_handler;

size_t sigrelease_tracked(size_t now)
{
	size_t t = __atomic_exchange_n(&tracked_in_handler, 0, __ATOMIC_RELAXED);
	return t ? t - 1 : now;
}

/* What the handler released, said once by whoever comes first: the
 * sweeper when it starts, or the exit. */
void sigrelease_say(void)
{
	unsigned n = __atomic_exchange_n(&released_in_handler, 0, __ATOMIC_RELAXED);
	if (n)
		LOG(LOG_INFO,
		    "released %u connection(s) in the signal handler (no sweeper thread "
		    "yet)",
		    n);
}

/* n released in the workers, plus what the handler released there. */
void sigrelease_say_workers(unsigned n)
{
	n += __atomic_exchange_n(&released_in_workers, 0, __ATOMIC_RELAXED);
	if (n)
		LOG(LOG_INFO,
		    "released %u connection(s) held by child processes (unused; "
		    "workers that inherited our listeners or took our connections)",
		    n);
}

void sigrelease_run(void)
{
	static int busy; /* one at a time: a nested trigger signal returns */

	if (!__libc_single_threaded ||
	    __atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) == 2 || conntab_held_here ||
	    !drain_active() || busy)
		return;
	busy = 1;
	int saved = errno;
	int level = log_level_cur;
	log_level_cur = LOG_OFF;
	uint64_t now = shim_now_ns();
	if (!drain_started())
		drain_set_started(now); /* the sweeper sets it again when it starts */
	int d = __atomic_load_n(&drain_kind, __ATOMIC_ACQUIRE);
	stats_triggered(d == DRAIN_SIGNAL ? __atomic_load_n(&drain_trigger_sig, __ATOMIC_RELAXED)
					  : -1,
			now);
	/* The lock is free: single-threaded, and not held by this thread. */
	__atomic_store_n(&tracked_in_handler, conntab_count_locked() + 1, __ATOMIC_RELAXED);
	unsigned rel = release_sweep_fixed(now);
	/* The workers' connections here only for a master that accepted
	 * nothing itself (gunicorn's, stopped over a pipe): walking a child's
	 * fds costs four system calls each, and a process that serves its own
	 * connections handles their EOFs only once this handler returns; its
	 * sweeper thread, started at its next libc call, walks them instead
	 * (walking a child's fds takes longer than releasing as many
	 * connections of our own: bench/sweep).  Single-threaded: a plain
	 * read. */
	int denied;
	unsigned kids = workers_any() && !conntab_stats.accepted
				? workers_release(shim_cfg.grace_ns / 1000000, false, &denied)
				: 0;
	__atomic_fetch_add(&released_in_workers, kids, __ATOMIC_RELAXED);
	log_level_cur = level;
	__atomic_fetch_add(&released_in_handler, rel, __ATOMIC_RELAXED);
	errno = saved;
	busy = 0;
}

/* What the handler released and nobody reported yet (the process exits
 * before its next libc call started the sweeper): said at exit. */
__attribute__((destructor)) static void report_handler_releases(void)
{
	if (!proc_own())
		return;
	sigrelease_say();
	sigrelease_say_workers(0);
}
