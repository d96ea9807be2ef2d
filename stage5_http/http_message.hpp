// Stage 5: HTTP/1.1. What a parsed message head holds: request and response heads, how the
// body is framed, and whether the connection may carry another message afterwards.
//
// Adds:    HttpVersion, BodyFraming, HttpRequestHead, HttpResponseHead, keep_alive().
// Mirrors: aiohttp's RawRequestMessage and RawResponseMessage (http_parser.py), named
//          tuples of method, path, version, headers, should_close, chunked, upgrade. Ours
//          keep their bytes in their HttpHeaders' buffer, so a head owns everything it
//          shows and outlives the parser's input.
#pragma once

#include <cstdint>
#include <string_view>

#include "stage5_http/http_grammar.hpp"
#include "stage5_http/http_headers.hpp"

namespace aio {

struct HttpVersion {
    int major = 1;
    int minor = 1;
    bool operator==(const HttpVersion&) const = default;
};

// How the end of a message's body is found (RFC 9112 §6.3), decided once its head is read.
enum class BodyFraming : std::uint8_t {
    none,            // no body: a request without Content-Length or Transfer-Encoding, a
                     // response to HEAD, a 1xx, 204 or 304 (§6.3 items 1 and 7)
    content_length,  // exactly content_length bytes (§6.3 item 6)
    chunked,         // Transfer-Encoding: chunked, a series of chunks (§7.1)
    until_eof,       // a response without either: the body ends when the server closes (§6.3 item 8)
    tunnel,          // a 101 response or a 2xx to CONNECT: the bytes that follow are not HTTP (§6.3 item 2)
};

const char* to_string(BodyFraming f) noexcept;

// Whether the Connection field and the version let a connection carry another message
// after this one (RFC 9112 §9.3): HTTP/1.1 keeps it unless "Connection: close"; HTTP/1.0
// closes it unless "Connection: keep-alive". The heads' keep_alive also counts the framing
// (a body that ends at close leaves nothing to reuse).
inline bool keep_alive(HttpVersion version, const HttpHeaders& headers) {
    bool close = false, keep = false;
    for (HttpHeaders::Field f : headers) {
        if (!iequals(f.name, "connection")) continue;
        close = close || list_contains(f.value, "close");
        keep = keep || list_contains(f.value, "keep-alive");
    }
    if (close) return false;
    return version.minor >= 1 || keep;
}

// A request's start line and fields.
class HttpRequestHead {
public:
    std::string_view method() const { return headers.slice(method_); }   // "GET", case-sensitive
    std::string_view target() const { return headers.slice(target_); }   // "/path?query", as sent
    HttpVersion version;
    HttpHeaders headers;  // its buffer also holds the bytes method() and target() show

    BodyFraming framing = BodyFraming::none;
    std::uint64_t content_length = 0;  // the body's size when framing is content_length
    // After this request the connection may carry another (keep_alive() and the framing).
    bool keep_alive = true;
    // CONNECT, or "Upgrade" with "Connection: upgrade" (RFC 9110 §7.8, §9.3.6): the server
    // may switch protocols after this request, so the parser stops after it (see
    // HttpParser's upgrade event).
    bool upgrade = false;
    // "Expect: 100-continue" (RFC 9110 §10.1.1): the client waits for a 100 before the body.
    bool expect_continue = false;

private:
    friend class HttpParser;
    HttpSpan method_, target_;
};

// A response's status line and fields.
class HttpResponseHead {
public:
    int status = 0;                                                     // 100-599
    std::string_view reason() const { return headers.slice(reason_); }  // may be empty
    HttpVersion version;
    HttpHeaders headers;

    BodyFraming framing = BodyFraming::none;
    std::uint64_t content_length = 0;
    bool keep_alive = true;
    // 101 Switching Protocols, or a 2xx answer to CONNECT: the connection is no longer HTTP.
    bool upgrade = false;

private:
    friend class HttpParser;
    HttpSpan reason_;
};

inline const char* to_string(BodyFraming f) noexcept {
    switch (f) {
    case BodyFraming::none: return "none";
    case BodyFraming::content_length: return "content-length";
    case BodyFraming::chunked: return "chunked";
    case BodyFraming::until_eof: return "until-eof";
    case BodyFraming::tunnel: return "tunnel";
    }
    return "?";
}

}  // namespace aio
