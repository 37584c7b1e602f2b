/*
 * Signal interposition: our handler sits in front of the application's for
 * the trigger signals and chains to it with the application's semantics.
 */
#ifndef GRACESHIM_SIGNALS_H
#define GRACESHIM_SIGNALS_H

#include <signal.h>

int sig_action(int sig, const struct sigaction *act, struct sigaction *oact);
/* signal(), sysv_signal() and bsd_signal() as glibc implements them, on top
 * of sig_action(): flags and self-masking as given. */
__sighandler_t sig_signal(int sig, __sighandler_t handler, int flags, int mask_self);

/* At start-up, once the configuration is known: a handler the host
 * installed before that (a preinit_array function, another library's early
 * constructor, any path that did not reach our sigaction()) is put behind
 * ours now, exactly as if it had been installed through us. */
void sig_adopt_existing(void);

/* True while this thread runs our handler (and the application's handler
 * chained from it): no thread may be started there. */
int sig_in_handler(void);

void sig_lock_for_fork(void);
void sig_unlock_after_fork(void);

#endif
