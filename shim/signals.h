/*
 * SPDX-License-Identifier: MIT
 *
 * Signal interposition: our handler sits in front of the application's for
 * the trigger signals and chains to it with the application's semantics.
 */
#ifndef GRACESHIM_SIGNALS_H
#define GRACESHIM_SIGNALS_H

#include <signal.h>
#include <sys/types.h>

/* sigaction() for the shim: a trigger signal's handler goes behind ours.
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
