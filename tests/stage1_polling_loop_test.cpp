// Stage 1 tests: PollingLoop, the round-robin loop. One pass steps every unfinished
// coroutine once, in add() order; run() ends when all have returned and hands back their
// results in add() order, whatever order they finished in.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "stage1_generators/polling_loop.hpp"

namespace {

using Log = std::vector<std::string>;

// Logs "<name><step>" at each step, yields to the loop after each, and logs "<name> done"
// when it returns. Returns steps * 10.
aio::PolledCoroutine<int> worker(std::string name, int steps, Log* log) {
    for (int i = 0; i < steps; ++i) {
        log->push_back(name + std::to_string(i));
        co_yield aio::none;
    }
    log->push_back(name + " done");
    co_return steps * 10;
}

aio::PolledCoroutine<> void_worker(std::string name, int steps, Log* log) {
    for (int i = 0; i < steps; ++i) {
        log->push_back(name + std::to_string(i));
        co_yield aio::none;
    }
    log->push_back(name + " done");
}

aio::PolledCoroutine<int> polled_step(Log* log, int i) {
    log->push_back("sub" + std::to_string(i));
    co_yield aio::none;
    co_return i;
}

// Two sub-coroutines, one after the other, through `co_await` (yield from): each of their
// yields is a pass of the loop for this coroutine.
aio::PolledCoroutine<int> delegating_worker(Log* log) {
    int a = co_await polled_step(log, 1);
    int b = co_await polled_step(log, 2);
    co_return a + b;
}

aio::PolledCoroutine<int> fails_on_second_step() {
    co_yield aio::none;
    throw std::runtime_error("worker failed");
}

}  // namespace

TEST_CASE("the polling loop interleaves its coroutines round-robin", "[stage1]") {
    Log log;
    aio::PollingLoop<int> loop;
    loop.add(worker("A", 3, &log));
    loop.add(worker("B", 1, &log));
    loop.add(worker("C", 2, &log));
    CHECK(log.empty());  // add() starts nothing
    loop.run();
    CHECK(log == Log{"A0", "B0", "C0",         // pass 1
                     "A1", "B done", "C1",     // pass 2
                     "A2", "C done",           // pass 3: B is skipped
                     "A done"});               // pass 4
    CHECK(loop.passes() == 4);
}

TEST_CASE("run() returns the results in add() order, not in finishing order", "[stage1]") {
    Log log;
    aio::PollingLoop<int> loop;
    CHECK(loop.add(worker("A", 3, &log)) == 0);
    CHECK(loop.add(worker("B", 1, &log)) == 1);
    CHECK(loop.add(worker("C", 0, &log)) == 2);
    CHECK(loop.add(worker("D", 2, &log)) == 3);
    const std::vector<int> results = loop.run();
    CHECK(results == std::vector<int>{30, 10, 0, 20});
    // C finished first, then B, D and A; the results above still follow add() order.
    CHECK(log == Log{"A0", "B0", "C done", "D0", "A1", "B done", "D1", "A2", "D done", "A done"});
}

TEST_CASE("a PollingLoop<void> runs coroutines that return nothing", "[stage1]") {
    Log log;
    aio::PollingLoop<> loop;
    loop.add(void_worker("X", 2, &log));
    loop.add(void_worker("Y", 1, &log));
    loop.run();
    CHECK(log == Log{"X0", "Y0", "X1", "Y done", "X done"});
    CHECK(loop.passes() == 3);
}

TEST_CASE("a polled coroutine's yields from a sub-coroutine are passes of the loop", "[stage1]") {
    Log log;
    aio::PollingLoop<int> loop;
    loop.add(delegating_worker(&log));
    loop.add(worker("W", 3, &log));
    CHECK(loop.run() == std::vector<int>{3, 30});
    CHECK(log == Log{"sub1", "W0", "sub2", "W1", "W2", "W done"});
    CHECK(loop.passes() == 4);
}

TEST_CASE("an empty polling loop returns at once", "[stage1]") {
    aio::PollingLoop<int> loop;
    CHECK(loop.run().empty());
    CHECK(loop.passes() == 0);
}

TEST_CASE("a polling loop can be used again; passes() keeps counting", "[stage1]") {
    Log log;
    aio::PollingLoop<int> loop;
    loop.add(worker("A", 1, &log));
    CHECK(loop.run() == std::vector<int>{10});
    CHECK(loop.passes() == 2);
    loop.add(worker("B", 2, &log));
    CHECK(loop.run() == std::vector<int>{20});  // only the coroutines added since
    CHECK(loop.passes() == 5);
    CHECK(log == Log{"A0", "A done", "B0", "B1", "B done"});
}

TEST_CASE("an exception from a coroutine propagates out of run()", "[stage1]") {
    Log log;
    aio::PollingLoop<int> loop;
    loop.add(worker("A", 5, &log));
    loop.add(fails_on_second_step());
    CHECK_THROWS_WITH(loop.run(), "worker failed");
    CHECK(loop.passes() == 2);
    CHECK(log == Log{"A0", "A1"});  // A had its turn in pass 2 before the failure
}
