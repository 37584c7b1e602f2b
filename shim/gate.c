/*
 * SPDX-License-Identifier: MIT
 *
 * The gate (see gate.h): the fast-path flag, the fast table and its doors,
 * and the deferred work.
 */
#include "gate.h"

int gate_is_open;
static void (*gate_work)(void);

/* The doors of the fast table while the gate is closed: an untracked fd's
 * call passes the gate (REAL: binding, or the deferred work; REAL_NOHOOK
 * for the writes, which signal handlers make to their self-pipes: no thread
 * may be started there), then goes to libc. */
#define GATE_DOOR(ret, field, sym, params, args, bind, path)                                       \
	GATE_DOOR_##path(ret, field, params, args)
#define GATE_DOOR_own(ret, field, params, args)
#define GATE_DOOR_own_special(ret, field, params, args)
#define GATE_DOOR_fast(ret, field, params, args)                                                   \
	static ret gate_door_##field params                                                        \
	{                                                                                          \
		return REAL(field) args;                                                           \
	}
#define GATE_DOOR_fast_read(ret, field, params, args) GATE_DOOR_fast(ret, field, params, args)
#define GATE_DOOR_fast_read_fds(ret, field, params, args) GATE_DOOR_fast(ret, field, params, args)
#define GATE_DOOR_fast_write(ret, field, params, args)                                             \
	static ret gate_door_##field params                                                        \
	{                                                                                          \
		return REAL_NOHOOK(field) args;                                                    \
	}
#define GATE_DOOR_fast_write_fds(ret, field, params, args)                                         \
	GATE_DOOR_fast_write(ret, field, params, args)
SHIM_SYMBOLS(GATE_DOOR)

#define GATE_SLOT(ret, field, sym, params, args, bind, path) GATE_SLOT_##path(field)
#define GATE_SLOT_own(field)
#define GATE_SLOT_own_special(field)
#define GATE_SLOT_fast(field) .field = gate_door_##field,
#define GATE_SLOT_fast_read(field) GATE_SLOT_fast(field)
#define GATE_SLOT_fast_read_fds(field) GATE_SLOT_fast(field)
#define GATE_SLOT_fast_write(field) GATE_SLOT_fast(field)
#define GATE_SLOT_fast_write_fds(field) GATE_SLOT_fast(field)
struct real_fns gate_fast = {SHIM_SYMBOLS(GATE_SLOT)};

static void fast_switch(int open)
{
#define GATE_SET(ret, field, sym, params, args, bind, path) GATE_SET_##path(field)
#define GATE_SET_own(f)
#define GATE_SET_own_special(f)
#define GATE_SET_fast(f)                                                                           \
	__atomic_store_n(&gate_fast.f, open &&real_fns.f ? real_fns.f : gate_door_##f,             \
			 __ATOMIC_RELEASE);
#define GATE_SET_fast_read(f) GATE_SET_fast(f)
#define GATE_SET_fast_read_fds(f) GATE_SET_fast(f)
#define GATE_SET_fast_write(f) GATE_SET_fast(f)
#define GATE_SET_fast_write_fds(f) GATE_SET_fast(f)
	SHIM_SYMBOLS(GATE_SET)
}

static void open_now(void)
{
	fast_switch(1);
	__atomic_store_n(&gate_is_open, 1, __ATOMIC_RELEASE);
}

void gate_open(void)
{
	if (real_bound())
		open_now();
}

void gate_close(void)
{
	__atomic_store_n(&gate_is_open, 0, __ATOMIC_RELEASE);
	fast_switch(0);
}

void gate_set_work(void (*work)(void))
{
	__atomic_store_n(&gate_work, work, __ATOMIC_RELEASE);
}

void gate_pass_nohook(void)
{
	if (real_bind())
		open_now();
}

void gate_pass(void)
{
	if (real_bound()) {
		void (*work)(void) = __atomic_load_n(&gate_work, __ATOMIC_ACQUIRE);
		if (work)
			work(); /* it reopens the gate when it is done */
		else
			gate_open();
		return;
	}
	gate_pass_nohook();
}
