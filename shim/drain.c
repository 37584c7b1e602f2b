/*
 * SPDX-License-Identifier: MIT
 *
 * The drain state: see drain.h.
 */
#include "drain.h"

#include "config.h"
#include "conntab.h"
#include "log.h"
#include "mute.h"
#include "stats.h"

int drain_kind;            /* DRAIN_*: set by the handler or the listener trigger */
int drain_trigger_sig;     /* the signal that started the drain */
int drain_sweeper_started; /* 0 no, 2 started (or failed for good) */
uint64_t drain_start_ns;   /* the sweeper, or the release in the handler */
int drain_noticed_sig;     /* the last handled signal that may ask for a stop */
uint64_t drain_noticed_ns; /* and when */
int drain_announced;       /* the sweeper thread: the drain it last announced */

static void unmute_one(struct conn *c)
{
	if (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_MUTED)
		mute_end(c);
}

/* The drain ends: no more releases, and what was muted writes again (a
 * connection released by this drain keeps its EOF: that cannot be undone,
 * but its writes are the host's again).  The signal stays noted: a process
 * that served on for a while (a lame-duck period) and then stops listening
 * drains then (rule 2). */
void drain_end(const char *why)
{
	int d = __atomic_load_n(&drain_kind, __ATOMIC_ACQUIRE);
	if (!d || !__atomic_compare_exchange_n(&drain_kind, &d, DRAIN_NONE, 0, __ATOMIC_ACQ_REL,
					       __ATOMIC_ACQUIRE))
		return;
	int sig = __atomic_exchange_n(&drain_trigger_sig, 0, __ATOMIC_RELAXED);
	stats_trigger_withdrawn();
	drain_announced = DRAIN_NONE; /* a trigger from now on is a new drain */
	conntab_lock();
	conntab_each_conn_in_locked(0, ~0u, unmute_one);
	conntab_unlock();
	__atomic_store_n(&drain_start_ns, 0, __ATOMIC_RELAXED);
	if (log_on(LOG_INFO)) {
		const char *n = sig > 0 ? cfg_signal_name(sig) : NULL;
		log_msg(LOG_INFO, "still serving%s%s (%s): the drain ends", n ? " after SIG" : "",
			n ? n : "", why);
	}
}
