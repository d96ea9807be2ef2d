// Stage 3: Futures and Tasks. A FIFO queue for producer and consumer tasks.
//
// Adds:    Queue<T> (put, get, put_nowait, get_nowait, qsize, empty, full, maxsize,
//          task_done, join), QueueFull, QueueEmpty.
// Mirrors: Queue, QueueFull and QueueEmpty in Lib/asyncio/queues.py (PriorityQueue,
//          LifoQueue and 3.13's shutdown() are left as exercises).
//
// The same waiting scheme as locks.hpp, twice: getters wait in one FIFO of futures until
// an item arrives, putters in another until a slot frees up (with maxsize > 0). One
// difference from the locks, kept from CPython: a waker pops the waiter it wakes, and the
// woken task then re-checks (`while (empty())`), because an item or slot it was woken for
// may be taken by a get_nowait()/put_nowait() that runs before it does.
//
// A Queue is a handle, like the primitives of locks.hpp: copies share one queue, so a
// producer and a consumer coroutine can each take it by value.
#pragma once

#include <cstddef>
#include <deque>
#include <stdexcept>
#include <utility>

#include "stage3_tasks_futures/locks.hpp"

namespace aio {

// get_nowait() on an empty queue.
class QueueEmpty : public std::runtime_error {
public:
    QueueEmpty() : std::runtime_error("Queue.get_nowait(): the queue is empty; co_await get() to wait for an item") {}
};

// put_nowait() on a full queue.
class QueueFull : public std::runtime_error {
public:
    QueueFull()
        : std::runtime_error(
              "Queue.put_nowait(): the queue is full (maxsize reached); co_await put() to wait for a slot") {}
};

// Stage 3. Queue<T>(maxsize): items come out in the order they went in. get() waits while
// the queue is empty; with maxsize > 0, put() waits while it is full (maxsize <= 0: never
// full). task_done() and join() let a producer wait until every item put has been fully
// processed, not merely taken.
// Mirrors: Queue in Lib/asyncio/queues.py.
template <typename T>
class Queue {
public:
    explicit Queue(int maxsize = 0) : state_(make_ref<State>(maxsize)) {}
    Queue(const Queue&) = default;  // copies share one queue
    Queue& operator=(const Queue&) = default;

    std::size_t qsize() const noexcept { return state_->items.size(); }
    int maxsize() const noexcept { return state_->maxsize; }
    bool empty() const noexcept { return state_->items.empty(); }
    bool full() const noexcept { return state_->full(); }

    // `co_await q.put(item);` waits for a free slot, then puts the item.
    Coroutine<> put(T item) { return put_into(state_, std::move(item)); }
    // Put now, or throw QueueFull.
    void put_nowait(T item) { state_->put_nowait(std::move(item)); }
    // `T item = co_await q.get();` waits for an item, then takes the first one.
    Coroutine<T> get() { return get_from(state_); }
    // Take the first item now, or throw QueueEmpty.
    T get_nowait() { return state_->get_nowait(); }

    // A consumer's "I am done with an item I got". ValueError if called more times than
    // items were put.
    void task_done() { state_->task_done(); }
    // `co_await q.join();` waits until every item put has been gotten and task_done().
    Coroutine<> join() { return join_on(state_); }

private:
    struct State : RefCounted {
        explicit State(int m) : maxsize(m) { finished.set(); }

        bool full() const noexcept { return maxsize > 0 && items.size() >= static_cast<std::size_t>(maxsize); }

        void put_nowait(T item) {
            if (full()) throw QueueFull();
            items.push_back(std::move(item));
            ++unfinished_tasks;
            finished.clear();
            wake_up_next(getters);
        }
        T get_nowait() {
            if (items.empty()) throw QueueEmpty();
            T item = std::move(items.front());
            items.pop_front();
            wake_up_next(putters);
            return item;
        }
        void task_done() {
            if (unfinished_tasks == 0)
                throw ValueError(
                    "Queue.task_done(): called too many times (more than items were put); call it "
                    "once per item you got");
            if (--unfinished_tasks == 0) finished.set();
        }

        // Pop waiters until one is still waiting, and wake it. Those already done were
        // cancelled: they are leaving, and take nothing.
        static void wake_up_next(detail::WaiterDeque& waiters) {
            while (!waiters.empty()) {
                Ref<Future<>> w = std::move(waiters.front());
                waiters.pop_front();
                if (!w->done()) {
                    w->set_result();
                    return;
                }
            }
        }

        int maxsize;
        std::deque<T> items;
        detail::WaiterDeque getters;       // tasks waiting for an item
        detail::WaiterDeque putters;       // tasks waiting for a free slot
        std::size_t unfinished_tasks = 0;  // put, and not yet task_done()
        Event finished;                    // set while unfinished_tasks == 0
    };

    static Coroutine<T> get_from(Ref<State> state) {
        while (state->items.empty()) {
            detail::WaiterSlot getter(state->getters);
            try {
                co_await getter.future();
            } catch (...) {
                // Not getting (cancelled). If put_nowait() had woken us for an item, it woke
                // no other getter, and the item would sit there while they wait: pass the
                // turn on. (CPython writes this `getter.cancel(); ... if not
                // getter.cancelled()`.)
                getter.leave();
                if (getter.woken() && !state->items.empty()) State::wake_up_next(state->getters);
                throw;
            }
        }
        try {
            co_return state->get_nowait();
        } catch (...) {  // taking the item failed (T's move threw): it stays, so pass the turn on
            if (!state->items.empty()) State::wake_up_next(state->getters);
            throw;
        }
    }

    static Coroutine<> put_into(Ref<State> state, T item) {
        while (state->full()) {
            detail::WaiterSlot putter(state->putters);
            try {
                co_await putter.future();
            } catch (...) {
                // The same for a slot: woken for a slot we will not use, pass it on.
                putter.leave();
                if (putter.woken() && !state->full()) State::wake_up_next(state->putters);
                throw;
            }
        }
        state->put_nowait(std::move(item));
    }

    static Coroutine<> join_on(Ref<State> state) {
        if (state->unfinished_tasks > 0) co_await state->finished.wait();
    }

    Ref<State> state_;
};

}  // namespace aio
