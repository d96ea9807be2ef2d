// Stage 3 tests: wait_for rebuilt on the timeout scope, as in CPython 3.12, and as_completed's
// timeout. The first two cases are the inputs where the 3.7-3.11 shape (a waiter future, a
// timer and a done-callback) lost the awaiting task's cancellation.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;
using aio::Coroutine;
using aio::Ref;

void run_until_done(aio::EventLoop& loop, const Ref<aio::TaskBase>& t) {
    auto t0 = std::chrono::steady_clock::now();
    while (!t->done() && seconds_since(t0) < 5.0) one_pass(loop);
}

Coroutine<int> await_future(Ref<aio::Future<int>> f) {
    int v = co_await f;
    co_return v;
}
Coroutine<int> value_after(double delay, int v) {
    co_await aio::sleep(delay);
    co_return v;
}
Coroutine<int> flags_start(bool* started) {
    *started = true;
    co_await aio::sleep(10.0);
    co_return 1;
}
// Catches its cancellation and returns v all the same.
Coroutine<int> shrugs_off(int v) {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
    }
    co_return v;
}

// `co_await wait_for(aw, timeout)`; *returned says whether wait_for ever returned.
template <typename Aw>
Coroutine<int> wait_for_then_flag(Aw aw, std::optional<double> timeout, bool* returned) {
    int v = co_await aio::wait_for(std::move(aw), timeout);
    *returned = true;
    co_return v;
}

// What `co_await wait_for(aw, timeout)` gave, in words.
template <typename Aw>
Coroutine<std::string> wait_for_outcome(Aw aw, std::optional<double> timeout) {
    std::string out;
    try {
        int v = co_await aio::wait_for(std::move(aw), timeout);
        out = "value " + std::to_string(v);
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    } catch (const aio::CancelledError& e) {
        out = "CancelledError " + e.message();
    }
    co_return out;
}

}  // namespace

// ====================================================================== the two bug inputs

TEST_CASE("wait_for: the inner awaitable finished, then the task is cancelled before it runs again: the task ends "
          "cancelled and wait_for never returns",
          "[stage3][wait_for]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    bool returned = false;
    Ref<aio::TaskBase> t;
    SECTION("the inner awaitable is a future") {
        t = aio::create_task(loop, wait_for_then_flag(f, 100.0, &returned));
        one_pass(loop);
        f->set_result(1);  // t's wakeup is now queued
    }
    SECTION("the inner awaitable is a task") {
        auto inner = aio::create_task(loop, await_future(f));
        t = aio::create_task(loop, wait_for_then_flag(inner, 100.0, &returned));
        one_pass(loop);
        f->set_result(1);
        one_pass(loop);  // inner finishes: t's wakeup is now queued
        REQUIRE(inner->done());
    }
    SECTION("the inner awaitable is a coroutine (it runs in the task)") {
        t = aio::create_task(loop, wait_for_then_flag(await_future(f), 100.0, &returned));
        one_pass(loop);
        f->set_result(1);
    }
    REQUIRE_FALSE(t->done());
    REQUIRE(t->cancel());
    run_until_done(loop, t);
    REQUIRE(t->cancelled());
    REQUIRE_FALSE(returned);
}

namespace {
Coroutine<> wait_for_done_then_sleep(Ref<aio::Future<int>> done, Log* log) {
    int v = co_await aio::wait_for(done, 100.0);
    log->push_back("returned " + std::to_string(v));
    co_await aio::sleep(0);
    log->push_back("went on");
}
}  // namespace

TEST_CASE("wait_for: on a future already done it returns at once, and a cancel that follows is not lost",
          "[stage3][wait_for]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    f->set_result(5);
    Log log;
    auto t = aio::create_task(loop, wait_for_done_then_sleep(f, &log));
    one_pass(loop);  // (the 3.7-3.11 shape was suspended in wait_for here, and returned 5 after the cancel)
    REQUIRE(t->cancel());
    run_until_done(loop, t);
    REQUIRE(t->cancelled());
    REQUIRE(log == Log{"returned 5"});
}

// ====================================================================== no time at all

namespace {
// Creates a task and, in the same step, before it could start, waits for it.
Coroutine<std::string> create_then_wait_for(bool* started, double timeout, Ref<aio::Task<int>>* t) {
    *t = aio::create_task(flags_start(started));
    std::string r = co_await wait_for_outcome(*t, timeout);
    co_return r;
}
}  // namespace

TEST_CASE("wait_for: a timeout of 0 or less on a coroutine raises TimeoutError, and the coroutine never starts",
          "[stage3][wait_for]") {
    TEST_LOOP(loop);
    const double timeout = GENERATE(0.0, -1.0);
    bool started = false;
    REQUIRE(loop.run_until_complete(wait_for_outcome(flags_start(&started), timeout)) == "TimeoutError");
    REQUIRE_FALSE(started);
}

TEST_CASE("wait_for: a timeout of 0 or less on a future or task", "[stage3][wait_for]") {
    TEST_LOOP(loop);
    const double timeout = GENERATE(0.0, -1.0);
    SECTION("one already done gives its result") {
        auto f = aio::create_future<int>(loop);
        f->set_result(3);
        REQUIRE(loop.run_until_complete(wait_for_outcome(f, timeout)) == "value 3");
    }
    SECTION("a pending future is cancelled, and TimeoutError raised") {
        auto f = aio::create_future<int>(loop);
        REQUIRE(loop.run_until_complete(wait_for_outcome(f, timeout)) == "TimeoutError");
        REQUIRE(f->cancelled());
    }
    SECTION("a task not started yet is cancelled before its first step") {
        bool started = false;
        Ref<aio::Task<int>> t;
        REQUIRE(loop.run_until_complete(create_then_wait_for(&started, timeout, &t)) == "TimeoutError");
        REQUIRE(t->cancelled());
        REQUIRE_FALSE(started);
    }
    SECTION("a running task that catches its cancellation and returns: its value") {
        auto t = aio::create_task(loop, shrugs_off(8));
        one_pass(loop);
        REQUIRE(loop.run_until_complete(wait_for_outcome(t, timeout)) == "value 8");
    }
}

// ============================================================= a cancellation already asked

namespace {
// The task cancels itself (as another task would while it runs), then enters wait_for.
template <typename Aw>
Coroutine<> cancelled_then_wait_for(Aw aw, double timeout, Log* log) {
    aio::current_task()->cancel("asked before");
    try {
        int v = co_await aio::wait_for(std::move(aw), timeout);
        log->push_back("value " + std::to_string(v));
    } catch (const aio::TimeoutError&) {
        log->push_back("TimeoutError");
    } catch (const aio::CancelledError& e) {
        log->push_back("CancelledError " + e.message());
        throw;
    }
    co_await aio::sleep(0);
    log->push_back("went on");
}
}  // namespace

TEST_CASE("wait_for: a cancellation requested before wait_for is entered is not lost", "[stage3][wait_for]") {
    TEST_LOOP(loop);
    Log log;
    Ref<aio::TaskBase> t;
    Log expected;
    auto f = aio::create_future<int>(loop);
    SECTION("a pending future: it is cancelled, and CancelledError comes out of wait_for") {
        t = aio::create_task(loop, cancelled_then_wait_for(f, 10.0, &log));
        expected = {"CancelledError asked before"};
    }
    SECTION("a coroutine: its first await that waits raises it") {
        t = aio::create_task(loop, cancelled_then_wait_for(value_after(10.0, 1), 10.0, &log));
        expected = {"CancelledError asked before"};
    }
    SECTION("a timeout of 0 on a pending future: CancelledError, not TimeoutError") {
        t = aio::create_task(loop, cancelled_then_wait_for(f, 0.0, &log));
        expected = {"CancelledError asked before"};
    }
    SECTION("a future already done: its value, and the next await raises it") {
        f->set_result(4);
        t = aio::create_task(loop, cancelled_then_wait_for(f, 10.0, &log));
        expected = {"value 4"};
    }
    SECTION("a timeout of 0 on a coroutine: TimeoutError, and the next await raises it") {
        t = aio::create_task(loop, cancelled_then_wait_for(value_after(10.0, 1), 0.0, &log));
        expected = {"TimeoutError"};
    }
    run_until_done(loop, t);
    REQUIRE(log == expected);
    REQUIRE(t->cancelled());
}

// ============================================================================ the 3.12 shape

namespace {
Coroutine<int> note_task(Ref<aio::TaskBase>* where) {
    *where = aio::current_task();
    co_await aio::sleep(0);
    co_return 1;
}
Coroutine<bool> wait_for_runs_here() {
    Ref<aio::TaskBase> inside;
    co_await aio::wait_for(note_task(&inside), 10.0);
    co_return inside == aio::current_task();
}
}  // namespace

TEST_CASE("wait_for: a coroutine runs in the awaiting task, not in a new one (3.12)", "[stage3][wait_for]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(wait_for_runs_here()));
}

TEST_CASE("wait_for: a task that catches its cancellation on time-out and returns: its value is the result",
          "[stage3][wait_for]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, shrugs_off(9));
    REQUIRE(loop.run_until_complete(wait_for_outcome(t, 0.01)) == "value 9");
    REQUIRE(loop.run_until_complete(wait_for_outcome(shrugs_off(10), 0.01)) == "value 10");
}

TEST_CASE("wait_for: nullopt waits without a limit", "[stage3][wait_for]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(wait_for_outcome(value_after(0.02, 6), std::nullopt)) == "value 6");
}

TEST_CASE("wait_for: the awaiting task's cancel count is back to 0 after a time-out", "[stage3][wait_for]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, wait_for_outcome(value_after(10.0, 1), 0.01));
    REQUIRE(loop.run_until_complete(t) == "TimeoutError");
    REQUIRE(t->cancelling() == 0);
}

// =========================================================================== as_completed

namespace {
Coroutine<std::string> drain_with_timeout(std::vector<Ref<aio::Task<int>>> ts, double timeout) {
    auto ac = aio::as_completed(std::move(ts), timeout);
    std::string out;
    while (ac.size() > 0) {
        try {
            int v = co_await ac.next();
            out += std::to_string(v) + " ";
        } catch (const aio::TimeoutError&) {
            out += "TimeoutError ";
        }
    }
    co_return out;
}
}  // namespace

TEST_CASE("as_completed: once the timeout passes, each next() still owed raises TimeoutError; nothing is cancelled",
          "[stage3][wait_for]") {
    TEST_LOOP(loop);
    auto a = aio::create_task(loop, value_after(0.001, 1));
    auto b = aio::create_task(loop, value_after(10.0, 2));
    auto c = aio::create_task(loop, value_after(10.0, 3));
    REQUIRE(loop.run_until_complete(drain_with_timeout({b, a, c}, 0.05)) == "1 TimeoutError TimeoutError ");
    REQUIRE_FALSE(b->done());  // still running: as_completed cancels nothing
    REQUIRE_FALSE(c->done());
    b->cancel();
    c->cancel();
    loop.run_until_complete(aio::sleep(0));
}

TEST_CASE("as_completed: results that arrive in time all come, and the timer goes when the last one does",
          "[stage3][wait_for]") {
    TEST_LOOP(loop);
    auto a = aio::create_task(loop, value_after(0.002, 1));
    auto b = aio::create_task(loop, value_after(0.001, 2));
    REQUIRE(loop.run_until_complete(drain_with_timeout({a, b}, 10.0)) == "2 1 ");
    loop.run_until_complete(aio::sleep(0));
    REQUIRE(loop.timer_count() == 0);
}
