// Stage 5: HTTP/1.1. Serialising messages. See http_writer.hpp.
#include "stage5_http/http_writer.hpp"

#include <stdexcept>

#include "stage5_http/http_grammar.hpp"

namespace aio {

namespace {

void check_version(HttpVersion v) {
    if (v.major != 1 || v.minor > 1) throw std::invalid_argument("HTTP writer: only HTTP/1.0 and HTTP/1.1 are written");
}

void append_version(std::string& out, HttpVersion v) {
    out += "HTTP/1.";
    out += char('0' + v.minor);
}

void append_fields(std::string& out, const HttpHeaders& headers) {
    for (HttpHeaders::Field f : headers) {
        out.append(f.name);
        out += ": ";
        out.append(f.value);
        out += "\r\n";
    }
    out += "\r\n";
}

// The framing `headers` ask for, checked against the body.
enum class Framing { none_given, content_length, chunked };
Framing framing_of(const HttpHeaders& headers, std::string_view body) {
    bool te = false, cl = false;
    for (HttpHeaders::Field f : headers) {
        if (iequals(f.name, "transfer-encoding")) {
            if (!iequals(f.value, "chunked") || te)
                throw std::invalid_argument("HTTP writer: Transfer-Encoding '" + std::string(f.value) +
                                            "': only a single 'chunked' is written");
            te = true;
        } else if (iequals(f.name, "content-length")) {
            // The parser's rule: digits only, identical list elements (RFC 9110 §8.6).
            bool all_match = for_each_list_element(f.value, [&](std::string_view e) {
                if (e.empty()) return false;
                std::uint64_t n = 0;
                for (char c : e) {
                    if (!is_digit(c) || n > body.size()) return false;  // stop before it can overflow
                    n = n * 10 + std::uint64_t(c - '0');
                }
                return n == body.size();
            });
            if (!all_match)
                throw std::invalid_argument("HTTP writer: Content-Length '" + std::string(f.value) +
                                            "' is not the body's size (" + std::to_string(body.size()) +
                                            " bytes); the peer would read the wrong bytes as the next message");
            cl = true;
        }
    }
    if (te && cl)
        throw std::invalid_argument(
            "HTTP writer: both Content-Length and Transfer-Encoding (RFC 9112 §6.2 forbids sending both)");
    return te ? Framing::chunked : cl ? Framing::content_length : Framing::none_given;
}

void append_body(std::string& out, Framing framing, std::string_view body, const HttpHeaders& trailers) {
    if (framing == Framing::chunked) {
        write_chunk(out, body);
        write_last_chunk(out, trailers);
        return;
    }
    if (!trailers.empty())
        throw std::invalid_argument("HTTP writer: trailer fields need Transfer-Encoding: chunked");
    out.append(body);
}

}  // namespace

void write_request_head(std::string& out, std::string_view method, std::string_view target,
                        const HttpHeaders& headers, HttpVersion version) {
    if (!is_token(method))
        throw std::invalid_argument("HTTP writer: method '" + std::string(method) +
                                    "' is not a token (RFC 9112 §3.1)");
    if (target.empty()) throw std::invalid_argument("HTTP writer: empty request target (use \"/\")");
    for (char c : target)
        if (is_ctl(c) || c == ' ' || c == '#')
            throw std::invalid_argument(
                "HTTP writer: request target '" + std::string(target) +
                "' holds a space, '#' or a control character; percent-encode it (URL::target() gives a valid one)");
    check_version(version);
    out.reserve(out.size() + method.size() + target.size() + 16 + headers.size() * 32);
    out.append(method);
    out += ' ';
    out.append(target);
    out += ' ';
    append_version(out, version);
    out += "\r\n";
    append_fields(out, headers);
}

void write_response_head(std::string& out, int status, std::string_view reason, const HttpHeaders& headers,
                         HttpVersion version) {
    if (status < 100 || status > 599)
        throw std::invalid_argument("HTTP writer: status " + std::to_string(status) + " is outside 100-599");
    for (char c : reason)
        if (is_ctl(c) && c != '\t')
            throw std::invalid_argument("HTTP writer: the reason phrase holds a control character");
    check_version(version);
    append_version(out, version);
    char code[5] = {' ', char('0' + status / 100), char('0' + status / 10 % 10), char('0' + status % 10), ' '};
    out.append(code, 5);
    out.append(reason);
    out += "\r\n";
    append_fields(out, headers);
}

// [docs:write_chunk]
void write_chunk(std::string& out, std::string_view bytes) {
    if (bytes.empty()) return;
    char hex[17];
    int n = 0;
    for (std::size_t size = bytes.size(); size; size >>= 4) hex[n++] = "0123456789abcdef"[size & 15];
    while (n) out += hex[--n];
    out += "\r\n";
    out.append(bytes);
    out += "\r\n";
}

void write_last_chunk(std::string& out, const HttpHeaders& trailers) {
    out += "0\r\n";
    append_fields(out, trailers);  // the trailer fields, then the empty line
}
// [/docs:write_chunk]

std::string serialize_request(std::string_view method, std::string_view target, const HttpHeaders& headers,
                              std::string_view body, const HttpHeaders& trailers, HttpVersion version) {
    Framing framing = framing_of(headers, body);
    std::string out;
    if (framing == Framing::none_given && !body.empty()) {
        HttpHeaders with_length = headers;
        with_length.add("Content-Length", std::to_string(body.size()));
        write_request_head(out, method, target, with_length, version);
    } else {
        write_request_head(out, method, target, headers, version);
    }
    append_body(out, framing, body, trailers);
    return out;
}

std::string serialize_response(int status, const HttpHeaders& headers, std::string_view body,
                               const HttpHeaders& trailers, HttpVersion version,
                               std::optional<std::string_view> reason_given) {
    std::string_view reason = reason_given ? *reason_given : reason_phrase(status);
    bool bodiless = status < 200 || status == 204 || status == 304;
    Framing framing = framing_of(headers, body);
    if (bodiless && (!body.empty() || framing == Framing::chunked))
        throw std::invalid_argument("HTTP writer: a " + std::to_string(status) +
                                    " response has no body (RFC 9110 §15)");
    std::string out;
    if (framing == Framing::none_given && !bodiless) {
        HttpHeaders with_length = headers;
        with_length.add("Content-Length", std::to_string(body.size()));
        write_response_head(out, status, reason, with_length, version);
    } else {
        write_response_head(out, status, reason, headers, version);
    }
    append_body(out, framing, body, trailers);
    return out;
}

std::string_view reason_phrase(int status) noexcept {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

}  // namespace aio
