/*
 * The sweep policy, table-driven: every guarantee is one row.
 */
#include "policy.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#define MS 1000000ull

struct pol_case {
	char name[64]; /* inline: Criterion runs each parameter in a fresh process */
	struct pol_input in;
	enum pol_verdict verdict;
	enum pol_reason reason;
	uint64_t wait_ns;
};

ParameterizedTestParameters(policy, decides)
{
	static struct pol_case cases[] = {
		{"unused, old, nothing queued: release", {0, 0, 0, 10 * MS, 0, 0}, POL_RELEASE, POL_R_UNUSED, 0},
		{"unix socket (no kernel count), unused", {0, -1, 0, 10 * MS, 0, 0}, POL_RELEASE, POL_R_UNUSED, 0},
		{"we saw bytes: keep for good", {5, 0, 0, 10 * MS, 0, 0}, POL_KEEP, POL_R_USED, 0},
		{"kernel saw bytes we did not: keep", {0, 17, 0, 10 * MS, 0, 0}, POL_KEEP, POL_R_USED, 0},
		{"bytes waiting in the kernel: look again", {0, -1, 30, 10 * MS, 0, 0}, POL_WAIT, POL_R_QUEUED, POL_QUEUED_RECHECK_NS},
		{"FIONREAD failed: keep (fail safe)", {0, 0, -1, 10 * MS, 0, 0}, POL_KEEP, POL_R_UNKNOWN, 0},
		{"younger than grace: wait the rest", {0, 0, 0, 100 * MS, 250 * MS, 0}, POL_WAIT, POL_R_YOUNG, 150 * MS},
		{"exactly grace old: release", {0, 0, 0, 250 * MS, 250 * MS, 0}, POL_RELEASE, POL_R_UNUSED, 0},
		{"young but used: keep", {3, 3, 0, 1 * MS, 250 * MS, 0}, POL_KEEP, POL_R_USED, 0},
		{"young with bytes queued: queued first", {0, -1, 8, 1 * MS, 250 * MS, 0}, POL_WAIT, POL_R_QUEUED, POL_QUEUED_RECHECK_NS},
		{"shared across fork, TCP count says unused", {0, 0, 0, 10 * MS, 0, 1}, POL_RELEASE, POL_R_UNUSED, 0},
		{"shared across fork, no kernel count: keep", {0, -1, 0, 10 * MS, 0, 1}, POL_KEEP, POL_R_SHARED, 0},
		{"shared, kernel saw bytes", {0, 9, 0, 10 * MS, 0, 1}, POL_KEEP, POL_R_USED, 0},
	};
	return cr_make_param_array(struct pol_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct pol_case *c, policy, decides)
{
	struct pol_out out;
	pol_decide(&c->in, &out);
	cr_assert_eq(out.verdict, c->verdict, "%s: verdict %d", c->name, out.verdict);
	cr_assert_eq(out.reason, c->reason, "%s: reason %s", c->name, pol_reason_name(out.reason));
	cr_assert_eq(out.wait_ns, c->wait_ns, "%s: wait %llu", c->name, (unsigned long long)out.wait_ns);
}

Test(policy, never_releases_anything_that_carried_a_byte)
{
	/* Exhaustive over a grid: whatever else holds, rx > 0 or kernel_rx > 0
	 * or queued != 0 never yields a release. */
	int64_t krx[] = {-1, 0, 1, 1000};
	int64_t q[] = {-1, 0, 1, 65536};
	uint64_t rx[] = {0, 1, 1 << 20};
	uint64_t age[] = {0, MS, 10000 * MS};
	uint64_t grace[] = {0, 5 * MS};
	for (size_t a = 0; a < 4; a++)
		for (size_t b = 0; b < 4; b++)
			for (size_t c = 0; c < 3; c++)
				for (size_t d = 0; d < 3; d++)
					for (size_t e = 0; e < 2; e++)
						for (int sh = 0; sh < 2; sh++) {
							struct pol_input in = {rx[c], krx[a], q[b], age[d], grace[e], sh};
							struct pol_out out;
							pol_decide(&in, &out);
							bool used = in.rx > 0 || in.kernel_rx > 0 || in.queued != 0;
							if (used)
								cr_assert_neq(out.verdict, POL_RELEASE);
						}
}
