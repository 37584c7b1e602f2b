/*
 * SPDX-License-Identifier: MIT
 *
 * Start-up (start.c), and the wrappers' test of whether to act, which
 * starts the shim lazily: a wrapper can run before our constructor (another
 * library's constructor, or a preloaded library ahead of us).
 */
#ifndef GRACESHIM_START_H
#define GRACESHIM_START_H

#include "shim.h"

#include <stdbool.h>
#include <sys/types.h>

void start_init(void) HIDDEN;
/* fork() returned pid: a worker to remember, a child's sweeper to start. */
void start_forked(pid_t pid) HIDDEN;

/* Initialises unless done (or under way on this thread). */
static inline void start_ensure(void)
{
	if (__builtin_expect(__atomic_load_n(&shim_init_state, __ATOMIC_ACQUIRE) != 2, 0))
		start_init();
}

/* True when the shim should act. */
static inline bool start_on(void)
{
	start_ensure();
	/* A vfork child runs in our memory: it must change nothing of ours. */
	return shim_active && proc_own();
}

#endif
