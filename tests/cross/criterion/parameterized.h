/* SPDX-License-Identifier: MIT */
/* criterion-lite: ParameterizedTest lives in criterion.h (see there). */
#include <criterion/criterion.h>
