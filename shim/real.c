/*
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

#include <dlfcn.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A libc without accept4 (older than 2.10): the kernel has it.  Set from
 * the start, so that accept4 never needs a NULL test, even while binding. */
static int accept4_syscall(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

struct real_fns real_fns = {.accept4 = accept4_syscall};
int real_ready;
void (*real_hook)(void);

static int bind_state; /* 0 unbound, 1 binding, 2 bound */
static __thread int binding_here;

static void die_missing(const char *name)
{
	/* Without a mandatory symbol we cannot forward calls at all; running on
	 * would mean returning garbage to the host.  Say why, then abort. */
	static const char pre[] = "graceshim: fatal: cannot find the real ";
	static const char post[] = " in the next library (dlsym RTLD_NEXT)\n";
	syscall(SYS_write, 2, pre, sizeof pre - 1);
	syscall(SYS_write, 2, name, strlen(name));
	syscall(SYS_write, 2, post, sizeof post - 1);
	abort();
}

#define BIND(field, sym)                                   \
	do {                                                   \
		*(void **)&real_fns.field = dlsym(RTLD_NEXT, sym); \
		if (!real_fns.field)                               \
			die_missing(sym);                              \
	} while (0)
/* An optional symbol this libc lacks stays NULL, or keeps the fallback it
 * was given from the start (accept4). */
#define BIND_OPT(field, sym)                                   \
	do {                                                       \
		void *p_ = dlsym(RTLD_NEXT, sym);                      \
		if (p_)                                                \
			*(void **)&real_fns.field = p_;                    \
	} while (0)

void real_open_fast(void)
{
	if (__atomic_load_n(&bind_state, __ATOMIC_ACQUIRE) == 2) {
		real_fast_switch(1);
		__atomic_store_n(&real_ready, 1, __ATOMIC_RELEASE);
	}
}

void real_bind(void)
{
	if (__atomic_load_n(&bind_state, __ATOMIC_ACQUIRE) == 2) {
		void (*hook)(void) = __atomic_load_n(&real_hook, __ATOMIC_ACQUIRE);
		if (hook)
			hook(); /* it reopens the fast path when it is done */
		else
			real_open_fast();
		return;
	}
	real_bind_nohook();
}

void real_bind_nohook(void)
{
	int expect = 0;

	if (__atomic_load_n(&bind_state, __ATOMIC_ACQUIRE) == 2)
		return;
	if (binding_here)
		return; /* re-entered from dlsym: the caller sees what is bound so far */
	if (!__atomic_compare_exchange_n(&bind_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		/* Another thread is binding; dlsym takes well under a
		 * millisecond, so yielding until it is done is enough. */
		while (__atomic_load_n(&bind_state, __ATOMIC_ACQUIRE) != 2)
			sched_yield();
		return;
	}
	binding_here = 1;
#define BIND_must(field, sym) BIND(field, sym)
#define BIND_opt(field, sym) BIND_OPT(field, sym)
#define BIND_ONE(ret, field, sym, params, args, bind, path) BIND_##bind(field, #sym);
	SHIM_SYMBOLS(BIND_ONE)
	binding_here = 0;
	__atomic_store_n(&bind_state, 2, __ATOMIC_RELEASE);
	real_fast_switch(1);
	__atomic_store_n(&real_ready, 1, __ATOMIC_RELEASE);
}
