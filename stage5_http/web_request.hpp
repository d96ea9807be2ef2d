// Stage 5: HTTP/1.1, the server. What a handler is given: the request.
//
// Adds:    Request (method, target, path, query_string, query, query_items, version,
//          headers, keep_alive, match_info, remote, body for plain handlers; read and
//          read_chunk for coroutine handlers); percent_decode.
// Mirrors: aiohttp's web.Request (web_request.py: method, path, query_string, query,
//          headers, version, keep_alive, match_info, remote, read(), content.readany()).
//
// Lifetime: the server makes the Request and passes it by reference; it is valid until the
// handler has returned (a coroutine handler: until its coroutine has finished). Keep no
// reference or view to it beyond that: copy what must live longer.
//
// The body. A plain handler (a function returning Response) is called once the whole body
// has arrived: body() holds it. A coroutine handler is started as soon as the head has
// arrived, so it can answer without reading the body, or read it piece by piece while it
// arrives (read_chunk), or whole (read); body() is then empty. Either way a body is at most
// the server's max_body_size (ServerConfig): more, and the client gets 413.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage4_sockets/socket.hpp"
#include "stage4_sockets/transports.hpp"
#include "stage5_http/http_message.hpp"

namespace aio {

class RequestHandler;

// "%41b+c" -> "Ab c" when `plus_is_space` (a query string, as HTML forms encode it), else
// "Ab+c". A '%' not followed by two hex digits is kept as it is.
std::string percent_decode(std::string_view text, bool plus_is_space);

class Request {
public:
    std::string_view method() const { return head_->method(); }
    // As sent: origin form "/path?query", absolute form "http://host/path?query", or "*".
    std::string_view target() const { return head_->target(); }
    // The path part of the target, still percent-encoded ("/a%20b"): what routes match.
    std::string_view path() const { return path_; }
    // What follows '?' in the target, undecoded ("" if none).
    std::string_view query_string() const { return query_; }
    // The first value of query parameter `name`, decoded; nullopt if absent.
    std::optional<std::string> query(std::string_view name) const;
    // Every (name, value) of the query string, decoded, in order.
    std::vector<std::pair<std::string, std::string>> query_items() const;
    HttpVersion version() const { return head_->version; }
    const HttpHeaders& headers() const { return head_->headers; }
    // The connection may carry another request after this one (version, Connection field).
    bool keep_alive() const { return head_->keep_alive; }
    // The value the route's {name} matched ("/delay/{seconds}" on "/delay/2": "2"), still
    // percent-encoded; "" if the route has no such part.
    std::string_view match_info(std::string_view name) const;
    // The client's address (transport.get_extra_info().peername).
    const SockAddr& remote() const { return *remote_; }
    // The connection's transport (aiohttp's request.transport): its extra info, its write
    // buffer's size. Null once the client has gone. Do not write to it or close it: the
    // server does.
    Transport* transport() const noexcept { return transport_; }

    // A plain handler: the whole body. A coroutine handler: empty (use read()).
    std::string_view body() const { return body_; }
    // A coroutine handler: the whole body (waits for it), at most the server's max_body_size.
    // Raises HttpError(413) past it (the client is then answered 413 by the server),
    // ConnectionResetError if the client went away. A second read() gives "".
    Coroutine<std::string> read();
    // The next piece of the body as it arrives, "" once it has all been read. Waiting for
    // it asks a client that sent "Expect: 100-continue" to send it. Between two calls the
    // server buffers at most about 64 KiB of body, then stops reading from the socket:
    // a slow reader slows the client down, never grows memory. Raises as read() does.
    Coroutine<std::string> read_chunk();

private:
    friend class RequestHandler;
    friend class StreamResponse;
    void set_target_parts();

    const HttpRequestHead* head_ = nullptr;  // the parser's (plain handler) or owned_head_
    HttpRequestHead owned_head_;             // a coroutine handler's own copy
    std::string_view path_, query_;
    // The route's {name} -> value pairs: views of the route's pattern and of path_. Keeps
    // its capacity from one request to the next.
    std::vector<std::pair<std::string_view, std::string_view>> match_;
    std::string_view body_;
    const SockAddr* remote_ = nullptr;      // the connection's copy
    Transport* transport_ = nullptr;
    RequestHandler* connection_ = nullptr;  // for read()/read_chunk() (a coroutine handler)
};

}  // namespace aio
