/*
 * SPDX-License-Identifier: MIT
 *
 * Sockets ended through syscall() (issue 16): libuv, under Node.js, closes
 * with syscall(SYS_close, fd), which no close() wrapper sees.  The shim
 * interposes syscall() for the fd-ending numbers (close, close_range, dup2,
 * dup3) and forgets there; everything else goes straight through.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server srv;

TestSuite(syscall, .fini = harness_teardown, .timeout = 60);

/* A request answered, then the client's EOF: the server ends the connection
 * with syscall(SYS_close).  The trace log has its close line, and the exit
 * statistics do not count it open. */
Test(syscall, raw_close_is_seen)
{
	char path[128], var[160], buf[2048] = "";
	snprintf(path, sizeof path, "/tmp/graceshim-stats-sys-%d.json", (int)getpid());
	unlink(path);
	snprintf(var, sizeof var, "GRACESHIM_STATS=%s", path);
	const char *const args[] = {"hyperlike", "--raw-syscalls", NULL};
	const char *const env[] = {var, "GRACESHIM_LOG=trace", NULL};
	server_start(&srv, true, args, env);
	int fd = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(fd, 5000), 2048);
	shutdown(fd, SHUT_WR);
	cr_assert_geq(wait_eof(fd, 5000), 0, "the server did not close");
	close(fd);
	sleep_ms(200);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0, "%s",
		      server_stderr(&srv));
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "closed (fd"), "no close line for a syscall(SYS_close):\n%s", err);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no stats file; stderr:\n%s", err);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	unlink(path);
	cr_assert(strstr(buf, "\"open_at_exit\":0,"),
		  "the closed connection is still counted open: %s", buf);
}

/* The server moves each accepted socket with syscall(SYS_dup3) and closes
 * the original with syscall(SYS_close): the socket it waits on is only known
 * through the dup3.  An unused spare must still be released at SIGINT. */
Test(syscall, raw_dup3_is_tracked)
{
	const char *const args[] = {"hyperlike", "--raw-syscalls", "--dup-conn", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int used = tcp_connect(AF_INET, srv.port);
	cr_assert(send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	cr_assert_eq(http_read_response(used, 5000), 2048);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	long ms = server_signal_and_wait(&srv, SIGINT, PROMPT_MS);
	close(used);
	close(spare);
	cr_assert_geq(ms, 0, "still running: the dup3'd spare was not released; stderr:\n%s",
		      server_stderr(&srv));
}

/* The twin: without the shim the same server hangs on the spare. */
Test(syscall, raw_dup3_server_hangs_without_shim)
{
	const char *const args[] = {"hyperlike", "--raw-syscalls", "--dup-conn", NULL};
	server_start(&srv, false, args, NULL);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(300);
	cr_assert_eq(server_signal_and_wait(&srv, SIGINT, HANG_MS), -1);
	close(spare);
}
