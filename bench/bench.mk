# SPDX-License-Identifier: MIT
# Benchmarks (issue 6), included by the top-level Makefile.
#   make bench        builds the library and the bench programs, then prints
#                     the table (bench/run); a report, not a gate: exits 0
#                     whatever the figures say.
#   make bench-build  only builds.
#   make bench-drain  only section 8, the drain (bench/drain.sh).
#   make bench-outside only section 9, outside mode (bench/outside.sh).
#   make bench-compare BEFORE=<commit>
#                     the same table with the library of <commit> beside this
#                     tree's, measured in the same run, configurations
#                     interleaved, under policy idle and unused (issue 30's
#                     before and after); bench/before builds it.
# Everything lands in $(B)/bench/.  Needs valgrind (instruction counts),
# libc6-dbg (libc's function names in them), nginx (the real server) and
# wrk (its requests per second): make bench and bench-drain install what is
# missing (as root; otherwise scripts/install-deps says what to install and
# bench/run says which figures it had to skip).
BENCH_DEPS := valgrind libc6-dbg nginx wrk strace

BENCH_DIR := $(B)/bench
BENCH_PROGS := $(BENCH_DIR)/micro $(BENCH_DIR)/sweep $(BENCH_DIR)/mem $(BENCH_DIR)/httpd \
	$(BENCH_DIR)/load $(BENCH_DIR)/drain
BENCH_LIBS := $(BENCH_DIR)/libpassthrough.so $(BENCH_DIR)/libpassthrough-call.so

.PHONY: bench bench-build bench-drain bench-outside bench-compare
# hyperlike: the thread-per-connection server of the drain section.
bench-build: $(LIB) $(BENCH_PROGS) $(BENCH_LIBS) $(B)/fixtures/hyperlike $(B)/graceshim-outside

bench: bench-build
	-@scripts/install-deps $(BENCH_DEPS)
	-bench/run $(B)

bench-compare: bench-build
	@test -n "$(BEFORE)" || { echo "make bench-compare: name the commit to compare with: BEFORE=<commit>" >&2; exit 2; }
	-@scripts/install-deps $(BENCH_DEPS)
	@before=$$(bench/before $(B) $(BEFORE)) && \
		{ BENCH_BEFORE=$$before BENCH_BEFORE_LABEL=$(BEFORE) bench/run $(B) || true; }

# Section 8 alone (about a minute): a server's stop holding N connections.
bench-drain: bench-build
	-@scripts/install-deps nginx
	-bench/drain.sh $(B)

# Section 9 alone (about 30 s): outside mode's idle CPU and pass time.
bench-outside: bench-build
	-bench/outside.sh $(B)

# Linked like the shim itself, so the floor differs from graceshim only in
# what the wrappers do.
$(BENCH_DIR)/libpassthrough.so: bench/passthrough.c shim/symbols.h Makefile bench/bench.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< -shared -Wl,-z,relro,-z,now,-z,noexecstack -ldl $(LDSAN)

# The same floor with a call instead of a tail jump (diagnostic).
$(BENCH_DIR)/libpassthrough-call.so: bench/passthrough.c shim/symbols.h Makefile bench/bench.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DPASS_CALL -o $@ $< -shared -Wl,-z,relro,-z,now,-z,noexecstack -ldl $(LDSAN)

$(BENCH_DIR)/%: bench/%.c bench/bench.h Makefile bench/bench.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=default -o $@ $< -Wl,-z,now -ldl $(LDSAN)
