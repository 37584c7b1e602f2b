/*
 * SPDX-License-Identifier: MIT
 *
 * libFuzzer target for the connection table (shim/conntab.c, pure): a
 * sequence of operations against a reference model, an array indexed by fd.
 *
 * Each operation is 4 bytes: op, fd (two bytes: 0..2047, or one of a few
 * values around CONNTAB_LOW and CONNTAB_MAX_FD, or negative), argument.
 * Operations: insert(fd, ino, kernel-counted or not), remove(fd), find(fd),
 * mark_shared, refs(max), add rx through the lock-free filter, add a
 * listener or signalfd (the fixed pool of "specials"), remove a special,
 * clear.
 *
 * After every operation the fd it touched is checked: conntab_fast(),
 * conntab_rw_fast(), conntab_find_locked() and conntab_slot_locked() agree
 * with the model (kind, identity, flags, bytes), and conntab_count_locked()
 * equals the model's count; every 64 operations and at the end, every fd of
 * the domain is checked, along with refs and the special counts.
 */
#include "conntab.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PREFIX "fuzz_conntab: model mismatch"
#include "fuzz.h"

#define NLOW 2048
static const int edge_fds[] = {
	CONNTAB_LOW - 1,
	CONNTAB_LOW,
	CONNTAB_LOW + 1,
	CONNTAB_MAX_FD - 2,
	CONNTAB_MAX_FD - 1,
	CONNTAB_MAX_FD,
	CONNTAB_MAX_FD + 1,
	INT_MAX,
	-1,
	-2,
	INT_MIN,
};
#define NEDGE (sizeof edge_fds / sizeof edge_fds[0])
#define NDOM (NLOW + NEDGE)

static int dom_fd(unsigned i)
{
	return i < NLOW ? (int)i : edge_fds[i - NLOW];
}

static bool trackable(int fd)
{
	return fd >= 0 && (unsigned)fd < CONNTAB_MAX_FD;
}

struct model {
	uint8_t kind; /* 0 none, else 1 + enum conn_kind */
	bool kernel, shared;
	uint64_t ino, rx;
	uint32_t gen;
};
static struct model m[NDOM];
static size_t m_conns, m_specials[3], m_accepted;

static void check_fd(unsigned i)
{
	int fd = dom_fd(i);
	const struct model *e = &m[i];
	struct conn *fast = conntab_fast(fd), *rw = conntab_rw_fast(fd);
	struct conn *slot = conntab_slot_locked(fd), *find = conntab_find_locked(fd);

	CHECK(fast == slot, "fd %d: conntab_fast %p, slot %p", fd, (void *)fast, (void *)slot);
	if (!e->kind) {
		CHECK(!fast && !rw && !find, "fd %d: untracked in the model, found in the table",
		      fd);
		return;
	}
	CHECK(fast, "fd %d: tracked in the model (kind %d), not in the filter", fd, e->kind - 1);
	CHECK(fast->fd == fd && fast->ino == e->ino && fast->kind == e->kind - 1 &&
		      fast->gen == e->gen,
	      "fd %d: record (fd %d ino %llu kind %d gen %u) vs model (ino %llu kind %d gen %u)",
	      fd, fast->fd, (unsigned long long)fast->ino, fast->kind, fast->gen,
	      (unsigned long long)e->ino, e->kind - 1, e->gen);
	if (e->kind - 1 == CONN_KIND_CONN) {
		CHECK(find == fast, "fd %d: conntab_find_locked %p, filter %p", fd, (void *)find,
		      (void *)fast);
		CHECK(!!(fast->flags & CONN_SHARED) == e->shared, "fd %d: shared flag", fd);
		CHECK(!!(fast->flags & CONN_KERNEL) == e->kernel, "fd %d: kernel flag", fd);
		CHECK(conn_rx(fast) == e->rx, "fd %d: rx %llu, model %llu", fd,
		      (unsigned long long)conn_rx(fast), (unsigned long long)e->rx);
		CHECK(rw == (e->kernel ? NULL : fast), "fd %d: read/write filter %p (kernel %d)",
		      fd, (void *)rw, e->kernel);
	} else {
		CHECK(!find, "fd %d: a special found as a connection", fd);
		if (e->kind - 1 == CONN_KIND_SIGNALFD)
			CHECK(rw == fast, "fd %d: signalfd not in the read filter", fd);
		else if ((unsigned)fd < CONNTAB_LOW)
			CHECK(!rw, "fd %d: listener in the read filter", fd);
	}
}

static int cmp_ref(const void *a, const void *b)
{
	const struct conn_ref *x = a, *y = b;
	return x->fd < y->fd ? -1 : x->fd > y->fd;
}

static void check_all(void)
{
	static struct conn_ref refs[NDOM + 4];
	for (unsigned i = 0; i < NDOM; i++)
		check_fd(i);
	size_t n = conntab_refs_locked(refs, NDOM + 4);
	CHECK(n == m_conns, "refs: %zu, model %zu", n, m_conns);
	qsort(refs, n, sizeof refs[0], cmp_ref);
	for (size_t k = 0; k < n; k++) {
		CHECK(k == 0 || refs[k].fd != refs[k - 1].fd, "refs: fd %d twice", refs[k].fd);
		struct conn *c = conntab_find_locked(refs[k].fd);
		CHECK(c && c->gen == refs[k].gen, "refs: fd %d gen %u is not the record",
		      refs[k].fd, refs[k].gen);
	}
	for (int k = CONN_KIND_LISTENER; k <= CONN_KIND_SIGNALFD; k++)
		CHECK(conntab_special_count_locked((enum conn_kind)k) == m_specials[k],
		      "specials of kind %d: %zu, model %zu", k,
		      conntab_special_count_locked((enum conn_kind)k), m_specials[k]);
	CHECK(conntab_stats.accepted == m_accepted, "accepted %llu, model %zu",
	      (unsigned long long)conntab_stats.accepted, m_accepted);
	CHECK(conntab_stats.peak >= m_conns, "peak below the count");
}

static void model_drop(unsigned i)
{
	if (m[i].kind == 1 + CONN_KIND_CONN)
		m_conns--;
	else if (m[i].kind)
		m_specials[m[i].kind - 1]--;
	memset(&m[i], 0, sizeof m[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	conntab_lock();
	conntab_clear_locked();
	memset(&conntab_stats, 0, sizeof conntab_stats);
	memset(m, 0, sizeof m);
	m_conns = m_accepted = 0;
	memset(m_specials, 0, sizeof m_specials);

	for (size_t pos = 0, ops = 0; pos + 4 <= size; pos += 4, ops++) {
		unsigned op = data[pos] % 10;
		unsigned i = (data[pos + 1] | (unsigned)data[pos + 2] << 8) % NDOM;
		uint8_t arg = data[pos + 3];
		int fd = dom_fd(i);
		struct conn *c;

		switch (op) {
		case 0: /* accept: insert, replacing whatever was there */
		case 1: {
			bool kernel = op == 1;
			c = conntab_insert_locked(fd, arg % 8, AF_INET, 42, kernel);
			if (!trackable(fd)) {
				CHECK(!c, "insert of fd %d succeeded", fd);
				break;
			}
			CHECK(c, "insert of fd %d failed", fd);
			CHECK(c->flags == (kernel ? CONN_KERNEL : 0) && conn_rx(c) == 0 &&
				      conn_tx(c) == 0 && c->accepted_ms == 42,
			      "fresh record of fd %d not clean", fd);
			model_drop(i);
			m[i] = (struct model){.kind = 1 + CONN_KIND_CONN,
					      .kernel = kernel,
					      .ino = arg % 8,
					      .gen = c->gen};
			m_conns++;
			m_accepted++;
			break;
		}
		case 2: /* close */
			c = conntab_find_locked(fd);
			CHECK(!!c == (m[i].kind == 1 + CONN_KIND_CONN), "find(%d) before remove",
			      fd);
			if (c) {
				conntab_remove_locked(c);
				model_drop(i);
			}
			break;
		case 3: /* fork */
			conntab_mark_shared_locked();
			for (unsigned k = 0; k < NDOM; k++)
				if (m[k].kind == 1 + CONN_KIND_CONN)
					m[k].shared = true;
			break;
		case 4: { /* a sweep's snapshot, bounded */
			struct conn_ref refs[64];
			size_t max = arg % 65;
			size_t n = conntab_refs_locked(refs, max);
			CHECK(n == (m_conns < max ? m_conns : max), "refs(%zu): %zu of %zu", max, n,
			      m_conns);
			for (size_t k = 0; k < n; k++) {
				struct conn *r = conntab_find_locked(refs[k].fd);
				CHECK(r && r->gen == refs[k].gen, "ref fd %d stale", refs[k].fd);
			}
			break;
		}
		case 5: /* bytes through the hot path */
			if ((c = conntab_rw_fast(fd)) && c->kind == CONN_KIND_CONN) {
				conn_add_rx(c, arg + 1u);
				m[i].rx += arg + 1u;
			}
			break;
		case 6: /* listen() or signalfd() */
		case 7: {
			enum conn_kind kind = op == 6 ? CONN_KIND_LISTENER : CONN_KIND_SIGNALFD;
			bool same = m[i].kind == 1 + kind && m[i].ino == arg % 4;
			size_t used = m_specials[1] + m_specials[2];
			c = conntab_special_add_locked(fd, kind, arg % 4);
			if (!trackable(fd)) {
				CHECK(!c, "special add of fd %d succeeded", fd);
				break;
			}
			if (same) {
				CHECK(c && c->gen == m[i].gen,
				      "re-adding the same special replaced it");
				break;
			}
			/* Whatever was there goes, even when the pool is full. */
			if (m[i].kind > 1)
				used--;
			model_drop(i);
			if (used >= CONNTAB_MAX_SPECIALS) {
				CHECK(!c, "special added beyond the pool");
				break;
			}
			CHECK(c, "special add of fd %d failed with %zu of %d used", fd, used,
			      CONNTAB_MAX_SPECIALS);
			m[i] = (struct model){.kind = 1 + kind, .ino = arg % 4, .gen = c->gen};
			m_specials[kind]++;
			break;
		}
		case 8: /* close of a listener or signalfd */
			c = conntab_slot_locked(fd);
			if (c && c->kind != CONN_KIND_CONN) {
				conntab_special_remove_locked(c);
				model_drop(i);
			}
			break;
		case 9:
			if (arg == 0) { /* rare: everything goes */
				conntab_clear_locked();
				for (unsigned k = 0; k < NDOM; k++)
					model_drop(k);
			} else {
				int fds[CONNTAB_MAX_SPECIALS];
				unsigned lo = (unsigned)fd, hi = lo + arg * 16u;
				size_t n = conntab_special_fds_locked(lo, hi, fds,
								      CONNTAB_MAX_SPECIALS);
				size_t want = 0;
				for (unsigned k = 0; k < NDOM; k++)
					want += m[k].kind > 1 && (unsigned)dom_fd(k) >= lo &&
						(unsigned)dom_fd(k) <= hi;
				CHECK(n == want, "specials in [%u, %u]: %zu, model %zu", lo, hi, n,
				      want);
			}
			break;
		}
		check_fd(i);
		CHECK(conntab_count_locked() == m_conns,
		      "count %zu, model %zu after op %u on fd %d", conntab_count_locked(), m_conns,
		      op, fd);
		if (ops % 64 == 63)
			check_all();
	}
	check_all();
	conntab_unlock();
	return 0;
}
