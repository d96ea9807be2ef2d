// Stage 3: Futures and Tasks. Blocking work moved off the loop, onto worker threads.
//
// Adds:    ThreadPoolExecutor (worker threads started as work arrives, at most
//          min(32, cores + 4)); run_in_executor([executor,] fn, args...), a Future for
//          fn(args...) computed on a worker thread; to_thread(fn, args...), the same as a
//          coroutine; and each loop's default executor, joined when the loop closes.
// Mirrors: ThreadPoolExecutor in Lib/concurrent/futures/thread.py; loop.run_in_executor
//          and the default executor in Lib/asyncio/base_events.py, with the chaining of a
//          thread's result into an asyncio Future (wrap_future, _chain_future) from
//          Lib/asyncio/futures.py; asyncio.to_thread in Lib/asyncio/threads.py.
//
// Why: the loop is one thread, so a callback or step that blocks (a sleep, a file read, a
// DNS lookup, a long computation) stops every task. The cure is to run the blocking call on
// another thread and await its result like any other Future.
//
// The rule that shapes this file: a Future, like every Handle, counts its references with a
// plain integer, because only the loop's thread may touch it. So a worker thread never
// touches the Future, not even to copy or drop a Ref to it. The round trip is:
//
//   loop thread                                     worker thread
//   create the Future; keep it in the loop's
//   in-flight table under a number N;
//   submit the job (fn, args, N)  ───────────────►  outcome = fn(args...) or what it threw
//                                                   call_soon_threadsafe(deliver N, outcome)
//   deliver: take N out of the table; if the   ◄──────────┘
//   Future is still pending (it may have been
//   cancelled meanwhile), set its result
//
// A worker reaches the loop only through the loop's LoopExecutors (below), which cuts itself
// off from the loop when the loop starts to close, under a mutex the worker holds while it
// posts. So once a loop has begun closing, no worker touches it again, and a result computed
// for it is dropped on the worker's side. That holds for any executor, the loop's own or yours.
//
// Why this takes more than the 55-odd lines CPython needs: Python's objects may be shared by
// threads (the GIL guards their counts), so CPython hands the worker the Future itself. Here
// the non-atomic count forces the number and the table (LoopExecutors), which must also
// outlive the loop for workers that are still running; std::function cannot hold a move-only
// job (a lambda owning a unique_ptr argument), so the pool erases the job's type itself
// (WorkItem); and the value or exception needs a carrier across (Outcome). That is all the
// plumbing there is.
//
// Lifetime rules for an executor you create yourself (the loop's default one needs none):
//  - it is yours to shut down; its destructor does shutdown(wait=true);
//  - shut it down (or let its jobs finish) before closing the loop, so that every result can
//    still arrive; a job still running when the loop closes completes, and its result is
//    dropped. That is safe here, but the job's function must not use anything the loop or
//    its tasks own, since they are gone by then;
//  - never shut it down with wait=true (or destroy it) from one of its own jobs: a worker
//    cannot wait for itself.
#pragma once

#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"

namespace aio {

// A pool of worker threads taking jobs from one queue (a mutex, a condition variable and a
// deque: CPython uses a queue.SimpleQueue). Threads are started lazily, one for each job
// that finds no idle worker, until there are max_workers of them; they then stay until
// shutdown().
class ThreadPoolExecutor {
public:
    // CPython's default since 3.8: cores + 4 keeps at least 5 threads for I/O-bound calls,
    // and the cap of 32 stops a big machine from starting hundreds of mostly idle threads.
    static std::size_t default_max_workers() noexcept;

    explicit ThreadPoolExecutor(std::size_t max_workers = default_max_workers());
    // shutdown(wait=true): the work already submitted runs, then the workers are joined.
    ~ThreadPoolExecutor();
    ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
    ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

    // Run job() on a worker thread, soon. The job has nobody to throw to, so it should catch
    // its own errors (run_in_executor's jobs send them to the loop); anything that escapes is
    // printed to stderr. Throws RuntimeError after shutdown(). Any thread may submit.
    template <typename F>
        requires std::invocable<F&>
    void submit(F job) {
        submit_item(std::make_unique<Job<F>>(std::move(job)));
    }

    // Refuse new work; the workers run what is already queued, then exit. With wait, also
    // block until they have, and join them. Calling it again is harmless.
    void shutdown(bool wait = true);

    std::size_t max_workers() const noexcept { return max_workers_; }
    // Worker threads started so far, less those a shutdown(wait=true) has taken to join.
    std::size_t thread_count() const;

private:
    struct WorkItem {
        virtual ~WorkItem() = default;
        virtual void run() = 0;
    };
    template <typename F>
    struct Job final : WorkItem {
        explicit Job(F f) : fn(std::move(f)) {}
        void run() override { fn(); }
        F fn;
    };
    void submit_item(std::unique_ptr<WorkItem> item);
    void worker_main();

    const std::size_t max_workers_;
    mutable std::mutex mutex_;
    std::condition_variable work_available_;
    std::deque<std::unique_ptr<WorkItem>> queue_;  // guarded by mutex_
    std::vector<std::thread> threads_;             // guarded by mutex_
    std::size_t idle_ = 0;                         // workers waiting for a job; guarded by mutex_
    bool shutdown_ = false;                        // guarded by mutex_
};

namespace detail {

// What run_in_executor keeps per loop: the default executor, the in-flight table, and the
// workers' only way back to the loop. Workers hold it by shared_ptr (whose count is atomic),
// so it may outlive its loop; close() cuts it off from the loop first, under `mutex_`, and a
// worker posts while holding that mutex, so the loop cannot close, let alone be destroyed,
// in the middle of a post. Everything but post() is for the loop's thread only.
class LoopExecutors {
public:
    explicit LoopExecutors(EventLoop& loop) : key_(&loop), loop_(&loop) {}
    LoopExecutors(const LoopExecutors&) = delete;
    LoopExecutors& operator=(const LoopExecutors&) = delete;

    // The loop this belongs to, even after close() (the registry's key; never dereferenced).
    const EventLoop* key() const noexcept { return key_; }
    // CPython's loop._default_executor, created on first use.
    ThreadPoolExecutor& default_executor();

    // The in-flight table holds the Futures whose results are being computed, and so keeps
    // each alive while its call runs (the job holds no Ref to it). They are numbered rather
    // than known by address: a cancelled Future may be freed and its memory reused by a new
    // one before the old call's late result comes back.
    std::uint64_t track(Ref<FutureBase> fut);
    Ref<FutureBase> take(std::uint64_t id);  // null if the number is no longer tracked
    // The done-callback run_in_executor put on the Future, taken off again at close.
    void set_cancel_check(std::uint64_t id, Ref<Handle> callback);

    // Any thread: schedule `callback` on the loop with call_soon_threadsafe, unless the loop
    // is closing or gone; then drop it (nobody can receive it) and return false.
    template <typename F>
    bool post(F callback, const char* name) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!loop_) return false;
        loop_->call_soon_threadsafe(std::move(callback), name);
        return true;
    }

    // The loop is closing: cut the workers off, join the default executor, drop the table.
    void close();

private:
    const EventLoop* const key_;
    std::mutex mutex_;
    EventLoop* loop_;  // guarded by mutex_; null once the loop is closing
    std::unique_ptr<ThreadPoolExecutor> default_executor_;
    struct InFlight {
        Ref<FutureBase> future;
        Ref<Handle> cancel_check;  // the done-callback run_in_executor put on it
    };
    std::unordered_map<std::uint64_t, InFlight> in_flight_;
    std::uint64_t next_id_ = 0;
};

// The LoopExecutors of `loop`, created on first use and closed by a callback that the loop's
// close() runs. Throws RuntimeError if the loop is closed (its close callbacks have run).
std::shared_ptr<LoopExecutors> loop_executors(EventLoop& loop);

// What a call produced, carried from the worker to the loop.
template <typename R>
struct Outcome {
    std::optional<value_or_none_t<R>> value;
    std::exception_ptr error;
};

// Loop thread, as a callback posted by the worker: complete the Future, unless nobody is
// waiting for it any more. A Future cancelled while its call ran is done already; setting
// its result would raise InvalidStateError, so the late result is dropped instead.
template <typename R>
void deliver(LoopExecutors& state, std::uint64_t id, Outcome<R>& outcome) {
    Ref<FutureBase> base = state.take(id);
    if (!base || base->done()) return;
    auto& fut = static_cast<Future<R>&>(*base);
    if (outcome.error) {
        fut.set_exception(std::move(outcome.error));
    } else if constexpr (std::is_void_v<R>) {
        fut.set_result();
    } else {
        try {
            fut.set_result(std::move(*outcome.value));
        } catch (...) {  // the value's move threw: that is the outcome, or the Future waits for ever
            if (!fut.done()) fut.set_exception(std::current_exception());
        }
    }
}

// Worker thread: hand the outcome to the loop through its one door, call_soon_threadsafe.
template <typename R>
void post_outcome(const std::shared_ptr<LoopExecutors>& state, std::uint64_t id, Outcome<R>& outcome) noexcept {
    try {
        state->post([state, id, outcome = std::move(outcome)]() mutable { deliver<R>(*state, id, outcome); },
                    "run_in_executor result");
    } catch (...) {
        // Moving the result into the callback threw (the value's move), or allocating it
        // failed: send that failure instead, so that the Future does not wait for ever.
        try {
            Outcome<R> failed{std::nullopt, std::current_exception()};
            state->post([state, id, failed = std::move(failed)]() mutable { deliver<R>(*state, id, failed); },
                        "run_in_executor result");
        } catch (...) {
            // There is no memory left (or the loop raised RuntimeError for being closed,
            // which post() rules out, but the rule is cheap to keep): the loop cannot be
            // told, so the outcome is dropped, as CPython does for a closed loop.
        }
    }
}

}  // namespace detail

// What run_in_executor(fn, args...) produces: fn's return type, without reference or const
// (the value is copied or moved out of the worker's call).
template <typename F, typename... Args>
using executor_result_t = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;

// loop.run_in_executor(executor, fn, *args): call fn(args...) on a worker thread of
// `executor` (the loop's default executor if it is null) and return a Future for the
// result, or for the exception fn throws. fn and args are copied here (decayed, as
// std::thread copies them), then used and destroyed on the worker: so never pass what only
// the loop's thread may touch (a Ref, a Future, a Task), and share an object x only
// knowingly, with std::ref(x). Cancelling the Future before a worker starts the call skips
// it; after that, the call completes on its own and its result is dropped.
template <typename F, typename... Args>
    requires std::invocable<F, Args...>
Ref<Future<executor_result_t<F, Args...>>> run_in_executor(EventLoop& loop, ThreadPoolExecutor* executor, F fn,
                                                          Args... args) {
    using R = executor_result_t<F, Args...>;
    static_assert(std::is_void_v<R> || std::is_move_constructible_v<R>,
                  "run_in_executor: the function's result must be movable, to carry it back to the loop");
    std::shared_ptr<detail::LoopExecutors> state = detail::loop_executors(loop);
    ThreadPoolExecutor& pool = executor ? *executor : state->default_executor();
    Ref<Future<R>> fut = create_future<R>(loop);
    // CPython's _chain_future cancels the thread's future when the asyncio one is cancelled
    // (_call_check_cancel); here a done-callback raises a flag that the worker checks before
    // it starts, and forgets the Future, whose result nobody wants now.
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    const std::uint64_t id = state->track(fut);
    try {
        state->set_cancel_check(id, fut->add_done_callback(
                                        [cancelled, state, id](FutureBase& f) {
                                            if (!f.cancelled()) return;
                                            cancelled->store(true, std::memory_order_relaxed);
                                            state->take(id);
                                        },
                                        "run_in_executor cancel check"));
        // The job: the function and decayed copies of its arguments, and how to send the
        // outcome back. It owns no reference to the Future, only its number.
        auto job = [state, id, cancelled, fn = std::move(fn),
                    args = std::tuple<Args...>(std::move(args)...)]() mutable {
            // CPython's set_running_or_notify_cancel: a call whose Future was cancelled before
            // a worker got to it never runs. (Relaxed is enough: the flag guards no other data.)
            if (cancelled->load(std::memory_order_relaxed)) return;
            detail::Outcome<R> outcome;
            try {
                if constexpr (std::is_void_v<R>) {
                    std::apply(std::move(fn), std::move(args));
                } else {
                    outcome.value.emplace(std::apply(std::move(fn), std::move(args)));
                }
            } catch (...) {
                outcome.error = std::current_exception();
            }
            detail::post_outcome<R>(state, id, outcome);
        };
        pool.submit(std::move(job));
    } catch (...) {
        state->take(id);  // e.g. the executor was shut down: nothing will complete this Future
        throw;
    }
    return fut;
}

// On the running loop, with its default executor: `auto r = co_await run_in_executor(fn, x);`
template <typename F, typename... Args>
    requires std::invocable<F, Args...>
Ref<Future<executor_result_t<F, Args...>>> run_in_executor(F fn, Args... args) {
    return run_in_executor(get_running_loop(), nullptr, std::move(fn), std::move(args)...);
}

// On the running loop, with an executor of your own (see the lifetime rules at the top).
template <typename F, typename... Args>
    requires std::invocable<F, Args...>
Ref<Future<executor_result_t<F, Args...>>> run_in_executor(ThreadPoolExecutor& executor, F fn, Args... args) {
    return run_in_executor(get_running_loop(), &executor, std::move(fn), std::move(args)...);
}

// asyncio.to_thread(fn, *args): the same as a coroutine, on the default executor. Like any
// coroutine it does nothing until awaited: `int n = co_await to_thread(count_lines, path);`
template <typename F, typename... Args>
    requires std::invocable<F, Args...>
Coroutine<executor_result_t<F, Args...>> to_thread(F fn, Args... args) {
    using R = executor_result_t<F, Args...>;
    Ref<Future<R>> fut = run_in_executor(std::move(fn), std::move(args)...);
    if constexpr (std::is_void_v<R>) {
        co_await fut;
    } else {
        R result = co_await fut;
        co_return result;
    }
}

}  // namespace aio
