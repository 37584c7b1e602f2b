/*
 * SPDX-License-Identifier: MIT
 *
 * Watched signals (signals.h: the trigger signals, and the signals that may
 * ask a server to stop).
 *
 * For a watched signal the kernel holds our handler only while the
 * application has a handler of its own: SIG_DFL and SIG_IGN go to the kernel
 * unchanged, so the default action still terminates and an ignored signal
 * stays ignored, without us in the way.  When the application installs a
 * handler we install ours with the application's mask and flags (plus
 * SA_SIGINFO, so we receive what we must pass on), and the kernel applies
 * SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_ONSTACK and the mask exactly as it
 * would without us.  What the application reads back through oldact is what
 * it set, or what the kernel has when the kernel changed it (SA_RESETHAND).
 *
 * sigaction() is async-signal-safe, so this code takes no mutex: writers
 * block every signal on their thread and take a spinlock.  The handler reads
 * an immutable copy of the application's action from a double buffer.
 *
 * The handler (huptime's sighandler and the JVM's libjsig are the models):
 * save errno, mark the process as draining and wake the sweeper with one
 * write (a trigger signal) or note the signal and its time (another watched
 * one: two stores), restore errno, then chain.  When the application's
 * handler itself stopped listening (Apache's children close their listeners
 * in theirs), the drain it started is released from here after it returns,
 * as for a trigger signal.  No lock, no malloc, no stdio.  errno is
 * restored before chaining so whatever the application's handler does to
 * errno reaches the interrupted code exactly as without the shim.
 */
#include "signals.h"

#include "conntab.h"
#include "gate.h"
#include "sigrelease.h"
#include "shim.h"
#include "sweeper.h"
#include "sync.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

struct app_view {
	uintptr_t fn; /* sa_handler or sa_sigaction */
	int flags;
};

static struct sig_slot {
	struct sigaction app; /* what the application last set through us */
	struct app_view view[2];
	unsigned gen; /* version of the action: the handler reads view[gen & 1] */
	int hooked;   /* the kernel holds our handler */
} slots[NSIG];

static int spin; /* guards slots[] writes */
static void spin_lock(void)
{
	sync_spin_lock(&spin);
}

static void spin_unlock(void)
{
	sync_spin_unlock(&spin);
}

void sig_lock_for_fork(void)
{
	spin_lock();
}

void sig_unlock_after_fork(void)
{
	spin_unlock();
}

/* The application's action as the handler sees it.  A writer (sig_action,
 * under the spin lock) fills the view the handler is not reading, then
 * publishes it by bumping gen; two writes while the handler copies would
 * reuse the view it is reading, so the copy is taken again when gen moved
 * under it (a few times at most: a storm of sigaction calls cannot hold
 * the handler here). */
static struct app_view read_view(struct sig_slot *s)
{
	struct app_view v = {0, 0};
	for (int tries = 0; tries < 8; tries++) {
		unsigned g = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
		/* acquire: the second look at gen cannot move before these */
		v.fn = __atomic_load_n(&s->view[g & 1].fn, __ATOMIC_ACQUIRE);
		v.flags = __atomic_load_n(&s->view[g & 1].flags, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->gen, __ATOMIC_RELAXED) == g)
			break;
	}
	return v;
}

/* Publishes a new view of the application's action (under the spin lock). */
static void publish_view(struct sig_slot *s, uintptr_t fn, int flags)
{
	unsigned g = s->gen + 1;
	__atomic_store_n(&s->view[g & 1].fn, fn, __ATOMIC_RELAXED);
	__atomic_store_n(&s->view[g & 1].flags, flags, __ATOMIC_RELAXED);
	__atomic_store_n(&s->gen, g, __ATOMIC_RELEASE);
}

static void shim_handler(int sig, siginfo_t *info, void *uctx)
{
	int saved = errno;
	struct sig_slot *s = &slots[sig];
	struct app_view v = read_view(s);

	/* In a vfork child the kernel's handler table is the child's own, but
	 * the memory is the parent's: chain, and start no drain there. */
	int own = proc_own();
	bool after = !shim_is_trigger(sig) && !drain_active();
	if (own) {
		shim_handler_depth++;
		sig_noticed(sig);
		if (shim_is_trigger(sig))
			sigrelease_run();
		shim_handler_depth--;
	}
	errno = saved;

	if (v.fn == (uintptr_t)SIG_IGN)
		return;
	if (v.fn == (uintptr_t)SIG_DFL) {
		/* Only in a race with a concurrent sigaction(SIG_DFL): do what
		 * the default would do, once this handler returns. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		REAL(sigaction)(sig, &dfl, NULL);
		raise(sig);
		errno = saved;
		return;
	}
	shim_handler_depth++;
	if (v.flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))v.fn)(sig, info, uctx);
	else
		((void (*)(int))v.fn)(sig);
	/* not reached if the handler longjmps: then we stay careful on this
	 * thread, which is only slower */
	if (own && after && drain_active()) {
		int e = errno;
		sigrelease_run();
		errno = e;
	}
	shim_handler_depth--;
}

void sig_noticed(int sig)
{
	/* Noted for every watched signal: a drain that a trigger signal
	 * started and the process ended by serving on (a lame-duck period)
	 * starts again when it then stops listening. */
	if (sig_stop_candidate(sig) || shim_is_trigger(sig))
		sweeper_noticed(sig);
	if (shim_is_trigger(sig))
		sweeper_signal(sig);
}

static int is_ours(const struct sigaction *k)
{
	return (k->sa_flags & SA_SIGINFO) && k->sa_sigaction == shim_handler;
}

/* What the application reads back as the old action: the kernel still
 * holding our handler means the application's own action is in force;
 * otherwise the kernel's is the truth (SA_RESETHAND reset it, or it was
 * never ours). */
static void report_old(const struct sigaction *prev_app, int prev_hooked,
		       const struct sigaction *kold, struct sigaction *oact)
{
	*oact = *kold;
	if (prev_hooked && is_ours(kold)) {
		/* The kernel's mask and flags (it adds SA_RESTORER and drops
		 * SIGKILL/SIGSTOP from the mask) with the application's handler. */
		if (prev_app->sa_flags & SA_SIGINFO)
			oact->sa_sigaction = prev_app->sa_sigaction;
		else
			oact->sa_handler = prev_app->sa_handler;
	}
	/* Our SA_SIGINFO bit stays in the kernel's flags, also after
	 * SA_RESETHAND reset the handler: report the application's. */
	if (prev_hooked &&
	    (is_ours(kold) || ((prev_app->sa_flags & SA_RESETHAND) && kold->sa_handler == SIG_DFL)))
		oact->sa_flags = (kold->sa_flags & ~SA_SIGINFO) | (prev_app->sa_flags & SA_SIGINFO);
}

/* In a vfork child: the kernel's table is the child's own, our slots are the
 * parent's memory.  The call goes to the kernel as it is; the slots are only
 * read, to report the old action as the application set it. */
static int sig_action_vfork_child(int sig, const struct sigaction *act, struct sigaction *oact)
{
	struct sigaction kold;
	struct sig_slot *s = &slots[sig];
	struct sigaction prev_app = s->app;
	int prev_hooked = s->hooked;
	int rc = REAL(sigaction)(sig, act, &kold);
	int err = errno;
	if (rc == 0 && oact)
		report_old(&prev_app, prev_hooked, &kold, oact);
	errno = err;
	return rc;
}

int sig_action(int sig, const struct sigaction *act, struct sigaction *oact)
{
	struct sigaction kact, kold, prev_app;
	sigset_t all, old;
	int rc, err, prev_hooked;

	if (sig <= 0 || sig >= NSIG || !shim_active || !sig_watched(sig))
		return REAL(sigaction)(sig, act, oact);
	if (!proc_own())
		return sig_action_vfork_child(sig, act, oact);

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	spin_lock();
	struct sig_slot *s = &slots[sig];
	prev_app = s->app;
	prev_hooked = s->hooked;
	if (act) {
		kact = *act;
		int custom = act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
		/* Publish the application's action before the kernel can
		 * deliver to our handler. */
		struct app_view prev = s->view[s->gen & 1];
		publish_view(s,
			     (act->sa_flags & SA_SIGINFO) ? (uintptr_t)act->sa_sigaction
							  : (uintptr_t)act->sa_handler,
			     act->sa_flags);
		if (custom) {
			kact.sa_sigaction = shim_handler;
			kact.sa_flags |= SA_SIGINFO;
		}
		rc = REAL(sigaction)(sig, &kact, &kold);
		err = errno;
		if (rc == 0) {
			s->app = *act;
			s->hooked = custom;
		} else {
			publish_view(s, prev.fn, prev.flags);
		}
	} else {
		rc = REAL(sigaction)(sig, NULL, &kold);
		err = errno;
	}
	spin_unlock();
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (rc == 0 && oact)
		report_old(&prev_app, prev_hooked, &kold, oact);
	errno = err;
	return rc;
}

void sig_adopt_existing(void)
{
	for (int sig = 1; sig < NSIG && sig <= 64; sig++) {
		struct sigaction cur;
		if (!sig_watched(sig) || REAL(sigaction)(sig, NULL, &cur) < 0)
			continue;
		if (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN || is_ours(&cur))
			continue;
		int saved = errno;
		sig_action(sig, &cur, NULL);
		errno = saved;
	}
}

__sighandler_t sig_signal(int sig, __sighandler_t handler, int flags, int mask_self)
{
	struct sigaction act, oact;

	/* Same checks and errno as glibc's __bsd_signal / __sysv_signal. */
	if (handler == SIG_ERR || sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof act);
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	if (mask_self)
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = flags;
	if (sig_action(sig, &act, &oact) < 0)
		return SIG_ERR;
	return oact.sa_handler;
}

/* A read from a signalfd that carries a watched signal: the application
 * consumes its signals there (the signal blocked, no handler), so this is
 * where the signal shows.  We only look; the application gets every byte. */
__attribute__((noinline)) void sig_fd_read(const struct conn *c, const void *buf, ssize_t r)
{
	const struct signalfd_siginfo *si = buf;
	for (ssize_t i = 0; i + (ssize_t)sizeof *si <= r; i += (ssize_t)sizeof *si, si++) {
		uint32_t sig = si->ssi_signo;
		if (sig >= 1 && sig <= 64 && (c->sigmask & (1ull << (sig - 1))) &&
		    sig_watched((int)sig))
			sig_noticed((int)sig);
	}
}

/* signalfd() returned fd for mask: a signalfd that carries a watched signal
 * is recorded with its mask of watched signals (or forgotten, given a new
 * mask without one), so that its reads are looked at (sig_fd_read). */
void sig_fd_opened(int fd, const sigset_t *mask)
{
	int saved = errno;
	uint64_t bits = 0;
	for (int s = 1; s <= 64 && s < NSIG; s++)
		if (sigismember(mask, s) == 1 && sig_watched(s))
			bits |= 1ull << (s - 1);
	if (!conntab_lock_unless_held()) {
		errno = saved;
		return;
	}
	struct conn *c = conntab_slot_locked(fd);
	if (bits && !(c && c->kind == CONN_KIND_SIGNALFD)) {
		struct stat st;
		if (fstat(fd, &st) == 0)
			c = conntab_special_add_locked(fd, CONN_KIND_SIGNALFD, (uint64_t)st.st_ino);
	}
	if (c && c->kind == CONN_KIND_SIGNALFD) {
		if (bits)
			c->sigmask = bits; /* a new mask for an existing signalfd */
		else
			conntab_special_remove_locked(c);
	}
	conntab_unlock();
	errno = saved;
}
