// Stage 3: Futures and Tasks. The functions of tasks.py, built from Futures and callbacks.
//
// Adds:    sleep(delay[, result]), gather(...) (variadic -> tuple, vector -> vector, with or
//          without return_exceptions), wait(fs, timeout, return_when), wait_for(aw,
//          timeout) (on timeouts.hpp's scope), shield(aw), as_completed(fs, timeout).
// Mirrors: the functions of the same names in Lib/asyncio/tasks.py (3.12), and
//          _GatheringFuture.
//
// Most of them are a coroutine that waits on one private Future (a "waiter") which
// done-callbacks on the children complete at the right moment. That is the whole trick:
// combinators are callbacks plus one future to await. wait_for is the exception since 3.12:
// a timeout scope around a single await.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/timeouts.hpp"

namespace aio {

// ---------------------------------------------------------------------------------- sleep

// [docs:sleep]
// asyncio.sleep: a future that a timer completes. sleep(0) (or less) just lets every
// other ready task run once.
inline Coroutine<> sleep(double delay) {
    if (delay <= 0) {
        co_await yield_now();
        co_return;
    }
    EventLoop& loop = get_running_loop();
    Ref<Future<>> fut = create_future(loop);
    Ref<TimerHandle> timer = loop.call_later(delay, [fut] {
        if (!fut->done()) fut->set_result();
    }, "sleep");
    // Cancelled while asleep (the await throws) or destroyed: the timer must go too.
    struct CancelTimer {
        Ref<TimerHandle> timer;
        ~CancelTimer() { timer->cancel(); }
    } cancel_timer{timer};
    co_await fut;
}
// [/docs:sleep]

// sleep(1) with an int: an exact match, so that with `using namespace aio` it is ours and
// not POSIX's ::sleep(unsigned), which would block the whole thread.
inline Coroutine<> sleep(int seconds) { return sleep(double(seconds)); }

template <typename T>
Coroutine<T> sleep(double delay, T result) {
    co_await sleep(delay);
    co_return result;
}

// ----------------------------------------------------------------- awaitables and results

namespace detail {
template <typename Aw>
struct awaitable_traits;
template <typename T>
struct awaitable_traits<Coroutine<T>> {
    using result_type = T;
    using future_type = Task<T>;
};
template <typename F>
    requires std::is_base_of_v<FutureBase, F>
struct awaitable_traits<Ref<F>> {
    using result_type = typename F::value_type;
    using future_type = F;
};
}  // namespace detail

// What awaiting Aw gives: int for Coroutine<int>, Ref<Task<int>> or Ref<Future<int>>.
template <typename Aw>
using awaitable_result_t = typename detail::awaitable_traits<Aw>::result_type;

// A result, or the exception in its place (gather with return_exceptions).
template <typename T>
using ResultOrException = std::variant<value_or_none_t<T>, std::exception_ptr>;

// Read a done future's outcome without throwing.
template <typename F>
value_or_none_t<typename F::value_type> result_or_none(F& f) {
    if constexpr (std::is_void_v<typename F::value_type>) {
        f.result();
        return None{};
    } else {
        return f.result();
    }
}
// A cancelled future's CancelledError, message and all (asyncio's _make_cancelled_error).
// exception() raises it rather than returning it, so catch it: this is the rare path.
inline std::exception_ptr cancelled_error_of(FutureBase& f) {
    try {
        f.exception();
    } catch (const CancelledError&) {
        return std::current_exception();
    }
    return std::make_exception_ptr(CancelledError());
}
template <typename F>
ResultOrException<typename F::value_type> result_or_exception(F& f) {
    if (f.cancelled()) return cancelled_error_of(f);
    if (auto e = f.exception()) return e;
    return result_or_none(f);
}

// Done-callbacks a combinator put on other futures, removed when the combinator goes away.
// A callback already scheduled is cancelled too (the loop skips cancelled handles), so a
// callback can never run after the object it points into is gone.
class CallbackTokens {
public:
    CallbackTokens() = default;
    CallbackTokens(const CallbackTokens&) = delete;
    CallbackTokens& operator=(const CallbackTokens&) = delete;
    ~CallbackTokens() { clear(); }
    template <typename F>
    void add(FutureBase& fut, F fn) {
        tokens_.emplace_back(Ref<FutureBase>(&fut), fut.add_done_callback(std::move(fn)));
    }
    void clear() {
        for (auto& [fut, token] : tokens_) {
            fut->remove_done_callback(token);
            token->cancel();
        }
        tokens_.clear();
    }

private:
    std::vector<std::pair<Ref<FutureBase>, Ref<Handle>>> tokens_;
};

// ---------------------------------------------------------------------------------- gather

// asyncio's _GatheringFuture: done when all children are (or, without return_exceptions,
// at the first failure). Cancelling it cancels the children.
class GatheringFuture final : public BasicFuture<void, FutureBase> {
public:
    GatheringFuture(EventLoop& loop, std::vector<Ref<FutureBase>> children, bool return_exceptions);
    bool cancel(std::string msg = {}) override;
    std::string name() const override { return "gather"; }

private:
    void child_done(FutureBase& child);
    void orphan_the_rest();
    std::vector<Ref<FutureBase>> children_;
    CallbackTokens tokens_;
    std::size_t finished_ = 0;
    bool return_exceptions_;
    bool cancel_requested_ = false;
    std::string cancel_message_;  // what cancel(msg) was given, for the CancelledError at the end
};

struct ReturnExceptions {};
// gather(return_exceptions, a, b): exceptions come back in place of results.
inline constexpr ReturnExceptions return_exceptions{};

namespace detail {
template <typename... Fs>
Ref<GatheringFuture> make_gathering(EventLoop& loop, bool return_exceptions, std::tuple<Ref<Fs>...>& children) {
    std::vector<Ref<FutureBase>> v;
    std::apply([&](auto&... c) { (v.emplace_back(c), ...); }, children);
    return make_ref<GatheringFuture>(loop, std::move(v), return_exceptions);
}
template <typename F>
Ref<GatheringFuture> make_gathering(EventLoop& loop, bool return_exceptions, std::vector<Ref<F>>& children) {
    std::vector<Ref<FutureBase>> v(children.begin(), children.end());
    return make_ref<GatheringFuture>(loop, std::move(v), return_exceptions);
}
}  // namespace detail

// [docs:gather]
// gather(a, b, c): run the awaitables concurrently (coroutines become tasks) and return
// their results as a tuple, in argument order. The first exception propagates; the
// other children keep running, as in asyncio.
template <typename... Aws>
Coroutine<std::tuple<value_or_none_t<awaitable_result_t<Aws>>...>> gather(Aws... aws) {
    EventLoop& loop = get_running_loop();
    auto children = std::make_tuple(ensure_future(loop, std::move(aws))...);
    Ref<GatheringFuture> outer = detail::make_gathering(loop, false, children);
    co_await outer;
    co_return std::apply([](auto&... c) { return std::make_tuple(result_or_none(*c)...); }, children);
}
// [/docs:gather]

template <typename... Aws>
Coroutine<std::tuple<ResultOrException<awaitable_result_t<Aws>>...>> gather(ReturnExceptions, Aws... aws) {
    EventLoop& loop = get_running_loop();
    auto children = std::make_tuple(ensure_future(loop, std::move(aws))...);
    Ref<GatheringFuture> outer = detail::make_gathering(loop, true, children);
    co_await outer;
    co_return std::apply([](auto&... c) { return std::make_tuple(result_or_exception(*c)...); }, children);
}

// gather over a vector of same-typed awaitables: a vector of results.
template <typename Aw>
Coroutine<std::vector<value_or_none_t<awaitable_result_t<Aw>>>> gather(std::vector<Aw> aws) {
    EventLoop& loop = get_running_loop();
    std::vector<Ref<typename detail::awaitable_traits<Aw>::future_type>> children;
    children.reserve(aws.size());
    for (auto& a : aws) children.push_back(ensure_future(loop, std::move(a)));
    aws.clear();
    Ref<GatheringFuture> outer = detail::make_gathering(loop, false, children);
    co_await outer;
    std::vector<value_or_none_t<awaitable_result_t<Aw>>> results;
    results.reserve(children.size());
    for (auto& c : children) results.push_back(result_or_none(*c));
    co_return results;
}

template <typename Aw>
Coroutine<std::vector<ResultOrException<awaitable_result_t<Aw>>>> gather(ReturnExceptions, std::vector<Aw> aws) {
    EventLoop& loop = get_running_loop();
    std::vector<Ref<typename detail::awaitable_traits<Aw>::future_type>> children;
    children.reserve(aws.size());
    for (auto& a : aws) children.push_back(ensure_future(loop, std::move(a)));
    aws.clear();
    Ref<GatheringFuture> outer = detail::make_gathering(loop, true, children);
    co_await outer;
    std::vector<ResultOrException<awaitable_result_t<Aw>>> results;
    results.reserve(children.size());
    for (auto& c : children) results.push_back(result_or_exception(*c));
    co_return results;
}

// ------------------------------------------------------------------------------------ wait

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

template <typename F>
struct WaitResult {
    std::vector<Ref<F>> done;
    std::vector<Ref<F>> pending;
};

// Complete `waiter` (if it is still pending): how callbacks wake a combinator.
inline void release_waiter(const Ref<Future<>>& waiter) {
    if (!waiter->done()) waiter->set_result();
}

// [docs:wait]
// asyncio.wait: wait until the futures (or tasks) are done, the first one is, or the first
// one fails, or `timeout` seconds pass; return them split into done and pending. Unlike
// wait_for, it cancels nothing.
template <typename F>
Coroutine<WaitResult<F>> wait(std::vector<Ref<F>> fs, std::optional<double> timeout = std::nullopt,
                              ReturnWhen return_when = ALL_COMPLETED) {
    if (fs.empty()) throw std::invalid_argument("wait() needs at least one future or task");
    EventLoop& loop = get_running_loop();
    Ref<Future<>> waiter = create_future(loop);
    std::size_t pending = fs.size();
    CallbackTokens tokens;
    for (auto& f : fs)
        tokens.add(*f, [waiter, &pending, return_when](FutureBase& done) {
            --pending;
            // exception() counts as retrieving the exception: read it only when it matters.
            bool stop_on_failure = return_when == FIRST_EXCEPTION && !done.cancelled() && done.exception();
            if (pending == 0 || return_when == FIRST_COMPLETED || stop_on_failure)
                release_waiter(waiter);
        });
    Ref<TimerHandle> timer;
    if (timeout) timer = loop.call_later(*timeout, [waiter] { release_waiter(waiter); }, "wait timeout");
    struct CancelTimer {
        Ref<TimerHandle>& timer;
        ~CancelTimer() {
            if (timer) timer->cancel();
        }
    } cancel_timer{timer};
    co_await waiter;
    WaitResult<F> result;
    for (auto& f : fs) (f->done() ? result.done : result.pending).push_back(f);
    co_return result;
}
// [/docs:wait]

// -------------------------------------------------------------------------------- wait_for

namespace detail {
// Cancel fut and wait until it has actually finished (it may clean up first).
template <typename F>
Coroutine<> cancel_and_wait(Ref<F> fut) {
    Ref<Future<>> waiter = create_future(fut->get_loop());
    CallbackTokens tokens;
    tokens.add(*fut, [waiter] { release_waiter(waiter); });
    fut->cancel();
    co_await waiter;
}

template <typename T>
Coroutine<T> wait_for_no_time(Coroutine<T> coro);
template <typename F>
Coroutine<typename F::value_type> wait_for_no_time(Ref<F> fut);
}  // namespace detail

// [docs:wait_for]
// asyncio.wait_for (3.12): `co_await aw` inside a timeout(timeout) scope, so a coroutine runs
// in the current task and a future or task is awaited directly. When the time is up, the
// awaitable is cancelled (a task is then waited for until it has finished cancelling) and
// TimeoutError is raised; if it caught the cancellation and finished anyway, its value or
// error is the outcome. A cancellation of the awaiting task always comes out as
// CancelledError, even if the awaitable finished in the same pass. timeout <= 0: an
// awaitable not done yet is cancelled (a coroutine is never started) and TimeoutError
// raised at once. nullopt: no limit.
template <typename Aw>
Coroutine<awaitable_result_t<Aw>> wait_for(Aw aw, std::optional<double> timeout) {
    if (timeout && *timeout <= 0) return detail::wait_for_no_time(std::move(aw));
    return detail::timeout_scope<awaitable_result_t<Aw>>(timeout, true, "wait_for", std::move(aw));
}
// [/docs:wait_for]

namespace detail {
// wait_for with no time left: a coroutine has not started, so it is not done, and it never
// will start (asyncio 3.12 makes it a task and cancels that before its first step).
template <typename T>
Coroutine<T> wait_for_no_time(Coroutine<T> coro) {
    Coroutine<T> never_started = std::move(coro);  // freed, unstarted, with this frame
    throw TimeoutError("wait_for: the timeout is 0 or less, so the coroutine was not started");
    co_return co_await std::move(never_started);  // (not reached: makes this a coroutine of T)
}
// A future that is done gives its outcome; one that is not is cancelled first.
template <typename F>
Coroutine<typename F::value_type> wait_for_no_time(Ref<F> fut) {
    if (!fut->done()) {
        Coroutine<> cancelling = cancel_and_wait(fut);
        co_await std::move(cancelling);
        if (fut->cancelled())
            throw TimeoutError("wait_for: the timeout is 0 or less and the awaitable was not done: it was cancelled");
    }
    co_return fut->result();
}
}  // namespace detail

// ---------------------------------------------------------------------------------- shield

// asyncio.shield: a future with aw's outcome, whose cancellation leaves aw running. A task
// awaiting it and cancelled gets CancelledError at once; aw (a coroutine becomes a task)
// goes on; a failure of it that nobody reads is then reported as never retrieved, as in
// asyncio 3.12.
template <typename Aw>
Ref<Future<awaitable_result_t<Aw>>> shield(Aw aw) {
    using T = awaitable_result_t<Aw>;
    using Inner = typename detail::awaitable_traits<Aw>::future_type;
    Ref<Inner> inner = ensure_future(get_running_loop(), std::move(aw));
    Ref<Future<T>> outer = create_future<T>(inner->get_loop());
    // Only inner -> outer: the outer future holds nothing, so nothing is kept alive in a
    // cycle if neither is ever done.
    auto pass_on = [outer](FutureBase& done) {
        auto& f = static_cast<Inner&>(done);
        // Nobody waits for the outer future any more: it was cancelled, or its holder
        // completed it (asyncio 3.12 then drops this callback). aw's outcome is left unread,
        // so a failure nobody else reads is reported when aw is freed: never lost silently.
        if (outer->done()) return;
        if (f.cancelled()) {
            outer->cancel();
        } else if (auto e = f.exception()) {
            outer->set_exception(e);
        } else if constexpr (std::is_void_v<T>) {
            outer->set_result();
        } else {
            outer->set_result(f.result());
        }
    };
    if (inner->done())
        pass_on(*inner);
    else
        inner->add_done_callback(std::move(pass_on), "shield");
    return outer;
}

// ---------------------------------------------------------------------------- as_completed

// asyncio.as_completed: `co_await next()` gives the results in the order the futures
// finish (each result, or its exception thrown), size() times. With a timeout (seconds from
// now), once it has passed, each next() still owed raises TimeoutError instead, after the
// results that arrived in time; the futures themselves are not cancelled (as in asyncio).
template <typename F>
class AsCompleted {
public:
    explicit AsCompleted(std::vector<Ref<F>> fs, std::optional<double> timeout = std::nullopt)
        : remaining_(fs.size()), unfinished_(fs.size()) {
        for (auto& f : fs)
            tokens_.add(*f, [this](FutureBase& done) {
                finished_.push_back(Ref<F>(static_cast<F*>(&done)));
                if (--unfinished_ == 0 && timer_) timer_->cancel();
                if (waiter_) release_waiter(waiter_);
            });
        if (timeout && !fs.empty())
            timer_ = fs.front()->get_loop().call_later(*timeout, [this] { on_timeout(); }, "as_completed timeout");
    }
    AsCompleted(const AsCompleted&) = delete;
    AsCompleted& operator=(const AsCompleted&) = delete;
    ~AsCompleted() {
        if (timer_) timer_->cancel();
    }

    std::size_t size() const noexcept { return remaining_; }

    Coroutine<typename F::value_type> next() {
        if (remaining_ == 0) throw std::out_of_range("as_completed: every future has already been returned");
        if (finished_.empty() && !timed_out_) {
            waiter_ = create_future();
            Ref<Future<>> w = waiter_;
            co_await w;
            waiter_ = nullptr;
        }
        --remaining_;
        if (finished_.empty())
            throw TimeoutError("as_completed: the timeout passed before the next future finished (they still run)");
        Ref<F> f = std::move(finished_.front());
        finished_.pop_front();
        co_return f->result();
    }

private:
    // Futures finishing from now on are not given: forget them, and wake a waiting next().
    void on_timeout() {
        timed_out_ = true;
        timer_ = nullptr;
        tokens_.clear();
        if (waiter_) release_waiter(waiter_);
    }

    std::size_t remaining_;   // next() calls still owed
    std::size_t unfinished_;  // futures not finished yet
    bool timed_out_ = false;
    std::deque<Ref<F>> finished_;
    Ref<Future<>> waiter_;
    Ref<TimerHandle> timer_;  // the timeout, if any (cancelled by the destructor)
    CallbackTokens tokens_;   // last: removed first, before what the callbacks point into
};

template <typename F>
AsCompleted<F> as_completed(std::vector<Ref<F>> fs, std::optional<double> timeout = std::nullopt) {
    return AsCompleted<F>(std::move(fs), timeout);
}

}  // namespace aio
