// Stage 2: the event loop. Stage 1's generator coroutines, driven by the loop.
//
// Adds:    Wakeup (what a coroutine yields to say when to resume it), sleep(delay),
//          GeneratorTask (runs one coroutine on the loop), and wait(...), which runs
//          several at once. All in aio::generator_based, so stage 3's async/await
//          sleep/wait/Task can have the plain names.
// Mirrors: Python 3.4's @asyncio.coroutine + `yield from asyncio.sleep(3)`, and Task._step
//          in Lib/asyncio/tasks.py, which resumed the generator and looked at what it
//          yielded. (Generator-based coroutines were removed from Python in 3.11; async
//          def replaced them, as stage 3 replaces these.)
//
// The protocol between a coroutine and its task is the yielded value. The task resumes
// the generator; when it yields Wakeup{delay}, the task asks the loop for a timer
// (call_later) that will resume it; when it yields Wakeup{task}, the task resumes it once
// that other task is done. Between the two, the task is not in the ready queue at all:
// nothing polls it. That is all stage 2 changes about stage 1's coroutines.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage1_generators/generator.hpp"
#include "stage2_custom_loop/event_loop.hpp"

namespace aio::generator_based {

class GeneratorTaskBase;

// [docs:wakeup]
// What a coroutine yields to the task that runs it: resume me after `delay` seconds, or,
// if `after` is set, once that task has finished.
struct Wakeup {
    explicit Wakeup(double delay) : delay(delay) {}
    explicit Wakeup(std::shared_ptr<GeneratorTaskBase> task) : after(std::move(task)) {}
    double delay = 0;
    std::shared_ptr<GeneratorTaskBase> after;
};

// A coroutine the loop can run: it yields Wakeups and returns R.
template <typename R = void>
using Coroutine = Generator<Wakeup, void, R>;

// `co_await sleep(3.0);` reads like the article's `yield from asyncio.sleep(3)`, and is the
// same thing: delegation to a tiny generator that yields one wake-up request.
inline Coroutine<> sleep(double delay) { co_yield Wakeup(delay); }
// sleep(3) with an int: an exact match, so that with a using-directive it is ours and not
// POSIX's ::sleep(unsigned), which would block the whole thread.
inline Coroutine<> sleep(int seconds) { return sleep(double(seconds)); }
// [/docs:wakeup]

// The result-independent part of a task: done or not, and who to tell when it is.
class GeneratorTaskBase : public std::enable_shared_from_this<GeneratorTaskBase> {
public:
    explicit GeneratorTaskBase(EventLoop& loop) : loop_(loop) {}
    virtual ~GeneratorTaskBase() = default;
    bool done() const noexcept { return done_; }
    // fn runs on a later pass once the task is done (at once, on the next pass, if it is).
    // Returns a number for remove_done_callback.
    std::uint64_t add_done_callback(std::function<void()> fn) {
        const std::uint64_t id = ++last_callback_id_;
        if (done_)
            loop_.call_soon(std::move(fn), "GeneratorTask done callback");
        else
            callbacks_.emplace_back(id, std::move(fn));
        return id;
    }
    // Forget a callback that has not been scheduled yet; returns whether it was found.
    bool remove_done_callback(std::uint64_t id) {
        return std::erase_if(callbacks_, [id](const auto& c) { return c.first == id; }) > 0;
    }

protected:
    void finish() {
        done_ = true;
        for (auto& c : callbacks_) loop_.call_soon(std::move(c.second), "GeneratorTask done callback");
        callbacks_.clear();
    }
    EventLoop& loop_;
    std::exception_ptr exception_;

private:
    bool done_ = false;
    std::uint64_t last_callback_id_ = 0;
    std::vector<std::pair<std::uint64_t, std::function<void()>>> callbacks_;
};

template <typename R>
class GeneratorTask final : public GeneratorTaskBase {
public:
    GeneratorTask(EventLoop& loop, Coroutine<R> coro) : GeneratorTaskBase(loop), coro_(std::move(coro)) {}

    // The coroutine's return value, or its exception rethrown.
    R result() {
        if (!done()) throw RuntimeError("GeneratorTask::result(): the task has not finished yet");
        if (exception_) std::rethrow_exception(exception_);
        if constexpr (!std::is_void_v<R>) return *result_;
    }

    // [docs:step]
    // Resume the coroutine up to its next yield, then arrange to be resumed when what it
    // yielded says so. Only the loop calls this, from a callback.
    void step() {
        std::optional<Wakeup> request;
        try {
            request = coro_.next();
        } catch (...) {
            exception_ = std::current_exception();
            finish();
            return;
        }
        if (!request) {  // the coroutine returned
            if constexpr (!std::is_void_v<R>) result_ = coro_.result();
            finish();
            return;
        }
        auto self = std::static_pointer_cast<GeneratorTask>(shared_from_this());
        if (request->after) {
            // Weak: our frame holds the task we wait for, so a strong reference back would
            // make a cycle that nothing frees if the loop closes first. Whoever created us
            // keeps us alive (asyncio's docs ask the same: keep a reference to your tasks).
            std::weak_ptr<GeneratorTask> weak = self;
            request->after->add_done_callback([weak] {
                if (auto task = weak.lock()) task->step();
            });
        } else {
            loop_.call_later(request->delay, [self] { self->step(); }, "GeneratorTask.step");
        }
    }
    // [/docs:step]

private:
    Coroutine<R> coro_;
    std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result_;
};

template <typename R>
using TaskRef = std::shared_ptr<GeneratorTask<R>>;

// loop.create_task(coro) for generator coroutines: the first step runs on the next pass.
template <typename R>
TaskRef<R> task_factory(EventLoop& loop, Coroutine<R> coro) {
    auto task = std::make_shared<GeneratorTask<R>>(loop, std::move(coro));
    loop.call_soon([task] { task->step(); }, "GeneratorTask.step");
    return task;
}

// What run_until_complete accepts: a coroutine (wrapped in a task), or a task.
template <typename R>
TaskRef<R> ensure_future(EventLoop& loop, Coroutine<R> coro) {
    return task_factory(loop, std::move(coro));
}
template <typename R>
TaskRef<R> ensure_future(EventLoop&, TaskRef<R> task) {
    return task;
}

// [docs:wait]
// asyncio.wait((coro1, coro2)): run the coroutines concurrently, as tasks, and return their
// results in argument order once all have finished. (asyncio's returns the (done, pending)
// sets; with no timeout, pending is always empty, so results are what the reader wants.)
template <typename R>
Coroutine<std::vector<R>> wait(std::vector<Coroutine<R>> coros) {
    EventLoop& loop = get_running_loop();
    std::vector<TaskRef<R>> tasks;
    for (auto& c : coros) tasks.push_back(loop.create_task(std::move(c)));
    std::vector<R> results;
    for (auto& t : tasks) {
        Wakeup when_done(t);  // named first: no temporaries in a co_yield (stage 1 README, hazard 3)
        if (!t->done()) co_yield std::move(when_done);
        results.push_back(t->result());
    }
    co_return results;
}
// [/docs:wait]

// The same for coroutines that return nothing: finishes when all have.
inline Coroutine<> wait(std::vector<Coroutine<>> coros) {
    EventLoop& loop = get_running_loop();
    std::vector<TaskRef<void>> tasks;
    for (auto& c : coros) tasks.push_back(loop.create_task(std::move(c)));
    for (auto& t : tasks) {
        Wakeup when_done(t);
        if (!t->done()) co_yield std::move(when_done);
        t->result();  // rethrows the task's exception, if any
    }
}

// wait(coro1(), coro2(), ...) with the coroutines as arguments, as in the article.
template <typename R, typename... More>
    requires(std::is_same_v<More, Coroutine<R>> && ...)
Coroutine<std::conditional_t<std::is_void_v<R>, void, std::vector<R>>> wait(Coroutine<R> first, More... more) {
    std::vector<Coroutine<R>> coros;
    coros.push_back(std::move(first));
    (coros.push_back(std::move(more)), ...);
    return wait(std::move(coros));
}

}  // namespace aio::generator_based
