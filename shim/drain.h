/*
 * SPDX-License-Identifier: MIT
 *
 * The drain state (drain.c): whether the process drains, since when and
 * after which signal, and whether the sweeper thread runs.  Written by the
 * sweeper thread (sweeper.c), the triggers and our signal handler; read,
 * without a call, by the release (release.c) and by the wrappers, which
 * pay a load on every connection.  It depends on nothing.
 */
#ifndef GRACESHIM_DRAIN_H
#define GRACESHIM_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#define DRAIN_HIDDEN __attribute__((visibility("hidden")))

/* What started the drain (README, "When it drains"):
 *   DRAIN_SIGNAL    a signal of GRACESHIM_SIGNALS, handled by the process;
 *   DRAIN_LISTENER  a worker closed the last listener it inherited and
 *                   accepted on;
 *   DRAIN_STOP      the process stopped listening (closed its last listener)
 *                   within TRIGGER_WINDOW_NS of a signal it handles, having
 *                   served on it itself or through workers it forked. */
enum { DRAIN_NONE, DRAIN_SIGNAL, DRAIN_LISTENER, DRAIN_STOP };

/* How long a handled signal counts as the start of a stop that closing the
 * last listener confirms. */
#define TRIGGER_WINDOW_NS (60 * 1000000000ull)
/* A connection accepted after the trigger is released only once it has been
 * this old without a byte: a process still serving gets its request first,
 * and then its drain ends (see sweeper_serving_seen). */
#define DRAIN_LATE_GRACE_NS (200 * 1000000ull)

extern int sweeper_drain DRAIN_HIDDEN;       /* DRAIN_*: the handler or the listener trigger */
extern int trigger_sig DRAIN_HIDDEN;         /* the signal that started the drain */
extern uint64_t drain_start_ns DRAIN_HIDDEN; /* the sweeper (or the handler's release) */
extern int sweeper_started DRAIN_HIDDEN;     /* 0 no, 2 started (or failed for good) */
/* The last signal the process handled (its handler ran, or it took it with
 * sigwait or a signalfd) of those that may ask it to stop, and when
 * (CLOCK_MONOTONIC): written by our handler and the sigwait/signalfd
 * wrappers, reset in a forked child. */
extern int drain_noticed_sig DRAIN_HIDDEN;
extern uint64_t drain_noticed_ns DRAIN_HIDDEN;

static inline bool sweeper_draining(void)
{
	return __atomic_load_n(&sweeper_drain, __ATOMIC_ACQUIRE);
}

#endif
