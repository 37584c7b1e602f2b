/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel's socket diagnostics (see sockdiag.h).
 */
#include "sockdiag.h"

#include "sockview.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

struct sockdiag_req {
	struct nlmsghdr h;
	struct inet_diag_req_v2 q;
};

/* Sends req on a new netlink socket and calls fn for each answer until the
 * kernel is done.  Returns 0 when it answered (even with nothing), -1 when
 * it could not (no sock_diag; for a single lookup, ENOENT is an answer: 0
 * with no call). */
static int ask(struct sockdiag_req *req, void (*fn)(const struct inet_diag_msg *m, void *ctx),
	       void *ctx)
{
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -1;
	int r = 0;
	if (sendto(nl, req, sizeof *req, 0, NULL, 0) != (ssize_t)sizeof *req) {
		close(nl);
		return -1;
	}
	for (bool end = false; !end;) {
		long buf[8192 / sizeof(long)];
		ssize_t n = recvfrom(nl, buf, sizeof buf, 0, NULL, NULL);
		if (n <= 0) {
			r = -1;
			break;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				end = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				r = e->error == -ENOENT ? 0 : -1;
				end = true;
				break;
			}
			fn(NLMSG_DATA(h), ctx);
			if (!(req->h.nlmsg_flags & NLM_F_DUMP))
				end = true; /* one answer */
		}
	}
	close(nl);
	return r;
}

int sockdiag_listeners(void (*fn)(const struct inet_diag_msg *m, void *ctx), void *ctx)
{
	int saved = errno, r = 0;
	static const uint8_t families[] = {AF_INET, AF_INET6};
	for (int f = 0; f < 2 && r == 0; f++) {
		struct sockdiag_req req = {
			.h = {.nlmsg_len = sizeof req,
			      .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			      .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
			.q = {.sdiag_family = families[f],
			      .sdiag_protocol = IPPROTO_TCP,
			      .idiag_states = 1u << SOCKVIEW_LISTEN},
		};
		r = ask(&req, fn, ctx);
	}
	errno = saved;
	return r;
}

static void note_listener(const struct inet_diag_msg *m, void *ctx)
{
	if (m->idiag_state == SOCKVIEW_LISTEN)
		*(bool *)ctx = true;
}

/* One lookup, not a dump: the kernel looks the socket up by its four-tuple
 * as it would an arriving segment's (inet_diag_find_one_icsk: the remote
 * end is the request's destination), and with no remote end that is the
 * listener a connection to local would reach. */
bool sockdiag_listening_on(const struct sockaddr_storage *local)
{
	struct sockdiag_req req = {
		.h = {.nlmsg_len = sizeof req,
		      .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		      .nlmsg_flags = NLM_F_REQUEST},
		.q = {.sdiag_family = (uint8_t)local->ss_family,
		      .sdiag_protocol = IPPROTO_TCP,
		      .idiag_states = ~0u,
		      .id = {.idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}},
	};
	if (local->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)local;
		req.q.id.idiag_sport = in->sin_port;
		memcpy(req.q.id.idiag_src, &in->sin_addr, 4);
	} else if (local->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)local;
		req.q.id.idiag_sport = in6->sin6_port;
		memcpy(req.q.id.idiag_src, &in6->sin6_addr, 16);
	} else {
		return false;
	}
	int saved = errno;
	bool found = false;
	if (ask(&req, note_listener, &found) < 0)
		found = false;
	errno = saved;
	return found;
}
