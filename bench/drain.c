/*
 * SPDX-License-Identifier: MIT
 *
 * bench/drain: how long a server takes to stop once asked, while it holds
 * N connections (issue 17: "release as fast as the server's own close").
 *
 *   drain MODE N PORT SIGNAL -- server command...
 *
 * Starts the server (its environment is ours: the caller sets LD_PRELOAD),
 * opens N connections to 127.0.0.1:PORT and leaves them
 *   keepalive  after one request each, answered (idle keep-alive: the
 *              server closes them itself when it stops), or
 *   silent     without a byte sent (a browser's preconnect: the server
 *              waits for them unless graceshim releases them),
 *   floor      as silent, without graceshim: before the signal, the
 *              server's accepted connections are taken from its
 *              processes (pidfd_getfd); when the signal is sent they are
 *              released from here, shutdown(SHUT_RD) each, as fast as a
 *              loop goes (each copy closed at once, so the server's close
 *              stays the last).  The server's own cost of N releases,
 *              with nothing of graceshim in it,
 *   eof        as silent, and when the signal is sent every client
 *              half-closes (shutdown SHUT_WR): the time a server needs to
 *              read N EOFs and close, with no graceshim in it,
 * waits until the server has accepted every one (the listener's accept
 * queue is empty, as /proc/net/tcp says) and is quiet, then sends SIGNAL to
 * the server's pid and times, on CLOCK_MONOTONIC (the clock graceshim's
 * statistics use, so the two can be set against each other):
 *   signal_ns    when the signal was sent
 *   first_fin_ns when the first client saw the server's FIN
 *   last_fin_ns  when the last did (fins: how many); only with
 *                GRACESHIM_BENCH_DRAIN_FINS set (0 otherwise)
 *   exit_ns      when the server process exited (a pidfd: no polling)
 * one "key value" line each.  Exit status 0 when the server exited within
 * the time limit (GRACESHIM_BENCH_DRAIN_LIMIT_MS, default 20000; then it is
 * killed, by pid), 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static pid_t server = -1;

static void die(const char *what)
{
	fprintf(stderr, "drain: %s: %s\n", what, strerror(errno));
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	exit(2);
}

static int connect_to(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The accept queue of the listener on 127.0.0.1:port (or 0.0.0.0:port),
 * from /proc/net/tcp: for a listening socket, rx_queue is its length.
 * -1 when no such listener is seen. */
static long accept_queue(int port)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	char line[512];
	long q = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned la, lp, st;
		unsigned long tx, rx;
		if (sscanf(line, " %*d: %x:%x %*x:%*x %x %lx:%lx", &la, &lp, &st, &tx, &rx) == 5 &&
		    st == 0x0A && (int)lp == port)
			q = (long)rx;
	}
	fclose(f);
	return q;
}

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* The server's accepted connections on port, from every process of its
 * tree (the pid and its descendants), copied here with pidfd_getfd: fds
 * into out (at most max), one per socket.  Returns how many. */
static int grab_conns(pid_t root, int port, int *out, int max)
{
	pid_t pids[64];
	int np = 1, n = 0;
	pids[0] = root;
	for (int i = 0; i < np; i++) { /* descendants, from /proc/<pid>/task/<pid>/children */
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/task/%d/children", pids[i], pids[i]);
		FILE *f = fopen(path, "re");
		int c;
		while (f && np < 64 && fscanf(f, "%d", &c) == 1)
			pids[np++] = c;
		if (f)
			fclose(f);
	}
	unsigned long *inos = calloc((size_t)max, sizeof *inos);
	for (int i = 0; i < np && inos; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/fd", pids[i]);
		DIR *d = opendir(path);
		int pfd = (int)syscall(SYS_pidfd_open, pids[i], 0);
		struct dirent *e;
		while (d && pfd >= 0 && n < max && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			int fd = (int)syscall(SYS_pidfd_getfd, pfd, atoi(e->d_name), 0);
			if (fd < 0)
				continue;
			struct stat st;
			struct sockaddr_in a;
			socklen_t al = sizeof a;
			int lst = 1, dup_of_known = 0;
			socklen_t ll = sizeof lst;
			if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
			    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &lst, &ll) == 0 && !lst &&
			    getsockname(fd, (struct sockaddr *)&a, &al) == 0 && a.sin_family == AF_INET &&
			    ntohs(a.sin_port) == port) {
				for (int k = 0; k < n; k++)
					dup_of_known |= inos[k] == (unsigned long)st.st_ino;
				if (!dup_of_known) {
					inos[n] = (unsigned long)st.st_ino;
					out[n++] = fd;
					continue;
				}
			}
			close(fd);
		}
		if (d)
			closedir(d);
		if (pfd >= 0)
			close(pfd);
	}
	free(inos);
	return n;
}

/* Reads one whole response (headers and Content-Length body) on each fd,
 * all at once through epoll. */
static void read_responses(int *fds, int n)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int *need = calloc((size_t)n, sizeof *need); /* body bytes still due; -1: headers */
	char (*hdr)[512] = calloc((size_t)n, sizeof *hdr);
	int *hlen = calloc((size_t)n, sizeof *hlen);
	if (ep < 0 || !need || !hdr || !hlen)
		die("epoll/calloc");
	for (int i = 0; i < n; i++) {
		need[i] = -1;
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl");
	}
	int left = n;
	unsigned long long end = now_ns() + 20000000000ull;
	struct epoll_event evs[256];
	while (left > 0) {
		if (now_ns() > end) {
			errno = ETIMEDOUT;
			die("reading the responses");
		}
		int k = epoll_wait(ep, evs, 256, 1000);
		for (int e = 0; e < k; e++) {
			int i = (int)evs[e].data.u32;
			char buf[4096];
			ssize_t r = read(fds[i], buf, sizeof buf);
			if (r <= 0) {
				errno = r ? errno : ECONNRESET;
				die("a response");
			}
			size_t off = 0;
			if (need[i] < 0) {
				size_t take = (size_t)r < sizeof hdr[i] - 1 - (size_t)hlen[i]
						      ? (size_t)r
						      : sizeof hdr[i] - 1 - (size_t)hlen[i];
				memcpy(hdr[i] + hlen[i], buf, take);
				hlen[i] += (int)take;
				hdr[i][hlen[i]] = 0;
				char *eoh = strstr(hdr[i], "\r\n\r\n");
				if (!eoh)
					continue;
				char *cl = strcasestr(hdr[i], "\r\ncontent-length:");
				need[i] = cl ? atoi(cl + 17) : 0;
				size_t hbytes = (size_t)(eoh + 4 - hdr[i]);
				/* what of this read is body */
				off = take - ((size_t)hlen[i] - hbytes);
			}
			need[i] -= (int)((size_t)r - off);
			if (need[i] <= 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
				left--;
			}
		}
	}
	close(ep);
	free(need);
	free(hdr);
	free(hlen);
}

int main(int argc, char **argv)
{
	if (argc < 7 || strcmp(argv[5], "--")) {
		fprintf(stderr, "usage: drain keepalive|silent|floor|eof N PORT SIGNAL -- server command...\n");
		return 2;
	}
	int keepalive = !strcmp(argv[1], "keepalive"), eof = !strcmp(argv[1], "eof");
	int floor_mode = !strcmp(argv[1], "floor");
	int n = atoi(argv[2]), port = atoi(argv[3]), sig = atoi(argv[4]);
	long limit_ms = getenv("GRACESHIM_BENCH_DRAIN_LIMIT_MS")
				? atol(getenv("GRACESHIM_BENCH_DRAIN_LIMIT_MS"))
				: 20000;
	if (n <= 0 || port <= 0 || sig <= 0 || (!keepalive && !eof && !floor_mode && strcmp(argv[1], "silent"))) {
		fprintf(stderr, "drain: bad arguments\n");
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	server = fork();
	if (server < 0)
		die("fork");
	if (server == 0) {
		execvp(argv[6], argv + 6);
		_exit(127);
	}
	int fd = -1;
	for (int i = 0; i < 1000 && (fd = connect_to(port)) < 0; i++)
		sleep_ms(10);
	if (fd < 0)
		die("the server never listened");
	close(fd); /* a connection of its own: the server closes it at its EOF */

	int *fds = malloc((size_t)n * sizeof *fds);
	if (!fds)
		die("malloc");
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	for (int i = 0; i < n; i++) {
		/* A full accept queue drops SYNs (the retry is 1 s later): wait
		 * for the server to catch up every 500 connections. */
		if (i % 500 == 499)
			for (int w = 0; w < 500 && accept_queue(port) > 0; w++)
				sleep_ms(2);
		if ((fds[i] = connect_to(port)) < 0)
			die("connect");
		if (keepalive && write(fds[i], req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
			die("write");
	}
	if (keepalive)
		read_responses(fds, n);
	/* Accepted, all of them: the accept queue stays empty for 100 ms. */
	for (int ok = 0, w = 0; ok < 5; w++) {
		if (w > 1000) {
			errno = ETIMEDOUT;
			die("the server never accepted every connection");
		}
		ok = accept_queue(port) == 0 ? ok + 1 : 0;
		sleep_ms(20);
	}
	sleep_ms(300);
	int *held = NULL, nheld = 0;
	if (floor_mode) {
		held = malloc((size_t)n * sizeof *held);
		if (!held)
			die("malloc");
		nheld = grab_conns(server, port, held, n);
		if (nheld != n) {
			fprintf(stderr, "drain: floor: found %d of the server's %d connections\n", nheld, n);
			errno = ESRCH;
			die("pidfd_getfd (Linux 5.6, ptrace permission)");
		}
	}

	int ep = epoll_create1(EPOLL_CLOEXEC);
	int pfd = (int)syscall(SYS_pidfd_open, server, 0);
	if (ep < 0 || pfd < 0)
		die("epoll/pidfd_open");
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)n};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &ev) < 0)
		die("epoll_ctl pidfd");
	/* The clients' FINs are watched only when asked: handling N events
	 * takes a CPU the server needs (two cores here), and would delay
	 * the one event that matters, the exit. */
	int watch = getenv("GRACESHIM_BENCH_DRAIN_FINS") != NULL;
	for (int i = 0; watch && i < n; i++) {
		ev = (struct epoll_event){.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (unsigned)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl");
	}

	unsigned long long t0 = now_ns(), first = 0, last = 0, exited = 0;
	int fins = 0;
	if (kill(server, sig) < 0)
		die("kill");
	/* eof: the clients end every connection themselves (what a server
	 * needs to read N EOFs and close, without graceshim) */
	for (int i = 0; eof && i < n; i++)
		shutdown(fds[i], SHUT_WR);
	for (int i = 0; i < nheld; i++) {
		shutdown(held[i], SHUT_RD);
		close(held[i]);
	}
	struct epoll_event evs[512];
	while (!exited || (watch && fins < n)) {
		long left = limit_ms - (long)((now_ns() - t0) / 1000000);
		if (left <= 0)
			break;
		int k = epoll_wait(ep, evs, 512, (int)left);
		unsigned long long t = now_ns();
		for (int e = 0; e < k; e++) {
			unsigned i = evs[e].data.u32;
			if (i == (unsigned)n) {
				exited = t;
				epoll_ctl(ep, EPOLL_CTL_DEL, pfd, NULL);
				continue;
			}
			if (!first)
				first = t;
			last = t;
			fins++;
			epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
		}
	}
	int status = 0;
	if (!exited) {
		kill(server, SIGKILL);
		fprintf(stderr, "drain: the server did not exit within %ld ms: killed\n", limit_ms);
	}
	waitpid(server, &status, 0);
	printf("signal_ns %llu\nfirst_fin_ns %llu\nlast_fin_ns %llu\nfins %d\nexit_ns %llu\n", t0,
	       first, last, fins, exited);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return exited ? 0 : 1;
}
