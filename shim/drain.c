/*
 * SPDX-License-Identifier: MIT
 *
 * The drain state: see drain.h.
 */
#include "drain.h"

int sweeper_drain;          /* DRAIN_*: set by the handler or the listener trigger */
int trigger_sig;            /* the signal that started the drain */
int sweeper_started;        /* 0 no, 2 started (or failed for good) */
uint64_t drain_start_ns;    /* the sweeper, or the release in the handler */
int drain_noticed_sig;       /* the last handled signal that may ask for a stop */
uint64_t drain_noticed_ns;  /* and when */
