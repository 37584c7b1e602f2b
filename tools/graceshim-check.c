/*
 * graceshim-check: validates the GRACESHIM_* environment with the library's
 * own parser.  The launcher runs it before exec'ing the server, so a bad flag
 * is rejected up front (exit 2) with the same words the library would log.
 * Prints nothing and exits 0 when every value is valid.
 */
#include "../shim/config.h"

#include <stdio.h>
#include <stdlib.h>

static const char *get(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

static void warn(const char *msg, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "graceshim: %s\n", msg);
}

int main(void)
{
	struct cfg c;
	return cfg_parse(&c, get, warn, NULL) ? 2 : 0;
}
