/*
 * SPDX-License-Identifier: MIT
 *
 * Configuration parsing: durations, signals, levels and the whole
 * environment, bad input included.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct dur_case {
	char in[32]; /* inline: Criterion runs each parameter in a fresh process */
	int ok;
	uint64_t ns;
};

ParameterizedTestParameters(duration, parses_valid_and_rejects_invalid)
{
	static struct dur_case cases[] = {
		{"0", 1, 0},
		{"250ms", 1, 250000000},
		{"5s", 1, 5000000000},
		{"1m", 1, 60000000000},
		{"1h", 1, 3600000000000},
		{"1.5s", 1, 1500000000},
		{"1m30s", 1, 90000000000},
		{"2", 1, 2000000000}, /* bare number: seconds */
		{"0.25", 1, 250000000},
		{"10us", 1, 10000},
		{"7ns", 1, 7},
		{"0s", 1, 0},
		{"8760h", 1, UINT64_C(8760) * 3600000000000},
		{"8761h", 0, 0},
		{"99999999999999999999s", 0, 0},
		{"", 0, 0},
		{"s", 0, 0},
		{"-1s", 0, 0},
		{"5 s", 0, 0},
		{" 5s", 0, 0},
		{"5x", 0, 0},
		{"5sec", 0, 0},
		{"1.s", 1, 1000000000},
		{".5s", 1, 500000000},
		{".", 0, 0},
		{"1m2", 0, 0}, /* a bare number only stands alone */
		{"banana", 0, 0},
		{"\xff\xfe", 0, 0},
	};
	return cr_make_param_array(struct dur_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct dur_case *c, duration, parses_valid_and_rejects_invalid)
{
	uint64_t ns = 12345;
	int r = cfg_parse_duration(c->in, &ns);
	if (c->ok) {
		cr_assert_eq(r, 0, "\"%s\" must parse", c->in);
		cr_assert_eq(ns, c->ns, "\"%s\": got %llu ns", c->in, (unsigned long long)ns);
	} else {
		cr_assert_eq(r, -1, "\"%s\" must be rejected", c->in);
		cr_assert_eq(ns, 12345, "a rejected value must not be written");
	}
}

struct sig_case {
	char in[32]; /* inline: Criterion runs each parameter in a fresh process */
	int sig;
};

ParameterizedTestParameters(signals, parses_names_and_numbers)
{
	static struct sig_case cases[] = {
		{"INT", SIGINT},   {"SIGINT", SIGINT},  {"int", SIGINT},   {"sigterm", SIGTERM},
		{"2", SIGINT},     {"15", SIGTERM},     {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
		{"USR1", SIGUSR1}, {"WINCH", SIGWINCH}, {"KILL", -1},      {"SIGSTOP", -1},
		{"9", -1},         {"SEGV", -1},        {"0", -1},         {"65", -1},
		{"", -1},          {"INTX", -1},        {"-2", -1},        {"2x", -1},
	};
	return cr_make_param_array(struct sig_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct sig_case *c, signals, parses_names_and_numbers)
{
	cr_assert_eq(cfg_parse_signal(c->in), c->sig, "\"%s\"", c->in);
}

Test(signals, rtmin_offsets)
{
	cr_assert_eq(cfg_parse_signal("RTMIN"), SIGRTMIN);
	cr_assert_eq(cfg_parse_signal("SIGRTMIN+2"), SIGRTMIN + 2);
	cr_assert_eq(cfg_parse_signal("RTMIN+999"), -1);
}

Test(signals, list_separators_and_duplicates)
{
	int s[CFG_MAX_SIGNALS];
	cr_assert_eq(cfg_parse_signal_list("INT,TERM", s, CFG_MAX_SIGNALS), 2);
	cr_assert(s[0] == SIGINT && s[1] == SIGTERM);
	cr_assert_eq(cfg_parse_signal_list(" QUIT  HUP ,, INT ", s, CFG_MAX_SIGNALS), 3);
	cr_assert(s[0] == SIGQUIT && s[1] == SIGHUP && s[2] == SIGINT);
	cr_assert_eq(cfg_parse_signal_list("INT,2,SIGINT", s, CFG_MAX_SIGNALS), 1);
	cr_assert_eq(cfg_parse_signal_list("", s, CFG_MAX_SIGNALS), -1);
	cr_assert_eq(cfg_parse_signal_list(",", s, CFG_MAX_SIGNALS), -1);
	cr_assert_eq(cfg_parse_signal_list("INT,KILL", s, CFG_MAX_SIGNALS), -1);
	cr_assert_eq(cfg_parse_signal_list("INT,TERM,HUP", s, 2), -1);
}

Test(log_level, names)
{
	cr_assert_eq(cfg_parse_log_level("off"), LOG_OFF);
	cr_assert_eq(cfg_parse_log_level("TRACE"), LOG_TRACE);
	cr_assert_eq(cfg_parse_log_level("warn"), LOG_WARN);
	cr_assert_eq(cfg_parse_log_level("warning"), -1);
	cr_assert_eq(cfg_parse_log_level(""), -1);
	cr_assert_str_eq(cfg_log_level_name(LOG_INFO), "info");
}

/* A fake environment and a message collector for cfg_parse. */
struct env {
	const char *kv[16][2];
	char msgs[8][600];
	int nmsgs;
};

static const char *get(const char *name, void *ctx)
{
	struct env *e = ctx;
	for (int i = 0; i < 16 && e->kv[i][0]; i++)
		if (!strcmp(e->kv[i][0], name))
			return e->kv[i][1];
	return NULL;
}

static void warn(const char *msg, void *ctx)
{
	struct env *e = ctx;
	if (e->nmsgs < 8)
		snprintf(e->msgs[e->nmsgs++], sizeof e->msgs[0], "%s", msg);
}

Test(cfg, defaults_with_empty_environment)
{
	struct env e = {0};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 0);
	cr_assert_eq(e.nmsgs, 0);
	cr_assert_not(c.disable);
	cr_assert_eq(c.nsignals, 2);
	cr_assert(c.signals[0] == SIGINT && c.signals[1] == SIGTERM);
	cr_assert_eq(c.grace_ns, 0);
	cr_assert_eq(c.log_level, LOG_WARN);
	cr_assert_str_empty(c.log_file);
}

Test(cfg, valid_values_are_taken)
{
	struct env e = {.kv = {{"GRACESHIM_SIGNALS", "QUIT"},
			       {"GRACESHIM_GRACE", "250ms"},
			       {"GRACESHIM_LOG", "trace"},
			       {"GRACESHIM_LOG_FILE", "/tmp/x.log"},
			       {"GRACESHIM_DISABLE", "yes"}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 0);
	cr_assert_eq(c.nsignals, 1);
	cr_assert_eq(c.signals[0], SIGQUIT);
	cr_assert_eq(c.grace_ns, 250000000);
	cr_assert_eq(c.log_level, LOG_TRACE);
	cr_assert_str_eq(c.log_file, "/tmp/x.log");
	cr_assert(c.disable);
}

Test(cfg, each_bad_value_gives_one_line_and_its_default)
{
	struct env e = {.kv = {{"GRACESHIM_SIGNALS", "INT,NOPE"},
			       {"GRACESHIM_GRACE", "5 s"},
			       {"GRACESHIM_LOG", "loud"},
			       {"GRACESHIM_DISABLE", "maybe"}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 4);
	cr_assert_eq(e.nmsgs, 4);
	cr_assert_eq(c.nsignals, 2);
	cr_assert_eq(c.grace_ns, 0);
	cr_assert_eq(c.log_level, LOG_WARN);
	cr_assert_not(c.disable);
	const char *want[][3] = {
		{"GRACESHIM_DISABLE=\"maybe\"", "expected 1 or 0", "using 0"},
		{"GRACESHIM_LOG=\"loud\"", "expected one of off", "using warn"},
		{"GRACESHIM_SIGNALS=\"INT,NOPE\"", "expected a list", "using INT,TERM"},
		{"GRACESHIM_GRACE=\"5 s\"", "expected a duration", "using 0"}};
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 3; j++)
			cr_assert(strstr(e.msgs[i], want[i][j]), "message %d lacks \"%s\": %s", i,
				  want[i][j], e.msgs[i]);
}

Test(cfg, hostile_values_are_shown_safely_and_bounded)
{
	static char big[100000];
	memset(big, 'A', sizeof big - 1);
	struct env e = {.kv = {{"GRACESHIM_GRACE", big}, {"GRACESHIM_LOG", "\x1b[31m\xff"}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 2);
	cr_assert_lt(strlen(e.msgs[1]), 500, "a huge value must be cut in the message");
	cr_assert(strstr(e.msgs[1], "..."), "a cut value is marked: %s", e.msgs[1]);
	for (const char *p = e.msgs[0]; *p; p++)
		cr_assert(*p >= 0x20 && *p < 0x7f, "control or non-ASCII byte in message: %s",
			  e.msgs[0]);
}

Test(cfg, log_file_too_long_is_rejected)
{
	static char path[CFG_PATH_MAX + 10];
	memset(path, 'p', sizeof path - 1);
	struct env e = {.kv = {{"GRACESHIM_LOG_FILE", path}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 1);
	cr_assert_str_empty(c.log_file);
}

Test(cfg, policy_and_timeouts)
{
	struct env e = {.kv = {{"GRACESHIM_POLICY", "Unused"},
			       {"GRACESHIM_IDLE_QUIET", "500ms"},
			       {"GRACESHIM_FIRST_BYTE_TIMEOUT", "10s"},
			       {"GRACESHIM_DRAIN_TIMEOUT", "off"},
			       {"GRACESHIM_STATS", "/tmp/s.json"}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 0);
	cr_assert_eq(c.policy, POLICY_UNUSED, "the strict setting is still there");
	cr_assert_eq(c.idle_quiet_ns, 500000000);
	cr_assert_eq(c.first_byte_timeout_ns, 10000000000);
	cr_assert_eq(c.drain_timeout_ns, 0);
	cr_assert_str_eq(c.stats_file, "/tmp/s.json");
}

Test(cfg, policy_idle_by_name)
{
	struct env e = {.kv = {{"GRACESHIM_POLICY", "IDLE"}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 0);
	cr_assert_eq(c.policy, POLICY_IDLE);
}

Test(cfg, policy_and_timeouts_defaults)
{
	struct env e = {0};
	struct cfg c;
	cfg_parse(&c, get, warn, &e);
	cr_assert_eq(c.policy, POLICY_IDLE, "idle is the default (issue 13)");
	cr_assert_eq(c.idle_quiet_ns, CFG_IDLE_QUIET_DEFAULT_NS);
	cr_assert_eq(c.first_byte_timeout_ns, 0, "first-byte timeout is off by default");
	cr_assert_eq(c.drain_timeout_ns, 0, "drain timeout is off by default");
	cr_assert_str_empty(c.stats_file);
}

Test(cfg, bad_policy_and_timeouts_keep_defaults)
{
	struct env e = {.kv = {{"GRACESHIM_POLICY", "lazy"},
			       {"GRACESHIM_IDLE_QUIET", "0"},
			       {"GRACESHIM_FIRST_BYTE_TIMEOUT", "soon"},
			       {"GRACESHIM_DRAIN_TIMEOUT", "-5s"}}};
	struct cfg c;
	cr_assert_eq(cfg_parse(&c, get, warn, &e), 4);
	cr_assert_eq(c.policy, POLICY_IDLE);
	cr_assert_eq(c.idle_quiet_ns, CFG_IDLE_QUIET_DEFAULT_NS);
	cr_assert_eq(c.first_byte_timeout_ns, 0);
	cr_assert_eq(c.drain_timeout_ns, 0);
	cr_assert(strstr(e.msgs[0], "GRACESHIM_POLICY=\"lazy\""), "%s", e.msgs[0]);
	cr_assert(strstr(e.msgs[1], "GRACESHIM_IDLE_QUIET=\"0\""), "%s", e.msgs[1]);
	cr_assert(strstr(e.msgs[2], "GRACESHIM_FIRST_BYTE_TIMEOUT=\"soon\""), "%s", e.msgs[2]);
	cr_assert(strstr(e.msgs[3], "GRACESHIM_DRAIN_TIMEOUT=\"-5s\""), "%s", e.msgs[3]);
}

Test(cfg, triggers)
{
	struct env e = {.kv = {{"GRACESHIM_TRIGGERS", "listener"}}};
	struct cfg c;
	cfg_parse(&c, get, warn, &e);
	cr_assert_eq(c.triggers, TRIGGER_LISTENER);
	struct env d = {0};
	cfg_parse(&c, get, warn, &d);
	cr_assert_eq(c.triggers, TRIGGER_SIGNAL | TRIGGER_LISTENER, "both by default");
	struct env b = {.kv = {{"GRACESHIM_TRIGGERS", "signal,socket"}}};
	cr_assert_eq(cfg_parse(&c, get, warn, &b), 1);
	cr_assert_eq(c.triggers, TRIGGER_SIGNAL | TRIGGER_LISTENER);
	cr_assert(strstr(b.msgs[0], "GRACESHIM_TRIGGERS=\"signal,socket\""), "%s", b.msgs[0]);
	struct env s = {.kv = {{"GRACESHIM_TRIGGERS", " Signal , LISTENER "}}};
	cr_assert_eq(cfg_parse(&c, get, warn, &s), 0);
	cr_assert_eq(c.triggers, TRIGGER_SIGNAL | TRIGGER_LISTENER);
}

/* A GRACESHIM_* name graceshim does not read is named, once, with the
 * nearest one it reads; known names, the project's tools' names and other
 * variables are not. */
Test(cfg, unknown_names_are_named_with_the_nearest_known_one)
{
	struct env e = {0};
	char *envp[] = {"GRACESHIM_GRAC=5s",
			"GRACESHIM_GRACE=1s",
			"GRACESHIM_LOGFILE=/x",
			"GRACESHIM_BUILD=b",
			"GRACESHIM_BENCH_DRAIN_LIMIT_MS=5",
			"GRACESHIM_LIB=/l",
			"PATH=/bin",
			"GRACESHIM_ZZZZZZZZZZ=1",
			"GRACESHIM_NOVALUE",
			NULL};
	cr_assert_eq(cfg_check_names(envp, warn, &e), 3);
	cr_assert_eq(e.nmsgs, 3);
	cr_assert_str_eq(e.msgs[0], "GRACESHIM_GRAC is not a graceshim variable: ignored (did you "
				    "mean GRACESHIM_GRACE?)");
	cr_assert(strstr(e.msgs[1], "GRACESHIM_LOGFILE is not") &&
			  strstr(e.msgs[1], "GRACESHIM_LOG_FILE?"),
		  "%s", e.msgs[1]);
	cr_assert(strstr(e.msgs[2], "GRACESHIM_ZZZZZZZZZZ is not") &&
			  !strstr(e.msgs[2], "did you mean"),
		  "%s", e.msgs[2]);
}
