/*
 * The few synchronisation primitives the shim needs, portable across the
 * architectures it builds for (x86_64, aarch64): a pause for spin loops.
 * Spinning is only ever short here (see conntab_lock and the signal slots'
 * lock); the hint lets the sibling hyperthread run (x86 PAUSE) or yields the
 * pipeline (aarch64 YIELD), as the kernel's cpu_relax() does.
 */
#ifndef GRACESHIM_SYNC_H
#define GRACESHIM_SYNC_H

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif
