/*
 * SPDX-License-Identifier: MIT
 *
 * Tracking (track.c): the records' life, between the wrappers and the table.
 * The parts on a wrapper's hot path are inline here.
 */
#ifndef GRACESHIM_TRACK_H
#define GRACESHIM_TRACK_H

#include "conntab.h"
#include "hidden.h"
#include "shim.h"
#include "sweeper.h"

#include <stdbool.h>
#include <sys/types.h>

extern int track_nonblocking_host HIDDEN; /* relaxed: set once an event loop shows */

/* accept() returned fd on listener lfd: starts tracking it.  Returns fd. */
int track_accepted(int lfd, int fd) HIDDEN;
/* listen() succeeded on fd. */
void track_listening(int fd) HIDDEN;
/* In the child of a fork, once fork() returned: what it inherited (the
 * ports its parent listened on, see track_listening). */
void track_forked_child(void) HIDDEN;
/* A counted read of fd returned r (buf: its bytes, or NULL when they are
 * not in one buffer).  Returns r. */
ssize_t track_rx(int fd, ssize_t r, const void *buf) HIDDEN;

/* A connection the kernel counts for us, past its first bytes, in the
 * read/write filter under policy idle for the direction of its transfers
 * only: a read stores RX in last_dir, no count, no watch (it has received
 * bytes: it cannot be a never-used connection blocking a worker). */
static inline bool track_dir_only(const struct conn *c)
{
	return (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) &
		(CONN_KERNEL | CONN_FIRST | CONN_MUTED)) == CONN_KERNEL &&
	       c->kind == CONN_KIND_CONN;
}

/* r bytes were read of a track_dir_only() connection.  If the fd was
 * closed and its number reused while the read blocked, the RX lands on the
 * record's next connection: it then looks as if its peer spoke last, which
 * only keeps it until its next transfer. */
static inline ssize_t track_rx_dir(struct conn *c, ssize_t r)
{
	if (r > 0 && __atomic_load_n(&c->last_dir, __ATOMIC_RELAXED) != CONN_DIR_RX && proc_own())
		__atomic_store_n(&c->last_dir, CONN_DIR_RX, __ATOMIC_RELAXED);
	return r;
}

struct conn *track_read_watch_slow(struct conn *c, int fd, int flags) HIDDEN;
/* c: the record of fd in the read/write filter.  Returns c when the read
 * is watched (see track_read_unwatch). */
static inline struct conn *track_read_watch(struct conn *c, int fd, int flags)
{
	if (__builtin_expect(c->kind != CONN_KIND_CONN || conn_rx(c) != 0 ||
				     !shim_cfg.unblock_after_ns || (unsigned)fd >= CONNTAB_LOW ||
				     __atomic_load_n(&conntab_blocked[fd], __ATOMIC_RELAXED),
			     1))
		return NULL;
	return track_read_watch_slow(c, fd, flags);
}

static inline ssize_t track_read_unwatch(int fd, struct conn *w, ssize_t r)
{
	if (__builtin_expect(w != NULL, 0))
		__atomic_store_n(&conntab_blocked[fd], 0, __ATOMIC_RELAXED);
	return r;
}

/* ---- fd ends: forget (see track.c) ---- */
void track_forget_tracked(int fd) HIDDEN;
void track_forget_range(unsigned lo, unsigned hi) HIDDEN;
void track_dup_slow(int oldfd, int newfd) HIDDEN;

/* fd is about to be closed or replaced: its record (if any) is forgotten
 * first. */
static inline void track_forget(int fd)
{
	sweeper_fds_closing((unsigned)fd, (unsigned)fd);
	if (__builtin_expect(conntab_fast(fd) != NULL, 0) && proc_own())
		track_forget_tracked(fd);
}

/* newfd now refers to oldfd's socket (dup, dup2, dup3, F_DUPFD). */
static inline void track_dup(int oldfd, int newfd)
{
	if (__builtin_expect(conntab_fast(oldfd) != NULL, 0))
		track_dup_slow(oldfd, newfd);
}

#endif
