/*
 * SPDX-License-Identifier: MIT
 *
 * The drain state (drain.c): whether the process drains, since when, after
 * which signal, whether the sweeper thread runs; and the drain's end
 * (drain_end).  Read without a call by the release and the wrappers.
 */
#ifndef GRACESHIM_DRAIN_H
#define GRACESHIM_DRAIN_H

#include "hidden.h"

#include <stdbool.h>
#include <stdint.h>

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

extern int drain_kind HIDDEN;            /* DRAIN_*: the handler or the listener trigger */
extern int drain_trigger_sig HIDDEN;     /* the signal that started the drain */
extern uint64_t drain_start_ns HIDDEN;   /* the sweeper (or the handler's release) */
extern int drain_sweeper_started HIDDEN; /* 0 no, 2 started (or failed for good) */
/* The last signal the process handled (its handler ran, or it took it with
 * sigwait or a signalfd) of those that may ask it to stop, and when
 * (CLOCK_MONOTONIC): written by our handler and the sigwait/signalfd
 * wrappers, reset in a forked child. */
extern int drain_noticed_sig HIDDEN;
extern uint64_t drain_noticed_ns HIDDEN;
extern int drain_announced HIDDEN; /* the sweeper thread: the drain it last announced */

static inline bool drain_active(void)
{
	return __atomic_load_n(&drain_kind, __ATOMIC_ACQUIRE);
}

/* Whether c was accepted after the drain began (its accept time is taken
 * while draining, see track_accepted). */
static inline bool drain_accepted_late(uint32_t accepted_ms)
{
	uint64_t start = __atomic_load_n(&drain_start_ns, __ATOMIC_RELAXED);
	return accepted_ms && start && drain_active() &&
	       (int32_t)(accepted_ms - (uint32_t)(start / 1000000 ? start / 1000000 : 1)) >= 0;
}

/* The process shows it still serves (why: for the log): the drain ends, and
 * nothing stays muted (drain.c).  Sweeper thread only. */
void drain_end(const char *why) HIDDEN;

#endif
