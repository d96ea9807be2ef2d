// Stage 3: Futures and Tasks. run()'s clean-up (see runners.hpp).
#include "stage3_tasks_futures/runners.hpp"

#include <algorithm>

namespace aio {

void cancel_all_tasks(EventLoop& loop) {
    auto tasks = all_tasks(loop);
    if (tasks.empty()) return;
    for (auto& t : tasks) t->cancel();
    // Each cancelled task wakes up, runs its clean-up and finishes. (One that swallows the
    // cancellation and waits for something else keeps this waiting, as in asyncio.)
    auto pending = [&] { return std::any_of(tasks.begin(), tasks.end(), [](auto& t) { return !t->done(); }); };
    while (pending()) loop.run_once();
    for (auto& t : tasks) {
        if (t->cancelled()) continue;
        if (auto e = t->exception())
            loop.call_exception_handler(
                ExceptionContext{"unhandled exception during run() shutdown (task " + t->get_name() + ")", e});
    }
}

}  // namespace aio
