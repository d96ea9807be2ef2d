// Stage 3: Futures and Tasks. The Timeout scope's entry, exit and timer (timeouts.hpp).
#include "stage3_tasks_futures/timeouts.hpp"

#include <string>

namespace aio {

Timeout::Timeout(std::optional<double> deadline, bool relative, const char* who) : who_(who) {
    task_ = TaskBase::current();
    if (!task_)
        throw RuntimeError(std::string(who) +
                           "() must run inside a task: co_await it from a coroutine that run() or create_task() runs");
    cancelling_at_entry_ = task_->cancelling();
    if (deadline && relative) deadline = *deadline + task_->get_loop().time();
    reschedule(deadline);
}

// The frame that holds the scope may be freed before the body ends (its loop closed): the
// timer must not fire into it.
Timeout::~Timeout() {
    if (timer_) timer_->cancel();
}

// [docs:timeout_leave]
// The body returned. If the deadline passed meanwhile, its cancellation did not reach the
// body (it caught it, or the task had already been woken): take the request back all the
// same, and the body's value stands.
void Timeout::leave() noexcept { take_back_expiry(); }

void Timeout::leave(std::exception_ptr failure) {
    if (take_back_expiry() && is_cancelled_error(failure))
        throw TimeoutError(std::string(who_) + ": timed out; what it was awaiting has been cancelled");
    std::rethrow_exception(failure);
}

// Stop the timer; if it fired, take its cancellation request back. Returns whether that
// request was the only one left over since entry (the count is back where it was): then a
// CancelledError in flight is this scope's own.
bool Timeout::take_back_expiry() noexcept {
    if (timer_) std::exchange(timer_, nullptr)->cancel();
    if (state_ != State::expiring) {
        state_ = State::exited;
        return false;
    }
    state_ = State::expired;
    return task_->uncancel() <= cancelling_at_entry_;
}
// [/docs:timeout_leave]

void Timeout::reschedule(std::optional<double> when) {
    if (state_ != State::entered)
        throw RuntimeError(std::string("Timeout::reschedule(): this ") + who_ + " has " +
                           (state_ == State::exited ? "ended" : "already expired") +
                           "; a deadline can only be moved before it passes, inside the scope");
    if (when && *when != *when)
        throw std::invalid_argument(std::string(who_) + ": the deadline is NaN; pass a number of seconds, or nullopt for none");
    if (timer_) std::exchange(timer_, nullptr)->cancel();
    when_ = when;
    if (!when) return;
    EventLoop& loop = task_->get_loop();
    // A deadline already past cancels on the next pass: the body runs until its first
    // await that has to wait, as in asyncio.
    if (*when <= loop.time())
        timer_ = loop.call_soon([this] { on_timeout(); }, "timeout");
    else
        timer_ = loop.call_at(*when, [this] { on_timeout(); }, "timeout");
}

void Timeout::on_timeout() {
    state_ = State::expiring;
    timer_ = nullptr;  // (the loop holds the handle that is running this)
    task_->cancel();
}

}  // namespace aio
