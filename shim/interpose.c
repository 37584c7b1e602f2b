/*
 * SPDX-License-Identifier: MIT
 *
 * The exported wrappers of the interposed functions (symbols.h) and their
 * out-of-line slow paths.  Each calls the real function first, then asks the
 * lock-free filter whether the fd is tracked at all (an fd we do not track
 * costs a few loads and no lock), and leaves errno as the real call left it.
 */
#include "conntab.h"
#include "gate.h"
#include "log.h"
#include "mute.h"
#include "serving.h"
#include "shim.h"
#include "signals.h"
#include "start.h"
#include "sweeper.h"
#include "track.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc exports these without declaring them in any header. */
SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				   struct sockaddr *addr, socklen_t *alen);
SHIM_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler);
SHIM_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n);

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	int r = REAL(accept)(fd, addr, addrlen);
	if (r >= 0 && start_on())
		return track_accepted(fd, r, false);
	return r;
}

SHIM_EXPORT int listen(int fd, int backlog)
{
	int r = REAL(listen)(fd, backlog);
	if (r == 0 && start_on()) {
		track_listening(fd);
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
	    !__atomic_load_n(&track_nonblocking_host, __ATOMIC_RELAXED))
		__atomic_store_n(&track_nonblocking_host, 1, __ATOMIC_RELAXED); /* an event loop */
	if (r >= 0 && start_on())
		return track_accepted(fd, r, flags & SOCK_NONBLOCK);
	return r;
}

/* ---- reads and writes: counted -------------------------------------------
 * A write on a tracked connection is counted here, a read by track_rx; one
 * the kernel counts for us past its first bytes keeps only its direction. */
static ssize_t tx_done(int fd, ssize_t r)
{
	if (r > 0) {
		struct conn *c = conntab_rw_fast(fd);
		if (c && track_dir_only(c))
			return track_turn(c, CONN_DIR_TX, r);
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

/* The slow path of a read on fd: a tracked connection's read is watched
 * around the call, then counted. */
#define TRACKED_READ(fd, flags, buf, call)                                                         \
	do {                                                                                       \
		struct conn *c_ = conntab_rw_fast(fd);                                             \
		if (!c_ || ((flags)&MSG_PEEK))                                                     \
			return call;                                                               \
		if (__builtin_expect(track_dir_only(c_), 1))                                       \
			return track_turn_rx(fd, call, c_);                                        \
		struct conn *w_ = track_read_watch(c_, fd, flags);                                 \
		return track_rx(fd, track_read_unwatch(fd, w_, call), buf);                        \
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
#define FASTFD(fd)                                                                                 \
	__builtin_expect((unsigned)(fd) < CONNTAB_LOW &&                                           \
				 !__atomic_load_n(&conntab_rw[(unsigned)(fd)], __ATOMIC_RELAXED),  \
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

__attribute__((noinline)) static ssize_t recvfrom_slow(int fd, void *buf, size_t n, int flags,
						       struct sockaddr *addr, socklen_t *alen)
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

__attribute__((noinline)) static ssize_t recv_chk_slow(int fd, void *buf, size_t n, size_t buflen,
						       int flags)
{
	TRACKED_READ(fd, flags, buf, REAL(recv_chk)(fd, buf, n, buflen, flags));
}

__attribute__((noinline)) static ssize_t recvfrom_chk_slow(int fd, void *buf, size_t n,
							   size_t buflen, int flags,
							   struct sockaddr *addr, socklen_t *alen)
{
	TRACKED_READ(fd, flags, buf, REAL(recvfrom_chk)(fd, buf, n, buflen, flags, addr, alen));
}

__attribute__((noinline)) static int recvmmsg_slow(int fd, struct mmsghdr *v, unsigned n, int flags,
						   struct timespec *t)
{
	if (!conntab_rw_fast(fd) || (flags & MSG_PEEK))
		return REAL(recvmmsg)(fd, v, n, flags, t);
	int r = REAL(recvmmsg)(fd, v, n, flags, t);
	if (r > 0)
		track_rx(fd, mmsg_bytes(v, r), NULL);
	return r;
}

/* recvmsg and recvmmsg may receive fds (SCM_RIGHTS): a connection another
 * process accepted and hands over (track.h, track_received).  Looked at in
 * the kernel's answer only, once the call succeeded: msg is then known to
 * be the host's memory, and its control length is what the kernel wrote. */
static inline ssize_t recvmsg_fds_seen(ssize_t r, int fd, struct msghdr *msg, int flags)
{
	(void)fd, (void)flags;
	if (__builtin_expect(r >= 0 && msg->msg_controllen, 0) && start_on())
		track_received(msg);
	return r;
}

static inline int recvmmsg_fds_seen(int r, int fd, struct mmsghdr *v, unsigned n, int flags,
				    struct timespec *t)
{
	(void)fd, (void)n, (void)flags, (void)t;
	for (int i = 0; i < r; i++)
		if (__builtin_expect(v[i].msg_hdr.msg_controllen != 0, 0) && start_on())
			track_received(&v[i].msg_hdr);
	return r;
}

/* sendmsg and sendmmsg may hand fds over (SCM_RIGHTS): a connection of
 * ours sent to a worker (track.h, track_sent).  Looked at once the call
 * succeeded, as for the reads above. */
static inline ssize_t sendmsg_fds_seen(ssize_t r, int fd, const struct msghdr *msg, int flags)
{
	(void)fd, (void)flags;
	if (__builtin_expect(r >= 0 && msg->msg_controllen, 0) && start_on())
		track_sent(msg);
	return r;
}

static inline int sendmmsg_fds_seen(int r, int fd, struct mmsghdr *v, unsigned n, int flags)
{
	(void)fd, (void)n, (void)flags;
	for (int i = 0; i < r; i++)
		if (__builtin_expect(v[i].msg_hdr.msg_controllen != 0, 0) && start_on())
			track_sent(&v[i].msg_hdr);
	return r;
}

__attribute__((noinline)) static ssize_t write_slow(int fd, const void *buf, size_t n)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(write)(fd, buf, n);
	if (mute_active(c) && mute_drop(c, fd, n))
		return (ssize_t)n;
	return tx_done(fd, REAL_NOHOOK(write)(fd, buf, n));
}

__attribute__((noinline)) static ssize_t writev_slow(int fd, const struct iovec *iov, int iovcnt)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(writev)(fd, iov, iovcnt);
	if (mute_active(c) && iovcnt >= 0) {
		ssize_t t = mute_iov_bytes(iov, (size_t)iovcnt);
		if (t >= 0 && mute_drop(c, fd, (size_t)t))
			return t;
	}
	return tx_done(fd, REAL_NOHOOK(writev)(fd, iov, iovcnt));
}

__attribute__((noinline)) static ssize_t send_slow(int fd, const void *buf, size_t n, int flags)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(send)(fd, buf, n, flags);
	if (mute_active(c) && mute_drop(c, fd, n))
		return (ssize_t)n;
	return tx_done(fd, REAL_NOHOOK(send)(fd, buf, n, flags));
}

__attribute__((noinline)) static ssize_t sendto_slow(int fd, const void *buf, size_t n, int flags,
						     const struct sockaddr *addr, socklen_t alen)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(sendto)(fd, buf, n, flags, addr, alen);
	if (mute_active(c) && mute_drop(c, fd, n))
		return (ssize_t)n;
	return tx_done(fd, REAL_NOHOOK(sendto)(fd, buf, n, flags, addr, alen));
}

__attribute__((noinline)) static ssize_t sendmsg_slow(int fd, const struct msghdr *msg, int flags)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(sendmsg)(fd, msg, flags);
	if (mute_active(c) && msg) {
		ssize_t t = mute_iov_bytes(msg->msg_iov, msg->msg_iovlen);
		if (t >= 0 && mute_drop(c, fd, (size_t)t))
			return t;
	}
	return tx_done(fd, REAL_NOHOOK(sendmsg)(fd, msg, flags));
}

__attribute__((noinline)) static int sendmmsg_slow(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	struct conn *c = conntab_rw_fast(fd);
	if (!c)
		return REAL_NOHOOK(sendmmsg)(fd, v, n, flags);
	int r;
	if (mute_active(c) && mute_mmsg_drop(c, fd, v, n, &r))
		return r;
	r = REAL_NOHOOK(sendmmsg)(fd, v, n, flags);
	if (r > 0)
		tx_done(fd, mmsg_bytes(v, r));
	return r;
}

__attribute__((noinline)) static ssize_t sendfile_slow(int out, int in, off_t *off, size_t n)
{
	struct conn *c = conntab_rw_fast(out);
	ssize_t r;
	if (!c)
		return REAL(sendfile)(out, in, off, n);
	if (mute_active(c) && mute_sendfile_drop(c, out, in, off, n, &r))
		return r;
	return tx_done(out, REAL(sendfile)(out, in, off, n));
}

/* The exported wrappers of the fast symbols (symbols.h: path fast): an fd
 * below CONNTAB_LOW with no record goes through the fast table, anything
 * else to the slow path above (field_slow).  A read or a write (fast_read,
 * fast_write) also goes through the fast table when it needs nothing of the
 * shim: a connection past its first bytes whose last transfer went the same
 * way (track_lane). */
#define FIRST_ARG(a, ...) a
#define FAST_WRAPPER(ret, field, sym, params, args, bind, path)                                    \
	FAST_WRAPPER_##path(ret, field, sym, params, args)
#define FAST_WRAPPER_own(ret, field, sym, params, args)
#define FAST_WRAPPER_own_special(ret, field, sym, params, args)
/* A TURN (track_lane): the call through the fast table, then the
 * direction's store (done: track_turn_rx or track_turn_tx).  The record
 * comes last, so that the wrapper passes the arguments on as they are. */
#define STRIP(...) __VA_ARGS__
#define FAST_TURN(ret, field, params, args, done)                                                  \
	__attribute__((noinline)) static ret field##_turn(STRIP params, struct conn *c_)           \
	{                                                                                          \
		return (ret)done(FIRST_ARG args,                                                   \
				 __atomic_load_n(&gate_fast.field, __ATOMIC_RELAXED) args, c_);    \
	}
#define FAST_LANE_BODY(field, args, dir)                                                           \
	do {                                                                                       \
		struct conn *c_ = NULL;                                                            \
		enum track_lane l_ = track_lane(FIRST_ARG args, dir, &c_);                         \
		if (__builtin_expect(l_ == TRACK_LANE_FORWARD, 1))                                 \
			return __atomic_load_n(&gate_fast.field, __ATOMIC_RELAXED) args;           \
		if (l_ == TRACK_LANE_TURN)                                                         \
			return field##_turn(STRIP args, c_);                                       \
		return field##_slow args;                                                          \
	} while (0)
#define FAST_WRAPPER_LANE(ret, field, sym, params, args, dir, done)                                \
	FAST_TURN(ret, field, params, args, done)                                                  \
	SHIM_EXPORT ret sym params                                                                 \
	{                                                                                          \
		FAST_LANE_BODY(field, args, dir);                                                  \
	}
#define FAST_WRAPPER_fast_read(ret, field, sym, params, args)                                      \
	FAST_WRAPPER_LANE(ret, field, sym, params, args, CONN_DIR_RX, track_turn_rx)
/* The same lanes, then the message's control part (field_fds_seen): the
 * calls that may pass fds. */
#define FAST_WRAPPER_FDS(ret, field, sym, params, args, dir, done)                                 \
	FAST_TURN(ret, field, params, args, done)                                                  \
	static inline ret field##_lanes params                                                     \
	{                                                                                          \
		FAST_LANE_BODY(field, args, dir);                                                  \
	}                                                                                          \
	SHIM_EXPORT ret sym params                                                                 \
	{                                                                                          \
		return field##_fds_seen(field##_lanes args, STRIP args);                           \
	}
#define FAST_WRAPPER_fast_read_fds(ret, field, sym, params, args)                                  \
	FAST_WRAPPER_FDS(ret, field, sym, params, args, CONN_DIR_RX, track_turn_rx)
#define FAST_WRAPPER_fast_write(ret, field, sym, params, args)                                     \
	FAST_WRAPPER_LANE(ret, field, sym, params, args, CONN_DIR_TX, track_turn_tx)
#define FAST_WRAPPER_fast_write_fds(ret, field, sym, params, args)                                 \
	FAST_WRAPPER_FDS(ret, field, sym, params, args, CONN_DIR_TX, track_turn_tx)
#define FAST_WRAPPER_fast(ret, field, sym, params, args)                                           \
	SHIM_EXPORT ret sym params                                                                 \
	{                                                                                          \
		if (FASTFD(FIRST_ARG args))                                                        \
			return __atomic_load_n(&gate_fast.field, __ATOMIC_RELAXED) args;           \
		return field##_slow args;                                                          \
	}
SHIM_SYMBOLS(FAST_WRAPPER)

/* Built for LP64 targets only (x86_64, aarch64), where off_t is 64-bit and
 * glibc's sendfile64 is the same function as sendfile. */
_Static_assert(sizeof(off_t) == 8, "graceshim assumes a 64-bit off_t (LP64)");
SHIM_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return sendfile(out, in, off, n);
}

/* splice moves bytes from a socket (received) or to one (sent). */
SHIM_EXPORT ssize_t splice(int in, off_t *ioff, int out, off_t *ooff, size_t n, unsigned flags)
{
	struct conn *oc = conntab_rw_fast(out);
	ssize_t dropped;
	if (!conntab_rw_fast(in) && !oc)
		return REAL(splice)(in, ioff, out, ooff, n, flags);
	if (oc && mute_active(oc) && mute_splice_drop(oc, in, ioff, out, n, flags, &dropped))
		return track_rx(in, dropped, NULL);
	ssize_t r = REAL(splice)(in, ioff, out, ooff, n, flags);
	track_rx(in, r, NULL);
	return tx_done(out, r);
}

SHIM_EXPORT int close(int fd)
{
	track_forget(fd);
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
		track_forget(newfd);
	int r = REAL(dup2)(oldfd, newfd);
	if (r >= 0)
		track_dup(oldfd, r);
	if (r == 2 && proc_own())  /* not a vfork child's, in our memory */
		log_stderr_note(); /* the host's own redirect of its stderr */
	return r;
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd != newfd)
		track_forget(newfd);
	int r = REAL(dup3) ? REAL(dup3)(oldfd, newfd, flags)
			   : (int)real_syscall(SYS_dup3, oldfd, newfd, flags);
	if (r >= 0)
		track_dup(oldfd, r);
	if (r == 2 && proc_own())
		log_stderr_note();
	return r;
}

/* fcntl's third argument is an int or a pointer; like glibc's own fcntl we
 * take it as a pointer-sized word and pass it on unchanged. */
static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
	int r = fn(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		track_dup(fd, r);
	else if (r >= 0 && cmd == F_SETFL)
		track_set_nonblocking(fd, (long)arg & O_NONBLOCK);
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
	if (!(flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) &&
	    !(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		track_forget_range(first, last);
	errno = saved;
	if (REAL(close_range))
		return REAL(close_range)(first, last, flags);
	return (int)real_syscall(SYS_close_range, first, last, flags);
}

SHIM_EXPORT void closefrom(int lowfd)
{
	int saved = errno;
	if (lowfd >= 0)
		track_forget_range((unsigned)lowfd, ~0u);
	errno = saved;
	if (REAL(closefrom))
		REAL(closefrom)(lowfd);
	else
		real_syscall(SYS_close_range, lowfd < 0 ? 0u : (unsigned)lowfd, ~0u, 0);
}

/* ---- event-loop waits ----------------------------------------------------
 * Pure pass-through.  They are here for the gate's deferred work alone (gate.h): after a trigger
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
 * What a fork means to the shim is start.c's (start_forked). */
SHIM_EXPORT pid_t fork(void)
{
	pid_t pid = REAL(fork)();
	start_forked(pid);
	return pid;
}

/* ---- signals ------------------------------------------------------------- */

/* A trigger signal's disposition is the shim's business once it is started:
 * start it first (sig_action reads only whether it is active). */
static inline void start_for(int sig)
{
	if (sig > 0 && sig < NSIG)
		start_ensure();
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
	/* Signals we do not watch keep glibc's own signal(), which also
	 * honours siginterrupt(); watched signals get its BSD semantics
	 * through us. */
	if (sig <= 0 || sig >= NSIG || !start_on() || !sig_watched(sig))
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
	if (sig <= 0 || sig >= NSIG || !start_on() || !sig_watched(sig))
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

/* Applications that block a watched signal and take it from signalfd() or
 * sigwait*(): we notice it where they do, and take nothing away. */
SHIM_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
	int r = REAL(signalfd)(fd, mask, flags);
	if (r >= 0 && start_on())
		sig_fd_opened(r, mask);
	return r;
}

static void noticed(int sig)
{
	if (sig > 0 && sig < NSIG && start_on() && sig_watched(sig))
		sig_noticed(sig);
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
		track_forget((int)a);
		return real_syscall6(nr, a, b, c, d, e, f);
	}
	if (nr == SYS_close_range) {
		unsigned first = (unsigned)a, last = (unsigned)b, flags = (unsigned)c;
		int saved = errno;
		if (!(flags & ~(unsigned)(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) &&
		    !(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
			track_forget_range(first, last);
		errno = saved;
		return real_syscall6(nr, a, b, c, d, e, f);
	}
	/* dup2, dup3 */
	int oldfd = (int)a, newfd = (int)b;
	if (oldfd != newfd)
		track_forget(newfd);
	long r = real_syscall6(nr, a, b, c, d, e, f);
	if (r >= 0)
		track_dup(oldfd, (int)r);
	if (r == 2 && proc_own())
		log_stderr_note();
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
