/*
 * SPDX-License-Identifier: MIT
 *
 * Tracking: the life of the records the wrappers keep, between the exported
 * wrappers (interpose.c) and the table (conntab.c).  An accepted connection
 * gets a record (and the socket it was accepted on one as a listener), its
 * reads are counted (the writes, in the wrappers: tx_done), and a close,
 * dup or close_range forgets or copies it.
 */
#include "track.h"

#include "conntab.h"
#include "log.h"
#include "policy.h"
#include "real.h"
#include "serving.h"
#include "shim.h"
#include "signals.h"
#include "sweeper.h"
#include "unblock.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* A host whose accepted sockets are non-blocking (see track_read_watch). */
int track_nonblocking_host;

/* ---- accept: start tracking ---------------------------------------- */

/* Whether the kernel counts this process's TCP connections' bytes for us,
 * so that their reads and writes take the untracked fast path: TCP_INFO has
 * tcpi_bytes_received (Linux 4.1+) and the configuration allows it
 * (shim_kernel_may_count: not under trace).  Decided once, on the
 * first TCP accept: 1 yes, -1 no, 0 not yet. */
static int tcp_kernel_counts;

__attribute__((noinline, cold)) static bool tcp_kernel_counts_probe(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	int k = shim_kernel_may_count && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
				len >= offsetof(struct tcp_info, tcpi_bytes_received) +
					       sizeof ti.tcpi_bytes_received
			? 1
			: -1;
	__atomic_store_n(&tcp_kernel_counts, k, __ATOMIC_RELAXED);
	return k > 0;
}

static inline bool tcp_kernel_counted(int fd)
{
	int k = __atomic_load_n(&tcp_kernel_counts, __ATOMIC_RELAXED);
	return __builtin_expect(k != 0, 1) ? k > 0 : tcp_kernel_counts_probe(fd);
}

__attribute__((noinline, cold)) static void track_failed(int fd)
{
	LOG(LOG_WARN, "fd %d: not tracked (out of memory or fd beyond %u)", fd, CONNTAB_MAX_FD);
}

__attribute__((noinline, cold)) static void track_trace(int fd, uint32_t ino)
{
	char p[64];
	log_peer_keep(fd, ino, p, sizeof p); /* for the close line */
	log_msg(LOG_TRACE, "connection %s accepted (fd %d)", p, fd);
}

/* What the connections accepted on one socket share: the family, and whether
 * the kernel counts their bytes for us (TCP, see tcp_kernel_counted).  Asked
 * of the listener once, so an accept asks the kernel only for its identity. */
static void sock_kind(int fd, int *family, bool *kernel)
{
	int proto = 0;
	socklen_t len = sizeof *family;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, family, &len) < 0)
		*family = 0;
	len = sizeof proto;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
		proto = 0;
	*kernel = (*family == AF_INET || *family == AF_INET6) && proto == IPPROTO_TCP &&
		  tcp_kernel_counted(fd);
}

/* A socket the process accepts on is a listener, whether it called listen()
 * itself, inherited it across fork, or got it from systemd.  Its record holds
 * sock_kind() in family and flags (CONN_KERNEL), and CONN_INHERITED unless
 * this process made it a listener itself (listen()).  Out of line: once per
 * listener.  NULL when the pool of listeners is full: then the listener
 * trigger can no longer tell when the last one closes, and is off for good
 * in this process (listeners_lost). */
static int listeners_lost;

__attribute__((noinline, cold)) static struct conn *listener_add(int lfd, bool inherited)
{
	int saved = errno;
	struct conn *l = NULL;
	struct stat st;
	int family;
	bool kernel;
	if (fstat(lfd, &st) == 0) {
		sock_kind(lfd, &family, &kernel);
		if (conntab_lock_unless_held()) {
			l = conntab_special_add_locked(lfd, CONN_KIND_LISTENER, (uint64_t)st.st_ino);
			if (l) {
				l->family = (uint8_t)family;
				l->flags = (uint8_t)((kernel ? CONN_KERNEL : 0) |
						     (inherited ? CONN_INHERITED : 0));
				workers_note_listener(lfd);
			} else {
				__atomic_store_n(&listeners_lost, 1, __ATOMIC_RELAXED);
			}
			conntab_unlock();
		}
	}
	errno = saved;
	return l;
}

static inline struct conn *listener_of(int lfd)
{
	struct conn *l = conntab_fast(lfd);
	if (__builtin_expect(l && l->kind == CONN_KIND_LISTENER, 1))
		return l;
	return listener_add(lfd, true);
}

/* Everything an accept adds, once per connection: the rare cases (a first
 * listener, trace, out of memory) are out of line and the rest is straight
 * code.  Returns fd, so that the wrappers end in a tail call and keep no
 * frame on the way out of a failed (EAGAIN) accept. */
__attribute__((noinline)) int track_accepted(int lfd, int fd)
{
	int *ep = &errno, saved = *ep;
	struct stat st;
	int family;
	bool kernel;

	struct conn *l = listener_of(lfd);
	if (__builtin_expect(l != NULL, 1)) {
		__atomic_store_n(&l->accepts, __atomic_load_n(&l->accepts, __ATOMIC_RELAXED) + 1,
				 __ATOMIC_RELAXED);
		family = l->family;
		kernel = l->flags & CONN_KERNEL;
	} else {
		sock_kind(fd, &family, &kernel);
	}
	if (fstat(fd, &st) < 0)
		goto out;
	/* All sockets live on the one sockfs device; anything else was never
	 * seen on Linux: leave it alone. */
	uint64_t dev = shim_sock_dev();
	if (__builtin_expect(!dev, 0))
		__atomic_store_n(&shim_sockfs_dev, dev = (uint64_t)st.st_dev, __ATOMIC_RELAXED);
	else if (dev != (uint64_t)st.st_dev)
		goto out;
	/* The accept time matters only to a setting that uses a connection's
	 * age (grace, timeouts) and to the logs that print it. */
	uint32_t now = shim_stamp_accepts ? conn_ms(shim_now_coarse_ns()) : 0;
	if (!conntab_lock_unless_held())
		goto out;
	struct conn *c = conntab_insert_locked(fd, (uint64_t)st.st_ino, family, now, kernel);
	conntab_unlock();
	if (__builtin_expect(!c, 0)) {
		track_failed(fd);
		goto out;
	}
	if (log_on(LOG_TRACE))
		track_trace(fd, (uint32_t)st.st_ino);
	serving_check(lfd, false);
	sweeper_accepted();
out:
	*ep = saved;
	return fd;
}

/* listen() succeeded on fd: a listener of this process's own making. */
void track_listening(int fd)
{
	struct conn *l = conntab_fast(fd);
	if (!l || l->kind != CONN_KIND_LISTENER)
		(void)listener_add(fd, false);
}

/* ---- reads: count bytes ----------------------------------------------- */

__attribute__((noinline)) static void first_byte(struct conn *c)
{
	char p[64];
	log_peer(c->fd, p, sizeof p);
	log_msg(LOG_TRACE, "connection %s first byte received", p);
}

/* What the host reads of a TCP connection's first bytes, fed to the TLS
 * classifier (policy.h, pol_tls_feed) until it stops watching: a TLS
 * client that sent its handshake and no request is released by policy idle
 * even when its Finished was the last word, and one that may carry HTTP/2
 * is never released for having the server speak last.  Only under idle,
 * and only where we see every byte the host reads: a read without a buffer
 * we parse (readv, recvmsg, splice) ends the watch, which keeps the
 * connection as before; if it is the first, the connection may be HTTP/2. */
static void tls_watch(struct conn *c, ssize_t r, const void *buf)
{
	if ((c->family != AF_INET && c->family != AF_INET6) || shim_cfg.policy != POLICY_IDLE ||
	    (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_MUTED))
		return;
	bool first = conn_rx(c) == 0;
	uint32_t st = first ? POL_TLS_START : __atomic_load_n(&c->tls, __ATOMIC_RELAXED);
	if (st & POL_TLS_WATCHING)
		__atomic_store_n(&c->tls,
				 buf ? pol_tls_feed(st, buf, (size_t)r)
				     : first ? POL_TLS_MUX : st & POL_TLS_MUX,
				 __ATOMIC_RELAXED);
}

/* A connection the kernel counts for us is classified (tls_watch is done
 * with it): out of the read/write filter, under the lock like every write
 * to the filter; once per connection.  If this thread is inside the table
 * (a signal handler's read) it simply stays in the filter. */
__attribute__((noinline, cold)) static void first_bytes_done(int fd, struct conn *c)
{
	if (!conntab_lock_unless_held())
		return;
	if (conntab_find_locked(fd) == c)
		conntab_rw_remove_locked(c);
	conntab_unlock();
}

/* Rare cases of a counted read, out of line so that track_rx needs no frame:
 * a signalfd, the first bytes of a connection (a trace line, the TLS
 * classifier), a released one. */
__attribute__((noinline, cold)) static ssize_t rx_rare(int fd, struct conn *c, ssize_t r,
						       const void *buf)
{
	if (c->kind != CONN_KIND_CONN) {
		if (c->kind == CONN_KIND_SIGNALFD && buf)
			sig_fd_read(c, buf, r);
		return r;
	}
	if (conn_rx(c) == 0 && log_on(LOG_TRACE))
		first_byte(c);
	tls_watch(c, r, buf);
	conn_add_rx(c, (uint64_t)r);
	if ((__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_FIRST) &&
	    !(__atomic_load_n(&c->tls, __ATOMIC_RELAXED) & POL_TLS_WATCHING))
		first_bytes_done(fd, c);
	return r;
}

/* A counted read returned 0: on a released connection that is the EOF of
 * the release (or the peer's FIN), which the host has now seen: from here on
 * a write with nothing read since answers only that EOF (mute.c, mute_drop).  (A
 * read of 0 bytes returns 0 too: it marks the same, harmlessly, as nothing
 * was read.)  Under the lock, like every change of flags; once per released
 * connection. */
__attribute__((noinline, cold)) static ssize_t rx_eof(int fd)
{
	struct conn *c = conntab_rw_fast(fd);
	if (c && c->kind == CONN_KIND_CONN &&
	    (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_MUTED) &&
	    conntab_lock_unless_held()) {
		if (conntab_find_locked(fd) == c)
			__atomic_or_fetch(&c->flags, CONN_EOF_READ, __ATOMIC_RELAXED);
		conntab_unlock();
	}
	return 0;
}

/* The slow path of every counted read: the fd was counted when the call
 * began.  It is looked up again: the call may have blocked while another
 * thread closed the fd and the number was reused. */
ssize_t track_rx(int fd, ssize_t r, const void *buf)
{
	if (r <= 0)
		return r == 0 ? rx_eof(fd) : r;
	struct conn *c = conntab_rw_fast(fd);
	if (!c || !proc_own())
		return r;
	if (__builtin_expect(c->kind != CONN_KIND_CONN || conn_rx(c) == 0 ||
				     (__atomic_load_n(&c->tls, __ATOMIC_RELAXED) & POL_TLS_WATCHING),
			     0))
		return rx_rare(fd, c, r, buf);
	conn_add_rx(c, (uint64_t)r);
	return r;
}

/* ---- a read that may block on a never-used connection ------------------
 * See unblock.c, unblock_pass(): a worker blocked reading a connection that
 * never sent a byte, while clients wait to be accepted.  Around such a read
 * conntab_blocked[fd] holds the record's gen; after the first byte the check below is
 * the whole cost.  Where the sweeper thread does not run yet (a
 * single-threaded host) it is started only for a read that would block: a
 * blocking socket with nothing to read.  A single-threaded host whose
 * sockets are non-blocking (an event loop: accept4(SOCK_NONBLOCK), or one
 * found so) never blocks on a read and is never asked again. */
__attribute__((noinline, cold)) struct conn *track_read_watch_slow(struct conn *c, int fd, int flags)
{
	/* Not while draining: every never-used connection is being released
	 * anyway, and a server reading the EOFs of thousands (nginx) would
	 * otherwise wake the sweeper into a pass over the table again and
	 * again, beside the drain (issue 17).  Nor once released: the read
	 * ends at EOF. */
	if ((flags & MSG_DONTWAIT) || sweeper_draining() ||
	    (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_RELEASED))
		return NULL;
	if (__atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) != 2) {
		if (__atomic_load_n(&track_nonblocking_host, __ATOMIC_RELAXED) || shim_in_handler())
			return NULL;
		int saved = errno;
		int fl = (int)real_syscall(SYS_fcntl, fd, F_GETFL);
		bool block = false;
		char b;
		if (fl >= 0 && (fl & O_NONBLOCK))
			__atomic_store_n(&track_nonblocking_host, 1, __ATOMIC_RELAXED);
		else if (fl >= 0)
			block = real_syscall(SYS_recvfrom, fd, &b, 1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL) < 0 &&
				errno == EAGAIN;
		errno = saved;
		if (!block)
			return NULL;
	}
	__atomic_store_n(&conntab_blocked[fd], c->gen, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&sweeper_blocked_readers, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) != 2) {
		int saved = errno;
		sweeper_watch_blocked();
		errno = saved;
	}
	return c;
}

/* ---- fd ends: forget ------------------------------------------------------
 * We forget before the real call: afterwards the number may already belong to
 * a new connection accepted on another thread, whose fresh record we would
 * wrongly drop. */

/* The bytes of a connection from its TCP_INFO, FINs left out.  The kernel
 * counts a FIN as one byte of sequence space: in tcpi_bytes_received once it
 * arrives, in tcpi_bytes_acked once the peer acknowledged ours.  Which FINs
 * are counted is not a matter of the state alone: after the peer's FIN and
 * our shutdown(SHUT_WR) the socket is in TCP_CLOSE with both counted, as it
 * is after a reset with neither.  So, state-free where the kernel allows:
 *  - sent: tcpi_bytes_sent - tcpi_bytes_retrans is the data sent (a FIN
 *    carries none; Linux 4.19+), and the acknowledged bytes beyond it can
 *    only be our FIN: sent = min(acked, data);
 *  - received: no segment with data (tcpi_data_segs_in, Linux 4.6+) means
 *    nothing but a FIN was counted: 0.  Otherwise the peer's FIN was counted
 *    in the states that follow it, and in TCP_CLOSE when our own FIN was
 *    acknowledged too (the orderly end; a reset after our half-close is the
 *    one case left one byte high).
 * States from include/net/tcp_states.h (netinet/tcp.h, which names them,
 * clashes with linux/tcp.h). */
static void kernel_bytes(const struct tcp_info *ti, socklen_t len, uint64_t *rx, uint64_t *tx)
{
	enum { FIN_WAIT2 = 5, TIME_WAIT = 6, CLOSE = 7, CLOSE_WAIT = 8, LAST_ACK = 9, CLOSING = 11 };
	uint8_t st = ti->tcpi_state;
	uint64_t in = ti->tcpi_bytes_received, acked = ti->tcpi_bytes_acked;
	bool fin_out_acked;
	if (len >= offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof ti->tcpi_bytes_retrans) {
		uint64_t data = ti->tcpi_bytes_sent - ti->tcpi_bytes_retrans;
		fin_out_acked = acked > data;
		if (fin_out_acked)
			acked = data;
	} else {
		fin_out_acked = st == FIN_WAIT2 || st == TIME_WAIT || st == CLOSE;
		acked -= fin_out_acked && acked;
	}
	bool fin_in = st == CLOSE_WAIT || st == LAST_ACK || st == CLOSING || st == TIME_WAIT ||
		      (st == CLOSE && fin_out_acked);
	if (len >= offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof ti->tcpi_data_segs_in &&
	    ti->tcpi_data_segs_in == 0)
		in = 0;
	else
		in -= fin_in && in;
	*rx = in;
	*tx = acked;
}

/* What a forgotten connection still owes: the kernel's byte counts for the
 * exit statistics, the trace line.  Out of line: off by default. */
__attribute__((noinline, cold)) static void forget_report(struct conn *c)
{
	int saved = errno;
	if ((c->flags & CONN_KERNEL) && shim_cfg.stats_file[0]) {
		/* Our counters are zero for these: take the kernel's for the
		 * exit statistics. */
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		memset(&ti, 0, sizeof ti);
		if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
		    len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
			kernel_bytes(&ti, len, &c->rx, &c->tx);
	}
	if (log_on(LOG_TRACE)) {
		char p[64];
		log_peer_kept(c->fd, c->ino, p, sizeof p);
		log_msg(LOG_TRACE, "connection %s closed (fd %d, %llu bytes received, %llu sent, %llu ms%s)",
			p, c->fd, (unsigned long long)conn_rx(c), (unsigned long long)conn_tx(c),
			(unsigned long long)(uint32_t)(conn_ms(shim_now_ns()) - c->accepted_ms),
			(c->flags & CONN_RELEASED) ? ", released by graceshim" : "");
	}
	errno = saved;
}

static inline void forget_locked(struct conn *c)
{
	if (__builtin_expect(shim_cfg.stats_file[0] != 0, 0) || log_on(LOG_TRACE))
		forget_report(c);
	conntab_remove_locked(c);
}

/* A listener or signalfd ends; the table lock is held.
 *
 * The listener trigger means "this worker is being stopped" and nothing
 * else: the last listener of the process closes, it was one the process
 * inherited (a pre-fork worker closing its master's listeners: nginx at
 * graceful stop and at reload, Apache, gunicorn), and the process itself
 * accepted on them since it was forked.  Not a fork-per-connection child
 * closing its copy (it accepted nothing), not an accept-once program closing
 * the listener it made (socat, a one-shot forwarder), not a process that
 * still listens somewhere, nor one with listeners we could not track. */
static void forget_special_locked(struct conn *c)
{
	bool inherited_listener = c->kind == CONN_KIND_LISTENER && (c->flags & CONN_INHERITED);
	conntab_special_remove_locked(c);
	if (inherited_listener && (shim_cfg.triggers & TRIGGER_LISTENER) &&
	    conntab_stats.accepted > 0 && !__atomic_load_n(&listeners_lost, __ATOMIC_RELAXED) &&
	    conntab_special_count_locked(CONN_KIND_LISTENER) == 0)
		sweeper_listener_closed();
}

/* Forgets whatever the filter holds for fd; the table lock is held. */
static inline void forget_fd_locked(int fd)
{
	struct conn *c = conntab_slot_locked(fd);
	if (!c)
		return;
	if (__builtin_expect(c->kind == CONN_KIND_CONN, 1))
		forget_locked(c);
	else
		forget_special_locked(c);
}

/* A tracked fd ends (the filter said so just now; it is looked up again
 * under the lock, as another thread may have closed it meanwhile).  errno:
 * the table makes no system calls, and the cold paths that do
 * (forget_report, the sweeper's wake-up) restore it themselves. */
__attribute__((noinline)) void track_forget_tracked(int fd)
{
	if (!conntab_lock_unless_held())
		return;
	conntab_wait_unclaimed_locked((unsigned)fd, (unsigned)fd);
	forget_fd_locked(fd);
	conntab_unlock();
}

/* Forgets the records of a range of fds in one walk of the table, with no
 * list allocated: no malloc in a wrapper (see the allocator in conntab.c: a
 * signal handler's fork() would deadlock on malloc's locks). */
void track_forget_range(unsigned lo, unsigned hi)
{
	int sp[CONNTAB_MAX_SPECIALS];
	size_t k;

	sweeper_fds_closing(lo, hi);
	/* A vfork child closes its own fd table, not ours. */
	if (!proc_own() || !conntab_lock_unless_held())
		return;
	conntab_wait_unclaimed_locked(lo, hi);
	conntab_each_conn_in_locked(lo, hi, forget_locked);
	k = conntab_special_fds_locked(lo, hi, sp, CONNTAB_MAX_SPECIALS);
	for (size_t i = 0; i < k; i++)
		forget_fd_locked(sp[i]);
	conntab_unlock();
}

/* newfd now refers to oldfd's socket: one socket, several fds.  The new fd
 * gets a record of its own, and both count as shared (a read on one is not
 * seen on the other), as across a fork. */
__attribute__((noinline)) void track_dup_slow(int oldfd, int newfd)
{
	if (oldfd == newfd || !proc_own())
		return;
	if (!conntab_lock_unless_held())
		return;
	int saved = errno;
	struct conn *c = conntab_slot_locked(oldfd), *n = NULL;
	if (c && c->kind == CONN_KIND_CONN) {
		n = conntab_insert_locked(newfd, c->ino, c->family, c->accepted_ms,
					  c->flags & CONN_KERNEL);
		if (n) {
			n->rx = conn_rx(c);
			n->tx = conn_tx(c);
			n->last_dir = c->last_dir;
			n->tls = __atomic_load_n(&c->tls, __ATOMIC_RELAXED);
			n->rx_at_release = c->rx_at_release;
			n->flags = __atomic_load_n(&c->flags, __ATOMIC_RELAXED) | CONN_SHARED;
			if (n->flags & (CONN_FIRST | CONN_MUTED))
				conntab_rw_add_locked(n);
			else if (n->flags & CONN_KERNEL)
				conntab_rw_remove_locked(n);
			/* atomic: the sweeper may be setting a claimed record's flags */
			__atomic_or_fetch(&c->flags, CONN_SHARED, __ATOMIC_RELAXED);
			if (log_on(LOG_TRACE))
				log_peer_copy(oldfd, newfd);
			conntab_stats.accepted--; /* the same connection, not a new one */
		}
	} else if (c) {
		n = conntab_special_add_locked(newfd, (enum conn_kind)c->kind, c->ino);
		if (n) {
			n->sigmask = c->sigmask; /* a signalfd's mask */
			n->family = c->family; /* a listener's sock_kind() */
			n->flags = c->flags;
		}
	}
	conntab_unlock();
	errno = saved;
}
