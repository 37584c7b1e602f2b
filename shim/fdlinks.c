/*
 * SPDX-License-Identifier: MIT
 *
 * Walking a process's fds (see fdlinks.h).
 */
#include "fdlinks.h"
#include "real.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int fdlinks_each(const char *path, void (*fn)(int fd, const char *target, void *ctx), void *ctx)
{
	int dir = (int)real_syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -1;
	char buf[4096];
	long got;
	while ((got = real_syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
		for (long off = 0; off < got;) {
			/* struct linux_dirent64: ino (8), off (8), reclen (2),
			 * type (1), name */
			unsigned short reclen;
			memcpy(&reclen, buf + off + 16, sizeof reclen);
			const char *name = buf + off + 19;
			off += reclen;
			if (name[0] < '0' || name[0] > '9')
				continue; /* "." and ".." */
			char target[64];
			long l = real_syscall(SYS_readlinkat, dir, name, target, sizeof target - 1);
			if (l <= 0)
				continue; /* closed meanwhile */
			target[l] = 0;
			int fd = 0;
			for (const char *p = name; *p >= '0' && *p <= '9'; p++)
				fd = fd * 10 + (*p - '0');
			fn(fd, target, ctx);
		}
	}
	real_syscall(SYS_close, dir);
	return 0;
}
