/*
 * SPDX-License-Identifier: MIT
 *
 * The writes on a released connection (see the first comment below): what
 * the host writes to a connection we muted is dropped while it can only be
 * answering the EOF of the release.  Called from the write wrappers'
 * slow paths (interpose.c), on a muted connection only (mute_active).
 */
#include "mute.h"

#include "gate.h"
#include "log.h"
#include "shim.h"
#include "sockview.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- the mark, set before a release and undone when it failed ---- */

/* Before a release (SHUT_RD, not the drain timeout's cut): from now on the
 * host's writes on c are looked at (CONN_MUTED) until it reads a byte again,
 * and dropped once it can only be answering the EOF we cause (mute_drop).
 * Set before shutdown(): the host may read that EOF and write at once.  A connection that never received a byte cannot be owed
 * anything: its writes are dropped from the start (eof_read: see mute_drop). */
/* looked_rx: the count of bytes the host had read when the policy looked
 * (not the counter now: a request that raced the release and that the host
 * has read since must make its answer pass; nolost caught one dropped). */
/* kernel_read: for a CONN_KERNEL record, what the kernel says the host read
 * (release.c asks it before the lock is taken). */
void mute_begin(struct conn *c, uint64_t looked_rx, int64_t kernel_read, bool eof_read)
{
	uint64_t base = looked_rx;
	if (conn_flags(c) & CONN_KERNEL) {
		/* Its reads are not counted: the kernel's count of what the host
		 * read.  Unknown: nothing was (it never received a byte) or the
		 * base is 0 and the host's first read lets its writes through. */
		base = kernel_read > 0 ? (uint64_t)kernel_read : 0;
		conntab_rw_add_locked(c);
	}
	__atomic_store_n(&c->rx_at_release, (uint32_t)base, __ATOMIC_RELAXED);
	uint8_t f = CONN_MUTED;
	if (eof_read)
		f |= CONN_EOF_READ;
	__atomic_or_fetch(&c->flags, f, __ATOMIC_RELEASE);
}

void mute_end(struct conn *c)
{
	__atomic_and_fetch(&c->flags, (uint8_t) ~(CONN_MUTED | CONN_EOF_READ), __ATOMIC_RELAXED);
}

/* ---- writes on a released connection ---------------------------------
 * After a release (SHUT_RD) the host may answer the EOF we caused: HAProxy
 * writes "400 Bad request" to an empty connection, other servers a 408.  A
 * browser whose request raced the release onto that socket would show it.
 * So a write on a muted connection (mute_begin()) is dropped and
 * reported as fully written, with no system call (no EPIPE, no SIGPIPE: what
 * a client that closed would cause, less the error), while both hold:
 *   - the host has read no byte since the release: a request that raced the
 *     release and was read is answered as always (and unmutes for good);
 *   - the host has read the EOF, or the connection never received a byte:
 *     until then a write may be the rest of a response the host was still
 *     sending, a TLS session ticket or an HTTP/2 GOAWAY, which pass (a TLS
 *     stream with a record missing could not be decrypted past it).
 * The number is checked to be the socket we released before anything is
 * dropped: a host that closed it behind our back writes to its new file. */
__attribute__((noinline, cold)) bool mute_drop(struct conn *c, int fd, size_t n)
{
	int saved = errno;
	bool drop = false;
	uint8_t f = __atomic_load_n(&c->flags, __ATOMIC_ACQUIRE);

	if (!(f & CONN_MUTED) || n > SSIZE_MAX || c->kind != CONN_KIND_CONN)
		goto out;
	if (!sockview_same(fd, shim_sock_dev(), c->ino))
		goto out;
	int64_t now = (f & CONN_KERNEL) ? sockview_read_bytes(fd) : (int64_t)conn_rx(c);
	if (now < 0 || (uint32_t)now != __atomic_load_n(&c->rx_at_release, __ATOMIC_RELAXED)) {
		/* Read since the release (or cannot tell): the host's for good. */
		if (conntab_lock_unless_held()) {
			if (conntab_find_locked(fd) == c)
				mute_end(c);
			conntab_unlock();
		}
		goto out;
	}
	if (!(f & CONN_EOF_READ))
		goto out;
	drop = true;
	if (log_on(LOG_DEBUG)) {
		char p[64];
		log_peer(fd, p, sizeof p);
		log_msg(LOG_DEBUG,
			"connection %s: %zu byte(s) written after its release dropped "
			"(the host read its EOF and nothing since)",
			p, n);
	}
out:
	errno = saved;
	return drop;
}

/* The bytes an iovec array holds, or -1 when the real call would fail on it
 * (EINVAL, EMSGSIZE): then it is not dropped but made, and fails. */
ssize_t mute_iov_bytes(const struct iovec *iov, size_t cnt)
{
	size_t total = 0;
	if (cnt > IOV_MAX || (cnt && !iov))
		return -1;
	for (size_t i = 0; i < cnt; i++) {
		if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
			return -1;
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

/* sendmmsg's part of a drop: every message taken whole (at most UIO_MAXIOV,
 * as the kernel sends), or false when one would make the real call fail. */
__attribute__((noinline, cold)) bool mute_mmsg_drop(struct conn *c, int fd, struct mmsghdr *v,
						    unsigned n, int *r)
{
	size_t total = 0;
	unsigned k = n < UIO_MAXIOV ? n : UIO_MAXIOV;
	if (k && !v)
		return false;
	for (unsigned i = 0; i < k; i++) {
		ssize_t t = mute_iov_bytes(v[i].msg_hdr.msg_iov, v[i].msg_hdr.msg_iovlen);
		if (t < 0 || (size_t)t > UINT_MAX)
			return false;
		total += (size_t)t;
	}
	if (!mute_drop(c, fd, total))
		return false;
	for (unsigned i = 0; i < k; i++)
		v[i].msg_len = (unsigned)mute_iov_bytes(v[i].msg_hdr.msg_iov,
							v[i].msg_hdr.msg_iovlen);
	*r = (int)k;
	return true;
}

/* sendfile's part of a drop: from a regular file, what sendfile would have
 * sent (up to its end) is skipped, the offset advanced as sendfile does;
 * from anything else (rare: sendfile reads files) the call is made. */
__attribute__((noinline, cold)) bool mute_sendfile_drop(struct conn *c, int out, int in, off_t *off,
							size_t n, ssize_t *r)
{
	struct stat st;
	int saved = errno;
	off_t pos = off ? *off : lseek(in, 0, SEEK_CUR);
	bool ok = fstat(in, &st) == 0 && S_ISREG(st.st_mode) && pos >= 0;
	errno = saved;
	if (!ok)
		return false;
	size_t k = pos >= st.st_size ? 0 : (size_t)(st.st_size - pos);
	if (k > n)
		k = n;
	if (k > 0x7ffff000) /* the most one sendfile moves (see sendfile(2)) */
		k = 0x7ffff000;
	if (!mute_drop(c, out, k))
		return false;
	if (off)
		*off = pos + (off_t)k;
	else
		lseek(in, pos + (off_t)k, SEEK_SET);
	errno = saved;
	*r = (ssize_t)k;
	return true;
}

/* splice's part of a drop: into a socket splice moves bytes out of a pipe;
 * they are read out of it and discarded (at most 4 KiB: splice may move
 * fewer bytes than asked), without blocking when asked not to.  Anything
 * else the real call would refuse: it is made. */
__attribute__((noinline, cold)) bool mute_splice_drop(struct conn *c, int in, off_t *ioff, int out,
						      size_t n, unsigned flags, ssize_t *r)
{
	char buf[4096];
	struct stat st;
	int saved = errno;
	bool pipe_in = !ioff && fstat(in, &st) == 0 && S_ISFIFO(st.st_mode);
	errno = saved;
	if (!pipe_in || !mute_drop(c, out, n))
		return false;
	if (flags & SPLICE_F_NONBLOCK) {
		struct pollfd p = {.fd = in, .events = POLLIN};
		if (REAL(poll)(&p, 1, 0) == 0) {
			errno = EAGAIN;
			*r = -1;
			return true;
		}
		errno = saved;
	}
	*r = REAL(read)(in, buf, n < sizeof buf ? n : sizeof buf);
	return true;
}
