/*
 * SPDX-License-Identifier: MIT
 *
 * The one line a process logs when it starts serving (its first listen() or
 * accept()): what it listens on, what triggers the drain, the policy.  Only
 * processes that serve say anything, not every process that inherited
 * LD_PRELOAD; a forked worker is a process of its own and says it again at
 * its first accept.  A process that ignores every trigger signal (SIG_IGN
 * inherited by a server started with & from a script) and handles no other
 * stop signal is told at its first accept, at warn: nothing can start its
 * drain.  Not at listen(): servers often set their handlers after binding
 * (hyper with tokio's ctrl_c()), and one that did so is not ignoring the
 * signal.  A process that chose to ignore SIGINT and stops another way is
 * not warned: its serving line says what triggers there.
 */
#ifndef GRACESHIM_SERVING_H
#define GRACESHIM_SERVING_H

#include <stdbool.h>

/* What this process has said: 0 nothing, 1 the serving line (at a listen),
 * 2 also what an accept says (the ignored trigger signals). */
extern int serving_said __attribute__((visibility("hidden")));

void serving_tell(int lfd, bool listening);

/* Whether a listen() or an accept() has something to say. */
static inline bool serving_unsaid(bool listening)
{
	return __builtin_expect(
		__atomic_load_n(&serving_said, __ATOMIC_RELAXED) < (listening ? 1 : 2), 0);
}

/* On every listen() and accept(): one load and a compare once said. */
static inline void serving_check(int lfd, bool listening)
{
	if (serving_unsaid(listening))
		serving_tell(lfd, listening);
}

#endif
