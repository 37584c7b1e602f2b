/*
 * SPDX-License-Identifier: MIT
 *
 * The release: release_one() (shutdown(fd, SHUT_RD), never close(): the
 * host reads EOF and closes through its own code), and the pass over the
 * table that decides it, run by the sweeper thread (release_sweep) or, in a
 * single-threaded host without that thread yet, in our signal handler
 * (sigrelease.c).
 */
#include "release.h"

#include "conntab.h"
#include "drain.h"
#include "log.h"
#include "mute.h"
#include "policy.h"
#include "shim.h"
#include "stats.h"
#include "sockview.h"

#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/ioctl.h>

struct pass {
	uint64_t now;
	uint64_t next_wait;
	unsigned released[POL_R_DRAIN_TIMEOUT + 1];
	unsigned waiting, kept;
};

/* Quiet time of a socket without TCP_INFO: sampled by the sweeper, so the
 * read path stays free of clock reads.  The first look starts the clock; a
 * transfer since the last look (CONN_DIR_SEEN cleared) restarts it.  The
 * flag is set with a compare-and-swap, here only: a transfer racing with it
 * keeps its direction and is seen at the next look. */
static int64_t sampled_quiet(struct conn *c, uint64_t now)
{
	uint32_t ms = conn_ms(now);
	uint8_t d = __atomic_load_n(&c->last_dir, __ATOMIC_RELAXED);
	uint32_t since = __atomic_load_n(&c->sample_ms, __ATOMIC_RELAXED);
	if (!since || !(d & CONN_DIR_SEEN)) {
		__atomic_store_n(&c->sample_ms, since = ms, __ATOMIC_RELAXED);
		if (!(d & CONN_DIR_SEEN))
			__atomic_compare_exchange_n(&c->last_dir, &d, (uint8_t)(d | CONN_DIR_SEEN),
						    0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	return (int64_t)(uint32_t)(ms - since) * 1000000;
}

/* Who spoke last on a connection the kernel counts for us (CONN_KERNEL),
 * from TCP_INFO (see pol_kernel_server_last).  The times are in the
 * kernel's clock ticks (1 to 10 ms): a tie (POL_SPEAKER_TIE) cannot tell a
 * request answered within the tick from an answer followed within it by
 * the next request, which the host may still be working on.  Nothing else
 * the kernel shows orders the two (counts and times of segments, acks):
 * the direction comes from our filter (last_dir); the kernel can only
 * overrule it, where its reads went past our wrappers. */
static int kernel_server_last(const struct tcp_info *ti, socklen_t len)
{
	uint64_t sent = len >= offsetof(struct tcp_info, tcpi_bytes_sent) +
						sizeof ti->tcpi_bytes_sent
				? ti->tcpi_bytes_sent
				: ti->tcpi_bytes_acked;
	return pol_kernel_server_last(sent, ti->tcpi_last_data_recv, ti->tcpi_last_data_sent);
}

/* The kernel's count of what the host read of a CONN_KERNEL connection
 * about to be muted: two system calls, made outside the table lock (the
 * host's close() waits on it).  Only an idle one can have read anything. */
static int64_t mute_kernel_read(uint8_t flags, int fd, const struct pol_out *out)
{
	return (flags & CONN_KERNEL) && out->reason == POL_R_IDLE ? sockview_read_bytes(fd) : 0;
}

/* The record of ref, if it is still the one the pass listed; the table
 * lock is held. */
static struct conn *ref_find_locked(const struct conn_ref *ref)
{
	struct conn *c = conntab_find_locked(ref->fd);
	return c && c->gen == ref->gen ? c : NULL;
}

static void unclaim(void)
{
	__atomic_store_n(&conntab_claimed_fd, -1, __ATOMIC_RELEASE);
}

/* Whether the process still holds a listener (sweeper thread). */
static bool still_listening(void)
{
	conntab_lock();
	bool l = conntab_special_count_locked(CONN_KIND_LISTENER) != 0;
	conntab_unlock();
	return l;
}

/* A request can arrive between our look (TCP_INFO, SIOCINQ) and shutdown(),
 * and this thread can be preempted there.  After SHUT_RDWR the host would
 * read that request and fail to answer it (EPIPE): a request read and lost.
 * SHUT_RD alone makes the host's read return 0 once nothing is queued (Linux
 * still delivers bytes that came before that read) and leaves it able to
 * answer one that slipped in; the host then closes the connection itself
 * (FIN, or RST for bytes it never read: safe to resend).  The drain timeout
 * cuts with SHUT_RDWR: it must also stop a host blocked writing.
 * (tests/reliability/test_nolost.c lost such requests under ASan with
 * SHUT_RDWR.) */
bool release_one(struct conn *c, int fd, const struct pol_out *out, uint64_t looked_rx, bool locked)
{
	bool cut = out->reason == POL_R_DRAIN_TIMEOUT;
	if (c && !cut) {
		uint8_t flags = __atomic_load_n(&c->flags, __ATOMIC_RELAXED);
		int64_t k = mute_kernel_read(flags, fd, out);
		if (!locked)
			conntab_lock(); /* mute_begin() may add it to the read/write filter */
		mute_begin(c, looked_rx, k,
			   out->reason == POL_R_UNUSED || out->reason == POL_R_FIRST_BYTE);
		if (!locked)
			conntab_unlock();
	}
	if (shutdown(fd, cut ? SHUT_RDWR : SHUT_RD) == 0 || errno == ENOTCONN) {
		if (c)
			__atomic_or_fetch(&c->flags, CONN_RELEASED, __ATOMIC_RELAXED);
		return true;
	}
	if (c) {
		int e = errno;
		mute_end(c); /* not released: its writes are the host's as before */
		errno = e;
	}
	return false;
}

/* What examine() read of a record under the table lock. */
struct look {
	int fd;
	uint8_t flags, family;
	uint32_t ino, accepted_ms;
};

/* Finds and claims the record of ref (conntab_claimed_fd), unless nothing
 * can apply to it: false then, with the pass's count kept. */
static bool examine_claim(const struct conn_ref *ref, const struct pol_params *params, int drain,
			  struct pass *ps, struct conn **cp, struct look *lk)
{
	conntab_lock();
	struct conn *c = ref_find_locked(ref);
	if (!c || (conn_flags(c) & CONN_RELEASED)) {
		conntab_unlock();
		return false;
	}
	/* Before a trigger only the first-byte timeout can apply, and only to
	 * unused connections: skip the rest without a system call. */
	if (!drain &&
	    (conn_rx(c) > 0 || (conn_flags(c) & CONN_USED) || !params->first_byte_timeout_ns)) {
		ps->kept++;
		conntab_unlock();
		return false;
	}
	/* What the look needs of the record, read under the lock. */
	lk->fd = c->fd;
	lk->flags = __atomic_load_n(&c->flags, __ATOMIC_RELAXED);
	lk->family = c->family;
	lk->ino = c->ino;
	lk->accepted_ms = c->accepted_ms;
	__atomic_store_n(&conntab_claimed_fd, lk->fd, __ATOMIC_RELEASE);
	conntab_unlock();
	*cp = c;
	return true;
}

/* The policy's input for a claimed record: our counts, and the kernel's. */
static void examine_input(struct conn *c, const struct look *lk, int drain,
			  const struct pol_params *params, const struct pass *ps,
			  struct pol_input *in)
{
	int fd = lk->fd;
	uint8_t flags = lk->flags;
	memset(in, 0, sizeof *in);
	in->rx = conn_rx(c);
	in->kernel_rx = -1;
	in->quiet_ns = -1;
	in->outq = -1;
	/* Not taken: no setting uses the age; as old as the clock. */
	in->age_ns = lk->accepted_ms
			     ? (uint64_t)(uint32_t)(conn_ms(ps->now) - lk->accepted_ms) * 1000000
			     : ps->now;
	in->shared = !!(flags & CONN_SHARED);
	in->draining = drain;
	in->deadline_passed = drain && shim_cfg.drain_timeout_ns &&
			      ps->now - drain_started() >= shim_cfg.drain_timeout_ns;
	uint8_t dir = __atomic_load_n(&c->last_dir, __ATOMIC_RELAXED) & ~CONN_DIR_SEEN;
	/* What the host read of it is a TLS handshake and no more: only if it
	 * read all of it through this record (not shared: a dup or a fork may
	 * read what we never see). */
	bool tcp = lk->family == AF_INET || lk->family == AF_INET6;
	uint32_t tls = tcp ? __atomic_load_n(&c->tls, __ATOMIC_RELAXED) : 0;
	in->no_request = !(flags & CONN_SHARED) && pol_tls_no_request(tls);
	in->multiplexed = pol_tls_multiplexed(tls);
	in->server_last = dir == CONN_DIR_TX ? 1 : dir == CONN_DIR_RX ? 0 : -1;
	/* Written to: by our count (none for a CONN_KERNEL record, whose
	 * writes we do not see), or the kernel's below. */
	in->wrote = conn_tx(c) > 0;
	int64_t unsent = -1; /* from TCP_INFO, when it tells */
	int tcp_outq = -1;   /* likewise */
	if (tcp) {
		struct tcp_info ti;
		socklen_t len;
		if (sockview_tcp_info(fd, &ti, &len) == 0) {
			in->kernel_rx = (int64_t)ti.tcpi_bytes_received;
			in->wrote |= pol_tcp_sent(&ti, len);
			unsent = pol_tcp_unsent(&ti, len);
			tcp_outq = pol_tcp_outq(&ti, len);
			if (in->kernel_rx > 0) /* no need to ask again before a trigger */
				__atomic_or_fetch(&c->flags, CONN_USED, __ATOMIC_RELAXED);
			in->quiet_ns = (int64_t)sockview_quiet_ms(&ti) * 1000000;
			/* In the filter since its accept (policy idle), so our
			 * direction is the truth, unless it received bytes we
			 * never saw it read (io_uring, a read past our
			 * wrappers): then not whether it may be HTTP/2 either,
			 * and who spoke last proves nothing, as for a counted
			 * one whose reads we missed.  (A server that spoke
			 * first to a peer that never sent a byte spoke last.)
			 * Where the kernel saw data come in a tick after the
			 * last it sent, the peer spoke last, whatever we saw. */
			if (flags & CONN_KERNEL) {
				if (in->rx == 0 && in->kernel_rx != 0)
					in->server_last = -1;
				else if (in->server_last == 1 && !kernel_server_last(&ti, len))
					in->server_last = 0;
			}
		}
	} else {
		in->quiet_ns = sampled_quiet(c, ps->now);
	}
	/* Bytes waiting to be read.  A TCP connection the kernel has never
	 * received a byte on has none (nor a FIN): one system call fewer per
	 * connection of a sweep. */
	if (in->kernel_rx == 0) {
		in->queued = 0;
	} else {
		int q = 0;
		in->queued = ioctl(fd, SIOCINQ, &q) < 0 ? -1 : q;
	}
	if (in->rx == 0 && in->kernel_rx <= 0 && !in->wrote) {
		/* Unused so far: bytes the host wrote that have not left yet
		 * (corked, or a zero window) still make it a session; so does
		 * a queue we cannot read.  TCP_INFO tells it for TCP (Linux
		 * 4.19+): SIOCOUTQ only for Unix sockets and older kernels. */
		int oq = 0;
		if (unsent >= 0)
			in->wrote = unsent != 0;
		else
			in->wrote = ioctl(fd, SIOCOUTQ, &oq) < 0 || oq != 0;
	}
	if (drain && params->policy == POLICY_IDLE &&
	    (in->rx > 0 || in->kernel_rx > 0 || in->wrote)) {
		int oq = 0;
		if (tcp_outq >= 0)
			in->outq = tcp_outq;
		else
			in->outq = ioctl(fd, SIOCOUTQ, &oq) < 0 ? -1 : oq;
	}
}

/* The release examine() decided, counted and logged. */
static void examine_release(struct conn *c, int fd, const struct pol_input *in,
			    const struct pol_out *out, struct pass *ps)
{
	char peer[64];
	if (!release_one(c, fd, out, in->rx, false)) {
		LOG(LOG_WARN, "shutdown(fd %d) failed: %s", fd, strerror(errno));
		return;
	}
	ps->released[out->reason]++;
	stats_released(out->reason);
	enum log_level l = out->reason == POL_R_DRAIN_TIMEOUT ? LOG_WARN : LOG_DEBUG;
	if (log_on(l)) {
		log_peer(fd, peer, sizeof peer);
		log_msg(l, "connection %s %s (%s; %llu bytes received, %llu sent, age %llu ms)",
			peer, out->reason == POL_R_DRAIN_TIMEOUT ? "cut" : "shut down",
			pol_reason_name(out->reason),
			(unsigned long long)((__atomic_load_n(&c->flags, __ATOMIC_RELAXED) &
					      CONN_KERNEL) && in->kernel_rx > 0
						     ? (uint64_t)in->kernel_rx
						     : in->rx),
			(unsigned long long)conn_tx(c), (unsigned long long)(in->age_ns / 1000000));
	}
}

/* Looks at one connection, and releases it if the policy says so.
 *
 * The table lock is held only to find the record and to change it, never
 * across a system call: between the two, the fd is claimed
 * (conntab_claimed_fd), so that our close paths wait before the real close
 * and the number can be neither closed through us nor reused meanwhile.  The
 * host's own EOF handling then runs beside the sweep instead of after it. */
static void examine(const struct conn_ref *ref, struct pass *ps)
{
	struct conn *c;
	struct look lk;
	struct pol_input in;
	struct pol_out out;
	struct pol_params params = {shim_cfg.policy, shim_cfg.grace_ns, shim_cfg.idle_quiet_ns,
				    shim_cfg.first_byte_timeout_ns};
	int drain = drain_active();

	if (!examine_claim(ref, &params, drain, ps, &c, &lk))
		return;
	int fd = lk.fd;
	/* Accepted after the trigger on a listener the process still holds:
	 * a process that stops does not take new work on, one that goes on
	 * serving does (README, "When it drains"). */
	bool late = !shim_in_handler() && drain_accepted_late(lk.accepted_ms) && still_listening();
	if (late && params.grace_ns < DRAIN_LATE_GRACE_NS)
		params.grace_ns = DRAIN_LATE_GRACE_NS;

	/* Identity: the fd may have been closed behind our back (fclose, a
	 * raw syscall) and the number reused for something we never accepted. */
	if (!sockview_same(fd, shim_sock_dev(), lk.ino)) {
		LOG(LOG_DEBUG, "fd %d: stale record (closed or reused behind our back), dropped",
		    fd);
		conntab_lock();
		if ((c = ref_find_locked(ref)))
			conntab_remove_locked(c);
		unclaim();
		conntab_unlock();
		return;
	}
	examine_input(c, &lk, drain, &params, ps, &in);
	if (late && (in.rx > 0 || in.kernel_rx > 0)) {
		unclaim();
		drain_end("a connection accepted after the trigger carried a request");
		return;
	}
	pol_decide(&params, &in, &out);
	if (out.verdict == POL_RELEASE) {
		examine_release(c, fd, &in, &out, ps);
	} else if (out.verdict == POL_WAIT) {
		ps->waiting++;
		if (out.wait_ns < ps->next_wait)
			ps->next_wait = out.wait_ns;
	} else {
		ps->kept++;
	}
	unclaim();
}

/* Examines the whole table through a fixed array of n references, without
 * allocating (out of memory, or in a signal handler), in fd order: each
 * chunk goes on from the fd where the last one stopped (skipping the first
 * records of the table's order instead made a 10,000-connection release in
 * the handler walk the table 150 times). */
static void examine_in_chunks(struct conn_ref *chunk, size_t n, struct pass *ps)
{
	for (unsigned next = 0;;) {
		conntab_lock();
		size_t k = conntab_refs_by_fd_locked(chunk, n, &next);
		conntab_unlock();
		for (size_t i = 0; i < k; i++)
			examine(&chunk[i], ps);
		if (k < n)
			break;
	}
}

/* What a pass did, in the statistics' words (README, "Release reasons"),
 * and only what is not zero:
 *   drain: released 2 connection(s) (unused 1, idle 1); 1 not yet idle
 *   (looked at again in 1000 ms unless the server closes it first) */
static void say_pass(const struct pass *ps, unsigned rel)
{
	static const struct {
		enum pol_reason r;
		const char *word;
	} reasons[] = {{POL_R_UNUSED, "unused"},
		       {POL_R_IDLE, "idle"},
		       {POL_R_FIRST_BYTE, "first_byte_timeout"}};
	char line[400];
	size_t o = 0;
	unsigned cut = ps->released[POL_R_DRAIN_TIMEOUT];
#define SAY(...)                                                                                   \
	do {                                                                                       \
		int n_ = snprintf(line + o, sizeof line - o, __VA_ARGS__);                         \
		if (n_ > 0)                                                                        \
			o = o + (size_t)n_ < sizeof line ? o + (size_t)n_ : sizeof line - 1;       \
	} while (0)
	if (rel) {
		SAY("released %u connection(s) (", rel);
		const char *sep = "";
		for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
			if (ps->released[reasons[i].r]) {
				SAY("%s%s %u", sep, reasons[i].word, ps->released[reasons[i].r]);
				sep = ", ";
			}
		SAY(")");
	}
	if (cut)
		SAY("%scut %u connection(s) (drain_timeout)", rel ? "; " : "", cut);
	if (ps->waiting) {
		if (ps->next_wait != UINT64_MAX)
			SAY("; %u not yet (looked at again in %llu ms unless the server closes it "
			    "first)",
			    ps->waiting, (unsigned long long)((ps->next_wait + 999999) / 1000000));
		else
			SAY("; %u not yet", ps->waiting);
	}
	if (ps->kept)
		SAY("; %u kept (in use: the server's to close)", ps->kept);
#undef SAY
	log_msg(LOG_INFO, "%s: %s", drain_active() ? "drain" : "first_byte_timeout", line);
}

/* One pass over the table.  Returns the time until something may qualify,
 * or UINT64_MAX when nothing is pending. */
uint64_t release_sweep(void)
{
	struct pass ps;
	struct conn_ref *refs;
	size_t n;

	memset(&ps, 0, sizeof ps);
	ps.next_wait = UINT64_MAX;
	conntab_lock();
	n = conntab_count_locked();
	refs = n ? malloc(n * sizeof *refs) : NULL;
	size_t total = n;
	n = refs ? conntab_refs_locked(refs, n) : 0;
	conntab_unlock();

	ps.now = shim_now_ns();
	for (size_t i = 0; i < n; i++)
		examine(&refs[i], &ps);
	free(refs);
	if (total && !refs) {
		/* Out of memory: the connections we track must still be
		 * released.  Walk the table in chunks through a fixed array
		 * (this thread only).  A record removed between two chunks
		 * shifts the rest, so one may be missed: look again soon. */
		static struct conn_ref chunk[128];
		examine_in_chunks(chunk, sizeof chunk / sizeof *chunk, &ps);
		if (ps.next_wait > POL_RECHECK_NS)
			ps.next_wait = POL_RECHECK_NS;
	}

	unsigned rel = ps.released[POL_R_UNUSED] + ps.released[POL_R_IDLE] +
		       ps.released[POL_R_FIRST_BYTE];
	if ((rel || ps.released[POL_R_DRAIN_TIMEOUT]) && log_on(LOG_INFO))
		say_pass(&ps, rel);
	if (drain_active() && shim_cfg.drain_timeout_ns) {
		uint64_t end = drain_started() + shim_cfg.drain_timeout_ns;
		uint64_t left = end > ps.now ? end - ps.now : 0;
		if (left && left < ps.next_wait)
			ps.next_wait = left;
	}
	return ps.next_wait;
}

/* The pass of our signal handler (sigrelease.c), at now: through a fixed
 * array, without allocating.  Returns how many connections it released. */
unsigned release_sweep_fixed(uint64_t now)
{
	static struct conn_ref chunk[64];
	struct pass ps;
	memset(&ps, 0, sizeof ps);
	ps.next_wait = UINT64_MAX;
	ps.now = now;
	examine_in_chunks(chunk, sizeof chunk / sizeof *chunk, &ps);
	unsigned rel = 0;
	for (size_t i = 0; i < sizeof ps.released / sizeof *ps.released; i++)
		rel += ps.released[i];
	return rel;
}
