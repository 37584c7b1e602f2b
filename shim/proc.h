/*
 * SPDX-License-Identifier: MIT
 *
 * Whose process this is.
 *
 * The shim's state (the table, the signal slots, the sweeper) belongs to one
 * process.  A vfork() child, or any clone(CLONE_VM) child, runs in that
 * process's memory until it execs: a wrapper running there must do no
 * bookkeeping at all, or it rewrites the parent's records and signal table
 * (CPython's subprocess resets every handled signal to SIG_DFL and calls
 * close_range() in such a child).  glibc's own posix_spawn child calls only
 * glibc-internal functions, which never reach us.
 *
 * The test is a cached pid compared with the caller's, made cheap: vfork()
 * and clone() are interposed to set a flag first, and only while a flag is
 * set does proc_own() ask the kernel for the pid.  The vfork flag is
 * per-thread: the child runs on the vforking thread's TLS (same thread
 * pointer, same memory), no other thread of the parent sees it, and the
 * vforking thread resumes only once the child has exec'd or exited: vfork's
 * return in the parent clears it (proc.c says why nothing earlier may).
 */
#ifndef GRACESHIM_PROC_H
#define GRACESHIM_PROC_H

#include "hidden.h"

#include <stdbool.h>
#include <sys/types.h>

extern pid_t proc_pid HIDDEN; /* the process that owns the state */
/* Set by our vfork() on the calling thread (so also in its child). */
extern __thread int proc_vm_here __attribute__((tls_model("initial-exec"))) HIDDEN;
/* Sticky: a clone(CLONE_VM) child that does not run on our thread's TLS
 * (no CLONE_VFORK, or CLONE_SETTLS) may run at any time. */
extern int proc_vm_children HIDDEN;
/* The one word proc_own() reads first: nonzero while a vfork (or
 * clone(CLONE_VM|CLONE_VFORK)) of some thread is in flight, and for good
 * once proc_vm_children is set.  Raised before the mark, on the marking
 * thread (so its child sees it), lowered when vfork's return clears the mark.
 * Only while it is up are the per-thread mark (a TLS load) and the flag
 * looked at: the read and write wrappers' TURN pays one load. */
extern int proc_vm_maybe HIDDEN;

bool proc_own_slow(void) HIDDEN;

/* True when the caller runs in the process that owns the shim's state.
 * Async-signal-safe. */
static inline bool proc_own(void)
{
	if (__builtin_expect(!__atomic_load_n(&proc_vm_maybe, __ATOMIC_RELAXED), 1))
		return true;
	return proc_own_slow();
}

/* At start-up and in the child of a fork (pthread_atfork): this process now
 * owns the state. */
void proc_set_owner(void) HIDDEN;

#endif
