# SPDX-License-Identifier: MIT
# make mutants: the mutation check of the test suites (tests/mutants/run).
# Each tests/mutants/*.mut breaks one promise of the shim in a copy of the
# tree (build-mutants/<name>/); the tests it names must fail there.  Not
# with SAN (the mutants are plain builds of $(B)'s objects).
.PHONY: mutants
mutants: $(LIB) $(B)/tests/integration $(B)/tests/reliability $(FIXTURES) \
		$(B)/fixtures/rel_secure-linked $(B)/fixtures/failmalloc.so
	@test -z "$(SAN)" || { echo "mutants: not with SAN=$(SAN)" >&2; exit 2; }
	B=$(B) tests/mutants/run

.PHONY: clean-mutants
clean-mutants:
	rm -rf build-mutants
clean: clean-mutants
