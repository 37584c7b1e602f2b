/*
 * SPDX-License-Identifier: MIT
 *
 * What the shim cannot see (blind.c): io_uring, and connections accepted
 * without libc's accept.
 */
#ifndef GRACESHIM_BLIND_H
#define GRACESHIM_BLIND_H

/* Said once at the first drain, and only on evidence.  Sweeper thread only. */
void blind_warn(void);

#endif
