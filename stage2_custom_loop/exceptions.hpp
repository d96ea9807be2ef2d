// Stage 2: the event loop. The loop's own error.
//
// Adds:    RuntimeError, what asyncio raises for a misuse of the loop (running it twice,
//          using it after close()). Each message says what went wrong and what to do.
// Mirrors: Python's builtin RuntimeError as Lib/asyncio/base_events.py raises it.
#pragma once

#include <stdexcept>

namespace aio {

class RuntimeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace aio
