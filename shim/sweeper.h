/*
 * The sweeper thread: does the work a signal handler must not do.
 */
#ifndef GRACESHIM_SWEEPER_H
#define GRACESHIM_SWEEPER_H

#include <stdbool.h>

/* From the signal handler: async-signal-safe (atomic stores and one write). */
void sweeper_signal(int sig);
/* From the accept path: starts the thread on first use. */
void sweeper_ensure_started(void);
/* From the accept path: a new connection the sweeper may have to time. */
void sweeper_accepted(void);
bool sweeper_draining(void);
/* The last listening socket was closed (listener trigger). */
void sweeper_listener_closed(void);
/* A socket started listening: a drain started by the listener trigger
 * ends (the process accepts again). */
void sweeper_listening(void);
void sweeper_after_fork_child(void);
/* The host is about to close or replace fds lo..hi (table lock not held). */
void sweeper_fds_closing(unsigned lo, unsigned hi);
/* real_hook: runs in a wrapper after REAL()'s fast path was closed. */
void sweeper_hook(void);

#endif
