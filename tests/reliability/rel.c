/*
 * SPDX-License-Identifier: MIT
 *
 * See rel.h.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool rel_read_line(int fd, char *buf, size_t len, long timeout_ms)
{
	size_t have = 0;
	long deadline = now_ms() + timeout_ms;
	while (have < len - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (c == '\n') {
			buf[have] = 0;
			return true;
		}
		buf[have++] = c;
	}
	buf[have] = 0;
	return false;
}

long rel_recv_until_eof(int fd, char *buf, size_t len, long timeout_ms)
{
	size_t have = 0;
	long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return have ? (long)have : -1;
		char tmp[512];
		ssize_t r = recv(fd, tmp, sizeof tmp, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return (long)have; /* EOF or reset */
		size_t n = (size_t)r < len - have ? (size_t)r : len - have;
		memcpy(buf + have, tmp, n);
		have += n;
	}
}

bool rel_ping(int fd, long timeout_ms)
{
	char buf[16];
	size_t have = 0;
	long deadline = now_ms() + timeout_ms;
	if (!send_str(fd, "ping\n"))
		return false;
	while (have < 5) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return false;
		ssize_t r = recv(fd, buf + have, 5 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		have += (size_t)r;
	}
	return memcmp(buf, "pong\n", 5) == 0;
}

void rel_tmpdir(char *out, size_t len)
{
	snprintf(out, len, "/tmp/graceshim-rel-XXXXXX");
	cr_assert_not_null(mkdtemp(out), "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void rel_rmtree(const char *dir)
{
	if (dir && !strncmp(dir, "/tmp/graceshim-rel-", 19))
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *rel_build(void)
{
	const char *b = getenv("GRACESHIM_BUILD");
	cr_assert(b && *b,
		  "GRACESHIM_BUILD must name the build directory (make reliability sets it)");
	return b;
}

char *rel_slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}
