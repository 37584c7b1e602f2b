/*
 * The sweeper: a thread that sleeps on an eventfd until a trigger signal
 * arrives, then walks the connection table and calls shutdown(fd, SHUT_RDWR)
 * on each connection the policy releases.  shutdown(), never close(): the fd
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
#include "log.h"
#include "policy.h"
#include "real.h"
#include "shim.h"
#include "signals.h"
#include "stats.h"

#include <dirent.h>
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
#include <sys/eventfd.h>
#include <sys/single_threaded.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { DRAIN_NONE, DRAIN_SIGNAL, DRAIN_LISTENER };
int sweeper_wake_fd = -1;   /* eventfd; read by the signal handler */
int sweeper_drain;          /* DRAIN_*: set by the handler or the listener trigger */
static int trigger_sig;     /* the signal that started the drain */
int sweeper_started;        /* 0 no, 2 started (or failed for good) */
int sweeper_deferred;       /* needed, but waits for work (single-threaded host) */
static int wants_kick;      /* the sweeper sleeps with no deadline */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER; /* guards thread creation */
static uint64_t drain_start_ns; /* sweeper only */

/* Async-signal-safe.  A deferred sweeper is started by the next wrapper. */
/* errno-neutral: called from wrappers that leave errno as the host's call
 * left it, and from the signal handler. */
static void wake(void)
{
	uint64_t one = 1;
	int fd = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0) {
		int saved = errno;
		syscall(SYS_write, fd, &one, sizeof one); /* EAGAIN: already awake */
		errno = saved;
	} else if (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE)) {
		real_close_fast();
	}
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
static void mute(struct conn *c, const struct pol_out *out)
{
	uint64_t base = conn_rx(c);
	if (c->flags & CONN_KERNEL) {
		/* Its reads are not counted: the kernel's count of what the host
		 * read.  Unknown: nothing was (it never received a byte) or the
		 * base is 0 and the host's first read lets its writes through. */
		int64_t k = out->reason == POL_R_IDLE ? sweeper_tcp_read_bytes(c->fd) : 0;
		base = k > 0 ? (uint64_t)k : 0;
		conntab_rw_add_locked(c);
	}
	/* The word is c->tls too, which a reading thread may store to. */
	__atomic_store_n(&c->rx_at_release, (uint32_t)base, __ATOMIC_RELAXED);
	uint8_t f = CONN_MUTED;
	if (out->reason == POL_R_UNUSED || out->reason == POL_R_FIRST_BYTE)
		f |= CONN_EOF_READ;
	__atomic_or_fetch(&c->flags, f, __ATOMIC_RELEASE);
}

static void unmute(struct conn *c)
{
	__atomic_and_fetch(&c->flags, (uint8_t)~(CONN_MUTED | CONN_EOF_READ), __ATOMIC_RELAXED);
}

/* Looks at one connection under the table lock.  Holding the lock keeps
 * the fd number from being closed and reused under us: the close path
 * forgets a record (taking this lock) before it closes. */
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
	c = conntab_find_locked(ref->fd);
	if (!c || c->gen != ref->gen || (c->flags & CONN_RELEASED)) {
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
	/* Identity: the fd may have been closed behind our back (fclose, a
	 * raw syscall) and the number reused for something we never accepted. */
	if (fstat(c->fd, &st) < 0 || (uint64_t)st.st_dev != shim_sock_dev() ||
	    (uint32_t)st.st_ino != c->ino) {
		LOG(LOG_DEBUG, "fd %d: stale record (closed or reused behind our back), dropped", c->fd);
		conntab_remove_locked(c);
		conntab_unlock();
		return;
	}
	memset(&in, 0, sizeof in);
	in.rx = conn_rx(c);
	in.kernel_rx = -1;
	in.quiet_ns = -1;
	in.outq = -1;
	/* Not taken: no setting uses the age; as old as the clock. */
	in.age_ns = c->accepted_ms ? (uint64_t)(uint32_t)(conn_ms(ps->now) - c->accepted_ms) * 1000000
				   : ps->now;
	in.shared = !!(c->flags & CONN_SHARED);
	in.draining = drain;
	in.deadline_passed = drain && shim_cfg.drain_timeout_ns &&
			     ps->now - drain_start_ns >= shim_cfg.drain_timeout_ns;
	uint8_t dir = __atomic_load_n(&c->last_dir, __ATOMIC_RELAXED) & ~CONN_DIR_SEEN;
	/* What the host read of it is a TLS handshake and no more: only if it
	 * read all of it through this record (not shared: a dup or a fork may
	 * read what we never see). */
	bool watched = (c->family == AF_INET || c->family == AF_INET6) && !(c->flags & CONN_KERNEL);
	uint32_t tls = watched ? __atomic_load_n(&c->tls, __ATOMIC_RELAXED) : 0;
	in.no_request = !(c->flags & CONN_SHARED) && pol_tls_no_request(tls);
	in.multiplexed = pol_tls_multiplexed(tls);
	in.server_last = dir == CONN_DIR_TX ? 1 : dir == CONN_DIR_RX ? 0 : -1;
	if (c->family == AF_INET || c->family == AF_INET6) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		memset(&ti, 0, sizeof ti);
		if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
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
		in.queued = ioctl(c->fd, SIOCINQ, &q) < 0 ? -1 : q;
	}
	if (drain && params.policy == POLICY_IDLE && (in.rx > 0 || in.kernel_rx > 0)) {
		int oq = 0;
		in.outq = ioctl(c->fd, SIOCOUTQ, &oq) < 0 ? -1 : oq;
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
		if (out.reason != POL_R_DRAIN_TIMEOUT)
			mute(c, &out);
		if (shutdown(c->fd, out.reason == POL_R_DRAIN_TIMEOUT ? SHUT_RDWR : SHUT_RD) == 0 ||
		    errno == ENOTCONN) {
			__atomic_or_fetch(&c->flags, CONN_RELEASED, __ATOMIC_RELAXED);
			ps->released[out.reason]++;
			stats_released(out.reason);
			enum log_level l = out.reason == POL_R_DRAIN_TIMEOUT ? LOG_WARN : LOG_DEBUG;
			if (log_on(l)) {
				log_peer(c->fd, peer, sizeof peer);
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
			LOG(LOG_WARN, "shutdown(fd %d) failed: %s", c->fd, strerror(errno));
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
	conntab_unlock();
}

/* What the shim cannot see, said once at the first drain: a process that
 * never accepted through libc (io_uring, raw system calls) has no records. */
static void warn_blind_spots(void)
{
	static int warned;
	DIR *d;
	struct dirent *e;
	int uring = 0;
	char path[300], target[64];

	if (warned++)
		return;
	conntab_lock();
	uint64_t accepted = conntab_stats.accepted;
	conntab_unlock();
	if (accepted || __atomic_load_n(&shim_forked, __ATOMIC_RELAXED))
		return; /* it accepts through libc, or its children do (pre-fork) */
	if ((d = opendir("/proc/self/fd"))) {
		while ((e = readdir(d)) && !uring) {
			snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
			ssize_t n = readlink(path, target, sizeof target - 1);
			if (n > 0) {
				target[n] = 0;
				uring = strstr(target, "io_uring") != NULL;
			}
		}
		closedir(d);
	}
	if (uring)
		LOG(LOG_WARN, "this process uses io_uring: connections it accepts or reads there "
			      "bypass libc and graceshim cannot see them");
	LOG(LOG_WARN, "no connection was accepted through libc's accept()/accept4() in this "
			      "process: if it accepts with io_uring or raw system calls, or is statically "
			      "linked, graceshim cannot help it");
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
		for (size_t done = 0;;) {
			conntab_lock();
			size_t k = conntab_refs_from_locked(chunk, sizeof chunk / sizeof *chunk, done);
			conntab_unlock();
			for (size_t i = 0; i < k; i++)
				examine(&chunk[i], &ps);
			done += k;
			if (k < sizeof chunk / sizeof *chunk)
				break;
		}
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

static int poll_ms(uint64_t wait_ns)
{
	if (wait_ns == UINT64_MAX)
		return -1;
	uint64_t ms = (wait_ns + 999999) / 1000000;
	return ms > 60000 ? 60000 : (int)ms;
}

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
			}
		}
		/* Ask to be kicked before looking: an accept that lands after
		 * our look still wakes us. */
		__atomic_store_n(&wants_kick, 1, __ATOMIC_RELEASE);
		uint64_t next_wait = UINT64_MAX;
		if (sweeper_draining()) {
			next_wait = sweep();
			warn_blind_spots(); /* after the first pass: it reads /proc */
		} else if (shim_cfg.first_byte_timeout_ns) {
			next_wait = sweep();
			if (next_wait < batch)
				next_wait = batch;
		}
		/* A deadline ahead: later connections have later deadlines. */
		if (next_wait != UINT64_MAX)
			__atomic_store_n(&wants_kick, 0, __ATOMIC_RELEASE);
		int fd = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE);
		if (fd < 0) {
			/* The host closed or replaced our eventfd (closefrom,
			 * close_range, dup2 onto its number): that number is the
			 * host's now; make a new one and never touch the old. */
			int nfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			LOG(LOG_INFO, "internal eventfd was closed by the host; %s",
			    nfd >= 0 ? "recreated" : "cannot recreate, polling");
			if (nfd >= 0) {
				conntab_lock();
				__atomic_store_n(&sweeper_wake_fd, nfd, __ATOMIC_RELEASE);
				conntab_unlock();
				/* Look again before sleeping: a trigger that came while
				 * there was no eventfd found nothing to write to, and
				 * only the drain flag it set tells of it. */
				continue;
			}
			fd = nfd;
		}
		/* Without an eventfd we cannot be woken: poll the table. */
		if (fd < 0 && next_wait > 100000000)
			next_wait = 100000000;

		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = REAL(poll)(&p, 1, poll_ms(next_wait));
		if (r > 0 && (p.revents & (POLLIN | POLLNVAL))) {
			/* Read only while the number is still ours: the host's close
			 * paths give it up under the same lock before closing. */
			conntab_lock();
			if (__atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE) == fd) {
				if (p.revents & POLLNVAL) /* closed behind our wrappers */
					__atomic_store_n(&sweeper_wake_fd, -1, __ATOMIC_RELEASE);
				else {
					uint64_t v;
					syscall(SYS_read, fd, &v, sizeof v);
				}
			}
			conntab_unlock();
		}
	}
	return NULL;
}

/* Starts the thread (start_mu held). */
static void spawn_locked(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0) {
		LOG(LOG_ERROR, "eventfd: %s; shutdown signals will not release connections",
		    strerror(errno));
	} else {
		pthread_attr_t attr;
		pthread_t th;

		__atomic_store_n(&sweeper_wake_fd, fd, __ATOMIC_RELEASE);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 64 * 1024);
		/* Signals are blocked (spawn): the thread starts with all blocked. */
		int rc = pthread_create(&th, &attr, sweeper_main, NULL);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			LOG(LOG_ERROR, "cannot start the sweeper thread: %s", strerror(rc));
			__atomic_store_n(&sweeper_wake_fd, -1, __ATOMIC_RELEASE);
			REAL_NOHOOK(close)(fd);
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
				     __atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE),
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
	if (sig_in_handler())
		return; /* the fast path stays closed: the next call starts it */
	if (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE) && sweeper_draining())
		spawn();
	real_open_fast();
}

/* The host is about to close or replace fds lo..hi.  If our eventfd is among
 * them, give the number up first (under the table lock, which the sweeper
 * takes to read it) and wake the sweeper so it makes a new one: the host's
 * fd that takes the number must never be read or written by us. */
void sweeper_fds_closing_slow(unsigned lo, unsigned hi)
{
	int fd = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE);
	if (fd < 0 || (unsigned)fd < lo || (unsigned)fd > hi)
		return;
	/* Without the lock only when a signal handler runs this on a thread
	 * inside the table: the number is still ours until the host's call. */
	bool locked = conntab_lock_unless_held();
	if (__atomic_load_n(&sweeper_wake_fd, __ATOMIC_ACQUIRE) == fd) {
		__atomic_store_n(&sweeper_wake_fd, -1, __ATOMIC_RELEASE);
		uint64_t one = 1;
		syscall(SYS_write, fd, &one, sizeof one); /* still ours: wakes the sweeper */
	}
	if (locked)
		conntab_unlock();
}

void sweeper_after_fork_child(void)
{
	/* The child has no sweeper thread; the eventfd is ours to close. It
	 * is a new process: the parent's drain is not its drain. */
	int fd = __atomic_load_n(&sweeper_wake_fd, __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_wake_fd, -1, __ATOMIC_RELAXED);
	if (fd >= 0)
		REAL(close)(fd);
	pthread_mutex_init(&start_mu, NULL);
	__atomic_store_n(&sweeper_started, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_deferred, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&wants_kick, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_drain, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&trigger_sig, 0, __ATOMIC_RELAXED);
}
