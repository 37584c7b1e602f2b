/*
 * Whose process this is (see proc.h): the cached owner pid, and the vfork()
 * and clone() entry points that mark a child sharing our memory.
 *
 * vfork() cannot be wrapped by a C function: the child returns from it on
 * the parent's stack, and a wrapper's frame would be used by the child and
 * then returned through again by the parent.  So vfork is a few instructions
 * of assembly that call proc_vfork_prepare() (which marks the thread and
 * returns libc's vfork), then call libc's vfork with the caller's return
 * address held in a register (the kernel gives the parent back its
 * registers; the child's calls may overwrite the stack slot that held it,
 * which is why libc's own vfork keeps it in a register too).  When libc's
 * vfork returns in the parent, the child has exec'd or exited: only then is
 * the mark cleared (proc_vfork_done()).
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

/* The vfork (or CLONE_VFORK) returned in the caller: clears the mark, unless
 * the caller is itself a vfork child that vforked again (it still runs in
 * its parent's memory, on its parent's mark).  Touches no errno (getpid
 * cannot fail). */
static void vfork_returned(void)
{
	pid_t owner = __atomic_load_n(&proc_pid, __ATOMIC_RELAXED);
	if (!owner || (pid_t)real_syscall(SYS_getpid) == owner)
		proc_vm_here = 0;
}

/* Called by the vfork entry point in the parent once libc's vfork returned
 * (child exec'd or exited, or vfork failed). */
__attribute__((used)) PROC_HIDDEN void proc_vfork_done(void);
void proc_vfork_done(void)
{
	vfork_returned();
}

#if defined(__x86_64__)
#ifdef __CET__
#define PROC_ENDBR "endbr64\n"
#else
#define PROC_ENDBR ""
#endif
/* Entry rsp is 8 mod 16: one push of 8 aligns the call.  rax holds the
 * function to call; vfork takes no argument, so clobbering the caller-saved
 * registers is allowed.  rdx keeps the caller's return address across libc's
 * vfork (which uses rdi, rsi, rcx, r11 and rax).  The child (rax 0) leaves by
 * pop and jmp, the way libc's vfork leaves in the child, so a shadow stack
 * shared with the parent is not popped.  The parent puts the return address
 * back into its slot, which the child's calls may have overwritten. */
#define PROC_VFORK_BODY                                                                  \
	PROC_ENDBR "sub $8, %rsp\n"                                                      \
		   "call proc_vfork_prepare\n"                                           \
		   "add $8, %rsp\n"                                                      \
		   "mov (%rsp), %rdx\n"                                                  \
		   "call *%rax\n"                                                        \
		   "test %eax, %eax\n"                                                   \
		   "jnz 1f\n"                                                            \
		   "pop %rcx\n"                                                          \
		   "jmp *%rcx\n"                                                         \
		   "1:\n"                                                                \
		   "mov %rdx, (%rsp)\n"                                                  \
		   "push %rax\n"                                                         \
		   "push %rdx\n"                                                         \
		   "sub $8, %rsp\n"                                                      \
		   "call proc_vfork_done\n"                                              \
		   "add $8, %rsp\n"                                                      \
		   "pop %rdx\n"                                                          \
		   "pop %rax\n"                                                          \
		   "ret\n"
#elif defined(__aarch64__)
/* The caller's return address is in x30; x9 keeps it across libc's vfork
 * (which uses x0, x1, x2 and x8).  The parent calls proc_vfork_done() with
 * x0 (the result) and x9 saved on the stack, its own again. */
#define PROC_VFORK_BODY                                                                  \
	"stp x29, x30, [sp, #-16]!\n"                                                    \
	"bl proc_vfork_prepare\n"                                                        \
	"ldp x29, x30, [sp], #16\n"                                                      \
	"mov x9, x30\n"                                                                  \
	"blr x0\n"                                                                       \
	"cbz w0, 1f\n"                                                                   \
	"stp x0, x9, [sp, #-16]!\n"                                                      \
	"bl proc_vfork_done\n"                                                           \
	"ldp x0, x9, [sp], #16\n"                                                        \
	"1:\n"                                                                           \
	"ret x9\n"
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
	int marked = 0;
	if ((flags & CLONE_VM) && !(flags & CLONE_THREAD)) {
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
