// Stage 4: readiness I/O. From an errno to the exception Python would raise (exceptions.hpp).
#include "stage4_sockets/exceptions.hpp"

#include <cerrno>
#include <cstring>

namespace aio {

std::exception_ptr os_error(int err, const std::string& context) {
    // Python's format: "[Errno 111] Connection refused", then what we were doing.
    std::string message = "[Errno " + std::to_string(err) + "] " + std::strerror(err) + ": " + context;
    switch (err) {
        case ECONNREFUSED:
            return std::make_exception_ptr(ConnectionRefusedError(err, message));
        case ECONNRESET:
            return std::make_exception_ptr(ConnectionResetError(err, message));
        case ECONNABORTED:
            return std::make_exception_ptr(ConnectionAbortedError(err, message));
        case EPIPE:
        case ESHUTDOWN:
            return std::make_exception_ptr(BrokenPipeError(err, message));
        default:
            return std::make_exception_ptr(OSError(err, message));
    }
}

void throw_os_error(int err, const std::string& context) { std::rethrow_exception(os_error(err, context)); }

}  // namespace aio
