/*
 * SPDX-License-Identifier: MIT
 *
 * What both fuzzers share: a failed check prints FUZZ_PREFIX and the
 * message, then aborts, which libFuzzer reports as a crash with the input.
 * Define FUZZ_PREFIX before including this file.
 */
#ifndef GRACESHIM_FUZZ_H
#define GRACESHIM_FUZZ_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", FUZZ_PREFIX);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail(__VA_ARGS__);                                                         \
	} while (0)

#endif
