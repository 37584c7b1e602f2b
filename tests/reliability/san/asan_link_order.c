/*
 * SPDX-License-Identifier: MIT
 *
 * Linked into every fixture of a SAN=address build (tests/reliability.mk).
 *
 * The fixtures link the ASan runtime (libasan.so) and the harness preloads
 * libgraceshim.so, which then comes before libasan in the initial library
 * list; ASan refuses to start ("ASan runtime does not come first in initial
 * library list").  That order is harmless here: the executable's preinit
 * array initialises ASan before any constructor runs, the shim does not
 * replace malloc, and its wrappers reach ASan's interceptors through
 * dlsym(RTLD_NEXT).  The alternative, preloading libasan.so ahead of the
 * shim, makes ASan's own start-up call the shim's sigaction() before libc
 * has set up environ, so the shim would parse an empty environment.
 * ASAN_OPTIONS from the environment still apply on top of this.
 */
const char *__asan_default_options(void);

__attribute__((used, visibility("default"))) const char *__asan_default_options(void)
{
	return "verify_asan_link_order=0";
}
