// Stage 4: readiness I/O. The errors of the network, named as Python names them.
//
// Adds:    OSError (errno and message), its ConnectionError family (ConnectionRefusedError,
//          ConnectionResetError, ConnectionAbortedError, BrokenPipeError), gaierror (a name
//          that getaddrinfo cannot resolve), KeyError (the selectors' "not registered" and
//          "already registered"), EOFError and IncompleteReadError (the peer stopped early),
//          LimitOverrunError (a stream's separator did not come within its limit); and
//          os_error(err, context), which picks the class for an errno.
// Mirrors: Python's built-in OSError hierarchy (Objects/exceptions.c: errno -> subclass),
//          socket.gaierror, and IncompleteReadError and LimitOverrunError in
//          Lib/asyncio/exceptions.py.
//
// Like Python's, every message starts "[Errno N] <strerror>" and then says what we were
// doing and with whom ("... : connect to 127.0.0.1:8080"), so a log line names the peer.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace aio {

// A failed system call: errno() is the error number, what() the full message.
class OSError : public std::runtime_error {
public:
    OSError(int err, const std::string& message) : std::runtime_error(message), errno_(err) {}
    // The errno value (ECONNREFUSED, ...); for a gaierror, the EAI_* code.
    int error_number() const noexcept { return errno_; }

private:
    int errno_;
};

// The connection-level errors: the peer refused, reset or went away.
class ConnectionError : public OSError {
public:
    using OSError::OSError;
};
class ConnectionRefusedError : public ConnectionError {  // ECONNREFUSED: nobody listens there
public:
    using ConnectionError::ConnectionError;
};
class ConnectionResetError : public ConnectionError {  // ECONNRESET: the peer reset (RST)
public:
    using ConnectionError::ConnectionError;
};
class ConnectionAbortedError : public ConnectionError {  // ECONNABORTED
public:
    using ConnectionError::ConnectionError;
};
class BrokenPipeError : public ConnectionError {  // EPIPE, ESHUTDOWN: writing to a closed peer
public:
    using ConnectionError::ConnectionError;
};

// socket.gaierror: getaddrinfo failed. error_number() is the EAI_* code (negative on glibc).
class gaierror : public OSError {
public:
    using OSError::OSError;
};

// The "[Errno N] strerror: context" error for errno `err`, of the class Python would raise
// (ConnectionRefusedError for ECONNREFUSED, ..., OSError for the rest).
std::exception_ptr os_error(int err, const std::string& context);
[[noreturn]] void throw_os_error(int err, const std::string& context);

// Python's KeyError, as selectors.py raises it: an fd registered twice, or one that is not
// registered.
class KeyError : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};

// The peer closed the connection before the bytes we needed arrived.
class EOFError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// asyncio.IncompleteReadError: wanted `expected` bytes (nullopt: "up to a separator", as
// readuntil's None), got only `partial` before EOF.
class IncompleteReadError : public EOFError {
public:
    IncompleteReadError(std::string partial_bytes, std::optional<std::size_t> expected_bytes, const std::string& context)
        : EOFError(describe(partial_bytes.size(), expected_bytes) + ": " + context),
          partial(std::move(partial_bytes)),
          expected(expected_bytes) {}
    std::string partial;                  // what did arrive
    std::optional<std::size_t> expected;  // how much was wanted; nullopt for readuntil

private:
    static std::string describe(std::size_t got, std::optional<std::size_t> expected) {
        if (!expected) return std::to_string(got) + " bytes read, then EOF before the separator";
        return std::to_string(got) + " bytes read on a total of " + std::to_string(*expected) + " expected bytes";
    }
};

// asyncio.LimitOverrunError: a StreamReader's readuntil() found no separator within the
// reader's limit. The data stays in the reader's buffer; `consumed` says how many bytes
// may be taken (read(consumed)) to get past the ones that were searched.
class LimitOverrunError : public std::runtime_error {
public:
    LimitOverrunError(const std::string& message, std::size_t consumed_bytes)
        : std::runtime_error(message), consumed(consumed_bytes) {}
    std::size_t consumed;
};

}  // namespace aio
