/*
 * SPDX-License-Identifier: MIT
 *
 * Process-wide state of the shim, shared by every module: the configuration
 * parsed once, whether the shim is active in this process, facts learnt on
 * the way (the sockets' device, whether this thread runs our signal
 * handler) and the clocks.  Written at start-up (start.c) or by one module,
 * read by many; it depends on nothing but the configuration's types.
 */
#ifndef GRACESHIM_SHIM_H
#define GRACESHIM_SHIM_H

#include "config.h"
#include "hidden.h"
#include "proc.h"

#include <stdbool.h>
#include <stdint.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

extern struct cfg shim_cfg HIDDEN; /* immutable after start_init() */
extern int shim_init_state HIDDEN; /* 0 not yet, 1 in progress, 2 done */
extern int shim_active HIDDEN;     /* not disabled, not secure-execution */
/* Derived from the configuration at init, for the accept path: */
extern int shim_kernel_may_count HIDDEN; /* TCP bytes may be left to TCP_INFO */
extern int shim_stamp_accepts HIDDEN;    /* something uses a connection's age */

static inline bool shim_is_trigger(int sig)
{
	if (!(shim_cfg.triggers & TRIGGER_SIGNAL))
		return false;
	for (int i = 0; i < shim_cfg.nsignals; i++)
		if (shim_cfg.signals[i] == sig)
			return true;
	return false;
}

uint64_t shim_now_ns(void);        /* CLOCK_MONOTONIC */
uint64_t shim_now_coarse_ns(void); /* CLOCK_MONOTONIC_COARSE: cheaper, ~4 ms steps */

/* All sockets live on the one sockfs device: a record keeps only the inode,
 * and this is compared once per identity check.  Set at the first accept. */
extern uint64_t shim_sockfs_dev HIDDEN;
static inline uint64_t shim_sock_dev(void) /* 0 before the first accept */
{
	return __atomic_load_n(&shim_sockfs_dev, __ATOMIC_RELAXED);
}

/* How deep this thread is in our signal handler (signals.c), the
 * application's handler it chains included: > 0 there, where nothing may
 * take a lock or start a thread. */
extern __thread int shim_handler_depth __attribute__((tls_model("initial-exec"))) HIDDEN;
static inline bool shim_in_handler(void)
{
	return shim_handler_depth > 0;
}

#endif
