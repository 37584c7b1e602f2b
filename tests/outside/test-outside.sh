#!/bin/bash
# SPDX-License-Identifier: MIT
# Outside mode (graceshim-outside, through the launcher): servers LD_PRELOAD
# cannot reach, each with a never-used connection open at its graceful stop.
#   - a static Go net/http server (built here from source, CGO_ENABLED=0),
#     a static C server (hyperlike, gcc -static), an io_uring server
#     (liburing): without, Go waits ~5 s and the others hang; with, prompt;
#   - --pid on a running hyperlike and on nginx (nginx -s quit);
#   - a request arriving during the drain is answered;
#   - --pid without ptrace permission (nobody against root's server): one
#     line naming the pid, exit 2;
#   - signals forwarded exactly: USR1, HUP, WINCH reach the child; a child
#     that exits 3 on SIGTERM makes the launcher exit 3; a child killed by
#     SIGKILL makes the launcher die of SIGKILL;
#   - PID 1 of `unshare --pid --fork`: orphans reaped, release and exit;
#   - pidfd_getfd refused by seccomp (EPERM) or missing (ENOSYS): one line,
#     exit 2, the command never started.
# Usage: tests/outside/test-outside.sh   (make test-outside; needs root for
# the permission and PID 1 cases, which are skipped otherwise)
# Prints one line per case and "outside: N passed, M failed"; the signal ->
# exit time of each case goes to $B/outside/times.

set -u
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
top=$(CDPATH='' cd -- "$here/../.." && pwd)
B=${GRACESHIM_BUILD:-$top/build}
launcher=$top/scripts/graceshim
out=$B/outside
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/gs-outside.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

PROMPT_MS=3000 # generous: a loaded 2-core machine; the shim's own pass is ~1 ms
HANG_MS=3000   # "hangs": still running this long after the stop
pass=0 fail=0 skip=0
# signal -> exit per case, for the record: one "name ms" (or "hung") a line
times_file=$out/times
: >"$times_file"
record_time() { echo "$1" >>"$times_file"; }
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$1"; }
skipped() { skip=$((skip + 1)); printf 'SKIP %s\n' "$1"; } # check-all lists the reasons

# --- build -------------------------------------------------------------------
cc=${CC:-cc}
build() { # name, then the compiler's arguments
	local name=$1
	shift
	"$cc" -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$out/$name" "$@" 2>"$out/$name.log" ||
		{ echo "outside: cannot build $name:"; cat "$out/$name.log"; exit 1; }
}
build sigrec "$here/sigrec.c"
build runstatus "$here/runstatus.c"
build seccomp_deny "$here/seccomp_deny.c"
build uring_server "$here/uring_server.c" -luring
# static glibc warns about getaddrinfo in a static binary (not used here)
"$cc" -O2 -std=c11 -D_GNU_SOURCE -static -pthread -o "$out/hyperlike-static" \
	"$top/tests/fixtures/hyperlike.c" 2>"$out/hyperlike-static.log" ||
	{ echo "outside: cannot build a static hyperlike:"; cat "$out/hyperlike-static.log"; exit 1; }
if [ ! -x "$out/goserver" ] || [ "$here/goserver.go" -nt "$out/goserver" ]; then
	(cd "$out" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on GOCACHE="$out/gocache" \
		GOPATH="$out/gopath" go build -o "$out/goserver" "$here/goserver.go") >"$out/goserver.log" 2>&1 ||
		{ echo "outside: cannot build the Go server:"; cat "$out/goserver.log"; exit 1; }
fi
[ -x "$B/fixtures/hyperlike" ] || { echo "outside: $B/fixtures/hyperlike missing (make $B/fixtures/hyperlike)"; exit 1; }
[ -x "$B/graceshim-outside" ] || { echo "outside: $B/graceshim-outside missing (make)"; exit 1; }

# --- helpers -----------------------------------------------------------------
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Alive and not a zombie.
alive() {
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$s" ] && [ "$s" != Z ]
}
# Until pid is gone, at most $2 ms; prints the time it took or "hung".
gone_ms() {
	local t0 t
	t0=$(now_ms)
	while alive "$1"; do
		t=$(now_ms)
		[ $((t - t0)) -lt "$2" ] || { echo hung; return 1; }
		sleep 0.01
	done
	echo $(($(now_ms) - $3))
}
# The port a server printed ("PORT n") in file $1, waiting up to 10 s.
port_of() {
	for _ in $(seq 200); do
		grep -q '^PORT ' "$1" 2>/dev/null && { awk '/^PORT /{print $2; exit}' "$1"; return 0; }
		sleep 0.05
	done
	return 1
}
# The child of a launcher that stays the parent.
child_of() {
	local c
	for _ in $(seq 200); do
		c=$(cat /proc/"$1"/task/*/children 2>/dev/null | awk '{print $1; exit}')
		[ -n "$c" ] && { echo "$c"; return 0; }
		sleep 0.02
	done
	return 1
}
get() { # port path: one HTTP/1.0 request, the status line
	exec 5<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: x\r\n\r\n' "$2" >&5
	timeout 5 head -n1 <&5 | tr -d '\r'
	exec 5<&-
}

# run_case NAME MODE EXPECT SIGNAL CMD...
#   MODE: none (the command alone) or a launcher flag list ("-" for none)
#   SIGNAL: a signal's name, or fn:F to stop the server with F (no signal)
#   EXPECT: prompt, hang, or go (exits between 4 and 9 s: Go's 5 s rule)
# Starts the server, opens one never-used connection, waits 300 ms, sends
# the signal to the process started, times its end.
run_case() {
	local name=$1 mode=$2 expect=$3 sig=$4
	shift 4
	local log=$work/$name.log
	if [ "$mode" = none ]; then
		"$@" >"$log" 2>&1 &
	elif [ "$mode" = - ]; then
		GRACESHIM_LOG=info "$launcher" -- "$@" >"$log" 2>&1 &
	else
		# shellcheck disable=SC2086 # flags split on purpose
		GRACESHIM_LOG=info "$launcher" $mode -- "$@" >"$log" 2>&1 &
	fi
	local pid=$!
	pids+=("$pid")
	local port
	port=$(port_of "$log") || { bad "$name: no PORT line"; cat "$log"; return; }
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	local tc
	tc=$(now_ms) # the connection is at most this old
	sleep 0.3
	local t0 ms limit
	t0=$(now_ms)
	case $sig in
	fn:*) "${sig#fn:}" ;;
	*) kill -"$sig" "$pid" ;;
	esac
	case $expect in
	prompt) limit=$PROMPT_MS ;;
	hang) limit=$HANG_MS ;;
	go) limit=9000 ;;
	esac
	ms=$(gone_ms "$pid" "$limit" "$t0")
	exec 3<&-
	case $expect:$ms in
	hang:hung) ok "$name: still waiting ${HANG_MS} ms after SIG$sig (hangs)"; record_time "$name hung"
		kill -KILL "$pid" 2>/dev/null ;;
	hang:*) bad "$name: exited after $ms ms, expected it to hang"; cat "$log" ;;
	prompt:hung) bad "$name: still running after $PROMPT_MS ms"; cat "$log"; kill -KILL "$pid" 2>/dev/null ;;
	prompt:*) wait "$pid"; local st=$?
		if [ "$st" = 0 ] && grep -q 'outside mode:' "$log" && grep -q 'released 1 never-used' "$log"; then
			ok "$name: exit 0 after $ms ms, the connection released"; record_time "$name $ms"
		else
			bad "$name: status $st after $ms ms"; cat "$log"
		fi ;;
	go:hung) bad "$name: still running after 9 s"; kill -KILL "$pid" 2>/dev/null ;;
	# Go closes a never-used connection once it is 5 s old, not before
	go:*) local age=$(($(now_ms) - tc))
		if [ "$age" -ge 4900 ]; then ok "$name: Go's own rule: $ms ms, until the connection was $age ms old"
			record_time "$name $ms"
		else bad "$name: exited $ms ms after the signal, the connection only $age ms old (expected Go to wait until 5 s)"; fi ;;
	esac
	wait "$pid" 2>/dev/null
}

# --- servers LD_PRELOAD cannot reach ---------------------------------------------
run_case go-without none go TERM "$out/goserver"
run_case go-outside - prompt TERM "$out/goserver"
run_case static-c-without none hang TERM "$out/hyperlike-static"
run_case static-c-outside - prompt TERM "$out/hyperlike-static"
run_case uring-without none hang TERM "$out/uring_server"
run_case uring-outside --outside prompt TERM "$out/uring_server"
run_case go-outside-int - prompt INT "$out/goserver"

# At info the launcher says in one line that it runs outside mode (the
# cases above grep it); at the default level (warn) it says nothing.
env -u GRACESHIM_LOG "$launcher" -- "$out/hyperlike-static" >"$work/quiet.out" 2>"$work/quiet.err" &
lp=$!
pids+=("$lp")
port_of "$work/quiet.out" >/dev/null
kill -TERM "$lp"
wait "$lp"
st=$?
if [ "$st" = 0 ] && ! grep -q graceshim "$work/quiet.err"; then
	ok "default log level: outside mode runs without a word"
else
	bad "default log level: status $st, stderr: $(cat "$work/quiet.err")"
fi

# --- --pid on a running server ------------------------------------------------
pid_case() { # name, expect, stop command (a function), server command...
	local name=$1 stopper=$2
	shift 2
	local log=$work/$name.log
	"$@" >"$log" 2>&1 &
	local spid=$!
	pids+=("$spid")
	local port
	port=$(port_of "$log") || { bad "$name: no PORT line"; cat "$log"; return; }
	GRACESHIM_LOG=info "$launcher" --pid "$spid" 2>"$work/$name.watch" &
	local wpid=$!
	pids+=("$wpid")
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	sleep 0.5
	local t0 ms
	t0=$(now_ms)
	"$stopper" "$spid"
	ms=$(gone_ms "$spid" "$PROMPT_MS" "$t0")
	exec 3<&-
	if [ "$ms" = hung ]; then
		bad "$name: server still running after $PROMPT_MS ms"
		cat "$work/$name.watch" "$log"
		kill -KILL "$spid"
	else
		local w
		w=$(gone_ms "$wpid" 3000 "$t0")
		wait "$wpid"
		local st=$?
		if [ "$w" != hung ] && [ "$st" = 0 ] && grep -q 'released 1 never-used' "$work/$name.watch"; then
			ok "$name: server gone $ms ms after its stop, watcher exit 0"
			record_time "$name $ms"
		else
			bad "$name: watcher $w status $st"
			cat "$work/$name.watch"
		fi
	fi
	wait "$spid" 2>/dev/null
}
term() { kill -TERM "$1"; }
pid_case pid-hyperlike term "$B/fixtures/hyperlike"

# A server that keeps one listener open to the end, as Caddy keeps its admin
# endpoint while its HTTP servers shut down: the process never closes all of
# its listeners while a preconnect holds it, but its HTTP port is listened on
# no more.  Stopped with a signal, and through the admin endpoint (Caddy's
# `caddy stop`: no signal at all), under --pid and under the launcher.
# Without the port rule each takes Go's 5 s.
# The stopper reads the ADMIN line from $log, the server's output: a local of
# run_case and pid_case, which call it.
admin_stop() { get "$(awk '$1 == "ADMIN" { print $2; exit }' "$log")" /stop >/dev/null; }
pid_case pid-go-admin term "$out/goserver" -admin
pid_case pid-go-admin-api admin_stop "$out/goserver" -admin
run_case go-outside-admin-api - prompt fn:admin_stop "$out/goserver" -admin

# Without the watcher the same server hangs (the case above proves something).
run_case pid-hyperlike-without none hang TERM "$B/fixtures/hyperlike"

# nginx: master and workers, stopped with its documented graceful stop.
if command -v nginx >/dev/null 2>&1; then
	# nginx cannot say which port it took: one below the ephemeral range
	# (a client's port there would clash) that no socket uses; another
	# suite may still take it first, so a failed start picks again.
	nginx_conf() {
		local low
		low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
		[ "${low:-0}" -gt 12000 ] || low=32768
		for _ in $(seq 50); do
			nport=$((10000 + RANDOM % (low - 10000)))
			[ -z "$(ss -Htan "sport = :$nport" 2>/dev/null)" ] && break
		done
		mkdir -p "$work/nginx/logs"
		cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
master_process on;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $work/nginx/tmp;
	proxy_temp_path $work/nginx/tmp;
	fastcgi_temp_path $work/nginx/tmp;
	uwsgi_temp_path $work/nginx/tmp;
	scgi_temp_path $work/nginx/tmp;
	server { listen 127.0.0.1:$nport; location / { return 200 "ok\n"; } }
}
EOF
	}
	nginx_run() { echo "PORT $nport"; exec nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"; }
	nginx_quit() { nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s quit 2>/dev/null; }
	# The master's pid is the one started (exec).
	nginx_case() {
		local name=$1 watch=$2
		local log=$work/$name.log spid up=''
		for _ in 1 2 3; do
			nginx_conf
			rm -f "$work/nginx/nginx.pid"
			(nginx_run) >"$log" 2>&1 &
			spid=$!
			pids+=("$spid")
			for _ in $(seq 100); do
				alive "$spid" || break
				[ -s "$work/nginx/nginx.pid" ] && get "$nport" / 2>/dev/null | grep -q 200 && { up=1; break; }
				sleep 0.05
			done
			[ -n "$up" ] && break
			kill -KILL "$spid" 2>/dev/null
			wait "$spid" 2>/dev/null
		done
		if [ -z "$up" ]; then
			bad "$name: nginx did not start"
			cat "$log"
			return
		fi
		# nginx's workers, to be killed by pid whatever happens
		local w
		for w in $(cat /proc/"$spid"/task/*/children 2>/dev/null); do pids+=("$w"); done
		if [ "$watch" = yes ]; then
			GRACESHIM_LOG=info "$launcher" --pid "$spid" 2>"$work/$name.watch" &
			pids+=("$!")
		fi
		exec 3<>"/dev/tcp/127.0.0.1/$nport"
		sleep 0.5
		local t0 ms
		t0=$(now_ms)
		nginx_quit
		if [ "$watch" = yes ]; then
			ms=$(gone_ms "$spid" "$PROMPT_MS" "$t0")
			if [ "$ms" != hung ] && grep -q 'released 1 never-used' "$work/$name.watch"; then
				ok "$name: nginx -s quit: gone after $ms ms"
				record_time "$name $ms"
			else
				bad "$name: $ms"
				cat "$work/$name.watch" "$log" "$work/nginx/logs/error.log"
			fi
		else
			ms=$(gone_ms "$spid" "$HANG_MS" "$t0")
			if [ "$ms" = hung ]; then
				ok "$name: nginx -s quit: still waiting after ${HANG_MS} ms (hangs)"
				record_time "$name hung"
			else
				bad "$name: nginx exited after $ms ms, expected it to wait"
			fi
		fi
		exec 3<&-
		if alive "$spid"; then
			kill -TERM "$spid" 2>/dev/null
			gone_ms "$spid" 3000 0 >/dev/null || kill -KILL "$spid"
		fi
		wait "$spid" 2>/dev/null
		rm -f "$work/nginx/nginx.pid"
	}
	nginx_case nginx-without no
	nginx_case nginx-pid yes
else
	skipped "nginx: not installed"
fi

# --- a request during the drain is answered ------------------------------------
# hyperlike keeps accepting 1.5 s after the signal: a request in that time
# is served while the never-used connection is released.
log=$work/drain.log
GRACESHIM_LOG=info "$launcher" -- "$out/hyperlike-static" --linger-accept-ms 1500 >"$log" 2>&1 &
lp=$!
pids+=("$lp")
port=$(port_of "$log")
exec 3<>"/dev/tcp/127.0.0.1/$port"
sleep 0.3
kill -TERM "$lp"
sleep 0.3
line=$(get "$port" /)
ms=$(gone_ms "$lp" 5000 "$(now_ms)")
exec 3<&-
if [ "$line" = "HTTP/1.1 200 OK" ] && [ "$ms" != hung ] && grep -q 'released 1 never-used' "$log"; then
	ok "drain: a request during the drain answered ($line), the never-used one released"
else
	bad "drain: answer \"$line\", end $ms"
	cat "$log"
fi
wait "$lp" 2>/dev/null

# --- signals forwarded exactly -------------------------------------------------
log=$work/sig.log
"$out/runstatus" "$work/sig.status" "$launcher" --outside -- "$out/sigrec" >"$log" 2>&1 &
rp=$!
pids+=("$rp")
lp=$(child_of "$rp")
pids+=("$lp")
for _ in $(seq 100); do grep -q READY "$log" && break; sleep 0.05; done
pids+=("$(awk '/^READY /{print $2; exit}' "$log")")
for s in USR1 HUP WINCH USR2 INT QUIT; do
	kill -"$s" "$lp"
	sleep 0.1
done
kill -TERM "$lp"
gone_ms "$rp" 5000 0 >/dev/null
got=$(grep -v READY "$log" | grep -v graceshim | tr '\n' ' ')
if [ "$got" = "USR1 HUP WINCH USR2 INT QUIT TERM " ] && [ "$(cat "$work/sig.status")" = "exit 3" ]; then
	ok "signals: each forwarded once, in order ($got); child exit 3 -> launcher exit 3"
else
	bad "signals: child saw \"$got\", launcher: $(cat "$work/sig.status" 2>/dev/null)"
	cat "$log"
fi

log=$work/kill.log
"$out/runstatus" "$work/kill.status" "$launcher" --outside -- "$out/sigrec" >"$log" 2>&1 &
rp=$!
pids+=("$rp")
for _ in $(seq 100); do grep -q READY "$log" && break; sleep 0.05; done
cp=$(awk '/^READY /{print $2; exit}' "$log")
pids+=("$(child_of "$rp")" "$cp")
kill -KILL "$cp"
gone_ms "$rp" 5000 0 >/dev/null
if [ "$(cat "$work/kill.status" 2>/dev/null)" = "signal 9" ]; then
	ok "signals: child killed by SIGKILL -> the launcher dies of SIGKILL"
else
	bad "signals: SIGKILL'd child, launcher: $(cat "$work/kill.status" 2>/dev/null)"
fi

# Bad flags: exit 2 before anything starts.
"$launcher" --pid abc >/dev/null 2>&1
a=$?
"$launcher" --pid 1 -- true >/dev/null 2>&1
b=$?
"$B/graceshim-outside" --bogus >/dev/null 2>&1
c=$?
nopid=4194000 # a valid pid number (at most pid_max) that no process has
while [ -e "/proc/$nopid" ] && [ "$nopid" -gt 4193000 ]; do nopid=$((nopid - 1)); done
"$launcher" --pid "$nopid" >/dev/null 2>"$work/nopid.err"
d=$?
if [ "$a$b$c$d" = 2222 ] && grep -q 'no such process' "$work/nopid.err"; then
	ok "bad flags and a pid that does not exist: exit 2"
else
	bad "bad flags: statuses $a $b $c $d; $(cat "$work/nopid.err")"
fi

# --- headless Chromium against the static Go server ------------------------------
# A real browser's preconnect (tests/e2e/chromium-preconnect: one used and
# one never-used connection), then the stop: Go waits ~5 s for the
# never-used one; outside mode releases it.
chromium_case() { # name, mode (none or -), expect (go or prompt)
	local name=$1 mode=$2 expect=$3 log=$work/$1.log
	if [ "$mode" = none ]; then
		"$out/goserver" >"$log" 2>&1 &
	else
		GRACESHIM_LOG=info "$launcher" -- "$out/goserver" >"$log" 2>&1 &
	fi
	local pid=$!
	pids+=("$pid")
	local port
	port=$(port_of "$log") || { bad "$name: no PORT line"; return; }
	local pre tc
	tc=$(now_ms) # Chromium's connections are at most this old
	pre=$("$top/tests/e2e/chromium-preconnect" "http://127.0.0.1:$port/" "$port" 2>"$work/$name.chromium")
	local cpid udd
	cpid=$(echo "$pre" | awk '/^CHROMIUM_PID /{print $2}')
	udd=$(echo "$pre" | awk '/^CHROMIUM_USER_DATA_DIR /{print $2}')
	local unused
	unused=$(echo "$pre" | awk '/^UNUSED /{print $2}')
	local t0 ms
	t0=$(now_ms)
	kill -TERM "$pid"
	ms=$(gone_ms "$pid" 9000 "$t0")
	local age=$(($(now_ms) - tc))
	if [ -n "$cpid" ]; then
		kill -TERM "$cpid" 2>/dev/null
		for _ in $(seq 50); do
			case $(ps -o stat= -p "$cpid" 2>/dev/null) in "" | Z*) break ;; esac
			sleep 0.1
		done
		kill -KILL -- "-$cpid" 2>/dev/null
	fi
	[ -n "$udd" ] && rm -rf "$udd"
	if [ "${unused:-0}" -lt 1 ]; then
		skipped "$name: Chromium opened no never-used connection ($(echo "$pre" | tr '\n' ' '))"
		return
	fi
	case $expect:$ms in
	go:hung | prompt:hung) bad "$name: still running after 9 s"; kill -KILL "$pid" 2>/dev/null ;;
	go:*) if [ "$age" -ge 4900 ]; then ok "$name: $ms ms (Go waits until Chromium's preconnect is 5 s old)"
		else bad "$name: $ms ms, Chromium's connections at most $age ms old: Go did not wait for the preconnect"; fi ;;
	prompt:*) if [ "$ms" -lt "$PROMPT_MS" ] && grep -q 'released [1-9][0-9]* never-used' "$log"; then
			ok "$name: $ms ms, Chromium's preconnect released"
		else bad "$name: $ms ms"; cat "$log"; fi ;;
	esac
	record_time "$name $ms"
	wait "$pid" 2>/dev/null
}
if [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && command -v ss >/dev/null 2>&1; then
	chromium_case chromium-go-without none go
	chromium_case chromium-go-outside - prompt
else
	skipped "Chromium: not installed (scripts/build-e2e)"
fi

# A seccomp profile that refuses pidfd_getfd (Docker's default, without
# CAP_SYS_PTRACE), and a kernel without it (older than 5.6): one line that
# says what to do, exit 2, the command never started.
for e in EPERM ENOSYS; do
	rm -f "$work/marker"
	"$out/seccomp_deny" "$e" "$launcher" --outside -- touch "$work/marker" >/dev/null 2>"$work/sc.err"
	st=$?
	case $e in
	EPERM) want='pidfd_getfd is refused by a seccomp profile.*SYS_PTRACE' ;;
	ENOSYS) want='needs pidfd_getfd (Linux 5.6 or later)' ;;
	esac
	if [ "$st" = 2 ] && [ "$(wc -l <"$work/sc.err")" = 1 ] && grep -q "$want" "$work/sc.err" &&
		[ ! -e "$work/marker" ]; then
		ok "pidfd_getfd $e: $(cat "$work/sc.err")"
	else
		bad "pidfd_getfd $e: status $st: $(cat "$work/sc.err")"
	fi
done

# --- needs root ------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	skipped "permission and PID 1 cases: not root"
else
	# Permission: nobody may not take root's sockets.
	"$B/fixtures/hyperlike" >"$work/perm.log" 2>&1 &
	sp=$!
	pids+=("$sp")
	port_of "$work/perm.log" >/dev/null
	if command -v setpriv >/dev/null 2>&1; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$launcher" --pid "$sp" \
			>"$work/perm.out" 2>"$work/perm.err"
		st=$?
		lines=$(wc -l <"$work/perm.err")
		if [ "$st" = 2 ] && [ "$lines" = 1 ] && grep -q "pid $sp: no permission.*another user" "$work/perm.err"; then
			ok "permission: $(cat "$work/perm.err")"
		else
			bad "permission: status $st: $(cat "$work/perm.err")"
		fi
	else
		skipped "permission: no setpriv"
	fi
	kill -KILL "$sp"
	wait "$sp" 2>/dev/null

	# PID 1: the static server in a new pid namespace; an orphan is reaped,
	# the never-used connection released, the exit prompt.
	if unshare --pid --fork --mount-proc true 2>/dev/null; then
		log=$work/pid1.log
		GRACESHIM_LOG=info unshare --pid --fork --mount-proc "$launcher" --outside -- \
			sh -c '(sleep 0.2 &); exec "$0"' "$out/hyperlike-static" >"$log" 2>&1 &
		up=$!
		pids+=("$up")
		sup=$(child_of "$up") # the launcher, PID 1 inside
		sup=${sup%% *}
		pids+=("$sup")
		port=$(port_of "$log")
		exec 3<>"/dev/tcp/127.0.0.1/$port"
		sleep 0.6 # the orphan sleep ended: reaped or a zombie
		zombies=0
		for c in $(cat /proc/"$sup"/task/*/children 2>/dev/null); do
			[ "$(awk '{print $3}' /proc/"$c"/stat 2>/dev/null)" = Z ] && zombies=$((zombies + 1))
		done
		t0=$(now_ms)
		kill -TERM "$sup"
		ms=$(gone_ms "$up" "$PROMPT_MS" "$t0")
		exec 3<&-
		wait "$up"
		st=$?
		if [ "$zombies" = 0 ] && [ "$ms" != hung ] && [ "$st" = 0 ] && grep -q 'released 1 never-used' "$log"; then
			ok "PID 1: orphan reaped, released, exit 0 after $ms ms"
			record_time "pid1-static-c $ms"
		else
			bad "PID 1: zombies $zombies, end $ms, status $st"
			cat "$log"
		fi
	else
		skipped "PID 1: unshare --pid refused here"
	fi
fi

echo "signal -> exit per case: ${times_file#"$top"/}"
echo "outside: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
