// Stage 2 tests: stage 1's generator coroutines on the loop. A coroutine that yields a
// Wakeup sleeps on a timer instead of being polled; tasks interleave by their deadlines;
// run_until_complete hands back a result or an exception; wait() runs coroutines
// concurrently and returns their results in argument order; closing the loop under pending
// tasks frees them. Coroutines here are free functions taking their state by value or
// pointer (the appendix of stage1_generators/README.md says why).
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "stage2_custom_loop/generator_task.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

using aio::generator_based::Coroutine;
using aio::generator_based::sleep;
using aio::generator_based::wait;
// Counts live instances, to check what a coroutine frame holds is freed.
struct Probe {
    static inline int live = 0;
    Probe() { ++live; }
    Probe(const Probe&) { ++live; }
    Probe(Probe&&) noexcept { ++live; }
    Probe& operator=(const Probe&) = default;
    ~Probe() { --live; }
};

// Sleeps twice, logging "<name>1" and "<name>2" as it wakes.
Coroutine<> two_naps(std::string name, double first, double second, Log* log) {
    co_await sleep(first);
    log->push_back(name + "1");
    co_await sleep(second);
    log->push_back(name + "2");
}

// A sub-coroutine: `co_await nap(d)` is `yield from`, and its sleep is the caller's sleep.
Coroutine<int> nap(double seconds, int value) {
    co_await sleep(seconds);
    co_return value;
}

// Yields at once (sleep(0)), then delegates a longer sleep to a sub-coroutine.
Coroutine<> quick_then_delegate(Log* log) {
    co_await sleep(0);
    log->push_back("C0");
    int v = co_await nap(0.15, 7);
    log->push_back("C1=" + std::to_string(v));
}

Coroutine<int> answer_after(double seconds) {
    co_await sleep(seconds);
    co_return 42;
}

Coroutine<int> fail_after(double seconds, bool before_first_yield) {
    if (before_first_yield) throw std::runtime_error("failed before sleeping");
    co_await sleep(seconds);
    if (seconds >= 0) throw std::runtime_error("failed after sleeping");
    co_return 0;
}

Coroutine<std::string> named_sleep(std::string name, double seconds, Log* finished) {
    co_await sleep(seconds);
    finished->push_back(name);
    co_return name;
}

Coroutine<> void_sleep(double seconds, int* done) {
    co_await sleep(seconds);
    ++*done;
}

Coroutine<> log_start(Log* log) {
    log->push_back("task started");
    co_await sleep(0);
    log->push_back("task finished");
}

Coroutine<> hold_probe(Probe probe, double seconds) {
    Probe local = probe;
    co_await sleep(seconds);
}

Coroutine<int> hold_probe_int(Probe probe, double seconds) {
    co_await sleep(seconds);
    (void)probe;
    co_return 1;
}

// Calls run_until_complete from inside a running coroutine, which must fail.
Coroutine<int> nested_run() {
    co_await sleep(0);
    aio::EventLoop& loop = aio::get_running_loop();
    loop.run_until_complete(answer_after(0));
    co_return 1;
}

}  // namespace

TEST_CASE("generator coroutines with sleeps interleave in deadline order", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    // A wakes at 60 and 180 ms, B at 30 and 120 ms, C at once and at 150 ms (its second
    // sleep is inside a sub-coroutine). Gaps of 30 ms or more keep the order robust.
    loop.run_until_complete(wait(two_naps("A", 0.06, 0.12, &log), two_naps("B", 0.03, 0.09, &log),
                                 quick_then_delegate(&log)));
    REQUIRE(log == Log{"C0", "B1", "A1", "B2", "C1=7", "A2"});
}

TEST_CASE("run_until_complete returns the coroutine's result", "[stage2]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(answer_after(0.01)) == 42);
    REQUIRE_FALSE(loop.is_running());
    // The loop can be used again.
    REQUIRE(loop.run_until_complete(answer_after(0)) == 42);
    REQUIRE(loop.run_until_complete(nap(0, 5)) == 5);
}

TEST_CASE("run_until_complete rethrows the coroutine's exception", "[stage2]") {
    TEST_LOOP(loop);
    REQUIRE_THROWS_WITH(loop.run_until_complete(fail_after(0.01, false)), "failed after sleeping");
    REQUIRE_THROWS_WITH(loop.run_until_complete(fail_after(0.01, true)), "failed before sleeping");
    REQUIRE_FALSE(loop.is_running());
    REQUIRE(loop.run_until_complete(answer_after(0)) == 42);
}

TEST_CASE("run_until_complete accepts a task made by create_task", "[stage2]") {
    TEST_LOOP(loop);
    auto task = loop.create_task(answer_after(0.01));
    REQUIRE_FALSE(task->done());
    REQUIRE_THROWS_AS(task->result(), aio::RuntimeError);  // not finished yet
    REQUIRE(loop.run_until_complete(task) == 42);
    REQUIRE(task->done());
    REQUIRE(task->result() == 42);
    // An already finished task: returns at once, with the same result.
    REQUIRE(loop.run_until_complete(task) == 42);
}

TEST_CASE("run_until_complete raises if the loop is stopped before the coroutine is done", "[stage2]") {
    Probe::live = 0;
    {
        TEST_LOOP(loop);
        loop.call_soon([&] { loop.stop(); });
        REQUIRE_THROWS_WITH(loop.run_until_complete(hold_probe_int(Probe(), 10.0)),
                            Catch::Matchers::Contains("stopped before the future completed"));
        REQUIRE_FALSE(loop.is_running());
        REQUIRE(loop.timer_count() == 1);  // the abandoned coroutine still sleeps
    }
    REQUIRE(Probe::live == 0);  // and is freed with the loop
}

TEST_CASE("run_until_complete inside a running loop raises RuntimeError", "[stage2]") {
    TEST_LOOP(loop);
    SECTION("from a callback") {
        std::string error;
        loop.call_soon([&] {
            try {
                loop.run_until_complete(answer_after(0));
            } catch (const aio::RuntimeError& e) {
                error = e.what();
            }
        });
        one_pass(loop);
        REQUIRE_THAT(error, Catch::Matchers::Contains("already running"));
    }
    SECTION("from a coroutine: the error ends the coroutine and reaches the caller") {
        REQUIRE_THROWS_AS(loop.run_until_complete(nested_run()), aio::RuntimeError);
    }
    SECTION("on a closed loop") {
        loop.close();
        REQUIRE_THROWS_AS(loop.run_until_complete(answer_after(0)), aio::RuntimeError);
    }
}

TEST_CASE("wait() returns results in argument order, in about one sleep's time", "[stage2]") {
    TEST_LOOP(loop);
    Log finished;
    const auto t0 = std::chrono::steady_clock::now();
    auto results = loop.run_until_complete(
        wait(named_sleep("a", 0.05, &finished), named_sleep("b", 0.03, &finished), named_sleep("c", 0.04, &finished)));
    const double elapsed = seconds_since(t0);

    REQUIRE(finished == Log{"b", "c", "a"});                     // they ran concurrently...
    REQUIRE(results == std::vector<std::string>{"a", "b", "c"});  // ...results in argument order
    REQUIRE(elapsed >= 0.05);
    REQUIRE(elapsed < 0.10);  // sequentially it would be 0.12 s
}

TEST_CASE("wait() over a vector, and over coroutines that return nothing", "[stage2]") {
    TEST_LOOP(loop);
    SECTION("a vector of coroutines with results") {
        Log finished;
        std::vector<Coroutine<std::string>> coros;
        for (int i = 0; i < 20; ++i) coros.push_back(named_sleep(std::to_string(i), 0.001 * (20 - i), &finished));
        auto results = loop.run_until_complete(wait(std::move(coros)));
        REQUIRE(results.size() == 20);
        for (int i = 0; i < 20; ++i) REQUIRE(results[i] == std::to_string(i));
        REQUIRE(finished.size() == 20);
    }
    SECTION("void coroutines as arguments") {
        int done = 0;
        const auto t0 = std::chrono::steady_clock::now();
        loop.run_until_complete(wait(void_sleep(0.05, &done), void_sleep(0.05, &done), void_sleep(0.05, &done)));
        REQUIRE(done == 3);
        REQUIRE(seconds_since(t0) < 0.10);
    }
    SECTION("an empty vector finishes at once") {
        auto results = loop.run_until_complete(wait(std::vector<Coroutine<int>>{}));
        REQUIRE(results.empty());
    }
}

TEST_CASE("wait() rethrows the exception of a coroutine that failed", "[stage2]") {
    TEST_LOOP(loop);
    REQUIRE_THROWS_WITH(loop.run_until_complete(wait(answer_after(0.01), fail_after(0.02, false))),
                        "failed after sleeping");
}

TEST_CASE("create_task's first step runs on a later pass, not inside create_task", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    aio::generator_based::TaskRef<void> task;
    loop.call_soon([&] {
        task = loop.create_task(log_start(&log));
        log.push_back("create_task returned");
    });
    loop.call_soon([&] { log.push_back("rest of the pass"); });

    loop.run_once();
    REQUIRE(log == Log{"create_task returned", "rest of the pass"});
    loop.run_once();
    REQUIRE(log == Log{"create_task returned", "rest of the pass", "task started"});
    REQUIRE_FALSE(task->done());
    loop.run_once();  // the sleep(0) timer is due at once
    REQUIRE(log.back() == "task finished");
    REQUIRE(task->done());
}

TEST_CASE("a done callback added to a finished task runs on the next pass", "[stage2]") {
    TEST_LOOP(loop);
    auto task = loop.create_task(answer_after(0));
    loop.run_until_complete(task);
    bool called = false;
    task->add_done_callback([&] { called = true; });
    REQUIRE_FALSE(called);
    one_pass(loop);
    REQUIRE(called);
}

TEST_CASE("closing the loop under a pending task and a pending wait() frees them", "[stage2]") {
    Probe::live = 0;
    {
        TEST_LOOP(loop);
        auto lone = loop.create_task(hold_probe(Probe(), 10.0));
        std::vector<Coroutine<int>> coros;
        coros.push_back(hold_probe_int(Probe(), 10.0));
        coros.push_back(hold_probe_int(Probe(), 20.0));
        auto waiter = loop.create_task(wait(std::move(coros)));
        // Pass 1: the tasks' first steps (wait() creates its two child tasks); pass 2: the
        // children's first steps. Then every coroutine is asleep on a far timer.
        one_pass(loop);
        one_pass(loop);
        REQUIRE(loop.timer_count() == 3);
        REQUIRE(loop.ready_count() == 0);
        REQUIRE(Probe::live > 0);

        loop.close();
        REQUIRE_FALSE(lone->done());
        REQUIRE_FALSE(waiter->done());
        std::weak_ptr<aio::generator_based::GeneratorTask<void>> lone_weak = lone;
        std::weak_ptr<aio::generator_based::GeneratorTask<std::vector<int>>> waiter_weak = waiter;
        lone.reset();
        waiter.reset();
        REQUIRE(lone_weak.expired());
        REQUIRE(waiter_weak.expired());
        REQUIRE(Probe::live == 0);  // the frames, their parameters and locals: all freed
    }
    REQUIRE(Probe::live == 0);
}
