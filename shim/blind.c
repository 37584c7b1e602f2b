/*
 * SPDX-License-Identifier: MIT
 *
 * What the shim cannot see, said once at the first drain (sweeper thread):
 * an io_uring instance in the process, and sockets it accepted without
 * libc's accept.
 */
#include "blind.h"

#include "conntab.h"
#include "fdlinks.h"
#include "log.h"
#include "real.h"
#include "sockview.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

/* Sockets this process accepted without libc's accept (Go, io_uring, raw
 * system calls): established TCP sockets whose local port is the port of
 * one of the process's listening sockets, and that the table does not know.
 * Read at the first drain (sweeper thread only): the fd links give the
 * socket inodes; each socket is then asked its state and port with raw
 * system calls (a look: nothing is changed, and the answer of a number the
 * host is closing meanwhile is checked again).  A socket the host is
 * closing (its record is forgotten just before the real close) is not
 * counted: a candidate must still be there, unknown, 100 ms later.
 * (/proc/net/tcp would avoid asking the fds, but lists every socket of the
 * network namespace: 130,000 lines on a busy machine.) */
struct sock_fd {
	int fd;
	unsigned long ino;
};

/* The process's socket fds with their inodes, from /proc/self/fd, read
 * with raw system calls (no stdio, no fd of ours that a sanitizer would
 * see racing the host's); *uring is set when one fd is an io_uring. */
struct socket_walk {
	struct sock_fd *out;
	size_t n, max;
	int *uring;
};

static void socket_fd(int fd, const char *target, void *ctx)
{
	struct socket_walk *w = ctx;
	unsigned long ino;
	if (strstr(target, "io_uring"))
		*w->uring = 1;
	else if (w->n < w->max && sscanf(target, "socket:[%lu]", &ino) == 1)
		w->out[w->n++] = (struct sock_fd){fd, ino};
}

static size_t socket_fds(struct sock_fd *out, size_t max, int *uring)
{
	struct socket_walk w = {out, 0, max, uring};
	fdlinks_each("/proc/self/fd", socket_fd, &w);
	return w.n;
}

static bool known_to_table(const struct sock_fd *s)
{
	conntab_lock();
	struct conn *c = conntab_find_locked(s->fd);
	bool known = c && c->ino == (uint32_t)s->ino;
	conntab_unlock();
	return known;
}

/* TCP state and local port of a socket fd: 'L' listening, 'E' established,
 * 0 anything else.  Not sockview_look(): these fds are the host's, not
 * records of ours, and a sanitizer that intercepts getsockopt/getsockname
 * would see this thread racing the host's own calls on them, so raw
 * system calls; only the state is read (no length check needed). */
static char tcp_look(int fd, unsigned *port)
{
	int v = 0;
	socklen_t l = sizeof v;
	if (real_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 ||
	    v != IPPROTO_TCP)
		return 0;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (real_syscall(SYS_getsockname, fd, &ss, &sl) < 0)
		return 0;
	*port = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					 : ((struct sockaddr_in *)&ss)->sin_port;
	l = sizeof v;
	if (real_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0)
		return 0;
	if (v)
		return 'L';
	struct tcp_info ti;
	l = sizeof ti;
	if (real_syscall(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0)
		return 0;
	return ti.tcpi_state == SOCKVIEW_ESTABLISHED ? 'E' : 0;
}

static unsigned count_unseen_accepted(int *uring)
{
	enum { MAXS = 4096, MAXP = 64, MAXC = 64 };
	struct sock_fd *socks = malloc(MAXS * sizeof *socks);
	unsigned ports[MAXP], np = 0, unseen = 0;
	struct sock_fd cand[MAXC];
	unsigned cport[MAXC];
	size_t nc = 0;
	if (!socks)
		return 0;
	size_t ns = socket_fds(socks, MAXS, uring);
	/* The connections we know first, with no system call and one lock per
	 * chunk: this runs while the host handles the EOFs of the drain, and
	 * its close() takes the same lock. */
	size_t left = 0;
	for (size_t i = 0; i < ns; i += 256) {
		conntab_lock();
		for (size_t j = i; j < ns && j < i + 256; j++) {
			struct conn *c = conntab_find_locked(socks[j].fd);
			if (!c || c->ino != (uint32_t)socks[j].ino)
				socks[left++] = socks[j];
		}
		conntab_unlock();
	}
	ns = left;
	for (size_t i = 0; i < ns; i++) {
		unsigned port = 0;
		char k = tcp_look(socks[i].fd, &port);
		if (k == 'L' && np < MAXP)
			ports[np++] = port;
		else if (k == 'E' && nc < MAXC && !known_to_table(&socks[i])) {
			cport[nc] = port;
			cand[nc++] = socks[i];
		}
	}
	size_t keep = 0;
	for (size_t i = 0; i < nc; i++) {
		bool on_listener = false;
		for (unsigned j = 0; j < np; j++)
			on_listener |= ports[j] == cport[i];
		if (on_listener)
			cand[keep++] = cand[i];
	}
	if (keep) {
		struct timespec pause = {0, 100000000};
		nanosleep(&pause, NULL);
		size_t ns2 = socket_fds(socks, MAXS, uring);
		for (size_t i = 0; i < keep; i++)
			for (size_t k = 0; k < ns2; k++)
				if (socks[k].fd == cand[i].fd && socks[k].ino == cand[i].ino &&
				    !known_to_table(&socks[k])) {
					unseen++;
					break;
				}
	}
	free(socks);
	return unseen;
}

/* What the shim cannot see, said once at the first drain, and only on
 * evidence (a server that simply never accepted anything gets no line it
 * would not print without us): an io_uring instance in the process, or
 * connections it accepted without libc's accept(). */
void blind_warn(void)
{
	static int warned;
	int uring = 0;

	if (warned++)
		return;
	unsigned unseen = count_unseen_accepted(&uring);
	if (uring)
		LOG(LOG_WARN, "this process uses io_uring: connections it accepts or reads there "
			      "bypass libc and graceshim cannot see them");
	if (unseen)
		LOG(LOG_WARN,
		    "%u connection(s) of this process were accepted without libc's "
		    "accept()/accept4() (io_uring, raw system calls, a Go runtime): "
		    "graceshim cannot release them; the server's own timeouts apply",
		    unseen);
}
