/*
 * SPDX-License-Identifier: MIT
 *
 * One pass over the connection table: each connection is looked at
 * (identity, the kernel's counts, the policy) and released by
 * shutdown(fd, SHUT_RD) when the policy says so (SHUT_RDWR only at the
 * drain deadline).  shutdown(), never close(): the fd number stays the
 * host's, its pending read returns 0, and the host closes the connection
 * through its own code path.  The sweeper thread (sweeper.c) runs sweep();
 * a single-threaded host without that thread yet gets the same pass in our
 * signal handler (sweeper_release_in_handler).
 */
#include "release.h"

#include "conntab.h"
#include "drain.h"
#include "log.h"
#include "policy.h"
#include "proc.h"
#include "shim.h"
#include "stats.h"
#include "workers.h"

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
#include <sys/stat.h>

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
			__atomic_compare_exchange_n(&c->last_dir, &d, (uint8_t)(d | CONN_DIR_SEEN), 0,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	return (int64_t)(uint32_t)(ms - since) * 1000000;
}

int64_t sweeper_tcp_read_bytes(int fd)
{
	/* States from include/net/tcp_states.h (netinet/tcp.h clashes with
	 * linux/tcp.h): the peer's FIN has arrived. */
	enum { TIME_WAIT = 6, CLOSE_WAIT = 8, LAST_ACK = 9, CLOSING = 11 };
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	int saved = errno, q = 0;
	int64_t r = -1;

	/* Waiting bytes first, the received count second: a byte arriving in
	 * between is then counted as read, which lets the host's write through
	 * (the direction that loses no request). */
	memset(&ti, 0, sizeof ti);
	if (ioctl(fd, SIOCINQ, &q) == 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) {
		/* tcpi_bytes_received counts a FIN as a byte; SIOCINQ does not. */
		uint8_t st = ti.tcpi_state;
		bool fin_in = st == CLOSE_WAIT || st == LAST_ACK || st == CLOSING || st == TIME_WAIT;
		r = (int64_t)ti.tcpi_bytes_received - (fin_in && ti.tcpi_bytes_received) - q;
		if (r < 0)
			r = 0;
	}
	errno = saved;
	return r;
}

/* Who spoke last on a connection whose transfers we do not see
 * (CONN_KERNEL), from TCP_INFO (see pol_kernel_server_last).  The times
 * are in the kernel's clock ticks (1 to 10 ms): a tie the wrong way needs
 * the next request to arrive within the tick that sent the last answer,
 * and to be still unanswered after the quiet time; its answer still
 * passes the mute (mute.c). */
static int kernel_server_last(const struct tcp_info *ti, socklen_t len)
{
	uint64_t sent = len >= offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof ti->tcpi_bytes_sent
				? ti->tcpi_bytes_sent
				: ti->tcpi_bytes_acked;
	return pol_kernel_server_last(sent, ti->tcpi_last_data_recv, ti->tcpi_last_data_sent);
}

/* Before a release (SHUT_RD, not the drain timeout's cut): from now on the
 * host's writes on c are looked at (CONN_MUTED) until it reads a byte again,
 * and dropped once it can only be answering the EOF we cause (interpose.c,
 * muted_drop).  Set before shutdown(): the host may read that EOF and write
 * at once.  A connection that never received a byte cannot be owed
 * anything: its writes are dropped from the start. */
/* looked_rx: the count of bytes the host had read when the policy looked
 * (not the counter now: a request that raced the release and that the host
 * has read since must make its answer pass; nolost caught one dropped). */
/* kernel_read: for a CONN_KERNEL record, what the kernel says the host read
 * (mute_kernel_read(), asked before the lock is taken). */
void mute(struct conn *c, const struct pol_out *out, uint64_t looked_rx, int64_t kernel_read)
{
	uint64_t base = looked_rx;
	if (c->flags & CONN_KERNEL) {
		/* Its reads are not counted: the kernel's count of what the host
		 * read.  Unknown: nothing was (it never received a byte) or the
		 * base is 0 and the host's first read lets its writes through. */
		base = kernel_read > 0 ? (uint64_t)kernel_read : 0;
		conntab_rw_add_locked(c);
	}
	__atomic_store_n(&c->rx_at_release, (uint32_t)base, __ATOMIC_RELAXED);
	uint8_t f = CONN_MUTED;
	if (out->reason == POL_R_UNUSED || out->reason == POL_R_FIRST_BYTE)
		f |= CONN_EOF_READ;
	__atomic_or_fetch(&c->flags, f, __ATOMIC_RELEASE);
}

/* The kernel's count of what the host read of a CONN_KERNEL connection
 * about to be muted: two system calls, made outside the table lock (the
 * host's close() waits on it).  Only an idle one can have read anything. */
static int64_t mute_kernel_read(uint8_t flags, int fd, const struct pol_out *out)
{
	return (flags & CONN_KERNEL) && out->reason == POL_R_IDLE ? sweeper_tcp_read_bytes(fd) : 0;
}

void unmute(struct conn *c)
{
	__atomic_and_fetch(&c->flags, (uint8_t)~(CONN_MUTED | CONN_EOF_READ), __ATOMIC_RELAXED);
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
	struct stat st;
	struct pol_input in;
	struct pol_out out;
	struct pol_params params = {shim_cfg.policy, shim_cfg.grace_ns, shim_cfg.idle_quiet_ns,
				    shim_cfg.first_byte_timeout_ns};
	int drain = sweeper_draining();
	char peer[64];

	conntab_lock();
	c = ref_find_locked(ref);
	if (!c || (c->flags & CONN_RELEASED)) {
		conntab_unlock();
		return;
	}
	/* Before a trigger only the first-byte timeout can apply, and only to
	 * unused connections: skip the rest without a system call. */
	if (!drain && (conn_rx(c) > 0 || (c->flags & CONN_USED) || !params.first_byte_timeout_ns)) {
		ps->kept++;
		conntab_unlock();
		return;
	}
	/* What the look needs of the record, read under the lock. */
	int fd = c->fd;
	uint8_t flags = __atomic_load_n(&c->flags, __ATOMIC_RELAXED);
	uint8_t family = c->family;
	uint32_t ino = c->ino, accepted_ms = c->accepted_ms;
	__atomic_store_n(&conntab_claimed_fd, fd, __ATOMIC_RELEASE);
	conntab_unlock();

	/* Identity: the fd may have been closed behind our back (fclose, a
	 * raw syscall) and the number reused for something we never accepted. */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != shim_sock_dev() || (uint32_t)st.st_ino != ino) {
		LOG(LOG_DEBUG, "fd %d: stale record (closed or reused behind our back), dropped", fd);
		conntab_lock();
		if ((c = ref_find_locked(ref)))
			conntab_remove_locked(c);
		unclaim();
		conntab_unlock();
		return;
	}
	memset(&in, 0, sizeof in);
	in.rx = conn_rx(c);
	in.kernel_rx = -1;
	in.quiet_ns = -1;
	in.outq = -1;
	/* Not taken: no setting uses the age; as old as the clock. */
	in.age_ns = accepted_ms ? (uint64_t)(uint32_t)(conn_ms(ps->now) - accepted_ms) * 1000000 : ps->now;
	in.shared = !!(flags & CONN_SHARED);
	in.draining = drain;
	in.deadline_passed = drain && shim_cfg.drain_timeout_ns &&
			     ps->now - drain_start_ns >= shim_cfg.drain_timeout_ns;
	uint8_t dir = __atomic_load_n(&c->last_dir, __ATOMIC_RELAXED) & ~CONN_DIR_SEEN;
	/* What the host read of it is a TLS handshake and no more: only if it
	 * read all of it through this record (not shared: a dup or a fork may
	 * read what we never see). */
	bool tcp = family == AF_INET || family == AF_INET6;
	uint32_t tls = tcp ? __atomic_load_n(&c->tls, __ATOMIC_RELAXED) : 0;
	in.no_request = !(flags & CONN_SHARED) && pol_tls_no_request(tls);
	in.multiplexed = pol_tls_multiplexed(tls);
	in.server_last = dir == CONN_DIR_TX ? 1 : dir == CONN_DIR_RX ? 0 : -1;
	if (tcp) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		memset(&ti, 0, sizeof ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
		    len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) {
			in.kernel_rx = (int64_t)ti.tcpi_bytes_received;
			if (in.kernel_rx > 0) /* no need to ask again before a trigger */
				__atomic_or_fetch(&c->flags, CONN_USED, __ATOMIC_RELAXED);
			uint32_t quiet = ti.tcpi_last_data_recv < ti.tcpi_last_data_sent
						 ? ti.tcpi_last_data_recv
						 : ti.tcpi_last_data_sent;
			in.quiet_ns = (int64_t)quiet * 1000000;
			/* Still CONN_FIRST with the classifier not watching: we never
			 * saw what it read (io_uring, a read past our wrappers), so
			 * not whether it may be HTTP/2: who spoke last proves
			 * nothing, as for a counted one whose reads we missed. */
			if (flags & CONN_KERNEL)
				in.server_last = (flags & CONN_FIRST) && !(tls & POL_TLS_WATCHING)
							 ? -1
							 : kernel_server_last(&ti, len);
		}
	} else {
		in.quiet_ns = sampled_quiet(c, ps->now);
	}
	/* Bytes waiting to be read.  A TCP connection the kernel has never
	 * received a byte on has none (nor a FIN): one system call fewer per
	 * connection of a sweep. */
	if (in.kernel_rx == 0) {
		in.queued = 0;
	} else {
		int q = 0;
		in.queued = ioctl(fd, SIOCINQ, &q) < 0 ? -1 : q;
	}
	if (drain && params.policy == POLICY_IDLE && (in.rx > 0 || in.kernel_rx > 0)) {
		int oq = 0;
		in.outq = ioctl(fd, SIOCOUTQ, &oq) < 0 ? -1 : oq;
	}
	pol_decide(&params, &in, &out);
	switch (out.verdict) {
	case POL_RELEASE:
		/* A request can arrive between our look (TCP_INFO, SIOCINQ) and
		 * shutdown(), and this thread can be preempted there.  After
		 * SHUT_RDWR the host would read that request and fail to answer
		 * it (EPIPE): a request read and lost.  SHUT_RD alone makes the
		 * host's read return 0 once nothing is queued (Linux still
		 * delivers bytes that came before that read) and leaves it able
		 * to answer one that slipped in; the host then closes the
		 * connection itself (FIN, or RST for bytes it never read: safe
		 * to resend).  The drain timeout cuts with SHUT_RDWR: it must
		 * also stop a host blocked writing.  (tests/reliability/
		 * test_nolost.c lost such requests under ASan with SHUT_RDWR.) */
		if (out.reason != POL_R_DRAIN_TIMEOUT) {
			int64_t k = mute_kernel_read(flags, fd, &out);
			conntab_lock(); /* mute() may add it to the read/write filter */
			mute(c, &out, in.rx, k);
			conntab_unlock();
		}
		if (shutdown(fd, out.reason == POL_R_DRAIN_TIMEOUT ? SHUT_RDWR : SHUT_RD) == 0 ||
		    errno == ENOTCONN) {
			__atomic_or_fetch(&c->flags, CONN_RELEASED, __ATOMIC_RELAXED);
			ps->released[out.reason]++;
			stats_released(out.reason);
			enum log_level l = out.reason == POL_R_DRAIN_TIMEOUT ? LOG_WARN : LOG_DEBUG;
			if (log_on(l)) {
				log_peer(fd, peer, sizeof peer);
				log_msg(l, "connection %s %s (%s; %llu bytes received, %llu sent, age %llu ms)",
					peer, out.reason == POL_R_DRAIN_TIMEOUT ? "cut" : "shut down",
					pol_reason_name(out.reason),
					(unsigned long long)((flags & CONN_KERNEL) && in.kernel_rx > 0
								     ? (uint64_t)in.kernel_rx
								     : in.rx),
					(unsigned long long)conn_tx(c),
					(unsigned long long)(in.age_ns / 1000000));
			}
		} else {
			unmute(c); /* not released: its writes are the host's as before */
			LOG(LOG_WARN, "shutdown(fd %d) failed: %s", fd, strerror(errno));
		}
		break;
	case POL_WAIT:
		ps->waiting++;
		if (out.wait_ns < ps->next_wait)
			ps->next_wait = out.wait_ns;
		break;
	case POL_KEEP:
		ps->kept++;
		break;
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
#define SAY(...)                                                                           \
	do {                                                                                   \
		int n_ = snprintf(line + o, sizeof line - o, __VA_ARGS__);                        \
		if (n_ > 0)                                                                        \
			o = o + (size_t)n_ < sizeof line ? o + (size_t)n_ : sizeof line - 1;           \
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
			    "first)", ps->waiting, (unsigned long long)((ps->next_wait + 999999) / 1000000));
		else
			SAY("; %u not yet", ps->waiting);
	}
	if (ps->kept)
		SAY("; %u kept (in use: the server's to close)", ps->kept);
#undef SAY
	log_msg(LOG_INFO, "%s: %s", sweeper_draining() ? "drain" : "first_byte_timeout", line);
}

/* One pass over the table.  Returns the time until something may qualify,
 * or UINT64_MAX when nothing is pending. */
uint64_t sweep(void)
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
	if (sweeper_draining() && shim_cfg.drain_timeout_ns) {
		uint64_t end = drain_start_ns + shim_cfg.drain_timeout_ns;
		uint64_t left = end > ps.now ? end - ps.now : 0;
		if (left && left < ps.next_wait)
			ps.next_wait = left;
	}
	return ps.next_wait;
}

/* The release without a sweeper thread.  A single-threaded host gets its
 * sweeper only at its next libc call after the trigger (see
 * sweeper_ensure_started), and a sync worker may make none: gunicorn's sync
 * worker sets SA_RESTART on SIGTERM, so its recv() on the never-used
 * connection is restarted by the kernel after the handler and blocks until
 * the client leaves.  So the release is made here, in our signal handler,
 * when that is safe: the process is single-threaded (no other thread can
 * hold or take the table lock) and the interrupted code is not inside the
 * table (conntab_held_here).  Everything examine() does is a system call
 * (fstat, getsockopt, ioctl, shutdown), a lookup in the table or the pure
 * policy; its log lines are muted here (stdio is not async-signal-safe:
 * log_level_cur is swapped, which no other thread can read meanwhile) and
 * counted, and the sweeper, started at the next libc call, says what was
 * done.  Connections that only qualify later are left to that sweeper. */
static unsigned released_in_handler;
static unsigned released_in_workers; /* by workers_release in the handler */

/* What the handler released, said once by whoever comes first: the
 * sweeper when it starts, or the exit. */
void say_handler_releases(void)
{
	unsigned n = __atomic_exchange_n(&released_in_handler, 0, __ATOMIC_RELAXED);
	if (n)
		LOG(LOG_INFO, "released %u connection(s) in the signal handler (no sweeper thread "
			      "yet)", n);
}

/* n released in the workers, plus what the handler released there. */
void say_worker_releases(unsigned n)
{
	n += __atomic_exchange_n(&released_in_workers, 0, __ATOMIC_RELAXED);
	if (n)
		LOG(LOG_INFO, "released %u connection(s) held by child processes (unused; "
			      "workers that inherited our listeners)", n);
}

void sweeper_release_in_handler(void)
{
	static int busy; /* one at a time: a nested trigger signal returns */
	static struct conn_ref chunk[64];

	if (!__libc_single_threaded || __atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) == 2 ||
	    conntab_held_here || !sweeper_draining() || busy)
		return;
	busy = 1;
	int saved = errno;
	int level = log_level_cur;
	log_level_cur = LOG_OFF;
	struct pass ps;
	memset(&ps, 0, sizeof ps);
	ps.next_wait = UINT64_MAX;
	ps.now = shim_now_ns();
	if (!drain_start_ns)
		drain_start_ns = ps.now; /* the sweeper sets it again when it starts */
	int d = __atomic_load_n(&sweeper_drain, __ATOMIC_ACQUIRE);
	stats_triggered(d == DRAIN_SIGNAL ? __atomic_load_n(&trigger_sig, __ATOMIC_RELAXED) : -1,
			ps.now);
	/* The lock is free: single-threaded, and not held by this thread. */
	examine_in_chunks(chunk, sizeof chunk / sizeof *chunk, &ps);
	/* The workers' connections here only for a master that accepted
	 * nothing itself (gunicorn's, stopped over a pipe): walking a child's
	 * fds costs four system calls each, and a process that serves its own
	 * connections handles their EOFs only once this handler returns; its
	 * sweeper thread, started at its next libc call, walks them instead.
	 * (bench/sweep: 10,000 released in 23 ms, then 70 ms walking its
	 * holder child's 10,000 fds.)  Single-threaded: a plain read. */
	int denied;
	unsigned kids = workers_any() && !conntab_stats.accepted
				? workers_release(shim_cfg.grace_ns / 1000000, &denied)
				: 0;
	__atomic_fetch_add(&released_in_workers, kids, __ATOMIC_RELAXED);
	log_level_cur = level;
	unsigned rel = 0;
	for (size_t i = 0; i < sizeof ps.released / sizeof *ps.released; i++)
		rel += ps.released[i];
	__atomic_fetch_add(&released_in_handler, rel, __ATOMIC_RELAXED);
	errno = saved;
	busy = 0;
}

/* What the handler released and nobody reported yet (the process exits
 * before its next libc call started the sweeper): said at exit. */
__attribute__((destructor)) static void report_handler_releases(void)
{
	if (!proc_own())
		return;
	say_handler_releases();
	say_worker_releases(0);
}
