/*
 * SPDX-License-Identifier: MIT
 *
 * Configuration: the GRACESHIM_* environment, parsed once into an immutable
 * struct by a pure function.  Nothing here calls an interposed function or
 * reads the process environment directly, so unit tests link it as is and the
 * launcher's validator shares the exact same grammar.
 */
#ifndef GRACESHIM_CONFIG_H
#define GRACESHIM_CONFIG_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_OFF, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };
/* POLICY_IDLE is the default: it also releases HTTPS preconnects (a TLS
 * handshake is bytes received) and keep-alive connections idle between
 * requests.  POLICY_UNUSED is the strict setting: never-used ones only. */
enum policy { POLICY_UNUSED, POLICY_IDLE };
enum trigger { TRIGGER_SIGNAL = 1, TRIGGER_LISTENER = 2 };

/* GRACESHIM_IDLE_QUIET's default: long enough that a request crossing a real
 * network (RTTs of a few hundred ms) is not taken for silence, short enough
 * that a shutdown still completes in about a second. */
#define CFG_IDLE_QUIET_DEFAULT_NS 1000000000ull

#define CFG_MAX_SIGNALS 16
#define CFG_PATH_MAX 1024
/* A never-used connection a thread is blocked reading while other clients
 * wait to be accepted is released once this old: well above a request's
 * trip across a real network (a few hundred ms), well below the worker
 * timeouts it spares (gunicorn: 30 s). */
#define CFG_UNBLOCK_AFTER_DEFAULT_NS 1000000000ull

struct cfg {
	bool disable;
	int nsignals;
	int signals[CFG_MAX_SIGNALS];
	uint64_t grace_ns;
	enum log_level log_level;
	char log_file[CFG_PATH_MAX]; /* empty: stderr */
	enum policy policy;
	uint64_t idle_quiet_ns;
	uint64_t first_byte_timeout_ns; /* 0: off */
	uint64_t unblock_after_ns;      /* 0: off; see unblock.c, unblock_pass() */
	uint64_t drain_timeout_ns;      /* 0: off */
	char stats_file[CFG_PATH_MAX];  /* empty: no stats */
	unsigned triggers;              /* enum trigger bits */
};

/* Returns the value of a variable or NULL (getenv's contract). */
typedef const char *(*cfg_getter)(const char *name, void *ctx);
/* Receives one complete message line (without newline) per problem. */
typedef void (*cfg_warner)(const char *msg, void *ctx);

void cfg_defaults(struct cfg *c);
/* Parses every variable; a bad one is reported once through warn and keeps
 * its default.  Returns the number of problems. */
int cfg_parse(struct cfg *c, cfg_getter get, cfg_warner warn, void *ctx);

/* Names, in envp, each GRACESHIM_* variable that graceshim does not read
 * (a mistyped GRACESHIM_GRAC=5s), with the nearest one it reads, once
 * each through warn.  Returns the number of such variables. */
int cfg_check_names(char *const *envp, cfg_warner warn, void *ctx);

/* Durations: "0", or one or more <number><unit> with unit ns, us, ms, s, m,
 * h (Go's time.ParseDuration grammar, e.g. 250ms, 1.5s, 1m30s); a bare
 * number is seconds.  At most CFG_DURATION_MAX.  Returns 0 or -1. */
#define CFG_DURATION_MAX (UINT64_C(8760) * 3600 * 1000000000)
int cfg_parse_duration(const char *s, uint64_t *ns);
/* A timeout: a duration, or "off" (also "0"): 0 means off. */
int cfg_parse_timeout(const char *s, uint64_t *ns);

/* One signal: a name with or without SIG (any case) or a number; catchable
 * signals only.  Returns the number or -1. */
int cfg_parse_signal(const char *s);
/* A list separated by commas or spaces.  Returns the count or -1. */
int cfg_parse_signal_list(const char *s, int *out, int max);
const char *cfg_signal_name(int sig);

/* A value as a message shows it: printable ASCII (any other byte is '?'),
 * at most len - 4 bytes of it, then "..." when cut.  Returns out. */
#define CFG_SHOWN_MAX 80
const char *cfg_show_value(const char *val, char *out, size_t len);

int cfg_parse_log_level(const char *s);
const char *cfg_log_level_name(enum log_level l);

#endif
