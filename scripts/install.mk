# SPDX-License-Identifier: MIT
# Installation and the launcher's tests; included by the top-level Makefile.
#   make install [PREFIX=/usr/local] [DESTDIR=]   the library, graceshim-check and graceshim-outside
#       in PREFIX/lib/graceshim/, the launcher in PREFIX/bin/, its man page
#   make uninstall [PREFIX=...] [DESTDIR=]        removes exactly those files, and
#       the directories install created, when they are empty
#   make test-launcher                            tests/launcher/test-launcher.sh
#   make deb [DEBDIR=build]                       the Debian package (debian/), built
#       by dpkg-buildpackage from a copy of the tree in a temporary directory
#       (it writes beside the tree it builds); the .deb lands in DEBDIR, the
#       build's log in DEBDIR/graceshim-deb.log; then lintian (when installed)
#       on each .deb, and any error or warning fails the target
#   make test-deb                                 tests/deb/test-deb.sh: builds,
#       installs, runs a server under /usr/bin/graceshim, purges (root only)
# The launcher finds PREFIX/lib/graceshim/ relative to itself, so PREFIX is
# not written into any installed file.  GSLIBDIR moves the library (the
# Debian package puts it in PREFIX/lib/<multiarch>/graceshim, where the
# launcher looks too); RECORD_DIRS= leaves out the list of created
# directories (a package manager keeps its own).

PREFIX  ?= /usr/local
DESTDIR ?=
INSTALL ?= install
GSLIBDIR ?= $(PREFIX)/lib/graceshim
RECORD_DIRS ?= yes

libdir_gs := $(DESTDIR)$(GSLIBDIR)
bindir_gs := $(DESTDIR)$(PREFIX)/bin
man1dir_gs := $(DESTDIR)$(PREFIX)/share/man/man1
# The directories install created (without DESTDIR), one a line.
created_gs := $(libdir_gs)/created-dirs

INSTALLED := $(libdir_gs)/libgraceshim.so $(libdir_gs)/graceshim-check $(libdir_gs)/graceshim-outside \
	$(bindir_gs)/graceshim $(man1dir_gs)/graceshim.1

.PHONY: install uninstall test-launcher deb test-deb

# Notes which of the directories (and their parents) are missing before it
# creates them, adding to what an earlier install noted.
install: all
	@new=''; \
	for d in $(GSLIBDIR) $(PREFIX)/bin $(PREFIX)/share/man/man1; do \
		while [ "$$d" != / ] && [ "$$d" != . ] && [ ! -d "$(DESTDIR)$$d" ]; do \
			new="$$new$$d\n"; d=$$(dirname "$$d"); \
		done; \
	done; \
	$(INSTALL) -d $(libdir_gs) $(bindir_gs) $(man1dir_gs); \
	if [ -n "$(RECORD_DIRS)" ]; then \
		{ cat $(created_gs) 2>/dev/null; printf "$$new"; } | sort -u >$(created_gs).new && \
		mv $(created_gs).new $(created_gs); \
	fi
	$(INSTALL) -m 0644 $(B)/libgraceshim.so $(libdir_gs)/libgraceshim.so
	$(INSTALL) -m 0755 $(B)/graceshim-check $(libdir_gs)/graceshim-check
	$(INSTALL) -m 0755 $(B)/graceshim-outside $(libdir_gs)/graceshim-outside
	$(INSTALL) -m 0755 scripts/graceshim $(bindir_gs)/graceshim
	$(INSTALL) -m 0644 scripts/graceshim.1 $(man1dir_gs)/graceshim.1

# Removes the files, then each directory install created, deepest first,
# when that left it empty (rmdir refuses otherwise), and lib/graceshim/.
uninstall:
	@dirs=$$(sort -r $(created_gs) 2>/dev/null); \
	rm -f $(INSTALLED) $(created_gs); \
	for d in $$dirs; do rmdir "$(DESTDIR)$$d" 2>/dev/null || true; done; \
	rmdir $(libdir_gs) 2>/dev/null || true

test-launcher: all
	sh tests/launcher/test-launcher.sh

DEBDIR ?= $(B)
# The tracked files of a git checkout (the tree as a clean clone has it, with
# uncommitted changes), or everything but the build directories.
deb:
	@command -v dpkg-buildpackage >/dev/null || { echo "make deb: dpkg-buildpackage not found (apt-get install dpkg-dev debhelper)" >&2; exit 1; }
	@set -e; tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/graceshim-deb.XXXXXX"); \
	trap 'rm -rf "$$tmp"' EXIT; mkdir "$$tmp/src"; \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | \
			tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$$tmp/src" -xf -; \
	else \
		tar --exclude=./build --exclude='./build-*' -cf - . | tar -C "$$tmp/src" -xf -; \
	fi; \
	mkdir -p $(DEBDIR); \
	(cd "$$tmp/src" && dpkg-buildpackage -b -us -uc >$(abspath $(DEBDIR))/graceshim-deb.log 2>&1) || \
		{ tail -n 40 $(DEBDIR)/graceshim-deb.log >&2; echo "make deb: dpkg-buildpackage failed (log: $(DEBDIR)/graceshim-deb.log)" >&2; exit 1; }; \
	cp "$$tmp"/*.deb $(DEBDIR)/; \
	for f in "$$tmp"/*.deb; do echo "$(DEBDIR)/$${f##*/}"; done; \
	if command -v lintian >/dev/null; then \
		for f in "$$tmp"/*.deb; do \
			rc=0; lintian --fail-on error,warning "$$f" >"$$tmp/lintian" 2>&1 || rc=$$?; \
			grep -v '^running with root privileges' "$$tmp/lintian" >&2 || true; \
			[ "$$rc" = 0 ] || { echo "make deb: lintian reports errors or warnings on $${f##*/} (exit $$rc)" >&2; exit 1; }; \
		done; \
	else \
		echo "make deb: lintian not found: the package is not checked (apt-get install lintian)" >&2; \
	fi

test-deb:
	bash tests/deb/test-deb.sh
