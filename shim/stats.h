/*
 * SPDX-License-Identifier: MIT
 *
 * GRACESHIM_STATS: counters kept while the process runs and one JSON object
 * written at exit.
 */
#ifndef GRACESHIM_STATS_H
#define GRACESHIM_STATS_H

#include "policy.h"

#include <stdint.h>

/* Sweeper thread, or our signal handler (atomics only). */
void stats_released(enum pol_reason r);
void stats_triggered(int sig, uint64_t now_ns); /* sig -1: listener; the first counts */
/* Where a trigger happens (async-signal-safe): what the statistics report
 * when the process exits before stats_triggered() noted it; the first
 * counts.  Withdrawn: a listener drain that a new listen ended first. */
void stats_trigger_seen(int sig, uint64_t now_ns);
void stats_trigger_withdrawn(void);
/* A never-used connection released because it blocked a worker while
 * clients waited (sweeper thread). */
void stats_unblocked(void);
/* Registers the exit hook when GRACESHIM_STATS is set. */
void stats_init(void);
/* In the child of a fork: its own counters from zero, its own file. */
void stats_after_fork_child(void);
/* The JSON object (pure: for tests and the exit hook). */
struct stats_snapshot {
	int pid;
	uint64_t accepted, open, peak;
	uint64_t released_unused, released_idle, released_first_byte, cut_drain_timeout;
	uint64_t released_blocking;
	uint64_t bytes_received, bytes_sent;
	int drain_trigger_sig;      /* 0: none, -1: the last listener closed */
	int64_t trigger_to_exit_ms; /* -1: no trigger */
	/* The drain's timeline, when there was a trigger: the trigger on
	 * CLOCK_MONOTONIC (to set against another process's clock: a
	 * benchmark's signal), then microseconds from it to the first and
	 * the last release (-1: none released) and to the exit. */
	uint64_t trigger_monotonic_ns;
	int64_t first_release_us, last_release_us, exit_us;
};
int stats_format(const struct stats_snapshot *s, char *buf, size_t len);

#endif
