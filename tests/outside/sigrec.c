/*
 * SPDX-License-Identifier: MIT
 *
 * sigrec: records each signal it receives, one name a line on stdout, and
 * exits 3 on SIGTERM (the launcher must exit 3 too).  Prints "READY" once
 * its signals are blocked and waited for.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		if (sig == SIGCHLD)
			continue;
		printf("%s\n", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
		fflush(stdout);
		if (sig == SIGTERM)
			return 3;
	}
}
