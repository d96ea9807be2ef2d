// Stage 5: HTTP/1.1, the server. What a handler answers: a Response, and how its head is
// written on the server's fast path.
//
// Adds:    Response (status, reason, content_type, headers, body; text(), json()),
//          append_response_head (the head, formatted without allocating), http_date (the
//          Date field, cached per second).
// Mirrors: aiohttp's web.Response (web_response.py: status, reason, headers, body, text,
//          content_type) and the head its StreamWriter writes (http_writer.py). The Date
//          cache is nginx's (ngx_cached_http_time), which aiohttp copies too
//          (web_protocol's _date_service).
//
// A Response is a plain value: a handler builds one and returns it, and the server writes
// it after the handler has returned. Streaming a body as it is produced is StreamResponse's
// job (web_stream_response.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "stage5_http/http_headers.hpp"
#include "stage5_http/http_message.hpp"

namespace aio {

class StreamResponse;

class Response {
public:
    // 200 with an empty body; set the fields, or use text()/json().
    Response() = default;
    explicit Response(int status_code, std::string body_bytes = {}) : status(status_code), body(std::move(body_bytes)) {}

    // A text/plain (UTF-8) response, aiohttp's web.Response(text=...).
    static Response text(std::string body, int status = 200) { return Response(status, std::move(body)); }
    // An application/json response, aiohttp's web.json_response (the text is yours: this
    // course has no JSON library; see web_httpbin.cpp's json_string).
    static Response json(std::string body, int status = 200) {
        Response r(status, std::move(body));
        r.content_type = "application/json";
        return r;
    }

    int status = 200;     // 100-599; the server refuses others with a 500
    std::string reason;   // empty: the standard phrase of `status` (reason_phrase)
    // Empty: "text/plain; charset=utf-8", written from a literal (a default held here as a
    // std::string would cost an allocation per response: it is longer than the 15 bytes a
    // std::string keeps inline). A control character (a CR or LF) is refused with a 500.
    std::string content_type;
    // More fields. The server writes Date, Server, Content-Length (or Transfer-Encoding) and
    // Connection itself: a Content-Length or Transfer-Encoding here is refused (a 500), since
    // a wrong one would make the client read the wrong bytes as the next response.
    HttpHeaders headers;
    std::string body;

private:
    friend class StreamResponse;
    friend class RequestHandler;
    // A StreamResponse has sent this exchange's response already (see StreamResponse's
    // conversion): the server writes nothing more.
    bool sent_ = false;
};

// The value of a Date field for now, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7),
// computed at most once per second per thread; the view is valid until the next call.
std::string_view http_date();

// What append_response_head needs to know besides the response.
struct ResponseFraming {
    HttpVersion version{1, 1};  // the request's: an HTTP/1.0 client gets an HTTP/1.0 answer
    bool keep_alive = true;     // else "Connection: close"
    bool chunked = false;       // Transfer-Encoding: chunked instead of Content-Length
    bool until_close = false;   // neither: the body ends when the connection closes (HTTP/1.0 streaming)
};

// Appends the status line and the fields of `response` to `out`: Server, Date,
// Content-Type, Content-Length (the body's size, also for a response to HEAD, which then
// sends no body) or Transfer-Encoding, Connection when it is not the version's default,
// the response's own fields, and the empty line. Allocates nothing once `out` has grown to
// size. Throws std::invalid_argument for a status outside 100-599 or a Content-Length /
// Transfer-Encoding among the response's fields.
void append_response_head(std::string& out, const Response& response, const ResponseFraming& framing);

// A short plain-text answer the server writes itself (400, 404, 408, 413, 500, ...): the
// status, its phrase, and `detail` on one line. Always "Connection: close" when !keep_alive.
Response error_response(int status, std::string_view detail);

}  // namespace aio
