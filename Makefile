# The course's front door. See README.md.
#   make             build every stage's demo and benchmarks (build/bin/), nothing else
#   make run         build, then run each stage's demo in quick mode, in order
#   make test        build, then build and run every Catch2 test, stages 2 and 3's also on stage 4's
#                    loop with each selector; ends with a line per run and "N passed, N failed"
#   make sanitize    the same tests at -O0 under ASan+UBSan, with g++ and with clang++
#   make tsan        the thread-crossing tests ([threads]) under ThreadSanitizer
#   make bench       build and run the benchmarks
#   make docs-check  fail if a README's code differs from the source it quotes, if a source
#                    marks a snippet no README quotes, or if a file named in the course is missing
#   make docs        rewrite the READMEs' code blocks from the sources
#   make fuzz        fuzz stage 5's parsers with libFuzzer (FUZZ_SECONDS=60 each; tests/fuzz/fuzz.mk)
#   make clean
# CI (.ci/run) adds WERROR=-Werror to every build.
include config.mk

# Plain `make` builds the programs. Said outright: the dependency files config.mk includes
# name object files as targets, and the first of those would otherwise be the default.
.DEFAULT_GOAL := all
.PHONY: all
all:
	@set -e; for s in $(PRESENT); do $(MAKE) --no-print-directory $(JOBS) -C $$s; done

STAGES  := stage1_generators stage2_custom_loop stage3_tasks_futures stage4_sockets stage5_http
PRESENT := $(foreach s,$(STAGES),$(if $(wildcard $(s)/Makefile),$(s)))
NPROC   := $(shell nproc 2>/dev/null || echo 2)
# Build in parallel unless the caller already chose (-j on the command line). Deferred (=):
# make adds -j to MAKEFLAGS only once the makefiles are read, so only a recipe can see it.
JOBS     = $(if $(findstring -j,$(MAKEFLAGS)),,-j$(NPROC))

# tests/stageK_*.cpp -> build/bin/tests_stageK, linked with the library part of stages 1..K.
TEST_PREFIXES := $(sort $(foreach f,$(wildcard tests/stage*_*.cpp),$(firstword $(subst _, ,$(notdir $(f))))))
# The binaries with thread-crossing tests (tagged [threads]): all that `make tsan` builds.
THREAD_PREFIXES := $(sort $(foreach f,$(shell grep -l '\[threads\]' tests/stage*_*.cpp),$(firstword $(subst _, ,$(notdir $(f))))))
# Catch2 (its implementation, tests/catch_session.cpp) is compiled once; each binary links it
# with one main().
CATCH_MAIN    := $(BUILD)/obj/tests/catch_session.o $(BUILD)/obj/tests/catch_main.o
stage_num      = $(patsubst stage%,%,$(1))
stage_libs     = $(call obj_of,$(foreach s,$(wordlist 1,$(1),$(STAGES)),$(call lib_srcs,$(s))))
define TEST_RULE
$(BIN)/tests_$(1): $(call obj_of,$(abspath $(wildcard tests/$(1)_*.cpp))) $(CATCH_MAIN) $(call stage_libs,$(call stage_num,$(1)))
	@mkdir -p $(BIN)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $$^ $(LDLIBS) -o $$@
endef
$(foreach p,$(TEST_PREFIXES),$(eval $(call TEST_RULE,$(p))))

# Stages 2 and 3 promise to work on any loop that keeps stage 2's contract, so their tests
# run a second time on stage 4's SelectorEventLoop: build/bin/tests_stage4_on_selector links
# the same test objects (they name no loop class: tests/loop_test_support.hpp) with a main()
# that makes new_event_loop() return that loop, and run-tests runs it once per selector.
# Nothing is compiled twice, so nothing can be stale: when a test changes, its one object
# is rebuilt and both binaries are linked again.
ON_SELECTOR_SUITES := stage2 stage3
SELECTORS          := select poll epoll
ifneq ($(wildcard stage4_sockets/Makefile),)
TEST_PREFIXES   += stage4_on_selector
THREAD_PREFIXES += $(if $(filter $(ON_SELECTOR_SUITES),$(THREAD_PREFIXES)),stage4_on_selector)
$(BIN)/tests_stage4_on_selector: $(call obj_of,$(abspath $(foreach p,$(ON_SELECTOR_SUITES),$(wildcard tests/$(p)_*.cpp)))) \
                                 $(BUILD)/obj/tests/catch_session.o $(BUILD)/obj/tests/catch_main_on_selector.o $(call stage_libs,4)
	@mkdir -p $(BIN)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@
endif
TEST_PREFIXES   := $(sort $(TEST_PREFIXES))
THREAD_PREFIXES := $(sort $(THREAD_PREFIXES))
# What run-tests gives tests/run_tests.sh for one binary: one run, or one run per selector.
test_runs = $(if $(filter stage4_on_selector,$(1)),$(foreach s,$(SELECTORS),AIO_SELECTOR=$(s) $(BIN)/tests_$(1)),$(BIN)/tests_$(1))
# So that `make build/bin/tests_stage3` works from the root too (the rules name absolute paths);
# a stage's programs (demo, benches) are built by its own Makefile, so those build them all.
ifeq ($(BUILD),$(ROOT)/build)
build/bin/tests_%: $(BIN)/tests_% ;
build/bin/%: all ;
endif

SAN_FLAGS  := -O0 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# clang 14 can't emit -fsanitize=function's checks for inline coroutines ("Cannot represent a
# difference across sections", https://github.com/llvm/llvm-project/issues/49689), so
# `make sanitize` turns that one check off for clang++ only (g++ has no such flag).
TSAN_FLAGS := -O1 -g -fsanitize=thread

.PHONY: run test sanitize tsan bench docs-check docs clean catch2 test-bins run-tests
run: all
	@set -e; for s in $(PRESENT); do \
	  printf '\n=================== %s ===================\n' $$s; \
	  if [ -x $(BIN)/$$s ]; then $(BIN)/$$s --quick; else echo "(no demo yet)"; fi; \
	done

catch2:
	@sh tests/require_catch2.sh "$(CXX)"

# Which test binaries (by prefix) test-bins builds and run-tests runs: all of them, unless
# the command line names some (make tsan does: TEST_SELECTION='stage2 stage3').
TEST_SELECTION := $(if $(filter command line,$(origin TEST_SELECTION)),$(TEST_SELECTION),$(TEST_PREFIXES))
test-bins: catch2
	@$(MAKE) --no-print-directory $(JOBS) $(addprefix $(BIN)/tests_,$(TEST_SELECTION))

run-tests: test-bins
	@sh tests/run_tests.sh $(foreach p,$(TEST_SELECTION),$(call test_runs,$(p)))

# One after the other, even under make -j: both steps build the same library objects.
test:
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory run-tests

sanitize: catch2
	@set -e; for cxx in g++ clang++; do \
	  printf '\n== sanitize: %s, %s ==\n' $$cxx '$(SAN_FLAGS)'; \
	  extra=; [ $$cxx = clang++ ] && extra=-fno-sanitize=function; \
	  $(MAKE) --no-print-directory run-tests CXX=$$cxx BUILD=$(BUILD)/sanitize-$$cxx CXXFLAGS="$(SAN_FLAGS) $$extra"; \
	done

tsan: catch2
	@$(MAKE) --no-print-directory run-tests CXX=clang++ BUILD=$(BUILD)/tsan CXXFLAGS='$(TSAN_FLAGS)' \
	  TEST_SELECTION='$(THREAD_PREFIXES)' TEST_ARGS='[threads]'

bench: all
	@set -e; for b in $(BIN)/bench_*; do [ -x "$$b" ] || continue; \
	  printf '\n=================== %s ===================\n' $$(basename $$b); "$$b"; done

docs-check:
	@sh tests/docs_check.sh check README.md $(wildcard stage*/README.md)

docs:
	@sh tests/docs_check.sh update README.md $(wildcard stage*/README.md)

clean:
	rm -rf $(BUILD)

include tests/fuzz/fuzz.mk
