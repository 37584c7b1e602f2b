/*
 * SPDX-License-Identifier: MIT
 *
 * Formatting a log line without libc's locks (pure): the time stamp from
 * seconds and a UTC offset fixed at start-up, and a printf subset.
 *
 * A log line may be formatted on any thread at any time, and a process may
 * fork meanwhile: its child inherits every lock another thread held at that
 * moment.  localtime_r() holds glibc's time zone lock, stdio streams their
 * own locks, malloc its arena's; a child's first log line that needed one
 * of them would wait for ever.  So nothing here takes a lock, allocates or
 * reads the locale.
 */
#ifndef GRACESHIM_LOGFMT_H
#define GRACESHIM_LOGFMT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* "2026-11-25T00:14:31.452449+01:00": sec since the epoch (UTC), usec,
 * and the offset of local time from UTC in seconds.  Writes at most len - 1
 * bytes and a NUL; returns the bytes written. */
size_t logfmt_time(char *buf, size_t len, int64_t sec, long usec, long utc_offset)
	__attribute__((visibility("hidden")));

/* vsnprintf() for the conversions the shim's messages use: %d %i %u %x %X
 * %o %c %s %p %f %% with the flags - 0 + space, a width and a precision
 * (digits or *), and the length modifiers hh h l ll z j t.  Anything else is
 * copied as it stands.  Writes at most len - 1 bytes and a NUL (len > 0);
 * returns the bytes written (not the length the whole would have had). */
size_t logfmt_vformat(char *buf, size_t len, const char *fmt, va_list ap)
	__attribute__((visibility("hidden")));
size_t logfmt_format(char *buf, size_t len, const char *fmt, ...)
	__attribute__((visibility("hidden"), format(printf, 3, 4)));

#endif
