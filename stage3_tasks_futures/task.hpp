// Stage 3: Futures and Tasks. A Task is a Future that drives a coroutine.
//
// Adds:    TaskBase and Task<T>; create_task(coro, name); current_task(); all_tasks();
//          `co_await` on a Future or Task (suspend until it is done); and sleep(0)'s
//          "give the other tasks one pass" (yield_now).
// Mirrors: Task in Lib/asyncio/tasks.py (__step, __wakeup, cancel, get_name/set_name,
//          print_stack), current_task and all_tasks in the same file.
//
// The step/wakeup cycle. A task's step (step(), asyncio's __step) resumes its coroutine,
// which runs until it awaits a Future that is not done yet. The awaiter then tells the task
// "resume me here when that future is done" (wait_on) and registers the task as one of the
// future's callbacks; the coroutine suspends and the step returns to the loop. When the
// future completes, it puts the task back in the ready queue, and the next step resumes the
// coroutine exactly where it stopped. The loop never knows any of this: it runs Handles.
// (task.cpp opens with the invariant this keeps, and reads in this order.)
//
//      create_task ──► ready queue ──► step(): resume the coroutine
//                          ▲                     │ co_await pending future
//                          │                     ▼
//           future done: add_callback(task)   wait_on(future): task becomes a callback
//
// Cancellation is a request: cancel() cancels the future the task waits on (so its await
// raises CancelledError), or, if it waits on nothing, marks the task so the next step
// raises CancelledError at the await point instead of resuming normally. The task counts
// the requests (cancelling()) and whoever made one may take it back (uncancel()): that
// count is how a timeout tells its own cancellation from someone else's (timeouts.hpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"

namespace aio {

// Told about every task step on this thread while installed (the timeline uses it).
class StepObserver {
public:
    virtual void step_begin(TaskBase& task) = 0;
    virtual void step_end(TaskBase& task) = 0;

protected:
    ~StepObserver() = default;
};
// Install (or, with nullptr, remove) the observer for this thread; returns the one before.
StepObserver* set_step_observer(StepObserver* observer) noexcept;

class TaskBase : public FutureBase {
public:
    // Takes the coroutine (its root promise) and schedules the first step, as asyncio's
    // Task.__init__ does (loop.call_soon(self.__step)): the task starts on a later pass.
    // Raises RuntimeError on a closed loop (the coroutine is then freed, unstarted).
    TaskBase(EventLoop& loop, CoroutinePromiseBase* root);
    ~TaskBase() override;

    // Tasks come from the small-block pool too (object_pool.hpp). The destructor is virtual,
    // so the size given to delete is the whole Task<T>'s.
    static void* operator new(std::size_t size) { return pool::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { pool::deallocate(p, size); }

    // Request cancellation; see the top of this file. Returns false if the task is done.
    // Each request on a task that is not done adds one to cancelling().
    bool cancel(std::string msg = {}) override;

    // asyncio's Task.cancelling(): the cancellation requests made on this task and not yet
    // taken back by uncancel(). A timeout or a TaskGroup notes it when it starts, so that
    // at its end it can tell whether a CancelledError was its own request or someone
    // else's. (It counts to 65,535 and then stays there: see cancels_requested_.)
    unsigned cancelling() const noexcept { return cancels_requested_; }
    // asyncio's Task.uncancel(): take one request back; returns the count left. Only the
    // code that called cancel() should call it. When the count reaches 0, a request not yet
    // delivered is dropped as well (Python 3.13's rule): nobody wants it any more.
    unsigned uncancel() noexcept;

    // "Task-N" unless set_name() or create_task(coro, name) chose another.
    std::string get_name() const;
    void set_name(std::string name) { name_ = std::make_unique<std::string>(std::move(name)); }
    std::string name() const override { return get_name(); }
    // The N of Task-N: unique among the tasks of a process (until it wraps at 2^32).
    std::uint32_t id() const noexcept { return id_; }

    // The chain of coroutines a suspended task is suspended in, outermost first: the answer
    // to "where is this task stuck?" (asyncio's Task.print_stack / get_stack).
    std::vector<std::string> get_stack() const;
    void print_stack(std::ostream& out) const;

    // The task currently running a step on this thread, or nullptr.
    static TaskBase* current() noexcept;

    // Used by awaiters: resume the coroutine whose promise is `at` once `fut` is done.
    void wait_on(FutureBase& fut, CoroutinePromiseBase& at);
    // Used by yield_now: resume `at` on the next pass.
    void yield_at(CoroutinePromiseBase& at);
    // Used by awaiters when they resume: raise a cancellation requested while the task
    // was not waiting on a future. Given the future the task waited on, a failure it holds
    // counts as read (asyncio's wakeup reads it before the cancellation takes its place).
    void throw_if_cancel_requested();
    void throw_if_cancel_requested(FutureBase& woken_by);

protected:
    // Move the finished root coroutine's return value into the future, without completing
    // it (typed, in Task<T>).
    virtual void take_result(CoroutinePromiseBase& root) = 0;

private:
    friend class TaskRegistry;
    // The loop runs a Handle by calling run(); a task's run() is its step.
    void run() final;
    // The lesson (task.cpp, in this order):
    void step();
    // Put the task in the ready queue: the loop will run its next step (asyncio's
    // loop.call_soon(self.__step)). The task is itself the Handle: this allocates nothing.
    void schedule_step() { get_loop().add_callback(Ref<Handle>(this)); }
    void finish(CoroutinePromiseBase& last);
    State take_outcome(CoroutinePromiseBase& last);
    bool cancel_from_await_cycle(std::string msg);
    bool cancel_requested() const noexcept { return !done() && exception_; }
    std::exception_ptr take_cancel_request() noexcept { return std::exchange(exception_, nullptr); }
    // Teardown:
    void destroy_coroutine() noexcept;
    void detach_from_closing_loop();
    void report(const std::string& what, std::exception_ptr e) const;

    // First, these small fields: they fill the padding at the end of FutureBase (after its
    // callback list's flag), so that a task stays 104 bytes (bench_tasks_1m counts them).
    bool started_ : 1 = false;
    bool cancelling_ : 1 = false;                  // inside cancel(): see there
    // cancelling(). 16 bits, so that it fits in that padding too; it saturates at 65,535
    // rather than wrap to 0, which would make a timeout take someone else's cancellation
    // for its own.
    std::uint16_t cancels_requested_ = 0;
    std::uint32_t id_;                             // Task-<id>; 32 bits, it wraps after 4 billion
    CoroutinePromiseBase* root_;                   // the coroutine the task runs (owned)
    CoroutinePromiseBase* resume_at_ = nullptr;    // where the next step resumes
    Ref<FutureBase> fut_waiter_;                   // the future it waits on, if any
    // A cancellation not yet delivered lives in FutureBase::exception_, which a pending task
    // does not otherwise use (one pointer less in every task; see cancel_requested()).
    std::unique_ptr<std::string> name_;            // only if set: most tasks keep "Task-<id>"
    TaskBase* registry_prev_ = nullptr;            // all_tasks(): a list per loop
    TaskBase* registry_next_ = nullptr;
};

template <typename T = void>
class Task final : public BasicFuture<T, TaskBase> {
public:
    Task(EventLoop& loop, Coroutine<T> coro) : BasicFuture<T, TaskBase>(loop, &coro.release("create_task").promise()) {}

    // Only its coroutine decides a task's outcome (co_return, or an exception); asyncio's
    // Task refuses these two as well.
    template <typename... V>
    [[noreturn]] void set_result(V&&...) {
        throw RuntimeError("Task does not support set_result(): its coroutine's co_return gives the result");
    }
    [[noreturn]] void set_exception(std::exception_ptr) {
        throw RuntimeError("Task does not support set_exception(): an exception its coroutine throws fails it");
    }

private:
    void take_result(CoroutinePromiseBase& root) override {
        if constexpr (!std::is_void_v<T>)
            this->store_result(static_cast<CoroutinePromise<T>&>(root).take_result());
    }
};

// [docs:create_task]
// Wrap a coroutine in a Task on `loop`; the task schedules its first step (in the ready
// queue: it starts on a later pass, not inside create_task). Raises RuntimeError if the
// loop is closed.
template <typename T>
Ref<Task<T>> create_task(EventLoop& loop, Coroutine<T> coro, std::string name = {}) {
    Ref<Task<T>> task(new Task<T>(loop, std::move(coro)));
    if (!name.empty()) task->set_name(std::move(name));  // (measured: most tasks have none)
    return task;
}
// [/docs:create_task]

// asyncio.create_task(coro, name=...): on the running loop.
template <typename T>
Ref<Task<T>> create_task(Coroutine<T> coro, std::string name = {}) {
    return create_task(get_running_loop(), std::move(coro), std::move(name));
}

// The hooks stage 2's loop finds by argument-dependent lookup: loop.create_task(coro) and
// loop.run_until_complete(coro | task | future).
template <typename T>
Ref<Task<T>> task_factory(EventLoop& loop, Coroutine<T> coro) {
    return create_task(loop, std::move(coro));
}
template <typename T>
Ref<Task<T>> ensure_future(EventLoop& loop, Coroutine<T> coro) {
    return create_task(loop, std::move(coro));
}
template <typename F>
    requires std::is_base_of_v<FutureBase, F>
Ref<F> ensure_future(EventLoop&, Ref<F> future) {
    return future;
}

// asyncio.current_task(): the task running now, or null outside any task.
inline Ref<TaskBase> current_task() { return Ref<TaskBase>(TaskBase::current()); }
// asyncio.all_tasks(): the unfinished tasks of the running loop (or of `loop`).
std::vector<Ref<TaskBase>> all_tasks();
std::vector<Ref<TaskBase>> all_tasks(EventLoop& loop);

// [docs:await_future]
// `co_await fut` for a Future or a Task: if it is done, no suspension at all, and the
// await evaluates to its result (or throws). Otherwise the current task waits on it.
template <typename F>
struct FutureAwaiter {
    Ref<F> fut;
    TaskBase* task = nullptr;
    bool await_ready() const noexcept { return fut->done(); }
    template <typename Promise>
    void await_suspend(std::coroutine_handle<Promise> h) {
        task = TaskBase::current();
        if (!task) throw RuntimeError("co_await on a pending future outside a task: run the coroutine with run() or create_task()");
        task->wait_on(*fut, h.promise());
    }
    decltype(auto) await_resume() {
        if (task) task->throw_if_cancel_requested(*fut);
        return fut->result();
    }
};
template <typename F>
    requires std::is_base_of_v<FutureBase, F>
FutureAwaiter<F> operator co_await(Ref<F> fut) {
    return FutureAwaiter<F>{std::move(fut)};
}
// [/docs:await_future]

// `co_await yield_now();` lets every other ready task run one step first: sleep(0).
struct YieldNow {
    TaskBase* task = nullptr;
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    void await_suspend(std::coroutine_handle<Promise> h) {
        task = TaskBase::current();
        if (!task) throw RuntimeError("sleep(0)/yield_now outside a task: run the coroutine with run() or create_task()");
        task->yield_at(h.promise());
    }
    void await_resume() const { task->throw_if_cancel_requested(); }
};
inline YieldNow yield_now() { return {}; }

}  // namespace aio
