/*
 * The exported wrappers, and nothing else.  Each one calls the real function
 * first; then, for an fd, asks the lock-free filter whether it is tracked at
 * all, so an fd we do not track costs a few loads and no lock.  errno is left
 * exactly as the real call left it: bookkeeping that may touch errno saves and
 * restores it, and nothing here ever writes errno = 0.
 */
#include "conntab.h"
#include "gate.h"
#include "log.h"
#include "policy.h"
#include "serving.h"
#include "shim.h"
#include "signals.h"
#include "start.h"
#include "sweeper.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <linux/close_range.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <stdarg.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc exports these without declaring them in any header. */
SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				   struct sockaddr *addr, socklen_t *alen);
SHIM_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler);
SHIM_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n);

/* A host whose accepted sockets are non-blocking (see read_watch). */
static int nonblocking_host;

/* ---- accept: start tracking ---------------------------------------- */

/* Whether the kernel counts this process's TCP connections' bytes for us,
 * so that their reads and writes take the untracked fast path: TCP_INFO has
 * tcpi_bytes_received (Linux 4.1+) and the configuration allows it
 * (shim_kernel_may_count: not policy idle, not trace).  Decided once, on the
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
__attribute__((noinline)) static int accepted(int lfd, int fd)
{
	int *ep = &errno, saved = *ep;
	struct stat st;
	int family;
	bool kernel;

	struct conn *l = listener_of(lfd);
	if (__builtin_expect(l != NULL, 1)) {
		__atomic_store_n(&l->rx, __atomic_load_n(&l->rx, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
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

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	int r = REAL(accept)(fd, addr, addrlen);
	if (r >= 0 && shim_on())
		return accepted(fd, r);
	return r;
}

SHIM_EXPORT int listen(int fd, int backlog)
{
	int r = REAL(listen)(fd, backlog);
	if (r == 0 && shim_on()) {
		struct conn *l = conntab_fast(fd);
		if (!l || l->kind != CONN_KIND_LISTENER)
			(void)listener_add(fd, false);
		serving_check(fd, true);
		sweeper_listening();
		/* A server: start the sweeper now, so that a drain in a process
		 * whose accepts we never see is at least reported. */
		sweeper_ensure_started();
	}
	return r;
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	int r = REAL(accept4)(fd, addr, addrlen, flags);
	if (__builtin_expect((flags & SOCK_NONBLOCK) && r >= 0, 0) &&
	    !__atomic_load_n(&nonblocking_host, __ATOMIC_RELAXED))
		__atomic_store_n(&nonblocking_host, 1, __ATOMIC_RELAXED); /* an event loop */
	if (r >= 0 && shim_on())
		return accepted(fd, r);
	return r;
}

/* ---- reads: count bytes ----------------------------------------------- */

__attribute__((noinline)) static void first_byte(struct conn *c)
{
	char p[64];
	log_peer(c->fd, p, sizeof p);
	log_msg(LOG_TRACE, "connection %s first byte received", p);
}

/* A read from a signalfd that carries a trigger signal: the application
 * consumes its signals there (the signal blocked, no handler), so this is
 * where the trigger shows.  We only look; the application gets every byte. */
__attribute__((noinline)) static void signalfd_read(struct conn *c, const void *buf, ssize_t r)
{
	const struct signalfd_siginfo *si = buf;
	for (ssize_t i = 0; i + (ssize_t)sizeof *si <= r; i += (ssize_t)sizeof *si, si++) {
		uint32_t sig = si->ssi_signo;
		if (sig >= 1 && sig <= 64 && (c->tx & (1ull << (sig - 1))) && shim_is_trigger((int)sig))
			sweeper_signal((int)sig);
	}
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
	    (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & (CONN_KERNEL | CONN_MUTED)))
		return;
	bool first = conn_rx(c) == 0;
	uint32_t st = first ? POL_TLS_START : __atomic_load_n(&c->tls, __ATOMIC_RELAXED);
	if (st & POL_TLS_WATCHING)
		__atomic_store_n(&c->tls,
				 buf ? pol_tls_feed(st, buf, (size_t)r)
				     : first ? POL_TLS_MUX : st & POL_TLS_MUX,
				 __ATOMIC_RELAXED);
}

/* Rare cases of a counted read, out of line so that rx_done needs no frame:
 * a signalfd, the first bytes of a connection (a trace line, the TLS
 * classifier), a released one. */
__attribute__((noinline, cold)) static ssize_t rx_rare(struct conn *c, ssize_t r, const void *buf)
{
	if (c->kind != CONN_KIND_CONN) {
		if (c->kind == CONN_KIND_SIGNALFD && buf)
			signalfd_read(c, buf, r);
		return r;
	}
	if (conn_rx(c) == 0 && log_on(LOG_TRACE))
		first_byte(c);
	tls_watch(c, r, buf);
	conn_add_rx(c, (uint64_t)r);
	return r;
}

/* A counted read returned 0: on a released connection that is the EOF of
 * the release (or the peer's FIN), which the host has now seen: from here on
 * a write with nothing read since answers only that EOF (muted_drop).  (A
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
static ssize_t rx_done(int fd, ssize_t r, const void *buf)
{
	if (r <= 0)
		return r == 0 ? rx_eof(fd) : r;
	struct conn *c = conntab_rw_fast(fd);
	if (!c || !proc_own())
		return r;
	/* c->tls shares its word with the sweeper's sample_ms (Unix sockets)
	 * and rx_at_release: its top bit there only sends a read the rare way. */
	if (__builtin_expect(c->kind != CONN_KIND_CONN || conn_rx(c) == 0 ||
				     (__atomic_load_n(&c->tls, __ATOMIC_RELAXED) & POL_TLS_WATCHING),
			     0))
		return rx_rare(c, r, buf);
	conn_add_rx(c, (uint64_t)r);
	return r;
}

static ssize_t tx_done(int fd, ssize_t r)
{
	if (r > 0) {
		struct conn *c = conntab_rw_fast(fd);
		if (c && __builtin_expect(c->kind == CONN_KIND_CONN, 1) && proc_own())
			conn_add_tx(c, (uint64_t)r);
	}
	return r;
}

static ssize_t mmsg_bytes(const struct mmsghdr *v, int n)
{
	uint64_t bytes = 0;
	for (int i = 0; i < n; i++)
		bytes += v[i].msg_len;
	return (ssize_t)bytes;
}

/* ---- writes on a released connection ---------------------------------
 * After a release (SHUT_RD) the host may answer the EOF we caused: HAProxy
 * writes "400 Bad request" to an empty connection, other servers a 408.  A
 * browser whose request raced the release onto that socket would show it.
 * So a write on a muted connection (sweeper.c, mute()) is dropped and
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
__attribute__((noinline, cold)) static bool muted_drop(struct conn *c, int fd, size_t n)
{
	int saved = errno;
	bool drop = false;
	struct stat st;
	uint8_t f = __atomic_load_n(&c->flags, __ATOMIC_ACQUIRE);

	if (!(f & CONN_MUTED) || n > SSIZE_MAX || c->kind != CONN_KIND_CONN)
		goto out;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != shim_sock_dev() ||
	    (uint32_t)st.st_ino != c->ino)
		goto out;
	int64_t now = (f & CONN_KERNEL) ? sweeper_tcp_read_bytes(fd) : (int64_t)conn_rx(c);
	if (now < 0 || (uint32_t)now != __atomic_load_n(&c->rx_at_release, __ATOMIC_RELAXED)) {
		/* Read since the release (or cannot tell): the host's for good. */
		if (conntab_lock_unless_held()) {
			if (conntab_find_locked(fd) == c)
				__atomic_and_fetch(&c->flags, (uint8_t)~(CONN_MUTED | CONN_EOF_READ),
						   __ATOMIC_RELAXED);
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
		log_msg(LOG_DEBUG, "connection %s: %zu byte(s) written after its release dropped "
				   "(the host read its EOF and nothing since)", p, n);
	}
out:
	errno = saved;
	return drop;
}

static inline bool muted(const struct conn *c)
{
	return __builtin_expect(__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_MUTED, 0);
}

/* The bytes an iovec array holds, or -1 when the real call would fail on it
 * (EINVAL, EMSGSIZE): then it is not dropped but made, and fails. */
static ssize_t iov_bytes(const struct iovec *iov, size_t cnt)
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

/* ---- a read that may block on a never-used connection ------------------
 * See sweeper.c, unblock_pass(): a worker blocked reading a connection that
 * never sent a byte, while clients wait to be accepted.  Around such a read
 * conntab_blocked[fd] holds the record's gen; after the first byte the check below is
 * the whole cost.  Where the sweeper thread does not run yet (a
 * single-threaded host) it is started only for a read that would block: a
 * blocking socket with nothing to read.  A single-threaded host whose
 * sockets are non-blocking (an event loop: accept4(SOCK_NONBLOCK), or one
 * found so) never blocks on a read and is never asked again. */
__attribute__((noinline, cold)) static struct conn *read_watch_slow(struct conn *c, int fd,
								    int flags)
{
	if (flags & MSG_DONTWAIT)
		return NULL;
	if (__atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) != 2) {
		if (__atomic_load_n(&nonblocking_host, __ATOMIC_RELAXED) || shim_in_handler())
			return NULL;
		int saved = errno;
		int fl = (int)real_syscall(SYS_fcntl, fd, F_GETFL);
		bool block = false;
		char b;
		if (fl >= 0 && (fl & O_NONBLOCK))
			__atomic_store_n(&nonblocking_host, 1, __ATOMIC_RELAXED);
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

/* c: the record of fd in the read/write filter.  Returns c when the read
 * is watched (see read_unwatch). */
static inline struct conn *read_watch(struct conn *c, int fd, int flags)
{
	if (__builtin_expect(c->kind != CONN_KIND_CONN || conn_rx(c) != 0 ||
				     !shim_cfg.unblock_after_ns || (unsigned)fd >= CONNTAB_LOW ||
				     __atomic_load_n(&conntab_blocked[fd], __ATOMIC_RELAXED),
			     1))
		return NULL;
	return read_watch_slow(c, fd, flags);
}

static inline ssize_t read_unwatch(int fd, struct conn *w, ssize_t r)
{
	if (__builtin_expect(w != NULL, 0))
		__atomic_store_n(&conntab_blocked[fd], 0, __ATOMIC_RELAXED);
	return r;
}

/* The slow path of a read on fd: a tracked connection's read is watched
 * around the call, then counted. */
#define TRACKED_READ(fd, flags, buf, call)                                                  \
	do {                                                                                \
		struct conn *c_ = conntab_rw_fast(fd);                                      \
		if (!c_ || ((flags) & MSG_PEEK))                                            \
			return call;                                                        \
		struct conn *w_ = read_watch(c_, fd, flags);                                \
		return rx_done(fd, read_unwatch(fd, w_, call), buf);                            \
	} while (0)

/* Every read and write wrapper is split in two.  The exported function is
 * the fast path: for an fd below CONNTAB_LOW with no record (the vast
 * majority: files, pipes, outbound sockets) and REAL()'s fast path open, it
 * is a compare, two loads and a tail jump into libc, with no frame of its
 * own.  Everything else (a tracked fd, a high fd, binding, the hook) goes to
 * the out-of-line slow path.  MSG_PEEK leaves the bytes queued (FIONREAD
 * still sees them): they are counted when the host consumes them.  Writes
 * use REAL_NOHOOK: signal handlers write to self-pipes, and no thread may be
 * started there. */
#define FASTFD(fd) \
	__builtin_expect((unsigned)(fd) < CONNTAB_LOW && \
				 !__atomic_load_n(&conntab_rw[(unsigned)(fd)], __ATOMIC_RELAXED), \
			 1)

__attribute__((noinline)) static ssize_t read_slow(int fd, void *buf, size_t n)
{
	TRACKED_READ(fd, 0, buf, REAL(read)(fd, buf, n));
}

__attribute__((noinline)) static ssize_t readv_slow(int fd, const struct iovec *iov, int iovcnt)
{
	TRACKED_READ(fd, 0, NULL, REAL(readv)(fd, iov, iovcnt));
}

__attribute__((noinline)) static ssize_t recv_slow(int fd, void *buf, size_t n, int flags)
{
	TRACKED_READ(fd, flags, buf, REAL(recv)(fd, buf, n, flags));
}

__attribute__((noinline)) static ssize_t recvfrom_slow(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen)
{
	TRACKED_READ(fd, flags, buf, REAL(recvfrom)(fd, buf, n, flags, addr, alen));
}

__attribute__((noinline)) static ssize_t recvmsg_slow(int fd, struct msghdr *msg, int flags)
{
	TRACKED_READ(fd, flags, NULL, REAL(recvmsg)(fd, msg, flags));
}

__attribute__((noinline)) static ssize_t read_chk_slow(int fd, void *buf, size_t n, size_t buflen)
{
	TRACKED_READ(fd, 0, buf, REAL(read_chk)(fd, buf, n, buflen));
}

__attribute__((noinline)) static ssize_t recv_chk_slow(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	TRACKED_READ(fd, flags, buf, REAL(recv_chk)(fd, buf, n, buflen, flags));
}

__attribute__((noinline)) static ssize_t recvfrom_chk_slow(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr, socklen_t *alen)
{
	TRACKED_READ(fd, flags, buf, REAL(recvfrom_chk)(fd, buf, n, buflen, flags, addr, alen));
}

__attribute__((noinline)) static int recvmmsg_slow(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t)
{
	if (!conntab_rw_fast(fd) || (flags & MSG_PEEK))
		return REAL(recvmmsg)(fd, v, n, flags, t);
	int r = REAL(recvmmsg)(fd, v, n, flags, t);
	if (r > 0)
		rx_done(fd, mmsg_bytes(v, r), NULL);
	return r;
}

__attribute__((noinline)) static ssize_t write_slow(int fd, const void *buf, size_t n)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(write)(fd, buf, n);
	if (muted(c) && muted_drop(c, fd, n))
		return (ssize_t)n;
	return tx_done(fd, REAL_NOHOOK(write)(fd, buf, n));
}

__attribute__((noinline)) static ssize_t writev_slow(int fd, const struct iovec *iov, int iovcnt)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(writev)(fd, iov, iovcnt);
	if (muted(c) && iovcnt >= 0) {
		ssize_t t = iov_bytes(iov, (size_t)iovcnt);
		if (t >= 0 && muted_drop(c, fd, (size_t)t))
			return t;
	}
	return tx_done(fd, REAL_NOHOOK(writev)(fd, iov, iovcnt));
}

__attribute__((noinline)) static ssize_t send_slow(int fd, const void *buf, size_t n, int flags)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(send)(fd, buf, n, flags);
	if (muted(c) && muted_drop(c, fd, n))
		return (ssize_t)n;
	return tx_done(fd, REAL_NOHOOK(send)(fd, buf, n, flags));
}

__attribute__((noinline)) static ssize_t sendto_slow(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t alen)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(sendto)(fd, buf, n, flags, addr, alen);
	if (muted(c) && muted_drop(c, fd, n))
		return (ssize_t)n;
	return tx_done(fd, REAL_NOHOOK(sendto)(fd, buf, n, flags, addr, alen));
}

__attribute__((noinline)) static ssize_t sendmsg_slow(int fd, const struct msghdr *msg, int flags)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(sendmsg)(fd, msg, flags);
	if (muted(c) && msg) {
		ssize_t t = iov_bytes(msg->msg_iov, msg->msg_iovlen);
		if (t >= 0 && muted_drop(c, fd, (size_t)t))
			return t;
	}
	return tx_done(fd, REAL_NOHOOK(sendmsg)(fd, msg, flags));
}

/* sendmmsg's part of a drop: every message taken whole (at most UIO_MAXIOV,
 * as the kernel sends), or false when one would make the real call fail. */
__attribute__((noinline, cold)) static bool mmsg_drop(struct conn *c, int fd, struct mmsghdr *v,
						       unsigned n, int *r)
{
	size_t total = 0;
	unsigned k = n < UIO_MAXIOV ? n : UIO_MAXIOV;
	if (k && !v)
		return false;
	for (unsigned i = 0; i < k; i++) {
		ssize_t t = iov_bytes(v[i].msg_hdr.msg_iov, v[i].msg_hdr.msg_iovlen);
		if (t < 0 || (size_t)t > UINT_MAX)
			return false;
		total += (size_t)t;
	}
	if (!muted_drop(c, fd, total))
		return false;
	for (unsigned i = 0; i < k; i++)
		v[i].msg_len = (unsigned)iov_bytes(v[i].msg_hdr.msg_iov, v[i].msg_hdr.msg_iovlen);
	*r = (int)k;
	return true;
}

__attribute__((noinline)) static int sendmmsg_slow(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(sendmmsg)(fd, v, n, flags);
	int r;
	if (muted(c) && mmsg_drop(c, fd, v, n, &r))
		return r;
	r = REAL_NOHOOK(sendmmsg)(fd, v, n, flags);
	if (r > 0)
		tx_done(fd, mmsg_bytes(v, r));
	return r;
}

/* sendfile's part of a drop: from a regular file, what sendfile would have
 * sent (up to its end) is skipped, the offset advanced as sendfile does;
 * from anything else (rare: sendfile reads files) the call is made. */
__attribute__((noinline, cold)) static bool sendfile_drop(struct conn *c, int out, int in,
							   off_t *off, size_t n, ssize_t *r)
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
	if (!muted_drop(c, out, k))
		return false;
	if (off)
		*off = pos + (off_t)k;
	else
		lseek(in, pos + (off_t)k, SEEK_SET);
	errno = saved;
	*r = (ssize_t)k;
	return true;
}

__attribute__((noinline)) static ssize_t sendfile_slow(int out, int in, off_t *off, size_t n)
{
	struct conn *c = conntab_rw_fast(out);
	ssize_t r;
	if (!c)
		return REAL(sendfile)(out, in, off, n);
	if (muted(c) && sendfile_drop(c, out, in, off, n, &r))
		return r;
	return tx_done(out, REAL(sendfile)(out, in, off, n));
}

/* The exported wrappers of the fast symbols (symbols.h: path fast): an fd
 * below CONNTAB_LOW with no record goes through the fast table, anything
 * else to the slow path above (field_slow). */
#define FIRST_ARG(a, ...) a
#define FAST_WRAPPER(ret, field, sym, params, args, bind, path) FAST_WRAPPER_##path(ret, field, sym, params, args)
#define FAST_WRAPPER_own(ret, field, sym, params, args)
#define FAST_WRAPPER_fast_nohook(ret, field, sym, params, args) FAST_WRAPPER_fast(ret, field, sym, params, args)
#define FAST_WRAPPER_fast(ret, field, sym, params, args)                          \
	SHIM_EXPORT ret sym params                                                    \
	{                                                                             \
		if (FASTFD(FIRST_ARG args))                                               \
			return __atomic_load_n(&gate_fast.field, __ATOMIC_RELAXED) args;       \
		return field##_slow args;                                                 \
	}
SHIM_SYMBOLS(FAST_WRAPPER)

/* Built for LP64 targets only (x86_64, aarch64), where off_t is 64-bit and
 * glibc's sendfile64 is the same function as sendfile. */
_Static_assert(sizeof(off_t) == 8, "graceshim assumes a 64-bit off_t (LP64)");
SHIM_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return sendfile(out, in, off, n);
}

/* splice's part of a drop: into a socket splice moves bytes out of a pipe;
 * they are read out of it and discarded (at most 4 KiB: splice may move
 * fewer bytes than asked), without blocking when asked not to.  Anything
 * else the real call would refuse: it is made. */
__attribute__((noinline, cold)) static bool splice_drop(struct conn *c, int in, off_t *ioff,
							 int out, size_t n, unsigned flags,
							 ssize_t *r)
{
	char buf[4096];
	struct stat st;
	int saved = errno;
	bool pipe_in = !ioff && fstat(in, &st) == 0 && S_ISFIFO(st.st_mode);
	errno = saved;
	if (!pipe_in || !muted_drop(c, out, n))
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

/* splice moves bytes from a socket (received) or to one (sent). */
SHIM_EXPORT ssize_t splice(int in, off_t *ioff, int out, off_t *ooff, size_t n, unsigned flags)
{
	struct conn *oc = conntab_rw_fast(out);
	ssize_t dropped;
	if (!conntab_rw_fast(in) && !oc)
		return REAL(splice)(in, ioff, out, ooff, n, flags);
	if (oc && muted(oc) && splice_drop(oc, in, ioff, out, n, flags, &dropped))
		return rx_done(in, dropped, NULL);
	ssize_t r = REAL(splice)(in, ioff, out, ooff, n, flags);
	rx_done(in, r, NULL);
	return tx_done(out, r);
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
__attribute__((noinline)) static void forget_tracked(int fd)
{
	if (!conntab_lock_unless_held())
		return;
	forget_fd_locked(fd);
	conntab_unlock();
}

static inline void forget(int fd)
{
	sweeper_fds_closing((unsigned)fd, (unsigned)fd);
	if (__builtin_expect(conntab_fast(fd) != NULL, 0) && proc_own())
		forget_tracked(fd);
}

/* Forgets the records of a range of fds in one walk of the table, with no
 * list allocated: no malloc in a wrapper (see the allocator in conntab.c: a
 * signal handler's fork() would deadlock on malloc's locks). */
static void forget_range(unsigned lo, unsigned hi)
{
	int sp[CONNTAB_MAX_SPECIALS];
	size_t k;

	sweeper_fds_closing(lo, hi);
	/* A vfork child closes its own fd table, not ours. */
	if (!proc_own() || !conntab_lock_unless_held())
		return;
	conntab_each_conn_in_locked(lo, hi, forget_locked);
	k = conntab_special_fds_locked(lo, hi, sp, CONNTAB_MAX_SPECIALS);
	for (size_t i = 0; i < k; i++)
		forget_fd_locked(sp[i]);
	conntab_unlock();
}

/* newfd now refers to oldfd's socket: one socket, several fds.  The new fd
 * gets a record of its own, and both count as shared (a read on one is not
 * seen on the other), as across a fork. */
static void track_dup(int oldfd, int newfd)
{
	if (__builtin_expect(!conntab_fast(oldfd), 1) || oldfd == newfd || !proc_own())
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
			n->flags = c->flags | CONN_SHARED;
			c->flags |= CONN_SHARED;
			if (log_on(LOG_TRACE))
				log_peer_copy(oldfd, newfd);
			conntab_stats.accepted--; /* the same connection, not a new one */
		}
	} else if (c) {
		n = conntab_special_add_locked(newfd, (enum conn_kind)c->kind, c->ino);
		if (n) {
			n->tx = c->tx;         /* a signalfd's mask */
			n->family = c->family; /* a listener's sock_kind() */
			n->flags = c->flags;
		}
	}
	conntab_unlock();
	errno = saved;
}

SHIM_EXPORT int close(int fd)
{
	forget(fd);
	return REAL(close)(fd);
}

SHIM_EXPORT int dup(int oldfd)
{
	int r = REAL(dup)(oldfd);
	if (r >= 0)
		track_dup(oldfd, r);
	return r;
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
	if (oldfd != newfd)
		forget(newfd);
	int r = REAL(dup2)(oldfd, newfd);
	if (r >= 0)
		track_dup(oldfd, r);
	return r;
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd != newfd)
		forget(newfd);
	int r = REAL(dup3) ? REAL(dup3)(oldfd, newfd, flags)
			   : (int)real_syscall(SYS_dup3, oldfd, newfd, flags);
	if (r >= 0)
		track_dup(oldfd, r);
	return r;
}

/* fcntl's third argument is an int or a pointer; like glibc's own fcntl we
 * take it as a pointer-sized word and pass it on unchanged. */
static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
	int r = fn(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		track_dup(fd, r);
	return r;
}

SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(REAL(fcntl), fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(REAL(fcntl64) ? REAL(fcntl64) : REAL(fcntl), fd, cmd, arg);
}

SHIM_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	int saved = errno;
	/* Forget only what the call will close: not with CLOSE_RANGE_CLOEXEC,
	 * and not when it is bound to fail (EINVAL: unknown flags, first >
	 * last), as then nothing is closed. */
	if (!(flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) && !(flags & CLOSE_RANGE_CLOEXEC) &&
	    first <= last)
		forget_range(first, last);
	errno = saved;
	if (REAL(close_range))
		return REAL(close_range)(first, last, flags);
	return (int)real_syscall(SYS_close_range, first, last, flags);
}

SHIM_EXPORT void closefrom(int lowfd)
{
	int saved = errno;
	if (lowfd >= 0)
		forget_range((unsigned)lowfd, ~0u);
	errno = saved;
	if (REAL(closefrom))
		REAL(closefrom)(lowfd);
	else
		real_syscall(SYS_close_range, lowfd < 0 ? 0u : (unsigned)lowfd, ~0u, 0);
}

/* ---- event-loop waits ----------------------------------------------------
 * Pure pass-through.  They are here for REAL()'s hook alone: after a trigger
 * in a single-threaded host, the next wait of its event loop is where the
 * deferred sweeper starts (see sweeper_ensure_started). */

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return REAL(poll)(fds, n, timeout);
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m)
{
	return REAL(ppoll)(fds, n, t, m);
}

SHIM_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t)
{
	return REAL(select)(n, r, w, e, t);
}

SHIM_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t,
			const sigset_t *m)
{
	return REAL(pselect)(n, r, w, e, t, m);
}

SHIM_EXPORT int epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
	return REAL(epoll_wait)(ep, ev, max, timeout);
}

SHIM_EXPORT int epoll_pwait(int ep, struct epoll_event *ev, int max, int timeout, const sigset_t *m)
{
	return REAL(epoll_pwait)(ep, ev, max, timeout, m);
}

/* ---- processes ------------------------------------------------------------
 * The child of a fork has no sweeper thread.  pthread_atfork's child handler
 * resets our state, but creating a thread there is not allowed; here, after
 * fork() has returned in the child, it is (servers create thread pools in
 * forked workers all the time).  A child that inherited connections gets its
 * sweeper now, since it may never accept again. */
SHIM_EXPORT pid_t fork(void)
{
	pid_t pid = REAL(fork)();
	if (pid > 0 && shim_active && proc_own()) {
		/* A child forked while we listen is a worker we may have to
		 * reach when we drain (workers.c). */
		int saved = errno;
		size_t listening = 0;
		if (conntab_lock_unless_held()) {
			listening = conntab_special_count_locked(CONN_KIND_LISTENER);
			conntab_unlock();
		}
		if (listening)
			workers_forked(pid);
		errno = saved;
	}
	if (pid == 0 && shim_active) {
		int saved = errno;
		size_t n = 0;
		if (conntab_lock_unless_held()) {
			n = conntab_count_locked();
			conntab_unlock();
		}
		if (n)
			sweeper_ensure_started();
		errno = saved;
	}
	return pid;
}

/* ---- signals ------------------------------------------------------------- */

/* A trigger signal's disposition is the shim's business once it is started:
 * start it first (sig_action reads only whether it is active). */
static inline void start_for(int sig)
{
	if (sig > 0 && sig < NSIG)
		shim_start();
}

SHIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	start_for(sig);
	return sig_action(sig, act, oact);
}

/* glibc exports its implementation under this name too, and runtimes that
 * define their own sigaction() reach libc's through it. */
SHIM_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact);
SHIM_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	start_for(sig);
	return sig_action(sig, act, oact);
}

SHIM_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	/* Non-trigger signals keep glibc's own signal(), which also honours
	 * siginterrupt(); trigger signals get its BSD semantics through us. */
	if (sig <= 0 || sig >= NSIG || !shim_on() || !shim_is_trigger(sig))
		return REAL(signal)(sig, handler);
	return sig_signal(sig, handler, SA_RESTART, 1);
}

SHIM_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

/* SysV sigset(): SIG_HOLD blocks, anything else installs with an empty
 * mask and no flags and unblocks (as glibc's sysdeps/posix/sigset.c). */
SHIM_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
	if (sig <= 0 || sig >= NSIG || !shim_on() || !shim_is_trigger(sig))
		return REAL(sigset)(sig, disp);
	sigset_t set, oset;
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (disp == SIG_HOLD) {
		struct sigaction oact;
		if (sigprocmask(SIG_BLOCK, &set, &oset) < 0)
			return SIG_ERR;
		if (sigismember(&oset, sig))
			return SIG_HOLD;
		if (sig_action(sig, NULL, &oact) < 0)
			return SIG_ERR;
		return oact.sa_handler;
	}
	sighandler_t old = sig_signal(sig, disp, 0, 0);
	if (old == SIG_ERR || sigprocmask(SIG_UNBLOCK, &set, &oset) < 0)
		return SIG_ERR;
	return sigismember(&oset, sig) ? SIG_HOLD : old;
}

/* Applications that block a trigger signal and take it from signalfd() or
 * sigwait*(): we notice it where they do, and take nothing away. */
SHIM_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
	int r = REAL(signalfd)(fd, mask, flags);
	if (r >= 0 && shim_on()) {
		int saved = errno;
		uint64_t bits = 0;
		for (int s = 1; s <= 64 && s < NSIG; s++)
			if (sigismember(mask, s) == 1 && shim_is_trigger(s))
				bits |= 1ull << (s - 1);
		if (!conntab_lock_unless_held()) {
			errno = saved;
			return r;
		}
		struct conn *c = conntab_slot_locked(r);
		if (bits && !(c && c->kind == CONN_KIND_SIGNALFD)) {
			struct stat st;
			if (fstat(r, &st) == 0)
				c = conntab_special_add_locked(r, CONN_KIND_SIGNALFD, (uint64_t)st.st_ino);
		}
		if (c && c->kind == CONN_KIND_SIGNALFD) {
			if (bits)
				c->tx = bits; /* a new mask for an existing signalfd */
			else
				conntab_special_remove_locked(c);
		}
		conntab_unlock();
		errno = saved;
	}
	return r;
}

static void noticed(int sig)
{
	if (sig > 0 && sig < NSIG && shim_on() && shim_is_trigger(sig))
		sweeper_signal(sig);
}

SHIM_EXPORT int sigwait(const sigset_t *set, int *sig)
{
	int r = REAL(sigwait)(set, sig);
	if (r == 0)
		noticed(*sig);
	return r;
}

SHIM_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	int r = REAL(sigwaitinfo)(set, info);
	noticed(r);
	return r;
}

SHIM_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *t)
{
	int r = REAL(sigtimedwait)(set, info, t);
	noticed(r);
	return r;
}

/* What strict ISO C programs get for signal(): one-shot, not self-masking. */
SHIM_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	start_for(sig);
	return sig_signal(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

SHIM_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return __sysv_signal(sig, handler);
}

/* ---- syscall(): the fd-ending numbers ---------------------------------------
 * libuv (Node.js) closes sockets with syscall(SYS_close, fd), which no close()
 * wrapper sees: the record would stay until the drain's identity check
 * dropped it, and trace logs would miss the close.  syscall() is variadic and
 * its callers pass up to six long-sized arguments in registers; like glibc's
 * own syscall() we take six and pass them on, whatever the number needs.
 * Every other number is a compare and a call (real_syscall6: never REAL()'s
 * hook).  The shim's own raw calls do not come here: they use real_syscall
 * (real.h), so that closing one of its own fds is no close of the host's. */

static inline bool syscall_ends_fds(long nr)
{
	return nr == SYS_close || nr == SYS_close_range || nr == SYS_dup3
#ifdef SYS_dup2 /* x86_64 only: aarch64 has dup3 alone */
	       || nr == SYS_dup2
#endif
		;
}

/* The bookkeeping of close(), close_range(), dup2() and dup3() above, on
 * the kernel's argument types (an int fd passed as a long is truncated as
 * the kernel truncates it). */
__attribute__((noinline)) static long syscall_fds(long nr, long a, long b, long c, long d, long e,
						  long f)
{
	if (nr == SYS_close) {
		forget((int)a);
		return real_syscall6(nr, a, b, c, d, e, f);
	}
	if (nr == SYS_close_range) {
		unsigned first = (unsigned)a, last = (unsigned)b, flags = (unsigned)c;
		int saved = errno;
		if (!(flags & ~(unsigned)(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) &&
		    !(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
			forget_range(first, last);
		errno = saved;
		return real_syscall6(nr, a, b, c, d, e, f);
	}
	/* dup2, dup3 */
	int oldfd = (int)a, newfd = (int)b;
	if (oldfd != newfd)
		forget(newfd);
	long r = real_syscall6(nr, a, b, c, d, e, f);
	if (r >= 0)
		track_dup(oldfd, (int)r);
	return r;
}

SHIM_EXPORT long syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
	long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
	va_end(ap);
	if (__builtin_expect(!syscall_ends_fds(nr), 1))
		return real_syscall6(nr, a, b, c, d, e, f);
	return syscall_fds(nr, a, b, c, d, e, f);
}
