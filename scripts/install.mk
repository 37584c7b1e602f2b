# Installation and the launcher's tests; included by the top-level Makefile.
#   make install [PREFIX=/usr/local] [DESTDIR=]   the library and graceshim-check
#       in PREFIX/lib/graceshim/, the launcher in PREFIX/bin/, its man page
#   make uninstall [PREFIX=...] [DESTDIR=]        removes exactly those files
#   make test-launcher                            tests/launcher/test-launcher.sh
# The launcher finds PREFIX/lib/graceshim/ relative to itself, so PREFIX is
# not written into any installed file.

PREFIX  ?= /usr/local
DESTDIR ?=
INSTALL ?= install

libdir_gs := $(DESTDIR)$(PREFIX)/lib/graceshim
bindir_gs := $(DESTDIR)$(PREFIX)/bin
man1dir_gs := $(DESTDIR)$(PREFIX)/share/man/man1

INSTALLED := $(libdir_gs)/libgraceshim.so $(libdir_gs)/graceshim-check \
	$(bindir_gs)/graceshim $(man1dir_gs)/graceshim.1

.PHONY: install uninstall test-launcher

install: all
	$(INSTALL) -d $(libdir_gs) $(bindir_gs) $(man1dir_gs)
	$(INSTALL) -m 0644 $(B)/libgraceshim.so $(libdir_gs)/libgraceshim.so
	$(INSTALL) -m 0755 $(B)/graceshim-check $(libdir_gs)/graceshim-check
	$(INSTALL) -m 0755 scripts/graceshim $(bindir_gs)/graceshim
	$(INSTALL) -m 0644 scripts/graceshim.1 $(man1dir_gs)/graceshim.1

# Removes the files, then lib/graceshim/ only if that left it empty.
uninstall:
	rm -f $(INSTALLED)
	rmdir $(libdir_gs) 2>/dev/null || true

test-launcher: all
	sh tests/launcher/test-launcher.sh
