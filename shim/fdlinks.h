/*
 * SPDX-License-Identifier: MIT
 *
 * The fds of a process, read from /proc/<pid>/fd with raw system calls
 * (openat, getdents64, readlinkat): no malloc, no stdio, so a signal
 * handler may walk them (workers.c), and no fd a sanitizer would see racing
 * the host's (blind.c).
 */
#ifndef GRACESHIM_FDLINKS_H
#define GRACESHIM_FDLINKS_H

/* Calls fn for each fd listed in path ("/proc/self/fd", "/proc/<pid>/fd")
 * with its link target ("socket:[123]", "pipe:[4]", "/var/log/x", cut at 63
 * bytes).  Returns -1 (errno set) when the directory cannot be opened. */
int fdlinks_each(const char *path, void (*fn)(int fd, const char *target, void *ctx), void *ctx)
	__attribute__((visibility("hidden")));

#endif
