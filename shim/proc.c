/*
 * SPDX-License-Identifier: MIT
 *
 * Whose process this is (see proc.h): the cached owner pid, and the vfork()
 * and clone() entry points that mark a child sharing our memory.
 *
 * vfork() cannot be wrapped by a C function: the child returns from it on
 * the parent's stack, and a wrapper's frame would be used by the child and
 * then returned through again by the parent.  So vfork is a few instructions
 * of assembly.  They call proc_vfork_prepare() with the caller's return
 * address, which it keeps in a small per-thread stack (the child may
 * overwrite any stack slot or register the parent left, and the next vfork
 * may be a sanitizer's interceptor that calls C functions), marks the thread
 * and returns the next vfork (libc's, or an interceptor's); the entry point
 * then calls it with the stack as the caller left it, minus the return
 * address.  When it returns, proc_vfork_returned() gives the address to go
 * back to: in the child it leaves the stack as it is (the parent returns
 * through the same entry later); in the parent, whose child has exec'd or
 * exited, it pops the entry and clears the mark.
 *
 * The mark is cleared there and nowhere else.  A signal that lands after
 * the mark is set and before the child exists (in the instructions before
 * the system call, or in the call: the kernel then runs the handler and
 * restarts it, ERESTARTNOINTR) runs its handler in the owner with the mark
 * set; the shim calls in it see the owner's pid and go on as the owner, and
 * the child still runs marked.  Clearing the mark on the first call that
 * saw the owner's pid, as this code once did, let that child write its
 * signal(SIGTERM, SIG_DFL) into the parent's signal table.
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
int proc_vm_maybe;

void proc_set_owner(void)
{
	__atomic_store_n(&proc_pid, (pid_t)real_syscall(SYS_getpid), __ATOMIC_RELAXED);
	proc_vm_here = 0;
	__atomic_store_n(&proc_vm_children, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&proc_vm_maybe, 0, __ATOMIC_RELAXED);
}

bool proc_own_slow(void)
{
	/* Another thread's vfork is in flight: this thread is the owner's. */
	if (!proc_vm_here && !__atomic_load_n(&proc_vm_children, __ATOMIC_RELAXED))
		return true;
	pid_t owner = __atomic_load_n(&proc_pid, __ATOMIC_RELAXED);
	if (!owner)
		return true; /* before start-up: nothing to protect yet */
	if ((pid_t)real_syscall(SYS_getpid) != owner)
		return false;
	/* The owner: before its vfork child exists (a signal handler run
	 * while the kernel restarts vfork) or after it exec'd or exited.  The
	 * mark stays: vfork's return clears it. */
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

/* The return addresses of the vfork calls in progress on this thread,
 * innermost last: more than one only when a signal handler that runs during
 * vfork(), or a vfork child, calls vfork again.  Full (a handler left a
 * vfork by longjmp, again and again): the innermost entry is overwritten,
 * the lost ones belong to calls that will never return. */
#define PROC_VFORK_DEPTH 16
static __thread void *vfork_ret[PROC_VFORK_DEPTH] __attribute__((tls_model("initial-exec")));
static __thread unsigned vfork_depth __attribute__((tls_model("initial-exec")));

/* Called by the vfork entry point below, on the caller's stack, before the
 * next vfork, with the caller's return address.  Returns the function to
 * call. */
__attribute__((used)) HIDDEN vfork_fn proc_vfork_prepare(void *ret);
vfork_fn proc_vfork_prepare(void *ret)
{
	vfork_fn f = __atomic_load_n(&real_vfork, __ATOMIC_ACQUIRE);
	if (__builtin_expect(!f, 0)) {
		*(void **)&f = dlsym(RTLD_NEXT, "vfork");
		if (!f)
			f = vfork_syscall;
		__atomic_store_n(&real_vfork, f, __ATOMIC_RELEASE);
	}
	unsigned d = vfork_depth < PROC_VFORK_DEPTH ? vfork_depth : PROC_VFORK_DEPTH - 1;
	vfork_ret[d] = ret;
	vfork_depth = d + 1;
	__atomic_add_fetch(&proc_vm_maybe, 1, __ATOMIC_RELAXED);
	proc_vm_here = 1;
	return f;
}

/* The vfork (or CLONE_VFORK) returned in the caller: clears the mark, unless
 * the caller is itself a vfork child that vforked again (it still runs in
 * its parent's memory, on its parent's mark).  Touches no errno (getpid
 * cannot fail). */
static void vfork_returned(void)
{
	pid_t owner = __atomic_load_n(&proc_pid, __ATOMIC_RELAXED);
	if (!proc_vm_here || (owner && (pid_t)real_syscall(SYS_getpid) != owner))
		return;
	proc_vm_here = 0;
	__atomic_sub_fetch(&proc_vm_maybe, 1, __ATOMIC_RELAXED);
}

/* Called by the vfork entry point once the next vfork returned pid: in the
 * child (0), or in the parent (the child exec'd or exited, or vfork
 * failed).  Returns the caller's return address. */
__attribute__((used)) HIDDEN void *proc_vfork_returned(long pid);
void *proc_vfork_returned(long pid)
{
	unsigned d = vfork_depth;
	void *ret = vfork_ret[d ? d - 1 : 0];
	if ((pid_t)pid != 0) {
		vfork_depth = d ? d - 1 : 0;
		vfork_returned();
	}
	return ret;
}

#if defined(__x86_64__)
#ifdef __CET__
#define PROC_ENDBR "endbr64\n"
#else
#define PROC_ENDBR ""
#endif
/* Entry rsp is 8 mod 16, (%rsp) the caller's return address.  vfork takes
 * no argument, so the caller-saved registers are ours.  The next vfork is
 * called with rsp as the caller's call left it (0 mod 16), and we leave as a
 * ret would (rsp 8 above the entry), the result in rax. */
#define PROC_VFORK_BODY                                                                            \
	PROC_ENDBR "mov (%rsp), %rdi\n"                                                            \
		   "sub $8, %rsp\n"                                                                \
		   "call proc_vfork_prepare\n"                                                     \
		   "add $16, %rsp\n"                                                               \
		   "call *%rax\n"                                                                  \
		   "push %rax\n"                                                                   \
		   "sub $8, %rsp\n"                                                                \
		   "movslq %eax, %rdi\n"                                                           \
		   "call proc_vfork_returned\n"                                                    \
		   "mov %rax, %rcx\n"                                                              \
		   "add $8, %rsp\n"                                                                \
		   "pop %rax\n"                                                                    \
		   "jmp *%rcx\n"
#elif defined(__aarch64__)
/* The caller's return address is in x30; sp is 16-aligned and ours below.
 * We leave by ret x17 (a return, for branch protection), the result in x0,
 * x29 as the caller left it. */
#define PROC_VFORK_BODY                                                                            \
	"stp x29, x30, [sp, #-16]!\n"                                                              \
	"mov x0, x30\n"                                                                            \
	"bl proc_vfork_prepare\n"                                                                  \
	"ldp x29, x30, [sp], #16\n"                                                                \
	"blr x0\n"                                                                                 \
	"stp x0, x29, [sp, #-16]!\n"                                                               \
	"sxtw x0, w0\n"                                                                            \
	"bl proc_vfork_returned\n"                                                                 \
	"mov x17, x0\n"                                                                            \
	"ldp x0, x29, [sp], #16\n"                                                                 \
	"ret x17\n"
#else
#error "graceshim: vfork entry point not written for this architecture"
#endif

#define PROC_ENTRY(name)                                                                           \
	__asm__(".text\n"                                                                          \
		".globl " #name "\n"                                                               \
		".type " #name ", @function\n"                                                     \
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
	int marked = 0;
	if ((flags & CLONE_VM) && !(flags & CLONE_THREAD)) {
		__atomic_add_fetch(&proc_vm_maybe, 1, __ATOMIC_RELAXED);
		if ((flags & CLONE_VFORK) && !(flags & CLONE_SETTLS))
			marked = proc_vm_here = 1;
		else
			__atomic_store_n(&proc_vm_children, 1, __ATOMIC_RELAXED);
	}
	int r = real_clone(fn, stack, flags, arg, ptid, tls, ctid);
	/* Only the parent returns here (the child runs fn on its own stack),
	 * once the CLONE_VFORK child exec'd or exited. */
	if (marked)
		vfork_returned();
	return r;
}
