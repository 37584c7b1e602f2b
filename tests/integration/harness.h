/*
 * SPDX-License-Identifier: MIT
 *
 * Integration harness: starts a fixture server (with LD_PRELOAD in the
 * child's environment only: the Criterion runner is never preloaded), reads
 * its "PORT <n>" line, plays clients against it over loopback, signals it
 * and measures the time until it exits.  Every wait is bounded.
 */
#ifndef GRACESHIM_HARNESS_H
#define GRACESHIM_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

/* The suite's timing constants, one set for every test file.  Bounds, not
 * expectations: with the shim a graceful stop takes milliseconds (seen
 * 2.6 s at load 13 on 2 cores); without it the same stop must still be
 * waiting after HANG_MS, which no slow machine shortens.  A test that
 * asserts how soon the shim acted reads the shim's own timeline
 * (harness_stats_num()), not the test's clock. */
#define PROMPT_MS 4000
#define HANG_MS 3000
/* The shim's release at the default settings: at the trigger, or when an
 * idle keep-alive connection's 1 s of quiet ends (README, GRACESHIM_POLICY). */
#define RELEASE_BOUND_MS 2500

struct server {
	pid_t pid;
	int port;
	int out_fd; /* the fixture's stdout */
	int err_fd; /* the fixture's stderr */
	int status; /* wait status once exited */
	bool exited;
};

/* argv[0] is a fixture name under $GRACESHIM_BUILD/fixtures; env entries
 * ("NAME=value") are added to the child's environment.  NULL-terminated.
 * The fixture starts with what it would get from a terminal, whatever the
 * suite inherited: every signal SIG_DFL and unblocked, stdin /dev/null;
 * and in a process group of its own, which harness_teardown() (or
 * server_stop()) kills, and which a guard process kills if the test process
 * dies first (a Criterion timeout, Ctrl-C of the suite). */
void server_start(struct server *s, bool shim, const char *const *argv, const char *const *env);
/* The same with the signals of `ignored` (0-terminated) SIG_IGN, as a
 * program started with & from a script inherits SIGINT and SIGQUIT: for the
 * tests about an inherited SIG_IGN. */
void server_start_ignoring(struct server *s, bool shim, const char *const *argv,
			   const char *const *env, const int *ignored);
/* Milliseconds from kill(sig) to exit, or -1 if still running after
 * timeout_ms. */
long server_signal_and_wait(struct server *s, int sig, long timeout_ms);
long server_wait(struct server *s, long timeout_ms);
/* For a test that forks and execs a program itself, in the child: what
 * server_start() gives a fixture.  harness_child_signals(): every signal
 * SIG_DFL but those of `ignored` (0-terminated, or NULL) SIG_IGN, none
 * blocked (a script's `make test &` ignores SIGINT and SIGQUIT, nohup
 * SIGHUP); harness_default_dispositions(): the dispositions only, the mask
 * left as it is. */
void harness_child_signals(const int *ignored);
void harness_default_dispositions(void);
/* Kills its process group (SIGKILL), and the fixture itself; always reaps. */
void server_stop(struct server *s);
/* Every test file's .fini: kills the process group of every server this
 * test process started, removes the statistics file.
 *     static struct server srv;
 *     TestSuite(name, .fini = harness_teardown, .timeout = 60); */
void harness_teardown(void);

/* "GRACESHIM_STATS=<path>", a file of this test process's own, for a
 * server's env; after the server exited, harness_stats_num("last_release_us")
 * is the shim's own time from the trigger to its last release (README,
 * GRACESHIM_STATS), -1 when absent or null.  harness_teardown() removes it. */
const char *harness_stats_env(void);
long harness_stats_num(const char *key);
void harness_stats_remove(void);
/* Everything the fixture wrote to stderr so far (bounded). */
const char *server_stderr(struct server *s);

int tcp_connect(int family, int port);
int unix_connect(const char *path);
bool send_str(int fd, const char *s);
/* Reads one HTTP response; returns the body length received, or -1 when the
 * connection ended before the full body (Content-Length) arrived. */
long http_read_response(int fd, long timeout_ms);
/* Waits for EOF (or reset); returns ms until then, or -1 on timeout. */
long wait_eof(int fd, long timeout_ms);
/* Reads until EOF, a full buffer or timeout_ms; NUL-terminates; returns
 * the bytes read. */
size_t read_all_for(int fd, char *buf, size_t len, long timeout_ms);
void sleep_ms(long ms);
long now_ms(void);

/* The shim's own record (GRACESHIM_LOG=debug on the fixture's stderr), so
 * that a test asserts on what the shim did to one connection rather than
 * on what the client happens to notice (after shutdown(SHUT_RD) queued
 * bytes are still read and the server can still write). */
/* The local port of a connected IPv4 socket: the peer port the shim logs. */
int sock_port(int fd);
/* The shim's line saying it shut down (released) or cut the connection
 * from 127.0.0.1:client_port, or NULL. */
const char *shim_release_line(const char *log, int client_port);
/* The time stamp of a shim log line as CLOCK_REALTIME microseconds, or -1. */
long long shim_line_us(const char *line);
/* CLOCK_REALTIME in microseconds (the clock of the shim's time stamps). */
long long realtime_us(void);
/* A CLOCK_MONOTONIC time (the statistics' trigger_monotonic_ns) as
 * CLOCK_REALTIME microseconds, to set beside the log's time stamps. */
long long harness_mono_to_real_us(long long mono_ns);
/* The "age N ms" of a release line (the connection's age when released),
 * or -1. */
long shim_line_age_ms(const char *line);

#endif
