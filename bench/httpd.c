/*
 * SPDX-License-Identifier: MIT
 *
 * A small single-threaded epoll HTTP/1.1 server for the real-server check:
 * accept4, recv, send, close, the way event-loop servers (nginx workers,
 * tokio's current-thread runtime) do it, with about the work per request
 * of a lean one: the request line and every header parsed, a Date header
 * cached per second, the response head formatted.  Every request gets a
 * 13-byte body; "Connection: close" (or HTTP/1.0) gets a Connection: close
 * response and the server closes the connection (wrk then reconnects).
 *
 *   httpd [--max-seconds S] [--thread]
 *       listens on 127.0.0.1, prints "PORT <n>".  --thread starts an idle
 *       thread first: the same loop with threads beside it, the shape of
 *       Node's or a JVM server's (graceshim's sweeper then runs from the
 *       start, where a single-threaded process defers it).
 *
 * SIGINT or SIGTERM (a sigaction handler, which graceshim hooks) ends it;
 * so does --max-seconds (default 600), so it never outlives a run.
 */
#include "bench.h"

#include <strings.h>
#include <fcntl.h>
#include <sys/epoll.h>

#define MAX_FD 65536
#define BUF 4096

struct conn {
	size_t len;
	char buf[BUF];
};

static struct conn *conns[MAX_FD];
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static char date[64]; /* the Date header, refreshed once a second, as nginx does */

static void update_date(void)
{
	static time_t last;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec == last)
		return;
	last = ts.tv_sec;
	gmtime_r(&last, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

struct req {
	const char *method, *path;
	size_t method_len, path_len;
	int minor, close, host;
};

/* Parses a complete head ("...\r\n\r\n"): the request line, then each
 * header; returns -1 on a malformed request. */
static int parse(const char *p, const char *end, struct req *r)
{
	memset(r, 0, sizeof *r);
	const char *eol = memchr(p, '\r', (size_t)(end - p));
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || eol - sp2 != 9 || strncmp(sp2 + 1, "HTTP/1.", 7))
		return -1;
	r->method = p, r->method_len = (size_t)(sp1 - p);
	r->path = sp1 + 1, r->path_len = (size_t)(sp2 - sp1 - 1);
	r->minor = sp2[8] - '0';
	r->close = r->minor == 0;
	for (p = eol + 2; p < end && *p != '\r'; p = eol + 2) {
		eol = memchr(p, '\r', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon)
			return -1;
		const char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		size_t nlen = (size_t)(colon - p), vlen = (size_t)(eol - v);
		if (nlen == 10 && !strncasecmp(p, "connection", 10)) {
			if (vlen == 5 && !strncasecmp(v, "close", 5))
				r->close = 1;
			else if (vlen == 10 && !strncasecmp(v, "keep-alive", 10))
				r->close = 0;
		} else if (nlen == 4 && !strncasecmp(p, "host", 4)) {
			r->host = 1;
		}
	}
	return 0;
}

static int respond(int fd, const struct req *r)
{
	static const char body[] = "Hello, world\n";
	char out[512];
	int ok = r->method_len == 3 && !memcmp(r->method, "GET", 3) && r->path_len >= 1 &&
		 r->path[0] == '/';
	int n = snprintf(out, sizeof out,
			 "HTTP/1.1 %s\r\nServer: graceshim-bench\r\nDate: %s\r\n"
			 "Content-Type: text/plain\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n%s",
			 ok ? "200 OK" : "400 Bad Request", date, ok ? sizeof body - 1 : 0,
			 r->close ? "close" : "keep-alive", ok ? body : "");
	return send(fd, out, (size_t)n, MSG_NOSIGNAL) == n && ok;
}

static void drop(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

/* Returns 0 when the connection was closed. */
static int serve(int ep, int fd)
{
	struct conn *c = conns[fd];
	for (;;) {
		size_t want = BUF - 1 - c->len;
		ssize_t r = recv(fd, c->buf + c->len, want, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 1;
		if (r <= 0) {
			drop(ep, fd);
			return 0;
		}
		c->len += (size_t)r;
		c->buf[c->len] = 0;
		char *end;
		while ((end = strstr(c->buf, "\r\n\r\n"))) {
			size_t head = (size_t)(end + 4 - c->buf);
			struct req rq;
			if (parse(c->buf, end + 2, &rq) < 0 || !respond(fd, &rq) || rq.close) {
				drop(ep, fd);
				return 0;
			}
			memmove(c->buf, c->buf + head, c->len - head + 1);
			c->len -= head;
		}
		if (c->len == BUF - 1) { /* a head larger than we serve */
			drop(ep, fd);
			return 0;
		}
		if ((size_t)r < want)
			return 1; /* a short read: the queue is empty, skip the EAGAIN */
	}
}

int main(int argc, char **argv)
{
	int max_seconds = 600;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--max-seconds") && i + 1 < argc)
			max_seconds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--thread"))
			bench_idle_thread_start();
		else {
			fprintf(stderr, "usage: httpd [--max-seconds S] [--thread]\n");
			return 2;
		}
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int port, lfd = bench_tcp_listen(&port, 4096);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		bench_die("epoll");
	printf("PORT %d\n", port);
	fflush(stdout);

	uint64_t deadline = bench_now_ns() + (uint64_t)max_seconds * 1000000000u;
	struct epoll_event evs[256];
	while (!stop) {
		int k = epoll_wait(ep, evs, 256, 1000);
		update_date();
		if (k < 0 && errno != EINTR)
			bench_die("epoll_wait");
		if (k <= 0 && bench_now_ns() > deadline)
			break;
		for (int j = 0; j < k; j++) {
			int fd = evs[j].data.fd;
			if (fd != lfd) {
				serve(ep, fd);
				continue;
			}
			for (;;) {
				struct sockaddr_storage peer;
				socklen_t plen = sizeof peer;
				int c = accept4(lfd, (struct sockaddr *)&peer, &plen,
						SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (c < 0)
					break;
				if (c >= MAX_FD || !(conns[c] = malloc(sizeof *conns[c]))) {
					close(c);
					continue;
				}
				conns[c]->len = 0; /* the buffer itself needs no zeroing */
				struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
				if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
					drop(ep, c);
			}
		}
	}
	return 0;
}
