/*
 * SPDX-License-Identifier: MIT
 *
 * The release made in our signal handler (sigrelease.c).
 */
#ifndef GRACESHIM_SIGRELEASE_H
#define GRACESHIM_SIGRELEASE_H

/* From our signal handler, after a trigger: the release, when it is safe
 * here (single-threaded, no sweeper thread yet, the table not held).
 * Async-signal-safe. */
void sigrelease_run(void);
/* What the handler released, said once by whoever comes first. */
void sigrelease_say(void);
/* n released in the workers, plus what the handler released there. */
void sigrelease_say_workers(unsigned n);

#endif
