// Stage 3: Futures and Tasks. What an `async def` function returns.
//
// Adds:    Coroutine<T>, the return type of a C++ "async function": a function whose body
//          uses co_await and co_return. Calling it runs nothing (like calling an async def);
//          `co_await coro` runs it inside the current task and evaluates to its result,
//          and create_task(coro) runs it as a task of its own.
// Mirrors: coroutine objects (Objects/genobject.c) and `await coro` in Python: await on a
//          coroutine is the same delegation as stage 1's `yield from`.
//
// How it keeps the stack flat. `co_await child` starts the child right there, inside the
// parent's await (a plain call, not a jump), and if the child finishes without suspending,
// the parent simply goes on: a million such awaits in a loop use no more stack than one.
// If the child does suspend, the parent suspends too, and later the child's return is
// noticed by the Task, which resumes the parent (TaskBase::step, a trampoline like stage 1's).
// No coroutine ever resumes another by a tail call, so nothing depends on the compiler
// turning symmetric transfer into a jump (hazard 7, stage1_generators/README.md's appendix).
#pragma once

#include <coroutine>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "stage1_generators/generator.hpp"
#include "stage3_tasks_futures/object_pool.hpp"

namespace aio {

// The name of the function a coroutine came from, for await-chain dumps. It is captured
// as a default argument of the promise's constructor, which the compiler calls from the
// coroutine itself. (explicit: a coroutine's own const char* argument must not match.)
struct FunctionName {
    explicit FunctionName(const char* v = __builtin_FUNCTION()) : value(v) {}
    const char* value;
};

namespace detail {
// Set while a task frees a coroutine frame (TaskBase::destroy_coroutine). A local whose
// destructor throws then lands in unhandled_exception(), like an exception from the body,
// but the promise that would keep it is freed a moment later: it is kept here instead, to
// be reported. (Thread-local rather than a field: every frame would pay for a rare case.)
inline thread_local std::exception_ptr* tl_thrown_while_freeing = nullptr;
}  // namespace detail

// The part of every coroutine's promise that Tasks and awaiters use.
class CoroutinePromiseBase {
public:
    explicit CoroutinePromiseBase(FunctionName fn) : function_name(fn.value) {}

    std::coroutine_handle<> handle;                // this coroutine's frame
    CoroutinePromiseBase* continuation = nullptr;  // the coroutine awaiting this one, if any
    std::exception_ptr exception;                  // what escaped its body
    const char* function_name;

    // Frames come from the small-block pool (object_pool.hpp explains why). The sized delete
    // is what lets the pool find the block's size class without a header.
    static void* operator new(std::size_t size) { return pool::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { pool::deallocate(p, size); }

    // Lazy, like an async def: nothing runs until it is awaited or made a task.
    std::suspend_always initial_suspend() const noexcept { return {}; }
    // Stay suspended at the end so the awaiter (or the task) can take the result; then the
    // owner destroys the frame.
    std::suspend_always final_suspend() const noexcept { return {}; }
    void unhandled_exception() noexcept {
        if (std::exception_ptr* sink = detail::tl_thrown_while_freeing) {
            if (!*sink) *sink = std::current_exception();  // the first one is reported
            return;
        }
        exception = std::current_exception();
    }
};

template <typename T>
class Coroutine;

template <typename T>
class CoroutinePromise : public CoroutinePromiseBase, public detail::ReturnSlot<T> {
public:
    explicit CoroutinePromise(FunctionName fn = FunctionName()) : CoroutinePromiseBase(fn) {}
    Coroutine<T> get_return_object();
};

template <typename T = void>
class [[nodiscard]] Coroutine {
public:
    using promise_type = CoroutinePromise<T>;
    using value_type = T;

    Coroutine() = default;
    Coroutine(Coroutine&& o) noexcept : handle_(std::exchange(o.handle_, {})) {}
    Coroutine& operator=(Coroutine&& o) noexcept {
        if (this != &o) {
            if (handle_) handle_.destroy();
            handle_ = std::exchange(o.handle_, {});
        }
        return *this;
    }
    // A coroutine that is never awaited is destroyed unstarted (Python would warn "coroutine
    // was never awaited"; here the type is [[nodiscard]], so the compiler does).
    ~Coroutine() {
        if (handle_) handle_.destroy();
    }

    // [docs:await_coroutine]
    // `co_await coro`: run coro inside the current task, as `await coro()` does.
    struct Awaiter {
        std::coroutine_handle<promise_type> child;
        bool await_ready() const noexcept { return false; }
        // Start the child now. If it finishes at once, return false: the parent goes on
        // without suspending and the stack unwinds. If it suspended (it awaits something
        // pending), the parent suspends too; the Task resumes the parent when the child
        // has returned.
        template <typename ParentPromise>
        bool await_suspend(std::coroutine_handle<ParentPromise> parent) {
            child.promise().continuation = &parent.promise();
            child.resume();
            return !child.done();
        }
        T await_resume() const {
            auto& p = child.promise();
            if (p.exception) std::rethrow_exception(p.exception);
            return p.take_result();
        }
    };
    Awaiter operator co_await() && { return Awaiter{checked("co_await")}; }
    Awaiter operator co_await() & { return Awaiter{checked("co_await")}; }
    // [/docs:await_coroutine]

    explicit operator bool() const noexcept { return bool(handle_); }
    // The function this coroutine runs (for reports).
    const char* function_name() const noexcept { return handle_ ? handle_.promise().function_name : "?"; }

    // Hand the frame over (create_task takes it; the Task destroys it).
    std::coroutine_handle<promise_type> release(const char* what) {
        auto h = checked(what);
        handle_ = {};
        return h;
    }

private:
    friend class CoroutinePromise<T>;
    explicit Coroutine(std::coroutine_handle<promise_type> h) : handle_(h) {}

    std::coroutine_handle<promise_type> checked(const char* what) const {
        if (!handle_) throw std::logic_error(std::string(what) + " of an empty (moved-from) coroutine");
        if (handle_.promise().continuation || handle_.done())
            throw std::logic_error(std::string(what) + ": this coroutine has already been awaited; a coroutine runs once");
        return handle_;
    }

    std::coroutine_handle<promise_type> handle_;
};

template <typename T>
Coroutine<T> CoroutinePromise<T>::get_return_object() {
    auto h = std::coroutine_handle<CoroutinePromise>::from_promise(*this);
    handle = h;
    return Coroutine<T>(h);
}

}  // namespace aio
