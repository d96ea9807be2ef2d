// Stage 3: Futures and Tasks. run()'s clean-up (see runners.hpp).
#include "stage3_tasks_futures/runners.hpp"

#include <csignal>

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

namespace {
// SIGINT still does what it does by default: nobody (the program, a test framework, a shell
// that started us in the background with it ignored) has a use for it already.
bool sigint_is_default() {
    struct sigaction current {};
    return ::sigaction(SIGINT, nullptr, &current) == 0 && !(current.sa_flags & SA_SIGINFO) &&
           current.sa_handler == SIG_DFL;
}
}  // namespace

CancelMainOnSigint::CancelMainOnSigint(EventLoop& loop, Ref<TaskBase> main) : loop_(loop), main_(std::move(main)) {
    if (!sigint_is_default()) return;
    try {
        loop_.add_signal_handler(SIGINT, [this] {
            interrupted_ = true;
            main_->cancel();  // asyncio's Runner too cancels main only; run() then cancels the rest
            uninstall();      // a second Ctrl-C ends the process, should the clean-up hang
        });
        installed_ = true;
    } catch (const RuntimeError&) {
        // NotImplementedError: this loop cannot watch signals. RuntimeError: another loop
        // (on another thread) already does. Either way, Ctrl-C keeps its default.
    }
}

CancelMainOnSigint::~CancelMainOnSigint() { uninstall(); }

void CancelMainOnSigint::uninstall() noexcept {
    if (!std::exchange(installed_, false)) return;
    try {
        loop_.remove_signal_handler(SIGINT);
    } catch (...) {  // a broken override: nothing more can be done from a destructor
    }
}

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
