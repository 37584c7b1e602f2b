/*
 * SPDX-License-Identifier: MIT
 *
 * A wrapper called before libc is set up: from a .preinit_array function
 * (the sanitizer runtimes install their signal handlers there, through the
 * shim's sigaction() when they come first in LD_PRELOAD).  libc's environ is
 * still NULL then; the shim must not freeze its configuration from that
 * empty environment: GRACESHIM_DISABLE=1 and GRACESHIM_LOG must still apply.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

TestSuite(early_init, .fini = harness_teardown, .timeout = 60);

/* The kill switch with an unused connection: SIGINT must change nothing. */
static long disabled_run(bool early)
{
	const char *const args[] = {"rel_preinit", early ? NULL : "--no-early", NULL};
	const char *const env[] = {"GRACESHIM_DISABLE=1", "GRACESHIM_LOG=debug", NULL};
	server_start(&srv, true, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, HANG_MS);
	close(spare);
	return ms;
}

Test(early_init, control_disable_without_early_call)
{
	cr_assert_eq(disabled_run(false), -1, "GRACESHIM_DISABLE=1 ignored; stderr:\n%s",
		     server_stderr(&srv));
	cr_assert(strstr(server_stderr(&srv), "disabled by GRACESHIM_DISABLE"), "stderr:\n%s",
		  server_stderr(&srv));
}

Test(early_init, disable_honoured_after_preinit_sigaction)
{
	long ms = disabled_run(true);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "early sigaction rc=0"), "the preinit call did not happen:\n%s", err);
	cr_assert_eq(ms, -1,
		     "GRACESHIM_DISABLE=1 was ignored after a wrapper ran before libc's "
		     "set-up (the configuration was read from an empty environment); stderr:\n%s",
		     err);
	cr_assert(strstr(err, "disabled by GRACESHIM_DISABLE"), "GRACESHIM_LOG=debug ignored:\n%s",
		  err);
}

Test(early_init, log_level_applies_after_preinit_sigaction)
{
	const char *const args[] = {"rel_preinit", NULL};
	const char *const env[] = {"GRACESHIM_LOG=debug", "GRACESHIM_GRACE=banana", NULL};
	server_start(&srv, true, args, env);
	cr_assert_geq(server_signal_and_wait(&srv, SIGINT, PROMPT_MS), 0);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "DEBUG graceshim[") && strstr(err, "GRACESHIM_GRACE=\"banana\""),
		  "GRACESHIM_LOG and GRACESHIM_GRACE were not read; stderr:\n%s", err);
}
