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
#include <sys/uio.h>
#include <time.h>

typedef void (*sighandler_fn)(int);

struct real_fns {
	/* mandatory */
	int (*accept)(int, struct sockaddr *, socklen_t *);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*close)(int);
	int (*dup2)(int, int);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	sighandler_fn (*signal)(int, sighandler_fn);
	pid_t (*fork)(void);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned, int, struct timespec *);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*splice)(int, off_t *, int, off_t *, size_t, unsigned);
	int (*listen)(int, int);
	int (*dup)(int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*signalfd)(int, const sigset_t *, int);
	int (*sigwait)(const sigset_t *, int *);
	int (*sigwaitinfo)(const sigset_t *, siginfo_t *);
	int (*sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
	sighandler_fn (*sigset)(int, sighandler_fn);
	/* optional: NULL when this libc lacks them */
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*dup3)(int, int, int);
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	ssize_t (*read_chk)(int, void *, size_t, size_t);
	ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
};

extern struct real_fns real_fns;
extern int real_ready; /* read with __atomic_load_n(ACQUIRE) */

void real_bind(void);

#define REAL(f)                                                              \
	(*(__builtin_expect(!__atomic_load_n(&real_ready, __ATOMIC_ACQUIRE), 0) \
		   ? (real_bind(), real_fns.f)                                   \
		   : real_fns.f))

/* True while this thread is inside real_bind(): dlsym may allocate, and an
 * allocator that reads a file would re-enter us before the table is filled. */
int real_binding_here(void);

#endif
