/*
 * SPDX-License-Identifier: MIT
 *
 * failmalloc.so: a test-only preload library that makes malloc, calloc,
 * realloc and anonymous mmap fail (NULL or MAP_FAILED, errno ENOMEM) when,
 * and only when, they are called directly from code inside libgraceshim.so
 * (its table allocates with mmap, the sweeper's lists with malloc), so that the host and libc keep
 * working while the shim runs out of memory (tests/reliability/test_oom.c).
 *
 * Loaded next to the shim (LD_PRELOAD="libgraceshim.so failmalloc.so"): the
 * program defines no malloc, so the shim's calls bind to the first
 * definition in the global scope, which is this one in either order, ahead
 * of libc.  The real allocator is glibc's __libc_* entry points, not
 * dlsym(RTLD_NEXT): dlsym may itself allocate.
 *
 * FAILMALLOC="skip=N,count=M,every=K,size=S" (all optional): of the shim's
 * allocations (numbered from 1), the first N succeed; after them every K-th
 * one fails (K=1: each), M failures at most (0: no limit); with size=S only
 * requests of exactly S bytes are counted and can fail (the others always
 * succeed).  FAILMALLOC_LOG=1 writes one stderr line per shim allocation.
 * At exit one line on stderr:
 *   failmalloc: F of T allocations from libgraceshim.so failed
 * Without FAILMALLOC nothing fails.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static uintptr_t shim_lo, shim_hi; /* the shim's mapped segments */
static unsigned long skip, count, every = 1, size_only;
static int enabled, log_each;
static unsigned long seen, failed; /* atomics */

static int find_shim(struct dl_phdr_info *info, size_t len, void *data)
{
	(void)len;
	(void)data;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "libgraceshim.so"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		if (!shim_lo || lo < shim_lo)
			shim_lo = lo;
		if (hi > shim_hi)
			shim_hi = hi;
	}
	return 1;
}

static unsigned long field(const char *spec, const char *name, unsigned long dflt)
{
	const char *p = strstr(spec, name);
	return p ? strtoul(p + strlen(name), NULL, 10) : dflt;
}

/* Preloaded libraries are all mapped before any constructor runs, so the
 * shim's segments are known here, before its first allocation can matter
 * (an allocation before this constructor simply succeeds). */
__attribute__((constructor)) static void failmalloc_init(void)
{
	const char *spec = getenv("FAILMALLOC");
	log_each = getenv("FAILMALLOC_LOG") != NULL;
	dl_iterate_phdr(find_shim, NULL);
	if (!spec || !shim_lo)
		return;
	skip = field(spec, "skip=", 0);
	count = field(spec, "count=", 0);
	every = field(spec, "every=", 1);
	size_only = field(spec, "size=", 0);
	if (!every)
		every = 1;
	__atomic_store_n(&enabled, 1, __ATOMIC_RELEASE);
}

__attribute__((destructor)) static void failmalloc_fini(void)
{
	char line[128];
	int n = snprintf(line, sizeof line,
			 "failmalloc: %lu of %lu allocations from libgraceshim.so failed\n",
			 __atomic_load_n(&failed, __ATOMIC_RELAXED),
			 __atomic_load_n(&seen, __ATOMIC_RELAXED));
	syscall(SYS_write, 2, line, (size_t)n);
}

static int should_fail(const void *caller, size_t n, const char *what)
{
	uintptr_t a = (uintptr_t)caller;
	if (!__atomic_load_n(&enabled, __ATOMIC_ACQUIRE) || a < shim_lo || a >= shim_hi)
		return 0;
	if (size_only && n != size_only)
		return 0;
	unsigned long i = __atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED);
	int fail = i > skip && (i - skip) % every == 0 &&
		   (!count || __atomic_load_n(&failed, __ATOMIC_RELAXED) < count);
	if (fail)
		__atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
	if (log_each) {
		char line[96];
		int len = snprintf(line, sizeof line, "failmalloc: #%lu %s(%zu)%s\n", i, what, n,
				   fail ? " FAILED" : "");
		syscall(SYS_write, 2, line, (size_t)len);
	}
	return fail;
}

void *malloc(size_t n)
{
	if (should_fail(__builtin_return_address(0), n, "malloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *calloc(size_t nmemb, size_t n)
{
	if (should_fail(__builtin_return_address(0), nmemb * n, "calloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(nmemb, n);
}

void *realloc(void *p, size_t n)
{
	if (should_fail(__builtin_return_address(0), n, "realloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}

/* The real mmap is the system call: libc's own allocations use its internal
 * __mmap and never come here. */
void *mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off)
{
	if ((flags & MAP_ANONYMOUS) && should_fail(__builtin_return_address(0), n, "mmap")) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	long r = syscall(SYS_mmap, addr, n, prot, flags, fd, off);
	return r == -1 ? MAP_FAILED : (void *)r;
}
