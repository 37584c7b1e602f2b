/*
 * The release policy, table-driven: every guarantee is one row.
 */
#include "policy.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
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
#define IN(rx, krx, q, oq, age, quiet, last, sh, dr, dl) {rx, krx, q, oq, age, quiet, last, sh, dr, dl}

ParameterizedTestParameters(policy, decides)
{
	static struct pol_case cases[] = {
		/* unused, at the trigger */
		{"unused, old, nothing queued: release", POLICY_UNUSED, 0, IN(0, 0, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"unix (no kernel count), unused: release", POLICY_UNUSED, 0, IN(0, -1, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"younger than grace: wait the rest", POLICY_UNUSED, 0, IN(0, 0, 0, -1, 100 * MS, -1, -1, 0, 1, 0), POL_WAIT, POL_R_YOUNG, 150 * MS},
		{"exactly grace old: release", POLICY_UNUSED, 0, IN(0, 0, 0, -1, 250 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"bytes waiting in the kernel: look again", POLICY_UNUSED, 0, IN(0, -1, 30, -1, 300 * MS, -1, -1, 0, 1, 0), POL_WAIT, POL_R_QUEUED, POL_RECHECK_NS},
		{"FIONREAD failed: keep (fail safe)", POLICY_UNUSED, 0, IN(0, 0, -1, -1, 300 * MS, -1, -1, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN, 0},
		{"no trigger, no first-byte timeout: keep", POLICY_UNUSED, 0, IN(0, 0, 0, -1, 300 * MS, -1, -1, 0, 0, 0), POL_KEEP, POL_R_NOT_DRAINING, 0},
		/* used */
		{"we saw bytes: keep", POLICY_UNUSED, 0, IN(5, 5, 0, -1, 300 * MS, 9000 * MS, 1, 0, 1, 0), POL_KEEP, POL_R_USED, 0},
		{"kernel saw bytes we did not: keep", POLICY_UNUSED, 0, IN(0, 17, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_KEEP, POL_R_USED, 0},
		/* fork */
		{"shared, TCP count says unused: release", POLICY_UNUSED, 0, IN(0, 0, 0, -1, 300 * MS, -1, -1, 1, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		{"shared, no kernel count: keep", POLICY_UNUSED, 0, IN(0, -1, 0, -1, 300 * MS, -1, -1, 1, 1, 0), POL_KEEP, POL_R_SHARED, 0},
		/* first-byte timeout, with or without a trigger */
		{"fbt: unused past timeout, no trigger: release", POLICY_UNUSED, 10000 * MS, IN(0, 0, 0, -1, 10000 * MS, -1, -1, 0, 0, 0), POL_RELEASE, POL_R_FIRST_BYTE, 0},
		{"fbt: unused before timeout: wait the rest", POLICY_UNUSED, 10000 * MS, IN(0, 0, 0, -1, 4000 * MS, -1, -1, 0, 0, 0), POL_WAIT, POL_R_YOUNG, 6000 * MS},
		{"fbt: used: keep", POLICY_UNUSED, 10000 * MS, IN(1, 1, 0, -1, 20000 * MS, -1, 0, 0, 0, 0), POL_KEEP, POL_R_USED, 0},
		{"fbt: bytes queued: look again", POLICY_UNUSED, 10000 * MS, IN(0, -1, 5, -1, 20000 * MS, -1, -1, 0, 0, 0), POL_WAIT, POL_R_QUEUED, POL_RECHECK_NS},
		{"fbt and grace while draining: grace first", POLICY_UNUSED, 10000 * MS, IN(0, 0, 0, -1, 100 * MS, -1, -1, 0, 1, 0), POL_WAIT, POL_R_YOUNG, 150 * MS},
		/* idle */
		{"idle: host spoke last, quiet: release", POLICY_IDLE, 0, IN(100, 100, 0, 0, 5000 * MS, 1500 * MS, 1, 0, 1, 0), POL_RELEASE, POL_R_IDLE, 0},
		{"idle: quiet not long enough: wait", POLICY_IDLE, 0, IN(100, 100, 0, 0, 5000 * MS, 400 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_ACTIVE, 600 * MS},
		{"idle: peer spoke last (request in progress)", POLICY_IDLE, 0, IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, 0, 0, 1, 0), POL_WAIT, POL_R_PEER_LAST, POL_RECHECK_NS},
		{"idle: peer not done receiving (download)", POLICY_IDLE, 0, IN(100, 100, 0, 65536, 5000 * MS, 9000 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_SENDING, POL_RECHECK_NS},
		{"idle: bytes waiting: never cut", POLICY_IDLE, 0, IN(100, 130, 30, 0, 5000 * MS, 9000 * MS, 1, 0, 1, 0), POL_WAIT, POL_R_QUEUED, POL_RECHECK_NS},
		{"idle: outq unknown: keep", POLICY_IDLE, 0, IN(100, 100, 0, -1, 5000 * MS, 9000 * MS, 1, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN, 0},
		{"idle: direction unknown: keep", POLICY_IDLE, 0, IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, -1, 0, 1, 0), POL_KEEP, POL_R_UNKNOWN, 0},
		{"idle: shared unix socket: keep", POLICY_IDLE, 0, IN(100, -1, 0, 0, 5000 * MS, 9000 * MS, 1, 1, 1, 0), POL_KEEP, POL_R_SHARED, 0},
		{"idle: shared TCP socket: kernel decides", POLICY_IDLE, 0, IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, 1, 1, 1, 0), POL_RELEASE, POL_R_IDLE, 0},
		{"idle before trigger: keep", POLICY_IDLE, 0, IN(100, 100, 0, 0, 5000 * MS, 9000 * MS, 1, 0, 0, 0), POL_KEEP, POL_R_USED, 0},
		{"idle: unused still by the unused rule", POLICY_IDLE, 0, IN(0, 0, 0, -1, 300 * MS, -1, -1, 0, 1, 0), POL_RELEASE, POL_R_UNUSED, 0},
		/* drain deadline */
		{"deadline: cuts an active connection", POLICY_UNUSED, 0, IN(100, 100, 30, 4096, 5000 * MS, 0, 0, 0, 1, 1), POL_RELEASE, POL_R_DRAIN_TIMEOUT, 0},
		{"deadline flag without a trigger: nothing", POLICY_UNUSED, 0, IN(100, 100, 0, 0, 5000 * MS, 0, 1, 0, 0, 1), POL_KEEP, POL_R_USED, 0},
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
	cr_assert_eq(out.wait_ns, c->wait_ns, "%s: wait %llu", c->name, (unsigned long long)out.wait_ns);
}

Test(policy, only_the_deadline_cuts_a_connection_with_bytes_waiting_or_in_use)
{
	/* Exhaustive over a grid: without the drain deadline, a connection with
	 * bytes waiting is never released, and under policy unused neither is
	 * one that carried a byte. */
	int64_t krx[] = {-1, 0, 1000}, q[] = {-1, 0, 1, 65536}, oq[] = {-1, 0, 10}, quiet[] = {-1, 0, 5000 * MS};
	uint64_t rx[] = {0, 1}, age[] = {0, 100 * MS, 20000 * MS}, fbt[] = {0, 10000 * MS};
	int last[] = {-1, 0, 1};
	int n = 0;
	for (int pol = 0; pol < 2; pol++)
	for (size_t a = 0; a < 3; a++) for (size_t b = 0; b < 4; b++) for (size_t c = 0; c < 2; c++)
	for (size_t d = 0; d < 3; d++) for (size_t e = 0; e < 3; e++) for (size_t f = 0; f < 3; f++)
	for (size_t g = 0; g < 3; g++) for (size_t h = 0; h < 2; h++) for (int sh = 0; sh < 2; sh++)
	for (int dr = 0; dr < 2; dr++) for (int dl = 0; dl < 2; dl++) {
		struct pol_params p = {(enum policy)pol, 250 * MS, 1000 * MS, fbt[h]};
		struct pol_input in = {rx[c], krx[a], q[b], oq[e], age[d], quiet[f], last[g], sh, dr, dl};
		struct pol_out out;
		pol_decide(&p, &in, &out);
		n++;
		if (out.verdict != POL_RELEASE)
			continue;
		if (dr && dl) {
			cr_assert_eq(out.reason, POL_R_DRAIN_TIMEOUT);
			continue;
		}
		cr_assert_eq(in.queued, 0, "released with bytes waiting (case %d)", n);
		if (pol == POLICY_UNUSED)
			cr_assert(in.rx == 0 && in.kernel_rx <= 0, "unused released a used one (case %d)", n);
		if (in.rx > 0 || in.kernel_rx > 0)
			cr_assert(in.server_last == 1 && in.outq == 0 && in.quiet_ns >= (int64_t)(1000 * MS),
				  "idle released a busy connection (case %d)", n);
		if (!dr)
			cr_assert_eq(out.reason, POL_R_FIRST_BYTE, "released before any trigger (case %d)", n);
	}
	cr_assert_gt(n, 10000);
}
