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

// [docs:run]
template <typename T>
T run(Coroutine<T> main, bool debug = false) {
    if (running_loop_or_null())
        throw RuntimeError("run() cannot be called while an event loop is running: co_await the coroutine instead");
    EventLoop loop;
    loop.set_debug(debug);
    // Whatever happens (a result, an exception), clean up before the loop goes away.
    struct Shutdown {
        EventLoop& loop;
        ~Shutdown() {
            cancel_all_tasks(loop);
            loop.close();
        }
    } shutdown{loop};
    return loop.run_until_complete(create_task(loop, std::move(main)));
}
// [/docs:run]

}  // namespace aio
