/*
 * The one line a process logs when it starts serving (its first listen() or
 * accept()): what it listens on, what triggers the drain, the policy.  Only
 * processes that serve say anything, not every process that inherited
 * LD_PRELOAD; a forked worker is a process of its own and says it again at
 * its first accept.  A trigger signal the process ignores (SIG_IGN inherited
 * by a server started with & from a script) is said there too, at warn: the
 * shim cannot trigger on it, and nothing else would tell.
 */
#ifndef GRACESHIM_SERVING_H
#define GRACESHIM_SERVING_H

#include <stdbool.h>

extern int serving_told __attribute__((visibility("hidden"))); /* this process said it */

void serving_tell(int lfd, bool listening);

/* On every listen() and accept(): one load when already said. */
static inline void serving_check(int lfd, bool listening)
{
	if (__builtin_expect(!__atomic_load_n(&serving_told, __ATOMIC_RELAXED), 0))
		serving_tell(lfd, listening);
}

#endif
