/*
 * SPDX-License-Identifier: MIT
 *
 * The one list of interposed libc symbols.  Each entry generates a field of
 * the table of real functions (real.h), its binding (real.c), the line of
 * the version script that exports it (graceshim.map.in, preprocessed into
 * the build directory) and, for the read and write calls that take the
 * untracked fast path, the exported wrapper, its slot in the fast table and
 * the slow path it falls back to (interpose.c).  Adding a symbol is one line
 * here and its wrapper.  bench/passthrough.c, the benchmarks' floor, forwards
 * the same list.
 *
 * X(ret, field, symbol, params, args, bind, path):
 *   field   the name in struct real_fns (the symbol without its leading
 *           underscores);
 *   bind    must: without it the shim cannot forward calls (a fatal
 *           message); opt: NULL when this libc lacks it;
 *   path    fast: an fd-first call whose exported wrapper is generated
 *           (interpose.c) and jumps through the fast table for an
 *           untracked fd (gate.h), else to its slow path field_slow;
 *           fast_read, fast_write: the same for the reads and the
 *           writes, whose wrappers also jump through the fast table for a
 *           connection whose transfer needs nothing of the shim (track.h,
 *           track_lane); a write's door through a closed gate never runs
 *           the deferred work (signal handlers write to self-pipes);
 *           fast_read_fds, fast_write_fds: a fast_read or fast_write
 *           whose message may carry fds (SCM_RIGHTS): the wrapper keeps
 *           a frame, and a call that succeeded with a control part has it
 *           looked at (field_fds_seen);
 *           own: a hand-written wrapper;
 *           own_special: the same, for a variadic or void function, which
 *           a generic forwarder (bench/passthrough.c) cannot pass on.
 * The order is the binding order: mandatory symbols first, so that a
 * wrapper re-entered while binding (dlsym may allocate) finds them.
 *
 * No #include: the version script is made from this file alone (cc -E).
 */
#ifndef GRACESHIM_SYMBOLS_H
#define GRACESHIM_SYMBOLS_H

/* The tables are laid out by hand, one entry a line. */
// clang-format off
#define SHIM_SYMBOLS(X)                                                                                \
	X(int, accept, accept, (int fd, struct sockaddr *addr, socklen_t *alen), (fd, addr, alen),     \
	  must, own)                                                                                   \
	X(ssize_t, read, read, (int fd, void *buf, size_t n), (fd, buf, n), must, fast_read)           \
	X(ssize_t, readv, readv, (int fd, const struct iovec *iov, int iovcnt), (fd, iov, iovcnt),     \
	  must, fast_read)                                                                             \
	X(ssize_t, recv, recv, (int fd, void *buf, size_t n, int flags), (fd, buf, n, flags),          \
	  must, fast_read)                                                                             \
	X(ssize_t, recvfrom, recvfrom,                                                                 \
	  (int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen),            \
	  (fd, buf, n, flags, addr, alen), must, fast_read)                                            \
	X(ssize_t, recvmsg, recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags),        \
	  must, fast_read_fds)                                                                         \
	X(int, close, close, (int fd), (fd), must, own)                                                \
	X(int, dup2, dup2, (int oldfd, int newfd), (oldfd, newfd), must, own)                          \
	X(int, sigaction, sigaction, (int sig, const struct sigaction *act, struct sigaction *oact),   \
	  (sig, act, oact), must, own)                                                                 \
	X(sighandler_t, signal, signal, (int sig, sighandler_t handler), (sig, handler), must, own)    \
	X(pid_t, fork, fork, (void), (), must, own)                                                    \
	X(ssize_t, write, write, (int fd, const void *buf, size_t n), (fd, buf, n), must, fast_write)  \
	X(ssize_t, writev, writev, (int fd, const struct iovec *iov, int iovcnt),                      \
	  (fd, iov, iovcnt), must, fast_write)                                                         \
	X(ssize_t, send, send, (int fd, const void *buf, size_t n, int flags), (fd, buf, n, flags),    \
	  must, fast_write)                                                                            \
	X(ssize_t, sendto, sendto,                                                                     \
	  (int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,                  \
	   socklen_t alen),                                                                            \
	  (fd, buf, n, flags, addr, alen), must, fast_write)                                           \
	X(ssize_t, sendmsg, sendmsg, (int fd, const struct msghdr *msg, int flags),                    \
	  (fd, msg, flags), must, fast_write_fds)                                                      \
	X(int, sendmmsg, sendmmsg, (int fd, struct mmsghdr *v, unsigned n, int flags),                 \
	  (fd, v, n, flags), must, fast_write_fds)                                                     \
	X(int, recvmmsg, recvmmsg,                                                                     \
	  (int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t),                      \
	  (fd, v, n, flags, t), must, fast_read_fds)                                                   \
	X(ssize_t, sendfile, sendfile, (int out, int in, off_t *off, size_t n), (out, in, off, n),     \
	  must, fast)                                                                                  \
	X(ssize_t, splice, splice,                                                                     \
	  (int in, off_t *ioff, int out, off_t *ooff, size_t n, unsigned flags),                       \
	  (in, ioff, out, ooff, n, flags), must, own)                                                  \
	X(int, listen, listen, (int fd, int backlog), (fd, backlog), must, own)                        \
	X(int, dup, dup, (int oldfd), (oldfd), must, own)                                              \
	X(int, fcntl, fcntl, (int fd, int cmd, ...), (), must, own_special)                            \
	X(int, signalfd, signalfd, (int fd, const sigset_t *mask, int flags), (fd, mask, flags),       \
	  must, own)                                                                                   \
	X(int, sigwait, sigwait, (const sigset_t *set, int *sig), (set, sig), must, own)               \
	X(int, sigwaitinfo, sigwaitinfo, (const sigset_t *set, siginfo_t *info), (set, info),          \
	  must, own)                                                                                   \
	X(int, sigtimedwait, sigtimedwait,                                                             \
	  (const sigset_t *set, siginfo_t *info, const struct timespec *t), (set, info, t),            \
	  must, own)                                                                                   \
	X(sighandler_t, sigset, sigset, (int sig, sighandler_t disp), (sig, disp), must, own)          \
	X(int, poll, poll, (struct pollfd *fds, nfds_t n, int timeout), (fds, n, timeout), must,       \
	  own)                                                                                         \
	X(int, ppoll, ppoll,                                                                           \
	  (struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m),                 \
	  (fds, n, t, m), must, own)                                                                   \
	X(int, select, select, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t),            \
	  (n, r, w, e, t), must, own)                                                                  \
	X(int, pselect, pselect,                                                                       \
	  (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m),       \
	  (n, r, w, e, t, m), must, own)                                                               \
	X(int, epoll_wait, epoll_wait, (int ep, struct epoll_event *ev, int max, int timeout),         \
	  (ep, ev, max, timeout), must, own)                                                           \
	X(int, epoll_pwait, epoll_pwait,                                                               \
	  (int ep, struct epoll_event *ev, int max, int timeout, const sigset_t *m),                   \
	  (ep, ev, max, timeout, m), must, own)                                                        \
	/* optional: NULL when this libc lacks them (accept4: the system call) */                      \
	X(int, accept4, accept4, (int fd, struct sockaddr *addr, socklen_t *alen, int flags),          \
	  (fd, addr, alen, flags), opt, own)                                                           \
	X(int, fcntl64, fcntl64, (int fd, int cmd, ...), (), opt, own_special)                         \
	X(int, dup3, dup3, (int oldfd, int newfd, int flags), (oldfd, newfd, flags), opt, own)         \
	X(int, close_range, close_range, (unsigned first, unsigned last, int flags),                   \
	  (first, last, flags), opt, own)                                                              \
	X(void, closefrom, closefrom, (int lowfd), (lowfd), opt, own_special)                          \
	X(ssize_t, read_chk, __read_chk, (int fd, void *buf, size_t n, size_t buflen),                 \
	  (fd, buf, n, buflen), opt, fast_read)                                                        \
	X(ssize_t, recv_chk, __recv_chk, (int fd, void *buf, size_t n, size_t buflen, int flags),      \
	  (fd, buf, n, buflen, flags), opt, fast_read)                                                 \
	X(ssize_t, recvfrom_chk, __recvfrom_chk,                                                       \
	  (int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,               \
	   socklen_t *alen),                                                                           \
	  (fd, buf, n, buflen, flags, addr, alen), opt, fast_read)                                     \
	X(long, syscall, syscall, (long nr, ...), (), opt, own_special)

/* Exported under these names too, with no table entry of their own: other
 * names of a symbol above (sendfile64, __sigaction, bsd_signal, sysv_signal,
 * __sysv_signal), or entry points bound where they are defined (proc.c:
 * vfork, __vfork, clone). */
#define SHIM_OTHER_EXPORTS(X)                                                                          \
	X(sendfile64) X(__sigaction) X(bsd_signal) X(sysv_signal) X(__sysv_signal) X(vfork)            \
	X(__vfork) X(clone)
// clang-format on

#endif
