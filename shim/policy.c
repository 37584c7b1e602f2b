/*
 * Release policy (pure).  The order of the checks is the order of the
 * guarantees:
 *   - the drain deadline, when set and passed, cuts everything (the only
 *     rule that cuts an active connection, like nginx's
 *     worker_shutdown_timeout or HAProxy's hard-stop-after);
 *   - a connection whose state cannot be read is kept;
 *   - a connection with bytes waiting in the kernel is never cut;
 *   - "unused" (never received a byte) is released at the trigger once older
 *     than the grace, or at any time once older than the first-byte timeout;
 *   - "idle" (policy idle, after the trigger) also releases a used connection
 *     when the host spoke last, the peer has taken everything, and nothing
 *     moved for the quiet time: keep-alive idle connections, and TLS
 *     connections whose handshake was their only traffic.
 * A socket that crossed a fork may be read by another process, so our count
 * alone cannot prove it unused: the kernel's (TCP) must.
 */
#include "policy.h"

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

static void decide_used(const struct pol_params *p, const struct pol_input *in,
			struct pol_out *out)
{
	if (!in->draining || p->policy != POLICY_IDLE)
		set(out, POL_KEEP, POL_R_USED, 0);
	else if (in->shared && in->kernel_rx < 0)
		set(out, POL_KEEP, POL_R_SHARED, 0); /* its traffic may go through another fd */
	else if (in->queued > 0)
		set(out, POL_WAIT, POL_R_QUEUED, POL_RECHECK_NS);
	else if (in->outq < 0 || in->server_last < 0 || in->quiet_ns < 0)
		set(out, POL_KEEP, POL_R_UNKNOWN, 0);
	else if (in->outq > 0)
		set(out, POL_WAIT, POL_R_SENDING, POL_RECHECK_NS);
	else if (!in->server_last)
		set(out, POL_WAIT, POL_R_PEER_LAST, POL_RECHECK_NS);
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
	else if (in->rx > 0 || in->kernel_rx > 0)
		decide_used(p, in, out);
	else if (in->shared && in->kernel_rx < 0)
		set(out, POL_KEEP, POL_R_SHARED, 0);
	else
		decide_unused(p, in, out);
}

const char *pol_reason_name(enum pol_reason r)
{
	switch (r) {
	case POL_R_USED: return "used";
	case POL_R_UNKNOWN: return "state unknown";
	case POL_R_SHARED: return "shared across fork";
	case POL_R_QUEUED: return "bytes waiting";
	case POL_R_SENDING: return "peer still receiving";
	case POL_R_PEER_LAST: return "peer spoke last";
	case POL_R_ACTIVE: return "active";
	case POL_R_YOUNG: return "young";
	case POL_R_NOT_DRAINING: return "no trigger yet";
	case POL_R_UNUSED: return "never received a byte";
	case POL_R_IDLE: return "idle";
	case POL_R_FIRST_BYTE: return "no first byte in time";
	case POL_R_DRAIN_TIMEOUT: return "drain timeout";
	}
	return "?";
}
