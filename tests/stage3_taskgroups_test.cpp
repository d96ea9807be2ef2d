// Stage 3 tests: TaskGroup (taskgroups.hpp), against the rules of CPython's
// Lib/asyncio/taskgroups.py. Leaving the block waits for every task; the first failure
// cancels the rest and the body; all failures come out together; a cancellation of the
// parent from outside passes through and is no failure; a group shutting down takes no
// new tasks.
#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/taskgroups.hpp"
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

// A child: sleeps, then returns v (or fails with Marked(v)); says what became of it.
Coroutine<int> child(double delay, int v, bool fail, Log* log) {
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError&) {
        log->push_back("child " + std::to_string(v) + " cancelled");
        throw;
    }
    if (fail) {
        log->push_back("child " + std::to_string(v) + " fails");
        throw Marked(v);
    }
    log->push_back("child " + std::to_string(v) + " done");
    co_return v;
}

// The what() of each exception in a group, in order.
std::vector<std::string> whats(const aio::ExceptionGroup& g) {
    std::vector<std::string> out;
    for (auto& e : g.exceptions()) out.push_back(what_of(e));
    return out;
}

}  // namespace

TEST_CASE("TaskGroup: leaving the block waits for every task; the body's value comes out", "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    std::vector<Ref<aio::Task<int>>> ts;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<int> {
        ts.push_back(tg.create_task(child(0.02, 1, false, &log)));
        ts.push_back(tg.create_task(child(0.01, 2, false, &log), "two"));
        co_return 42;
    };
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(loop.run_until_complete(aio::task_group(body)) == 42);
    REQUIRE(seconds_since(t0) >= 0.019);
    REQUIRE(ts[0]->done());
    REQUIRE(ts[1]->result() == 2);
    REQUIRE(ts[1]->get_name() == "two");
    REQUIRE(log == Log{"child 2 done", "child 1 done"});
}

namespace {
// A group whose body starts the given children and then sleeps `body_delay`.
struct Spec {
    double delay;
    int v;
    bool fail;
};
Coroutine<std::string> group_of(std::vector<Spec> specs, double body_delay, Log* log) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        for (auto& s : specs) tg.create_task(child(s.delay, s.v, s.fail, log));
        try {
            co_await aio::sleep(body_delay);
        } catch (const aio::CancelledError&) {
            log->push_back("body cancelled");
            throw;
        }
        log->push_back("body done");
    };
    std::string out;
    try {
        co_await aio::task_group(body);
        out = "no error";
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    }
    // The group took back the cancellation it sent us: the task goes on, and may await.
    co_await aio::sleep(0);
    co_return out + ", cancelling " + std::to_string(aio::current_task()->cancelling());
}
}  // namespace

TEST_CASE("TaskGroup: one task fails: the others and the body are cancelled, the failure comes out in a group",
          "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Reports reports;
    capture_reports(loop, &reports);
    Log log;
    SECTION("while the body still runs") {
        REQUIRE(loop.run_until_complete(group_of({{0.01, 1, true}, {10.0, 2, false}, {10.0, 3, false}}, 10.0, &log)) ==
                "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 0");
        // (the group cancels its tasks first, then the parent: they run in that order)
        REQUIRE(log == Log{"child 1 fails", "child 2 cancelled", "child 3 cancelled", "body cancelled"});
    }
    SECTION("after the body has finished, while the group waits") {
        REQUIRE(loop.run_until_complete(group_of({{0.02, 1, true}, {10.0, 2, false}}, 0.0, &log)) ==
                "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 0");
        REQUIRE(log == Log{"body done", "child 1 fails", "child 2 cancelled"});
    }
    REQUIRE(reports.empty());  // the failure was handed over, not lost
}

namespace {
// Waits for `go`, then fails with Marked(v).
Coroutine<int> fails_on(Ref<aio::Future<>> go, int v, Log* log) {
    co_await go;
    log->push_back("child " + std::to_string(v) + " fails");
    throw Marked(v);
    co_return v;
}
Coroutine<std::string> two_fail_together(Ref<aio::Future<>> go, Log* log) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_on(go, 1, log));
        tg.create_task(fails_on(go, 2, log));
        tg.create_task(child(10.0, 3, false, log));
        co_await aio::sleep(0);
        go->set_result();  // both wake in the next pass, and fail in it
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
            log->push_back("body cancelled");
            throw;
        }
    };
    try {
        co_await aio::task_group(body);
    } catch (const aio::ExceptionGroup& g) {
        co_return g.what();
    }
    co_return "no error";
}
}  // namespace

TEST_CASE("TaskGroup: two tasks fail in the same pass: both come out, in the order they failed", "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    auto go = aio::create_future(loop);
    REQUIRE(loop.run_until_complete(two_fail_together(go, &log)) ==
            "unhandled errors in a TaskGroup (2 sub-exceptions: marked 1; marked 2)");
    REQUIRE(log == Log{"child 1 fails", "child 2 fails", "child 3 cancelled", "body cancelled"});
}

namespace {
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
Coroutine<aio::ExceptionGroup> body_fails(Log* log) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_when_cancelled(2, log));
        co_await aio::sleep(0);
        throw Marked(1);
    };
    try {
        co_await aio::task_group(body);
    } catch (const aio::ExceptionGroup& g) {
        co_return g;
    }
    throw std::logic_error("no ExceptionGroup");
}
}  // namespace

TEST_CASE("TaskGroup: the body fails: the tasks are cancelled, and every failure, the body's last, is in the group",
          "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    aio::ExceptionGroup g = loop.run_until_complete(body_fails(&log));
    REQUIRE(g.message() == "unhandled errors in a TaskGroup");
    REQUIRE(whats(g) == std::vector<std::string>{"marked 2", "marked 1"});
    REQUIRE(log == Log{"child 2 fails in its clean-up"});
    REQUIRE_THROWS_AS(std::rethrow_exception(g.exceptions()[1]), Marked);  // each keeps its type
}

namespace {
Coroutine<std::string> group_cancelled_from_outside(double body_delay, Log* log) {
    std::string out;
    try {
        std::vector<Spec> specs{{10.0, 1, false}, {10.0, 2, false}};  // (named: hazard 6)
        std::string r = co_await group_of(std::move(specs), body_delay, log);
        out = r;
    } catch (const aio::CancelledError& e) {
        out = "CancelledError " + e.message();
        throw;
    }
    co_return out;
}
}  // namespace

TEST_CASE("TaskGroup: the parent cancelled from outside: the tasks are cancelled, CancelledError passes through",
          "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    Ref<aio::Task<std::string>> t;
    SECTION("while the body runs") {
        t = aio::create_task(loop, group_cancelled_from_outside(10.0, &log));
        one_pass(loop);
        one_pass(loop);
        REQUIRE(t->cancel("go away"));
        run_until_done(loop, t);
        REQUIRE(log == Log{"body cancelled", "child 1 cancelled", "child 2 cancelled"});
    }
    SECTION("while the group waits for its tasks") {
        t = aio::create_task(loop, group_cancelled_from_outside(0.0, &log));
        one_pass(loop);
        one_pass(loop);
        one_pass(loop);
        REQUIRE(log == Log{"body done"});
        REQUIRE(t->cancel("go away"));
        run_until_done(loop, t);
        REQUIRE(log == Log{"body done", "child 1 cancelled", "child 2 cancelled"});
    }
    REQUIRE(t->cancelled());
    REQUIRE_THROWS_WITH(t->result(), "go away");
    REQUIRE(t->cancelling() == 1);  // the outside request stands
}

namespace {
Coroutine<std::string> failure_then_outside_cancel(Log* log, Ref<aio::Future<>> go) {
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(fails_when_cancelled(1, log));
        co_await go;
    };
    std::string out;
    try {
        co_await aio::task_group(body);
        out = "no error";
    } catch (const aio::ExceptionGroup& g) {
        out = g.what();
    }
    log->push_back(out + ", cancelling " + std::to_string(aio::current_task()->cancelling()));
    co_await aio::sleep(0);  // the outside request is delivered here
    log->push_back("not reached");
    co_return out;
}
}  // namespace

TEST_CASE("TaskGroup: tasks that fail while the parent is cancelled from outside: the failures come out, then the "
          "cancellation at the next await",
          "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    auto go = aio::create_future(loop);
    auto t = aio::create_task(loop, failure_then_outside_cancel(&log, go));
    one_pass(loop);
    one_pass(loop);
    REQUIRE(t->cancel("go away"));  // the body stops; the group cancels its task, which fails
    run_until_done(loop, t);
    REQUIRE(log == Log{"child 1 fails in its clean-up",
                       "unhandled errors in a TaskGroup (1 sub-exception: marked 1), cancelling 1"});
    REQUIRE(t->cancelled());
    REQUIRE_THROWS_WITH(t->result(), "go away");
}

namespace {
// A child that adds a grandchild to the group it belongs to.
Coroutine<int> adds_one(aio::TaskGroup* tg, Log* log) {
    co_await aio::sleep(0.01);
    tg->create_task(child(0.01, 2, false, log));
    log->push_back("added child 2");
    co_return 1;
}
}  // namespace

TEST_CASE("TaskGroup: a task added from inside a child, while the group waits, is waited for too", "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(adds_one(&tg, &log));
        co_return;
    };
    loop.run_until_complete(aio::task_group(body));
    REQUIRE(log == Log{"added child 2", "child 2 done"});
}

namespace {
Coroutine<std::string> create_while_shutting_down(Log* log, bool* started) {
    std::string said;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(child(0.01, 1, true, log));
        try {
            co_await aio::sleep(10.0);
        } catch (const aio::CancelledError&) {
            try {
                tg.create_task(child(0.0, 2, false, log));
            } catch (const aio::RuntimeError& e) {
                said = e.what();
            }
            throw;
        }
    };
    try {
        co_await aio::task_group(body);
    } catch (const aio::ExceptionGroup&) {
    }
    *started = log->size() > 1;
    co_return said;
}
}  // namespace

TEST_CASE("TaskGroup: creating a task in a group that is shutting down is a RuntimeError; the coroutine never runs",
          "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    bool started = true;
    REQUIRE_THAT(loop.run_until_complete(create_while_shutting_down(&log, &started)),
                 Catch::StartsWith("TaskGroup is shutting down"));
    REQUIRE(log == Log{"child 1 fails"});
    REQUIRE_FALSE(started);
}

namespace {
Coroutine<int> int_thrower(double delay) {
    co_await aio::sleep(delay);
    throw 42;
    co_return 0;
}
}  // namespace

TEST_CASE("TaskGroup: a failure that is not a std::exception is kept as it is", "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(int_thrower(0.0));
        co_return;
    };
    try {
        loop.run_until_complete(aio::task_group(body));
        FAIL("no ExceptionGroup");
    } catch (const aio::ExceptionGroup& g) {
        REQUIRE(g.exceptions().size() == 1);
        REQUIRE_THROWS_AS(std::rethrow_exception(g.exceptions()[0]), int);
        REQUIRE_THAT(g.what(), Catch::Contains("not a std::exception"));
    }
}

TEST_CASE("TaskGroup: a timeout around a group cancels its tasks and raises TimeoutError", "[stage3][taskgroup]") {
    TEST_LOOP(loop);
    Log log;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(child(10.0, 1, false, &log));
        tg.create_task(child(10.0, 2, false, &log));
        co_return;
    };
    auto t = aio::create_task(loop, aio::timeout(0.01, aio::task_group(body)));
    run_until_done(loop, t);
    REQUIRE_THROWS_AS(t->result(), aio::TimeoutError);
    REQUIRE(log == Log{"child 1 cancelled", "child 2 cancelled"});
    REQUIRE(t->cancelling() == 0);
}

TEST_CASE("TaskGroup: outside a task is a RuntimeError", "[stage3][taskgroup]") {
    auto body = [](aio::TaskGroup&) -> Coroutine<> { co_return; };
    Coroutine<> c = aio::task_group(body);
    auto h = c.release("test");
    h.resume();
    REQUIRE(h.done());
    REQUIRE_THROWS_AS(std::rethrow_exception(h.promise().exception), aio::RuntimeError);
    h.destroy();
}

TEST_CASE("TaskGroup: a loop closed while a group waits inside a timeout frees the group, its tasks and the timer",
          "[stage3][taskgroup]") {
    Reports reports;  // before the loop: its close reports the pending tasks
    Log log;
    auto body = [&](aio::TaskGroup& tg) -> Coroutine<> {
        tg.create_task(child(10.0, 1, false, &log));
        tg.create_task(child(10.0, 2, false, &log));
        co_return;
    };
    Ref<aio::Task<>> t;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        t = aio::create_task(loop, aio::timeout(10.0, aio::task_group(body)));
        one_pass(loop);
        one_pass(loop);
        REQUIRE(loop.timer_count() == 3);  // the timeout's and the two children's sleeps
    }
    REQUIRE(t->cancelled());
    REQUIRE(count_reports(reports, "Task was destroyed but it is pending!") == 3);
    REQUIRE(log.empty());  // freed, not cancelled: no code of theirs ran
}
