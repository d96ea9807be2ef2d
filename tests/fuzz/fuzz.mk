# libFuzzer harnesses for stage 5's parsers of peer input. Included by the top-level Makefile.
#
#   make fuzz                   build the harnesses, run each for FUZZ_SECONDS (default 60)
#   make fuzz FUZZ_SECONDS=5    a smoke run (what CI does)
#   make fuzz-build             only build them: build/fuzz/fuzz_<name>
#
# Each harness starts from its seed corpus, tests/fuzz/corpus/<name>/ (small hand-written
# inputs, plus every input a run ever found wrong, kept as a regression), and grows a working
# corpus in build/fuzz/corpus/<name>/. An input that breaks a property is saved as
# build/fuzz/crash-<name>-<hash>; replay it with build/fuzz/fuzz_<name> <that file>.
# Needs clang++ with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev).
FUZZ_SECONDS ?= 60
FUZZ_CXX     ?= clang++
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_FLAGS   := -std=c++20 -Wall -Wextra -Wpedantic -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -I$(ROOT)
FUZZERS      := http_request http_response url
FUZZ_LIB     := $(patsubst %,$(FUZZ_DIR)/obj/stage5_http/%.o,url http_headers http_parser http_writer)
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZERS))
FUZZ_HEADERS := $(wildcard $(ROOT)/stage5_http/*.hpp) $(ROOT)/tests/http_test_support.hpp \
                $(ROOT)/tests/fuzz/fuzz_support.hpp

.PHONY: fuzz fuzz-build fuzz-toolchain
.SECONDARY: $(FUZZ_LIB)  # keep the objects: make would delete them as intermediates

# libFuzzer ships with clang's runtime libraries, which Debian packages apart from clang.
fuzz-toolchain:
	@mkdir -p $(FUZZ_DIR)
	@printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
	  > $(FUZZ_DIR)/toolchain_check.cpp
	@$(FUZZ_CXX) -fsanitize=fuzzer,address,undefined $(FUZZ_DIR)/toolchain_check.cpp -o $(FUZZ_DIR)/toolchain_check \
	  2>/dev/null || { echo "make fuzz: '$(FUZZ_CXX) -fsanitize=fuzzer' does not link: libFuzzer is missing." \
	  "On Debian/Ubuntu: apt-get install clang libclang-rt-14-dev (or FUZZ_CXX=clang++-NN for another version)."; exit 1; }

$(FUZZ_DIR)/obj/%.o: $(ROOT)/%.cpp $(FUZZ_HEADERS) | fuzz-toolchain
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(ROOT)/tests/fuzz/fuzz_%.cpp $(FUZZ_LIB) $(FUZZ_HEADERS) | fuzz-toolchain
	$(FUZZ_CXX) $(FUZZ_FLAGS) $< $(FUZZ_LIB) -o $@

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@set -e; for f in $(FUZZERS); do \
	  printf '\n== fuzz_%s: %s s, seeds from tests/fuzz/corpus/%s ==\n' $$f $(FUZZ_SECONDS) $$f; \
	  mkdir -p $(FUZZ_DIR)/corpus/$$f; \
	  if $(FUZZ_DIR)/fuzz_$$f $(FUZZ_DIR)/corpus/$$f $(ROOT)/tests/fuzz/corpus/$$f \
	       -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	       -artifact_prefix=$(FUZZ_DIR)/crash-$$f- -print_final_stats=1 > $(FUZZ_DIR)/fuzz_$$f.log 2>&1; then \
	    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' $(FUZZ_DIR)/fuzz_$$f.log; \
	  else \
	    tail -n 40 $(FUZZ_DIR)/fuzz_$$f.log; \
	    echo "fuzz_$$f FAILED: the input is saved as $(FUZZ_DIR)/crash-$$f-*; full log: $(FUZZ_DIR)/fuzz_$$f.log"; \
	    exit 1; \
	  fi; \
	done
