/*
 * SPDX-License-Identifier: MIT
 *
 * The lock-free log formatting (logfmt.c) against libc's own: the same
 * bytes as snprintf() for every conversion the shim's messages use, and the
 * same time stamps as gmtime_r() + strftime() at any offset.
 */
#include "logfmt.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SAME(fmt, ...)                                                                             \
	do {                                                                                       \
		char want[256], got[256];                                                          \
		snprintf(want, sizeof want, fmt, __VA_ARGS__);                                     \
		size_t n = logfmt_format(got, sizeof got, fmt, __VA_ARGS__);                       \
		cr_assert_str_eq(got, want, "format \"%s\"", fmt);                                 \
		cr_assert_eq(n, strlen(want), "format \"%s\": length %zu", fmt, n);                \
	} while (0)

Test(logfmt, conversions_match_snprintf)
{
	SAME("%s graceshim[%d] ", "INFO", 4242);
	SAME("connection %s accepted (fd %d)", "127.0.0.1:49501", 7);
	SAME("%u %llu %zu %lu", 0u, 18446744073709551615ull, (size_t)12345, 99ul);
	SAME("%d %d %d %ld %lld", 0, -1, -2147483647 - 1, -5l, -9223372036854775807ll - 1);
	SAME("%i|%5d|%-5d|%05d|%+d|% d|%.3d|%8.3d", 3, 42, 42, -42, 7, 7, 5, -5);
	SAME("%x %X %o %#x %08x", 255u, 255u, 8u, 0u, 0xbeefu);
	SAME("%hhu %hd %hu", 300, 70000, 70000);
	SAME("%c%c|%3c|%-3c|", 'o', 'k', 'x', 'y');
	SAME("%s|%10s|%-10s|%.2s|%*s|%.*s|", "abc", "abc", "abc", "abc", 6, "ab", 1, "xyz");
	SAME("%p %p", (void *)0x1234, (void *)NULL);
	/* Not at a rounding tie: libc rounds the exact binary value, we round
	 * in double arithmetic (the shim logs no fractions that fine). */
	SAME("%f %.1f %.3f %.0f %8.2f %-8.2f| %f", 1.5, 0.26, -2.0004, 2.7, 3.14159, 3.14159, 1e9);
	SAME("100%% %s", "done");
	SAME("%.0d|%.0u|", 0, 0u);
}

Test(logfmt, truncates_at_the_buffer)
{
	char buf[8];
	size_t n = logfmt_format(buf, sizeof buf, "%s-%d", "abcdef", 12345);
	cr_assert_eq(n, 7, "wrote %zu", n);
	cr_assert_str_eq(buf, "abcdef-", "got \"%s\"", buf);
	n = logfmt_format(buf, 1, "%s", "x");
	cr_assert_eq(n, 0, "wrote %zu", n);
	cr_assert_str_eq(buf, "", "got \"%s\"", buf);
}

Test(logfmt, unknown_conversion_copied)
{
	char buf[64];
	const char *fmt = "a %q b %"; /* not a valid format: built at run time */
	logfmt_format(buf, sizeof buf, fmt, 1);
	cr_assert_str_eq(buf, "a %q b %", "got \"%s\"", buf);
}

Test(logfmt, time_stamps_match_strftime)
{
	const int64_t secs[] = {0,
				1,
				86399,
				86400,
				951782400 /* 2000-02-29 */,
				1700000000,
				1798675199,
				4102444800 /* 2100-01-01 */,
				-1,
				-86401};
	const long offs[] = {0, 3600, -18000, 19800, 45 * 60, -(9 * 3600 + 30 * 60), 14 * 3600};
	for (size_t i = 0; i < sizeof secs / sizeof *secs; i++)
		for (size_t j = 0; j < sizeof offs / sizeof *offs; j++) {
			time_t t = (time_t)(secs[i] + offs[j]);
			struct tm tm;
			gmtime_r(&t, &tm);
			char want[64], got[64];
			size_t o = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
			long off = offs[j] < 0 ? -offs[j] : offs[j];
			snprintf(want + o, sizeof want - o, ".%06ld%c%02ld:%02ld", 123456L,
				 offs[j] < 0 ? '-' : '+', off / 3600, off % 3600 / 60);
			logfmt_time(got, sizeof got, secs[i], 123456, offs[j]);
			cr_assert_str_eq(got, want, "%lld s at offset %ld", (long long)secs[i],
					 offs[j]);
		}
}
