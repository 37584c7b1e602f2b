/*
 * SPDX-License-Identifier: MIT
 *
 * Start-up: parse the environment once, decide whether to act at all, and
 * register the fork handlers.  Secure-execution processes (setuid, setgid,
 * file capabilities: AT_SECURE) stay inert: the environment there belongs to
 * a less privileged user.  The top of the shim's modules: only the wrappers
 * (start.h: start_on) and the constructor come here.
 */
#include "start.h"

#include "conntab.h"
#include "gate.h"
#include "log.h"
#include "real.h"
#include "signals.h"
#include "stats.h"
#include "sweeper.h"
#include "sync.h"
#include "track.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

static __thread int init_here;

static const char *env_get(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

/* What is wrong with the environment, kept until we know whether to say it:
 * each line once per process tree.  A process whose parent loaded this
 * library with the same GRACESHIM_* variables (a wrapper that runs 35
 * programs, a shell script, make) has had every line said by that parent;
 * the process the user started says them.  Decided from the parent's
 * /proc/PID/environ, read only when there is something to say: the
 * environment itself is never marked (the host sees it as it was given). */
#define CFG_LINES_MAX 16
static char cfg_lines[CFG_LINES_MAX][320];
static int cfg_nlines;

static void warn_later(const char *msg, void *ctx)
{
	(void)ctx;
	if (cfg_nlines < CFG_LINES_MAX)
		snprintf(cfg_lines[cfg_nlines++], sizeof cfg_lines[0], "%s", msg);
}

/* Whether entry (NAME=value) is one of the NUL-separated entries of env. */
static bool env_has(const char *env, size_t len, const char *entry)
{
	size_t n = strlen(entry);
	for (size_t i = 0; i < len;) {
		const char *e = env + i;
		size_t el = strnlen(e, len - i);
		if (el == n && !memcmp(e, entry, n))
			return true;
		i += el + 1;
	}
	return false;
}

static bool parent_said_it(void)
{
	static char env[65536]; /* one call, at start-up */
	char path[40];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)getppid());
	/* Raw system calls: nothing of ours may go through the wrappers. */
	int fd = (int)real_syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return false; /* another user's parent: say it here */
	size_t len = 0;
	long r;
	while (len < sizeof env - 1 &&
	       (r = real_syscall(SYS_read, fd, env + len, sizeof env - 1 - len)) > 0)
		len += (size_t)r;
	real_syscall(SYS_close, fd);
	if (len == sizeof env - 1)
		return false; /* cut: cannot tell */
	env[len] = 0;
	/* The same library preloaded, and the same GRACESHIM_* variables. */
	int ours = 0, theirs = 0;
	bool preload = false;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "LD_PRELOAD=", 11)) {
			if (!env_has(env, len, *e))
				return false;
			preload = true;
		} else if (!strncmp(*e, "GRACESHIM_", 10)) {
			if (!env_has(env, len, *e))
				return false;
			ours++;
		}
	}
	for (size_t i = 0; i < len; i += strnlen(env + i, len - i) + 1)
		theirs += !strncmp(env + i, "GRACESHIM_", 10);
	return preload && ours == theirs;
}

static void say_config_problems(void)
{
	if (!cfg_nlines || parent_said_it())
		return;
	/* Before log_init, so this goes to stderr whatever GRACESHIM_LOG_FILE
	 * says: one line each, then the default is used. */
	for (int i = 0; i < cfg_nlines; i++)
		log_msg(LOG_WARN, "%s", cfg_lines[i]);
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

void start_init(void)
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
	log_stderr_note(); /* the stderr the process started with */
	cfg_defaults(&shim_cfg);
	if (getauxval(AT_SECURE)) {
		shim_active = 0;
	} else {
		int saved = errno;
		cfg_parse(&shim_cfg, env_get, warn_later, NULL);
		cfg_check_names(environ, warn_later, NULL);
		say_config_problems();
		errno = saved;
		log_init(shim_cfg.log_level, shim_cfg.log_file);
		shim_active = !shim_cfg.disable;
		if (shim_active) {
			pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
			gate_set_work(sweeper_hook);
			stats_init();
			sig_adopt_existing();
			/* Trace logs first bytes and byte counts: it counts them.
			 * Policy idle takes who spoke last from the kernel too
			 * (release.c), and classifies a connection's first bytes
			 * before it leaves the read/write filter (track.c). */
			shim_kernel_may_count = !log_on(LOG_TRACE);
			conntab_kernel_first = shim_cfg.policy == POLICY_IDLE ? CONN_FIRST : 0;
			/* Only these read a connection's age: the clock read on every
			 * accept is skipped otherwise. */
			shim_stamp_accepts = shim_cfg.grace_ns || shim_cfg.first_byte_timeout_ns ||
					     shim_cfg.drain_timeout_ns || log_on(LOG_DEBUG);
			if (log_on(LOG_DEBUG)) {
				char sigs[128] = "";
				size_t o = 0;
				for (int i = 0; i < shim_cfg.nsignals && o < sizeof sigs - 16;
				     i++) {
					const char *n = cfg_signal_name(shim_cfg.signals[i]);
					o += (size_t)snprintf(sigs + o, sizeof sigs - o, "%s%s%s",
							      i ? "," : "", n ? "SIG" : "",
							      n ? n : "?");
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
void start_forked(pid_t pid)
{
	if (pid > 0 && shim_active && proc_own()) {
		/* A child may be a worker we have to reach when we drain
		 * (workers.c): forked while we listen, or before (a Node.js
		 * cluster's primary listens once its workers ask it to). */
		int saved = errno;
		size_t listening = 0;
		if (conntab_lock_unless_held()) {
			listening = conntab_special_count_locked(CONN_KIND_LISTENER);
			conntab_unlock();
		}
		workers_forked(pid, listening != 0);
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
	start_on();
}
