/*
 * The floor: a minimal pass-through interposer for the same symbols as
 * graceshim.  Each wrapper loads a pointer found with dlsym(RTLD_NEXT),
 * tests it and jumps to it: four instructions, nothing else.  The pointers
 * are bound in a constructor and, should another library's constructor call
 * us first, by a cold out-of-line path on a NULL pointer (out of line so
 * the hot path needs no stack frame).  Built like the shim (-fPIC, -z now,
 * hidden by default), so the difference between this and graceshim is what
 * graceshim does, not how an interposer is linked.
 *
 * Built with -DPASS_CALL, every forwarding call is a call rather than a tail
 * jump, as in any wrapper that looks at the result: this second floor shows
 * how much of a wrapper's cost is that alone (one more return after the
 * system call, which the CPU may mispredict after a kernel entry).
 *
 * A symbol the next library lacks (closefrom on an old libc) fails with
 * ENOSYS (signal functions: SIG_ERR).  bench/run checks that this file
 * exports what libgraceshim.so exports.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/signalfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* glibc exports these without declaring them (or only for some standards). */
EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
			      struct sockaddr *addr, socklen_t *alen);
EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler);
EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler);
EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler);
EXPORT int close_range(unsigned first, unsigned last, int flags);
EXPORT void closefrom(int lowfd);
EXPORT int fcntl64(int fd, int cmd, ...);

#ifdef PASS_CALL
#define RET(call)                                                              \
	do {                                                                       \
		__typeof__(call) r_ = (call);                                          \
		__asm__ volatile("" : "+r"(r_));                                       \
		return r_;                                                             \
	} while (0)
#else
#define RET(call) return call
#endif

/* return type, name, symbol, parameters, arguments */
#define SYMBOLS(X)                                                                         \
	X(int, accept, "accept", (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l))       \
	X(int, accept4, "accept4", (int fd, struct sockaddr *a, socklen_t *l, int fl),         \
	  (fd, a, l, fl))                                                                      \
	X(ssize_t, read, "read", (int fd, void *b, size_t n), (fd, b, n))                      \
	X(ssize_t, readv, "readv", (int fd, const struct iovec *v, int c), (fd, v, c))         \
	X(ssize_t, recv, "recv", (int fd, void *b, size_t n, int fl), (fd, b, n, fl))          \
	X(ssize_t, recvfrom, "recvfrom",                                                       \
	  (int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *l),               \
	  (fd, b, n, fl, a, l))                                                                \
	X(ssize_t, recvmsg, "recvmsg", (int fd, struct msghdr *m, int fl), (fd, m, fl))        \
	X(int, recvmmsg, "recvmmsg",                                                           \
	  (int fd, struct mmsghdr *v, unsigned n, int fl, struct timespec *t),                 \
	  (fd, v, n, fl, t))                                                                   \
	X(ssize_t, write, "write", (int fd, const void *b, size_t n), (fd, b, n))              \
	X(ssize_t, writev, "writev", (int fd, const struct iovec *v, int c), (fd, v, c))       \
	X(ssize_t, send, "send", (int fd, const void *b, size_t n, int fl), (fd, b, n, fl))    \
	X(ssize_t, sendto, "sendto",                                                           \
	  (int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t l),    \
	  (fd, b, n, fl, a, l))                                                                \
	X(ssize_t, sendmsg, "sendmsg", (int fd, const struct msghdr *m, int fl), (fd, m, fl))  \
	X(int, sendmmsg, "sendmmsg", (int fd, struct mmsghdr *v, unsigned n, int fl),          \
	  (fd, v, n, fl))                                                                      \
	X(ssize_t, sendfile, "sendfile", (int o, int i, off_t *off, size_t n), (o, i, off, n)) \
	X(ssize_t, sendfile64, "sendfile64", (int o, int i, off64_t *off, size_t n),           \
	  (o, i, off, n))                                                                      \
	X(ssize_t, splice, "splice",                                                           \
	  (int i, off64_t *oi, int o, off64_t *oo, size_t n, unsigned fl),                     \
	  (i, oi, o, oo, n, fl))                                                               \
	X(ssize_t, __read_chk, "__read_chk", (int fd, void *b, size_t n, size_t bl),           \
	  (fd, b, n, bl))                                                                      \
	X(ssize_t, __recv_chk, "__recv_chk", (int fd, void *b, size_t n, size_t bl, int fl),   \
	  (fd, b, n, bl, fl))                                                                  \
	X(ssize_t, __recvfrom_chk, "__recvfrom_chk",                                           \
	  (int fd, void *b, size_t n, size_t bl, int fl, struct sockaddr *a, socklen_t *l),    \
	  (fd, b, n, bl, fl, a, l))                                                            \
	X(int, listen, "listen", (int fd, int backlog), (fd, backlog))                         \
	X(int, close, "close", (int fd), (fd))                                                 \
	X(int, dup, "dup", (int fd), (fd))                                                     \
	X(int, dup2, "dup2", (int o, int n), (o, n))                                           \
	X(int, dup3, "dup3", (int o, int n, int fl), (o, n, fl))                               \
	X(int, close_range, "close_range", (unsigned lo, unsigned hi, int fl), (lo, hi, fl))   \
	X(pid_t, fork, "fork", (void), ())                                                     \
	X(int, sigaction, "sigaction",                                                         \
	  (int sig, const struct sigaction *act, struct sigaction *oact), (sig, act, oact))    \
	X(sighandler_t, signal, "signal", (int sig, sighandler_t h), (sig, h))                 \
	X(sighandler_t, bsd_signal, "bsd_signal", (int sig, sighandler_t h), (sig, h))         \
	X(sighandler_t, sysv_signal, "sysv_signal", (int sig, sighandler_t h), (sig, h))       \
	X(sighandler_t, __sysv_signal, "__sysv_signal", (int sig, sighandler_t h), (sig, h))   \
	X(sighandler_t, sigset, "sigset", (int sig, sighandler_t h), (sig, h))                 \
	X(int, signalfd, "signalfd", (int fd, const sigset_t *m, int fl), (fd, m, fl))         \
	X(int, sigwait, "sigwait", (const sigset_t *m, int *sig), (m, sig))                    \
	X(int, sigwaitinfo, "sigwaitinfo", (const sigset_t *m, siginfo_t *i), (m, i))          \
	X(int, sigtimedwait, "sigtimedwait",                                                   \
	  (const sigset_t *m, siginfo_t *i, const struct timespec *t), (m, i, t))

#define FORWARD(ret, name, sym, params, args)                                  \
	static ret(*next_##name) params;                                           \
	__attribute__((noinline, cold)) static ret slow_##name params              \
	{                                                                          \
		if (!next_##name)                                                      \
			*(void **)&next_##name = dlsym(RTLD_NEXT, sym);                    \
		if (!next_##name) {                                                    \
			errno = ENOSYS;                                                    \
			return (ret)-1;                                                    \
		}                                                                      \
		return next_##name args;                                               \
	}                                                                          \
	EXPORT ret name params                                                     \
	{                                                                          \
		ret(*f) params = next_##name;                                          \
		if (__builtin_expect(!f, 0))                                           \
			return slow_##name args;                                           \
		RET(f args);                                                           \
	}

SYMBOLS(FORWARD)

/* Variadic: the third argument, when there is one, is an int or a pointer;
 * passing it on as a pointer is what every fcntl wrapper does. */
static int (*next_fcntl)(int, int, ...);
static int (*next_fcntl64)(int, int, ...);

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (__builtin_expect(!next_fcntl, 0))
		*(void **)&next_fcntl = dlsym(RTLD_NEXT, "fcntl");
	RET(next_fcntl(fd, cmd, arg));
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (__builtin_expect(!next_fcntl64, 0))
		*(void **)&next_fcntl64 = dlsym(RTLD_NEXT, "fcntl64");
	if (!next_fcntl64) {
		errno = ENOSYS;
		return -1;
	}
	RET(next_fcntl64(fd, cmd, arg));
}

/* void: no result to forward. */
static void (*next_closefrom)(int);

EXPORT void closefrom(int lowfd)
{
	if (__builtin_expect(!next_closefrom, 0))
		*(void **)&next_closefrom = dlsym(RTLD_NEXT, "closefrom");
	if (next_closefrom)
		next_closefrom(lowfd);
}

#define BIND(ret, name, sym, params, args) *(void **)&next_##name = dlsym(RTLD_NEXT, sym);

__attribute__((constructor)) static void passthrough_bind_all(void)
{
	SYMBOLS(BIND)
	*(void **)&next_closefrom = dlsym(RTLD_NEXT, "closefrom");
	*(void **)&next_fcntl = dlsym(RTLD_NEXT, "fcntl");
	*(void **)&next_fcntl64 = dlsym(RTLD_NEXT, "fcntl64");
}
