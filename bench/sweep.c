/*
 * SPDX-License-Identifier: MIT
 *
 * The sweep: how fast are N never-used connections released after the
 * trigger?
 *
 *   sweep shim N    (run with LD_PRELOAD=libgraceshim.so)
 *       accepts N Unix connections (a holder child keeps the client ends
 *       open), watches them all with epoll (EPOLLRDHUP, edge-triggered),
 *       installs a SIGINT handler with sigaction so the shim hooks it, then
 *       raise(SIGINT) and waits until every accepted fd has reported
 *       EOF/RDHUP.
 *   sweep bare N    (run without the shim)
 *       the same, but instead of the signal the process calls
 *       shutdown(fd, SHUT_RD) (what the sweeper calls) on every fd itself, then waits: the floor.
 *   sweep thread N  (run without the shim)
 *       the bare loop on a second thread, woken through an eventfd as the
 *       shim's sweeper is, while the main thread waits in epoll_wait: the
 *       same floor with the same wake-ups (each shutdown wakes the waiting
 *       main thread) as the shim's measurement.
 *   sweep rdwr N    (run without the shim)
 *       the thread floor with shutdown(SHUT_RDWR), the call graceshim made
 *       before it released with SHUT_RD (for TCP it also sends the FIN).
 *   sweep syscalls N  (run without the shim; diagnostic)
 *       the thread loop making the sweeper's system calls for each fd
 *       (fstat, ioctl SIOCINQ, shutdown) without its table and lock.
 *
 * A third argument "tcp" makes the connections TCP over 127.0.0.1 instead
 * of Unix: what a web server sweeps, where shutdown() also sends a FIN and
 * the sweeper asks TCP_INFO rather than SIOCINQ.
 *
 * Prints "sweep.N.<mode>[.tcp].ns <time from trigger to the last EOF>".  The wait
 * is bounded (30 s); a fd that never reports is counted and printed.
 */
#include "bench.h"

#include <linux/sockios.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static volatile sig_atomic_t got_sig;

static void on_sigint(int sig)
{
	(void)sig;
	got_sig = 1;
}

static int *fds, nfds, kick_fd, like_shim, use_tcp, how = SHUT_RD;

static void *looper(void *arg)
{
	uint64_t v;
	(void)arg;
	struct pollfd p = {.fd = kick_fd, .events = POLLIN};
	if (poll(&p, 1, 30000) == 1 && read(kick_fd, &v, sizeof v) == sizeof v)
		for (int i = 0; i < nfds; i++) {
			if (like_shim) { /* the sweeper's system calls, no table */
				struct stat st;
				int q;
				struct tcp_info ti;
				socklen_t len = sizeof ti;
				if (fstat(fds[i], &st) < 0)
					continue;
				/* TCP: the call's cost (glibc's struct tcp_info lacks
				 * tcpi_bytes_received, which the sweeper reads). */
				if (use_tcp ? getsockopt(fds[i], IPPROTO_TCP, TCP_INFO, &ti, &len) < 0
					    : ioctl(fds[i], SIOCINQ, &q) < 0 || q)
					continue;
			}
			shutdown(fds[i], how);
		}
	return NULL;
}

int main(int argc, char **argv)
{
	if ((argc != 3 && !(argc == 4 && !strcmp(argv[3], "tcp"))) ||
	    (strcmp(argv[1], "shim") && strcmp(argv[1], "bare") && strcmp(argv[1], "thread") &&
	     strcmp(argv[1], "syscalls") && strcmp(argv[1], "rdwr"))) {
		fprintf(stderr, "usage: sweep shim|bare|thread|rdwr|syscalls N [tcp]\n");
		return 2;
	}
	int shim = !strcmp(argv[1], "shim");
	like_shim = !strcmp(argv[1], "syscalls");
	int thread = like_shim || !strcmp(argv[1], "thread") || !strcmp(argv[1], "rdwr");
	if (!strcmp(argv[1], "rdwr"))
		how = SHUT_RDWR;
	int n = atoi(argv[2]);
	long lim = bench_raise_nofile();

	if (n <= 0 || n + 64 > lim) {
		printf("sweep.%d.%s%s.skip RLIMIT_NOFILE=%ld\n", n, argv[1], argc == 4 ? ".tcp" : "", lim);
		return 0;
	}
	int tcp = use_tcp = argc == 4;
	const char *tag = tcp ? ".tcp" : "";
	struct sockaddr_un un;
	socklen_t ulen;
	int lfd, port;
	struct bench_holder h;
	if (tcp) {
		lfd = bench_tcp_listen(&port, 4096);
		struct sockaddr_in in = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		h = bench_holder_start(&in, sizeof in, n);
	} else {
		lfd = bench_unix_listen(&un, &ulen, "sweep");
		h = bench_holder_start(&un, ulen, n);
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	pthread_t th;

	fds = malloc((size_t)n * sizeof *fds);
	nfds = n;
	kick_fd = eventfd(0, EFD_CLOEXEC);
	if (!fds || ep < 0 || kick_fd < 0 || (thread && pthread_create(&th, NULL, looper, NULL)))
		bench_die("setup");
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		fds[i] = accept(lfd, (struct sockaddr *)&ss, &len);
		if (fds[i] < 0)
			bench_die("accept %d", i);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u32 = (uint32_t)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			bench_die("epoll_ctl");
	}
	struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	char *seen = calloc((size_t)n, 1);
	struct epoll_event evs[1024];
	int done = 0;
	uint64_t t0 = bench_now_ns(), deadline = t0 + 30000000000ull, t1 = t0;

	if (shim) {
		raise(SIGINT);
	} else if (thread) {
		uint64_t one = 1;
		if (write(kick_fd, &one, sizeof one) != sizeof one)
			bench_die("eventfd");
	} else {
		for (int i = 0; i < n; i++)
			shutdown(fds[i], SHUT_RD); /* what the sweeper calls */
	}
	while (done < n) {
		uint64_t now = bench_now_ns();
		if (now >= deadline)
			break;
		int k = epoll_wait(ep, evs, 1024, (int)((deadline - now) / 1000000) + 1);
		if (k < 0 && errno != EINTR)
			bench_die("epoll_wait");
		for (int j = 0; j < k; j++) {
			uint32_t i = evs[j].data.u32;
			if (!seen[i] && (evs[j].events & (EPOLLRDHUP | EPOLLHUP))) {
				seen[i] = 1;
				done++;
			}
		}
		t1 = bench_now_ns();
	}
	if (done < n)
		printf("sweep.%d.%s%s.missing %d\n", n, argv[1], tag, n - done);
	else
		printf("sweep.%d.%s%s.ns %llu\n", n, argv[1], tag, (unsigned long long)(t1 - t0));
	if (shim && !got_sig)
		printf("sweep.%d.%s%s.warning the application's handler did not run\n", n, argv[1], tag);
	if (thread)
		pthread_join(th, NULL);
	bench_holder_stop(&h);
	return 0;
}
