// Stage 5: HTTP/1.1, the server. Writing a response's head. See web_response.hpp.
//
// This is on the path of every response, and the bench (bench_http_server) compares it with
// nginx's, so it is written to allocate nothing and to call nothing slow:
// - the status line of a common status is one literal, copied whole;
// - the Date field is formatted once per second (nginx's cached time), not per response:
//   strftime and gmtime_r cost more than the rest of the head together;
// - Content-Length is written with a small loop of digits, not std::to_string (which
//   builds a std::string) or snprintf (which parses a format each time);
// - the fixed fields are gathered on the stack and appended in one go, to the connection's
//   output string, which keeps its capacity from one response to the next.
#include "stage5_http/web_response.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "stage5_http/http_grammar.hpp"
#include "stage5_http/http_writer.hpp"

namespace aio {

namespace {

// "HTTP/1.1 200 OK\r\n" for the statuses a server sends most; empty for the others.
std::string_view status_line_11(int status) {
    switch (status) {
    case 200: return "HTTP/1.1 200 OK\r\n";
    case 204: return "HTTP/1.1 204 No Content\r\n";
    case 302: return "HTTP/1.1 302 Found\r\n";
    case 304: return "HTTP/1.1 304 Not Modified\r\n";
    case 400: return "HTTP/1.1 400 Bad Request\r\n";
    case 404: return "HTTP/1.1 404 Not Found\r\n";
    case 500: return "HTTP/1.1 500 Internal Server Error\r\n";
    default: return {};
    }
}

void append_status_line(std::string& out, int status, std::string_view reason, HttpVersion version) {
    if (status < 100 || status > 599)
        throw std::invalid_argument("Response: status " + std::to_string(status) + " is outside 100-599");
    if (reason.empty() && version.minor == 1) {
        std::string_view line = status_line_11(status);
        if (!line.empty()) {
            out.append(line);
            return;
        }
        reason = reason_phrase(status);
    }
    for (char c : reason)
        if (is_ctl(c) && c != '\t') throw std::invalid_argument("Response: the reason phrase holds a control character");
    const char head[] = {'H', 'T', 'T', 'P', '/', '1', '.', char('0' + (version.minor == 0 ? 0 : 1)), ' ',
                         char('0' + status / 100), char('0' + status / 10 % 10), char('0' + status % 10), ' '};
    out.append(head, sizeof head);
    out.append(reason);
    out += "\r\n";
}

// Writes n in decimal at p; returns the end.
char* append_decimal(char* p, std::size_t n) {
    char digits[24];
    int i = 0;
    do {
        digits[i++] = char('0' + n % 10);
        n /= 10;
    } while (n);
    while (i) *p++ = digits[--i];
    return p;
}

// content_type is a plain string, not a field added through HttpHeaders::add (which checks
// values): a handler that copies it from the request (a query decoded from "%0d%0a") must
// not be able to end the field there and start one of the client's choosing.
void check_content_type(std::string_view content_type) {
    for (char c : content_type)
        if (is_ctl(c) && c != '\t')
            throw std::invalid_argument("Response: the content type holds a control character (a CR or LF would "
                                        "split the head)");
}

// The fields the server writes itself may not come from the handler too.
void check_own_fields(const HttpHeaders& headers) {
    for (HttpHeaders::Field f : headers)
        if (iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding"))
            throw std::invalid_argument("Response: the handler set " + std::string(f.name) +
                                        "; the server writes the body's framing itself (leave it out)");
}

}  // namespace

// [docs:http_date]
// Formatting a date costs about a microsecond (gmtime_r takes the time-zone lock, strftime
// parses its format): more than parsing a whole request. The value changes once a second,
// so it is formatted once a second, per thread, and every response in between copies it.
// time() is a vDSO call on Linux (it reads a page the kernel keeps up to date: no system
// call), so asking "is it still the same second?" costs a few nanoseconds.
std::string_view http_date() {
    struct Cache {
        std::time_t second = -1;
        char text[40] = {};
        std::size_t size = 0;
    };
    static thread_local Cache cache;
    const std::time_t now = std::time(nullptr);
    if (now != cache.second) {
        std::tm tm{};
        ::gmtime_r(&now, &tm);
        cache.size = std::strftime(cache.text, sizeof cache.text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cache.second = now;
    }
    return std::string_view(cache.text, cache.size);
}
// [/docs:http_date]

void append_response_head(std::string& out, const Response& response, const ResponseFraming& framing) {
    if (!response.headers.empty()) check_own_fields(response.headers);
    check_content_type(response.content_type);  // (before anything is appended: a refusal leaves `out` as it was)
    append_status_line(out, response.status, response.reason, framing.version);
    const std::string_view content_type = response.content_type.empty()
                                              ? std::string_view("text/plain; charset=utf-8")
                                              : std::string_view(response.content_type);
    // The fields every answer has are copied into a buffer on the stack, then appended to
    // `out` at once: one capacity check and one copy instead of a dozen appends, each of
    // which checks the capacity and may move the string (measured with callgrind: the head
    // went from about 330 to about 250 instructions a response). A content type too long for the
    // buffer takes the slow path below.
    char buf[256];
    char* p = buf;
    auto put = [&p](std::string_view s) {
        std::memcpy(p, s.data(), s.size());
        p += s.size();
    };
    if (content_type.size() > 100) {
        out += "Server: aio\r\nDate: ";
        out.append(http_date());
        out += "\r\nContent-Type: ";
        out.append(content_type);
    } else {
        put("Server: aio\r\nDate: ");
        put(http_date());  // 29 bytes
        put("\r\nContent-Type: ");
        put(content_type);
    }
    // 1xx, 204 and 304 have no body and carry no framing (RFC 9110 §8.6, §15).
    const bool bodiless = response.status < 200 || response.status == 204 || response.status == 304;
    if (framing.chunked) {
        put("\r\nTransfer-Encoding: chunked");
    } else if (!framing.until_close && !bodiless) {
        put("\r\nContent-Length: ");
        p = append_decimal(p, response.body.size());
    }
    // Only what differs from the version's default (RFC 9112 §9.3): HTTP/1.1 keeps the
    // connection unless told "close"; HTTP/1.0 closes it unless told "keep-alive".
    if (!framing.keep_alive)
        put("\r\nConnection: close");
    else if (framing.version.minor == 0)
        put("\r\nConnection: keep-alive");
    put("\r\n");
    out.append(buf, std::size_t(p - buf));
    for (HttpHeaders::Field f : response.headers) {
        out.append(f.name);
        out += ": ";
        out.append(f.value);
        out += "\r\n";
    }
    out += "\r\n";
}

Response error_response(int status, std::string_view detail) {
    std::string body = std::to_string(status) + " " + std::string(reason_phrase(status));
    if (!detail.empty()) {
        body += ": ";
        // Short: the detail may quote the peer's bytes (the parser escapes them already).
        body.append(detail.substr(0, 300));
        if (detail.size() > 300) body += "...";
    }
    body += "\n";
    return Response::text(std::move(body), status);
}

}  // namespace aio
