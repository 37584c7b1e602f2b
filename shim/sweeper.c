/*
 * SPDX-License-Identifier: MIT
 *
 * The sweeper: a thread that sleeps on a pipe until a trigger signal
 * arrives, then makes passes over the connection table (release.c), the
 * workers' connections (workers.c) and the blocked readers (unblock.c).
 * This file holds the thread itself: its start, the wake-up pipe, the
 * triggers and the main loop.
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

#include "blind.h"
#include "conntab.h"
#include "drain.h"
#include "gate.h"
#include "log.h"
#include "release.h"
#include "sigrelease.h"
#include "shim.h"
#include "stats.h"
#include "unblock.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The wake-up pipe.  A pipe, not an eventfd: every pipe has an inode of its
 * own, so "is this number still our pipe?" has an exact answer (all eventfds
 * share one anonymous inode), and the shim writes to or reads from its own
 * fds only after asking (the host can replace a number behind our wrappers:
 * glibc's freopen() dup3()s internally).  Both ends sit at or above
 * WAKE_FD_BASE when the limit allows, away from 0-2, which a host that
 * closed stdout expects its next open() to get. */
int sweeper_wake_fd = -1;           /* write end; read by the signal handler */
int sweeper_wake_rd = -1;           /* read end; the sweeper sleeps on it */
static uint64_t wake_ino, wake_dev; /* the pipe's identity */
#define WAKE_FD_BASE 64
#define WAKE_POLL_MS 1000 /* the longest sleep (see wake()) */
int sweeper_deferred;     /* needed, but waits for work (single-threaded host) */
static int wants_kick;    /* the sweeper sleeps with no deadline */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER; /* guards thread creation */

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
	__atomic_compare_exchange_n(&drain_trigger_sig, &expect, sig, 0, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
	__atomic_store_n(&drain_kind, DRAIN_SIGNAL, __ATOMIC_RELEASE);
	stats_trigger_seen(__atomic_load_n(&drain_trigger_sig, __ATOMIC_RELAXED), shim_now_ns());
	wake();
}

void sweeper_noticed(int sig)
{
	__atomic_store_n(&drain_noticed_ns, shim_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&drain_noticed_sig, sig, __ATOMIC_RELEASE);
}

bool sweeper_stop_asked(void)
{
	if (!__atomic_load_n(&drain_noticed_sig, __ATOMIC_ACQUIRE))
		return false;
	return shim_now_ns() - __atomic_load_n(&drain_noticed_ns, __ATOMIC_RELAXED) <=
	       TRIGGER_WINDOW_NS;
}

void sweeper_stopped_listening(int kind)
{
	int expect = DRAIN_NONE;
	if (__atomic_compare_exchange_n(&drain_kind, &expect, kind, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		/* the statistics carry it even if the process exits before
		 * the sweeper thread looks */
		stats_trigger_seen(kind == DRAIN_STOP
					   ? __atomic_load_n(&drain_noticed_sig, __ATOMIC_ACQUIRE)
					   : -1,
				   shim_now_ns());
		wake();
	}
}

void sweeper_listening(void)
{
	int d = __atomic_load_n(&drain_kind, __ATOMIC_ACQUIRE);
	if ((d == DRAIN_LISTENER || d == DRAIN_STOP) &&
	    __atomic_compare_exchange_n(&drain_kind, &d, DRAIN_NONE, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		stats_trigger_withdrawn();
		LOG(LOG_INFO,
		    "listening again: the drain started by closing the last listener ends");
		wake();
	}
}

static int serving_seen; /* a late connection carried a request: see sweeper_serving_seen */

void sweeper_serving_seen(void)
{
	if (!__atomic_exchange_n(&serving_seen, 1, __ATOMIC_ACQ_REL))
		wake();
}

/* Sweeper thread: what sweeper_serving_seen() said, if the process still
 * listens (a server that stopped listening has no new work: the request
 * was one accepted as it stopped). */
static void serving_check_seen(void)
{
	if (!__atomic_exchange_n(&serving_seen, 0, __ATOMIC_ACQ_REL))
		return;
	conntab_lock();
	bool listening = conntab_special_count_locked(CONN_KIND_LISTENER) != 0;
	conntab_unlock();
	if (listening)
		drain_end("a connection accepted after the trigger carried a request");
}

void sweeper_accepted_slow(void)
{
	sweeper_ensure_started();
	/* While draining every new connection is looked at; with a first-byte
	 * timeout only a sweeper asleep without deadline needs telling (later
	 * connections have later deadlines than the one it waits for). */
	if (drain_active() || (shim_cfg.first_byte_timeout_ns &&
			       __atomic_exchange_n(&wants_kick, 0, __ATOMIC_ACQ_REL)))
		wake();
}

/* The workers' part of a drain pass (sweeper thread): for the first
 * WORKERS_WINDOW_NS of a drain, every WORKERS_EVERY_NS, since a worker may
 * accept a connection after the trigger until it closes its listeners, and
 * a young one qualifies only after the grace.  Returns the longest the
 * sweeper may sleep. */
#define WORKERS_WINDOW_NS (10 * 1000000000ull)
#define WORKERS_EVERY_NS (250 * 1000000ull)
/* From then on a pass walks every child, not only those that hold one of
 * our listeners where fork() put it: by then a worker that drains itself
 * (nginx's, 6,000 connections in 0.1 s) is done, and the walk no longer
 * takes a core from it. */
#define WORKERS_THOROUGH_NS (1000 * 1000000ull)
static uint64_t workers_pass(uint64_t now)
{
	static int told_denied;
	if (!workers_any() || now - drain_started() > WORKERS_WINDOW_NS)
		return UINT64_MAX;
	int denied = 0;
	sigrelease_say_workers(workers_release(shim_cfg.grace_ns / 1000000,
					       now - drain_started() >= WORKERS_THOROUGH_NS,
					       &denied));
	if (denied && !told_denied++)
		LOG(LOG_INFO,
		    "cannot reach the connections of some child processes (pidfd_getfd: "
		    "Linux 5.6 or later and ptrace permission over the child are needed); "
		    "they drain only if they get a trigger of their own");
	return WORKERS_EVERY_NS;
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
	/* Before a trigger, first-byte timeouts are checked in batches: a
	 * deadline is met within an eighth of the timeout (50 ms to 1 s), and
	 * the table is not walked for every single connection's deadline. */
	uint64_t batch = shim_cfg.first_byte_timeout_ns / 8;
	batch = batch < 50000000 ? 50000000 : batch > 1000000000 ? 1000000000 : batch;

	for (;;) {
		int d = __atomic_load_n(&drain_kind, __ATOMIC_ACQUIRE);
		if (d != drain_announced) {
			/* A new drain (or a listener drain ended by a new listen). */
			drain_announced = d;
			drain_set_started(shim_now_ns());
			int sig = d == DRAIN_SIGNAL
					  ? __atomic_load_n(&drain_trigger_sig, __ATOMIC_RELAXED)
					  : -1;
			if (d)
				stats_triggered(sig, drain_started());
			if (d && log_on(LOG_INFO)) {
				const char *n = cfg_signal_name(sig);
				conntab_lock();
				size_t count = sigrelease_tracked(conntab_count_locked());
				conntab_unlock();
				if (d == DRAIN_SIGNAL) {
					log_msg(LOG_INFO,
						"SIG%s received: draining, %zu tracked "
						"connection(s)",
						n ? n : "?", count);
				} else if (d == DRAIN_STOP) {
					const char *m = cfg_signal_name(__atomic_load_n(
						&drain_noticed_sig, __ATOMIC_RELAXED));
					log_msg(LOG_INFO,
						"stopped listening after SIG%s: draining, %zu "
						"tracked "
						"connection(s)",
						m ? m : "?", count);
				} else {
					log_msg(LOG_INFO,
						"last listening socket closed: draining, %zu "
						"tracked "
						"connection(s)",
						count);
				}
				sigrelease_say();
			}
		}
		/* Ask to be kicked before looking: an accept that lands after
		 * our look still wakes us. */
		__atomic_store_n(&wants_kick, 1, __ATOMIC_RELEASE);
		uint64_t next_wait = UINT64_MAX;
		serving_check_seen();
		if (drain_active()) {
			next_wait = release_sweep();
			uint64_t w = workers_pass(shim_now_ns());
			if (w < next_wait)
				next_wait = w;
			blind_warn(); /* after the first pass: it reads /proc */
		} else if (shim_cfg.first_byte_timeout_ns) {
			next_wait = release_sweep();
			if (next_wait < batch)
				next_wait = batch;
		}
		if (shim_cfg.unblock_after_ns &&
		    __atomic_load_n(&unblock_readers, __ATOMIC_ACQUIRE)) {
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
			if (__atomic_load_n(&sweeper_wake_rd, __ATOMIC_ACQUIRE) == rd &&
			    wake_fd_ours(rd)) {
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
	int hi = (int)real_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC,
				   WAKE_FD_BASE); /* not our fcntl() */
	if (hi < 0)
		return fd; /* a low limit: keep the number we have */
	/* libc's close (not ours), not the raw system call: a sanitizer that
	 * tracks fds (TSan) must see the low number freed, or the host's next
	 * socket() on it is reported as a race with our pipe2(). */
	int saved = errno;
	REAL_NOHOOK(close)(fd);
	errno = saved;
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
	__atomic_store_n(&drain_sweeper_started, 2, __ATOMIC_RELEASE);
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
	if (__atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) != 2)
		spawn_locked();
	pthread_mutex_unlock(&start_mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (drain_active())
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
	if (__builtin_expect(__atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) == 2 ||
				     (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE) &&
				      __libc_single_threaded),
			     1))
		return;
	if (__libc_single_threaded && !shim_cfg.first_byte_timeout_ns && !drain_active()) {
		__atomic_store_n(&sweeper_deferred, 1, __ATOMIC_RELEASE);
		return;
	}
	spawn();
}

void sweeper_drain_begun(void)
{
	if (!proc_own() || shim_in_handler() ||
	    __atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) == 2 || !drain_active())
		return;
	int saved = errno;
	spawn();
	errno = saved;
}

void sweeper_hook(void)
{
	if (!proc_own())
		return; /* a vfork child: nothing is started there */
	if (shim_in_handler())
		return; /* the fast path stays closed: the next call starts it */
	if (__atomic_load_n(&sweeper_deferred, __ATOMIC_ACQUIRE) && drain_active())
		spawn();
	gate_open();
}

/* A read that may block on a never-used connection is about to begin, in a
 * process whose sweeper may not be running (a single-threaded host): start
 * it now, and have it watch.  Not from a signal handler of ours.  A running
 * sweeper sleeps at most WAKE_POLL_MS and then sees unblock_readers; nothing
 * can be released before the connection is GRACESHIM_UNBLOCK_AFTER old, so
 * it is woken only when that is shorter: not a write to its pipe and a pass
 * over the table for every connection of a thread-per-connection server. */
void sweeper_watch_blocked(void)
{
	bool started = __atomic_load_n(&drain_sweeper_started, __ATOMIC_ACQUIRE) == 2;
	if (!__atomic_exchange_n(&unblock_readers, 1, __ATOMIC_ACQ_REL) || !started) {
		if (!started && !shim_in_handler())
			spawn();
		if (!started || shim_cfg.unblock_after_ns < WAKE_POLL_MS * 1000000ull)
			wake();
	}
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
	__atomic_store_n(&drain_sweeper_started, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sweeper_deferred, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&wants_kick, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&drain_kind, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&drain_trigger_sig, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&drain_noticed_sig, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&serving_seen, 0, __ATOMIC_RELAXED);
	drain_announced = DRAIN_NONE;
}
