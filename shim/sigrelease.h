/*
 * SPDX-License-Identifier: MIT
 *
 * The release made in our signal handler (sigrelease.c).
 */
#ifndef GRACESHIM_SIGRELEASE_H
#define GRACESHIM_SIGRELEASE_H

#include <stddef.h>

/* From our signal handler, after a trigger: the release, when it is safe
 * here (single-threaded, no sweeper thread yet, the table not held).
 * Async-signal-safe. */
void sigrelease_run(void);
/* The connections tracked when the handler released (once), else now. */
size_t sigrelease_tracked(size_t now);
/* What the handler released, said once by whoever comes first. */
void sigrelease_say(void);
/* n released in the workers, plus what the handler released there. */
void sigrelease_say_workers(unsigned n);

#endif
