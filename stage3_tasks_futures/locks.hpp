// Stage 3: Futures and Tasks. Synchronization primitives for the tasks of one loop.
//
// Adds:    Event, Lock, Semaphore, BoundedSemaphore; ReleaseGuard, what `async with lock:`
//          does (acquire_guard()); ValueError; and detail::WaiterSlot, the waiting
//          mechanism they share with Queue (queues.hpp).
// Mirrors: Lib/asyncio/locks.py (Condition and Barrier are left as exercises).
//
// No thread ever blocks here. Every primitive is a flag or a counter plus a FIFO of waiter
// futures: a task that must wait creates a Future, appends it, and `co_await`s it; whoever
// changes the state completes the first waiter's future (set_result), which schedules that
// task on the loop. That is all of CPython's locks.py, and all we need from stage 3's core.
//
// Handles. A primitive is a small handle to a shared, reference-counted state: copies are
// the same lock, as two Python names are the same object. Two reasons:
//  - coroutines take their parameters by value (a reference would dangle after the first
//    suspension), so `Coroutine<> worker(Lock lock)` must share the caller's lock;
//  - a task may still be waiting when the scope that made the lock ends (run() then cancels
//    it); the waiting coroutine holds the state, so its clean-up never touches freed memory.
// A handle is never empty: moving one copies it.
//
// Cancellation. A waiter's future can be completed (it was woken) and *then* its task be
// cancelled before it runs: its await raises CancelledError although it was handed the
// lock, the unit or the item. Each primitive undoes that hand-off on the way out, as
// CPython does, or the next waiter would wait for ever. The waiter leaves the FIFO in the
// catch handler (no co_await is needed there, so none is used), and also, through
// WaiterSlot's destructor, when its coroutine frame is destroyed without resuming.
//
// Simplification: unlike asyncio's primitives (_LoopBoundMixin), ours are not bound to the
// first loop that uses them. Use one primitive from one loop at a time.
#pragma once

#include <deque>
#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"

namespace aio {

// Python's ValueError, as locks.py and queues.py raise it: a BoundedSemaphore released more
// often than it was acquired, a negative Semaphore value, task_done() called too often.
// Each is a mistake in the program, hence a logic_error.
class ValueError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

namespace detail {

// The FIFO of waiter futures (CPython: `self._waiters = collections.deque()`).
using WaiterDeque = std::deque<Ref<Future<>>>;

// Take `fut` out of `waiters` if it is still there (a waker may have popped it already).
void remove_waiter(WaiterDeque& waiters, const Ref<Future<>>& fut) noexcept;

// One waiting coroutine's place in a FIFO: a new future on the running loop, appended at the
// back. Its destructor takes the future out again, so the place is given up however the
// coroutine leaves, including when a suspended coroutine's frame is destroyed (its task was
// freed with its loop): then no code after the co_await runs, only destructors
// (stage1_generators/README.md, appendix, last rule). The deque must outlive the slot; it does,
// because the coroutine holds the primitive's state as a by-value parameter.
class WaiterSlot {
public:
    explicit WaiterSlot(WaiterDeque& waiters) : waiters_(&waiters), future_(create_future()) {
        waiters.push_back(future_);
    }
    WaiterSlot(const WaiterSlot&) = delete;
    WaiterSlot& operator=(const WaiterSlot&) = delete;
    ~WaiterSlot() { leave(); }

    // Leave the FIFO now (idempotent). A primitive calls it before it wakes the next
    // waiter, so that the next waiter is not this one.
    void leave() noexcept {
        if (waiters_) remove_waiter(*std::exchange(waiters_, nullptr), future_);
    }
    // What the coroutine awaits.
    const Ref<Future<>>& future() const noexcept { return future_; }
    // Whether a waker completed the future ("you may go on"), as opposed to the future being
    // cancelled with its task, or not being done at all.
    bool woken() const noexcept { return future_->done() && !future_->cancelled(); }

private:
    WaiterDeque* waiters_;
    Ref<Future<>> future_;
};

// The states behind the handles; see each handle for what the fields mean.
struct EventState : RefCounted {
    bool value = false;
    WaiterDeque waiters;
};
struct LockState : RefCounted {
    bool locked = false;
    WaiterDeque waiters;
    void wake_up_first();
};
struct SemaphoreState : RefCounted {
    SemaphoreState(int v, std::optional<int> b) : value(v), bound(b) {}
    int value;
    std::optional<int> bound;  // BoundedSemaphore's initial value; none for a Semaphore
    WaiterDeque waiters;
    bool locked() const noexcept;
    bool wake_up_next();
    void wake_up_while_free();
};

// ReleaseGuard's destructor cannot throw: it reports a failed release here instead.
void report_release_error(std::exception_ptr e) noexcept;

}  // namespace detail

// ------------------------------------------------------------------------------- ReleaseGuard

// Stage 3. What `async with lock:` does: `auto guard = co_await lock.acquire_guard();`
// acquires, and the guard releases when it goes out of scope, whichever way the scope is
// left (normally, by an exception, or by a CancelledError raised at a later await).
// Mirrors: _ContextManagerMixin (__aenter__/__aexit__) in Lib/asyncio/locks.py.
//
// Why a guard object and not a callback-taking `with_lock(fn)`: C++ already has scoped
// release (std::lock_guard), and a guard keeps the protected code in the coroutine's own
// body, where it can co_await freely. release() ends the hold early; the guard is movable,
// so a hold can be handed to a callee or returned.
template <typename Primitive>
class [[nodiscard]] ReleaseGuard {
public:
    // Take charge of releasing `primitive`, which the caller has just acquired.
    explicit ReleaseGuard(Primitive primitive) : primitive_(std::move(primitive)), held_(true) {}
    ReleaseGuard(ReleaseGuard&& o) noexcept : primitive_(o.primitive_), held_(std::exchange(o.held_, false)) {}
    ReleaseGuard& operator=(ReleaseGuard&& o) noexcept {
        if (this != &o) {
            release_quietly();
            primitive_ = o.primitive_;
            held_ = std::exchange(o.held_, false);
        }
        return *this;
    }
    ~ReleaseGuard() { release_quietly(); }

    // Release now rather than at the end of the scope.
    void release() {
        if (!held_) throw RuntimeError("ReleaseGuard::release(): already released (or moved from); release once");
        held_ = false;
        primitive_.release();
    }
    bool holds() const noexcept { return held_; }

private:
    // A destructor must not throw. Releasing can fail only if the program released the
    // primitive behind the guard's back; that is reported (never silent), not thrown.
    void release_quietly() noexcept {
        if (!held_) return;
        held_ = false;
        try {
            primitive_.release();
        } catch (...) {
            detail::report_release_error(std::current_exception());
        }
    }

    Primitive primitive_;
    bool held_;
};

namespace detail {
// acquire_guard() of any primitive: acquire, then hand the hold to a guard. Nothing can
// come between the two: no await separates them.
template <typename Primitive>
Coroutine<ReleaseGuard<Primitive>> acquire_guard(Primitive primitive) {
    co_await primitive.acquire();
    co_return ReleaseGuard<Primitive>(std::move(primitive));
}
}  // namespace detail

// -------------------------------------------------------------------------------------- Event

// Stage 3. Event: a flag that tasks wait for. set() wakes every waiter (in the order they
// came); wait() on a set event returns at once; clear() makes later waits wait again.
// Mirrors: Event in Lib/asyncio/locks.py.
class Event {
public:
    Event() : state_(make_ref<detail::EventState>()) {}
    Event(const Event&) = default;  // copies share one event (see the top of this file)
    Event& operator=(const Event&) = default;

    bool is_set() const noexcept { return state_->value; }
    void set();
    void clear() noexcept { state_->value = false; }
    // `co_await ev.wait();` returns once the flag is set. (asyncio's returns True, always.)
    Coroutine<> wait() { return wait_on(state_); }

private:
    static Coroutine<> wait_on(Ref<detail::EventState> state);
    Ref<detail::EventState> state_;
};

// --------------------------------------------------------------------------------------- Lock

// Stage 3. Lock: mutual exclusion between tasks. acquire() takes the lock, or waits for it
// in a FIFO; release() hands it to the first waiter. It is fair: a task that calls acquire()
// just after a release() queues behind the waiter that release() woke, even though the lock
// looks free until that waiter runs. As in asyncio, a lock has no owner: any task may
// release it (and releasing an unlocked lock is a RuntimeError).
// Mirrors: Lock in Lib/asyncio/locks.py.
class Lock {
public:
    Lock() : state_(make_ref<detail::LockState>()) {}
    Lock(const Lock&) = default;  // copies share one lock (see the top of this file)
    Lock& operator=(const Lock&) = default;

    bool locked() const noexcept { return state_->locked; }
    // `co_await lock.acquire();` ... `lock.release();`
    Coroutine<> acquire() { return acquire_on(state_); }
    void release();
    // `auto guard = co_await lock.acquire_guard();` releases at the end of the scope.
    Coroutine<ReleaseGuard<Lock>> acquire_guard() { return detail::acquire_guard(*this); }

private:
    static Coroutine<> acquire_on(Ref<detail::LockState> state);
    Ref<detail::LockState> state_;
};

// ---------------------------------------------------------------------------------- Semaphore

// Stage 3. Semaphore(value): at most `value` holders at once. acquire() takes a unit or
// waits in a FIFO; release() gives one back, handing it straight to the first waiter. Like
// the Lock, it is fair: locked() is true, and acquire() waits, while earlier waiters have
// not yet had their turn.
// Mirrors: Semaphore in Lib/asyncio/locks.py (the 3.12 version, which hands units over).
class Semaphore {
public:
    explicit Semaphore(int value = 1) : Semaphore(value, std::nullopt) {}
    Semaphore(const Semaphore&) = default;  // copies share one semaphore (see the top of this file)
    Semaphore& operator=(const Semaphore&) = default;

    // True if acquire() would wait: no unit is free, or others are queued first.
    bool locked() const noexcept { return state_->locked(); }
    Coroutine<> acquire() { return acquire_on(state_); }
    // Give a unit back. A BoundedSemaphore raises ValueError if that would exceed its
    // initial value.
    void release();
    // `auto guard = co_await sem.acquire_guard();` releases at the end of the scope.
    Coroutine<ReleaseGuard<Semaphore>> acquire_guard() { return detail::acquire_guard(*this); }

protected:
    Semaphore(int value, std::optional<int> bound);

private:
    static Coroutine<> acquire_on(Ref<detail::SemaphoreState> state);
    Ref<detail::SemaphoreState> state_;
};

// Stage 3. BoundedSemaphore(value): a Semaphore that refuses (ValueError) to be released
// more often than it was acquired, which catches a double release at once.
// Mirrors: BoundedSemaphore in Lib/asyncio/locks.py.
// The bound lives in the shared state, not in this class, so a BoundedSemaphore copied into
// a plain Semaphore (a guard holds one) still checks it.
class BoundedSemaphore : public Semaphore {
public:
    explicit BoundedSemaphore(int value = 1) : Semaphore(value, value) {}
};

}  // namespace aio
