/*
 * SPDX-License-Identifier: MIT
 *
 * runstatus: runs a command and prints how it ended, "exit N" or
 * "signal N": a shell's $? cannot tell exit(137) from a death by SIGKILL.
 * Its own stdin/stdout/stderr are the command's; the line goes to the file
 * named by the first argument.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: runstatus OUTFILE COMMAND [ARGS...]\n");
		return 2;
	}
	pid_t p = fork();
	if (p == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0)
		;
	FILE *f = fopen(argv[1], "w");
	if (!f)
		return 2;
	if (WIFSIGNALED(st))
		fprintf(f, "signal %d\n", WTERMSIG(st));
	else
		fprintf(f, "exit %d\n", WEXITSTATUS(st));
	fclose(f);
	return 0;
}
