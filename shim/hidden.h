/*
 * SPDX-License-Identifier: MIT
 *
 * The one visibility macro: a name the library's objects share and never
 * export (the version script exports only the interposed symbols).
 */
#ifndef GRACESHIM_HIDDEN_H
#define GRACESHIM_HIDDEN_H

#define HIDDEN __attribute__((visibility("hidden")))

#endif
