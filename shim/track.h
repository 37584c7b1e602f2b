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
#include <sys/socket.h>
#include <sys/types.h>

extern int track_nonblocking_host HIDDEN; /* relaxed: set once an event loop shows */

/* accept() returned fd on listener lfd, non-blocking or not
 * (accept4's SOCK_NONBLOCK): starts tracking it.  Returns fd. */
int track_accepted(int lfd, int fd, bool nonblocking) HIDDEN;
/* A read returned msg with a control part: the fds it carried (SCM_RIGHTS)
 * that are connections another process accepted are tracked (track.c,
 * track_handed).  msg is the kernel's answer: only its control part is
 * read. */
void track_received(const struct msghdr *msg) HIDDEN;
/* A write sent msg with a control part: the connections of ours it handed
 * to another process (SCM_RIGHTS) are noted (workers.c, workers_handed). */
void track_sent(const struct msghdr *msg) HIDDEN;
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
 * only: a read or write stores its direction in last_dir when it turns, no
 * count, no watch (it has received bytes: it cannot be a never-used
 * connection blocking a worker).  Without the kind test (track_lane's): in
 * the read/write filter, a record with CONN_KERNEL is a connection's (a
 * signalfd's carries no flag, a listener's is not in this filter). */
static inline bool track_lane_dir_only(const struct conn *c)
{
	return (conn_flags(c) & (CONN_KERNEL | CONN_FIRST | CONN_MUTED)) == CONN_KERNEL;
}

static inline bool track_dir_only(const struct conn *c)
{
	return track_lane_dir_only(c) && c->kind == CONN_KIND_CONN;
}

/* The exported read and write wrappers' test (interpose.c, paths
 * fast_read and fast_write), for a transfer of fd in direction dir
 * (CONN_DIR_RX or CONN_DIR_TX):
 *   FORWARD: it needs nothing of the shim; the wrapper jumps into libc with
 *       no frame of its own.  An fd below CONNTAB_LOW with no record (one
 *       load, as FASTFD), or a track_dir_only() connection whose last
 *       transfer went the same way: this one, whatever it returns, would
 *       store nothing.
 *   TURN: a track_dir_only() connection whose last transfer went the other
 *       way: the call, then the direction's store (track_turn_rx,
 *       track_turn_tx), nothing else.  A keep-alive server's first read
 *       after its answer, its first write after a request.
 *   SLOW: anything else, to the wrapper's slow path.
 * A read forwarded returns its EOF unseen (see track_turn_rx): only a
 * connection whose host spoke last is released with a mute, and its next
 * read is a TURN.  A TCP record's last_dir never carries CONN_DIR_SEEN
 * (only the sweeper's sample of a socket without TCP_INFO sets it). */
enum track_lane { TRACK_LANE_FORWARD, TRACK_LANE_TURN, TRACK_LANE_SLOW };

static inline enum track_lane track_lane(int fd, uint8_t dir, struct conn **cp)
{
	if (__builtin_expect((unsigned)fd >= CONNTAB_LOW, 0))
		return TRACK_LANE_SLOW;
	/* Relaxed: the record's fields are read through the pointer just
	 * loaded (an address dependency, which x86_64 and aarch64 order), and
	 * each of them is an atomic of its own. */
	struct conn *c = __atomic_load_n(&conntab_rw[(unsigned)fd], __ATOMIC_RELAXED);
	if (__builtin_expect(!c, 1))
		return TRACK_LANE_FORWARD;
	if (!track_lane_dir_only(c))
		return TRACK_LANE_SLOW;
	*cp = c;
	return __atomic_load_n(&c->last_dir, __ATOMIC_RELAXED) == dir ? TRACK_LANE_FORWARD
								      : TRACK_LANE_TURN;
}

/* A transfer of c's fd, a track_dir_only() connection when the call began
 * (a TURN, or the slow path's for an fd above CONNTAB_LOW), returned r: its
 * direction.  If the fd was closed and its number reused while the call
 * blocked, the direction lands on the record's next connection: an RX then
 * looks as if its peer spoke last, which only keeps it until its next
 * transfer. */
static inline ssize_t track_turn(struct conn *c, uint8_t dir, ssize_t r)
{
	if (r > 0 && proc_own())
		__atomic_store_n(&c->last_dir, dir, __ATOMIC_RELAXED);
	return r;
}

/* Such a read of fd returned r.  An EOF goes to track_rx: a read that
 * blocked since before a release returns the release's EOF here, and the
 * mute must know the host has read it. */
static inline ssize_t track_turn_rx(int fd, ssize_t r, struct conn *c)
{
	if (__builtin_expect(r == 0, 0))
		return track_rx(fd, 0, NULL);
	return track_turn(c, CONN_DIR_RX, r);
}

/* A TURN's write of fd returned r. */
static inline ssize_t track_turn_tx(int fd, ssize_t r, struct conn *c)
{
	(void)fd;
	return track_turn(c, CONN_DIR_TX, r);
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
	sweeper_fd_closing(fd);
	if (__builtin_expect(conntab_fast(fd) != NULL, 0) && proc_own())
		track_forget_tracked(fd);
}

/* fd's connection is (not) non-blocking from now on: its reads are (not)
 * watched (CONNTAB_BLOCKED_NEVER).  Stored only when it changes: a page of
 * conntab_blocked that no non-blocking socket ever used stays the zero
 * page, which costs a blocking server no memory. */
static inline void track_note_nonblocking(int fd, bool nonblocking)
{
	uint32_t b = nonblocking ? CONNTAB_BLOCKED_NEVER : 0;
	if ((unsigned)fd < CONNTAB_LOW &&
	    __atomic_load_n(&conntab_blocked[fd], __ATOMIC_RELAXED) != b)
		__atomic_store_n(&conntab_blocked[fd], b, __ATOMIC_RELAXED);
}

/* Whether fd's reads were last known not to block. */
static inline bool track_never_blocks(int fd)
{
	return (unsigned)fd < CONNTAB_LOW &&
	       __atomic_load_n(&conntab_blocked[fd], __ATOMIC_RELAXED) == CONNTAB_BLOCKED_NEVER;
}

/* fcntl(fd, F_SETFL) succeeded: the same for a tracked connection, unless a
 * read of it is being watched. */
static inline void track_set_nonblocking(int fd, bool nonblocking)
{
	if ((unsigned)fd >= CONNTAB_LOW || __builtin_expect(!conntab_fast(fd), 1))
		return;
	uint32_t b = __atomic_load_n(&conntab_blocked[fd], __ATOMIC_RELAXED);
	if (b == 0 || b == CONNTAB_BLOCKED_NEVER)
		track_note_nonblocking(fd, nonblocking);
}

/* newfd now refers to oldfd's socket (dup, dup2, dup3, F_DUPFD). */
static inline void track_dup(int oldfd, int newfd)
{
	if (__builtin_expect(conntab_fast(oldfd) != NULL, 0))
		track_dup_slow(oldfd, newfd);
}

#endif
