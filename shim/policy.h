/*
 * SPDX-License-Identifier: MIT
 *
 * The release policy as a pure function: given what we know of one
 * connection, release it now, keep it, or look again later.
 */
#ifndef GRACESHIM_POLICY_H
#define GRACESHIM_POLICY_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

struct pol_params {
	enum policy policy;
	uint64_t grace_ns;
	uint64_t idle_quiet_ns;
	uint64_t first_byte_timeout_ns; /* 0: off */
};

struct pol_input {
	uint64_t rx;         /* bytes the host read through our wrappers */
	int64_t kernel_rx;   /* TCP_INFO tcpi_bytes_received, -1 if unknown (not TCP) */
	int64_t queued;      /* FIONREAD: bytes waiting to be read, -1 if unknown */
	int64_t outq;        /* SIOCOUTQ: bytes sent but not yet taken by the peer, -1 if unknown */
	uint64_t age_ns;     /* since accept */
	int64_t quiet_ns;    /* since a byte last moved either way, -1 if unknown */
	int server_last;     /* the host wrote last: 1, the peer did: 0, unknown: -1 */
	int shared;          /* crossed a fork: other processes may read it */
	int draining;        /* a trigger came */
	int deadline_passed; /* GRACESHIM_DRAIN_TIMEOUT is up */
	int no_request;      /* what the host read is a TLS handshake and nothing
			       * more (pol_tls_no_request): policy idle need not
			       * wait for the server to speak last */
	int multiplexed;     /* may carry HTTP/2 (pol_tls_multiplexed): who spoke
			       * last says nothing of requests in progress */
	int wrote;           /* the host wrote to it (our count, the kernel's, or
			       * bytes waiting to go out; unknown counts as
			       * written): a server that speaks first (a banner:
			       * SMTP, FTP, SSH) is in a session, so the
			       * connection is never "unused" */
};

enum pol_verdict {
	POL_KEEP,    /* nothing to do (until the next trigger or change) */
	POL_RELEASE, /* shutdown() it */
	POL_WAIT,    /* may qualify later: look again after wait_ns */
};

enum pol_reason {
	POL_R_USED,          /* received bytes */
	POL_R_UNKNOWN,       /* could not read its state: fail safe */
	POL_R_SHARED,        /* shared across fork, no kernel byte count */
	POL_R_QUEUED,        /* bytes wait in the kernel for the host to read */
	POL_R_SENDING,       /* the peer has not taken all the host sent */
	POL_R_PEER_LAST,     /* the peer spoke last: the host owes an answer */
	POL_R_MULTIPLEXED,   /* may be HTTP/2: streams may be in progress */
	POL_R_ACTIVE,        /* bytes moved within the quiet time */
	POL_R_YOUNG,         /* younger than the grace or the first-byte timeout */
	POL_R_NOT_DRAINING,  /* no trigger yet */
	POL_R_UNUSED,        /* released: never received a byte */
	POL_R_IDLE,          /* released: idle, the host spoke last, quiet */
	POL_R_FIRST_BYTE,    /* released: no first byte within the timeout */
	POL_R_DRAIN_TIMEOUT, /* released: the drain deadline passed */
};

struct pol_out {
	enum pol_verdict verdict;
	enum pol_reason reason;
	uint64_t wait_ns;
};

/* How soon to look again at a connection that is busy right now. */
#define POL_RECHECK_NS (50 * 1000000ull)

void pol_decide(const struct pol_params *p, const struct pol_input *in, struct pol_out *out);

/* Whether the kernel says the host sent data on a TCP socket (ti as
 * getsockopt(TCP_INFO) filled len bytes of it): tcpi_bytes_sent (Linux
 * 4.19+, data only), else tcpi_bytes_acked (0 on an accepted socket until
 * data or our FIN is acknowledged).  Bytes written and not yet sent are
 * SIOCOUTQ's to tell. */
struct tcp_info;
int pol_tcp_sent(const struct tcp_info *ti, size_t len);
/* The bytes the host wrote on a TCP socket that have not left, when TCP_INFO
 * tells it: on Linux 4.19+, once no data was ever sent (tcpi_bytes_sent 0),
 * nothing is in flight and SIOCOUTQ (write_seq - snd_una) is
 * tcpi_notsent_bytes (write_seq - snd_nxt).  -1: ask SIOCOUTQ.  A sweep of
 * never-used connections saves one system call each.  (A FIN of the host's
 * not yet acknowledged is 1 in SIOCOUTQ and not here: a connection the host
 * is closing anyway.) */
int64_t pol_tcp_unsent(const struct tcp_info *ti, size_t len);
/* Whether bytes the host wrote on a TCP socket are not yet taken by the
 * peer, as SIOCOUTQ (write_seq - snd_una) > 0 says, from TCP_INFO (Linux
 * 4.6+): not sent yet (tcpi_notsent_bytes, write_seq - snd_nxt), or in
 * flight (tcpi_unacked, the segments between snd_una and snd_nxt, a FIN
 * too).  1 or 0 (pol_input.outq is read for its sign only); -1: ask
 * SIOCOUTQ.  The idle release of a used connection saves one system call
 * each. */
int pol_tcp_outq(const struct tcp_info *ti, size_t len);

/* "No request yet" over TLS, from the records the host read from the
 * client (their headers only: content type and length).  A TLS client sends
 * handshake records (22), a ChangeCipherSpec (20), and application data
 * (23) once the handshake is done.  TLS 1.2: its Finished is a handshake
 * record after its ChangeCipherSpec, so any application data is a request.
 * TLS 1.3: its Finished is encrypted, so the first application-data record
 * is the Finished and a second one is a request.  A TLS 1.3 server that
 * sends no session ticket leaves that Finished as the last word: the
 * connection is then not "the server spoke last", yet holds no request.
 *
 *
 * HTTP/2 multiplexes: its server may write one stream's answer after
 * reading another stream's request, which it is still serving, so "the
 * server spoke last" does not mean "nothing is owed".  A connection whose
 * ClientHello offers "h2" (ALPN), or that starts "PRI" (HTTP/2 with prior
 * knowledge), is marked POL_TLS_MUX for good.
 *
 * The state is one 32-bit word.  POL_TLS_WATCHING is set while the watch
 * goes on; once it ends (not TLS, an alert, a request, bytes we could not
 * see) only POL_TLS_MUX may stay (0 otherwise).  Start with POL_TLS_START
 * before the first byte read; feed every byte read, in order.  Anything
 * unexpected ends the watch, so the mistakes go one way: a handshake taken
 * for a request, a connection taken for HTTP/2 (kept, as before), never
 * the reverse. */
#define POL_TLS_WATCHING 0x80000000u
#define POL_TLS_MUX 0x40000000u
#define POL_TLS_START POL_TLS_WATCHING
uint32_t pol_tls_feed(uint32_t st, const unsigned char *p, size_t n);
/* The state after a connection's first read, n > 0 bytes at p: what
 * pol_tls_feed(POL_TLS_START, p, n) returns, with the common case inline
 * (every connection has a first read): a first byte that starts neither a
 * TLS handshake record (22) nor "PRI" ends the watch at once. */
static inline uint32_t pol_tls_first(const unsigned char *p, size_t n)
{
	if (p[0] != 22 && p[0] != 'P')
		return 0;
	return pol_tls_feed(POL_TLS_START, p, n);
}
/* True when the bytes fed so far end on a record boundary and hold no
 * request (see above). */
int pol_tls_no_request(uint32_t st);
/* True when the connection may carry HTTP/2. */
int pol_tls_multiplexed(uint32_t st);
/* Who spoke last on a TCP connection, from the kernel's view (TCP_INFO):
 * the data bytes the host sent, and the times since the last data segment
 * received and sent (ms, in the kernel's clock ticks).  1: the host, 0: the
 * peer.  A host that sent nothing did not.  A tie (both within one tick)
 * is POL_SPEAKER_TIE: a request answered within the tick, or an answer
 * followed within the tick by the next request (a keep-alive client on a
 * fast link sends it the moment the answer lands), which the host may
 * still be working on.  Nothing else the kernel shows orders the two. */
#define POL_SPEAKER_TIE (-2)
int pol_kernel_server_last(uint64_t sent, uint32_t last_recv_ms, uint32_t last_sent_ms);
const char *pol_reason_name(enum pol_reason r);

#endif
