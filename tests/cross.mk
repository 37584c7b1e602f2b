# The aarch64 build (issue 14); included at the end of the Makefile.
#   make cross          the library, the launcher's checker and the unit tests
#                       built for aarch64 in build-aarch64/ (-Werror), with
#                       Debian's gcc-aarch64-linux-gnu
#   make check-cross    then runs the unit tests and one integration scenario
#                       (tests/cross/smoke.sh) under qemu-aarch64 (qemu-user);
#                       the unit tests need Criterion for arm64
#                       (libcriterion-dev:arm64, multiarch: scripts/install-deps --cross)
CROSS_CC ?= aarch64-linux-gnu-gcc
CROSS_B := build-aarch64
CROSS_SYSROOT ?= /usr/aarch64-linux-gnu

.PHONY: cross check-cross
cross:
	$(MAKE) B=$(CROSS_B) CC=$(CROSS_CC) SAN= $(CROSS_B)/libgraceshim.so \
		$(CROSS_B)/graceshim-check $(CROSS_B)/fixtures/hyperlike $(CROSS_B)/tests/unit

check-cross: cross
	qemu-aarch64 -L $(CROSS_SYSROOT) $(CROSS_B)/tests/unit --jobs 1
	tests/cross/smoke.sh $(CROSS_B)
