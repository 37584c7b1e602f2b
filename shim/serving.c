/*
 * SPDX-License-Identifier: MIT
 *
 * See serving.h.  Runs at most twice per process (its first listen(), its
 * first accept()), on that thread, in a normal context (never from a signal
 * handler).
 */
#include "serving.h"

#include "conntab.h"
#include "gate.h"
#include "log.h"
#include "shim.h"
#include "signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

int serving_said;

/* The child of a fork has said nothing yet: its own first accept tells. */
static void serving_child(void)
{
	__atomic_store_n(&serving_said, 0, __ATOMIC_RELAXED);
}

/* Whether the kernel discards sig here: ignored (SIG_IGN goes to the kernel
 * unchanged, see signals.c) and not blocked on this thread (a blocked
 * signal stays pending for sigwait() or a signalfd even when ignored). */
static bool discarded(int sig, const sigset_t *blocked)
{
	struct sigaction cur;
	return REAL(sigaction)(sig, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN &&
	       !(cur.sa_flags & SA_SIGINFO) && sigismember(blocked, sig) != 1;
}

/* Whether sig has a handler here (ours, in front of the application's). */
static bool handled(int sig)
{
	struct sigaction cur;
	return REAL(sigaction)(sig, NULL, &cur) == 0 && cur.sa_handler != SIG_IGN &&
	       cur.sa_handler != SIG_DFL;
}

static size_t put(char *b, size_t o, size_t len, const char *fmt, const char *a, const char *c)
{
	if (o >= len)
		return o;
	int n = snprintf(b + o, len - o, fmt, a, c);
	return n < 0 ? o : o + (size_t)n;
}

static size_t put_sig(char *b, size_t o, size_t len, int sig, bool first)
{
	const char *n = cfg_signal_name(sig);
	char num[16];
	snprintf(num, sizeof num, "%d", sig);
	return put(b, o, len, first ? "SIG%s%s" : ",SIG%s%s", n ? n : num, "");
}

/* A process every trigger signal of which the kernel discards, and that
 * handles no other signal a stop could come by: nothing but closing an
 * inherited listener can start its drain, and nothing else would tell.
 * Programs that chose to ignore SIGINT and stop on another signal
 * (multiprocessing's forkserver, Apache's and Puma's workers) are not told:
 * the serving line (info) says what triggers there. */
static void warn_unreachable(bool worker)
{
	sigset_t blocked;
	if (worker || !(shim_cfg.triggers & TRIGGER_SIGNAL) || !shim_cfg.nsignals ||
	    pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0)
		return;
	for (int i = 0; i < shim_cfg.nsignals; i++)
		if (!discarded(shim_cfg.signals[i], &blocked))
			return;
	for (int sig = 1; sig < NSIG && sig <= 64; sig++)
		if (sig_watched(sig) && (handled(sig) || sigismember(&blocked, sig) == 1))
			return;
	char list[128];
	size_t o = 0;
	for (int i = 0; i < shim_cfg.nsignals; i++)
		o = put_sig(list, o, sizeof list, shim_cfg.signals[i], i == 0);
	LOG(LOG_WARN,
	    "%s ignored in this process, and no other stop signal handled: graceshim cannot "
	    "trigger here (programs started with & from a script inherit SIGINT ignored: stop "
	    "this one with another signal, or start it otherwise)",
	    list);
}

/* " (SIGINT,... ignored here)": the trigger signals the kernel discards
 * here, if any. */
static size_t put_ignored(char *b, size_t o, size_t len, const sigset_t *blocked)
{
	int k = 0;
	for (int i = 0; i < shim_cfg.nsignals; i++)
		if (discarded(shim_cfg.signals[i], blocked)) {
			o = put(b, o, len, k++ ? "," : " (", "", "");
			o = put_sig(b, o, len, shim_cfg.signals[i], true);
		}
	return k ? put(b, o, len, " ignored here)", "", "") : o;
}

/* What starts the drain in this process (README, "When it drains"), said
 * as it stands: the trigger signals the kernel does not discard here, the
 * listener rules. */
static void describe_triggers(char *b, size_t len, bool worker)
{
	sigset_t blocked;
	size_t o = 0;
	int live = 0;
	b[0] = 0;
	if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0)
		sigemptyset(&blocked);
	if (shim_cfg.triggers & TRIGGER_SIGNAL) {
		for (int i = 0; i < shim_cfg.nsignals; i++)
			if (!discarded(shim_cfg.signals[i], &blocked))
				o = put_sig(b, o, len, shim_cfg.signals[i], live++ == 0);
		if (live)
			o = put_ignored(b, o, len, &blocked);
	}
	if (shim_cfg.triggers & TRIGGER_LISTENER) {
		o = put(b, o, len, "%sclosing its last listener after a handled signal%s",
			o ? ", or " : "", "");
		if (worker)
			o = put(b, o, len,
				", closing its inherited listeners, or its master's drain", "", "");
	}
	/* Every trigger signal ignored: said after what still triggers. */
	if ((shim_cfg.triggers & TRIGGER_SIGNAL) && !live)
		put_ignored(b, o ? o : put(b, 0, len, "nothing", "", ""), len, &blocked);
}

/* A worker: it accepts on a listener it did not listen() on itself. */
static bool is_worker(int lfd)
{
	struct conn *l = conntab_fast(lfd);
	return l && l->kind == CONN_KIND_LISTENER && (l->flags & CONN_INHERITED);
}

static void tell_line(int lfd, bool listening)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	struct conn_peer p;
	char where[64], trig[320], extra[96] = "";

	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
		sl = 0;
	conn_peer_from_sockaddr(&p, (struct sockaddr *)&ss, sl);
	conn_peer_format(&p, where, sizeof where);
	describe_triggers(trig, sizeof trig, is_worker(lfd));
	if (shim_cfg.grace_ns)
		snprintf(extra, sizeof extra, ", grace %llu ms",
			 (unsigned long long)(shim_cfg.grace_ns / 1000000));
	/* Not a listener: a connection another process accepted and handed
	 * over (track.c, track_handed), on the address it was accepted on. */
	struct conn *c = listening ? NULL : conntab_fast(lfd);
	bool handed = c && c->kind == CONN_KIND_CONN;
	log_msg(LOG_INFO, "serving: %s %s (fd %d); drain on %s; policy %s%s",
		listening ? "listening on"
		: handed  ? "connections handed over, accepted on"
			  : "accepting on",
		where, lfd, trig[0] ? trig : "nothing (GRACESHIM_TRIGGERS)",
		shim_cfg.policy == POLICY_IDLE ? "idle" : "unused", extra);
}

/* At load, not at the first listen or accept: pthread_atfork() takes glibc's
 * atfork lock and allocates, and a host's signal handler that forks while
 * its thread is in there would wait for ever (reenter::handler_forks_while_
 * its_thread_makes_its_first_accepts). */
__attribute__((constructor)) static void serving_init(void)
{
	pthread_atfork(NULL, NULL, serving_child);
}

void serving_tell(int lfd, bool listening)
{
	int want = listening ? 1 : 2;
	int old = __atomic_load_n(&serving_said, __ATOMIC_RELAXED);
	do {
		if (old >= want)
			return; /* said, or another thread is saying it */
	} while (!__atomic_compare_exchange_n(&serving_said, &old, want, 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	int saved = errno;
	if (old == 0 && log_on(LOG_INFO))
		tell_line(lfd, listening);
	if (want == 2 && log_on(LOG_WARN))
		warn_unreachable(is_worker(lfd));
	errno = saved;
}
