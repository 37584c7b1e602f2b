# The aarch64 build (issue 14); included at the end of the Makefile.
#   make cross          the library, the launcher's checker and the smoke test
#                       built for aarch64 in build-aarch64/ with -Werror, by
#                       Debian's gcc-aarch64-linux-gnu
#   make check-cross    then runs the smoke test (tests/cross/smoke.c: the pure
#                       parts, and a release made by the shim's signal handler)
#                       under qemu-aarch64 (qemu-user), with and without the
#                       shim.  Not the Criterion suites: qemu-user 7.2 here
#                       hangs at a guest's first pthread_create (a plain
#                       two-line program does), and Criterion's runner and
#                       the fixtures start threads.
CROSS_CC ?= aarch64-linux-gnu-gcc
CROSS_B := build-aarch64
CROSS_SYSROOT ?= /usr/aarch64-linux-gnu
CROSS_QEMU := qemu-aarch64 -L $(CROSS_SYSROOT)

.PHONY: cross check-cross
cross:
	$(MAKE) B=$(CROSS_B) CC=$(CROSS_CC) SAN= $(CROSS_B)/libgraceshim.so $(CROSS_B)/graceshim-check \
		$(CROSS_B)/cross-smoke

$(CROSS_B)/cross-smoke: tests/cross/smoke.c $(PURE_OBJ)
	$(CC) $(CFLAGS) -fvisibility=default -Ishim -o $@ $< $(PURE_OBJ)

check-cross: cross
	@command -v qemu-aarch64 >/dev/null || { echo "check-cross: qemu-aarch64 not found (apt-get install qemu-user)" >&2; exit 2; }
	@pass=0; fail=0; \
	out=$$($(CROSS_QEMU) $(CROSS_B)/cross-smoke); rc=$$?; \
	if [ $$rc = 3 ]; then pass=$$((pass+1)); echo "cross: without the shim: ok ($$out)"; \
	else fail=$$((fail+1)); echo "cross: without the shim: FAIL (exit $$rc, $$out)"; fi; \
	out=$$($(CROSS_QEMU) -E LD_PRELOAD=$(CURDIR)/$(CROSS_B)/libgraceshim.so $(CROSS_B)/cross-smoke); rc=$$?; \
	if [ $$rc = 0 ]; then pass=$$((pass+1)); echo "cross: with the shim: ok ($$out)"; \
	else fail=$$((fail+1)); echo "cross: with the shim: FAIL (exit $$rc, $$out)"; fi; \
	echo "cross: $$pass passed, $$fail failed"; [ $$fail = 0 ]
