/*
 * SPDX-License-Identifier: MIT
 *
 * The real libc functions behind every interposed symbol (symbols.h).
 *
 * One table, bound once with dlsym(RTLD_NEXT) the first time any wrapper
 * needs it (another library's constructor may call accept() before ours
 * ran).  Wrappers reach it through REAL(name) (gate.h), which binds on
 * first use; this file only binds.
 */
#ifndef GRACESHIM_REAL_H
#define GRACESHIM_REAL_H

#include <signal.h>
#include <stdbool.h>
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <time.h>

#include "symbols.h"

/* One pointer per symbol of symbols.h, under its field name. */
#define REAL_FIELD(ret, field, sym, params, args, bind, path) ret(*field) params;
struct real_fns {
	SHIM_SYMBOLS(REAL_FIELD)
};
#undef REAL_FIELD

extern struct real_fns real_fns __attribute__((visibility("hidden")));
extern int real_bind_state __attribute__((visibility("hidden"))); /* 2: bound (ACQUIRE) */

/* Binds the table unless it is bound.  True when this call bound it; false
 * when it was bound already, when another thread bound it (this one waited),
 * and when re-entered while binding (dlsym may allocate): the caller then
 * sees what is bound so far, the mandatory symbols first. */
bool real_bind(void) __attribute__((visibility("hidden")));

static inline bool real_bound(void)
{
	return __atomic_load_n(&real_bind_state, __ATOMIC_ACQUIRE) == 2;
}

/* The system call, as glibc's syscall() makes it, for the shim's own raw
 * calls (log writes, the wake-up pipe, /proc walks) and the pass-through of
 * our exported syscall(): never through that wrapper and its fd
 * bookkeeping, never binding, never running the gate's deferred work.
 * Async-signal-safe.  Until the table is bound (or should this libc lack
 * syscall()) it is made without libc (real_syscall_raw), with the same
 * result and errno. */
long real_syscall_raw(long nr, long a, long b, long c, long d, long e, long f)
	__attribute__((visibility("hidden")));
static inline long real_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	long (*fn)(long, ...) = real_bound() ? real_fns.syscall : NULL;
	if (__builtin_expect(!fn, 0))
		return real_syscall_raw(nr, a, b, c, d, e, f);
	return fn(nr, a, b, c, d, e, f);
}
/* The same, variadic like syscall(): six long-sized arguments are passed on
 * whatever the number needs, as glibc's own syscall() does. */
long real_syscall(long nr, ...) __attribute__((visibility("hidden")));

/* fstat() that leaves errno alone, even when it fails: accept's identity
 * of every connection (track.c), whose wrapper then saves and restores
 * errno only on its rare paths.  The system call itself on x86_64 and
 * aarch64 (the kernel's struct stat is glibc's there); elsewhere glibc's,
 * with errno saved around it.  Returns 0 or -1. */
static inline int real_fstat_quiet(int fd, struct stat *st)
{
#if defined(__x86_64__)
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"((long)SYS_fstat), "D"((long)fd), "S"(st)
			 : "rcx", "r11", "memory");
	return r < 0 ? -1 : 0;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = SYS_fstat, x0 __asm__("x0") = fd;
	register struct stat *x1 __asm__("x1") = st;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1) : "memory");
	return x0 < 0 ? -1 : 0;
#else
	int saved = errno, r = fstat(fd, st);
	errno = saved;
	return r < 0 ? -1 : 0;
#endif
}

#endif
