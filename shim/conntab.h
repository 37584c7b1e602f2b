/*
 * SPDX-License-Identifier: MIT
 *
 * The connection table: one record per accepted socket, found by fd through
 * a lock-free filter (arrays indexed by fd) and listed through a uthash
 * table, so that the read path of an fd we do not track costs no lock and
 * no hashing.
 *
 * Locking: conntab_mu guards the hash table, the free list and every write to
 * the filter.  The filter is read without the lock (acquire loads).  Records
 * are never freed, only recycled, so a reader holding a stale
 * pointer can at worst bump the byte count of a recycled record, which makes
 * it look used: the safe direction.  The byte counters are written with plain
 * relaxed stores (no lock prefix); concurrent readers of one fd may lose an
 * increment, never turn a used connection into an unused one.
 *
 * What uthash is for: the set of records, so that a pass, a count or the
 * fork child's reset walks the records (HASH_ITER) instead of the whole fd
 * range.  No lookup hashes: every lookup by fd, locked or not, reads the
 * filter (conntab_fast, conntab_find_locked); the hash is only added to,
 * deleted from and iterated.
 *
 * Pure: no system calls except mmap/munmap for its memory; callers pass
 * identities in.
 */
#ifndef GRACESHIM_CONNTAB_H
#define GRACESHIM_CONNTAB_H

#include "hidden.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uthash.h>

struct conn_peer {
	uint16_t family; /* AF_INET, AF_INET6, AF_UNIX or 0 when unknown */
	uint16_t port;   /* host order */
	uint8_t addr[16];
};

enum conn_flags {
	CONN_RELEASED = 1u << 0, /* we called shutdown() on it */
	CONN_SHARED = 1u << 1,   /* existed at a fork: another process may read it */
	CONN_KERNEL = 1u << 2,   /* TCP: the kernel counts its bytes (TCP_INFO), we do not */
	CONN_USED = 1u << 3,     /* the sweeper saw the kernel count a byte: used for good */
	/* Released with SHUT_RD (not cut): in the read/write filter from then
	 * on, and its writes are looked at until the host reads a byte again
	 * (rx_at_release).  Cleared for good once it has. */
	CONN_MUTED = 1u << 4,
	/* Muted, and the host can only be answering the EOF of the release: it
	 * read that EOF, or the connection had never received a byte when
	 * released.  What it writes now is dropped (HAProxy's "400 Bad
	 * request" to an empty connection): see mute.c, mute_drop(). */
	CONN_EOF_READ = 1u << 5,
	CONN_INHERITED = 1u << 6, /* a listener this process did not listen() on itself: it came
				   * across a fork, or was first seen at an accept (exec, a
				   * message): the process is a worker of someone else's */
	/* CONN_KERNEL, and its first bytes not yet classified (policy idle:
	 * TLS handshake or request? HTTP/2?): its reads are counted and fed to
	 * the classifier (track.c, tls_watch) until it is done with them.  From
	 * then on the filter keeps only the direction of its transfers
	 * (last_dir): the kernel counts its bytes, but its clock cannot order a
	 * request and an answer within one tick. */
	CONN_FIRST = 1u << 7,
};

enum conn_dir { CONN_DIR_NONE, CONN_DIR_RX, CONN_DIR_TX };
/* Set in last_dir by the sweeper when it samples the counters; every
 * transfer stores a bare direction, which clears it: so the sweeper knows the
 * counters moved since its last look without keeping their sum. */
#define CONN_DIR_SEEN 0x80

/* What an fd in the filter is.  Only connections live in the uthash table;
 * listeners (for the listener trigger) and signalfds (to notice a trigger
 * signal consumed there) sit in the filter only, from a small fixed pool.
 * A parked record is a closed connection's, left in the hash table under its
 * fd so that the next connection on that fd number (a server reuses the
 * lowest numbers) takes it over without a uthash delete and add: it is in no
 * filter, and counted, listed and iterated nowhere. */
enum conn_kind { CONN_KIND_CONN, CONN_KIND_LISTENER, CONN_KIND_SIGNALFD, CONN_KIND_PARKED };
#define CONNTAB_MAX_SPECIALS 256
#define CONNTAB_SLAB_BYTES 16384 /* records are mapped this many bytes at a time */

/* 104 bytes, 56 of them uthash's handle: the peer address is not stored
 * (logs ask the kernel with getpeername while the fd is open), the device
 * is the one sockfs device, kept once (shim_sock_dev), and times are
 * milliseconds of the shim's clock in 32 bits (differences wrap after 49
 * days, which only makes a connection that old look younger).  One meaning
 * per field; the counters' word means what the record's kind says. */
struct conn {
	UT_hash_handle hh;
	int fd; /* key */
	uint32_t gen;
	uint32_t ino;                    /* identity from fstat at accept time: sockfs numbers
			       * its inodes in 32 bits (get_next_ino) */
	uint32_t accepted_ms;            /* conn_ms(CLOCK_MONOTONIC); 0: not taken (nothing
			       * configured uses a connection's age) */
	union {                          /* by kind */
		struct {                 /* CONN_KIND_CONN (and PARKED) */
			uint64_t rx, tx; /* bytes the host received/sent through
					  * us while in the read/write filter:
					  * relaxed atomics, hot path */
		};
		uint64_t sigmask; /* CONN_KIND_SIGNALFD: its signals 1..64, bit n-1 */
	};
	uint32_t sample_ms;     /* sweeper only: when the counters were last seen
				 * moving (see CONN_DIR_SEEN); 0: not yet */
	uint32_t rx_at_release; /* CONN_MUTED: the low 32 bits of the bytes the
				 * host had read when released (the kernel's
				 * count for CONN_KERNEL) */
	uint32_t tls;           /* TCP under policy idle: pol_tls_feed()'s state,
				 * written by the reading thread (relaxed); 0:
				 * not watched (yet) */
	uint8_t flags;          /* conn_flags: set when the record is made, under
				 * conntab_mu; then changed only by atomic
				 * read-modify-writes */
	uint8_t family;         /* AF_INET, AF_INET6, AF_UNIX */
	uint8_t last_dir;       /* conn_dir of the last transfer: hot path */
	uint8_t kind;           /* conn_kind */
};

/* A time for the record: milliseconds, never 0 (0 means "not taken"). */
static inline uint32_t conn_ms(uint64_t ns)
{
	uint32_t ms = (uint32_t)(ns / 1000000);
	return ms ? ms : 1;
}

/* fds below CONNTAB_LOW have their slot in one flat array (512 KiB of
 * zero-filled .bss: only the pages of fds in use ever become resident): the
 * hot path is one compare and one load.  Higher fds go through pages. */
#define CONNTAB_LOW 65536
#define CONNTAB_PAGE_BITS 10
#define CONNTAB_PAGE_SIZE (1u << CONNTAB_PAGE_BITS)
#define CONNTAB_PAGES 4096 /* fds below 4M are tracked */
#define CONNTAB_MAX_FD (CONNTAB_PAGES * CONNTAB_PAGE_SIZE)

extern struct conn *conntab_low[CONNTAB_LOW] HIDDEN;
/* The read/write filter: the records whose bytes we count (Unix sockets,
 * signalfds; TCP too when the kernel lacks the counters or the log level is
 * trace; a TCP connection under policy idle until its first bytes are
 * classified, CONN_FIRST; a released one, CONN_MUTED), and under policy
 * idle every TCP connection the kernel counts for us, for the direction of
 * its transfers only (interpose.c, TRACKED_READ: a read stores one byte).
 * Under policy unused such a connection is not in it: its reads and writes
 * cost what an untracked fd's do. */
extern struct conn *conntab_rw[CONNTAB_LOW] HIDDEN;
extern struct conn **conntab_pages[CONNTAB_PAGES] HIDDEN;
/* By fd: the gen of the connection a thread of the host is reading while it
 * may block, before its first byte; CONNTAB_BLOCKED_NEVER when its reads
 * cannot block; 0 otherwise (track.h, track_read_watch; unblock.c,
 * unblock_pass).  Apart from the record: the reading thread holds no lock.
 * Relaxed atomics; fds below CONNTAB_LOW only. */
extern uint32_t conntab_blocked[CONNTAB_LOW] HIDDEN;
/* The socket was non-blocking when last seen (accepted with SOCK_NONBLOCK,
 * or set so with fcntl F_SETFL): no read of it is watched, so an event loop
 * with threads beside it (Node, the JVM) does not wake the sweeper at every
 * connection's first read.  No record's gen takes this value (conntab.c:
 * gens keep the top bit clear). */
#define CONNTAB_BLOCKED_NEVER UINT32_MAX
extern int conntab_mu HIDDEN; /* spin lock: guards the table, free list, filter writes */
/* CONN_FIRST when a new CONN_KERNEL record starts in the read/write filter
 * to have its first bytes classified (policy idle; it stays there for its
 * direction), else 0.  Set once at start-up. */
extern uint8_t conntab_kernel_first HIDDEN;

struct conn *conntab_fast_high(int fd) HIDDEN;

/* Lock-free: the record for fd if we count its bytes, else NULL. */
static inline struct conn *conntab_rw_fast(int fd)
{
	if (__builtin_expect((unsigned)fd < CONNTAB_LOW, 1))
		return __atomic_load_n(&conntab_rw[fd], __ATOMIC_ACQUIRE);
	struct conn *c = conntab_fast_high(fd);
	return c && (conntab_kernel_first ||
		     (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) &
		      (CONN_KERNEL | CONN_MUTED | CONN_FIRST)) != CONN_KERNEL)
		       ? c
		       : NULL;
}

/* Lock-free: the record for fd, or NULL if fd is not tracked. */
static inline struct conn *conntab_fast(int fd)
{
	if (__builtin_expect((unsigned)fd < CONNTAB_LOW, 1))
		return __atomic_load_n(&conntab_low[fd], __ATOMIC_ACQUIRE);
	return conntab_fast_high(fd);
}

/* A connection's flags.  A relaxed load: the reading thread clears
 * CONN_FIRST without the table lock (track.c, rx_rare), so even a read
 * under the lock may meet a concurrent change. */
static inline uint8_t conn_flags(const struct conn *c)
{
	return __atomic_load_n(&c->flags, __ATOMIC_RELAXED);
}

static inline void conn_add_rx(struct conn *c, uint64_t n)
{
	__atomic_store_n(&c->rx, __atomic_load_n(&c->rx, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
	__atomic_store_n(&c->last_dir, CONN_DIR_RX, __ATOMIC_RELAXED);
}

static inline void conn_add_tx(struct conn *c, uint64_t n)
{
	__atomic_store_n(&c->tx, __atomic_load_n(&c->tx, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
	__atomic_store_n(&c->last_dir, CONN_DIR_TX, __ATOMIC_RELAXED);
}

static inline uint64_t conn_tx(const struct conn *c)
{
	return __atomic_load_n(&c->tx, __ATOMIC_RELAXED);
}

static inline uint64_t conn_rx(const struct conn *c)
{
	return __atomic_load_n(&c->rx, __ATOMIC_RELAXED);
}

/* All of the following need conntab_mu held. */
/* Inserts (replacing any stale record for the same fd); NULL when out of
 * memory or fd too large: the socket is then simply not tracked.  Inline
 * below, with conntab_remove_locked. */
struct conn *conntab_find_locked(int fd);
size_t conntab_count_locked(void);
/* Copies (fd, gen) of up to max records; returns how many were copied. */
struct conn_ref {
	int fd;
	uint32_t gen;
};
size_t conntab_refs_locked(struct conn_ref *out, size_t max);
/* References to the connections at fds from *next on, in fd order, at most
 * max; *next moves past the last fd looked at.  A walk of the fd slots, not
 * of the hash: a walk in chunks goes on where the last chunk stopped,
 * whatever was removed meanwhile, in time linear in the table (the
 * release in a signal handler, which cannot allocate).  0: done. */
size_t conntab_refs_by_fd_locked(struct conn_ref *out, size_t max, unsigned *next);
/* Calls fn on the record of every open connection with lo <= fd <= hi; fn
 * may remove that record. */
void conntab_each_conn_in_locked(unsigned lo, unsigned hi, void (*fn)(struct conn *));
/* Adds the byte counts of the open records. */
void conntab_add_open_bytes_locked(uint64_t *rx, uint64_t *tx);
/* The record in the filter for fd, of any kind (NULL if none). */
static inline struct conn *conntab_slot_locked(int fd)
{
	return conntab_fast(fd);
}
/* Listeners and signalfds: added to the filter (replacing a stale record of
 * another kind), removed, counted.  NULL when the pool is full. */
struct conn *conntab_special_add_locked(int fd, enum conn_kind kind, uint64_t ino);
void conntab_special_remove_locked(struct conn *c);
size_t conntab_special_count_locked(enum conn_kind kind);
/* fds of the specials within [lo, hi]; returns how many (at most max). */
size_t conntab_special_fds_locked(unsigned lo, unsigned hi, int *out, size_t max);
/* Puts a connection into the read/write filter (a released CONN_KERNEL one:
 * its writes must be looked at). */
void conntab_rw_add_locked(struct conn *c);
/* A CONN_KERNEL connection past its first bytes (a dup's copy: track.c,
 * track_dup_slow; the reading thread clears CONN_FIRST itself, rx_rare):
 * CONN_FIRST off; out of the read/write filter unless it is muted or the
 * policy is idle (which needs its direction). */
void conntab_rw_remove_locked(struct conn *c);
/* Marks every record CONN_SHARED (at fork, in parent and child). */
void conntab_mark_shared_locked(void);
/* In the child of a fork: its listeners are inherited, and its statistics
 * start from zero (what the parent accepted is the parent's history). */
void conntab_after_fork_child_locked(void);
/* Drops everything (the child of a fork keeps records: not used there). */
void conntab_clear_locked(void);

/* Counters for GRACESHIM_STATS, guarded by conntab_mu. */
struct conntab_stats {
	uint64_t accepted;
	uint64_t closed_rx, closed_tx; /* bytes of connections already forgotten */
	uint64_t peak;                 /* most records at once */
};
extern struct conntab_stats conntab_stats;

/* ---- accept and close, inline: every connection's two table calls -------
 * The state they touch is conntab.c's, under conntab_mu. */
/* By fd: a closed connection's record, still hashed (see CONN_KIND_PARKED). */
extern struct conn *conntab_parked[CONNTAB_LOW] HIDDEN;
extern size_t conntab_live_n HIDDEN;   /* records of open connections */
extern int conntab_sentinel_in HIDDEN; /* the table's sentinel is in (conntab.c) */
extern uint32_t conntab_next_gen HIDDEN;

struct conn *conntab_insert_slow_locked(int fd, uint64_t ino, int family, uint32_t accepted_ms,
					bool kernel_counted) HIDDEN;
void conntab_remove_slow_locked(struct conn *c) HIDDEN;

static inline void conntab_set_rw(int fd, struct conn *c)
{
	if ((unsigned)fd < CONNTAB_LOW)
		__atomic_store_n(&conntab_rw[fd], c, __ATOMIC_RELEASE);
}

/* Every field but the handle (which the hash owns), so no memset. */
static inline void conntab_init_record(struct conn *c, int fd, uint64_t ino, int family,
				       uint32_t accepted_ms, bool kernel_counted)
{
	c->fd = fd;
	c->gen = conntab_next_gen++ & 0x7fffffffu; /* never CONNTAB_BLOCKED_NEVER */
	c->ino = (uint32_t)ino;
	c->accepted_ms = accepted_ms;
	c->rx = 0;
	c->tx = 0;
	c->sample_ms = 0;
	c->rx_at_release = 0;
	c->tls = 0;
	__atomic_store_n(&c->flags,
			 (uint8_t)(kernel_counted ? CONN_KERNEL | conntab_kernel_first : 0),
			 __ATOMIC_RELAXED);
	c->family = (uint8_t)family;
	c->last_dir = CONN_DIR_NONE;
	c->kind = CONN_KIND_CONN;
}

static inline struct conn *conntab_publish_locked(struct conn **slot, struct conn *c)
{
	__atomic_store_n(slot, c, __ATOMIC_RELEASE);
	if ((conn_flags(c) & (CONN_KERNEL | CONN_FIRST)) != CONN_KERNEL)
		conntab_set_rw(c->fd, c);
	conntab_stats.accepted++;
	if (++conntab_live_n > conntab_stats.peak)
		conntab_stats.peak = conntab_live_n;
	return c;
}

/* The next connection on fd takes its parked record over: it is under its
 * key in the hash already. */
static inline struct conn *conntab_unpark_locked(struct conn **slot, int fd, uint64_t ino,
						 int family, uint32_t accepted_ms,
						 bool kernel_counted)
{
	struct conn *c = conntab_parked[fd];
	conntab_parked[fd] = NULL;
	conntab_init_record(c, fd, ino, family, accepted_ms, kernel_counted);
	return conntab_publish_locked(slot, c);
}

/* On every accept.  The common case, a server's fd number coming round again,
 * takes the parked record over: no hashing, no call; anything else (a new fd
 * number, a high fd, a stale record, the first record) is out of line. */
static inline struct conn *conntab_insert_locked(int fd, uint64_t ino, int family,
						 uint32_t accepted_ms, bool kernel_counted)
{
	if (__builtin_expect((unsigned)fd < CONNTAB_LOW && !conntab_low[fd] &&
				     conntab_sentinel_in && conntab_parked[fd] != NULL,
			     1))
		return conntab_unpark_locked(&conntab_low[fd], fd, ino, family, accepted_ms,
					     kernel_counted);
	return conntab_insert_slow_locked(fd, ino, family, accepted_ms, kernel_counted);
}

/* On every close of a connection: its record leaves the filter and is
 * parked under its fd number, keeping its place in the hash (there is at
 * most one record per fd there, as an insert takes the parked record
 * over).  A high fd's record leaves the hash (out of line). */
static inline void conntab_remove_locked(struct conn *c)
{
	int fd = c->fd;
	if (__builtin_expect((unsigned)fd < CONNTAB_LOW && conntab_low[fd] == c, 1)) {
		__atomic_store_n(&conntab_low[fd], NULL, __ATOMIC_RELEASE);
		__atomic_store_n(&conntab_rw[fd], NULL, __ATOMIC_RELEASE);
		conntab_stats.closed_rx += conn_rx(c);
		conntab_stats.closed_tx += conn_tx(c);
		conntab_live_n--;
		c->kind = CONN_KIND_PARKED;
		conntab_parked[fd] = c;
		return;
	}
	conntab_remove_slow_locked(c);
}

/* A spin lock rather than a mutex: every hold is short (a hash insert or
 * delete; the sweeper's few system calls for one connection), and a mutex
 * pair costs a hundred instructions on every accept and close.  Inline: an
 * uncontended accept or close pays one exchange and one store; a waiter spins
 * out of line and yields after a while, so a preempted holder gets the CPU. */
void conntab_lock_contended(void);

/* The fd whose record the sweeper is acting on outside the lock (its
 * system calls: fstat, TCP_INFO, shutdown), -1 when none.  Holding the table
 * lock across them made the host's close() wait a whole sweep on a spin
 * lock it hardly ever won: nginx handled none of the EOFs while thousands
 * of connections were released.  So the sweeper claims the one fd
 * instead: the record is neither forgotten nor reused meanwhile, because
 * every close path of ours waits for the claim on its number to end before
 * the real close (conntab_wait_unclaimed_locked).  One examiner at a time:
 * the sweeper thread, or our handler in a single-threaded host. */
extern int conntab_claimed_fd HIDDEN;

/* Whether this thread holds (or is taking or releasing) conntab_mu.  Set
 * before the exchange and cleared after the release: a signal handler that
 * interrupts its own thread anywhere in between and calls a wrapper (close()
 * and fork() are async-signal-safe) sees it and skips the bookkeeping instead
 * of spinning forever on a lock its thread will never release. */
extern __thread int conntab_held_here __attribute__((tls_model("initial-exec"))) HIDDEN;

static inline void conntab_lock(void)
{
	conntab_held_here = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* the flag is set before the lock is taken */
	if (__builtin_expect(__atomic_exchange_n(&conntab_mu, 1, __ATOMIC_ACQUIRE), 0))
		conntab_lock_contended();
}

static inline bool conntab_trylock(void)
{
	conntab_held_here = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (!__atomic_exchange_n(&conntab_mu, 1, __ATOMIC_ACQUIRE))
		return true;
	conntab_held_here = 0;
	return false;
}

static inline void conntab_unlock(void)
{
	__atomic_store_n(&conntab_mu, 0, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	conntab_held_here = 0;
}

/* For the wrappers: false (and no lock) when this thread is already inside
 * the table, which only a signal handler interrupting it can be.  A skipped
 * forget leaves a stale record, which the identity check drops later; a
 * skipped accept is simply not tracked. */
static inline bool conntab_lock_unless_held(void)
{
	if (__builtin_expect(conntab_held_here, 0))
		return false;
	conntab_lock();
	return true;
}

/* For the close paths, with the lock held: returns once no fd in [lo, hi]
 * is claimed, releasing the lock while it waits (the sweeper needs it to
 * finish).  A claim lasts a few system calls. */
void conntab_wait_unclaimed_slow(unsigned lo, unsigned hi);
static inline void conntab_wait_unclaimed_locked(unsigned lo, unsigned hi)
{
	int c = __atomic_load_n(&conntab_claimed_fd, __ATOMIC_ACQUIRE);
	/* -1 (none) as unsigned is in every range that ends at ~0u:
	 * closefrom() and close_range(n, ~0u) waited for ever on it. */
	if (__builtin_expect(c >= 0 && (unsigned)c - lo <= hi - lo, 0))
		conntab_wait_unclaimed_slow(lo, hi);
}

/* Formats the peer as "127.0.0.1:49501", "[::1]:8080" or "unix". */
void conn_peer_format(const struct conn_peer *p, char *buf, size_t len);
void conn_peer_from_sockaddr(struct conn_peer *p, const struct sockaddr *sa, socklen_t len);

#endif
