// Catch2's main(), compiled once and linked into every tests_stageK binary.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
