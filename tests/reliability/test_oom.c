/*
 * SPDX-License-Identifier: MIT
 *
 * Out of memory in the shim's table (tests/reliability/preload/failmalloc.c
 * fails malloc/calloc/realloc/anonymous mmap called from libgraceshim.so only; the host and
 * libc allocate as usual).  A failed allocation must stop the tracking of
 * that one socket and nothing else: every accept/read/send/close returns
 * what it would without the shim (rel_oom checks values and errno), the host
 * serves every request, the shim says which fd it could not track, and on
 * SIGINT the connections it tracked are released while the untracked ones
 * are left alone (the host then waits for them, as without the shim, until
 * their clients close them).
 *
 * The shim's allocations, in order (FAILMALLOC_LOG=1): the uthash table (64
 * bytes) and its 32 buckets (512) at the first accept, a slab of records
 * (one 16 KiB mapping: SLAB_RECORDS) as the free list runs out, the bucket
 * array doubled (1024 at ~300 records), all mapped (mmap); and one malloc'd
 * array of (fd, generation) pairs per sweep pass.
 */
#include "../../shim/conntab.h"
/* Records per mapping of the table's free list (shim/conntab.c). */
#define SLAB_RECORDS ((int)(CONNTAB_SLAB_BYTES / sizeof(struct conn)))
_Static_assert(CONNTAB_SLAB_BYTES / sizeof(struct conn) < 180,
	       "persistent_oom: the 180 idle connections must outnumber a slab");
#include "rel.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;
static char dir[64];

static void teardown(void)
{
	harness_teardown();
	rel_rmtree(dir);
}

static void setup(void)
{
	/* Under a sanitizer the fixtures' malloc is the sanitizer's, which
	 * would be handed memory from glibc's allocator. */
	const char *san = getenv("GRACESHIM_SAN");
	if (san && *san)
		cr_skip_test("failmalloc.so bypasses the %s sanitizer's allocator", san);
	rel_tmpdir(dir, sizeof dir);
}

TestSuite(oom, .init = setup, .fini = teardown, .timeout = 120);

#define MAXC 400
#define EXTRA 5 /* connections accepted after some were closed */

struct oom {
	int nconn;
	int sfd[MAXC + EXTRA]; /* the server's fd of each connection */
	bool closed[MAXC + EXTRA];
	bool used[MAXC + EXTRA];
	int untracked; /* "not tracked" warnings */
	int untracked_idle;
	int released;                /* tracked idle connections that got EOF */
	long release_ms;             /* SIGINT to the last of them */
	long exit_ms;                /* last untracked one closed to exit */
	unsigned long failed, total; /* failmalloc's count */
	long accepted, served, nclosed, errno_bad;
};

static bool untracked_fd(const char *log, int fd)
{
	char pat[48];
	snprintf(pat, sizeof pat, "WARN graceshim[%d] fd %d: not tracked", srv.pid, fd);
	return strstr(log, pat) != NULL;
}

static int count_str(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void read_fd_line(int c, int *sfd)
{
	char line[32];
	cr_assert(rel_read_line(c, line, sizeof line, 5000) && sscanf(line, "fd %d", sfd) == 1,
		  "no \"fd <n>\" line from the server (got \"%s\"); stderr:\n%s", line,
		  server_stderr(&srv));
}

/* nconn connections, the last nused of them pinged (so that the first
 * ones, where the early allocations fail, are idle); then EXTRA used ones
 * closed and EXTRA new idle ones accepted; SIGINT. */
static void oom_run(const char *spec, int nconn, int nused, struct oom *o)
{
	static char log[1 << 18];
	char preload[1200], fm[128], logenv[128], logpath[96];
	int c[MAXC + EXTRA];

	memset(o, 0, sizeof *o);
	cr_assert(nconn <= MAXC && nused >= EXTRA && nused < nconn);
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s/libgraceshim.so %s/fixtures/failmalloc.so",
		 rel_build(), rel_build());
	snprintf(fm, sizeof fm, "FAILMALLOC=%s", spec);
	snprintf(logpath, sizeof logpath, "%s/log", dir);
	snprintf(logenv, sizeof logenv, "GRACESHIM_LOG_FILE=%s", logpath);
	const char *const args[] = {"rel_oom", NULL};
	const char *const env[] = {preload, fm, logenv, NULL};
	server_start(&srv, false, args, env);

	for (int i = 0; i < nconn; i++) {
		c[i] = tcp_connect(AF_INET, srv.port);
		read_fd_line(c[i], &o->sfd[i]);
	}
	for (int i = nconn - nused; i < nconn; i++) {
		o->used[i] = true;
		cr_assert(rel_ping(c[i], 5000), "ping on connection %d (fd %d) unanswered", i,
			  o->sfd[i]);
	}
	/* The table after the failures: forgetting and inserting still work. */
	for (int i = nconn - EXTRA; i < nconn; i++) {
		close(c[i]);
		o->closed[i] = true;
	}
	sleep_ms(100);
	for (int i = nconn; i < nconn + EXTRA; i++) {
		c[i] = tcp_connect(AF_INET, srv.port);
		read_fd_line(c[i], &o->sfd[i]);
	}
	o->nconn = nconn + EXTRA;
	sleep_ms(200);

	if (!rel_slurp(logpath, log, sizeof log))
		log[0] = 0;
	o->untracked = count_str(log, ": not tracked (out of memory");
	for (int i = 0; i < o->nconn; i++)
		if (!o->used[i] && untracked_fd(log, o->sfd[i]))
			o->untracked_idle++;

	long t0 = now_ms();
	kill(srv.pid, SIGINT);
	/* Tracked idle connections: released.  One pass releases them all. */
	for (int i = 0; i < o->nconn; i++) {
		if (o->used[i] || untracked_fd(log, o->sfd[i]))
			continue;
		long left = t0 + 5000 - now_ms();
		cr_assert_geq(
			wait_eof(c[i], left > 0 ? left : 1), 0,
			"tracked idle connection (server fd %d) not released 5 s after SIGINT "
			"(spec %s); shim log:\n%.4000s\nstderr:\n%s",
			o->sfd[i], spec, log, server_stderr(&srv));
		o->released++;
	}
	o->release_ms = now_ms() - t0;
	sleep_ms(200);
	/* Untracked ones: never touched (no EOF, nothing to read). */
	for (int i = 0; i < o->nconn; i++) {
		if (o->used[i] || !untracked_fd(log, o->sfd[i]))
			continue;
		struct pollfd p = {.fd = c[i], .events = POLLIN};
		cr_assert_eq(poll(&p, 1, 0), 0, "untracked connection (server fd %d) was touched",
			     o->sfd[i]);
	}
	if (o->untracked_idle)
		cr_assert_eq(server_wait(&srv, 300), -1,
			     "the host exited with %d untracked idle connections still open",
			     o->untracked_idle);
	for (int i = 0; i < o->nconn; i++)
		if (!o->closed[i] && (o->used[i] || untracked_fd(log, o->sfd[i])))
			close(c[i]);
	long t1 = now_ms();
	o->exit_ms = server_wait(&srv, PROMPT_MS);
	for (int i = 0; i < o->nconn; i++)
		if (!o->used[i] && !untracked_fd(log, o->sfd[i]))
			close(c[i]);
	cr_assert_geq(o->exit_ms, 0,
		      "still running %d ms after the last connection closed; "
		      "stderr:\n%s",
		      PROMPT_MS, server_stderr(&srv));
	o->exit_ms = now_ms() - t1;
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x; stderr:\n%s",
		  srv.status, server_stderr(&srv));

	char out[256];
	read_all_for(srv.out_fd, out, sizeof out, 2000);
	cr_assert(sscanf(out, "accepted %ld served %ld closed %ld errno_bad %ld", &o->accepted,
			 &o->served, &o->nclosed, &o->errno_bad) == 4,
		  "stdout: %s", out);
	cr_assert_eq(o->errno_bad, 0,
		     "%ld calls returned another value or errno than without the shim",
		     o->errno_bad);
	cr_assert_eq(o->accepted, o->nconn);
	cr_assert_eq(o->nclosed, o->nconn);
	cr_assert_eq(o->served, nused, "%ld of %d requests served", o->served, nused);
	const char *err = server_stderr(&srv);
	const char *fl = strstr(err, "failmalloc: ");
	cr_assert(fl && sscanf(fl, "failmalloc: %lu of %lu", &o->failed, &o->total) == 2,
		  "no failmalloc summary (was it loaded?); stderr:\n%s", err);
	cr_assert_gt(o->failed, 0, "no allocation failed: the test tested nothing");
	cr_log_info(
		"oom (%s): %lu of %lu shim allocations failed, %d connections untracked (%d idle), "
		"%ld requests served, %d tracked idle released in %ld ms, exit %ld ms after the "
		"last untracked connection closed",
		spec, o->failed, o->total, o->untracked, o->untracked_idle, o->served, o->released,
		o->release_ms, o->exit_ms);
}

/* failmalloc's count=3 failed exactly three allocations, and each one
 * left exactly one socket untracked. */
static void expect_three_failed_three_untracked(const struct oom *o)
{
	cr_assert_eq(o->failed, 3);
	cr_assert_eq(o->untracked, 3, "%d \"not tracked\" warnings for 3 failed allocations",
		     o->untracked);
}

/* The first slab of records cannot be had three times: three sockets are
 * not tracked, the next allocation succeeds and the rest are. */
Test(oom, failed_record_slab_untracks_only_those_sockets)
{
	struct oom o;
	oom_run("skip=2,count=3", 200, 20, &o);
	expect_three_failed_three_untracked(&o);
	cr_assert_eq(o.untracked_idle, 3, "the failures hit the first (idle) connections");
	cr_assert_eq(o.released, o.nconn - 20 - 3);
}

/* The table itself (its bucket array) cannot be created three times. */
Test(oom, failed_table_creation_untracks_only_those_sockets)
{
	struct oom o;
	oom_run("every=2,count=3", 200, 20, &o);
	expect_three_failed_three_untracked(&o);
}

/* uthash cannot double its bucket array (HASH_NONFATAL_OOM): the record
 * being added is rolled back, each time; the table stays usable. */
Test(oom, failed_bucket_expansion_keeps_table_sane)
{
	struct oom o;
	oom_run("size=1024", 340, 20, &o);
	cr_assert_geq(o.untracked, 1, "no expansion was attempted (too few connections?)");
	cr_assert_eq((unsigned long)o.untracked, o.failed,
		     "%d \"not tracked\" warnings for %lu failed expansions", o.untracked,
		     o.failed);
}

/* Memory runs out for good after the first slab: SLAB_RECORDS sockets are tracked,
 * the rest are not, and the sweep at SIGINT cannot allocate its list of
 * records either.  The tracked idle connections must still be released. */
Test(oom, persistent_oom_at_trigger_still_releases_tracked_connections)
{
	struct oom o;
	oom_run("skip=3", 200, 20, &o);
	/* The first SLAB_RECORDS (idle) are tracked; the used ones that
	 * closed were beyond them, so the late ones find no free record
	 * either.  Every tracked idle connection is released all the same. */
	cr_assert_eq(o.untracked, 200 - SLAB_RECORDS + EXTRA, "%d untracked", o.untracked);
	cr_assert_eq(o.released, SLAB_RECORDS, "%d released", o.released);
}
