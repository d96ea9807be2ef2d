// Stage 3: Futures and Tasks. The thread pool, and each loop's executor state (executor.hpp).
#include "stage3_tasks_futures/executor.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace aio {

// ------------------------------------------------------------------------ ThreadPoolExecutor

std::size_t ThreadPoolExecutor::default_max_workers() noexcept {
    // hardware_concurrency() may answer 0 ("unknown"), as os.cpu_count() may answer None.
    const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
    return std::min<std::size_t>(32, cores + 4);
}

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers) : max_workers_(max_workers) {
    if (max_workers == 0) throw std::invalid_argument("ThreadPoolExecutor: max_workers must be greater than 0");
}

// A std::thread must be joined before it is destroyed, and the workers use this object, so
// the destructor has to wait for them. (If shutdown throws here, a job is destroying its own
// executor, which can only end in std::terminate.)
ThreadPoolExecutor::~ThreadPoolExecutor() { shutdown(true); }

std::size_t ThreadPoolExecutor::thread_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return threads_.size();
}

void ThreadPoolExecutor::submit_item(std::unique_ptr<WorkItem> item) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (shutdown_)
            throw RuntimeError(
                "cannot schedule new work after shutdown(): this ThreadPoolExecutor has been shut down; "
                "create a new one, or submit before shutting it down");
        queue_.push_back(std::move(item));
        // CPython's _adjust_thread_count: start a thread unless an idle one will take the job.
        // Counting queued jobs against idle workers (rather than "is anyone idle?") matters
        // when several jobs arrive before a woken worker has taken the first one.
        if (queue_.size() > idle_ && threads_.size() < max_workers_) {
            try {
                threads_.emplace_back([this] { worker_main(); });
            } catch (...) {
                // Out of threads. If there is no worker at all, nobody would ever run the
                // job: take it back and tell the caller. Otherwise a busy worker will get to it.
                if (threads_.empty()) {
                    queue_.pop_back();
                    throw;
                }
            }
        }
    }
    work_available_.notify_one();
}

// A worker takes jobs until the executor is shut down and the queue is empty: shutdown()
// lets the queued work finish, as CPython's does (unless cancel_futures, which we lack).
void ThreadPoolExecutor::worker_main() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        ++idle_;
        work_available_.wait(lock, [this] { return !queue_.empty() || shutdown_; });
        --idle_;
        if (queue_.empty()) return;  // shut down, and nothing left to do
        std::unique_ptr<WorkItem> item = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();  // the job runs without the lock, so others can submit and take
        try {
            item->run();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ThreadPoolExecutor: a job raised an exception it should have handled: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "ThreadPoolExecutor: a job raised an exception it should have handled\n");
        }
        item.reset();  // free what the job holds before taking the lock again
        lock.lock();
    }
}

void ThreadPoolExecutor::shutdown(bool wait) {
    std::vector<std::thread> to_join;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (wait) {
            const auto self = std::this_thread::get_id();
            if (std::any_of(threads_.begin(), threads_.end(), [&](const std::thread& t) { return t.get_id() == self; }))
                throw RuntimeError(
                    "ThreadPoolExecutor::shutdown(wait=true) called from one of its own workers, which would wait "
                    "for itself; shut it down from another thread, or with wait=false");
            // Taken out under the lock, so that only one caller ever joins each thread.
            to_join = std::move(threads_);
            threads_.clear();
        }
        shutdown_ = true;
    }
    work_available_.notify_all();
    for (auto& t : to_join) t.join();
}

// ---------------------------------------------------------------------- each loop's executors

namespace detail {

namespace {

// Which loops have a LoopExecutors. Process-wide, under a mutex (all_tasks' registry is per
// thread instead): close() may run on another thread than run_in_executor did, and a stale
// entry would be found again by a new loop that happens to get the same address.
// Programs have few loops, so a vector is the map.
std::mutex g_loops_mutex;
std::vector<std::shared_ptr<LoopExecutors>> g_loops;

// The close callback: take this loop's state out of the registry, then close it (which
// may block, joining threads) with no lock held.
void close_loop(EventLoop& loop) {
    std::shared_ptr<LoopExecutors> state;
    {
        std::lock_guard<std::mutex> lock(g_loops_mutex);
        auto it = std::find_if(g_loops.begin(), g_loops.end(), [&](auto& e) { return e->key() == &loop; });
        if (it == g_loops.end()) return;
        state = std::move(*it);
        g_loops.erase(it);
    }
    state->close();
}

}  // namespace

ThreadPoolExecutor& LoopExecutors::default_executor() {
    if (!default_executor_) default_executor_ = std::make_unique<ThreadPoolExecutor>();
    return *default_executor_;
}

std::uint64_t LoopExecutors::track(Ref<FutureBase> fut) {
    const std::uint64_t id = ++next_id_;
    in_flight_.emplace(id, InFlight{std::move(fut), nullptr});
    return id;
}

Ref<FutureBase> LoopExecutors::take(std::uint64_t id) {
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) return nullptr;
    Ref<FutureBase> fut = std::move(it->second.future);
    in_flight_.erase(it);
    return fut;
}

void LoopExecutors::set_cancel_check(std::uint64_t id, Ref<Handle> callback) {
    auto it = in_flight_.find(id);
    if (it != in_flight_.end()) it->second.cancel_check = std::move(callback);
}

// Run by loop.close(), before it empties its queues. CPython's close() shuts the default
// executor down without waiting (asyncio.run joins it beforehand, in
// shutdown_default_executor); we join here, so that no thread outlives the loop. (So a
// job that waits for something only the loop would do blocks close() for ever.)
void LoopExecutors::close() {
    // 1. Cut the workers off: from now on every worker, of any executor, drops what it
    //    computed for this loop instead of posting it. Taking the mutex waits out a post in
    //    progress.
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!loop_) return;  // closed already
        loop_ = nullptr;
    }
    // 2. Join the default executor: calls already running complete, queued ones whose
    //    Future was cancelled are skipped, the others still run (as after CPython's
    //    shutdown(wait=True)); all their results are dropped. Then free it here: a worker
    //    may hold the last reference to this object, and must not be the one to destroy an
    //    executor (a worker cannot join itself).
    if (default_executor_) default_executor_->shutdown(true);
    default_executor_.reset();
    // 3. Release the Futures still waiting for a result that can no longer come. This is the
    //    loop's thread, the only one that may drop a Ref to them. Whoever holds one may keep
    //    it past the loop, so take our done-callback off: completing or cancelling it later
    //    must have nothing to schedule on a loop that is gone. (The callbacks also hold this
    //    object: taking them off breaks that cycle.)
    for (auto& [id, call] : in_flight_)
        if (call.cancel_check) call.future->remove_done_callback(call.cancel_check);
    in_flight_.clear();
}

std::shared_ptr<LoopExecutors> loop_executors(EventLoop& loop) {
    {
        std::lock_guard<std::mutex> lock(g_loops_mutex);
        for (auto& e : g_loops)
            if (e->key() == &loop) return e;
    }
    // A closed loop runs no more close callbacks, so nothing would ever free its state.
    if (loop.is_closed()) throw RuntimeError("run_in_executor on a closed event loop: create a new EventLoop (or use run())");
    // In this order, a failure at any step leaves nothing behind that could point to a
    // loop that has gone: a close callback that finds no state does nothing.
    auto state = std::make_shared<LoopExecutors>(loop);
    loop.add_close_callback([&loop] { close_loop(loop); });
    std::lock_guard<std::mutex> lock(g_loops_mutex);
    g_loops.push_back(state);
    return state;
}

}  // namespace detail

}  // namespace aio
