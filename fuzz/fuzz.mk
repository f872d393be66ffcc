# libFuzzer targets over the parsers of untrusted input, one per parser
# (fuzz/README.md). Included by the Makefile, which defines BUILD, SRC_DIR,
# CORE_SOURCES, HEADERS, WARNINGS, APR_CPPFLAGS and APXS_INCS. Needs clang
# and libclang-rt-14-dev (the fuzzer and sanitizer runtimes).
#
#   make fuzz            every target for FUZZ_SECONDS (default 60) each, new
#                        inputs into build/fuzz/corpus/<target>, crashes into
#                        build/fuzz/artifacts/ (make -k: go on after a crash)
#   make fuzz-<target>   one target (e.g. make fuzz-token FUZZ_SECONDS=600)
#   make fuzz-replay     build, then run each target once over its committed
#                        corpus fuzz/corpus/<target>/ (seconds; make test)
#   make fuzz-merge      add to fuzz/corpus/ only the found inputs that reach
#                        new coverage (then review and commit them)
#   make fuzz-build      build only
#   make fuzz-coverage   line coverage of the core reached by the committed
#                        corpus (needs llvm-profdata and llvm-cov: llvm)
#
# FUZZ_STRICT=name,... turns on the checks of known open items
# (fuzz/README.md); FUZZ_SKIP=exp-overflow,error-utf8 steps around the
# reported bugs that stop a run within a minute.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   ?=
FUZZ_TARGETS := token code timestamp email text body query gcra
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BINS    := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))

FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   := -std=gnu11 -g -O1 -fno-omit-frame-pointer $(FUZZ_SANITIZE) $(WARNINGS) \
                 -I$(SRC_DIR) -Ifuzz $(APR_CPPFLAGS) $(APXS_INCS)
FUZZ_LIBS     := -lapr-1 -ljansson -largon2 -lcrypto

# Longest input per target: tokens up to the 4 KiB cap and a little more;
# bodies up to a few KiB; the rest are short strings.
FUZZ_MAX_LEN_token     := 4200
FUZZ_MAX_LEN_body      := 4096
FUZZ_MAX_LEN_code      := 256
FUZZ_MAX_LEN_timestamp := 128
FUZZ_MAX_LEN_email     := 1100
FUZZ_MAX_LEN_text      := 512
FUZZ_MAX_LEN_query     := 1024
FUZZ_MAX_LEN_gcra      := 1024

# The core, instrumented once for all targets.
FUZZ_CORE_OBJS := $(patsubst $(SRC_DIR)/%.c,$(FUZZ_DIR)/obj/%.o,$(CORE_SOURCES))

# Kept between runs (pattern-made files would count as intermediate).
.SECONDARY: $(FUZZ_CORE_OBJS) $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: $(SRC_DIR)/%.c $(HEADERS)
	@mkdir -p $(@D)
	@$(if $(V),,echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(FUZZ_CORE_OBJS)
	@mkdir -p $(@D)
	@$(if $(V),,echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_CORE_OBJS) -o $@ $(FUZZ_LIBS)

.PHONY: fuzz fuzz-build fuzz-replay fuzz-merge $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-build: $(FUZZ_BINS)

# One target for FUZZ_SECONDS: the committed corpus is read, new inputs go to
# build/fuzz/corpus/<target> (the first directory is where libFuzzer writes).
$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/artifacts
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} \
	$(FUZZ_DIR)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN_$*) \
	  -dict=fuzz/dict/$*.dict -timeout=10 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_DIR)/artifacts/$*- $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/corpus/$* fuzz/corpus/$*

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

# Each target once over each input of its committed corpus; any crash, leak,
# UBSan report or invariant failure fails the run.
fuzz-replay: $(FUZZ_BINS)
	@set -e; export UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1}; \
	for t in $(FUZZ_TARGETS); do \
	  $(if $(V),,echo "  REPLAY  fuzz/corpus/$$t ($$(ls fuzz/corpus/$$t | wc -l) inputs)";) \
	  $(FUZZ_DIR)/fuzz_$$t -runs=0 -timeout=10 -artifact_prefix=$(FUZZ_DIR)/replay-$$t- \
	    fuzz/corpus/$$t >$(FUZZ_DIR)/replay-$$t.log 2>&1 \
	    || { tail -n 40 $(FUZZ_DIR)/replay-$$t.log; echo "fuzz-replay: fuzz_$$t failed (log: $(FUZZ_DIR)/replay-$$t.log)"; exit 1; }; \
	done

# Adds to the committed corpus only what reaches new coverage (edges, not hit
# counts, to keep it small); review with git status before committing.
# Inputs that crash (e.g. saved during a FUZZ_SKIP run) are left out.
fuzz-merge: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  [ -d $(FUZZ_DIR)/corpus/$$t ] || continue; \
	  $(FUZZ_DIR)/fuzz_$$t -merge=1 -use_counters=0 -use_value_profile=0 \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/merge-$$t- \
	    fuzz/corpus/$$t $(FUZZ_DIR)/corpus/$$t 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true; \
	done

# Source coverage of the core by the committed corpus: targets built without
# sanitizers, with clang's profile instrumentation, run over fuzz/corpus/.
FUZZ_COV_DIR := $(BUILD)/fuzz-cov
FUZZ_LLVM_PROFDATA ?= llvm-profdata
FUZZ_LLVM_COV      ?= llvm-cov
.SECONDARY: $(addprefix $(FUZZ_COV_DIR)/fuzz_,$(FUZZ_TARGETS))

$(FUZZ_COV_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(CORE_SOURCES) $(HEADERS)
	@mkdir -p $(@D)
	@$(if $(V),,echo "  COVLD   $@")
	$(Q)$(FUZZ_CC) -std=gnu11 -g -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
	  -I$(SRC_DIR) -Ifuzz $(APR_CPPFLAGS) $(APXS_INCS) $< $(CORE_SOURCES) -o $@ $(FUZZ_LIBS)

.PHONY: fuzz-coverage
fuzz-coverage: $(addprefix $(FUZZ_COV_DIR)/fuzz_,$(FUZZ_TARGETS))
	@rm -f $(FUZZ_COV_DIR)/*.profraw
	@for t in $(FUZZ_TARGETS); do \
	  LLVM_PROFILE_FILE=$(FUZZ_COV_DIR)/$$t.profraw $(FUZZ_COV_DIR)/fuzz_$$t -runs=0 \
	    -artifact_prefix=$(FUZZ_COV_DIR)/ fuzz/corpus/$$t \
	    >/dev/null 2>&1 || echo "fuzz-coverage: fuzz_$$t failed over its corpus"; \
	done
	$(Q)$(FUZZ_LLVM_PROFDATA) merge -sparse $(FUZZ_COV_DIR)/*.profraw -o $(FUZZ_COV_DIR)/all.profdata
	$(Q)$(FUZZ_LLVM_COV) report $(FUZZ_COV_DIR)/fuzz_$(firstword $(FUZZ_TARGETS)) \
	  $(addprefix -object=$(FUZZ_COV_DIR)/fuzz_,$(wordlist 2,99,$(FUZZ_TARGETS))) \
	  -instr-profile=$(FUZZ_COV_DIR)/all.profdata $(CORE_SOURCES)
