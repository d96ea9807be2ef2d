# Build settings shared by every stage's Makefile and the top-level one.
# Override on the command line: make CXX=clang++ CXXFLAGS='-O0 -g'
ROOT     := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD    ?= $(ROOT)/build
BIN      := $(BUILD)/bin
CXXFLAGS ?= -O2 -g
# Always on: the course is C++20 and warning-free by rule. CI makes warnings errors in every
# build, the sanitizers' too, with `make ... WERROR=-Werror` (a command-line variable reaches
# every sub-make, whatever CXXFLAGS a target sets).
WERROR   ?=
STDFLAGS := -std=c++20 -Wall -Wextra -Wpedantic $(WERROR)
CPPFLAGS += -I$(ROOT)
LDLIBS   += -pthread

# The library part of a stage: every .cpp but its demo (main.cpp), its benchmarks
# (bench_*.cpp) and its other programs (one program per NAME_main source).
lib_srcs = $(filter-out %/main.cpp %_main.cpp $(ROOT)/$(1)/bench_%.cpp,$(wildcard $(ROOT)/$(1)/*.cpp))
obj_of   = $(patsubst $(ROOT)/%.cpp,$(BUILD)/obj/%.o,$(1))

# One rule compiles any source of the course into build/obj/<same path>.o.
$(BUILD)/obj/%.o: $(ROOT)/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(STDFLAGS) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c $< -o $@

# A stage's Makefile sets STAGE (its directory) and USES (the earlier stages it builds on),
# then includes this file: main.cpp becomes build/bin/<stage>, each bench_<name>.cpp becomes
# build/bin/bench_<name>, each NAME_main source a tool build/bin/NAME (stage 5's fetch),
# and all link the library part of the stage and of USES.
ifdef STAGE
LIB_OBJS   := $(call obj_of,$(foreach s,$(STAGE) $(USES),$(call lib_srcs,$(s))))
BENCH_SRCS := $(wildcard $(ROOT)/$(STAGE)/bench_*.cpp)
BENCHES    := $(patsubst $(ROOT)/$(STAGE)/bench_%.cpp,$(BIN)/bench_%,$(BENCH_SRCS))
TOOL_SRCS  := $(wildcard $(ROOT)/$(STAGE)/*_main.cpp)
TOOLS      := $(patsubst $(ROOT)/$(STAGE)/%_main.cpp,$(BIN)/%,$(TOOL_SRCS))
PROGRAMS   := $(if $(wildcard $(ROOT)/$(STAGE)/main.cpp),$(BIN)/$(STAGE)) $(BENCHES) $(TOOLS)

.PHONY: all
all: $(PROGRAMS)

$(BIN)/$(STAGE): $(BUILD)/obj/$(STAGE)/main.o $(LIB_OBJS)
	@mkdir -p $(BIN)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@
# A static pattern rule, not a plain pattern rule: it names each bench's object outright, so
# make keeps it (a plain pattern rule's object would be an intermediate file, deleted after
# the link and rebuilt, with the bench relinked, by the next make).
$(BENCHES): $(BIN)/bench_%: $(BUILD)/obj/$(STAGE)/bench_%.o $(LIB_OBJS)
	@mkdir -p $(BIN)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(TOOLS): $(BIN)/%: $(BUILD)/obj/$(STAGE)/%_main.o $(LIB_OBJS)
	@mkdir -p $(BIN)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@
endif

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
