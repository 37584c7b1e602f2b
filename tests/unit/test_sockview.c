/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel's view of a socket, against real loopback sockets: never used,
 * used, closed by the peer, a listener, a unix socket, a pipe; and the FIN
 * arithmetic on the answers of older kernels.
 */
#include "sockview.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct pair {
	int lfd, cfd, sfd; /* listener, client end, accepted end */
};

static struct pair loopback(void)
{
	struct pair p;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	p.lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(p.lfd >= 0);
	cr_assert(bind(p.lfd, (struct sockaddr *)&a, sizeof a) == 0);
	cr_assert(listen(p.lfd, 8) == 0);
	cr_assert(getsockname(p.lfd, (struct sockaddr *)&a, &al) == 0);
	p.cfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(connect(p.cfd, (struct sockaddr *)&a, sizeof a) == 0);
	p.sfd = accept(p.lfd, NULL, NULL);
	cr_assert(p.sfd >= 0);
	return p;
}

/* Until fd has n bytes waiting (loopback delivers at once; bounded). */
static void wait_inq(int fd, int n)
{
	struct sockview v;
	for (int i = 0; i < 2000; i++) {
		sockview_look(fd, SOCKVIEW_INQ, &v);
		if (v.inq >= n)
			return;
		usleep(1000);
	}
	cr_assert(0, "never %d bytes waiting", n);
}

static void wait_state(int fd, uint8_t state)
{
	struct sockview v;
	for (int i = 0; i < 2000; i++) {
		sockview_look(fd, SOCKVIEW_TCP, &v);
		if (v.state == state)
			return;
		usleep(1000);
	}
	cr_assert(0, "never in state %d", state);
}

Test(sockview, never_used_connection)
{
	struct pair p = loopback();
	struct sockview v;
	usleep(30000);
	cr_assert_eq(sockview_look(p.sfd, SOCKVIEW_ALL, &v), 0);
	cr_assert_eq(v.family, AF_INET);
	cr_assert_eq(v.type, SOCK_STREAM);
	cr_assert_eq(v.protocol, IPPROTO_TCP);
	cr_assert_not(v.listener);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	getsockname(p.lfd, (struct sockaddr *)&a, &al);
	cr_assert_eq(v.port, a.sin_port, "an accepted socket has its listener's port");
	cr_assert(v.tcp);
	cr_assert_eq(v.state, SOCKVIEW_ESTABLISHED);
	cr_assert_eq(v.bytes_received, 0);
	cr_assert_eq(v.rx, 0);
	cr_assert_eq(v.inq, 0);
	cr_assert_eq(v.outq, 0);
	cr_assert_geq(v.last_data_recv_ms, 20, "its age: %u ms", v.last_data_recv_ms);
	cr_assert(sockview_never_used(&v, 20));
	cr_assert_not(sockview_never_used(&v, 60000), "younger than the grace");
	cr_assert_eq(sockview_read_bytes(p.sfd), 0);
	struct stat st;
	fstat(p.sfd, &st);
	cr_assert_eq(v.dev, (uint64_t)st.st_dev);
	cr_assert_eq(v.ino, (uint64_t)st.st_ino);
	close(p.cfd), close(p.sfd), close(p.lfd);
}

Test(sockview, used_connection_counts_what_was_read)
{
	struct pair p = loopback();
	struct sockview v;
	cr_assert_eq(write(p.cfd, "hello", 5), 5);
	wait_inq(p.sfd, 5);
	cr_assert_eq(sockview_look(p.sfd, SOCKVIEW_ALL, &v), 0);
	cr_assert_eq(v.bytes_received, 5);
	cr_assert_eq(v.rx, 5);
	cr_assert_eq(v.inq, 5);
	cr_assert_eq(v.data_segs_in, 1);
	cr_assert_not(sockview_never_used(&v, 0));
	cr_assert_eq(sockview_read_bytes(p.sfd), 0, "nothing read yet");
	char b[8];
	cr_assert_eq(read(p.sfd, b, 3), 3);
	cr_assert_eq(sockview_read_bytes(p.sfd), 3);
	cr_assert_eq(write(p.sfd, "answer", 6), 6);
	for (int i = 0; i < 2000 && (sockview_look(p.sfd, SOCKVIEW_TCP, &v), v.tx < 6); i++)
		usleep(1000);
	cr_assert_eq(v.tx, 6, "acknowledged data");
	close(p.cfd), close(p.sfd), close(p.lfd);
}

Test(sockview, peer_fin_is_no_data)
{
	struct pair p = loopback();
	struct sockview v;
	shutdown(p.cfd, SHUT_WR);
	wait_state(p.sfd, SOCKVIEW_CLOSE_WAIT);
	cr_assert_eq(sockview_look(p.sfd, SOCKVIEW_ALL, &v), 0);
	cr_assert_eq(v.bytes_received, 1, "the kernel counts the FIN as a byte");
	cr_assert_eq(v.rx, 0);
	cr_assert_eq(v.inq, 0);
	cr_assert_not(sockview_never_used(&v, 0), "the peer is gone: not established");
	cr_assert_eq(sockview_read_bytes(p.sfd), 0);

	struct pair q = loopback();
	cr_assert_eq(write(q.cfd, "GET", 3), 3);
	shutdown(q.cfd, SHUT_WR);
	wait_state(q.sfd, SOCKVIEW_CLOSE_WAIT);
	sockview_look(q.sfd, SOCKVIEW_ALL, &v);
	cr_assert_eq(v.bytes_received, 4);
	cr_assert_eq(v.rx, 3);
	cr_assert_eq(sockview_read_bytes(q.sfd), 0);
	char b[8];
	cr_assert_eq(read(q.sfd, b, sizeof b), 3);
	cr_assert_eq(sockview_read_bytes(q.sfd), 3);
	close(p.cfd), close(p.sfd), close(p.lfd);
	close(q.cfd), close(q.sfd), close(q.lfd);
}

Test(sockview, listener)
{
	struct pair p = loopback();
	struct sockview v;
	int c2 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	getsockname(p.lfd, (struct sockaddr *)&a, &al);
	cr_assert(connect(c2, (struct sockaddr *)&a, sizeof a) == 0);
	cr_assert_eq(sockview_look(p.lfd, SOCKVIEW_ALL, &v), 0);
	cr_assert(v.listener);
	cr_assert_eq(v.port, a.sin_port);
	cr_assert_eq(v.state, SOCKVIEW_LISTEN);
	cr_assert_eq(v.unacked, 1, "one client waits to be accepted");
	cr_assert_not(sockview_never_used(&v, 0));
	close(c2), close(p.cfd), close(p.sfd), close(p.lfd);
}

Test(sockview, unix_socket_has_no_tcp_view)
{
	int sv[2];
	struct sockview v;
	cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	cr_assert_eq(write(sv[0], "ab", 2), 2);
	cr_assert_eq(sockview_look(sv[1], SOCKVIEW_ALL, &v), 0);
	cr_assert_eq(v.family, AF_UNIX);
	cr_assert_eq(v.type, SOCK_STREAM);
	cr_assert_not(v.listener);
	cr_assert_eq(v.port, 0);
	cr_assert_not(v.tcp);
	cr_assert_eq(v.inq, 2);
	cr_assert_not(sockview_never_used(&v, 0));
	cr_assert_eq(sockview_read_bytes(sv[1]), -1);
	close(sv[0]), close(sv[1]);
}

Test(sockview, pipe_is_no_socket)
{
	int pf[2];
	struct sockview v;
	cr_assert(pipe(pf) == 0);
	errno = 1234;
	cr_assert_eq(sockview_look(pf[0], SOCKVIEW_ALL, &v), -1);
	cr_assert_eq(errno, 1234, "errno left as it was");
	cr_assert_eq(v.family, 0);
	cr_assert_not(v.tcp);
	struct stat st;
	fstat(pf[0], &st);
	cr_assert_not(sockview_same(pf[0], 0, st.st_ino), "a pipe is never our socket");
	struct tcp_info ti;
	socklen_t len;
	cr_assert_eq(sockview_tcp_info(pf[0], &ti, &len), -1);
	close(pf[0]), close(pf[1]);
	cr_assert_eq(sockview_look(pf[0], SOCKVIEW_ALL, &v), -1, "closed fd");
}

Test(sockview, same_socket_identity)
{
	struct pair p = loopback();
	struct stat st;
	fstat(p.sfd, &st);
	cr_assert(sockview_same(p.sfd, st.st_dev, st.st_ino));
	cr_assert(sockview_same(p.sfd, 0, (uint32_t)st.st_ino), "32-bit inode of a record");
	cr_assert_not(sockview_same(p.cfd, st.st_dev, st.st_ino), "another socket");
	int n = p.sfd;
	close(p.sfd);
	int again = socket(AF_INET, SOCK_STREAM, 0); /* likely the same number */
	cr_assert_not(sockview_same(n, st.st_dev, st.st_ino), "the number was reused");
	close(again), close(p.cfd), close(p.lfd);
}

/* The arithmetic on the answers of older kernels (shorter structs). */
Test(sockview, fin_arithmetic_by_kernel_version)
{
	struct tcp_info ti;
	uint64_t rx, tx;
	socklen_t v41 = offsetof(struct tcp_info, tcpi_bytes_received) +
			sizeof ti.tcpi_bytes_received;
	memset(&ti, 0, sizeof ti);
	ti.tcpi_state = SOCKVIEW_CLOSE_WAIT;
	ti.tcpi_bytes_received = 11; /* 10 bytes and the FIN */
	ti.tcpi_bytes_acked = 7;
	sockview_data_bytes(&ti, v41, &rx, &tx);
	cr_assert_eq(rx, 10);
	cr_assert_eq(tx, 7);
	ti.tcpi_state = SOCKVIEW_FIN_WAIT2; /* our FIN acknowledged: acked one high */
	ti.tcpi_bytes_received = 10;
	sockview_data_bytes(&ti, v41, &rx, &tx);
	cr_assert_eq(rx, 10);
	cr_assert_eq(tx, 6);
	/* 4.6+: no data segment means the one byte counted is a FIN */
	ti.tcpi_state = SOCKVIEW_CLOSE;
	ti.tcpi_bytes_received = 1;
	ti.tcpi_data_segs_in = 0;
	sockview_data_bytes(&ti, sizeof ti, &rx, &tx);
	cr_assert_eq(rx, 0);
	/* 4.19+: acknowledged beyond the data sent is our FIN */
	ti.tcpi_bytes_sent = 100;
	ti.tcpi_bytes_retrans = 0;
	ti.tcpi_bytes_acked = 101;
	sockview_data_bytes(&ti, sizeof ti, &rx, &tx);
	cr_assert_eq(tx, 100);
	cr_assert(SOCKVIEW_HAS(v41, tcpi_bytes_received));
	cr_assert_not(SOCKVIEW_HAS(v41, tcpi_data_segs_in));
}

/* The cheap look outside mode makes on every fd: getsockname and TCP_INFO
 * alone tell an accepted TCP connection from a listener, a unix socket and
 * a pipe. */
Test(sockview, cheap_look_without_kind)
{
	const unsigned cheap = SOCKVIEW_ADDR | SOCKVIEW_TCP | SOCKVIEW_INQ;
	struct pair p = loopback();
	struct sockview v;
	cr_assert_eq(sockview_look(p.sfd, cheap, &v), 0);
	cr_assert(v.tcp);
	cr_assert_not(v.listener);
	cr_assert_eq(v.family, AF_INET);
	cr_assert_neq(v.port, 0);
	cr_assert(sockview_never_used(&v, 0));
	cr_assert_eq(sockview_look(p.lfd, cheap, &v), 0);
	cr_assert(v.listener, "TCP_LISTEN says listener");
	cr_assert_not(sockview_never_used(&v, 0));
	int sv[2], pf[2];
	cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	cr_assert_eq(sockview_look(sv[0], cheap, &v), 0);
	cr_assert_eq(v.family, AF_UNIX);
	cr_assert_not(v.tcp);
	cr_assert_not(sockview_never_used(&v, 0));
	cr_assert(pipe(pf) == 0);
	cr_assert_eq(sockview_look(pf[0], cheap, &v), -1);
	cr_assert_not(v.tcp);
	cr_assert_eq(sockview_look(pf[0], SOCKVIEW_TCP | SOCKVIEW_INQ, &v), 0,
		     "nothing asked that says socket");
	cr_assert_not(v.tcp);
	close(sv[0]), close(sv[1]), close(pf[0]), close(pf[1]);
	close(p.cfd), close(p.sfd), close(p.lfd);
}
