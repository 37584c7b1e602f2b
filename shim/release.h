/*
 * SPDX-License-Identifier: MIT
 *
 * The release (release.c): release_one(), and the pass over the table that
 * decides it, in the sweeper thread or in our signal handler.
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
 * unmuted when shutdown() failed; looked_rx: see mute_begin().  Returns
 * whether it is released (ENOTCONN: the peer has gone, as good); errno as
 * shutdown() left it when not.  System calls and the table only: the signal handler's
 * release makes it too. */
bool release_one(struct conn *c, int fd, const struct pol_out *out, uint64_t looked_rx,
		 bool locked);
/* One pass over the table.  Returns the time until something may qualify,
 * or UINT64_MAX when nothing is pending. */
uint64_t release_sweep(void);
/* The pass of our signal handler (sigrelease.c), at now, without
 * allocating.  Returns how many connections it released. */
unsigned release_sweep_fixed(uint64_t now);

#endif
