/*
 * SPDX-License-Identifier: MIT
 *
 * Transparency (issue 11): ordinary process patterns run WITH and WITHOUT
 * the shim must give the same observable result: exit status, handler
 * output, the bytes each client received, the host's files byte for byte,
 * fd counts, and nothing more on stderr.  LD_PRELOAD reaches every process a
 * server starts, so each pattern here meets the shim in production: vfork
 * children (CPython's subprocess, asyncio, posix_spawn), fork per
 * connection, accept-once programs (socat), many listeners, a daemon that
 * freopen()s stdout, pre-fork workers' statistics, and plain programs.
 *
 * Each test checks each run against the expected result too, not only the
 * two runs against each other, so a pattern broken both ways fails.  The
 * programs that are not ours (python3, socat, bash) cannot be run under a
 * sanitizer build of the shim (its runtime must come first in the process):
 * those tests are skipped there, saying so.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_MS 10000 /* a program that should exit: generous (loaded CI) */

static struct server srv;

TestSuite(transparency, .fini = harness_teardown, .timeout = 120);

/* What one run showed. */
struct outcome {
	int status;       /* wait status */
	char out[4096];   /* the program's stdout after its PORT line */
	char err[4096];   /* its stderr */
	char client[512]; /* what the client(s) received */
};

static void skip_unless_uninstrumented(const char *what)
{
	const char *san = getenv("GRACESHIM_SAN");
	if (san && *san)
		cr_skip_test("%s cannot run with the %s-sanitizer build of the shim preloaded (the "
			     "sanitizer runtime must be first in the process)",
			     what, san);
}

/* Waits (bounded) for the server to exit on its own, then collects its
 * status, the rest of its stdout and its stderr.  The stderr pipe stays
 * open: server_stderr() caches by fd number, and a reused number would give
 * the next run this run's lines. */
static void finish(struct outcome *o, const char *what, bool shim)
{
	long ms = server_wait(&srv, EXIT_MS);
	if (ms < 0) {
		server_stop(&srv);
		cr_assert_fail("%s (%s the shim): still running %d ms after it should have exited; "
			       "stderr:\n%s",
			       what, shim ? "with" : "without", EXIT_MS, server_stderr(&srv));
	}
	o->status = srv.status;
	read_all_for(srv.out_fd, o->out, sizeof o->out, 2000);
	snprintf(o->err, sizeof o->err, "%s", server_stderr(&srv));
	close(srv.out_fd);
}

/* Reads up to and including the first '\n' (bounded); NUL-terminates. */
static size_t read_line_for(int fd, char *buf, size_t len, long timeout_ms)
{
	size_t have = 0;
	long deadline = now_ms() + timeout_ms;
	while (have < len - 1 && !(have && buf[have - 1] == '\n')) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = read(fd, buf + have, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have++;
	}
	buf[have] = 0;
	return have;
}

static void append(char *dst, size_t len, const char *src)
{
	size_t n = strlen(dst);
	snprintf(dst + n, len - n, "%s", src);
}

/* One client of the line protocol (tests/fixtures/tr.h): connects, reads the
 * greeting if greet, waits delay_ms, sends "<word>\n" and reads the answer
 * line.  Appends everything it received to o->client. */
static void client_line(struct outcome *o, int port, bool greet, long delay_ms, const char *word)
{
	char buf[256], line[128];
	int fd = tcp_connect(AF_INET, port);
	if (greet) {
		read_line_for(fd, buf, sizeof buf, 5000);
		append(o->client, sizeof o->client, buf);
	}
	sleep_ms(delay_ms);
	snprintf(line, sizeof line, "%s\n", word);
	if (send_str(fd, line)) {
		read_line_for(fd, buf, sizeof buf, 15000); /* 100 spawns under TSan */
		append(o->client, sizeof o->client, buf);
	}
	close(fd);
}

/* Same status, stdout, stderr and client bytes in both runs. */
static void assert_same(const struct outcome *a, const struct outcome *b)
{
	cr_expect_eq(a->status, b->status, "wait status 0x%x without the shim, 0x%x with it",
		     a->status, b->status);
	cr_expect_str_eq(a->client, b->client,
			 "clients received\n\"%s\" without the shim,\n\"%s\" with it", a->client,
			 b->client);
	cr_expect_str_eq(a->out, b->out, "stdout\n\"%s\" without the shim,\n\"%s\" with it", a->out,
			 b->out);
	cr_expect_str_eq(a->err, b->err, "stderr\n\"%s\" without the shim,\n\"%s\" with it", a->err,
			 b->err);
}

static bool exited_with(int status, int code)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* ---- 1. a SIGTERM handler after a vfork child reset it ------------------- */

static void run_sigterm(bool shim, const char *fixture, const char *arg, struct outcome *o)
{
	const char *const args[] = {fixture, arg, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	sleep_ms(200);
	kill(srv.pid, SIGTERM);
	finish(o, fixture, shim);
}

Test(transparency, python_sigterm_handler_runs_after_subprocess)
{
	skip_unless_uninstrumented("python3");
	struct outcome a, b;
	run_sigterm(false, "tr_sigterm.py", NULL, &a);
	run_sigterm(true, "tr_sigterm.py", NULL, &b);
	cr_assert(exited_with(a.status, 3) && !strcmp(a.out, "handler 15\n"),
		  "without the shim: status 0x%x, stdout \"%s\"", a.status, a.out);
	cr_expect(exited_with(b.status, 3),
		  "with the shim: status 0x%x (0x%x: killed by signal %d)", b.status, b.status,
		  WIFSIGNALED(b.status) ? WTERMSIG(b.status) : 0);
	assert_same(&a, &b);
}

Test(transparency, c_sigterm_handler_runs_after_vfork_child_reset_it)
{
	struct outcome a, b;
	run_sigterm(false, "tr_vfork", "0", &a);
	run_sigterm(true, "tr_vfork", "0", &b);
	cr_assert(exited_with(a.status, 3) && !strcmp(a.out, "handler 15\n"),
		  "without the shim: status 0x%x, stdout \"%s\"", a.status, a.out);
	cr_expect(exited_with(b.status, 3), "with the shim: status 0x%x", b.status);
	assert_same(&a, &b);
}

/* The vfork child's close_range() closes its own copy of the listener: the
 * parent still listens, so a client that waits before sending is served. */
static void run_vfork_server(bool shim, struct outcome *o)
{
	const char *const args[] = {"tr_vfork", "3", NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	client_line(o, srv.port, false, 0, "first");
	client_line(o, srv.port, false, 1000, "late");
	client_line(o, srv.port, false, 1000, "later");
	kill(srv.pid, SIGTERM);
	finish(o, "tr_vfork 3", shim);
}

Test(transparency, vfork_child_close_range_leaves_parent_serving)
{
	struct outcome a, b;
	run_vfork_server(false, &a);
	run_vfork_server(true, &b);
	cr_assert_str_eq(a.client, "echo first\necho late\necho later\n", "without the shim");
	cr_expect_str_eq(b.client, "echo first\necho late\necho later\n", "with the shim");
	cr_expect(exited_with(b.status, 3), "with the shim: status 0x%x", b.status);
	assert_same(&a, &b);
}

/* ---- 2. asyncio with a subprocess, a request in flight at SIGTERM -------- */

static void run_asyncio(bool shim, struct outcome *o)
{
	const char *const args[] = {"tr_asyncio.py", NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	char got[64];
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "inflight\n"));
	/* The server has read the request: it is in its 1 s of work. */
	read_line_for(srv.out_fd, got, sizeof got, 10000);
	cr_assert_str_eq(got, "got inflight\n", "%s the shim", shim ? "with" : "without");
	kill(srv.pid, SIGTERM);
	read_all_for(fd, o->client, sizeof o->client, 5000);
	close(fd);
	finish(o, "tr_asyncio.py", shim);
}

Test(transparency, asyncio_server_with_subprocess_answers_inflight_request)
{
	skip_unless_uninstrumented("python3");
	struct outcome a, b;
	run_asyncio(false, &a);
	run_asyncio(true, &b);
	cr_assert(exited_with(a.status, 0) && !strcmp(a.client, "done inflight\n"),
		  "without the shim: status 0x%x, client got \"%s\"", a.status, a.client);
	cr_expect_str_eq(b.client, "done inflight\n", "with the shim the request was lost");
	assert_same(&a, &b);
}

/* ---- 3. fork per connection, 4. accept once ------------------------------ */

/* tr_conn: the client sends delay_ms after connecting (after the greeting
 * when greet).  The once server exits after its client; the fork server is
 * ended by SIGTERM's default action. */
static void run_conn(bool shim, const char *mode, bool greet, long delay_ms, struct outcome *o)
{
	const char *const args[] = {"tr_conn", mode, greet ? "greet" : NULL, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	client_line(o, srv.port, greet, delay_ms, "late");
	/* The child's "served" line still reaches finish(): the child holds the
	 * stdout pipe open until it exits. */
	if (!strcmp(mode, "fork"))
		kill(srv.pid, SIGTERM);
	finish(o, "tr_conn", shim);
}

static void conn_case(const char *mode, bool greet, long delay_ms)
{
	const char *want = greet ? "hello\necho late\n" : "echo late\n";
	struct outcome a, b;
	run_conn(false, mode, greet, delay_ms, &a);
	run_conn(true, mode, greet, delay_ms, &b);
	cr_assert_str_eq(a.client, want, "without the shim");
	cr_assert_str_eq(a.out, "served\n", "without the shim");
	cr_expect_str_eq(b.client, want, "with the shim the client lost its answer");
	cr_expect_str_eq(b.out, "served\n", "with the shim");
	assert_same(&a, &b);
}

Test(transparency, fork_per_connection_server_speaks_first)
{
	conn_case("fork", true, 500);
}

Test(transparency, fork_per_connection_client_speaks_after_latency)
{
	conn_case("fork", false, 500);
}

Test(transparency, accept_once_late_first_byte)
{
	conn_case("once", false, 1200);
}

/* Real socat, accepting once and relaying to cat. */
static int free_port(void)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof in;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&in, sizeof in) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&in, &len) == 0);
	close(fd);
	return ntohs(in.sin_port);
}

static void run_socat(bool shim, struct outcome *o)
{
	char port[16];
	snprintf(port, sizeof port, "%d", free_port());
	const char *const args[] = {"tr_socat.sh", port, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	int fd = tcp_connect(AF_INET, srv.port);
	sleep_ms(1200);
	if (send_str(fd, "late\n")) {
		shutdown(fd, SHUT_WR); /* cat ends at EOF, then socat */
		read_all_for(fd, o->client, sizeof o->client, 5000);
	}
	close(fd);
	finish(o, "socat", shim);
}

Test(transparency, socat_accept_once_late_first_byte)
{
	skip_unless_uninstrumented("socat");
	struct outcome a, b;
	run_socat(false, &a);
	run_socat(true, &b);
	cr_assert(exited_with(a.status, 0) && !strcmp(a.client, "late\n"),
		  "without the shim: status 0x%x, client got \"%s\"", a.status, a.client);
	cr_expect_str_eq(b.client, "late\n", "with the shim the client lost its bytes");
	assert_same(&a, &b);
}

/* ---- 5. 300 listeners, a worker closes 260 ------------------------------- */

static void run_listeners(bool shim, struct outcome *o)
{
	const char *const args[] = {"tr_listeners", NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	client_line(o, srv.port, false, 1000, "late");
	finish(o, "tr_listeners", shim);
}

Test(transparency, worker_closing_260_of_300_listeners_keeps_serving)
{
	struct outcome a, b;
	run_listeners(false, &a);
	run_listeners(true, &b);
	cr_assert(exited_with(a.status, 0) && !strcmp(a.client, "echo late\n"),
		  "without the shim: status 0x%x, client got \"%s\", stderr %s", a.status, a.client,
		  a.err);
	cr_expect_str_eq(b.client, "echo late\n", "with the shim the client lost its answer");
	assert_same(&a, &b);
}

/* ---- 6. freopen(stdout) in a daemon started with 0 and 1 closed ---------- */

static char tmpdir[64];
static void remove_tmpdir(void);

/* For the tests with a directory: the server first, then its files. */
static void fini_all(void)
{
	harness_teardown();
	remove_tmpdir();
}

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/graceshim-tr-XXXXXX");
	cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

/* Removes tmpdir and every file in it (no subdirectories are made). */
static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(tmpdir);
}

/* The directory's entries, sorted by name, one per line. */
static void list_dir(const char *dir, char *buf, size_t len)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	buf[0] = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
			append(buf, len, names[i]->d_name);
			append(buf, len, "\n");
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static size_t read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	buf[0] = 0;
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n > 0 ? (size_t)n : 0;
}

/* src with bytes other than printable ASCII and '\n' shown as \xNN. */
static const char *shown(const char *src, size_t n)
{
	static char buf[4096];
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < sizeof buf; i++) {
		unsigned char ch = (unsigned char)src[i];
		if ((ch >= 0x20 && ch < 0x7f) || ch == '\n')
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02x", ch);
	}
	buf[o] = 0;
	return buf;
}

/* Returns the time the graceful stop took with the spare connection still
 * open, or -1 when it was still waiting after PROMPT_MS (then the spare is
 * closed by the client, and the stop completes). */
static long run_freopen(bool shim, const char *mode, const char *const *env, struct outcome *o,
			char *log, size_t loglen)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s.log", tmpdir, shim ? "with" : "without");
	const char *const args[] = {"tr_freopen", path, mode, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, env);
	client_line(o, srv.port, false, 0, "a");
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	long ms = server_signal_and_wait(&srv, SIGTERM, shim ? PROMPT_MS : HANG_MS);
	close(spare);
	finish(o, "tr_freopen", shim);
	/* Binary bytes in it would end the string early: compare lengths too. */
	size_t n = read_file(path, log, loglen);
	cr_expect_eq(n, strlen(log), "%s the shim: a NUL byte in the log file:\n%s",
		     shim ? "with" : "without", shown(log, n));
	return ms;
}

static void freopen_case(const char *mode, const char *const *env)
{
	const char *want = "started\nserved a\nstopped\n";
	char la[1024], lb[1024];
	struct outcome a, b;
	long ma = run_freopen(false, mode, env, &a, la, sizeof la);
	long mb = run_freopen(true, mode, env, &b, lb, sizeof lb);
	cr_assert_str_eq(la, want, "without the shim");
	cr_assert_eq(ma, -1, "without the shim the spare connection should hold the stop");
	cr_expect_str_eq(lb, want, "with the shim the log file differs:\n%s", lb);
	cr_expect_geq(mb, 0,
		      "with the shim the never-used connection was not released; stderr:\n%s",
		      b.err);
	assert_same(&a, &b);
}

/* The shim's wake-up fd on 0-2: the daemon closes 0 and 1 after start-up. */
Test(transparency, freopen_stdout_onto_low_fd_keeps_log_and_release, .fini = fini_all)
{
	make_tmpdir();
	freopen_case(NULL, NULL);
}

/* The shim's log file on 0-2: the daemon is started with fd 1 closed, and
 * the shim writes a line at start-up (debug), so its log file is open from
 * then on.  The daemon's freopen() takes that number for its own log: the
 * shim's later lines must not land there. */
Test(transparency, freopen_after_start_with_stdout_closed_keeps_log, .fini = fini_all)
{
	char e_log[128];
	make_tmpdir();
	snprintf(e_log, sizeof e_log, "GRACESHIM_LOG_FILE=%s/shim.log", tmpdir);
	const char *const env[] = {"GRACESHIM_LOG=debug", e_log, NULL};
	freopen_case("exec", env);
}

/* ---- 7. 100 spawns: no fd leak, the drain still works -------------------- */

static long run_spawn(bool shim, const char *threaded, struct outcome *o)
{
	const char *const args[] = {"tr_spawn", threaded, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	client_line(o, srv.port, false, 0, "spawn");
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	long ms = server_signal_and_wait(&srv, SIGINT, shim ? PROMPT_MS : HANG_MS);
	close(spare);
	finish(o, "tr_spawn", shim);
	return ms;
}

static void spawn_case(const char *threaded)
{
	struct outcome a, b;
	int a0 = -1, a1 = -2, b0 = -1, b1 = -2;
	long ma = run_spawn(false, threaded, &a);
	long mb = run_spawn(true, threaded, &b);
	cr_assert_eq(sscanf(a.client, "fds %d %d", &a0, &a1), 2, "without the shim: \"%s\"",
		     a.client);
	cr_assert_eq(a0, a1, "without the shim: %d fds before the spawns, %d after", a0, a1);
	cr_assert_eq(ma, -1, "without the shim the spare connection should hold the stop");
	cr_assert_eq(sscanf(b.client, "fds %d %d", &b0, &b1), 2, "with the shim: \"%s\"", b.client);
	cr_expect_eq(b0, b1, "with the shim: %d fds before the spawns, %d after", b0, b1);
	cr_expect_geq(mb, 0,
		      "with the shim the never-used connection was not released at SIGINT; "
		      "stderr:\n%s",
		      b.err);
	cr_expect(exited_with(b.status, 0), "with the shim: status 0x%x", b.status);
	cr_expect_str_eq(a.err, b.err);
}

Test(transparency, hundred_spawns_single_threaded_leak_no_fd_and_drain)
{
	spawn_case(NULL);
}

Test(transparency, hundred_spawns_threaded_leak_no_fd_and_drain)
{
	spawn_case("threaded");
}

/* ---- 8. a pre-fork server's statistics ----------------------------------- */

static void run_prefork(bool shim, const char *stats, struct outcome *o, int pids[2])
{
	char env_stats[256];
	snprintf(env_stats, sizeof env_stats, "GRACESHIM_STATS=%s", stats);
	const char *const args[] = {"tr_prefork", NULL};
	const char *const env[] = {env_stats, NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, env);
	for (int i = 0; i < 2; i++) {
		char buf[128];
		int fd = tcp_connect(AF_INET, srv.port);
		cr_assert(send_str(fd, "hi\n"));
		read_line_for(fd, buf, sizeof buf, 5000);
		close(fd);
		pids[i] = 0;
		cr_assert_eq(sscanf(buf, "echo hi %d", &pids[i]), 1,
			     "%s the shim: worker %d answered \"%s\"", shim ? "with" : "without", i,
			     buf);
		append(o->client, sizeof o->client, "echo hi <pid>\n");
	}
	finish(o, "tr_prefork", shim);
}

Test(transparency, prefork_statistics_one_file_per_worker, .fini = fini_all)
{
	char stats[128], files[1024], body[2048], path[200], key[32];
	int pa[2], pb[2];
	struct outcome a, b;
	make_tmpdir();
	snprintf(stats, sizeof stats, "%s/stats.json", tmpdir);

	run_prefork(false, stats, &a, pa);
	list_dir(tmpdir, files, sizeof files);
	cr_assert_str_eq(files, "", "without the shim nothing writes statistics");
	cr_assert(exited_with(a.status, 0), "without the shim: status 0x%x", a.status);

	run_prefork(true, stats, &b, pb);
	assert_same(&a, &b);
	/* Exactly one file per worker, named by its pid; none for the master
	 * (it accepted nothing); no temporary file left. */
	list_dir(tmpdir, files, sizeof files);
	int entries = 0;
	for (const char *p = files; (p = strchr(p, '\n')); p++)
		entries++;
	cr_expect_eq(entries, 2,
		     "statistics files:\n%sexpected stats.json.%d and stats.json.%d only", files,
		     pb[0], pb[1]);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s.%d", stats, pb[i]);
		read_file(path, body, sizeof body);
		snprintf(key, sizeof key, "\"pid\":%d,", pb[i]);
		cr_expect(strstr(body, key) && strstr(body, "\"accepted\":1,"),
			  "worker %d's statistics (%s): \"%s\"", pb[i], path, body);
	}
}

/* ---- 9. plain programs write no statistics and no log -------------------- */

/* Runs argv (a full path) to completion, bounded; returns its wait status. */
static int run_plain(bool shim, const char *const *argv, const char *const *env)
{
	const char *b = getenv("GRACESHIM_BUILD");
	char pre[1100];
	const char *envp[16];
	int n = 0;
	cr_assert(b && *b);
	snprintf(pre, sizeof pre, "LD_PRELOAD=%s/libgraceshim.so", b);
	envp[n++] = "PATH=/usr/bin:/bin";
	if (shim)
		envp[n++] = pre;
	for (; *env && n < 15; env++)
		envp[n++] = *env;
	envp[n] = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		harness_child_signals(NULL);
		execve(argv[0], (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	int st = -1;
	for (long start = now_ms(); now_ms() - start < EXIT_MS; sleep_ms(5))
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	cr_assert_fail("%s still running after %d ms", argv[0], EXIT_MS);
	return st;
}

Test(transparency, plain_programs_create_no_stats_and_no_log, .fini = fini_all)
{
	skip_unless_uninstrumented("bash and python3");
	char e_stats[128], e_log[128], files[1024];
	const char *const bash[] = {"/bin/bash", "-c", "true", NULL};
	const char *const py[] = {"/usr/bin/python3", "-c",
				  "import subprocess; subprocess.run(['true'], check=True)", NULL};
	const char *const *progs[] = {bash, py};
	make_tmpdir();
	snprintf(e_stats, sizeof e_stats, "GRACESHIM_STATS=%s/stats.json", tmpdir);
	snprintf(e_log, sizeof e_log, "GRACESHIM_LOG_FILE=%s/shim.log", tmpdir);
	const char *const env[] = {e_stats, e_log, NULL};
	for (int i = 0; i < 2; i++) {
		int sa = run_plain(false, progs[i], env);
		int sb = run_plain(true, progs[i], env);
		cr_assert(exited_with(sa, 0), "%s without the shim: status 0x%x", progs[i][0], sa);
		cr_expect_eq(sa, sb, "%s: status 0x%x without the shim, 0x%x with it", progs[i][0],
			     sa, sb);
		list_dir(tmpdir, files, sizeof files);
		cr_expect_str_eq(files, "", "%s under the shim created:\n%s", progs[i][0], files);
	}
}

/* ---- a server stopped before it accepted anything ------------------------ */

/* Nothing to release, nothing to say: the shim adds no line to its stderr
 * (a "no connection was accepted" warning would be one the server never
 * prints without it). */
static void run_unused_server(bool shim, struct outcome *o)
{
	const char *const args[] = {"tr_spawn", "threaded", NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	sleep_ms(200);
	kill(srv.pid, SIGINT);
	finish(o, "tr_spawn", shim);
}

Test(transparency, server_stopped_before_accepting_prints_nothing_more)
{
	struct outcome a, b;
	run_unused_server(false, &a);
	run_unused_server(true, &b);
	cr_assert(exited_with(a.status, 0), "without the shim: status 0x%x", a.status);
	assert_same(&a, &b);
}
