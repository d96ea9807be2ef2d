// Stage 3 tests: a Future's (and so a Task's) Handle side belongs to the loop and the Task.
// Through a Ref<Handle> to a task, Handle::cancel() would mark the task's handle cancelled:
// the loop would skip every later step, not even Task::cancel() could finish it, and at exit
// it would be reported as destroyed while pending. So the Handle base is protected, and
// nothing converts a future or a task to a Handle; these checks fail to compile if it could.
// Then what the hidden side still does: tasks are scheduled and woken through it, in the
// order the callbacks were added (future.hpp's CallbackList), by the rule task.cpp states.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// Could code outside the library treat a T as a Handle and cancel that? (A requires-
// expression checks access too: an inaccessible base makes it false, not an error.)
template <typename T>
concept handle_side_reachable = requires(T& t) { static_cast<aio::Handle&>(t).cancel(); };
template <typename T>
concept handle_cancel_reachable = requires(T& t) { t.aio::Handle::cancel(); };

template <typename T>
constexpr bool hidden_handle() {
    return !std::is_convertible_v<aio::Ref<T>, aio::Ref<aio::Handle>> &&
           !std::is_constructible_v<aio::Ref<aio::Handle>, aio::Ref<T>> &&
           !std::is_constructible_v<aio::Ref<aio::Handle>, T*> && !std::is_convertible_v<T*, aio::Handle*> &&
           !std::is_convertible_v<T&, aio::Handle&> && !handle_side_reachable<T> && !handle_cancel_reachable<T>;
}

static_assert(hidden_handle<aio::Task<int>>());
static_assert(hidden_handle<aio::Task<void>>());
static_assert(hidden_handle<aio::Task<std::string>>());
static_assert(hidden_handle<aio::TaskBase>());
static_assert(hidden_handle<aio::Future<int>>());
static_assert(hidden_handle<aio::Future<void>>());
static_assert(hidden_handle<aio::FutureBase>());
static_assert(hidden_handle<aio::GatheringFuture>());
// The Future family still converts within itself, as its pointers do.
static_assert(std::is_convertible_v<aio::Ref<aio::Task<int>>, aio::Ref<aio::TaskBase>>);
static_assert(std::is_convertible_v<aio::Ref<aio::Task<int>>, aio::Ref<aio::FutureBase>>);
static_assert(std::is_convertible_v<aio::Ref<aio::Future<>>, aio::Ref<aio::FutureBase>>);
static_assert(!std::is_convertible_v<aio::Ref<aio::FutureBase>, aio::Ref<aio::TaskBase>>);
// What add_done_callback returns is a Handle of its own (the callback), and stays one: a
// token to remove the callback, or to cancel it once it is scheduled.
static_assert(std::is_same_v<decltype(std::declval<aio::Future<>&>().add_done_callback([] {})), aio::Ref<aio::Handle>>);
// Hiding the base cost no memory: a Task's small fields still fill the padding at the end of
// its future's callback list ([[no_unique_address]], future.hpp), and a Task<void> stays
// 104 bytes on a 64-bit target (bench_tasks_1m's budget counts them).
static_assert(sizeof(void*) != 8 || sizeof(aio::Task<void>) <= 104);

aio::Coroutine<int> body_runs(int* ran) {
    ++*ran;
    co_return 1;
}

aio::Coroutine<> waits_on(aio::Ref<aio::Future<int>> f, Log* log, std::string label) {
    try {
        int v = co_await f;
        log->push_back(label + " got " + std::to_string(v));
    } catch (const aio::CancelledError& e) {
        log->push_back(label + " cancelled: " + e.message());
        throw;
    }
}

// Counts the steps of every task while it lives.
struct StepCounter final : aio::StepObserver {
    StepCounter() : previous(aio::set_step_observer(this)) {}
    ~StepCounter() { aio::set_step_observer(previous); }
    StepCounter(const StepCounter&) = delete;
    StepCounter& operator=(const StepCounter&) = delete;
    void step_begin(aio::TaskBase&) override { ++steps; }
    void step_end(aio::TaskBase&) override {}
    int steps = 0;
    aio::StepObserver* previous;
};

struct Tracked {
    explicit Tracked(int* live) : live(live) { ++*live; }
    Tracked(const Tracked& o) : live(o.live) { ++*live; }
    ~Tracked() { --*live; }
    int* live;
};

aio::Coroutine<int> holds(Tracked t) { co_return *t.live; }

}  // namespace

TEST_CASE("handle access: Task::cancel() finishes a task still waiting for its first step", "[stage3]") {
    TEST_LOOP(loop);
    int ran = 0;
    auto t = aio::create_task(loop, body_runs(&ran));
    REQUIRE(loop.ready_count() == 1);  // its first step is scheduled: the task itself, queued
    REQUIRE(t->cancel("stop"));
    one_pass(loop);
    REQUIRE(t->done());  // the loop ran the step (which only the Handle's cancel would skip)
    REQUIRE(t->cancelled());
    REQUIRE(ran == 0);  // cancelled before its first step: the body never ran
    REQUIRE(aio::all_tasks(loop).empty());
}

TEST_CASE("handle access: Task::cancel() wakes a task waiting on a future, by cancelling the future", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, waits_on(f, &log, "t"));
    one_pass(loop);
    REQUIRE(t->ref_count() == 2);  // ours, and f's: the waiting task is one of f's callbacks
    REQUIRE(loop.ready_count() == 0);
    REQUIRE(t->cancel("stop"));
    REQUIRE(f->cancelled());  // what it waited on, and so it is woken
    REQUIRE(loop.ready_count() == 1);
    one_pass(loop);
    REQUIRE(t->cancelled());
    REQUIRE(log == Log{"t cancelled: stop"});
    REQUIRE(t->ref_count() == 1);
}

TEST_CASE("handle access: a future schedules its callbacks in the order they were added, tasks among them",
          "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto a = f->add_done_callback([&log] { log.push_back("a"); });
    auto t1 = aio::create_task(loop, waits_on(f, &log, "t1"));
    one_pass(loop);  // t1 waits: f's second callback
    auto b = f->add_done_callback([&log] { log.push_back("b"); });
    auto t2 = aio::create_task(loop, waits_on(f, &log, "t2"));
    one_pass(loop);
    auto c = f->add_done_callback([&log](aio::FutureBase& fut) { log.push_back(fut.done() ? "c" : "c, not done?"); });
    REQUIRE(f->remove_done_callback(a));  // the first one, kept inline: t1 takes its place
    REQUIRE(f->remove_done_callback(b));  // one in the middle
    REQUIRE_FALSE(f->remove_done_callback(b));
    f->set_result(7);
    REQUIRE(log.empty());  // scheduled, never run inside set_result
    REQUIRE(loop.ready_count() == 3);
    one_pass(loop);
    REQUIRE(log == Log{"t1 got 7", "t2 got 7", "c"});
    REQUIRE(t1->done());
    REQUIRE(t2->done());
}

// task.cpp's invariant: a task is scheduled or waiting, never both. Woken (scheduled) and then
// cancelled before its step, it is not scheduled again: one step delivers the cancellation.
TEST_CASE("handle access: a task woken, then cancelled before its step, takes exactly one step", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, waits_on(f, &log, "t"));
    one_pass(loop);
    StepCounter steps;
    f->set_result(1);  // the wakeup: t is in the ready queue
    REQUIRE(t->cancel("late"));
    REQUIRE_FALSE(f->cancelled());  // already done: the request waits for t's step instead
    REQUIRE(loop.ready_count() == 1);
    one_pass(loop);
    REQUIRE(steps.steps == 1);
    REQUIRE(t->cancelled());
    REQUIRE(log == Log{"t cancelled: late"});
    one_pass(loop);
    REQUIRE(steps.steps == 1);  // nothing was left scheduled
}

aio::Coroutine<> awaits_other(std::shared_ptr<aio::Ref<aio::Task<>>> other, Log* log, std::string label) {
    try {
        aio::Ref<aio::Task<>> t = *other;
        co_await t;
    } catch (const aio::CancelledError&) {
        log->push_back(label + " cancelled");
        throw;
    }
}

// The other way from waiting to scheduled: a cancel() come back round an await cycle takes
// the task off the future it waits on, and schedules it once.
TEST_CASE("handle access: cancelling one task of an await cycle ends both, one step each", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto pa = std::make_shared<aio::Ref<aio::Task<>>>();
    auto pb = std::make_shared<aio::Ref<aio::Task<>>>();
    *pa = aio::create_task(loop, awaits_other(pb, &log, "a"));
    *pb = aio::create_task(loop, awaits_other(pa, &log, "b"));
    one_pass(loop);  // a awaits b, b awaits a
    StepCounter steps;
    REQUIRE((*pa)->cancel());
    REQUIRE(loop.ready_count() == 1);  // a, taken off b and scheduled; b still waits on a
    one_pass(loop);
    one_pass(loop);
    REQUIRE(steps.steps == 2);
    REQUIRE((*pa)->cancelled());
    REQUIRE((*pb)->cancelled());
    REQUIRE(log == Log{"a cancelled", "b cancelled"});
    REQUIRE((*pa)->cancelling() == 1);  // one request, not counted again on its way back
}

TEST_CASE("handle access: create_task on a closed loop raises, and frees the coroutine it was given", "[stage3]") {
    TEST_LOOP(loop);
    loop.close();
    int live = 0;
    {
        Tracked tracked(&live);
        REQUIRE_THROWS_AS(aio::create_task(loop, holds(tracked)), aio::RuntimeError);
        REQUIRE(live == 1);  // only ours: the frame's copy is gone with the frame
    }
    REQUIRE(live == 0);
    REQUIRE(aio::all_tasks(loop).empty());
}
