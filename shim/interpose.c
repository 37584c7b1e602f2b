/*
 * The exported wrappers, and nothing else.  Each one calls the real function
 * first; then, for an fd, asks the lock-free filter whether it is tracked at
 * all, so an fd we do not track costs a few loads and no lock.  errno is left
 * exactly as the real call left it: bookkeeping that may touch errno saves and
 * restores it, and nothing here ever writes errno = 0.
 */
#include "conntab.h"
#include "log.h"
#include "real.h"
#include "shim.h"
#include "signals.h"
#include "sweeper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/sendfile.h>
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

/* ---- accept: start tracking ---------------------------------------- */

/* All sockets live on the one sockfs device: a record keeps only the inode
 * and this is compared once per identity check. */
static uint64_t sock_dev;

static void track(int fd, const struct sockaddr *addr, const socklen_t *addrlen)
{
	int saved = errno;
	struct stat st;
	int family = 0;
	socklen_t len = sizeof family;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		goto out;
	/* The family decides whether TCP_INFO applies.  The caller's buffer
	 * has it unless it passed none. */
	if (addr && addrlen && *addrlen >= sizeof(sa_family_t))
		family = addr->sa_family;
	else if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
		family = 0;
	uint64_t dev = __atomic_load_n(&sock_dev, __ATOMIC_RELAXED);
	if (!dev)
		__atomic_store_n(&sock_dev, dev = (uint64_t)st.st_dev, __ATOMIC_RELAXED);
	else if (dev != (uint64_t)st.st_dev)
		goto out; /* not on sockfs: never seen on Linux; leave it alone */
	uint64_t now = shim_now_ns();
	conntab_lock();
	struct conn *c = conntab_insert_locked(fd, (uint64_t)st.st_ino, family, now);
	conntab_unlock();
	if (!c) {
		LOG(LOG_WARN, "fd %d: not tracked (out of memory or fd beyond %u)", fd, CONNTAB_MAX_FD);
		goto out;
	}
	if (log_on(LOG_TRACE)) {
		char p[64];
		log_peer(fd, p, sizeof p);
		log_msg(LOG_TRACE, "connection %s accepted (fd %d)", p, fd);
	}
	sweeper_ensure_started();
	sweeper_accepted();
out:
	errno = saved;
}

uint64_t shim_sock_dev(void)
{
	return __atomic_load_n(&sock_dev, __ATOMIC_RELAXED);
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	int r = REAL(accept)(fd, addr, addrlen);
	if (r >= 0 && shim_on())
		track(r, addr, addrlen);
	return r;
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	int r;
	if (REAL(accept4))
		r = REAL(accept4)(fd, addr, addrlen, flags);
	else
		r = (int)syscall(SYS_accept4, fd, addr, addrlen, flags);
	if (r >= 0 && shim_on())
		track(r, addr, addrlen);
	return r;
}

/* ---- reads: count bytes ----------------------------------------------- */

static void first_byte(struct conn *c)
{
	char p[64];
	log_peer(c->fd, p, sizeof p);
	log_msg(LOG_TRACE, "connection %s first byte received", p);
}

static inline ssize_t count_rx(int fd, ssize_t r)
{
	if (r > 0) {
		struct conn *c = conntab_fast(fd);
		if (c) {
			if (__builtin_expect(conn_rx(c) == 0, 0) && log_on(LOG_TRACE))
				first_byte(c);
			conn_add_rx(c, (uint64_t)r);
		}
	}
	return r;
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return count_rx(fd, REAL(read)(fd, buf, n));
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	return count_rx(fd, REAL(readv)(fd, iov, iovcnt));
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t r = REAL(recv)(fd, buf, n, flags);
	/* MSG_PEEK leaves the bytes queued: FIONREAD still sees them, and
	 * they are counted when the host consumes them. */
	return flags & MSG_PEEK ? r : count_rx(fd, r);
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			     socklen_t *alen)
{
	ssize_t r = REAL(recvfrom)(fd, buf, n, flags, addr, alen);
	return flags & MSG_PEEK ? r : count_rx(fd, r);
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t r = REAL(recvmsg)(fd, msg, flags);
	return flags & MSG_PEEK ? r : count_rx(fd, r);
}

/* _FORTIFY_SOURCE entry points: Debian builds nginx and friends with them. */
SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	return count_rx(fd, REAL(read_chk)(fd, buf, n, buflen));
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	ssize_t r = REAL(recv_chk)(fd, buf, n, buflen, flags);
	return flags & MSG_PEEK ? r : count_rx(fd, r);
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				   struct sockaddr *addr, socklen_t *alen)
{
	ssize_t r = REAL(recvfrom_chk)(fd, buf, n, buflen, flags, addr, alen);
	return flags & MSG_PEEK ? r : count_rx(fd, r);
}

static int mmsg_bytes(struct mmsghdr *v, int n, uint64_t *bytes)
{
	*bytes = 0;
	for (int i = 0; i < n; i++)
		*bytes += v[i].msg_len;
	return n;
}

SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t)
{
	int r = REAL(recvmmsg)(fd, v, n, flags, t);
	uint64_t bytes;
	if (r > 0 && !(flags & MSG_PEEK) && mmsg_bytes(v, r, &bytes) && bytes)
		count_rx(fd, (ssize_t)bytes);
	return r;
}

/* ---- writes: count bytes sent, and who spoke last (policy idle) --------- */

static inline ssize_t count_tx(int fd, ssize_t r)
{
	if (r > 0) {
		struct conn *c = conntab_fast(fd);
		if (c)
			conn_add_tx(c, (uint64_t)r);
	}
	return r;
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	return count_tx(fd, REAL(write)(fd, buf, n));
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	return count_tx(fd, REAL(writev)(fd, iov, iovcnt));
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	return count_tx(fd, REAL(send)(fd, buf, n, flags));
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *addr, socklen_t alen)
{
	return count_tx(fd, REAL(sendto)(fd, buf, n, flags, addr, alen));
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return count_tx(fd, REAL(sendmsg)(fd, msg, flags));
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	int r = REAL(sendmmsg)(fd, v, n, flags);
	uint64_t bytes;
	if (r > 0 && mmsg_bytes(v, r, &bytes) && bytes)
		count_tx(fd, (ssize_t)bytes);
	return r;
}

SHIM_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	return count_tx(out, REAL(sendfile)(out, in, off, n));
}

/* off_t is 64-bit here (x86_64): sendfile64 is the same function. */
SHIM_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return sendfile(out, in, off, n);
}

/* splice moves bytes from a socket (received) or to one (sent). */
SHIM_EXPORT ssize_t splice(int in, off_t *ioff, int out, off_t *ooff, size_t n, unsigned flags)
{
	ssize_t r = REAL(splice)(in, ioff, out, ooff, n, flags);
	count_rx(in, r);
	return count_tx(out, r);
}

/* ---- fd ends: forget ------------------------------------------------------
 * We forget before the real call: afterwards the number may already belong to
 * a new connection accepted on another thread, whose fresh record we would
 * wrongly drop. */

static void forget_locked(struct conn *c)
{
	if (log_on(LOG_TRACE)) {
		char p[64];
		log_peer(c->fd, p, sizeof p);
		log_msg(LOG_TRACE, "connection %s closed (fd %d, %llu bytes received, %llu sent, %llu ms%s)",
			p, c->fd, (unsigned long long)conn_rx(c), (unsigned long long)conn_tx(c),
			(unsigned long long)((shim_now_ns() - c->accepted_ns) / 1000000),
			(c->flags & CONN_RELEASED) ? ", released by graceshim" : "");
	}
	conntab_remove_locked(c);
}

static void forget(int fd)
{
	if (__builtin_expect(!conntab_fast(fd), 1))
		return;
	conntab_lock();
	struct conn *c = conntab_find_locked(fd);
	if (c)
		forget_locked(c);
	conntab_unlock();
}

static void forget_range(unsigned lo, unsigned hi)
{
	struct conn_ref *refs;
	size_t n;

	conntab_lock();
	n = conntab_count_locked();
	if (n && (refs = malloc(n * sizeof *refs))) {
		n = conntab_refs_locked(refs, n);
		for (size_t i = 0; i < n; i++) {
			if ((unsigned)refs[i].fd >= lo && (unsigned)refs[i].fd <= hi) {
				struct conn *c = conntab_find_locked(refs[i].fd);
				if (c)
					forget_locked(c);
			}
		}
		free(refs);
	}
	/* Out of memory: the records stay and are caught as stale by the
	 * identity check before any action. */
	conntab_unlock();
}

SHIM_EXPORT int close(int fd)
{
	forget(fd);
	return REAL(close)(fd);
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
	if (oldfd != newfd)
		forget(newfd);
	return REAL(dup2)(oldfd, newfd);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd != newfd)
		forget(newfd);
	if (REAL(dup3))
		return REAL(dup3)(oldfd, newfd, flags);
	return (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

SHIM_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	int saved = errno;
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		forget_range(first, last);
	errno = saved;
	if (REAL(close_range))
		return REAL(close_range)(first, last, flags);
	return (int)syscall(SYS_close_range, first, last, flags);
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
		syscall(SYS_close_range, lowfd < 0 ? 0u : (unsigned)lowfd, ~0u, 0);
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
	if (pid == 0 && shim_active) {
		int saved = errno;
		conntab_lock();
		size_t n = conntab_count_locked();
		conntab_unlock();
		if (n)
			sweeper_ensure_started();
		errno = saved;
	}
	return pid;
}

/* ---- signals ------------------------------------------------------------- */

SHIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
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

/* What strict ISO C programs get for signal(): one-shot, not self-masking. */
SHIM_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return sig_signal(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

SHIM_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return __sysv_signal(sig, handler);
}
