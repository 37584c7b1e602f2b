/*
 * SPDX-License-Identifier: MIT
 *
 * Secure execution (AT_SECURE: setuid, setgid, file capabilities): the
 * environment belongs to a less privileged user, so the shim must stay inert
 * (README).  What can be tested here, as root:
 *
 * - glibc itself ignores LD_PRELOAD entries with a slash in secure mode (and
 *   loads bare names only from the system directories, only if setuid), so
 *   a preloaded shim is simply not loaded: shown with a setuid copy of
 *   rel_secure, whose link map then lacks it.
 * - The shim's own AT_SECURE check matters when it is loaded anyway (linked
 *   in, /etc/ld.so.preload, or a setuid copy in the system library path):
 *   rel_secure-linked has libgraceshim.so as a DT_NEEDED dependency (absolute
 *   RUNPATH, which secure mode honours).  Its setuid-nobody copy loads the
 *   shim (it is in the link map) and the shim must do nothing: no log line,
 *   no warning about a bad variable, and an unused connection keeps the
 *   server running after SIGINT, exactly as without the shim.  The same
 *   binary without the setuid bit shows all three, so the test can fail.
 *
 * Not tested: /etc/ld.so.preload and the system library path (the machine's
 * every process would see it).  The setuid copies are made here, as root,
 * in the build directory; without root the tests are skipped, and in
 * sanitizer builds too (make sets GRACESHIM_SAN): the sanitizer runtimes do
 * not support setuid processes (LeakSanitizer cannot stop the threads of a
 * non-dumpable process), nor a shim linked after them.
 */
#include "rel.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct server srv;

static void teardown(void)
{
	char p[1024];
	harness_teardown();
	/* No setuid binaries left behind in the build directory. */
	const char *b = getenv("GRACESHIM_BUILD");
	for (int i = 0; b && i < 2; i++) {
		snprintf(p, sizeof p, "%s/fixtures/%s", b,
			 i ? "rel_secure-suid" : "rel_secure-linked-suid");
		unlink(p);
	}
}

TestSuite(secure, .fini = teardown, .timeout = 60);

/* The sanitizer runtimes support neither setuid processes nor a shim
 * linked after them (their start-up calls its sigaction() before they are
 * ready: TSan crashes). */
static void need_plain_build(void)
{
	const char *san = getenv("GRACESHIM_SAN");
	if (san && *san)
		cr_skip_test("not in sanitizer builds (SAN=%s)", san);
}

/* Whether uid/gid 65534 can open path: every directory above it must be
 * searchable by others (a checkout inside a 0700 directory, such as one
 * made by mktemp -d, is not).  Asked of a child that became nobody. */
static bool nobody_can_read(const char *path)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork");
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		_exit(access(path, R_OK) == 0 ? 0 : 1);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Copies $B/fixtures/<from> to $B/fixtures/<to>, owned by nobody, 04755.
 * setgid_only: owned by root, group nogroup (65534), 02755: secure
 * execution all the same (AT_SECURE: the effective gid is not the real
 * one), and the loader, still root, can open a library nobody cannot. */
static void make_secure_copy(const char *from, const char *to, bool setgid_only)
{
	char src[1024], dst[1024], buf[65536];
	need_plain_build();
	if (geteuid() != 0)
		cr_skip_test("needs root to make a setuid copy");
	snprintf(src, sizeof src, "%s/fixtures/%s", rel_build(), from);
	snprintf(dst, sizeof dst, "%s/fixtures/%s", rel_build(), to);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(in, 0, "%s: build it with make reliability", src);
	unlink(dst);
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	cr_assert_geq(out, 0);
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	close(in);
	if (setgid_only)
		cr_assert(fchown(out, 0, 65534) == 0 && fchmod(out, 02755) == 0);
	else
		cr_assert(fchown(out, 65534, 65534) == 0 && fchmod(out, 04755) == 0);
	close(out);
}

static void make_setuid_copy(const char *from, const char *to)
{
	make_secure_copy(from, to, false);
}

static const char *const env[] = {"GRACESHIM_LOG=debug", "GRACESHIM_GRACE=banana", NULL};

/* Starts the fixture, opens an unused connection, sends SIGINT; returns
 * the ms until exit or -1 after timeout_ms. */
static long unused_then_sigint(const char *fixture, bool preload, long timeout_ms)
{
	const char *const args[] = {fixture, NULL};
	server_start(&srv, preload, args, env);
	int spare = tcp_connect(AF_INET, srv.port);
	sleep_ms(200);
	long ms = server_signal_and_wait(&srv, SIGINT, timeout_ms);
	close(spare);
	return ms;
}

Test(secure, control_linked_shim_is_active_without_setuid)
{
	need_plain_build();
	long ms = unused_then_sigint("rel_secure-linked", false, PROMPT_MS);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "AT_SECURE=0 shim loaded"), "stderr:\n%s", err);
	cr_assert(strstr(err, "GRACESHIM_GRACE=\"banana\" is not valid"), "stderr:\n%s", err);
	cr_assert(strstr(err, "DEBUG graceshim["), "stderr:\n%s", err);
	cr_assert_geq(ms, 0, "the linked shim did not release the unused connection");
}

Test(secure, linked_shim_is_inert_in_setuid_process)
{
	/* The setuid-nobody process loads libgraceshim.so from the build
	 * directory (its RUNPATH) as nobody.  When nobody cannot reach it
	 * (the checkout lives in a 0700 directory), a setgid copy: the same
	 * secure execution, the loader opening the library as root. */
	char lib[1024];
	need_plain_build();
	snprintf(lib, sizeof lib, "%s/libgraceshim.so", rel_build());
	bool setgid_only = geteuid() == 0 && !nobody_can_read(lib);
	if (setgid_only)
		cr_log_info("%s is not readable by uid 65534 (a parent directory is not searchable "
			    "by others): setgid copy instead of setuid",
			    lib);
	make_secure_copy("rel_secure-linked", "rel_secure-linked-suid", setgid_only);
	long ms = unused_then_sigint("rel_secure-linked-suid", false, HANG_MS);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "AT_SECURE=1 shim loaded"),
		  "not a secure-execution process with the shim loaded; stderr:\n%s", err);
	cr_assert_null(strstr(err, "graceshim["), "the shim logged in a setuid process:\n%s", err);
	cr_assert_null(strstr(err, "banana"), "the shim read GRACESHIM_* in a setuid process:\n%s",
		       err);
	cr_assert_eq(ms, -1, "the shim acted in a setuid process (released the unused connection)");
}

Test(secure, glibc_ignores_preload_path_in_setuid_process)
{
	make_setuid_copy("rel_secure", "rel_secure-suid");
	long ms = unused_then_sigint("rel_secure-suid", true, HANG_MS);
	const char *err = server_stderr(&srv);
	cr_assert(strstr(err, "AT_SECURE=1 shim absent"),
		  "glibc loaded a preload path in secure mode?; stderr:\n%s", err);
	cr_assert_null(strstr(err, "graceshim["), "stderr:\n%s", err);
	cr_assert_eq(ms, -1);
}
