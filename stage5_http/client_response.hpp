// Stage 5: HTTP/1.1. What a client request returns: the response's head at once, its body
// when asked for, whole or in pieces.
//
// Adds:    ClientResponse (status, reason, headers, version, url, method, history, ok,
//          raise_for_status, read, text, content, release, close), ResponseContent (read(n),
//          readany, at_eof, buffered: the body as a stream).
// Mirrors: aiohttp's ClientResponse (client_reqrep.py) and its `content`, a StreamReader
//          over the payload (streams.py: read(n), readany(), iter_chunked(n)).
//
// A response owns its connection until the body has been read to the end. Then the
// connection goes back to the session's pool at once (keep-alive), and the response keeps
// only its head (and the body, if read() was used). A response destroyed, released or
// closed before its end closes the connection instead: the rest of the body is still on
// its way, and the next request would read it as its own response.
//
//     ClientResponse r = co_await session.get(url);      // the head has arrived
//     std::string body = co_await r.read();              // the whole body (kept: read() again
//                                                        // returns it)
//     for (;;) {                                         // or: the body in pieces, in
//         std::string piece = co_await r.content().read(65536);  // bounded memory
//         if (piece.empty()) break;                      // "" only at the end
//         ...
//     }
//
// Errors while reading the body: ClientPayloadError (the connection broke, or the body
// was malformed: a bad chunk, fewer bytes than Content-Length), naming the request;
// TimeoutError when the session's total timeout passes (it covers reading the body, as
// aiohttp's does). Each closes the connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage5_http/client_connector.hpp"
#include "stage5_http/http_message.hpp"
#include "stage5_http/url.hpp"

namespace aio {

class ClientResponse;

namespace detail {
struct ResponseState;
}

// The body as a stream: aiohttp's `response.content`. Reads take the bytes out of the
// connection's parser as they arrive; at most one task reads at a time.
class ResponseContent {
public:
    // Up to n bytes, as soon as at least one has arrived; "" once the body has ended. n < 0
    // reads the whole rest. (StreamReader.read(n).)
    Coroutine<std::string> read(std::ptrdiff_t n = -1);
    // Whatever has arrived (at least one byte), "" at the end. (StreamReader.readany().)
    Coroutine<std::string> readany();
    // The body has been read to its end.
    bool at_eof() const noexcept;
    // Bytes of the body (and the connection's read-ahead) held in memory and not yet
    // returned: flow control keeps this bounded (ResponseHandler::kHighWater) however large
    // the body and however slowly it is read.
    std::size_t buffered() const noexcept;

private:
    friend struct detail::ResponseState;
    explicit ResponseContent(detail::ResponseState& state) : state_(&state) {}
    detail::ResponseState* state_;
};

namespace detail {
// What a response holds, shared with the coroutines reading it (they keep it alive even if
// the ClientResponse is moved meanwhile).
struct ResponseState : RefCounted {
    ResponseState(std::string method_, URL url_, Connection connection_, HttpResponseHead head_);
    std::string method;
    URL url;
    Connection connection;  // until the body's end (then released) or an error (closed)
    HttpResponseHead head;
    std::optional<double> deadline;  // loop.time() when the total timeout expires
    double total = 0;                // that timeout, in seconds, for messages
    std::string leftover;            // a data event's bytes beyond what read(n) asked for
    std::size_t leftover_pos = 0;
    bool eof = false;                    // end_of_message seen
    std::optional<std::string> body;     // read()'s result, kept for a second read()
    ResponseContent content{*this};

    std::string describe() const { return method + " " + url.str(); }
    // The next piece of the body, at most `max` bytes; "" at the end.
    static Coroutine<std::string> read_some(Ref<ResponseState> self, std::size_t max);
    // The rest of the body; kept in `body`, so that a second call returns the same.
    static Coroutine<std::string> read_all(Ref<ResponseState> self);
    // The connection's parser has nothing for us: wait for data, within the deadline.
    static Coroutine<> wait(Ref<ResponseState> self);
    // A body framed as none (HEAD, 204, 304): end_of_message is already there; take it and
    // give the connection back.
    void finish_if_empty();
};
}  // namespace detail

class ClientResponse {
public:
    // Made by ClientSession (client_session.hpp) once the head has arrived.
    explicit ClientResponse(Ref<detail::ResponseState> state) : state_(std::move(state)) {}
    ClientResponse(ClientResponse&&) noexcept = default;
    ClientResponse& operator=(ClientResponse&& o) noexcept;
    ~ClientResponse() { close(); }

    int status() const noexcept { return state_->head.status; }
    std::string_view reason() const { return state_->head.reason(); }
    const HttpHeaders& headers() const noexcept { return state_->head.headers; }
    HttpVersion version() const noexcept { return state_->head.version; }
    // The request this answers: after redirects, the last one's method and URL.
    const std::string& method() const noexcept { return state_->method; }
    const URL& url() const noexcept { return state_->url; }
    // Content-Length, if the body is framed by one.
    std::optional<std::uint64_t> content_length() const noexcept;
    // The redirect responses that led here, oldest first (heads only: their bodies were
    // read and dropped, or their connections closed). aiohttp's `history`.
    const std::vector<ClientResponse>& history() const noexcept { return history_; }
    void set_history(std::vector<ClientResponse> history) { history_ = std::move(history); }

    // status < 400.
    bool ok() const noexcept { return status() < 400; }
    // Raises ClientResponseError for a status of 400 or above, naming the request.
    void raise_for_status() const;

    // The whole body (what the response has not yet handed out through content()). Kept:
    // read() again returns the same bytes. Raises ClientPayloadError, TimeoutError.
    Coroutine<std::string> read();
    // read(): the body as text (no charset is decoded: the bytes as they came).
    Coroutine<std::string> text() { return read(); }
    // The body as a stream (see ResponseContent).
    ResponseContent& content() noexcept { return state_->content; }

    // Done with this response: if its body has been read to the end, the connection is in
    // the pool already; if not, it is closed (aiohttp's release()). The head stays readable.
    void release() { close(); }
    // Close the connection unless the body has been read to its end (which gave it back to
    // the pool). Idempotent; the destructor calls it.
    void close() noexcept;

private:
    Ref<detail::ResponseState> state_;
    std::vector<ClientResponse> history_;
};

}  // namespace aio
