/*
 * SPDX-License-Identifier: MIT
 *
 * The workers of a draining master.  A pre-fork server stops its workers in
 * many ways (a relayed signal that may not be a trigger signal, a message on
 * a pipe, a channel), and a sync worker is often blocked reading the very
 * connection that must be released: nothing in the worker runs to notice.
 * So when a process that forked children while it listened starts draining,
 * it releases its children's never-used accepted connections itself.
 */
#ifndef GRACESHIM_WORKERS_H
#define GRACESHIM_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* fork() returned child: a worker to reach if it holds one of our
 * listening sockets or connections we handed over.  listening: we listen
 * (what workers_any() says). */
void workers_forked(pid_t child, bool listening);
/* A connection of ours (its socket inode) was handed to another process
 * over a Unix socket (SCM_RIGHTS): a child that holds it is a worker. */
void workers_handed(uint32_t ino);
/* A listening socket of this process: a child that holds this very socket
 * is a worker, and its address identifies the connections a worker accepted
 * on it. */
void workers_note_listener(int fd);
/* Releases, in every recorded child still alive that holds one of our
 * listening sockets (at the number it has here, or anywhere when thorough;
 * any child, when we handed connections over), the established TCP
 * connections accepted on one of them (same local address) that never
 * received a byte, have nothing queued and are at least grace_ms old:
 * shutdown(SHUT_RD) on a
 * copy taken with pidfd_getfd() (Linux 5.6+, ptrace permission over the
 * child).  Async-signal-safe (system calls only: no malloc, no stdio), so
 * our signal handler may call it.  Returns how many were released; *denied
 * is set when the kernel refused (no pidfd_getfd, no permission). */
unsigned workers_release(uint64_t grace_ms, bool thorough, int *denied);
/* Whether a child was forked while we listened, or a connection handed
 * over (cheap). */
int workers_any(void);

#endif
