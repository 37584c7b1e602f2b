/*
 * SPDX-License-Identifier: MIT
 *
 * libFuzzer target for the configuration parser (shim/config.c, pure).
 *
 * Input: two bytes of presence mask (bit i: variable i is set), then the
 * values of the variables in the order of vars[], separated by NUL bytes.
 * Each value is copied into its own exact-size heap buffer, so that a read
 * past its end is an AddressSanitizer report.  The same values also go
 * straight to the single-value parsers.
 *
 * Invariants checked (any violation aborts with a message):
 *   cfg_parse: returns the number of warnings; every warning is one line of
 *     printable ASCII, shorter than 512 bytes, naming the variable; the
 *     resulting struct is valid field by field and agrees with the
 *     single-value parsers (an accepted value is used, a rejected one
 *     leaves the default); parsing twice gives the same struct.
 *   cfg_parse_duration / cfg_parse_timeout: a rejected value leaves the
 *     output untouched; an accepted one is at most CFG_DURATION_MAX.
 *   cfg_parse_signal_list: -1 or 1..max distinct catchable signals; nothing
 *     written past the count it returns.
 *   cfg_parse_signal, cfg_signal_name, cfg_parse_log_level: round trips.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vars[] = {
	"GRACESHIM_DISABLE",       "GRACESHIM_LOG",
	"GRACESHIM_LOG_FILE",      "GRACESHIM_STATS",
	"GRACESHIM_TRIGGERS",      "GRACESHIM_POLICY",
	"GRACESHIM_IDLE_QUIET",    "GRACESHIM_FIRST_BYTE_TIMEOUT",
	"GRACESHIM_DRAIN_TIMEOUT", "GRACESHIM_SIGNALS",
	"GRACESHIM_GRACE",
};
#define NVARS (sizeof vars / sizeof vars[0])
enum {
	V_DISABLE,
	V_LOG,
	V_LOG_FILE,
	V_STATS,
	V_TRIGGERS,
	V_POLICY,
	V_IDLE,
	V_FIRST,
	V_DRAIN,
	V_SIGNALS,
	V_GRACE
};

#define FUZZ_PREFIX "fuzz_config: invariant violated"
#include "fuzz.h"

struct ctx {
	char *val[NVARS];
	int warnings;
	unsigned warned; /* bit i: a warning named vars[i] */
};

static const char *get(const char *name, void *p)
{
	struct ctx *c = p;
	CHECK(!strncmp(name, "GRACESHIM_", 10), "cfg_parse asked for %s", name);
	for (size_t i = 0; i < NVARS; i++)
		if (!strcmp(name, vars[i]))
			return c->val[i];
	return NULL;
}

static void warn(const char *msg, void *p)
{
	struct ctx *c = p;
	size_t len = strnlen(msg, 4096);
	CHECK(len < 512, "warning of %zu bytes", len);
	for (size_t i = 0; i < len; i++)
		CHECK(msg[i] >= 0x20 && msg[i] < 0x7f, "byte %#x at %zu in warning \"%s\"",
		      (unsigned char)msg[i], i, msg);
	CHECK(strstr(msg, " is not valid: expected "), "warning without its shape: %s", msg);
	int named = -1;
	for (size_t i = 0; i < NVARS; i++) {
		size_t n = strlen(vars[i]);
		if (!strncmp(msg, vars[i], n) && msg[n] == '=')
			named = (int)i;
	}
	CHECK(named >= 0, "warning names no variable: %s", msg);
	c->warnings++;
	c->warned |= 1u << named;
}

static bool forbidden(int sig)
{
	return sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS ||
	       sig == SIGFPE || sig == SIGILL;
}

static void check_signal_set(const int *s, int n, const char *what)
{
	CHECK(n >= 1 && n <= CFG_MAX_SIGNALS, "%s: %d signals", what, n);
	for (int i = 0; i < n; i++) {
		CHECK(s[i] > 0 && s[i] < NSIG && !forbidden(s[i]), "%s: signal %d", what, s[i]);
		for (int j = 0; j < i; j++)
			CHECK(s[i] != s[j], "%s: signal %d twice", what, s[i]);
	}
}

static void check_duration(const char *v)
{
	const uint64_t untouched = 0xa5a5a5a5a5a5a5a5ull;
	uint64_t ns = untouched;
	int rc = cfg_parse_duration(v, &ns);
	CHECK(rc == 0 || rc == -1, "cfg_parse_duration returned %d", rc);
	if (rc < 0)
		CHECK(ns == untouched, "rejected duration \"%s\" wrote %llu", v,
		      (unsigned long long)ns);
	else
		CHECK(ns <= CFG_DURATION_MAX, "duration \"%s\" = %llu above the maximum", v,
		      (unsigned long long)ns);
	uint64_t t = untouched;
	int rt = cfg_parse_timeout(v, &t);
	if (rt < 0)
		CHECK(t == untouched, "rejected timeout \"%s\" wrote %llu", v,
		      (unsigned long long)t);
	else
		CHECK(t <= CFG_DURATION_MAX, "timeout \"%s\" too large", v);
	/* A timeout is a duration or "off". */
	CHECK(rt == rc || !strcasecmp(v, "off"), "timeout and duration disagree on \"%s\"", v);
	if (rc == 0 && rt == 0)
		CHECK(t == ns, "timeout and duration differ on \"%s\"", v);
}

static void check_signals(const char *v, int max)
{
	int out[CFG_MAX_SIGNALS + 1];
	for (int i = 0; i <= CFG_MAX_SIGNALS; i++)
		out[i] = -777;
	int n = cfg_parse_signal_list(v, out, max);
	if (n >= 0) {
		CHECK(n <= max, "%d signals with max %d", n, max);
		check_signal_set(out, n, "cfg_parse_signal_list");
	} else {
		CHECK(n == -1, "cfg_parse_signal_list returned %d", n);
	}
	/* Nothing written past the count (or, rejected, past the max). */
	for (int i = n > 0 ? n : max; i <= CFG_MAX_SIGNALS; i++)
		CHECK(out[i] == -777, "out[%d] written (returned %d, max %d)", i, n, max);

	int s = cfg_parse_signal(v);
	if (s >= 0) {
		CHECK(s > 0 && s < NSIG && !forbidden(s), "cfg_parse_signal(\"%s\") = %d", v, s);
		char num[16];
		snprintf(num, sizeof num, "%d", s);
		CHECK(cfg_parse_signal(num) == s, "number round trip of %d", s);
		const char *name = cfg_signal_name(s);
		if (name)
			CHECK(cfg_parse_signal(name) == s, "name round trip of %d (%s)", s, name);
		/* The list parser takes tokens of up to 31 bytes. */
		if (strlen(v) < 32)
			CHECK(cfg_parse_signal_list(v, out, CFG_MAX_SIGNALS) == 1 && out[0] == s,
			      "one signal \"%s\" is not a list of one", v);
	} else {
		CHECK(s == -1, "cfg_parse_signal returned %d", s);
	}

	int l = cfg_parse_log_level(v);
	CHECK(l >= -1 && l <= LOG_TRACE, "log level %d", l);
	if (l >= 0)
		CHECK(!strcasecmp(v, cfg_log_level_name((enum log_level)l)), "level name of %d", l);
}

static void check_cfg(const struct cfg *c, const struct ctx *x)
{
	struct cfg d;
	cfg_defaults(&d);
	check_signal_set(c->signals, c->nsignals, "cfg.signals");
	CHECK(c->grace_ns <= CFG_DURATION_MAX, "grace");
	CHECK(c->log_level >= LOG_OFF && c->log_level <= LOG_TRACE, "log_level %d", c->log_level);
	CHECK(memchr(c->log_file, 0, sizeof c->log_file), "log_file not terminated");
	CHECK(memchr(c->stats_file, 0, sizeof c->stats_file), "stats_file not terminated");
	CHECK(c->policy == POLICY_UNUSED || c->policy == POLICY_IDLE, "policy %d", c->policy);
	CHECK(c->idle_quiet_ns > 0 && c->idle_quiet_ns <= CFG_DURATION_MAX, "idle_quiet");
	CHECK(c->first_byte_timeout_ns <= CFG_DURATION_MAX, "first_byte_timeout");
	CHECK(c->drain_timeout_ns <= CFG_DURATION_MAX, "drain_timeout");
	CHECK(c->triggers >= 1 && c->triggers <= (TRIGGER_SIGNAL | TRIGGER_LISTENER), "triggers %u",
	      c->triggers);

	/* Agreement with the single-value parsers. */
	uint64_t ns;
	const char *v = x->val[V_GRACE];
	if (v && cfg_parse_duration(v, &ns) == 0)
		CHECK(c->grace_ns == ns && !(x->warned & 1u << V_GRACE), "grace \"%s\" not used",
		      v);
	else
		CHECK(c->grace_ns == 0 && (!v || x->warned & 1u << V_GRACE),
		      "bad grace kept or unwarned");
	v = x->val[V_DRAIN];
	if (v && cfg_parse_timeout(v, &ns) == 0)
		CHECK(c->drain_timeout_ns == ns, "drain timeout \"%s\" not used", v);
	else
		CHECK(c->drain_timeout_ns == 0 && (!v || x->warned & 1u << V_DRAIN),
		      "drain timeout");
	v = x->val[V_SIGNALS];
	int sigs[CFG_MAX_SIGNALS];
	int n = v ? cfg_parse_signal_list(v, sigs, CFG_MAX_SIGNALS) : -1;
	if (n > 0)
		CHECK(c->nsignals == n && !memcmp(c->signals, sigs, (size_t)n * sizeof sigs[0]),
		      "signals \"%s\" not used", v);
	else
		CHECK(c->nsignals == d.nsignals &&
			      !memcmp(c->signals, d.signals, sizeof d.signals) &&
			      (!v || x->warned & 1u << V_SIGNALS),
		      "bad signal list kept or unwarned");
	v = x->val[V_LOG];
	int l = v ? cfg_parse_log_level(v) : -1;
	CHECK(c->log_level == (l >= 0 ? (enum log_level)l : d.log_level), "log level");
	v = x->val[V_LOG_FILE];
	if (v && strlen(v) < CFG_PATH_MAX)
		CHECK(!strcmp(c->log_file, v), "log file not taken as is");
	else
		CHECK(!c->log_file[0], "an over-long log file path was kept");
	/* Only set variables are warned about. */
	for (size_t i = 0; i < NVARS; i++)
		CHECK(x->val[i] || !(x->warned & 1u << i), "warning about unset %s", vars[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx x;
	memset(&x, 0, sizeof x);
	if (size < 2)
		return 0;
	unsigned mask = data[0] | (unsigned)data[1] << 8;
	size_t pos = 2;
	for (size_t i = 0; i < NVARS && pos <= size; i++) {
		const uint8_t *end = memchr(data + pos, 0, size - pos);
		size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
		if (mask & (1u << i)) {
			x.val[i] = malloc(len + 1);
			memcpy(x.val[i], data + pos, len);
			x.val[i][len] = 0;
		}
		pos += len + 1;
	}

	for (size_t i = 0; i < NVARS; i++) {
		if (!x.val[i])
			continue;
		check_duration(x.val[i]);
		check_signals(x.val[i], (int)(i % (CFG_MAX_SIGNALS + 1)));
	}

	struct cfg c1, c2;
	int problems = cfg_parse(&c1, get, warn, &x);
	CHECK(problems == x.warnings, "cfg_parse returned %d after %d warnings", problems,
	      x.warnings);
	check_cfg(&c1, &x);
	struct ctx y = x;
	y.warnings = 0;
	y.warned = 0;
	CHECK(cfg_parse(&c2, get, NULL, &y) == problems, "second parse: other problem count");
	CHECK(!memcmp(&c1, &c2, sizeof c1), "two parses of the same environment differ");

	for (size_t i = 0; i < NVARS; i++)
		free(x.val[i]);
	return 0;
}
