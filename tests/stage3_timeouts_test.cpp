// Stage 3 tests: Task.cancelling()/uncancel() and the timeout scope (timeouts.hpp), against
// the rules of CPython 3.12's Lib/asyncio/timeouts.py. A scope turns only its own
// cancellation into TimeoutError: nested scopes each recognise their own expiry, and a
// cancellation from outside passes through, even when it arrives as the scope expires.
#include <catch2/catch.hpp>

#include <chrono>
#include <limits>
#include <stdexcept>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage3_tasks_futures/timeouts.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;
using aio::Coroutine;
using aio::Ref;

// Run passes until `t` is done, 5 s at most (never blocking on a far timer).
void run_until_done(aio::EventLoop& loop, const Ref<aio::TaskBase>& t) {
    auto t0 = std::chrono::steady_clock::now();
    while (!t->done() && seconds_since(t0) < 5.0) one_pass(loop);
}

// How a task ended, in words.
template <typename T>
std::string outcome_of(aio::Task<T>& t) {
    if (!t.done()) return "pending";
    if (t.cancelled()) {
        try {
            t.result();
        } catch (const aio::CancelledError& e) {
            return "cancelled: " + e.message();
        }
    }
    try {
        if constexpr (std::is_void_v<T>) {
            t.result();
            return "done";
        } else if constexpr (std::is_same_v<T, std::string>) {
            return "value " + t.result();
        } else {
            return "value " + std::to_string(t.result());
        }
    } catch (const aio::TimeoutError&) {
        return "TimeoutError";
    } catch (const std::exception& e) {
        return std::string("error: ") + e.what();
    }
}

Coroutine<int> value_after(double delay, int v) {
    co_await aio::sleep(delay);
    co_return v;
}
Coroutine<int> immediate(int v) { co_return v; }
Coroutine<int> await_future(Ref<aio::Future<int>> f) {
    int v = co_await f;
    co_return v;
}

// `co_await timeout(limit, sleep(delay))`: "done" or "TimeoutError", and the cancel count after.
Coroutine<std::string> sleep_within(double delay, std::optional<double> limit) {
    std::string out;
    try {
        co_await aio::timeout(limit, aio::sleep(delay));
        out = "done";
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    }
    co_return out + ", cancelling " + std::to_string(aio::current_task()->cancelling());
}

}  // namespace

// ============================================================== cancelling() and uncancel()

TEST_CASE("cancelling(): each cancel() of a task that is not done counts; uncancel() takes one back", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, await_future(f));
    one_pass(loop);
    REQUIRE(t->cancelling() == 0);
    REQUIRE(t->cancel());
    REQUIRE(t->cancelling() == 1);
    REQUIRE(t->cancel());  // the future is cancelled already: a second request, still counted
    REQUIRE(t->cancelling() == 2);
    REQUIRE(t->uncancel() == 1);
    REQUIRE(t->cancelling() == 1);
    run_until_done(loop, t);
    REQUIRE(t->cancelled());
    REQUIRE_FALSE(t->cancel());  // done: no request, no count
    REQUIRE(t->cancelling() == 1);
    REQUIRE(t->uncancel() == 0);
    REQUIRE(t->uncancel() == 0);  // never below zero
    REQUIRE(t->cancelled());      // uncancel() on a done task changes nothing else
}

TEST_CASE("uncancel(): back to zero before the request was delivered drops it (Python 3.13's rule)", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, await_future(f));
    one_pass(loop);
    f->set_result(7);  // t is woken: its next step is queued
    SECTION("one request, taken back: t resumes normally") {
        REQUIRE(t->cancel());
        REQUIRE(t->uncancel() == 0);
        run_until_done(loop, t);
        REQUIRE(outcome_of(*t) == "value 7");
    }
    SECTION("two requests, one taken back: t is still cancelled") {
        REQUIRE(t->cancel("first"));
        REQUIRE(t->cancel("second"));
        REQUIRE(t->uncancel() == 1);
        run_until_done(loop, t);
        REQUIRE(outcome_of(*t) == "cancelled: second");
    }
}

// =========================================================================== timeout scope

TEST_CASE("timeout: a body that finishes in time gives its value; the timer is gone", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(sleep_within(0.001, 5.0)) == "done, cancelling 0");
    REQUIRE(loop.run_until_complete(aio::timeout(5.0, value_after(0.001, 4))) == 4);
    one_pass(loop);
    REQUIRE(loop.timer_count() == 0);
}

TEST_CASE("timeout: when the deadline passes, the body is cancelled and TimeoutError comes out", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(loop.run_until_complete(sleep_within(10.0, 0.02)) == "TimeoutError, cancelling 0");
    REQUIRE(seconds_since(t0) >= 0.019);
    REQUIRE(seconds_since(t0) < 5.0);
}

TEST_CASE("timeout: nullopt is no deadline", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(sleep_within(0.02, std::nullopt)) == "done, cancelling 0");
}

namespace {
// The body of a timeout that records how it was stopped, then lets it go on.
Coroutine<std::string> record_stop(double delay, std::string* seen) {
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError&) {
        *seen = "CancelledError";
        throw;
    } catch (const aio::TimeoutError&) {
        *seen = "TimeoutError";
        throw;
    }
    co_return "done";
}
Coroutine<std::string> runs_in(Ref<aio::TaskBase>* where) {
    *where = aio::current_task();
    co_return "here";
}
}  // namespace

TEST_CASE("timeout: the body runs in the current task and sees CancelledError, not TimeoutError", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    Ref<aio::TaskBase> inside;
    auto t = aio::create_task(loop, aio::timeout(1.0, runs_in(&inside)));
    run_until_done(loop, t);
    REQUIRE(inside.get() == t.get());
    std::string seen;
    auto u = aio::create_task(loop, aio::timeout(0.01, record_stop(10.0, &seen)));
    run_until_done(loop, u);
    REQUIRE_THROWS_WITH(u->result(), "timeout: timed out; what it was awaiting has been cancelled");
    REQUIRE(seen == "CancelledError");
}

TEST_CASE("timeout: a deadline already past cancels at the first await that waits", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    SECTION("a body that never waits finishes with its value") {
        REQUIRE(loop.run_until_complete(aio::timeout(0.0, immediate(3))) == 3);
        REQUIRE(loop.run_until_complete(aio::timeout_at(loop.time() - 1.0, immediate(4))) == 4);
    }
    SECTION("sleep(0) is an await that waits") {
        REQUIRE(loop.run_until_complete(sleep_within(0.0, -1.0)) == "TimeoutError, cancelling 0");
        REQUIRE_THROWS_AS(loop.run_until_complete(aio::timeout_at(loop.time() - 1.0, value_after(5.0, 1))),
                          aio::TimeoutError);
    }
}

TEST_CASE("timeout: outside a task is a RuntimeError; a NaN deadline is invalid_argument", "[stage3][timeouts]") {
    {
        // Resumed by hand, with no task: the scope refuses to start.
        Coroutine<int> c = aio::timeout(1.0, immediate(1));
        auto h = c.release("test");
        h.resume();
        REQUIRE(h.done());
        REQUIRE_THROWS_AS(std::rethrow_exception(h.promise().exception), aio::RuntimeError);
        h.destroy();
    }
    TEST_LOOP(loop);
    REQUIRE_THROWS_AS(loop.run_until_complete(aio::timeout(std::numeric_limits<double>::quiet_NaN(), immediate(1))), std::invalid_argument);
}

namespace {
// A body written with its scope: the in-place form must not even produce a coroutine.
struct BodyType {
    Coroutine<> operator()(aio::Timeout&) const { co_return; }
};
static_assert(std::is_same_v<decltype(aio::timeout(1.0, std::declval<BodyType&>())), Coroutine<>>);
static_assert(std::is_void_v<decltype(aio::timeout(1.0, std::declval<BodyType>()))>,
              "a callable body written in place is refused (its overload's static_assert explains)");
}  // namespace

// ================================================================================= reschedule

namespace {
// timeout(first_limit) around sleep(delay), after moving the deadline to `then` seconds from now.
Coroutine<std::string> rescheduled(double first_limit, std::optional<double> then, double delay) {
    std::string when_after;
    auto body = [&](aio::Timeout& cm) -> Coroutine<> {
        std::optional<double> when;
        if (then) when = aio::get_running_loop().time() + *then;
        cm.reschedule(when);
        when_after = cm.when() == when ? "when() follows" : "when() is wrong";
        co_await aio::sleep(delay);
    };
    std::string out;
    try {
        co_await aio::timeout(first_limit, body);
        out = "done";
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    }
    co_return out + ", " + when_after;
}
}  // namespace

TEST_CASE("timeout: reschedule() moves the deadline later, earlier, into the past, or away", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    auto t0 = std::chrono::steady_clock::now();
    SECTION("later: the body outlives the first deadline") {
        REQUIRE(loop.run_until_complete(rescheduled(0.01, 5.0, 0.05)) == "done, when() follows");
    }
    SECTION("earlier: it expires long before the first deadline") {
        REQUIRE(loop.run_until_complete(rescheduled(10.0, 0.01, 10.0)) == "TimeoutError, when() follows");
        REQUIRE(seconds_since(t0) < 5.0);
    }
    SECTION("into the past: it expires at the next await") {
        REQUIRE(loop.run_until_complete(rescheduled(10.0, -1.0, 10.0)) == "TimeoutError, when() follows");
        REQUIRE(seconds_since(t0) < 5.0);
    }
    SECTION("away (nullopt): it never expires") {
        REQUIRE(loop.run_until_complete(rescheduled(0.01, std::nullopt, 0.05)) == "done, when() follows");
    }
}

namespace {
Coroutine<std::string> reschedule_after_expiry() {
    std::string said;
    auto body = [&](aio::Timeout& cm) -> Coroutine<> {
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
            said = cm.expired() ? "expired" : "not expired";
            try {
                cm.reschedule(std::nullopt);
            } catch (const aio::RuntimeError& e) {
                said += std::string("; reschedule: ") + e.what();
            }
            throw;
        }
    };
    try {
        co_await aio::timeout(0.01, body);
    } catch (const aio::TimeoutError&) {
        said += "; TimeoutError";
    }
    co_return said;
}
}  // namespace

TEST_CASE("timeout: expired() tells, and reschedule() after expiry is a RuntimeError", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    std::string r = loop.run_until_complete(reschedule_after_expiry());
    REQUIRE_THAT(r, Catch::StartsWith("expired; reschedule: Timeout::reschedule(): this timeout has already expired"));
    REQUIRE_THAT(r, Catch::EndsWith("; TimeoutError"));
}

// ================================================================== what comes out of a scope

namespace {
// Catches the scope's cancellation and finishes anyway: with a value, or another error.
Coroutine<int> shrugs_off(int v, bool fail) {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
    }
    if (fail) throw Marked(v);
    co_return v;
}
Coroutine<std::string> shrug_within(int v, bool fail) {
    bool expired = false;
    auto body = [&](aio::Timeout& cm) -> Coroutine<int> {
        int r = co_await shrugs_off(v, fail);
        expired = cm.expired();
        co_return r;
    };
    std::string out;
    try {
        int r = co_await aio::timeout(0.01, body);
        out = "value " + std::to_string(r);
    } catch (const Marked& m) {
        out = m.what();
    }
    co_return out + (expired ? ", expired" : "") + ", cancelling " + std::to_string(aio::current_task()->cancelling());
}
}  // namespace

TEST_CASE("timeout: a body that catches its cancellation decides the outcome; the request is taken back", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(shrug_within(5, false)) == "value 5, expired, cancelling 0");
    REQUIRE(loop.run_until_complete(shrug_within(6, true)) == "marked 6, cancelling 0");
}

namespace {
// A task that swallowed a cancellation (its count stays 1) and then uses a timeout.
Coroutine<std::string> timeout_after_swallowed_cancel() {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
    }
    std::string out = "cancelling " + std::to_string(aio::current_task()->cancelling());
    std::string r = co_await sleep_within(10.0, 0.01);
    co_return out + "; then " + r;
}
}  // namespace

TEST_CASE("timeout: the count at entry is the baseline, so an old swallowed request does not hide expiry", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, timeout_after_swallowed_cancel());
    one_pass(loop);
    t->cancel();
    run_until_done(loop, t);
    REQUIRE(t->result() == "cancelling 1; then TimeoutError, cancelling 1");
}

// ============================================================================ nested scopes

namespace {
// timeout(outer) { try { timeout(inner) { sleep(delay) } } catch TimeoutError; sleep(after) }
Coroutine<std::string> nested(double outer_limit, double inner_limit, double delay, double after) {
    std::string log;
    auto inner_body = [&](aio::Timeout&) -> Coroutine<> {
        try {
            co_await aio::sleep(delay);
        } catch (const aio::CancelledError&) {
            log += "inner body cancelled; ";
            throw;
        }
    };
    auto outer_body = [&](aio::Timeout&) -> Coroutine<> {
        try {
            co_await aio::timeout(inner_limit, inner_body);
            log += "inner done; ";
        } catch (const aio::TimeoutError&) {
            log += "inner TimeoutError; ";
        }
        co_await aio::sleep(after);
        log += "outer body done; ";
    };
    try {
        co_await aio::timeout(outer_limit, outer_body);
        log += "outer done";
    } catch (const aio::TimeoutError&) {
        log += "outer TimeoutError";
    }
    co_return log + ", cancelling " + std::to_string(aio::current_task()->cancelling());
}

// Both scopes with the same absolute deadline: both timers fire in the same pass, before
// the task runs again, so the task holds two requests when its await raises.
Coroutine<std::string> nested_same_deadline() {
    const double when = aio::get_running_loop().time() + 0.01;
    std::string log;
    auto inner_body = [&](aio::Timeout&) -> Coroutine<> { co_await aio::sleep(10.0); };
    auto outer_body = [&](aio::Timeout& outer) -> Coroutine<> {
        try {
            co_await aio::timeout_at(when, inner_body);
        } catch (const aio::TimeoutError&) {
            log += "inner TimeoutError; ";
        } catch (const aio::CancelledError&) {
            log += std::string("inner let CancelledError through (outer expired: ") + (outer.expired() ? "yes" : "no") +
                   "); ";
            throw;
        }
    };
    try {
        co_await aio::timeout_at(when, outer_body);
    } catch (const aio::TimeoutError&) {
        log += "outer TimeoutError";
    }
    co_return log + ", cancelling " + std::to_string(aio::current_task()->cancelling());
}
}  // namespace

TEST_CASE("timeout: nested scopes each recognise only their own expiry", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    SECTION("the inner one expires: TimeoutError there, and the outer block goes on") {
        REQUIRE(loop.run_until_complete(nested(10.0, 0.01, 10.0, 0.001)) ==
                "inner body cancelled; inner TimeoutError; outer body done; outer done, cancelling 0");
    }
    SECTION("the outer one expires: the inner scope lets its CancelledError through untouched") {
        REQUIRE(loop.run_until_complete(nested(0.01, 10.0, 10.0, 0.001)) ==
                "inner body cancelled; outer TimeoutError, cancelling 0");
    }
    SECTION("the inner one expires, then the outer one while the outer block goes on") {
        REQUIRE(loop.run_until_complete(nested(0.05, 0.01, 10.0, 10.0)) ==
                "inner body cancelled; inner TimeoutError; outer TimeoutError, cancelling 0");
    }
    SECTION("both expire in the same pass: the inner one sees a request not its own, the outer one wins") {
        REQUIRE(loop.run_until_complete(nested_same_deadline()) ==
                "inner let CancelledError through (outer expired: yes); outer TimeoutError, cancelling 0");
    }
}

// =================================================================== a cancel from outside

namespace {
Coroutine<std::string> sleeps_in_timeout(double limit, std::string* log) {
    try {
        co_await aio::timeout(limit, aio::sleep(10.0));
        *log = "done";
    } catch (const aio::TimeoutError&) {
        *log = "TimeoutError";
    } catch (const aio::CancelledError& e) {
        *log = "CancelledError " + e.message();
        throw;
    }
    co_return *log;
}
}  // namespace

TEST_CASE("timeout: a cancel from outside while the scope is expiring wins, and is not turned into TimeoutError",
          "[stage3][timeouts]") {
    TEST_LOOP(loop);
    std::string log;
    // A deadline of 0: the timer is the first callback of the second pass.
    auto t = aio::create_task(loop, sleeps_in_timeout(0.0, &log));
    one_pass(loop);  // the task enters the scope and sleeps
    one_pass(loop);  // the timer fires: the sleep's future is cancelled, the task's wakeup queued
    REQUIRE(t->cancelling() == 1);
    REQUIRE_FALSE(t->done());
    REQUIRE(t->cancel("from outside"));  // before the task runs again
    REQUIRE(t->cancelling() == 2);
    run_until_done(loop, t);
    REQUIRE(log == "CancelledError from outside");
    REQUIRE(outcome_of(*t) == "cancelled: from outside");
    REQUIRE(t->cancelling() == 1);  // the scope took its own request back, and only that
}

TEST_CASE("timeout: a cancel from outside before the deadline comes out as CancelledError", "[stage3][timeouts]") {
    TEST_LOOP(loop);
    std::string log;
    auto t = aio::create_task(loop, sleeps_in_timeout(10.0, &log));
    one_pass(loop);
    REQUIRE(t->cancel("stop"));
    run_until_done(loop, t);
    REQUIRE(log == "CancelledError stop");
    REQUIRE(t->cancelled());
    loop.run_until_complete(aio::sleep(0));
    REQUIRE(loop.timer_count() == 0);  // the scope's timer went with it
}
