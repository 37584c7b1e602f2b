/*
 * SPDX-License-Identifier: MIT
 *
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
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/select.h>
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
EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact);

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

/* The shim's own list of interposed symbols (shim/symbols.h), so that the
 * floor interposes what graceshim interposes; its variadic and void ones
 * (path own_special) are forwarded by hand below.  Then the other names
 * graceshim exports for some of them, with their signatures. */
#include "../shim/symbols.h"

/* return type, name, symbol, parameters, arguments */
#define OTHER_SYMBOLS(X)                                                                   \
	X(ssize_t, sendfile64, "sendfile64", (int o, int i, off64_t *off, size_t n),           \
	  (o, i, off, n))                                                                      \
	X(int, __sigaction, "__sigaction",                                                     \
	  (int sig, const struct sigaction *act, struct sigaction *oact), (sig, act, oact))    \
	X(sighandler_t, bsd_signal, "bsd_signal", (int sig, sighandler_t h), (sig, h))         \
	X(sighandler_t, sysv_signal, "sysv_signal", (int sig, sighandler_t h), (sig, h))       \
	X(sighandler_t, __sysv_signal, "__sysv_signal", (int sig, sighandler_t h), (sig, h))

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

#define SHIM_FORWARD(ret, field, sym, params, args, bind, path) \
	SHIM_FORWARD_##path(ret, sym, params, args)
#define SHIM_FORWARD_own(ret, sym, params, args) FORWARD(ret, sym, #sym, params, args)
#define SHIM_FORWARD_fast(ret, sym, params, args) FORWARD(ret, sym, #sym, params, args)
#define SHIM_FORWARD_fast_read(ret, sym, params, args) FORWARD(ret, sym, #sym, params, args)
#define SHIM_FORWARD_fast_read_fds(ret, sym, params, args) FORWARD(ret, sym, #sym, params, args)
#define SHIM_FORWARD_fast_write(ret, sym, params, args) FORWARD(ret, sym, #sym, params, args)
#define SHIM_FORWARD_fast_write_fds(ret, sym, params, args) FORWARD(ret, sym, #sym, params, args)
#define SHIM_FORWARD_own_special(ret, sym, params, args)

SHIM_SYMBOLS(SHIM_FORWARD)
OTHER_SYMBOLS(FORWARD)

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
#define SHIM_BIND(ret, field, sym, params, args, bind, path) SHIM_BIND_##path(ret, sym, params, args)
#define SHIM_BIND_own(ret, sym, params, args) BIND(ret, sym, #sym, params, args)
#define SHIM_BIND_fast(ret, sym, params, args) BIND(ret, sym, #sym, params, args)
#define SHIM_BIND_fast_read(ret, sym, params, args) BIND(ret, sym, #sym, params, args)
#define SHIM_BIND_fast_read_fds(ret, sym, params, args) BIND(ret, sym, #sym, params, args)
#define SHIM_BIND_fast_write(ret, sym, params, args) BIND(ret, sym, #sym, params, args)
#define SHIM_BIND_fast_write_fds(ret, sym, params, args) BIND(ret, sym, #sym, params, args)
#define SHIM_BIND_own_special(ret, sym, params, args)

__attribute__((constructor)) static void passthrough_bind_all(void)
{
	SHIM_SYMBOLS(SHIM_BIND)
	OTHER_SYMBOLS(BIND)
	*(void **)&next_closefrom = dlsym(RTLD_NEXT, "closefrom");
	*(void **)&next_fcntl = dlsym(RTLD_NEXT, "fcntl");
	*(void **)&next_fcntl64 = dlsym(RTLD_NEXT, "fcntl64");
}
