// Catch2's implementation, and the session every test binary's main() runs
// (tests/catch_session.hpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <string>

#include "tests/catch_session.hpp"

namespace catch_session {

int run(int argc, char* argv[], const char* left_out) {
    Catch::Session session;
    if (int status = session.applyCommandLine(argc, argv)) return status;
    // Catch2 ANDs a test spec given as a separate argument with the ones before it.
    if (left_out) session.configData().testsOrTags.push_back(std::string("~") + left_out);
    return session.run();
}

}  // namespace catch_session
