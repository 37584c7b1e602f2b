/*
 * SPDX-License-Identifier: MIT
 *
 * The release policy, table-driven: every guarantee is one row.
 */
#include "policy.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <string.h>
#include <stdbool.h>
#include <stdio.h>

#define MS 1000000ull

/* params: U = policy unused, I = policy idle; grace 250 ms, quiet 1 s,
 * first-byte timeout 0 or 10 s as the row says. */
struct pol_case {
	char name[80]; /* inline: Criterion runs each parameter in a fresh process */
	enum policy policy;
	uint64_t fbt;
	struct pol_input in;
	enum pol_verdict verdict;
	enum pol_reason reason;
	uint64_t wait_ns;
};

/* rx, kernel_rx, queued, outq, age, quiet, server_last, shared, draining, deadline */
#define IN(rx, krx, q, oq, age, quiet, last, sh, dr, dl)                                           \
	{                                                                                          \
		rx, krx, q, oq, age, quiet, last, sh, dr, dl, 0, 0, 0                              \
	}
/* the same, for a connection whose client sent a TLS handshake and no request */
#define IN_TLS(rx, krx, q, oq, age, quiet, last, sh, dr, dl)                                       \
	{                                                                                          \
		rx, krx, q, oq, age, quiet, last, sh, dr, dl, 1, 0, 0                              \
	}
/* ... for one the host wrote to and that sent nothing (a server that speaks first) */
#define IN_WROTE(rx, krx, q, oq, age, quiet, last, sh, dr, dl)                                     \
	{                                                                                          \
		rx, krx, q, oq, age, quiet, last, sh, dr, dl, 0, 0, 1                              \
	}
/* ... and for one that may carry HTTP/2 (with or without a request yet) */
#define IN_H2(rx, krx, q, oq, age, quiet, last, sh, dr, dl, nr)                                    \
	{                                                                                          \
		rx, krx, q, oq, age, quiet, last, sh, dr, dl, nr, 1, 0                             \
	}

ParameterizedTestParameters(policy, decides)
{
	static struct pol_case cases[] = {
		/* unused, at the trigger */
		{"unused, old, nothing queued: release", POLICY_UNUSED, 0,
		 IN(0, 0, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"unix (no kernel count), unused: release", POLICY_UNUSED, 0,
		 IN(0, -1, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"younger than grace: wait the rest", POLICY_UNUSED, 0,
		 IN(0, 0, 0, -1, 100 * MS, -1, -1, 0, 1, 0), POL_WAIT, POL_R_YOUNG, 150 * MS},
		{"exactly grace old: release", POLICY_UNUSED, 0,
		 IN(0, 0, 0, -1, 250 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"bytes waiting in the kernel: look again", POLICY_UNUSED, 0,
		 IN(0, -1, 30, -1, 300 * MS, -1, -1, 0, 1, 0), POL_WAIT, POL_R_QUEUED,
		 POL_RECHECK_NS},
		{"FIONREAD failed: keep (fail safe)", POLICY_UNUSED, 0,
		 IN(0, 0, -1, -1, 300 * MS, -1, -1, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN, 0},
		{"no trigger, no first-byte timeout: keep", POLICY_UNUSED, 0,
		 IN(0, 0, 0, -1, 300 * MS, -1, -1, 0, 0, 0), POL_KEEP, POL_R_NOT_DRAINING, 0},
		/* used */
		{"we saw bytes: keep", POLICY_UNUSED, 0,
		 IN(5, 5, 0, -1, 300 * MS, 9000 * MS, 1, 0, 1, 0), POL_KEEP, POL_R_USED, 0},
		{"kernel saw bytes we did not: keep", POLICY_UNUSED, 0,
		 IN(0, 17, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_KEEP, POL_R_USED, 0},
		/* a server that speaks first: written to, never "unused" */
		{"banner sent, nothing received, trigger: keep", POLICY_UNUSED, 0,
		 IN_WROTE(0, 0, 0, 0, 300 * MS, 2000 * MS, 1, 0, 1, 0), POL_KEEP, POL_R_USED, 0},
		{"banner sent, past the first-byte timeout: keep", POLICY_UNUSED, 10000 * MS,
		 IN_WROTE(0, 0, 0, 0, 20000 * MS, 20000 * MS, 1, 0, 0, 0), POL_KEEP, POL_R_USED, 0},
		{"banner sent, idle: quiet after the banner: release as idle", POLICY_IDLE, 0,
		 IN_WROTE(0, 0, 0, 0, 5000 * MS, 1500 * MS, 1, 0, 1, 0), POL_RELEASE, POL_R_IDLE,
		 0},
		{"banner still going out, idle: wait", POLICY_IDLE, 0,
		 IN_WROTE(0, 0, 0, 10, 5000 * MS, 1500 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_SENDING,
		 POL_RECHECK_NS},
		/* fork */
		{"shared, TCP count says unused: release", POLICY_UNUSED, 0,
		 IN(0, 0, 0, -1, 300 * MS, -1, -1, 1, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"shared, no kernel count: keep", POLICY_UNUSED, 0,
		 IN(0, -1, 0, -1, 300 * MS, -1, -1, 1, 1, 0), POL_KEEP, POL_R_SHARED, 0},
		/* first-byte timeout, with or without a trigger */
		{"fbt: unused past timeout, no trigger: release", POLICY_UNUSED, 10000 * MS,
		 IN(0, 0, 0, -1, 10000 * MS, -1, -1, 0, 0, 0), POL_RELEASE, POL_R_FIRST_BYTE, 0},
		{"fbt: unused before timeout: wait the rest", POLICY_UNUSED, 10000 * MS,
		 IN(0, 0, 0, -1, 4000 * MS, -1, -1, 0, 0, 0), POL_WAIT, POL_R_YOUNG, 6000 * MS},
		{"fbt: used: keep", POLICY_UNUSED, 10000 * MS,
		 IN(1, 1, 0, -1, 20000 * MS, -1, 0, 0, 0, 0), POL_KEEP, POL_R_USED, 0},
		{"fbt: bytes queued: look again", POLICY_UNUSED, 10000 * MS,
		 IN(0, -1, 5, -1, 20000 * MS, -1, -1, 0, 0, 0), POL_WAIT, POL_R_QUEUED,
		 POL_RECHECK_NS},
		{"fbt and grace while draining: grace first", POLICY_UNUSED, 10000 * MS,
		 IN(0, 0, 0, -1, 100 * MS, -1, -1, 0, 1, 0), POL_WAIT, POL_R_YOUNG, 150 * MS},
		/* idle */
		{"idle: host spoke last, quiet: release", POLICY_IDLE, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 1500 * MS, 1, 0, 1, 0), POL_RELEASE, POL_R_IDLE, 0},
		{"idle: quiet not long enough: wait", POLICY_IDLE, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 400 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_ACTIVE,
		 600 * MS},
		{"idle: peer spoke last (request in progress)", POLICY_IDLE, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, 0, 0, 1, 0), POL_WAIT, POL_R_PEER_LAST,
		 POL_RECHECK_NS},
		{"idle: peer not done receiving (download)", POLICY_IDLE, 0,
		 IN(100, 100, 0, 65536, 5000 * MS, 9000 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_SENDING,
		 POL_RECHECK_NS},
		{"idle: bytes waiting: never cut", POLICY_IDLE, 0,
		 IN(100, 130, 30, 0, 5000 * MS, 9000 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_QUEUED,
		 POL_RECHECK_NS},
		{"idle: outq unknown: keep", POLICY_IDLE, 0,
		 IN(100, 100, 0, -1, 5000 * MS, 9000 * MS, 1, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN, 0},
		{"idle: direction unknown: keep", POLICY_IDLE, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, -1, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN, 0},
		{"idle: shared unix socket: keep", POLICY_IDLE, 0,
		 IN(100, -1, 0, 0, 5000 * MS, 9000 * MS, 1, 1, 1, 0), POL_KEEP, POL_R_SHARED, 0},
		{"idle: shared TCP socket: kernel decides", POLICY_IDLE, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, 1, 1, 1, 0), POL_RELEASE, POL_R_IDLE, 0},
		{"idle before trigger: keep", POLICY_IDLE, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, 1, 0, 0, 0), POL_KEEP, POL_R_USED, 0},
		{"idle: unused still by the unused rule", POLICY_IDLE, 0,
		 IN(0, 0, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		/* idle, a TLS handshake and no request (pol_tls_no_request) */
		{"tls: client's Finished last, quiet: release", POLICY_IDLE, 0,
		 IN_TLS(597, 597, 0, 0, 5000 * MS, 1500 * MS, 0, 0, 1, 0), POL_RELEASE, POL_R_IDLE,
		 0},
		{"tls: direction unknown, quiet: release", POLICY_IDLE, 0,
		 IN_TLS(597, 597, 0, 0, 5000 * MS, 1500 * MS, -1, 0, 1, 0), POL_RELEASE, POL_R_IDLE,
		 0},
		{"tls: not quiet long enough: wait", POLICY_IDLE, 0,
		 IN_TLS(597, 597, 0, 0, 5000 * MS, 300 * MS, 0, 0, 1, 0), POL_WAIT, POL_R_ACTIVE,
		 700 * MS},
		{"tls: bytes waiting (a request?): never cut", POLICY_IDLE, 0,
		 IN_TLS(597, 700, 103, 0, 5000 * MS, 1500 * MS, 0, 0, 1, 0), POL_WAIT, POL_R_QUEUED,
		 POL_RECHECK_NS},
		{"tls: peer not done receiving: wait", POLICY_IDLE, 0,
		 IN_TLS(597, 597, 0, 300, 5000 * MS, 1500 * MS, 1, 0, 1, 0), POL_WAIT,
		 POL_R_SENDING, POL_RECHECK_NS},
		{"tls: outq unknown: keep", POLICY_IDLE, 0,
		 IN_TLS(597, 597, 0, -1, 5000 * MS, 1500 * MS, 0, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN,
		 0},
		{"tls: before the trigger: keep", POLICY_IDLE, 0,
		 IN_TLS(597, 597, 0, 0, 5000 * MS, 1500 * MS, 0, 0, 0, 0), POL_KEEP, POL_R_USED, 0},
		{"tls: policy unused: keep", POLICY_UNUSED, 0,
		 IN_TLS(597, 597, 0, 0, 5000 * MS, 1500 * MS, 0, 0, 1, 0), POL_KEEP, POL_R_USED, 0},
		/* idle, HTTP/2 possible: a stream may be in progress though the host wrote last */
		{"h2: host spoke last, quiet: keep", POLICY_IDLE, 0,
		 IN_H2(900, 900, 0, 0, 5000 * MS, 1500 * MS, 1, 0, 1, 0, 0), POL_KEEP,
		 POL_R_MULTIPLEXED, 0},
		{"h2: handshake only (offered h2), quiet: release", POLICY_IDLE, 0,
		 IN_H2(597, 597, 0, 0, 5000 * MS, 1500 * MS, 1, 0, 1, 0, 1), POL_RELEASE,
		 POL_R_IDLE, 0},
		{"h2: peer spoke last: wait", POLICY_IDLE, 0,
		 IN_H2(900, 900, 0, 0, 5000 * MS, 1500 * MS, 0, 0, 1, 0, 0), POL_WAIT,
		 POL_R_PEER_LAST, POL_RECHECK_NS},
		{"h2: unused still by the unused rule", POLICY_IDLE, 0,
		 IN_H2(0, 0, 0, -1, 300 * MS, -1, -1, 0, 1, 0, 0), POL_RELEASE, POL_R_UNUSED, 0},
		/* drain deadline */
		{"deadline: cuts an active connection", POLICY_UNUSED, 0,
		 IN(100, 100, 30, 4096, 5000 * MS, 0, 0, 0, 1, 1), POL_RELEASE, POL_R_DRAIN_TIMEOUT,
		 0},
		{"deadline flag without a trigger: nothing", POLICY_UNUSED, 0,
		 IN(100, 100, 0, 0, 5000 * MS, 0, 1, 0, 0, 1), POL_KEEP, POL_R_USED, 0},
	};
	return cr_make_param_array(struct pol_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct pol_case *c, policy, decides)
{
	struct pol_params p = {c->policy, 250 * MS, 1000 * MS, c->fbt};
	struct pol_out out;
	pol_decide(&p, &c->in, &out);
	cr_assert_eq(out.verdict, c->verdict, "%s: verdict %d", c->name, out.verdict);
	cr_assert_eq(out.reason, c->reason, "%s: reason %s", c->name, pol_reason_name(out.reason));
	cr_assert_eq(out.wait_ns, c->wait_ns, "%s: wait %llu", c->name,
		     (unsigned long long)out.wait_ns);
}

Test(policy, only_the_deadline_cuts_a_connection_with_bytes_waiting_or_in_use)
{
	/* Exhaustive over a grid: without the drain deadline, a connection with
	 * bytes waiting is never released, under policy unused neither is one
	 * that carried a byte or that the host wrote to, and one the host wrote
	 * to is never released as unused nor for a missing first byte. */
	int64_t krx[] = {-1, 0, 1000}, q[] = {-1, 0, 1, 65536}, oq[] = {-1, 0, 10},
		quiet[] = {-1, 0, 5000 * MS};
	uint64_t rx[] = {0, 1}, age[] = {0, 100 * MS, 20000 * MS}, fbt[] = {0, 10000 * MS};
	int last[] = {-1, 0, 1};
	int n = 0;
	for (int nr = 0; nr < 2; nr++)
		for (int mx = 0; mx < 2; mx++)
			for (int wr = 0; wr < 2; wr++)
				for (int pol = 0; pol < 2; pol++)
					for (size_t a = 0; a < 3; a++)
						for (size_t b = 0; b < 4; b++)
							for (size_t c = 0; c < 2; c++)
								for (size_t d = 0; d < 3; d++)
									for (size_t e = 0; e < 3;
									     e++)
										for (size_t f = 0;
										     f < 3; f++)
											for (size_t g =
												     0;
											     g < 3;
											     g++)
												for (size_t h =
													     0;
												     h <
												     2;
												     h++)
													for (int sh =
														     0;
													     sh <
													     2;
													     sh++)
														for (int dr =
															     0;
														     dr <
														     2;
														     dr++)
															for (int dl =
																     0;
															     dl <
															     2;
															     dl++) {
																struct pol_params p = {
																	(enum policy)
																		pol,
																	250 * MS,
																	1000 * MS,
																	fbt[h]};
																struct pol_input in = {
																	rx[c], krx[a], q[b], oq[e], age[d], quiet[f], last[g], sh, dr, dl, nr, mx, wr};
																struct pol_out
																	out;
																pol_decide(
																	&p,
																	&in,
																	&out);
																n++;
																if (out.verdict !=
																    POL_RELEASE)
																	continue;
																if (dr &&
																    dl) {
																	cr_assert_eq(
																		out.reason,
																		POL_R_DRAIN_TIMEOUT);
																	continue;
																}
																cr_assert_eq(
																	in.queued,
																	0,
																	"released with bytes waiting (case %d)",
																	n);
																if (pol ==
																    POLICY_UNUSED)
																	cr_assert(
																		in.rx == 0 &&
																			in.kernel_rx <=
																				0 &&
																			!in.wrote,
																		"unused released a used one (case %d)",
																		n);
																if (in.wrote)
																	cr_assert(
																		out.reason != POL_R_UNUSED &&
																			out.reason !=
																				POL_R_FIRST_BYTE,
																		"released one the host wrote to as never used (case %d)",
																		n);
																if (in.rx > 0 ||
																    in.kernel_rx >
																	    0 ||
																    in.wrote)
																	cr_assert(
																		((in.server_last ==
																			  1 &&
																		  !in.multiplexed) ||
																		 in.no_request) &&
																			in.outq ==
																				0 &&
																			in.quiet_ns >=
																				(int64_t)(1000 *
																					  MS),
																		"idle released a busy connection (case %d)",
																		n);
																if (!dr)
																	cr_assert_eq(
																		out.reason,
																		POL_R_FIRST_BYTE,
																		"released before any trigger (case %d)",
																		n);
															}
	cr_assert_gt(n, 10000);
}

/* ---- the TLS classifier ----------------------------------------------- */

/* Appends a record of the given type and body length (filler bytes). */
static size_t rec(unsigned char *buf, size_t at, unsigned type, unsigned len)
{
	bool first = at == 0;
	buf[at++] = (unsigned char)type;
	buf[at++] = 3;
	buf[at++] = first ? 1 : 3; /* a ClientHello's record says 3.1 */
	buf[at++] = (unsigned char)(len >> 8);
	buf[at++] = (unsigned char)len;
	for (unsigned i = 0; i < len; i++)
		buf[at++] = (unsigned char)(0x5a ^ i);
	return at;
}

/* Feeds buf whole, then byte by byte (headers split across reads), then in
 * chunks of 7: the verdicts must agree. */
static uint32_t feed_all_ways(const unsigned char *buf, size_t n)
{
	uint32_t whole = pol_tls_feed(POL_TLS_START, buf, n), bytes = POL_TLS_START,
		 chunks = POL_TLS_START;
	for (size_t i = 0; i < n; i++)
		bytes = pol_tls_feed(bytes, buf + i, 1);
	for (size_t i = 0; i < n; i += 7)
		chunks = pol_tls_feed(chunks, buf + i, n - i < 7 ? n - i : 7);
	cr_assert_eq(whole, bytes, "byte by byte: %#x, whole: %#x", bytes, whole);
	cr_assert_eq(whole, chunks, "in chunks: %#x, whole: %#x", chunks, whole);
	return whole;
}

static unsigned char tb[8192];

Test(tls, tls13_handshake_with_compat_ccs_is_no_request)
{
	size_t n = rec(tb, 0, 22, 1700); /* a large ClientHello (post-quantum key share) */
	n = rec(tb, n, 20, 1);
	n = rec(tb, n, 23, 53); /* the encrypted Finished */
	cr_assert(pol_tls_no_request(feed_all_ways(tb, n)));
	n = rec(tb, n, 23, 300); /* a request */
	cr_assert_eq(feed_all_ways(tb, n), 0, "a second application-data record is a request");
}

Test(tls, tls13_handshake_without_ccs_is_no_request)
{
	size_t n = rec(tb, 0, 22, 512);
	n = rec(tb, n, 23, 69); /* Finished, SHA-384 */
	cr_assert(pol_tls_no_request(feed_all_ways(tb, n)));
	n = rec(tb, n, 23, 40);
	cr_assert_eq(feed_all_ways(tb, n), 0);
}

Test(tls, tls12_handshake_is_no_request_and_any_application_data_a_request)
{
	size_t n = rec(tb, 0, 22, 300); /* ClientHello */
	n = rec(tb, n, 22, 70);         /* ClientKeyExchange */
	n = rec(tb, n, 20, 1);          /* ChangeCipherSpec */
	n = rec(tb, n, 22, 40);         /* Finished (encrypted, type 22) */
	cr_assert(pol_tls_no_request(feed_all_ways(tb, n)));
	n = rec(tb, n, 23, 120);
	cr_assert_eq(feed_all_ways(tb, n), 0, "TLS 1.2: the first application data is a request");
}

Test(tls, tls12_resumption_is_no_request)
{
	size_t n = rec(tb, 0, 22, 300);
	n = rec(tb, n, 20, 1);
	n = rec(tb, n, 22, 40);
	cr_assert(pol_tls_no_request(feed_all_ways(tb, n)));
}

Test(tls, hello_retry_is_taken_for_a_request)
{
	/* ClientHello, CCS, second ClientHello: looks like TLS 1.2, so the
	 * Finished (application data) counts as a request: kept, the safe way. */
	size_t n = rec(tb, 0, 22, 300);
	n = rec(tb, n, 20, 1);
	n = rec(tb, n, 22, 320);
	n = rec(tb, n, 23, 53);
	cr_assert_eq(feed_all_ways(tb, n), 0);
}

Test(tls, inside_a_record_is_not_a_boundary)
{
	size_t n = rec(tb, 0, 22, 512);
	n = rec(tb, n, 23, 53);
	uint32_t st = pol_tls_feed(POL_TLS_START, tb, n - 10);
	cr_assert_neq(st, 0, "still watching");
	cr_assert_not(pol_tls_no_request(st), "half a record may be a request");
	st = pol_tls_feed(POL_TLS_START, tb, 515); /* 3 bytes into the next header */
	cr_assert_not(pol_tls_no_request(st));
}

Test(tls, not_tls_alerts_and_bad_headers_stop_the_watch)
{
	static const unsigned char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 40};
	static const unsigned char version[] = {22, 2, 0, 0, 5, 1, 2, 3, 4, 5};
	static const unsigned char empty[] = {22, 3, 1, 0, 0};
	static const unsigned char huge[] = {22, 3, 1, 0x48, 0x01};
	static const unsigned char sslv2[] = {0x80, 0x2e, 1, 0, 2};
	cr_assert_eq(pol_tls_feed(POL_TLS_START, http, sizeof http - 1), 0);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, alert, sizeof alert), 0);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, version, sizeof version), 0);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, empty, sizeof empty), 0);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, huge, sizeof huge), 0);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, sslv2, sizeof sslv2), 0);
	/* once stopped, it stays stopped */
	size_t n = rec(tb, 0, 22, 100);
	cr_assert_eq(pol_tls_feed(0, tb, n), 0);
	cr_assert_not(pol_tls_no_request(0));
}

/* A ClientHello record whose body holds the given ALPN list (or none),
 * between filler bytes that hold no "\x02h2". */
static size_t hello_with_alpn(unsigned char *buf, const char *alpn, size_t alpn_len)
{
	size_t body = 300, at = 0;
	buf[at++] = 22;
	buf[at++] = 3;
	buf[at++] = 1;
	buf[at++] = (unsigned char)(body >> 8);
	buf[at++] = (unsigned char)body;
	for (size_t i = 0; i < body; i++)
		buf[at + i] = (unsigned char)(0x40 + i % 7);
	if (alpn)
		memcpy(buf + at + 200, alpn, alpn_len);
	return at + body;
}

Test(tls, alpn_h2_offered_marks_the_connection_for_good)
{
	static const char alpn[] = "\x00\x10\x00\x0e\x00\x0c\x02h2\x08http/1.1";
	size_t n = hello_with_alpn(tb, alpn, sizeof alpn - 1);
	uint32_t st = feed_all_ways(tb, n);
	cr_assert(pol_tls_multiplexed(st));
	cr_assert(pol_tls_no_request(st),
		  "still no request: a preconnect is released all the same");
	n = rec(tb, n, 23, 53);
	n = rec(tb, n, 23, 90); /* the preface, or a request */
	st = feed_all_ways(tb, n);
	cr_assert_eq(st, POL_TLS_MUX, "the watch ends, the mark stays: %#x", st);
	cr_assert(pol_tls_multiplexed(st));
	cr_assert_not(pol_tls_no_request(st));
}

Test(tls, alpn_http11_only_is_not_multiplexed)
{
	static const char alpn[] = "\x00\x10\x00\x0b\x00\x09\x08http/1.1";
	size_t n = hello_with_alpn(tb, alpn, sizeof alpn - 1);
	cr_assert_not(pol_tls_multiplexed(feed_all_ways(tb, n)));
	n = hello_with_alpn(tb, NULL, 0);
	cr_assert_not(pol_tls_multiplexed(feed_all_ways(tb, n)));
}

Test(tls, h2_in_a_later_record_is_not_alpn)
{
	size_t n = hello_with_alpn(tb, NULL, 0);
	n = rec(tb, n, 20, 1);
	static const unsigned char fin[] = {23, 3, 3, 0, 3, 2, 'h', '2'};
	memcpy(tb + n, fin, sizeof fin);
	n += sizeof fin;
	uint32_t st = feed_all_ways(tb, n);
	cr_assert_not(pol_tls_multiplexed(st), "only the ClientHello is searched");
}

Test(tls, prior_knowledge_http2_is_multiplexed)
{
	static const unsigned char pri[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	static const unsigned char put[] = "PUT /x HTTP/1.1\r\n";
	static const unsigned char p1[] = "P";
	cr_assert_eq(pol_tls_feed(POL_TLS_START, pri, sizeof pri - 1), POL_TLS_MUX);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, put, sizeof put - 1), 0);
	cr_assert_eq(pol_tls_feed(POL_TLS_START, p1, 1), POL_TLS_MUX, "too short to tell: maybe");
}

Test(tls, largest_record_is_accepted)
{
	size_t n = rec(tb, 0, 22, 512);
	uint32_t st = pol_tls_feed(POL_TLS_START, tb, n);
	static const unsigned char hdr[] = {23, 3, 3, (16384 + 2048) >> 8, (16384 + 2048) & 0xff};
	st = pol_tls_feed(st, hdr, sizeof hdr);
	cr_assert_neq(st, 0);
	static unsigned char body[16384 + 2048];
	st = pol_tls_feed(st, body, sizeof body);
	cr_assert(pol_tls_no_request(st), "%#x", st);
}

/* Who spoke last from the kernel's view: bytes sent, ms since the last data
 * received and sent. */
/* pol_tls_first() is pol_tls_feed() from the start, whatever the first
 * byte and however short the read. */
Test(tls, first_read_inline_agrees_with_the_feed)
{
	static const char *tails[] = {"", "R", "RI", "RI * HTTP/2.0", "ET / HTTP/1.1", "\x03\x01"};
	unsigned char b[32];
	for (unsigned first = 0; first < 256; first++)
		for (size_t t = 0; t < sizeof tails / sizeof *tails; t++) {
			size_t n = 1 + strlen(tails[t]);
			b[0] = (unsigned char)first;
			memcpy(b + 1, tails[t], n - 1);
			cr_assert_eq(pol_tls_first(b, n), pol_tls_feed(POL_TLS_START, b, n),
				     "first byte %u, %zu bytes", first, n);
		}
	b[0] = 'P';
	memcpy(b + 1, "RI", 2);
	cr_assert_eq(pol_tls_first(b, 3), POL_TLS_MUX);
	b[0] = 'G';
	cr_assert_eq(pol_tls_first(b, 3), 0);
}

/* What the host wrote that has not left, from TCP_INFO: only once nothing
 * was ever sent (then it is all in tcpi_notsent_bytes), and only where the
 * kernel fills tcpi_bytes_sent (4.19+); else -1, SIOCOUTQ's to tell. */
Test(policy, tcp_unsent_from_tcp_info)
{
	struct tcp_info ti;
	memset(&ti, 0, sizeof ti);
	size_t full = sizeof ti;
	size_t old = offsetof(struct tcp_info, tcpi_bytes_sent); /* Linux 4.6 to 4.18 */
	cr_assert_eq(pol_tcp_unsent(&ti, full), 0, "never written: nothing unsent");
	ti.tcpi_notsent_bytes = 100;
	cr_assert_eq(pol_tcp_unsent(&ti, full), 100, "corked: written, not sent");
	cr_assert_eq(pol_tcp_unsent(&ti, old), -1, "no tcpi_bytes_sent: cannot tell");
	ti.tcpi_bytes_sent = 10;
	cr_assert_eq(pol_tcp_unsent(&ti, full), -1, "some sent: what is in flight is not here");
}

/* Bytes not yet taken by the peer (SIOCOUTQ > 0), from TCP_INFO: written
 * and not sent, or sent and not acknowledged (a FIN too); -1 where the
 * kernel does not fill tcpi_notsent_bytes (before 4.6). */
Test(policy, tcp_outq_from_tcp_info)
{
	struct tcp_info ti;
	memset(&ti, 0, sizeof ti);
	size_t full = sizeof ti;
	size_t old = offsetof(struct tcp_info, tcpi_notsent_bytes); /* before Linux 4.6 */
	ti.tcpi_bytes_sent = 5000;
	cr_assert_eq(pol_tcp_outq(&ti, full), 0, "all sent and acknowledged: nothing");
	ti.tcpi_unacked = 2;
	cr_assert_eq(pol_tcp_outq(&ti, full), 1, "in flight: not taken yet");
	ti.tcpi_unacked = 0;
	ti.tcpi_notsent_bytes = 65536;
	cr_assert_eq(pol_tcp_outq(&ti, full), 1, "zero window: waiting to be sent");
	cr_assert_eq(pol_tcp_outq(&ti, old), -1, "no tcpi_notsent_bytes: cannot tell");
}

Test(policy, kernel_server_last)
{
	cr_assert_eq(pol_kernel_server_last(0, 500, 900), 0, "a host that sent nothing did not");
	cr_assert_eq(pol_kernel_server_last(0, 500, 500), 0);
	cr_assert_eq(pol_kernel_server_last(2048, 1500, 1200), 1, "answered after the request");
	cr_assert_eq(pol_kernel_server_last(2048, 1200, 1500), 0, "a request after the answer");
	cr_assert_eq(pol_kernel_server_last(2048, 1200, 1200), POL_SPEAKER_TIE,
		     "one tick: request then answer, or answer then the next request");
}
