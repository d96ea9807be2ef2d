// Stage 3: Futures and Tasks. The TaskGroup's exit, and how it hears of its tasks (taskgroups.hpp).
#include "stage3_tasks_futures/taskgroups.hpp"

#include <string>

namespace aio {

namespace {
// The message of a CancelledError (empty if there is none).
std::string cancel_message(const std::exception_ptr& e) {
    if (!e) return {};
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError& c) {
        return c.message();
    } catch (...) {
    }
    return {};
}
}  // namespace

// Leaving the block: wait until every task has finished, then say what happened. Three
// things can be in flight: the body's own failure, a cancellation of the parent (from
// outside, or our own request after a task failed) and the tasks' failures. Failures win;
// a cancellation we requested ourselves is taken back; one from outside goes on.
Coroutine<> TaskGroup::exit(std::exception_ptr body_failure) {
    exiting_ = true;
    const bool body_cancelled = is_cancelled_error(body_failure);
    std::exception_ptr propagate_cancel = body_cancelled ? body_failure : nullptr;
    std::exception_ptr last_cancel;  // the last CancelledError met while waiting
    if (body_failure && !aborting_) abort();  // the body failed or was cancelled: stop the tasks
    while (!tasks_.empty()) {
        on_completed_ = create_future(parent_->get_loop());
        Ref<Future<>> completed = on_completed_;
        try {
            co_await completed;
        } catch (const CancelledError&) {
            // The parent is cancelled while it waits: by us (a task failed; we are aborting
            // already), or from outside, which must stop the tasks and come out at the end.
            last_cancel = std::current_exception();
            if (!aborting_) {
                propagate_cancel = last_cancel;
                abort();
            }
        }
        on_completed_ = nullptr;
    }
    if (parent_cancel_requested_) {
        if (parent_->uncancel() == 0)
            propagate_cancel = nullptr;  // the only request was ours
        else if (!propagate_cancel)
            propagate_cancel = last_cancel;  // another one came from outside: keep it
    }
    if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
    if (body_failure && !body_cancelled) errors_.push_back(body_failure);
    if (errors_.empty()) co_return;
    // The failures go out, but a cancellation from outside must not be lost: renew the
    // request, so the parent's next await raises it (the count stays the same).
    if (parent_->cancelling() > 0) {
        parent_->uncancel();
        parent_->cancel(cancel_message(propagate_cancel));
    }
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
}

// [docs:task_group_on_task_done]
// A task of the group has finished (a done-callback, so on a pass after it did). The first
// failure cancels the others, and the parent: the body stops at its await, or exit() wakes.
void TaskGroup::on_task_done(std::uint64_t key, FutureBase& task) {
    tasks_.erase(key);
    if (on_completed_ && tasks_.empty() && !on_completed_->done()) on_completed_->set_result();
    if (task.cancelled()) return;
    std::exception_ptr e = task.exception();  // (retrieved: the group reports it)
    if (!e) return;
    errors_.push_back(std::move(e));
    if (!aborting_ && !parent_cancel_requested_) {
        abort();
        parent_cancel_requested_ = true;
        parent_->cancel();
    }
}
// [/docs:task_group_on_task_done]

void TaskGroup::abort() {
    aborting_ = true;
    for (auto& [key, m] : tasks_)
        if (!m.task->done()) m.task->cancel();
}

TaskGroup::TaskGroup(TaskBase* parent) : parent_(parent) {
    if (!parent_)
        throw RuntimeError("task_group() must run inside a task: co_await it from a coroutine that run() or create_task() runs");
}

// Normally every task has finished by now. If the frame is freed earlier (its loop closed),
// no done-callback may run into the freed group.
TaskGroup::~TaskGroup() {
    for (auto& [key, m] : tasks_) {
        m.task->remove_done_callback(m.on_done);
        m.on_done->cancel();
    }
}

void TaskGroup::check_open() const {
    if (aborting_)
        throw RuntimeError("TaskGroup is shutting down (a task failed, or the parent was cancelled): no new tasks");
    if (exiting_ && tasks_.empty())
        throw RuntimeError("TaskGroup has finished: create the task inside the group's block, or in a new group");
}

void TaskGroup::add(Ref<TaskBase> task) {
    const std::uint64_t key = next_key_++;
    Ref<Handle> on_done = task->add_done_callback([this, key](FutureBase& t) { on_task_done(key, t); }, "TaskGroup");
    tasks_.emplace(key, Member{std::move(task), std::move(on_done)});
}

}  // namespace aio
