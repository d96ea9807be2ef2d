// Stage 3 tests: Queue<T> (queues.hpp). Items come out in order; get() waits while the queue
// is empty and put() while it is full; getters and putters are served first-in, first-out;
// task_done()/join(); and a getter or putter cancelled at its await point, whether still
// waiting or already woken, leaves the item or the slot to the next one in line.
//
// As in stage3_locks_test.cpp, nothing waits without a limit (all_done, run_limited), so a
// lost wakeup fails a test instead of hanging it, and what the tasks record lives outside
// the loop.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/queues.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/stage3_test_support.hpp"

namespace {

using namespace stage3_test_support;

// ---------------------------------------------------------------------- producer/consumer

struct ProducerConsumer {
    std::vector<int> consumed;
    std::vector<std::size_t> qsize_after_put;
    bool saw_full = false;
    std::size_t consumed_when_producer_done = 0;
};

Coroutine<> producer(aio::Queue<int> q, int n, ProducerConsumer* pc) {
    for (int i = 0; i < n; ++i) {
        if (q.full()) pc->saw_full = true;
        co_await q.put(i);
        pc->qsize_after_put.push_back(q.qsize());
    }
    pc->consumed_when_producer_done = pc->consumed.size();
}

Coroutine<> slow_consumer(aio::Queue<int> q, int n, ProducerConsumer* pc) {
    for (int i = 0; i < n; ++i) {
        int item = co_await q.get();
        pc->consumed.push_back(item);
        co_await aio::sleep(0.001);
    }
}

Coroutine<> producer_consumer(aio::Queue<int> q, ProducerConsumer* pc) {
    Tasks tasks;
    tasks.push_back(aio::create_task(producer(q, 10, pc)));
    tasks.push_back(aio::create_task(slow_consumer(q, 10, pc)));
    co_await all_done(std::move(tasks));
}

// ------------------------------------------------------------------------------ FIFO order

struct Got {
    int getter;
    int item;
    friend bool operator==(const Got& a, const Got& b) { return a.getter == b.getter && a.item == b.item; }
};

Coroutine<> get_one(aio::Queue<int> q, int id, std::vector<Got>* got) {
    int item = co_await q.get();
    got->push_back(Got{id, item});
}

Coroutine<> put_one(aio::Queue<int> q, int item) { co_await q.put(item); }

struct FifoLog {
    std::vector<Got> got;
    std::vector<int> taken;
};

Coroutine<> fifo_scenario(aio::Queue<int> q, FifoLog* log) {
    // Three getters wait on the empty queue; three items go to them in the order they came.
    Tasks getters;
    for (int id = 1; id <= 3; ++id) getters.push_back(aio::create_task(get_one(q, id, &log->got)));
    co_await settle();
    q.put_nowait(10);
    q.put_nowait(20);
    q.put_nowait(30);
    co_await all_done(std::move(getters));

    // Three putters wait on a full queue (maxsize 1); their items come out in that order.
    aio::Queue<int> small(1);
    small.put_nowait(0);
    Tasks putters;
    for (int item = 1; item <= 3; ++item) putters.push_back(aio::create_task(put_one(small, item)));
    co_await settle();
    for (int i = 0; i < 4; ++i) {
        int item = co_await small.get();
        log->taken.push_back(item);
    }
    co_await all_done(std::move(putters));
}

// ------------------------------------------------------------------------ task_done / join

Coroutine<> worker(aio::Queue<int> q, std::vector<int>* done) {
    for (;;) {  // the asyncio docs' worker: runs until cancelled
        int item = co_await q.get();
        co_await aio::sleep(0.002);
        done->push_back(item);
        q.task_done();
    }
}

struct JoinLog {
    bool empty_join_immediate = false;
    std::size_t done_when_joined = 0;
    std::vector<int> done;
    bool workers_cancelled = false;
};

Coroutine<> join_scenario(aio::Queue<int> q, JoinLog* log) {
    // Nothing put: join() returns at once (a task that joins finishes in its first step).
    auto quick = aio::create_task(q.join());
    co_await aio::sleep(0);
    log->empty_join_immediate = quick->done();

    for (int i = 0; i < 6; ++i) q.put_nowait(i);
    auto a = aio::create_task(worker(q, &log->done));
    auto b = aio::create_task(worker(q, &log->done));
    co_await aio::wait_for(q.join(), 1.0);
    log->done_when_joined = log->done.size();  // join() waited for task_done(), not for get()
    a->cancel();
    b->cancel();
    Tasks workers{a, b};
    co_await all_done(std::move(workers));
    log->workers_cancelled = a->cancelled() && b->cancelled();
}

// ---------------------------------------------------------------------------- cancellation

struct CancelLog {
    std::vector<Got> got;
    bool a_cancelled = false;
    std::vector<int> left;  // what the queue holds at the end
};

Coroutine<> getter_cancel(aio::Queue<int> q, When when, CancelLog* log) {
    auto a = aio::create_task(get_one(q, 1, &log->got));
    auto b = aio::create_task(get_one(q, 2, &log->got));
    co_await settle();
    if (when == When::wake_then_cancel) {
        q.put_nowait(7);  // wakes A...
        a->cancel();      // ...which must pass the item on to B
    } else {
        a->cancel();
        if (when == When::cancel_settle_then_wake) co_await settle();
        q.put_nowait(7);
    }
    Tasks waited{a, b};
    co_await all_done(std::move(waited));
    log->a_cancelled = a->cancelled();
    while (!q.empty()) log->left.push_back(q.get_nowait());
}

Coroutine<> putter_cancel(aio::Queue<int> q, When when, CancelLog* log) {
    q.put_nowait(0);  // maxsize 1: full
    auto a = aio::create_task(put_one(q, 1));
    auto b = aio::create_task(put_one(q, 2));
    co_await settle();
    int first = 0;
    if (when == When::wake_then_cancel) {
        first = q.get_nowait();  // frees the slot and wakes A...
        a->cancel();             // ...which must pass the slot on to B
    } else {
        a->cancel();
        if (when == When::cancel_settle_then_wake) co_await settle();
        first = q.get_nowait();
    }
    log->got.push_back(Got{0, first});
    Tasks waited{a, b};
    co_await all_done(std::move(waited));
    log->a_cancelled = a->cancelled();
    while (!q.empty()) log->left.push_back(q.get_nowait());
}

Coroutine<> join_cancel(aio::Queue<int> q, bool* join_cancelled, bool* later_join_returned) {
    q.put_nowait(1);
    auto joiner = aio::create_task(q.join());
    co_await settle();
    joiner->cancel();
    co_await settle();
    *join_cancelled = joiner->cancelled();
    (void)q.get_nowait();
    q.task_done();
    co_await aio::wait_for(q.join(), 1.0);
    *later_join_returned = true;
}

// ------------------------------------------------------------------------ move-only items

Coroutine<> pass_unique(aio::Queue<std::unique_ptr<int>> q, int* seen) {
    co_await q.put(std::make_unique<int>(42));
    std::unique_ptr<int> p = co_await q.get();
    *seen = *p;
}

}  // namespace

TEST_CASE("Queue: put_nowait/get_nowait, FIFO items, QueueFull and QueueEmpty", "[stage3]") {
    aio::Queue<int> q(2);
    REQUIRE(q.maxsize() == 2);
    REQUIRE(q.empty());
    REQUIRE_FALSE(q.full());
    REQUIRE_THROWS_AS(q.get_nowait(), aio::QueueEmpty);
    q.put_nowait(1);
    aio::Queue<int> same = q;  // a copy is the same queue
    same.put_nowait(2);
    REQUIRE(q.qsize() == 2);
    REQUIRE(q.full());
    REQUIRE_THROWS_AS(q.put_nowait(3), aio::QueueFull);
    REQUIRE_THROWS_WITH(q.put_nowait(3), Catch::Contains("full"));
    REQUIRE(q.get_nowait() == 1);
    REQUIRE(q.get_nowait() == 2);
    REQUIRE(q.empty());
    REQUIRE_THROWS_WITH(q.get_nowait(), Catch::Contains("empty"));

    // maxsize 0 (the default) or less: never full.
    for (int maxsize : {0, -1}) {
        aio::Queue<int> unbounded(maxsize);
        for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
        REQUIRE_FALSE(unbounded.full());
        REQUIRE(unbounded.qsize() == 1000);
    }
}

TEST_CASE("Queue: a producer waits while the queue is full, a consumer while it is empty", "[stage3]") {
    aio::Queue<int> q(2);
    ProducerConsumer pc;
    run_limited(producer_consumer(q, &pc));
    REQUIRE(pc.consumed == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    REQUIRE(pc.saw_full);
    REQUIRE(std::all_of(pc.qsize_after_put.begin(), pc.qsize_after_put.end(), [](std::size_t n) { return n <= 2; }));
    // The last put could only happen once at most two items were left unconsumed.
    REQUIRE(pc.consumed_when_producer_done >= 8);
    REQUIRE(q.empty());
}

TEST_CASE("Queue: getters and putters are served first-in, first-out", "[stage3]") {
    aio::Queue<int> q;
    FifoLog log;
    run_limited(fifo_scenario(q, &log));
    REQUIRE(log.got == std::vector<Got>{{1, 10}, {2, 20}, {3, 30}});
    REQUIRE(log.taken == std::vector<int>{0, 1, 2, 3});
    REQUIRE(q.empty());
}

TEST_CASE("Queue: join() waits until every item got is task_done(); one task_done() too many is a ValueError",
          "[stage3]") {
    aio::Queue<int> q;
    JoinLog log;
    run_limited(join_scenario(q, &log));
    REQUIRE(log.empty_join_immediate);
    REQUIRE(log.done_when_joined == 6);
    REQUIRE(log.workers_cancelled);
    std::sort(log.done.begin(), log.done.end());
    REQUIRE(log.done == std::vector<int>{0, 1, 2, 3, 4, 5});
    REQUIRE_THROWS_AS(q.task_done(), aio::ValueError);
    REQUIRE_THROWS_WITH(q.task_done(), Catch::Contains("too many times"));
}

TEST_CASE("Queue: a getter cancelled at get() leaves the item to the next getter", "[stage3]") {
    for (auto [when, what] : all_whens()) {
        SECTION(what) {
            aio::Queue<int> q;
            CancelLog log;
            run_limited(getter_cancel(q, when, &log));
            REQUIRE(log.a_cancelled);
            REQUIRE(log.got == std::vector<Got>{{2, 7}});
            REQUIRE(log.left.empty());
        }
    }
}

TEST_CASE("Queue: a putter cancelled at put() leaves the slot to the next putter", "[stage3]") {
    for (auto [when, what] : all_whens()) {
        SECTION(what) {
            aio::Queue<int> q(1);
            CancelLog log;
            run_limited(putter_cancel(q, when, &log));
            REQUIRE(log.a_cancelled);
            REQUIRE(log.got == std::vector<Got>{{0, 0}});
            REQUIRE(log.left == std::vector<int>{2});  // B's item, and not A's
        }
    }
}

TEST_CASE("Queue: a join() cancelled while it waits leaves join() working", "[stage3]") {
    aio::Queue<int> q;
    bool join_cancelled = false;
    bool later_join_returned = false;
    run_limited(join_cancel(q, &join_cancelled, &later_join_returned));
    REQUIRE(join_cancelled);
    REQUIRE(later_join_returned);
}

TEST_CASE("Queue: holds move-only items", "[stage3]") {
    aio::Queue<std::unique_ptr<int>> q(1);
    int seen = 0;
    run_limited(pass_unique(q, &seen));
    REQUIRE(seen == 42);
    q.put_nowait(std::make_unique<int>(1));
    REQUIRE(*q.get_nowait() == 1);
}
