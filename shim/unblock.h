/*
 * SPDX-License-Identifier: MIT
 *
 * A sync worker blocked reading a never-used connection while clients wait
 * to be accepted (unblock.c).
 */
#ifndef GRACESHIM_UNBLOCK_H
#define GRACESHIM_UNBLOCK_H

#include "shim.h"

#include <stdint.h>

/* A read that may block on a never-used connection begins: see unblock.c,
 * unblock_pass().  Set by the wrappers, cleared by the pass. */
extern int unblock_readers HIDDEN;
/* One look at the blocked readers (sweeper thread).  Returns when to look
 * again, or UINT64_MAX when no thread is blocked on one any more. */
uint64_t unblock_pass(void);

#endif
