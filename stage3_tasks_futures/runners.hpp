// Stage 3: Futures and Tasks. run(): the program's entry into async code.
//
// Adds:    run(coro), which makes a loop, runs coro to the end, cancels the tasks left over,
//          closes the loop, and returns coro's result or rethrows its exception; and
//          cancel_all_tasks(loop), its clean-up step.
// Mirrors: asyncio.run and Runner in Lib/asyncio/runners.py (_cancel_all_tasks).
#pragma once

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
}  // namespace detail

// [docs:run]
template <typename T>
T run(Coroutine<T> main, bool debug = false) {
    if (running_loop_or_null())
        throw RuntimeError("run() cannot be called while an event loop is running: co_await the coroutine instead");
    EventLoop loop;  // its destructor closes it, however we leave
    loop.set_debug(debug);
    Ref<Task<T>> task = create_task(loop, std::move(main));
    try {
        loop.run_until_complete(task);
    } catch (...) {
        // main failed: clean up, then let its exception go on. A failure of the clean-up
        // itself can only be reported now.
        detail::cancel_all_tasks_reporting_failure(loop);
        throw;
    }
    cancel_all_tasks(loop);  // if this fails, that propagates, as in asyncio.run
    return task->result();
}
// [/docs:run]

}  // namespace aio
