# Builds and installs librbpf as a C library. Cargo does the building; this file only copies
# files into place. See docs/install.md.
#
#   make                       cargo build --release (librbpf.so, librbpf.a, the rbpf tool)
#   make install               into PREFIX (default /usr/local), under DESTDIR if set; builds
#                              only if nothing was built yet
#   make install UBPF_COMPAT=0 without the uBPF names (libubpf.*, ubpf.pc, ubpfConfig.cmake),
#                              headers in PREFIX/include/rbpf, to sit beside uBPF itself
#   make uninstall             removes what install put there (same variables), and the
#                              directories install created once they are empty
#
# SPDX-License-Identifier: MIT OR Apache-2.0

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
UBPF_COMPAT ?= 1
CARGO ?= cargo
# Cargo profile and target directory the files are taken from.
CARGO_PROFILE ?= release
CARGO_TARGET_DIR ?= target
INSTALL ?= install
# Installed files are stripped: the shared library and the tool of their symbol tables
# (--strip-unneeded keeps the dynamic symbols, so every ubpf_*/rbpf_* function is still
# exported), the static archive only of debug information and the LLVM bitcode rustc embeds
# for LTO (every symbol stays, so it links as before). STRIP=true installs them as built.
STRIP ?= strip
# The uBPF version whose C API librbpf provides (docs/install.md, "For uBPF users"): the
# Version of ubpf.pc and of ubpfConfigVersion.cmake, so that a uBPF user's
# `pkg-config 'ubpf >= 0.1'` passes. librbpf's own version is rbpf.pc's Version and
# ubpf.pc's librbpf_version variable.
UBPF_VERSION ?= 0.1.0

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(word 1,$(subst ., ,$(VERSION)))
MINOR := $(word 2,$(subst ., ,$(VERSION)))
# The ABI version in the SONAME (capi/artifact/build.rs sets -soname librbpf.so.$(SOVERSION)).
SOVERSION := 0
# What librbpf.a needs besides itself (rustc --print native-static-libs on Linux/glibc).
STATIC_LIBS ?= -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

EMPTY :=
SPACE := $(EMPTY) $(EMPTY)
BUILD_DIR := $(CARGO_TARGET_DIR)/$(if $(filter dev test,$(CARGO_PROFILE)),debug,$(CARGO_PROFILE))
HEADERS := include/ubpf.h include/ubpf_config.h include/rbpf.h include/ebpf.h
# With the uBPF names, the headers go where `#include <ubpf.h>` finds them; without, into a
# directory of their own so that uBPF's headers can be installed too.
HEADER_DIR := $(if $(filter 1,$(UBPF_COMPAT)),$(INCLUDEDIR),$(INCLUDEDIR)/rbpf)
# Directories install puts files in. Those it has to create (with their missing parents) are
# listed in CREATED_DIRS_FILE, and uninstall removes exactly those, once empty, plus
# librbpf's own (OWN_DIRS): never a directory that was there before, such as an existing,
# empty /usr/local/include.
INSTALL_DIRS := $(BINDIR) $(LIBDIR)/pkgconfig $(HEADER_DIR) $(LIBDIR)/cmake/rbpf \
	$(if $(filter 1,$(UBPF_COMPAT)),$(LIBDIR)/cmake/ubpf)
OWN_DIRS := $(LIBDIR)/cmake/rbpf $(LIBDIR)/cmake/ubpf $(INCLUDEDIR)/rbpf
CREATED_DIRS_FILE := $(LIBDIR)/cmake/rbpf/rbpf-created-dirs

SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(HEADER_DIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@MAJOR@|$(MAJOR)|g' -e 's|@MINOR@|$(MINOR)|g' \
	-e 's|@SOVERSION@|$(SOVERSION)|g' \
	-e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' \
	-e 's|@CMAKE_STATIC_LIBS@|$(subst $(SPACE),;,$(strip $(STATIC_LIBS)))|g'

BUILT := $(BUILD_DIR)/librbpf.so $(BUILD_DIR)/librbpf.a $(BUILD_DIR)/rbpf

.PHONY: all build install uninstall
all: build

build:
	$(CARGO) build --profile $(CARGO_PROFILE) --target-dir $(CARGO_TARGET_DIR)

# install builds only what is missing, so that `sudo make install` after `make` (or
# `cargo build --release`) needs no cargo as root; run `make` first after changing the code.
$(BUILT):
	$(CARGO) build --profile $(CARGO_PROFILE) --target-dir $(CARGO_TARGET_DIR)

install: $(BUILT)
	@# Each missing directory on the way to INSTALL_DIRS (below DESTDIR), before creating them.
	@created=$$(for dir in $(INSTALL_DIRS); do \
		path="$(DESTDIR)$$dir"; \
		while [ "$$path" != "$(DESTDIR)" ] && [ "$$path" != / ] && [ ! -d "$$path" ]; do \
			echo "$${path#$(DESTDIR)}"; path=$$(dirname "$$path"); \
		done; \
	done); \
	set -x; $(INSTALL) -d $(addprefix $(DESTDIR),$(INSTALL_DIRS)) && \
	{ cat "$(DESTDIR)$(CREATED_DIRS_FILE)" 2>/dev/null; printf '%s\n' $$created; } \
		| sed '/^$$/d' | sort -u > "$(DESTDIR)$(CREATED_DIRS_FILE).new" && \
	mv "$(DESTDIR)$(CREATED_DIRS_FILE).new" "$(DESTDIR)$(CREATED_DIRS_FILE)"
	$(INSTALL) -m 755 $(BUILD_DIR)/rbpf $(DESTDIR)$(BINDIR)/rbpf
	$(STRIP) --strip-unneeded $(DESTDIR)$(BINDIR)/rbpf
	$(INSTALL) -m 755 $(BUILD_DIR)/librbpf.so $(DESTDIR)$(LIBDIR)/librbpf.so.$(VERSION)
	$(STRIP) --strip-unneeded $(DESTDIR)$(LIBDIR)/librbpf.so.$(VERSION)
	ln -sf librbpf.so.$(VERSION) $(DESTDIR)$(LIBDIR)/librbpf.so.$(SOVERSION)
	ln -sf librbpf.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/librbpf.so
	$(INSTALL) -m 644 $(BUILD_DIR)/librbpf.a $(DESTDIR)$(LIBDIR)/librbpf.a
	$(STRIP) --strip-debug --remove-section=.llvmbc --remove-section=.llvmcmd \
		$(DESTDIR)$(LIBDIR)/librbpf.a
	$(INSTALL) -m 644 $(HEADERS) $(DESTDIR)$(HEADER_DIR)/
	$(SUBST) -e 's|@NAME@|rbpf|g' -e 's|@PC_VERSION@|$(VERSION)|g' \
		-e 's|@DESCRIPTION@|Userspace eBPF VM (interpreter and JIT) with the uBPF C API|g' \
		packaging/rbpf.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/rbpf.pc
	$(SUBST) -e 's|@TARGET@|rbpf::rbpf|g' -e 's|@PACKAGE@|rbpf|g' \
		packaging/Config.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/rbpf/rbpfConfig.cmake
	$(SUBST) -e 's|@PACKAGE@|rbpf|g' -e 's|@PACKAGE_VERSION@|$(VERSION)|g' \
		-e 's|@ANY_VERSION@|FALSE|g' -e 's|@ANY_VERSION_NOTE@|Newer versions never meet it.|g' \
		packaging/ConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/rbpf/rbpfConfigVersion.cmake
ifeq ($(UBPF_COMPAT),1)
	ln -sf librbpf.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libubpf.so
	ln -sf librbpf.a $(DESTDIR)$(LIBDIR)/libubpf.a
	$(SUBST) -e 's|@NAME@|ubpf|g' -e 's|@PC_VERSION@|$(UBPF_VERSION)|g' \
		-e 's|@DESCRIPTION@|uBPF C API, provided by librbpf $(VERSION)|g' \
		packaging/rbpf.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/ubpf.pc
	$(SUBST) -e 's|@TARGET@|ubpf::ubpf|g' -e 's|@PACKAGE@|ubpf|g' \
		packaging/Config.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/ubpf/ubpfConfig.cmake
	$(SUBST) -e 's|@PACKAGE@|ubpf|g' -e 's|@PACKAGE_VERSION@|$(UBPF_VERSION)|g' \
		-e 's|@ANY_VERSION@|TRUE|g' \
		-e 's|@ANY_VERSION_NOTE@|Any version request is met: librbpf stands in for the uBPF asked for.|g' \
		packaging/ConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/ubpf/ubpfConfigVersion.cmake
endif

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/rbpf
	rm -f $(DESTDIR)$(LIBDIR)/librbpf.so.$(VERSION) $(DESTDIR)$(LIBDIR)/librbpf.so.$(SOVERSION) \
		$(DESTDIR)$(LIBDIR)/librbpf.so $(DESTDIR)$(LIBDIR)/librbpf.a
	rm -f $(addprefix $(DESTDIR)$(HEADER_DIR)/,$(notdir $(HEADERS)))
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/rbpf.pc
	rm -f $(DESTDIR)$(LIBDIR)/cmake/rbpf/rbpfConfig.cmake \
		$(DESTDIR)$(LIBDIR)/cmake/rbpf/rbpfConfigVersion.cmake
ifeq ($(UBPF_COMPAT),1)
	rm -f $(DESTDIR)$(LIBDIR)/libubpf.so $(DESTDIR)$(LIBDIR)/libubpf.a \
		$(DESTDIR)$(LIBDIR)/pkgconfig/ubpf.pc
	rm -f $(DESTDIR)$(LIBDIR)/cmake/ubpf/ubpfConfig.cmake \
		$(DESTDIR)$(LIBDIR)/cmake/ubpf/ubpfConfigVersion.cmake
endif
	@# librbpf's own directories and those install created, deepest first, each only if empty.
	@created=$$(cat "$(DESTDIR)$(CREATED_DIRS_FILE)" 2>/dev/null); \
	echo rm -f "$(DESTDIR)$(CREATED_DIRS_FILE)"; rm -f "$(DESTDIR)$(CREATED_DIRS_FILE)"; \
	for dir in $$(printf '%s\n' $(OWN_DIRS) $$created | sed '/^$$/d' | sort -r -u); do \
		if [ -d "$(DESTDIR)$$dir" ]; then \
			echo rmdir --ignore-fail-on-non-empty "$(DESTDIR)$$dir"; \
			rmdir --ignore-fail-on-non-empty "$(DESTDIR)$$dir" || exit 1; \
		fi; \
	done
