/*
 * Sweep policy "unused" (pure).  The order of the checks is the order of
 * the guarantees: a connection that ever carried a byte is never released;
 * one whose state we cannot read is kept; one with bytes waiting in the
 * kernel is kept (the host is about to read a request); one younger than the
 * grace waits; only then is it released.
 */
#include "policy.h"

void pol_decide(const struct pol_input *in, struct pol_out *out)
{
	out->wait_ns = 0;
	if (in->rx > 0 || in->kernel_rx > 0) {
		out->verdict = POL_KEEP;
		out->reason = POL_R_USED;
	} else if (in->shared && in->kernel_rx < 0) {
		/* Another process may have read from it; only the kernel's
		 * own count (TCP) can tell us it never carried a byte. */
		out->verdict = POL_KEEP;
		out->reason = POL_R_SHARED;
	} else if (in->queued < 0) {
		out->verdict = POL_KEEP;
		out->reason = POL_R_UNKNOWN;
	} else if (in->queued > 0) {
		/* Unix sockets have no kernel byte counter: the host will read
		 * these bytes and the connection becomes used; look again. */
		out->verdict = POL_WAIT;
		out->reason = POL_R_QUEUED;
		out->wait_ns = POL_QUEUED_RECHECK_NS;
	} else if (in->age_ns < in->grace_ns) {
		out->verdict = POL_WAIT;
		out->reason = POL_R_YOUNG;
		out->wait_ns = in->grace_ns - in->age_ns;
	} else {
		out->verdict = POL_RELEASE;
		out->reason = POL_R_UNUSED;
	}
}

const char *pol_reason_name(enum pol_reason r)
{
	switch (r) {
	case POL_R_USED: return "used";
	case POL_R_UNKNOWN: return "state unknown";
	case POL_R_SHARED: return "shared across fork";
	case POL_R_QUEUED: return "bytes waiting";
	case POL_R_YOUNG: return "younger than grace";
	case POL_R_UNUSED: return "never received a byte";
	}
	return "?";
}
