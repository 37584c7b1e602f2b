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
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int); /* the syscall if libc lacks it */
	/* optional: NULL when this libc lacks them */
	int (*dup3)(int, int, int);
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	ssize_t (*read_chk)(int, void *, size_t, size_t);
	ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
	long (*syscall)(long, ...); /* NULL until bound: see shim_syscall6 in interpose.c */
};

extern struct real_fns real_fns __attribute__((visibility("hidden")));
extern int real_ready __attribute__((visibility("hidden"))); /* __atomic_load_n(ACQUIRE) */

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


#endif
