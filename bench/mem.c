/*
 * SPDX-License-Identifier: MIT
 *
 * Memory per tracked connection.
 *
 *   mem N     (run once with LD_PRELOAD=libgraceshim.so, once without)
 *
 * Accepts one warm-up Unix connection (the shim starts its sweeper thread
 * and allocates its first filter page then: costs paid once per process),
 * then takes a snapshot, accepts N more connections (a holder child keeps
 * the client ends), and prints the growth of the malloc heap (mallinfo2:
 * bytes in use, small and mmap'ed chunks, chunk headers included) and of
 * the resident set (VmRSS), each divided by N.  Everything the benchmark
 * itself needs is allocated before the snapshot, so the difference between
 * the two runs is the shim's.
 */
#include "bench.h"

#include <malloc.h>

static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	int n = argc == 2 ? atoi(argv[1]) : 0;
	long lim = bench_raise_nofile();

	if (n <= 0) {
		fprintf(stderr, "usage: mem N\n");
		return 2;
	}
	if (n + 64 > lim) {
		printf("mem.skip RLIMIT_NOFILE=%ld\n", lim);
		return 0;
	}
	struct sockaddr_un un;
	socklen_t ulen;
	int lfd = bench_unix_listen(&un, &ulen, "mem");
	struct bench_holder h = bench_holder_start(&un, ulen, n + 1);
	int *fds = malloc((size_t)(n + 1) * sizeof *fds);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (!fds)
		bench_die("malloc");
	memset(fds, 0, (size_t)(n + 1) * sizeof *fds);
	if ((fds[0] = accept(lfd, (struct sockaddr *)&ss, &len)) < 0)
		bench_die("accept");
	usleep(20000); /* let a sweeper thread settle */

	struct mallinfo2 m0 = mallinfo2();
	long r0 = rss_kb();
	for (int i = 1; i <= n; i++) {
		len = sizeof ss;
		if ((fds[i] = accept(lfd, (struct sockaddr *)&ss, &len)) < 0)
			bench_die("accept %d", i);
	}
	struct mallinfo2 m1 = mallinfo2();
	long r1 = rss_kb();

	double heap = (double)((m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd)) / n;
	printf("mem.heap_per_conn %.1f\n", heap);
	printf("mem.rss_per_conn %.1f\n", (double)(r1 - r0) * 1024 / n);
	for (int i = 0; i <= n; i++)
		close(fds[i]);
	bench_holder_stop(&h);
	return 0;
}
