/*
 * SPDX-License-Identifier: MIT
 *
 * uring_server: an HTTP/1.0-ish server whose accepts and reads are io_uring
 * operations (liburing), so LD_PRELOAD sees none of them.  On SIGINT or
 * SIGTERM (a signalfd read through the ring) it cancels its accept, closes
 * the listener and waits for every connection to end: one that never sends
 * a byte keeps it waiting for ever.  Prints "PORT <n>".
 */
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum { ACCEPT = 1, SIGNAL = 2, RECV = 3, SEND = 4, CANCEL = 5 };
#define UD(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

static struct io_uring ring;
static char bufs[1024][512];

static struct io_uring_sqe *sqe(void)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&ring);
	if (!s) {
		io_uring_submit(&ring);
		s = io_uring_get_sqe(&ring);
	}
	return s;
}

int main(void)
{
	static const char reply[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
		perror("uring_server: listen");
		return 3;
	}
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGINT);
	sigaddset(&m, SIGTERM);
	sigprocmask(SIG_BLOCK, &m, NULL);
	int sfd = signalfd(-1, &m, 0);
	if (io_uring_queue_init(64, &ring, 0) < 0) {
		fprintf(stderr, "uring_server: io_uring_queue_init failed\n");
		return 3;
	}
	printf("PORT %d\n", ntohs(a.sin_port));
	fflush(stdout);
	struct signalfd_siginfo si;
	struct io_uring_sqe *q = sqe();
	io_uring_prep_accept(q, lfd, NULL, NULL, 0);
	io_uring_sqe_set_data64(q, UD(ACCEPT, lfd));
	q = sqe();
	io_uring_prep_read(q, sfd, &si, sizeof si, 0);
	io_uring_sqe_set_data64(q, UD(SIGNAL, sfd));
	int conns = 0, stopping = 0;
	while (!stopping || conns > 0) {
		struct io_uring_cqe *c;
		io_uring_submit(&ring);
		if (io_uring_wait_cqe(&ring, &c) < 0)
			continue;
		int kind = (int)(c->user_data >> 32), fd = (int)(uint32_t)c->user_data,
		    res = c->res;
		io_uring_cqe_seen(&ring, c);
		switch (kind) {
		case ACCEPT:
			if (res >= 0 && res < 1024) {
				conns++;
				q = sqe();
				io_uring_prep_recv(q, res, bufs[res], sizeof bufs[res], 0);
				io_uring_sqe_set_data64(q, UD(RECV, res));
			} else if (res >= 0) {
				close(res);
			}
			if (!stopping) {
				q = sqe();
				io_uring_prep_accept(q, lfd, NULL, NULL, 0);
				io_uring_sqe_set_data64(q, UD(ACCEPT, lfd));
			}
			break;
		case SIGNAL:
			/* Stop accepting: the pending accept holds the listener. */
			stopping = 1;
			q = sqe();
			io_uring_prep_cancel64(q, UD(ACCEPT, lfd), 0);
			io_uring_sqe_set_data64(q, UD(CANCEL, 0));
			io_uring_submit(&ring);
			close(lfd);
			fprintf(stderr, "uring_server: stopping, %d connection(s) open\n", conns);
			break;
		case RECV:
			if (res > 0) {
				q = sqe();
				io_uring_prep_send(q, fd, reply, sizeof reply - 1, 0);
				io_uring_sqe_set_data64(q, UD(SEND, fd));
			} else {
				close(fd);
				conns--;
			}
			break;
		case SEND:
			close(fd);
			conns--;
			break;
		}
	}
	io_uring_queue_exit(&ring);
	return 0;
}
