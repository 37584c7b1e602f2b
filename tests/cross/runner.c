/*
 * SPDX-License-Identifier: MIT
 *
 * criterion-lite's runner (see tests/cross/criterion/criterion.h): runs every
 * registered unit test in this process, in registration order (not in a
 * forked child as Criterion does: under qemu-user 7.2 here a forked guest
 * spins for ever, as a new thread does), with its suite's .init and .fini; a
 * failed assertion jumps back here.  Prints one line per test and a
 * Criterion-like synthesis.  Exit status 0 when all
 * passed.  Arguments: --skip suite/name (repeatable): tests that cannot run
 * here, reported as skipped with the reason given by --reason.
 */
#include <criterion/criterion.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct crl_test *tests, **tail = &tests;
static struct crl_suite *suites;
static jmp_buf failed_here;

void crl_register(struct crl_test *t)
{
	*tail = t;
	tail = &t->next;
}

void crl_register_suite(struct crl_suite *s)
{
	s->next = suites;
	suites = s;
}

void crl_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	printf("[----] %s:%d: Assertion Failed: %s\n", file, line, expr);
	if (fmt[0] && fmt[1]) { /* "-" and the test's message (criterion.h) */
		printf("[----]   ");
		va_start(ap, fmt);
		vprintf(fmt + 1, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
	longjmp(failed_here, 1);
}

static const struct crl_suite *suite_of(const struct crl_test *t)
{
	for (const struct crl_suite *s = suites; s; s = s->next)
		if (!strcmp(s->name, t->suite))
			return s;
	return NULL;
}

/* One run of a test (one parameter of a parameterized one).  A hang ends
 * the whole run (SIGALRM): a failure all the same. */
/* The body alone, so that nothing of run_one lives across the longjmp. */
static int body(const struct crl_test *t, void *param)
{
	if (setjmp(failed_here))
		return 0;
	if (param)
		t->pfn(param);
	else
		t->fn();
	return 1;
}

static int run_one(const struct crl_test *t, void *param)
{
	const struct crl_suite *s = suite_of(t);
	alarm(60);
	if (s && s->opts.init)
		s->opts.init();
	if (t->opts.init)
		t->opts.init();
	int ok = body(t, param);
	if (t->opts.fini)
		t->opts.fini();
	if (s && s->opts.fini)
		s->opts.fini();
	alarm(0);
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0;
	for (const struct crl_test *t = tests; t; t = t->next) {
		char full[256];
		snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
		int skip = t->opts.disabled;
		/* Each --skip takes the reason given after it (the next
		 * --reason), else the last one. */
		const char *reason = "cannot run here";
		for (int i = 1; i < argc; i++)
			if (!strcmp(argv[i], "--reason") && i + 1 < argc)
				reason = argv[++i];
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--skip") && i + 1 < argc &&
			    !strcmp(argv[++i], full)) {
				skip = 1;
				for (int j = i + 1; j < argc; j++)
					if (!strcmp(argv[j], "--reason") && j + 1 < argc) {
						reason = argv[j + 1];
						break;
					}
				break;
			}
		}
		if (skip) {
			printf("[SKIP] %s::%s: %s\n", t->suite, t->name, reason);
			skipped++;
			continue;
		}
		/* Each parameter counts as a test, as in Criterion's synthesis. */
		struct crl_params p = t->pfn ? t->params() : (struct crl_params){NULL, 0, 1};
		for (size_t k = 0; k < p.n; k++) {
			int ok = run_one(t, t->pfn ? (char *)p.arr + k * p.size : NULL);
			if (t->pfn)
				printf("[%s] %s::%s (parameter %zu)\n", ok ? "PASS" : "FAIL",
				       t->suite, t->name, k);
			else
				printf("[%s] %s::%s\n", ok ? "PASS" : "FAIL", t->suite, t->name);
			ok ? passed++ : failed++;
		}
	}
	printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Skipped: %d\n",
	       passed + failed, passed, failed, skipped);
	return failed ? 1 : 0;
}
