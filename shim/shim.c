/*
 * SPDX-License-Identifier: MIT
 *
 * The shared state of shim.h: its definitions, and the clocks.
 */
#include "shim.h"

#include <time.h>

struct cfg shim_cfg;
int shim_init_state;
int shim_active;
int shim_kernel_may_count;
int shim_stamp_accepts;
uint64_t shim_sockfs_dev;
__thread int shim_handler_depth;

uint64_t shim_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shim_now_coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
