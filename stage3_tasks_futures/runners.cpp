// Stage 3: Futures and Tasks. run()'s clean-up (see runners.hpp).
#include "stage3_tasks_futures/runners.hpp"

#include "stage3_tasks_futures/tasks.hpp"

namespace aio {

void cancel_all_tasks(EventLoop& loop) {
    auto tasks = all_tasks(loop);
    if (tasks.empty()) return;
    for (auto& t : tasks) t->cancel();
    // Each cancelled task wakes up, runs its clean-up (which may await) and finishes; the
    // loop runs as a running loop meanwhile, as asyncio's run_until_complete(gather(...,
    // return_exceptions=True)) does. (One that swallows the cancellation and waits for
    // something else keeps this waiting, as in asyncio.)
    std::vector<Ref<FutureBase>> children(tasks.begin(), tasks.end());
    loop.run_until_complete(make_ref<GatheringFuture>(loop, std::move(children), true));
    for (auto& t : tasks) {
        if (t->cancelled()) continue;
        if (auto e = t->exception())
            loop.call_exception_handler(
                ExceptionContext{"unhandled exception during run() shutdown (task " + t->get_name() + ")", e});
    }
}

namespace detail {

void cancel_all_tasks_reporting_failure(EventLoop& loop) noexcept {
    try {
        cancel_all_tasks(loop);
    } catch (...) {
        try {
            loop.call_exception_handler(ExceptionContext{"run(): cancelling the tasks left over failed", std::current_exception()});
        } catch (...) {  // a handler that throws: nothing more can be done here
        }
    }
}

}  // namespace detail

}  // namespace aio
