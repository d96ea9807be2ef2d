// Stage 2: the event loop (see event_loop.hpp for the invariants).
#include "stage2_custom_loop/event_loop.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace aio {

namespace {

thread_local EventLoop* tl_running_loop = nullptr;

// CPython's numbers (base_events.py): the heap is rebuilt without its cancelled timers
// when it holds more than 100 timers and more than half of them are cancelled.
constexpr std::size_t kMinScheduledTimerHandles = 100;
constexpr double kMinCancelledTimerHandlesFraction = 0.5;
// And never wait longer than a day at once: a timer centuries away (or at infinity) would
// overflow the conversion to the clock's nanoseconds. CPython's MAXIMUM_SELECT_TIMEOUT.
constexpr double kMaximumSelectTimeout = 24 * 3600;

// Heap order: earliest deadline first, then first scheduled first (std heaps are max-heaps,
// so "greater" puts the smallest on top).
struct Later {
    template <typename E>
    bool operator()(const E& a, const E& b) const noexcept {
        return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }
};

}  // namespace

std::string demangled_type_name(const char* mangled) {
    int status = 0;
    char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string out = status == 0 && s ? s : mangled;
    std::free(s);
    return out;
}

void TimerHandle::on_cancel() {
    if (scheduled_in_) scheduled_in_->timer_handle_cancelled();
}

EventLoop::EventLoop() = default;

EventLoop::~EventLoop() {
    close();
    lifeline_->loop_ = nullptr;  // whoever still holds the lifeline now knows
}

double EventLoop::time() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void EventLoop::check_closed() const {
    if (closed_) throw RuntimeError("Event loop is closed: create a new EventLoop to schedule more work");
}

void EventLoop::check_not_running() const {
    if (running_)
        throw RuntimeError(
            "This event loop is already running: run_forever/run_until_complete can't be nested; "
            "schedule the work with call_soon or create_task instead");
    if (tl_running_loop)
        throw RuntimeError("Cannot run the event loop while another loop is running on this thread");
}

void EventLoop::schedule_timer(Ref<TimerHandle> h) {
    h->scheduled_in_ = this;
    double when = h->when();
    timers_.push_back(TimerEntry{when, timer_seq_++, std::move(h)});
    std::push_heap(timers_.begin(), timers_.end(), Later{});
}

// [docs:drop_cancelled_timers]
// Cancelling a timer leaves it in the heap (removing it would cost O(n)). Most of the time
// cancelled timers are simply skipped when they reach the top; but a program that sets and
// cancels many timeouts would grow the heap without bound, so once most of it is dead we
// rebuild it from the live timers, in O(n).
void EventLoop::drop_cancelled_timers() {
    if (timers_.size() > kMinScheduledTimerHandles &&
        double(cancelled_timers_) / double(timers_.size()) > kMinCancelledTimerHandlesFraction) {
        // Releasing a handle may run its callable's destructor, which may schedule a timer:
        // release them only once the heap is whole again.
        std::vector<Ref<TimerHandle>> dropped;
        std::erase_if(timers_, [&dropped](TimerEntry& e) {
            if (!e.handle->cancelled()) return false;
            e.handle->scheduled_in_ = nullptr;
            dropped.push_back(std::move(e.handle));
            return true;
        });
        std::make_heap(timers_.begin(), timers_.end(), Later{});
        cancelled_timers_ = 0;
        return;
    }
    while (!timers_.empty() && timers_.front().handle->cancelled()) {
        std::pop_heap(timers_.begin(), timers_.end(), Later{});
        Ref<TimerHandle> dropped = std::move(timers_.back().handle);  // (same reason)
        timers_.pop_back();
        dropped->scheduled_in_ = nullptr;
        --cancelled_timers_;
    }
}
// [/docs:drop_cancelled_timers]

// How long select() may block: not at all if something is ready (or we are stopping), until
// the earliest timer if there is one, else for as long as it takes.
std::optional<double> EventLoop::compute_timeout() const {
    if (!ready_.empty() || stopping_) return 0.0;
    if (!timers_.empty()) return std::min(std::max(0.0, timers_.front().when - time()), kMaximumSelectTimeout);
    return std::nullopt;
}

// Measured (bench_call_soon, callgrind): taking the mutex on every pass cost 40% of a
// pass that runs one callback, although other threads rarely post anything. So a flag
// says whether there is anything to take, and the mutex is taken only when there is.
void EventLoop::take_threadsafe_ready() {
    if (!threadsafe_pending_.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(threadsafe_mutex_);
    threadsafe_pending_.store(false, std::memory_order_relaxed);
    for (auto& h : threadsafe_ready_) ready_.push_back(std::move(h));
    threadsafe_ready_.clear();
}

// A pass counts as running the loop, whether run_forever runs it or you call run_once():
// its callbacks see get_running_loop(), and can neither nest a pass nor close the loop.
struct EventLoop::RunningPass {
    EventLoop& loop;
    bool owns_running;
    explicit RunningPass(EventLoop& l) : loop(l), owns_running(!l.running_) {
        if (l.in_pass_)
            throw RuntimeError("run_once() from a callback of the same loop: passes can't be nested; "
                               "schedule the work with call_soon instead");
        if (owns_running) {
            l.check_not_running();  // another loop running on this thread
            l.running_ = true;
            tl_running_loop = &l;
        }
        l.in_pass_ = true;
    }
    ~RunningPass() {
        loop.in_pass_ = false;
        if (owns_running) {
            loop.running_ = false;
            tl_running_loop = nullptr;
        }
    }
};

// [docs:select]
void EventLoop::select(std::optional<double> timeout) {
    if (timeout && *timeout <= 0) return;  // something is ready: don't wait at all
    std::unique_lock<std::mutex> lock(threadsafe_mutex_);
    auto woken = [this] { return !threadsafe_ready_.empty(); };
    if (!timeout) {
        threadsafe_cv_.wait(lock, woken);
    } else if (*timeout > 0) {
        threadsafe_cv_.wait_for(lock, std::chrono::duration<double>(*timeout), woken);
    }
}

void EventLoop::write_to_self() { threadsafe_cv_.notify_one(); }
// [/docs:select]

// [docs:run_once]
void EventLoop::run_once() {
    check_closed();  // nothing could ever wake a closed loop
    RunningPass pass(*this);
    drop_cancelled_timers();
    take_threadsafe_ready();

    // 1. Wait: until the next timer is due, or another thread wakes us.
    select(compute_timeout());
    take_threadsafe_ready();

    // 2. Move every timer that is due to the ready queue, in (deadline, order) order.
    const double now = time();
    while (!timers_.empty() && timers_.front().when <= now) {
        std::pop_heap(timers_.begin(), timers_.end(), Later{});
        Ref<TimerHandle> h = std::move(timers_.back().handle);
        timers_.pop_back();
        h->scheduled_in_ = nullptr;
        if (h->cancelled())
            --cancelled_timers_;
        else
            ready_.push_back(std::move(h));
    }

    // 3. Run what was ready when the pass began, and only that: a callback scheduled by one
    //    of these callbacks waits for the next pass, so a callback that keeps rescheduling
    //    itself can't starve the timers or the wait.
    for (std::size_t ntodo = ready_.size(); ntodo > 0; --ntodo) {
        Ref<Handle> h = std::move(ready_.front());
        ready_.pop_front();
        if (!h->cancelled()) run_handle(*h);
    }
}
// [/docs:run_once]

void EventLoop::run_handle(Handle& h) {
    const bool timed = debug_;  // once: the callback may switch debug mode
    auto start = timed ? time() : 0.0;
    try {
        h.run();
    } catch (...) {
        call_exception_handler(ExceptionContext{"Exception in callback " + h.name(), std::current_exception()});
    }
    if (timed) {
        double took = time() - start;
        if (took >= slow_callback_duration) {
            char buf[64];
            std::snprintf(buf, sizeof buf, " took %.3f seconds", took);
            log("Executing " + h.name() + buf);
        }
    }
}

void EventLoop::run_forever() {
    check_closed();
    check_not_running();
    running_ = true;
    tl_running_loop = this;
    // Whatever happens, leave the loop not running (and not stopping) on the way out.
    struct Reset {
        EventLoop& loop;
        ~Reset() {
            loop.stopping_ = false;
            loop.running_ = false;
            tl_running_loop = nullptr;
        }
    } reset{*this};
    for (;;) {
        run_once();
        if (stopping_) break;
    }
}

void EventLoop::close() {
    if (running_) throw RuntimeError("Cannot close a running event loop: call stop() and let run_forever return first");
    if (closed_) return;
    // Callbacks may add callbacks; each runs once, in the order added. One that throws is
    // reported like a failing callback: close() must finish, since the destructor calls it.
    for (std::size_t i = 0; i < close_callbacks_.size(); ++i) {
        auto fn = std::move(close_callbacks_[i]);
        try {
            fn();
        } catch (...) {
            call_exception_handler(ExceptionContext{"Exception in close callback", std::current_exception()});
        }
    }
    close_callbacks_.clear();
    closed_ = true;
    std::vector<Ref<Handle>> threadsafe_ready;
    {
        std::lock_guard<std::mutex> lock(threadsafe_mutex_);
        threadsafe_closed_ = true;
        threadsafe_ready.swap(threadsafe_ready_);  // freed below, unlocked: a destructor may post
    }
    threadsafe_ready.clear();
    // Releasing these frees whatever they own. Move them out first, so the loop's own
    // queues are already empty while those destructors run. (A destructor must not
    // schedule work: the loop is closed, and call_soon would throw.)
    auto ready = std::move(ready_);
    ready_.clear();
    auto timers = std::move(timers_);
    timers_.clear();
    for (auto& e : timers) e.handle->scheduled_in_ = nullptr;
    cancelled_timers_ = 0;
}

void EventLoop::add_signal_handler(int sig, std::function<void()>) {
    throw NotImplementedError("add_signal_handler(" + std::to_string(sig) +
                              "): this event loop cannot watch signals; use a loop that waits on file descriptors");
}

bool EventLoop::remove_signal_handler(int sig) {
    throw NotImplementedError("remove_signal_handler(" + std::to_string(sig) + "): this event loop cannot watch signals");
}

void EventLoop::log(std::string_view message) const {
    if (logger_) {
        Logger logger = logger_;  // a copy: the logger may replace itself while it runs
        try {
            logger(message);
            return;
        } catch (...) {  // a broken logger must not take the loop down: fall back to stderr
            std::fprintf(stderr, "(the loop's logger threw; the message follows)\n");
        }
    }
    std::fprintf(stderr, "%.*s\n", int(message.size()), message.data());
}

void EventLoop::default_exception_handler(const ExceptionContext& context) {
    std::string text = context.message;
    if (context.exception) {
        try {
            std::rethrow_exception(context.exception);
        } catch (const std::exception& e) {
            text += std::string(": ") + e.what();
        } catch (...) {
            text += ": (an exception not derived from std::exception)";
        }
    }
    log(text);
}

void EventLoop::call_exception_handler(const ExceptionContext& context) {
    if (!exception_handler_) {
        default_exception_handler(context);
        return;
    }
    ExceptionHandler handler = exception_handler_;  // a copy: it may replace itself while it runs
    try {
        handler(*this, context);
    } catch (...) {
        // A broken handler must not take the loop down; report both, as asyncio does.
        default_exception_handler(ExceptionContext{"Unhandled error in exception handler", std::current_exception()});
        default_exception_handler(context);
    }
}

EventLoop& get_running_loop() {
    if (!tl_running_loop) throw RuntimeError("no running event loop: call this from inside a callback or coroutine");
    return *tl_running_loop;
}

EventLoop* running_loop_or_null() noexcept { return tl_running_loop; }

namespace {
EventLoopFactory g_event_loop_factory = nullptr;  // nullptr: stage 2's EventLoop
}  // namespace

std::unique_ptr<EventLoop> new_event_loop() {
    if (!g_event_loop_factory) return std::make_unique<EventLoop>();
    std::unique_ptr<EventLoop> loop = g_event_loop_factory();
    if (!loop) throw RuntimeError("new_event_loop(): the factory given to set_event_loop_factory returned no loop");
    return loop;
}

EventLoopFactory set_event_loop_factory(EventLoopFactory factory) noexcept {
    return std::exchange(g_event_loop_factory, factory);
}

}  // namespace aio
