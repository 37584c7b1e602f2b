/*
 * SPDX-License-Identifier: MIT
 *
 * The workers of a draining master (see workers.h).
 *
 * Which children: workers, those that hold one of our listening sockets
 * itself (the same socket, inherited across fork: its inode, read from the
 * child's /proc/<pid>/fd link, is one we recorded; see release_child).  A
 * child that listens on the same port number with a socket of its own (its
 * own SO_REUSEPORT socket, or the port on another address) is not our
 * worker: nothing of ours tells it to stop.  Which connections: a worker's
 * fd that is an established TCP socket whose local address is the address
 * of one of our listeners (its port, and its address unless the listener is
 * bound to the wildcard; so the worker accepted it on a listener it
 * inherited from us: never an outbound connection, a pipe or a file), that
 * the kernel says never received a byte (TCP_INFO tcpi_bytes_received 0: no
 * request, no FIN), to which the worker wrote nothing (pol_tcp_sent, SIOCOUTQ
 * 0: a server that speaks first is in a session) and that has nothing
 * waiting (SIOCINQ 0).  The kernel's time since the
 * last data received is, for a connection that never received any, its age:
 * compared with the grace.  The copy we take of it is ours, so we may close
 * it; shutdown() on the copy acts on the one socket the child reads, whose
 * read returns 0.
 *
 * Everything here is a raw system call over stack buffers: the handler of
 * a single-threaded master (no sweeper thread) calls it.
 */
#include "workers.h"

#include "fdlinks.h"
#include "policy.h"
#include "real.h"
#include "release.h"
#include "sockview.h"

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

#define MAX_KIDS 1024 /* a ring: a fork-per-connection server overwrites old ones */
#define MAX_LISTENERS 64

static pid_t kids[MAX_KIDS];
static unsigned kids_next; /* fork() only, under no lock: see workers_forked */
static int kids_listening; /* a child was forked while we listened */

/* Connections of ours handed to another process over a Unix socket
 * (SCM_RIGHTS): their inodes, a ring.  A child that holds one serves for us
 * (a Node.js cluster's worker, forked before its primary listens, which
 * holds none of our listeners). */
#define MAX_HANDED 4096
static uint32_t handed[MAX_HANDED];
static unsigned handed_next;

/* One of our listening sockets: its identity (the socket inode, the same in
 * every process that holds it) and the local address it accepts on. */
struct workers_listener {
	uint64_t ino;
	uint16_t port; /* network order */
	uint8_t family;
	uint8_t wildcard; /* bound to 0.0.0.0 or :: */
	unsigned char addr[16];
	int fd;    /* its number here when noted: a forked worker has it there too */
	int ready; /* the fields above are written (release) */
};
static struct workers_listener lst[MAX_LISTENERS];
static unsigned nlst; /* slots taken, may exceed MAX_LISTENERS */

void workers_forked(pid_t child, bool listening)
{
	/* fork() may run on several threads at once: a slot taken with an
	 * atomic increment. */
	unsigned i = __atomic_fetch_add(&kids_next, 1, __ATOMIC_RELAXED) % MAX_KIDS;
	__atomic_store_n(&kids[i], child, __ATOMIC_RELEASE);
	if (listening && !__atomic_load_n(&kids_listening, __ATOMIC_RELAXED))
		__atomic_store_n(&kids_listening, 1, __ATOMIC_RELAXED);
}

void workers_handed(uint32_t ino)
{
	unsigned i = __atomic_fetch_add(&handed_next, 1, __ATOMIC_RELAXED) % MAX_HANDED;
	__atomic_store_n(&handed[i], ino, __ATOMIC_RELEASE);
}

int workers_any(void)
{
	return __atomic_load_n(&kids_listening, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&handed_next, __ATOMIC_RELAXED) != 0;
}

static int handed_ino(uint64_t ino)
{
	unsigned n = __atomic_load_n(&handed_next, __ATOMIC_ACQUIRE);
	if (n > MAX_HANDED)
		n = MAX_HANDED;
	for (unsigned i = 0; i < n; i++)
		if (__atomic_load_n(&handed[i], __ATOMIC_ACQUIRE) == (uint32_t)ino)
			return 1;
	return 0;
}

/* The local address of a TCP socket over IPv4 or IPv6; false otherwise. */
static int local_addr(int fd, struct workers_listener *a)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	memset(a->addr, 0, sizeof a->addr);
	a->family = (uint8_t)ss.ss_family;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		a->port = in->sin_port;
		memcpy(a->addr, &in->sin_addr, 4);
		a->wildcard = in->sin_addr.s_addr == htonl(INADDR_ANY);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		a->port = in6->sin6_port;
		memcpy(a->addr, &in6->sin6_addr, 16);
		a->wildcard = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
	} else {
		return 0;
	}
	return a->port != 0;
}

static unsigned listeners_seen(void)
{
	unsigned n = __atomic_load_n(&nlst, __ATOMIC_ACQUIRE);
	return n > MAX_LISTENERS ? MAX_LISTENERS : n;
}

static int known_listener(uint64_t ino)
{
	unsigned n = listeners_seen();
	for (unsigned i = 0; i < n; i++)
		if (__atomic_load_n(&lst[i].ready, __ATOMIC_ACQUIRE) && lst[i].ino == ino)
			return 1;
	return 0;
}

void workers_note_listener(int fd)
{
	int saved = errno;
	struct workers_listener a;
	struct stat st;
	int ok = fstat(fd, &st) == 0 && local_addr(fd, &a);
	errno = saved;
	if (!ok || known_listener((uint64_t)st.st_ino))
		return;
	unsigned i = __atomic_fetch_add(&nlst, 1, __ATOMIC_ACQ_REL);
	if (i >= MAX_LISTENERS)
		return;
	a.ino = (uint64_t)st.st_ino;
	a.fd = fd;
	a.ready = 0;
	lst[i] = a;
	__atomic_store_n(&lst[i].ready, 1, __ATOMIC_RELEASE);
}

/* Accepted on one of our listeners: the same family and port, and the
 * listener's address unless it is bound to the wildcard. */
static int on_our_listener(int fd)
{
	struct workers_listener a;
	if (!local_addr(fd, &a))
		return 0;
	unsigned n = listeners_seen();
	for (unsigned i = 0; i < n; i++) {
		const struct workers_listener *l = &lst[i];
		if (!__atomic_load_n(&l->ready, __ATOMIC_ACQUIRE))
			continue;
		if (l->family == a.family && l->port == a.port &&
		    (l->wildcard || !memcmp(l->addr, a.addr, sizeof a.addr)))
			return 1;
	}
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

/* Whether one fd of a worker, looked at through our copy, is a connection
 * to release. */
static int candidate(int fd, uint64_t grace_ms)
{
	int v = 0;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 || v != IPPROTO_TCP)
		return 0;
	int listening = 0;
	l = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0 || listening)
		return 0;
	if (!on_our_listener(fd))
		return 0; /* not accepted on one of our listeners */
	struct tcp_info ti;
	if (sockview_tcp_info(fd, &ti, &l) < 0)
		return 0;
	if (ti.tcpi_state != SOCKVIEW_ESTABLISHED || ti.tcpi_bytes_received != 0)
		return 0;
	if (pol_tcp_sent(&ti, l))
		return 0; /* the worker wrote to it (a banner): a session */
	int q = 0;
	if (real_syscall(SYS_ioctl, fd, SIOCINQ, &q) < 0 || q != 0)
		return 0;
	if (real_syscall(SYS_ioctl, fd, SIOCOUTQ, &q) < 0 || q != 0)
		return 0;
	if (ti.tcpi_last_data_recv < grace_ms)
		return 0; /* younger than the grace: a later pass looks again */
	/* Already released (by us in an earlier pass, or by the child's own
	 * shim): a read no longer waits, it sees the end at once.  (Not through
	 * our recv(): this is our copy, no fd of the host's.) */
	char b;
	if (real_syscall(SYS_recvfrom, fd, &b, 1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL) == 0)
		return 0;
	return 1;
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

/* "socket:[123]" -> 123; 0 when the target is no socket. */
static uint64_t socket_ino(const char *target)
{
	if (strncmp(target, "socket:[", 8) != 0)
		return 0;
	uint64_t ino = 0;
	for (const char *c = target + 8; *c >= '0' && *c <= '9'; c++)
		ino = ino * 10 + (uint64_t)(*c - '0');
	return ino;
}

static void child_fd(int fd, const char *target, void *ctx)
{
	struct child_walk *w = ctx;
	uint64_t ino = socket_ino(target);
	if (!ino)
		return;
	if (known_listener(ino)) {
		w->worker = 1; /* it holds our listening socket itself */
		return;
	}
	/* it holds a connection we handed over (the ring is looked through
	 * until the child is known to be a worker, not for each of its fds) */
	if (!w->worker && handed_ino(ino))
		w->worker = 1;
	int copy = (int)real_syscall(SYS_pidfd_getfd, w->pidfd, fd, 0);
	if (copy < 0) {
		if (errno == EPERM || errno == ENOSYS || errno == EACCES)
			*w->denied = 1;
		return;
	}
	if (candidate(copy, w->grace_ms) && w->nc < MAX_CANDIDATES)
		w->cand[w->nc++] = copy;
	else
		real_syscall(SYS_close, copy); /* our copy: the child's fd is untouched */
}

/* Whether the child holds one of our listening sockets at the number it
 * has here (where fork() put it): one readlink per listener, where the
 * whole walk is one per fd and a copy of every socket.  dir is the child's
 * "/proc/<pid>/fd", end its terminating NUL, with room for "/<fd>" after. */
static int holds_ours_here(char *dir, char *end)
{
	char target[64];
	unsigned n = listeners_seen();
	for (unsigned i = 0; i < n; i++) {
		const struct workers_listener *l = &lst[i];
		if (!__atomic_load_n(&l->ready, __ATOMIC_ACQUIRE))
			continue;
		*end = '/';
		*put_uint(end + 1, (unsigned long)l->fd) = 0;
		long r = real_syscall(SYS_readlinkat, AT_FDCWD, dir, target, sizeof target - 1);
		*end = 0;
		if (r <= 0)
			continue;
		target[r] = 0;
		if (socket_ino(target) == l->ino)
			return 1;
	}
	return 0;
}

/* One child: its fds from /proc/<pid>/fd.  Only a worker is reached: a
 * child that still holds one of our listening sockets, i.e. accepts on it and
 * would be stopped with us (a pre-fork worker told over a pipe, or by a
 * signal that is not a trigger), or one that holds a connection we accepted
 * and handed to it (a Node.js cluster's worker, told over its channel).  A
 * fork-per-connection child (it closed its copy of the listener and serves
 * one connection, independently of its parent's life) keeps its
 * connection, as without us. */
static unsigned release_child(pid_t pid, uint64_t grace_ms, bool thorough, int *denied, int *gone)
{
	/* A worker keeps our listener where fork() put it until it stops
	 * accepting.  A child that closed it (nginx's worker, told by its
	 * own signal: it drains itself) is not walked while it drains: the
	 * walk took a core from it.  The others are walked only by a thorough
	 * pass (a listener the child holds at another number), or when we
	 * handed connections over (a Node.js cluster's worker holds none of
	 * our listeners). */
	char path[64], *o = path;
	memcpy(o, "/proc/", 6);
	o = put_uint(o + 6, (unsigned long)pid);
	memcpy(o, "/fd", 4);
	if (!thorough && !__atomic_load_n(&handed_next, __ATOMIC_RELAXED) &&
	    !holds_ours_here(path, o + 3))
		return 0;
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
	/* Our copy: no record of ours to mute or mark. */
	struct pol_out out = {POL_RELEASE, POL_R_UNUSED, 0};
	for (unsigned i = 0; i < w.nc; i++) {
		if (w.worker && release_one(NULL, w.cand[i], &out, 0, false))
			released++;
		real_syscall(SYS_close, w.cand[i]);
	}
	real_syscall(SYS_close, pidfd);
	return released;
}

unsigned workers_release(uint64_t grace_ms, bool thorough, int *denied)
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
		released += release_child(pid, grace_ms, thorough, denied, &gone);
		if (gone) /* exited and reaped: forget it */
			__atomic_compare_exchange_n(&kids[i], &pid, 0, 0, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
	}
	errno = saved;
	return released;
}
