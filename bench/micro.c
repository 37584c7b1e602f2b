/*
 * SPDX-License-Identifier: MIT
 *
 * Per-call cost of the hot paths: recv on a tracked socket (one this process
 * accepted), read on an fd nobody tracks (/dev/zero), send then recv on the
 * tracked socket (each call turns the direction), and accept+close.
 *
 *   micro cg recv|read|sendrecv|accept N
 *       Sets up, warms up, then makes N calls inside one function,
 *       bench_measure_<what>, through the ordinary dynamic symbols: run it
 *       under callgrind --toggle-collect=bench_measure_<what>, with and
 *       without LD_PRELOAD, for N and 2N, and (Ir(2N) - Ir(N)) / N is the
 *       cost of one call with every start-up cost cancelled.  With
 *       BENCH_EXTRA_THREAD=1 an idle thread is started first (the control
 *       for a shim that runs a thread of its own).
 *
 *   micro time PASSTHROUGH.so PASSTHROUGH-CALL.so GRACESHIM.so ROUNDS
 *       Interleaved in one process: the libraries are dlopen'ed (RTLD_LOCAL;
 *       their dlsym(RTLD_NEXT) then finds libc), and each round times one
 *       batch per configuration, in rotated order, on the same sockets: no
 *       shim (libc), pass-through, pass-through with a call instead of a
 *       tail jump, graceshim, and no shim again (the A/A pair shows the
 *       noise floor).  Prints the median ns per call and the median of the
 *       per-round ratios against no shim.
 *
 *   micro threads PASSTHROUGH-CALL.so GRACESHIM.so ROUNDS
 *       Two threads, each receiving on its own tracked socket, run the same
 *       configuration at the same time (a barrier per batch); per thread,
 *       the median ns per call and ratio against no shim (configurations:
 *       no shim, the floor with a call, graceshim, no shim again).
 *
 * Output lines are "key value" for bench/run.  Must run without LD_PRELOAD
 * in the time and threads modes (it checks).
 */
#include "bench.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>

/* ---- set-up shared by every mode ------------------------------------- */

struct conn_pair {
	int srv; /* accepted: tracked by graceshim when it accepted it */
	int cli;
};

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*close_fn)(int);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*read_fn)(int, void *, size_t);

static struct conn_pair pair_open(int lfd, int port, accept_fn acc)
{
	struct conn_pair p;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	p.cli = bench_tcp_connect(port);
	p.srv = acc(lfd, (struct sockaddr *)&ss, &len);
	if (p.srv < 0)
		bench_die("accept");
	bench_timeouts(p.srv, 10);
	return p;
}

static void send_all(int fd, size_t n)
{
	static char junk[65536];
	while (n > 0) {
		ssize_t w = send(fd, junk, n < sizeof junk ? n : sizeof junk, MSG_NOSIGNAL);
		if (w <= 0)
			bench_die("send");
		n -= (size_t)w;
	}
}

/* The server answers the bytes it read, once: a connection past its first
 * exchange, as a served one is (the shim takes a connection the kernel
 * counts for it out of its read/write filter at its first answer).  The
 * client never reads it. */
static void answer(send_fn snd, int fd)
{
	if (snd(fd, "x", 1, MSG_NOSIGNAL) != 1)
		bench_die("answer");
}

/* Sends n bytes from the client and waits (bounded) until the server side
 * has them all queued, so that every timed recv returns at once. */
static void refill(const struct conn_pair *p, size_t n)
{
	int q = 0;
	send_all(p->cli, n);
	for (int i = 0; i < 1000000; i++) {
		if (ioctl(p->srv, FIONREAD, &q) == 0 && (size_t)q >= n)
			return;
		if (i > 1000)
			usleep(10);
	}
	bench_die("refill: %d of %zu bytes queued", q, n);
}

/* Connects n clients and closes them at once (the client side closes first,
 * so TIME_WAIT stays with the client, where loopback reuses it); the server
 * accepts them later, in the measurement. */
static void queue_clients(int port, int n)
{
	for (int i = 0; i < n; i++)
		close(bench_tcp_connect(port));
}

/* ---- cg: through the dynamic symbols, for callgrind ---------------------- */

/* The loops, shared by the warm-up and the measured functions: only the
 * bench_measure_* functions are collected (callgrind --toggle-collect). */
static inline void loop_recv(int fd, long n)
{
	char b;
	for (long i = 0; i < n; i++)
		if (recv(fd, &b, 1, 0) != 1)
			bench_die("recv");
}

static inline void loop_read(int fd, long n)
{
	char b;
	for (long i = 0; i < n; i++)
		if (read(fd, &b, 1) != 1)
			bench_die("read");
}

/* A keep-alive exchange's shape: each read follows an answer, so the
 * read's direction changes every time (what a tracked recv costs at the
 * first read of a request, beside its answer's send). */
static inline void loop_sendrecv(int fd, long n)
{
	char b;
	for (long i = 0; i < n; i++)
		if (send(fd, "x", 1, MSG_NOSIGNAL) != 1 || recv(fd, &b, 1, 0) != 1)
			bench_die("send/recv");
}

static inline void loop_accept(int lfd, long n)
{
	for (long i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept(lfd, (struct sockaddr *)&ss, &len);
		if (fd < 0)
			bench_die("accept");
		close(fd);
	}
}

#define MEASURED(what, arg)                                                      \
	__attribute__((noinline, used)) void bench_warm_##what(int arg, long n);     \
	__attribute__((noinline, used)) void bench_measure_##what(int arg, long n);  \
	__attribute__((noinline, used)) void bench_warm_##what(int arg, long n)      \
	{                                                                            \
		loop_##what(arg, n);                                                     \
	}                                                                            \
	__attribute__((noinline, used)) void bench_measure_##what(int arg, long n)   \
	{                                                                            \
		loop_##what(arg, n);                                                     \
	}

MEASURED(recv, fd)
MEASURED(read, fd)
MEASURED(sendrecv, fd)
MEASURED(accept, lfd)

static int run_cg(const char *what, long n)
{
	int port, lfd = bench_tcp_listen(&port, 4096);
	const char *mt = getenv("BENCH_EXTRA_THREAD");

	/* The control for graceshim's sweeper thread: the same process with
	 * one idle thread more, so glibc takes its multi-threaded paths. */
	if (mt && !strcmp(mt, "1"))
		bench_idle_thread_start();
	/* A tracked connection stays open throughout, as on a busy server:
	 * the filter page for low fds exists and the table is not empty. */
	struct conn_pair p = pair_open(lfd, port, accept);

	if (!strcmp(what, "recv")) {
		refill(&p, 64 + (size_t)n);
		bench_warm_recv(p.srv, 64); /* binding, first byte */
		answer(send, p.srv);
		bench_measure_recv(p.srv, n);
	} else if (!strcmp(what, "sendrecv")) {
		refill(&p, 64 + (size_t)n);
		bench_warm_sendrecv(p.srv, 64);
		bench_measure_sendrecv(p.srv, n);
	} else if (!strcmp(what, "read")) {
		int z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
		if (z < 0)
			bench_die("/dev/zero");
		bench_warm_read(z, 64);
		bench_measure_read(z, n);
	} else if (!strcmp(what, "accept")) {
		queue_clients(port, 16);
		bench_warm_accept(lfd, 16);
		queue_clients(port, (int)n);
		bench_measure_accept(lfd, n);
	} else {
		fprintf(stderr, "micro cg: unknown %s\n", what);
		return 2;
	}
	close(p.cli);
	close(p.srv);
	close(lfd);
	return 0;
}

/* ---- time: interleaved configurations in one process --------------------- */

struct fns {
	const char *name;
	accept_fn accept;
	close_fn close;
	recv_fn recv;
	read_fn read;
	send_fn send;
};

enum { NOSHIM, PASS, PASSCALL, SHIM, AA, NCFG };
static struct fns cfgs[NCFG];

static void load_fns(struct fns *f, const char *name, void *h)
{
	f->name = name;
	*(void **)&f->accept = dlsym(h, "accept");
	*(void **)&f->close = dlsym(h, "close");
	*(void **)&f->recv = dlsym(h, "recv");
	*(void **)&f->read = dlsym(h, "read");
	*(void **)&f->send = dlsym(h, "send");
	if (!f->accept || !f->close || !f->recv || !f->read || !f->send) {
		fprintf(stderr, "micro: %s lacks a symbol\n", name);
		exit(3);
	}
}

static void *open_lib(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "micro: dlopen %s: %s\n", path, dlerror());
		exit(3);
	}
	return h;
}

static void check_not_preloaded(void)
{
	const char *p = getenv("LD_PRELOAD");
	if (p && *p) {
		fprintf(stderr, "micro: run the time modes without LD_PRELOAD\n");
		exit(2);
	}
}

#define RECV_BATCH 1000
#define READ_BATCH 1000
#define ACCEPT_BATCH 32

static double time_recv(const struct fns *f, const struct conn_pair *p)
{
	char b;
	refill(p, RECV_BATCH);
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < RECV_BATCH; i++)
		if (f->recv(p->srv, &b, 1, 0) != 1)
			bench_die("recv");
	return (double)(bench_now_ns() - t0) / RECV_BATCH;
}

static double time_read(const struct fns *f, int fd)
{
	char b;
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < READ_BATCH; i++)
		if (f->read(fd, &b, 1) != 1)
			bench_die("read");
	return (double)(bench_now_ns() - t0) / READ_BATCH;
}

static double time_accept(const struct fns *f, int lfd, int port)
{
	queue_clients(port, ACCEPT_BATCH);
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = f->accept(lfd, (struct sockaddr *)&ss, &len);
		if (fd < 0)
			bench_die("accept");
		f->close(fd);
	}
	return (double)(bench_now_ns() - t0) / ACCEPT_BATCH;
}

static void report(const char *what, double ns[][NCFG], int rounds, int ncfg)
{
	double *v = malloc((size_t)rounds * sizeof *v);
	for (int c = 0; c < ncfg; c++) {
		if (!cfgs[c].name)
			continue;
		for (int r = 0; r < rounds; r++)
			v[r] = ns[r][c];
		printf("time.%s.%s.ns %.1f\n", what, cfgs[c].name, median(v, rounds));
		for (int r = 0; r < rounds; r++)
			v[r] = ns[r][c] / ns[r][NOSHIM];
		printf("time.%s.%s.ratio %.4f\n", what, cfgs[c].name, median(v, rounds));
	}
	free(v);
}

static int run_time(const char *pass_so, const char *passcall_so, const char *shim_so, int rounds)
{
	check_not_preloaded();
	load_fns(&cfgs[NOSHIM], "noshim", RTLD_DEFAULT);
	load_fns(&cfgs[PASS], "pass", open_lib(pass_so));
	load_fns(&cfgs[PASSCALL], "passcall", open_lib(passcall_so));
	load_fns(&cfgs[SHIM], "shim", open_lib(shim_so));
	cfgs[AA] = cfgs[NOSHIM];
	cfgs[AA].name = "aa";

	int port, lfd = bench_tcp_listen(&port, 4096);
	struct conn_pair p = pair_open(lfd, port, cfgs[SHIM].accept);
	int z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	double(*ns)[NCFG] = calloc((size_t)rounds, sizeof *ns);

	if (z < 0 || !ns)
		bench_die("setup");
	/* Warm-up: bind every pointer, count the first byte, start the
	 * sweeper, fault in the code. */
	for (int c = 0; c < NCFG; c++) {
		time_recv(&cfgs[c], &p);
		time_read(&cfgs[c], z);
		time_accept(&cfgs[c], lfd, port);
	}
	answer(cfgs[SHIM].send, p.srv);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < NCFG; k++) {
			int c = (r + k) % NCFG;
			ns[r][c] = time_recv(&cfgs[c], &p);
		}
	report("recv", ns, rounds, NCFG);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < NCFG; k++) {
			int c = (r + k) % NCFG;
			ns[r][c] = time_read(&cfgs[c], z);
		}
	report("read", ns, rounds, NCFG);
	int arounds = rounds / 4 > 20 ? rounds / 4 : 20;
	for (int r = 0; r < arounds; r++)
		for (int k = 0; k < NCFG; k++) {
			int c = (r + k) % NCFG;
			ns[r][c] = time_accept(&cfgs[c], lfd, port);
		}
	report("accept", ns, arounds, NCFG);
	cfgs[SHIM].close(p.srv);
	close(p.cli);
	close(lfd);
	free(ns);
	return 0;
}

/* ---- threads: two receivers at once --------------------------------------- */

#define NTHREADS 2
static pthread_barrier_t barrier;
static int trounds;
static const int tcfg[] = {NOSHIM, PASSCALL, SHIM, AA};
#define NTCFG 4

struct worker {
	struct conn_pair p;
	double (*ns)[NCFG];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int r = 0; r < trounds; r++)
		for (int k = 0; k < NTCFG; k++) {
			int c = tcfg[(r + k) % NTCFG];
			pthread_barrier_wait(&barrier);
			w->ns[r][c] = time_recv(&cfgs[c], &w->p);
		}
	return NULL;
}

static int run_threads(const char *passcall_so, const char *shim_so, int rounds)
{
	check_not_preloaded();
	load_fns(&cfgs[NOSHIM], "noshim", RTLD_DEFAULT);
	load_fns(&cfgs[PASSCALL], "passcall", open_lib(passcall_so));
	load_fns(&cfgs[SHIM], "shim", open_lib(shim_so));
	cfgs[AA] = cfgs[NOSHIM];
	cfgs[AA].name = "aa";
	trounds = rounds;

	int port, lfd = bench_tcp_listen(&port, 64);
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];

	pthread_barrier_init(&barrier, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		w[i].p = pair_open(lfd, port, cfgs[SHIM].accept);
		w[i].ns = calloc((size_t)rounds, sizeof *w[i].ns);
		for (int c = 0; c < NCFG; c++)
			if (cfgs[c].name)
				time_recv(&cfgs[c], &w[i].p);
		answer(cfgs[SHIM].send, w[i].p.srv);
	}
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
			bench_die("pthread_create");
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++) {
		char what[32];
		snprintf(what, sizeof what, "thread%d", i);
		report(what, w[i].ns, rounds, NCFG);
		cfgs[SHIM].close(w[i].p.srv);
		close(w[i].p.cli);
	}
	close(lfd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "cg"))
		return run_cg(argv[2], atol(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "time"))
		return run_time(argv[2], argv[3], argv[4], atoi(argv[5]));
	if (argc == 5 && !strcmp(argv[1], "threads"))
		return run_threads(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: micro cg recv|read|sendrecv|accept N\n"
			"       micro time PASSTHROUGH.so PASSTHROUGH-CALL.so GRACESHIM.so ROUNDS\n"
			"       micro threads PASSTHROUGH-CALL.so GRACESHIM.so ROUNDS\n");
	return 2;
}
