#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian package: `make deb` builds it (dpkg-buildpackage from a copy of
# the tree, unit tests included), lintian reports no error and no warning
# (make deb itself fails on one), the copyright file states the MIT (Expat)
# licence in the machine-readable format, it installs,
# /usr/bin/graceshim finds the library in /usr/lib/<multiarch>/graceshim/ and
# releases a fixture server's unused connection at SIGINT, and dpkg --purge
# leaves nothing behind.  Prints "ok"/"FAIL"/"skip" lines, then
# "deb: N passed, M failed, K skipped".  Skips with its reason (exit 0) when
# dpkg-buildpackage is missing; the install half needs root, and is skipped
# when a graceshim package is installed already (it is not ours to remove).
# Every wait is bounded.  About 30 s (28 s measured, lintian included).
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
pass=0 fail=0 skipped=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() {
	fail=$((fail + 1))
	printf 'FAIL %s\n' "$1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | head -n 20 | sed 's/^/       | /'
}
skip() { skipped=$((skipped + 1)); printf 'skip %s: %s\n' "$1" "$2"; }
check() { # description, details-on-failure, command...
	local d=$1 det=$2
	shift 2
	if "$@"; then ok "$d"; else bad "$d" "$det"; fi
}
finish() {
	echo "deb: $pass passed, $fail failed, $skipped skipped"
	[ "$fail" = 0 ]
	exit
}

if ! command -v dpkg-buildpackage >/dev/null 2>&1; then
	skip "the Debian package" "dpkg-buildpackage not found (apt-get install dpkg-dev debhelper)"
	finish
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/graceshim-test-deb.XXXXXX")
spid=''
installed_here=0
cleanup() {
	[ -z "$spid" ] || { kill -KILL "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; }
	# Never leave our package installed, whatever failed.
	[ "$installed_here" = 0 ] || dpkg_retry --purge graceshim >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# dpkg, retried while another dpkg holds its lock (bounded: 2 min).
dpkg_retry() {
	local i out rc
	for i in $(seq 60); do
		out=$(dpkg "$@" 2>&1)
		rc=$?
		case $rc:$out in
		0:*) printf '%s\n' "$out"; return 0 ;;
		*:*lock*) sleep 2 ;;
		*) printf '%s\n' "$out"; return "$rc" ;;
		esac
	done
	printf '%s\n' "$out"
	return "$rc"
}

# --- build -------------------------------------------------------------------------------
version=$(sed -n 's/^VERSION=//p' "$top/scripts/graceshim")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
# What dpkg-buildpackage writes beside the tree it builds (the tree's parent
# holds other checkouts: only these names are ours to look for).
beside() { ls -A "$top/.." | grep -E '^graceshim(-dbgsym)?_' ; }
before=$(beside)
timeout 900 make -s -C "$top" deb DEBDIR="$tmp/out" >"$tmp/build.out" 2>&1
rc=$?
deb=$tmp/out/graceshim_${version}_${arch}.deb
check "make deb: builds graceshim_${version}_${arch}.deb (version of the launcher)" \
	"$(cat "$tmp/build.out")" eval '[ "$rc" = 0 ] && [ -f "$deb" ]'
[ -f "$deb" ] || finish
check "the package's build ran the unit tests, and only those" "$(tail -n 20 "$tmp/out/graceshim-deb.log")" \
	eval 'grep -q "^\[====\] Synthesis: Tested: [1-9]" "$tmp/out/graceshim-deb.log" &&
		[ "$(grep -c "Synthesis: Tested" "$tmp/out/graceshim-deb.log")" = 1 ]'
check "nothing is left beside the tree" "$(beside)" [ "$(beside)" = "$before" ]
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for f in /usr/bin/graceshim "/usr/lib/$multiarch/graceshim/libgraceshim.so" \
	"/usr/lib/$multiarch/graceshim/graceshim-check" "/usr/lib/$multiarch/graceshim/graceshim-outside" \
	/usr/share/man/man1/graceshim.1.gz \
	/usr/share/doc/graceshim/README.md.gz /usr/share/doc/graceshim/copyright; do
	check "the package holds $f" "$contents" grep -qx -- "$f" <<<"$contents"
done
if command -v lintian >/dev/null 2>&1; then
	timeout 300 lintian "$deb" >"$tmp/lintian" 2>&1
	check "lintian: no error, no warning" "$(cat "$tmp/lintian")" eval '! grep -q "^[EW]: " "$tmp/lintian"'
else
	skip "lintian: no error, no warning" "lintian is not installed"
fi
copyright=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/doc/graceshim/copyright 2>/dev/null)
check "the copyright file: machine-readable, MIT (Expat), the project's notice" "$copyright" \
	eval 'grep -q "^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" <<<"$copyright" &&
		grep -q "^Copyright: 2026 The graceshim authors" <<<"$copyright" &&
		grep -q "^License: Expat" <<<"$copyright" && ! grep -qi "unknown" <<<"$copyright"'

# --- install, run, purge -----------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	skip "install, run, purge" "not root"
	finish
fi
if dpkg-query -W -f '${Status}' graceshim 2>/dev/null | grep -q 'installed'; then
	skip "install, run, purge" "a graceshim package is installed already: not ours to replace"
	finish
fi
make -s -C "$top" build/fixtures/hyperlike >/dev/null 2>&1
server=$top/build/fixtures/hyperlike
[ -x "$server" ] || { bad "the fixture server $server" "make build/fixtures/hyperlike failed"; finish; }
# Which of the package's paths exist before: those that do not must be gone
# after the purge.
: >"$tmp/new-paths"
while IFS= read -r p; do
	[ -n "$p" ] && [ "$p" != / ] && [ ! -e "$p" ] && printf '%s\n' "$p" >>"$tmp/new-paths"
done <<<"$contents"
installed_here=1
out=$(dpkg_retry -i "$deb")
check "dpkg -i" "$out" eval '[ "$(dpkg-query -W -f "\${Status}" graceshim 2>/dev/null)" = "install ok installed" ]'

preload=$(env -u LD_PRELOAD -u GRACESHIM_LIB PATH=/usr/bin:/bin timeout 20 /usr/bin/graceshim -- sh -c 'printf "%s" "$LD_PRELOAD"' 2>"$tmp/err")
check "/usr/bin/graceshim preloads /usr/lib/$multiarch/graceshim/libgraceshim.so, with no warning" \
	"$preload $(cat "$tmp/err")" eval '[ "$preload" = "/usr/lib/$multiarch/graceshim/libgraceshim.so" ] && [ ! -s "$tmp/err" ]'
timeout 20 /usr/bin/graceshim --grace 5x -- true 2>"$tmp/err"
rc=$?
check "/usr/bin/graceshim validates with the installed checker" "$(cat "$tmp/err")" \
	eval '[ "$rc" = 2 ] && grep -q "option --grace" "$tmp/err"'
if command -v man >/dev/null 2>&1; then
	check "man graceshim" "$(man -w graceshim 2>&1)" eval 'man -w graceshim 2>/dev/null | grep -q /usr/share/man/man1/graceshim.1.gz'
else
	skip "man graceshim" "man is not installed"
fi

# The fixture (it shuts down like hyper 0.14) under the installed launcher:
# a request, then an unused connection, then SIGINT: it must exit.  Without
# the shim it waits for the unused connection forever.
env --default-signal -u LD_PRELOAD -u GRACESHIM_LIB GRACESHIM_LOG=info /usr/bin/graceshim -- "$server" >"$tmp/srv.out" 2>"$tmp/srv.err" &
spid=$!
port=''
for _ in $(seq 100); do
	port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/srv.out")
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	bad "graceshim -- hyperlike: the server listens" "$(cat "$tmp/srv.err")"
else
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&3
	timeout 5 head -c 100 <&3 >"$tmp/resp" 2>/dev/null
	exec 4<>"/dev/tcp/127.0.0.1/$port" # the unused spare
	sleep 0.3
	kill -INT "$spid"
	exited=0
	for _ in $(seq 50); do
		kill -0 "$spid" 2>/dev/null || { exited=1; break; }
		sleep 0.1
	done
	exec 3>&- 4>&-
	check "graceshim -- hyperlike: answered a request" "$(cat "$tmp/resp")" grep -q '^HTTP/1.1 200' "$tmp/resp"
	check "graceshim -- hyperlike: exits within 5 s of SIGINT (the unused connection released)" \
		"$(cat "$tmp/srv.err")" [ "$exited" = 1 ]
	check "graceshim -- hyperlike: the installed library logged its work" "$(cat "$tmp/srv.err")" \
		grep -q 'INFO graceshim\[[0-9]*\] drain: released 1 connection' "$tmp/srv.err"
	wait "$spid" 2>/dev/null
	spid=''
fi

out=$(dpkg_retry --purge graceshim)
installed_here=0
check "dpkg --purge" "$out" eval '! dpkg-query -W -f "\${Status}" graceshim 2>/dev/null | grep -q installed'
left=$(while IFS= read -r p; do [ -e "$p" ] && printf '%s\n' "$p"; done <"$tmp/new-paths"
	ls /var/lib/dpkg/info/graceshim.* 2>/dev/null)
check "dpkg --purge leaves nothing behind" "$left" [ -z "$left" ]
finish
