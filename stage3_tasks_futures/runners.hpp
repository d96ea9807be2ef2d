// Stage 3: Futures and Tasks. run(): the program's entry into async code.
//
// Adds:    run(coro[, loop_factory][, debug]), which makes a loop (loop_factory's, else
//          new_event_loop()'s), runs coro to the end, cancels the tasks left over, closes
//          the loop, and returns coro's result or rethrows its exception; Ctrl-C while it
//          runs cancels coro's task (so its catch and clean-up run) and then raises
//          KeyboardInterrupt; cancel_all_tasks(loop), the clean-up step.
// Mirrors: asyncio.run and Runner in Lib/asyncio/runners.py (3.12's loop_factory=,
//          Runner._on_sigint, _cancel_all_tasks).
#pragma once

#include <concepts>
#include <memory>
#include <stdexcept>
#include <utility>

#include "stage3_tasks_futures/task.hpp"

namespace aio {

// Cancel every unfinished task of `loop`, run the loop until they have all finished, and
// report those that ended with an exception nobody will now retrieve.
void cancel_all_tasks(EventLoop& loop);

namespace detail {
// The same, while another exception is on its way out: a failure is reported to the loop's
// exception handler instead of thrown.
void cancel_all_tasks_reporting_failure(EventLoop& loop) noexcept;

// Closes the loop when run() leaves, as asyncio.run does (a loop may own more than its
// destructor frees). Not running by then, so close() cannot fail.
struct CloseLoop {
    EventLoop& loop;
    ~CloseLoop() { loop.close(); }
};

// asyncio.Runner's Ctrl-C handling, for the duration of one run(). If SIGINT still does
// what it does by default (ends the process) and the loop can watch signals
// (add_signal_handler), the first SIGINT cancels the main task instead, so that its
// `catch`es and destructors run, and SIGINT goes back to its default: a second Ctrl-C
// ends the process at once, should the clean-up hang. Otherwise it does nothing.
// (asyncio installs a Python-level handler with signal.signal; a C++ signal handler may
// do almost nothing, so the loop turns the signal into a callback for us.)
class CancelMainOnSigint {
public:
    CancelMainOnSigint(EventLoop& loop, Ref<TaskBase> main);
    ~CancelMainOnSigint();
    CancelMainOnSigint(const CancelMainOnSigint&) = delete;
    CancelMainOnSigint& operator=(const CancelMainOnSigint&) = delete;
    bool interrupted() const noexcept { return interrupted_; }

private:
    void uninstall() noexcept;
    EventLoop& loop_;
    Ref<TaskBase> main_;
    bool installed_ = false;
    bool interrupted_ = false;
};
}  // namespace detail

// [docs:run]
// asyncio.run(main, debug=, loop_factory=): the loop comes from loop_factory (any callable
// returning a std::unique_ptr to an EventLoop or a subclass of it), and is closed and
// destroyed before run() returns.
template <typename T, typename LoopFactory>
    requires std::convertible_to<std::invoke_result_t<LoopFactory&>, std::unique_ptr<EventLoop>>
T run(Coroutine<T> main, LoopFactory loop_factory, bool debug = false) {
    if (running_loop_or_null())
        throw RuntimeError("run() cannot be called while an event loop is running: co_await the coroutine instead");
    std::unique_ptr<EventLoop> owned = loop_factory();
    if (!owned) throw std::invalid_argument("run(): the loop factory returned no loop");
    EventLoop& loop = *owned;
    detail::CloseLoop closing{loop};  // however we leave, before the loop is destroyed
    loop.set_debug(debug);
    Ref<Task<T>> task = create_task(loop, std::move(main));
    try {
        detail::CancelMainOnSigint sigint(loop, task);
        try {
            loop.run_until_complete(task);
        } catch (const CancelledError&) {
            if (sigint.interrupted()) throw KeyboardInterrupt();  // Ctrl-C, not a bug: say so
            throw;
        }
    } catch (...) {
        // main failed: clean up, then let its exception go on. A failure of the clean-up
        // itself can only be reported now.
        detail::cancel_all_tasks_reporting_failure(loop);
        throw;
    }
    cancel_all_tasks(loop);  // if this fails, that propagates, as in asyncio.run
    return task->result();
}

// asyncio.run(main, debug=): on new_event_loop(), a stage 2 EventLoop unless the program
// chose another class with set_event_loop_factory().
template <typename T>
T run(Coroutine<T> main, bool debug = false) {
    return run(std::move(main), new_event_loop, debug);
}
// [/docs:run]

}  // namespace aio
