// Stage 3: Futures and Tasks. The errors asyncio names.
//
// Adds:    CancelledError, InvalidStateError, TimeoutError, KeyboardInterrupt.
// Mirrors: Lib/asyncio/exceptions.py. As there, CancelledError is not a kind of ordinary
//          error: it derives from std::exception directly, not from std::runtime_error, so
//          code that catches runtime errors to recover does not swallow a cancellation.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace aio {

// Delivered at a task's await point by Task::cancel(), and raised by the result() of a
// cancelled Future. Catch it to clean up, then usually let it go on.
class CancelledError : public std::exception {
public:
    explicit CancelledError(std::string msg = "") : msg_(std::move(msg)) {}
    const char* what() const noexcept override { return msg_.empty() ? "CancelledError" : msg_.c_str(); }
    // The message given to cancel(msg), possibly empty.
    const std::string& message() const noexcept { return msg_; }

private:
    std::string msg_;
};

// An operation that is not allowed in the Future's current state, such as setting the
// result of a Future that is already done, or reading the result of one that is not.
class InvalidStateError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// wait_for() ran out of time (the awaitable has been cancelled).
class TimeoutError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Python's KeyboardInterrupt: run() raises it when Ctrl-C (SIGINT) cancelled the main
// task. Like CancelledError, not a runtime_error: a `catch (std::runtime_error&)` meant for
// ordinary failures must not swallow the user's request to stop.
class KeyboardInterrupt : public std::exception {
public:
    const char* what() const noexcept override { return "KeyboardInterrupt"; }
};

}  // namespace aio
