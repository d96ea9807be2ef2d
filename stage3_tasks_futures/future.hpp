// Stage 3: Futures and Tasks. A Future is a result that will arrive later.
//
// Adds:    FutureBase (state, exception, done-callbacks, cancel), Future<T> (the value),
//          create_future, and CallbackList, the callbacks a future schedules when it is
//          done (first in the file, as a FutureBase holds one; it reads best after
//          FutureBase::mark_done). (`co_await fut` is in task.hpp: a Task is what waits.)
// Mirrors: Future in Lib/asyncio/futures.py.
//
// A Future is pending, then done exactly once: with a result, with an exception, or
// cancelled. Whoever wants to know when it is done adds a done-callback; the callbacks are
// scheduled on the loop (call_soon), never called inline by set_result, so that completing
// a future never runs other people's code in the middle of yours.
//
// Why a Future is a Handle: a Task (stage 3's other half) is a Future that runs, and the
// loop runs Handles. Making the whole family Handles lets a Task wait in the ready queue as
// itself, and lets a Future store "wake this task" as just another callback, so waking a
// task allocates nothing. That side is for the loop and the Task alone: Handle is a
// protected base, so a Ref<Task<T>> does not convert to a Ref<Handle>. (Through one,
// Handle::cancel() would make the loop skip the task's steps for good, and not even the
// task's own cancel() could finish it.) A Future's cancel() and cancelled() are its own.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage1_generators/generator.hpp"
#include "stage2_custom_loop/event_loop.hpp"
#include "stage3_tasks_futures/exceptions.hpp"

namespace aio {

class TaskBase;

// [docs:callback_list]
// A future's callbacks, in the order they were added (asyncio's Future._callbacks). Each is
// a Handle to schedule once the future is done, and a flag: a done-callback, which must be
// told which future it is for, or a task waiting on the future, which knows.
// Measured (bench_tasks_1m, bench_switch): almost every future has exactly one callback,
// the task that awaits it. So the first one is kept inline, and only a second one
// allocates a vector; waking the awaiting task then costs no allocation at all.
class CallbackList {
public:
    void push_back(Ref<Handle> h, bool is_done_callback) {
        if (!first_) {  // (first_ is null only when the list is empty)
            first_ = std::move(h);
            first_is_done_callback_ = is_done_callback;
            return;
        }
        if (!more_) more_ = std::make_unique<std::vector<Entry>>();
        more_->push_back(Entry{std::move(h), is_done_callback});
    }
    // Call fn(handle, is_done_callback) for each callback, in order, handing each over.
    template <typename F>
    void for_each(F fn) {
        if (!first_) return;
        fn(std::move(first_), first_is_done_callback_);
        if (more_)
            for (Entry& e : *more_) fn(std::move(e.handle), e.is_done_callback);
    }
    // [/docs:callback_list]
    // Forget `h` if it is here (keeping the others' order); returns whether it was.
    bool remove(const Handle* h) {
        if (first_ && first_.get() == h) {
            first_ = nullptr;
            if (more_ && !more_->empty()) {  // the next one becomes the first
                first_ = std::move(more_->front().handle);
                first_is_done_callback_ = more_->front().is_done_callback;
                more_->erase(more_->begin());
            }
            return true;
        }
        if (!more_) return false;
        auto it = std::find_if(more_->begin(), more_->end(), [h](const Entry& e) { return e.handle.get() == h; });
        if (it == more_->end()) return false;
        more_->erase(it);
        return true;
    }
    void clear() noexcept {
        first_ = nullptr;
        more_.reset();
    }

private:
    struct Entry {
        Ref<Handle> handle;
        bool is_done_callback;
    };
    std::unique_ptr<std::vector<Entry>> more_;
    Ref<Handle> first_;
    // Last: a Task's small fields fill the padding after it (see FutureBase::callbacks_).
    bool first_is_done_callback_ = false;
};

class FutureBase : protected Handle {
protected:
    enum class State : std::uint8_t { pending, cancelled, finished };

public:
    explicit FutureBase(EventLoop& loop) : lifeline_(loop.lifeline()) {}
    FutureBase(const FutureBase&) = delete;
    FutureBase& operator=(const FutureBase&) = delete;

    // The loop it belongs to, closed or not. A future can outlive its loop (someone kept a
    // Ref): once the loop is destroyed, this and everything that would schedule a callback
    // raise RuntimeError, as asyncio's call_soon does on a closed loop.
    EventLoop& get_loop() const {
        if (EventLoop* loop = lifeline_->loop()) return *loop;
        throw RuntimeError(name() + ": its event loop has been destroyed; nothing can be scheduled on it");
    }
    bool done() const noexcept { return state_ != State::pending; }
    bool cancelled() const noexcept { return state_ == State::cancelled; }

    // Cancel a pending future: it becomes done, its callbacks are scheduled, and result()
    // raises CancelledError(msg). Returns false if it was already done.
    virtual bool cancel(std::string msg = {}) {
        if (done()) return false;
        exception_ = std::make_exception_ptr(CancelledError(std::move(msg)));
        mark_done(State::cancelled);
        return true;
    }

    // The exception it finished with (null if it has a result). Raises CancelledError if
    // it was cancelled and InvalidStateError if it is not done yet.
    std::exception_ptr exception() {
        check_done("exception()");
        if (cancelled()) std::rethrow_exception(exception_);
        exception_retrieved_ = true;
        return exception_;
    }

    void set_exception(std::exception_ptr e) {
        check_pending("set_exception()");
        if (!e) throw std::invalid_argument("set_exception(nullptr): pass the exception to store, e.g. std::current_exception()");
        exception_ = std::move(e);
        mark_done(State::finished);
    }

    // [docs:add_done_callback]
    // fn runs on a later pass of the loop once the future is done (on the next pass, if it
    // already is). fn may take the future (FutureBase&) or nothing. Returns the callback's
    // handle, the token remove_done_callback takes.
    template <typename F>
    Ref<Handle> add_done_callback(F fn, const char* name = "done callback") {
        Ref<Handle> h(new DoneCallbackOf<F>(std::move(fn), name));
        if (done())
            schedule_callback(h, true);
        else
            callbacks_.push_back(h, true);
        return h;
    }
    // [/docs:add_done_callback]

    // Forget a callback that has not been scheduled yet. Returns whether it was found.
    bool remove_done_callback(const Ref<Handle>& h) { return callbacks_.remove(h.get()); }

    std::string name() const override { return "Future"; }
    // References to it (Ref<T> counts them in the object): for tests and curious readers.
    using Handle::ref_count;

protected:
    ~FutureBase() override = default;

    // [docs:mark_done]
    // Done: schedule every callback (asyncio's __schedule_callbacks). The list is emptied
    // first; a callback never runs here, only on a later pass of the loop.
    void mark_done(State state) {
        state_ = state;
        CallbackList callbacks = std::move(callbacks_);
        callbacks.for_each([this](Ref<Handle> h, bool is_done_callback) {
            schedule_callback(std::move(h), is_done_callback);  // asyncio: loop.call_soon(callback, self)
        });
    }
    // [/docs:mark_done]

    // Report an exception nobody retrieved ("... exception was never retrieved").
    bool exception_unretrieved() const noexcept { return state_ == State::finished && exception_ && !exception_retrieved_; }

    void check_pending(const char* what) const {
        if (done())
            throw InvalidStateError(std::string(what) + ": the future is already done (" +
                                    (cancelled() ? "cancelled" : "it has a result or an exception") +
                                    "); a future completes exactly once");
    }
    void check_done(const char* what) const {
        if (!done())
            throw InvalidStateError(std::string(what) +
                                    ": the future is still pending; co_await it, or check done() first");
    }
    // For result(): rethrow what it failed with. Reading the exception this way counts as
    // retrieving it.
    void rethrow_if_failed() {
        check_done("result()");
        if (exception_) {
            exception_retrieved_ = true;
            std::rethrow_exception(exception_);
        }
    }

    // (These two small fields come first so they fill the padding at the end of Handle.)
    State state_ = State::pending;
    bool exception_retrieved_ = false;
    Ref<LoopLifeline> lifeline_;  // not the loop itself: see get_loop()
    // The exception it finished with; for a cancelled future, the CancelledError(msg).
    std::exception_ptr exception_;

private:
    template <typename>
    friend class Ref;               // counts references through the (protected) Handle base
    friend class TaskBase;          // waits on futures, and is a Handle the loop runs
    friend class GatheringFuture;   // marks orphaned children's exceptions as retrieved

    // A plain Future never sits in the ready queue; only a Task (which overrides this) does.
    void run() override {}

    struct DoneCallback : Handle {
        Ref<FutureBase> future;  // set when scheduled, so it lives until the callback has run
    };
    template <typename F>
    struct DoneCallbackOf final : DoneCallback {
        DoneCallbackOf(F f, const char* n) : fn(std::move(f)), name_(n) {}
        void run() override {
            Ref<FutureBase> fut = std::move(this->future);
            if constexpr (std::is_invocable_v<F&, FutureBase&>)
                fn(*fut);
            else
                fn();
        }
        std::string name() const override { return name_; }
        F fn;
        const char* name_;
    };

    // Put one callback of a done future in the ready queue. A done-callback first learns
    // which future it is for (and keeps it alive until it has run); a waiting Task is
    // itself the callback, and its next step will read the future it waited on.
    void schedule_callback(Ref<Handle> h, bool is_done_callback) {
        if (is_done_callback) static_cast<DoneCallback&>(*h).future = Ref<FutureBase>(this);
        get_loop().add_callback(std::move(h));
    }

    // For TaskBase: a task waits on this future (it is scheduled when the future is done),
    // stops waiting, or, as its loop closes, drops every callback.
    void add_waiter(Ref<Handle> task) { callbacks_.push_back(std::move(task), false); }
    void remove_waiter(const Handle& task) { callbacks_.remove(&task); }
    void clear_callbacks() noexcept { callbacks_.clear(); }

    // Last, and [[no_unique_address]], which lets the fields that follow reuse the 7 bytes
    // of padding after the list's flag: a Task's first small fields go there, and a Task
    // stays 104 bytes (bench_tasks_1m counts them; tests/stage3_handle_access_test.cpp
    // checks the size).
    [[no_unique_address]] CallbackList callbacks_;
};

// The value part, shared by Future<T> and Task<T>. Base is FutureBase or TaskBase.
template <typename T, typename Base>
class BasicFuture : public Base {
public:
    using value_type = T;
    using Base::Base;

    // The value, or what it failed with rethrown: the exception, CancelledError if it was
    // cancelled, InvalidStateError if it is still pending.
    T result() {
        this->rethrow_if_failed();
        if constexpr (std::is_copy_constructible_v<T>)
            return *value_;
        else
            return std::move(*value_);
    }
    void set_result(T v) {
        this->check_pending("set_result()");
        value_ = std::move(v);
        this->mark_done(Base::State::finished);
    }

protected:
    // The value, without completing: a Task takes its coroutine's value out of the frame
    // first, and completes once the frame is freed.
    void store_result(T v) { value_ = std::move(v); }

private:
    std::optional<T> value_;
};

template <typename Base>
class BasicFuture<void, Base> : public Base {
public:
    using value_type = void;
    using Base::Base;
    void result() { this->rethrow_if_failed(); }
    void set_result() {
        this->check_pending("set_result()");
        this->mark_done(Base::State::finished);
    }

protected:
    void store_result() {}
};

template <typename T = void>
class Future final : public BasicFuture<T, FutureBase> {
public:
    using BasicFuture<T, FutureBase>::BasicFuture;
};

// A new pending future on the running loop (asyncio's loop.create_future()).
template <typename T = void>
Ref<Future<T>> create_future(EventLoop& loop) {
    return make_ref<Future<T>>(loop);
}
template <typename T = void>
Ref<Future<T>> create_future() {
    return make_ref<Future<T>>(get_running_loop());
}

// What a future's value is called when it sits in a tuple: void becomes None.
template <typename T>
using value_or_none_t = std::conditional_t<std::is_void_v<T>, None, T>;

}  // namespace aio
