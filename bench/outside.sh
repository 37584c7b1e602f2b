#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/outside.sh: section 9 of make bench, outside mode (graceshim-outside).
# Run by bench/run; by hand: bench/outside.sh [BUILD_DIR] (after make
# bench-build).
#   idle CPU   the supervisor (graceshim-outside -- httpd) while the server
#              holds N never-used connections and nothing happens, over
#              IDLE_S seconds: its time on CPU from /proc/<pid>/schedstat
#              (nanoseconds), as a share of one core; target <= 0.1 %;
#   pass time  one release pass (wall clock, and its CPU time) over the server's N never-used
#              connections (graceshim-outside --pid PID --release-once:
#              walk /proc/PID/fd, pidfd_getfd, the sockview check,
#              shutdown(SHUT_RD), close), median of ROUNDS; target <= 20 ms.
# bench/httpd (epoll, one process) is the server.  Prints the section on
# stdout; "PASS|FAIL<TAB>name<TAB>measured" lines go to $OUTSIDE_VERDICTS
# when set.  Servers are stopped by pid; every wait is bounded.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
OUT=$B/graceshim-outside
HTTPD=$B/bench/httpd
VERDICTS=${OUTSIDE_VERDICTS:-/dev/null}
N=1000 IDLE_S=20 ROUNDS=5
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	N=200 IDLE_S=3 ROUNDS=2
fi
echo "## 9. outside mode: idle CPU and one release pass ($N never-used connections)"
for f in "$OUT" "$HTTPD"; do
	[ -x "$f" ] || { echo "   skipped: $f is missing (make bench-build)"; exit 0; }
done
ulimit -n $((N * 2 + 100)) 2>/dev/null || { echo "   skipped: ulimit -n $((N * 2 + 100)) refused"; exit 0; }

log=$(mktemp)
sup= srv=
cleanup() {
	# The server first: killed, the supervisor could not pass it on, and
	# the server would run on alone until its --max-seconds.
	[ -n "$srv" ] && kill -KILL "$srv" 2>/dev/null
	[ -n "$sup" ] && kill -KILL "$sup" 2>/dev/null
	rm -f "$log"
}
trap cleanup EXIT
"$OUT" -- "$HTTPD" --max-seconds 300 >"$log" 2>&1 &
sup=$!
disown "$sup" # killed by pid at the end, without a "Killed" notice
port=
for _ in $(seq 100); do
	port=$(awk '/^PORT /{print $2; exit}' "$log")
	[ -n "$port" ] && break
	sleep 0.05
done
srv=$(cat /proc/"$sup"/task/*/children 2>/dev/null | awk '{print $1}')
[ -n "$port" ] && [ -n "$srv" ] || { echo "   skipped: the server did not start"; cat "$log"; exit 0; }

fds=()
open_all() { # N never-used connections, held by this shell
	local i fd
	for ((i = 0; i < N; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
		fds+=("$fd")
	done
	# until the server accepted them all
	for _ in $(seq 200); do
		[ "$(ls /proc/"$srv"/fd | wc -l)" -ge "$N" ] && return 0
		sleep 0.05
	done
	return 1
}
close_all() {
	local fd
	for fd in "${fds[@]}"; do exec {fd}<&-; done
	fds=()
}
open_all || { echo "   skipped: the server did not accept $N connections"; exit 0; }
sleep 1 # the supervisor's start-up scans are behind it
cpu_ns() { awk '{print $1}' /proc/"$1"/schedstat; }
a=$(cpu_ns "$sup")
sleep "$IDLE_S"
b=$(cpu_ns "$sup")
idle=$(awk -v d=$((b - a)) -v s="$IDLE_S" 'BEGIN { printf "%.4f", d / (s * 1e9) * 100 }')
echo "   idle CPU of the supervisor: ${idle} % of one core over ${IDLE_S} s ($(((b - a) / 1000)) us on CPU)"
if awk -v x="$idle" 'BEGIN { exit !(x <= 0.1) }'; then v=PASS; else v=FAIL; fi
printf '%s\toutside idle CPU\t%s %% (target <= 0.1 %%)\n' "$v" "$idle" >>"$VERDICTS"

times=() cpus=()
for ((r = 0; r < ROUNDS; r++)); do
	[ "$r" = 0 ] || open_all || break
	line=$("$OUT" --pid "$srv" --release-once)
	case $line in
	"released $N in "*)
		times+=("$(echo "$line" | awk '{print $4}')")
		cpus+=("$(echo "$line" | awk '{print $6}' | tr -d '(')") ;;
	*) echo "   round $r: $line (expected $N released)" ;;
	esac
	close_all
	sleep 0.3
done
if [ ${#times[@]} -gt 0 ]; then
	med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }')
	cmed=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }')
	echo "   one release pass over $N: median ${med} ms of ${#times[@]} (${times[*]}), ${cmed} ms on CPU"
	echo "   (load average $(cut -d' ' -f1 /proc/loadavg): on a loaded machine the wall clock measures the machine too)"
	if awk -v x="$med" 'BEGIN { exit !(x <= 20) }'; then v=PASS; else v=FAIL; fi
	printf '%s\toutside pass time\t%s ms for %d (target <= 20 ms)\n' "$v" "$med" "$N" >>"$VERDICTS"
fi
