/*
 * SPDX-License-Identifier: MIT
 *
 * The writes on a released connection (mute.c).
 */
#ifndef GRACESHIM_MUTE_H
#define GRACESHIM_MUTE_H

#include "conntab.h"
#include "hidden.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Marks c muted before its release (the table lock held): looked_rx, what
 * the host had read when the policy looked; kernel_read, for a CONN_KERNEL
 * record, the kernel's count of what it read; eof_read, it never received
 * a byte (nothing owed: its writes are dropped from the start).  mute_end()
 * undoes it (the release failed, or the drain ended). */
void mute_begin(struct conn *c, uint64_t looked_rx, int64_t kernel_read, bool eof_read) HIDDEN;
void mute_end(struct conn *c) HIDDEN;

static inline bool mute_active(const struct conn *c)
{
	return __builtin_expect(__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_MUTED, 0);
}

/* A write of n bytes on fd, c's connection, muted: true when it is dropped
 * (the caller reports it written in full). */
bool mute_drop(struct conn *c, int fd, size_t n) HIDDEN;
/* The bytes an iovec array holds, or -1 when the real call would fail on it. */
ssize_t mute_iov_bytes(const struct iovec *iov, size_t cnt) HIDDEN;
/* sendmmsg's, sendfile's and splice's drops: true when dropped, with the
 * call's result in *r. */
bool mute_mmsg_drop(struct conn *c, int fd, struct mmsghdr *v, unsigned n, int *r) HIDDEN;
bool mute_sendfile_drop(struct conn *c, int out, int in, off_t *off, size_t n, ssize_t *r) HIDDEN;
bool mute_splice_drop(struct conn *c, int in, off_t *ioff, int out, size_t n, unsigned flags,
		      ssize_t *r) HIDDEN;

#endif
