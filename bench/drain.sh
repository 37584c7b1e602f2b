#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/drain.sh: section 8 of make bench (issue 17), "drain: graceshim vs
# the server's own close".  Run by bench/run; by hand:
#   bench/drain.sh [BUILD_DIR]        (after make bench-build)
#
# A server holding N connections is told to stop; the time from the signal
# to its exit is measured by build/bench/drain (a pidfd, CLOCK_MONOTONIC):
#   own close  N idle keep-alive connections (one request each, answered),
#              no shim: the server closes them itself, the in-server anchor;
#   graceshim  N never-used connections (a browser's preconnects) under
#              graceshim: without it the server waits for them (nginx for
#              client_header_timeout, 60 s; hyperlike forever);
#   floor      the same connections without graceshim, released from
#              outside at the signal (drain's floor mode, pidfd_getfd):
#              the server's own cost of reading N EOFs, which no release
#              can avoid;
#   own close + shim  the first case under graceshim.
# Modes are interleaved, rotated per round; the ratio is the median of the
# per-round ratios.  One more graceshim run per round writes GRACESHIM_STATS,
# whose drain timeline (trigger, first and last release, exit, on the same
# clock as the signal) gives the breakdown; it is not in the timed figure
# (the statistics ask the kernel for byte counts at every close).
#
# BENCH_BEFORE=<library> (make bench-compare): one more mode per round, the
# graceshim case with that library, printed as a "before" line.
#
# Prints the section on stdout; "PASS|FAIL<TAB>name<TAB>measured" lines go
# to $DRAIN_VERDICTS when set (bench/run's summary).  Every server is
# stopped by pid; every wait is bounded (drain's own limit, timeout).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
BD=$B/bench
LIB=$B/libgraceshim.so
LOGS=$BD/logs/drain
DRAIN=$BD/drain
HYPER=$B/fixtures/hyperlike
VERDICTS=${DRAIN_VERDICTS:-/dev/null}
BEFORE=${BENCH_BEFORE:-}
BLABEL=${BENCH_BEFORE_LABEL:-before}
# hyperlike: one thread per connection; fewer, so that the section stays
# within a minute or two.
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	NGX_N=${BENCH_DRAIN_N:-1000} HYPER_N=${BENCH_DRAIN_N:-500} ROUNDS=${BENCH_DRAIN_ROUNDS:-1}
else
	NGX_N=${BENCH_DRAIN_N:-6000} HYPER_N=${BENCH_DRAIN_N:-2000} ROUNDS=${BENCH_DRAIN_ROUNDS:-3}
fi
TARGET=1.5
mkdir -p "$LOGS"
unset LD_PRELOAD

calc() { awk "BEGIN { printf \"$1\", ($2) }"; }
med() { echo "$1" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
have() { command -v "$1" >/dev/null 2>&1; }
verdict() { # ok name text
	if [ "$1" = 1 ]; then echo PASS; printf 'PASS\t%s\t%s\n' "$2" "$3" >>"$VERDICTS"
	else echo FAIL; printf 'FAIL\t%s\t%s\n' "$2" "$3" >>"$VERDICTS"; fi
}
free_port() {
	local p
	# Below the ephemeral range (32768 on): no client's port can hold it.
	for _ in $(seq 50); do
		p=$((12000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break
	done
	echo "$p"
}

# One run: server mode preload stats -> "exit_ms [trig first sweep tail]" on stdout.
# The server commands: ngx_cmd / hyper_cmd set CMD (an array) for a port.
ngx_cmd() { # port
	local d=$LOGS/nginx
	mkdir -p "$d/www" "$d/tmp"
	echo "hello from nginx" >"$d/www/index.html"
	# A master and one worker, as nginx runs; the worker stays root
	# (user root) so that it can write the statistics into this tree.
	cat >"$d/nginx.conf" <<NGXEOF
daemon off;
master_process on;
worker_processes 1;
user root;
worker_rlimit_nofile $((NGX_N + 1000));
error_log $d/error.log warn;
pid $d/nginx.pid;
events { worker_connections $((NGX_N + 500)); }
http {
	access_log off;
	keepalive_timeout 600s;
	keepalive_requests 1000000;
	client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
	uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
	server { listen 127.0.0.1:$1 backlog=8192; location / { root $d/www; } }
}
NGXEOF
	CMD=("$NGX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log")
	SIG=3 # SIGQUIT: nginx's graceful stop
	N=$NGX_N
}
hyper_cmd() { # port
	CMD=("$HYPER" --port "$1" --body-bytes 16)
	SIG=15
	N=$HYPER_N
}

run_one() { # server mode(keepalive|silent|floor) shim(0|1|before) stats(0|1)
	local port st env=() out
	port=$(free_port)
	"${1}_cmd" "$port"
	st=$LOGS/stats.$$
	rm -f "$st" "$st".*
	[ "$3" = 1 ] && env+=("LD_PRELOAD=$LIB")
	[ "$3" = before ] && env+=("LD_PRELOAD=$BEFORE")
	[ "$4" = 1 ] && env+=("GRACESHIM_STATS=$st")
	out=$(GRACESHIM_BENCH_DRAIN_LIMIT_MS=20000 timeout -k 5 120 \
		"$DRAIN" "$2" "$N" "$port" "$SIG" -- env "${env[@]}" "${CMD[@]}" 2>>"$LOGS/drain.log")
	echo "== $* port $port" >>"$LOGS/drain.log"
	echo "$out" >>"$LOGS/drain.log"
	local s e
	s=$(echo "$out" | awk '$1 == "signal_ns" { print $2 }')
	e=$(echo "$out" | awk '$1 == "exit_ns" { print $2 }')
	if [ -z "$s" ] || [ -z "$e" ] || [ "$e" = 0 ]; then
		echo "ERROR"
		return
	fi
	if [ "$4" != 1 ]; then
		calc %.3f "($e - $s) / 1e6"
		echo
		return
	fi
	# The statistics of the process that served: nginx's worker writes
	# <path>.<pid>, hyperlike <path>.
	local js tm fr lr
	js=$(cat "$st" "$st".* 2>/dev/null | head -1)
	echo "$js" >>"$LOGS/drain.log"
	tm=$(echo "$js" | grep -o '"trigger_monotonic_ns":[0-9]*' | cut -d: -f2)
	fr=$(echo "$js" | grep -o '"first_release_us":[0-9]*' | cut -d: -f2)
	lr=$(echo "$js" | grep -o '"last_release_us":[0-9]*' | cut -d: -f2)
	if [ -z "$tm" ] || [ -z "$fr" ] || [ -z "$lr" ]; then
		echo "ERROR"
		return
	fi
	calc '%.3f ' "($e - $s) / 1e6"
	calc '%.3f ' "($tm - $s) / 1e6"
	calc '%.3f ' "$fr / 1e3"
	calc '%.3f ' "($lr - $fr) / 1e3"
	calc '%.3f\n' "($e - $tm) / 1e6 - $lr / 1e3"
}

NGX=""
for c in /usr/sbin/nginx nginx; do have "$c" && NGX=$(command -v "$c") && break; done
SERVERS=()
[ -n "$NGX" ] && SERVERS+=(ngx)
[ -x "$HYPER" ] && SERVERS+=(hyper)

echo "8. Drain: graceshim vs the server's own close.  A server holding N connections is told to stop"
echo "   (nginx, 1 master + 1 worker: SIGQUIT; hyperlike, one thread per connection: SIGTERM); time"
echo "   from the signal to its exit (a pidfd), median of $ROUNDS interleaved rounds.  own close = N idle"
echo "   keep-alive connections, no shim: the server closes them itself; graceshim = N never-used"
echo "   connections under graceshim (without it the server waits: nginx 60 s, hyperlike forever);"
echo "   floor = the never-used connections released from outside the server, no shim in it (taken"
echo "   with pidfd_getfd, shutdown(SHUT_RD) in a loop at the signal): what the server itself needs to"
echo "   read N EOFs and close, the best any release can do; own close + shim = the first case under"
echo "   graceshim (it must not slow it down); ratios = medians of the per-round ratios against own"
echo "   close.  The breakdown of the graceshim case comes from one more run per round with"
echo "   GRACESHIM_STATS (its drain timeline, on the signal's clock), medians."
if [ ${#SERVERS[@]} = 0 ] || [ ! -x "$DRAIN" ]; then
	echo "   skipped: neither nginx nor build/fixtures/hyperlike is there (make bench-build, scripts/install-deps)"
	exit 0
fi
printf '   %-10s %5s %10s %18s %18s %18s %9s\n' server N "own close" floor graceshim "own close + shim" target
BREAK=()
for srv in "${SERVERS[@]}"; do
	declare -A T=() R=()
	T[own]="" T[shim]="" T[ownshim]="" T[floor]="" T[before]="" T[trig]="" T[first]="" T[sweep]="" T[tail]=""
	R[x]="" R[o]="" R[f]="" R[b]=""
	err=0
	if [ "$srv" = ngx ]; then name=nginx N=$NGX_N; else name=hyperlike N=$HYPER_N; fi
	for round in $(seq "$ROUNDS"); do
		declare -A ONE=()
		modes=(own shim ownshim floor stats)
		[ -n "$BEFORE" ] && modes+=(before)
		for k in "${!modes[@]}"; do
			m=${modes[$(((round + k) % ${#modes[@]}))]}
			case $m in
			own) o=$(run_one "$srv" keepalive 0 0) ;;
			floor) o=$(run_one "$srv" floor 0 0) ;;
			shim) o=$(run_one "$srv" silent 1 0) ;;
			ownshim) o=$(run_one "$srv" keepalive 1 0) ;;
			stats) o=$(run_one "$srv" silent 1 1) ;;
			before) o=$(run_one "$srv" silent before 0) ;;
			esac
			if [ "$o" = ERROR ] || [ -z "$o" ]; then
				err=1
				continue
			fi
			if [ "$m" = stats ]; then
				read -r _ a b c d <<<"$o"
				T[trig]+="$a " T[first]+="$b " T[sweep]+="$c " T[tail]+="$d "
			else
				ONE[$m]=$o
				T[$m]+="$o "
			fi
		done
		[ -n "${ONE[own]:-}" ] && [ -n "${ONE[shim]:-}" ] && R[x]+="$(calc %.4f "${ONE[shim]} / ${ONE[own]}") "
		[ -n "${ONE[own]:-}" ] && [ -n "${ONE[ownshim]:-}" ] && R[o]+="$(calc %.4f "${ONE[ownshim]} / ${ONE[own]}") "
		[ -n "${ONE[own]:-}" ] && [ -n "${ONE[floor]:-}" ] && R[f]+="$(calc %.4f "${ONE[floor]} / ${ONE[own]}") "
		[ -n "${ONE[own]:-}" ] && [ -n "${ONE[before]:-}" ] && R[b]+="$(calc %.4f "${ONE[before]} / ${ONE[own]}") "
		unset ONE
	done
	o=$(med "${T[own]}") s=$(med "${T[shim]}") os=$(med "${T[ownshim]}") r=$(med "${R[x]}") ro=$(med "${R[o]}")
	fl=$(med "${T[floor]}") rf=$(med "${R[f]}")
	label="drain of $N connections, $name: graceshim / the server's own close"
	if [ -z "$o" ] || [ -z "$s" ] || [ -z "$r" ]; then
		printf '   %-10s %5s %s\n' "$name" "$N" "ERROR (see ${LOGS#$ROOT/}/drain.log)"
		[ "$srv" = ngx ] && verdict 0 "$label" "not measured" >/dev/null
		unset T R
		continue
	fi
	tgt="<= $TARGET"
	[ "$srv" = hyper ] && tgt="(report)"
	printf '   %-10s %5s %7.1f ms %7.1f ms (%5.3f) %7.1f ms (%5.3f) %7.1f ms (%5.3f) %9s ' "$name" "$N" "$o" \
		"${fl:-0}" "${rf:-0}" "$s" "$r" "${os:-0}" "${ro:-0}" "$tgt"
	txt="$r (own close $(calc %.1f "$o") ms, graceshim $(calc %.1f "$s") ms; per round: ${R[x]% }); floor ${rf:-?}; own close under graceshim: ${ro:-?}"
	if [ "$srv" = ngx ]; then
		verdict "$(calc %d "$r <= $TARGET")" "$label" "$txt"
	else
		echo
	fi
	if [ -n "$BEFORE" ]; then
		bb=$(med "${T[before]}") rb=$(med "${R[b]}")
		if [ -n "$bb" ] && [ -n "$rb" ]; then
			printf '   %-10s %5s %10s %18s %7.1f ms (%5.3f)\n' "" "" "" "before ($BLABEL):" "$bb" "$rb"
		else
			printf '   %-10s %5s %10s %18s %s\n' "" "" "" "before ($BLABEL):" "ERROR (see ${LOGS#$ROOT/}/drain.log)"
		fi
	fi
	[ "$err" = 1 ] && echo "   note: a run failed (see ${LOGS#$ROOT/}/drain.log)"
	if [ -n "${T[trig]}" ]; then
		BREAK+=("$(printf '   %-10s %5s %12.1f ms %16.1f ms %11.1f ms %18.1f ms' "$name" "$N" "$(med "${T[trig]}")" \
			"$(med "${T[first]}")" "$(med "${T[sweep]}")" "$(med "${T[tail]}")")")
	fi
	unset T R
done
echo "   breakdown of graceshim (drain timeline of GRACESHIM_STATS):"
printf '   %-10s %5s %15s %19s %14s %21s\n' server N "signal->trigger" "trigger->1st rel." "sweep" "last release->exit"
for l in "${BREAK[@]}"; do
	echo "$l"
done
exit 0
