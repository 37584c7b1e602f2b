/*
 * SPDX-License-Identifier: MIT
 *
 * graceshim-check: validates the GRACESHIM_* environment with the library's
 * own parser.  The launcher runs it before exec'ing the server, so a bad value
 * is rejected up front, judged by the same rules the library applies.
 * Prints nothing and exits 0 when every value is valid.
 *
 *   graceshim-check
 *       each problem in the library's words ("...; using 0"), exit 2; each
 *       GRACESHIM_* variable graceshim does not read, named (exit 0 when
 *       that is all).
 *   graceshim-check --launcher [VARIABLE=OPTION]...
 *       the launcher's words: it refuses to start, so the library's fallback
 *       ("; using 0") is left out, and a VARIABLE the launcher set from
 *       OPTION is named by that option, one from the environment in the
 *       library's words.  Exit 2 when a value from an option is bad (a usage
 *       error), 3 when only values from the environment are (no option was
 *       wrong).  Unknown names are left to the library, which says them once
 *       in the process the launcher starts.
 */
#include "../shim/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct words {
	int launcher;
	char **flags; /* VARIABLE=OPTION */
	int nflags;
	int from_flag; /* a problem came from an option */
};

static const char *get(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

/* The option that set the variable msg starts with ("GRACESHIM_X=..."). */
static const char *option_of(const struct words *w, const char *msg)
{
	for (int i = 0; i < w->nflags; i++) {
		const char *eq = strchr(w->flags[i], '=');
		size_t n = eq ? (size_t)(eq - w->flags[i]) : 0;
		if (n && !strncmp(msg, w->flags[i], n) && msg[n] == '=')
			return eq + 1;
	}
	return NULL;
}

static void warn(const char *msg, void *ctx)
{
	struct words *w = ctx;
	if (!w->launcher) {
		fprintf(stderr, "graceshim: %s\n", msg);
		return;
	}
	/* The library's words: VAR="value" is not valid: expected ...; using D */
	const char *using = strstr(msg, "; using ");
	int len = using ? (int)(using - msg) : (int)strlen(msg);
	const char *opt = option_of(w, msg);
	if (opt) {
		const char *value = strchr(msg, '=') + 1;
		w->from_flag = 1;
		fprintf(stderr, "graceshim: option %s %.*s\n", opt, len - (int)(value - msg),
			value);
	} else {
		fprintf(stderr, "graceshim: %.*s\n", len, msg);
	}
}

int main(int argc, char **argv)
{
	struct cfg c;
	struct words w = {0};
	if (argc > 1 && !strcmp(argv[1], "--launcher")) {
		w.launcher = 1;
		w.flags = argv + 2;
		w.nflags = argc - 2;
	}
	if (!w.launcher)
		cfg_check_names(environ, warn, &w);
	if (!cfg_parse(&c, get, warn, &w))
		return 0;
	return w.launcher && !w.from_flag ? 3 : 2;
}
