/*
 * SPDX-License-Identifier: MIT
 *
 * Whose process this is (see proc.h): the cached owner pid, and the vfork()
 * and clone() entry points that mark a child sharing our memory.
 *
 * vfork() cannot be wrapped by a C function: the child returns from it on
 * the parent's stack, and a wrapper's frame would be used by the child and
 * then returned through again by the parent.  So vfork is a few instructions
 * of assembly that call proc_vfork_prepare() (which marks the thread and
 * returns libc's vfork), restore the stack exactly as it was at entry and
 * jump to libc's vfork: to libc, and to the kernel, it is the caller's own
 * call.
 */
#include "proc.h"

#include "real.h"

#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t proc_pid;
__thread int proc_vm_here;
int proc_vm_children;

void proc_set_owner(void)
{
	__atomic_store_n(&proc_pid, (pid_t)real_syscall(SYS_getpid), __ATOMIC_RELAXED);
	proc_vm_here = 0;
	__atomic_store_n(&proc_vm_children, 0, __ATOMIC_RELAXED);
}

bool proc_own_slow(void)
{
	pid_t owner = __atomic_load_n(&proc_pid, __ATOMIC_RELAXED);
	if (!owner)
		return true; /* before start-up: nothing to protect yet */
	if ((pid_t)real_syscall(SYS_getpid) != owner)
		return false;
	/* The owner again: this thread resumed after its vfork child exec'd
	 * or exited. */
	proc_vm_here = 0;
	return true;
}

typedef pid_t (*vfork_fn)(void);
static vfork_fn real_vfork;

static pid_t vfork_syscall(void)
{
	/* Only if libc has no vfork (it always has): fork semantics are a
	 * safe superset for the caller (clone with SIGCHLD is fork on every
	 * architecture; aarch64 has no fork system call). */
	return (pid_t)real_syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

/* Called by the vfork entry point below, on the caller's stack, before the
 * real vfork.  Returns the function to jump to. */
__attribute__((used)) PROC_HIDDEN vfork_fn proc_vfork_prepare(void);
vfork_fn proc_vfork_prepare(void)
{
	vfork_fn f = __atomic_load_n(&real_vfork, __ATOMIC_ACQUIRE);
	if (__builtin_expect(!f, 0)) {
		*(void **)&f = dlsym(RTLD_NEXT, "vfork");
		if (!f)
			f = vfork_syscall;
		__atomic_store_n(&real_vfork, f, __ATOMIC_RELEASE);
	}
	proc_vm_here = 1;
	return f;
}

#if defined(__x86_64__)
#ifdef __CET__
#define PROC_ENDBR "endbr64\n"
#else
#define PROC_ENDBR ""
#endif
/* Entry rsp is 8 mod 16: one push of 8 aligns the call.  rax holds the
 * function to jump to; vfork takes no argument, so clobbering the
 * caller-saved registers is allowed. */
#define PROC_VFORK_BODY                                                                  \
	PROC_ENDBR "sub $8, %rsp\n"                                                      \
		   "call proc_vfork_prepare\n"                                           \
		   "add $8, %rsp\n"                                                      \
		   "jmp *%rax\n"
#elif defined(__aarch64__)
#define PROC_VFORK_BODY                                                                  \
	"stp x29, x30, [sp, #-16]!\n"                                                    \
	"bl proc_vfork_prepare\n"                                                        \
	"ldp x29, x30, [sp], #16\n"                                                      \
	"br x0\n"
#else
#error "graceshim: vfork entry point not written for this architecture"
#endif

#define PROC_ENTRY(name)                                                                 \
	__asm__(".text\n"                                                                \
		".globl " #name "\n"                                                      \
		".type " #name ", @function\n"                                            \
		".p2align 4\n" #name ":\n" PROC_VFORK_BODY ".size " #name ", .-" #name "\n")

PROC_ENTRY(vfork);
PROC_ENTRY(__vfork);

/* clone(): a CLONE_VM child that is not a thread shares our memory.  With
 * CLONE_VFORK and the caller's TLS it is marked like a vfork child; any
 * other such child may run alongside us, so every later check asks the
 * kernel (rare: runtimes use vfork or posix_spawn). */
__attribute__((visibility("default"))) int clone(int (*fn)(void *), void *stack, int flags,
						  void *arg, ...);
int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	static int (*real_clone)(int (*)(void *), void *, int, void *, ...);
	va_list ap;
	va_start(ap, arg);
	void *ptid = va_arg(ap, void *);
	void *tls = va_arg(ap, void *);
	void *ctid = va_arg(ap, void *);
	va_end(ap);
	if (!__atomic_load_n(&real_clone, __ATOMIC_ACQUIRE)) {
		void *f = dlsym(RTLD_NEXT, "clone");
		__atomic_store_n((void **)&real_clone, f, __ATOMIC_RELEASE);
	}
	if ((flags & CLONE_VM) && !(flags & CLONE_THREAD)) {
		if ((flags & CLONE_VFORK) && !(flags & CLONE_SETTLS))
			proc_vm_here = 1;
		else
			__atomic_store_n(&proc_vm_children, 1, __ATOMIC_RELAXED);
	}
	return real_clone(fn, stack, flags, arg, ptid, tls, ctid);
}
