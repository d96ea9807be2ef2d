// Catch2's session, shared by the mains of the test binaries (tests/catch_main.cpp,
// tests/catch_main_on_selector.cpp). Its implementation, tests/catch_session.cpp, is the
// slowest file of the tests to compile, so it is compiled once for them all.
#pragma once

namespace catch_session {

// Run the tests the command line selects, as Catch2's own main() does, and return its exit
// status. A test tagged `left_out` (e.g. "[stage2-loop-only]"; nullptr: none) does not run:
// the tag is ANDed with the command line's test spec (with its last alternative only, if it
// lists several with commas).
int run(int argc, char* argv[], const char* left_out = nullptr);

}  // namespace catch_session
