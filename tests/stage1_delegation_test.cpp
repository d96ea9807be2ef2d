// Stage 1 tests: `co_await sub` as PEP 380's `yield from`. The chain of delegating
// generators must behave as one generator to its consumer: yields come out at the top,
// sends go in at the bottom, each level gets its child's return value or exception, and
// destroying the top destroys the whole chain. The trampoline keeps the stack flat.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/generator.hpp"

namespace {

using Log = std::vector<std::string>;

template <typename G>
std::vector<typename G::yield_type> drain(G& gen) {
    std::vector<typename G::yield_type> out;
    while (auto v = gen.next()) out.push_back(std::move(*v));
    return out;
}

// --- Yields, three deep ---------------------------------------------------------------

aio::Generator<std::string> inner_words() {
    co_yield "inner 1";
    co_yield "inner 2";
}

aio::Generator<std::string> middle_words() {
    co_yield "middle before";
    co_await inner_words();
    co_yield "middle after";
}

aio::Generator<std::string> outer_words() {
    co_yield "outer before";
    co_await middle_words();
    co_yield "outer after";
}

// --- Sends and return values, three deep ----------------------------------------------
// Yield = std::string, Send = int, Return = int. Each level writes what it received to the
// log, so the test can see which level each send reached.
using Chain = aio::Generator<std::string, int, int>;

Chain level3(Log* log) {
    int a = co_yield "L3 first";
    log->push_back("L3 got " + std::to_string(a));
    int b = co_yield "L3 second";
    log->push_back("L3 got " + std::to_string(b));
    co_return a + b;
}

Chain level2(Log* log) {
    int x = co_yield "L2 before";
    log->push_back("L2 got " + std::to_string(x));
    int r = co_await level3(log);
    log->push_back("L2 child returned " + std::to_string(r));
    int y = co_yield "L2 after";
    log->push_back("L2 got " + std::to_string(y));
    co_return r * 100 + y;
}

Chain level1(Log* log) {
    int r = co_await level2(log);  // delegates at once: L1 yields nothing of its own first
    log->push_back("L1 child returned " + std::to_string(r));
    int z = co_yield "L1 after";
    log->push_back("L1 got " + std::to_string(z));
    co_return r + z;
}

// --- Exceptions, three deep -----------------------------------------------------------

aio::Generator<int, void, int> thrower(int yields_before) {
    for (int i = 0; i < yields_before; ++i) co_yield 300 + i;
    throw std::runtime_error("thrown at level 3");
}

aio::Generator<int, void, int> passes_through(int yields_before, Log* log) {
    co_yield 200;
    int r = co_await thrower(yields_before);
    log->push_back("level 2 continued");  // must not run: the exception skips it
    co_return r;
}

aio::Generator<int, void, int> top(int yields_before, Log* log) {
    co_yield 100;
    int r = co_await passes_through(yields_before, log);
    log->push_back("level 1 continued");  // must not run either
    co_return r;
}

aio::Generator<int, void, int> catches(Log* log) {
    int r = -1;
    try {
        r = co_await thrower(1);
    } catch (const std::runtime_error& e) {
        log->push_back(std::string("level 2 caught: ") + e.what());
    }
    co_yield 201;  // carries on after the handler, still inside the chain
    co_return r;
}

aio::Generator<int, void, int> top_of_catcher(Log* log) {
    int r = co_await catches(log);
    log->push_back("level 1 got " + std::to_string(r));
    co_yield 101;
    co_return r * 2;
}

// --- Early destruction ----------------------------------------------------------------

struct Counted {
    int* destroyed;
    explicit Counted(int* d) : destroyed(d) {}
    Counted(const Counted&) = delete;
    Counted& operator=(const Counted&) = delete;
    ~Counted() { ++*destroyed; }
};

aio::Generator<int> deep_with_local(int* destroyed, Log* log) {
    Counted local(destroyed);
    co_yield 3;
    co_yield 4;
    log->push_back("level 3 finished");
}

aio::Generator<int> middle_with_local(int* destroyed, Log* log) {
    Counted local(destroyed);
    co_yield 2;
    co_await deep_with_local(destroyed, log);
    log->push_back("level 2 finished");
}

aio::Generator<int> top_with_local(int* destroyed, Log* log) {
    Counted local(destroyed);
    co_yield 1;
    co_await middle_with_local(destroyed, log);
    log->push_back("level 1 finished");
}

// --- Long and deep chains -------------------------------------------------------------

using Quiet = aio::Generator<aio::None, void, int>;

Quiet finishes_at_once(int i) { co_return i; }

// Python: for i in range(n): total += yield from finishes_at_once(i)
aio::Generator<aio::None, void, long long> sum_of_delegations(int n) {
    long long total = 0;
    for (int i = 0; i < n; ++i) {
        int v = co_await finishes_at_once(i);
        total += v;
    }
    co_return total;
}

// `depth` generators alive at once, each delegating to the next; the last one yields.
aio::Generator<int, void, int> nested(int depth) {
    if (depth == 0) {
        co_yield 0;
        co_return 0;
    }
    int below = co_await nested(depth - 1);
    co_return below + 1;
}

aio::Generator<int, void, int> named_child() {
    co_yield 1;
    co_return 5;
}

aio::Generator<int, void, int> delegates_to_named(aio::Generator<int, void, int>* child) {
    int r = co_await *child;  // delegating to an lvalue: the child outlives the co_await
    co_return r;
}

}  // namespace

TEST_CASE("delegation three deep: every yield reaches the outermost consumer, in order", "[stage1]") {
    auto gen = outer_words();
    CHECK(drain(gen) == std::vector<std::string>{"outer before", "middle before", "inner 1", "inner 2",
                                                 "middle after", "outer after"});
    CHECK(gen.done());
}

TEST_CASE("delegation three deep: sends go to the innermost, each level gets its child's return",
          "[stage1]") {
    Log log;
    auto gen = level1(&log);
    CHECK(gen.next() == std::string("L2 before"));
    CHECK(gen.send(5) == std::string("L3 first"));    // L2 takes 5, then starts L3
    CHECK(gen.send(7) == std::string("L3 second"));   // to L3, not to L2 or L1
    CHECK(gen.send(8) == std::string("L2 after"));    // L3 returns 7 + 8 to L2
    CHECK(gen.send(3) == std::string("L1 after"));    // L2 returns 15 * 100 + 3 to L1
    CHECK(gen.send(4) == std::nullopt);               // L1 returns 1503 + 4
    CHECK(gen.result() == 1507);
    CHECK(log == Log{"L2 got 5", "L3 got 7", "L3 got 8", "L2 child returned 15", "L2 got 3",
                     "L1 child returned 1503", "L1 got 4"});
}

TEST_CASE("delegation three deep: next() delivers Send{} to the innermost generator", "[stage1]") {
    Log log;
    auto gen = level1(&log);
    CHECK(gen.next() == std::string("L2 before"));
    CHECK(gen.next() == std::string("L3 first"));
    CHECK(gen.send(9) == std::string("L3 second"));
    CHECK(gen.next() == std::string("L2 after"));
    CHECK(gen.next() == std::string("L1 after"));
    CHECK(gen.next() == std::nullopt);
    CHECK(gen.result() == 900);  // L3: 9 + 0; L2: 9 * 100 + 0; L1: 900 + 0
    CHECK(log == Log{"L2 got 0", "L3 got 9", "L3 got 0", "L2 child returned 9", "L2 got 0",
                     "L1 child returned 900", "L1 got 0"});
}

TEST_CASE("an exception thrown three levels down reaches the consumer of next()", "[stage1]") {
    const int yields_before = GENERATE(0, 1, 2);
    Log log;
    auto gen = top(yields_before, &log);
    std::vector<int> seen;
    std::string caught;
    try {
        while (auto v = gen.next()) seen.push_back(*v);
    } catch (const std::runtime_error& e) {
        caught = e.what();
    }
    std::vector<int> expected{100, 200};
    for (int i = 0; i < yields_before; ++i) expected.push_back(300 + i);
    CHECK(seen == expected);
    CHECK(caught == "thrown at level 3");
    CHECK(log.empty());  // neither delegating generator ran past its co_await
    CHECK(gen.done());
    CHECK_THROWS_WITH(gen.result(), "thrown at level 3");
    CHECK_THROWS_AS(gen.next(), aio::StopIteration);
}

TEST_CASE("a middle generator can catch its child's exception and carry on", "[stage1]") {
    Log log;
    auto gen = top_of_catcher(&log);
    CHECK(drain(gen) == std::vector<int>{300, 201, 101});
    CHECK(gen.result() == -2);
    CHECK(log == Log{"level 2 caught: thrown at level 3", "level 1 got -1"});
}

TEST_CASE("destroying the outer generator mid-delegation destroys the whole chain", "[stage1]") {
    int destroyed = 0;
    Log log;
    {
        auto gen = top_with_local(&destroyed, &log);
        CHECK(gen.next() == 1);
        CHECK(gen.next() == 2);
        CHECK(gen.next() == 3);  // now three frames are alive: top, middle, deep
        CHECK(destroyed == 0);
    }
    CHECK(destroyed == 3);  // every level's local, the sub-generators' included
    CHECK(log.empty());     // and no level ran past the point where it was suspended

    // Run to the end instead: every level's local is still destroyed exactly once.
    destroyed = 0;
    {
        auto gen = top_with_local(&destroyed, &log);
        CHECK(drain(gen) == std::vector<int>{1, 2, 3, 4});
        CHECK(gen.done());
    }
    CHECK(destroyed == 3);
    CHECK(log == Log{"level 3 finished", "level 2 finished", "level 1 finished"});
}

TEST_CASE("a million delegations to finished sub-generators keep the stack flat", "[stage1]") {
    // With symmetric transfer this overflows the stack at -O0 under g++ 12 (hazard 7 in
    // stage1_generators/README.md's appendix);
    // `make sanitize` runs it at -O0 under ASan with both compilers.
    const int n = 1'000'000;
    auto gen = sum_of_delegations(n);
    CHECK(gen.next() == std::nullopt);  // it never yields: one next() runs all of it
    CHECK(gen.result() == static_cast<long long>(n) * (n - 1) / 2);
}

TEST_CASE("a hundred thousand generators delegating to each other keep the stack flat", "[stage1]") {
    const int depth = 100'000;
    auto gen = nested(depth);
    CHECK(gen.next() == 0);  // from the bottom of the chain, straight to the top
    CHECK(gen.next() == std::nullopt);
    CHECK(gen.result() == depth);
}

TEST_CASE("delegating to a named, unstarted generator", "[stage1]") {
    auto child = named_child();
    auto gen = delegates_to_named(&child);
    CHECK(gen.next() == 1);
    CHECK_FALSE(child.done());
    CHECK(gen.next() == std::nullopt);
    CHECK(child.done());
    CHECK(gen.result() == 5);
}
