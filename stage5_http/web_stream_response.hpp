// Stage 5: HTTP/1.1, the server. A response whose body is written while it is produced.
//
// Adds:    StreamResponse (prepare, write, write_eof; converts to the Response a coroutine
//          handler returns).
// Mirrors: aiohttp's web.StreamResponse (web_response.py): `await resp.prepare(request)`,
//          `await resp.write(data)`, `await resp.write_eof()`, `return resp`.
//
//     Coroutine<Response> numbers(Request& request) {
//         StreamResponse response(request);
//         co_await response.prepare();                   // the head: Transfer-Encoding: chunked
//         for (int i = 0; i < 1000; ++i) {
//             std::string line = std::to_string(i) + "\n";
//             co_await response.write(line);             // one chunk; waits if the client is slow
//         }
//         co_await response.write_eof();                 // the last chunk
//         co_return response;
//     }
//
// Flow control is write()'s wait: it hands the chunk to the transport, then, if the
// transport's buffer is above its high-water mark (the client reads slower than we write),
// waits until it has drained to the low-water mark (the transport's resume_writing). So the
// memory a slow client can make the server hold is the high-water mark plus one chunk, what
// asyncio's `writer.write(); await writer.drain()` promises.
//
// For an HTTP/1.0 client (which knows no chunked coding) the body runs until the connection
// closes instead. For HEAD, the head is sent and write() sends nothing.
#pragma once

#include <string>
#include <string_view>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage5_http/http_headers.hpp"
#include "stage5_http/web_request.hpp"
#include "stage5_http/web_response.hpp"

namespace aio {

class RequestHandler;

class StreamResponse {
public:
    // For the request a coroutine handler was given; only one per request.
    explicit StreamResponse(Request& request, int status = 200) : request_(&request) { head_.status = status; }

    // Before prepare(): the head's fields (Response's, without a body).
    int& status() noexcept { return head_.status; }
    std::string& content_type() noexcept { return head_.content_type; }
    HttpHeaders& headers() noexcept { return head_.headers; }

    // Sends the head. Raises RuntimeError if called twice or if the handler was a plain
    // function, ConnectionResetError if the client has gone, std::invalid_argument for a
    // head the server refuses (see append_response_head).
    Coroutine<> prepare();
    // Sends `data` as one chunk (nothing for empty data), then waits while the client is
    // slow (see the top of this file). Raises ConnectionResetError once the client has gone
    // (a handler that ignores it stops at the next write), RuntimeError before prepare() or
    // after write_eof().
    Coroutine<> write(std::string_view data);
    // Ends the body (the last chunk). Done by the server if the handler returns without it.
    Coroutine<> write_eof();
    bool prepared() const noexcept { return prepared_; }

    // What the handler returns once it has written: it tells the server the answer has been
    // sent already (`co_return response;`).
    operator Response() const {
        Response r;
        r.status = head_.status;
        r.sent_ = true;
        return r;
    }

private:
    RequestHandler& connection(const char* what) const;
    Request* request_;
    Response head_;
    bool prepared_ = false;
};

}  // namespace aio
