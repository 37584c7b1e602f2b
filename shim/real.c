/*
 * SPDX-License-Identifier: MIT
 *
 * Symbol binding: fills the one table of real functions.
 *
 * Binding is lazy and happens once.  We do not use pthread_once: a wrapper
 * re-entered on the same thread during binding (dlsym can call malloc, and
 * an interposed malloc may read a file) would deadlock on it.  Instead a
 * three-state flag lets one thread bind while others wait briefly, and the
 * binding thread itself returns early when re-entered: its wrappers then see
 * what is bound so far (mandatory symbols are bound first).
 */
#include "real.h"

#include "sync.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A libc without accept4 (older than 2.10): the kernel has it.  Set from
 * the start, so that accept4 never needs a NULL test, even while binding. */
static int accept4_syscall(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return (int)real_syscall(SYS_accept4, fd, addr, len, flags);
}

struct real_fns real_fns = {.accept4 = accept4_syscall};

int real_bind_state; /* 0 unbound, 1 binding, 2 bound */
static __thread int binding_here;

static void die_missing(const char *name)
{
	/* Without a mandatory symbol we cannot forward calls at all; running on
	 * would mean returning garbage to the host.  Say why, then abort. */
	static const char pre[] = "graceshim: fatal: cannot find the real ";
	static const char post[] = " in the next library (dlsym RTLD_NEXT)\n";
	real_syscall(SYS_write, 2, pre, sizeof pre - 1);
	real_syscall(SYS_write, 2, name, strlen(name));
	real_syscall(SYS_write, 2, post, sizeof post - 1);
	abort();
}

#define BIND(field, sym)                                                                           \
	do {                                                                                       \
		*(void **)&real_fns.field = dlsym(RTLD_NEXT, sym);                                 \
		if (!real_fns.field)                                                               \
			die_missing(sym);                                                          \
	} while (0)
/* An optional symbol this libc lacks stays NULL, or keeps the fallback it
 * was given from the start (accept4). */
#define BIND_OPT(field, sym)                                                                       \
	do {                                                                                       \
		void *p_ = dlsym(RTLD_NEXT, sym);                                                  \
		if (p_)                                                                            \
			*(void **)&real_fns.field = p_;                                            \
	} while (0)

bool real_bind(void)
{
	if (real_bound())
		return false;
	if (binding_here)
		return false; /* re-entered from dlsym: the caller sees what is bound so far */
	/* Another thread binding: dlsym takes well under a millisecond. */
	if (!sync_once_begin(&real_bind_state))
		return false;
	binding_here = 1;
#define BIND_must(field, sym) BIND(field, sym)
#define BIND_opt(field, sym) BIND_OPT(field, sym)
#define BIND_ONE(ret, field, sym, params, args, bind, path) BIND_##bind(field, #sym);
	SHIM_SYMBOLS(BIND_ONE)
	binding_here = 0;
	sync_once_end(&real_bind_state);
	return true;
}

/* The system call without libc, for the moments libc's syscall() is not
 * bound yet (a call made before or while binding, from dlsym's allocator or
 * from the fatal message above): the same convention as glibc's syscall(). */
long real_syscall_raw(long nr, long a, long b, long c, long d, long e, long f)
{
	long r;
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr, x0 __asm__("x0") = a, x1 __asm__("x1") = b,
			 x2 __asm__("x2") = c, x3 __asm__("x3") = d, x4 __asm__("x4") = e,
			 x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	r = x0;
#else
	(void)nr, (void)a, (void)b, (void)c, (void)d, (void)e, (void)f;
	r = -ENOSYS; /* only while binding, on an architecture not listed above */
#endif
	if ((unsigned long)r > -4096ul) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

long real_syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
	long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
	va_end(ap);
	return real_syscall6(nr, a, b, c, d, e, f);
}
