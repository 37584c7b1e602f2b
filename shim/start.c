/*
 * Start-up: parse the environment once, decide whether to act at all, and
 * register the fork handlers.  Secure-execution processes (setuid, setgid,
 * file capabilities: AT_SECURE) stay inert: the environment there belongs to
 * a less privileged user.  The top of the shim's modules: only the wrappers
 * (start.h: shim_on) and the constructor come here.
 */
#include "start.h"

#include "conntab.h"
#include "gate.h"
#include "log.h"
#include "signals.h"
#include "stats.h"
#include "sweeper.h"
#include "sync.h"
#include "track.h"
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

static __thread int init_here;

static const char *env_get(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

static void warn_stderr(const char *msg, void *ctx)
{
	(void)ctx;
	/* Called before log_init, so this goes to stderr whatever
	 * GRACESHIM_LOG_FILE says: one line, then the default is used. */
	log_msg(LOG_WARN, "%s", msg);
}

/* fork: the child must not inherit a held lock or a sweeper it does not
 * have.  prepare takes the locks so no other thread is inside them, the
 * parent releases them, the child releases them and resets the sweeper so it
 * is recreated lazily on the child's first accept.
 *
 * Every signal is blocked on the forking thread from before the locks are
 * taken until they are released: a handler that ran there meanwhile and
 * made an async-signal-safe call that takes one of them (sigaction() or
 * signal() for a trigger signal, close() of a tracked connection) would
 * wait forever for its own thread.  A signal that arrives in that window is
 * delivered in the parent as the mask is restored; the child, as without
 * us, has none pending and gets the forking thread's mask back. */
static __thread sigset_t fork_mask __attribute__((tls_model("initial-exec")));
/* fork() from a signal handler that interrupted this thread inside the
 * table (async-signal-safe, so allowed): the lock is this thread's already
 * and the table may be mid-update.  Neither taken nor walked then; the
 * interrupted code releases it in both processes. */
static __thread int fork_table_locked __attribute__((tls_model("initial-exec")));

static void atfork_prepare(void)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &fork_mask);
	sig_lock_for_fork();
	fork_table_locked = conntab_lock_unless_held();
}

static void atfork_parent(void)
{
	if (fork_table_locked) {
		conntab_mark_shared_locked();
		conntab_unlock();
	}
	sig_unlock_after_fork();
	pthread_sigmask(SIG_SETMASK, &fork_mask, NULL);
}

static void atfork_child(void)
{
	/* What crosses fork() is the parent's history: the child keeps the
	 * records (marked shared), and decides about its own triggers and
	 * statistics from what it does itself. */
	if (fork_table_locked) {
		conntab_mark_shared_locked();
		conntab_after_fork_child_locked();
		conntab_unlock();
	}
	stats_after_fork_child();
	sig_unlock_after_fork();
	proc_set_owner();
	sweeper_after_fork_child();
	pthread_sigmask(SIG_SETMASK, &fork_mask, NULL);
}

void shim_init(void)
{
	if (init_here)
		return; /* re-entered while initialising: inactive until done */
	/* Called before libc set up the environment (a preinit_array function,
	 * another library's early constructor): reading the configuration now
	 * would read nothing.  Stay inactive for this call and decide later. */
	if (!environ)
		return;
	if (!sync_once_begin(&shim_init_state))
		return; /* another thread initialised (it takes microseconds) */
	init_here = 1;

	proc_set_owner();
	cfg_defaults(&shim_cfg);
	if (getauxval(AT_SECURE)) {
		shim_active = 0;
	} else {
		cfg_parse(&shim_cfg, env_get, warn_stderr, NULL);
		log_init(shim_cfg.log_level, shim_cfg.log_file);
		shim_active = !shim_cfg.disable;
		if (shim_active) {
			pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
			gate_set_work(sweeper_hook);
			stats_init();
			sig_adopt_existing();
			/* Policy idle must know who spoke last, which the kernel's
			 * millisecond times cannot tell when a request and its answer
			 * share a millisecond; trace logs first bytes: both count. */
			shim_kernel_may_count = shim_cfg.policy == POLICY_UNUSED && !log_on(LOG_TRACE);
			/* Only these read a connection's age: the clock read on every
			 * accept is skipped otherwise. */
			shim_stamp_accepts = shim_cfg.grace_ns || shim_cfg.first_byte_timeout_ns ||
					     shim_cfg.drain_timeout_ns || log_on(LOG_DEBUG);
			if (log_on(LOG_DEBUG)) {
				char sigs[128] = "";
				size_t o = 0;
				for (int i = 0; i < shim_cfg.nsignals && o < sizeof sigs - 16; i++) {
					const char *n = cfg_signal_name(shim_cfg.signals[i]);
					o += (size_t)snprintf(sigs + o, sizeof sigs - o, "%s%s%s",
							      i ? "," : "", n ? "SIG" : "", n ? n : "?");
				}
				log_msg(LOG_DEBUG, "active: signals %s, grace %llu ms", sigs,
					(unsigned long long)(shim_cfg.grace_ns / 1000000));
			}
		} else {
			LOG(LOG_DEBUG, "disabled by GRACESHIM_DISABLE: pass-through");
		}
	}
	init_here = 0;
	sync_once_end(&shim_init_state);
}

/* fork() returned (pid: its result, in parent or child).  The child of a
 * fork has no sweeper thread.  pthread_atfork's child handler resets our
 * state, but creating a thread there is not allowed; here, after fork() has
 * returned in the child, it is (servers create thread pools in forked
 * workers all the time).  A child that inherited connections gets its
 * sweeper now, since it may never accept again.  errno is left as fork()
 * left it. */
void shim_forked(pid_t pid)
{
	if (pid > 0 && shim_active && proc_own()) {
		/* A child forked while we listen is a worker we may have to
		 * reach when we drain (workers.c). */
		int saved = errno;
		size_t listening = 0;
		if (conntab_lock_unless_held()) {
			listening = conntab_special_count_locked(CONN_KIND_LISTENER);
			conntab_unlock();
		}
		if (listening)
			workers_forked(pid);
		errno = saved;
	}
	if (pid == 0 && shim_active) {
		int saved = errno;
		size_t n = 0;
		if (conntab_lock_unless_held()) {
			n = conntab_count_locked();
			conntab_unlock();
		}
		if (n)
			sweeper_ensure_started();
		track_forked_child();
		errno = saved;
	}
}

__attribute__((constructor)) static void shim_ctor(void)
{
	shim_on();
}
