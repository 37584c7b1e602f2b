/*
 * SPDX-License-Identifier: MIT
 *
 * Signal interposition: our handler sits in front of the application's for
 * the watched signals (sig_watched) and chains to it with the
 * application's semantics.
 */
#ifndef GRACESHIM_SIGNALS_H
#define GRACESHIM_SIGNALS_H

#include "shim.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* The signals we look at: those of GRACESHIM_SIGNALS (a trigger at once),
 * and, with the listener trigger on, those servers stop on (nginx, unicorn
 * and thin stop on SIGQUIT, HAProxy on SIGUSR1, Apache on SIGWINCH, most on
 * SIGINT or SIGTERM).  Handling one is not a stop by itself; closing the
 * last listener soon after is (README, "When it drains").  Not SIGHUP nor
 * SIGUSR2, which servers use to reload or re-exec (some close and reopen
 * their listener then), nor the signals the kernel raises for faults,
 * timers, children, I/O or job control: their handlers run often and never
 * start a stop. */
static inline bool sig_stop_candidate(int sig)
{
	return sig == SIGINT || sig == SIGQUIT || sig == SIGTERM || sig == SIGUSR1 ||
	       sig == SIGWINCH;
}

static inline bool sig_watched(int sig)
{
	return shim_is_trigger(sig) ||
	       ((shim_cfg.triggers & TRIGGER_LISTENER) && sig_stop_candidate(sig));
}

/* The process took signal sig (its handler ran, or sigwait or a signalfd
 * gave it): a trigger signal starts the drain, another watched one is
 * noted.  Async-signal-safe. */
void sig_noticed(int sig);

/* sigaction() for the shim: a watched signal's handler goes behind ours.
 * The wrappers start the shim first (start.h); this reads only whether it
 * is active. */
int sig_action(int sig, const struct sigaction *act, struct sigaction *oact);
/* signal(), sysv_signal() and bsd_signal() as glibc implements them, on top
 * of sig_action(): flags and self-masking as given. */
__sighandler_t sig_signal(int sig, __sighandler_t handler, int flags, int mask_self);

/* At start-up, once the configuration is known: a handler the host
 * installed before that (a preinit_array function, another library's early
 * constructor, any path that did not reach our sigaction()) is put behind
 * ours now, exactly as if it had been installed through us. */
void sig_adopt_existing(void);

/* signalfd(): applications that block a trigger signal and take it from a
 * signalfd.  The wrapper's fd is recorded (sig_fd_opened); a read of it is
 * decoded (sig_fd_read, conn: its record): a trigger signal read there
 * starts the drain, and the application gets every byte. */
struct conn;
void sig_fd_opened(int fd, const sigset_t *mask);
void sig_fd_read(const struct conn *c, const void *buf, ssize_t r);

void sig_lock_for_fork(void);
void sig_unlock_after_fork(void);

#endif
