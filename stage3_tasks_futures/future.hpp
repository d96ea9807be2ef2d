// Stage 3: Futures and Tasks. A Future is a result that will arrive later.
//
// Adds:    FutureBase (state, exception, done-callbacks, cancel), Future<T> (the value),
//          and create_future. (`co_await fut` is in task.hpp: a Task is what waits.)
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
// task allocates nothing. (Handle's cancel()/cancelled() are hidden by a Future's own,
// which mean "cancel the future" and "was it cancelled".)
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

class FutureBase : public Handle {
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
        Ref<DoneCallback> h(new DoneCallbackOf<F>(std::move(fn), name));
        if (done()) {
            h->future = Ref<FutureBase>(this);
            get_loop().add_callback(h);
        } else {
            push_callback(h, true);
        }
        return h;
    }
    // [/docs:add_done_callback]

    // Forget a callback that has not been scheduled yet. Returns whether it was found.
    bool remove_done_callback(const Ref<Handle>& h) { return remove_callback(h.get()); }

    std::string name() const override { return "Future"; }

protected:
    ~FutureBase() override = default;

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

    // [docs:mark_done]
    // Done: schedule every callback. A waiting Task is itself the callback (it is a Handle),
    // so the loop will run its next step; a user callback first learns which future it is for.
    void mark_done(State state) {
        state_ = state;
        Ref<Handle> first = std::move(first_callback_);
        bool first_is_user = first_is_user_;
        auto more = std::move(more_callbacks_);
        auto schedule = [this](Ref<Handle> h, bool is_user) {
            if (is_user) static_cast<DoneCallback&>(*h).future = Ref<FutureBase>(this);
            get_loop().add_callback(std::move(h));
        };
        if (first) schedule(std::move(first), first_is_user);
        if (more)
            for (auto& e : *more) schedule(std::move(e.handle), e.is_user_callback);
    }
    // [/docs:mark_done]

    // A task waits on this future: `task` is scheduled when it is done.
    void add_waiter(Ref<Handle> task) { push_callback(std::move(task), false); }

    // (These three small fields come first so they fill the padding at the end of Handle.)
    State state_ = State::pending;
    bool exception_retrieved_ = false;
    bool first_is_user_ = false;  // first_callback_ came from add_done_callback
    Ref<LoopLifeline> lifeline_;  // not the loop itself: see get_loop()
    // The exception it finished with; for a cancelled future, the CancelledError(msg).
    std::exception_ptr exception_;

private:
    friend class TaskBase;
    friend class GatheringFuture;  // marks orphaned children's exceptions as retrieved
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
    struct Entry {
        Ref<Handle> handle;
        bool is_user_callback;
    };

    // [docs:callbacks]
    // Measured (bench_tasks_1m, bench_switch): almost every future has exactly one callback,
    // the task that awaits it. So the first callback is kept inline, and only a second one
    // allocates a vector; waking the awaiting task then costs no allocation at all.
    void push_callback(Ref<Handle> h, bool is_user) {
        if (!first_callback_ && !more_callbacks_) {
            first_callback_ = std::move(h);
            first_is_user_ = is_user;
            return;
        }
        if (!more_callbacks_) more_callbacks_ = std::make_unique<std::vector<Entry>>();
        more_callbacks_->push_back(Entry{std::move(h), is_user});
    }
    // [/docs:callbacks]
    bool remove_callback(Handle* h) {
        if (first_callback_ && first_callback_.get() == h) {
            first_callback_ = nullptr;
            if (more_callbacks_ && !more_callbacks_->empty()) {  // keep the order: the next becomes first
                first_callback_ = std::move(more_callbacks_->front().handle);
                first_is_user_ = more_callbacks_->front().is_user_callback;
                more_callbacks_->erase(more_callbacks_->begin());
            }
            return true;
        }
        if (!more_callbacks_) return false;
        auto& v = *more_callbacks_;
        auto it = std::find_if(v.begin(), v.end(), [&](const Entry& e) { return e.handle.get() == h; });
        if (it == v.end()) return false;
        v.erase(it);
        return true;
    }
    void clear_callbacks() {
        first_callback_ = nullptr;
        more_callbacks_.reset();
    }
    Ref<Handle> first_callback_;
    std::unique_ptr<std::vector<Entry>> more_callbacks_;
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
