// Stage 3: Futures and Tasks. The Task's step, cancellation, names and registry (task.hpp).
#include "stage3_tasks_futures/task.hpp"

#include <algorithm>
#include <atomic>
#include <memory>

namespace aio {

namespace {

thread_local TaskBase* tl_current_task = nullptr;
thread_local StepObserver* tl_step_observer = nullptr;
std::atomic<std::uint32_t> g_task_counter{0};  // Task-1, Task-2, ... as in asyncio

std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError& c) {
        return c.message();
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace

// all_tasks() keeps, per loop, a doubly linked list through the tasks themselves: adding
// and removing a task is O(1) and costs no allocation, which matters with a million tasks.
// (asyncio keeps a WeakSet; CPython 3.14 moved to a linked list like this one for speed.)
class TaskRegistry {
public:
    static void add(TaskBase& t) {
        LoopTasks& lt = of(t.get_loop());
        t.registry_next_ = lt.head;
        if (lt.head) lt.head->registry_prev_ = &t;
        lt.head = &t;
    }
    static void remove(TaskBase& t) {
        if (t.registry_prev_) {
            t.registry_prev_->registry_next_ = t.registry_next_;
        } else if (LoopTasks* lt = find(t.lifeline_->loop())) {
            if (lt->head == &t) lt->head = t.registry_next_;
        }
        if (t.registry_next_) t.registry_next_->registry_prev_ = t.registry_prev_;
        t.registry_prev_ = t.registry_next_ = nullptr;
    }
    static std::vector<Ref<TaskBase>> live(EventLoop& loop) {
        std::vector<Ref<TaskBase>> out;
        if (LoopTasks* lt = find(&loop))
            for (TaskBase* t = lt->head; t; t = t->registry_next_) out.emplace_back(t);
        return out;
    }

private:
    struct LoopTasks {
        EventLoop* loop;
        TaskBase* head = nullptr;
    };
    // Few loops per thread (usually one), so a short vector is the fastest map.
    static std::vector<std::unique_ptr<LoopTasks>>& loops() {
        thread_local std::vector<std::unique_ptr<LoopTasks>> v;
        return v;
    }
    static LoopTasks* find(EventLoop* loop) {
        for (auto& lt : loops())
            if (lt->loop == loop) return lt.get();
        return nullptr;
    }
    static LoopTasks& of(EventLoop& loop) {
        if (LoopTasks* lt = find(&loop)) return *lt;
        loops().push_back(std::make_unique<LoopTasks>(LoopTasks{&loop}));
        // When the loop closes, its unfinished tasks can never run again: report them and
        // free their coroutines (which also breaks the task <-> future reference cycles a
        // suspended coroutine makes), and forget the loop.
        loop.add_close_callback([&loop] { close_loop(loop); });
        return *loops().back();
    }
    static void close_loop(EventLoop& loop) {
        // Again until none is left: freeing a coroutine runs its destructors, which may
        // create a task (the loop is not closed yet while its close callbacks run).
        for (auto tasks = live(loop); !tasks.empty(); tasks = live(loop))
            for (Ref<TaskBase>& t : tasks) t->detach_from_closing_loop();
        auto& v = loops();
        v.erase(std::remove_if(v.begin(), v.end(), [&](auto& lt) { return lt->loop == &loop; }), v.end());
    }
};

TaskBase::TaskBase(EventLoop& loop, CoroutinePromiseBase* root)
    : FutureBase(loop), root_(root), resume_at_(root), id_(++g_task_counter) {
    TaskRegistry::add(*this);
}

TaskBase::~TaskBase() {
    if (!done())
        report("Task was destroyed but it is pending!", nullptr);
    else if (exception_unretrieved())
        report("Task exception was never retrieved", exception_);
    destroy_coroutine();
    TaskRegistry::remove(*this);
}

void TaskBase::report(const std::string& what, std::exception_ptr e) const {
    ExceptionContext context{what + " (task " + get_name() + ")", e};
    if (EventLoop* loop = lifeline_->loop()) {  // closed or not, it still has a handler
        loop->call_exception_handler(context);
        return;
    }
    // The loop is gone: there is nobody else to tell.
    std::fprintf(stderr, "%s%s%s\n", context.message.c_str(), e ? ": " : "", e ? message_of(e).c_str() : "");
}

void TaskBase::detach_from_closing_loop() {
    if (!done()) {
        report("Task was destroyed but it is pending!", nullptr);
        destroy_coroutine();
        // The future it waited on may outlive the loop (whoever holds it may still set it):
        // it must not keep this task as a callback and try to schedule it on a dead loop.
        if (fut_waiter_) std::exchange(fut_waiter_, nullptr)->remove_callback(this);
        clear_callbacks();
        exception_ = std::make_exception_ptr(CancelledError("the event loop was closed"));
        state_ = State::cancelled;
    }
    TaskRegistry::remove(*this);
}

std::string TaskBase::get_name() const { return name_ ? *name_ : "Task-" + std::to_string(id_); }

TaskBase* TaskBase::current() noexcept { return tl_current_task; }

StepObserver* set_step_observer(StepObserver* observer) noexcept { return std::exchange(tl_step_observer, observer); }

void TaskBase::destroy_coroutine() noexcept {
    resume_at_ = nullptr;
    if (!root_) return;
    std::exception_ptr thrown;  // by a local's destructor, as the frame is freed
    std::exception_ptr* outer = std::exchange(detail::tl_thrown_while_freeing, &thrown);
    std::exchange(root_, nullptr)->handle.destroy();
    detail::tl_thrown_while_freeing = outer;
    if (thrown) report("Exception while freeing the coroutine", thrown);  // not lost: asyncio says so too
}

// [docs:cancel]
bool TaskBase::cancel(std::string msg) {
    if (done()) return false;
    // Count the request (not our own, come back round an await cycle: see below).
    if (!cancelling_ && cancels_requested_ != UINT16_MAX) ++cancels_requested_;
    // Waiting on a future: cancel that, and the wakeup it causes raises CancelledError at
    // the await. (If the future is a gather, this cancels its children too.)
    if (fut_waiter_ && !cancelling_) {
        cancelling_ = true;
        struct Done {
            bool& flag;
            ~Done() { flag = false; }
        } done_cancelling{cancelling_};
        if (fut_waiter_->cancel(msg)) return true;
    } else if (fut_waiter_) {
        // Our own cancel came back round an await cycle (A awaits B, B awaits A): cancelling
        // what we wait on again would recurse for ever. Stop waiting instead, and take the
        // CancelledError at our await point on the next pass; whoever awaits us follows.
        std::exchange(fut_waiter_, nullptr)->remove_callback(this);
        get_loop().add_callback(Ref<Handle>(this));
    }
    // Not waiting on anything (not started, or already scheduled to run): raise it at the
    // next step instead.
    exception_ = std::make_exception_ptr(CancelledError(std::move(msg)));  // see cancel_requested()
    return true;
}
// [/docs:cancel]

unsigned TaskBase::uncancel() noexcept {
    // (A done task's exception_ is its outcome, not a request: leave it.)
    if (cancels_requested_ > 0 && --cancels_requested_ == 0 && cancel_requested()) take_cancel_request();
    return cancels_requested_;
}

void TaskBase::wait_on(FutureBase& fut, CoroutinePromiseBase& at) {
    if (&fut == this) throw RuntimeError("Task " + get_name() + " cannot await itself: that would wait for ever");
    if (fut.lifeline_ != lifeline_) throw RuntimeError("Task " + get_name() + " awaits a future of another event loop");
    resume_at_ = &at;
    fut_waiter_ = Ref<FutureBase>(&fut);
    fut.add_waiter(Ref<Handle>(this));
    // Cancelled while it was running (by itself, say): deliver it through this future.
    if (cancel_requested() && fut.cancel(message_of(exception_))) take_cancel_request();
}

void TaskBase::yield_at(CoroutinePromiseBase& at) {
    resume_at_ = &at;
    get_loop().add_callback(Ref<Handle>(this));
}

void TaskBase::throw_if_cancel_requested() {
    if (cancel_requested()) std::rethrow_exception(take_cancel_request());
}

// Woken by `woken_by`, and cancelled before this step: the cancellation is raised instead of
// its outcome. asyncio's __wakeup reads that outcome first, so a task that failed there has
// had its failure retrieved by its awaiter, and is not reported as lost when it is freed.
// (Only once it has finished: after an await cycle a task stops waiting on one still pending.)
void TaskBase::throw_if_cancel_requested(FutureBase& woken_by) {
    if (!cancel_requested()) return;
    if (woken_by.state_ == State::finished) woken_by.exception_retrieved_ = true;
    std::rethrow_exception(take_cancel_request());
}

// [docs:step]
// asyncio's Task.__step: resume the coroutine where it stopped and run it until it waits
// again or returns.
void TaskBase::run() {
    if (done()) return;  // a wakeup after the task finished: nothing to do
    fut_waiter_ = nullptr;
    if (!started_ && cancel_requested()) {  // cancelled before its first step: never runs
        destroy_coroutine();
        mark_done(State::cancelled);
        return;
    }
    started_ = true;
    TaskBase* outer = std::exchange(tl_current_task, this);
    if (tl_step_observer) tl_step_observer->step_begin(*this);
    CoroutinePromiseBase* p = std::exchange(resume_at_, nullptr);
    for (;;) {
        p->handle.resume();
        if (resume_at_) break;              // it awaits something; the awaiter said where to resume
        if (!p->handle.done()) break;       // suspended on an awaitable that is not ours (see below)
        if (!p->continuation) break;        // the task's own coroutine returned
        p = p->continuation;                // a coroutine returned: resume the one awaiting it
    }
    if (tl_step_observer) tl_step_observer->step_end(*this);
    tl_current_task = outer;
    if (!resume_at_) finish(p);
}
// [/docs:step]

void TaskBase::finish(CoroutinePromiseBase* last) {
    if (!last->handle.done()) {
        // Only Futures, Tasks, Coroutines and yield_now may be awaited in a task: something
        // else suspended the coroutine without telling the task how to resume it.
        destroy_coroutine();
        set_exception(std::make_exception_ptr(RuntimeError(
            "Task " + get_name() + " suspended on an awaitable that is not a Future, Task or Coroutine; wrap it in a Future")));
        return;
    }
    std::exception_ptr e = root_->exception;
    if (!e) {
        if (cancel_requested()) {  // cancelled during its last step: it ends cancelled, as in asyncio
            destroy_coroutine();
            mark_done(State::cancelled);
            return;
        }
        try {
            take_result(*root_);
        } catch (...) {  // moving the value into the task threw: the task fails with that
            destroy_coroutine();
            if (!done()) set_exception(std::current_exception());
            return;
        }
        destroy_coroutine();
        return;
    }
    destroy_coroutine();
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {  // the coroutine let the cancellation through
        exception_ = e;
        mark_done(State::cancelled);
        return;
    } catch (...) {
    }
    set_exception(e);
}

std::vector<std::string> TaskBase::get_stack() const {
    std::vector<std::string> chain;
    for (const CoroutinePromiseBase* p = resume_at_; p; p = p->continuation) chain.emplace_back(p->function_name);
    std::reverse(chain.begin(), chain.end());
    return chain;
}

void TaskBase::print_stack(std::ostream& out) const {
    auto chain = get_stack();
    out << "Stack for task " << get_name() << (done() ? " (done)" : started_ ? " (suspended)" : " (not started)")
        << ":\n";
    for (std::size_t i = 0; i < chain.size(); ++i)
        out << "  " << std::string(2 * i, ' ') << (i ? "awaits " : "") << chain[i] << "()\n";
    if (fut_waiter_) out << "  " << std::string(2 * chain.size(), ' ') << "awaits a " << fut_waiter_->name() << "\n";
}

std::vector<Ref<TaskBase>> all_tasks(EventLoop& loop) {
    auto tasks = TaskRegistry::live(loop);
    std::erase_if(tasks, [](const Ref<TaskBase>& t) { return t->done(); });
    return tasks;
}

std::vector<Ref<TaskBase>> all_tasks() { return all_tasks(get_running_loop()); }

}  // namespace aio
