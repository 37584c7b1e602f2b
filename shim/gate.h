/*
 * SPDX-License-Identifier: MIT
 *
 * The gate in front of libc: REAL()'s fast path, and the one place where
 * work that a signal handler cannot do is deferred to.
 *
 * While the gate is open, REAL(name) is one flag test, a load and an
 * indirect call into libc, and the exported fast wrappers jump straight into
 * libc for an untracked fd (gate_fast).  The gate starts closed: the first
 * call through it binds the table of real functions (real.c) and opens it.
 * Closing it (gate_close: plain stores, async-signal-safe) sends the next
 * REAL() call on any thread through gate_pass() in the normal context of a
 * wrapper, which runs the deferred work (gate_set_work: the start of a
 * deferred sweeper thread, when a trigger came in a signal handler); the
 * work reopens the gate when it is done (gate_open).
 */
#ifndef GRACESHIM_GATE_H
#define GRACESHIM_GATE_H

#include "hidden.h"
#include "real.h"

extern int gate_is_open HIDDEN; /* __atomic_load_n(ACQUIRE) */
/* Where the exported fast wrappers (symbols.h: path fast, fast_read, fast_write) jump
 * for an untracked fd: libc's function while the gate is open, its door
 * through the gate (gate.c) while it is closed.  Plain pointer stores. */
extern struct real_fns gate_fast HIDDEN;

/* REAL() with the gate closed: binds, or runs the deferred work, or opens. */
void gate_pass(void) HIDDEN;
/* The same without the deferred work: binds (and opens after binding). */
void gate_pass_nohook(void) HIDDEN;
/* Opens the gate (once the table is bound). */
void gate_open(void) HIDDEN;
/* Closes it: the next REAL() call runs the deferred work.  Async-signal-safe. */
void gate_close(void) HIDDEN;
/* The deferred work, set once at start-up; it calls gate_open() when done. */
void gate_set_work(void (*work)(void)) HIDDEN;

#define REAL(f)                                                                                    \
	(*(__builtin_expect(!__atomic_load_n(&gate_is_open, __ATOMIC_ACQUIRE), 0)                  \
		   ? (gate_pass(), real_fns.f)                                                     \
		   : real_fns.f))
/* For wrappers commonly called from signal handlers (write, send): never
 * runs the deferred work. */
#define REAL_NOHOOK(f)                                                                             \
	(*(__builtin_expect(!__atomic_load_n(&gate_is_open, __ATOMIC_ACQUIRE), 0)                  \
		   ? (gate_pass_nohook(), real_fns.f)                                              \
		   : real_fns.f))

#endif
