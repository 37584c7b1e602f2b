/*
 * Process-wide state of the shim: configuration parsed once, whether the
 * shim is active in this process, and the glue between the modules.
 */
#ifndef GRACESHIM_SHIM_H
#define GRACESHIM_SHIM_H

#include "config.h"
#include "proc.h"

#include <stdbool.h>
#include <stdint.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

#define SHIM_HIDDEN __attribute__((visibility("hidden")))
extern struct cfg shim_cfg SHIM_HIDDEN;   /* immutable after shim_init() */
extern int shim_init_state SHIM_HIDDEN;   /* 0 not yet, 1 in progress, 2 done */
extern int shim_active SHIM_HIDDEN;       /* not disabled, not secure-execution */
/* Derived from the configuration at init, for the accept path: */
extern int shim_kernel_may_count SHIM_HIDDEN; /* TCP bytes may be left to TCP_INFO */
extern int shim_stamp_accepts SHIM_HIDDEN;    /* something uses a connection's age */

void shim_init(void);

/* True when the shim should act.  Initialises lazily: a wrapper can run
 * before our constructor (another library's constructor, or a preloaded
 * library ahead of us). */
static inline bool shim_on(void)
{
	if (__builtin_expect(__atomic_load_n(&shim_init_state, __ATOMIC_ACQUIRE) != 2, 0))
		shim_init();
	/* A vfork child runs in our memory: it must change nothing of ours. */
	return shim_active && proc_own();
}

/* shim_on() without the process test: for paths that must still know the
 * shim is active in a vfork child (to pass it through faithfully). */
static inline bool shim_on_anywhere(void)
{
	if (__builtin_expect(__atomic_load_n(&shim_init_state, __ATOMIC_ACQUIRE) != 2, 0))
		shim_init();
	return shim_active;
}

static inline bool shim_is_trigger(int sig)
{
	if (!(shim_cfg.triggers & TRIGGER_SIGNAL))
		return false;
	for (int i = 0; i < shim_cfg.nsignals; i++)
		if (shim_cfg.signals[i] == sig)
			return true;
	return false;
}

uint64_t shim_now_ns(void); /* CLOCK_MONOTONIC */
uint64_t shim_now_coarse_ns(void); /* CLOCK_MONOTONIC_COARSE: cheaper, ~4 ms steps */
uint64_t shim_sock_dev(void); /* st_dev of sockets (sockfs), 0 before the first accept */

#endif
