/*
 * SPDX-License-Identifier: MIT
 *
 * Log lines.  Each line is formatted into one buffer and written with a
 * single write(2) so that lines from several threads (and from the host's
 * own logging to the same stderr) never interleave mid-line.  errno is
 * preserved: a wrapper may log between the real call and its return.
 */
#include "log.h"

#include "conntab.h"
#include "logfmt.h"
#include "real.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_level_cur = LOG_WARN;

static void write_all(int fd, const char *buf, size_t len)
{
	/* Raw syscall: never through an interposed write(), never EINTR-looped
	 * forever (bounded retries). */
	for (int tries = 0; len > 0 && tries < 8; tries++) {
		long n = real_syscall(SYS_write, fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
			break;
		}
	}
}

/* fd 2 is written only while it is the stderr the process started with, or
 * one the host put there itself with dup2()/dup3() (a daemon's /dev/null,
 * nginx's error log): a host that closed fd 2 and then opened a file, a
 * socket or an accepted connection that landed on that number owns what is
 * there now, and a line written to it would be a byte in the host's data
 * (invariant 3).  The identity (device, inode) is read at start-up and at
 * each dup onto 2; 0/0 when fd 2 was not open. */
static uint64_t stderr_dev, stderr_ino;
static int stderr_noted;

void log_stderr_note(void)
{
	int saved = errno;
	struct stat st;
	uint64_t dev = 0, ino = 0;
	if (fstat(2, &st) == 0) {
		dev = (uint64_t)st.st_dev;
		ino = (uint64_t)st.st_ino;
	}
	__atomic_store_n(&stderr_dev, dev, __ATOMIC_RELAXED);
	__atomic_store_n(&stderr_ino, ino, __ATOMIC_RELAXED);
	__atomic_store_n(&stderr_noted, 1, __ATOMIC_RELEASE);
	errno = saved;
}

/* 2 when fd 2 is still the stderr noted, else -1 (the line is dropped). */
static int stderr_fd(void)
{
	if (!__atomic_load_n(&stderr_noted, __ATOMIC_ACQUIRE))
		log_stderr_note();
	struct stat st;
	uint64_t ino = __atomic_load_n(&stderr_ino, __ATOMIC_RELAXED);
	if (!ino || fstat(2, &st) < 0 || (uint64_t)st.st_ino != ino ||
	    (uint64_t)st.st_dev != __atomic_load_n(&stderr_dev, __ATOMIC_RELAXED))
		return -1;
	return 2;
}

void log_raw_stderr(const char *line)
{
	int saved = errno;
	int fd = stderr_fd();
	if (fd >= 0)
		write_all(fd, line, strlen(line));
	errno = saved;
}

/* GRACESHIM_LOG_FILE is opened at the first line actually written, not at
 * start-up: most processes that inherit LD_PRELOAD never log anything, and
 * must not create the file or complain that they cannot (a child started
 * as another user).  Before each line the fd is checked to still be the
 * file we opened (the host may close or replace any number behind our
 * wrappers); if not, the file is opened again. */
static const char *log_path;
static int log_file_fd = -1;
static uint64_t log_file_dev, log_file_ino;
static int log_open_state; /* 0 not yet, 1 opening, 2 open or failed for good */

/* Local time's offset from UTC, in seconds, read once at start-up: a log
 * line must take no lock of libc's (localtime_r() takes the time zone's; a
 * child forked while another thread held it would wait for ever in its
 * first line: see logfmt.h).  A process that runs across a change of
 * daylight saving time goes on stamping its lines with the offset it
 * started with: the instants stay exact. */
static long log_utc_offset;

void log_init(enum log_level level, const char *path)
{
	log_level_cur = (int)level;
	/* Now, at start-up, the one time zone lookup (it reads the zone file
	 * and allocates). */
	if (level != LOG_OFF) {
		struct tm tm;
		time_t now = time(NULL);
		if (localtime_r(&now, &tm))
			log_utc_offset = tm.tm_gmtoff;
	}
	if (level == LOG_OFF || !path || !*path)
		return;
	log_path = path;
}

/* Opens the log file; returns its fd or -1 (and says why on stderr). */
static int log_open(void)
{
	/* O_NONBLOCK: opening a planted FIFO must not block; a FIFO or socket
	 * is refused, a regular file or a terminal is kept (blocking). */
	int fd = (int)real_syscall(SYS_openat, AT_FDCWD, log_path,
				   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
					   O_NOCTTY | O_NONBLOCK,
				   0600);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))) {
		real_syscall(SYS_close, fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd >= 0) {
		real_syscall(SYS_fcntl, fd, F_SETFL, O_WRONLY | O_APPEND);
		log_file_dev = (uint64_t)st.st_dev;
		log_file_ino = (uint64_t)st.st_ino;
		return fd;
	}
	char line[512], shown[CFG_SHOWN_MAX];
	snprintf(line, sizeof line,
		 "graceshim: GRACESHIM_LOG_FILE=\"%s\" cannot be opened (%s; a regular file "
		 "is expected); logging to stderr\n",
		 cfg_show_value(log_path, shown, sizeof shown), strerror(errno));
	log_raw_stderr(line);
	return -1;
}

/* Where the next line goes: the log file (opened now if need be) or
 * stderr; -1: nowhere (stderr is no longer ours to write). */
static int log_target(void)
{
	if (!log_path)
		return stderr_fd();
	int st = __atomic_load_n(&log_open_state, __ATOMIC_ACQUIRE);
	if (st != 2) {
		int expect = 0;
		if (__atomic_compare_exchange_n(&log_open_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			__atomic_store_n(&log_file_fd, log_open(), __ATOMIC_RELEASE);
			__atomic_store_n(&log_open_state, 2, __ATOMIC_RELEASE);
		} else {
			/* Another thread is opening it: this line goes to stderr
			 * rather than waiting (a log line must never block). */
			if (__atomic_load_n(&log_open_state, __ATOMIC_ACQUIRE) != 2)
				return stderr_fd();
		}
	}
	int fd = __atomic_load_n(&log_file_fd, __ATOMIC_ACQUIRE);
	if (fd < 0)
		return stderr_fd();
	struct stat sb;
	if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_dev == log_file_dev &&
	    (uint64_t)sb.st_ino == log_file_ino)
		return fd;
	/* No longer ours: the number is the host's now.  Open the file again
	 * (never touching the old number); one thread at a time. */
	int expect = 2;
	if (!__atomic_compare_exchange_n(&log_open_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return stderr_fd();
	int nfd = log_open();
	__atomic_store_n(&log_file_fd, nfd, __ATOMIC_RELEASE);
	__atomic_store_n(&log_open_state, 2, __ATOMIC_RELEASE);
	return nfd >= 0 ? nfd : stderr_fd();
}

static const char *const level_tag[] = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void log_msg(enum log_level l, const char *fmt, ...)
{
	int saved = errno;
	char line[1024];
	struct timespec ts;
	size_t o;
	va_list ap;

	/* No libc lock, no stdio, no malloc (logfmt.h). */
	clock_gettime(CLOCK_REALTIME, &ts);
	o = logfmt_time(line, sizeof line, (int64_t)ts.tv_sec, ts.tv_nsec / 1000, log_utc_offset);
	o += logfmt_format(line + o, sizeof line - o, " %s graceshim[%d] ", level_tag[l],
			   (int)real_syscall(SYS_getpid));
	va_start(ap, fmt);
	o += logfmt_vformat(line + o, sizeof line - o - 1, fmt, ap);
	va_end(ap);
	line[o++] = '\n';
	int fd = log_target();
	if (fd >= 0)
		write_all(fd, line, o);
	errno = saved;
}

/* The peer of fd, asked of the kernel, into p and formatted into buf. */
static void peer_of(int fd, struct conn_peer *p, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		sl = 0;
	conn_peer_from_sockaddr(p, (struct sockaddr *)&ss, sl);
	conn_peer_format(p, buf, len);
}

void log_peer(int fd, char *buf, size_t len)
{
	int saved = errno;
	struct conn_peer p;
	peer_of(fd, &p, buf, len);
	errno = saved;
}

/* Trace only: the peer of each accepted connection, kept by fd from accept
 * to close, because at close the kernel may no longer say (getpeername fails
 * with ENOTCONN once a reset, or both FINs, took the socket to TCP_CLOSE).
 * 24 bytes per fd below CONNTAB_LOW in one anonymous mapping made at the
 * first trace accept: only the pages of fds in use become resident, and the
 * records (and every other log level) pay nothing.  A slot is written by the
 * accept of its fd and read by the close of the same record (the table lock
 * orders the two); the inode tells a slot from an older connection's. */
struct kept_peer {
	uint32_t ino;
	struct conn_peer p;
};
static struct kept_peer *kept_peers;

static struct kept_peer *kept_slot(int fd, bool create)
{
	if ((unsigned)fd >= CONNTAB_LOW)
		return NULL;
	struct kept_peer *k = __atomic_load_n(&kept_peers, __ATOMIC_ACQUIRE);
	if (!k && create) {
		size_t size = (size_t)CONNTAB_LOW * sizeof *k;
		void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		if (!__atomic_compare_exchange_n(&kept_peers, &k, (struct kept_peer *)m, 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			munmap(m, size); /* another thread's mapping won: k is it */
		else
			k = m;
	}
	return k ? &k[fd] : NULL;
}

void log_peer_keep(int fd, uint32_t ino, char *buf, size_t len)
{
	int saved = errno;
	struct conn_peer p;
	peer_of(fd, &p, buf, len);
	struct kept_peer *k = kept_slot(fd, true);
	if (k) {
		k->p = p;
		k->ino = ino;
	}
	errno = saved;
}

void log_peer_kept(int fd, uint32_t ino, char *buf, size_t len)
{
	struct kept_peer *k = kept_slot(fd, false);
	if (k && k->ino == ino && k->p.family)
		conn_peer_format(&k->p, buf, len);
	else
		log_peer(fd, buf, len);
}

void log_peer_copy(int oldfd, int newfd)
{
	struct kept_peer *from = kept_slot(oldfd, false), *to = kept_slot(newfd, false);
	if (from && to)
		*to = *from;
}
