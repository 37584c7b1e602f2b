/*
 * SPDX-License-Identifier: MIT
 *
 * The few synchronisation primitives the shim needs, portable across the
 * architectures it builds for (x86_64, aarch64): a pause for spin loops, one
 * spin lock and one "once".
 * Spinning is only ever short here (see conntab_lock and the signal slots'
 * lock); the hint lets the sibling hyperthread run (x86 PAUSE) or yields the
 * pipeline (aarch64 YIELD), as the kernel's cpu_relax() does.
 */
#ifndef GRACESHIM_SYNC_H
#define GRACESHIM_SYNC_H

#include <sched.h>
#include <stdbool.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* One step of a wait on another thread: spin briefly, then yield the CPU
 * (the one we wait for may be preempted).  *spins starts at 0. */
static inline void sync_backoff(unsigned *spins)
{
	if (++*spins > 200)
		sched_yield();
	else
		cpu_relax();
}

/* A spin lock (0 free, 1 held).  No owner and no system call on the way in
 * or out, so a signal handler may take one, provided no handler can run on
 * a thread that holds it (its users block signals, or test a held flag:
 * conntab_lock_unless_held).  A long wait yields the CPU to the holder. */
static inline void sync_spin_wait(int *l)
{
	unsigned spins = 0;
	do {
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			sync_backoff(&spins);
	} while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE));
}

static inline void sync_spin_lock(int *l)
{
	if (__builtin_expect(__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE), 0))
		sync_spin_wait(l);
}

static inline void sync_spin_unlock(int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* A three-state "once" (0 not yet, 1 under way, 2 done).  Unlike
 * pthread_once, the thread doing the work may be re-entered (dlsym can
 * allocate, an interposed malloc may read a file): its callers test a
 * thread-local flag of their own first and return early, where pthread_once
 * would deadlock.  sync_once_begin: true for the one caller that does the
 * work (it calls sync_once_end when done); the others wait until it is done
 * (microseconds: yielding is enough) and get false. */
static inline bool sync_once_begin(int *state)
{
	int expect = 0;
	if (__atomic_compare_exchange_n(state, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return true;
	while (__atomic_load_n(state, __ATOMIC_ACQUIRE) != 2)
		sched_yield();
	return false;
}

static inline void sync_once_end(int *state)
{
	__atomic_store_n(state, 2, __ATOMIC_RELEASE);
}

#endif
