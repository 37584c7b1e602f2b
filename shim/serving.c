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

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int serving_said;

/* The child of a fork has said nothing yet: its own first accept tells. */
static void serving_child(void)
{
	__atomic_store_n(&serving_said, 0, __ATOMIC_RELAXED);
}

/* A trigger signal the kernel discards: ignored (SIG_IGN goes to the kernel
 * unchanged, see signals.c) and not blocked on this thread (a blocked signal
 * stays pending for sigwait() or a signalfd even when ignored). */
static void warn_ignored_triggers(void)
{
	sigset_t blocked;
	if (!(shim_cfg.triggers & TRIGGER_SIGNAL) || pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0)
		return;
	for (int i = 0; i < shim_cfg.nsignals; i++) {
		int sig = shim_cfg.signals[i];
		struct sigaction cur;
		if (REAL(sigaction)(sig, NULL, &cur) != 0 || cur.sa_handler != SIG_IGN ||
		    (cur.sa_flags & SA_SIGINFO) || sigismember(&blocked, sig) == 1)
			continue;
		const char *n = cfg_signal_name(sig);
		char num[16];
		snprintf(num, sizeof num, "%d", sig);
		LOG(LOG_WARN, "%s%s is ignored in this process: graceshim cannot trigger on it (programs "
			      "started with & from a script inherit SIGINT ignored: stop this one with "
			      "another trigger signal, or start it otherwise)",
		    n ? "SIG" : "signal ", n ? n : num);
	}
}

static void tell_line(int lfd, bool listening)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	struct conn_peer p;
	char where[64], trig[160] = "", extra[96] = "";
	size_t o = 0;

	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
		sl = 0;
	conn_peer_from_sockaddr(&p, (struct sockaddr *)&ss, sl);
	conn_peer_format(&p, where, sizeof where);
	if (shim_cfg.triggers & TRIGGER_SIGNAL)
		for (int i = 0; i < shim_cfg.nsignals && o < sizeof trig - 16; i++) {
			const char *n = cfg_signal_name(shim_cfg.signals[i]);
			o += (size_t)snprintf(trig + o, sizeof trig - o, "%s%s%s", i ? "," : "",
					      n ? "SIG" : "", n ? n : "?");
		}
	if ((shim_cfg.triggers & TRIGGER_LISTENER) && o < sizeof trig)
		snprintf(trig + o, sizeof trig - o, "%slast listener closed", o ? " or " : "");
	if (shim_cfg.grace_ns)
		snprintf(extra, sizeof extra, ", grace %llu ms",
			 (unsigned long long)(shim_cfg.grace_ns / 1000000));
	log_msg(LOG_INFO, "serving: %s %s (fd %d); drain on %s; policy %s%s", listening ? "listening on" : "accepting on",
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
		warn_ignored_triggers();
	errno = saved;
}
