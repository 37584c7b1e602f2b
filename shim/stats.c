/*
 * SPDX-License-Identifier: MIT
 *
 * Exit statistics.  At exit (a destructor, so exit() and a return from main
 * both write it; _exit() and death by a signal do not), one JSON object is
 * written to GRACESHIM_STATS: connections accepted, released by reason, cut
 * at the drain deadline, bytes, and the time from trigger to exit.
 *
 * Written safely: to a temporary file beside the target (O_EXCL, O_NOFOLLOW,
 * mode 0600), then rename()d over it, so a reader never sees half an object
 * and a planted symlink is never followed.
 *
 * Only processes that serve write: one that accepted no connection (a
 * pre-fork master, a shell, every program the server starts) has nothing to
 * report and writes nothing.  The process the command started writes the
 * path as given; a forked child that accepted (a pre-fork worker) writes
 * "<path>.<pid>", so that no worker's counts overwrite another's or the
 * master's.
 */
#include "stats.h"

#include "conntab.h"
#include "log.h"
#include "real.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t released[POL_R_DRAIN_TIMEOUT + 1]; /* written by the sweeper only */
static int trig_sig;
static uint64_t trig_ns;
static int forked_child; /* this process is a fork of the one the command started */
static uint64_t unblocked;
static uint64_t first_rel_ns, last_rel_ns; /* releases of a drain */
/* A trigger as it happens (signal, signalfd, sigwait, the last listener),
 * before the sweeper thread notes it: a process that exits at once (no
 * connection left to wait for) writes its statistics while that thread may
 * still be on its way, and may log the drain after they are written. */
static int seen_sig;
static uint64_t seen_ns;

void stats_unblocked(void)
{
	__atomic_fetch_add(&unblocked, 1, __ATOMIC_RELAXED);
}

void stats_after_fork_child(void)
{
	for (size_t i = 0; i < sizeof released / sizeof *released; i++)
		__atomic_store_n(&released[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&trig_sig, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&trig_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&unblocked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&first_rel_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&last_rel_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&seen_sig, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&seen_ns, 0, __ATOMIC_RELAXED);
	forked_child = 1;
}

/* One clock read per release (vDSO, async-signal-safe): what a drain's
 * timeline costs, and only once a trigger came. */
void stats_released(enum pol_reason r)
{
	__atomic_fetch_add(&released[r], 1, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&trig_sig, __ATOMIC_ACQUIRE))
		return;
	uint64_t t = shim_now_ns(), none = 0;
	__atomic_compare_exchange_n(&first_rel_ns, &none, t, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	__atomic_store_n(&last_rel_ns, t, __ATOMIC_RELAXED);
}

/* The first trigger counts (the signal handler may record it before the
 * sweeper does).  Async-signal-safe. */
void stats_triggered(int sig, uint64_t now_ns)
{
	int none = 0;
	if (__atomic_load_n(&trig_sig, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&trig_ns, now_ns, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&trig_sig, &none, sig, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

void stats_trigger_seen(int sig, uint64_t now_ns)
{
	int none = 0;
	if (__atomic_load_n(&seen_sig, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&seen_ns, now_ns, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&seen_sig, &none, sig, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

void stats_trigger_withdrawn(void)
{
	__atomic_store_n(&seen_sig, 0, __ATOMIC_RELEASE);
}

int stats_format(const struct stats_snapshot *s, char *buf, size_t len)
{
	const char *name = s->drain_trigger_sig > 0 ? cfg_signal_name(s->drain_trigger_sig) : NULL;
	char trig[32];

	if (!s->drain_trigger_sig)
		snprintf(trig, sizeof trig, "null");
	else if (s->drain_trigger_sig < 0)
		snprintf(trig, sizeof trig, "\"listener closed\"");
	else if (name)
		snprintf(trig, sizeof trig, "\"SIG%s\"", name);
	else
		snprintf(trig, sizeof trig, "%d", s->drain_trigger_sig);
	char t2e[32], tl[160];
	if (s->trigger_to_exit_ms < 0) {
		snprintf(t2e, sizeof t2e, "null");
		snprintf(tl, sizeof tl, "null");
	} else {
		snprintf(t2e, sizeof t2e, "%" PRId64, s->trigger_to_exit_ms);
		char f[24] = "null", l[24] = "null";
		if (s->first_release_us >= 0) {
			snprintf(f, sizeof f, "%" PRId64, s->first_release_us);
			snprintf(l, sizeof l, "%" PRId64, s->last_release_us);
		}
		snprintf(tl, sizeof tl,
			 "{\"trigger_monotonic_ns\":%" PRIu64 ",\"first_release_us\":%s,"
			 "\"last_release_us\":%s,\"exit_us\":%" PRId64 "}",
			 s->trigger_monotonic_ns, f, l, s->exit_us);
	}
	return snprintf(buf, len,
			"{\"pid\":%d,\"accepted\":%" PRIu64 ",\"open_at_exit\":%" PRIu64
			",\"peak_open\":%" PRIu64 ",\"released\":{\"unused\":%" PRIu64
			",\"idle\":%" PRIu64 ",\"first_byte_timeout\":%" PRIu64
			",\"blocking\":%" PRIu64 "},\"cut_by_drain_timeout\":%" PRIu64
			",\"bytes_received\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
			",\"trigger\":%s,\"trigger_to_exit_ms\":%s,\"drain\":%s}\n",
			s->pid, s->accepted, s->open, s->peak, s->released_unused, s->released_idle,
			s->released_first_byte, s->released_blocking, s->cut_drain_timeout,
			s->bytes_received, s->bytes_sent, trig, t2e, tl);
}

/* The name of user uid from /etc/passwd (no NSS at exit: it may load
 * modules, open sockets), or "" when it has none there. */
static void user_name(uid_t uid, char *out, size_t len)
{
	char buf[8192];
	out[0] = 0;
	int fd = (int)real_syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	long n = real_syscall(SYS_read, fd, buf, sizeof buf - 1);
	real_syscall(SYS_close, fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *line = buf; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 && strtoul(c2 + 1, NULL, 10) == uid && c2[1] >= '0' && c2[1] <= '9') {
			snprintf(out, len, "%.*s", (int)(c1 - line), line);
			return;
		}
		line = end ? end + 1 : NULL;
	}
}

/* A directory this process may not write in: most often a server's
 * workers, which run as another user than the one that started it (nginx's
 * "user" directive, nobody by default when started as root). */
static void say_not_writable(const char *target, int err)
{
	char dir[CFG_PATH_MAX + 16], user[64], shown[CFG_SHOWN_MAX], dshown[CFG_SHOWN_MAX];
	const char *slash = strrchr(target, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == target)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - target), target);
	uid_t uid = geteuid();
	user_name(uid, user, sizeof user);
	LOG(LOG_WARN,
	    "GRACESHIM_STATS=\"%s\": this process (pid %d, user %s%s%u%s) cannot create a file in "
	    "%s (%s); no statistics from it: make that directory writable by that user (a server's "
	    "workers often run as another user than the one that started it: nginx's \"user\" "
	    "directive), or write the statistics to a directory it can write",
	    cfg_show_value(shim_cfg.stats_file, shown, sizeof shown), (int)getpid(),
	    user[0] ? user : "", user[0] ? ", uid " : "uid ", (unsigned)uid, "",
	    cfg_show_value(dir, dshown, sizeof dshown), strerror(err));
}

static uint64_t exit_open, exit_released; /* the exit hook's count */

static void count_open(struct conn *c)
{
	exit_open++;
	exit_released += (__atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CONN_RELEASED) != 0;
}

static void write_stats(void)
{
	struct stats_snapshot s;
	char buf[1024], tmp[CFG_PATH_MAX + 32];
	int saved = errno;

	memset(&s, 0, sizeof s);
	s.pid = (int)getpid();
	/* The host may call exit() from a signal handler that interrupted us
	 * inside the table lock: never wait for it for long. */
	int locked = 0;
	for (int i = 0; i < 200 && !(locked = conntab_trylock()); i++)
		usleep(1000);
	if (!locked) {
		errno = saved;
		return;
	}
	s.accepted = conntab_stats.accepted;
	/* Open at exit: what the server still held that graceshim had not
	 * released (a released one the server did not close before exiting is
	 * counted as released, not as open). */
	exit_open = exit_released = 0;
	conntab_each_conn_in_locked(0, UINT_MAX, count_open);
	s.open = exit_open - exit_released;
	s.peak = conntab_stats.peak;
	s.bytes_received = conntab_stats.closed_rx;
	s.bytes_sent = conntab_stats.closed_tx;
	conntab_add_open_bytes_locked(&s.bytes_received, &s.bytes_sent);
	conntab_unlock();
	if (!s.accepted) {
		errno = saved; /* not a serving process: nothing to report */
		return;
	}
	s.released_unused = __atomic_load_n(&released[POL_R_UNUSED], __ATOMIC_RELAXED);
	s.released_idle = __atomic_load_n(&released[POL_R_IDLE], __ATOMIC_RELAXED);
	s.released_first_byte = __atomic_load_n(&released[POL_R_FIRST_BYTE], __ATOMIC_RELAXED);
	s.cut_drain_timeout = __atomic_load_n(&released[POL_R_DRAIN_TIMEOUT], __ATOMIC_RELAXED);
	s.released_blocking = __atomic_load_n(&unblocked, __ATOMIC_RELAXED);
	s.drain_trigger_sig = __atomic_load_n(&trig_sig, __ATOMIC_ACQUIRE);
	uint64_t now = shim_now_ns(), t0 = __atomic_load_n(&trig_ns, __ATOMIC_RELAXED);
	if (!s.drain_trigger_sig &&
	    (s.drain_trigger_sig = __atomic_load_n(&seen_sig, __ATOMIC_ACQUIRE)))
		t0 = __atomic_load_n(&seen_ns, __ATOMIC_RELAXED); /* not noted yet: as it came */
	uint64_t first = __atomic_load_n(&first_rel_ns, __ATOMIC_RELAXED);
	uint64_t last = __atomic_load_n(&last_rel_ns, __ATOMIC_RELAXED);
	s.trigger_to_exit_ms = s.drain_trigger_sig ? (int64_t)((now - t0) / 1000000) : -1;
	s.trigger_monotonic_ns = t0;
	s.exit_us = (int64_t)((now - t0) / 1000);
	/* A release the signal handler made can come before the sweeper
	 * stamps the trigger: 0 from it, then. */
	s.first_release_us = first ? (first > t0 ? (int64_t)((first - t0) / 1000) : 0) : -1;
	s.last_release_us = last ? (last > t0 ? (int64_t)((last - t0) / 1000) : 0) : -1;
	int n = stats_format(&s, buf, sizeof buf);

	char target[CFG_PATH_MAX + 16];
	if (forked_child)
		snprintf(target, sizeof target, "%s.%d", shim_cfg.stats_file, s.pid);
	else
		snprintf(target, sizeof target, "%s", shim_cfg.stats_file);
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", target, s.pid);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	char shown[CFG_SHOWN_MAX];
	if (fd < 0) {
		int err = errno;
		if (err == EACCES || err == EPERM || err == EROFS) {
			say_not_writable(target, err);
		} else {
			LOG(LOG_WARN,
			    "GRACESHIM_STATS=\"%s\": cannot create its temporary file (%s); "
			    "no statistics",
			    cfg_show_value(shim_cfg.stats_file, shown, sizeof shown),
			    strerror(err));
		}
		errno = saved;
		return;
	}
	int ok = n > 0 && real_syscall(SYS_write, fd, buf, (size_t)n) == n && fsync(fd) == 0;
	real_syscall(SYS_close, fd); /* not through our close(): it is our fd */
	if (!ok || rename(tmp, target) < 0) {
		LOG(LOG_WARN, "GRACESHIM_STATS=\"%s\": cannot write it (%s); no statistics",
		    cfg_show_value(shim_cfg.stats_file, shown, sizeof shown), strerror(errno));
		unlink(tmp);
	}
	errno = saved;
}

static int stats_armed;

void stats_init(void)
{
	if (shim_cfg.stats_file[0])
		stats_armed = 1;
}

__attribute__((destructor)) static void stats_at_exit(void)
{
	if (stats_armed && shim_active)
		write_stats();
}
