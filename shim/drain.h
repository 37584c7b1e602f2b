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

enum { DRAIN_NONE, DRAIN_SIGNAL, DRAIN_LISTENER };

extern int sweeper_drain DRAIN_HIDDEN;       /* DRAIN_*: the handler or the listener trigger */
extern int trigger_sig DRAIN_HIDDEN;         /* the signal that started the drain */
extern uint64_t drain_start_ns DRAIN_HIDDEN; /* the sweeper (or the handler's release) */
extern int sweeper_started DRAIN_HIDDEN;     /* 0 no, 2 started (or failed for good) */

static inline bool sweeper_draining(void)
{
	return __atomic_load_n(&sweeper_drain, __ATOMIC_ACQUIRE);
}

#endif
