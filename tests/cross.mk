# SPDX-License-Identifier: MIT
# The aarch64 build (issue 14); included at the end of the Makefile.
#   make cross          the library, the launcher's checker and the smoke test
#                       built for aarch64 in build-aarch64/ with -Werror, by
#                       Debian's gcc-aarch64-linux-gnu
#   make check-cross    then runs, under qemu-aarch64 (qemu-user), the unit
#                       tests (tests/unit, built against criterion-lite:
#                       tests/cross/criterion/, a single-threaded runner in
#                       tests/cross/runner.c) and the smoke test (tests/cross/
#                       smoke.c: the pure parts, and a server released by the
#                       shim's signal handler), with and without the shim.
#                       Not Criterion itself nor the threaded fixtures:
#                       qemu-user 7.2 here never returns from a guest's first
#                       pthread_create (a ten-line program spins in it), so
#                       the one unit test that starts a thread is skipped
#                       there, with that reason.
CROSS_CC ?= aarch64-linux-gnu-gcc
CROSS_B := build-aarch64
CROSS_SYSROOT ?= /usr/aarch64-linux-gnu
CROSS_QEMU := timeout -k 5 300 qemu-aarch64 -L $(CROSS_SYSROOT)

.PHONY: cross check-cross
cross:
	$(MAKE) B=$(CROSS_B) CC=$(CROSS_CC) SAN= $(CROSS_B)/libgraceshim.so $(CROSS_B)/graceshim-check \
		$(CROSS_B)/cross-smoke $(CROSS_B)/cross-unit

$(CROSS_B)/cross-smoke: tests/cross/smoke.c $(PURE_OBJ)
	$(CC) $(CFLAGS) -fvisibility=default -Ishim -o $@ $< $(PURE_OBJ)

# The unit tests against criterion-lite (-Itests/cross comes before the
# system's criterion headers, which the cross compiler lacks anyway).
$(CROSS_B)/cross-unit: $(UNIT_SRC) tests/cross/runner.c $(wildcard tests/cross/criterion/*.h) $(PURE_OBJ)
	$(CC) $(CFLAGS) -fvisibility=default -Itests/cross -Ishim -o $@ $(UNIT_SRC) tests/cross/runner.c \
		$(PURE_OBJ)

CROSS_UNIT_SKIP := --skip conntab/close_paths_wait_for_a_claim_in_their_range_only \
	--reason "starts a thread: qemu-user 7.2 never returns from a guest's pthread_create" \
	$(foreach t,never_used_connection used_connection_counts_what_was_read peer_fin_is_no_data \
		listener cheap_look_without_kind,--skip sockview/$(t)) \
	--reason "asks TCP_INFO, which qemu-user 7.2 does not pass to the kernel" \
	$(foreach t,ipv4_listener_on_an_address ipv4_wildcard_listener ipv6_listener \
		ipv6_wildcard_listener_with_an_ipv4_client listeners_dump_finds_ours,--skip sockdiag/$(t)) \
	--reason "asks NETLINK_SOCK_DIAG, a netlink protocol qemu-user 7.2 refuses"

check-cross: cross
	@command -v qemu-aarch64 >/dev/null || { echo "check-cross: qemu-aarch64 not found (apt-get install qemu-user)" >&2; exit 2; }
	@pass=0; fail=0; \
	out=$$($(CROSS_QEMU) $(CROSS_B)/cross-unit $(CROSS_UNIT_SKIP)); rc=$$?; \
	echo "$$out" | grep -E '^\[(FAIL|SKIP|----)\]'; \
	syn=$$(echo "$$out" | grep Synthesis); \
	if [ $$rc = 0 ]; then pass=$$((pass+1)); echo "cross: unit tests: ok ($${syn#*Synthesis: })"; \
	else fail=$$((fail+1)); echo "cross: unit tests: FAIL (exit $$rc, $${syn#*Synthesis: })"; fi; \
	out=$$($(CROSS_QEMU) $(CROSS_B)/cross-smoke); rc=$$?; \
	if [ $$rc = 3 ]; then pass=$$((pass+1)); echo "cross: without the shim: ok ($$out)"; \
	else fail=$$((fail+1)); echo "cross: without the shim: FAIL (exit $$rc, $$out)"; fi; \
	out=$$($(CROSS_QEMU) -E LD_PRELOAD=$(CURDIR)/$(CROSS_B)/libgraceshim.so $(CROSS_B)/cross-smoke); rc=$$?; \
	if [ $$rc = 0 ]; then pass=$$((pass+1)); echo "cross: with the shim: ok ($$out)"; \
	else fail=$$((fail+1)); echo "cross: with the shim: FAIL (exit $$rc, $$out)"; fi; \
	echo "cross: $$pass passed, $$fail failed"; [ $$fail = 0 ]
