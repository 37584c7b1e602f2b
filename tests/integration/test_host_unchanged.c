/*
 * The host behaves as without the shim (invariant 1), in the shapes
 * CPython's own regression suite showed it did not: a vfork() that a signal
 * interrupts and the kernel restarts, children of a draining parent that are
 * not its workers, a server that speaks first, and a forked child's first
 * log line.  Each pattern runs without and with the shim and each run is
 * checked against the expected result, so a pattern broken both ways fails
 * too.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_MS 15000 /* a program that should exit: generous (loaded CI) */

static struct server srv;

static void teardown(void)
{
	server_stop(&srv);
}

TestSuite(host_unchanged, .fini = teardown, .timeout = 180);

/* What one run showed. */
struct outcome {
	int status;     /* wait status */
	char out[4096]; /* stdout after the PORT line */
	char err[8192]; /* stderr */
};

/* Waits (bounded) for the server to exit on its own, then collects its
 * status, the rest of its stdout and its stderr. */
static void finish(struct outcome *o, const char *what, bool shim)
{
	long ms = server_wait(&srv, EXIT_MS);
	if (ms < 0) {
		server_stop(&srv);
		cr_assert_fail("%s (%s the shim): still running %d ms after it should have exited; "
			       "stderr:\n%s",
			       what, shim ? "with" : "without", EXIT_MS, server_stderr(&srv));
	}
	o->status = srv.status;
	read_all_for(srv.out_fd, o->out, sizeof o->out, 2000);
	snprintf(o->err, sizeof o->err, "%s", server_stderr(&srv));
	close(srv.out_fd);
}

static bool exited_with(int status, int code)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* ---- C. vfork restarted by a signal --------------------------------------- */

/* A storm of SIGCHLD, whose System V handler re-arms itself with signal(),
 * lands during vfork() again and again; each child resets SIGTERM to SIG_DFL
 * and execs.  The parent's own SIGTERM handler must still run. */
static void run_vfork_storm(bool shim, struct outcome *o)
{
	const char *const args[] = {"hu_vfork_storm", "1000", NULL};
	memset(o, 0, sizeof *o);
	server_start(&srv, shim, args, NULL);
	finish(o, "hu_vfork_storm", shim);
}

Test(host_unchanged, restarted_vfork_child_does_not_reset_parent_handler)
{
	struct outcome o;
	for (int run = 0; run < 3; run++) {
		bool shim = run > 0;
		run_vfork_storm(shim, &o);
		cr_expect(exited_with(o.status, 3) && !strcmp(o.out, "handler 15\n"),
			  "run %d, %s the shim: status 0x%x (killed by signal %d), stdout \"%s\", "
			  "stderr \"%s\": the SIGTERM handler must run, not a vfork child's SIG_DFL",
			  run, shim ? "with" : "without", o.status,
			  WIFSIGNALED(o.status) ? WTERMSIG(o.status) : 0, o.out, o.err);
	}
}
