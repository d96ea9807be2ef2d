// Stage 3: Futures and Tasks. The errors asyncio names.
//
// Adds:    CancelledError, InvalidStateError, TimeoutError, ExceptionGroup (Python's
//          built-in, which a TaskGroup raises), and KeyboardInterrupt (what run() raises
//          after Ctrl-C).
// Mirrors: Lib/asyncio/exceptions.py. As there, CancelledError is not a kind of ordinary
//          error: it derives from std::exception directly, not from std::runtime_error, so
//          code that catches runtime errors to recover does not swallow a cancellation.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// Whether `e` holds a CancelledError (false for null).
inline bool is_cancelled_error(const std::exception_ptr& e) noexcept {
    if (!e) return false;
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

// An operation that is not allowed in the Future's current state, such as setting the
// result of a Future that is already done, or reading the result of one that is not.
class InvalidStateError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// A timeout() scope's deadline passed and what it was running has been cancelled (raised
// by timeout(), timeout_at(), wait_for(), and as_completed()'s next()).
class TimeoutError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Several errors at once: what a TaskGroup raises when its tasks (or its body) failed,
// every failure kept, in the order they happened. Python's built-in ExceptionGroup; C++ has
// no `except*`, so look through exceptions() (rethrow each to catch it by type).
class ExceptionGroup : public std::runtime_error {
public:
    ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
        : std::runtime_error(describe(message, exceptions)), message_(message), exceptions_(std::move(exceptions)) {}
    // The group's own message ("unhandled errors in a TaskGroup"); what() adds the count and
    // each exception's what().
    const std::string& message() const noexcept { return message_; }
    const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

private:
    static std::string describe(const std::string& message, const std::vector<std::exception_ptr>& exceptions) {
        std::string out = message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
                          (exceptions.size() == 1 ? "" : "s");
        const char* sep = ": ";
        for (const auto& e : exceptions) {
            out += sep;
            sep = "; ";
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                out += x.what();
            } catch (...) {
                out += "(an exception that is not a std::exception)";
            }
        }
        return out + ")";
    }
    std::string message_;
    std::vector<std::exception_ptr> exceptions_;
};

// Python's KeyboardInterrupt: run() raises it when Ctrl-C (SIGINT) cancelled the main
// task. Like CancelledError, not a runtime_error: a `catch (std::runtime_error&)` meant for
// ordinary failures must not swallow the user's request to stop.
class KeyboardInterrupt : public std::exception {
public:
    const char* what() const noexcept override { return "KeyboardInterrupt"; }
};

}  // namespace aio
