/*
 * SPDX-License-Identifier: MIT
 *
 * graceshim-outside: the release made from outside the server, for what
 * LD_PRELOAD cannot reach (Go, static binaries, io_uring, a server already
 * running).  A process allowed to trace the server takes a copy of each of
 * its accepted sockets with pidfd_getfd (Linux 5.6), reads the kernel's view
 * of it (sockview.c, the library's own module) and, for one that never
 * received a byte, calls shutdown(copy, SHUT_RD): the server reads EOF on
 * its own fd and closes it.  Then the copy is closed.
 *
 *   graceshim-outside [--] COMMAND [ARGS...]
 *       runs COMMAND as its child and stays its parent: every catchable
 *       signal is forwarded; a stop signal (GRACESHIM_SIGNALS, else INT,
 *       TERM and QUIT) releases first, then is forwarded; from then on, and
 *       in a process that closed its listeners, releases continue until the
 *       child exits; exits with the child's status (a death by a signal as
 *       the same signal).  As PID 1 it also reaps orphans.
 *   graceshim-outside --pid PID
 *       watches PID's process tree; a process closing its listeners is
 *       draining, and so is a port the tree stops listening on (a server
 *       that keeps another listener to the end: Caddy's admin endpoint);
 *       releases until PID exits, then exits 0.
 *   graceshim-outside [--reason TEXT] [--] COMMAND [ARGS...]
 *       the same; TEXT (why the launcher chose outside mode) ends up in the
 *       info line that says so.
 *   graceshim-outside --pid PID --release-once
 *       one release pass over the tree now (benchmarks), its time on stdout.
 *
 * Settings come from the GRACESHIM_* environment through the library's
 * parser (config.c): GRACESHIM_GRACE, GRACESHIM_LOG, GRACESHIM_SIGNALS,
 * GRACESHIM_TRIGGERS.  Only the "unused" policy: from outside there is no
 * view of what the server read or wrote.
 *
 * Nothing polls while nothing happens but the check of the known listeners
 * (one readlink each, every LISTENER_TICK_MS); /proc is walked at
 * DRAIN_TICK_MS only while a process drains.
 */
#include "../shim/config.h"
#include "../shim/sockdiag.h"
#include "../shim/sockview.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LISTENER_TICK_MS 100 /* how soon a closed listener is noticed */
#define SIGNAL_TICK_MS 10    /* ... for a second after a forwarded signal */
#define DRAIN_TICK_MS 50     /* release passes while draining */
#define NEW_MIN_AGE_MS 250   /* a connection made during the drain, before its release */
#define TREE_TICK_MS 1000    /* new processes of the tree (workers) */
#define RESCAN_MS 60000      /* listeners opened later (a walk of every fd) */
#define MAX_PROCS 4096
#define MAX_WATCH 1024

static struct cfg cfg;
static int log_fd = 2; /* GRACESHIM_LOG_FILE, else stderr */
static bool release_once;
static const char *reason; /* why the launcher chose outside mode */

/* ---- log ------------------------------------------------------------------ */

static const char *const level_tag[] = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

__attribute__((format(printf, 2, 3))) static void say(enum log_level l, const char *fmt, ...)
{
	if (l > cfg.log_level)
		return;
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t o = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	/* The library's stamp (logfmt_time): the UTC offset after the
	 * microseconds, so that lines of both modes sort and read alike. */
	long off = tm.tm_gmtoff < 0 ? -tm.tm_gmtoff : tm.tm_gmtoff;
	o += (size_t)snprintf(line + o, sizeof line - o, ".%06ld%c%02ld:%02ld %s graceshim[%d] ",
			      ts.tv_nsec / 1000, tm.tm_gmtoff < 0 ? '-' : '+', off / 3600,
			      off % 3600 / 60, level_tag[l], (int)getpid());
	va_start(ap, fmt);
	int n = vsnprintf(line + o, sizeof line - o - 1, fmt, ap);
	va_end(ap);
	o += n < 0 ? 0 : (size_t)n < sizeof line - o - 1 ? (size_t)n : sizeof line - o - 2;
	line[o++] = '\n';
	if (write(log_fd, line, o) < 0) {
		/* nowhere else to say it */
	}
}

/* A refusal before anything started: one line, exit 2. */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "graceshim: %s\n", line);
	exit(2);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_getfd(int pidfd, int fd)
{
	return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

/* ---- the tree ------------------------------------------------------------- */

struct proc {
	pid_t pid;
	int pidfd;
	bool listened;     /* held a listener once */
	bool draining;     /* closed them all since */
	uint64_t drain_ms; /* when (now_ms()) */
	bool denied;       /* pidfd_getfd refused: said once */
	bool alive;        /* seen at the last walk of the tree */
};

struct watch { /* a listener of the tree: fd number in a process */
	pid_t pid;
	int fd;
	uint64_t ino;
	uint16_t port; /* network order */
};

static struct proc procs[MAX_PROCS];
static unsigned nprocs;
static struct watch watches[MAX_WATCH];
static unsigned nwatches;
static uint16_t ports[256]; /* local ports of the tree's listeners, network order */
static unsigned nports;
static pid_t root;
static int root_pidfd = -1; /* --pid: its end is ours */
static bool table_stale;    /* read_listen_table() before the next scan */
static bool tree_draining;  /* a stop signal was received */
static uint64_t tree_drain_ms;
/* Ports the tree listened on and listens on no more, since when: a server
 * that stops its HTTP listeners first and another one (an admin or metrics
 * endpoint) only once its connections are done, as Caddy does on any stop,
 * never closes all of its listeners while a preconnect holds it.  The
 * never-used connections on such a port are released in every process of
 * the tree: nothing there accepts on it any more. */
static struct {
	uint16_t port;
	uint64_t ms;
} gone[256];
static unsigned ngone;

/* The listeners of the network namespace: inode and port.  From the
 * kernel's socket diagnostics (NETLINK_SOCK_DIAG, listeners only) when the
 * tree shares our network namespace; else from /proc/<root>/net/tcp and
 * tcp6, whose every line (TIME_WAIT ones included: tens of thousands on a
 * busy host) is read for the few listeners. */
struct lsock {
	uint64_t ino;
	uint16_t port;
};
static struct lsock *lsocks;
static size_t nlsocks, caplsocks;

static void lsock_add(uint64_t ino, uint16_t port)
{
	if (nlsocks == caplsocks) {
		size_t cap = caplsocks ? caplsocks * 2 : 64;
		struct lsock *n = realloc(lsocks, cap * sizeof *n);
		if (!n)
			return;
		lsocks = n, caplsocks = cap;
	}
	lsocks[nlsocks].ino = ino;
	lsocks[nlsocks].port = port;
	nlsocks++;
}

static bool same_netns(void)
{
	char path[64];
	struct stat a, b;
	snprintf(path, sizeof path, "/proc/%d/ns/net", (int)root);
	return stat(path, &a) == 0 && stat("/proc/self/ns/net", &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

static void lsock_seen(const struct inet_diag_msg *m, void *ctx)
{
	(void)ctx;
	lsock_add(m->idiag_inode, m->id.idiag_sport);
}

static void read_listen_table(void)
{
	nlsocks = 0;
	if (same_netns() && sockdiag_listeners(lsock_seen, NULL) == 0)
		return;
	nlsocks = 0;
	static const char *const files[] = {"tcp", "tcp6"};
	for (int f = 0; f < 2; f++) {
		char path[64], line[512];
		snprintf(path, sizeof path, "/proc/%d/net/%s", (int)root, files[f]);
		FILE *fp = fopen(path, "re");
		if (!fp)
			continue;
		while (fgets(line, sizeof line, fp)) {
			char local[64];
			unsigned st;
			unsigned long long ino;
			/* sl local rem st tx:rx tr:when retr uid timeout inode */
			if (sscanf(line, " %*s %63s %*s %x %*s %*s %*s %*s %*s %llu", local, &st,
				   &ino) != 3 ||
			    st != 0x0A)
				continue;
			char *colon = strrchr(local, ':');
			if (colon)
				lsock_add(ino, htons((uint16_t)strtoul(colon + 1, NULL, 16)));
		}
		fclose(fp);
	}
}

static const struct lsock *listen_sock(uint64_t ino)
{
	for (size_t i = 0; i < nlsocks; i++)
		if (lsocks[i].ino == ino)
			return &lsocks[i];
	return NULL;
}

static bool our_port(uint16_t port)
{
	for (unsigned i = 0; i < nports; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/* When the tree stopped listening on port; 0: it did not. */
static uint64_t gone_since(uint16_t port)
{
	for (unsigned i = 0; i < ngone; i++)
		if (gone[i].port == port)
			return gone[i].ms;
	return 0;
}

static struct proc *proc_of(pid_t pid)
{
	for (unsigned i = 0; i < nprocs; i++)
		if (procs[i].pid == pid)
			return &procs[i];
	return NULL;
}

/* Calls fn for each fd of pid that is a socket, with its inode.  Returns -1
 * when the process is gone. */
static int each_socket(pid_t pid, void (*fn)(struct proc *p, int fd, uint64_t ino, void *ctx),
		       struct proc *p, void *ctx)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int dfd = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char t[64];
		ssize_t l = readlinkat(dfd, e->d_name, t, sizeof t - 1);
		if (l < 9 || memcmp(t, "socket:[", 8))
			continue;
		t[l] = 0;
		fn(p, atoi(e->d_name), strtoull(t + 8, NULL, 10), ctx);
	}
	closedir(d);
	return 0;
}

static void note_listener(struct proc *p, int fd, uint64_t ino, void *ctx)
{
	(void)ctx;
	const struct lsock *l = listen_sock(ino);
	if (!l)
		return;
	p->listened = true;
	p->draining = false;
	if (!our_port(l->port) && nports < sizeof ports / sizeof ports[0])
		ports[nports++] = l->port;
	for (unsigned i = 0; i < ngone; i++) /* listened on again */
		if (gone[i].port == l->port)
			gone[i] = gone[--ngone];
	for (unsigned i = 0; i < nwatches; i++)
		if (watches[i].pid == p->pid && watches[i].fd == fd && watches[i].ino == ino)
			return;
	if (nwatches < MAX_WATCH)
		watches[nwatches++] = (struct watch){p->pid, fd, ino, l->port};
}

/* The listeners a process holds now. */
static void scan_listeners(struct proc *p)
{
	each_socket(p->pid, note_listener, p, NULL);
}

static void add_proc(pid_t pid)
{
	struct proc *p = proc_of(pid);
	if (p) {
		p->alive = true;
		return;
	}
	if (nprocs == MAX_PROCS)
		return;
	p = &procs[nprocs];
	*p = (struct proc){.pid = pid, .pidfd = pidfd_open(pid), .alive = true};
	if (p->pidfd < 0)
		return; /* gone already */
	fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
	nprocs++;
	say(LOG_DEBUG, "outside: pid %d joins the tree", (int)pid);
	if (table_stale) {
		read_listen_table();
		table_stale = false;
	}
	scan_listeners(p);
}

/* The children of pid, from /proc/<pid>/task/<tid>/children (every
 * thread's: a child belongs to the thread that forked it). */
static void add_children(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char cpath[300];
		snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)pid, e->d_name);
		FILE *fp = fopen(cpath, "re");
		if (!fp)
			continue;
		int c;
		while (fscanf(fp, "%d", &c) == 1)
			add_proc(c);
		fclose(fp);
	}
	closedir(d);
}

/* Walks the tree from root again: new processes join (their listeners
 * scanned), processes gone leave. */
static void walk_tree(void)
{
	for (unsigned i = 0; i < nprocs; i++)
		procs[i].alive = false;
	table_stale = true; /* read only if a process joins */
	add_proc(root);
	for (unsigned i = 0; i < nprocs; i++) /* nprocs grows: breadth first */
		if (procs[i].alive)
			add_children(procs[i].pid);
	unsigned k = 0;
	for (unsigned i = 0; i < nprocs; i++) {
		if (procs[i].alive) {
			procs[k++] = procs[i];
		} else {
			close(procs[i].pidfd);
			unsigned w = 0;
			for (unsigned j = 0; j < nwatches; j++)
				if (watches[j].pid != procs[i].pid)
					watches[w++] = watches[j];
			nwatches = w;
		}
	}
	nprocs = k;
}

static bool port_watched(uint16_t port)
{
	for (unsigned i = 0; i < nwatches; i++)
		if (watches[i].port == port)
			return true;
	return false;
}

/* The ports of lost listeners that no listener of the tree holds now
 * (after one look at every process for a listener opened since, the tree
 * walked first: new workers that listen on the port with SO_REUSEPORT, as
 * nginx's with reuseport, start before the old ones close theirs): gone. */
static void check_ports(const uint16_t *lost, unsigned n)
{
	bool scanned = false;
	for (unsigned i = 0; i < n; i++) {
		if (port_watched(lost[i]) || gone_since(lost[i]))
			continue;
		if (!scanned) {
			walk_tree();
			for (unsigned k = 0; k < nprocs; k++)
				scan_listeners(&procs[k]);
			scanned = true;
			if (port_watched(lost[i]))
				continue;
		}
		if (ngone == sizeof gone / sizeof gone[0])
			return;
		gone[ngone].port = lost[i];
		gone[ngone++].ms = now_ms();
		if (!tree_draining)
			say(LOG_INFO,
			    "outside: the tree no longer listens on port %u: releasing the "
			    "never-used connections on it",
			    (unsigned)ntohs(lost[i]));
	}
}

/* The listeners still open; a process that held some and closed them all
 * is draining (after one more look for a listener it opened since), and so
 * is a port no listener of the tree holds any more. */
static void check_listeners(void)
{
	unsigned w = 0;
	bool lost = false;
	uint16_t lost_ports[64];
	unsigned nlost = 0;
	for (unsigned i = 0; i < nwatches; i++) {
		char path[64], t[64], want[64];
		snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)watches[i].pid, watches[i].fd);
		ssize_t l = readlink(path, t, sizeof t - 1);
		int n = snprintf(want, sizeof want, "socket:[%llu]",
				 (unsigned long long)watches[i].ino);
		if (l == n && !memcmp(t, want, (size_t)n)) {
			watches[w++] = watches[i];
		} else {
			lost = true;
			if (nlost < sizeof lost_ports / sizeof lost_ports[0])
				lost_ports[nlost++] = watches[i].port;
		}
	}
	nwatches = w;
	if (!lost || !(cfg.triggers & TRIGGER_LISTENER))
		return;
	read_listen_table();
	for (unsigned i = 0; i < nprocs; i++) {
		struct proc *p = &procs[i];
		bool holds = false;
		for (unsigned j = 0; j < nwatches && !holds; j++)
			holds = watches[j].pid == p->pid;
		if (!p->listened || holds || p->draining)
			continue;
		scan_listeners(p);
		for (unsigned j = 0; j < nwatches && !holds; j++)
			holds = watches[j].pid == p->pid;
		if (!holds) {
			p->draining = true;
			p->drain_ms = now_ms();
			if (!tree_draining)
				say(LOG_INFO,
				    "outside: pid %d closed its listeners: releasing its "
				    "never-used connections",
				    (int)p->pid);
		}
	}
	check_ports(lost_ports, nlost);
}

/* ---- release --------------------------------------------------------------- */

/* Inodes released already: the server may take a while to close them; each
 * is counted and logged once.  Open addressing, grown at half full. */
static uint64_t *done;
static size_t done_cap, done_n;

static bool done_has(uint64_t ino)
{
	if (!done_cap)
		return false;
	for (size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) & (done_cap - 1); done[i];
	     i = (i + 1) & (done_cap - 1))
		if (done[i] == ino)
			return true;
	return false;
}

static void done_add(uint64_t ino)
{
	if (2 * (done_n + 1) > done_cap) {
		size_t cap = done_cap ? done_cap * 2 : 1024;
		uint64_t *n = calloc(cap, sizeof *n), *old = done;
		size_t old_cap = done_cap;
		if (!n)
			return;
		done = n, done_cap = cap, done_n = 0;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i])
				done_add(old[i]);
		free(old);
	}
	size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) & (done_cap - 1);
	while (done[i] && done[i] != ino)
		i = (i + 1) & (done_cap - 1);
	if (!done[i])
		done[i] = ino, done_n++;
}

struct pass {
	unsigned released, young, denied;
	unsigned gone_young; /* of young: on a gone port, in a process not draining */
};

/* Why pidfd_getfd may refuse pid: one line's worth. */
static const char *denied_reason(pid_t pid, char *buf, size_t len)
{
	char path[64], line[256];
	long uid = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *fp = fopen(path, "re");
	if (fp) {
		while (fgets(line, sizeof line, fp))
			if (sscanf(line, "Uid: %*d %ld", &uid) == 1)
				break;
		fclose(fp);
	}
	int yama = -1;
	fp = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	if (fp) {
		if (fscanf(fp, "%d", &yama) != 1)
			yama = -1;
		fclose(fp);
	}
	if (uid >= 0 && uid != (long)geteuid())
		snprintf(buf, len,
			 "it runs as another user (uid %ld, we are uid %ld): run graceshim as that "
			 "user or as root (CAP_SYS_PTRACE)",
			 uid, (long)geteuid());
	else if (geteuid() == 0)
		snprintf(buf, len,
			 "a security module (AppArmor, SELinux) or a seccomp profile refuses it, "
			 "even to root");
	else if (yama >= 1)
		snprintf(buf, len,
			 "Yama's kernel.yama.ptrace_scope is %d: only a parent may take its "
			 "sockets; run the server under graceshim, as root, or set the scope to 0",
			 yama);
	else
		snprintf(buf, len,
			 "it is not dumpable (it changed user or set PR_SET_DUMPABLE 0), or a "
			 "security module refuses it: run graceshim as root (CAP_SYS_PTRACE)");
	return buf;
}

static void release_fd(struct proc *p, int fd, uint64_t ino, void *ctx)
{
	struct pass *ps = ctx;
	if (p->denied || listen_sock(ino) || done_has(ino))
		return;
	int copy = pidfd_getfd(p->pidfd, fd);
	if (copy < 0) {
		if (errno == EPERM && !p->denied) {
			char why[256];
			p->denied = true;
			ps->denied++;
			say(LOG_WARN, "outside: cannot take pid %d's connections: %s", (int)p->pid,
			    denied_reason(p->pid, why, sizeof why));
		}
		return;
	}
	struct sockview v;
	/* The copy is the socket itself: what is decided on it is what is
	 * shut down, whatever the number becomes in the server meanwhile. */
	/* getsockname and TCP_INFO say what it is (TCP_INFO answers for TCP
	 * sockets only, its state says listener): 4 system calls fewer than
	 * SOCKVIEW_KIND, on every fd of every pass. */
	uint64_t port_gone = 0;
	if (sockview_look(copy, SOCKVIEW_ADDR | SOCKVIEW_TCP | SOCKVIEW_INQ, &v) == 0 && v.tcp &&
	    !v.listener && our_port(v.port) && v.state == SOCKVIEW_ESTABLISHED &&
	    v.bytes_received == 0 && v.inq == 0 &&
	    (tree_draining || p->draining || (port_gone = gone_since(v.port)))) {
		/* A connection made during the drain is a client that does not
		 * know of the stop: its request may be a moment behind its
		 * connect (a loaded client), so it is given NEW_MIN_AGE_MS.
		 * For one that never received data, the kernel's time since
		 * the last data received is its age. */
		uint64_t start = tree_draining ? tree_drain_ms
				 : p->draining ? p->drain_ms
					       : port_gone;
		uint64_t min_ms = cfg.grace_ns / 1000000;
		if (v.last_data_recv_ms < now_ms() - start && min_ms < NEW_MIN_AGE_MS)
			min_ms = NEW_MIN_AGE_MS;
		if (sockview_never_used(&v, (uint32_t)min_ms)) {
			if (shutdown(copy, SHUT_RD) == 0) {
				done_add(ino);
				ps->released++;
				say(LOG_DEBUG,
				    "outside: released pid %d fd %d (never used, %u ms old)",
				    (int)p->pid, fd, v.last_data_recv_ms);
			}
		} else {
			ps->young++;
			if (port_gone)
				ps->gone_young++;
		}
	}
	close(copy);
}

/* One pass over the processes that drain (all of them after a stop
 * signal, or while a port is gone: release_fd takes the connections on it). */
static struct pass release_pass(void)
{
	struct pass ps = {0, 0, 0, 0};
	for (unsigned i = 0; i < nprocs; i++) {
		struct proc *p = &procs[i];
		if (tree_draining || p->draining || ngone)
			each_socket(p->pid, release_fd, p, &ps);
	}
	if (ps.released)
		say(LOG_INFO, "outside: released %u never-used connection%s", ps.released,
		    ps.released == 1 ? "" : "s");
	return ps;
}

static bool any_draining(void)
{
	if (tree_draining || ngone)
		return true;
	for (unsigned i = 0; i < nprocs; i++)
		if (procs[i].draining)
			return true;
	return false;
}

/* ---- preflight ------------------------------------------------------------- */

/* pidfd_getfd on ourselves: the kernel has it and no seccomp filter
 * refuses it (the ptrace check always passes for oneself). */
static void preflight(void)
{
	int self = pidfd_open(getpid());
	if (self < 0 && errno == ENOSYS)
		fail("outside mode needs pidfd_open and pidfd_getfd (Linux 5.6 or later); this "
		     "kernel has neither");
	if (self < 0 && errno == EPERM)
		fail("outside mode: pidfd_open is refused (a seccomp profile?): allow pidfd_open "
		     "and pidfd_getfd (Docker: --cap-add SYS_PTRACE)");
	if (self < 0)
		fail("outside mode: pidfd_open: %s", strerror(errno));
	int c = pidfd_getfd(self, self);
	if (c < 0 && errno == ENOSYS)
		fail("outside mode needs pidfd_getfd (Linux 5.6 or later); this kernel has none");
	if (c < 0 && errno == EPERM)
		fail("outside mode: pidfd_getfd is refused by a seccomp profile or a security "
		     "module: allow it (Docker's default profile allows it with --cap-add "
		     "SYS_PTRACE)");
	if (c < 0)
		fail("outside mode: pidfd_getfd: %s", strerror(errno));
	close(c);
	close(self);
}

/* May we take pid's sockets?  pidfd_getfd checks ptrace access before it
 * looks the fd up: EBADF for a number no process has means yes. */
static void check_access(pid_t pid, int pidfd)
{
	if (pidfd_getfd(pidfd, INT_MAX) >= 0 || errno != EPERM)
		return;
	char why[256];
	fail("--pid %d: no permission to take its sockets: %s", (int)pid,
	     denied_reason(pid, why, sizeof why));
}

/* ---- signals ------------------------------------------------------------- */

static sigset_t caught, saved_mask;
static int stop_sigs[CFG_MAX_SIGNALS + 1];
static int nstop;

static bool is_stop(int sig)
{
	for (int i = 0; i < nstop; i++)
		if (stop_sigs[i] == sig)
			return true;
	return false;
}

/* Every signal but those that cannot be caught and those a fault raises. */
static int signal_fd(void)
{
	sigfillset(&caught);
	static const int keep[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
				   SIGFPE,  SIGILL,  SIGTRAP, SIGSYS};
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
		sigdelset(&caught, keep[i]);
	if (sigprocmask(SIG_BLOCK, &caught, &saved_mask) < 0)
		fail("outside mode: sigprocmask: %s", strerror(errno));
	int fd = signalfd(-1, &caught, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		fail("outside mode: signalfd: %s", strerror(errno));
	return fd;
}

/* Exits as the child did: a death by a signal as the same signal. */
__attribute__((noreturn)) static void exit_like(int status)
{
	if (WIFEXITED(status))
		exit(WEXITSTATUS(status));
	int sig = WTERMSIG(status);
	if (getpid() != 1) { /* PID 1 cannot die of a signal it sends itself */
		/* The child's core, if any, is the child's: none of ours. */
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		signal(sig, SIG_DFL);
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		kill(getpid(), sig);
	}
	exit(128 + sig);
}

/* ---- the loop ------------------------------------------------------------- */

static int run(pid_t child, int sfd)
{
	int status = 0;
	bool child_done = false;
	uint64_t t = now_ms(), next_tree = t, next_rescan = t + RESCAN_MS;
	unsigned scan_backoff = 50;
	uint64_t next_listen_scan = t; /* before the first listener is found */
	/* A signal the server may stop on (WINCH, USR1 for some) is seen
	 * through its listeners closing: looked at often for a while. */
	uint64_t fast_until = 0;
	walk_tree();
	for (;;) {
		t = now_ms();
		if (t >= next_tree) {
			walk_tree();
			next_tree = t + TREE_TICK_MS;
		}
		if (t >= next_rescan || (!nports && t >= next_listen_scan)) {
			read_listen_table();
			for (unsigned i = 0; i < nprocs; i++)
				scan_listeners(&procs[i]);
			next_rescan = t + RESCAN_MS;
			if (!nports) {
				next_listen_scan = t + scan_backoff;
				if (scan_backoff < 2000)
					scan_backoff *= 2;
			}
		}
		check_listeners();
		bool drain = any_draining();
		if (drain && release_pass().gone_young == 0 && ngone) {
			/* Every never-used connection on the gone ports is released:
			 * nothing can come on them (no listener), and a process that
			 * serves on is not looked through every DRAIN_TICK_MS. */
			say(LOG_DEBUG, "outside: the ports gone are done with");
			ngone = 0;
		}
		/* Sleep until a signal, the end of the watched process, or the
		 * next look. */
		uint64_t tick = t < fast_until ? SIGNAL_TICK_MS : LISTENER_TICK_MS;
		uint64_t wake = drain ? t + DRAIN_TICK_MS : nwatches ? t + tick : next_tree;
		if (!nports && next_listen_scan < wake)
			wake = next_listen_scan;
		if (next_tree < wake)
			wake = next_tree;
		if (next_rescan < wake)
			wake = next_rescan;
		uint64_t n2 = now_ms();
		int timeout = wake > n2 ? (int)(wake - n2) : 0;
		struct pollfd pf[2] = {{sfd, POLLIN, 0}, {-1, POLLIN, 0}};
		if (child <= 0)
			pf[1].fd = root_pidfd;
		int r = poll(pf, 2, timeout);
		if (r < 0 && errno != EINTR)
			say(LOG_ERROR, "outside: poll: %s", strerror(errno));
		if (child <= 0 && pf[1].revents) {
			say(LOG_INFO, "outside: pid %d exited", (int)root);
			return 0;
		}
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof si) == sizeof si) {
			int sig = (int)si.ssi_signo;
			if (sig == SIGCHLD)
				continue; /* reaped below */
			if (child <= 0) {
				/* --pid: we are not the server's parent; a stop
				 * of ours is our own end. */
				if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
				    sig == SIGQUIT)
					return 0;
				continue;
			}
			bool stop = is_stop(sig) && (cfg.triggers & TRIGGER_SIGNAL);
			if (stop && !tree_draining) {
				uint64_t t0 = now_ms();
				walk_tree();
				tree_draining = true;
				tree_drain_ms = t0;
				struct pass ps = release_pass();
				say(LOG_INFO,
				    "outside: SIG%s: %u released in %llu ms before it was "
				    "forwarded",
				    cfg_signal_name(sig), ps.released,
				    (unsigned long long)(now_ms() - t0));
			}
			/* A terminal's signal reached the child already (same
			 * process group): forwarding it would deliver it twice. */
			fast_until = now_ms() + 1000;
			if ((int)si.ssi_code == SI_KERNEL && getpgid(child) == getpgrp())
				continue;
			kill(child, sig);
		}
		if (child > 0) {
			/* Ours and, as PID 1, every orphan's. */
			int st;
			pid_t w;
			while ((w = waitpid(-1, &st, WNOHANG)) > 0)
				if (w == child)
					status = st, child_done = true;
			if (child_done)
				return status;
		}
	}
}

static void usage(const char *msg)
{
	fprintf(stderr,
		"graceshim-outside: %s\nusage: graceshim-outside [--reason TEXT] [--] COMMAND "
		"[ARGS...]\n"
		"       graceshim-outside --pid PID [--release-once]\n",
		msg);
	exit(2);
}

static const char *get(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

static void warn(const char *msg, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "graceshim: %s\n", msg);
}

int main(int argc, char **argv)
{
	pid_t pid = 0;
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (!strcmp(argv[i], "--pid")) {
			if (i + 1 >= argc)
				usage("--pid needs a process id");
			char *end;
			errno = 0;
			long v = strtol(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || v <= 0 || v > INT_MAX)
				usage("--pid: not a process id");
			pid = (pid_t)v;
		} else if (!strcmp(argv[i], "--reason")) {
			if (i + 1 >= argc)
				usage("--reason needs a text");
			reason = argv[++i];
		} else if (!strcmp(argv[i], "--release-once")) {
			release_once = true;
		} else if (argv[i][0] == '-') {
			usage("unknown option");
		} else {
			break;
		}
	}
	if (pid && i < argc)
		usage("--pid takes no COMMAND");
	if (!pid && i >= argc)
		usage("no COMMAND given");
	if (release_once && !pid)
		usage("--release-once needs --pid");

	cfg_defaults(&cfg);
	cfg_parse(&cfg, get, warn, NULL);
	const char *sl = getenv("GRACESHIM_SIGNALS");
	if (sl && *sl && (nstop = cfg_parse_signal_list(sl, stop_sigs, CFG_MAX_SIGNALS)) > 0) {
		/* as given */
	} else {
		nstop = 3;
		stop_sigs[0] = SIGINT, stop_sigs[1] = SIGTERM, stop_sigs[2] = SIGQUIT;
	}
	if (cfg.log_file[0]) {
		int fd = open(cfg.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			log_fd = fd;
		else
			fprintf(stderr, "graceshim: GRACESHIM_LOG_FILE=%s: %s; logging to stderr\n",
				cfg.log_file, strerror(errno));
	}
	if (cfg.disable) {
		if (pid)
			return 0;
		execvp(argv[i], argv + i);
		fprintf(stderr, "graceshim: %s: %s\n", argv[i], strerror(errno));
		return errno == ENOENT ? 127 : 126;
	}
	preflight();

	if (pid) {
		root = pid;
		int pfd = pidfd_open(pid);
		if (pfd < 0)
			fail("--pid %d: %s", (int)pid,
			     errno == ESRCH ? "no such process" : strerror(errno));
		check_access(pid, pfd);
		fcntl(pfd, F_SETFD, FD_CLOEXEC);
		root_pidfd = pfd;
		if (release_once) {
			walk_tree();
			tree_draining = true;
			tree_drain_ms = now_ms();
			/* Wall clock and CPU time: on a loaded machine the
			 * first measures the machine as much as the pass. */
			struct timespec a, b, ca, cb;
			clock_gettime(CLOCK_MONOTONIC, &a);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
			struct pass ps = release_pass();
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
			clock_gettime(CLOCK_MONOTONIC, &b);
			printf("released %u in %.3f ms (%.3f ms on CPU)\n", ps.released,
			       (double)(b.tv_sec - a.tv_sec) * 1e3 +
				       (double)(b.tv_nsec - a.tv_nsec) / 1e6,
			       (double)(cb.tv_sec - ca.tv_sec) * 1e3 +
				       (double)(cb.tv_nsec - ca.tv_nsec) / 1e6);
			return 0;
		}
		int sfd = signal_fd();
		say(LOG_INFO,
		    "outside mode: watching pid %d's process tree (its listeners closing starts "
		    "the release)",
		    (int)pid);
		return run(0, sfd);
	}

	int sfd = signal_fd();
	pid_t child = fork();
	if (child < 0)
		fail("outside mode: fork: %s", strerror(errno));
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &saved_mask, NULL);
		execvp(argv[i], argv + i);
		int e = errno;
		fprintf(stderr, "graceshim: %s: %s\n", argv[i], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	root = child;
	say(LOG_INFO,
	    "outside mode: %s runs as pid %d%s%s%s; never-used connections are released from "
	    "outside",
	    argv[i], (int)child, reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
	exit_like(run(child, sfd));
}
