# zreap for C users: `make` builds with cargo, `make install` installs like
# any C library, `make uninstall` removes exactly that, `make deb` builds a
# Debian package. GNU-style variables:
#
#   make PREFIX=/usr && sudo make install PREFIX=/usr DESTDIR=/tmp/stage
#
# PROFILE=debug (with CARGO_TARGET_DIR) installs what `cargo build --workspace`
# already made instead of a release build; the tests use it. `make install`
# builds only what is missing, so `sudo make install` after `make` runs no cargo.

CARGO ?= cargo
RUSTC ?= rustc
INSTALL ?= install
PROFILE ?= release
CARGO_TARGET_DIR ?= target

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATAROOTDIR ?= $(PREFIX)/share
MANDIR ?= $(DATAROOTDIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The preload shim (the stub LD_PRELOAD names and the core it loads, side by
# side). The installed zreap finds it as ../lib/zreap/ from its
# own directory, so keep BINDIR and LIBDIR side by side under one prefix.
SHIMDIR ?= $(LIBDIR)/zreap

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' capi/Cargo.toml)
SONAME := libzreap.so.0
REALNAME := libzreap.so.$(VERSION)

ifeq ($(PROFILE),debug)
CARGO_PROFILE := dev
else
CARGO_PROFILE := $(PROFILE)
endif
BUILD := $(CARGO_TARGET_DIR)/$(PROFILE)
ARTIFACTS := $(BUILD)/libzreap.so $(BUILD)/libzreap.a $(BUILD)/libzreap_preload.so \
	$(BUILD)/libzreap_preload_core.so $(BUILD)/zreap

# Pages that document several functions are installed once more, as a link,
# under each other function's name.
MAN1 := $(wildcard man/*.1)
MAN3 := $(wildcard man/*.3)
MAN7 := $(wildcard man/*.7)
MAN3_LINKS := zreap_uninstall.3:zreap_install.3 zspawn_options_init.3:zspawn.3 \
	zdaemon_ready.3:zdaemonize.3 zdaemon_options_init.3:zdaemonize.3 zreap_version.3:zreap_stats_get.3

DEB_ARCH = $(shell dpkg --print-architecture)
DEB_OUT ?= $(BUILD)
# none, gzip or xz (dpkg-deb -Z); the tests package debug builds uncompressed.
DEB_COMPRESSION ?= xz
DEB_ROOT = $(DEB_OUT)/deb-root
DEB := $(DEB_OUT)/zreap_$(VERSION)_$(DEB_ARCH).deb

.PHONY: all build install uninstall deb
all: build

build:
	$(CARGO) build --profile $(CARGO_PROFILE) -p zreap-capi -p zreap-preload -p zreap-cli

$(ARTIFACTS):
	$(CARGO) build --profile $(CARGO_PROFILE) -p zreap-capi -p zreap-preload -p zreap-cli

# What the static library needs (zreap.pc's Libs.private): rustc prints it
# for any staticlib; it is std's needs, as zreap's crates link no native
# library of their own. Set it on the command line where rustc is missing.
LIBS_PRIVATE ?= $(shell d=$$(mktemp -d) && echo | $(RUSTC) --crate-type staticlib --crate-name zreap_probe \
	--print native-static-libs -o $$d/probe.a - 2>&1 | sed -n 's/^note: native-static-libs: //p'; rm -rf $$d)

install: $(ARTIFACTS)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SHIMDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	$(INSTALL) -m 755 $(BUILD)/libzreap.so $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libzreap.so
	$(INSTALL) -m 644 $(BUILD)/libzreap.a $(DESTDIR)$(LIBDIR)/libzreap.a
	$(INSTALL) -m 755 $(BUILD)/libzreap_preload.so $(DESTDIR)$(SHIMDIR)/libzreap_preload.so
	$(INSTALL) -m 755 $(BUILD)/libzreap_preload_core.so $(DESTDIR)$(SHIMDIR)/libzreap_preload_core.so
	$(INSTALL) -m 755 $(BUILD)/zreap $(DESTDIR)$(BINDIR)/zreap
	$(INSTALL) -m 644 include/zreap.h $(DESTDIR)$(INCLUDEDIR)/zreap.h
	libs='$(LIBS_PRIVATE)'; test -n "$$libs" || { echo "make: no LIBS_PRIVATE (is rustc on PATH?)" >&2; exit 1; }; \
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' -e "s|@LIBS_PRIVATE@|$$libs|" zreap.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/zreap.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/zreap.pc
	$(INSTALL) -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3
	$(INSTALL) -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	for pair in $(MAN3_LINKS); do ln -sf $${pair#*:} $(DESTDIR)$(MANDIR)/man3/$${pair%%:*}; done

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libzreap.so \
		$(DESTDIR)$(LIBDIR)/libzreap.a $(DESTDIR)$(SHIMDIR)/libzreap_preload.so \
		$(DESTDIR)$(SHIMDIR)/libzreap_preload_core.so $(DESTDIR)$(BINDIR)/zreap \
		$(DESTDIR)$(INCLUDEDIR)/zreap.h $(DESTDIR)$(PKGCONFIGDIR)/zreap.pc
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(MAN7)))
	for pair in $(MAN3_LINKS); do rm -f $(DESTDIR)$(MANDIR)/man3/$${pair%%:*}; done
	rmdir $(DESTDIR)$(SHIMDIR) 2>/dev/null || true

# A binary package of everything `make install PREFIX=/usr` installs.
deb: $(ARTIFACTS)
	rm -rf $(DEB_ROOT)
	$(MAKE) install PREFIX=/usr DESTDIR=$(abspath $(DEB_ROOT))
	$(INSTALL) -d $(DEB_ROOT)/DEBIAN
	printf '%s\n' 'Package: zreap' 'Version: $(VERSION)' 'Architecture: $(DEB_ARCH)' \
		'Maintainer: zreap developers <zreap@users.noreply.github.com>' 'Section: libs' 'Priority: optional' \
		'Depends: libc6, libgcc-s1' 'Homepage: https://github.com/zreap/zreap' \
		'Description: ends zombie processes on Linux' \
		' libzreap (C library, header, pkg-config file and man pages), the' \
		' LD_PRELOAD shim libzreap_preload.so and the zreap command.' > $(DEB_ROOT)/DEBIAN/control
	dpkg-deb -Z$(DEB_COMPRESSION) --root-owner-group --build $(DEB_ROOT) $(DEB)
	rm -rf $(DEB_ROOT)
