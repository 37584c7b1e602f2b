/*
 * SPDX-License-Identifier: MIT
 *
 * See harness.h.  Uses only plain libc; runs in the Criterion worker.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t read_all_for(int fd, char *buf, size_t len, long timeout_ms)
{
	size_t have = 0;
	long deadline = now_ms() + timeout_ms;
	while (have < len - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = read(fd, buf + have, len - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	buf[have] = 0;
	return have;
}

void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *build_dir(void)
{
	const char *b = getenv("GRACESHIM_BUILD");
	cr_assert(b && *b,
		  "GRACESHIM_BUILD must name the build directory (make integration sets it)");
	return b;
}

/* ---- process groups ------------------------------------------------------
 * Each fixture leads a process group of its own (its workers and helpers
 * join it), so that one kill(-pgid) ends all of it.  A test can end without
 * its .fini (Criterion's timeout kills the worker; Ctrl-C of the suite kills
 * the worker's whole group, which no longer holds the fixtures): a guard
 * process, forked at the first start and in a group of its own, holds the
 * read end of a pipe on which the worker writes each group it made; at EOF
 * (the worker gone, however) it kills those still listed.  The worker lists
 * a group as gone once kill(-pgid, 0) says so, so that the guard never
 * signals a number the kernel may have given to someone else.  Only groups
 * this worker created are ever signalled. */
#define MAX_GROUPS 64

static pid_t groups[MAX_GROUPS];
static int ngroups;
static int guard_fd = -1;
static pid_t guard_pid;

static void guard_run(int rfd)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	int sigs[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &ign, NULL);
	setpgid(0, 0);
	int null = open("/dev/null", O_RDWR);
	for (int fd = 0; fd < 3; fd++)
		dup2(null, fd);
	/* nothing of the worker's (Criterion's pipes, the fixtures' stdout)
	 * may stay open here */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != rfd)
			close(fd);
	pid_t list[MAX_GROUPS];
	int n = 0;
	int v;
	for (;;) {
		ssize_t r = read(rfd, &v, sizeof v);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != sizeof v)
			break;
		if (v > 0 && n < MAX_GROUPS) {
			list[n++] = v;
		} else if (v < 0) {
			for (int i = 0; i < n; i++)
				if (list[i] == -v)
					list[i--] = list[--n];
		}
	}
	for (int i = 0; i < n; i++)
		kill(-list[i], SIGKILL);
	_exit(0);
}

static void guard_tell(int v)
{
	if (guard_fd < 0 || getpid() == guard_pid)
		return;
	while (write(guard_fd, &v, sizeof v) < 0 && errno == EINTR)
		;
}

static void guard_start(void)
{
	/* one guard per test process (a forked test process starts its own) */
	static pid_t owner;
	if (guard_fd >= 0 && owner == getpid())
		return;
	int p[2];
	cr_assert(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	pid_t g = fork();
	cr_assert(g >= 0, "fork: %s", strerror(errno));
	if (g == 0)
		guard_run(p[0]);
	close(p[0]);
	guard_fd = p[1];
	guard_pid = g;
	owner = getpid();
	ngroups = 0;
}

static void group_add(pid_t pg)
{
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == pg)
			return;
	if (ngroups < MAX_GROUPS)
		groups[ngroups++] = pg;
	guard_tell(pg);
}

/* Forgets pg if nothing is left of it. */
static bool group_gone(pid_t pg)
{
	if (kill(-pg, 0) == 0 || errno != ESRCH)
		return false;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == pg) {
			groups[i] = groups[--ngroups];
			guard_tell(-pg);
		}
	return true;
}

/* SIGKILLs the group of a server this process started and its leader (in
 * case it left the group), reaps the leader (status into *status, when not
 * NULL) and gives the rest of the group a moment to go; the guard ends what
 * is left.  The number pg cannot belong to anyone else while it is listed:
 * a listed group has members, or its leader is not reaped yet. */
static bool group_kill(pid_t pg, int *status)
{
	bool mine = false, reaped = false;
	for (int i = 0; i < ngroups; i++)
		mine |= groups[i] == pg;
	if (!mine)
		return false;
	kill(-pg, SIGKILL);
	kill(pg, SIGKILL);
	for (int i = 0; i < 100; i++) {
		if (!reaped && waitpid(pg, status, WNOHANG) == pg)
			reaped = true;
		if (group_gone(pg))
			break;
		sleep_ms(2);
	}
	return reaped;
}

void harness_teardown(void)
{
	while (ngroups > 0) {
		pid_t pg = groups[0];
		group_kill(pg, NULL);
		if (ngroups > 0 && groups[0] == pg) /* still there: the guard ends it */
			groups[0] = groups[--ngroups];
	}
	harness_stats_remove();
}

void harness_default_dispositions(void)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* glibc's own two say EINVAL */
}

void harness_child_signals(const int *ignored)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	harness_default_dispositions();
	for (; ignored && *ignored; ignored++)
		sigaction(*ignored, &ign, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void server_start(struct server *s, bool shim, const char *const *argv, const char *const *env)
{
	server_start_ignoring(s, shim, argv, env, NULL);
}

void server_start_ignoring(struct server *s, bool shim, const char *const *argv,
			   const char *const *env, const int *ignored)
{
	int out[2], err[2];
	char path[1024], preload[1100];
	const char *envp[256];
	const char *args[64];
	int n = 0, a = 0;

	memset(s, 0, sizeof *s);
	snprintf(path, sizeof path, "%s/fixtures/%s", build_dir(), argv[0]);
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s/libgraceshim.so", build_dir());
	for (char **e = environ; *e && n < 200; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "GRACESHIM_", 10))
			envp[n++] = *e;
	if (shim)
		envp[n++] = preload;
	for (; env && *env && n < 250; env++)
		envp[n++] = *env;
	envp[n] = NULL;
	args[a++] = path;
	for (int i = 1; argv[i] && a < 63; i++)
		args[a++] = argv[i];
	args[a] = NULL;

	guard_start();
	cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
	s->pid = fork();
	cr_assert(s->pid >= 0, "fork");
	if (s->pid == 0) {
		setpgid(0, 0);
		harness_child_signals(ignored);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execve(path, (char *const *)args, (char *const *)envp);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	/* both sides, so that the group exists before either goes on */
	setpgid(s->pid, s->pid);
	group_add(s->pid);
	close(out[1]);
	close(err[1]);
	s->out_fd = out[0];
	s->err_fd = err[0];
	fcntl(s->err_fd, F_SETFL, O_NONBLOCK);

	/* The fixture prints "PORT <n>" once it listens. */
	char line[64];
	size_t have = 0;
	long deadline = now_ms() + 10000;
	while (!memchr(line, '\n', have) && have < sizeof line - 1) {
		struct pollfd p = {.fd = s->out_fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = read(s->out_fd, line + have, sizeof line - 1 - have);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	line[have] = 0;
	if (sscanf(line, "PORT %d", &s->port) != 1) {
		server_stop(s);
		cr_assert_fail("fixture %s did not announce its port (got \"%s\"); stderr: %s",
			       argv[0], line, server_stderr(s));
	}
	/* ThreadSanitizer (gcc 12's libtsan) can keep an asynchronous signal
	 * that arrives while the thread is between interceptors, just before it
	 * blocks, pending for good: the handler never runs.  Seen without the
	 * shim too, with a 20-line program signalled right after its first
	 * line of output (21 hangs in 400 runs; none with 100 ms between).  A
	 * fixture announces its port just before it blocks: let it get there. */
	const char *san = getenv("GRACESHIM_SAN");
	if (san && !strcmp(san, "thread"))
		sleep_ms(100);
}

long server_wait(struct server *s, long timeout_ms)
{
	long start = now_ms();
	while (!s->exited) {
		pid_t r = waitpid(s->pid, &s->status, WNOHANG);
		if (r == s->pid) {
			s->exited = true;
			group_gone(s->pid);
			break;
		}
		if (now_ms() - start >= timeout_ms)
			return -1;
		sleep_ms(2);
	}
	return now_ms() - start;
}

long server_signal_and_wait(struct server *s, int sig, long timeout_ms)
{
	cr_assert(!s->exited, "server exited before the signal");
	kill(s->pid, sig);
	return server_wait(s, timeout_ms);
}

void server_stop(struct server *s)
{
	if (s->pid <= 0)
		return;
	if (!s->exited) {
		if (!group_kill(s->pid, &s->status)) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &s->status, 0);
		}
		s->exited = true;
	} else {
		group_kill(s->pid, NULL);
	}
}

const char *server_stderr(struct server *s)
{
	static char buf[16384];
	static size_t have;
	static int from_fd = -1;
	if (from_fd != s->err_fd) {
		have = 0;
		from_fd = s->err_fd;
	}
	for (int i = 0; i < 64 && have < sizeof buf - 1; i++) {
		ssize_t r = read(s->err_fd, buf + have, sizeof buf - 1 - have);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	buf[have] = 0;
	return buf;
}

int tcp_connect(int family, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (void *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof *in6;
	} else {
		struct sockaddr_in *in = (void *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons((uint16_t)port);
		len = sizeof *in;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	cr_assert(connect(fd, (struct sockaddr *)&ss, len) == 0, "connect: %s", strerror(errno));
	return fd;
}

int unix_connect(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	cr_assert(connect(fd, (struct sockaddr *)&un, sizeof un) == 0, "connect %s: %s", path,
		  strerror(errno));
	return fd;
}

bool send_str(int fd, const char *str)
{
	size_t n = strlen(str);
	return send(fd, str, n, MSG_NOSIGNAL) == (ssize_t)n;
}

long http_read_response(int fd, long timeout_ms)
{
	char buf[65536];
	size_t have = 0;
	long deadline = now_ms() + timeout_ms, clen = -1, head = -1, total = -1;

	for (;;) {
		if (head >= 0 && (long)have - head >= clen)
			return total;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = 0;
		if (head < 0) {
			char *e = strstr(buf, "\r\n\r\n");
			if (e) {
				head = e + 4 - buf;
				char *cl = strcasestr(buf, "Content-Length:");
				if (!cl || strncmp(buf, "HTTP/1.1 200", 12))
					return -1;
				clen = total = strtol(cl + 15, NULL, 10);
			}
		}
		if (have == sizeof buf - 1) {
			/* keep only what is needed to count the body */
			if (head < 0)
				return -1;
			clen -= (long)have - head;
			head = 0;
			have = 0;
		}
	}
}

long wait_eof(int fd, long timeout_ms)
{
	long start = now_ms();
	char c[512];
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = start + timeout_ms - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		ssize_t r = recv(fd, c, sizeof c, 0);
		if (r <= 0)
			return now_ms() - start;
	}
}

int sock_port(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &l) == 0 && a.sin_family == AF_INET);
	return ntohs(a.sin_port);
}

const char *shim_release_line(const char *log, int client_port)
{
	char shut[64], cut[64];
	snprintf(shut, sizeof shut, "connection 127.0.0.1:%d shut down", client_port);
	snprintf(cut, sizeof cut, "connection 127.0.0.1:%d cut", client_port);
	const char *a = strstr(log, shut), *b = strstr(log, cut);
	const char *hit = a && (!b || a < b) ? a : b;
	if (!hit)
		return NULL;
	while (hit > log && hit[-1] != '\n')
		hit--;
	return hit;
}

/* "2026-11-28T22:14:10.123456+01:00 DEBUG graceshim[..] ..." */
long long shim_line_us(const char *line)
{
	struct tm tm;
	long usec, oh, om;
	char sign;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p || sscanf(p, ".%6ld%c%2ld:%2ld", &usec, &sign, &oh, &om) != 4 ||
	    (sign != '+' && sign != '-'))
		return -1;
	long long off = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
	return ((long long)timegm(&tm) - off) * 1000000 + usec;
}

long long realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long shim_line_age_ms(const char *line)
{
	const char *end = strchr(line, '\n');
	const char *a = strstr(line, ", age ");
	if (!a || (end && a > end))
		return -1;
	return strtol(a + 6, NULL, 10);
}

static char stats_path[96];

const char *harness_stats_env(void)
{
	static char env[128];
	snprintf(stats_path, sizeof stats_path, "/tmp/graceshim-harness-%d.json", (int)getpid());
	unlink(stats_path);
	snprintf(env, sizeof env, "GRACESHIM_STATS=%s", stats_path);
	return env;
}

long harness_stats_num(const char *key)
{
	char buf[8192], k[64];
	FILE *f = *stats_path ? fopen(stats_path, "r") : NULL;
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	snprintf(k, sizeof k, "\"%s\":", key);
	const char *p = strstr(buf, k);
	if (!p)
		return -1;
	p += strlen(k);
	while (*p == ' ')
		p++;
	if (!strchr("0123456789", *p)) /* null */
		return -1;
	return strtol(p, NULL, 10);
}

void harness_stats_remove(void)
{
	if (*stats_path)
		unlink(stats_path);
	stats_path[0] = 0;
}

long long harness_mono_to_real_us(long long mono_ns)
{
	struct timespec m, r;
	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	long long off_ns = ((long long)r.tv_sec - m.tv_sec) * 1000000000LL +
			   (r.tv_nsec - m.tv_nsec);
	return (mono_ns + off_ns) / 1000;
}
