#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Shared by scripts/try-browser and scripts/try-clients (sourced, not run):
# starting a server in its own session, finding its port, signalling its
# process group and timing the exit, counting its connections with ss.
# Uses the caller's globals (PROG, USAGE, tmp, spid, opt_*, ...).
# shellcheck shell=bash disable=SC2154

# Connections to the server's port right now: "<established> <never got a byte>".
# `ss -i` prints bytes_received only when it is not 0.
count_conns() {
	ss -Htni state established "( sport = :$port )" 2>/dev/null | awk '
		function done_conn() { if (open && !got) unused++; open = 0 }
		/^[[:space:]]/ { if ($0 ~ /bytes_received:[1-9]/) got = 1; next }
		NF > 0 { done_conn(); n++; open = 1; got = 0 }
		END { done_conn(); printf "%d %d\n", n, unused }'
}

# --- what is needed ------------------------------------------------------------
die() { # message; exit 1 (could not run)
	printf '%s: %s\n' "$PROG" "$1" >&2
	exit 1
}

# How the server treats the signal now: caught, ignored or default.
disposition() {
	local cgt ign bit
	cgt=$(awk '/^SigCgt:/ { print $2 }' "/proc/$spid/status" 2>/dev/null)
	ign=$(awk '/^SigIgn:/ { print $2 }' "/proc/$spid/status" 2>/dev/null)
	[ -n "$cgt" ] || { echo unknown; return; }
	bit=$((1 << (signum - 1)))
	if (((16#$cgt) & bit)); then echo caught
	elif (((16#$ign) & bit)); then echo ignored
	else echo default
	fi
}

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }

# Is libgraceshim.so mapped in a process of the server's group?
shim_loaded() {
	local p
	for p in $(ps -e -o pid=,pgid= | awk -v g="$spid" '$2 == g { print $1 }'); do
		grep -q libgraceshim "/proc/$p/maps" 2>/dev/null && return 0
	done
	return 1
}

# Sends the signal, waits up to --wait; sets result (text) and hung (0/1).
signal_and_time() {
	local t0 t1 rc left
	hung=1
	t0=$(now_us)
	kill -s "$sig" -- "-$spid" 2>/dev/null || kill -s "$sig" "$spid" 2>/dev/null
	while [ $(($(now_us) - t0)) -lt "$wait_us" ]; do
		if ! kill -0 "$spid" 2>/dev/null; then
			t1=$(now_us)
			hung=0
			break
		fi
		nap 0.002
	done
	if [ $hung = 1 ]; then
		kill -KILL -- "-$spid" 2>/dev/null || kill -KILL "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		result="still running after $(bound "$wait_us") s (killed)"
	else
		wait "$spid" 2>/dev/null
		rc=$?
		result="exited after $(secs $((t1 - t0))) s"
		if [ "$rc" -gt 128 ] && [ "$rc" -le 192 ]; then
			result+=" (killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))))"
		else
			result+=" (status $rc)"
		fi
	fi
	left=$(kill_group "$spid") # what the server left behind (after an exit)
	[ "$left" = 0 ] || [ $hung = 1 ] || result+="; $left more process(es) of its group killed"
	spid=''
}

start_failed() {
	printf '%s: %s: %s\n' "$PROG" "$mode" "$1" >&2
	local f
	for f in out err; do
		[ -s "$tmp/$mode.$f" ] || continue
		printf '%s: the last lines of its std%s:\n' "$PROG" "$f" >&2
		tail -n 10 "$tmp/$mode.$f" | sed 's/^/    /' >&2
	done
	exit 1
}

# start_server without|with: starts it, waits (bounded) until it listens;
# sets spid, port, log.  Exits 1 when it does not start.
start_server() {
	local mode=$1 out=$tmp/$1.out err=$tmp/$1.err
	log=$tmp/$1.shim.log
	: >"$out"; : >"$err"; : >"$log"
	if [ -n "$opt_port" ] && port_listening "$opt_port"; then
		die "port $opt_port is in use before the server was started (another process listens on it)"
	fi
	local -a cmd=("${server_cmd[@]}")
	[ "$mode" = with ] && cmd=("$launcher" -- "${server_cmd[@]}")
	(
		# A background job of a script ignores SIGINT and SIGQUIT; the
		# server must get the dispositions a terminal would give it.
		trap - INT QUIT TERM PIPE
		if [ "$mode" = with ]; then
			export GRACESHIM_LOG=${GRACESHIM_LOG:-info} GRACESHIM_LOG_FILE=${GRACESHIM_LOG_FILE:-$log}
		elif [ -n "$plain_preload" ]; then
			export LD_PRELOAD=$plain_preload
		else
			unset LD_PRELOAD
		fi
		# Not a process group leader here, so setsid runs the command in
		# place: its pid is $! and its own process group.
		exec setsid "${cmd[@]}"
	) </dev/null >"$out" 2>"$err" &
	spid=$!
	port=''
	local t0 limit
	t0=$(now_us) limit=$(($start_s * 1000000))
	while [ $(($(now_us) - t0)) -lt "$limit" ]; do
		if ! kill -0 "$spid" 2>/dev/null; then
			wait "$spid"
			local rc=$?
			spid=''
			start_failed "the server exited (status $rc) before it listened"
		fi
		if [ -n "$opt_port" ]; then
			port_listening "$opt_port" && { port=$opt_port; return 0; }
		else
			port=$(awk '$1 == "PORT" && $2 ~ /^[0-9]+$/ { print $2; exit }' "$out")
			[ -n "$port" ] && return 0
		fi
		sleep 0.05
	done
	if [ -n "$opt_port" ]; then
		start_failed "nothing listens on port $opt_port after $start_s s"
	else
		start_failed "the server printed no line 'PORT <n>' in $start_s s (give its port with --port N)"
	fi
}

usage_error() {
	printf '%s: %s\n%s\n' "$PROG" "$1" "$USAGE" >&2
	exit 2
}

bound() { local s; s=$(secs "$1"); s=${s%.000}; echo "$s"; } # us -> "5" or "2.500"

# Kills what is left of process group $1 (this script created it with setsid),
# if anything; prints how many live processes there were.
kill_group() {
	local n
	n=$(ps -e -o pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { n++ } END { print n + 0 }')
	[ "$n" -gt 0 ] && kill -KILL -- "-$1" 2>/dev/null
	echo "$n"
}

# Not `read -t` on a fifo: bash 5.2 can crash running a trap (Ctrl+C) that
# interrupted a read with a timeout.
nap() { sleep "$1"; }

port_listening() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

secs() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); } # us -> "s.mmm"
