/*
 * SPDX-License-Identifier: MIT
 *
 * Release policy (pure).  The order of the checks is the order of the
 * guarantees:
 *   - the drain deadline, when set and passed, cuts everything (the only
 *     rule that cuts an active connection, like nginx's
 *     worker_shutdown_timeout or HAProxy's hard-stop-after);
 *   - a connection whose state cannot be read is kept;
 *   - a connection with bytes waiting in the kernel is never cut;
 *   - "unused" (never received a byte, and the host wrote nothing to it: a
 *     server that speaks first is in a session) is released at the trigger
 *     once older
 *     than the grace, or at any time once older than the first-byte timeout;
 *   - "idle" (policy idle, after the trigger) also releases a used connection
 *     when the host spoke last, the peer has taken everything, and nothing
 *     moved for the quiet time: keep-alive idle connections, and TLS
 *     connections whose handshake was their only traffic.  A TLS connection
 *     whose client sent its handshake and no request (pol_tls_no_request)
 *     need not have the host speak last: a TLS 1.3 server without session
 *     tickets never does after the client's Finished.  A connection that
 *     may carry HTTP/2 (multiplexed: the host may have written one stream's
 *     answer after reading another stream's request, still in progress)
 *     is never "idle" by who spoke last; only by holding no request.
 * A socket that crossed a fork may be read by another process, so our count
 * alone cannot prove it unused: the kernel's (TCP) must.
 */
#include "policy.h"

#include <linux/tcp.h>

static void set(struct pol_out *o, enum pol_verdict v, enum pol_reason r, uint64_t wait_ns)
{
	o->verdict = v;
	o->reason = r;
	o->wait_ns = wait_ns;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void decide_unused(const struct pol_params *p, const struct pol_input *in,
			  struct pol_out *out)
{
	uint64_t fbt = p->first_byte_timeout_ns;

	if (in->queued > 0) {
		/* The host is about to read a request; it becomes used. */
		set(out, POL_WAIT, POL_R_QUEUED, POL_RECHECK_NS);
	} else if (fbt && in->age_ns >= fbt) {
		set(out, POL_RELEASE, POL_R_FIRST_BYTE, 0);
	} else if (in->draining && in->age_ns >= p->grace_ns) {
		set(out, POL_RELEASE, POL_R_UNUSED, 0);
	} else if (in->draining) {
		uint64_t w = p->grace_ns - in->age_ns;
		set(out, POL_WAIT, POL_R_YOUNG, fbt ? min_u64(w, fbt - in->age_ns) : w);
	} else if (fbt) {
		set(out, POL_WAIT, POL_R_YOUNG, fbt - in->age_ns);
	} else {
		set(out, POL_KEEP, POL_R_NOT_DRAINING, 0);
	}
}

static void decide_used(const struct pol_params *p, const struct pol_input *in, struct pol_out *out)
{
	if (!in->draining || p->policy != POLICY_IDLE)
		set(out, POL_KEEP, POL_R_USED, 0);
	else if (in->shared && in->kernel_rx < 0)
		set(out, POL_KEEP, POL_R_SHARED, 0); /* its traffic may go through another fd */
	else if (in->queued > 0)
		set(out, POL_WAIT, POL_R_QUEUED, POL_RECHECK_NS);
	else if (in->outq < 0 || (in->server_last < 0 && !in->no_request) || in->quiet_ns < 0)
		set(out, POL_KEEP, POL_R_UNKNOWN, 0);
	else if (in->outq > 0)
		set(out, POL_WAIT, POL_R_SENDING, POL_RECHECK_NS);
	else if (!in->server_last && !in->no_request)
		set(out, POL_WAIT, POL_R_PEER_LAST, POL_RECHECK_NS);
	else if (in->multiplexed && !in->no_request)
		set(out, POL_KEEP, POL_R_MULTIPLEXED, 0);
	else if ((uint64_t)in->quiet_ns < p->idle_quiet_ns)
		set(out, POL_WAIT, POL_R_ACTIVE, p->idle_quiet_ns - (uint64_t)in->quiet_ns);
	else
		set(out, POL_RELEASE, POL_R_IDLE, 0);
}

void pol_decide(const struct pol_params *p, const struct pol_input *in, struct pol_out *out)
{
	if (in->draining && in->deadline_passed)
		set(out, POL_RELEASE, POL_R_DRAIN_TIMEOUT, 0);
	else if (in->queued < 0)
		set(out, POL_KEEP, POL_R_UNKNOWN, 0);
	else if (in->rx > 0 || in->kernel_rx > 0 || in->wrote)
		decide_used(p, in, out);
	else if (in->shared && in->kernel_rx < 0)
		set(out, POL_KEEP, POL_R_SHARED, 0);
	else
		decide_unused(p, in, out);
}

int pol_tcp_sent(const struct tcp_info *ti, size_t len)
{
	if (len >= offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof ti->tcpi_bytes_sent)
		return ti->tcpi_bytes_sent > 0;
	if (len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti->tcpi_bytes_acked)
		return ti->tcpi_bytes_acked > 0;
	return 1; /* cannot tell: as if it had */
}

int64_t pol_tcp_unsent(const struct tcp_info *ti, size_t len)
{
	if (len >= offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof ti->tcpi_bytes_sent &&
	    ti->tcpi_bytes_sent == 0)
		return (int64_t)ti->tcpi_notsent_bytes;
	return -1;
}

int pol_tcp_outq(const struct tcp_info *ti, size_t len)
{
	if (len < offsetof(struct tcp_info, tcpi_notsent_bytes) + sizeof ti->tcpi_notsent_bytes)
		return -1;
	return ti->tcpi_notsent_bytes > 0 || ti->tcpi_unacked > 0;
}

int pol_kernel_server_last(uint64_t sent, uint32_t last_recv_ms, uint32_t last_sent_ms)
{
	if (!sent || last_sent_ms > last_recv_ms)
		return 0;
	return last_sent_ms < last_recv_ms ? 1 : POL_SPEAKER_TIE;
}

const char *pol_reason_name(enum pol_reason r)
{
	switch (r) {
	case POL_R_USED:
		return "used";
	case POL_R_UNKNOWN:
		return "state unknown";
	case POL_R_SHARED:
		return "shared across fork";
	case POL_R_QUEUED:
		return "bytes waiting";
	case POL_R_SENDING:
		return "peer still receiving";
	case POL_R_PEER_LAST:
		return "peer spoke last";
	case POL_R_MULTIPLEXED:
		return "may be HTTP/2";
	case POL_R_ACTIVE:
		return "active";
	case POL_R_YOUNG:
		return "young";
	case POL_R_NOT_DRAINING:
		return "no trigger yet";
	/* The release reasons: the words of the statistics (README, "Release
	 * reasons"), then what they mean. */
	case POL_R_UNUSED:
		return "unused: never received a byte";
	case POL_R_IDLE:
		return "idle: quiet, and nothing owed either way";
	case POL_R_FIRST_BYTE:
		return "first_byte_timeout: no first byte in time";
	case POL_R_DRAIN_TIMEOUT:
		return "drain_timeout: still open at the drain deadline";
	}
	return "?";
}

/* The classifier's word: bits 0-15 the bytes left of the current record's
 * body, or while a header is being read its length's high byte; 16-18 the
 * header bytes read (0-4); 19-20 application-data records (0-1); 21 a
 * ChangeCipherSpec seen; 22 a handshake record after it (TLS 1.2, or a
 * second ClientHello after a HelloRetryRequest); 23-24 the type of the
 * record whose header is being read (1: 20, 2: 22, 3: 23); 25-26 how much
 * of "\x02h2" (ALPN offering HTTP/2) the ClientHello's last bytes matched;
 * 27 the first handshake record (the ClientHello) is being read; 28 it has
 * been; 30 POL_TLS_MUX; 31 POL_TLS_WATCHING. */
#define TLS_REM(st) ((st)&0xffffu)
#define TLS_HDR(st) (((st) >> 16) & 7u)
#define TLS_APP(st) (((st) >> 19) & 3u)
#define TLS_CCS (1u << 21)
#define TLS_HS_AFTER_CCS (1u << 22)
#define TLS_TYPE(st) (((st) >> 23) & 3u)
#define TLS_MATCH(st) (((st) >> 25) & 3u)
#define TLS_IN_HELLO (1u << 27)
#define TLS_HELLO_DONE (1u << 28)
#define TLS_MAX_RECORD (16384 + 2048) /* TLSCiphertext.length: RFC 8446 5.2 */

/* The watch ends; only "may be HTTP/2" stays. */
static uint32_t stop(uint32_t st)
{
	return st & POL_TLS_MUX;
}

/* Looks for the ALPN protocol name "h2" (length byte 2, then 'h', '2') in
 * the ClientHello's bytes, across reads.  Anything that looks like it counts:
 * a false match only keeps a connection. */
static uint32_t alpn_scan(uint32_t st, const unsigned char *p, uint32_t k)
{
	static const unsigned char want[3] = {2, 'h', '2'};
	uint32_t m = TLS_MATCH(st);
	for (uint32_t i = 0; i < k && !(st & POL_TLS_MUX); i++) {
		m = p[i] == want[m] ? m + 1 : p[i] == want[0] ? 1 : 0;
		if (m == 3)
			st |= POL_TLS_MUX;
	}
	return (st & ~(3u << 25)) | (m < 3 ? m : 0) << 25;
}

uint32_t pol_tls_feed(uint32_t st, const unsigned char *p, size_t n)
{
	if (st == POL_TLS_START && n > 0 && p[0] != 22) {
		/* Not TLS.  HTTP/2 with prior knowledge starts "PRI * HTTP/2.0";
		 * a first read too short to tell, starting with P, counts too. */
		bool pri = n >= 3 ? p[1] == 'R' && p[2] == 'I' : true;
		return p[0] == 'P' && pri ? POL_TLS_MUX : 0;
	}
	while (n > 0 && (st & POL_TLS_WATCHING)) {
		uint32_t rem = TLS_REM(st), hdr = TLS_HDR(st);
		if (hdr == 0 && rem > 0) { /* inside a record body */
			uint32_t k = n < rem ? (uint32_t)n : rem;
			if (st & TLS_IN_HELLO)
				st = alpn_scan(st, p, k);
			st = (st & ~0xffffu) | (rem - k);
			if (rem == k && (st & TLS_IN_HELLO))
				st = (st & ~TLS_IN_HELLO) | TLS_HELLO_DONE;
			p += k;
			n -= k;
			continue;
		}
		unsigned char b = *p++;
		n--;
		switch (hdr) {
		case 0: /* content type */
			if (b != 20 && b != 22 && b != 23)
				return stop(st); /* an alert, a heartbeat, not TLS */
			st = (st & ~(3u << 23)) | (uint32_t)(b == 20 ? 1 : b == 22 ? 2 : 3) << 23;
			break;
		case 1: /* legacy_record_version: 3.x */
			if (b != 3)
				return stop(st);
			break;
		case 2:
			break;
		case 3: /* length, high byte */
			st = (st & ~0xffffu) | b;
			break;
		case 4: { /* length, low byte: the record starts */
			uint32_t len = (TLS_REM(st) << 8) | b, type = TLS_TYPE(st);
			if (len == 0 || len > TLS_MAX_RECORD)
				return stop(st);
			if (type == 1) {
				st |= TLS_CCS;
			} else if (type == 2) {
				if (st & TLS_CCS)
					st |= TLS_HS_AFTER_CCS;
				if (!(st & TLS_HELLO_DONE))
					st |= TLS_IN_HELLO;
			} else { /* application data */
				if ((st & TLS_HS_AFTER_CCS) || TLS_APP(st) >= 1)
					return stop(st); /* a request */
				st += 1u << 19;
			}
			st = (st & ~(0xffffu | (7u << 16))) | len;
			continue;
		}
		}
		st += 1u << 16; /* one more header byte */
	}
	return st;
}

int pol_tls_no_request(uint32_t st)
{
	return (st & POL_TLS_WATCHING) && TLS_REM(st) == 0 && TLS_HDR(st) == 0;
}

int pol_tls_multiplexed(uint32_t st)
{
	return (st & POL_TLS_MUX) != 0;
}
