#!/bin/sh
# SPDX-License-Identifier: MIT
# Tests of the launcher, scripts/graceshim: options, validation through
# graceshim-check, finding the library, LD_PRELOAD, exec, and the warnings
# for programs LD_PRELOAD cannot reach.  Each check prints "ok - name" or
# "not ok - name" (or "ok - name # skip reason", counted as skipped, not
# passed); the last line is "launcher: N passed, M failed, K skipped".
# Needs `make` first (build/libgraceshim.so, build/graceshim-check).
# The launcher runs under dash when it is installed (SH=... picks another shell).
# Conditions are written in single quotes and run by `check NAME eval '...'`:
# shellcheck disable=SC2016

ROOT=$(CDPATH='' cd -P -- "$(dirname -- "$0")/../.." && pwd)
LAUNCHER=$ROOT/scripts/graceshim
LIB=$ROOT/build/libgraceshim.so
CHECK=$ROOT/build/graceshim-check
if [ -z "${SH:-}" ]; then
	SH='sh'
	command -v dash >/dev/null 2>&1 && SH=dash
fi

passed=0 failed=0 skipped=0
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP

ok() { passed=$((passed + 1)); printf 'ok - %s\n' "$1"; }
not_ok() {
	failed=$((failed + 1))
	printf 'not ok - %s\n' "$1"
	# The evidence, indented, so a failure explains itself.
	[ -s "$T/err" ] && sed 's/^/#   stderr: /' "$T/err" | head -n 8
	[ -s "$T/out" ] && sed 's/^/#   stdout: /' "$T/out" | head -n 8
	return 0
}
skip() { skipped=$((skipped + 1)); printf 'ok - %s # skip %s\n' "$1" "$2"; }
# check NAME COMMAND...: the check passes when COMMAND succeeds.
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# Bounds every run: a launcher that hangs fails its check instead of the suite.
BOUND=
command -v timeout >/dev/null 2>&1 && BOUND="timeout 20"

# run ARGS...: runs the launcher with ARGS; stdout in $T/out, stderr in $T/err,
# exit status in $rc.  run_env NAME=VALUE ARGS...: the same with one more
# variable (through env: an assignment before a function call may outlive it).
run() {
	$BOUND "$SH" "$LAUNCHER" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
run_env() {
	assignment=$1
	shift
	$BOUND env "$assignment" "$SH" "$LAUNCHER" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
has_out() { grep -q -- "$1" "$T/out"; }
has_err() { grep -q -- "$1" "$T/err"; }
no_warning() { ! grep -q 'warning' "$T/err"; }
usage_line() { grep -qx 'usage: graceshim \[OPTIONS\] \[--\] COMMAND \[ARGS\.\.\.\]' "$T/err"; }
# A command that leaves $T/marker behind if it ever runs.
MARK="touch $T/marker"
no_marker() { [ ! -e "$T/marker" ]; }

if [ ! -f "$LIB" ] || [ ! -x "$CHECK" ]; then
	echo "launcher: build first (make): $LIB or $CHECK is missing" >&2
	exit 1
fi

# --- syntax -----------------------------------------------------------------
check "parses as POSIX sh (sh -n)" sh -n "$LAUNCHER"
if command -v dash >/dev/null 2>&1; then
	check "parses under dash (dash -n)" dash -n "$LAUNCHER"
fi

# --- help and version ------------------------------------------------------------
run --help
check "--help exits 0" [ "$rc" = 0 ]
check "--help shows the usage line" has_out '^usage: graceshim \[OPTIONS\] \[--\] COMMAND'
help_lists_all() {
	for word in --signals GRACESHIM_SIGNALS --grace GRACESHIM_GRACE --log GRACESHIM_LOG \
		--log-file GRACESHIM_LOG_FILE --disable GRACESHIM_DISABLE --verbose --version \
		GRACESHIM_LIB 'default INT,TERM' 'default warn'; do
		has_out "$word" || return 1
	done
}
check "--help lists every flag, its variable and default" help_lists_all
# The man page's DESCRIPTION: the default policy (idle), not only never-used connections.
sed -n '/^\.SH DESCRIPTION/,/^\.SH OPTIONS/p' "$ROOT/scripts/graceshim.1" >"$T/out"
check "graceshim(1) DESCRIPTION describes the default policy, idle" \
	eval 'has_out "^With the default policy," && has_out "^\.BR idle ," && has_out "keep-alive connection between requests"'
run --help
check "--help: every line within 80 columns" eval '[ -z "$(awk "length(\$0) > 80" "$T/out")" ]'
run -h
check "-h exits 0 like --help" [ "$rc" = 0 ]

run --version
check "--version prints 'graceshim 0.1.0'" eval '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = "graceshim 0.1.0" ]'

# --- usage errors: exit 2, a usage line, nothing started --------------------------
rm -f "$T/marker"
run --bogus sh -c "$MARK"
check "unknown flag exits 2" [ "$rc" = 2 ]
check "unknown flag is named, with the usage line" eval 'has_err "graceshim: unknown option: --bogus" && usage_line'
check "unknown flag starts nothing" no_marker

run -x sh -c "$MARK"
check "unknown short flag exits 2 and starts nothing" eval '[ "$rc" = 2 ] && no_marker'

run
check "missing command exits 2" [ "$rc" = 2 ]
check "missing command says so, with the usage line" eval 'has_err "no COMMAND" && usage_line'
run --grace 1s --
check "missing command after -- exits 2" [ "$rc" = 2 ]

run --grace
check "missing value exits 2" eval '[ "$rc" = 2 ] && has_err "needs a value" && usage_line'

run --disable=1 sh -c "$MARK"
check "value given to a switch exits 2" eval '[ "$rc" = 2 ] && no_marker'

# --pid: a number the kernel could give a process, else the launcher's own
# usage error (not graceshim-outside's, whose name the user never typed).
for bad_pid in 0 00 abc 4194305 4294967296 99999999999999999999; do
	run --pid "$bad_pid"
	check "--pid $bad_pid: exits 2, the launcher's usage error" eval \
		'[ "$rc" = 2 ] && has_err "^graceshim: option --pid: \"$bad_pid\" is not a process id" && usage_line && ! has_err graceshim-outside'
done

# --- bad values, judged by graceshim-check ---------------------------------------
# In the launcher's words: the option and its value, and no "; using 0"
# (the library's fallback: the launcher refuses instead).
bad_value() { # FLAG VALUE
	rm -f "$T/marker"
	bv_flag=$1 bv_value=$2
	run "$1" "$2" sh -c "$MARK"
	check "bad $1 value exits 2 naming $1" \
		eval '[ "$rc" = 2 ] && has_err "^graceshim: option $bv_flag \"$bv_value\" is not valid: expected" && usage_line && no_marker'
	check "bad $1 value: the launcher refuses, no library fallback" eval '! has_err "; using "'
}
bad_value --grace 5x
bad_value --grace 8761h
bad_value --signals KILL
bad_value --signals INT,NOPE
bad_value --log loud
rm -f "$T/marker"
run -v --grace=5x sh -c "$MARK"
check "--flag=VALUE form named too" eval '[ "$rc" = 2 ] && has_err "option --grace \"5x\"" && no_marker'

rm -f "$T/marker"
run_env GRACESHIM_GRACE=fast sh -c "$MARK"
check "a bad value from the environment is rejected too" \
	eval '[ "$rc" = 2 ] && has_err GRACESHIM_GRACE && no_marker'
check "a bad value from the environment: in the library's words, no usage line (no option was wrong)" \
	eval 'has_err "^graceshim: GRACESHIM_GRACE=\"fast\" is not valid: expected" && ! usage_line && ! has_err "; using " &&
		has_err "^graceshim: not started: set a valid value or unset the variable"'
cp "$T/err" "$T/launcher-words"

# Without the launcher (LD_PRELOAD set by hand, or by a wrapper that re-runs
# programs): a bad value, and a GRACESHIM_* name graceshim does not read,
# are said once in the whole process tree, by the process started first,
# in the launcher's words (with the default the library uses instead).
tree='for i in 1 2 3 4 5; do sh -c "sh -c :"; done; echo tree ran'
$BOUND env LD_PRELOAD="$LIB" GRACESHIM_GRACE=fast sh -c "$tree" >"$T/out" 2>"$T/err"
check "a bad value: said once in a tree of 11 processes" \
	eval 'has_out "tree ran" && [ "$(grep -c GRACESHIM_GRACE "$T/err")" = 1 ]'
lib_words=$(sed -n 's/^.* WARN graceshim\[[0-9]*\] \(GRACESHIM_GRACE=.*\); using 0$/\1/p' "$T/err")
launcher_words=$(sed -n 's/^graceshim: \(GRACESHIM_GRACE=.*\)$/\1/p' "$T/launcher-words")
check "a bad value: the library's line is the launcher's, with the default it uses" \
	eval '[ -n "$lib_words" ] && [ "$lib_words" = "$launcher_words" ]'
$BOUND env LD_PRELOAD="$LIB" GRACESHIM_GRAC=5s sh -c "$tree" >"$T/out" 2>"$T/err"
check "a mistyped name: said once in the tree, with the nearest known one" \
	eval 'has_out "tree ran" && [ "$(grep -c GRACESHIM_GRAC "$T/err")" = 1 ] &&
		has_err "GRACESHIM_GRAC is not a graceshim variable: ignored (did you mean GRACESHIM_GRACE?)"'
run_env GRACESHIM_GRAC=5s sh -c "$tree"
check "a mistyped name through the launcher: said once" \
	eval '[ "$rc" = 0 ] && [ "$(grep -c GRACESHIM_GRAC "$T/err")" = 1 ] && has_err "did you mean GRACESHIM_GRACE?"'
$BOUND env LD_PRELOAD="$LIB" GRACESHIM_BUILD=x GRACESHIM_LIB="$LIB" sh -c : >"$T/out" 2>"$T/err"
check "names graceshim and its tools read are not reported" [ ! -s "$T/err" ]
$BOUND env GRACESHIM_GRAC=5s "$CHECK" >"$T/out" 2>"$T/err"
rc=$?
check "graceshim-check names a mistyped name too (exit 0: nothing is invalid)" \
	eval '[ "$rc" = 0 ] && has_err "GRACESHIM_GRAC is not a graceshim variable"'
run_env GRACESHIM_GRACE=fast --log loud true
check "a bad option and a bad variable: both named, with the usage line" \
	eval '[ "$rc" = 2 ] && has_err "option --log" && has_err "GRACESHIM_GRACE" && usage_line'

# Path options: a value that looks like an option is a forgotten value
# ("--stats -- server" would write a file named "--").
path_dash() { # ARGS...: the last one is the command
	rm -f "$T/marker"
	(cd "$T" && $BOUND "$SH" "$LAUNCHER" "$@" >"$T/out" 2>"$T/err")
	rc=$?
}
path_dash --stats -- sh -c "$MARK"
check "--stats -- COMMAND: refused (exit 2), no file named --" \
	eval '[ "$rc" = 2 ] && usage_line && has_err "option --stats" && [ ! -e "$T/--" ] && no_marker'
path_dash --log-file -x sh -c "$MARK"
check "--log-file -x: refused (exit 2)" eval '[ "$rc" = 2 ] && has_err "option --log-file" && no_marker'
path_dash --stats=-s.json sh -c "$MARK"
check "--stats=-s.json: refused (exit 2)" eval '[ "$rc" = 2 ] && has_err "./-s.json" && no_marker'
path_dash --stats ./-s.json true
check "--stats ./-s.json is a path like any other" eval '[ "$rc" = 0 ]'

# --- good values reach the command -------------------------------------------------
run --signals HUP,TERM --grace 1m30s --log debug --log-file "$T/log" --disable env
check "good values exit with the command's status" [ "$rc" = 0 ]
values_reach() {
	has_out '^GRACESHIM_SIGNALS=HUP,TERM$' && has_out '^GRACESHIM_GRACE=1m30s$' &&
		has_out '^GRACESHIM_LOG=debug$' && has_out "^GRACESHIM_LOG_FILE=$T/log\$" &&
		has_out '^GRACESHIM_DISABLE=1$'
}
check "good values reach the command's environment" values_reach

run --signals=USR1 --grace=250ms --log=info --log-file="$T/log" env
values_eq() {
	has_out '^GRACESHIM_SIGNALS=USR1$' && has_out '^GRACESHIM_GRACE=250ms$' &&
		has_out '^GRACESHIM_LOG=info$' && has_out "^GRACESHIM_LOG_FILE=$T/log\$"
}
check "--flag=value form" eval '[ "$rc" = 0 ] && values_eq'

run -v sh -c 'echo "log=$GRACESHIM_LOG"'
check "-v means --log info" eval '[ "$rc" = 0 ] && has_out "^log=info$"'

run_env GRACESHIM_GRACE=2s sh -c 'echo "grace=$GRACESHIM_GRACE"'
check "a variable with no flag keeps its environment value" has_out '^grace=2s$'

run sh -c 'exit 7'
check "exit status is the command's" [ "$rc" = 7 ]

run -- sh -c 'echo "args:$*"' sh --grace -x
check "options after COMMAND belong to COMMAND" eval '[ "$rc" = 0 ] && has_out "^args:--grace -x$"'

# A command whose name starts with "-": only reachable after --.
mkdir -p "$T/bin"
printf '#!/bin/sh\necho dash-command ran\n' >"$T/bin/-dashcmd"
chmod +x "$T/bin/-dashcmd"
run_env PATH="$T/bin:$PATH" -- -dashcmd
check "-- ends options (a command starting with -)" eval '[ "$rc" = 0 ] && has_out "dash-command ran"'
run_env PATH="$T/bin:$PATH" -dashcmd
check "without --, such a command is an unknown option" eval '[ "$rc" = 2 ] && ! has_out "dash-command ran"'

run no-such-command-graceshim
check "a command not found exits 127" eval '[ "$rc" = 127 ] && has_err "command not found"'
run "$T/no-such-file"
check "a missing path exits 127" eval '[ "$rc" = 127 ] && has_err "$T/no-such-file: no such file"'
# What exec would refuse: the launcher's words, the shell's statuses, and
# no line of the shell's ("exec: ...: Permission denied").
printf 'not a program\n' >"$T/README.md"
chmod 644 "$T/README.md"
(cd "$T" && $BOUND "$SH" "$LAUNCHER" -- ./README.md >"$T/out" 2>"$T/err")
rc=$?
check "a file that is not executable exits 126, in the launcher's words (one line)" \
	eval '[ "$rc" = 126 ] && has_err "^graceshim: ./README.md: not executable" && ! has_err "exec:" &&
		[ "$(wc -l <"$T/err")" -eq 1 ]'
mkdir -p "$T/adir"
run "$T/adir"
check "a directory exits 126, in the launcher's words (one line)" \
	eval '[ "$rc" = 126 ] && has_err "^graceshim: $T/adir: is a directory" && [ "$(wc -l <"$T/err")" -eq 1 ]'

# --- the README ------------------------------------------------------------------
# Its sample log lines are one run's (one date), and make check's entry names
# every target scripts/check-all runs and how long it takes.
dates=$(sed -n 's/^\(20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]\)T[0-9:.+]* [A-Z]* graceshim\[.*/\1/p' "$ROOT/README.md" | sort -u)
check "README: the sample log lines share one date" eval '[ -n "$dates" ] && [ "$(printf "%s\n" "$dates" | wc -l)" = 1 ]'
sed -n '/^make check  *what CI runs/,/^make [a-z]/p' "$ROOT/README.md" | tr -s ' \n' ' ' >"$T/out"
missing=''
for target in $(sed -n 's/^[[:space:]]*targets=(\(.*\))$/\1/p' "$ROOT/scripts/check-all" | tail -n 1); do
	grep -q -- "[ ,]$target[,;. ]" "$T/out" || missing="$missing $target"
done
check "README: make check lists every target of scripts/check-all, and how long it takes" \
	eval '[ -z "$missing" ] && has_out "About [0-9]* min"'
[ -z "$missing" ] || printf '#   missing:%s\n' "$missing"

# --- LD_PRELOAD ----------------------------------------------------------------
preload_is() { [ "$(cat "$T/out")" = "$1" ]; }
run sh -c 'printf "%s\n" "$LD_PRELOAD"'
check "LD_PRELOAD is the library's absolute path" preload_is "$LIB"

# A real (empty) shared object, so the loader does not complain about it.
if cc -shared -fPIC -o "$T/other.so" -x c /dev/null 2>/dev/null; then
	other=$T/other.so
else
	other=$LIB # still a loadable object; the order is what is tested
fi
run_env LD_PRELOAD="$other" sh -c 'printf "%s\n" "$LD_PRELOAD"'
check "library prepended to an existing LD_PRELOAD" preload_is "$LIB:$other"
run_env LD_PRELOAD="$LIB:$other" sh -c 'printf "%s\n" "$LD_PRELOAD"'
check "no duplicate when the library is already first" preload_is "$LIB:$other"

run --log debug -- true
check "the shim is loaded and active (its debug line)" eval '[ "$rc" = 0 ] && grep -qi "debug.*graceshim" "$T/err"'

# --- finding the library ------------------------------------------------------------
mkdir -p "$T/alt"
cp "$LIB" "$T/alt/libgraceshim.so"
run_env GRACESHIM_LIB="$T/alt/libgraceshim.so" sh -c 'printf "%s\n" "$LD_PRELOAD"'
check "GRACESHIM_LIB overrides the library" preload_is "$T/alt/libgraceshim.so"
relative_lib() {
	(cd "$T" && run_env GRACESHIM_LIB=alt/libgraceshim.so sh -c 'printf "%s\n" "$LD_PRELOAD"' &&
		preload_is "$T/alt/libgraceshim.so")
}
check "a relative GRACESHIM_LIB becomes absolute" relative_lib

rm -f "$T/marker"
run_env GRACESHIM_LIB="$T/nonexistent.so" sh -c "$MARK"
check "a missing GRACESHIM_LIB exits 2 with a clear message" \
	eval '[ "$rc" = 2 ] && has_err "GRACESHIM_LIB=$T/nonexistent.so: no such file" && no_marker'

# An installed layout (bin/, lib/graceshim/) reached through a symlink, and
# without the checker: values are then not validated, with a warning.
mkdir -p "$T/prefix/bin" "$T/prefix/lib/graceshim" "$T/links"
cp "$LAUNCHER" "$T/prefix/bin/graceshim"
cp "$LIB" "$T/prefix/lib/graceshim/libgraceshim.so"
ln -s "$T/prefix/bin/graceshim" "$T/links/graceshim"
$BOUND "$SH" "$T/links/graceshim" --grace 3s sh -c 'printf "%s\n" "$LD_PRELOAD"' >"$T/out" 2>"$T/err"
rc=$?
check "a symlinked launcher finds lib/graceshim/ under its prefix" \
	preload_is "$T/prefix/lib/graceshim/libgraceshim.so"
check "without graceshim-check: one warning, and the command runs" \
	eval '[ "$rc" = 0 ] && has_err "warning: graceshim-check not found" && [ "$(wc -l <"$T/err")" -eq 1 ]'
cp "$CHECK" "$T/prefix/lib/graceshim/graceshim-check"
$BOUND "$SH" "$T/links/graceshim" --grace 3x true >"$T/out" 2>"$T/err"
rc=$?
check "the installed graceshim-check is found and used" eval '[ "$rc" = 2 ] && has_err "option --grace"'

# The Debian package's layout: lib/<multiarch>/graceshim/, checker beside it.
mkdir -p "$T/deb/bin" "$T/deb/lib/$(uname -m)-linux-gnu/graceshim"
cp "$LAUNCHER" "$T/deb/bin/graceshim"
cp "$LIB" "$CHECK" "$T/deb/lib/$(uname -m)-linux-gnu/graceshim/"
$BOUND "$SH" "$T/deb/bin/graceshim" sh -c 'printf "%s\n" "$LD_PRELOAD"' >"$T/out" 2>"$T/err"
check "the launcher finds lib/<multiarch>/graceshim/ (the Debian package)" \
	eval 'preload_is "$T/deb/lib/$(uname -m)-linux-gnu/graceshim/libgraceshim.so" && no_warning'
$BOUND "$SH" "$T/deb/bin/graceshim" --grace 3x true >"$T/out" 2>"$T/err"
rc=$?
check "... and the graceshim-check beside it" eval '[ "$rc" = 2 ] && has_err "option --grace"'

# --- exec: the command replaces the launcher ------------------------------------------
wait_for() { # FILE: up to 10 s
	n=0
	while [ ! -s "$1" ] && [ "$n" -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ -s "$1" ]
}
"$SH" "$LAUNCHER" sh -c 'echo $$ >"$1"' sh "$T/pid" >/dev/null 2>&1 &
launcher_pid=$!
wait_for "$T/pid"
wait "$launcher_pid"
check "exec: the command has the launcher's pid" [ "$(cat "$T/pid" 2>/dev/null)" = "$launcher_pid" ]

# SIGINT is ignored in background jobs of a non-interactive shell, so TERM.
rm -f "$T/ready" "$T/got"
"$SH" "$LAUNCHER" sh -c 'trap "echo TERM >\"$2\"; exit 0" TERM; echo >"$1"
	i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done' sh "$T/ready" "$T/got" \
	>/dev/null 2>&1 &
launcher_pid=$!
if wait_for "$T/ready"; then
	kill -TERM "$launcher_pid" 2>/dev/null
	wait_for "$T/got"
fi
kill -KILL "$launcher_pid" 2>/dev/null
wait "$launcher_pid" 2>/dev/null
check "a signal sent to the launcher's pid reaches the command" [ "$(cat "$T/got" 2>/dev/null)" = TERM ]

# --- programs LD_PRELOAD cannot reach ---------------------------------------------------
printf 'int main(void) { return 3; }\n' >"$T/static.c"
if cc -static -o "$T/static" "$T/static.c" 2>/dev/null; then
	# graceshim-outside is beside the library: outside mode, said at info.
	run -v "$T/static"
	check "static binary: runs under outside mode, said in one line at info, its status kept" \
		eval '[ "$rc" = 3 ] && no_warning && has_err "INFO .*outside mode: $T/static runs as pid [0-9]* (statically linked"'
	check "static binary: outside mode stamps its lines as the library does (UTC offset)" \
		has_err '^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]\{8\}\.[0-9]\{6\}[+-][0-9][0-9]:[0-9][0-9] INFO graceshim\['
	run "$T/static"
	check "static binary: outside mode says nothing at the default level" eval '[ "$rc" = 3 ] && [ ! -s "$T/err" ]'

	# Without readelf (and file) the launcher reads the program headers with od.
	mkdir -p "$T/noreadelf"
	IFS=:
	for dir in $PATH; do
		[ -d "$dir" ] || continue
		for tool in "$dir"/*; do
			name=${tool##*/}
			case $name in readelf | *-readelf | file) continue ;; esac
			[ -x "$tool" ] && [ ! -e "$T/noreadelf/$name" ] && ln -s "$tool" "$T/noreadelf/$name"
		done
	done
	unset IFS
	run_env PATH="$T/noreadelf" -v "$T/static"
	check "static binary detected without readelf (od)" \
		eval '[ "$rc" = 3 ] && has_err "statically linked: LD_PRELOAD cannot reach it"'
	run_env PATH="$T/noreadelf" "$(command -v env)"
	check "dynamic binary: no warning without readelf (od)" eval '[ "$rc" = 0 ] && no_warning'
else
	skip "static binary: runs under outside mode, said in one line at info, its status kept" \
		"cc -static failed (no static libc: libc6-dev)"
fi

run env
check "dynamic binary: no warning" eval '[ "$rc" = 0 ] && no_warning'
# A dynamically linked Go program (cgo, as Debian builds them) loads the
# shim and still sees nothing: its runtime makes its socket calls itself.
# No Go toolchain here: a dynamic binary carrying Go's build ID note.
cp "$(command -v env)" "$T/gosrv"
printf '\004\000\000\000Go build ID: "abc/def"\000' >>"$T/gosrv"
run -v "$T/gosrv"
check "Go binary (dynamic): runs under outside mode, said at info" \
	eval '[ "$rc" = 0 ] && no_warning && has_err "outside mode: $T/gosrv runs as pid [0-9]* (a Go program"'
printf '#!/bin/sh\nexit 0\n' >"$T/script"
chmod +x "$T/script"
run "$T/script"
check "script with a shebang: no warning" eval '[ "$rc" = 0 ] && no_warning'

# env, not true: `command -v true` answers with the shell's builtin.
cp "$(command -v env)" "$T/setuid-env"
chmod u+s "$T/setuid-env"
run "$T/setuid-env"
check "setuid binary: warning on stderr, and it still runs" \
	eval '[ "$rc" = 0 ] && has_err "graceshim: warning: $T/setuid-env is setuid" && has_err "ignores LD_PRELOAD"'
cp "$(command -v env)" "$T/setgid-env"
chmod g+s "$T/setgid-env"
run "$T/setgid-env"
check "setgid binary: warning on stderr" eval '[ "$rc" = 0 ] && has_err "ignores LD_PRELOAD"'

# --- make install, make uninstall ---------------------------------------------------------
# Into a DESTDIR where PREFIX/bin exists already (empty): uninstall removes
# the files and the directories install created, and leaves bin/ alone.
if command -v make >/dev/null 2>&1; then
	D=$T/dest
	mkdir -p "$D/opt/gs/bin"
	make -s -C "$ROOT" install DESTDIR="$D" PREFIX=/opt/gs >"$T/out" 2>"$T/err"
	check "make install: the launcher, the library, the checker and the man page" \
		eval '[ -x "$D/opt/gs/bin/graceshim" ] && [ -f "$D/opt/gs/lib/graceshim/libgraceshim.so" ] &&
			[ -x "$D/opt/gs/lib/graceshim/graceshim-check" ] && [ -f "$D/opt/gs/share/man/man1/graceshim.1" ]'
	$BOUND "$SH" "$D/opt/gs/bin/graceshim" sh -c 'printf "%s\n" "$LD_PRELOAD"' >"$T/out" 2>"$T/err"
	check "the installed launcher finds the installed library" preload_is "$D/opt/gs/lib/graceshim/libgraceshim.so"
	make -s -C "$ROOT" install DESTDIR="$D" PREFIX=/opt/gs >/dev/null 2>&1 # twice: still knows what it created
	make -s -C "$ROOT" uninstall DESTDIR="$D" PREFIX=/opt/gs >"$T/out" 2>"$T/err"
	check "make uninstall: removes the directories install created, keeps bin/ (there before)" \
		eval '[ "$(cd "$D" && find . | sort | tr "\n" " ")" = ". ./opt ./opt/gs ./opt/gs/bin " ]'
	mkdir -p "$D/x"
	make -s -C "$ROOT" install DESTDIR="$D" PREFIX=/x/y >/dev/null 2>&1
	touch "$D/x/y/share/keep"
	make -s -C "$ROOT" uninstall DESTDIR="$D" PREFIX=/x/y >/dev/null 2>&1
	check "make uninstall: a created directory that is not empty stays" \
		eval '[ -f "$D/x/y/share/keep" ] && [ ! -e "$D/x/y/lib" ] && [ ! -e "$D/x/y/bin" ]'
else
	skip "make install, make uninstall" "make is not installed"
fi

echo "launcher: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
