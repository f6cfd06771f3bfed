# Tide - build, test, benchmark, install.
# Every tool and path is an overridable variable (make CC=clang PREFIX=...).

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
LUA_LDIR   ?= $(PREFIX)/share/lua/5.4
LUA_CDIR   ?= $(PREFIX)/lib/lua/5.4
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC         ?= cc
LUA        ?= lua5.4
LUAJIT     ?= luajit
BUSTED     ?= busted
LUA_INCDIR ?= /usr/include/lua5.4
LUA_LIB    ?= -llua5.4
LUAJIT_INCDIR ?= /usr/include/luajit-2.1
LUAJIT_LIB ?= -lluajit-5.1
SHARED     ?= ../shared
DATA       ?= $(SHARED)/data
BUILD      ?= build

OPT        ?= -O2
CFLAGS     ?= $(OPT) -g
TD_CFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
              -fPIC -pthread -I. -Icore -Istate -I$(LUA_INCDIR) -I/usr/include/postgresql
SYSLIBS     = -lev -lsodium -lpq -lrocksdb -lrdkafka -lmicrohttpd -ljansson -lz -lxxhash -lisal -lm -ldl -pthread
LDLIBS     ?= $(LUA_LIB) $(SYSLIBS)
# the same sources for the LuaJIT host: LuaJIT's headers, TD_LUAJIT
TDJ_CFLAGS  = $(subst -I$(LUA_INCDIR),-I$(LUAJIT_INCDIR),$(TD_CFLAGS)) -DTD_LUAJIT
SAN        ?=

DEBIAN_PKGS = lua5.4 liblua5.4-dev luajit libluajit-5.1-dev librocksdb-dev \
              libev-dev lua-busted luarocks pkg-config zlib1g-dev \
              libxxhash-dev xxhash libisal-dev python3 gzip time \
              cppcheck lua-check libmicrohttpd-dev libjansson-dev \
              librdkafka-dev kcat libpq-dev postgresql libsodium-dev gdb

CORE_SRC   = $(filter-out core/main.c core/lua_module.c,$(wildcard core/*.c)) \
             $(wildcard state/*.c)
CORE_OBJ   = $(CORE_SRC:%.c=$(BUILD)/%.o)
# what runs Lua (compiled once per VM) and what does not (shared)
LUA_SRC    = core/host_lua54.c core/chunkcache.c core/codec.c core/source_file.c core/module_lua.c core/state_lua.c \
             core/kafka_lua.c core/json_lua.c core/socket_lua.c core/postgres_lua.c
FREE_OBJ   = $(filter-out $(LUA_SRC:%.c=$(BUILD)/%.o) $(BUILD)/core/luaalloc.o,$(CORE_OBJ))
JIT_OBJ    = $(LUA_SRC:%.c=$(BUILD)/luajit/%.o)
TEST_SRC   = $(wildcard tests/core/test_*.c)
# the fuzz targets' corpora replayed as tests (tests/fuzz/replay.c)
FUZZ_TARGETS = codec snapshot csv wire
FUZZ_REPLAY  = $(FUZZ_TARGETS:%=$(BUILD)/tests/test_fuzz_%)
FUZZ_HEADERS = tests/fuzz/fuzz.h tests/core/deq.h
TEST_BIN   = $(TEST_SRC:tests/core/%.c=$(BUILD)/tests/%) $(FUZZ_REPLAY)
HEADERS    = $(wildcard core/*.h state/*.h)
# C modules: the example (scripts/modules) and the test modules
# (tests/modules), built against core/tide.h alone, as a user builds one
MODULES    = $(BUILD)/modules/streamkit.so $(BUILD)/modules/nexmark.so \
             $(patsubst tests/modules/%.c,$(BUILD)/modules/%.so,$(wildcard tests/modules/*.c)) \
             $(BUILD)/modules/newminor.so
MOD_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fPIC -shared -Icore

# Fuzzing with libFuzzer (clang 14; Debian packages FUZZ_PKGS): one target
# per decoder in tests/fuzz/, each run FUZZ_SECONDS over its corpus.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 45
FUZZ_FLAGS   ?=
FUZZ_BUILD   ?= build-fuzz
FUZZ_PKGS     = clang-14 libclang-rt-14-dev
FUZZ_SAN      = -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# tiny reader buffers: records straddle refills, buffers grow
FUZZ_CFLAGS  ?= -O1 -g -DTD_RD_BUF=64u -DTD_RD_GZBUF=64u

.PHONY: all deps test check test-c test-lua test-luajit test-e2e test-asan valgrind \
        bench bench-nexmark demo install install-headers uninstall clean lint cdef fuzz fuzz-build fuzz-merge modules \
        deps-browser

all: $(BUILD)/tide $(BUILD)/libtide.so $(BUILD)/lua/tide/core.so \
     $(BUILD)/tide-luajit $(BUILD)/luajit/lua/tide/core.so

# Install whatever Debian package is missing (as root, or through sudo).
deps:
	@missing=""; for p in $(DEBIAN_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Debian's Chromium for the dashboard's browser test (tests/e2e/
# test_dashboard.sh): installed when missing, but a machine that cannot
# install it still tests the rest (the test says what it skipped).
BROWSER_PKGS = chromium
deps-browser: deps
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "deps-browser: installing $(BROWSER_PKGS)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BROWSER_PKGS) >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -qq && \
	         DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BROWSER_PKGS); } \
	    || echo "deps-browser: cannot install $(BROWSER_PKGS): the dashboard's browser checks will be skipped"; }

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -c $< -o $@

# the dashboard's files are built into web.o (core/web.c)
WEB_FILES  = $(wildcard core/web/*)
$(BUILD)/core/web.o: $(WEB_FILES)

$(BUILD)/libtide.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtide.so: $(CORE_OBJ)
	$(CC) -shared $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tide: $(BUILD)/core/main.o $(BUILD)/libtide.a
	$(CC) $(SAN) -rdynamic -o $@ $^ $(LDLIBS)

# The LuaJIT host: `tide run --vm luajit` runs it (Lua 5.4 and LuaJIT
# cannot share a binary: DEPS.md).
$(BUILD)/luajit/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(TDJ_CFLAGS) $(CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/tide-luajit: $(BUILD)/luajit/core/main.o $(JIT_OBJ) $(FREE_OBJ)
	$(CC) $(SAN) -rdynamic -o $@ $^ $(LUAJIT_LIB) $(SYSLIBS)

$(BUILD)/luajit/lua/tide/core.so: $(BUILD)/luajit/core/lua_module.o $(JIT_OBJ) $(FREE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -o $@ $^ $(SYSLIBS)

# The ffi.cdef text of the LuaJIT bindings, from core/tide.h.
cdef: lua/tide/cdef.lua
lua/tide/cdef.lua: core/tide.h core/cdef.sh
	sh core/cdef.sh core/tide.h >$@

# The Lua C module for plain lua5.4 scripts: require "tide" finds tide.core.
$(BUILD)/lua/tide/core.so: $(BUILD)/core/lua_module.o $(BUILD)/libtide.a
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -o $@ $^ $(SYSLIBS)

$(BUILD)/tests/%: tests/core/%.c $(BUILD)/libtide.a tests/core/testlib.h tests/core/deq.h \
             tests/core/state_cases.h tests/core/tmpdir.h
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -rdynamic -Itests/core -o $@ $< $(BUILD)/libtide.a $(LDLIBS)

# The module tests load the modules built here.
$(BUILD)/tests/test_module: tests/core/test_module.c $(BUILD)/libtide.a tests/core/testlib.h $(MODULES)
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -Itests/core -DTD_MODULES_DIR='"$(BUILD)/modules"' \
	  -o $@ $< $(BUILD)/libtide.a $(LDLIBS)

modules: $(MODULES)

# librdkafka's mock cluster for the Kafka tests (tests/e2e/kafka.sh)
# and a producer with explicit partitions and timestamps
KAFKA_MOCK = $(BUILD)/tests/kafka_mock_cluster $(BUILD)/tests/kafka_produce
$(BUILD)/tests/kafka_mock_cluster: tests/kafka/mock_cluster.c
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -o $@ $< -lrdkafka

$(BUILD)/tests/kafka_produce: tests/kafka/produce.c
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -o $@ $< -lrdkafka

$(BUILD)/modules/streamkit.so: scripts/modules/streamkit.c core/tide.h
	@mkdir -p $(dir $@)
	$(CC) $(MOD_CFLAGS) $(CFLAGS) $(SAN) -o $@ $<

# the Nexmark generator (scripts/nexmark, docs/NEXMARK.md)
$(BUILD)/modules/nexmark.so: scripts/nexmark/nexmark.c core/tide.h
	@mkdir -p $(dir $@)
	$(CC) $(MOD_CFLAGS) $(CFLAGS) $(SAN) -o $@ $< -lm

$(BUILD)/modules/%.so: tests/modules/%.c core/tide.h
	@mkdir -p $(dir $@)
	$(CC) $(MOD_CFLAGS) $(CFLAGS) $(SAN) -o $@ $<

# badabi.c declaring the core's major and a minor above the core's
$(BUILD)/modules/newminor.so: tests/modules/badabi.c core/tide.h
	@mkdir -p $(dir $@)
	$(CC) $(MOD_CFLAGS) $(CFLAGS) $(SAN) -DBADABI_MAJOR=TIDE_ABI_MAJOR \
	  -DBADABI_MINOR='(TIDE_ABI_MINOR + 1)' -o $@ $<

# A fuzz target's corpus replayed without libFuzzer, one child per input.
$(BUILD)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_HEADERS) $(BUILD)/libtide.a
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -Itests/fuzz -DFUZZ_CORPUS='"tests/fuzz/corpus/$*"' \
	  -o $@ tests/fuzz/replay.c $< $(BUILD)/libtide.a $(LDLIBS)

# deps first, then the build (also under make -j: nothing compiles before
# the packages it needs are installed), on every core unless make was
# given -j itself
TEST_BUILD_JOBS = $(if $(findstring -j,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))
test check: deps deps-browser
	@$(MAKE) --no-print-directory $(TEST_BUILD_JOBS) all $(TEST_BIN) modules $(KAFKA_MOCK)
	@BUILD=$(BUILD) LUA=$(LUA) LUAJIT=$(LUAJIT) BUSTED=$(BUSTED) DATA=$(DATA) sh tests/run.sh

test-c: all $(TEST_BIN) modules
	@BUILD=$(BUILD) sh tests/run.sh c

test-lua: all modules
	@BUILD=$(BUILD) LUA=$(LUA) BUSTED=$(BUSTED) sh tests/run.sh lua

# everything under LuaJIT: the library parses, every spec and every
# end-to-end test passes with the LuaJIT host (build/tide-luajit)
test-luajit: all $(KAFKA_MOCK)
	@BUILD=$(BUILD) LUAJIT=$(LUAJIT) BUSTED=$(BUSTED) DATA=$(DATA) sh tests/run.sh luajit

test-e2e: all modules $(KAFKA_MOCK)
	@BUILD=$(BUILD) DATA=$(DATA) sh tests/run.sh e2e

# Everything built with AddressSanitizer and UBSan, in its own build dir.
test-asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  all $(patsubst $(BUILD)/%,build-asan/%,$(TEST_BIN) $(KAFKA_MOCK)) modules
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  BUILD=build-asan LUA=$(LUA) LUAJIT=$(LUAJIT) BUSTED=$(BUSTED) DATA=$(DATA) TIDE_ASAN=1 sh tests/run.sh

valgrind: all $(TEST_BIN) modules
	@for t in $(TEST_BIN); do valgrind -q --error-exitcode=1 --leak-check=full $$t >/dev/null || exit 1; done
	@echo "valgrind: clean"

# Each target runs FUZZ_SECONDS over tests/fuzz/corpus/<target> (read
# only: what it finds goes to $(FUZZ_BUILD)/corpus/<target>); a crash or a
# failed property stops with the input in $(FUZZ_BUILD)/crash-<target>-*.
fuzz:
	@$(MAKE) --no-print-directory deps DEBIAN_PKGS="$(DEBIAN_PKGS) $(FUZZ_PKGS)"
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" \
	  SAN="$(FUZZ_SAN)" fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  case $$t in codec) len=2048 ;; *) len=8192 ;; esac; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$len \
	    -timeout=20 -rss_limit_mb=2048 -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- $(FUZZ_FLAGS) \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1 \
	  || { tail -n 40 $(FUZZ_BUILD)/fuzz_$$t.log; \
	       echo "fuzz: $$t FAILED (the input: $(FUZZ_BUILD)/crash-$$t-*)"; exit 1; }; \
	  grep -E '^Done|^#[0-9]+.*DONE' $(FUZZ_BUILD)/fuzz_$$t.log | tail -n 1; \
	done

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HEADERS) $(BUILD)/libtide.a
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) $(CFLAGS) $(SAN) -fsanitize=fuzzer -Itests/fuzz -o $@ $< \
	  $(BUILD)/libtide.a $(LDLIBS)

# Add to the repository's corpora the inputs of $(FUZZ_BUILD)/corpus that
# cover something new (libFuzzer's -merge keeps the smallest such inputs).
fuzz-merge:
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t $(FUZZ_BUILD)/corpus/$$t \
	    >$(FUZZ_BUILD)/merge_$$t.log 2>&1 || { tail -n 20 $(FUZZ_BUILD)/merge_$$t.log; exit 1; }; \
	done; ls tests/fuzz/corpus/* | wc -l

# issue 14's shuffle benchmark, over the core's library
$(BUILD)/bench/shuffle: scripts/bench/shuffle.c $(BUILD)/libtide.a
	@mkdir -p $(dir $@)
	$(CC) $(TD_CFLAGS) -O2 -o $@ $< $(BUILD)/libtide.a $(LDLIBS)

bench: deps
	@$(MAKE) --no-print-directory all modules $(BUILD)/bench/shuffle
	@BUILD=$(BUILD) DATA=$(DATA) sh scripts/bench/run.sh

# issue 15: every Nexmark query on 10M events beside Flink's per-core figures
bench-nexmark: deps
	@$(MAKE) --no-print-directory all modules
	@BUILD=$(BUILD) sh scripts/bench/nexmark.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@rm -rf out/wordcount
	$(BUILD)/tide run scripts/wordcount.lua --parallelism 2 -- $(DATA)/git-messages.txt.gz out/wordcount 20

install: all install-headers
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LUA_LDIR)/tide $(DESTDIR)$(LUA_CDIR)/tide
	install -m 755 $(BUILD)/tide $(DESTDIR)$(BINDIR)/tide
	install -m 755 $(BUILD)/tide-luajit $(DESTDIR)$(BINDIR)/tide-luajit
	install -m 644 $(BUILD)/libtide.so $(DESTDIR)$(LIBDIR)/libtide.so
	install -m 644 $(BUILD)/libtide.a $(DESTDIR)$(LIBDIR)/libtide.a
	install -m 644 lua/tide.lua $(DESTDIR)$(LUA_LDIR)/tide.lua
	install -m 644 lua/tide/*.lua $(DESTDIR)$(LUA_LDIR)/tide/
	install -m 755 $(BUILD)/lua/tide/core.so $(DESTDIR)$(LUA_CDIR)/tide/core.so

# What a C module builds against: tide.h (self-contained) and tide.pc
# (cc -shared -fPIC -o my.so my.c $(pkg-config --cflags tide)). Modules
# link nothing of Tide's, so tide.pc has no Libs.
install-headers:
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 core/tide.h $(DESTDIR)$(INCLUDEDIR)/tide.h
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$(INCLUDEDIR)' '' 'Name: tide' \
	  'Description: Tide stream processor: the C module ABI (tide.h)' \
	  'Version: $(shell sed -n 's/^#define TD_VERSION "\(.*\)"/\1/p' core/host.h)' \
	  'Cflags: -I$${includedir}' >$(DESTDIR)$(PKGCONFIGDIR)/tide.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/tide.h $(DESTDIR)$(PKGCONFIGDIR)/tide.pc
	rm -f $(DESTDIR)$(BINDIR)/tide $(DESTDIR)$(BINDIR)/tide-luajit $(DESTDIR)$(LIBDIR)/libtide.so $(DESTDIR)$(LIBDIR)/libtide.a
	rm -rf $(DESTDIR)$(LUA_LDIR)/tide $(DESTDIR)$(LUA_LDIR)/tide.lua $(DESTDIR)$(LUA_CDIR)/tide

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning -Icore -Istate core state scripts/modules scripts/nexmark tests/modules
	luacheck --quiet --std lua54 --no-max-line-length --no-unused-args lua scripts tests/e2e/*.lua
	@# the library, example jobs, modules' jobs, benchmarks and test jobs use
	@# nothing LuaJIT lacks (docs/LUAJIT.md)
	luacheck --quiet --std luajit --no-max-line-length --no-unused-args lua/tide.lua lua/tide scripts tests/e2e/*.lua

clean:
	rm -rf build build-asan $(FUZZ_BUILD) out
