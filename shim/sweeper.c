/*
 * The sweeper: a thread that sleeps on a pipe until a trigger signal
 * arrives, then walks the connection table and calls shutdown(fd, SHUT_RD)
 * on each connection the policy releases (SHUT_RDWR only at the drain
 * deadline).  shutdown(), never close(): the fd
 * number stays the host's, its pending read returns 0, and the host closes
 * the connection through its own code path.
 *
 * Once triggered the process is draining: connections accepted later, or
 * too young at the signal, are looked at again when they may qualify (the
 * accept path kicks us; otherwise we wake at the next deadline), until the
 * process exits.
 *
 * The thread starts lazily on the first tracked accept, with every signal
 * blocked so that signals reach the application's threads exactly as
 * without us (a sigwait() or signalfd() consumer must not lose them to us).
 */
#include "sweeper.h"

#include "conntab.h"
#include "fdlinks.h"
#include "gate.h"
#include "log.h"
#include "policy.h"
#include "shim.h"
#include "stats.h"
#include "workers.h"

#include <errno.h>
#include <stdio.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/single_threaded.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { DRAIN_NONE, DRAIN_SIGNAL, DRAIN_LISTENER };
/* The wake-up pipe.  A pipe, not an eventfd: every pipe has an inode of its
 * own, so "is this number still our pipe?" has an exact answer (all eventfds
 * share one anonymous inode), and the shim writes to or reads from its own
 * fds only after asking (the host can replace a number behind our wrappers:
 * glibc's freopen() dup3()s internally).  Both ends sit at or above
 * WAKE_FD_BASE when the limit allows, away from 0-2, which a host that
 * closed stdout expects its next open() to get. */
int sweeper_wake_fd = -1;   /* write end; read by the signal handler */
int sweeper_wake_rd = -1;   /* read end; the sweeper sleeps on it */
static uint64_t wake_ino, wake_dev; /* the pipe's identity */
#define WAKE_FD_BASE 64
#define WAKE_POLL_MS 1000 /* the longest sleep (see wake()) */
int sweeper_drain;          /* DRAIN_*: set by the handler or the listener trigger */
static int trigger_sig;     /* the signal that started the drain */
int sweeper_started;        /* 0 no, 2 started (or failed for good) */
int sweeper_deferred;       /* needed, but waits for work (single-threaded host) */
static int wants_kick;      /* the sweeper sleeps with no deadline */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER; /* guards thread creation */
static uint64_t drain_start_ns; /* sweeper only */

/* Whether fd is still the wake-up pipe (async-signal-safe: one fstat). */
static bool wake_fd_ours(int fd)
{
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
	       (uint64_t)st.st_ino == __atomic_load_n(&wake_ino, __ATOMIC_ACQUIRE) &&
	       (uint64_t)st.st_dev == __atomic_load_n(&wake_dev, __ATOMIC_ACQUIRE);
}

/* Async-signal-safe.  A deferred sweeper is started by the next wrapper.
 * errno-neutral: called from wrappers that leave errno as the host's call
 * left it, and from the signal handler.  A number that is no longer our
 * pipe is never written: the sweeper, which also wakes on its own at least
 * every WAKE_POLL_MS, then sees the drain flag and makes a new pipe. */
static void wake(void)
{
	uint64_t one = 1;
	int fd = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0) {
		int saved = errno;
		if (wake_fd_ours(fd))
			real_syscall(SYS_write, fd, &one, 1); /* EAGAIN: already awake */
		errno = saved;
	} else if (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE)) {
		gate_close();
	}
	(void)one;
}

void sweeper_signal(int sig)
{
	int expect = 0;
	__atomic_compare_exchange_n(&trigger_sig, &expect, sig, 0, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_drain, DRAIN_SIGNAL, __ATOMIC_RELEASE);
	wake();
}

void sweeper_listener_closed(void)
{
	int expect = DRAIN_NONE;
	if (__atomic_compare_exchange_n(&sweeper_drain, &expect, DRAIN_LISTENER, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		wake();
}

void sweeper_listening(void)
{
	int expect = DRAIN_LISTENER;
	if (__atomic_compare_exchange_n(&sweeper_drain, &expect, DRAIN_NONE, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		LOG(LOG_INFO, "listening again: the drain started by closing the last listener ends");
		wake();
	}
}


void sweeper_accepted_slow(void)
{
	sweeper_ensure_started();
	/* While draining every new connection is looked at; with a first-byte
	 * timeout only a sweeper asleep without deadline needs telling (later
	 * connections have later deadlines than the one it waits for). */
	if (sweeper_draining() ||
	    (shim_cfg.first_byte_timeout_ns && __atomic_exchange_n(&wants_kick, 0, __ATOMIC_ACQ_REL)))
		wake();
}

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
		/* atomic: the read path looks at this word (as c->tls) */
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
static void mute(struct conn *c, const struct pol_out *out, uint64_t looked_rx, int64_t kernel_read)
{
	uint64_t base = looked_rx;
	if (c->flags & CONN_KERNEL) {
		/* Its reads are not counted: the kernel's count of what the host
		 * read.  Unknown: nothing was (it never received a byte) or the
		 * base is 0 and the host's first read lets its writes through. */
		base = kernel_read > 0 ? (uint64_t)kernel_read : 0;
		conntab_rw_add_locked(c);
	}
	/* The word is c->tls too, which a reading thread may store to. */
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

static void unmute(struct conn *c)
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
	uint32_t tls = tcp && !(flags & CONN_KERNEL) ? __atomic_load_n(&c->tls, __ATOMIC_RELAXED) : 0;
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
					pol_reason_name(out.reason), (unsigned long long)in.rx,
					(unsigned long long)conn_tx(c),
					(unsigned long long)(in.age_ns / 1000000));
			}
		} else {
			unmute(c); /* not released: its writes are the host's as before */
			/* rx_at_release shared its place: restart the clock, stop
			 * the TLS watch (both start again from nothing) */
			__atomic_store_n(&c->sample_ms, 0, __ATOMIC_RELAXED);
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

/* Sockets this process accepted without libc's accept (Go, io_uring, raw
 * system calls): established TCP sockets whose local port is the port of
 * one of the process's listening sockets, and that the table does not know.
 * Read at the first drain (sweeper thread only): the fd links give the
 * socket inodes; each socket is then asked its state and port with raw
 * system calls (a look: nothing is changed, and the answer of a number the
 * host is closing meanwhile is checked again).  A socket the host is
 * closing (its record is forgotten just before the real close) is not
 * counted: a candidate must still be there, unknown, 100 ms later.
 * (/proc/net/tcp would avoid asking the fds, but lists every socket of the
 * network namespace: 130,000 lines on a busy machine.) */
struct sock_fd {
	int fd;
	unsigned long ino;
};

/* The process's socket fds with their inodes, from /proc/self/fd, read
 * with raw system calls (no stdio, no fd of ours that a sanitizer would
 * see racing the host's); *uring is set when one fd is an io_uring. */
struct socket_walk {
	struct sock_fd *out;
	size_t n, max;
	int *uring;
};

static void socket_fd(int fd, const char *target, void *ctx)
{
	struct socket_walk *w = ctx;
	unsigned long ino;
	if (strstr(target, "io_uring"))
		*w->uring = 1;
	else if (w->n < w->max && sscanf(target, "socket:[%lu]", &ino) == 1)
		w->out[w->n++] = (struct sock_fd){fd, ino};
}

static size_t socket_fds(struct sock_fd *out, size_t max, int *uring)
{
	struct socket_walk w = {out, 0, max, uring};
	fdlinks_each("/proc/self/fd", socket_fd, &w);
	return w.n;
}

static bool known_to_table(const struct sock_fd *s)
{
	conntab_lock();
	struct conn *c = conntab_find_locked(s->fd);
	bool known = c && c->ino == (uint32_t)s->ino;
	conntab_unlock();
	return known;
}

/* TCP state and local port of a socket fd: 'L' listening, 'E' established,
 * 0 anything else. */
static char tcp_look(int fd, unsigned *port)
{
	int v = 0;
	socklen_t l = sizeof v;
	if (real_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 || v != IPPROTO_TCP)
		return 0;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (real_syscall(SYS_getsockname, fd, &ss, &sl) < 0)
		return 0;
	*port = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					 : ((struct sockaddr_in *)&ss)->sin_port;
	l = sizeof v;
	if (real_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0)
		return 0;
	if (v)
		return 'L';
	struct tcp_info ti;
	l = sizeof ti;
	if (real_syscall(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0)
		return 0;
	return ti.tcpi_state == 1 /* TCP_ESTABLISHED */ ? 'E' : 0;
}

static unsigned count_unseen_accepted(int *uring)
{
	enum { MAXS = 4096, MAXP = 64, MAXC = 64 };
	struct sock_fd *socks = malloc(MAXS * sizeof *socks);
	unsigned ports[MAXP], np = 0, unseen = 0;
	struct sock_fd cand[MAXC];
	unsigned cport[MAXC];
	size_t nc = 0;
	if (!socks)
		return 0;
	size_t ns = socket_fds(socks, MAXS, uring);
	/* The connections we know first, with no system call and one lock per
	 * chunk: this runs while the host handles the EOFs of the drain, and
	 * its close() takes the same lock. */
	size_t left = 0;
	for (size_t i = 0; i < ns; i += 256) {
		conntab_lock();
		for (size_t j = i; j < ns && j < i + 256; j++) {
			struct conn *c = conntab_find_locked(socks[j].fd);
			if (!c || c->ino != (uint32_t)socks[j].ino)
				socks[left++] = socks[j];
		}
		conntab_unlock();
	}
	ns = left;
	for (size_t i = 0; i < ns; i++) {
		unsigned port = 0;
		char k = tcp_look(socks[i].fd, &port);
		if (k == 'L' && np < MAXP)
			ports[np++] = port;
		else if (k == 'E' && nc < MAXC && !known_to_table(&socks[i])) {
			cport[nc] = port;
			cand[nc++] = socks[i];
		}
	}
	size_t keep = 0;
	for (size_t i = 0; i < nc; i++) {
		bool on_listener = false;
		for (unsigned j = 0; j < np; j++)
			on_listener |= ports[j] == cport[i];
		if (on_listener)
			cand[keep++] = cand[i];
	}
	if (keep) {
		struct timespec pause = {0, 100000000};
		nanosleep(&pause, NULL);
		size_t ns2 = socket_fds(socks, MAXS, uring);
		for (size_t i = 0; i < keep; i++)
			for (size_t k = 0; k < ns2; k++)
				if (socks[k].fd == cand[i].fd && socks[k].ino == cand[i].ino &&
				    !known_to_table(&socks[k])) {
					unseen++;
					break;
				}
	}
	free(socks);
	return unseen;
}

/* What the shim cannot see, said once at the first drain, and only on
 * evidence (a server that simply never accepted anything gets no line it
 * would not print without us): an io_uring instance in the process, or
 * connections it accepted without libc's accept(). */
static void warn_blind_spots(void)
{
	static int warned;
	int uring = 0;

	if (warned++)
		return;
	unsigned unseen = count_unseen_accepted(&uring);
	if (uring)
		LOG(LOG_WARN, "this process uses io_uring: connections it accepts or reads there "
			      "bypass libc and graceshim cannot see them");
	if (unseen)
		LOG(LOG_WARN, "%u connection(s) of this process were accepted without libc's "
			      "accept()/accept4() (io_uring, raw system calls, a Go runtime): "
			      "graceshim cannot release them; the server's own timeouts apply",
		    unseen);
}

/* ---- a worker blocked on a never-used connection -----------------------
 * A sync worker (one connection at a time, blocking reads: gunicorn's
 * default) that accepted a browser's preconnected socket blocks in recv()
 * on it while the real request waits in the listener's queue, until the
 * worker timeout kills the worker.  Released here, at any time (not only
 * at a graceful stop), when all of these hold: a thread is in a read of it
 * that may block (conntab_blocked, set around the read by the wrappers); it
 * never received a byte (our count, and the kernel's); nothing is queued;
 * it is at least GRACESHIM_UNBLOCK_AFTER old (the kernel's time since it
 * last received data: for one that never did, since it was established);
 * and a listener of this process has connections waiting to be accepted.
 * Nothing waits: nothing is released, exactly as without the shim.  As at
 * a graceful stop: SHUT_RD, nothing written (the browser resends on
 * another connection). */
int sweeper_blocked_readers; /* set by the wrappers: someone may be blocked */
static void spawn(void);
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
		struct stat st;
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		/* The listener's identity first: the number may be another fd now. */
		if (fstat(fds[i], &st) < 0 || (uint32_t)st.st_ino != inos[i])
			continue;
		memset(&ti, 0, sizeof ti);
		/* For a listening socket the kernel reports its accept queue's
		 * length in tcpi_unacked. */
		if (getsockopt(fds[i], IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
		    ti.tcpi_state == 10 /* TCP_LISTEN */ && ti.tcpi_unacked > 0)
			return true;
	}
	return false;
}

static uint64_t unblock_pass(void)
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
		if (!c || c->gen != refs[i].gen || (c->flags & CONN_RELEASED) || conn_rx(c) != 0) {
			conntab_unlock();
			continue;
		}
		any = true;
		struct stat st;
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		int q = -1;
		memset(&ti, 0, sizeof ti);
		bool ok = fstat(c->fd, &st) == 0 && (uint64_t)st.st_dev == shim_sock_dev() &&
			  (uint32_t)st.st_ino == c->ino &&
			  getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
			  len >= offsetof(struct tcp_info, tcpi_bytes_received) +
					 sizeof ti.tcpi_bytes_received &&
			  ti.tcpi_state == 1 /* TCP_ESTABLISHED */ && ti.tcpi_bytes_received == 0 &&
			  ti.tcpi_last_data_recv >= shim_cfg.unblock_after_ns / 1000000 &&
			  ioctl(c->fd, SIOCINQ, &q) == 0 && q == 0;
		if (ok && !asked) {
			asked = true; /* once per pass, and only if something could go */
			conntab_unlock();
			waiting = clients_waiting();
			conntab_lock();
			c = conntab_find_locked(refs[i].fd);
			ok = c && c->gen == refs[i].gen &&
			     __atomic_load_n(&conntab_blocked[refs[i].fd], __ATOMIC_RELAXED) == c->gen;
		}
		if (ok && waiting) {
			struct pol_out out = {POL_RELEASE, POL_R_UNUSED, 0};
			mute(c, &out, 0, 0); /* looked at: it had read nothing */
			if (shutdown(c->fd, SHUT_RD) == 0 || errno == ENOTCONN) {
				__atomic_or_fetch(&c->flags, CONN_RELEASED, __ATOMIC_RELAXED);
				stats_unblocked();
				if (log_on(LOG_INFO)) {
					char peer[64];
					log_peer(c->fd, peer, sizeof peer);
					log_msg(LOG_INFO, "connection %s released: it never sent a byte in %u ms "
							  "while a thread waited on it and clients waited to be "
							  "accepted", peer, ti.tcpi_last_data_recv);
				}
			} else {
				unmute(c);
			}
		}
		conntab_unlock();
	}
	free(refs);
	if (!any) {
		int one = 1;
		__atomic_compare_exchange_n(&sweeper_blocked_readers, &one, 0, 0, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
		return UINT64_MAX;
	}
	return UNBLOCK_EVERY_NS;
}

/* A read that may block on a never-used connection is about to begin, in a
 * process whose sweeper may not be running (a single-threaded host): start
 * it now, and have it watch.  Not from a signal handler of ours. */
void sweeper_watch_blocked(void)
{
	if (!__atomic_exchange_n(&sweeper_blocked_readers, 1, __ATOMIC_ACQ_REL) ||
	    __atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) != 2) {
		if (__atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) != 2 && !shim_in_handler())
			spawn();
		wake();
	}
}

/* One pass over the table.  Returns the time until something may qualify,
 * or UINT64_MAX when nothing is pending. */
static uint64_t sweep(void)
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
	if (rel || ps.released[POL_R_DRAIN_TIMEOUT])
		LOG(LOG_INFO, "%s: released %u connection(s) (never used %u, idle %u, no first byte "
			      "%u), cut %u at the drain timeout; %u may qualify later, %u kept",
		    sweeper_draining() ? "drain" : "first-byte timeout", rel,
		    ps.released[POL_R_UNUSED], ps.released[POL_R_IDLE], ps.released[POL_R_FIRST_BYTE],
		    ps.released[POL_R_DRAIN_TIMEOUT], ps.waiting, ps.kept);
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
static void say_handler_releases(void)
{
	unsigned n = __atomic_exchange_n(&released_in_handler, 0, __ATOMIC_RELAXED);
	if (n)
		LOG(LOG_INFO, "released %u connection(s) in the signal handler (no sweeper thread "
			      "yet)", n);
}

/* n released in the workers, plus what the handler released there. */
static void say_worker_releases(unsigned n)
{
	n += __atomic_exchange_n(&released_in_workers, 0, __ATOMIC_RELAXED);
	if (n)
		LOG(LOG_INFO, "released %u never-used connection(s) held by child processes "
			      "(workers that inherited our listeners)", n);
}

/* The workers' part of a drain pass (sweeper thread): for the first
 * WORKERS_WINDOW_NS of a drain, every WORKERS_EVERY_NS, since a worker may
 * accept a connection after the trigger until it closes its listeners, and
 * a young one qualifies only after the grace.  Returns the longest the
 * sweeper may sleep. */
#define WORKERS_WINDOW_NS (10 * 1000000000ull)
#define WORKERS_EVERY_NS (250 * 1000000ull)
static uint64_t workers_pass(uint64_t now)
{
	static int told_denied;
	if (!workers_any() || now - drain_start_ns > WORKERS_WINDOW_NS)
		return UINT64_MAX;
	int denied = 0;
	say_worker_releases(workers_release(shim_cfg.grace_ns / 1000000, &denied));
	if (denied && !told_denied++)
		LOG(LOG_INFO, "cannot reach the connections of some child processes (pidfd_getfd: "
			      "Linux 5.6 or later and ptrace permission over the child are needed); "
			      "they drain only if they get a trigger of their own");
	return WORKERS_EVERY_NS;
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

static int poll_ms(uint64_t wait_ns)
{
	if (wait_ns == UINT64_MAX)
		return -1;
	uint64_t ms = (wait_ns + 999999) / 1000000;
	return ms > 60000 ? 60000 : (int)ms;
}

static void wake_replace(void);

static void *sweeper_main(void *arg)
{
	(void)arg;
	int announced = 0;
	/* Before a trigger, first-byte timeouts are checked in batches: a
	 * deadline is met within an eighth of the timeout (50 ms to 1 s), and
	 * the table is not walked for every single connection's deadline. */
	uint64_t batch = shim_cfg.first_byte_timeout_ns / 8;
	batch = batch < 50000000 ? 50000000 : batch > 1000000000 ? 1000000000 : batch;

	for (;;) {
		int d = __atomic_load_n(&sweeper_drain, __ATOMIC_ACQUIRE);
		if (d != announced) {
			/* A new drain (or a listener drain ended by a new listen). */
			announced = d;
			drain_start_ns = shim_now_ns();
			int sig = d == DRAIN_SIGNAL ? __atomic_load_n(&trigger_sig, __ATOMIC_RELAXED) : -1;
			if (d)
				stats_triggered(sig, drain_start_ns);
			if (d && log_on(LOG_INFO)) {
				const char *n = cfg_signal_name(sig);
				conntab_lock();
				size_t count = conntab_count_locked();
				conntab_unlock();
				if (d == DRAIN_SIGNAL)
					log_msg(LOG_INFO, "SIG%s received: draining, %zu tracked connection(s)",
						n ? n : "?", count);
				else
					log_msg(LOG_INFO, "last listening socket closed: draining, %zu tracked "
							  "connection(s)", count);
				say_handler_releases();
			}
		}
		/* Ask to be kicked before looking: an accept that lands after
		 * our look still wakes us. */
		__atomic_store_n(&wants_kick, 1, __ATOMIC_RELEASE);
		uint64_t next_wait = UINT64_MAX;
		if (sweeper_draining()) {
			next_wait = sweep();
			uint64_t w = workers_pass(shim_now_ns());
			if (w < next_wait)
				next_wait = w;
			warn_blind_spots(); /* after the first pass: it reads /proc */
		} else if (shim_cfg.first_byte_timeout_ns) {
			next_wait = sweep();
			if (next_wait < batch)
				next_wait = batch;
		}
		if (shim_cfg.unblock_after_ns &&
		    __atomic_load_n(&sweeper_blocked_readers, __ATOMIC_ACQUIRE)) {
			uint64_t w = unblock_pass();
			if (w < next_wait)
				next_wait = w;
		}
		/* A deadline ahead: later connections have later deadlines. */
		if (next_wait != UINT64_MAX)
			__atomic_store_n(&wants_kick, 0, __ATOMIC_RELEASE);
		int rd = __atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE);
		if (rd < 0 || !wake_fd_ours(rd) ||
		    !wake_fd_ours(__atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE))) {
			/* The host closed or replaced an end of our pipe (closefrom,
			 * close_range, dup2 onto its number, or behind our wrappers):
			 * those numbers are the host's now.  Give up both (closing
			 * only an end still ours) and make a new pipe. */
			wake_replace();
			/* Look again before sleeping: a trigger that came while
			 * there was no pipe found nothing to write to, and only the
			 * drain flag it set tells of it. */
			if (__atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE) >= 0)
				continue;
			rd = -1;
		}
		/* Without a pipe we cannot be woken: poll the table. */
		if (rd < 0 && next_wait > 100000000)
			next_wait = 100000000;
		/* Never sleep longer than WAKE_POLL_MS: a wake-up that found its
		 * number taken by the host was not written (see wake()). */
		if (next_wait > WAKE_POLL_MS * 1000000ull)
			next_wait = WAKE_POLL_MS * 1000000ull;

		struct pollfd p = {.fd = rd, .events = POLLIN};
		int r = REAL(poll)(&p, 1, poll_ms(next_wait));
		if (r > 0 && (p.revents & POLLIN)) {
			/* Read only while the number is still ours: the host's close
			 * paths give it up under the same lock before closing. */
			conntab_lock();
			if (__atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE) == rd && wake_fd_ours(rd)) {
				char buf[64];
				real_syscall(SYS_read, rd, buf, sizeof buf);
			}
			conntab_unlock();
		}
	}
	return NULL;
}

/* Moves a fresh fd of ours to WAKE_FD_BASE or above (see above); the
 * original number is closed.  Returns the fd to use. */
static int wake_fd_high(int fd)
{
	int hi = (int)real_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, WAKE_FD_BASE); /* not our fcntl() */
	if (hi < 0)
		return fd; /* a low limit: keep the number we have */
	real_syscall(SYS_close, fd);
	return hi;
}

/* Makes the wake-up pipe; false if it cannot. */
static bool wake_make(void)
{
	int p[2];
	struct stat st;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return false;
	p[0] = wake_fd_high(p[0]);
	p[1] = wake_fd_high(p[1]);
	if (fstat(p[0], &st) < 0) {
		real_syscall(SYS_close, p[0]);
		real_syscall(SYS_close, p[1]);
		return false;
	}
	conntab_lock();
	__atomic_store_n(&wake_ino, (uint64_t)st.st_ino, __ATOMIC_RELEASE);
	__atomic_store_n(&wake_dev, (uint64_t)st.st_dev, __ATOMIC_RELEASE);
	__atomic_store_n(&sweeper_wake_rd, p[0], __ATOMIC_RELEASE);
	__atomic_store_n(&sweeper_wake_fd, p[1], __ATOMIC_RELEASE);
	conntab_unlock();
	return true;
}

/* Gives up both numbers of the pipe, closing each end that is still ours. */
static void wake_give_up(void)
{
	int rd = __atomic_exchange_n(&sweeper_wake_rd, -1, __ATOMIC_ACQ_REL);
	int wr = __atomic_exchange_n(&sweeper_wake_fd, -1, __ATOMIC_ACQ_REL);
	if (rd >= 0 && wake_fd_ours(rd))
		real_syscall(SYS_close, rd);
	if (wr >= 0 && wake_fd_ours(wr))
		real_syscall(SYS_close, wr);
}

/* Gives up the pipe and makes a new one.  Sweeper thread only. */
static void wake_replace(void)
{
	conntab_lock();
	wake_give_up();
	conntab_unlock();
	bool ok = wake_make();
	LOG(LOG_INFO, "internal pipe was closed or replaced by the host; %s",
	    ok ? "made a new one" : "cannot make a new one, polling");
}

/* Starts the thread (start_mu held). */
static void spawn_locked(void)
{
	if (!wake_make()) {
		LOG(LOG_ERROR, "pipe: %s; shutdown signals will not release connections",
		    strerror(errno));
	} else {
		pthread_attr_t attr;
		pthread_t th;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 64 * 1024);
		/* Signals are blocked (spawn): the thread starts with all blocked. */
		int rc = pthread_create(&th, &attr, sweeper_main, NULL);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			LOG(LOG_ERROR, "cannot start the sweeper thread: %s", strerror(rc));
			conntab_lock();
			int rd = __atomic_exchange_n(&sweeper_wake_rd, -1, __ATOMIC_ACQ_REL);
			int wr = __atomic_exchange_n(&sweeper_wake_fd, -1, __ATOMIC_ACQ_REL);
			conntab_unlock();
			real_syscall(SYS_close, rd);
			real_syscall(SYS_close, wr);
		} else {
			pthread_setname_np(th, "graceshim");
		}
	}
	/* Started or failed for good: do not retry on every accept. */
	__atomic_store_n(&sweeper_deferred, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&sweeper_started, 2, __ATOMIC_RELEASE);
}

/* Every signal blocked throughout (two system calls, once per process): a
 * handler that ran inside would find start_mu held by its own thread if it
 * called a wrapper that starts the sweeper (a non-trigger signal's handler
 * calling sigaction(), while fork() was starting it: seen in
 * fork::fork_loop_under_sigint_and_sigusr1_storm), or would deadlock in
 * malloc's locks if it forked while pthread_create allocates.  The thread
 * inherits the full mask, which it keeps. */
static void spawn(void)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&start_mu);
	if (__atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) != 2)
		spawn_locked();
	pthread_mutex_unlock(&start_mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (sweeper_draining())
		wake();
}

/* A second thread costs a single-threaded host on every system call: glibc
 * then takes its multi-threaded paths (two lock-prefixed instructions and
 * some fifty more per read, recv, send, accept, close).  So in a
 * single-threaded host the sweeper waits until it has work: the trigger
 * closes REAL()'s fast path, and the next wrapper call, in a normal context,
 * starts it (sweeper_hook).  The first-byte timeout needs it from the start. */
void sweeper_ensure_started(void)
{
	if (__builtin_expect(__atomic_load_n(&sweeper_started, __ATOMIC_ACQUIRE) == 2 ||
				     (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE) &&
				      __libc_single_threaded),
			     1))
		return;
	if (__libc_single_threaded && !shim_cfg.first_byte_timeout_ns && !sweeper_draining()) {
		__atomic_store_n(&sweeper_deferred, 1, __ATOMIC_RELEASE);
		return;
	}
	spawn();
}

void sweeper_hook(void)
{
	if (!proc_own())
		return; /* a vfork child: nothing is started there */
	if (shim_in_handler())
		return; /* the fast path stays closed: the next call starts it */
	if (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE) && sweeper_draining())
		spawn();
	gate_open();
}

/* The host is about to close or replace fds lo..hi.  If an end of our pipe
 * is among them, both numbers are given up first (under the table lock,
 * which the sweeper takes to read): the host's fd that takes a number must
 * never be read or written by us.  Before that, one byte wakes the sweeper
 * (the write end is ours until the host's call), and the end the host does
 * not close is closed here; the sweeper then makes a new pipe. */
void sweeper_fds_closing_slow(unsigned lo, unsigned hi)
{
	int wr = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE);
	int rd = __atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE);
	bool wr_in = wr >= 0 && (unsigned)wr >= lo && (unsigned)wr <= hi;
	bool rd_in = rd >= 0 && (unsigned)rd >= lo && (unsigned)rd <= hi;
	if ((!wr_in && !rd_in) || !proc_own())
		return; /* (a vfork child closes its own copy of the number) */
	/* Without the lock only when a signal handler runs this on a thread
	 * inside the table: the numbers are still ours until the host's call. */
	bool locked = conntab_lock_unless_held();
	if (__atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE) == wr &&
	    __atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE) == rd) {
		uint64_t one = 1;
		int saved = errno;
		if (wr >= 0 && wake_fd_ours(wr))
			real_syscall(SYS_write, wr, &one, 1);
		__atomic_store_n(&sweeper_wake_fd, -1, __ATOMIC_RELEASE);
		__atomic_store_n(&sweeper_wake_rd, -1, __ATOMIC_RELEASE);
		if (wr >= 0 && !wr_in && wake_fd_ours(wr))
			real_syscall(SYS_close, wr);
		if (rd >= 0 && !rd_in && wake_fd_ours(rd))
			real_syscall(SYS_close, rd);
		errno = saved;
	}
	if (locked)
		conntab_unlock();
}

void sweeper_after_fork_child(void)
{
	/* The child has no sweeper thread; the pipe's copies are ours to close
	 * (while they are still ours). It is a new process: the parent's drain
	 * is not its drain. */
	wake_give_up();
	pthread_mutex_init(&start_mu, NULL);
	__atomic_store_n(&sweeper_started, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_deferred, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&wants_kick, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_drain, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&trigger_sig, 0, __ATOMIC_RELAXED);
}
