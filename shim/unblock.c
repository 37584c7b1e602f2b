/*
 * SPDX-License-Identifier: MIT
 *
 * A sync worker blocked on a never-used connection while clients wait in
 * the listener's queue: released by the sweeper thread (sweeper.c), at any
 * time, not only at a graceful stop.
 */
#include "unblock.h"

#include "conntab.h"
#include "log.h"
#include "policy.h"
#include "release.h"
#include "shim.h"
#include "sockview.h"
#include "stats.h"

#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* ---- a worker blocked on a never-used connection -----------------------
 * A sync worker (one connection at a time, blocking reads: gunicorn's
 * default) that accepted a browser's preconnected socket blocks in recv()
 * on it while the real request waits in the listener's queue, until the
 * worker timeout kills the worker.  Released here, at any time (not only
 * at a graceful stop), when all of these hold: a thread is in a read of it
 * that may block (conntab_blocked, set around the read by the wrappers); it
 * never received a byte (our count, and the kernel's); the host wrote
 * nothing to it (our count, the kernel's bytes sent, SIOCOUTQ: a server that
 * speaks first, SMTP's banner, is in a session with a slow client, not
 * holding a preconnect); nothing is queued;
 * it is at least GRACESHIM_UNBLOCK_AFTER old (the kernel's time since it
 * last received data: for one that never did, since it was established);
 * and a listener of this process has connections waiting to be accepted.
 * Nothing waits: nothing is released, exactly as without the shim.  As at
 * a graceful stop: SHUT_RD, nothing written (the browser resends on
 * another connection). */
int unblock_readers; /* set by the wrappers: someone may be blocked */
#define UNBLOCK_EVERY_NS (100 * 1000000ull)

/* Whether a listener of this process has clients waiting to be accepted. */
static bool clients_waiting(void)
{
	int fds[CONNTAB_MAX_SPECIALS];
	uint32_t inos[CONNTAB_MAX_SPECIALS];
	size_t n = 0;
	conntab_lock();
	size_t k = conntab_special_fds_locked(0, ~0u, fds, CONNTAB_MAX_SPECIALS);
	for (size_t i = 0; i < k; i++) {
		struct conn *l = conntab_fast(fds[i]);
		if (l && l->kind == CONN_KIND_LISTENER) {
			fds[n] = fds[i];
			inos[n++] = l->ino;
		}
	}
	conntab_unlock();
	for (size_t i = 0; i < n; i++) {
		struct tcp_info ti;
		socklen_t len;
		/* The listener's identity first: the number may be another fd now. */
		if (!sockview_same(fds[i], 0, inos[i]))
			continue;
		/* For a listening socket the kernel reports its accept queue's
		 * length in tcpi_unacked. */
		if (sockview_tcp_info(fds[i], &ti, &len) == 0 && ti.tcpi_state == SOCKVIEW_LISTEN &&
		    ti.tcpi_unacked > 0)
			return true;
	}
	return false;
}

uint64_t unblock_pass(void)
{
	conntab_lock();
	size_t n = conntab_count_locked();
	struct conn_ref *refs = n ? malloc(n * sizeof *refs) : NULL;
	n = refs ? conntab_refs_locked(refs, n) : 0;
	conntab_unlock();
	bool any = false, waiting = false, asked = false;
	for (size_t i = 0; i < n; i++) {
		/* A look without the lock first (records are recycled, never
		 * freed): most records are not blocked. */
		if ((unsigned)refs[i].fd >= CONNTAB_LOW ||
		    __atomic_load_n(&conntab_blocked[refs[i].fd], __ATOMIC_RELAXED) != refs[i].gen)
			continue;
		conntab_lock();
		struct conn *c = conntab_find_locked(refs[i].fd);
		if (!c || c->gen != refs[i].gen || (conn_flags(c) & CONN_RELEASED) ||
		    conn_rx(c) != 0 || conn_tx(c) != 0) {
			conntab_unlock();
			continue;
		}
		any = true;
		struct tcp_info ti;
		socklen_t len;
		int q = -1, oq = -1;
		bool ok = sockview_same(c->fd, shim_sock_dev(), c->ino) &&
			  sockview_tcp_info(c->fd, &ti, &len) == 0 &&
			  ti.tcpi_state == SOCKVIEW_ESTABLISHED && ti.tcpi_bytes_received == 0 &&
			  !pol_tcp_sent(&ti, len) &&
			  ti.tcpi_last_data_recv >= shim_cfg.unblock_after_ns / 1000000 &&
			  ioctl(c->fd, SIOCINQ, &q) == 0 && q == 0 &&
			  ioctl(c->fd, SIOCOUTQ, &oq) == 0 && oq == 0;
		if (ok && !asked) {
			asked = true; /* once per pass, and only if something could go */
			conntab_unlock();
			waiting = clients_waiting();
			conntab_lock();
			c = conntab_find_locked(refs[i].fd);
			ok = c && c->gen == refs[i].gen &&
			     __atomic_load_n(&conntab_blocked[refs[i].fd], __ATOMIC_RELAXED) ==
				     c->gen;
		}
		if (ok && waiting) {
			struct pol_out out = {POL_RELEASE, POL_R_UNUSED, 0};
			/* looked at: it had read nothing */
			if (release_one(c, c->fd, &out, 0, true)) {
				stats_unblocked();
				if (log_on(LOG_INFO)) {
					char peer[64];
					log_peer(c->fd, peer, sizeof peer);
					log_msg(LOG_INFO,
						"connection %s shut down (blocking: it never sent "
						"a "
						"byte in %u ms while a thread waited on it and "
						"clients "
						"waited to be accepted)",
						peer, ti.tcpi_last_data_recv);
				}
			}
		}
		conntab_unlock();
	}
	free(refs);
	if (!any) {
		int one = 1;
		__atomic_compare_exchange_n(&unblock_readers, &one, 0, 0, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
		return UINT64_MAX;
	}
	return UNBLOCK_EVERY_NS;
}
