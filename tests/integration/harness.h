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

struct server {
	pid_t pid;
	int port;
	int out_fd;   /* the fixture's stdout */
	int err_fd;   /* the fixture's stderr */
	int status;   /* wait status once exited */
	bool exited;
};

/* argv[0] is a fixture name under $GRACESHIM_BUILD/fixtures; env entries
 * ("NAME=value") are added to the child's environment.  NULL-terminated. */
void server_start(struct server *s, bool shim, const char *const *argv, const char *const *env);
/* Milliseconds from kill(sig) to exit, or -1 if still running after
 * timeout_ms. */
long server_signal_and_wait(struct server *s, int sig, long timeout_ms);
long server_wait(struct server *s, long timeout_ms);
/* Kills (SIGKILL, by pid) if still running; always reaps. */
void server_stop(struct server *s);
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
/* The "age N ms" of a release line (the connection's age when released),
 * or -1. */
long shim_line_age_ms(const char *line);

#endif
