// Stage 3 tests: object lifetimes and loop teardown. A loop closed (or destroyed) while its
// tasks wait on locks, queues, events, combinators, timers or worker threads must free every
// coroutine frame, report each pending task once, leave the primitives usable by a later
// loop, and leave nothing behind that a later loop at the same address could receive. What
// outlives the loop (a task's Ref, a future, a lock, a queue) stays safe to use.
//
// Many tests build their loops in a LoopSlot, so that a second loop sits at exactly the
// address of the first: anything the first loop's leftovers still schedule "on their loop"
// then lands, visibly, in the second one's ready queue (and under ASan the first loop's
// leftovers would touch the first loop's freed state).
//
// The comment above a test says what behaviour it pins when its name alone does not. The
// scenarios that would crash the whole run if they came back (a null or dangling loop
// pointer) run in a forked child, so they fail alone.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/executor.hpp"
#include "stage3_tasks_futures/locks.hpp"
#include "stage3_tasks_futures/queues.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/fork_test_support.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/stage3_test_support.hpp"

using namespace std::chrono_literals;

namespace {

using namespace loop_test_support;
using fork_test_support::in_child;
using aio::Coroutine;
using aio::Ref;
using Tasks = std::vector<Ref<aio::TaskBase>>;

// ------------------------------------------------------------------------------ helpers

// Counts live instances: a coroutine frame that holds one was destroyed iff the count drops.
struct Probe {
    explicit Probe(int* live) : live(live) { ++*live; }
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;
    ~Probe() { --*live; }
    int* live;
};

// Storage for loops made one after another at the same address. Placement new needs the
// class, so these loops are stage 2's EventLoop in every binary, also in the runs on the
// selector loop (tests/loop_test_support.hpp): what they pin is stage 3's bookkeeping,
// keyed by the loop's address, which the loop's class does not change.
class LoopSlot {
public:
    LoopSlot() = default;
    LoopSlot(const LoopSlot&) = delete;
    LoopSlot& operator=(const LoopSlot&) = delete;
    ~LoopSlot() { destroy(); }

    aio::EventLoop& make() {
        destroy();
        loop_ = new (storage_) aio::EventLoop;
        return *loop_;
    }
    void destroy() {
        if (loop_) std::exchange(loop_, nullptr)->~EventLoop();
    }
    const void* address() const noexcept { return storage_; }

private:
    alignas(aio::EventLoop) unsigned char storage_[sizeof(aio::EventLoop)];
    aio::EventLoop* loop_ = nullptr;
};

constexpr const char* kPending = "Task was destroyed but it is pending!";

// A loop that has been given nothing: no callback, no timer, no task, and a task on it runs
// its two steps with nothing reported.
Coroutine<int> two_steps(int* steps) {
    ++*steps;
    co_await aio::sleep(0.001);
    ++*steps;
    co_return 7;
}
void require_fresh(aio::EventLoop& loop) {
    REQUIRE(loop.ready_count() == 0);
    REQUIRE(loop.timer_count() == 0);
    REQUIRE(aio::all_tasks(loop).empty());
    Reports reports;
    capture_reports(loop, &reports);
    int steps = 0;
    REQUIRE(loop.run_until_complete(two_steps(&steps)) == 7);
    REQUIRE(steps == 2);
    for (int i = 0; i < 3; ++i) one_pass(loop);
    REQUIRE(reports.empty());
    REQUIRE(loop.ready_count() == 0);
}

// ------------------------------------------------------------- coroutines the tests use

Coroutine<> hold_lock(aio::Lock lock, Ref<aio::Future<>> until, int* live) {
    Probe p(live);
    auto guard = co_await lock.acquire_guard();
    co_await until;
}
Coroutine<> wait_lock(aio::Lock lock, int* live, Log* log) {
    Probe p(live);
    co_await lock.acquire();
    log->push_back("lock acquired");
    lock.release();
}
Coroutine<> hold_unit(aio::Semaphore sem, Ref<aio::Future<>> until, int* live) {
    Probe p(live);
    auto guard = co_await sem.acquire_guard();
    co_await until;
}
Coroutine<> wait_unit(aio::Semaphore sem, int* live, Log* log) {
    Probe p(live);
    co_await sem.acquire();
    log->push_back("unit acquired");
    sem.release();
}
Coroutine<> wait_event(aio::Event ev, int* live, Log* log) {
    Probe p(live);
    co_await ev.wait();
    log->push_back("event seen");
}
Coroutine<> get_item(aio::Queue<std::string> q, int* live, Log* log) {
    Probe p(live);
    std::string item = co_await q.get();
    log->push_back("got " + item);
}
Coroutine<> put_item(aio::Queue<std::string> q, std::string item, int* live, Log* log) {
    Probe p(live);
    co_await q.put(std::move(item));
    log->push_back("put");
}
Coroutine<> join_queue(aio::Queue<std::string> q, int* live, Log* log) {
    Probe p(live);
    co_await q.join();
    log->push_back("joined");
}
Coroutine<int> await_int(Ref<aio::Future<int>> f, int* live) {
    Probe p(live);
    int v = co_await f;
    co_return v;
}
Coroutine<> await_void(Ref<aio::Future<>> f) { co_await f; }

// Everything a second loop does with primitives that a first loop's tasks were waiting on
// when it closed: they must all be free and empty.
struct Primitives {
    aio::Lock lock;
    aio::Semaphore sem{2};
    aio::Event event;
    aio::Queue<std::string> queue{1};
};

Coroutine<std::string> use_primitives(Primitives p) {
    std::string out;
    {
        auto g1 = co_await p.lock.acquire_guard();
        out += "lock ";
    }
    {
        auto u1 = co_await p.sem.acquire_guard();
        auto u2 = co_await p.sem.acquire_guard();
        out += p.sem.locked() ? "2 units " : "? ";
    }
    p.event.set();
    co_await p.event.wait();
    out += "event ";
    std::string first = co_await p.queue.get();  // the item the first loop's putter never put stays out
    out += first + " ";
    p.queue.task_done();
    co_await p.queue.join();
    out += "joined";
    co_return out;
}

}  // namespace

// ================================================================== primitives at close

TEST_CASE("teardown: closing a loop frees tasks waiting on Lock, Semaphore, Event and Queue; a new loop reuses them",
          "[stage3]") {
    int live = 0;
    Log log;
    Reports reports;
    std::optional<Primitives> kept;
    LoopSlot slot;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        Primitives p;
        p.queue.put_nowait("first");  // full (maxsize 1); nobody will task_done() it yet
        auto until = aio::create_future(loop);
        (void)aio::create_task(loop, hold_lock(p.lock, until, &live), "lock holder");
        (void)aio::create_task(loop, hold_unit(p.sem, until, &live), "unit holder 1");
        (void)aio::create_task(loop, hold_unit(p.sem, until, &live), "unit holder 2");
        loop.run_until_complete(stage3_test_support::settle());
        (void)aio::create_task(loop, wait_lock(p.lock, &live, &log), "lock waiter");
        (void)aio::create_task(loop, wait_unit(p.sem, &live, &log), "unit waiter");
        (void)aio::create_task(loop, wait_event(p.event, &live, &log), "event waiter");
        (void)aio::create_task(loop, put_item(p.queue, "second", &live, &log), "putter");
        (void)aio::create_task(loop, join_queue(p.queue, &live, &log), "joiner");
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(live == 8);
        REQUIRE(p.lock.locked());
        REQUIRE(p.sem.locked());
        REQUIRE(log.empty());
        SECTION("the primitives' handles go before the loop") {}
        SECTION("the primitives' handles outlive the loop") { kept.emplace(p); }
    }
    // The handles made in the scope above are gone; each waiting frame still holds its state.
    slot.destroy();  // closes: every waiting frame is destroyed
    REQUIRE(live == 0);
    REQUIRE(log.empty());
    REQUIRE(reports.size() == 8);
    REQUIRE(count_reports(reports, kPending) == 8);
    if (kept) {
        // The holders' guards released on the way out; every waiter left its line.
        REQUIRE_FALSE(kept->lock.locked());
        REQUIRE_FALSE(kept->sem.locked());
        REQUIRE_FALSE(kept->event.is_set());
        REQUIRE(kept->queue.qsize() == 1);  // "second" was never put
        aio::EventLoop& second = slot.make();
        Reports reports2;
        capture_reports(second, &reports2);
        REQUIRE(second.run_until_complete(aio::wait_for(use_primitives(*kept), 2.0)) ==
                "lock 2 units event first joined");
        REQUIRE(reports2.empty());
        REQUIRE(kept->queue.empty());
    }
}

namespace {
Coroutine<> get_then_yield(aio::Queue<std::string> q, Log* log) {
    std::string item = co_await q.get();
    log->push_back("got " + item);
}
}  // namespace

TEST_CASE("teardown: a Queue getter woken for an item, then freed with its loop, leaves the item in the queue",
          "[stage3]") {
    aio::Queue<std::string> q;
    Log log;
    Reports reports;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto getter = aio::create_task(loop, get_then_yield(q, &log));
        auto other = aio::create_task(loop, get_then_yield(q, &log));
        one_pass(loop);
        q.put_nowait("x");  // wakes the first getter, which has not run yet
        REQUIRE_FALSE(getter->done());
        loop.close();
        REQUIRE(getter->cancelled());
        REQUIRE(other->cancelled());
    }
    REQUIRE(reports.size() == 2);
    REQUIRE(log.empty());
    REQUIRE(q.qsize() == 1);
    REQUIRE(aio::run(q.get()) == "x");
}

namespace {
Coroutine<> yield_then_acquire_lock(aio::Lock lock, int* live, Log* log) {
    Probe p(live);
    co_await aio::yield_now();
    co_await lock.acquire();
    log->push_back("acquired");
}
Coroutine<> yield_then_acquire_unit(aio::Semaphore sem, int* live, Log* log) {
    Probe p(live);
    co_await aio::yield_now();
    co_await sem.acquire();
    log->push_back("acquired");
}
}  // namespace

// The holder is the newer task, so it is freed first at close: its guard releases and hands
// the lock to the older waiter, which is then freed without ever running.
TEST_CASE("teardown: a Lock released by a holder freed at close, to a waiter freed next, is left free", "[stage3]") {
    aio::Lock lock;
    int live = 0;
    Log log;
    Reports reports;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto until = aio::create_future(loop);
        auto waiter = aio::create_task(loop, yield_then_acquire_lock(lock, &live, &log), "older waiter");
        auto holder = aio::create_task(loop, hold_lock(lock, until, &live), "newer holder");
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(lock.locked());
        REQUIRE_FALSE(waiter->done());
        loop.close();
    }
    REQUIRE(live == 0);
    REQUIRE(reports.size() == 2);
    REQUIRE(log.empty());
    REQUIRE_FALSE(lock.locked());
    aio::run(aio::wait_for(lock.acquire(), 1.0));
    REQUIRE(lock.locked());
}

// -------------------------------------------------------------------------------- Semaphore
//
// A Semaphore unit handed to a waiter comes back if the waiter is freed before it runs (a Lock
// is not handed over until its waiter runs, so it cannot lose one).

TEST_CASE("teardown: a Semaphore unit handed to a waiter that is then freed with its loop is given back",
          "[stage3]") {
    aio::Semaphore sem(1);
    int live = 0;
    Log log;
    Reports reports;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto until = aio::create_future(loop);
        SECTION("released by hand: the waiter is woken, then the loop closes before it runs") {
            loop.run_until_complete(sem.acquire());
            auto waiter = aio::create_task(loop, wait_unit(sem, &live, &log), "waiter");
            loop.run_until_complete(stage3_test_support::settle());
            REQUIRE(sem.locked());
            sem.release();  // hands the unit to the waiter, which has not run yet
            REQUIRE_FALSE(waiter->done());
            loop.close();
            REQUIRE(reports.size() == 1);
        }
        SECTION("released at close by a newer holder's guard, to an older waiter") {
            auto waiter = aio::create_task(loop, yield_then_acquire_unit(sem, &live, &log), "older waiter");
            auto holder = aio::create_task(loop, hold_unit(sem, until, &live), "newer holder");
            loop.run_until_complete(stage3_test_support::settle());
            REQUIRE(sem.locked());
            REQUIRE_FALSE(waiter->done());
            loop.close();
            REQUIRE(reports.size() == 2);
        }
    }
    REQUIRE(live == 0);
    REQUIRE(log.empty());
    REQUIRE_FALSE(sem.locked());
    aio::run(aio::wait_for(sem.acquire(), 1.0));
    REQUIRE(sem.locked());
}

// =========================================================== combinators and sleep at close

namespace {

Coroutine<> gather_futures(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, int* live) {
    Probe p(live);
    auto r = co_await aio::gather(a, b);
    (void)r;
}
Coroutine<> gather_coroutines(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, int* live) {
    Probe p(live);
    auto r = co_await aio::gather(await_int(a, live), await_int(b, live));
    (void)r;
}
Coroutine<> gather_vector(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, int* live) {
    Probe p(live);
    std::vector<Coroutine<int>> cs;
    cs.push_back(await_int(a, live));
    cs.push_back(await_int(b, live));
    auto r = co_await aio::gather(std::move(cs));
    (void)r;
}
Coroutine<> gather_vector_return_exceptions(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, int* live) {
    Probe p(live);
    std::vector<Ref<aio::Future<int>>> fs;
    fs.push_back(a);
    fs.push_back(b);
    auto r = co_await aio::gather(aio::return_exceptions, std::move(fs));
    (void)r;
}
Coroutine<> wait_futures(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, int* live) {
    Probe p(live);
    std::vector<Ref<aio::Future<int>>> fs;
    fs.push_back(a);
    fs.push_back(b);
    auto r = co_await aio::wait(std::move(fs), 30.0, aio::FIRST_COMPLETED);
    (void)r;
}
Coroutine<> wait_for_future(Ref<aio::Future<int>> a, int* live) {
    Probe p(live);
    int v = co_await aio::wait_for(a, 30.0);
    (void)v;
}
Coroutine<> wait_for_coroutine(Ref<aio::Future<int>> a, int* live) {
    Probe p(live);
    int v = co_await aio::wait_for(await_int(a, live), 30.0);
    (void)v;
}
Coroutine<> as_completed_futures(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, int* live) {
    Probe p(live);
    std::vector<Ref<aio::Future<int>>> fs;
    fs.push_back(a);
    fs.push_back(b);
    auto ac = aio::as_completed(std::move(fs));
    int v = co_await ac.next();
    (void)v;
}
Coroutine<> just_sleep(int* live) {
    Probe p(live);
    co_await aio::sleep(30.0);
}

}  // namespace

TEST_CASE("teardown: a loop closed while tasks wait in gather, wait, wait_for, as_completed or sleep frees them all",
          "[stage3]") {
    int live = 0;
    Reports reports;
    LoopSlot slot;
    Ref<aio::Future<int>> a, b;
    Ref<aio::TaskBase> outer;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        a = aio::create_future<int>(loop);
        b = aio::create_future<int>(loop);
        SECTION("gather of futures") { outer = aio::create_task(loop, gather_futures(a, b, &live)); }
        SECTION("gather of coroutines (tuple)") { outer = aio::create_task(loop, gather_coroutines(a, b, &live)); }
        SECTION("gather of a vector") { outer = aio::create_task(loop, gather_vector(a, b, &live)); }
        SECTION("gather(return_exceptions) of a vector of futures") {
            outer = aio::create_task(loop, gather_vector_return_exceptions(a, b, &live));
        }
        SECTION("wait") { outer = aio::create_task(loop, wait_futures(a, b, &live)); }
        SECTION("wait_for a future") { outer = aio::create_task(loop, wait_for_future(a, &live)); }
        SECTION("wait_for a coroutine") { outer = aio::create_task(loop, wait_for_coroutine(a, &live)); }
        SECTION("as_completed") { outer = aio::create_task(loop, as_completed_futures(a, b, &live)); }
        SECTION("sleep") { outer = aio::create_task(loop, just_sleep(&live)); }
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(live >= 1);
        REQUIRE_FALSE(outer->done());
    }
    slot.destroy();
    REQUIRE(live == 0);
    REQUIRE_FALSE(reports.empty());
    REQUIRE(count_reports(reports, kPending) == reports.size());
    REQUIRE(outer->cancelled());
    // The futures outlive the loop. Completing them now must schedule nothing anywhere: a
    // new loop at the same address receives nothing (and ASan sees no use of the old one).
    aio::EventLoop& second = slot.make();
    a->set_result(1);
    REQUIRE(b->cancel());
    REQUIRE(second.ready_count() == 0);
    require_fresh(second);
}

// ========================================================== a task's Ref past its loop

namespace {
Coroutine<int> fails_later(Ref<aio::Future<>> go) {
    co_await go;
    throw Marked(5);
}
Coroutine<int> returns_now(int v) { co_return v; }
}  // namespace

TEST_CASE("teardown: a task's Ref kept past its loop answers every question, whatever state it was in", "[stage3]") {
    int live = 0;
    Reports reports;
    Ref<aio::Task<int>> suspended, unstarted, finished, failed, cancelled;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto f = aio::create_future<int>(loop);
        auto go = aio::create_future(loop);
        suspended = aio::create_task(loop, await_int(f, &live), "suspended");
        finished = aio::create_task(loop, returns_now(3), "finished");
        failed = aio::create_task(loop, fails_later(go), "failed");
        auto g = aio::create_future<int>(loop);
        cancelled = aio::create_task(loop, await_int(g, &live), "cancelled");
        one_pass(loop);
        go->set_result();
        cancelled->cancel("bye");
        loop.run_until_complete(stage3_test_support::settle());
        unstarted = aio::create_task(loop, returns_now(4), "unstarted");
        REQUIRE(failed->done());
        REQUIRE(cancelled->cancelled());
        REQUIRE(live == 1);
        std::ostringstream os;
        suspended->print_stack(os);
        REQUIRE_THAT(os.str(), Catch::Contains("suspended") && Catch::Contains("await_int"));
    }
    REQUIRE(live == 0);
    REQUIRE(count_reports(reports, kPending) == 2);  // suspended, unstarted
    REQUIRE(reports.size() == 2);

    for (auto* t : {&suspended, &unstarted, &finished, &failed, &cancelled}) {
        auto& task = **t;
        INFO(task.get_name());
        REQUIRE(task.done());
        REQUIRE_FALSE(task.cancel());
        REQUIRE(task.get_stack().empty());
        std::ostringstream os;
        task.print_stack(os);
        REQUIRE_THAT(os.str(), Catch::Contains(task.get_name()) && Catch::Contains("(done)"));
        task.set_name(task.get_name() + "!");
        REQUIRE(task.get_name().back() == '!');
    }
    REQUIRE(suspended->cancelled());
    REQUIRE(unstarted->cancelled());
    REQUIRE_THROWS_AS(suspended->result(), aio::CancelledError);
    REQUIRE_THROWS_AS(suspended->exception(), aio::CancelledError);
    REQUIRE_THROWS_AS(unstarted->result(), aio::CancelledError);
    REQUIRE(finished->result() == 3);
    REQUIRE(finished->exception() == nullptr);
    REQUIRE_THROWS_AS(failed->result(), Marked);
    REQUIRE(what_of(failed->exception()) == "marked 5");
    try {
        cancelled->result();
        FAIL("no CancelledError");
    } catch (const aio::CancelledError& e) {
        REQUIRE(e.message() == "bye");
    }
    // Dropping them now (the loop is gone) touches nothing of it (ASan).
    suspended = unstarted = finished = failed = cancelled = nullptr;
}

// ------------------------------------------------------------------ get_loop, add_done_callback
//
// A future keeps its loop's lifeline: after close, get_loop() is the closed loop, as in asyncio,
// and add_done_callback raises RuntimeError("Event loop is closed").

namespace {
void get_loop_after_close() {
    TEST_LOOP(loop);
    loop.set_exception_handler([](aio::EventLoop&, const aio::ExceptionContext&) {});
    auto pending = aio::create_task(loop, await_void(aio::create_future(loop)));
    auto finished = aio::create_task(loop, returns_now(1));
    one_pass(loop);
    if (&finished->get_loop() != &loop) ::_exit(4);
    loop.close();
    // A reference bound to nullptr (UBSan stops here; otherwise the comparison fails).
    if (&finished->get_loop() != &loop) ::_exit(5);
    if (&pending->get_loop() != &loop) ::_exit(6);
    if (!pending->get_loop().is_closed()) ::_exit(7);
}
}  // namespace

TEST_CASE("teardown: get_loop() of a task whose loop closed is still that loop", "[stage3]") {
    REQUIRE(in_child(get_loop_after_close) == "ok");
}

namespace {
void add_done_callback_after_close() {
    TEST_LOOP(loop);
    loop.set_exception_handler([](aio::EventLoop&, const aio::ExceptionContext&) {});
    auto pending = aio::create_task(loop, await_void(aio::create_future(loop)));
    auto finished = aio::create_task(loop, returns_now(1));
    one_pass(loop);
    loop.close();
    int ran = 0;
    for (auto& t : {Ref<aio::TaskBase>(pending), Ref<aio::TaskBase>(finished)}) {
        try {
            t->add_done_callback([&ran] { ++ran; });  // crashes: loop_ is null
            std::fprintf(stderr, "add_done_callback on a closed loop's task did not raise\n");
            ::_exit(4);
        } catch (const aio::RuntimeError&) {
        }
    }
    if (ran != 0) ::_exit(5);
}
}  // namespace

TEST_CASE("teardown: add_done_callback on a task whose loop closed raises RuntimeError, as call_soon does",
          "[stage3]") {
    REQUIRE(in_child(add_done_callback_after_close) == "ok");
}

// ------------------------------------------------------- never-retrieved errors at close
//
// A task that failed, whose exception nobody read, and which is freed when its loop closes
// (its only holder was a pending task's frame): the report should go to the loop's
// exception handler, as asyncio's Task.__del__ calls loop.call_exception_handler.

namespace {
Coroutine<> holds_a_task(Ref<aio::Task<int>> t, Ref<aio::Future<>> until) {
    co_await until;
    (void)t;
}
}  // namespace

// A failed task freed while its loop closes is reported through the loop's exception handler.
TEST_CASE("teardown: a failed task freed at close is reported through the loop's exception handler",
          "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    auto go = aio::create_future(loop);
    auto failing = aio::create_task(loop, fails_later(go), "lost error");
    auto holder = aio::create_task(loop, holds_a_task(failing, aio::create_future(loop)), "holder");
    one_pass(loop);
    go->set_result();
    loop.run_until_complete(stage3_test_support::settle());
    REQUIRE(failing->done());
    REQUIRE(reports.empty());
    failing = nullptr;  // only the holder's frame refers to it now
    holder = nullptr;
    loop.close();
    REQUIRE(count_reports(reports, kPending) == 1);                          // the holder
    REQUIRE(count_reports(reports, "Task exception was never retrieved") == 1);
    REQUIRE(reports.size() == 2);
}

// ============================================== futures that outlive their loop, with callbacks
//
// The library leaves no done-callback of its own on a future that may outlive its loop
// (run_in_executor's cancel check, gather's orphaned children, run_until_complete's stop).
// The second loop is built at the first one's address, so a stray callback would show up in
// its ready queue.

namespace {
int forty_two() { return 42; }
Coroutine<> gather_two(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b) {
    auto r = co_await aio::gather(a, b);
    (void)r;
}
}  // namespace

TEST_CASE("teardown: a run_in_executor Future kept past its loop can be cancelled without touching any loop",
          "[stage3]") {
    LoopSlot slot;
    Ref<aio::Future<int>> call;
    {
        aio::EventLoop& loop = slot.make();
        call = aio::run_in_executor(loop, nullptr, forty_two);
        loop.close();  // joins the worker; the result is dropped
        REQUIRE_FALSE(call->done());
    }
    slot.destroy();
    aio::EventLoop& second = slot.make();
    REQUIRE(call->cancel());
    REQUIRE(second.ready_count() == 0);
    one_pass(second);
}

TEST_CASE("teardown: a future gather gave up on, kept past its loop, can be completed without touching any loop",
          "[stage3]") {
    LoopSlot slot;
    Reports reports;
    auto fb = Ref<aio::Future<int>>();
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        auto fa = aio::create_future<int>(loop);
        fb = aio::create_future<int>(loop);
        auto t = aio::create_task(loop, gather_two(fa, fb));
        one_pass(loop);
        fa->set_exception(std::make_exception_ptr(Marked(1)));
        while (!t->done()) one_pass(loop);
        REQUIRE_THROWS_AS(t->result(), Marked);  // gather failed, and orphaned fb
    }
    slot.destroy();
    aio::EventLoop& second = slot.make();
    fb->set_result(2);
    REQUIRE(second.ready_count() == 0);
    one_pass(second);
    REQUIRE(reports.empty());
}

TEST_CASE("teardown: run_until_complete stopped early leaves no callback on the future", "[stage3]") {
    LoopSlot slot;
    Ref<aio::Future<int>> f;
    {
        aio::EventLoop& loop = slot.make();
        f = aio::create_future<int>(loop);
        loop.call_soon([&loop] { loop.stop(); });
        REQUIRE_THROWS_AS(loop.run_until_complete(f), aio::RuntimeError);
    }
    slot.destroy();
    aio::EventLoop& second = slot.make();
    f->set_result(1);
    REQUIRE(second.ready_count() == 0);
    one_pass(second);
}

// ==================================================== a task created while its loop closes
//
// A task created while its loop closes (by a destructor in a frame being freed) is detached
// too: it ends done, not pending for ever.

namespace {
struct SpawnOnDestroy {
    aio::EventLoop* loop;
    Ref<aio::Task<int>>* out;
    ~SpawnOnDestroy() {
        try {
            *out = aio::create_task(*loop, returns_now(1), "spawned at close");
        } catch (const aio::RuntimeError&) {  // refusing is fine too
        }
    }
};
Coroutine<> spawns_when_destroyed(aio::EventLoop* loop, Ref<aio::Task<int>>* out, Ref<aio::Future<>> until) {
    SpawnOnDestroy s{loop, out};
    co_await until;
}
}  // namespace

TEST_CASE("teardown: a task created while its loop closes ends up done, not pending for ever", "[stage3]") {
    Reports reports;
    LoopSlot slot;
    aio::EventLoop& loop = slot.make();
    capture_reports(loop, &reports);
    Ref<aio::Task<int>> spawned;  // declared after the slot: dropped first, while the loop still exists
    (void)aio::create_task(loop, spawns_when_destroyed(&loop, &spawned, aio::create_future(loop)));
    one_pass(loop);
    loop.close();
    if (spawned) {
        REQUIRE(spawned->done());
        REQUIRE(spawned->cancelled());
    }
    spawned = nullptr;
    slot.destroy();
}

// ============================================================ worker threads at teardown

namespace {

using stage3_test_support::Gate;

int slow_five(std::atomic<int>* started, std::atomic<bool>* finished) {
    ++*started;
    std::this_thread::sleep_for(30ms);
    finished->store(true);
    return 5;
}

Coroutine<int> await_thread(std::atomic<int>* started, std::atomic<bool>* finished, int* live) {
    Probe p(live);
    int v = co_await aio::to_thread(slow_five, started, finished);
    co_return v;
}

std::string gated(Gate* gate, std::string s, std::atomic<int>* done) {
    gate->wait();
    ++*done;
    return s;
}

// Run passes until cond() holds, for a second at most (the worker needs real time).
template <typename Cond>
bool pass_until(aio::EventLoop& loop, Cond cond) {
    for (int i = 0; i < 1000 && !cond(); ++i) {
        one_pass(loop);
        std::this_thread::sleep_for(1ms);
    }
    return cond();
}

}  // namespace

TEST_CASE("teardown: a loop closed while to_thread work runs joins it, frees the waiting task, and a new loop "
          "at its address gets nothing from it",
          "[stage3][threads]") {
    std::atomic<int> started{0};
    std::atomic<bool> finished{false};
    int live = 0;
    Reports reports;
    LoopSlot slot;
    Ref<aio::Task<int>> t;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        t = aio::create_task(loop, await_thread(&started, &finished, &live), "thread waiter");
        REQUIRE(pass_until(loop, [&] { return started.load() == 1; }));
        REQUIRE_FALSE(finished.load());
        loop.close();  // joins the default executor: the call completes, its result is dropped
        REQUIRE(finished.load());
    }
    REQUIRE(live == 0);
    REQUIRE(t->cancelled());
    REQUIRE(reports.size() == 1);
    REQUIRE(count_reports(reports, kPending) == 1);
    slot.destroy();
    require_fresh(slot.make());
}

TEST_CASE("teardown: a late result from an executor that outlives its loop never completes a new loop's call",
          "[stage3][threads]") {
    aio::ThreadPoolExecutor pool(2);
    Gate first_gate, second_gate;
    std::atomic<int> done{0};
    LoopSlot slot;
    {
        aio::EventLoop& loop = slot.make();
        auto old_call = aio::run_in_executor(loop, &pool, gated, &first_gate, std::string("old"), &done);
        one_pass(loop);
        // Destroyed (and then replaced at the same address) while the call is blocked.
    }
    slot.destroy();
    aio::EventLoop& second = slot.make();
    // The new loop's first call gets the same in-flight number (1) as the old one.
    auto new_call = aio::run_in_executor(second, &pool, gated, &second_gate, std::string("new"), &done);
    first_gate.open();
    REQUIRE(pass_until(second, [&] { return done.load() == 1; }));
    std::this_thread::sleep_for(20ms);  // time for a (wrongly) posted result to arrive
    for (int i = 0; i < 5; ++i) one_pass(second);
    REQUIRE_FALSE(new_call->done());  // the old "old" result went nowhere
    second_gate.open();
    REQUIRE(second.run_until_complete(new_call) == "new");
    pool.shutdown();
}

namespace {
Coroutine<int> main_leaving_thread_work(std::atomic<int>* started, std::atomic<bool>* finished, int* live) {
    (void)aio::create_task(await_thread(started, finished, live), "left running");
    while (started->load() == 0) co_await aio::sleep(0.001);
    co_return 1;
}
}  // namespace

TEST_CASE("teardown: run() twice in a row, the first leaving to_thread work running", "[stage3][threads]") {
    std::atomic<int> started{0};
    std::atomic<bool> finished{false};
    int live = 0;
    REQUIRE(aio::run(main_leaving_thread_work(&started, &finished, &live)) == 1);
    REQUIRE(finished.load());  // run() closed the loop, which joined the call
    REQUIRE(live == 0);        // the task awaiting it was cancelled and freed
    std::atomic<bool> finished2{false};
    REQUIRE(aio::run(await_thread(&started, &finished2, &live)) == 5);
    REQUIRE(finished2.load());
    REQUIRE(live == 0);
}

// ============================================== run() returning with tasks still blocked

namespace {
Coroutine<int> main_leaving_blocked_tasks(Primitives p, int* live, Log* log) {
    auto until = aio::create_future();
    (void)aio::create_task(hold_lock(p.lock, until, live), "lock holder");
    (void)aio::create_task(hold_unit(p.sem, until, live), "unit holder 1");
    (void)aio::create_task(hold_unit(p.sem, until, live), "unit holder 2");
    co_await stage3_test_support::settle();
    (void)aio::create_task(wait_lock(p.lock, live, log), "lock waiter");
    (void)aio::create_task(wait_unit(p.sem, live, log), "unit waiter");
    (void)aio::create_task(wait_event(p.event, live, log), "event waiter");
    (void)aio::create_task(put_item(p.queue, "second", live, log), "putter");
    (void)aio::create_task(join_queue(p.queue, live, log), "joiner");
    std::vector<Coroutine<int>> gathered;
    gathered.push_back(await_int(aio::create_future<int>(), live));
    gathered.push_back(await_int(aio::create_future<int>(), live));
    (void)aio::create_task(aio::gather(std::move(gathered)), "gatherer");
    co_await stage3_test_support::settle();
    co_return *live;
}
}  // namespace

TEST_CASE("teardown: run() returns while tasks are blocked on every primitive; they are cancelled and the "
          "primitives are left free for the next run()",
          "[stage3]") {
    Primitives p;
    p.queue.put_nowait("first");
    int live = 0;
    Log log;
    REQUIRE(aio::run(main_leaving_blocked_tasks(p, &live, &log)) == 10);
    REQUIRE(live == 0);
    REQUIRE(log.empty());
    REQUIRE_FALSE(p.lock.locked());
    REQUIRE_FALSE(p.sem.locked());
    REQUIRE(p.queue.qsize() == 1);
    REQUIRE(aio::run(aio::wait_for(use_primitives(p), 2.0)) == "lock 2 units event first joined");
}

// =============================== done-callbacks already scheduled when the task is cancelled

TEST_CASE("teardown: a finished task's scheduled done-callbacks never run once the loop closes, and are freed",
          "[stage3]") {
    auto token = std::make_shared<int>(0);
    int ran = 0;
    Ref<aio::Task<int>> t;
    {
        TEST_LOOP(loop);
        t = aio::create_task(loop, returns_now(9));
        t->add_done_callback([token, &ran] { ++ran; });
        t->add_done_callback([token, &ran](aio::FutureBase&) { ++ran; });
        one_pass(loop);  // finishes: both callbacks are now in the ready queue
        REQUIRE(t->done());
        REQUIRE(loop.ready_count() == 2);
        REQUIRE_FALSE(t->cancel());
        REQUIRE(token.use_count() == 3);
    }
    REQUIRE(ran == 0);
    REQUIRE(token.use_count() == 1);
    REQUIRE(t->ref_count() == 1);  // the scheduled callbacks' references to it are gone too
    REQUIRE(t->result() == 9);
}

TEST_CASE("teardown: a task woken and then cancelled before it runs, freed at close, is reported once", "[stage3]") {
    int live = 0;
    Reports reports;
    LoopSlot slot;
    Ref<aio::Future<int>> f;
    Ref<aio::Task<int>> t;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        f = aio::create_future<int>(loop);
        t = aio::create_task(loop, await_int(f, &live), "woken");
        one_pass(loop);
        f->set_result(1);  // the task is scheduled
        REQUIRE(t->cancel("late"));  // the future is done: the request waits for the next step
        REQUIRE(f->result() == 1);
    }
    slot.destroy();
    REQUIRE(live == 0);
    REQUIRE(reports.size() == 1);
    REQUIRE(count_reports(reports, kPending) == 1);
    REQUIRE(t->cancelled());
    REQUIRE(t->ref_count() == 1);
    require_fresh(slot.make());
}

TEST_CASE("teardown: a pending task whose done-callback holds the task itself is freed with its loop", "[stage3]") {
    int live = 0;
    auto token = std::make_shared<int>(0);
    aio::TaskBase* raw = nullptr;
    {
        TEST_LOOP(loop);
        loop.set_exception_handler([](aio::EventLoop&, const aio::ExceptionContext&) {});
        auto t = aio::create_task(loop, await_int(aio::create_future<int>(loop), &live));
        raw = t.get();
        t->add_done_callback([t, token] { (void)t; });  // a cycle: task -> callback -> task
        one_pass(loop);
        REQUIRE(live == 1);
        REQUIRE(raw->ref_count() == 3);  // t, the callback, the future it waits on
    }
    REQUIRE(live == 0);
    REQUIRE(token.use_count() == 1);  // the callback was freed, and the task with it (LSan)
}

namespace {
Coroutine<> first_completed(Tasks ts, int* live) {
    Probe p(live);
    auto r = co_await aio::wait(std::move(ts), std::nullopt, aio::FIRST_COMPLETED);
    (void)r;
}
Coroutine<> first_as_completed(std::vector<Ref<aio::Task<int>>> ts, int* live) {
    Probe p(live);
    auto ac = aio::as_completed(std::move(ts));
    int v = co_await ac.next();
    (void)v;
}
}  // namespace

TEST_CASE("teardown: a combinator's done-callback already scheduled when its task is cancelled and the loop "
          "closed never runs",
          "[stage3]") {
    int live = 0;
    Reports reports;
    LoopSlot slot;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        auto fa = aio::create_future<int>(loop);
        auto fb = aio::create_future<int>(loop);
        auto a = aio::create_task(loop, await_int(fa, &live), "a");
        auto b = aio::create_task(loop, await_int(fb, &live), "b");
        Ref<aio::TaskBase> outer;
        SECTION("wait(FIRST_COMPLETED)") { outer = aio::create_task(loop, first_completed(Tasks{a, b}, &live)); }
        SECTION("as_completed") {
            outer = aio::create_task(loop, first_as_completed(std::vector<Ref<aio::Task<int>>>{a, b}, &live));
        }
        one_pass(loop);
        fa->set_result(1);
        one_pass(loop);  // a finishes: the combinator's callback on a is queued
        REQUIRE(a->done());
        REQUIRE(loop.ready_count() >= 1);
        REQUIRE(outer->cancel());
        loop.close();
        REQUIRE(outer->cancelled());
        REQUIRE(b->cancelled());
    }
    slot.destroy();
    REQUIRE(live == 0);
    REQUIRE(count_reports(reports, kPending) == reports.size());
    require_fresh(slot.make());
}

// ================================================================ run()'s own clean-up
//
// run() cleans up in plain code: an error of the clean-up propagates (or, while main's own
// error propagates, is reported); it never leaves a destructor to call std::terminate.

namespace {
Coroutine<> stops_the_loop_when_cancelled(Ref<aio::Future<>> until) {
    std::exception_ptr cancelled;
    try {
        co_await until;
    } catch (const aio::CancelledError&) {
        cancelled = std::current_exception();
    }
    aio::get_running_loop().stop();  // e.g. a supervisor that stops everything when cancelled
    if (cancelled) std::rethrow_exception(cancelled);
}
Coroutine<int> main_leaving_a_loop_stopper() {
    (void)aio::create_task(stops_the_loop_when_cancelled(aio::create_future()));
    co_await aio::yield_now();
    co_return 1;
}
void run_with_a_leftover_that_stops_the_loop() {
    try {
        (void)aio::run(main_leaving_a_loop_stopper());
    } catch (const aio::RuntimeError&) {  // what asyncio.run raises; returning 1 would do as well
    }
}
}  // namespace

TEST_CASE("teardown: run() whose leftover task stops the loop while being cancelled does not abort the process",
          "[stage3]") {
    REQUIRE(in_child(run_with_a_leftover_that_stops_the_loop) == "ok");
}

// ============================================== an executor destroyed before its loop

namespace {
int times_two(int x) {
    std::this_thread::sleep_for(5ms);
    return 2 * x;
}
}  // namespace

TEST_CASE("teardown: an executor of your own destroyed before the loop still delivers what it computed",
          "[stage3][threads]") {
    TEST_LOOP(loop);
    Ref<aio::Future<int>> a, b;
    {
        aio::ThreadPoolExecutor pool(1);
        a = aio::run_in_executor(loop, &pool, times_two, 1);
        b = aio::run_in_executor(loop, &pool, times_two, 2);
    }  // joins: both calls ran, their results wait in the loop's thread-safe queue
    REQUIRE(loop.run_until_complete(a) == 2);
    REQUIRE(loop.run_until_complete(b) == 4);
}

// ========================================================= a task suspended deep in a chain

namespace {
Coroutine<> nested_get(int depth, aio::Queue<std::string> q, int* live, Log* log) {
    Probe p(live);
    if (depth == 0) {
        co_await get_item(q, live, log);
    } else {
        co_await nested_get(depth - 1, q, live, log);
    }
    log->push_back("level " + std::to_string(depth) + " returned");
}
}  // namespace

TEST_CASE("teardown: a task suspended five coroutines deep frees the whole chain at close, innermost state included",
          "[stage3]") {
    aio::Queue<std::string> q;
    int live = 0;
    Log log;
    Ref<aio::TaskBase> t;
    {
        TEST_LOOP(loop);
        loop.set_exception_handler([](aio::EventLoop&, const aio::ExceptionContext&) {});
        t = aio::create_task(loop, nested_get(4, q, &live, &log), "deep");
        one_pass(loop);
        REQUIRE(live == 6);  // five nested_get frames and get_item's
        REQUIRE(t->get_stack().size() == 7);  // + Queue::get_from
    }
    REQUIRE(live == 0);
    REQUIRE(log.empty());
    REQUIRE(t->cancelled());
    // The getter's place in the queue's line went with it: an item put now stays for the next getter.
    q.put_nowait("later");
    REQUIRE(q.qsize() == 1);
    REQUIRE(aio::run(q.get()) == "later");
}

// ==================================================== combinators caught mid-way at close

namespace {
// Catches its cancellation and cleans up slowly (awaits `cleanup`) before re-raising.
Coroutine<int> slow_to_cancel(Ref<aio::Future<int>> f, Ref<aio::Future<>> cleanup, int* live) {
    Probe p(live);
    std::exception_ptr cancelled;
    try {
        int v = co_await f;
        co_return v;
    } catch (const aio::CancelledError&) {
        cancelled = std::current_exception();
    }
    co_await cleanup;
    std::rethrow_exception(cancelled);
}
Coroutine<int> wait_for_slow(Ref<aio::Future<int>> f, Ref<aio::Future<>> cleanup, int* live) {
    Probe p(live);
    int v = co_await aio::wait_for(slow_to_cancel(f, cleanup, live), 30.0);
    co_return v;
}
Coroutine<> gather_three(Ref<aio::Future<int>> a, Ref<aio::Future<int>> b, Ref<aio::Future<int>> c, int* live) {
    auto r = co_await aio::gather(await_int(a, live), await_int(b, live), await_int(c, live));
    (void)r;
}
}  // namespace

TEST_CASE("teardown: a loop closed while wait_for waits for a cancelled awaitable's clean-up frees both", "[stage3]") {
    int live = 0;
    Reports reports;
    LoopSlot slot;
    Ref<aio::Future<int>> f;
    Ref<aio::Future<>> cleanup;
    Ref<aio::Task<int>> t;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        f = aio::create_future<int>(loop);
        cleanup = aio::create_future(loop);
        t = aio::create_task(loop, wait_for_slow(f, cleanup, &live), "outer");
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(live == 2);
        REQUIRE(t->cancel());
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(f->cancelled());     // the awaitable was cancelled through wait_for...
        REQUIRE_FALSE(t->done());    // ...and wait_for waits for its clean-up
        REQUIRE(live == 2);
    }
    slot.destroy();
    REQUIRE(live == 0);
    REQUIRE(t->cancelled());
    REQUIRE(count_reports(reports, kPending) == 1);  // outer only: wait_for runs a coroutine in it (3.12)
    REQUIRE(reports.size() == 1);
    aio::EventLoop& second = slot.make();
    cleanup->set_result();
    REQUIRE(second.ready_count() == 0);
    require_fresh(second);
}

TEST_CASE("teardown: children gather gave up on, still running at close, are freed with their callbacks",
          "[stage3]") {
    int live = 0;
    Reports reports;
    LoopSlot slot;
    Ref<aio::Future<int>> b, c;
    Ref<aio::Task<>> t;
    {
        aio::EventLoop& loop = slot.make();
        capture_reports(loop, &reports);
        auto a = aio::create_future<int>(loop);
        b = aio::create_future<int>(loop);
        c = aio::create_future<int>(loop);
        t = aio::create_task(loop, gather_three(a, b, c, &live), "gatherer");
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(live == 3);
        a->set_exception(std::make_exception_ptr(Marked(3)));
        loop.run_until_complete(stage3_test_support::settle());
        REQUIRE(t->done());  // failed at once; the other two children go on
        REQUIRE_THROWS_AS(t->result(), Marked);
        REQUIRE(live == 2);
    }
    slot.destroy();
    REQUIRE(live == 0);
    REQUIRE(count_reports(reports, kPending) == 2);
    REQUIRE(reports.size() == 2);
    aio::EventLoop& second = slot.make();
    b->set_result(1);  // the children's tasks are gone: nothing waits on these any more
    c->set_exception(std::make_exception_ptr(Marked(4)));
    REQUIRE(second.ready_count() == 0);
    require_fresh(second);
}

TEST_CASE("teardown: an as_completed object that outlives the loop of its tasks is safe to drop", "[stage3]") {
    int live = 0;
    Reports reports;
    std::optional<aio::AsCompleted<aio::Task<int>>> ac;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        auto f = aio::create_future<int>(loop);
        auto g = aio::create_future<int>(loop);
        auto a = aio::create_task(loop, await_int(f, &live));
        auto b = aio::create_task(loop, await_int(g, &live));
        std::vector<Ref<aio::Task<int>>> ts{a, b};
        ac.emplace(std::move(ts));
        one_pass(loop);
        f->set_result(1);
        one_pass(loop);  // a is done: its callback (into ac) is queued
        REQUIRE(loop.ready_count() == 1);
    }
    REQUIRE(live == 0);
    REQUIRE(ac->size() == 2);  // the queued callback never ran
    ac.reset();                // removes its callbacks from the (detached) tasks (ASan)
    REQUIRE(reports.size() == 1);
}
