/*
 * SPDX-License-Identifier: MIT
 *
 * Configuration parsing (pure).  Strict: a value is accepted only when all of
 * it parses and lies in range; otherwise one line names the variable, the
 * value and what is expected, and the default stays.  The counter-example we
 * avoid is atoi(), which turns "5 s" or "fast" silently into 5 or 0.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	int num;
} sigtab[] = {
	{"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"USR1", SIGUSR1},
	{"USR2", SIGUSR2},     {"TERM", SIGTERM}, {"ALRM", SIGALRM},   {"PIPE", SIGPIPE},
	{"CHLD", SIGCHLD},     {"CONT", SIGCONT}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
	{"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
	{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
	{"PWR", SIGPWR},       {"SYS", SIGSYS},   {"ABRT", SIGABRT},   {"TRAP", SIGTRAP},
};

/* Signals a shutdown can never be meant by: uncatchable, or raised by faults
 * whose handlers must run without delay. */
static bool sig_allowed(int sig)
{
	switch (sig) {
	case SIGKILL:
	case SIGSTOP:
	case SIGSEGV:
	case SIGBUS:
	case SIGFPE:
	case SIGILL:
		return false;
	default:
		return sig > 0 && sig < NSIG;
	}
}

const char *cfg_signal_name(int sig)
{
	static const char *const names[] = {
		[SIGKILL] = "KILL", [SIGSTOP] = "STOP", [SIGSEGV] = "SEGV",
		[SIGBUS] = "BUS",   [SIGFPE] = "FPE",   [SIGILL] = "ILL"};
	for (size_t i = 0; i < sizeof sigtab / sizeof sigtab[0]; i++)
		if (sigtab[i].num == sig)
			return sigtab[i].name;
	if (sig > 0 && sig < (int)(sizeof names / sizeof names[0]) && names[sig])
		return names[sig];
	return NULL;
}

static int parse_uint(const char *s, long lo, long hi)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	return (int)v;
}

int cfg_parse_signal(const char *s)
{
	int sig = -1;

	if (isdigit((unsigned char)*s)) {
		sig = parse_uint(s, 1, NSIG - 1);
	} else {
		const char *n = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
		if (strncasecmp(n, "RTMIN+", 6) == 0) {
			int k = parse_uint(n + 6, 0, SIGRTMAX - SIGRTMIN);
			sig = k < 0 ? -1 : SIGRTMIN + k;
		} else if (strcasecmp(n, "RTMIN") == 0) {
			sig = SIGRTMIN;
		} else {
			for (size_t i = 0; i < sizeof sigtab / sizeof sigtab[0]; i++)
				if (strcasecmp(n, sigtab[i].name) == 0)
					sig = sigtab[i].num;
		}
	}
	return sig > 0 && sig_allowed(sig) ? sig : -1;
}

int cfg_parse_signal_list(const char *s, int *out, int max)
{
	char tok[32];
	int n = 0;

	while (*s) {
		size_t len = 0;
		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		while (s[len] && s[len] != ',' && s[len] != ' ' && s[len] != '\t')
			len++;
		if (len >= sizeof tok || n >= max)
			return -1;
		memcpy(tok, s, len);
		tok[len] = 0;
		s += len;
		int sig = cfg_parse_signal(tok);
		if (sig < 0)
			return -1;
		bool dup = false;
		for (int i = 0; i < n; i++)
			dup |= out[i] == sig;
		if (!dup)
			out[n++] = sig;
	}
	return n > 0 ? n : -1;
}

int cfg_parse_duration(const char *s, uint64_t *ns)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		/* longest first so "ms" is not read as "m" followed by junk */
		{"ns", 1},          {"us", 1000},      {"ms", 1000000}, {"h", 3600000000000},
		{"m", 60000000000}, {"s", 1000000000},
	};
	uint64_t total = 0;

	if (strcmp(s, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (!*s)
		return -1;
	while (*s) {
		uint64_t whole = 0, frac = 0, scale = 1, mult = 0;
		bool digits = false;

		while (isdigit((unsigned char)*s)) {
			if (whole > CFG_DURATION_MAX)
				return -1;
			whole = whole * 10 + (uint64_t)(*s++ - '0');
			digits = true;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				if (scale < 1000000000000000000ULL) { /* keep 18 digits */
					frac = frac * 10 + (uint64_t)(*s - '0');
					scale *= 10;
				}
				s++;
				digits = true;
			}
		}
		if (!digits)
			return -1;
		if (!*s && total == 0) {
			mult = 1000000000; /* a bare number is seconds */
		} else {
			for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
				size_t ul = strlen(units[i].unit);
				if (strncmp(s, units[i].unit, ul) == 0) {
					mult = units[i].mult;
					s += ul;
					break;
				}
			}
			if (!mult)
				return -1;
		}
		if (whole > CFG_DURATION_MAX / mult)
			return -1;
		/* frac/scale * mult without overflow: mult <= 3.6e12, scale <= 1e18 */
		long double part = (long double)frac * (long double)mult / (long double)scale;
		total += whole * mult + (uint64_t)part;
		if (total > CFG_DURATION_MAX)
			return -1;
	}
	*ns = total;
	return 0;
}

int cfg_parse_timeout(const char *s, uint64_t *ns)
{
	if (strcasecmp(s, "off") == 0) {
		*ns = 0;
		return 0;
	}
	return cfg_parse_duration(s, ns);
}

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", "trace"};

int cfg_parse_log_level(const char *s)
{
	for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *cfg_log_level_name(enum log_level l)
{
	return (unsigned)l < sizeof level_names / sizeof level_names[0] ? level_names[l] : "?";
}

void cfg_defaults(struct cfg *c)
{
	memset(c, 0, sizeof *c);
	c->nsignals = 2;
	c->signals[0] = SIGINT;
	c->signals[1] = SIGTERM;
	c->grace_ns = 0;
	c->log_level = LOG_WARN;
	c->policy = POLICY_IDLE;
	c->idle_quiet_ns = CFG_IDLE_QUIET_DEFAULT_NS;
	c->triggers = TRIGGER_SIGNAL | TRIGGER_LISTENER;
	c->unblock_after_ns = CFG_UNBLOCK_AFTER_DEFAULT_NS;
}

/* "signal", "listener", or both, comma or space separated. */
static int parse_triggers(const char *s, unsigned *out)
{
	unsigned t = 0;
	while (*s) {
		size_t len = 0;
		while (*s == ',' || *s == ' ')
			s++;
		if (!*s)
			break;
		while (s[len] && s[len] != ',' && s[len] != ' ')
			len++;
		if (len == 6 && strncasecmp(s, "signal", 6) == 0)
			t |= TRIGGER_SIGNAL;
		else if (len == 8 && strncasecmp(s, "listener", 8) == 0)
			t |= TRIGGER_LISTENER;
		else
			return -1;
		s += len;
	}
	if (!t)
		return -1;
	*out = t;
	return 0;
}

const char *cfg_show_value(const char *val, char *out, size_t len)
{
	size_t i, o = 0;

	/* Printable ASCII only: a newline would start a line of its own (or
	 * forge one), an escape sequence would drive the operator's terminal;
	 * bounded: a 128 KiB value is not echoed whole. */
	for (i = 0; val[i] && o + 4 < len; i++) {
		unsigned char ch = (unsigned char)val[i];
		out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (val[i] && len >= 4)
		memcpy(out + o, "...", 3), o += 3;
	if (len)
		out[o < len ? o : len - 1] = 0;
	return out;
}

struct reporter {
	cfg_warner warn;
	void *ctx;
	int problems;
};

__attribute__((format(printf, 4, 5))) static void bad(struct reporter *r, const char *var,
						      const char *val, const char *fmt, ...)
{
	char msg[512], expect[256], shown[CFG_SHOWN_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(expect, sizeof expect, fmt, ap);
	va_end(ap);
	cfg_show_value(val, shown, sizeof shown);
	snprintf(msg, sizeof msg, "%s=\"%s\" is not valid: expected %s", var, shown, expect);
	r->problems++;
	if (r->warn)
		r->warn(msg, r->ctx);
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off", ""};
	for (size_t i = 0; i < 4; i++)
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, true;
	for (size_t i = 0; i < 5; i++)
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, true;
	return false;
}

static void parse_path(struct reporter *r, const char *v, const char *var, char *out,
		       const char *fallback)
{
	if (!v || !*v)
		return;
	if (strlen(v) >= CFG_PATH_MAX)
		bad(r, var, v, "a path shorter than %d bytes; %s", CFG_PATH_MAX, fallback);
	else
		strcpy(out, v);
}

int cfg_parse(struct cfg *c, cfg_getter get, cfg_warner warn, void *ctx)
{
	struct reporter r = {warn, ctx, 0};
	const char *v;

	cfg_defaults(c);

	if ((v = get("GRACESHIM_DISABLE", ctx)) && !parse_bool(v, &c->disable))
		bad(&r, "GRACESHIM_DISABLE", v,
		    "1 or 0 (also true/false, yes/no, on/off); using 0");

	if ((v = get("GRACESHIM_LOG", ctx))) {
		int l = cfg_parse_log_level(v);
		if (l < 0)
			bad(&r, "GRACESHIM_LOG", v,
			    "one of off, error, warn, info, debug, trace; using warn");
		else
			c->log_level = (enum log_level)l;
	}

	parse_path(&r, get("GRACESHIM_LOG_FILE", ctx), "GRACESHIM_LOG_FILE", c->log_file,
		   "logging to stderr");
	parse_path(&r, get("GRACESHIM_STATS", ctx), "GRACESHIM_STATS", c->stats_file,
		   "no statistics");

	if ((v = get("GRACESHIM_TRIGGERS", ctx)) && parse_triggers(v, &c->triggers) < 0)
		bad(&r, "GRACESHIM_TRIGGERS", v,
		    "signal, listener or signal,listener; using signal,listener");

	if ((v = get("GRACESHIM_POLICY", ctx))) {
		if (strcasecmp(v, "unused") == 0)
			c->policy = POLICY_UNUSED;
		else if (strcasecmp(v, "idle") == 0)
			c->policy = POLICY_IDLE;
		else
			bad(&r, "GRACESHIM_POLICY", v, "idle or unused; using idle");
	}

	if ((v = get("GRACESHIM_IDLE_QUIET", ctx)) &&
	    (cfg_parse_duration(v, &c->idle_quiet_ns) < 0 || c->idle_quiet_ns == 0)) {
		c->idle_quiet_ns = CFG_IDLE_QUIET_DEFAULT_NS;
		bad(&r, "GRACESHIM_IDLE_QUIET", v,
		    "a duration above 0 such as 500ms, 1s, 2s; using 1s");
	}
	if ((v = get("GRACESHIM_FIRST_BYTE_TIMEOUT", ctx)) &&
	    cfg_parse_timeout(v, &c->first_byte_timeout_ns) < 0) {
		c->first_byte_timeout_ns = 0;
		bad(&r, "GRACESHIM_FIRST_BYTE_TIMEOUT", v,
		    "off or a duration such as 10s, 1m (units ns, us, ms, s, m, h); using off");
	}
	if ((v = get("GRACESHIM_UNBLOCK_AFTER", ctx)) &&
	    cfg_parse_timeout(v, &c->unblock_after_ns) < 0) {
		c->unblock_after_ns = CFG_UNBLOCK_AFTER_DEFAULT_NS;
		bad(&r, "GRACESHIM_UNBLOCK_AFTER", v,
		    "off or a duration such as 1s, 500ms (units ns, us, ms, s, m, h); using 1s");
	}
	if ((v = get("GRACESHIM_DRAIN_TIMEOUT", ctx)) &&
	    cfg_parse_timeout(v, &c->drain_timeout_ns) < 0) {
		c->drain_timeout_ns = 0;
		bad(&r, "GRACESHIM_DRAIN_TIMEOUT", v,
		    "off or a duration such as 30s, 2m (units ns, us, ms, s, m, h); using off");
	}

	if ((v = get("GRACESHIM_SIGNALS", ctx))) {
		int sigs[CFG_MAX_SIGNALS];
		int n = cfg_parse_signal_list(v, sigs, CFG_MAX_SIGNALS);
		if (n < 0) {
			bad(&r, "GRACESHIM_SIGNALS", v,
			    "a list of catchable signal names or numbers such as INT,TERM "
			    "(at most %d; not KILL, STOP, SEGV, BUS, FPE, ILL); using INT,TERM",
			    CFG_MAX_SIGNALS);
		} else {
			c->nsignals = n;
			memcpy(c->signals, sigs, (size_t)n * sizeof sigs[0]);
		}
	}

	if ((v = get("GRACESHIM_GRACE", ctx)) && cfg_parse_duration(v, &c->grace_ns) < 0) {
		c->grace_ns = 0;
		bad(&r, "GRACESHIM_GRACE", v,
		    "a duration such as 0, 250ms, 5s, 1m30s (units ns, us, ms, s, m, h; "
		    "at most 8760h); using 0");
	}
	return r.problems;
}

/* Every variable graceshim reads: the library's, the launcher's, and those
 * of the project's own test and benchmark tools (set in the environment
 * the servers under test inherit). */
static const char *const known_names[] = {
	"GRACESHIM_DISABLE",       "GRACESHIM_LOG",
	"GRACESHIM_LOG_FILE",      "GRACESHIM_STATS",
	"GRACESHIM_TRIGGERS",      "GRACESHIM_POLICY",
	"GRACESHIM_IDLE_QUIET",    "GRACESHIM_FIRST_BYTE_TIMEOUT",
	"GRACESHIM_UNBLOCK_AFTER", "GRACESHIM_DRAIN_TIMEOUT",
	"GRACESHIM_SIGNALS",       "GRACESHIM_GRACE",
	"GRACESHIM_LIB",
};
static const char *const tool_names[] = {"GRACESHIM_BUILD", "GRACESHIM_SAN", "GRACESHIM_VALGRIND",
					 "GRACESHIM_NO_INSTALL", "GRACESHIM_BENCH_"};

/* Edit distance (insertions, deletions, substitutions), bounded: names are
 * short, and only a near miss is worth suggesting. */
static size_t distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b), row[64];
	if (la >= 63 || lb >= 63)
		return 64;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

int cfg_check_names(char *const *envp, cfg_warner warn, void *ctx)
{
	int problems = 0;
	for (; envp && *envp; envp++) {
		const char *e = *envp, *eq = strchr(e, '=');
		if (strncmp(e, "GRACESHIM_", 10) != 0 || !eq)
			continue;
		size_t n = (size_t)(eq - e);
		bool known = false;
		for (size_t i = 0; i < sizeof known_names / sizeof *known_names && !known; i++)
			known = strlen(known_names[i]) == n && !strncmp(e, known_names[i], n);
		for (size_t i = 0; i < sizeof tool_names / sizeof *tool_names && !known; i++) {
			size_t tl = strlen(tool_names[i]);
			known = tool_names[i][tl - 1] == '_'
					? n > tl && !strncmp(e, tool_names[i], tl)
					: tl == n && !strncmp(e, tool_names[i], n);
		}
		if (known)
			continue;
		const char *near = NULL;
		size_t best = 4; /* at most 3 edits away */
		for (size_t i = 0; i < sizeof known_names / sizeof *known_names; i++) {
			size_t d = distance(e, n, known_names[i]);
			if (d < best)
				best = d, near = known_names[i];
		}
		char name[CFG_SHOWN_MAX], raw[CFG_SHOWN_MAX], msg[256];
		snprintf(raw, sizeof raw, "%.*s", (int)(n < sizeof raw - 1 ? n : sizeof raw - 1),
			 e);
		cfg_show_value(raw, name, sizeof name);
		if (near)
			snprintf(msg, sizeof msg,
				 "%s is not a graceshim variable: ignored (did you mean %s?)", name,
				 near);
		else
			snprintf(
				msg, sizeof msg,
				"%s is not a graceshim variable: ignored (graceshim(1) lists them)",
				name);
		problems++;
		if (warn)
			warn(msg, ctx);
	}
	return problems;
}
