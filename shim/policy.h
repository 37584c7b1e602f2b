/*
 * The sweep policy as a pure function: given what we know of one
 * connection, release it now, keep it for good, or look again later.
 */
#ifndef GRACESHIM_POLICY_H
#define GRACESHIM_POLICY_H

#include <stdint.h>

struct pol_input {
	uint64_t rx;        /* bytes the host read through our wrappers */
	int64_t kernel_rx;  /* TCP_INFO tcpi_bytes_received, -1 if unknown (not TCP) */
	int64_t queued;     /* FIONREAD, -1 if the ioctl failed */
	uint64_t age_ns;    /* since accept */
	uint64_t grace_ns;  /* GRACESHIM_GRACE */
	int shared;         /* the socket crossed a fork: other processes may read it */
};

enum pol_verdict {
	POL_KEEP,    /* used: never released by this policy */
	POL_RELEASE, /* never used, nothing waiting, old enough: shutdown() it */
	POL_WAIT,    /* may qualify later: look again after wait_ns */
};

enum pol_reason {
	POL_R_USED,      /* received bytes */
	POL_R_UNKNOWN,   /* could not tell how much is queued: fail safe */
	POL_R_SHARED,    /* shared across fork, no kernel byte count: our count may miss reads */
	POL_R_QUEUED,    /* bytes wait in the kernel for the host to read */
	POL_R_YOUNG,     /* younger than the grace */
	POL_R_UNUSED,    /* never received a byte */
};

struct pol_out {
	enum pol_verdict verdict;
	enum pol_reason reason;
	uint64_t wait_ns;
};

/* How soon to look again at a connection whose bytes wait in the kernel. */
#define POL_QUEUED_RECHECK_NS (50 * 1000000ull)

void pol_decide(const struct pol_input *in, struct pol_out *out);
const char *pol_reason_name(enum pol_reason r);

#endif
