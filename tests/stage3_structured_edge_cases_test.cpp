// Stage 3 tests: the edge cases of structured concurrency (timeouts.hpp, taskgroups.hpp, and
// wait_for and shield in tasks.hpp), taken from CPython's bug reports and its own tests for
// Lib/asyncio/timeouts.py, taskgroups.py and tasks.py: a deadline and a result (or a failure)
// in the same pass, scopes that expire together, groups nested in timeouts nested in groups,
// clean-up code that throws, the loop closing at any moment, and a property test over random
// nestings of all of them.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/taskgroups.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage3_tasks_futures/timeouts.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;
using aio::Coroutine;
using aio::Ref;

void run_until_done(aio::EventLoop& loop, const Ref<aio::TaskBase>& t) {
    auto t0 = std::chrono::steady_clock::now();
    while (!t->done() && seconds_since(t0) < 5.0) one_pass(loop);
}

std::string cancelling_now() { return "cancelling " + std::to_string(aio::current_task()->cancelling()); }

// Sleeps `delay`, then returns v; logs how it ended.
Coroutine<int> child(double delay, int v, Log* log) {
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError&) {
        log->push_back("child " + std::to_string(v) + " cancelled");
        throw;
    }
    log->push_back("child " + std::to_string(v) + " done");
    co_return v;
}
// Sleeps `delay`, then fails with Marked(v).
Coroutine<int> fails_after(double delay, int v, Log* log) {
    co_await aio::sleep(delay);
    log->push_back("child " + std::to_string(v) + " fails");
    throw Marked(v);
    co_return v;
}
// Fails with Marked(v) in its first step.
Coroutine<int> fails_at_once(int v) {
    throw Marked(v);
    co_return v;
}
// Lets the other tasks run one pass, then fails with Marked(v).
Coroutine<int> fails_after_one_pass(int v) {
    co_await aio::sleep(0);
    throw Marked(v);
    co_return v;
}
// Lets the other tasks run one pass, then returns v.
Coroutine<int> value_after_one_pass(int v) {
    co_await aio::sleep(0);
    co_return v;
}
// Waits for `go`, then returns v.
Coroutine<int> value_on(Ref<aio::Future<>> go, int v) {
    co_await go;
    co_return v;
}
// Fails with Marked(v) when cancelled (a clean-up that goes wrong).
Coroutine<int> fails_when_cancelled(int v, Log* log) {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
        log->push_back("child " + std::to_string(v) + " fails in its clean-up");
        throw Marked(v);
    }
    co_return v;
}
template <typename T>
Coroutine<T> await_it(Ref<aio::Task<T>> t) {
    T v = co_await t;
    co_return v;
}

}  // namespace

// ============================================================== a deadline and a result meet

// A task woken by the failure of the task it awaits, and cancelled before it runs, ends
// cancelled; the failure it was woken by counts as retrieved (asyncio's wakeup reads it).
TEST_CASE("cancel: a task cancelled in the pass its awaited task failed ends cancelled, and that failure is not "
          "reported as lost",
          "[stage3][structured]") {
    Reports reports;  // before the loop: the tasks are freed while it lives
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto b = aio::create_task(loop, fails_after_one_pass(5));
        auto a = aio::create_task(loop, await_it(b));
        one_pass(loop);  // b yields; a waits on b
        one_pass(loop);  // b fails; a's wakeup is queued
        REQUIRE(b->done());
        REQUIRE_FALSE(a->done());
        REQUIRE(a->cancel("stop"));
        run_until_done(loop, a);
        REQUIRE(a->cancelled());
        REQUIRE_FALSE(b->cancelled());  // (b's failure itself is not read here)
    }
    REQUIRE(reports.empty());
}

namespace {
// `async with timeout(0): return await b`: the deadline passes on the next pass.
Coroutine<std::string> awaits_in_expiring_scope(Ref<aio::Task<int>> b) {
    auto body = [&](aio::Timeout&) -> Coroutine<int> {
        int v = co_await b;
        co_return v;
    };
    std::string out;
    try {
        int v = co_await aio::timeout(0.0, body);
        out = "value " + std::to_string(v);
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    } catch (const Marked& m) {
        out = m.what();
    }
    co_return out + ", " + cancelling_now();
}
}  // namespace

// The deadline passes in the pass where the awaited task finishes, before the awaiting task
// runs: TimeoutError (the cancellation wins over the outcome, as in asyncio), and a failure
// there is not reported as lost.
TEST_CASE("timeout: the deadline passing in the pass where the awaited task finishes gives TimeoutError; its "
          "failure is not reported as lost",
          "[stage3][structured]") {
    Reports reports;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        // b yields once and finishes on the second pass; the scope's timer (deadline 0) runs
        // right after b on that pass, while the awaiting task's wakeup waits for the third.
        Ref<aio::Task<int>> b;
        SECTION("with a value") { b = aio::create_task(loop, value_after_one_pass(5)); }
        SECTION("with a failure") { b = aio::create_task(loop, fails_after_one_pass(5)); }
        REQUIRE(loop.run_until_complete(awaits_in_expiring_scope(b)) == "TimeoutError, cancelling 0");
        REQUIRE(b->done());
        REQUIRE_FALSE(b->cancelled());
    }
    REQUIRE(reports.empty());
}

// ================================================================================== shield

namespace {
Coroutine<int> shield_then_complete_it(Ref<aio::Task<int>> inner, Ref<aio::Future<>> go) {
    auto outer = aio::shield(inner);
    outer->set_result(1);  // its holder decides without waiting for inner
    int v = co_await outer;
    go->set_result();
    int w = co_await inner;
    co_await aio::sleep(0);  // inner's done-callback (the shield's) runs on this pass
    co_return v * 10 + w;
}
}  // namespace

// A shield's outer future completed by its holder leaves the inner outcome to nobody, as a
// cancelled one does: the inner task finishing later is no error (asyncio drops the callback).
TEST_CASE("shield: an outer future its holder completed ignores the inner outcome, with no error from the shield",
          "[stage3][structured]") {
    Reports reports;  // before the loop: its close may still report
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    auto go = aio::create_future(loop);
    auto inner = aio::create_task(loop, value_on(go, 7));
    REQUIRE(loop.run_until_complete(shield_then_complete_it(inner, go)) == 17);
    REQUIRE(reports.empty());
}

namespace {
Coroutine<std::string> shielded_await_in_timeout(Ref<aio::Task<int>> inner) {
    auto body = [&](aio::Timeout&) -> Coroutine<int> {
        int v = co_await aio::shield(inner);
        co_return v;
    };
    std::string out;
    try {
        int v = co_await aio::timeout(0.01, body);
        out = "value " + std::to_string(v);
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    }
    co_return out + ", " + cancelling_now();
}
}  // namespace

// A deadline that passes while the body waits in a shielded await: TimeoutError, and the
// shielded task runs on untouched, to its own end.
TEST_CASE("timeout: the deadline passing in a shielded await raises TimeoutError; the shielded task runs on",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    auto go = aio::create_future(loop);
    auto inner = aio::create_task(loop, value_on(go, 7));
    REQUIRE(loop.run_until_complete(shielded_await_in_timeout(inner)) == "TimeoutError, cancelling 0");
    REQUIRE_FALSE(inner->done());
    go->set_result();
    REQUIRE(loop.run_until_complete(inner) == 7);
}

// ========================================================================== nested timeouts

namespace {
// CPython's test_nested_timeouts_loop_busy: the inner scope's body blocks the loop past both
// deadlines, so both timers fire in one pass before the body awaits again.
Coroutine<std::string> busy_past_both_deadlines() {
    std::string log;
    auto inner_body = [&](aio::Timeout&) -> Coroutine<> {
        std::this_thread::sleep_for(std::chrono::milliseconds(60));
        co_await aio::sleep(10.0);
    };
    auto outer_body = [&](aio::Timeout&) -> Coroutine<> {
        try {
            co_await aio::timeout(0.01, inner_body);
        } catch (const aio::TimeoutError&) {
            log += "inner TimeoutError; ";
        } catch (const aio::CancelledError&) {
            log += "inner let CancelledError through; ";
            throw;
        }
        co_await aio::sleep(10.0);
    };
    try {
        co_await aio::timeout(0.05, outer_body);
    } catch (const aio::TimeoutError&) {
        log += "outer TimeoutError";
    }
    co_return log + ", " + cancelling_now();
}
}  // namespace

// Two nested scopes with different deadlines that both pass while the loop is busy: the task
// holds two requests, so the inner scope lets the CancelledError through and the outer one,
// the last to take its request back, raises TimeoutError.
TEST_CASE("timeout: nested scopes whose different deadlines both pass while the loop is busy: the outer one raises "
          "TimeoutError",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(busy_past_both_deadlines()) ==
            "inner let CancelledError through; outer TimeoutError, cancelling 0");
}

namespace {
// CPython's test_nested_timeout_in_finally: the clean-up of an expired scope uses a timeout.
Coroutine<std::string> timeout_in_cleanup() {
    std::string log;
    auto cleanup = [&](aio::Timeout&) -> Coroutine<> { co_await aio::sleep(10.0); };
    auto body = [&](aio::Timeout&) -> Coroutine<> {
        std::exception_ptr cancelled;
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
            cancelled = std::current_exception();  // (no co_await inside a handler)
        }
        try {
            co_await aio::timeout(0.01, cleanup);
        } catch (const aio::TimeoutError&) {
            log += "clean-up TimeoutError; ";
        }
        if (cancelled) std::rethrow_exception(cancelled);
    };
    try {
        co_await aio::timeout(0.01, body);
    } catch (const aio::TimeoutError&) {
        log += "outer TimeoutError";
    }
    co_return log + ", " + cancelling_now();
}
}  // namespace

// A scope entered in the clean-up of an expired one counts from the request already there:
// it expires on its own with TimeoutError, and the outer one still raises its own.
TEST_CASE("timeout: a scope in the clean-up of an expired one expires on its own; the outer one still raises "
          "TimeoutError",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(timeout_in_cleanup()) == "clean-up TimeoutError; outer TimeoutError, cancelling 0");
}

namespace {
Coroutine<std::string> throws_int_after_expiry() {
    auto body = [&](aio::Timeout&) -> Coroutine<> {
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
        }
        throw 17;
    };
    std::string out;
    try {
        co_await aio::timeout(0.01, body);
    } catch (int i) {
        out = "int " + std::to_string(i);
    }
    co_await aio::sleep(0);  // no cancellation left over
    co_return out + ", " + cancelling_now();
}
}  // namespace

// An exception that is not a std::exception, thrown by a body after its scope expired,
// comes out as it is, and the scope's request is taken back all the same.
TEST_CASE("timeout: a non-std exception thrown after expiry comes out as it is; the request is taken back",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(throws_int_after_expiry()) == "int 17, cancelling 0");
}

namespace {
// CPython's test_reschedule: another task moves the deadline of a running scope.
Coroutine<> sleeps_in_scope(aio::Timeout** scope, bool* expired) {
    auto body = [&](aio::Timeout& cm) -> Coroutine<> {
        *scope = &cm;
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
            *expired = cm.expired();
            *scope = nullptr;
            throw;
        }
    };
    co_await aio::timeout(0.05, body);
}
}  // namespace

// The deadline of a running scope moved by code outside it (later, then away), then the task
// cancelled from outside: CancelledError, and the scope never expired.
TEST_CASE("timeout: reschedule() from outside the scope moves its deadline; a later cancel is CancelledError",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    aio::Timeout* scope = nullptr;
    bool expired = true;
    auto t = aio::create_task(loop, sleeps_in_scope(&scope, &expired));
    one_pass(loop);
    REQUIRE(scope);
    const double later = loop.time() + 20.0;
    scope->reschedule(later);
    REQUIRE(scope->when() == later);
    scope->reschedule(std::nullopt);
    REQUIRE_FALSE(scope->when());
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // past the first deadline
    one_pass(loop);
    REQUIRE_FALSE(t->done());
    REQUIRE(t->cancel("stop"));
    run_until_done(loop, t);
    REQUIRE(t->cancelled());
    REQUIRE_FALSE(expired);
    one_pass(loop);  // (cancelled timers leave the heap at the start of a pass)
    REQUIRE(loop.timer_count() == 0);
}

namespace {
Coroutine<std::string> awaits_a_scope_twice() {
    Coroutine<int> scope = aio::timeout(1.0, aio::sleep(0.001, 3));
    int v = co_await scope;
    std::string out = "value " + std::to_string(v);
    try {
        co_await scope;
    } catch (const std::logic_error& e) {
        out += std::string("; then ") + e.what();
    }
    co_return out + ", " + cancelling_now();
}
}  // namespace

// A scope runs once: awaiting its coroutine again is a logic_error, and sets no timer.
TEST_CASE("timeout: awaiting a scope's coroutine a second time is a logic_error and starts nothing",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(awaits_a_scope_twice()) ==
            "value 3; then co_await: this coroutine has already been awaited; a coroutine runs once, cancelling 0");
    REQUIRE(loop.timer_count() == 0);
}

// ===================================================================== wait_for on a task

namespace {
// Catches its cancellation, cleans up (awaiting), and fails there with Marked(v).
Coroutine<int> fails_in_slow_cleanup(int v) {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
    }
    co_await aio::sleep(0.001);
    throw Marked(v);
    co_return v;
}
}  // namespace

// CPython's test_wait_for_reraises_exception_during_cancellation: a task that fails while it
// is being cancelled on time-out gives its failure, not TimeoutError, with any timeout.
TEST_CASE("wait_for: a task that fails while it is cancelled on time-out gives its failure, with a timeout of 0 too",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    auto a = aio::create_task(loop, fails_in_slow_cleanup(3));
    REQUIRE_THROWS_WITH(loop.run_until_complete(aio::wait_for(a, 0.01)), "marked 3");
    auto b = aio::create_task(loop, fails_in_slow_cleanup(4));
    loop.run_until_complete(aio::sleep(0));  // b has started
    REQUIRE_THROWS_WITH(loop.run_until_complete(aio::wait_for(b, 0.0)), "marked 4");
}

// ================================================================================ TaskGroup

namespace {
// outer group { timeout(0.01) { inner group { two children } }; go }, and a child of the
// outer group that waits for `go`.
Coroutine<std::string> group_in_timeout_in_group(Log* log) {
    auto go = aio::create_future();
    auto inner = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(child(10.0, 1, log));
        tg.create_task(child(10.0, 2, log));
        co_await aio::sleep(10.0);
    };
    auto outer = [&](aio::TaskGroup& tg) -> Coroutine<> {
        auto three = tg.create_task(value_on(go, 3));
        try {
            co_await aio::timeout(0.01, aio::task_group(inner));
        } catch (const aio::TimeoutError&) {
            log->push_back("inner TimeoutError, " + cancelling_now());
        }
        go->set_result();
        int v = co_await three;
        log->push_back("child 3 gave " + std::to_string(v));
    };
    co_await aio::task_group(outer);
    co_return "done, " + cancelling_now();
}
}  // namespace

// A TaskGroup inside a timeout inside a TaskGroup: the deadline stops the inner group only
// (its tasks are cancelled, the timeout raises TimeoutError in the outer body), and the outer
// group's tasks run on as if nothing happened.
TEST_CASE("TaskGroup: a group in a timeout in a group: the deadline stops only the inner group",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    Log log;
    REQUIRE(loop.run_until_complete(group_in_timeout_in_group(&log)) == "done, cancelling 0");
    REQUIRE(log == Log{"child 1 cancelled", "child 2 cancelled", "inner TimeoutError, cancelling 0", "child 3 gave 3"});
}

namespace {
Coroutine<std::string> body_fails_after_a_child_failed(Log* log) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_after(0.01, 1, log));
        tg.create_task(child(10.0, 2, log));
        bool cancelled = false;
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
            cancelled = true;
        }
        co_await aio::sleep(0.001);  // a clean-up that awaits, once the group has cancelled us
        if (cancelled) throw Marked(9);
    };
    std::string out;
    try {
        co_await aio::task_group(body);
        out = "no error";
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    }
    co_await aio::sleep(0);  // the group took its request back: nothing is raised here
    co_return out + ", " + cancelling_now();
}
}  // namespace

// CPython's test_taskgroup_19: the body, cancelled because a task failed, cleans up and
// fails in its turn: both failures come out, the body's last; the group's request is gone.
TEST_CASE("TaskGroup: a body that fails after a task failed: both failures, the body's last", "[stage3][structured]") {
    TEST_LOOP(loop);
    Log log;
    REQUIRE(loop.run_until_complete(body_fails_after_a_child_failed(&log)) ==
            "unhandled errors in a TaskGroup (2 sub-exceptions: marked 1; marked 9), cancelling 0");
    REQUIRE(log == Log{"child 1 fails", "child 2 cancelled"});
}

namespace {
Coroutine<int> swallows_cancel(int v, Log* log) {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
        log->push_back("child " + std::to_string(v) + " swallows its cancellation");
    }
    co_await aio::sleep(0.001);
    co_return v;
}
Coroutine<std::string> group_with_a_swallowing_child(Log* log) {
    Ref<aio::Task<int>> swallower;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        swallower = tg.create_task(swallows_cancel(5, log));
        tg.create_task(fails_after(0.01, 1, log));
        co_await aio::sleep(10.0);
    };
    std::string out;
    try {
        co_await aio::task_group(body);
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    }
    co_return out + "; the swallower gave " + std::to_string(swallower->result()) + ", " + cancelling_now();
}
}  // namespace

// A task of the group that catches its cancellation and returns: the group waits for it, its
// value stands, and only the real failure is in the ExceptionGroup.
TEST_CASE("TaskGroup: a task that swallows its cancellation is waited for; its value stands", "[stage3][structured]") {
    TEST_LOOP(loop);
    Log log;
    REQUIRE(loop.run_until_complete(group_with_a_swallowing_child(&log)) ==
            "unhandled errors in a TaskGroup (1 sub-exception: marked 1); the swallower gave 5, cancelling 0");
    REQUIRE(log == Log{"child 1 fails", "child 5 swallows its cancellation"});
}

namespace {
// A group in a timeout of 0 (it expires on the second pass). Its task fails at once, so its
// failure reaches the group on the pass the timer fires; `group_first` decides which of the
// two cancels the parent first.
Coroutine<std::string> failure_and_expiry_in_one_pass(bool group_first, bool* expired) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_at_once(1));
        co_await aio::sleep(10.0);
    };
    auto scope = [&](aio::Timeout& cm) -> Coroutine<> {
        struct Note {
            aio::Timeout& cm;
            bool* expired;
            ~Note() { *expired = cm.expired(); }
        } note{cm, expired};
        co_await aio::task_group(body);
    };
    std::string out;
    try {
        if (group_first) co_await aio::sleep(0);  // the task then fails a pass before the scope's timer fires
        co_await aio::timeout(0.0, scope);
        out = "no error";
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    }
    co_await aio::sleep(0);  // nothing left over to raise here
    co_return out + ", " + cancelling_now();
}
}  // namespace

// A group in a timeout: a task's failure and the deadline cancel the parent in the same pass,
// in either order. The task holds two requests: the timeout sees one not its own and lets the
// CancelledError through (no TimeoutError); the group takes back its own and raises the
// failure. Nothing is left: the count is 0 and the next await raises nothing.
TEST_CASE("TaskGroup: a task failure and the deadline of a timeout around the group in one pass: the failure wins",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    bool expired = false;
    SECTION("the deadline first") {
        REQUIRE(loop.run_until_complete(failure_and_expiry_in_one_pass(false, &expired)) ==
                "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 0");
    }
    SECTION("the failure first") {
        REQUIRE(loop.run_until_complete(failure_and_expiry_in_one_pass(true, &expired)) ==
                "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 0");
    }
    REQUIRE(expired);
}

namespace {
Coroutine<std::string> cleanup_fails_after_expiry(Log* log) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_when_cancelled(1, log));
        co_await aio::sleep(10.0);
    };
    std::string out;
    try {
        co_await aio::timeout(0.0, aio::task_group(body));
        out = "no error";
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    }
    co_await aio::sleep(0);  // the group renewed the timeout's request; the timeout took it back
    co_return out + ", " + cancelling_now();
}
}  // namespace

// CPython's test_timeout_taskgroup: the deadline passes, the group cancels its task, whose
// clean-up fails. The failure comes out of the timeout (not TimeoutError); the group renews
// the cancellation it saw (taskgroups.py, 3.13), but that request was the timeout's, which
// takes it back: no CancelledError at the next await.
TEST_CASE("TaskGroup: a clean-up that fails after the deadline: the failure comes out, and no cancellation is left",
          "[stage3][structured]") {
    TEST_LOOP(loop);
    Log log;
    REQUIRE(loop.run_until_complete(cleanup_fails_after_expiry(&log)) ==
            "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 0");
    REQUIRE(log == Log{"child 1 fails in its clean-up"});
}

// A loop closed while a group (not in a timeout) waits, with a task that would fail and one
// that would finish: the group, its tasks and their timers are freed, and none of their code runs.
TEST_CASE("TaskGroup: a loop closed while the group waits frees the group and its tasks", "[stage3][structured]") {
    Reports reports;
    Log log;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(child(10.0, 1, &log));
        tg.create_task(fails_after(10.0, 2, &log));
        co_await aio::sleep(10.0);
    };
    Ref<aio::Task<>> t;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        t = aio::create_task(loop, aio::task_group(body));
        one_pass(loop);
        one_pass(loop);
        REQUIRE(loop.timer_count() == 3);
    }
    REQUIRE(t->cancelled());
    REQUIRE(count_reports(reports, "Task was destroyed but it is pending!") == 3);
    REQUIRE(reports.size() == 3);
    REQUIRE(log.empty());
}

// ============================================================================= as_completed

namespace {
Coroutine<std::string> as_completed_in_a_timeout(Log* log) {
    std::vector<Ref<aio::Task<int>>> ts;
    ts.push_back(aio::create_task(child(0.001, 1, log)));
    ts.push_back(aio::create_task(child(10.0, 2, log)));
    auto ac = aio::as_completed(ts);
    std::string out;
    auto body = [&](aio::Timeout&) -> Coroutine<> {
        for (std::size_t i = 0; i < ts.size(); ++i) {
            int v = co_await ac.next();
            out += std::to_string(v) + " ";
        }
    };
    try {
        co_await aio::timeout(0.02, body);
    } catch (const aio::TimeoutError&) {
        out += "TimeoutError";
    }
    ts[1]->cancel();  // as_completed cancels nothing; we do
    co_await aio::sleep(0);
    co_return out + ", " + cancelling_now();
}
}  // namespace

// as_completed's next() inside a timeout: the results that arrived in time come, then the
// deadline cancels the waiting next() and the scope raises TimeoutError.
TEST_CASE("timeout: around as_completed, the results in time come, then TimeoutError", "[stage3][structured]") {
    TEST_LOOP(loop);
    Log log;
    REQUIRE(loop.run_until_complete(as_completed_in_a_timeout(&log)) == "1 TimeoutError, cancelling 0");
}

// ===================================================================== the loop closes anytime

namespace {
Coroutine<int> cleans_up_slowly(int v, Log* log) {
    std::exception_ptr cancelled;
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
        cancelled = std::current_exception();
    }
    co_await aio::sleep(0.001);
    log->push_back("clean-up " + std::to_string(v));
    if (cancelled) std::rethrow_exception(cancelled);
    co_return v;
}
// Groups, timeouts, wait_for and shield together, in units of `u` seconds.
Coroutine<std::string> all_of_it(Log* log, double u) {
    auto shielded = aio::create_task(child(3 * u, 4, log));
    auto inner = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(child(10.0, 2, log));
        tg.create_task(cleans_up_slowly(3, log));
        int v = co_await aio::shield(shielded);
        log->push_back("shield gave " + std::to_string(v));
    };
    auto outer = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_after(4 * u, 1, log));
        try {
            co_await aio::timeout(u, aio::task_group(inner));
        } catch (const aio::TimeoutError&) {
            log->push_back("inner TimeoutError");
        }
        auto e = aio::create_task(cleans_up_slowly(5, log));
        try {
            co_await aio::wait_for(e, u);
        } catch (const aio::TimeoutError&) {
            log->push_back("wait_for TimeoutError");
        }
        co_await aio::sleep(10.0);
    };
    std::string out;
    try {
        co_await aio::task_group(outer);
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    }
    co_await shielded;
    co_return out + ", " + cancelling_now();
}
}  // namespace

// The loop closed after each number of passes of a run mixing groups, timeouts, wait_for and
// shield: every frame, timer and callback goes cleanly (ASan checks it in `make sanitize`), and
// a run left to finish gives the one failure and leaves nothing behind.
TEST_CASE("loop close: after any number of passes of nested groups, timeouts, wait_for and shield, all is freed",
          "[stage3][structured]") {
    bool finished = false;
    for (int passes = 0; passes < 400 && !finished; ++passes) {
        Reports reports;
        Log log;
        Ref<aio::Task<std::string>> t;
        {
            TEST_LOOP(loop);
            capture_reports(loop, &reports);
            t = aio::create_task(loop, all_of_it(&log, 0.001));
            for (int i = 0; i < passes && !t->done(); ++i) {
                one_pass(loop);
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            }
            finished = t->done();
        }
        REQUIRE(t->done());
        if (finished) {
            REQUIRE(t->result() == "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 0");
            REQUIRE(reports.empty());
        } else {
            REQUIRE(t->cancelled());
            // Pending tasks are reported; so is the failure of task 1 if the loop closed
            // after it failed and before its group could read it: that failure is lost.
            for (auto& r : reports) {
                INFO(r.message << ": " << r.exception);
                const bool pending = r.message.find("Task was destroyed but it is pending!") == 0;
                const bool lost =
                    r.message.find("Task exception was never retrieved") == 0 && r.exception == "marked 1";
                REQUIRE((pending || lost));
            }
        }
    }
    REQUIRE(finished);
}

// ================================================================= random nestings: properties

namespace {
// A random nesting of scopes, each level one of these around the next, the innermost a sleep.
enum class Level {
    timeout,
    group,
    wait_for_coroutine,
    wait_for_task,
    wait_for_shield,
    wait_for_gather,
    group_in_wait_for,
};
enum class ChildKind { finishes, fails, fails_in_cleanup, swallows_cancel };
struct ChildSpec {
    ChildKind kind;
    double delay;
};
struct LevelSpec {
    Level kind;
    std::optional<double> deadline;   // timeouts and wait_for
    bool catch_here;                  // catch TimeoutError / ExceptionGroup at this level
    std::vector<ChildSpec> children;  // groups
};
struct Nesting {
    std::vector<LevelSpec> levels;
    double leaf_delay;
};

Coroutine<int> random_child(ChildSpec c) {
    switch (c.kind) {
        case ChildKind::finishes:
            co_await aio::sleep(c.delay);
            co_return 1;
        case ChildKind::fails:
            co_await aio::sleep(c.delay);
            throw Marked(2);
        case ChildKind::fails_in_cleanup: {
            bool cancelled = false;
            try {
                co_await aio::sleep(0.04);
            } catch (const aio::CancelledError&) {
                cancelled = true;
            }
            if (cancelled) throw Marked(3);
            co_return 3;
        }
        case ChildKind::swallows_cancel:
            try {
                co_await aio::sleep(0.04);
            } catch (const aio::CancelledError&) {
            }
            co_await aio::sleep(c.delay);
            co_return 4;
    }
    co_return 0;
}

Coroutine<> nesting_level(const Nesting* n, std::size_t depth) {
    if (depth == n->levels.size()) {
        co_await aio::sleep(n->leaf_delay);
        co_return;
    }
    const LevelSpec& l = n->levels[depth];
    auto group_body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        for (auto& c : l.children) tg.create_task(random_child(c));
        co_await nesting_level(n, depth + 1);
    };
    auto group_body_in_a_task = [&](aio::TaskGroup& tg) -> Coroutine<> {
        for (auto& c : l.children) tg.create_task(random_child(c));
        tg.create_task(nesting_level(n, depth + 1));
        co_await aio::sleep(n->leaf_delay);
    };
    auto timeout_body = [&](aio::Timeout&) -> Coroutine<> { co_await nesting_level(n, depth + 1); };
    try {
        switch (l.kind) {
            case Level::timeout:
                co_await aio::timeout(l.deadline, timeout_body);
                break;
            case Level::group:
                co_await aio::task_group(group_body);
                break;
            case Level::wait_for_coroutine:
                co_await aio::wait_for(nesting_level(n, depth + 1), l.deadline);
                break;
            case Level::wait_for_task: {
                auto sub = aio::create_task(nesting_level(n, depth + 1));
                co_await aio::wait_for(sub, l.deadline);
                break;
            }
            case Level::wait_for_shield: {
                auto sub = aio::create_task(nesting_level(n, depth + 1));
                co_await aio::wait_for(aio::shield(sub), l.deadline);
                break;
            }
            case Level::wait_for_gather: {
                auto sub = aio::create_task(nesting_level(n, depth + 1));
                auto other = aio::create_task(random_child(ChildSpec{ChildKind::finishes, n->leaf_delay}));
                co_await aio::wait_for(aio::gather(sub, other), l.deadline);
                break;
            }
            case Level::group_in_wait_for:
                co_await aio::wait_for(aio::task_group(group_body_in_a_task), l.deadline);
                break;
        }
    } catch (const aio::TimeoutError&) {
        if (!l.catch_here) throw;
    } catch (const aio::ExceptionGroup&) {
        if (!l.catch_here) throw;
    }
}

Coroutine<std::string> run_nesting(const Nesting* n) {
    std::string out;
    try {
        co_await nesting_level(n, 0);
        out = "done";
    } catch (const aio::TimeoutError&) {
        out = "TimeoutError";
    } catch (const aio::ExceptionGroup&) {
        out = "ExceptionGroup";
    }
    out += ", " + cancelling_now();
    co_await aio::sleep(0);  // a cancellation still owed is raised here
    co_await aio::sleep(0);
    co_return out;
}

// xorshift64: the same nestings on every run and every platform.
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    double unit() { return double(next() % 1000) / 1000.0; }
    bool coin() { return next() % 2; }
};

Nesting random_nesting(Rng& rng, double u) {
    Nesting n;
    const std::size_t depth = 1 + rng.next() % 4;
    for (std::size_t d = 0; d < depth; ++d) {
        LevelSpec l;
        l.kind = Level(rng.next() % 7);
        if (l.kind != Level::group && rng.next() % 4) l.deadline = rng.unit() * 4 * u;
        l.catch_here = rng.coin();
        if (l.kind == Level::group || l.kind == Level::group_in_wait_for)
            for (std::size_t i = rng.next() % 4; i > 0; --i)
                l.children.push_back(ChildSpec{ChildKind(rng.next() % 4), rng.unit() * 4 * u});
        n.levels.push_back(std::move(l));
    }
    n.leaf_delay = rng.unit() * 4 * u;
    return n;
}
}  // namespace

// Whatever the nesting of timeouts, groups, wait_for, shield and gather, with tasks that
// finish, fail, fail in their clean-up or swallow their cancellation: nothing hangs; a
// cancellation from outside is never lost (the task ends cancelled, unless the cancellation
// was handed to a task it awaits, whose outcome then decides, as in asyncio); without one, no
// cancellation is left over (count 0, nothing raised later); and no failure is reported as
// lost (but a shielded task's own, which nobody is left to read). Timers decide the interleavings, so each run tries others; the properties hold for all.
TEST_CASE("properties: random nestings of scopes never lose a cancellation, never leak one, never lose a failure",
          "[stage3][structured]") {
    const double u = 0.002;  // the time unit: deadlines, delays and the outside cancel within 4 u
    for (std::uint64_t seed = 1; seed <= 150; ++seed) {
        Rng rng{seed * 0x9E3779B97F4A7C15ull};
        const Nesting n = random_nesting(rng, u);
        const bool cancel_from_outside = rng.coin();
        const double cancel_at = rng.unit() * 4 * u;
        bool awaits_a_task = false, shields = false;
        for (auto& l : n.levels) {
            awaits_a_task = awaits_a_task || l.kind == Level::wait_for_task || l.kind == Level::wait_for_gather;
            shields = shields || l.kind == Level::wait_for_shield;
        }

        Reports reports;  // before the loop: its close may still report
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto t = aio::create_task(loop, run_nesting(&n));
        bool cancelled_while_running = false;
        Ref<aio::TimerHandle> canceller;
        if (cancel_from_outside)
            canceller = loop.call_later(cancel_at, [&] {
                if (!t->done()) cancelled_while_running = t->cancel("from outside");
            });
        run_until_done(loop, t);
        INFO("seed " << seed << (cancelled_while_running ? ", cancelled from outside" : ""));
        REQUIRE(t->done());
        if (cancelled_while_running && !awaits_a_task) {
            REQUIRE(t->cancelled());
        } else if (!cancelled_while_running) {
            REQUIRE_FALSE(t->cancelled());
            if (!t->exception()) REQUIRE_THAT(t->result(), Catch::EndsWith("cancelling 0"));
        }
        // Tasks left running (a shielded one, say): stop them, and let them finish.
        if (canceller) canceller->cancel();
        for (auto& other : aio::all_tasks(loop)) other->cancel();
        for (int i = 0; i < 1000 && !aio::all_tasks(loop).empty(); ++i) loop.run_until_complete(aio::sleep(0.001));
        REQUIRE(aio::all_tasks(loop).empty());
        // A shielded task whose awaiter gave up and that then fails has nobody to read its
        // failure: that one is reported, as asyncio 3.12 reports it. Nothing else may be.
        for (auto& r : reports)
            if (!shields || r.message.find("Task exception was never retrieved") == std::string::npos)
                FAIL_CHECK(r.message << ": " << r.exception);
    }
}
