#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Tests of scripts/try-browser and scripts/try-clients against the bundled
# example server build/fixtures/hyperlike (which shuts down like hyper 0.14):
# the tables they print, their exit statuses, option parsing.
# Needs `make` (the library and the fixture; built here when missing),
# Chromium, curl, ss and python3 (scripts/build-e2e installs them).
# Prints one line per check ("ok", "FAIL" or "SKIP" with the reason), then
# "harness: N passed, M failed, K skipped"; exits 1 when a check failed.  Every wait is bounded (the scripts bound theirs; each run
# here is also under `timeout`).  Runs in 35 to 50 s on the 2-core machine
# with two CPU hogs.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
tb=$top/scripts/try-browser
tc=$top/scripts/try-clients
build=$top/build
wait_s=2 # --wait for every run: a hang is "still running after 2 s"

pass=0 fail=0 skipped=0
skip() { skipped=$((skipped + 1)); printf 'SKIP %s: %s\n' "$1" "$2"; }
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() { # description, details
	fail=$((fail + 1))
	printf 'FAIL %s\n' "$1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/       | /'
}
check() { # description, details-on-failure, command...
	local d=$1 det=$2
	shift 2
	if "$@"; then ok "$d"; else bad "$d" "$det"; fi
}

if [ ! -x "$build/fixtures/hyperlike" ] || [ ! -f "$build/libgraceshim.so" ]; then
	make -s -C "$top" all build/fixtures/hyperlike >&2 || true
fi
for f in "$build/fixtures/hyperlike" "$build/libgraceshim.so"; do
	[ -e "$f" ] || { echo "harness: $f is missing (run make)" >&2; echo "harness: 0 passed, 1 failed, 0 skipped"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/graceshim-harness.XXXXXX")
# The server under a name of its own, and the scripts' directories (so
# Chromium's profiles) under this run's, so that a leftover process of this
# run can be recognised (and only those: other runs share the machine).
server=$tmp/hyperlike-harness-$$
ln -s "$build/fixtures/hyperlike" "$server"
export TMPDIR=$tmp
left_of() { # "server" or "chromium": pid and command of what this run left
	case $1 in
	server) ps -e -o pid=,args= | grep -F -- "hyperlike-harness-$$" ;;
	chromium) ps -e -o pid=,args= | grep -F -- "--user-data-dir=$tmp/" ;;
	esac | grep -v -E 'defunct|grep'
}
# On every way out (a script killed by its timeout leaves what it started):
# what this run left, by pid, then its directory.
end() {
	local pids
	pids=$({ left_of server; left_of chromium; } | awk '{ print $1 }')
	[ -z "$pids" ] || kill -KILL $pids 2>/dev/null
	rm -rf "$tmp"
}
trap end EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export GRACESHIM_LIB=$build/libgraceshim.so

# run NAME TIMEOUT SCRIPT ARGS...: output in $tmp/NAME.out (stdout) and .err;
# sets rc.
run() {
	local name=$1 t=$2
	shift 2
	timeout -k 5 "$t" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
}

# row FILE PATTERN: the first line of FILE matching the extended regex PATTERN.
row() { grep -E -m 1 -- "$2" "$1"; }
has() { grep -q -E -- "$2" <<<"$1"; }
# unused_of LINE: the "unused" column of a table row (the number before
# "released" and the result).
unused_of() {
	[[ $1 =~ ([0-9]+)\ +([0-9]+)\ +(-|[0-9]+|\?|not\ loaded)\ +(still\ running|exited) ]] &&
		echo "${BASH_REMATCH[2]}"
}
dump() { cat "$tmp/$1.out" "$tmp/$1.err"; }

# --- try-clients, every client ------------------------------------------------------
run clients 60 "$tc" --wait "$wait_s" -- "$server"
check "try-clients: exit status 0 (got $rc)" "$(dump clients)" [ "$rc" = 0 ]
r=$(row "$tmp/clients.out" '^  chrome +without ')
check "try-clients: chrome without graceshim: still running" "$(dump clients)" has "$r" "still running after $wait_s s"
u=$(unused_of "$r")
check "try-clients: chrome without graceshim: unused >= 1 (got ${u:-none})" "$r" [ "${u:-0}" -ge 1 ]
r=$(row "$tmp/clients.out" '^  chrome +with ')
check "try-clients: chrome with graceshim: exited" "$(dump clients)" has "$r" 'exited after [0-9.]+ s \(status 0\)'
# The preconnect, and the kept-alive connection too when its 1 s of quiet
# (GRACESHIM_IDLE_QUIET) ended before the signal: how long the script takes
# from the answer to the signal is the machine's load, not the shim's.
check "try-clients: chrome with graceshim: released 1 or 2" "$r" has "$r" ' [12] +exited'
for c in curl safari keepalive; do
	for m in without with; do
		r=$(row "$tmp/clients.out" "^  $c +$m ")
		check "try-clients: $c $m graceshim: exited, responses 200" "$(dump clients)" \
			has "$r" "^  $c +$m +200 200 .*exited after [0-9.]+ s \(status 0\)"
	done
done
check "try-clients: one row per client and mode (8)" "$(dump clients)" \
	[ "$(grep -c -E '^  (chrome|safari|curl|keepalive) +(without|with) ' "$tmp/clients.out")" = 8 ]
check "try-clients: ends with a verdict naming chrome as the difference" "$(dump clients)" \
	grep -q "^  verdict: graceshim made the difference for chrome: without it the server was still running after $wait_s s\$" "$tmp/clients.out"

# --- try-browser ------------------------------------------------------------------------
run browser 60 "$tb" --wait "$wait_s" -- "$server"
check "try-browser: exit status 0 (got $rc)" "$(dump browser)" [ "$rc" = 0 ]
r=$(row "$tmp/browser.out" '^  without ')
check "try-browser: without graceshim: page loaded" "$(dump browser)" has "$r" 'loaded, HTTP 200'
check "try-browser: without graceshim: still running" "$(dump browser)" has "$r" "still running after $wait_s s"
u=$(unused_of "$r")
check "try-browser: without graceshim: unused >= 1 (got ${u:-none})" "$r" [ "${u:-0}" -ge 1 ]
r=$(row "$tmp/browser.out" '^  with ')
check "try-browser: with graceshim: exited" "$(dump browser)" has "$r" 'exited after [0-9.]+ s \(status 0\)'
u=$(unused_of "$r")
check "try-browser: with graceshim: unused >= 1 (got ${u:-none})" "$r" [ "${u:-0}" -ge 1 ]
check "try-browser: verdict names graceshim as the difference" "$(dump browser)" \
	grep -q 'verdict: graceshim made the difference' "$tmp/browser.out"

# --- options ----------------------------------------------------------------------------
# --port (the server does not need to print PORT), --signal TERM, --url.
# A port chosen ahead: outside the kernel's range for outgoing ports.
port=$("$top/tests/lib/free-port") || port=''
run port 30 "$tc" --wait "$wait_s" --port "$port" --signal term --url /x --clients chrome,curl -- "$server" --port "$port"
check "try-clients --port $port --signal term: exit status 0 (got $rc)" "$(dump port)" [ "$rc" = 0 ]
check "try-clients --port: chrome without: still running after SIGTERM" "$(dump port)" \
	has "$(row "$tmp/port.out" '^  chrome +without ')" "still running"
check "try-clients --port: chrome with: exited" "$(dump port)" \
	has "$(row "$tmp/port.out" '^  chrome +with ')" "exited after"
check "try-clients --port: the header names SIGTERM and the port" "$(dump port)" \
	grep -q "port $port (--port).*SIGTERM" "$tmp/port.out"
check "try-clients --clients chrome,curl: explains only chrome and curl" "$(dump port)" \
	eval 'grep -q "^  chrome: " "$tmp/port.out" && grep -q "^  curl: " "$tmp/port.out" &&
		! grep -q -E "^  (safari|keepalive)" "$tmp/port.out"'
check "try-clients --clients chrome,curl: verdict" "$(dump port)" \
	grep -q "^  verdict: graceshim made the difference for chrome:" "$tmp/port.out"
run bport 60 "$tb" --wait "$wait_s" --port "$port" -- "$server" --port "$port"
check "try-browser --port $port: prints the URL it loads" "$(dump bport)" \
	eval '[ "$rc" = 0 ] && grep -q "loads http://127.0.0.1:$port/\$" "$tmp/bport.out"'

# --host ::1 (the fixture listens on ::1 with --ipv6).
if [ -n "$(ip -6 addr show dev lo 2>/dev/null | grep '::1')" ]; then
	run v6 30 "$tc" --wait "$wait_s" --host ::1 --clients chrome -- "$server" --ipv6
	check "try-clients --host ::1: chrome still running without, exited with" "$(dump v6)" \
		eval '[ "$rc" = 0 ] && has "$(row "$tmp/v6.out" "^  chrome +without ")" "still running" &&
			has "$(row "$tmp/v6.out" "^  chrome +with ")" "exited after"'
else
	skip "try-clients --host ::1" "no ::1 on lo (IPv6 disabled on this machine)"
fi

# The server command is run as given: arguments with spaces and quotes intact.
wrapper=$tmp/wrapper
cat >"$wrapper" <<'EOF'
#!/bin/sh
out=$1 server=$2
shift 2
printf '[%s]\n' "$@" >>"$out"
exec "$server"
EOF
chmod +x "$wrapper"
run quote 30 "$tc" --wait 1 --clients curl -- "$wrapper" "$tmp/args" "$server" 'a b' 'c"d' "e'f" '$HOME' '*'
# shellcheck disable=SC2034 # used in the eval below
want=$(printf '[%s]\n' 'a b' 'c"d' "e'f" '$HOME' '*' 'a b' 'c"d' "e'f" '$HOME' '*')
check "try-clients: the server's arguments arrive unchanged (both runs)" \
	"$(cat "$tmp/args" 2>/dev/null; dump quote)" eval '[ "$rc" = 0 ] && [ "$(cat "$tmp/args")" = "$want" ]'

# --- exit statuses ------------------------------------------------------------------------
for s in "$tb" "$tc"; do
	n=$(basename "$s")
	run usage 10 "$s" --no-such-option -- "$server"
	check "$n: unknown option: exit 2 with usage (got $rc)" "$(dump usage)" \
		eval '[ "$rc" = 2 ] && grep -q "^usage: $n" "$tmp/usage.err" && [ ! -s "$tmp/usage.out" ]'
	run usage 10 "$s" --wait 2
	check "$n: no server command: exit 2 (got $rc)" "$(dump usage)" [ "$rc" = 2 ]
	run usage 10 "$s" --host 192.0.2.1 -- "$server"
	check "$n: --host other than loopback: exit 2 (got $rc)" "$(dump usage)" [ "$rc" = 2 ]
	run usage 10 "$s" --wait soon -- "$server"
	check "$n: --wait soon: exit 2 (got $rc)" "$(dump usage)" [ "$rc" = 2 ]
	run usage 10 "$s" --signal NOPE -- "$server"
	check "$n: --signal NOPE: exit 2 (got $rc)" "$(dump usage)" [ "$rc" = 2 ]
	run help 10 "$s" --help
	check "$n: --help: exit 0, documents --port and PORT <n>" "$(dump help)" \
		eval '[ "$rc" = 0 ] && grep -q -- "--port N" "$tmp/help.out" && grep -q "PORT <n>" "$tmp/help.out"'
	run nostart 20 "$s" -- false
	check "$n: a server that exits at once: exit 1 (got $rc)" "$(dump nostart)" \
		eval '[ "$rc" = 1 ] && grep -q "exited (status 1) before it listened" "$tmp/nostart.err"'
	run noport 20 env TRY_START_TIMEOUT=1 "$s" -- sleep 30
	check "$n: no --port and no 'PORT <n>' line: exit 1 (got $rc)" "$(dump noport)" \
		eval '[ "$rc" = 1 ] && grep -q "PORT <n>" "$tmp/noport.err"'
done
run usage 10 "$tc" --clients chrome,firefox -- "$server"
check "try-clients: unknown client: exit 2 (got $rc)" "$(dump usage)" [ "$rc" = 2 ]
run usage 10 "$tb" --clients chrome -- "$server"
check "try-browser: --clients is not its option: exit 2 (got $rc)" "$(dump usage)" [ "$rc" = 2 ]

# --- nothing left behind --------------------------------------------------------------------
sleep 0.5
left=$(left_of server)
check "no server process of this run is left" "$left" [ -z "$left" ]
left=$(left_of chromium)
check "no Chromium of try-browser is left" "$left" [ -z "$left" ]

echo "harness: $pass passed, $fail failed, $skipped skipped"
[ "$fail" = 0 ]
