#!/usr/bin/env bash
# One integration scenario of the aarch64 build, under qemu-aarch64 (user
# mode): the example server (hyperlike, built for aarch64) with a Chrome-like
# client (one request on a kept-alive connection, one never-used spare), then
# SIGINT.  Without the shim it is still running after HANG_S; with it, it
# exits within PROMPT_S.  Prints "cross: N passed, N failed".
# Usage: tests/cross/smoke.sh BUILD_DIR   (holds libgraceshim.so, fixtures/hyperlike)
set -uo pipefail
b=${1:?build dir}
sysroot=${CROSS_SYSROOT:-/usr/aarch64-linux-gnu}
hang_s=3 prompt_s=3
pass=0 fail=0
tmp=$(mktemp -d)
spid=""
cleanup() { [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

run() { # $1: label, $2: "shim" or "", $3: expectation (exit|hang)
	local env=()
	[ -n "$2" ] && env=(-E "LD_PRELOAD=$b/libgraceshim.so")
	qemu-aarch64 -L "$sysroot" "${env[@]}" "$b/fixtures/hyperlike" >"$tmp/out" 2>"$tmp/err" &
	spid=$!
	local port="" i
	for i in $(seq 100); do
		port=$(awk '/^PORT/{print $2}' "$tmp/out")
		[ -n "$port" ] && break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		echo "cross: $1: the server did not start"; cat "$tmp/err"
		fail=$((fail + 1)); kill -KILL "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; spid=""; return
	fi
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&3
	timeout 5 head -c 1 <&3 >/dev/null
	exec 4<>"/dev/tcp/127.0.0.1/$port" # the never-used spare
	sleep 0.5
	local t0=$SECONDS limit=$hang_s
	[ "$3" = exit ] && limit=$prompt_s
	kill -INT "$spid"
	local exited=0
	for i in $(seq $((limit * 20))); do
		kill -0 "$spid" 2>/dev/null || { exited=1; break; }
		sleep 0.05
	done
	exec 3>&- 4>&-
	kill -KILL "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	spid=""
	local got=hang
	[ $exited = 1 ] && got=exit
	if [ "$got" = "$3" ]; then
		pass=$((pass + 1)); echo "cross: $1: ok ($got)"
	else
		fail=$((fail + 1)); echo "cross: $1: FAIL (expected $3, got $got)"; cat "$tmp/err"
	fi
}

command -v qemu-aarch64 >/dev/null || { echo "cross: qemu-aarch64 not found (apt-get install qemu-user)"; exit 2; }
run "without the shim" "" hang
run "with the shim" shim exit
echo "cross: $pass passed, $fail failed"
[ $fail = 0 ]
