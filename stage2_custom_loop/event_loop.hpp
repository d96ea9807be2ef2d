// Stage 2: the event loop. A queue of ready callbacks, a heap of timers, and a wait.
//
// Adds:    EventLoop: call_soon, call_later, call_at, call_soon_threadsafe, time,
//          run_forever, run_until_complete, stop, close, create_task, the exception
//          handler, debug mode (slow-callback warnings), and get_running_loop(); and the
//          seams for a loop that waits on file descriptors: a virtual close(),
//          add_signal_handler/remove_signal_handler (which this loop cannot offer), and
//          new_event_loop()/set_event_loop_factory() (which class "a new loop" is).
// Mirrors: BaseEventLoop in Lib/asyncio/base_events.py (_run_once above all).
//
// [docs:invariants]
// Invariants (each is tested in tests/stage2_*):
//  1. Callbacks run only inside run_once(), on the loop's thread, one at a time.
//  2. The ready queue is FIFO. A callback scheduled while a pass runs waits for the next
//     pass: a pass runs exactly the handles that were ready when it started.
//  3. Timers fire in (deadline, scheduling order): equal deadlines keep call order.
//  4. A cancelled handle never runs. Cancelling is O(1); the heap drops cancelled timers
//     lazily, and rebuilds itself when most of it is cancelled.
//  5. The loop sleeps only in select(), and only as long as the next timer allows (not at
//     all when something is ready). call_soon_threadsafe wakes it through write_to_self().
//  6. An exception escaping a callback goes to the exception handler; the loop goes on.
//  7. Only call_soon_threadsafe may be called from another thread.
// [/docs:invariants]
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stage2_custom_loop/events.hpp"
#include "stage2_custom_loop/exceptions.hpp"

namespace aio {

// What the exception handler is told, like the `context` dict of asyncio's handler.
struct ExceptionContext {
    std::string message;           // "Exception in callback <name>"
    std::exception_ptr exception;  // may be null
};

class EventLoop;

// What stays behind when a loop is destroyed: a reference-counted note of whether it still
// exists. Whoever may outlive the loop (stage 3's futures) holds one and asks it before
// touching the loop, so that a future kept after its loop is gone fails with an error
// instead of using freed memory. (In Python the question never arises: the loop object
// lives as long as anything refers to it.)
class LoopLifeline : public RefCounted {
public:
    EventLoop* loop() const noexcept { return loop_; }  // null once the loop is destroyed

private:
    friend class EventLoop;
    explicit LoopLifeline(EventLoop* loop) : loop_(loop) {}
    EventLoop* loop_;
};

class EventLoop {
public:
    using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;
    using Logger = std::function<void(std::string_view)>;

    EventLoop();
    virtual ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Monotonic seconds: the clock every deadline is measured on.
    double time() const;

    // [docs:call_soon]
    // Run fn on the next pass (after what is already queued). `name` (a string literal)
    // names it in error reports.
    template <typename F>
    Ref<Handle> call_soon(F fn, const char* name = nullptr) {
        check_closed();
        Ref<Handle> h(new Callback<Handle, F>(std::move(fn), name));
        ready_.push_back(h);
        return h;
    }
    // [/docs:call_soon]

    // Schedule a handle that already exists, for the next pass (CPython's _add_callback).
    // Something that is itself a Handle (stage 3's Task is one) can so wait in the ready
    // queue as itself, without a new allocation each time it is scheduled.
    void add_callback(Ref<Handle> h) {
        check_closed();
        ready_.push_back(std::move(h));
    }

    // Run fn once `delay` seconds have passed (a zero or negative delay: on the next pass).
    template <typename F>
    Ref<TimerHandle> call_later(double delay, F fn, const char* name = nullptr) {
        return call_at(time() + delay, std::move(fn), name);
    }

    // Run fn once time() reaches `when`.
    template <typename F>
    Ref<TimerHandle> call_at(double when, F fn, const char* name = nullptr) {
        check_closed();
        // NaN compares false with everything: in the heap it would break the ordering, never
        // come due, and hold back every timer behind it.
        if (when != when) throw std::invalid_argument("call_at/call_later: the deadline is NaN; pass a number of seconds");
        Ref<TimerHandle> h(new Callback<TimerHandle, F>(std::move(fn), name, when));
        schedule_timer(h);
        return h;
    }

    // The only method another thread may call: queue fn and wake the loop. Unlike asyncio it
    // returns no handle, because a handle shared by two threads would need an atomic
    // reference count, and every handle would pay for it.
    template <typename F>
    void call_soon_threadsafe(F fn, const char* name = nullptr) {
        Ref<Handle> h(new Callback<Handle, F>(std::move(fn), name));
        {
            std::lock_guard<std::mutex> lock(threadsafe_mutex_);
            if (threadsafe_closed_) throw RuntimeError("call_soon_threadsafe on a closed event loop");
            threadsafe_ready_.push_back(std::move(h));
            threadsafe_pending_.store(true, std::memory_order_release);
            write_to_self();  // before unlocking: once fn can run, the loop may be closed and destroyed
        }
    }

    // One pass: wait for what is due, then run every callback that was ready at that point.
    void run_once();
    // Run passes until stop(). stop() before run_forever makes it run exactly one pass.
    void run_forever();
    // Make run_forever return after the current pass.
    void stop() noexcept { stopping_ = true; }

    // Run a coroutine (or a task, or anything ensure_future accepts) to the end and return
    // its result or rethrow its exception. What "a coroutine" is, the loop does not know:
    // ensure_future and task_factory are found by argument-dependent lookup in the
    // coroutine type's namespace, the way asyncio lets a task factory be plugged in.
    template <typename Awaitable>
    auto run_until_complete(Awaitable aw) {
        check_closed();
        check_not_running();
        auto future = ensure_future(*this, std::move(aw));
        StopWhenDone stop_when_done(*this, future);  // taken off the future however we leave
        run_forever();
        if (!future->done())
            throw RuntimeError("Event loop stopped before the future completed (someone called stop())");
        return future->result();
    }

    // Wrap a coroutine in the Task type its library provides (stage 2: GeneratorTask) and
    // schedule its first step.
    template <typename Coroutine>
    auto create_task(Coroutine coro) {
        return task_factory(*this, std::move(coro));
    }

    bool is_running() const noexcept { return running_; }
    bool is_closed() const noexcept { return closed_; }
    // Drop every pending callback and timer (freeing them) and refuse new ones. Closing a
    // running loop is an error; closing twice is harmless. Virtual, as in asyncio, for a
    // loop that owns more (file descriptors, say): its close() calls this one first, then
    // frees its own. (The destructor calls only this one; a subclass's destructor calls
    // its own close().)
    virtual void close();
    // fn runs at the start of close(), while the loop can still schedule and cancel: for what
    // belongs to a loop without the loop knowing it (a thread pool to join, a registry to
    // empty). CPython's close() does such work itself (it shuts down the default executor).
    void add_close_callback(std::function<void()> fn) { close_callbacks_.push_back(std::move(fn)); }

    // Run `callback` on the loop, as an ordinary callback, whenever signal `sig` (SIGINT,
    // SIGTERM, ...) arrives; replaces an earlier one for the same signal. This loop cannot:
    // nothing a C signal handler may safely do (write to a file descriptor, set a flag)
    // would wake a loop that waits on a condition variable. So both raise
    // NotImplementedError, as asyncio's AbstractEventLoop does on loops without signals;
    // a loop that waits on file descriptors overrides them.
    virtual void add_signal_handler(int sig, std::function<void()> callback);
    // Stop watching `sig` and restore what it did before; returns whether it was watched.
    virtual bool remove_signal_handler(int sig);

    // Exceptions that escape callbacks. An empty handler restores the default, which logs
    // "Exception in callback <name>: <what()>".
    void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
    void call_exception_handler(const ExceptionContext& context);
    void default_exception_handler(const ExceptionContext& context);

    // This loop's lifeline (see LoopLifeline): the same object for the loop's whole life.
    const Ref<LoopLifeline>& lifeline() const noexcept { return lifeline_; }

    // Where the loop's messages go (default: stderr), like asyncio's logger.
    void set_logger(Logger logger) { logger_ = std::move(logger); }
    void log(std::string_view message) const;

    // Debug mode: warn about every callback that runs longer than slow_callback_duration.
    void set_debug(bool enabled) noexcept { debug_ = enabled; }
    bool get_debug() const noexcept { return debug_; }
    double slow_callback_duration = 0.1;

    // How many callbacks are queued or scheduled (for tests and curious readers).
    std::size_t ready_count() const noexcept { return ready_.size(); }
    std::size_t timer_count() const noexcept { return timers_.size(); }

protected:
    // The seam stage 4 replaces with a selector. Block until something may have happened:
    // `timeout` seconds at most, or without limit when it is nullopt. Stage 2 has nothing to
    // wait for but timers and other threads, so it waits on a condition variable.
    virtual void select(std::optional<double> timeout);
    // Wake a select() in progress, from any thread (asyncio writes a byte to a self-pipe).
    virtual void write_to_self();

private:
    friend class TimerHandle;
    struct RunningPass;
    template <typename FuturePtr>
    class StopWhenDone;
    struct TimerEntry {
        double when;
        std::uint64_t seq;
        Ref<TimerHandle> handle;
    };

    void check_closed() const;
    void check_not_running() const;
    void schedule_timer(Ref<TimerHandle> h);
    void timer_handle_cancelled() noexcept { ++cancelled_timers_; }
    void drop_cancelled_timers();
    std::optional<double> compute_timeout() const;
    void take_threadsafe_ready();
    void run_handle(Handle& h);

    std::deque<Ref<Handle>> ready_;
    std::vector<TimerEntry> timers_;  // a min-heap on (when, seq)
    std::uint64_t timer_seq_ = 0;
    std::size_t cancelled_timers_ = 0;
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;
    bool debug_ = false;
    bool in_pass_ = false;  // inside run_once()

    std::mutex threadsafe_mutex_;
    std::condition_variable threadsafe_cv_;
    std::vector<Ref<Handle>> threadsafe_ready_;  // guarded by threadsafe_mutex_
    bool threadsafe_closed_ = false;             // guarded by threadsafe_mutex_
    std::atomic<bool> threadsafe_pending_{false};  // threadsafe_ready_ may be non-empty

    std::vector<std::function<void()>> close_callbacks_;
    Ref<LoopLifeline> lifeline_{new LoopLifeline(this)};
    ExceptionHandler exception_handler_;
    Logger logger_;
};

// run_until_complete's done-callback on its future: stop the loop once the future is done.
// However run_until_complete leaves, the destructor takes the callback off the future again
// (asyncio does, in a `finally`): the future may outlive this loop and must carry nothing of
// ours. A callback already scheduled can no longer be taken off, so it is disarmed instead.
template <typename FuturePtr>
class EventLoop::StopWhenDone {
public:
    StopWhenDone(EventLoop& loop, FuturePtr future)
        : future_(std::move(future)), token_(future_->add_done_callback([&loop, armed = armed_](auto&&...) {
              if (*armed) loop.stop();
          })) {}
    StopWhenDone(const StopWhenDone&) = delete;
    StopWhenDone& operator=(const StopWhenDone&) = delete;
    ~StopWhenDone() {
        *armed_ = false;
        future_->remove_done_callback(token_);
    }

private:
    // What add_done_callback returns for this kind of future: remove_done_callback's token.
    using Token = decltype(std::declval<FuturePtr&>()->add_done_callback([] {}));
    FuturePtr future_;
    std::shared_ptr<bool> armed_ = std::make_shared<bool>(true);  // shared with the callback
    Token token_;
};

// The loop running on this thread, like asyncio.get_running_loop(). Throws RuntimeError
// when no loop is running.
EventLoop& get_running_loop();
// Same, or nullptr.
EventLoop* running_loop_or_null() noexcept;

// [docs:new_event_loop]
// Which loop a program gets when it asks for "a loop" without naming a class: asyncio's
// event-loop policy, reduced to the one thing it does here (policy.new_event_loop()).
// Code that makes loops for others (stage 3's run(main), a test suite) calls
// new_event_loop(); the program chooses the class once, at start-up, the way a Python
// program installs uvloop's policy, and every such loop is then of that class.
using EventLoopFactory = std::unique_ptr<EventLoop> (*)();

// asyncio.new_event_loop(): a new loop from the current factory, by default stage 2's
// EventLoop. The caller owns it. Throws what the factory throws, and RuntimeError if the
// factory returns no loop.
std::unique_ptr<EventLoop> new_event_loop();

// Make new_event_loop() call `factory` from now on (nullptr: back to stage 2's EventLoop);
// returns the factory it replaces, so that a scope can put it back. Like
// asyncio.set_event_loop_policy(), process-wide and not synchronised: call it at start-up,
// before other threads make loops.
EventLoopFactory set_event_loop_factory(EventLoopFactory factory) noexcept;
// [/docs:new_event_loop]

}  // namespace aio
