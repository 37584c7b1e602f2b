/*
 * SPDX-License-Identifier: MIT
 *
 * The workers of a draining master (see workers.h).
 *
 * Which children: those that still hold one of our listeners (workers; see
 * release_child).  Which connections: a child's fd that is an established
 * TCP socket whose
 * local port is the port of one of this process's listeners (so the child
 * accepted it on a listener it inherited from us: never an outbound
 * connection, a pipe or a file), that the kernel says never received a byte
 * (TCP_INFO tcpi_bytes_received 0: no request, no FIN) and that has nothing
 * waiting (SIOCINQ 0).  The kernel's time since the last data received is,
 * for a connection that never received any, its age: compared with the
 * grace.  The copy we take of it is ours, so we may close it; shutdown() on
 * the copy acts on the one socket the child reads, whose read returns 0.
 *
 * Everything here is a raw system call over stack buffers: the handler of
 * a single-threaded master (no sweeper thread) calls it.
 */
#include "workers.h"

#include "fdlinks.h"
#include "real.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define MAX_KIDS 1024 /* a ring: a fork-per-connection server overwrites old ones */
#define MAX_PORTS 64

static pid_t kids[MAX_KIDS];
static unsigned kids_next; /* fork() only, under no lock: see workers_forked */
static uint16_t ports[MAX_PORTS]; /* network order */
static unsigned nports;

void workers_forked(pid_t child)
{
	/* fork() may run on several threads at once: a slot taken with an
	 * atomic increment. */
	unsigned i = __atomic_fetch_add(&kids_next, 1, __ATOMIC_RELAXED) % MAX_KIDS;
	__atomic_store_n(&kids[i], child, __ATOMIC_RELEASE);
}

int workers_any(void)
{
	return __atomic_load_n(&kids_next, __ATOMIC_RELAXED) != 0;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ((struct sockaddr_in *)&ss)->sin_port;
	if (ss.ss_family == AF_INET6)
		return ((struct sockaddr_in6 *)&ss)->sin6_port;
	return 0;
}

void workers_note_listener(int fd)
{
	int saved = errno;
	uint16_t p = local_port(fd);
	errno = saved;
	if (!p)
		return;
	unsigned n = __atomic_load_n(&nports, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++)
		if (__atomic_load_n(&ports[i], __ATOMIC_RELAXED) == p)
			return;
	unsigned i = __atomic_fetch_add(&nports, 1, __ATOMIC_ACQ_REL);
	if (i < MAX_PORTS)
		__atomic_store_n(&ports[i], p, __ATOMIC_RELEASE);
	else
		__atomic_store_n(&nports, MAX_PORTS, __ATOMIC_RELEASE);
}

static int our_port(uint16_t p)
{
	unsigned n = __atomic_load_n(&nports, __ATOMIC_ACQUIRE);
	if (n > MAX_PORTS)
		n = MAX_PORTS;
	for (unsigned i = 0; i < n; i++)
		if (__atomic_load_n(&ports[i], __ATOMIC_RELAXED) == p)
			return 1;
	return 0;
}

/* Decimal without stdio. */
static char *put_uint(char *o, unsigned long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*o++ = tmp[--n];
	return o;
}

/* What one fd of the child is, looked at through our copy. */
enum kind { OTHER, WORKER_LISTENER, CANDIDATE };

static enum kind look(int fd, uint64_t grace_ms)
{
	int v = 0;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 || v != IPPROTO_TCP)
		return OTHER;
	int listening = 0;
	l = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0)
		return OTHER;
	if (!our_port(local_port(fd)))
		return OTHER; /* not one of our listeners, nor accepted on one */
	if (listening)
		return WORKER_LISTENER;
	struct tcp_info ti;
	memset(&ti, 0, sizeof ti);
	l = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0 ||
	    l < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
		return OTHER;
	if (ti.tcpi_state != 1 /* TCP_ESTABLISHED */ || ti.tcpi_bytes_received != 0)
		return OTHER;
	int q = 0;
	if (real_syscall(SYS_ioctl, fd, SIOCINQ, &q) < 0 || q != 0)
		return OTHER;
	if (ti.tcpi_last_data_recv < grace_ms)
		return OTHER; /* younger than the grace: a later pass looks again */
	/* Already released (by us in an earlier pass, or by the child's own
	 * shim): a read no longer waits, it sees the end at once.  (Not through
	 * our recv(): this is our copy, no fd of the host's.) */
	char b;
	if (real_syscall(SYS_recvfrom, fd, &b, 1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL) == 0)
		return OTHER;
	return CANDIDATE;
}

#define MAX_CANDIDATES 256 /* per child and pass; the rest at the next pass */

/* One child's walk: what its fds are, through copies of ours. */
struct child_walk {
	int pidfd;
	uint64_t grace_ms;
	int *denied;
	int worker; /* it holds one of our listeners */
	unsigned nc;
	int cand[MAX_CANDIDATES]; /* copies, kept until we know it is a worker */
};

static void child_fd(int fd, const char *target, void *ctx)
{
	struct child_walk *w = ctx;
	if (strncmp(target, "socket:[", 8) != 0)
		return;
	int copy = (int)real_syscall(SYS_pidfd_getfd, w->pidfd, fd, 0);
	if (copy < 0) {
		if (errno == EPERM || errno == ENOSYS || errno == EACCES)
			*w->denied = 1;
		return;
	}
	enum kind k = look(copy, w->grace_ms);
	if (k == WORKER_LISTENER)
		w->worker = 1;
	if (k == CANDIDATE && w->nc < MAX_CANDIDATES)
		w->cand[w->nc++] = copy;
	else
		real_syscall(SYS_close, copy); /* our copy: the child's fd is untouched */
}

/* One child: its fds from /proc/<pid>/fd.  Only a worker is reached: a
 * child that still holds one of our listeners, i.e. accepts on it and
 * would be stopped with us (a pre-fork worker told over a pipe, or by a
 * signal that is not a trigger).  A fork-per-connection child (it closed
 * its copy of the listener and serves one connection, independently of
 * its parent's life) keeps its connection, as without us. */
static unsigned release_child(pid_t pid, uint64_t grace_ms, int *denied, int *gone)
{
	char path[64], *o = path;
	memcpy(o, "/proc/", 6);
	o = put_uint(o + 6, (unsigned long)pid);
	memcpy(o, "/fd", 4);
	int pidfd = (int)real_syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH)
			*gone = 1;
		else
			*denied = 1; /* ENOSYS: older than Linux 5.3 */
		return 0;
	}
	struct child_walk w = {.pidfd = pidfd, .grace_ms = grace_ms, .denied = denied};
	fdlinks_each(path, child_fd, &w);
	unsigned released = 0;
	for (unsigned i = 0; i < w.nc; i++) {
		if (w.worker && shutdown(w.cand[i], SHUT_RD) == 0)
			released++;
		real_syscall(SYS_close, w.cand[i]);
	}
	real_syscall(SYS_close, pidfd);
	return released;
}

unsigned workers_release(uint64_t grace_ms, int *denied)
{
	int saved = errno;
	unsigned released = 0;
	unsigned n = __atomic_load_n(&kids_next, __ATOMIC_ACQUIRE);
	if (n > MAX_KIDS)
		n = MAX_KIDS;
	*denied = 0;
	for (unsigned i = 0; i < n; i++) {
		pid_t pid = __atomic_load_n(&kids[i], __ATOMIC_ACQUIRE);
		if (pid <= 0)
			continue;
		int gone = 0;
		released += release_child(pid, grace_ms, denied, &gone);
		if (gone) /* exited and reaped: forget it */
			__atomic_compare_exchange_n(&kids[i], &pid, 0, 0, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
	}
	errno = saved;
	return released;
}
