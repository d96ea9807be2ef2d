// Stage 3: Futures and Tasks. Event, Lock and Semaphore (see locks.hpp).
#include "stage3_tasks_futures/locks.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

namespace aio {

namespace detail {

void remove_waiter(WaiterDeque& waiters, const Ref<Future<>>& fut) noexcept {
    auto it = std::find(waiters.begin(), waiters.end(), fut);
    if (it != waiters.end()) waiters.erase(it);
}

void report_release_error(std::exception_ptr e) noexcept {
    ExceptionContext context{"ReleaseGuard: the release at the end of the scope failed (was it also released by hand?)",
                             e};
    try {
        if (EventLoop* loop = running_loop_or_null()) {
            loop->call_exception_handler(context);
            return;
        }
        std::rethrow_exception(e);
    } catch (const std::exception& x) {  // no loop to tell (or even logging failed): stderr
        std::fprintf(stderr, "%s: %s\n", context.message.c_str(), x.what());
    } catch (...) {
        std::fprintf(stderr, "%s\n", context.message.c_str());
    }
}

// --------------------------------------------------------------------------------- Lock
// Make sure the first waiter will run and take the lock. If its future is already done, it
// has been woken (or cancelled, and will pass the turn on when it runs): nothing to do.
void LockState::wake_up_first() {
    if (waiters.empty()) return;
    Ref<Future<>>& first = waiters.front();
    if (!first->done()) first->set_result();
}
// ---------------------------------------------------------------------------- Semaphore

// Not free if no unit is, or if a waiter that has not given up is queued: such a waiter
// either waits for a unit or has been handed one and not run yet. Cancelled waiters are
// leaving, so they do not count.
bool SemaphoreState::locked() const noexcept {
    if (value == 0) return true;
    return std::any_of(waiters.begin(), waiters.end(), [](const Ref<Future<>>& w) { return !w->cancelled(); });
}

// Hand a unit to the first waiter still waiting. The unit is taken off `value` here, on the
// waiter's behalf, so nobody can take it in the meantime. Returns whether anyone was woken.
bool SemaphoreState::wake_up_next() {
    for (Ref<Future<>>& w : waiters) {
        if (w->done()) continue;  // already woken, or cancelled
        --value;
        w->set_result();
        return true;
    }
    return false;
}

// Wake as many waiters as there are free units.
void SemaphoreState::wake_up_while_free() {
    while (value > 0 && wake_up_next()) {
    }
}

}  // namespace detail

// ------------------------------------------------------------------------------------ Event

void Event::set() {
    if (state_->value) return;
    state_->value = true;
    // set_result only schedules the waiting tasks (future.hpp), so no waiter runs, or leaves
    // the deque, while this loop walks it.
    for (Ref<Future<>>& w : state_->waiters)
        if (!w->done()) w->set_result();
}
Coroutine<> Event::wait_on(Ref<detail::EventState> state) {
    if (state->value) co_return;
    detail::WaiterSlot slot(state->waiters);
    // If this throws (cancelled), there is nothing to pass on: set() wakes every waiter
    // anyway. The slot leaves the FIFO on the way out, whichever way that is.
    co_await slot.future();
}
// ------------------------------------------------------------------------------------- Lock

// [docs:lock_acquire]
Coroutine<> Lock::acquire_on(Ref<detail::LockState> state) {
    // Free, and nobody queued who will take it (a cancelled waiter never will): take it now.
    // Otherwise wait in line, even if it is free: release() may have woken a waiter that has
    // not run yet, and jumping ahead of it would be unfair.
    bool nobody_queued = std::all_of(state->waiters.begin(), state->waiters.end(),
                                     [](const Ref<Future<>>& w) { return w->cancelled(); });
    if (!state->locked && nobody_queued) {
        state->locked = true;
        co_return;
    }
    detail::WaiterSlot slot(state->waiters);
    try {
        co_await slot.future();
    } catch (...) {
        // We will not take the lock (we were cancelled, almost certainly). If release() had
        // already woken us, it woke nobody else, and the lock would stay free with tasks
        // waiting for ever: leave the line, then wake whoever is first now. (CPython catches
        // CancelledError only; any exception here means the same, so we catch them all.)
        slot.leave();
        if (!state->locked) state->wake_up_first();
        throw;
    }
    slot.leave();
    state->locked = true;
}
// [/docs:lock_acquire]

void Lock::release() {
    if (!state_->locked)
        throw RuntimeError(
            "Lock.release(): the lock is not acquired; release only a lock you acquired "
            "(acquire_guard() pairs the two for you)");
    state_->locked = false;
    state_->wake_up_first();
}

// -------------------------------------------------------------------------------- Semaphore

Semaphore::Semaphore(int value, std::optional<int> bound) {
    if (value < 0) throw ValueError("Semaphore initial value must be >= 0, got " + std::to_string(value));
    state_ = make_ref<detail::SemaphoreState>(value, bound);
}
Coroutine<> Semaphore::acquire_on(Ref<detail::SemaphoreState> state) {
    if (!state->locked()) {
        --state->value;
        co_return;
    }
    detail::WaiterSlot slot(state->waiters);
    // If this frame is destroyed while it waits (its task freed with its loop), no code
    // after the co_await runs, only destructors: a unit release() already handed over
    // must still come back, or it is lost for every later user of the semaphore.
    struct GiveBackUnusedUnit {
        detail::SemaphoreState& state;
        detail::WaiterSlot& slot;
        bool armed = true;
        ~GiveBackUnusedUnit() {
            if (armed && slot.woken()) ++state.value;  // (no waking from a destructor)
        }
    } give_back{*state, slot};
    try {
        co_await slot.future();
    } catch (...) {
        give_back.armed = false;
        slot.leave();
        // release() had handed us a unit (see wake_up_next), but we will not use it: give it
        // back, and let it go to the next in line.
        if (slot.woken()) ++state->value;
        state->wake_up_while_free();
        throw;
    }
    give_back.armed = false;
    slot.leave();
    // Tasks may have queued behind us while a unit was free, only to keep FIFO order:
    // now that we have ours, let in as many of them as there are units.
    state->wake_up_while_free();
}
void Semaphore::release() {
    if (state_->bound && state_->value >= *state_->bound)
        throw ValueError("BoundedSemaphore.release(): released too many times (more releases than acquires, value " +
                         std::to_string(*state_->bound) + "); release only what you acquired");
    ++state_->value;
    state_->wake_up_next();
}

}  // namespace aio
