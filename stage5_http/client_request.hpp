// Stage 5: HTTP/1.1. A client's request, and the rules every client follows with it: what
// goes on the wire, which methods may be retried, and where a redirect leads.
//
// Adds:    ClientRequest (method, url, headers, body), write_request_head_for (the bytes
//          of its head, with Host, Accept, User-Agent and Content-Length filled in),
//          is_idempotent, is_redirect, follow_redirect; format_seconds (how both clients'
//          timeout errors write a duration).
// Mirrors: aiohttp's ClientRequest (client_reqrep.py: update_headers, update_body_from_data,
//          write_bytes) and the redirect branch of ClientSession._request (client.py);
//          requests' Session.resolve_redirects and rebuild_method (sessions.py).
//
// This file knows nothing of the event loop: the asynchronous ClientSession and the
// BlockingSession share it, so both send the same bytes and follow the same redirects.
#pragma once

#include <string>
#include <string_view>

#include "stage5_http/http_headers.hpp"
#include "stage5_http/url.hpp"

namespace aio {

// What to send: aiohttp's ClientRequest, reduced to its data. (A user-declared constructor:
// g++ 12 destroys an aggregate's members twice when one is built inside a co_await.)
struct ClientRequest {
    ClientRequest(std::string method_, URL url_, HttpHeaders headers_ = {}, std::string body_ = {})
        : method(std::move(method_)), url(std::move(url_)), headers(std::move(headers_)), body(std::move(body_)) {}
    std::string method;  // "GET", as given (methods are case-sensitive, RFC 9110 §9.1)
    URL url;
    HttpHeaders headers;  // the caller's fields; the head adds Host and the others (below)
    std::string body;     // sent with a Content-Length
    // "METHOD url", for messages.
    std::string describe() const { return method + " " + url.str(); }
};

// The User-Agent sent unless the caller gives one.
inline constexpr std::string_view kUserAgent = "aio-course/1.0";

// Appends the request's head to `out`: the request line with url.target(), the caller's
// fields, and those it did not give: Host (url.authority(), RFC 9110 §7.2), Accept: */*,
// User-Agent, and Content-Length when there is a body or the method is one that carries
// content (POST, PUT, PATCH: RFC 9110 §8.6 asks for "Content-Length: 0" then). The body
// itself is not appended: the caller sends it after the head, in the same system call.
// Throws std::invalid_argument for a method that is not a token, or a Content-Length or
// Transfer-Encoding field from the caller (the body's framing is the client's business).
void write_request_head_for(std::string& out, const ClientRequest& request);

// Whether a request with this method may be sent twice with the same effect as once
// (RFC 9110 §9.2.2): GET, HEAD, PUT, DELETE, OPTIONS, TRACE. Only these are retried when
// a reused connection turns out to be closed.
bool is_idempotent(std::string_view method) noexcept;

// 301, 302, 303, 307 and 308: the redirects a client follows (RFC 9110 §15.4).
bool is_redirect(int status) noexcept;

// Turns `request` into the one that follows a `status` redirect to `location`, by RFC 9110
// §15.4's rules as browsers, aiohttp and requests apply them:
//   303 See Other:          GET (HEAD stays HEAD), without the body;
//   301, 302 (for a POST):  GET without the body (§15.4.2 and .3 allow it, and every
//                           client does it); other methods are kept;
//   307, 308:               the same method and body.
// The location is resolved against the request's URL (URL::join, RFC 3986 §5.2), and the
// fragment of the old URL carries over when the new one has none (RFC 9110 §10.2.2).
// Dropping the body drops its Content-Type too; a redirect to another host or port drops
// Authorization and Cookie (they were meant for the first origin). Returns false (and
// changes nothing) if `status` is not a redirect. Throws InvalidURL if `location` does not
// resolve to an http URL (a redirect to https:// says that TLS is not supported).
bool follow_redirect(ClientRequest& request, int status, std::string_view location);

// `s` seconds as both clients' timeout errors write them ("%g": 0.5, 10, 1e+03).
std::string format_seconds(double s);

}  // namespace aio
