# SPDX-License-Identifier: MIT
# Reliability and security (issue 7); included at the end of the Makefile.
#   make reliability      the Criterion suite tests/reliability/ (errno parity,
#                         closefrom, signal storm, log file security, secure
#                         execution, no lost request), with fixtures
#                         tests/fixtures/rel_*.c
#   make check-san        unit + integration + reliability under ASan+UBSan
#                         (build-address/), then under TSan (build-thread/);
#                         every sanitizer report is a file under
#                         build-*/san-logs/: a finding fails the target and
#                         its first lines are printed, with its path
#   make check-valgrind   valgrind memcheck over fixture servers with the shim
#   make fuzz             libFuzzer (clang), FUZZ_TIME=30 s per target; one
#                         line per target, libFuzzer's output in
#                         build-fuzz/logs/<target>.log (its end on failure)
#   make fuzz-smoke       the same, 5 s per target (meant for make check)
#   make fuzz-build       only build build-fuzz/fuzz_config, build-fuzz/fuzz_conntab

.PHONY: reliability check-san check-valgrind fuzz fuzz-smoke fuzz-build

# ---- the Criterion suite --------------------------------------------------
# harness.c is compiled in as it is (its header is found beside it).
REL_SRC := $(wildcard tests/reliability/*.c)
REL_DEPS := $(REL_SRC) $(wildcard tests/reliability/*.h) tests/integration/harness.c \
	tests/integration/harness.h tests/fixtures/nolost.h

$(B)/tests/reliability: $(REL_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -Itests/integration -o $@ $(REL_SRC) \
		tests/integration/harness.c -lcriterion $(LDSAN)

# rel_secure linked against the shim (DT_NEEDED, absolute RUNPATH): glibc
# ignores LD_PRELOAD paths in secure-execution mode, so the shim's own
# AT_SECURE check can only be exercised this way (tests/reliability/test_secure.c).
$(B)/fixtures/rel_secure-linked: tests/fixtures/rel_secure.c tests/fixtures/fixture.h \
		tests/fixtures/threads.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $< -L$(B) -l:libgraceshim.so \
		-Wl,-rpath,$(CURDIR)/$(B) $(LDSAN)

# rel_nolost shares its response format with tests/reliability/test_nolost.c.
$(B)/fixtures/rel_nolost: tests/fixtures/nolost.h

# rel_cloexec defines fsync() so that it runs when the shim fsyncs its
# statistics temporary file (see the fixture).  An executable exports only
# the symbols a library on its link line asks for; the shim is not on it.
$(B)/fixtures/rel_cloexec: private LDSAN += -Wl,--export-dynamic-symbol=fsync

# failmalloc.so: makes the shim's own malloc/calloc/realloc fail on demand
# (tests/reliability/test_oom.c); preloaded next to the shim, never alone.
$(B)/fixtures/failmalloc.so: tests/reliability/preload/failmalloc.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -shared -o $@ $< -ldl $(LDSAN)

# The valgrind suite is check-valgrind's (without GRACESHIM_VALGRIND=1 its
# tests would only be skipped); REL_ARGS="--filter ..." replaces the filter.
reliability: $(B)/tests/reliability $(LIB) $(FIXTURES) $(B)/fixtures/rel_secure-linked \
		$(B)/fixtures/failmalloc.so
	GRACESHIM_BUILD=$(CURDIR)/$(B) GRACESHIM_SAN=$(SAN) $(TEST_PREFIX) $(B)/tests/reliability \
		--filter '!(valgrind/*)' $(REL_ARGS)

# ---- sanitizer builds -------------------------------------------------------
# SAN=address: the fixtures link libasan, and the harness preloads the shim
# ahead of it; ASan would refuse to start.  Each fixture gets
# __asan_default_options() = verify_asan_link_order=0 (see the file for why
# that order is safe, and why preloading libasan.so first is not).
ifeq ($(SAN),address)
$(B)/fixtures/%: private LDSAN += tests/reliability/san/asan_link_order.c
endif

# SAN=thread: Criterion cannot run under TSan (its boxfort arena cannot be
# mapped: "Could not initialize inheritable arena", Snaipe/Criterion#274), so
# the test runners are built without it; the shim and the fixtures it is
# preloaded into, where the threads are, keep TSan.  The unit tests then run
# uninstrumented (they are single-threaded) on their own copies of the pure
# objects.  "private": the shim's objects, prerequisites of these targets,
# must not inherit the flags.
ifeq ($(SAN),thread)
NOTSAN_CFLAGS := $(filter-out $(TSAN_FLAGS),$(CFLAGS))
NOTSAN_PURE_OBJ := $(patsubst $(B)/obj/%,$(B)/obj-notsan/%,$(PURE_OBJ))
$(B)/obj-notsan/%.o: shim/%.c $(wildcard shim/*.h)
	@mkdir -p $(@D)
	$(CC) $(NOTSAN_CFLAGS) -c -o $@ $<
$(B)/tests/unit: $(NOTSAN_PURE_OBJ)
$(B)/tests/unit: private PURE_OBJ := $(NOTSAN_PURE_OBJ)
$(B)/tests/unit $(B)/tests/integration $(B)/tests/reliability: private CFLAGS := $(NOTSAN_CFLAGS)
$(B)/tests/unit $(B)/tests/integration $(B)/tests/reliability: private LDSAN :=
endif

# halt_on_error: the first report ends the process; log_path: every report
# (from a fixture, the shim in it, or a test runner) lands in a file that
# check-san prints, whatever the test that ran it concluded; a file with an
# error or warning fails it (LeakSanitizer's "Unable to get registers from
# thread", written when a process exits while a thread is exiting, is only
# shown).  Not reported: leaks inside Criterion and OpenSSL (san/lsan.supp)
# and TSan's "thread leak" (a fixture exiting with a thread it never joined
# says nothing about the shim).
SAN_LOGS = $(CURDIR)/build-$(1)/san-logs
CHECK_SAN_ASAN = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$(call SAN_LOGS,address)/asan \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(call SAN_LOGS,address)/ubsan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/reliability/san/lsan.supp:print_suppressions=0:log_path=$(call SAN_LOGS,address)/lsan
CHECK_SAN_TSAN = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=1:report_thread_leaks=0:log_path=$(call SAN_LOGS,thread)/tsan

# -k: the integration and reliability suites run even when an earlier one
# failed; both sanitizers run; the target fails if a test failed or a
# sanitizer reported anything.  A finding prints its path and its first 40
# lines (the report and its stack); a note only its path.  The line
# "check-san: N sanitizer finding(s)" is what scripts/check-all counts.
check-san:
	@rm -rf $(call SAN_LOGS,address) $(call SAN_LOGS,thread)
	@mkdir -p $(call SAN_LOGS,address) $(call SAN_LOGS,thread)
	@rc=0; n=0; \
	$(CHECK_SAN_ASAN) $(MAKE) -k SAN=address unit integration reliability || rc=1; \
	$(CHECK_SAN_TSAN) $(MAKE) -k SAN=thread unit integration reliability || rc=1; \
	for f in $(call SAN_LOGS,address)/* $(call SAN_LOGS,thread)/*; do \
		[ -f "$$f" ] || continue; \
		if grep -q 'ERROR: \|WARNING: ThreadSanitizer\|runtime error' "$$f"; then \
			rc=1; n=$$((n + 1)); echo "==== sanitizer finding $$f (its first 40 lines):"; \
			head -n 40 "$$f"; \
		else echo "==== sanitizer note (not a finding) $$f"; fi; \
	done; \
	echo "check-san: $$n sanitizer finding(s) in $(call SAN_LOGS,address) and $(call SAN_LOGS,thread)"; \
	if [ $$rc = 0 ]; then echo "check-san: ASan, UBSan and TSan found nothing"; \
	else echo "check-san: FAILED (the failed tests and sanitizer findings above)" >&2; fi; \
	exit $$rc

# ---- valgrind -----------------------------------------------------------------
# The fixture rel_valgrind execs valgrind on another fixture; the tests run
# only with GRACESHIM_VALGRIND=1 (tests/reliability/test_valgrind.c).
check-valgrind: $(B)/tests/reliability $(LIB) $(FIXTURES)
	@test -z "$(SAN)" || { echo "check-valgrind: not with SAN=$(SAN) (valgrind and sanitizers exclude each other)" >&2; exit 2; }
	@command -v valgrind >/dev/null || { echo "check-valgrind: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
	GRACESHIM_VALGRIND=1 GRACESHIM_BUILD=$(CURDIR)/$(B) $(B)/tests/reliability --filter 'valgrind/*'

# ---- libFuzzer ----------------------------------------------------------------
# The pure objects, built again by clang with coverage instrumentation and
# ASan+UBSan, linked into each target.  New inputs go to build-fuzz/corpus/;
# the seeds in tests/fuzz/corpus/ are only read.  A crash, leak, timeout or
# violated invariant stops libFuzzer with a non-zero status and leaves the
# input in build-fuzz/artifacts/.
FUZZ_CC ?= clang
FUZZ_DIR := build-fuzz
FUZZ_TIME ?= 30
FUZZ_RUNS ?= 20000000
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ishim $(FUZZ_SAN)
FUZZ_TARGETS := config conntab
FUZZ_PURE := $(FUZZ_DIR)/obj/config.o $(FUZZ_DIR)/obj/conntab.o $(FUZZ_DIR)/obj/policy.o

$(FUZZ_DIR)/obj/%.o: shim/%.c $(wildcard shim/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_PURE)
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_PURE)

.SECONDARY: $(FUZZ_PURE)
fuzz-build: $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))

# $(1): seconds per target.  -runs caps the work on a fast machine.  Each
# target runs even when the one before failed; libFuzzer's output goes to
# build-fuzz/logs/<target>.log; on the terminal one line per target (its
# runs and corpus), and on failure the end of the log (the report, the
# input left in build-fuzz/artifacts/), then "fuzz: N passed, M failed".
define fuzz_all
	@mkdir -p $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs; pass=0; fail=0; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t; log=$(FUZZ_DIR)/logs/$$t.log; \
		dict=; [ ! -f tests/fuzz/$$t.dict ] || dict=-dict=tests/fuzz/$$t.dict; \
		if $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(1) -runs=$(FUZZ_RUNS) -timeout=10 \
			-rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- $$dict \
			$(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; then \
			pass=$$((pass + 1)); \
			echo "fuzz $$t: ok, $$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' $$log | tail -n 1), corpus $$(ls $(FUZZ_DIR)/corpus/$$t | wc -l) inputs (log $$log)"; \
		else \
			fail=$$((fail + 1)); \
			echo "fuzz $$t: FAILED; the end of $$log:"; tail -n 40 $$log | sed 's/^/  /'; \
		fi; \
	done; \
	echo "fuzz: $$pass passed, $$fail failed"; [ $$fail = 0 ]
endef

fuzz: fuzz-build
	$(call fuzz_all,$(FUZZ_TIME))

fuzz-smoke: fuzz-build
	$(call fuzz_all,5)
