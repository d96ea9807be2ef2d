// Helpers shared by the stage 3 tests: nothing waits without a limit, so a lost wakeup fails
// a test instead of hanging it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"

namespace stage3_test_support {

using aio::Coroutine;
using aio::Ref;
using Tasks = std::vector<Ref<aio::TaskBase>>;

// Let the ready tasks run until they wait again (each of our tasks needs one pass).
inline Coroutine<> settle() {
    for (int i = 0; i < 3; ++i) co_await aio::sleep(0);
}

// Run a scenario on a new loop, for two seconds at most: a scenario stuck at some await
// (not only in all_done) is cancelled there and fails with TimeoutError.
template <typename T>
T run_limited(Coroutine<T> scenario) {
    return aio::run(aio::wait_for(std::move(scenario), 2.0));
}

// Wait until every task is done, for a second at most.
inline Coroutine<> all_done(Tasks tasks) {
    auto result = co_await aio::wait(std::move(tasks), 1.0);
    if (!result.pending.empty()) throw std::runtime_error("a task still waits after 1 s: a wakeup was lost");
}

// The three ways a waiter's cancellation can meet the wakeup it waits for.
enum class When {
    cancel_then_wake,         // cancelled while waiting; the wakeup comes in the same pass
    cancel_settle_then_wake,  // cancelled, and gone from the line, before the wakeup
    wake_then_cancel,         // woken, then cancelled in the same pass, before it could run
};

inline std::vector<std::pair<When, const char*>> all_whens() {
    return {{When::cancel_then_wake, "cancelled while waiting, woken in the same pass"},
            {When::cancel_settle_then_wake, "cancelled and gone before the wakeup"},
            {When::wake_then_cancel, "woken, then cancelled before it ran"}};
}

// A door worker threads wait at until the test opens it. The wait gives up after 10 s, so
// that a failing test ends instead of hanging while an executor joins a blocked worker.
class Gate {
public:
    void open() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, std::chrono::seconds(10), [this] { return open_; });
    }
    bool is_open() {
        std::lock_guard<std::mutex> lock(mutex_);
        return open_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

}  // namespace stage3_test_support
