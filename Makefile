# graceshim: one Makefile.
#   make            build/libgraceshim.so (and the config validator)
#   make test       unit + integration tests (the fast loop)
#   make check      installs missing Debian packages (when root), then every test,
#                   sanitizer builds (check-san) and fuzzing (fuzz-smoke) included
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
LDFLAGS_SO := -shared -Wl,--version-script=shim/graceshim.map -Wl,-z,relro,-z,now,-z,noexecstack -ldl
TEST_PREFIX ?=

SHIM_SRC := $(wildcard shim/*.c)
SHIM_OBJ := $(patsubst shim/%.c,$(B)/obj/%.o,$(SHIM_SRC))
# The pure parts: unit tests link them as they are.
PURE_OBJ := $(B)/obj/config.o $(B)/obj/conntab.o $(B)/obj/policy.o

UNIT_SRC := $(wildcard tests/unit/*.c)
INTEG_SRC := $(wildcard tests/integration/*.c)
FIXTURE_SRC := $(wildcard tests/fixtures/*.c)
FIXTURES := $(patsubst tests/fixtures/%.c,$(B)/fixtures/%,$(FIXTURE_SRC))

LIB := $(B)/libgraceshim.so

.PHONY: all test unit integration check deps demo e2e harness clean format format-check
all: $(LIB) $(B)/graceshim-check

uthash_check := $(shell test -f /usr/include/uthash.h && echo yes)
$(B)/obj/%.o: shim/%.c $(wildcard shim/*.h) Makefile
	@test -n "$(uthash_check)" || { echo "uthash.h not found: run scripts/install-deps (Debian package uthash-dev)" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(SHIM_OBJ) shim/graceshim.map
	$(CC) $(CFLAGS) -o $@ $(SHIM_OBJ) $(LDFLAGS_SO) $(LDSAN)

# The launcher's validator: the library's own parser, so the launcher and
# the library can never disagree on what a valid value is.
$(B)/graceshim-check: tools/graceshim-check.c $(B)/obj/config.o
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $^ $(LDSAN)

$(B)/fixtures/%: tests/fixtures/%.c tests/fixtures/fixture.h tests/fixtures/threads.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $< $(LDSAN)

$(B)/fixtures/tlsserver: tests/fixtures/tlsserver.c tests/fixtures/fixture.h tests/fixtures/threads.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $< -lssl -lcrypto $(LDSAN)

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
integration: $(B)/tests/integration $(LIB) $(FIXTURES)
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

# The sanitizer builds and the fuzzing smoke run are part of it (and so of
# CI, which runs make check): about 2 min and 20 s more (the whole target
# took 4 min 50 s on the 2-core machine).  e2e and harness last: their
# "N passed, N failed" lines close the output.
check:
	@scripts/install-deps --check
	$(MAKE) test test-launcher reliability check-valgrind check-san fuzz-smoke e2e harness

demo: deps
	$(MAKE) all $(FIXTURES)
	scripts/demo

format:
	clang-format -i shim/*.c shim/*.h tests/*/*.c tests/*/*.h tools/*.c

format-check:
	clang-format --dry-run --Werror shim/*.c shim/*.h tests/*/*.c tests/*/*.h tools/*.c

clean:
	rm -rf build build-address build-thread build-fuzz

# install, uninstall, the launcher's tests
include scripts/install.mk
# benchmarks (make bench) and the reliability suite (sanitizers, fuzzing)
include bench/bench.mk
include tests/reliability.mk
include tests/mutants/mutants.mk
