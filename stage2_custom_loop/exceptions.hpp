// Stage 2: the event loop. The loop's own errors.
//
// Adds:    RuntimeError, what asyncio raises for a misuse of the loop (running it twice,
//          using it after close()), and NotImplementedError, for what a kind of loop cannot
//          do. Each message says what went wrong and what to do.
// Mirrors: Python's builtin RuntimeError as Lib/asyncio/base_events.py raises it.
#pragma once

#include <stdexcept>

namespace aio {

class RuntimeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What a loop raises for an operation its kind of loop does not offer (add_signal_handler
// on a loop that cannot watch signals). As in Python, a kind of RuntimeError.
class NotImplementedError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
};

}  // namespace aio
