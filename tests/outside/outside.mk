# SPDX-License-Identifier: MIT
# Outside mode's tests, included by the top-level Makefile.
#   make test-outside   tests/outside/test-outside.sh: static Go, static C and
#                       io_uring servers without and with outside mode, --pid
#                       on hyperlike and nginx, signals, permissions, PID 1.
#                       Builds its servers in $(B)/outside/ (the Go one with
#                       Debian's golang-go, offline, standard library only).
.PHONY: test-outside
test-outside: all $(B)/fixtures/hyperlike
	GRACESHIM_BUILD=$(CURDIR)/$(B) bash tests/outside/test-outside.sh
