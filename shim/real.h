/*
 * The real libc functions behind every interposed symbol.
 *
 * One table, bound once with dlsym(RTLD_NEXT) the first time any wrapper
 * needs it (another library's constructor may call accept() before ours
 * ran).  Wrappers call REAL(name)(...); after binding, that is one load, one
 * predictable branch and an indirect call.
 */
#ifndef GRACESHIM_REAL_H
#define GRACESHIM_REAL_H

#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
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
extern int real_ready __attribute__((visibility("hidden"))); /* __atomic_load_n(ACQUIRE) */

extern int real_bind_state __attribute__((visibility("hidden"))); /* 2: bound (ACQUIRE) */

void real_bind(void);
void real_bind_nohook(void);

/* The fast path of REAL() is one flag test.  Closing it (async-signal-safe:
 * one store) sends the next REAL() call on any thread through real_bind()
 * and real_hook, in the normal context of a wrapper: that is where the
 * sweeper thread is started when a trigger came in a signal handler. */
extern void (*real_hook)(void);
void real_fast_switch(int open); /* interpose.c: points fast_fns at libc or the slow paths */
static inline void real_close_fast(void)
{
	__atomic_store_n(&real_ready, 0, __ATOMIC_RELEASE);
	real_fast_switch(0);
}
void real_open_fast(void);

#define REAL(f)                                                              \
	(*(__builtin_expect(!__atomic_load_n(&real_ready, __ATOMIC_ACQUIRE), 0) \
		   ? (real_bind(), real_fns.f)                                   \
		   : real_fns.f))
/* For wrappers commonly called from signal handlers (write, send): never
 * runs the hook. */
#define REAL_NOHOOK(f)                                                       \
	(*(__builtin_expect(!__atomic_load_n(&real_ready, __ATOMIC_ACQUIRE), 0) \
		   ? (real_bind_nohook(), real_fns.f)                            \
		   : real_fns.f))

/* The system call, as glibc's syscall() makes it, for the shim's own raw
 * calls (log writes, the wake-up pipe, /proc walks): never through our
 * exported syscall() and its fd bookkeeping, never running REAL()'s hook.
 * Async-signal-safe; before libc's syscall() is bound (while binding, from
 * dlsym's allocator or the fatal message) it is made without libc. */
long real_syscall_unbound(long nr, long a, long b, long c, long d, long e, long f)
	__attribute__((visibility("hidden")));
static inline long real_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	long (*fn)(long, ...) = NULL;
	if (__builtin_expect(__atomic_load_n(&real_bind_state, __ATOMIC_ACQUIRE) == 2, 1))
		fn = real_fns.syscall;
	if (__builtin_expect(!fn, 0))
		return real_syscall_unbound(nr, a, b, c, d, e, f);
	return fn(nr, a, b, c, d, e, f);
}
/* The same, variadic like syscall(): six long-sized arguments are passed on
 * whatever the number needs, as glibc's own syscall() does. */
long real_syscall(long nr, ...) __attribute__((visibility("hidden")));

#endif
