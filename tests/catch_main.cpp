// main() of every build/bin/tests_stageK: Catch2's, run on the tests the binary holds.
#include "tests/catch_session.hpp"

int main(int argc, char* argv[]) { return catch_session::run(argc, argv); }
