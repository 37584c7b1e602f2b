/*
 * SPDX-License-Identifier: MIT
 *
 * The sweeper thread (sweeper.c): its start, its wake-up pipe and what
 * wakes it; inline, the checks accept and close make on every connection.
 */
#ifndef GRACESHIM_SWEEPER_H
#define GRACESHIM_SWEEPER_H

#include "drain.h"
#include "shim.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/single_threaded.h>

/* Written by sweeper.c only; read here so that accept and close, which call
 * in on every connection, pay a few loads instead of calls (the drain state
 * and drain_sweeper_started: drain.h). */
extern int sweeper_wake_fd HIDDEN;  /* the wake-up pipe's write end, or -1 */
extern int sweeper_wake_rd HIDDEN;  /* its read end, or -1 */
extern int sweeper_deferred HIDDEN; /* waits for a trigger (single-threaded host) */

/* The triggers (README, "When it drains"; drain.h): a trigger signal; a
 * handled signal that may ask for a stop (noted); the process stopped
 * listening (kind: DRAIN_LISTENER or DRAIN_STOP).  Async-signal-safe. */
void sweeper_signal(int sig);
void sweeper_noticed(int sig);
void sweeper_stopped_listening(int kind);
/* Whether a signal noted by sweeper_noticed() is recent enough for closing
 * the last listener to confirm a stop. */
bool sweeper_stop_asked(void);
/* A drain just started on this thread, outside a signal handler: start the
 * sweeper now if it waits (a single-threaded master's next call may be a
 * waitpid() we never see). */
void sweeper_drain_begun(void);
/* A connection accepted after the trigger carried a request: the sweeper
 * ends the drain if the process still listens.  Async-signal-safe. */
void sweeper_serving_seen(void);
void sweeper_ensure_started(void);
void sweeper_listening(void);
void sweeper_after_fork_child(void);
void sweeper_hook(void);
/* A read that may block on a never-used connection begins: start the
 * sweeper and have it watch (see unblock.c, unblock_pass()). */
void sweeper_watch_blocked(void);
void sweeper_accepted_slow(void);
void sweeper_fds_closing_slow(unsigned lo, unsigned hi);

/* A connection was tracked: whether the sweeper must start (it is needed
 * and not yet running) or look at the new connection (while draining, or
 * to reckon a first-byte deadline): then sweeper_accepted_slow(). */
static inline bool sweeper_accepted_wanted(void)
{
	/* A deferred sweeper waits only while the host stays single-threaded:
	 * once it has threads, the release cannot be made in our handler. */
	return __builtin_expect(!((__atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) == 2 ||
				   (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE) &&
				    __libc_single_threaded)) &&
				  !drain_active() && !shim_cfg.first_byte_timeout_ns),
				0);
}

static inline void sweeper_accepted(void)
{
	if (sweeper_accepted_wanted())
		sweeper_accepted_slow();
}

/* The host is about to close or replace fds lo..hi: if the sweeper's eventfd
 * is among them, the sweeper gives it up first (see sweeper.c). */
static inline void sweeper_fds_closing(unsigned lo, unsigned hi)
{
	int wr = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE);
	int rd = __atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE);
	if (__builtin_expect((wr >= 0 && (unsigned)wr >= lo && (unsigned)wr <= hi) ||
				     (rd >= 0 && (unsigned)rd >= lo && (unsigned)rd <= hi),
			     0))
		sweeper_fds_closing_slow(lo, hi);
}

/* The same for one fd, on every close() and dup2() of any fd: two compares
 * (an fd of -1 meets a pipe end of -1, "none", only for the slow path to
 * find nothing). */
static inline void sweeper_fd_closing(int fd)
{
	if (__builtin_expect(fd == __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE) ||
				     fd == __atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE),
			     0))
		sweeper_fds_closing_slow((unsigned)fd, (unsigned)fd);
}

#endif
