// Stage 3: Futures and Tasks. Structured concurrency: tasks that cannot outlive their block.
//
// Adds:    TaskGroup (create_task) and task_group(body), the C++ spelling of
//          `async with asyncio.TaskGroup() as tg:`.
// Mirrors: Lib/asyncio/taskgroups.py (Python 3.11+).
//
// The rules. The body runs in the current task (the group's parent) and starts tasks with
// tg.create_task(). Leaving the block waits for every one of them. The first task to fail
// cancels the others and the body (by cancelling the parent task, a request the group takes
// back with uncancel() at the end); once all have finished, every failure comes out together
// as one ExceptionGroup. A cancellation of the parent from outside cancels the tasks too,
// and comes out as CancelledError, not as a failure. gather, by contrast, hands back the first
// failure and leaves the other children running, unwatched: the README compares the two.
//
// The shape, and why it is the same as timeout()'s: leaving the block must await (the tasks)
// and must replace the exception in flight (with an ExceptionGroup), which no destructor can
// do, so the block is a named callable that the group runs:
//
//     auto body = [&](aio::TaskGroup& tg) -> aio::Coroutine<> {   // async with TaskGroup() as tg:
//         auto a = tg.create_task(add(1, 2));                     //     a = tg.create_task(add(1, 2))
//         auto b = tg.create_task(sub(9, 4));                     //     b = tg.create_task(sub(9, 4))
//         co_return;
//     };
//     co_await aio::task_group(body);                             // both are done here
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/timeouts.hpp"

namespace aio {

class TaskGroup;

namespace detail {
template <typename T, typename F>
Coroutine<T> task_group_scope(F* body);
}  // namespace detail

class TaskGroup {
public:
    TaskGroup(const TaskGroup&) = delete;
    TaskGroup& operator=(const TaskGroup&) = delete;

    // asyncio's TaskGroup.create_task: a task of the group, on the parent's loop. Raises
    // RuntimeError (and never starts coro) once the group is shutting down (a task failed,
    // or the parent was cancelled) or has finished. A task of the group may add others.
    template <typename T>
    Ref<Task<T>> create_task(Coroutine<T> coro, std::string name = {}) {
        check_open();
        Ref<Task<T>> task = aio::create_task(parent_->get_loop(), std::move(coro), std::move(name));
        add(Ref<TaskBase>(task));
        return task;
    }

private:
    template <typename T, typename F>
    friend Coroutine<T> detail::task_group_scope(F* body);

    // One task of the group, and its done-callback (removed if the group goes first).
    struct Member {
        Ref<TaskBase> task;
        Ref<Handle> on_done;
    };

    explicit TaskGroup(TaskBase* parent);  // asyncio's __aenter__
    ~TaskGroup();
    Coroutine<> exit(std::exception_ptr body_failure);  // asyncio's __aexit__
    void check_open() const;
    void add(Ref<TaskBase> task);
    void on_task_done(std::uint64_t key, FutureBase& task);
    void abort();

    TaskBase* parent_;                       // runs the body; owns the frame the group lives in
    std::map<std::uint64_t, Member> tasks_;  // the unfinished ones, in creation order
    std::uint64_t next_key_ = 0;
    std::vector<std::exception_ptr> errors_;
    Ref<Future<>> on_completed_;             // while exit() waits: done when tasks_ empties
    bool exiting_ = false;                   // the body has ended
    bool aborting_ = false;                  // the tasks are being cancelled: no new ones
    bool parent_cancel_requested_ = false;   // we cancelled the parent, and owe an uncancel()
};

namespace detail {
// `async with TaskGroup() as tg: return await body(tg)`, in the current task.
template <typename T, typename F>
Coroutine<T> task_group_scope(F* body) {
    TaskGroup group(TaskBase::current());
    std::exception_ptr failure;
    std::optional<value_or_none_t<T>> value;
    try {
        if constexpr (std::is_void_v<T>) {
            co_await (*body)(group);
        } else {
            T v = co_await (*body)(group);
            value.emplace(std::move(v));
        }
    } catch (...) {
        failure = std::current_exception();
    }
    Coroutine<> exiting = group.exit(failure);  // waits for the tasks; throws what must come out
    co_await std::move(exiting);
    // exit() returns only if nothing failed, so the body returned its value.
    if constexpr (!std::is_void_v<T>) co_return std::move(*value);
}
}  // namespace detail

// asyncio.TaskGroup: run `body` (a named callable taking TaskGroup& and returning a
// Coroutine) in the current task, then wait for every task it created in the group; return
// the body's value. Raises ExceptionGroup with every failure (of the tasks, and of the body)
// if any failed, CancelledError if the parent task was cancelled from outside, and
// RuntimeError outside a task. `body` is held by reference, and the TaskGroup& it gets is
// valid until the group has finished: the group's own tasks may keep it, no other task may.
template <typename F>
    requires detail::ScopeBody<F, TaskGroup>
Coroutine<detail::scope_body_result_t<F, TaskGroup>> task_group(F& body) {
    return detail::task_group_scope<detail::scope_body_result_t<F, TaskGroup>>(&body);
}

// A lambda written inside the call: does not compile, on purpose (timeouts.hpp says why).
template <typename F>
    requires(!std::is_lvalue_reference_v<F> && detail::ScopeBody<F, TaskGroup>)
void task_group(F&&) {
    static_assert(detail::named_body_required<F>,
                  "task_group(body): name the body first, `auto body = [&](aio::TaskGroup& tg) -> "
                  "aio::Coroutine<...> {...};` then `co_await aio::task_group(body);`. g++ 12 miscompiles a "
                  "capturing lambda written inside a co_await (hazards 1 and 2, stage1_generators/README.md's appendix).");
}

}  // namespace aio
