# acrida — one entry point. `make run` and `make test` work on a fresh Debian 12 machine.
# SAN=address,undefined builds the same tree with sanitizers into build-san/.

CC      ?= cc
PYTHON  ?= /usr/bin/python3
SAN     ?=
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)

ifeq ($(SAN),)
BUILD   ?= build
OPT     ?= -O2 -g
else
BUILD   ?= build-san
OPT     ?= -O1 -g -fno-omit-frame-pointer -fsanitize=$(SAN) -fno-sanitize-recover=all
LDSAN   := -fsanitize=$(SAN)
endif

LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PKGS    := libuv libzmq msgpack openssl luajit
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) jansson 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# jansson only where it is used: the master's JSON report and the target's counters, not the worker
JSON_LIBS  = $(shell pkg-config --libs jansson 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  += -std=gnu11 $(OPT) $(WARN) -I. -I$(LLHTTP_INC) $(PKG_CFLAGS) \
           -DACR_VERSION='"$(VERSION)"' -MMD -MP
LDLIBS  += $(LDSAN) $(PKG_LIBS) -lm -lpthread

COMMON_SRC := $(wildcard common/*.c proto/*.c)
WORKER_SRC := $(wildcard worker/*.c worker/http/*.c)
MASTER_SRC := $(wildcard master/*.c master/core/*.c master/web/*.c)
TARGET_SRC := $(wildcard tests/target/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIBACR   := $(BUILD)/libacrida.a
LIBHTTP  := $(BUILD)/libllhttp.a
BINS     := $(BUILD)/acrida-master $(BUILD)/acrida-worker $(BUILD)/acrida-target
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

.PHONY: FORCE all deps run test test-unit test-integration test-browser test-san fuzz bench install clean format check-format

all: $(BINS)

deps:
	@bash deploy/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The version string is baked in with -D; the files that use it are rebuilt when it changes (the
# stamp is rewritten only then), so objects of different commits never mix.
VERSION_STAMP := $(BUILD)/version.stamp
$(VERSION_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
FORCE:
VERSION_USERS := $(shell grep -l ACR_VERSION $(COMMON_SRC) $(WORKER_SRC) $(MASTER_SRC) $(TARGET_SRC) 2>/dev/null)
$(call obj,$(VERSION_USERS)): $(VERSION_STAMP)
$(UNITS): $(VERSION_STAMP)

$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -I$(LLHTTP_INC) -w -c $< -o $@

$(LIBHTTP): $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
	$(AR) rcs $@ $^

$(LIBACR): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@; $(AR) rcs $@ $^

$(BUILD)/acrida-worker: $(call obj,$(WORKER_SRC)) $(LIBACR) $(LIBHTTP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The dashboard's files (master/web/assets.h): master/web/assets/ and uPlot's two files from its
# npm package (`make deps` runs npm ci; nothing of uPlot is copied into the tree), embedded as a C
# table by tools/embed_assets.py. The list is a stamp rewritten only when it changes, so adding or
# removing an asset regenerates the table as editing one does.
ASSET_EXTS  := html js css svg png ico json txt
ASSET_FILES := $(sort $(foreach e,$(ASSET_EXTS),$(wildcard master/web/assets/*.$(e)))) \
               node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css
ASSETS_LIST := $(BUILD)/gen/assets.list
ASSETS_C    := $(BUILD)/gen/assets.c
ASSETS_O    := $(BUILD)/gen/assets.o
$(ASSETS_LIST): FORCE
	@mkdir -p $(dir $@)
	@echo '$(ASSET_FILES)' | cmp -s - $@ || echo '$(ASSET_FILES)' > $@
$(ASSETS_C): $(ASSET_FILES) $(ASSETS_LIST) tools/embed_assets.py
	$(PYTHON) tools/embed_assets.py $@ $(ASSET_FILES)
$(ASSETS_O): $(ASSETS_C)
	$(CC) $(CFLAGS) -c $< -o $@
node_modules/uplot/dist/%:
	@echo "$@ is missing: run 'make deps' (it runs npm ci)" >&2; exit 1

$(BUILD)/acrida-master: $(call obj,$(MASTER_SRC)) $(ASSETS_O) $(LIBACR) $(LIBHTTP)
	$(CC) $(LDFLAGS) -o $@ $^ $(JSON_LIBS) $(LDLIBS)

$(BUILD)/acrida-target: $(call obj,$(TARGET_SRC)) $(LIBACR) $(LIBHTTP)
	$(CC) $(LDFLAGS) -o $@ $^ $(JSON_LIBS) $(LDLIBS)

# Unit tests link against the daemons' code (minus the mains) as archives, so a test may also
# #include the .c under test to reach its statics.
LIBWORKER := $(BUILD)/libworker.a
LIBMASTER := $(BUILD)/libmaster.a
$(LIBWORKER): $(filter-out %/main.o,$(call obj,$(WORKER_SRC)))
	@mkdir -p $(dir $@)
	rm -f $@; $(AR) rcs $@ $^
$(LIBMASTER): $(filter-out %/main.o,$(call obj,$(MASTER_SRC))) $(ASSETS_O)
	@mkdir -p $(dir $@)
	rm -f $@; $(AR) rcs $@ $^
UNIT_LINK := $(LIBWORKER) $(LIBMASTER) $(LIBACR) $(LIBHTTP)
$(BUILD)/unit/%: tests/unit/%.c $(UNIT_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(UNIT_LINK) $(JSON_LIBS) $(LDLIBS) -lcmocka

# The entry points install first and build in a fresh make: make caches what it saw of the file
# system when it started, so a rule whose sources `deps` has just installed (llhttp's, in
# /usr/share/llhttp) would not match in the same invocation.
run:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@bash examples/run-demo.sh $(BUILD)

test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory check-format
	$(MAKE) test-unit test-integration test-browser
	$(MAKE) SAN=address,undefined test-san

test-unit: $(UNITS)
	@set -e; for t in $(UNITS); do echo "== $$t"; $$t; done

test-integration: all
	ACRIDA_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The dashboard in headless Chromium (playwright-core from node_modules/, installed by deps).
test-browser: all
	ACRIDA_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/browser

# The sanitizer pass: unit tests and the integration suite against the ASan/UBSan binaries.
test-san: $(UNITS) all
	@set -e; for t in $(UNITS); do echo "== $$t"; $$t; done
	ACRIDA_BUILD=$(abspath $(BUILD)) ACRIDA_SAN=1 $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The suites on a busy machine: `stress-ng --cpu 2` runs beside STRESS_ROUNDS rounds of the unit
# and integration tests and their sanitizer pass (into SAN_BUILD; deps are not re-run). stress-ng
# is stopped by its PID however the loop ends; the first failing round fails the target by number.
STRESS_ROUNDS ?= 5
SAN_BUILD     ?= build-san
.PHONY: test-stress
test-stress:
	@command -v stress-ng >/dev/null || { echo "test-stress: stress-ng is missing (make deps)" >&2; exit 1; }
	@stress-ng --cpu 2 --timeout 6h --quiet & spid=$$!; \
	trap 'kill $$spid 2>/dev/null; wait $$spid 2>/dev/null' EXIT; trap 'exit 1' HUP INT TERM; \
	sleep 1; kill -0 $$spid 2>/dev/null || { echo "test-stress: stress-ng did not start" >&2; exit 1; }; \
	i=1; while [ $$i -le $(STRESS_ROUNDS) ]; do \
	  echo "== test-stress: round $$i of $(STRESS_ROUNDS), stress-ng --cpu 2 running (pid $$spid)"; \
	  $(MAKE) --no-print-directory test-unit test-integration && \
	  $(MAKE) --no-print-directory SAN=address,undefined BUILD=$(SAN_BUILD) test-san || \
	  { echo "test-stress: round $$i of $(STRESS_ROUNDS) FAILED" >&2; exit 1; }; \
	  i=$$((i + 1)); \
	done; \
	echo "test-stress: $(STRESS_ROUNDS) of $(STRESS_ROUNDS) rounds passed beside stress-ng --cpu 2"

FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	@$(MAKE) --no-print-directory deps
	$(MAKE) CC=clang BUILD=build-fuzz OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	  LDSAN="-fsanitize=address,undefined" fuzzers
fuzzers: $(FUZZERS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(UNIT_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -fsanitize=fuzzer -o $@ $< $(UNIT_LINK) $(JSON_LIBS) $(LDLIBS)

bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	bash bench/run.sh $(BUILD)

# `make install PREFIX=/usr/local DESTDIR=` (docs/deploy.md): the three binaries, the systemd
# units (their paths rewritten for BINDIR, SYSCONFDIR and DOCDIR), the sysusers.d file of the
# `acrida` user, the environment file, and the docs and examples in the repository's layout (so
# their relative links work). systemd reads units from /usr/local/lib/systemd/system and
# /usr/lib/systemd/system; for another PREFIX set UNITDIR=/etc/systemd/system. An existing
# SYSCONFDIR/acrida/acrida.env is never overwritten (an upgrade keeps the operator's settings;
# the new one is always in DOCDIR/acrida.env). Installed into the real root (no DESTDIR) as
# root, the `acrida` user is created with systemd-sysusers and systemd is told to reload.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR      ?= $(PREFIX)/share/doc/acrida
UNIT_FILES  := deploy/acrida-master.service deploy/acrida-worker@.service
UNIT_SED    := -e 's|/usr/local/share/doc/acrida|$(DOCDIR)|g' -e 's|/usr/local/bin/|$(BINDIR)/|g' \
               -e 's|/etc/acrida/|$(SYSCONFDIR)/acrida/|g'
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/acrida $(DESTDIR)$(DOCDIR)/docs/img $(DESTDIR)$(DOCDIR)/proto \
	  $(DESTDIR)$(DOCDIR)/examples
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	@set -e; for u in $(UNIT_FILES); do \
	  echo "install $$u -> $(DESTDIR)$(UNITDIR)/"; \
	  sed $(UNIT_SED) $$u > $(DESTDIR)$(UNITDIR)/$${u#deploy/}.tmp; \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$${u#deploy/}.tmp; \
	  mv -f $(DESTDIR)$(UNITDIR)/$${u#deploy/}.tmp $(DESTDIR)$(UNITDIR)/$${u#deploy/}; \
	done
	install -m 644 deploy/acrida.sysusers $(DESTDIR)$(SYSUSERSDIR)/acrida.conf
	install -m 644 README.md deploy/acrida.env $(DESTDIR)$(DOCDIR)/
	install -m 644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/acrida/acrida.env ]; then \
	  echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/acrida/acrida.env (the new one is $(DOCDIR)/acrida.env)"; \
	else \
	  echo "install -m 600 deploy/acrida.env $(DESTDIR)$(SYSCONFDIR)/acrida/acrida.env"; \
	  install -m 600 deploy/acrida.env $(DESTDIR)$(SYSCONFDIR)/acrida/acrida.env; \
	fi
	install -m 644 docs/img/*.png $(DESTDIR)$(DOCDIR)/docs/img/
	install -m 644 proto/PROTOCOL.md $(DESTDIR)$(DOCDIR)/proto/
	@set -e; cd examples; find . -type f | sort | while read -r f; do \
	  m=644; [ -x "$$f" ] && m=755; \
	  echo "install -m $$m examples/$${f#./} -> $(DESTDIR)$(DOCDIR)/examples/"; \
	  install -D -m $$m "$$f" "$(DESTDIR)$(DOCDIR)/examples/$${f#./}"; \
	done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v systemd-sysusers >/dev/null; then \
	  echo "systemd-sysusers $(SYSUSERSDIR)/acrida.conf"; systemd-sysusers $(SYSUSERSDIR)/acrida.conf; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	else \
	  echo "install: the units run as user acrida: on the target machine run systemd-sysusers (docs/deploy.md)"; \
	fi

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRC)
check-format:
	@clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name "*.d" 2>/dev/null)
