// Stage 3 tests: Event, Lock, Semaphore, BoundedSemaphore (locks.hpp). Waiters are woken
// first-in, first-out; a Lock excludes and a Semaphore limits; and a waiter cancelled at its
// await point, whether still waiting or already woken, leaves the primitive consistent, so the
// next waiter still gets the lock, the unit or the wakeup.
//
// A primitive that loses a wakeup leaves a task waiting for ever, so nothing here waits
// without a limit: scenarios wait for their tasks for a second at most (all_done), and each
// scenario runs for two seconds at most (run_limited). A bug fails a test; it never hangs it.
// State the tasks write lives in the TEST_CASE, outside the loop, so it outlives every task
// even if a scenario fails half-way and run() cancels the rest.
#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/locks.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/stage3_test_support.hpp"

namespace {

using namespace stage3_test_support;

// How many tasks are inside a critical section, at most, and in which order they entered.
struct Occupancy {
    int inside = 0;
    int max_inside = 0;
    std::vector<int> order;
    void enter(int id) {
        order.push_back(id);
        max_inside = std::max(max_inside, ++inside);
    }
    void leave() { --inside; }
};

// ------------------------------------------------------------------------------------ Lock

Coroutine<> hold_lock(aio::Lock lock, int id, double seconds, Occupancy* occ) {
    auto guard = co_await lock.acquire_guard();
    occ->enter(id);
    co_await aio::sleep(seconds);
    occ->leave();
}

Coroutine<> lock_workers(aio::Lock lock, Occupancy* occ) {
    Tasks tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(aio::create_task(hold_lock(lock, i, 0.005, occ)));
    co_await all_done(std::move(tasks));
}

Coroutine<> acquire_log_release(aio::Lock lock, int id, std::vector<int>* order) {
    co_await lock.acquire();
    order->push_back(id);
    lock.release();
}

struct FairnessLog {
    std::vector<int> order;
    bool looked_free = false;
};

Coroutine<> lock_fifo(aio::Lock lock, FairnessLog* log) {
    co_await lock.acquire();
    Tasks tasks;
    for (int i = 1; i <= 4; ++i) tasks.push_back(aio::create_task(acquire_log_release(lock, i, &log->order)));
    co_await settle();  // all four wait now, in the order they were created
    lock.release();
    // Waiter 1 is woken but has not run: the lock looks free, yet we must queue behind all four.
    log->looked_free = !lock.locked();
    co_await lock.acquire();
    log->order.push_back(0);
    lock.release();
    co_await all_done(std::move(tasks));
}

struct CancelLog {
    std::vector<int> order;
    bool a_cancelled = false;
    bool free_at_end = false;
    bool locked_after_one_acquire = false;  // the semaphore's count came back exactly
};

Coroutine<> lock_cancel(aio::Lock lock, When when, CancelLog* log) {
    co_await lock.acquire();
    auto a = aio::create_task(acquire_log_release(lock, 1, &log->order));
    auto b = aio::create_task(acquire_log_release(lock, 2, &log->order));
    co_await settle();
    if (when == When::wake_then_cancel) {
        lock.release();  // wakes A...
        a->cancel();     // ...which is cancelled before it runs: it must pass the lock to B
    } else {
        a->cancel();
        if (when == When::cancel_settle_then_wake) co_await settle();
        lock.release();
    }
    Tasks waited{a, b};
    co_await all_done(std::move(waited));
    log->a_cancelled = a->cancelled();
    log->free_at_end = !lock.locked();
}

Coroutine<> guarded_sleep(aio::Lock lock, double seconds) {
    auto guard = co_await lock.acquire_guard();
    co_await aio::sleep(seconds);
}

Coroutine<> guarded_throw(aio::Lock lock) {
    auto guard = co_await lock.acquire_guard();
    throw std::runtime_error("failure inside the guarded scope");
}

struct GuardLog {
    bool locked_inside = false;
    bool free_after_scope = false;
    bool free_after_throw = false;
    bool held_by_sleeper = false;
    bool free_after_cancel = false;
    bool moved_and_released_early = false;
    std::vector<std::string> reports;
};

Coroutine<> guard_scenario(aio::Lock lock, GuardLog* log) {
    {
        auto guard = co_await lock.acquire_guard();
        log->locked_inside = lock.locked();
    }
    log->free_after_scope = !lock.locked();

    try {
        co_await guarded_throw(lock);
    } catch (const std::runtime_error&) {
    }
    log->free_after_throw = !lock.locked();

    // A task cancelled while it sleeps holding the lock releases it as CancelledError unwinds.
    auto sleeper = aio::create_task(guarded_sleep(lock, 10.0));
    co_await settle();
    log->held_by_sleeper = lock.locked();
    sleeper->cancel();
    co_await aio::wait_for(lock.acquire(), 1.0);
    log->free_after_cancel = sleeper->cancelled();
    lock.release();

    // release() ends the hold early; a moved-from guard releases nothing.
    auto first = co_await lock.acquire_guard();
    auto second = std::move(first);
    second.release();
    log->moved_and_released_early = !lock.locked() && !first.holds() && !second.holds();

    // Released behind the guard's back: the guard's own release fails, and is reported.
    aio::get_running_loop().set_exception_handler(
        [log](aio::EventLoop&, const aio::ExceptionContext& c) { log->reports.push_back(c.message); });
    {
        auto guard = co_await lock.acquire_guard();
        lock.release();
    }
}

Coroutine<> take_lock(aio::Lock lock) { co_await lock.acquire(); }

Coroutine<> hold_and_leave_a_waiter(aio::Lock lock, Ref<aio::TaskBase>* waiter) {
    co_await lock.acquire();
    *waiter = aio::create_task(take_lock(lock));
    co_await settle();
    // Return with the lock held and the waiter waiting: run() cancels the waiter.
}

// ------------------------------------------------------------------------------- Semaphore

Coroutine<> hold_unit(aio::Semaphore sem, int id, double seconds, Occupancy* occ) {
    auto guard = co_await sem.acquire_guard();
    occ->enter(id);
    co_await aio::sleep(seconds);
    occ->leave();
}

Coroutine<> semaphore_workers(aio::Semaphore sem, Occupancy* occ) {
    Tasks tasks;
    for (int i = 0; i < 10; ++i) tasks.push_back(aio::create_task(hold_unit(sem, i, 0.005, occ)));
    co_await all_done(std::move(tasks));
}

Coroutine<> sem_acquire_log(aio::Semaphore sem, int id, std::vector<int>* order) {
    co_await sem.acquire();
    order->push_back(id);
}

Coroutine<> sem_acquire_log_release(aio::Semaphore sem, int id, std::vector<int>* order) {
    co_await sem.acquire();
    order->push_back(id);
    sem.release();
}

struct SemFifoLog {
    bool locked_at_zero = false;
    std::vector<int> woken;  // waiters that hold a unit and keep it
    bool locked_after = false;
    FairnessLog fair;
};

Coroutine<> semaphore_fifo(aio::Semaphore sem, SemFifoLog* log) {
    log->locked_at_zero = sem.locked();
    Tasks tasks;
    for (int i = 1; i <= 4; ++i) tasks.push_back(aio::create_task(sem_acquire_log(sem, i, &log->woken)));
    co_await settle();
    for (int i = 0; i < 4; ++i) sem.release();  // four units, handed out in order of arrival
    co_await all_done(std::move(tasks));
    log->locked_after = sem.locked();  // every unit is held

    // Fairness: a released unit goes to the first waiter, not to whoever asks next.
    aio::Semaphore one(1);
    co_await one.acquire();
    Tasks more;
    for (int i = 1; i <= 2; ++i) more.push_back(aio::create_task(sem_acquire_log_release(one, i, &log->fair.order)));
    co_await settle();
    one.release();
    log->fair.looked_free = !one.locked();
    co_await one.acquire();
    log->fair.order.push_back(0);
    one.release();
    co_await all_done(std::move(more));
}

Coroutine<> semaphore_cancel(aio::Semaphore sem, When when, CancelLog* log) {
    co_await sem.acquire();
    auto a = aio::create_task(sem_acquire_log_release(sem, 1, &log->order));
    auto b = aio::create_task(sem_acquire_log_release(sem, 2, &log->order));
    co_await settle();
    if (when == When::wake_then_cancel) {
        sem.release();  // hands the unit to A...
        a->cancel();    // ...which must give it back, to B
    } else {
        a->cancel();
        if (when == When::cancel_settle_then_wake) co_await settle();
        sem.release();
    }
    Tasks waited{a, b};
    co_await all_done(std::move(waited));
    log->a_cancelled = a->cancelled();
    log->free_at_end = !sem.locked();
    // Exactly one unit is left: one acquire takes it.
    co_await sem.acquire();
    log->locked_after_one_acquire = sem.locked();
    sem.release();
}

Coroutine<> take_unit(aio::Semaphore sem) { co_await sem.acquire(); }

Coroutine<> bounded_guard_released_twice(aio::BoundedSemaphore sem, std::vector<std::string>* reports) {
    aio::get_running_loop().set_exception_handler(
        [reports](aio::EventLoop&, const aio::ExceptionContext& c) { reports->push_back(c.message); });
    auto guard = co_await sem.acquire_guard();  // holds a Semaphore copy of the bounded one
    sem.release();
}

// ----------------------------------------------------------------------------------- Event

Coroutine<> wait_log(aio::Event ev, int id, std::vector<int>* order) {
    co_await ev.wait();
    order->push_back(id);
}

struct EventLog {
    std::vector<int> order;
    bool any_woken_before_set = true;
    bool set_waits_nothing = false;
    bool waits_after_clear = false;
};

Coroutine<> event_scenario(aio::Event ev, EventLog* log) {
    Tasks tasks;
    for (int i = 1; i <= 4; ++i) tasks.push_back(aio::create_task(wait_log(ev, i, &log->order)));
    co_await settle();
    log->any_woken_before_set = !log->order.empty();
    ev.set();
    co_await all_done(std::move(tasks));

    // On a set event, wait() returns at once: a task that waits finishes in its first step.
    auto quick = aio::create_task(wait_log(ev, 5, &log->order));
    co_await aio::sleep(0);
    log->set_waits_nothing = quick->done();

    ev.clear();
    auto late = aio::create_task(wait_log(ev, 6, &log->order));
    co_await settle();
    log->waits_after_clear = !late->done();
    ev.set();
    Tasks waited{late};
    co_await all_done(std::move(waited));
}

Coroutine<> event_cancel(aio::Event ev, When when, CancelLog* log) {
    auto a = aio::create_task(wait_log(ev, 1, &log->order));
    auto b = aio::create_task(wait_log(ev, 2, &log->order));
    auto c = aio::create_task(wait_log(ev, 3, &log->order));
    co_await settle();
    if (when == When::wake_then_cancel) {
        ev.set();
        a->cancel();  // woken, but its await still raises CancelledError, as in asyncio
    } else {
        a->cancel();
        if (when == When::cancel_settle_then_wake) co_await settle();
        ev.set();
    }
    Tasks waited{a, b, c};
    co_await all_done(std::move(waited));
    log->a_cancelled = a->cancelled();
    // Nothing stale is left behind: clear, wait again, set again.
    ev.clear();
    auto d = aio::create_task(wait_log(ev, 4, &log->order));
    co_await settle();
    ev.set();
    Tasks waited_again{d};
    co_await all_done(std::move(waited_again));
    log->free_at_end = ev.is_set();
}

}  // namespace

// ======================================================================================= Lock

TEST_CASE("Lock: a free lock is taken at once; releasing an unlocked lock is a RuntimeError", "[stage3]") {
    aio::Lock lock;
    aio::Lock same = lock;  // a copy is the same lock, as two Python names are one object
    REQUIRE_FALSE(lock.locked());
    REQUIRE_THROWS_AS(lock.release(), aio::RuntimeError);
    run_limited(take_lock(lock));
    REQUIRE(same.locked());
    same.release();
    REQUIRE_FALSE(lock.locked());
    REQUIRE_THROWS_WITH(lock.release(), Catch::Contains("not acquired"));
}

TEST_CASE("Lock: tasks that sleep while holding it never overlap", "[stage3]") {
    aio::Lock lock;
    Occupancy occ;
    run_limited(lock_workers(lock, &occ));
    REQUIRE(occ.max_inside == 1);
    REQUIRE(occ.order == std::vector<int>{0, 1, 2, 3, 4});  // in the order they asked
    REQUIRE_FALSE(lock.locked());
}

TEST_CASE("Lock: waiters get it first-in, first-out, and a newcomer queues behind a woken waiter", "[stage3]") {
    aio::Lock lock;
    FairnessLog log;
    run_limited(lock_fifo(lock, &log));
    REQUIRE(log.looked_free);
    REQUIRE(log.order == std::vector<int>{1, 2, 3, 4, 0});
    REQUIRE_FALSE(lock.locked());
}

TEST_CASE("Lock: a waiter cancelled at acquire() leaves the lock to the next waiter", "[stage3]") {
    for (auto [when, what] : all_whens()) {
        SECTION(what) {
            aio::Lock lock;
            CancelLog log;
            run_limited(lock_cancel(lock, when, &log));
            REQUIRE(log.a_cancelled);
            REQUIRE(log.order == std::vector<int>{2});
            REQUIRE(log.free_at_end);
        }
    }
}

TEST_CASE("Lock: acquire_guard() releases at the end of the scope, on an exception, and on cancellation", "[stage3]") {
    aio::Lock lock;
    GuardLog log;
    run_limited(guard_scenario(lock, &log));
    CHECK(log.locked_inside);
    CHECK(log.free_after_scope);
    CHECK(log.free_after_throw);
    CHECK(log.held_by_sleeper);
    CHECK(log.free_after_cancel);
    CHECK(log.moved_and_released_early);
    REQUIRE(log.reports.size() == 1);
    REQUIRE_THAT(log.reports[0], Catch::Contains("ReleaseGuard"));
    REQUIRE_FALSE(lock.locked());
}

TEST_CASE("Lock: a lock may go out of scope while a task waits on it", "[stage3]") {
    // The waiting coroutine shares the lock's state, so run()'s clean-up (which cancels the
    // waiter after the scope that made the lock is gone) touches no freed memory (ASan).
    Ref<aio::TaskBase> waiter;
    {
        aio::Lock lock;
        run_limited(hold_and_leave_a_waiter(lock, &waiter));
    }
    REQUIRE(waiter);
    REQUIRE(waiter->cancelled());
}

TEST_CASE("Lock: a task freed with its loop while it waits gives up its place in the line", "[stage3]") {
    aio::Lock lock;
    {
        TEST_LOOP(loop);
        loop.set_exception_handler([](aio::EventLoop&, const aio::ExceptionContext&) {});  // "destroyed but pending"
        loop.run_until_complete(take_lock(lock));
        auto waiter = loop.create_task(take_lock(lock));
        loop.run_until_complete(settle());
        REQUIRE_FALSE(waiter->done());
        loop.close();  // frees the waiter's coroutine without resuming it
    }
    // Had the waiter's future stayed in the line, release() would complete a future of a
    // freed loop (ASan), and the next acquire() would queue behind it for ever.
    lock.release();
    run_limited(take_lock(lock));
    REQUIRE(lock.locked());
}

// ================================================================================== Semaphore

TEST_CASE("Semaphore: at most `value` tasks hold it at once, admitted in order", "[stage3]") {
    aio::Semaphore sem(3);
    Occupancy occ;
    run_limited(semaphore_workers(sem, &occ));
    REQUIRE(occ.max_inside == 3);
    REQUIRE(occ.order == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    REQUIRE_FALSE(sem.locked());
}

TEST_CASE("Semaphore: waiters get units first-in, first-out; a negative value is a ValueError", "[stage3]") {
    REQUIRE_THROWS_AS(aio::Semaphore(-1), aio::ValueError);
    aio::Semaphore sem(0);
    SemFifoLog log;
    run_limited(semaphore_fifo(sem, &log));
    REQUIRE(log.locked_at_zero);
    REQUIRE(log.woken == std::vector<int>{1, 2, 3, 4});
    REQUIRE(log.locked_after);
    // release() handed the unit to waiter 1, so the semaphore did not look free.
    REQUIRE_FALSE(log.fair.looked_free);
    REQUIRE(log.fair.order == std::vector<int>{1, 2, 0});
}

TEST_CASE("Semaphore: a waiter cancelled at acquire() leaves its unit to the next waiter", "[stage3]") {
    for (auto [when, what] : all_whens()) {
        SECTION(what) {
            aio::Semaphore sem(1);
            CancelLog log;
            run_limited(semaphore_cancel(sem, when, &log));
            REQUIRE(log.a_cancelled);
            REQUIRE(log.order == std::vector<int>{2});
            REQUIRE(log.free_at_end);
            REQUIRE(log.locked_after_one_acquire);  // one unit, not two: nothing was counted twice
        }
    }
}

TEST_CASE("BoundedSemaphore: a release above the initial value is a ValueError", "[stage3]") {
    aio::BoundedSemaphore sem(2);
    REQUIRE_THROWS_AS(sem.release(), aio::ValueError);
    REQUIRE_THROWS_WITH(sem.release(), Catch::Contains("released too many times"));
    run_limited(aio::gather(take_unit(sem), take_unit(sem)));
    REQUIRE(sem.locked());
    sem.release();
    sem.release();
    REQUIRE_THROWS_AS(sem.release(), std::logic_error);  // ValueError is a logic_error
    // The failed release changed nothing: two units, no more.
    run_limited(aio::gather(take_unit(sem), take_unit(sem)));
    REQUIRE(sem.locked());
    sem.release();
    sem.release();

    // A guard holds a plain Semaphore copy of it; the bound, kept in the shared state, still
    // holds, and the guard's failed release is reported rather than thrown from a destructor.
    std::vector<std::string> reports;
    run_limited(bounded_guard_released_twice(sem, &reports));
    REQUIRE(reports.size() == 1);
    REQUIRE_THAT(reports[0], Catch::Contains("ReleaseGuard"));
    REQUIRE_FALSE(sem.locked());
}

// ====================================================================================== Event

TEST_CASE("Event: set() wakes every waiter, in order; wait() on a set event does not wait; clear()", "[stage3]") {
    aio::Event ev;
    REQUIRE_FALSE(ev.is_set());
    EventLog log;
    run_limited(event_scenario(ev, &log));
    REQUIRE_FALSE(log.any_woken_before_set);
    REQUIRE(log.set_waits_nothing);
    REQUIRE(log.waits_after_clear);
    REQUIRE(log.order == std::vector<int>{1, 2, 3, 4, 5, 6});
    REQUIRE(ev.is_set());
}

TEST_CASE("Event: a waiter cancelled at wait() leaves the event working for the others", "[stage3]") {
    for (auto [when, what] : all_whens()) {
        SECTION(what) {
            aio::Event ev;
            CancelLog log;
            run_limited(event_cancel(ev, when, &log));
            REQUIRE(log.a_cancelled);
            REQUIRE(log.order == std::vector<int>{2, 3, 4});
            REQUIRE(log.free_at_end);
        }
    }
}
