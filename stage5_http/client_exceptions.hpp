// Stage 5: HTTP/1.1. The errors a client raises, named as aiohttp names them.
//
// Adds:    ClientError and its family: ClientConnectionError, ClientConnectorError (could
//          not connect), ServerDisconnectedError (the server closed before answering in
//          full), ClientResponseError (raise_for_status) and TooManyRedirects,
//          BadResponseError (a malformed response, wrapping the parser's HttpError),
//          ClientPayloadError (the body could not be read to its end); and
//          ConnectionTimeoutError, the TimeoutError of the connect timeout.
// Mirrors: aiohttp/client_exceptions.py. aiohttp raises ClientResponseError(status=400) for
//          a malformed response; ours has a class of its own that keeps the parser's status,
//          offset and problem. Every message names the method and the URL, so one log line
//          says which request failed and why.
//
// The timeouts are stage 3's TimeoutError (asyncio.TimeoutError, as aiohttp's are): the
// total timeout raises a TimeoutError, the connect timeout a ConnectionTimeoutError derived
// from it, each saying which timeout, how long, and the URL.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "stage3_tasks_futures/exceptions.hpp"
#include "stage5_http/http_exceptions.hpp"

namespace aio {

// Everything the client raises about a request, except InvalidURL (url.hpp, raised before
// anything is sent), the timeouts (TimeoutError) and cancellation.
class ClientError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The connection failed: it could not be made, or it broke.
class ClientConnectionError : public ClientError {
public:
    using ClientError::ClientError;
};

// Could not connect to the host (refused, unreachable, a name that does not resolve).
// error_number() is the OSError's errno (ECONNREFUSED, ...), or the EAI_* code of a
// gaierror; the message includes the OSError's.
class ClientConnectorError : public ClientConnectionError {
public:
    ClientConnectorError(int err, const std::string& message) : ClientConnectionError(message), errno_(err) {}
    int error_number() const noexcept { return errno_; }

private:
    int errno_;
};

// The server closed the connection (or reset it) before the response was complete. On a
// reused keep-alive connection, before any byte of the response, this is the "stale
// connection" that the session retries once for an idempotent method.
class ServerDisconnectedError : public ClientConnectionError {
public:
    using ClientConnectionError::ClientConnectionError;
};

// The response's head was malformed (or lied about its framing): the parser's HttpError,
// with the request named. The connection is closed, never reused.
class BadResponseError : public ClientError {
public:
    BadResponseError(const HttpError& e, const std::string& request)
        : ClientError("invalid response to " + request + ": " + e.what()),
          status_(e.status()),
          offset_(e.offset()),
          problem_(e.problem()) {}
    // What the parser said: its status class (400, 431, ...), the byte offset in the
    // connection's input, and the problem.
    int parser_status() const noexcept { return status_; }
    std::uint64_t offset() const noexcept { return offset_; }
    const std::string& problem() const noexcept { return problem_; }

private:
    int status_;
    std::uint64_t offset_;
    std::string problem_;
};

// The body could not be read to its end: the connection broke or the body was malformed
// (a bad chunk size, a body shorter than its Content-Length).
class ClientPayloadError : public ClientError {
public:
    using ClientError::ClientError;
};

// A response with a status that the caller asked to be an error (raise_for_status: 400 and
// above), or a redirect that could not be followed. status() is the response's.
class ClientResponseError : public ClientError {
public:
    ClientResponseError(int status, const std::string& message) : ClientError(message), status_(status) {}
    int status() const noexcept { return status_; }

private:
    int status_;
};

// More redirects than max_redirects.
class TooManyRedirects : public ClientResponseError {
public:
    using ClientResponseError::ClientResponseError;
};

// The connect timeout passed (waiting for a free connection of the pool, resolving the
// name and connecting all count). aiohttp 3.10's ConnectionTimeoutError.
class ConnectionTimeoutError : public TimeoutError {
public:
    using TimeoutError::TimeoutError;
};

}  // namespace aio
