/*
 * SPDX-License-Identifier: MIT
 *
 * Logging: one write(2) per line, with a local timestamp (microseconds and
 * the UTC offset read at start-up), the level, the pid and the message,
 * formatted without libc's locks, stdio or malloc (logfmt.h):
 *   2026-11-25T00:14:31.452449+00:00 TRACE graceshim[4242] connection 127.0.0.1:49501 accepted
 * Never called from a signal handler.
 */
#ifndef GRACESHIM_LOG_H
#define GRACESHIM_LOG_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

extern int log_level_cur __attribute__((visibility("hidden"))); /* written once at init */

static inline int log_on(enum log_level l)
{
	return __builtin_expect(log_level_cur >= (int)l, 0);
}

/* Sets the level, and the log file to open (O_APPEND|O_CLOEXEC|O_NOFOLLOW,
 * mode 0600) at the first line written; a file that cannot be opened is
 * reported on stderr then, and the lines go to stderr. */
void log_init(enum log_level level, const char *path);
void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes a ready line to stderr (config problems, before log_init). */
void log_raw_stderr(const char *line);
/* fd 2 is (again) the host's stderr: at start-up, after a dup onto 2. */
void log_stderr_note(void);

/* "127.0.0.1:49501", "[::1]:8080", "unix" for an open socket fd (asks the
 * kernel: the table does not store addresses). */
void log_peer(int fd, char *buf, size_t len);
/* Trace: the same, kept for fd's connection (inode ino) until its close,
 * where log_peer_kept() gives it even when the kernel no longer can;
 * log_peer_copy() gives a dup of fd the same peer. */
void log_peer_keep(int fd, uint32_t ino, char *buf, size_t len);
void log_peer_kept(int fd, uint32_t ino, char *buf, size_t len);
void log_peer_copy(int oldfd, int newfd);

#define LOG(l, ...)                                                                                \
	do {                                                                                       \
		if (log_on(l))                                                                     \
			log_msg(l, __VA_ARGS__);                                                   \
	} while (0)

#endif
