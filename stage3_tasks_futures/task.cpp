// Stage 3: Futures and Tasks. The Task (task.hpp): the lesson first, in its order (the
// step; waiting on a future and being woken; finishing; cancelling), then what surrounds
// it (the registry behind all_tasks(), teardown when a loop closes, the stack dump).
// Mirrors: Task in Lib/asyncio/tasks.py.
//
// [docs:invariant]
// The invariant, which asyncio states atop its Task class about _fut_waiter. Between two
// steps, a task that is not done is in exactly one of two places:
//  - scheduled: in the loop's ready queue, so the loop will run its next step. fut_waiter_
//    is then null, or the future that has just woken it (done by now; the step clears it);
//  - waiting: fut_waiter_ is a pending future, and the task is one of its callbacks.
// So a task waits on at most one future; it is never in the ready queue twice, so no step
// runs twice for one wakeup; and it is never in neither, so no task is forgotten. (While a
// step runs, the task is in neither place: the step ends by putting it in one, or by
// finishing it.) Two things move a task from waiting to scheduled: the future completing,
// which schedules its callbacks (the wakeup: see wait_on); and a cancel() come back round
// an await cycle, which takes the task off the future itself (cancel_from_await_cycle).
// [/docs:invariant]
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

// all_tasks(): the unfinished tasks of each loop (defined at the end of this file; inline,
// as adding and removing a task are on the path of every task).
class TaskRegistry {
public:
    static inline void add(TaskBase& t);
    static inline void remove(TaskBase& t);
    static std::vector<Ref<TaskBase>> live(EventLoop& loop);

private:
    struct LoopTasks;
    static inline std::vector<std::unique_ptr<LoopTasks>>& loops();
    static inline LoopTasks* find(EventLoop* loop);
    static inline LoopTasks& of(EventLoop& loop);
    static void close_loop(EventLoop& loop);
};

// ------------------------------------------------------------------------ a task is born

// asyncio's Task.__init__: number the task, register it, and schedule its first step.
TaskBase::TaskBase(EventLoop& loop, CoroutinePromiseBase* root) : FutureBase(loop), root_(root), resume_at_(root) {
    if (loop.is_closed()) {
        // Before registering: a stale entry would be found by a later loop at this address.
        std::exchange(root_, nullptr)->handle.destroy();  // ours already; it never runs
        throw RuntimeError("create_task on a closed event loop: create the task before closing it");
    }
    id_ = ++g_task_counter;
    TaskRegistry::add(*this);
    schedule_step();
}

// ------------------------------------------------------------------------------ the step

// [docs:step]
// The loop runs a Handle by calling run(); a task's run() is its step.
void TaskBase::run() { step(); }

// asyncio's Task.__step: resume the coroutine where it stopped and run it until it waits
// again or returns.
void TaskBase::step() {
    if (done()) return;  // a wakeup after the task finished: nothing to do
    fut_waiter_ = nullptr;  // what woke it is done (see the invariant)
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
        if (!p->handle.done()) break;       // suspended on an awaitable that is not ours (see finish)
        if (!p->continuation) break;        // the task's own coroutine returned
        p = p->continuation;                // a coroutine returned: resume the one awaiting it
    }
    if (tl_step_observer) tl_step_observer->step_end(*this);
    tl_current_task = outer;
    if (!resume_at_) finish(*p);
}
// [/docs:step]

// ---------------------------------------------------- waiting on a future, and being woken

// [docs:wait_on]
// asyncio's __wakeup(future) is a function of its own: the future calls it back, it reads
// the future's outcome and runs the next step. Ours is two halves that need no function:
// the future's mark_done puts the task, which is its callback, in the ready queue; and when
// that step resumes the coroutine, the awaiter's await_resume reads the future's outcome
// (FutureAwaiter, task.hpp), or raises a cancellation requested meanwhile instead.
void TaskBase::wait_on(FutureBase& fut, CoroutinePromiseBase& at) {
    if (&fut == this) throw RuntimeError("Task " + get_name() + " cannot await itself: that would wait for ever");
    if (fut.lifeline_ != lifeline_) throw RuntimeError("Task " + get_name() + " awaits a future of another event loop");
    resume_at_ = &at;
    fut_waiter_ = Ref<FutureBase>(&fut);
    fut.add_waiter(Ref<Handle>(this));
    // Cancelled while it was running (by itself, say): deliver it through this future.
    if (cancel_requested() && fut.cancel(message_of(exception_))) take_cancel_request();
}
// [/docs:wait_on]

void TaskBase::yield_at(CoroutinePromiseBase& at) {
    resume_at_ = &at;
    schedule_step();
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

// ----------------------------------------------------------------------------- finishing

// [docs:finish]
// The coroutine has returned or thrown (or suspended where the task cannot follow). Three
// things happen, each once and in this order: take the outcome out of the frame (a value
// lives there), free the frame, and complete the task, which schedules its callbacks.
void TaskBase::finish(CoroutinePromiseBase& last) {
    State outcome = take_outcome(last);
    destroy_coroutine();
    mark_done(outcome);
}

// Move the coroutine's outcome into the task: its value, or what it threw into exception_.
// Returns how the task ends. asyncio's __step has the same branches: StopIteration (the
// value, unless a cancellation came during the last step), CancelledError, any other error.
TaskBase::State TaskBase::take_outcome(CoroutinePromiseBase& last) {
    if (!last.handle.done()) {
        // Only Futures, Tasks, Coroutines and yield_now may be awaited in a task: something
        // else suspended the coroutine without telling the task how to resume it.
        exception_ = std::make_exception_ptr(RuntimeError("Task " + get_name() +
                                                          " suspended on an awaitable that is not a Future, Task or "
                                                          "Coroutine; wrap it in a Future"));
        return State::finished;
    }
    if (std::exception_ptr e = root_->exception) {  // it threw; a CancelledError let out: cancelled
        exception_ = std::move(e);
        return is_cancelled_error(exception_) ? State::cancelled : State::finished;
    }
    if (cancel_requested()) return State::cancelled;  // it returned, but was cancelled meanwhile
    try {
        take_result(*root_);
    } catch (...) {  // moving the value into the task threw: the task fails with that
        exception_ = std::current_exception();
    }
    return State::finished;
}
// [/docs:finish]

// ---------------------------------------------------------------------------- cancelling

// [docs:cancel]
// asyncio's Task.cancel: cancel the future the task waits on, or else leave a request that
// the next step raises at the await (asyncio's _must_cancel).
bool TaskBase::cancel(std::string msg) {
    if (done()) return false;
    if (cancelling_) return cancel_from_await_cycle(std::move(msg));
    if (cancels_requested_ != UINT16_MAX) ++cancels_requested_;
    if (fut_waiter_) {
        // Waiting on a future: cancel that, and the wakeup it causes raises CancelledError at
        // the await. (If the future is a gather, this cancels its children too.)
        struct Cancelling {  // cancelling_ is set while we are in there, however we leave
            TaskBase& task;
            ~Cancelling() { task.cancelling_ = false; }
        } inside{*this};
        cancelling_ = true;
        if (fut_waiter_->cancel(msg)) return true;
    }
    // Not waiting on a pending future (not started, or already scheduled to run): raise it
    // at the next step instead. The request is kept in exception_: see cancel_requested().
    exception_ = std::make_exception_ptr(CancelledError(std::move(msg)));
    return true;
}

// Our own cancel() came back to us round an await cycle (A awaits B, B awaits A: A's cancel
// cancels B, whose cancel cancels A). Cancelling what we wait on again would recurse for
// ever. Stop waiting instead, and take the CancelledError at our await point on the next
// pass; whoever awaits us follows. Not counted: it is the same request, come back.
bool TaskBase::cancel_from_await_cycle(std::string msg) {
    if (fut_waiter_) {
        std::exchange(fut_waiter_, nullptr)->remove_waiter(*this);
        schedule_step();
    }
    exception_ = std::make_exception_ptr(CancelledError(std::move(msg)));
    return true;
}
// [/docs:cancel]

unsigned TaskBase::uncancel() noexcept {
    // (A done task's exception_ is its outcome, not a request: leave it.)
    if (cancels_requested_ > 0 && --cancels_requested_ == 0 && cancel_requested()) take_cancel_request();
    return cancels_requested_;
}

// ------------------------------------------- the registry: all_tasks() and current_task()

// all_tasks() keeps, per loop, a doubly linked list through the tasks themselves: adding
// and removing a task is O(1) and costs no allocation, which matters with a million tasks.
// (asyncio keeps a WeakSet; CPython 3.14 moved to a linked list like this one for speed.)
struct TaskRegistry::LoopTasks {
    EventLoop* loop;
    TaskBase* head = nullptr;
};

void TaskRegistry::add(TaskBase& t) {
    LoopTasks& lt = of(t.get_loop());
    t.registry_next_ = lt.head;
    if (lt.head) lt.head->registry_prev_ = &t;
    lt.head = &t;
}

void TaskRegistry::remove(TaskBase& t) {
    if (t.registry_prev_) {
        t.registry_prev_->registry_next_ = t.registry_next_;
    } else if (LoopTasks* lt = find(t.lifeline_->loop())) {
        if (lt->head == &t) lt->head = t.registry_next_;
    }
    if (t.registry_next_) t.registry_next_->registry_prev_ = t.registry_prev_;
    t.registry_prev_ = t.registry_next_ = nullptr;
}

std::vector<Ref<TaskBase>> TaskRegistry::live(EventLoop& loop) {
    std::vector<Ref<TaskBase>> out;
    if (LoopTasks* lt = find(&loop))
        for (TaskBase* t = lt->head; t; t = t->registry_next_) out.emplace_back(t);
    return out;
}

// Few loops per thread (usually one), so a short vector is the fastest map.
std::vector<std::unique_ptr<TaskRegistry::LoopTasks>>& TaskRegistry::loops() {
    thread_local std::vector<std::unique_ptr<LoopTasks>> v;
    return v;
}

TaskRegistry::LoopTasks* TaskRegistry::find(EventLoop* loop) {
    for (auto& lt : loops())
        if (lt->loop == loop) return lt.get();
    return nullptr;
}

TaskRegistry::LoopTasks& TaskRegistry::of(EventLoop& loop) {
    if (LoopTasks* lt = find(&loop)) return *lt;
    loops().push_back(std::make_unique<LoopTasks>(LoopTasks{&loop}));
    // When the loop closes, its unfinished tasks can never run again: report them and
    // free their coroutines (which also breaks the task <-> future reference cycles a
    // suspended coroutine makes), and forget the loop.
    loop.add_close_callback([&loop] { close_loop(loop); });
    return *loops().back();
}

void TaskRegistry::close_loop(EventLoop& loop) {
    // Again until none is left: freeing a coroutine runs its destructors, which may
    // create a task (the loop is not closed yet while its close callbacks run).
    for (auto tasks = live(loop); !tasks.empty(); tasks = live(loop))
        for (Ref<TaskBase>& t : tasks) t->detach_from_closing_loop();
    auto& v = loops();
    v.erase(std::remove_if(v.begin(), v.end(), [&](auto& lt) { return lt->loop == &loop; }), v.end());
}

std::vector<Ref<TaskBase>> all_tasks(EventLoop& loop) {
    auto tasks = TaskRegistry::live(loop);
    std::erase_if(tasks, [](const Ref<TaskBase>& t) { return t->done(); });
    return tasks;
}

std::vector<Ref<TaskBase>> all_tasks() { return all_tasks(get_running_loop()); }

TaskBase* TaskBase::current() noexcept { return tl_current_task; }

StepObserver* set_step_observer(StepObserver* observer) noexcept { return std::exchange(tl_step_observer, observer); }

// ----------------------------------------------------------------------------- teardown

TaskBase::~TaskBase() {
    if (!done())
        report("Task was destroyed but it is pending!", nullptr);
    else if (exception_unretrieved())
        report("Task exception was never retrieved", exception_);
    destroy_coroutine();
    TaskRegistry::remove(*this);
}

// The loop is closing and the task can never run again: report it if it is pending, free
// its coroutine, and let it end cancelled.
void TaskBase::detach_from_closing_loop() {
    if (!done()) {
        report("Task was destroyed but it is pending!", nullptr);
        destroy_coroutine();
        // The future it waited on may outlive the loop (whoever holds it may still set it):
        // it must not keep this task as a callback and try to schedule it on a dead loop.
        if (fut_waiter_) std::exchange(fut_waiter_, nullptr)->remove_waiter(*this);
        clear_callbacks();
        exception_ = std::make_exception_ptr(CancelledError("the event loop was closed"));
        state_ = State::cancelled;
    }
    TaskRegistry::remove(*this);
}

void TaskBase::destroy_coroutine() noexcept {
    resume_at_ = nullptr;
    if (!root_) return;
    std::exception_ptr thrown;  // by a local's destructor, as the frame is freed
    std::exception_ptr* outer = std::exchange(detail::tl_thrown_while_freeing, &thrown);
    std::exchange(root_, nullptr)->handle.destroy();
    detail::tl_thrown_while_freeing = outer;
    if (thrown) report("Exception while freeing the coroutine", thrown);  // not lost: asyncio says so too
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

// ------------------------------------------------------------- names and the stack dump

std::string TaskBase::get_name() const { return name_ ? *name_ : "Task-" + std::to_string(id_); }

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

}  // namespace aio
