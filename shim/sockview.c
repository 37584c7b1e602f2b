/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel's view of one socket fd (see sockview.h): getsockopt,
 * getsockname, ioctl and fstat only, none of which the library interposes.
 */
#include "sockview.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

int sockview_tcp_info(int fd, struct tcp_info *ti, socklen_t *len)
{
	int saved = errno;
	memset(ti, 0, sizeof *ti);
	*len = sizeof *ti;
	int r = getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, len) == 0 &&
				SOCKVIEW_HAS(*len, tcpi_bytes_received)
			? 0
			: -1;
	errno = saved;
	return r;
}

/* The kernel counts a FIN as one byte of sequence space: in
 * tcpi_bytes_received once it arrives, in tcpi_bytes_acked once the peer
 * acknowledged ours.  Which FINs are counted is not a matter of the state
 * alone: after the peer's FIN and our shutdown(SHUT_WR) the socket is in
 * TCP_CLOSE with both counted, as it is after a reset with neither.  So,
 * state-free where the kernel allows:
 *  - sent: tcpi_bytes_sent - tcpi_bytes_retrans is the data sent (a FIN
 *    carries none; Linux 4.19+), and the acknowledged bytes beyond it can
 *    only be our FIN: sent = min(acked, data);
 *  - received: no segment with data (tcpi_data_segs_in, Linux 4.6+) means
 *    nothing but a FIN was counted: 0.  Otherwise the peer's FIN was counted
 *    in the states that follow it, and in TCP_CLOSE when our own FIN was
 *    acknowledged too (the orderly end; a reset after our half-close is the
 *    one case left one byte high). */
void sockview_data_bytes(const struct tcp_info *ti, socklen_t len, uint64_t *rx, uint64_t *tx)
{
	uint8_t st = ti->tcpi_state;
	uint64_t in = ti->tcpi_bytes_received, acked = ti->tcpi_bytes_acked;
	bool fin_out_acked;
	if (SOCKVIEW_HAS(len, tcpi_bytes_retrans)) {
		uint64_t data = ti->tcpi_bytes_sent - ti->tcpi_bytes_retrans;
		fin_out_acked = acked > data;
		if (fin_out_acked)
			acked = data;
	} else {
		fin_out_acked = st == SOCKVIEW_FIN_WAIT2 || st == SOCKVIEW_TIME_WAIT ||
				st == SOCKVIEW_CLOSE;
		acked -= fin_out_acked && acked;
	}
	bool fin_in = st == SOCKVIEW_CLOSE_WAIT || st == SOCKVIEW_LAST_ACK ||
		      st == SOCKVIEW_CLOSING || st == SOCKVIEW_TIME_WAIT ||
		      (st == SOCKVIEW_CLOSE && fin_out_acked);
	if (SOCKVIEW_HAS(len, tcpi_data_segs_in) && ti->tcpi_data_segs_in == 0)
		in = 0;
	else
		in -= fin_in && in;
	*rx = in;
	*tx = acked;
}

uint32_t sockview_quiet_ms(const struct tcp_info *ti)
{
	return ti->tcpi_last_data_recv < ti->tcpi_last_data_sent ? ti->tcpi_last_data_recv
								 : ti->tcpi_last_data_sent;
}

int64_t sockview_read_bytes(int fd)
{
	struct tcp_info ti;
	socklen_t len;
	uint64_t rx, tx;
	int saved = errno, q = 0;
	int64_t r = -1;
	/* Waiting bytes first, the received count second: a byte arriving in
	 * between is then counted as read. */
	if (ioctl(fd, SIOCINQ, &q) == 0 && sockview_tcp_info(fd, &ti, &len) == 0) {
		sockview_data_bytes(&ti, len, &rx, &tx);
		r = (int64_t)rx - q;
		if (r < 0)
			r = 0;
	}
	errno = saved;
	return r;
}

bool sockview_same(int fd, uint64_t dev, uint64_t ino)
{
	struct stat st;
	int saved = errno;
	bool same = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    (!dev || (uint64_t)st.st_dev == dev) &&
		    (ino > UINT32_MAX ? (uint64_t)st.st_ino == ino : (uint32_t)st.st_ino == ino);
	errno = saved;
	return same;
}

static void look_kind(int fd, struct sockview *v)
{
	int x = 0;
	socklen_t l = sizeof x;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &x, &l) < 0)
		return; /* ENOTSOCK, EBADF: family stays 0 */
	v->family = x;
	l = sizeof x;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &x, &l) == 0)
		v->type = x;
	l = sizeof x;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &x, &l) == 0)
		v->protocol = x;
	l = sizeof x;
	x = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &x, &l) == 0)
		v->listener = x != 0;
}

static void look_addr(int fd, struct sockview *v)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	v->family = ss.ss_family;
	if (ss.ss_family == AF_INET6)
		v->port = ((struct sockaddr_in6 *)&ss)->sin6_port;
	else if (ss.ss_family == AF_INET)
		v->port = ((struct sockaddr_in *)&ss)->sin_port;
}

int sockview_look(int fd, unsigned want, struct sockview *v)
{
	int saved = errno, r = 0;
	memset(v, 0, sizeof *v);
	v->data_segs_in = -1;
	v->inq = v->outq = -1;
	if (want & SOCKVIEW_KIND)
		look_kind(fd, v);
	if ((want & SOCKVIEW_ADDR) && (v->family || !(want & SOCKVIEW_KIND)))
		look_addr(fd, v);
	if ((want & (SOCKVIEW_KIND | SOCKVIEW_ADDR)) && !v->family) {
		r = -1;
		goto out;
	}
	if (want & SOCKVIEW_ID) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			r = -1;
			goto out;
		}
		v->dev = (uint64_t)st.st_dev;
		v->ino = (uint64_t)st.st_ino;
	}
	bool inet = v->family == AF_INET || v->family == AF_INET6;
	bool maybe_tcp = (want & SOCKVIEW_KIND)
				 ? inet && v->type == SOCK_STREAM && v->protocol == IPPROTO_TCP
				 : !(want & SOCKVIEW_ADDR) || inet;
	if ((want & SOCKVIEW_TCP) && maybe_tcp) {
		struct tcp_info ti;
		socklen_t len;
		/* SIOCINQ before TCP_INFO (sockview_read_bytes): a byte arriving
		 * in between is then in the received count, never only in the
		 * queue. */
		if (want & SOCKVIEW_INQ) {
			int q = 0;
			v->inq = ioctl(fd, SIOCINQ, &q) == 0 ? q : -1;
		}
		if (sockview_tcp_info(fd, &ti, &len) == 0) {
			v->tcp = true;
			v->state = ti.tcpi_state;
			v->listener = v->listener || ti.tcpi_state == SOCKVIEW_LISTEN;
			v->bytes_received = ti.tcpi_bytes_received;
			sockview_data_bytes(&ti, len, &v->rx, &v->tx);
			if (SOCKVIEW_HAS(len, tcpi_data_segs_in))
				v->data_segs_in = ti.tcpi_data_segs_in;
			v->last_data_recv_ms = ti.tcpi_last_data_recv;
			v->last_data_sent_ms = ti.tcpi_last_data_sent;
			v->unacked = ti.tcpi_unacked;
		}
	} else if (want & SOCKVIEW_INQ) {
		int q = 0;
		v->inq = ioctl(fd, SIOCINQ, &q) == 0 ? q : -1;
	}
	if (want & SOCKVIEW_OUTQ) {
		int q = 0;
		v->outq = ioctl(fd, SIOCOUTQ, &q) == 0 ? q : -1;
	}
out:
	errno = saved;
	return r;
}

bool sockview_never_used(const struct sockview *v, uint32_t grace_ms)
{
	return v->tcp && !v->listener && v->state == SOCKVIEW_ESTABLISHED &&
	       v->bytes_received == 0 && v->inq == 0 && v->last_data_recv_ms >= grace_ms;
}
