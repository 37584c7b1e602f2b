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

#include <stdbool.h>
#include <stdint.h>

/* The release: shutdown(fd, SHUT_RD), or SHUT_RDWR for the drain timeout's
 * cut (out->reason).  With a record c (claimed, or under the table lock when
 * locked), c is muted before a SHUT_RD and marked CONN_RELEASED after, or
 * unmuted when shutdown() failed; looked_rx: see mute().  Returns whether it
 * is released (ENOTCONN: the peer has gone, as good); errno as shutdown()
 * left it when not.  System calls and the table only: the signal handler's
 * release makes it too. */
bool release_one(struct conn *c, int fd, const struct pol_out *out, uint64_t looked_rx,
		 bool locked);
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
