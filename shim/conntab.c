/*
 * SPDX-License-Identifier: MIT
 *
 * Connection table over uthash.  See conntab.h for the locking rules.
 *
 * uthash is built with HASH_NONFATAL_OOM: running out of memory while
 * adding a record stops tracking that one socket instead of calling exit()
 * inside someone's production server.
 */
#define HASH_NONFATAL_OOM 1
/* fds are small integers: a multiplicative hash spreads them over the
 * buckets as well as Jenkins' and costs two instructions. */
#define HASH_FUNCTION(keyptr, keylen, hashv)                                                       \
	((hashv) = (unsigned)(*(const int *)(keyptr)) * 2654435761u, (void)(keylen))
/* The table allocates with mmap, never malloc: accept and dup insert under
 * the lock, and a signal handler interrupting that may fork() (async-signal-
 * safe); glibc's fork takes malloc's locks, so an insert inside malloc would
 * deadlock a fork the host makes without us (its accept never allocates). */
#include <stddef.h>
static void *table_alloc(size_t size);
static void table_free(void *p, size_t size);
#define uthash_malloc(sz) table_alloc(sz)
#define uthash_free(ptr, sz) table_free(ptr, sz)
#include "conntab.h"
#include "sync.h"
#include <sys/mman.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oom_hit;

/* errno as it was: an accept's bookkeeping does not save it (track.c). */
static void *table_alloc(size_t size)
{
	int saved = errno;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	errno = saved;
	return p == MAP_FAILED ? NULL : p;
}

static void table_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (oom_hit = 1, (void)(obj))

struct conn *conntab_low[CONNTAB_LOW];
struct conn *conntab_rw[CONNTAB_LOW];
uint32_t conntab_blocked[CONNTAB_LOW];

struct conn **conntab_pages[CONNTAB_PAGES];
int conntab_mu;
uint8_t conntab_kernel_first;
__thread int conntab_held_here;

static struct conn *table; /* uthash head */
struct conn *conntab_parked[CONNTAB_LOW];
size_t conntab_live_n;
static struct conn *free_list; /* recycled records, linked through hh.next */
/* uthash frees its bucket array whenever the table empties and allocates it
 * again on the next add: with one connection coming and going that is two
 * mallocs and two frees per connection.  A sentinel record that is never
 * removed keeps the table from emptying. */
static struct conn sentinel = {.fd = -1};
int conntab_sentinel_in;
/* Records come a mapping at a time (CONNTAB_SLAB_BYTES: 170 of them, 64
 * bytes unused): no allocator header each, no page half empty. */
#define SLAB (CONNTAB_SLAB_BYTES / sizeof(struct conn))
uint32_t conntab_next_gen = 1;
struct conntab_stats conntab_stats;

/* The lock is taken: spin, then yield (see conntab_lock). */
int conntab_claimed_fd = -1;

void conntab_wait_unclaimed_slow(unsigned lo, unsigned hi)
{
	unsigned spins = 0;
	for (;;) {
		int c = __atomic_load_n(&conntab_claimed_fd, __ATOMIC_ACQUIRE);
		if (c < 0 || (unsigned)c - lo > hi - lo)
			return;
		conntab_unlock();
		sync_backoff(&spins);
		conntab_lock();
	}
}

void conntab_lock_contended(void)
{
	sync_spin_wait(&conntab_mu);
}

struct conn *conntab_fast_high(int fd)
{
	if ((unsigned)fd >= CONNTAB_MAX_FD)
		return NULL;
	struct conn **page = __atomic_load_n(&conntab_pages[(unsigned)fd >> CONNTAB_PAGE_BITS],
					     __ATOMIC_ACQUIRE);
	if (!page)
		return NULL;
	return __atomic_load_n(&page[(unsigned)fd & (CONNTAB_PAGE_SIZE - 1)], __ATOMIC_ACQUIRE);
}

/* A page of slots for fds at or above CONNTAB_LOW, allocated on first use. */
__attribute__((noinline, cold)) static struct conn **slot_high(int fd, bool create)
{
	unsigned p = (unsigned)fd >> CONNTAB_PAGE_BITS;
	struct conn **page = conntab_pages[p];

	if (!page && create) {
		page = table_alloc(CONNTAB_PAGE_SIZE * sizeof *page); /* zeroed */
		if (!page)
			return NULL;
		__atomic_store_n(&conntab_pages[p], page, __ATOMIC_RELEASE);
	}
	return page ? &page[(unsigned)fd & (CONNTAB_PAGE_SIZE - 1)] : NULL;
}

/* fd must be below CONNTAB_MAX_FD. */
static inline struct conn **slot_for(int fd, bool create)
{
	if (__builtin_expect((unsigned)fd < CONNTAB_LOW, 1))
		return &conntab_low[fd];
	return slot_high(fd, create);
}

/* The filter already maps fd -> record under this lock: no hashing. */
struct conn *conntab_find_locked(int fd)
{
	struct conn **slot = (unsigned)fd < CONNTAB_MAX_FD ? slot_for(fd, false) : NULL;
	struct conn *c = slot ? *slot : NULL;
	return c && c->kind == CONN_KIND_CONN ? c : NULL;
}

/* A record leaves the hash for the free list (a high fd's on close; any at
 * conntab_clear_locked). */
__attribute__((noinline)) static void unhash(struct conn *c)
{
	HASH_DEL(table, c);
	c->hh.next = free_list;
	free_list = c;
}

/* A high fd's record, or one no longer in its slot (conntab.h has the
 * common case). */
void conntab_remove_slow_locked(struct conn *c)
{
	int fd = c->fd;
	struct conn **slot = (unsigned)fd < CONNTAB_MAX_FD ? slot_for(fd, false) : NULL;
	if (slot && *slot == c) {
		__atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
		conntab_set_rw(fd, NULL);
	}
	conntab_stats.closed_rx += conn_rx(c);
	conntab_stats.closed_tx += conn_tx(c);
	conntab_live_n--;
	if ((unsigned)fd < CONNTAB_LOW) {
		c->kind = CONN_KIND_PARKED;
		conntab_parked[fd] = c;
		return;
	}
	unhash(c);
}

/* Refills the free list (see SLAB); records are never freed, only recycled. */
__attribute__((noinline, cold)) static bool refill(void)
{
	struct conn *slab = table_alloc(CONNTAB_SLAB_BYTES);
	if (!slab)
		return false;
	for (size_t i = 0; i < SLAB; i++) {
		slab[i].hh.next = free_list;
		free_list = &slab[i];
	}
	return true;
}

/* Cold: the table's first record, or a stale one still holding the slot. */
__attribute__((noinline, cold)) static bool insert_prepare(struct conn **slot)
{
	struct conn *c = *slot;
	/* A record still here for this fd number is stale: the fd was closed
	 * behind our back (fclose, a raw syscall) and the number reused. */
	if (c && c->kind == CONN_KIND_CONN)
		conntab_remove_locked(c);
	else if (c)
		conntab_special_remove_locked(c);
	if (!conntab_sentinel_in) {
		oom_hit = 0;
		HASH_ADD_INT(table, fd, &sentinel);
		if (oom_hit)
			return false;
		conntab_sentinel_in = 1;
	}
	return true;
}

/* Everything but the common case: a new fd number (uthash add), a high fd,
 * a stale record in the slot, the first record, an empty free list. */
struct conn *conntab_insert_slow_locked(int fd, uint64_t ino, int family, uint32_t accepted_ms,
					bool kernel_counted)
{
	struct conn *c, **slot;

	if ((unsigned)fd >= CONNTAB_MAX_FD || !(slot = slot_for(fd, true)))
		return NULL;
	if ((*slot != NULL || !conntab_sentinel_in) && !insert_prepare(slot))
		return NULL;
	if ((unsigned)fd < CONNTAB_LOW && conntab_parked[fd])
		return conntab_unpark_locked(slot, fd, ino, family, accepted_ms, kernel_counted);
	if (!free_list && !refill())
		return NULL;
	c = free_list;
	free_list = c->hh.next;
	conntab_init_record(c, fd, ino, family, accepted_ms, kernel_counted);
	oom_hit = 0;
	HASH_ADD_INT(table, fd, c);
	if (oom_hit) {
		c->hh.next = free_list;
		free_list = c;
		return NULL;
	}
	return conntab_publish_locked(slot, c);
}

void conntab_rw_add_locked(struct conn *c)
{
	conntab_set_rw(c->fd, c);
}

void conntab_rw_remove_locked(struct conn *c)
{
	__atomic_and_fetch(&c->flags, (uint8_t)~CONN_FIRST, __ATOMIC_RELAXED);
	if (!conntab_kernel_first && !(conn_flags(c) & CONN_MUTED) &&
	    (unsigned)c->fd < CONNTAB_LOW && conntab_rw[c->fd] == c)
		conntab_set_rw(c->fd, NULL);
}

size_t conntab_count_locked(void)
{
	return conntab_live_n;
}

size_t conntab_refs_locked(struct conn_ref *out, size_t max)
{
	struct conn *c, *tmp;
	size_t n = 0;

	HASH_ITER(hh, table, c, tmp)
	{
		if (c == &sentinel || c->kind == CONN_KIND_PARKED)
			continue;
		if (n == max)
			break;
		out[n].fd = c->fd;
		out[n].gen = c->gen;
		n++;
	}
	return n;
}

void conntab_each_conn_in_locked(unsigned lo, unsigned hi, void (*fn)(struct conn *))
{
	struct conn *c, *tmp;
	/* HASH_ITER keeps the next element: fn may take the current one out. */
	HASH_ITER(hh, table, c, tmp)
	{
		if (c != &sentinel && c->kind == CONN_KIND_CONN && (unsigned)c->fd >= lo &&
		    (unsigned)c->fd <= hi)
			fn(c);
	}
}

size_t conntab_refs_by_fd_locked(struct conn_ref *out, size_t max, unsigned *next)
{
	size_t n = 0;
	unsigned fd = *next;
	for (; fd < CONNTAB_MAX_FD && n < max; fd++) {
		struct conn *c;
		if (fd < CONNTAB_LOW) {
			c = conntab_low[fd];
		} else {
			struct conn **page = conntab_pages[fd >> CONNTAB_PAGE_BITS];
			if (!page) {
				fd |= CONNTAB_PAGE_SIZE - 1; /* the next page */
				continue;
			}
			c = page[fd & (CONNTAB_PAGE_SIZE - 1)];
		}
		if (c && c->kind == CONN_KIND_CONN) {
			out[n].fd = c->fd;
			out[n].gen = c->gen;
			n++;
		}
	}
	*next = fd;
	return n;
}

static struct conn specials[CONNTAB_MAX_SPECIALS]; /* kind 0: free */

struct conn *conntab_special_add_locked(int fd, enum conn_kind kind, uint64_t ino)
{
	struct conn *c, **slot;

	if (fd < 0 || (unsigned)fd >= CONNTAB_MAX_FD || kind == CONN_KIND_CONN)
		return NULL;
	c = conntab_slot_locked(fd);
	if (c && c->kind == kind && c->ino == (uint32_t)ino)
		return c;
	if (c && c->kind == CONN_KIND_CONN)
		conntab_remove_locked(c); /* stale: the number was reused */
	else if (c)
		conntab_special_remove_locked(c);
	if (!(slot = slot_for(fd, true)))
		return NULL;
	for (size_t i = 0; i < CONNTAB_MAX_SPECIALS; i++) {
		if (specials[i].kind == CONN_KIND_CONN) {
			c = &specials[i];
			memset(c, 0, sizeof *c);
			c->fd = fd;
			c->kind = (uint8_t)kind;
			c->ino = (uint32_t)ino;
			c->gen = conntab_next_gen++;
			__atomic_store_n(slot, c, __ATOMIC_RELEASE);
			if (kind == CONN_KIND_SIGNALFD)
				conntab_set_rw(fd, c); /* its reads are where a trigger shows */
			return c;
		}
	}
	return NULL;
}

void conntab_special_remove_locked(struct conn *c)
{
	struct conn **slot = slot_for(c->fd, false);
	if (slot && *slot == c) {
		__atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
		conntab_set_rw(c->fd, NULL);
	}
	c->kind = CONN_KIND_CONN; /* free */
}

size_t conntab_special_count_locked(enum conn_kind kind)
{
	size_t n = 0;
	for (size_t i = 0; i < CONNTAB_MAX_SPECIALS; i++)
		n += specials[i].kind == kind;
	return n;
}

size_t conntab_special_fds_locked(unsigned lo, unsigned hi, int *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < CONNTAB_MAX_SPECIALS && n < max; i++)
		if (specials[i].kind != CONN_KIND_CONN && (unsigned)specials[i].fd >= lo &&
		    (unsigned)specials[i].fd <= hi)
			out[n++] = specials[i].fd;
	return n;
}

void conntab_add_open_bytes_locked(uint64_t *rx, uint64_t *tx)
{
	struct conn *c, *tmp;
	HASH_ITER(hh, table, c, tmp)
	{
		if (c == &sentinel || c->kind == CONN_KIND_PARKED)
			continue;
		*rx += conn_rx(c);
		*tx += conn_tx(c);
	}
}

void conntab_mark_shared_locked(void)
{
	struct conn *c, *tmp;
	/* atomic: the sweeper sets a claimed record's flags without the lock */
	HASH_ITER(hh, table, c, tmp)
	__atomic_or_fetch(&c->flags, CONN_SHARED, __ATOMIC_RELAXED); /* parked ones too: harmless */
}

void conntab_after_fork_child_locked(void)
{
	/* The parent's sweeper may have held a claim: it has no thread here. */
	__atomic_store_n(&conntab_claimed_fd, -1, __ATOMIC_RELEASE);
	for (size_t i = 0; i < CONNTAB_MAX_SPECIALS; i++)
		if (specials[i].kind == CONN_KIND_LISTENER)
			specials[i].flags |= CONN_INHERITED;
	conntab_stats.accepted = 0;
	conntab_stats.closed_rx = conntab_stats.closed_tx = 0;
	conntab_stats.peak = conntab_live_n;
}

void conntab_clear_locked(void)
{
	struct conn *c, *tmp;
	HASH_ITER(hh, table, c, tmp)
	{
		if (c == &sentinel)
			continue;
		if (c->kind != CONN_KIND_PARKED)
			conntab_remove_locked(c);  /* slots, statistics; a low fd's is parked */
		if (c->kind == CONN_KIND_PARKED) { /* still hashed */
			conntab_parked[c->fd] = NULL;
			unhash(c);
		}
	}
	for (size_t i = 0; i < CONNTAB_MAX_SPECIALS; i++)
		if (specials[i].kind != CONN_KIND_CONN)
			conntab_special_remove_locked(&specials[i]);
}

void conn_peer_from_sockaddr(struct conn_peer *p, const struct sockaddr *sa, socklen_t len)
{
	memset(p, 0, sizeof *p);
	if (!sa || len < sizeof(sa_family_t))
		return;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		p->family = AF_INET;
		p->port = ntohs(in->sin_port);
		memcpy(p->addr, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		p->family = AF_INET6;
		p->port = ntohs(in6->sin6_port);
		memcpy(p->addr, &in6->sin6_addr, 16);
	} else if (sa->sa_family == AF_UNIX) {
		p->family = AF_UNIX;
	}
}

void conn_peer_format(const struct conn_peer *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	switch (p->family) {
	case AF_INET:
		inet_ntop(AF_INET, p->addr, a, sizeof a);
		snprintf(buf, len, "%s:%u", a, p->port);
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, p->addr, a, sizeof a);
		snprintf(buf, len, "[%s]:%u", a, p->port);
		break;
	case AF_UNIX:
		snprintf(buf, len, "unix");
		break;
	default:
		snprintf(buf, len, "unknown-peer");
	}
}
