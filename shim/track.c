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
#include "sockdiag.h"
#include "sockview.h"
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
	socklen_t len;
	int k = shim_kernel_may_count && sockview_tcp_info(fd, &ti, &len) == 0 ? 1 : -1;
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

__attribute__((noinline, cold)) static void track_trace(int fd, uint32_t ino, const char *how)
{
	char p[64];
	log_peer_keep(fd, ino, p, sizeof p); /* for the close line */
	log_msg(LOG_TRACE, "connection %s %s (fd %d)", p, how, fd);
}

/* What the connections accepted on one socket share: the family, and whether
 * the kernel counts their bytes for us (TCP, see tcp_kernel_counted).  Asked
 * of the listener once, so an accept asks the kernel only for its identity. */
static void sock_kind(int fd, int *family, bool *kernel)
{
	int saved = errno, proto = 0;
	socklen_t len = sizeof *family;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, family, &len) < 0)
		*family = 0;
	len = sizeof proto;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
		proto = 0;
	*kernel = (*family == AF_INET || *family == AF_INET6) && proto == IPPROTO_TCP &&
		  tcp_kernel_counted(fd);
	errno = saved;
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
			l = conntab_special_add_locked(lfd, CONN_KIND_LISTENER,
						       (uint64_t)st.st_ino);
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

/* A new connection's accept time: taken only for a setting that uses a
 * connection's age (grace, timeouts), for the logs that print it, and while
 * draining (a connection accepted after the trigger: release.c). */
static inline uint32_t accept_stamp(void)
{
	return shim_stamp_accepts || drain_active() ? conn_ms(shim_now_coarse_ns()) : 0;
}

/* What a new connection rarely adds, with errno saved around it: the line
 * of a failure, the trace line (how: "accepted", "handed over"), the
 * serving line (at: its listener, or the connection itself), the sweeper's
 * start or look. */
__attribute__((noinline, cold)) static void accepted_rare(int at, int fd, uint32_t ino,
							  struct conn *c, const char *how)
{
	int saved = errno;
	if (!c) {
		track_failed(fd);
	} else {
		if (log_on(LOG_TRACE))
			track_trace(fd, ino, how);
		serving_check(at, false);
		sweeper_accepted();
	}
	errno = saved;
}

/* Everything an accept adds, once per connection: the rare cases (a first
 * listener, trace, out of memory) are out of line and the rest is straight
 * code, which leaves errno as the accept left it without saving it (the
 * identity is asked with real_fstat_quiet; the rare paths save it
 * themselves).  Returns fd, so that the wrappers end in a tail call and
 * keep no frame on the way out of a failed (EAGAIN) accept. */
__attribute__((noinline)) int track_accepted(int lfd, int fd, bool nonblocking)
{
	struct stat st;
	int family;
	bool kernel;

	struct conn *l = listener_of(lfd);
	if (__builtin_expect(l != NULL, 1)) {
		family = l->family;
		kernel = l->flags & CONN_KERNEL;
	} else {
		sock_kind(fd, &family, &kernel);
	}
	if (real_fstat_quiet(fd, &st) < 0)
		return fd;
	/* All sockets live on the one sockfs device; anything else was never
	 * seen on Linux: leave it alone. */
	uint64_t dev = shim_sock_dev();
	if (__builtin_expect(!dev, 0))
		__atomic_store_n(&shim_sockfs_dev, dev = (uint64_t)st.st_dev, __ATOMIC_RELAXED);
	else if (dev != (uint64_t)st.st_dev)
		return fd;
	uint32_t now = accept_stamp();
	if (!conntab_lock_unless_held())
		return fd;
	struct conn *c = conntab_insert_locked(fd, (uint64_t)st.st_ino, family, now, kernel);
	conntab_unlock();
	if (__builtin_expect(c != NULL, 1))
		track_note_nonblocking(fd, nonblocking);
	if (__builtin_expect(!c || log_on(LOG_TRACE) || serving_unsaid(false) ||
				     sweeper_accepted_wanted(),
			     0))
		accepted_rare(lfd, fd, (uint32_t)st.st_ino, c, "accepted");
	return fd;
}

/* ---- handed over: a connection another process accepted ---------------
 * A process may serve connections it did not accept: a Node.js cluster's
 * primary accepts every connection and hands it to a worker over a Unix
 * socket (SCM_RIGHTS; its default scheduling on Linux), and the worker's
 * server.close() then waits for it like any other.  Such an fd is tracked
 * as if accepted here when the kernel says it is an accepted connection: a
 * TCP socket that does not listen, whose local address a listener of this
 * network namespace holds (sockdiag_listening_on: an outbound connection's
 * local port never is).  Another process had it and may have read from
 * it: CONN_SHARED, as across a fork.  Its O_NONBLOCK is the file
 * description's, which the sender set or not: asked once. */
__attribute__((noinline)) static void track_handed(int fd)
{
	struct sockview v;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (sockview_look(fd, SOCKVIEW_ID | SOCKVIEW_TCP, &v) < 0 || !v.tcp || v.listener)
		return;
	uint64_t dev = shim_sock_dev();
	if ((dev && dev != v.dev) || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    !sockdiag_listening_on(&ss))
		return;
	int fl = (int)real_syscall(SYS_fcntl, fd, F_GETFL);
	bool kernel = tcp_kernel_counted(fd);
	uint32_t now = accept_stamp();
	if (!conntab_lock_unless_held())
		return;
	struct conn *c = conntab_insert_locked(fd, v.ino, ss.ss_family, now, kernel);
	if (c)
		__atomic_or_fetch(&c->flags, CONN_SHARED, __ATOMIC_RELAXED);
	conntab_unlock();
	if (c)
		track_note_nonblocking(fd, fl >= 0 && (fl & O_NONBLOCK));
	accepted_rare(fd, fd, (uint32_t)v.ino, c, "handed over");
}

/* Calls fn on every fd of msg's SCM_RIGHTS parts, within the buffer
 * whatever a header says. */
static void each_passed_fd(const struct msghdr *msg, void (*fn)(int fd))
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm;
	     cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		const unsigned char *end = (const unsigned char *)msg->msg_control +
					   msg->msg_controllen;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (end < CMSG_DATA(cm))
			continue;
		if (n > (size_t)(end - CMSG_DATA(cm)) / sizeof(int))
			n = (size_t)(end - CMSG_DATA(cm)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof fd, sizeof fd);
			if (fd >= 0)
				fn(fd);
		}
	}
}

void track_received(const struct msghdr *msg)
{
	int saved = errno;
	each_passed_fd(msg, track_handed);
	errno = saved;
}

/* A connection of ours handed to another process: a child that holds it
 * serves for us, and a drain of ours reaches it there (workers.c). */
static void track_handing(int fd)
{
	struct conn *c = conntab_fast(fd);
	if (c && c->kind == CONN_KIND_CONN)
		workers_handed(c->ino);
}

void track_sent(const struct msghdr *msg)
{
	each_passed_fd(msg, track_handing);
}

/* The ports the parent listened on when it forked this process.  A forked
 * worker that makes a listener of its own on one of them, or one with
 * SO_REUSEPORT (hitch's workers each bind the address anew, and a reload
 * starts new ones beside the old), serves as a worker does on an inherited
 * listener, and is stopped the same way: told over a pipe, it closes it. */
#define PARENT_PORTS 16
static uint16_t parent_ports[PARENT_PORTS]; /* network order; this thread, after fork */
static unsigned nparent_ports;
static bool forked_child; /* this process came from a fork (not an exec since) */

static uint16_t sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ((struct sockaddr_in *)&ss)->sin_port;
	if (ss.ss_family == AF_INET6)
		return ((struct sockaddr_in6 *)&ss)->sin6_port;
	return 0;
}

void track_forked_child(void)
{
	int sp[CONNTAB_MAX_SPECIALS], lfd[PARENT_PORTS];
	size_t n = 0;
	nparent_ports = 0;
	forked_child = true;
	if (!conntab_lock_unless_held())
		return;
	size_t k = conntab_special_fds_locked(0, ~0u, sp, CONNTAB_MAX_SPECIALS);
	for (size_t i = 0; i < k && n < PARENT_PORTS; i++) {
		struct conn *c = conntab_slot_locked(sp[i]);
		if (c && c->kind == CONN_KIND_LISTENER)
			lfd[n++] = sp[i];
	}
	conntab_unlock();
	int saved = errno;
	for (size_t i = 0; i < n; i++) {
		uint16_t p = sock_port(lfd[i]);
		if (p)
			parent_ports[nparent_ports++] = p;
	}
	errno = saved;
}

static bool worker_listener(int fd)
{
	if (!forked_child)
		return false;
	int saved = errno, on = 0;
	socklen_t l = sizeof on;
	bool w = getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &l) == 0 && on;
	uint16_t p = w || !nparent_ports ? 0 : sock_port(fd);
	for (unsigned i = 0; p && i < nparent_ports; i++)
		if (parent_ports[i] == p)
			w = true;
	errno = saved;
	return w;
}

/* listen() succeeded on fd: a listener of this process's own making, or a
 * forked worker's share of an address (worker_listener). */
void track_listening(int fd)
{
	struct conn *l = conntab_fast(fd);
	if (!l || l->kind != CONN_KIND_LISTENER)
		(void)listener_add(fd, worker_listener(fd));
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
 * connection as before; if it is the first, the connection may be HTTP/2.
 * first: the connection had received nothing before this read. */
static inline void tls_watch(struct conn *c, ssize_t r, const void *buf, bool first, uint8_t flags)
{
	if ((c->family != AF_INET && c->family != AF_INET6) || shim_cfg.policy != POLICY_IDLE ||
	    (flags & CONN_MUTED))
		return;
	if (first) {
		__atomic_store_n(&c->tls, buf ? pol_tls_first(buf, (size_t)r) : POL_TLS_MUX,
				 __ATOMIC_RELAXED);
		return;
	}
	uint32_t st = __atomic_load_n(&c->tls, __ATOMIC_RELAXED);
	if (st & POL_TLS_WATCHING)
		__atomic_store_n(&c->tls, buf ? pol_tls_feed(st, buf, (size_t)r) : st & POL_TLS_MUX,
				 __ATOMIC_RELAXED);
}

/* The first bytes of a connection while draining (it may show the process
 * still serves) or at trace level. */
__attribute__((noinline, cold)) static void first_bytes_seen(struct conn *c)
{
	if (drain_accepted_late(c->accepted_ms))
		sweeper_serving_seen();
	if (log_on(LOG_TRACE))
		first_byte(c);
}

/* Rare cases of a counted read, out of line so that track_rx needs no frame:
 * a signalfd, the first bytes of a connection (a trace line, the TLS
 * classifier), a released one.  A connection the kernel counts for us is
 * classified when tls_watch is done with it: CONN_FIRST off, once per
 * connection.  It stays in the read/write filter (policy idle, the only one
 * that sets CONN_FIRST), where its reads now only note their direction
 * (track.h, track_dir_only).  No lock: every change of a connection's flags
 * is an atomic read-modify-write, and this one moves no record in or out of
 * the filter. */
__attribute__((noinline)) static ssize_t rx_rare(struct conn *c, ssize_t r, const void *buf)
{
	if (c->kind != CONN_KIND_CONN) {
		if (c->kind == CONN_KIND_SIGNALFD && buf)
			sig_fd_read(c, buf, r);
		return r;
	}
	bool first = conn_rx(c) == 0;
	if (__builtin_expect(first && (drain_active() || log_on(LOG_TRACE)), 0))
		first_bytes_seen(c);
	uint8_t flags = conn_flags(c);
	tls_watch(c, r, buf, first, flags);
	conn_add_rx(c, (uint64_t)r);
	if ((flags & CONN_FIRST) &&
	    !(__atomic_load_n(&c->tls, __ATOMIC_RELAXED) & POL_TLS_WATCHING))
		__atomic_and_fetch(&c->flags, (uint8_t)~CONN_FIRST, __ATOMIC_RELAXED);
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
	if (__builtin_expect(
		    c->kind != CONN_KIND_CONN || conn_rx(c) == 0 ||
			    (__atomic_load_n(&c->tls, __ATOMIC_RELAXED) & POL_TLS_WATCHING),
		    0))
		return rx_rare(c, r, buf);
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
__attribute__((noinline, cold)) struct conn *track_read_watch_slow(struct conn *c, int fd,
								   int flags)
{
	/* Not while draining: every never-used connection is being released
	 * anyway, and a server reading the EOFs of thousands (nginx) would
	 * otherwise wake the sweeper into a pass over the table again and
	 * again, beside the drain.  Nor once released: the read
	 * ends at EOF. */
	if ((flags & MSG_DONTWAIT) || drain_active() ||
	    (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_RELEASED))
		return NULL;
	if (__atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) != 2) {
		if (__atomic_load_n(&track_nonblocking_host, __ATOMIC_RELAXED) || shim_in_handler())
			return NULL;
		int saved = errno;
		int fl = (int)real_syscall(SYS_fcntl, fd, F_GETFL);
		bool block = false;
		char b;
		if (fl >= 0 && (fl & O_NONBLOCK))
			__atomic_store_n(&track_nonblocking_host, 1, __ATOMIC_RELAXED);
		else if (fl >= 0)
			block = real_syscall(SYS_recvfrom, fd, &b, 1, MSG_PEEK | MSG_DONTWAIT, NULL,
					     NULL) < 0 &&
				errno == EAGAIN;
		errno = saved;
		if (!block)
			return NULL;
	}
	__atomic_store_n(&conntab_blocked[fd], c->gen, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&unblock_readers, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) != 2) {
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

/* The kernel's byte counts of a connection the kernel counts for us, for
 * the exit statistics: asked before the table lock is taken (a system call
 * under a spin lock made the sweeper spin through a drain: 4,180
 * sched_yield in nginx's worker for 6,000 closes).  kb->ok false when not
 * needed or not known. */
struct forget_bytes {
	bool ok;
	uint64_t rx, tx;
};

/* TCP_INFO's byte counts of fd into kb; errno kept. */
static void forget_bytes_of(int fd, struct forget_bytes *kb)
{
	int saved = errno;
	struct tcp_info ti;
	socklen_t len;
	kb->ok = sockview_tcp_info(fd, &ti, &len) == 0;
	if (kb->ok)
		sockview_data_bytes(&ti, len, &kb->rx, &kb->tx);
	errno = saved;
}

/* Before the lock: the counts of fd if the filter holds a kernel-counted
 * connection there (the host is closing it: its number cannot change
 * meanwhile). */
__attribute__((noinline, cold)) static void forget_bytes_ask(int fd, struct forget_bytes *kb)
{
	struct conn *c = conntab_fast(fd);
	kb->ok = false;
	if (c && c->kind == CONN_KIND_CONN && (conn_flags(c) & CONN_KERNEL))
		forget_bytes_of(fd, kb);
}

/* What a forgotten connection still owes: the kernel's byte counts for the
 * exit statistics (kb, or asked here when kb is NULL: a range of fds
 * closed at once), the trace line.  Out of line: off by default. */
__attribute__((noinline, cold)) static void forget_report(struct conn *c,
							  const struct forget_bytes *kb)
{
	int saved = errno;
	if ((conn_flags(c) & CONN_KERNEL) && shim_cfg.stats_file[0]) {
		/* Our counters are zero for these: take the kernel's for the
		 * exit statistics. */
		struct forget_bytes asked;
		if (!kb) {
			forget_bytes_of(c->fd, &asked);
			kb = &asked;
		}
		if (kb->ok) {
			c->rx = kb->rx;
			c->tx = kb->tx;
		}
	}
	if (log_on(LOG_TRACE)) {
		char p[64];
		log_peer_kept(c->fd, c->ino, p, sizeof p);
		log_msg(LOG_TRACE,
			"connection %s closed (fd %d, %llu bytes received, %llu sent, %llu ms%s)",
			p, c->fd, (unsigned long long)conn_rx(c), (unsigned long long)conn_tx(c),
			(unsigned long long)(uint32_t)(conn_ms(shim_now_ns()) - c->accepted_ms),
			(conn_flags(c) & CONN_RELEASED) ? ", released by graceshim" : "");
	}
	errno = saved;
}

/* A connection accepted after the trigger, whose reads the kernel counts,
 * ends: did it carry a request?  (One system call, only while draining.) */
__attribute__((noinline, cold)) static void forget_late(struct conn *c)
{
	int saved = errno;
	struct tcp_info ti;
	socklen_t len;
	if (sockview_tcp_info(c->fd, &ti, &len) == 0 && SOCKVIEW_HAS(len, tcpi_data_segs_in) &&
	    ti.tcpi_data_segs_in > 0)
		sweeper_serving_seen();
	errno = saved;
}

static inline __attribute__((always_inline)) void forget_with_locked(struct conn *c,
								     const struct forget_bytes *kb)
{
	if (__builtin_expect(drain_active(), 0) && (conn_flags(c) & CONN_KERNEL) &&
	    !(conn_flags(c) & CONN_RELEASED) && drain_accepted_late(c->accepted_ms))
		forget_late(c);
	if (__builtin_expect(shim_cfg.stats_file[0] != 0, 0) || log_on(LOG_TRACE))
		forget_report(c, kb);
	conntab_remove_locked(c);
}

static void forget_locked(struct conn *c)
{
	forget_with_locked(c, NULL);
}

/* A listener or signalfd ends; the table lock is held.
 *
 * Stopping listening is how a server shows that its stop has begun (README,
 * "When it drains"), when the last listener of the process closes and
 *  - it was one the process inherited and it accepted on since it was
 *    forked: a pre-fork worker being stopped, however its master told it
 *    (nginx at graceful stop and at reload, Apache, gunicorn): DRAIN_LISTENER;
 *  - or the process handled a signal that may ask for a stop shortly before
 *    (sweeper_stop_asked), and served: it accepted since it was forked, or
 *    forked workers while listening (HAProxy's soft-stop on SIGUSR1, thin on
 *    SIGQUIT, a unicorn master on SIGQUIT): DRAIN_STOP; a master's drain
 *    reaches its workers (workers.c).
 * Not a fork-per-connection child closing its copy (it accepted nothing),
 * not an accept-once program closing the listener it made (socat, a one-shot
 * forwarder: no signal asked it to stop), not a process that still listens
 * somewhere (an nginx master reloading on SIGHUP, SO_REUSEPORT siblings),
 * nor one with listeners we could not track.  Returns the drain started, or
 * DRAIN_NONE. */
static int forget_special_locked(struct conn *c)
{
	bool listener = c->kind == CONN_KIND_LISTENER;
	bool inherited_listener = listener && (c->flags & CONN_INHERITED);
	conntab_special_remove_locked(c);
	if (!listener || !(shim_cfg.triggers & TRIGGER_LISTENER) ||
	    __atomic_load_n(&listeners_lost, __ATOMIC_RELAXED) ||
	    conntab_special_count_locked(CONN_KIND_LISTENER) != 0 || drain_active())
		return DRAIN_NONE;
	int kind = DRAIN_NONE;
	if (inherited_listener && conntab_stats.accepted > 0)
		kind = DRAIN_LISTENER;
	else if ((conntab_stats.accepted > 0 || workers_any()) && sweeper_stop_asked())
		kind = DRAIN_STOP;
	if (kind)
		sweeper_stopped_listening(kind);
	return kind;
}

/* Forgets whatever the filter holds for fd; the table lock is held.
 * Returns the drain this started, or DRAIN_NONE. */
static inline int forget_fd_locked(int fd, const struct forget_bytes *kb)
{
	struct conn *c = conntab_slot_locked(fd);
	if (!c)
		return DRAIN_NONE;
	if (__builtin_expect(c->kind == CONN_KIND_CONN, 1)) {
		forget_with_locked(c, kb);
		return DRAIN_NONE;
	}
	return forget_special_locked(c);
}

/* A tracked fd ends (the filter said so just now; it is looked up again
 * under the lock, as another thread may have closed it meanwhile).  errno:
 * the table makes no system calls, and the cold paths that do
 * (forget_report, the sweeper's wake-up) restore it themselves. */
__attribute__((noinline)) void track_forget_tracked(int fd)
{
	struct forget_bytes kb = {false, 0, 0};
	if (__builtin_expect(shim_cfg.stats_file[0] != 0, 0))
		forget_bytes_ask(fd, &kb);
	if (!conntab_lock_unless_held())
		return;
	conntab_wait_unclaimed_locked((unsigned)fd, (unsigned)fd);
	int drain = forget_fd_locked(fd, &kb);
	conntab_unlock();
	if (__builtin_expect(drain != DRAIN_NONE, 0))
		sweeper_drain_begun();
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
	int drain = DRAIN_NONE;
	for (size_t i = 0; i < k; i++)
		drain |= forget_fd_locked(sp[i], NULL);
	conntab_unlock();
	if (drain != DRAIN_NONE)
		sweeper_drain_begun();
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
					  conn_flags(c) & CONN_KERNEL);
		if (n) {
			/* one file description: one O_NONBLOCK */
			track_note_nonblocking(newfd, track_never_blocks(oldfd));
			n->rx = conn_rx(c);
			n->tx = conn_tx(c);
			n->last_dir = c->last_dir;
			n->tls = __atomic_load_n(&c->tls, __ATOMIC_RELAXED);
			n->rx_at_release = c->rx_at_release;
			__atomic_store_n(&n->flags, (uint8_t)(conn_flags(c) | CONN_SHARED),
					 __ATOMIC_RELAXED);
			if (conn_flags(n) & (CONN_FIRST | CONN_MUTED))
				conntab_rw_add_locked(n);
			else if (conn_flags(n) & CONN_KERNEL)
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
			n->family = c->family;   /* a listener's sock_kind() */
			n->flags = c->flags;
		}
	}
	conntab_unlock();
	errno = saved;
}
