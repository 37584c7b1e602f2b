# SPDX-License-Identifier: MIT
# graceshim: one Makefile.
#   make            build/libgraceshim.so (and the config validator)
#   make test       unit + integration tests (the fast loop)
#   make test-outside  outside mode (graceshim-outside) on Go, static, io_uring
#                   servers and running ones (tests/outside/)
#   make check      installs missing Debian packages (when root), then every test,
#                   sanitizer builds (check-san) and fuzzing (fuzz-smoke) included,
#                   each to its end; one summary block (scripts/check-all)
#   make install    PREFIX=/usr/local DESTDIR= (scripts/install.mk)
#   make demo       the example server with a Chrome-like client, without and with the shim
#   make SAN=address|thread ...   sanitizer builds, in build-address/ or build-thread/
#   TEST_PREFIX="valgrind -q" make test   wraps each test binary

CC      ?= cc
SAN     ?=
B       := $(if $(SAN),build-$(SAN),build)
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -pthread -fvisibility=hidden
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TSAN_FLAGS := -fsanitize=thread
SANFLAGS := $(if $(filter address,$(SAN)),$(ASAN_FLAGS),$(if $(filter thread,$(SAN)),$(TSAN_FLAGS)))
ifneq ($(SAN),)
CFLAGS  += $(SANFLAGS)
LDSAN   := $(SANFLAGS)
endif
LDFLAGS_SO := -shared -Wl,--version-script=$(B)/graceshim.map -Wl,-z,relro,-z,now,-z,noexecstack -ldl
TEST_PREFIX ?=

SHIM_SRC := $(wildcard shim/*.c)
SHIM_OBJ := $(patsubst shim/%.c,$(B)/obj/%.o,$(SHIM_SRC))
# The pure parts: unit tests link them as they are.
PURE_OBJ := $(B)/obj/config.o $(B)/obj/conntab.o $(B)/obj/policy.o $(B)/obj/logfmt.o $(B)/obj/sockview.o \
	$(B)/obj/sockdiag.o

UNIT_SRC := $(wildcard tests/unit/*.c)
INTEG_SRC := $(wildcard tests/integration/*.c)
FIXTURE_SRC := $(wildcard tests/fixtures/*.c)
FIXTURES := $(patsubst tests/fixtures/%.c,$(B)/fixtures/%,$(FIXTURE_SRC))

# Scripts the transparency suite runs as fixtures (tests/fixtures/tr_*.py,
# tr_*.sh): copied beside the compiled fixtures, where the harness finds them.
FIXTURE_SCRIPTS := $(patsubst tests/fixtures/%,$(B)/fixtures/%,\
	$(wildcard tests/fixtures/tr_*.py tests/fixtures/tr_*.sh))

LIB := $(B)/libgraceshim.so

.PHONY: all test unit integration check deps demo e2e harness servers check-cpython clean format format-check \
	license-check
all: $(LIB) $(B)/graceshim-check $(B)/graceshim-outside

uthash_check := $(shell test -f /usr/include/uthash.h && echo yes)
$(B)/obj/%.o: shim/%.c $(wildcard shim/*.h) Makefile
	@test -n "$(uthash_check)" || { echo "uthash.h not found: run scripts/install-deps (Debian package uthash-dev)" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(SHIM_OBJ) $(B)/graceshim.map
	$(CC) $(CFLAGS) -o $@ $(SHIM_OBJ) $(LDFLAGS_SO) $(LDSAN)

# The version script, from the one list of interposed symbols (symbols.h):
# the preprocessor alone, so any C compiler (cross, clang) makes it.
$(B)/graceshim.map: shim/graceshim.map.in shim/symbols.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -E -P -x c -o $@ $<

# The launcher's validator: the library's own parser, so the launcher and
# the library can never disagree on what a valid value is.
$(B)/graceshim-check: tools/graceshim-check.c $(B)/obj/config.o
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $^ $(LDSAN)

# Outside mode: the release from outside the server (pidfd_getfd), with the
# library's own view of a socket and its configuration parser.
$(B)/graceshim-outside: tools/graceshim-outside.c $(B)/obj/sockview.o $(B)/obj/sockdiag.o $(B)/obj/config.o
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $^ $(LDSAN)

$(B)/fixtures/%: tests/fixtures/%.c tests/fixtures/fixture.h tests/fixtures/threads.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $< $(LDSAN)

$(B)/fixtures/tlsserver: tests/fixtures/tlsserver.c tests/fixtures/fixture.h tests/fixtures/threads.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $< -lssl -lcrypto $(LDSAN)

$(filter $(B)/fixtures/tr_%,$(FIXTURES)): tests/fixtures/tr.h

$(FIXTURE_SCRIPTS): $(B)/fixtures/%: tests/fixtures/%
	@mkdir -p $(@D)
	cp $< $@
	chmod +x $@

$(B)/tests/unit: $(UNIT_SRC) $(PURE_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -Ishim -o $@ $(UNIT_SRC) $(PURE_OBJ) -lcriterion $(LDSAN)

$(B)/tests/integration: $(INTEG_SRC) $(wildcard tests/integration/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $(INTEG_SRC) -lcriterion -lssl -lcrypto $(LDSAN)

unit: $(B)/tests/unit
	$(TEST_PREFIX) $(B)/tests/unit

# The integration tests exec fixtures with LD_PRELOAD in the child's
# environment only; the Criterion runner itself is never preloaded.
integration: $(B)/tests/integration $(LIB) $(FIXTURES) $(FIXTURE_SCRIPTS)
	GRACESHIM_BUILD=$(CURDIR)/$(B) GRACESHIM_SAN=$(SAN) $(TEST_PREFIX) $(B)/tests/integration

test: unit integration

deps:
	@scripts/install-deps

# The seed case for real: hyper 0.14 (built offline from Debian's crates)
# against headless Chromium, a Chrome-like client and curl.
e2e: $(LIB)
	GRACESHIM_LIB=$(CURDIR)/$(LIB) tests/e2e/run

# scripts/try-browser and scripts/try-clients against the example server.
harness: all $(B)/fixtures/hyperlike
	scripts/build-e2e >/dev/null
	bash tests/harness/test-harness.sh

# Real servers (HAProxy, thin, unicorn, hitch, Apache, two JVMs, nginx,
# gunicorn, socat), each started and stopped as its documentation says,
# without and with the shim: the stop finishes within 1.5 s (TLS 2.5 s)
# with it, and what is no stop (a thread dump, a log reopen, a reload, an
# accept-once program, a fork-per-connection child, a SO_REUSEPORT sibling
# going) changes nothing.
servers: $(LIB)
	GRACESHIM_LIB=$(CURDIR)/$(LIB) tests/servers/run

# CPython's own regression modules (sockets, processes, signals, servers)
# without and with the shim, both at once; fails on any test that passes
# without and not with it (tests/cpython/run says which modules and why).
# Measured on the 2-core machine, load average 10 to 30 from other work:
# 4 min 30 s when nothing differs (5,700 tests compared); 14 min 30 s when
# units hang with the shim (each is killed at its unit timeout, 6 min,
# in the first run and again in the rerun).
check-cpython: $(LIB)
	GRACESHIM_LIB=$(CURDIR)/$(LIB) tests/cpython/run

# Every package first (scripts/install-deps --check: nothing installs
# midway, nothing is skipped for want of a tool), then scripts/check-all:
# license-check test test-launcher test-outside reliability check-valgrind check-san fuzz-smoke
# check-cross test-deb e2e harness servers check-cpython mutants, each to its end even after a failure, quiet (full logs in
# build/check/<target>.log), then one summary block whose last line is
# "N passed, M failed, K skipped"; the status is non-zero when anything
# failed.  CI runs it (.ci/run).  CHECK_TARGETS="test e2e" runs only those.
# Measured on the 2-core machine from a fresh clone, started as a background
# job of a script (SIGINT/SIGQUIT inherited ignored) with stress-ng --cpu 2
# running: 25 min 47 s in all; check-san 10 min 30 s, test 2 min 51 s,
# check-cpython 2 min 50 s, mutants 2 min 27 s, e2e 1 min 36 s, servers
# 1 min 34 s, reliability 1 min 7 s, the rest under a minute each.
check:
	@scripts/install-deps --check
	@scripts/check-all $(CHECK_TARGETS)

demo: deps
	$(MAKE) all $(FIXTURES)
	scripts/demo

# The C sources of shim/, tools/ and tests/ (.clang-format says how).
FORMAT_SRC := $(wildcard shim/*.c shim/*.h tools/*.c tests/*/*.c tests/*/*.h tests/*/*/*.c)
format:
	clang-format -i $(FORMAT_SRC)

# One line per file that is off (clang-format's own report, first lines),
# then "format: N passed, M failed" for scripts/check-all.
format-check:
	@pass=0 fail=0; for f in $(FORMAT_SRC); do \
		if clang-format --dry-run --Werror "$$f" >/dev/null 2>&1; then pass=$$((pass + 1)); \
		else fail=$$((fail + 1)); clang-format --dry-run --Werror "$$f" 2>&1 | head -n 6; fi; \
	done; echo "format: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# Every source file says its licence in its first comment (SPDX): the check
# lists those that do not; tools/spdx-add (no argument) adds the line.
license-check:
	tools/spdx-add --check

clean:
	rm -rf build build-address build-thread build-fuzz

# install, uninstall, the launcher's tests
include scripts/install.mk
# benchmarks (make bench) and the reliability suite (sanitizers, fuzzing)
include bench/bench.mk
include tests/reliability.mk
include tests/cross.mk
include tests/mutants/mutants.mk
include tests/outside/outside.mk
