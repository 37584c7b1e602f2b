/*
 * SPDX-License-Identifier: MIT
 *
 * A fixed-count HTTP client, for counting the server's instructions per
 * request under callgrind (wrk runs for a duration, not a count).
 *
 *   load PORT R keepalive   R requests, one after the other, on one connection
 *   load PORT R close       R connections, one "Connection: close" request each
 *
 * Every socket has 10 s timeouts; exits 1 on any short or failed exchange.
 */
#include "bench.h"

static const char req_keep[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
static const char req_close[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/* Reads one response (head, then Content-Length bytes of body). */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	for (;;) {
		ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = 0;
		char *end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		char *cl = strstr(buf, "Content-Length: ");
		size_t body = cl ? (size_t)atol(cl + 16) : 0;
		if (len >= (size_t)(end + 4 - buf) + body)
			return 0;
	}
}

int main(int argc, char **argv)
{
	char buf[4096];

	if (argc != 4) {
		fprintf(stderr, "usage: load PORT R keepalive|close\n");
		return 2;
	}
	int port = atoi(argv[1]);
	long r = atol(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[3], "keepalive")) {
		int fd = bench_tcp_connect(port);
		for (long i = 0; i < r; i++)
			if (send(fd, req_keep, sizeof req_keep - 1, 0) != sizeof req_keep - 1 ||
			    read_response(fd, buf, sizeof buf) < 0) {
				fprintf(stderr, "load: request %ld failed\n", i);
				return 1;
			}
		close(fd);
	} else if (!strcmp(argv[3], "close")) {
		for (long i = 0; i < r; i++) {
			int fd = bench_tcp_connect(port);
			if (send(fd, req_close, sizeof req_close - 1, 0) != sizeof req_close - 1 ||
			    read_response(fd, buf, sizeof buf) < 0) {
				fprintf(stderr, "load: connection %ld failed\n", i);
				return 1;
			}
			close(fd);
		}
	} else {
		fprintf(stderr, "load: mode keepalive or close\n");
		return 2;
	}
	return 0;
}
