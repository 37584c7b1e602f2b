/*
 * SPDX-License-Identifier: MIT
 *
 * One pass over the connection table, and the releases it makes
 * (release.c): the sweeper thread's pass, and the same release made in our
 * signal handler when the host has no sweeper thread yet.
 */
#ifndef GRACESHIM_RELEASE_H
#define GRACESHIM_RELEASE_H

#include "conntab.h"
#include "policy.h"

#include <stdint.h>

/* The bytes the host has read from TCP socket fd so far, from the kernel;
 * -1 when it cannot tell.  Errno-neutral. */
int64_t sweeper_tcp_read_bytes(int fd);
/* Mark c muted before its release, and undo it when the release failed
 * (table lock held): see release.c. */
void mute(struct conn *c, const struct pol_out *out, uint64_t looked_rx, int64_t kernel_read);
void unmute(struct conn *c);
/* One pass over the table.  Returns the time until something may qualify,
 * or UINT64_MAX when nothing is pending. */
uint64_t sweep(void);
/* From our signal handler, after sweeper_signal(): see release.c. */
void sweeper_release_in_handler(void);
/* What the handler released, said once by whoever comes first. */
void say_handler_releases(void);
/* n released in the workers, plus what the handler released there. */
void say_worker_releases(unsigned n);

#endif
