# mod_redeem — see README.md. `make run` serves the API; `make test` runs the suite.
SHELL := /bin/bash
include apxs.mk

BUILD    ?= build
SRC_DIR  := mod_redeem
# The httpd-free core (also built into the unit tests and fuzzers) and the glue.
CORE_SOURCES := $(wildcard $(SRC_DIR)/core/*.c)
SOURCES  := $(CORE_SOURCES) $(wildcard $(SRC_DIR)/httpd/*.c)
HEADERS  := $(wildcard $(SRC_DIR)/core/*.h $(SRC_DIR)/httpd/*.h)
UNIT_HEADERS := $(wildcard t/unit/*.h)
OBJECTS  := $(patsubst $(SRC_DIR)/%.c,$(BUILD)/obj/%.o,$(SOURCES))
MODULE   := $(BUILD)/mod_redeem.so

# The one version of the module, its package and its Server banner: VERSION.
REDEEM_VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
WARNINGS := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -fPIC $(CFLAGS) $(WARNINGS) -DREDEEM_VERSION='"$(REDEEM_VERSION)"' -I$(SRC_DIR) $(APXS_INCS) $(APR_CPPFLAGS) -fstack-protector-strong -D_FORTIFY_SOURCE=2 -I$(PG_INCLUDEDIR)
LIBS     := -ljansson -largon2 -lcrypto -lpq -lhiredis
# libjwt: the reference the unit tests check the module's tokens against (it
# issued them until the module wrote them itself); the module does not link it.
REFERENCE_LIBS := -ljwt

.PHONY: all build deps pg run stop test unit asan clean format install bench deb

all: build
build: $(MODULE)

# V=1 shows the whole command lines.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: $(SRC_DIR)/%.c $(HEADERS) VERSION
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(MODULE): $(OBJECTS)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $(OBJECTS) $(LDFLAGS) $(LIBS)

$(BUILD)/obj:
	mkdir -p $@

deps:
	@scripts/deps.sh

pg: deps
	@scripts/pg.sh start redeem

run: deps
	@$(MAKE) --no-print-directory build
	@scripts/pg.sh start redeem
	@scripts/run-httpd.sh

stop:
	@scripts/stop.sh

test: deps
	@$(MAKE) --no-print-directory build unit asan fuzz-build
	@scripts/test.sh
	@REDEEM_ASAN=1 scripts/test.sh

unit: $(BUILD)/unit_tests $(BUILD)/limit_tests $(BUILD)/user_reads_tests $(BUILD)/db_state_tests $(BUILD)/admin_tests $(BUILD)/pool_gate_tests $(BUILD)/metrics_tests

$(BUILD)/unit_tests: t/unit/unit_tests.c $(CORE_SOURCES) $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) -std=gnu11 $(CFLAGS) $(WARNINGS) $(APR_CPPFLAGS) $(APXS_INCS) -I$(SRC_DIR) \
	  t/unit/unit_tests.c $(CORE_SOURCES) -o $@ -lapr-1 $(LIBS) $(REFERENCE_LIBS)

# The rate limiter's core, with threads and forked processes racing on one table
# (limit_table.c included, not linked, for its static functions).
# (t/unit/limit_tests.sh tsan runs it under ThreadSanitizer.)
$(BUILD)/limit_tests: t/unit/limit_tests.c $(SRC_DIR)/core/gcra.c $(SRC_DIR)/core/limit_table.c $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) -std=gnu11 $(CFLAGS) $(WARNINGS) -pthread -I$(SRC_DIR) \
	  t/unit/limit_tests.c $(SRC_DIR)/core/gcra.c -o $@

# The line of user reads (httpd/user_reads.c, included for its static
# functions) with what it calls outside itself stubbed: no httpd needed.
$(BUILD)/user_reads_tests: t/unit/user_reads_tests.c $(SRC_DIR)/httpd/user_reads.c $(SRC_DIR)/core/sync.c $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) t/unit/user_reads_tests.c $(SRC_DIR)/core/sync.c -o $@ $(LDFLAGS) -lapr-1 -laprutil-1

# A child's view of whether its database answers (httpd/db.c, with
# handle_health.c and failure.c, included for their static functions) under
# a stepped wall clock: both clocks the test's own, the rest stubbed.
DB_STATE_SOURCES := $(SRC_DIR)/httpd/db.c $(SRC_DIR)/httpd/handle_health.c $(SRC_DIR)/httpd/failure.c
$(BUILD)/db_state_tests: t/unit/db_state_tests.c $(DB_STATE_SOURCES) $(SRC_DIR)/core/log_throttle.c $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) t/unit/db_state_tests.c $(SRC_DIR)/core/log_throttle.c -o $@ $(LDFLAGS) \
	  -lapr-1 -laprutil-1 -ljansson -lpq

# RedeemAdmin's set-up (httpd/admin.c) with the hashing slots (hashing.c),
# the database and argon2 stubbed.
$(BUILD)/admin_tests: t/unit/admin_tests.c $(SRC_DIR)/httpd/admin.c $(SRC_DIR)/httpd/hashing.c $(SRC_DIR)/core/sync.c $(SRC_DIR)/core/clock.c $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) t/unit/admin_tests.c $(SRC_DIR)/core/sync.c $(SRC_DIR)/core/clock.c -o $@ $(LDFLAGS) -lapr-1 -laprutil-1

# The wait for a pooled connection (httpd/pool_gate.c) with mod_dbd's
# acquire stubbed.
$(BUILD)/pool_gate_tests: t/unit/pool_gate_tests.c $(SRC_DIR)/httpd/pool_gate.c $(SRC_DIR)/core/sync.c $(SRC_DIR)/core/clock.c $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) t/unit/pool_gate_tests.c $(SRC_DIR)/core/sync.c $(SRC_DIR)/core/clock.c -o $@ $(LDFLAGS) -lapr-1 -laprutil-1

# The metrics' request durations (httpd/metrics.c) under a stepped wall
# clock: both clocks the test's own, the shared counters stubbed.
$(BUILD)/metrics_tests: t/unit/metrics_tests.c $(SRC_DIR)/httpd/metrics.c $(HEADERS) $(UNIT_HEADERS) | $(BUILD)/obj
	@$(if $(V),,echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) t/unit/metrics_tests.c -o $@ $(LDFLAGS) -lapr-1 -laprutil-1

# The module and the unit tests built with AddressSanitizer and UBSan, used
# by the suite with REDEEM_ASAN=1 (see t/lib/Test/Redeem.pm and t/unit*.t).
# Every local variable left uninitialized starts as a pattern (0xfe bytes),
# not as whatever the stack held: a read of one before it is set crashes or
# fails here, where in the plain build it may pass by luck (run_statement's
# result, ed47986).
asan:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -ftrivial-auto-var-init=pattern" \
	  LDFLAGS="-fsanitize=address,undefined" build unit

# libFuzzer targets, one per parser of untrusted input, with their seed
# corpus and dictionaries: fuzz/fuzz.mk (make fuzz, fuzz-replay, ...).
include fuzz/fuzz.mk

install: build
	install -m 0644 $(MODULE) $(DESTDIR)$(APXS_LIBEXECDIR)/mod_redeem.so

format:
	clang-format -i $(SRC_DIR)/*/*.[ch] t/unit/*.c fuzz/*.[ch]

# The Debian package libapache2-mod-redeem, into build/deb/ (scripts/deb.sh).
deb:
	@scripts/deps.sh build
	@scripts/deb.sh

bench: deps
	@$(MAKE) --no-print-directory build
	@bench/run.sh

clean:
	rm -rf $(BUILD)/obj $(BUILD)/asan $(BUILD)/fuzz $(BUILD)/fuzz-cov $(MODULE) $(BUILD)/unit_tests $(BUILD)/limit_tests $(BUILD)/user_reads_tests $(BUILD)/db_state_tests $(BUILD)/admin_tests $(BUILD)/pool_gate_tests $(BUILD)/metrics_tests
