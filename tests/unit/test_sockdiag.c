/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel's socket diagnostics against real loopback sockets: an
 * accepted connection's local address is one a listener holds, an outbound
 * connection's never is, whatever the listener is bound to (an address,
 * the wildcard, IPv6 with an IPv4 client), and no longer once the listener
 * is closed; the dump of listeners finds the one made here.
 */
#include "sockdiag.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct trio {
	int lfd, cfd, sfd; /* listener, client end, accepted end */
};

/* addr (text) and port (network order) as a socket address of family. */
static socklen_t inet_addr_of(int family, const char *addr, uint16_t port,
			      struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;
		a->sin_family = AF_INET;
		a->sin_port = port;
		cr_assert(inet_pton(AF_INET, addr, &a->sin_addr) == 1);
		return sizeof *a;
	}
	struct sockaddr_in6 *a = (void *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = port;
	cr_assert(inet_pton(AF_INET6, addr, &a->sin6_addr) == 1);
	return sizeof *a;
}

/* A listener bound to bind_addr (family lfam), a client of family cfam
 * connecting to connect_addr on its port, and the accepted end. */
static struct trio trio(int lfam, const char *bind_addr, int cfam, const char *connect_addr)
{
	struct trio t;
	struct sockaddr_storage ss;
	socklen_t sl = inet_addr_of(lfam, bind_addr, 0, &ss);
	t.lfd = socket(lfam, SOCK_STREAM, 0);
	cr_assert(t.lfd >= 0);
	cr_assert(bind(t.lfd, (struct sockaddr *)&ss, sl) == 0);
	cr_assert(listen(t.lfd, 8) == 0);
	sl = sizeof ss;
	cr_assert(getsockname(t.lfd, (struct sockaddr *)&ss, &sl) == 0);
	uint16_t port = lfam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port;
	sl = inet_addr_of(cfam, connect_addr, port, &ss);
	t.cfd = socket(cfam, SOCK_STREAM, 0);
	cr_assert(t.cfd >= 0);
	cr_assert(connect(t.cfd, (struct sockaddr *)&ss, sl) == 0);
	t.sfd = accept(t.lfd, NULL, NULL);
	cr_assert(t.sfd >= 0);
	return t;
}

static bool listened_on(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	cr_assert(getsockname(fd, (struct sockaddr *)&ss, &sl) == 0);
	return sockdiag_listening_on(&ss);
}

static void expect_accepted_not_outbound(struct trio t, const char *what)
{
	cr_assert(listened_on(t.sfd), "%s: the accepted end's address is a listener's", what);
	cr_assert(!listened_on(t.cfd), "%s: the outbound end's address is no listener's", what);
	close(t.lfd);
	cr_assert(!listened_on(t.sfd), "%s: no listener once it is closed", what);
	close(t.sfd);
	close(t.cfd);
}

Test(sockdiag, ipv4_listener_on_an_address)
{
	expect_accepted_not_outbound(trio(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1"), "127.0.0.1");
}

Test(sockdiag, ipv4_wildcard_listener)
{
	expect_accepted_not_outbound(trio(AF_INET, "0.0.0.0", AF_INET, "127.0.0.2"), "0.0.0.0");
}

Test(sockdiag, ipv6_listener)
{
	expect_accepted_not_outbound(trio(AF_INET6, "::1", AF_INET6, "::1"), "::1");
}

Test(sockdiag, ipv6_wildcard_listener_with_an_ipv4_client)
{
	expect_accepted_not_outbound(trio(AF_INET6, "::", AF_INET, "127.0.0.1"), ":: (v4-mapped)");
}

Test(sockdiag, not_an_inet_address)
{
	struct sockaddr_storage ss = {.ss_family = AF_UNIX};
	cr_assert(!sockdiag_listening_on(&ss));
}

struct seen {
	uint64_t ino;
	uint16_t port;
	bool found;
};

static void note(const struct inet_diag_msg *m, void *ctx)
{
	struct seen *s = ctx;
	if (m->idiag_inode == s->ino && m->id.idiag_sport == s->port)
		s->found = true;
}

Test(sockdiag, listeners_dump_finds_ours)
{
	struct trio t = trio(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1");
	struct stat st;
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	cr_assert(fstat(t.lfd, &st) == 0);
	cr_assert(getsockname(t.lfd, (struct sockaddr *)&a, &al) == 0);
	struct seen s = {.ino = (uint64_t)st.st_ino, .port = a.sin_port};
	cr_assert(sockdiag_listeners(note, &s) == 0);
	cr_assert(s.found, "the dump lists the listener made here");
	close(t.lfd), close(t.sfd), close(t.cfd);
}
