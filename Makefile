# sysimage - the one entry point (see README.md).
#   make deps    install the Debian packages the project needs (idempotent)
#   make         build build/bin/{sysimage,sysimage-recovery,sysimage-stub}
#   make test    deps + build + every unit, integration and QEMU test
#   make fuzz    libFuzzer targets, each run FUZZ_SECONDS (default 30)
#   make bench   benchmarks that print figures
#   make demo    the product end to end: a QEMU device booting GRUB, updated from
#                nginx by its stub through its recovery, then a factory reset
#   make keys    development key hierarchy under keys/dev (never committed)
#   make check-deps  programs -> lib -> lower lib only (scripts/check-deps.sh)
#   make check-size  no C function over 80 lines (scripts/check-funclen.py)
#   make deb     Debian packages sysimage-stub (service + timer) and sysimage-tools
#   make test-debian  the update loop of the Debian 12 normal OS (root, mirror)
#   make powercut-campaign  >= 100 seeded random power cuts on QEMU (SEED=, CUTS=)

CC      ?= gcc
CLANG   ?= clang
PYTHON  ?= /usr/bin/python3
KEYS    ?= keys/dev
FUZZ_SECONDS ?= 30
B       := build

WARN     := -Wall -Wextra -Werror
CPPFLAGS := -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Ilib -I$(B)/cjson -I$(B)/gen
CFLAGS   := -std=gnu11 -O2 -g $(WARN) -fstack-protector-strong
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -O1 -g

# Libraries. The host tool and the unit tests link dynamically (libcurl for
# `sysimage image --repo URL`, lib/http); the recovery links statically (only
# .a files Debian ships) and never references lib/http; the stub links libcurl
# and libext2fs (the A/B copy reads block bitmaps) dynamically and never
# links libarchive. The recovery never writes archives:
# the version tarball writer is kept apart in lib/version_tar.c so that it is
# not linked (libarchive's writer table pulls in every format, and xar needs
# libxml2, absent in a static link); --gc-sections only drops unused code.
LIBS_HOST     := -lcurl -larchive -lext2fs -lcom_err -lblkid -lfdisk -lzstd -lnettle -lmbedcrypto -lpthread
# libfdisk: Debian 12 ships no libfdisk.a; scripts/build-libfdisk.sh builds it
# from Debian's util-linux source into $(B)/libfdisk (docs/flashing.md).
LIBFDISK_A    := $(B)/libfdisk/lib/libfdisk.a
LIBS_RECOVERY := -static -Wl,--gc-sections -L$(B)/libfdisk/lib -larchive -lnettle -lacl -llzma -lzstd -llz4 -lbz2 -lz \
                 -lext2fs -le2p -lcom_err -lfdisk -lblkid -luuid -lmbedcrypto -lpthread
LIBS_STUB     := -lcurl -lext2fs -lcom_err -lnettle -lmbedcrypto

LIB_SRC      := $(sort $(wildcard lib/*.c))
TOOL_SRC     := $(sort $(wildcard tools/*.c))
RECOVERY_SRC := $(sort $(wildcard recovery/*.c))
STUB_SRC     := $(sort $(wildcard client-stub/*.c))
UNIT_SRC     := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))

CJSON_C   := $(B)/cjson/cJSON.c
GEN_AM_C  := $(B)/gen/builtin_archive_master.c

REL_LIB_OBJ := $(patsubst %.c,$(B)/obj/rel/%.o,$(LIB_SRC)) $(B)/obj/rel/cjson.o
SAN_LIB_OBJ := $(patsubst %.c,$(B)/obj/san/%.o,$(LIB_SRC)) $(B)/obj/san/cjson.o
FUZZ_LIB_OBJ := $(patsubst %.c,$(B)/obj/fuzz/%.o,$(LIB_SRC)) $(B)/obj/fuzz/cjson.o

LIBSI     := $(B)/lib/libsysimage.a
LIBSI_SAN := $(B)/lib/libsysimage-san.a
LIBSI_FUZZ := $(B)/lib/libsysimage-fuzz.a

BINS := $(B)/bin/sysimage $(if $(RECOVERY_SRC),$(B)/bin/sysimage-recovery) \
        $(if $(STUB_SRC),$(B)/bin/sysimage-stub)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))

.PHONY: all deps test unit integration fuzz bench keys demo clean recovery-image recovery-images check-deps check-size \
        recovery-image-faults powercut-campaign deb test-debian
.DELETE_ON_ERROR:

all: $(BINS)

# ---------------------------------------------------------------- deps
deps:
	@scripts/deps.sh

# ---------------------------------------------------------------- cJSON
$(CJSON_C):
	scripts/fetch-cjson.sh $(B)/cjson

# Headers of lib/ include cJSON.h: make sure it exists before any compile.
$(B)/cjson/cJSON.h: $(CJSON_C)

# ---------------------------------------------------------------- objects
$(B)/obj/rel/%.o: %.c | $(B)/cjson/cJSON.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/san/%.o: %.c | $(B)/cjson/cJSON.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/fuzz/%.o: %.c | $(B)/cjson/cJSON.h
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS) -std=gnu11 $(WARN) $(FUZZFLAGS) -MMD -MP -c $< -o $@

# cJSON is third-party: built without our warning flags.
$(B)/obj/rel/cjson.o: $(CJSON_C)
	@mkdir -p $(@D)
	$(CC) -std=c99 -O2 -g -c $< -o $@
$(B)/obj/san/cjson.o: $(CJSON_C)
	@mkdir -p $(@D)
	$(CC) -std=c99 -O1 -g $(SANFLAGS) -c $< -o $@
$(B)/obj/fuzz/cjson.o: $(CJSON_C)
	@mkdir -p $(@D)
	$(CLANG) -std=c99 $(FUZZFLAGS) -c $< -o $@

$(LIBSI): $(REL_LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBSI_SAN): $(SAN_LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBSI_FUZZ): $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# ---------------------------------------------------------------- keys
# The archive-master keyring compiled into the recovery comes from $(KEYS).
$(KEYS)/archive-master.keyring: | $(B)/bin/sysimage
	@if [ "$(KEYS)" = "keys/dev" ]; then scripts/make-dev-keys.sh $(B)/bin/sysimage keys/dev; \
	 else echo "KEYS=$(KEYS) has no archive-master.keyring" >&2; exit 1; fi

keys: $(B)/bin/sysimage
	scripts/make-dev-keys.sh $(B)/bin/sysimage keys/dev

$(GEN_AM_C): $(KEYS)/archive-master.keyring scripts/embed-file.sh
	@mkdir -p $(@D)
	scripts/embed-file.sh si_builtin_archive_master $< > $@

# ---------------------------------------------------------------- programs
$(B)/bin/sysimage: $(patsubst %.c,$(B)/obj/rel/%.o,$(TOOL_SRC)) $(LIBSI)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(LIBS_HOST)

$(LIBFDISK_A):
	scripts/build-libfdisk.sh $(B)/libfdisk

$(B)/bin/sysimage-recovery: $(patsubst %.c,$(B)/obj/rel/%.o,$(RECOVERY_SRC)) $(B)/obj/rel/$(GEN_AM_C:.c=.o) $(LIBSI) | $(LIBFDISK_A)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(LIBS_RECOVERY)

$(B)/obj/rel/$(GEN_AM_C:.c=.o): $(GEN_AM_C)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(B)/bin/sysimage-stub: $(patsubst %.c,$(B)/obj/rel/%.o,$(STUB_SRC)) $(LIBSI)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(LIBS_STUB)

# ---------------------------------------------------------------- recovery image
# The recovery image is a per-board product: Debian's cloud kernel (cached in
# build/kernel) and the initramfs of initramfs/ around the one static recovery
# binary, with the board's board.json (flash mode) and sysimage-bootcount
# (images/BOARD/bootcount.sh: GRUB's counters for /init and the A/B repair).
#   make recovery-image                        build/recovery/{vmlinuz,initrd.img} (qemu-x86_64)
#   make recovery-image BOARD=qemu-x86_64-ab   build/recovery-qemu-x86_64-ab/ (device DEVICE)
# DEVICE: the device model device-signing keyrings name (default qemu-x86_64,
# also for the A/B board: docs/ab.md). OUTDIR/board.json is a copy of the
# embedded board file: `sysimage image`/`flash-media` refuse a recovery image
# of another board.
BOARD ?= qemu-x86_64
DEVICE ?= qemu-x86_64
recovery_dir = $(B)/recovery$(if $(filter-out qemu-x86_64,$(1)),-$(1))
RECOVERY_BOARDS := $(patsubst images/%/board.json,%,$(wildcard images/*/board.json))

recovery-image: $(call recovery_dir,$(BOARD))/initrd.img
recovery-images: $(foreach b,$(RECOVERY_BOARDS),$(call recovery_dir,$(b))/initrd.img)

RECOVERY_IMAGE_DEPS = $(B)/bin/sysimage-recovery initramfs/init initramfs/build.sh initramfs/stage.sh

$(B)/recovery/initrd.img: $(RECOVERY_IMAGE_DEPS) images/qemu-x86_64/bootcount.sh images/qemu-x86_64/board.json
	KERNEL_CACHE=$(CURDIR)/$(B)/kernel SI_BOARD=qemu-x86_64 SI_DEVICE=$(DEVICE) \
	    initramfs/build.sh $(B)/bin/sysimage-recovery $(B)/recovery

.SECONDEXPANSION:
$(B)/recovery-%/initrd.img: $(RECOVERY_IMAGE_DEPS) images/%/board.json $$(wildcard images/$$*/bootcount.sh)
	KERNEL_CACHE=$(CURDIR)/$(B)/kernel SI_BOARD=$* SI_DEVICE=$(DEVICE) \
	    initramfs/build.sh $(B)/bin/sysimage-recovery $(B)/recovery-$*

# A test build of the recovery (build/faults/): SI_TEST_FAULTS compiles in the
# fault-injection knob of recovery/main.c (`sysimage.fault=apply:N` on the
# kernel command line: abort after N bytes of an update). Only this image has
# it; build/bin/sysimage-recovery and build/recovery never do.
FAULTS_OBJ := $(patsubst %.c,$(B)/faults/obj/%.o,$(RECOVERY_SRC))
$(B)/faults/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSI_TEST_FAULTS $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/faults/bin/sysimage-recovery: $(FAULTS_OBJ) $(B)/obj/rel/$(GEN_AM_C:.c=.o) $(LIBSI)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(LIBS_RECOVERY)

recovery-image-faults: $(B)/faults/recovery/initrd.img

$(B)/faults/recovery/initrd.img: $(B)/faults/bin/sysimage-recovery initramfs/init initramfs/build.sh initramfs/stage.sh
	KERNEL_CACHE=$(CURDIR)/$(B)/kernel initramfs/build.sh $(B)/faults/bin/sysimage-recovery $(B)/faults/recovery

-include $(FAULTS_OBJ:.o=.d)

# Issue 15's campaign (not part of `make test`): random power cuts across full
# and delta installs, each converging to the exact tree. SEED= replays a run,
# CUTS= sets the number of cuts (default 100).
powercut-campaign: all recovery-image
	SI_KEYS=$(KEYS) SEED=$(SEED) CUTS=$(CUTS) $(PYTHON) tests/qemu/powercut_campaign.py

# ---------------------------------------------------------------- tests
$(B)/tests/unit/%: $(B)/obj/san/tests/unit/%.o $(LIBSI_SAN)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $^ -lcmocka $(LIBS_HOST)

unit-bins: $(UNIT_BINS)

# The QEMU suite boots build/recovery (recovery-image; the A/B tests
# build/recovery-qemu-x86_64-ab: recovery-images), whose built-in
# archive-master and the test payloads' signatures come from $(KEYS).
# The Debian normal OS's loop (tests/qemu/test_debian.py) runs too: it needs
# root and apt's Debian mirror once (debootstrap, kept in build/debian/base).
test: deps
	$(MAKE) all unit-bins recovery-images recovery-image-faults deb
	scripts/check-deps.sh
	$(PYTHON) scripts/check-funclen.py
	SI_KEYS=$(KEYS) SI_DEBIAN_TESTS=1 $(PYTHON) tests/run_all.py

# The Debian 12 normal OS's update loop (tests/qemu/test_debian.py) alone: needs
# root and the Debian mirror apt uses (`make test` runs it too).
test-debian: deps
	$(MAKE) all recovery-image deb
	SI_KEYS=$(KEYS) SI_DEBIAN_TESTS=1 $(PYTHON) -m pytest -q -rfEs tests/qemu/test_debian.py

unit: unit-bins
	$(PYTHON) tests/run_all.py --only unit

integration: all
	$(PYTHON) tests/run_all.py --only integration

# The one direction of dependencies (docs/architecture.md): programs -> lib ->
# lower lib, no cycle, nothing calls back into a program's main.
check-deps: all
	scripts/check-deps.sh

# No C function in lib/, recovery/, tools/, client-stub/ over 80 lines
# (scripts/check-funclen.py prints file:function:lines of each one over).
check-size:
	$(PYTHON) scripts/check-funclen.py

# ---------------------------------------------------------------- fuzz
$(B)/fuzz/%: $(B)/obj/fuzz/tests/fuzz/%.o $(LIBSI_FUZZ)
	@mkdir -p $(@D)
	$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS_HOST)

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
	  name=$$(basename $$f); corpus=$(B)/fuzz/corpus/$$name; mkdir -p $$corpus; \
	  seeds=tests/fuzz/corpus/$$name; [ -d $$seeds ] || seeds=; \
	  echo "== $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 $$corpus $$seeds 2>$(B)/fuzz/$$name.log \
	    || { tail -50 $(B)/fuzz/$$name.log; echo "fuzz: $$name FAILED"; exit 1; }; \
	  grep -E 'stat::number_of_executed_units' $(B)/fuzz/$$name.log || true; \
	done; echo "fuzz: all targets ran without a crash"

# ---------------------------------------------------------------- demo
# deps, all, keys (made once: the recovery embeds their archive-master), the
# recovery image, then tests/demo/demo.py; one after the other, also under -j.
demo: deps
	$(MAKE) all
	$(MAKE) $(KEYS)/archive-master.keyring
	$(MAKE) recovery-image
	SI_KEYS=$(KEYS) $(PYTHON) tests/demo/demo.py

# ---------------------------------------------------------------- deb
# build/deb/{sysimage-stub,sysimage-tools}_<version>_<arch>.deb, lintian-checked
# (errors fail); packaging/deb/.
deb: $(B)/bin/sysimage $(B)/bin/sysimage-stub
	packaging/deb/build.sh $(B)/deb

# ---------------------------------------------------------------- bench
bench: all recovery-images
	$(PYTHON) tests/bench/run_bench.py

clean:
	rm -rf $(B)/obj $(B)/lib $(B)/bin $(B)/tests $(B)/fuzz $(B)/gen $(B)/faults

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
