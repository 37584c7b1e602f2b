/*
 * SPDX-License-Identifier: MIT
 *
 * Hostile configuration: every GRACESHIM_* variable set at once to a value
 * an operator (or an attacker who controls the environment) could pass:
 * 120 KiB long, bytes that are not UTF-8, negative numbers, numbers that
 * overflow 64 bits, embedded newlines, carriage returns and terminal escapes.
 * tests/unit/test_config.c checks the parser; here the whole library, loaded
 * in a real server, must
 *   - let the host start and serve as usual;
 *   - print exactly one line per bad variable, naming it, showing the value
 *     bounded and escaped (a newline in a value never starts a line of its
 *     own, a 120 KiB value is not echoed in full, nothing but printable ASCII
 *     reaches the terminal), and saying what it expected;
 *   - then use the defaults: SIGINT triggers, the never-used connection is
 *     released at once (grace 0) and not before (no first-byte timeout), the
 *     server exits promptly.
 *
 * 120 KiB, not 1 MiB: Linux refuses a single environment string longer than
 * MAX_ARG_STRLEN (32 pages, 128 KiB) with E2BIG at execve(), so no process
 * can receive a longer value.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LONG_LEN (120 * 1024)
#define MAX_BAD 16
#define LINE_MAX_SHOWN 1024 /* a log line is one write of at most 1 KiB */

static struct server srv;
static char *long_a, *long_digits, *long_path;

static void teardown(void)
{
	harness_teardown();
	free(long_a);
	free(long_digits);
	free(long_path);
}

TestSuite(hostile_env, .fini = teardown, .timeout = 60);

struct bad {
	const char *var;
	const char *val;
	bool expected_word; /* the line says what was expected (not the exit-time stats line) */
};

/* The value as the shim should show it: printable ASCII kept, every other
 * byte replaced; only the first few characters, which any bounded display
 * keeps. */
static void shown_prefix(const char *val, char *out, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; val[i] && o < len - 1 && o < 16; i++) {
		unsigned char c = (unsigned char)val[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[o] = 0;
}

/* A line names var when var is followed by '=' or ':' (so GRACESHIM_LOG
 * does not match GRACESHIM_LOG_FILE). */
static bool names(const char *line, const char *var)
{
	size_t vl = strlen(var);
	for (const char *p = strstr(line, var); p; p = strstr(p + 1, var))
		if (p[vl] == '=' || p[vl] == ':')
			return true;
	return false;
}

/* Where a line may come from: the shim's log lines ("<time> LEVEL
 * graceshim[pid] ..."), its pre-log messages ("graceshim: ..."), or the
 * fixture ("hyperlike: ..."). */
static bool known_origin(const char *line)
{
	return !strncmp(line, "graceshim: ", 11) || !strncmp(line, "hyperlike: ", 11) ||
	       (strlen(line) > 32 && line[4] == '-' && line[10] == 'T' &&
		strstr(line, " graceshim["));
}

/* Starts hyperlike with the shim and the given variables, checks that it
 * serves, keeps a never-used connection open, stops it with SIGINT, then
 * checks every line of its stderr. */
static void run(const struct bad *bad, int nbad)
{
	static char settings[MAX_BAD][LONG_LEN + 64];
	const char *env[MAX_BAD + 1];
	const char *const args[] = {"hyperlike", NULL};

	cr_assert_leq(nbad, MAX_BAD);
	for (int i = 0; i < nbad; i++) {
		snprintf(settings[i], sizeof settings[i], "%s=%s", bad[i].var, bad[i].val);
		env[i] = settings[i];
	}
	env[nbad] = NULL;
	server_start(&srv, true, args, env);

	/* The host works: a request is answered in full. */
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(used, 5000), 2048, "no full response; stderr:\n%s",
		     server_stderr(&srv));
	/* A preconnect: no first-byte timeout may have been taken from a bad
	 * value, so it is still open 300 ms later. */
	int spare = tcp_connect(AF_INET, srv.port);
	cr_assert_eq(wait_eof(spare, 300), -1,
		     "the never-used connection was cut before the trigger");
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	close(used);
	close(spare);
	cr_assert_geq(ms, 0,
		      "still running %d ms after SIGINT: the defaults (SIGINT, grace 0) did not "
		      "apply; stderr:\n%s",
		      PROMPT_MS, server_stderr(&srv));
	cr_assert(WIFEXITED(srv.status) && WEXITSTATUS(srv.status) == 0, "status %#x", srv.status);

	/* Every line of stderr, the last one complete. */
	char *err = strdup(server_stderr(&srv));
	cr_assert_not_null(err);
	size_t elen = strlen(err);
	cr_assert(elen > 0 && err[elen - 1] == '\n',
		  "stderr does not end with a complete line:\n%s", err);
	int count[MAX_BAD] = {0}, naming = 0;
	for (char *line = err, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		*nl = 0;
		for (const unsigned char *c = (const unsigned char *)line; *c; c++)
			cr_assert(
				*c >= 0x20 && *c < 0x7f,
				"byte %#x (not printable ASCII) reached stderr in line \"%.200s\"",
				*c, line);
		cr_assert(
			known_origin(line),
			"a line of unknown origin (a value's newline split a message?): \"%.300s\"",
			line);
		cr_assert_leq(strlen(line), LINE_MAX_SHOWN,
			      "a %zu-byte line: the value was not bounded", strlen(line));
		bool any = false;
		for (int i = 0; i < nbad; i++) {
			if (!names(line, bad[i].var))
				continue;
			any = true;
			count[i]++;
			char prefix[32];
			shown_prefix(bad[i].val, prefix, sizeof prefix);
			cr_assert(strstr(line, prefix),
				  "the line for %s does not show its value (\"%s\"): %s",
				  bad[i].var, prefix, line);
			if (bad[i].expected_word)
				cr_assert(strstr(line, "expected"),
					  "the line for %s does not say what it "
					  "expects: %s",
					  bad[i].var, line);
			if (strlen(bad[i].val) > 200)
				cr_assert(strstr(line, "...\""),
					  "the line for %s does not mark its value as cut: %s",
					  bad[i].var, line);
		}
		/* The tail of a message whose value's newline split it names
		 * no variable: it must not exist. */
		cr_assert(any || (!strstr(line, "is not valid") && !strstr(line, "expected")),
			  "a message line names no bad variable (a split line?): \"%.300s\"", line);
		naming += any;
	}
	for (int i = 0; i < nbad; i++)
		cr_assert_eq(count[i], 1, "%d line(s) name %s (exactly one expected); stderr:\n%s",
			     count[i], bad[i].var, server_stderr(&srv));
	cr_assert_eq(naming, nbad, "%d lines name a variable, %d variables are bad; stderr:\n%s",
		     naming, nbad, server_stderr(&srv));
	free(err);
}

static char *repeat(char c, size_t n, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);
	cr_assert_not_null(s);
	memcpy(s, prefix, pl);
	memset(s + pl, c, n);
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

Test(hostile_env, values_of_120_KiB)
{
	long_a = repeat('A', LONG_LEN, "", "");
	long_digits = repeat('9', LONG_LEN, "", "s");
	long_path = repeat('A', LONG_LEN, "/tmp/", "");
	const struct bad bad[] = {
		{"GRACESHIM_DISABLE", long_a, true},
		{"GRACESHIM_LOG", long_a, true},
		{"GRACESHIM_LOG_FILE", long_path, true},
		{"GRACESHIM_STATS", long_path, true},
		{"GRACESHIM_TRIGGERS", long_a, true},
		{"GRACESHIM_POLICY", long_a, true},
		{"GRACESHIM_IDLE_QUIET", long_digits, true},
		{"GRACESHIM_FIRST_BYTE_TIMEOUT", long_digits, true},
		{"GRACESHIM_DRAIN_TIMEOUT", long_digits, true},
		{"GRACESHIM_SIGNALS", long_a, true},
		{"GRACESHIM_GRACE", long_digits, true},
	};
	run(bad, sizeof bad / sizeof bad[0]);
}

/* Paths in a directory that does not exist: the log file is refused at
 * start-up, the statistics file at exit (each with one line). */
#define NODIR "/nonexistent-graceshim-rel/"

Test(hostile_env, bytes_that_are_not_utf8)
{
	const char *v = "\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x90\x28\xbc";
	const struct bad bad[] = {
		{"GRACESHIM_DISABLE", v, true},
		{"GRACESHIM_LOG", v, true},
		{"GRACESHIM_LOG_FILE", NODIR "\xff\xfe\xc3\x28.log", true},
		{"GRACESHIM_STATS", NODIR "\xff\xfe\xc3\x28.json", false},
		{"GRACESHIM_TRIGGERS", v, true},
		{"GRACESHIM_POLICY", v, true},
		{"GRACESHIM_IDLE_QUIET",
		 "1\xff"
		 "s",
		 true},
		{"GRACESHIM_FIRST_BYTE_TIMEOUT", "\xc3\xa9s", true},
		{"GRACESHIM_DRAIN_TIMEOUT", "5\xe2\x80\x89s", true}, /* U+2009 thin space */
		{"GRACESHIM_SIGNALS", "INT,\xff\xfe", true},
		{"GRACESHIM_GRACE", "\xef\xbc\x95s", true}, /* U+FF15 fullwidth 5 */
	};
	run(bad, sizeof bad / sizeof bad[0]);
}

Test(hostile_env, negative_numbers)
{
	const struct bad bad[] = {
		{"GRACESHIM_DISABLE", "-1", true},
		{"GRACESHIM_LOG", "-1", true},
		{"GRACESHIM_TRIGGERS", "-1", true},
		{"GRACESHIM_POLICY", "-1", true},
		{"GRACESHIM_IDLE_QUIET", "-1s", true},
		{"GRACESHIM_FIRST_BYTE_TIMEOUT", "-500ms", true},
		{"GRACESHIM_DRAIN_TIMEOUT", "-1", true},
		{"GRACESHIM_SIGNALS", "-2", true},
		{"GRACESHIM_GRACE", "-5s", true},
	};
	run(bad, sizeof bad / sizeof bad[0]);
}

Test(hostile_env, numbers_that_overflow)
{
	const struct bad bad[] = {
		{"GRACESHIM_DISABLE", "18446744073709551617", true},
		{"GRACESHIM_LOG", "99999999999999999999", true},
		{"GRACESHIM_TRIGGERS", "99999999999999999999", true},
		{"GRACESHIM_POLICY", "4294967297", true},
		{"GRACESHIM_IDLE_QUIET", "99999999999999999999s", true},
		{"GRACESHIM_FIRST_BYTE_TIMEOUT", "18446744073709551616ns", true},
		{"GRACESHIM_DRAIN_TIMEOUT", "8761h", true},
		{"GRACESHIM_SIGNALS", "99999999999999999999", true},
		{"GRACESHIM_GRACE", "9223372036854775808h", true},
	};
	run(bad, sizeof bad / sizeof bad[0]);
}

Test(hostile_env, newlines_and_control_characters)
{
	const struct bad bad[] = {
		{"GRACESHIM_DISABLE", "1\r", true},
		{"GRACESHIM_LOG", "warn\n", true},
		{"GRACESHIM_LOG_FILE", NODIR "a\nforged line.log", true},
		{"GRACESHIM_STATS", NODIR "b\nforged line.json", false},
		{"GRACESHIM_TRIGGERS", "signal\nlistener", true},
		{"GRACESHIM_POLICY", "idle\x1b[2J\x1b[H", true},
		{"GRACESHIM_IDLE_QUIET", "1s\x7f", true},
		{"GRACESHIM_FIRST_BYTE_TIMEOUT", "5s\nforged line", true},
		{"GRACESHIM_DRAIN_TIMEOUT", "\b\b30s", true},
		{"GRACESHIM_SIGNALS", "INT\nTERM", true},
		{"GRACESHIM_GRACE", "0\n2026-01-01T00:00:00.000000+00:00 WARN graceshim[1] forged",
		 true},
	};
	run(bad, sizeof bad / sizeof bad[0]);
}

/* The check itself: valid values of every variable give no line at all,
 * so the counts above are of the bad values and of nothing else. */
Test(hostile_env, control_valid_values_print_nothing)
{
	const char *const env[] = {"GRACESHIM_DISABLE=0",
				   "GRACESHIM_LOG=warn",
				   "GRACESHIM_TRIGGERS=signal,listener",
				   "GRACESHIM_POLICY=unused",
				   "GRACESHIM_IDLE_QUIET=1s",
				   "GRACESHIM_FIRST_BYTE_TIMEOUT=off",
				   "GRACESHIM_DRAIN_TIMEOUT=off",
				   "GRACESHIM_SIGNALS=INT,TERM",
				   "GRACESHIM_GRACE=0",
				   NULL};
	const char *const args[] = {"hyperlike", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
	close(spare);
	cr_assert_null(strstr(server_stderr(&srv), "GRACESHIM_"), "a valid value was reported:\n%s",
		       server_stderr(&srv));
}
