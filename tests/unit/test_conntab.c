/*
 * SPDX-License-Identifier: MIT
 *
 * The connection table: insert, find through the lock-free filter, stale
 * replacement, removal, recycling, iteration and fork marking.
 */
#include "conntab.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

static void reset(void)
{
	conntab_lock();
	conntab_clear_locked();
	conntab_unlock();
}

TestSuite(conntab, .init = reset, .fini = reset);

static struct conn *ins(int fd, uint64_t ino)
{
	conntab_lock();
	struct conn *c = conntab_insert_locked(fd, ino, AF_INET, 100, false);
	conntab_unlock();
	return c;
}

Test(conntab, kernel_counted_records_stay_out_of_the_rw_filter)
{
	conntab_lock();
	struct conn *k = conntab_insert_locked(30, 1, AF_INET, 1, true);
	struct conn *u = conntab_insert_locked(31, 2, AF_UNIX, 1, false);
	struct conn *h = conntab_insert_locked(CONNTAB_LOW + 5, 3, AF_INET, 1, true);
	conntab_unlock();
	cr_assert_eq(conntab_fast(30), k);
	cr_assert_null(conntab_rw_fast(30), "the kernel counts it: no bookkeeping on its reads");
	cr_assert_eq(conntab_rw_fast(31), u);
	cr_assert_eq(conntab_fast(CONNTAB_LOW + 5), h);
	cr_assert_null(conntab_rw_fast(CONNTAB_LOW + 5));
	conntab_lock();
	conntab_remove_locked(u);
	conntab_unlock();
	cr_assert_null(conntab_rw_fast(31));
	cr_assert_null(conntab_fast(31));
}

/* Policy idle: a connection the kernel counts is in the filter until its
 * first bytes are classified, then leaves it (a low fd and a high one);
 * a muted one stays. */
Test(conntab, kernel_counted_records_leave_the_filter_once_classified)
{
	conntab_kernel_first = CONN_FIRST;
	conntab_lock();
	struct conn *k = conntab_insert_locked(40, 1, AF_INET, 1, true);
	struct conn *h = conntab_insert_locked(CONNTAB_LOW + 7, 2, AF_INET, 1, true);
	struct conn *m = conntab_insert_locked(41, 3, AF_INET, 1, true);
	conntab_unlock();
	conntab_kernel_first = 0;
	cr_assert_eq(conntab_rw_fast(40), k, "its first bytes are still to be seen");
	cr_assert_eq(conntab_rw_fast(CONNTAB_LOW + 7), h);
	cr_assert(k->flags & CONN_FIRST);
	conntab_lock();
	conntab_rw_remove_locked(k);
	conntab_rw_remove_locked(h);
	m->flags |= CONN_MUTED;
	conntab_rw_remove_locked(m);
	conntab_unlock();
	cr_assert_null(conntab_rw_fast(40), "classified: its reads take the fast path");
	cr_assert_null(conntab_rw_fast(CONNTAB_LOW + 7));
	cr_assert_eq(conntab_fast(40), k, "still tracked");
	cr_assert_eq(conntab_rw_fast(41), m, "a muted one keeps its writes looked at");
	cr_assert_eq(k->flags & CONN_FIRST, 0);
}

/* One meaning per field, and the size the memory figures assume. */
Test(conntab, record_size)
{
	cr_assert_leq(sizeof(struct conn), 104);
}

Test(conntab, untracked_fds_are_not_found)
{
	cr_assert_null(conntab_fast(3));
	cr_assert_null(conntab_fast(-1));
	cr_assert_null(conntab_fast(CONNTAB_MAX_FD));
	cr_assert_null(conntab_fast(0x7fffffff));
}

Test(conntab, insert_then_fast_lookup_and_count)
{
	struct conn *c = ins(7, 70);
	cr_assert_not_null(c);
	cr_assert_eq(conntab_fast(7), c);
	cr_assert_null(conntab_fast(8));
	cr_assert_eq(c->ino, 70);
	cr_assert_eq(c->accepted_ms, 100);
	cr_assert_eq(conn_rx(c), 0);
	conn_add_rx(c, 10);
	conn_add_rx(c, 5);
	cr_assert_eq(conn_rx(c), 15);
	cr_assert_eq(c->last_dir, CONN_DIR_RX);
	conn_add_tx(c, 7);
	cr_assert_eq(conn_tx(c), 7);
	cr_assert_eq(c->last_dir, CONN_DIR_TX, "the host spoke last");
	cr_assert_eq(c->family, AF_INET);
	conntab_lock();
	cr_assert_eq(conntab_count_locked(), 1);
	cr_assert_eq(conntab_find_locked(7), c);
	conntab_unlock();
}

Test(conntab, reinsert_same_fd_replaces_stale_record)
{
	struct conn *a = ins(9, 1);
	conn_add_rx(a, 3);
	uint32_t gen = a->gen;
	struct conn *b = ins(9, 2);
	cr_assert_not_null(b);
	cr_assert_eq(conntab_fast(9), b);
	cr_assert_eq(b->ino, 2);
	cr_assert_eq(conn_rx(b), 0, "a new connection starts with no bytes");
	cr_assert_neq(b->gen, gen, "a new record gets a new generation");
	conntab_lock();
	cr_assert_eq(conntab_count_locked(), 1);
	conntab_unlock();
}

Test(conntab, remove_forgets_and_recycles)
{
	struct conn *a = ins(4, 1);
	conntab_lock();
	conntab_remove_locked(a);
	cr_assert_eq(conntab_count_locked(), 0);
	conntab_unlock();
	cr_assert_null(conntab_fast(4));
	struct conn *b = ins(5, 2);
	cr_assert_neq(b, a, "a closed connection's record waits (parked) for its fd number");
	cr_assert_null(conntab_fast(4));
	cr_assert_eq(conntab_fast(5), b);
	struct conn *c = ins(4, 3);
	cr_assert_eq(c, a, "the next connection on fd 4 takes the parked record over");
	cr_assert_eq(c->ino, 3);
	cr_assert_eq(c->rx + c->tx + c->flags, 0, "taken over as new");
	conntab_lock();
	cr_assert_eq(conntab_count_locked(), 2);
	conntab_unlock();
}

/* Parked records are still in the hash but nowhere else: not counted, not
 * listed, not in the byte totals; clearing the table frees them. */
Test(conntab, parked_records_are_invisible)
{
	struct conn_ref refs[8];
	uint64_t rx = 0, tx = 0;
	for (int fd = 3; fd < 7; fd++)
		conn_add_rx(ins(fd, (uint64_t)fd), 10);
	conntab_lock();
	conntab_remove_locked(conntab_find_locked(4));
	conntab_remove_locked(conntab_find_locked(6));
	cr_assert_eq(conntab_count_locked(), 2);
	size_t n = conntab_refs_locked(refs, 8);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		cr_assert(refs[i].fd == 3 || refs[i].fd == 5, "listed fd %d", refs[i].fd);
	conntab_add_open_bytes_locked(&rx, &tx);
	cr_assert_eq(rx, 20);
	cr_assert_null(conntab_find_locked(4));
	cr_assert_null(conntab_slot_locked(6));
	conntab_clear_locked();
	cr_assert_eq(conntab_count_locked(), 0);
	conntab_unlock();
	struct conn *c = ins(4, 9);
	cr_assert_not_null(c);
	conntab_lock();
	cr_assert_eq(conntab_count_locked(), 1);
	conntab_unlock();
}

Test(conntab, large_fds_and_out_of_range)
{
	cr_assert_not_null(ins(CONNTAB_MAX_FD - 1, 1));
	cr_assert_eq(conntab_fast(CONNTAB_MAX_FD - 1)->ino, 1);
	cr_assert_null(ins(CONNTAB_MAX_FD, 1), "fds beyond the filter are not tracked");
	cr_assert_null(ins(-1, 1));
}

Test(conntab, refs_cover_every_record)
{
	for (int fd = 10; fd < 1010; fd++)
		cr_assert_not_null(ins(fd, (uint64_t)fd));
	struct conn_ref refs[2000];
	conntab_lock();
	size_t n = conntab_refs_locked(refs, 2000);
	size_t capped = conntab_refs_locked(refs + 1000, 10);
	conntab_unlock();
	cr_assert_eq(n, 1000);
	cr_assert_eq(capped, 10);
	char seen[1010] = {0};
	for (size_t i = 0; i < n; i++) {
		cr_assert(refs[i].fd >= 10 && refs[i].fd < 1010);
		cr_assert_not(seen[refs[i].fd], "fd %d listed twice", refs[i].fd);
		seen[refs[i].fd] = 1;
		cr_assert_eq(conntab_fast(refs[i].fd)->gen, refs[i].gen);
	}
}

Test(conntab, stats_count_accepts_and_bytes_of_closed_and_open)
{
	conntab_lock();
	uint64_t acc0 = conntab_stats.accepted, rx0 = conntab_stats.closed_rx;
	conntab_unlock();
	struct conn *a = ins(20, 1), *b = ins(21, 2);
	conn_add_rx(a, 100);
	conn_add_tx(a, 5);
	conn_add_rx(b, 1);
	conntab_lock();
	conntab_remove_locked(a);
	uint64_t rx = 0, tx = 0;
	conntab_add_open_bytes_locked(&rx, &tx);
	cr_assert_eq(conntab_stats.accepted - acc0, 2);
	cr_assert_eq(conntab_stats.closed_rx - rx0, 100);
	cr_assert_eq(rx, 1);
	cr_assert_eq(tx, 0);
	cr_assert_geq(conntab_stats.peak, 2);
	conntab_unlock();
}

Test(conntab, record_fits_budget)
{
	/* issue 6: at most 128 bytes per tracked connection, all in */
	cr_assert_leq(sizeof(struct conn), 112, "struct conn grew to %zu bytes",
		      sizeof(struct conn));
}

Test(conntab, mark_shared_sets_flag_on_all)
{
	ins(3, 1);
	ins(6, 2);
	conntab_lock();
	conntab_mark_shared_locked();
	conntab_unlock();
	cr_assert(conntab_fast(3)->flags & CONN_SHARED);
	cr_assert(conntab_fast(6)->flags & CONN_SHARED);
	cr_assert_not(ins(3, 9)->flags & CONN_SHARED, "a new accept is not shared");
}

Test(peer, formats_ipv4_ipv6_unix)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(49501)};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(8080)};
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct conn_peer p;
	char buf[64];
	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	in6.sin6_addr = in6addr_loopback;

	conn_peer_from_sockaddr(&p, (struct sockaddr *)&in, sizeof in);
	conn_peer_format(&p, buf, sizeof buf);
	cr_assert_str_eq(buf, "127.0.0.1:49501");
	conn_peer_from_sockaddr(&p, (struct sockaddr *)&in6, sizeof in6);
	conn_peer_format(&p, buf, sizeof buf);
	cr_assert_str_eq(buf, "[::1]:8080");
	conn_peer_from_sockaddr(&p, (struct sockaddr *)&un, sizeof(sa_family_t));
	conn_peer_format(&p, buf, sizeof buf);
	cr_assert_str_eq(buf, "unix");
	conn_peer_from_sockaddr(&p, (struct sockaddr *)&in, 4); /* truncated */
	conn_peer_format(&p, buf, sizeof buf);
	cr_assert_str_eq(buf, "unknown-peer");
}

/* The chunked walk by fd (the release in a signal handler) sees every
 * connection once, in fd order, low and high fds, and no special. */
Test(conntab, refs_by_fd_walk_in_chunks_sees_each_once)
{
	int fds[] = {7, 3, 900, CONNTAB_LOW + 2, 40, CONNTAB_LOW + 3000};
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		cr_assert_not_null(ins(fds[i], 100 + i));
	conntab_lock();
	cr_assert_not_null(conntab_special_add_locked(5, CONN_KIND_LISTENER, 99));
	conntab_unlock();
	int seen[8], n = 0;
	struct conn_ref chunk[2];
	for (unsigned next = 0;;) {
		conntab_lock();
		size_t k = conntab_refs_by_fd_locked(chunk, 2, &next);
		conntab_unlock();
		for (size_t i = 0; i < k && n < 8; i++)
			seen[n++] = chunk[i].fd;
		if (k < 2)
			break;
	}
	int want[] = {3, 7, 40, 900, CONNTAB_LOW + 2, CONNTAB_LOW + 3000};
	cr_assert_eq(n, 6, "saw %d records", n);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(seen[i], want[i], "record %d: fd %d, expected %d", i, seen[i],
			     want[i]);
}

/* A close path waits for the sweeper's claim on its fd only: none claimed
 * (-1) is in no range, ~0u-ended ones included (closefrom hung on it). */
static void *unclaim_later(void *arg)
{
	(void)arg;
	struct timespec t = {0, 100 * 1000000};
	nanosleep(&t, NULL);
	__atomic_store_n(&conntab_claimed_fd, -1, __ATOMIC_RELEASE);
	return NULL;
}

Test(conntab, close_paths_wait_for_a_claim_in_their_range_only, .timeout = 10)
{
	struct timespec a, b;
	__atomic_store_n(&conntab_claimed_fd, -1, __ATOMIC_RELEASE);
	conntab_lock();
	conntab_wait_unclaimed_locked(3, ~0u); /* returns at once */
	__atomic_store_n(&conntab_claimed_fd, 9, __ATOMIC_RELEASE);
	conntab_wait_unclaimed_locked(10, ~0u); /* not in range */
	conntab_wait_unclaimed_locked(0, 8);    /* nor here */
	conntab_unlock();
	pthread_t t;
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(pthread_create(&t, NULL, unclaim_later, NULL), 0);
	conntab_lock();
	conntab_wait_unclaimed_locked(9, 9); /* waits for the claim to end */
	conntab_unlock();
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	cr_assert_geq(ms, 90, "returned after %ld ms, before the claim ended", ms);
}
