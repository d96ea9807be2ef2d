// Stage 5: HTTP/1.1. Serialising messages: the bytes a client or server sends.
//
// Adds:    write_request_head, write_response_head, write_chunk, write_last_chunk,
//          serialize_request, serialize_response, reason_phrase.
// Mirrors: aiohttp's http_writer.py (StreamWriter.write_headers, its chunked encoding) and
//          the status line and Content-Length that web_response.py adds. Ours write into a
//          std::string the caller owns and reuses, so sending a response allocates nothing
//          once the string has grown to size.
//
// Everything written is checked: a method that is not a token, a target or reason phrase with
// a control character, a Content-Length that disagrees with the body, both Content-Length and
// Transfer-Encoding: each throws std::invalid_argument (Python's ValueError) rather than send
// a message the peer would read differently from us. Field names and values were checked
// when they went into HttpHeaders.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "stage5_http/http_headers.hpp"
#include "stage5_http/http_message.hpp"

namespace aio {

// Appends "METHOD target HTTP/1.1\r\n", the fields, and the empty line.
void write_request_head(std::string& out, std::string_view method, std::string_view target,
                        const HttpHeaders& headers, HttpVersion version = {});
// Appends "HTTP/1.1 status reason\r\n", the fields, and the empty line. An empty reason
// writes "HTTP/1.1 204 \r\n" (the space stays, RFC 9112 §4).
void write_response_head(std::string& out, int status, std::string_view reason, const HttpHeaders& headers,
                         HttpVersion version = {});

// Appends one chunk of a chunked body: hex size, CRLF, the bytes, CRLF (RFC 9112 §7.1).
// Nothing for empty `bytes`: an empty chunk would end the body.
void write_chunk(std::string& out, std::string_view bytes);
// Appends the last chunk ("0\r\n"), the trailer fields, and the final CRLF.
void write_last_chunk(std::string& out, const HttpHeaders& trailers = {});

// A whole request. The framing follows `headers`: with "Transfer-Encoding: chunked" the
// body goes out as one chunk (then `trailers`); with Content-Length it must equal the
// body's size; with neither, a Content-Length is added when the body is not empty.
std::string serialize_request(std::string_view method, std::string_view target, const HttpHeaders& headers,
                              std::string_view body = {}, const HttpHeaders& trailers = {}, HttpVersion version = {});
// A whole response, framed the same way, except that without either field a Content-Length
// is always added (a response without one would run until the connection closes), and a 1xx,
// 204 or 304 gets none and must have no body (RFC 9110 §8.6, §15). The reason phrase is the
// standard one unless given.
std::string serialize_response(int status, const HttpHeaders& headers, std::string_view body = {},
                               const HttpHeaders& trailers = {}, HttpVersion version = {},
                               std::optional<std::string_view> reason = std::nullopt);

// The standard reason phrase of a status (RFC 9110 §15), "" for an unknown one.
std::string_view reason_phrase(int status) noexcept;

}  // namespace aio
