/*
 * SPDX-License-Identifier: MIT
 *
 * Helpers of the reliability suite, on top of the integration harness
 * (tests/integration/harness.c is compiled into this binary as it is).
 * Every wait is bounded.
 */
#ifndef GRACESHIM_REL_H
#define GRACESHIM_REL_H

#include "harness.h"

#include <stdbool.h>
#include <stddef.h>

/* Reads one line (without its newline) byte by byte, so that nothing after
 * it is consumed.  False on timeout, EOF or an over-long line. */
bool rel_read_line(int fd, char *buf, size_t len, long timeout_ms);
/* Bytes the peer sent (up to len) until EOF or timeout_ms, or -1 when it
 * neither sent anything nor ended in time. */
long rel_recv_until_eof(int fd, char *buf, size_t len, long timeout_ms);
/* Sends "ping\n" and expects "pong\n". */
bool rel_ping(int fd, long timeout_ms);
/* A fresh directory under /tmp (0700) and its recursive removal. */
void rel_tmpdir(char *out, size_t len);
void rel_rmtree(const char *dir);
/* $GRACESHIM_BUILD (asserted). */
const char *rel_build(void);
/* The whole file (bounded) or NULL. */
char *rel_slurp(const char *path, char *buf, size_t len);

#endif
