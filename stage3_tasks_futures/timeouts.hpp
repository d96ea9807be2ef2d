// Stage 3: Futures and Tasks. A deadline around a block of awaits.
//
// Adds:    Timeout (when, reschedule, expired); timeout(delay, body) and timeout_at(when,
//          body), the C++ spelling of `async with asyncio.timeout(delay) as cm:`.
// Mirrors: Lib/asyncio/timeouts.py (Python 3.11+), and the cancellation count of
//          Task.cancelling()/uncancel() in tasks.py that it rests on.
//
// How a timeout works. Entering the scope notes the current task and its cancelling()
// count, and sets a timer for the deadline. If the timer fires, it cancels the task: the
// await the body is suspended in raises CancelledError, which travels up to the scope. The
// scope takes its request back (uncancel()) and, if the count is then no higher than it was
// at entry, the CancelledError was its own: it becomes TimeoutError. If anyone else also
// cancelled the task meanwhile, the count stays higher and CancelledError goes on: a
// cancellation from outside always wins over a timeout, and nested scopes each recognise
// only their own expiry.
//
// The shape. C++ has no `async with`: a scope object's destructor can neither await nor
// replace the exception in flight, and turning CancelledError into TimeoutError needs a
// try/catch around the body. So the body is an argument, run inside the current task (no
// new task, as `async with` runs its block in place):
//
//     int v = co_await aio::timeout(0.5, fetch());        // async with timeout(0.5):
//                                                         //     v = await fetch()
//     auto body = [&](aio::Timeout& cm) -> aio::Coroutine<> {
//         co_await first();                               // async with timeout(0.5) as cm:
//         cm.reschedule(cm.when().value() + 1);           //     await first()
//         co_await second();                              //     cm.reschedule(cm.when() + 1)
//     };                                                  //     await second()
//     co_await aio::timeout(0.5, body);
//
// A callable body must be named first: g++ 12 miscompiles a capturing lambda written inside
// a co_await (hazards 1 and 2, stage1_generators/README.md's appendix), so passing one in place does not
// compile here (a static_assert says what to write instead).
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "stage3_tasks_futures/task.hpp"

namespace aio {

class Timeout;

namespace detail {
template <typename T, typename Body>
Coroutine<T> timeout_scope(std::optional<double> deadline, bool relative, const char* who, Body body);
}  // namespace detail

// The scope itself: what `async with asyncio.timeout(d) as cm` binds to cm. Only timeout()
// and timeout_at() make one; a callable body receives it by reference, valid until the body
// returns.
class Timeout {
public:
    Timeout(const Timeout&) = delete;
    Timeout& operator=(const Timeout&) = delete;

    // The deadline, in loop.time() seconds; nullopt for none.
    std::optional<double> when() const noexcept { return when_; }
    // Move the deadline: later, earlier (one already past cancels on the next pass), or
    // nullopt for none. Raises RuntimeError once the deadline has passed or the scope ended.
    void reschedule(std::optional<double> when);
    // Whether the deadline passed while the scope ran (and stays true afterwards).
    bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }

private:
    template <typename T, typename Body>
    friend Coroutine<T> detail::timeout_scope(std::optional<double>, bool, const char*, Body);

    enum class State : std::uint8_t { entered, expiring, expired, exited };

    // Enter (asyncio's __aenter__): a deadline `relative` to now, or absolute in loop.time().
    Timeout(std::optional<double> deadline, bool relative, const char* who);
    ~Timeout();
    // Leave (asyncio's __aexit__). The body returned: nothing to throw.
    void leave() noexcept;
    // The body threw `failure`: throw TimeoutError if it is this scope's own cancellation,
    // else `failure` itself.
    [[noreturn]] void leave(std::exception_ptr failure);
    bool take_back_expiry() noexcept;
    void on_timeout();

    TaskBase* task_;             // the task the scope runs in: it owns the frame the scope lives in
    Ref<Handle> timer_;          // calls on_timeout() at the deadline; null once fired or with none
    std::optional<double> when_;
    unsigned cancelling_at_entry_;
    const char* who_;            // "timeout" or "wait_for": names the TimeoutError
    State state_ = State::entered;
};

namespace detail {

template <typename C>
struct is_coroutine : std::false_type {};
template <typename T>
struct is_coroutine<Coroutine<T>> : std::true_type {};

// A body that needs its scope: a callable taking Scope& (Timeout&, TaskGroup&) and returning
// a Coroutine.
template <typename F, typename Scope>
concept ScopeBody = std::is_invocable_v<F&, Scope&> && is_coroutine<std::invoke_result_t<F&, Scope&>>::value;
template <typename F, typename Scope>
using scope_body_result_t = typename std::invoke_result_t<F&, Scope&>::value_type;

// What the scope awaits: a coroutine as it is, a future or task (wait_for's), or the
// coroutine a named callable makes of the scope.
template <typename T>
Coroutine<T>&& start_body(Coroutine<T>& body, Timeout&) {
    return std::move(body);
}
template <typename F>
    requires std::is_base_of_v<FutureBase, F>
Ref<F> start_body(Ref<F>& fut, Timeout&) {
    return fut;
}
template <typename F>
auto start_body(F* make, Timeout& scope) {
    return (*make)(scope);
}

// [docs:timeout_scope]
// `async with timeout(...): return await body`, in the current task.
template <typename T, typename Body>
Coroutine<T> timeout_scope(std::optional<double> deadline, bool relative, const char* who, Body body) {
    Timeout scope(deadline, relative, who);  // __aenter__: note the cancel count, set the timer
    std::exception_ptr failure;
    try {
        if constexpr (std::is_void_v<T>) {
            co_await start_body(body, scope);
            scope.leave();
            co_return;
        } else {
            T value = co_await start_body(body, scope);
            scope.leave();
            co_return std::move(value);
        }
    } catch (...) {
        failure = std::current_exception();
    }
    scope.leave(std::move(failure));  // __aexit__: TimeoutError if the CancelledError was ours
}
// [/docs:timeout_scope]

// A callable body written in place: refused, with the fix in the message.
template <typename F>
constexpr bool named_body_required = false;

}  // namespace detail

// asyncio.timeout(delay): run `body` in the current task; if it has not finished `delay`
// seconds after it started (nullopt: no limit), cancel it and raise TimeoutError. Anything
// else the body raises passes through. `body` is a Coroutine, or a named callable taking
// the Timeout& (for reschedule()/expired()) and returning one. Raises RuntimeError outside
// a task. A callable body is held by reference, and the Timeout& it gets is valid until it
// returns: await the scope where the body is named, and keep the Timeout& in no task that
// may outlive the scope.
template <typename T>
Coroutine<T> timeout(std::optional<double> delay, Coroutine<T> body) {
    return detail::timeout_scope<T>(delay, true, "timeout", std::move(body));
}
template <typename F>
    requires detail::ScopeBody<F, Timeout>
Coroutine<detail::scope_body_result_t<F, Timeout>> timeout(std::optional<double> delay, F& body) {
    return detail::timeout_scope<detail::scope_body_result_t<F, Timeout>>(delay, true, "timeout", &body);
}

// asyncio.timeout_at(when): the same with an absolute deadline in loop.time() seconds.
template <typename T>
Coroutine<T> timeout_at(std::optional<double> when, Coroutine<T> body) {
    return detail::timeout_scope<T>(when, false, "timeout_at", std::move(body));
}
template <typename F>
    requires detail::ScopeBody<F, Timeout>
Coroutine<detail::scope_body_result_t<F, Timeout>> timeout_at(std::optional<double> when, F& body) {
    return detail::timeout_scope<detail::scope_body_result_t<F, Timeout>>(when, false, "timeout_at", &body);
}

// A lambda written inside the call: does not compile, on purpose (see the top of the file).
template <typename F>
    requires(!std::is_lvalue_reference_v<F> && detail::ScopeBody<F, Timeout>)
void timeout(std::optional<double>, F&&) {
    static_assert(detail::named_body_required<F>,
                  "timeout(delay, body): name the body first, `auto body = [&](aio::Timeout& cm) -> "
                  "aio::Coroutine<...> {...};` then `co_await aio::timeout(delay, body);`. g++ 12 miscompiles a "
                  "capturing lambda written inside a co_await (hazards 1 and 2, stage1_generators/README.md's appendix).");
}
template <typename F>
    requires(!std::is_lvalue_reference_v<F> && detail::ScopeBody<F, Timeout>)
void timeout_at(std::optional<double>, F&&) {
    static_assert(detail::named_body_required<F>,
                  "timeout_at(when, body): name the body first, `auto body = [&](aio::Timeout& cm) -> "
                  "aio::Coroutine<...> {...};` then `co_await aio::timeout_at(when, body);`. g++ 12 miscompiles a "
                  "capturing lambda written inside a co_await (hazards 1 and 2, stage1_generators/README.md's appendix).");
}

}  // namespace aio
