/*
 * SPDX-License-Identifier: MIT
 *
 * criterion-lite: the part of Criterion's API that tests/unit uses, for the
 * aarch64 run under qemu-user (make check-cross).  Criterion's runner starts
 * threads and forks, and under qemu-user 7.2 here a guest's new thread or
 * forked child spins for ever (a ten-line program's does), so the unit tests
 * are built against this header instead: tests/cross/runner.c runs them in
 * order in one process, each with its suite's .init and .fini; an assertion
 * prints where and why and fails the test.  Only what the unit tests use:
 * Test, TestSuite, ParameterizedTest and the cr_assert family.
 */
#ifndef GRACESHIM_CRITERION_LITE_H
#define GRACESHIM_CRITERION_LITE_H

#include <stddef.h>
#include <string.h>

struct crl_opts {
	void (*init)(void);
	void (*fini)(void);
	int timeout; /* accepted, not enforced: the runner has one limit */
	int disabled;
};

struct crl_params {
	void *arr;
	size_t size, n;
};

struct crl_test {
	const char *suite, *name;
	void (*fn)(void);                  /* plain test */
	void (*pfn)(void *);               /* parameterized test */
	struct crl_params (*params)(void); /* its parameters */
	struct crl_opts opts;
	struct crl_test *next;
};

struct crl_suite {
	const char *name;
	struct crl_opts opts;
	struct crl_suite *next;
};

void crl_register(struct crl_test *t);
void crl_register_suite(struct crl_suite *s);
__attribute__((noreturn, format(printf, 4, 5))) void crl_fail(const char *file, int line,
							       const char *expr, const char *fmt, ...);

#define Test(s, n, ...)                                                                    \
	static void s##_##n(void);                                                         \
	__attribute__((constructor)) static void crl_reg_##s##_##n(void)                   \
	{                                                                                  \
		static struct crl_test t = {#s, #n, s##_##n, NULL, NULL, {__VA_ARGS__}, NULL}; \
		crl_register(&t);                                                          \
	}                                                                                  \
	static void s##_##n(void)

#define TestSuite(s, ...)                                                   \
	__attribute__((constructor)) static void crl_suite_##s(void)        \
	{                                                                   \
		static struct crl_suite su = {#s, {__VA_ARGS__}, NULL};     \
		crl_register_suite(&su);                                    \
	}                                                                   \
	struct crl_swallow_semicolon_##s

#define cr_make_param_array(type, a, len) ((struct crl_params){(a), sizeof(type), (len)})

#define ParameterizedTestParameters(s, n) static struct crl_params s##_##n##_params(void)

#define ParameterizedTest(decl, s, n, ...)                                                     \
	static void s##_##n(decl);                                                             \
	static void s##_##n##_thunk(void *p) { s##_##n(p); }                                   \
	__attribute__((constructor)) static void crl_reg_##s##_##n(void)                       \
	{                                                                                      \
		static struct crl_test t = {#s, #n, NULL, s##_##n##_thunk, s##_##n##_params,   \
					    {__VA_ARGS__}, NULL};                              \
		crl_register(&t);                                                              \
	}                                                                                      \
	static void s##_##n(decl)

/* "-" before the arguments: the message is optional, as in Criterion (the
 * runner prints the format from its second character). */
#define cr_assert(c, ...)                                                 \
	do {                                                              \
		if (!(c))                                                 \
			crl_fail(__FILE__, __LINE__, #c, "-" __VA_ARGS__); \
	} while (0)
#define cr_assert_not(c, ...) cr_assert(!(c), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_empty(a, ...) cr_assert((a)[0] == 0, __VA_ARGS__)

#endif
