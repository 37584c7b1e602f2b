/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel's socket diagnostics (NETLINK_SOCK_DIAG, inet_diag) for what
 * one fd cannot tell: which TCP sockets of this network namespace listen.
 * Used where a socket was not accepted here (a connection handed over from
 * another process: track.c, track_handed) and by the launcher's outside
 * mode (its table of listeners).  Its own short-lived netlink socket per
 * question; socket, sendto, recvfrom and close only (in the library the
 * last three are our wrappers, which pass an untracked fd straight on).
 * Each function leaves errno as it found it.
 */
#ifndef GRACESHIM_SOCKDIAG_H
#define GRACESHIM_SOCKDIAG_H

#include "hidden.h"

#include <linux/inet_diag.h>
#include <stdbool.h>
#include <sys/socket.h>

/* Whether a connection to local (an AF_INET or AF_INET6 address, as
 * getsockname() gives it for a connected TCP socket) would land on a
 * listening socket: the kernel's own lookup of a listener for that address
 * and port (a wildcard or SO_REUSEPORT listener included).  So a socket
 * with that local address was accepted, not connected out: an outbound
 * connection's local port is never one a listener holds.  False when the
 * kernel cannot answer (no sock_diag). */
bool sockdiag_listening_on(const struct sockaddr_storage *local) HIDDEN;

/* Calls fn for every TCP listener of this network namespace (both
 * families).  Returns 0, or -1 when the kernel has no socket diagnostics. */
int sockdiag_listeners(void (*fn)(const struct inet_diag_msg *m, void *ctx), void *ctx) HIDDEN;

#endif
