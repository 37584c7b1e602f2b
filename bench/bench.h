/*
 * SPDX-License-Identifier: MIT
 *
 * Helpers shared by the benchmark programs: a monotonic clock, fatal errors,
 * loopback TCP and abstract AF_UNIX listeners and clients, and a "holder"
 * child process that keeps the client ends of many Unix connections open so
 * that the measuring process spends its file descriptors on accepted sockets
 * only.  Header-only, so each benchmark is one file.
 *
 * Every wait here is bounded: sockets carry receive timeouts, loops have a
 * deadline, and a holder child exits on its own when its parent goes away.
 */
#ifndef GRACESHIM_BENCH_H
#define GRACESHIM_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

__attribute__((noreturn, format(printf, 1, 2))) static inline void bench_die(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(e));
	va_end(ap);
	exit(3);
}

static inline void *bench_idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* One thread more that does nothing: the process is multi-threaded (glibc's
 * cancellable calls take their multi-threaded path; graceshim starts its
 * sweeper at once instead of deferring it). */
static inline void bench_idle_thread_start(void)
{
	pthread_t th;
	if (pthread_create(&th, NULL, bench_idle, NULL) != 0)
		bench_die("pthread_create");
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_timeouts(int fd, int seconds)
{
	struct timeval tv = {seconds, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A listener on 127.0.0.1, any port; the port is written to *port. */
static inline int bench_tcp_listen(int *port, int backlog)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof in;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		bench_die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&in, sizeof in) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&in, &len) < 0)
		bench_die("tcp listen");
	bench_timeouts(fd, 10); /* accept() honours SO_RCVTIMEO */
	*port = ntohs(in.sin_port);
	return fd;
}

/* A blocking client connected to 127.0.0.1:port, with 10 s timeouts. */
static inline int bench_tcp_connect(int port)
{
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		bench_die("socket");
	bench_timeouts(fd, 10);
	if (connect(fd, (struct sockaddr *)&in, sizeof in) < 0)
		bench_die("connect 127.0.0.1:%d", port);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Abstract Unix address: nothing on the file system to clean up. */
static inline socklen_t bench_unix_addr(struct sockaddr_un *un, const char *tag)
{
	memset(un, 0, sizeof *un);
	un->sun_family = AF_UNIX;
	int n = snprintf(un->sun_path + 1, sizeof un->sun_path - 1, "graceshim-bench-%d-%s",
			 (int)getpid(), tag);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static inline int bench_unix_listen(struct sockaddr_un *un, socklen_t *len, const char *tag)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bench_die("socket");
	*len = bench_unix_addr(un, tag);
	if (bind(fd, (struct sockaddr *)un, *len) < 0 || listen(fd, 4096) < 0)
		bench_die("unix listen");
	bench_timeouts(fd, 10); /* accept() honours SO_RCVTIMEO */
	return fd;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit; returns the new limit. */
static inline long bench_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

/*
 * The holder: a child process that connects n times to the Unix listener at
 * un and keeps every client end open until its parent writes to (or closes)
 * the control pipe, or dies, or 120 s pass.  The parent accepts meanwhile
 * (connect blocks while the backlog is full).  Returns the child's pid;
 * *ctl is the parent's end of the control pipe.
 */
struct bench_holder {
	pid_t pid;
	int ctl;
};

static inline struct bench_holder bench_holder_start(const void *addr, socklen_t len, int n)
{
	int p[2];
	struct bench_holder h;

	if (pipe2(p, O_CLOEXEC) < 0)
		bench_die("pipe");
	h.pid = fork();
	if (h.pid < 0)
		bench_die("fork");
	if (h.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[1]);
		bench_raise_nofile();
		for (int i = 0; i < n; i++) {
			int fd = socket(((const struct sockaddr *)addr)->sa_family, SOCK_STREAM, 0);
			if (fd < 0 || connect(fd, (const struct sockaddr *)addr, len) < 0) {
				fprintf(stderr, "bench holder: connection %d of %d: %s\n", i, n,
					strerror(errno));
				_exit(1);
			}
		}
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		poll(&pf, 1, 120000);
		_exit(0);
	}
	close(p[0]);
	h.ctl = p[1];
	return h;
}

/* Tells the holder to exit and reaps it; kills it (by pid) after 10 s. */
static inline void bench_holder_stop(struct bench_holder *h)
{
	int st;
	close(h->ctl);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(h->pid, &st, WNOHANG) == h->pid)
			return;
		usleep(10000);
	}
	kill(h->pid, SIGKILL);
	waitpid(h->pid, &st, 0);
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
