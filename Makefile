# Silica build.
#
# Every folder under src/ is one part; its .c files form one archive
# ($(BUILD)/lib<part>.a).  Unit tests are tests/unit/test_<name>.c, one binary
# each; a test names the parts it links in a first-line comment
# `/* deps: base gguf kernels */`, so a test builds as soon as the parts it
# needs do.  The `silica` binary links every part.
#
# Two flavours:  BUILD=build/release (-O2, the binary `make run` uses) and
# BUILD=build/test (-O1 -g, ASan + UBSan, what `make test` runs).

CC      ?= cc
PKGS    := libevent libevent_pthreads jansson libpcre2-8 libutf8proc sqlite3 libcrypto libpq hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wvla
BASEFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Isrc -Itests/unit $(WARN) $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lm -lz -pthread

FLAVOR  ?= release
ifeq ($(FLAVOR),test)
BUILD   ?= build/test
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD   ?= build/release
OPT     := -O2 -g
endif
CFLAGS  += $(BASEFLAGS) $(OPT)
LDFLAGS += $(filter -fsanitize%,$(OPT))

PARTS   := base gguf kernels model tokenizer chat grammar sampling engine server platform router
SRCS    := $(foreach p,$(PARTS),$(wildcard src/$(p)/*.c src/$(p)/*/*.c))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS := $(wildcard src/cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TESTS   := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

# Per-ISA kernel files are compiled with their target flags; the code in them
# only runs after run-time CPU detection chose it.
$(BUILD)/src/kernels/avx2/%.o: OPT += -mavx2 -mfma -mf16c -mbmi2
$(BUILD)/src/kernels/avxvnni/%.o: OPT += -mavx2 -mfma -mf16c -mbmi2 -mavxvnni
$(BUILD)/src/kernels/avx512/%.o: OPT += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c

.PHONY: all silica test unit unit-run e2e run bench deps deps-test clean fuzz format

all: silica

silica: $(BUILD)/silica

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

define part_lib
$(BUILD)/lib$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(wildcard src/$(1)/*.c src/$(1)/*/*.c))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach p,$(PARTS),$(eval $(call part_lib,$(p))))

# The web console's files (web/*) are compiled into the server: a generator
# (scripts/embed.c, plain C) writes them as a C table; any change in web/
# (a file edited, added or removed) rebuilds it.
WEB_FILES := $(sort $(wildcard web/*))
$(BUILD)/gen/embed: scripts/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O1 -Wall -Wextra -Werror -o $@ $<
$(BUILD)/gen/console_files.c: $(BUILD)/gen/embed $(WEB_FILES) web
	$(BUILD)/gen/embed $@ $(WEB_FILES)
$(BUILD)/gen/console_files.o: $(BUILD)/gen/console_files.c
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/libserver.a: $(BUILD)/gen/console_files.o

# Link order: dependents before dependencies.
LINK_ORDER := router platform server engine sampling grammar chat tokenizer model kernels gguf base
ALL_LIBS := $(foreach p,$(LINK_ORDER),$(if $(wildcard src/$(p)/*.c),$(BUILD)/lib$(p).a))

$(BUILD)/silica: $(CLI_OBJS) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LDLIBS)

test_deps = $(shell head -1 tests/unit/$(1).c | sed -n 's/.*deps:\(.*\)\*\/.*/\1/p')
define unit_test
$(BUILD)/tests/$(1): $(BUILD)/tests/unit/$(1).o $(foreach d,$(call test_deps,$(1)),$(BUILD)/lib$(d).a)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$< -Wl,--start-group $$(filter %.a,$$^) -Wl,--end-group $$(LDLIBS)
endef
$(foreach t,$(TESTS),$(eval $(call unit_test,$(t))))

unit-build: $(TESTS:%=$(BUILD)/tests/%) $(BUILD)/silica

# `make test`: deps, then unit tests under ASan+UBSan, then the end-to-end
# tests against the release binary.
test: deps-test
	$(MAKE) FLAVOR=test unit-build
	$(MAKE) FLAVOR=test unit
	$(MAKE) FLAVOR=release silica
	$(MAKE) e2e

# The unit tests run beside a throwaway PostgreSQL server (tests/pg.sh) so
# the platform's tests cover both of its backends, and a throwaway Redis
# (tests/redis.sh) for the shared rate limits; without them they say that
# they skipped PostgreSQL or Redis.
unit:
	@sh tests/pg.sh run sh tests/redis.sh run $(MAKE) --no-print-directory unit-run

unit-run:
	@set -e; for t in $(TESTS); do echo "== $$t"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(BUILD)/tests/$$t; done; echo "unit: all passed"

e2e:
	@sh tests/e2e/run.sh

run: deps
	$(MAKE) FLAVOR=release silica
	sh scripts/run.sh

bench: deps
	$(MAKE) FLAVOR=release silica
	sh bench/run.sh

deps:
	@sh scripts/deps.sh

deps-test:
	@sh scripts/deps.sh --test

fuzz:
	sh tests/fuzz/build.sh

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]')

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TESTS:%=$(BUILD)/tests/unit/%.d)
