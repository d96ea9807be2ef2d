#include <catch2/catch.hpp>
#include "stage1_generators/generator.hpp"
TEST_CASE("smoke: a generator yields and returns", "[stage1]") {
    auto g = []() -> aio::Generator<int, void, int> { co_yield 1; co_return 7; }();
    CHECK(g.next() == 1);
    CHECK_FALSE(g.next());
    CHECK(g.result() == 7);
}
