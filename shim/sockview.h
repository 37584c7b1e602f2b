/*
 * SPDX-License-Identifier: MIT
 *
 * The kernel's view of one socket fd: what it is (family, type, listener,
 * local port, identity) and what the kernel counted on it (TCP_INFO with
 * its length check, bytes waiting each way, the FIN arithmetic).  Pure:
 * only getsockopt, getsockname, ioctl and fstat, which the library does not
 * interpose, so every path that decides a release (the sweeper, the
 * unblock and workers paths, the launcher's outside mode) and the unit
 * tests link it as is.  Each function leaves errno as it found it.
 */
#ifndef GRACESHIM_SOCKVIEW_H
#define GRACESHIM_SOCKVIEW_H

#include "hidden.h"

#include <linux/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* The system calls that take another process's socket to examine it (the
 * workers path, the launcher's outside mode): numbered alike on every
 * architecture (the unified table), for headers older than Linux 5.6. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* TCP states (include/net/tcp_states.h; netinet/tcp.h, which names them,
 * clashes with linux/tcp.h). */
enum sockview_tcp_state {
	SOCKVIEW_ESTABLISHED = 1,
	SOCKVIEW_FIN_WAIT2 = 5,
	SOCKVIEW_TIME_WAIT = 6,
	SOCKVIEW_CLOSE = 7,
	SOCKVIEW_CLOSE_WAIT = 8,
	SOCKVIEW_LAST_ACK = 9,
	SOCKVIEW_LISTEN = 10,
	SOCKVIEW_CLOSING = 11,
};

/* Whether a TCP_INFO answer of len bytes holds field (an older kernel
 * returns a shorter struct: tcpi_bytes_received needs Linux 4.1,
 * tcpi_data_segs_in 4.6, tcpi_bytes_retrans 4.19). */
#define SOCKVIEW_HAS(len, field)                                                                   \
	((size_t)(len) >= offsetof(struct tcp_info, field) + sizeof(((struct tcp_info *)0)->field))

/* What to read in sockview_look(): each costs one system call. */
enum {
	SOCKVIEW_KIND = 1,  /* family, type, protocol, listener (4 getsockopt) */
	SOCKVIEW_ADDR = 2,  /* family and local port (getsockname) */
	SOCKVIEW_ID = 4,    /* st_dev, st_ino */
	SOCKVIEW_TCP = 8,   /* TCP_INFO; also says listener (TCP_LISTEN) */
	SOCKVIEW_INQ = 16,  /* SIOCINQ */
	SOCKVIEW_OUTQ = 32, /* SIOCOUTQ */
	SOCKVIEW_ALL = 63,
};

struct sockview {
	/* SOCKVIEW_KIND or SOCKVIEW_ADDR: family 0 for an fd that is no
	 * socket (a pipe, a file).  SOCKVIEW_ADDR: port in network order, 0
	 * for a family without ports.  TCP_INFO alone (SOCKVIEW_TCP) is the
	 * cheap way to know a TCP socket: it answers for TCP sockets only. */
	int family, type, protocol;
	bool listener;
	uint16_t port;
	/* SOCKVIEW_ID */
	uint64_t dev, ino;
	/* SOCKVIEW_TCP: tcp is true when TCP_INFO answered and its answer
	 * covers tcpi_bytes_received; the rest is then the kernel's. */
	bool tcp;
	uint8_t state;
	uint64_t bytes_received; /* as the kernel counts: a FIN is one byte */
	uint64_t rx, tx;         /* data received / acknowledged, FINs left out */
	int64_t data_segs_in;    /* -1: kernel older than 4.6 */
	uint32_t last_data_recv_ms, last_data_sent_ms;
	uint32_t unacked; /* a listener: its accept queue's length */
	/* SOCKVIEW_INQ / SOCKVIEW_OUTQ: -1 when not read or refused */
	int inq, outq;
};

/* Reads what the bits of want ask for.  Returns 0, or -1 when fd is not
 * open (EBADF) or, with SOCKVIEW_KIND or SOCKVIEW_ADDR asked, is no
 * socket: family 0.  A part the kernel refuses stays at its "unknown"
 * value. */
int sockview_look(int fd, unsigned want, struct sockview *v) HIDDEN;

/* TCP_INFO into *ti (zeroed first) with its length in *len.  Returns 0 when
 * the answer covers tcpi_bytes_received, else -1. */
int sockview_tcp_info(int fd, struct tcp_info *ti, socklen_t *len) HIDDEN;

/* The bytes of a connection from its TCP_INFO, FINs left out: data
 * received (rx) and data of ours the peer acknowledged (tx). */
void sockview_data_bytes(const struct tcp_info *ti, socklen_t len, uint64_t *rx,
			 uint64_t *tx) HIDDEN;

/* Bytes the owner of fd has read from it: data received less data
 * waiting.  SIOCINQ is asked first, so a byte arriving in between counts
 * as read (the side that loses no request).  -1 when unknown. */
int64_t sockview_read_bytes(int fd) HIDDEN;

/* The time since anything moved either way, from TCP_INFO. */
uint32_t sockview_quiet_ms(const struct tcp_info *ti) HIDDEN;

/* fd is still the socket identified by (dev, ino): the "is this still my
 * socket" check before any write or shutdown() on a number.  dev 0 skips
 * the device; an ino that fits 32 bits is compared on 32 bits (a record
 * that keeps only those). */
bool sockview_same(int fd, uint64_t dev, uint64_t ino) HIDDEN;

/* A TCP connection nobody has used: established, never received a byte
 * (nor a FIN), nothing waiting, and at least grace_ms old (for a
 * connection that never received data, the kernel's time since the last
 * data received is its age).  v needs SOCKVIEW_TCP and SOCKVIEW_INQ
 * (a listener never qualifies, when SOCKVIEW_KIND was read too). */
bool sockview_never_used(const struct sockview *v, uint32_t grace_ms) HIDDEN;

#endif
