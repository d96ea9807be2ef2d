// Stage 3 tests: shield (tasks.hpp), against CPython's Lib/asyncio/tasks.py. Cancelling the
// awaiter cancels only the shield's outer future: the inner awaitable runs on, and its
// outcome is nobody's: a failure of it that nobody reads is reported, as in asyncio 3.12.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

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

Coroutine<int> value_after(double delay, int v, Log* log) {
    co_await aio::sleep(delay);
    log->push_back("inner finished " + std::to_string(v));
    co_return v;
}
Coroutine<int> fails_after(double delay, int v) {
    co_await aio::sleep(delay);
    throw Marked(v);
    co_return 0;
}

template <typename Aw>
Coroutine<std::string> shielded_outcome(Aw aw, double timeout) {
    std::string out;
    try {
        int v = co_await aio::wait_for(aio::shield(std::move(aw)), timeout);
        out = "value " + std::to_string(v);
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    } catch (const aio::CancelledError& e) {
        out = "CancelledError " + e.message();
    } catch (const Marked& m) {
        out = m.what();
    }
    co_return out;
}

}  // namespace

TEST_CASE("shield: under wait_for, the time-out raises TimeoutError and the shielded task runs on to its end",
          "[stage3][shield]") {
    TEST_LOOP(loop);
    Log log;
    auto inner = aio::create_task(loop, value_after(0.05, 7, &log));
    REQUIRE(loop.run_until_complete(shielded_outcome(inner, 0.01)) == "TimeoutError");
    REQUIRE_FALSE(inner->done());
    REQUIRE(loop.run_until_complete(inner) == 7);
    REQUIRE(log == Log{"inner finished 7"});
}

TEST_CASE("shield: a coroutine becomes a task that is not cancelled with its awaiter", "[stage3][shield]") {
    TEST_LOOP(loop);
    Log log;
    REQUIRE(loop.run_until_complete(shielded_outcome(value_after(0.03, 8, &log), 0.01)) == "TimeoutError");
    REQUIRE(log.empty());
    loop.run_until_complete(aio::sleep(0.1));
    REQUIRE(log == Log{"inner finished 8"});
}

namespace {
Coroutine<int> await_shielded(Ref<aio::Task<int>> inner) {
    int v = co_await aio::shield(inner);
    co_return v;
}
}  // namespace

TEST_CASE("shield: cancelling the awaiting task cancels it, and only it", "[stage3][shield]") {
    TEST_LOOP(loop);
    Log log;
    auto inner = aio::create_task(loop, value_after(0.02, 9, &log));
    auto outer = aio::create_task(loop, await_shielded(inner));
    one_pass(loop);
    one_pass(loop);
    REQUIRE(outer->cancel("outer only"));
    run_until_done(loop, outer);
    REQUIRE(outer->cancelled());
    REQUIRE_THROWS_WITH(outer->result(), "outer only");
    REQUIRE_FALSE(inner->cancelled());
    REQUIRE(loop.run_until_complete(inner) == 9);
}

TEST_CASE("shield: passes on the inner outcome when nobody cancels", "[stage3][shield]") {
    TEST_LOOP(loop);
    Log log;
    SECTION("a value") { REQUIRE(loop.run_until_complete(shielded_outcome(value_after(0.0, 1, &log), 5.0)) == "value 1"); }
    SECTION("an error") { REQUIRE(loop.run_until_complete(shielded_outcome(fails_after(0.0, 2), 5.0)) == "marked 2"); }
    SECTION("already done") {
        auto f = aio::create_future<int>(loop);
        f->set_result(3);
        REQUIRE(loop.run_until_complete(shielded_outcome(f, 5.0)) == "value 3");
    }
    SECTION("the inner one is cancelled by someone else: the awaiter gets CancelledError") {
        auto f = aio::create_future<int>(loop);
        auto outer = aio::create_task(loop, shielded_outcome(f, 5.0));
        one_pass(loop);
        REQUIRE(f->cancel());
        REQUIRE(loop.run_until_complete(outer) == "CancelledError ");
    }
}

TEST_CASE("shield: the inner task's failure after its awaiter gave up is reported as never retrieved, once",
          "[stage3][shield]") {
    Reports reports;  // before the loop: its close may still report
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    {
        auto inner = aio::create_task(loop, fails_after(0.03, 4));
        REQUIRE(loop.run_until_complete(shielded_outcome(inner, 0.01)) == "TimeoutError");
        loop.run_until_complete(aio::sleep(0.05));
        REQUIRE(inner->done());
        REQUIRE(reports.empty());  // not while someone may still read it
    }
    loop.run_until_complete(aio::sleep(0));
    REQUIRE(count_reports(reports, "Task exception was never retrieved") == 1);
}

TEST_CASE("shield: the inner task's failure read by someone else is not reported", "[stage3][shield]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    {
        auto inner = aio::create_task(loop, fails_after(0.03, 4));
        REQUIRE(loop.run_until_complete(shielded_outcome(inner, 0.01)) == "TimeoutError");
        loop.run_until_complete(aio::sleep(0.05));
        REQUIRE(inner->exception() != nullptr);
    }
    loop.run_until_complete(aio::sleep(0));
    REQUIRE(reports.empty());
}
