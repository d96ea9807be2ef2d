// Stage 5: HTTP/1.1. The incremental parser. See http_parser.hpp for the interface and the
// state diagram.
//
// Where the time goes, and what keeps it low (a server parses a request per round trip):
// - A head is found by memchr for '\n' from where the last search stopped (scan_), so
//   bytes that arrive in pieces are searched once, and memchr looks at 16-32 bytes per step.
// - Each line is parsed once, when its LF arrives, in place in the input buffer. A field is
//   recorded as two (offset, size) spans; when the empty line arrives the whole head is
//   copied into the head's own buffer with one memcpy. A parser reused for request after
//   request keeps its buffers' capacity, so parsing allocates nothing in the steady state.
// - Character classes are one table lookup (http_grammar.hpp); field values, most of a
//   head's bytes, are checked eight bytes at a time (find_ctl): a quarter off a browser's
//   request, measured with bench_http_parse.
// - The fields that decide the framing are found after the head is complete, in one pass
//   over the spans, comparing names only when their length matches; the Host check works on
//   a view (check_host_port) and allocates nothing.
// - Body bytes are handed out as views into the input buffer, never copied again.
#include "stage5_http/http_parser.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "stage5_http/url.hpp"

namespace aio {

namespace {

constexpr std::size_t kKeepCapacity = 256 * 1024;  // a larger idle buffer is given back
constexpr std::size_t kMaxLimit = std::size_t(1) << 30;  // spans are 32-bit: limits stay below 1 GiB

std::size_t sat_add(std::size_t a, std::size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

// A byte, described for an error message.
std::string describe(char ch) {
    unsigned char c = static_cast<unsigned char>(ch);
    char buf[32];
    if (c == '\r') return "a bare CR (one not followed by LF; RFC 9112 §2.2)";
    if (c == '\n') return "an LF";
    if (c == 0) return "a NUL byte";
    if (c < 0x20 || c == 0x7f) {
        std::snprintf(buf, sizeof buf, "control character 0x%02x", c);
        return buf;
    }
    if (c >= 0x80) {
        std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
        return buf;
    }
    if (c == ' ') return "a space";
    if (c == '\t') return "a tab";
    return std::string("'") + ch + "'";
}

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 40)) {
        if (c >= 0x20 && c < 0x7f) {
            out += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return s.size() > 40 ? out + "..." : out;
}

// A field-content byte: VCHAR, obs-text, SP or HTAB (RFC 9110 §5.5).
bool is_field_content(char c) { return is_field_vchar(c) || is_ows(c); }

// A head back to its defaults, but its buffers keep their capacity: a parser reused for
// message after message then allocates nothing for them.
template <typename Head>
void reset_keeping_capacity(Head& h) {
    HttpHeaders headers = std::move(h.headers);
    headers.clear();
    h = Head{};
    h.headers = std::move(headers);
}

}  // namespace

const char* to_string(HttpEvent::Kind k) noexcept {
    switch (k) {
    case HttpEvent::need_data: return "need_data";
    case HttpEvent::head: return "head";
    case HttpEvent::informational: return "informational";
    case HttpEvent::data: return "data";
    case HttpEvent::end_of_message: return "end_of_message";
    case HttpEvent::upgrade: return "upgrade";
    case HttpEvent::connection_closed: return "connection_closed";
    }
    return "?";
}

// ---- the state machine -------------------------------------------------------------------

// The public entry: step() does the work; an error is kept, so a failed parser stays failed.
HttpEvent HttpParser::next_event() {
    if (error_) throw *error_;
    try {
        return step();
    } catch (const HttpError& e) {
        error_ = e;
        throw;
    }
}

// [docs:next_event]
// One step of the state machine: parse until there is something to report.
HttpEvent HttpParser::step() {
    for (;;) {
        switch (state_) {
        case State::start_line:
        case State::fields:
            if (!read_head()) return eof_ ? on_eof() : HttpEvent{};
            if (role_ == Role::response && response_.status < 200 && response_.status != 101)
                return {HttpEvent::informational, {}};
            return {HttpEvent::head, {}};

        case State::body_length:
        case State::chunk_data:
            if (remaining_ == 0) {
                state_ = state_ == State::body_length ? State::message_end : State::chunk_data_end;
                continue;
            }
            return deliver(remaining_);

        case State::chunk_size:
            if (!read_chunk_size()) return eof_ ? on_eof() : HttpEvent{};
            continue;

        case State::chunk_data_end: {
            // Exactly CRLF after a chunk's bytes: anything else means the chunk was longer
            // than its size said, and a peer that reads it differently sees another body.
            std::size_t avail = buf_.size() - pos_;
            if (avail >= 1 && buf_[pos_] != '\r')
                fail(400, pos_, "a chunk's data is not followed by CRLF: it is longer than its size (RFC 9112 §7.1)");
            if (avail >= 2 && buf_[pos_ + 1] != '\n')
                fail(400, pos_ + 1, "a chunk's data is followed by CR without LF (RFC 9112 §7.1)");
            if (avail < 2) return eof_ ? on_eof() : HttpEvent{};
            pos_ += 2;
            state_ = State::chunk_size;
            continue;
        }

        case State::trailers:
            if (!read_trailers()) return eof_ ? on_eof() : HttpEvent{};
            state_ = State::message_end;
            continue;

        case State::body_until_eof:
            if (pos_ < buf_.size()) return deliver(limits_.max_body_size - body_size_);
            if (!eof_) return {};
            state_ = State::message_end;
            continue;

        case State::message_end:
            if (upgrade_after_) {
                state_ = State::upgraded;
            } else if (close_after_) {
                state_ = State::closed;
            } else {
                state_ = State::start_line;
                start_message();
            }
            return {HttpEvent::end_of_message, {}};

        case State::upgraded: return {HttpEvent::upgrade, {}};
        case State::closed: return {HttpEvent::connection_closed, {}};
        }
    }
}
// [/docs:next_event]

// The next piece of body, at most `limit` bytes. With nothing buffered, need_data (or the
// error of a body cut short). Past max_body_size: the bytes up to the limit are delivered
// first, then the error, so the events do not depend on how the input was split.
HttpEvent HttpParser::deliver(std::uint64_t limit) {
    std::size_t avail = buf_.size() - pos_;
    if (avail == 0) return eof_ ? on_eof() : HttpEvent{};
    if (limit == 0) {
        fail(413, pos_, "the body is larger than max_body_size (" + std::to_string(limits_.max_body_size) + " bytes)");
    }
    std::size_t n = std::size_t(std::min<std::uint64_t>(avail, limit));
    HttpEvent e{HttpEvent::data, std::string_view(buf_.data() + pos_, n)};
    pos_ += n;
    body_size_ += n;
    if (state_ != State::body_until_eof) remaining_ -= n;
    return e;
}

// The stream ended (feed_eof) where more was needed.
HttpEvent HttpParser::on_eof() {
    std::size_t end = buf_.size();
    switch (state_) {
    case State::start_line:
        if (pos_ == end) {  // between messages: a normal close
            state_ = State::closed;
            return {HttpEvent::connection_closed, {}};
        }
        fail(400, end, "the connection closed in the middle of a message head");
    case State::fields: fail(400, end, "the connection closed in the middle of a message head");
    case State::body_length:
        fail(400, end,
             "the connection closed after " + std::to_string(body_size_) + " of the " +
                 std::to_string(body_size_ + remaining_) + " body bytes its Content-Length announced");
    default: fail(400, end, "the connection closed inside a chunked body, before its last chunk (RFC 9112 §7.1)");
    }
}

void HttpParser::fail(int status, std::size_t at, const std::string& problem) const {
    throw HttpError(status, base_ + at, problem);
}

HttpParser::HttpParser(Role role, const HttpParserLimits& limits) : role_(role), limits_(limits) {
    // A head's spans are 32-bit offsets: keep every line and section well below 4 GiB.
    limits_.max_line_size = std::min(limits_.max_line_size, kMaxLimit);
    limits_.max_header_size = std::min(limits_.max_header_size, kMaxLimit);
}

// ---- feeding, and leaving HTTP -----------------------------------------------------------

void HttpParser::feed(std::string_view bytes) {
    if (eof_) throw std::logic_error("HttpParser::feed() after feed_eof(): the stream has ended; use a new parser");
    // The consumed bytes go first: what is left (part of a head, of a chunk-size line) moves
    // to the front. Offsets kept during a scan count from pos_, so they stay right. This is
    // also what invalidates the views earlier data events handed out.
    if (pos_ > 0) {
        base_ += pos_;
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    if (buf_.empty() && buf_.capacity() > kKeepCapacity) std::string().swap(buf_);
    buf_.append(bytes);
}

void HttpParser::feed_eof() { eof_ = true; }

std::string HttpParser::take_unparsed() {
    if (state_ != State::upgraded)
        throw std::logic_error("HttpParser::take_unparsed(): only after an upgrade event");
    std::string rest = buf_.substr(pos_);
    base_ += buf_.size();
    buf_.clear();
    pos_ = 0;
    return rest;
}

void HttpParser::resume() {
    if (state_ != State::upgraded || role_ != Role::request)
        throw std::logic_error("HttpParser::resume(): only after an upgrade event of a request parser");
    state_ = State::start_line;
    start_message();
}

// ---- the head -----------------------------------------------------------------------------

// [docs:find_line_end]
// The LF ending the current line, searched from scan_ up to `window_end` (offsets from pos_).
// nullopt if it has not arrived yet; HttpError(status) if the window is full without one,
// at the first byte past the window, whichever way the input was split.
std::optional<std::size_t> HttpParser::find_line_end(std::size_t window_end, int status, const char* what,
                                                     std::size_t limit) {
    const char* base = buf_.data() + pos_;
    std::size_t avail = buf_.size() - pos_;
    std::size_t end = std::min(avail, window_end);
    if (scan_ < end) {
        if (const void* lf = std::memchr(base + scan_, '\n', end - scan_))
            return std::size_t(static_cast<const char*>(lf) - base);
        scan_ = end;  // searched: the next call starts here
    }
    if (avail >= window_end) fail(status, pos_ + window_end, std::string(what) + " (" + std::to_string(limit) + " bytes)");
    return std::nullopt;
}
// [/docs:find_line_end]

// The line ending at the LF at `lf`, without its line end. With `strict_crlf`, an LF must
// follow a CR (RFC 9112 §2.2 lets a recipient accept a bare LF; see the callers).
std::string_view HttpParser::line_before(std::size_t lf, bool strict_crlf) {
    const char* base = buf_.data() + pos_;
    std::size_t end = lf;
    if (end > line_ && base[end - 1] == '\r')
        --end;
    else if (strict_crlf)
        fail(400, pos_ + lf,
             state_ == State::chunk_size || state_ == State::trailers
                 ? "a line of the chunked body ends in a bare LF: chunked framing requires CRLF (RFC 9112 §7.1)"
                 : "a line of a request ends in a bare LF: requests must end lines with CRLF (RFC 9112 §2.2; "
                   "a proxy that does not end lines at a bare LF would see other fields than this server)");
    return std::string_view(base + line_, end - line_);
}

// [docs:read_head]
// Reads the head's lines as they complete, each parsed once. True when the empty line that
// ends the head has been read: the head is then complete and consumed.
bool HttpParser::read_head() {
    for (;;) {
        bool start = state_ == State::start_line;
        std::optional<std::size_t> lf;
        if (start) {
            lf = find_line_end(sat_add(line_, limits_.max_line_size + 1), role_ == Role::request ? 414 : 400,
                               role_ == Role::request ? "the request line is longer than max_line_size"
                                                      : "the status line is longer than max_line_size",
                               limits_.max_line_size);
        } else {
            lf = find_line_end(sat_add(section_start_, limits_.max_header_size), 431,
                               "the header section is larger than max_header_size", limits_.max_header_size);
        }
        if (!lf) return false;
        // Responses may end lines with a bare LF (old servers do); requests may not.
        std::string_view line = line_before(*lf, role_ == Role::request);
        std::size_t next = *lf + 1;
        if (start) {
            if (line.empty()) {  // empty lines before a start line are ignored (RFC 9112 §2.2)
                pos_ += next;
                line_ = scan_ = 0;
                continue;
            }
            if (role_ == Role::request)
                parse_request_line(line);
            else
                parse_status_line(line);
            state_ = State::fields;
            section_start_ = next;
        } else if (line.empty()) {
            if (role_ == Role::request)
                finish_request_head(next);
            else
                finish_response_head(next);
            return true;
        } else {
            parse_field_line(line, role_ == Role::request ? request_.headers : response_.headers);
        }
        line_ = scan_ = next;
    }
}
// [/docs:read_head]

// "HTTP/1.1" (RFC 9112 §2.3): the name is case-sensitive, one digit each side of the dot.
HttpVersion HttpParser::parse_version(std::string_view text, std::size_t at) const {
    bool ok = text.size() == 8 && text.substr(0, 5) == "HTTP/" && is_digit(text[5]) && text[6] == '.' &&
              is_digit(text[7]);
    if (!ok)
        fail(400, at,
             "malformed HTTP version '" + printable(text) + "' (expected HTTP/1.1 or HTTP/1.0, RFC 9112 §2.3" +
                 (text.find(' ') != std::string_view::npos ? "; a space in a request target must be sent as %20)"
                                                           : ")"));
    HttpVersion v{text[5] - '0', text[7] - '0'};
    if (v.major != 1 || v.minor > 1)
        fail(505, at,
             "HTTP/" + std::to_string(v.major) + "." + std::to_string(v.minor) +
                 " is not supported: only HTTP/1.0 and HTTP/1.1 are (RFC 9110 §6.2)");
    return v;
}

// request-line = method SP request-target SP HTTP-version   (RFC 9112 §3)
void HttpParser::parse_request_line(std::string_view line) {
    HttpRequestHead& h = request_;
    reset_keeping_capacity(h);
    trailers_.clear();
    const char* head = buf_.data() + pos_;
    auto at = [&](std::size_t i) { return at_offset(line.data() + i); };

    std::size_t i = 0;
    while (i < line.size() && is_tchar(line[i])) ++i;
    if (i == 0) fail(400, at(0), "the request line does not start with a method (a token, RFC 9112 §3.1)");
    if (i == line.size()) fail(400, at(i), "the request line has no target (method SP target SP HTTP/1.1)");
    if (line[i] != ' ') fail(400, at(i), describe(line[i]) + " in the method (a token, RFC 9112 §3.1)");
    std::string_view method = line.substr(0, i);

    std::size_t t = i + 1;
    std::size_t sp = line.find(' ', t);
    if (sp == std::string_view::npos)
        fail(400, at(line.size()), "the request line has no HTTP version (method SP target SP HTTP/1.1)");
    if (sp == t) fail(400, at(t), "the request target is empty (one space, and only one, after the method)");
    std::string_view target = line.substr(t, sp - t);
    if (std::size_t j = find_ctl(target.data(), target.size()); j < target.size())
        fail(400, at(t + j), describe(target[j]) + " in the request target");
    if (std::size_t j = target.find('#'); j != std::string_view::npos)
        fail(400, at(t + j), "a fragment ('#') in the request target; clients never send it (RFC 9112 §3.2)");
    h.version = parse_version(line.substr(sp + 1), at(sp + 1));
    check_request_target(method, target, at(t));
    h.method_ = HttpSpan{std::uint32_t(method.data() - head), std::uint32_t(method.size())};
    h.target_ = HttpSpan{std::uint32_t(target.data() - head), std::uint32_t(target.size())};
}

// The four forms of request-target (RFC 9112 §3.2): /origin?form, absolute-form (to a
// proxy), authority-form (CONNECT only) and * (OPTIONS only).
void HttpParser::check_request_target(std::string_view method, std::string_view target, std::size_t at) const {
    if (method == "CONNECT") {
        try {
            check_host_port(target, true);
        } catch (const InvalidURL& e) {
            fail(400, at + e.offset(), "CONNECT needs host:port as its target (RFC 9110 §9.3.6): " + e.problem());
        }
        return;
    }
    if (target[0] == '/') return;
    if (target == "*") {
        if (method != "OPTIONS") fail(400, at, "'*' is a request target for OPTIONS only (RFC 9112 §3.2.4)");
        return;
    }
    // absolute-form: scheme ":" ... where scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    std::size_t i = 0;
    auto alpha = [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; };
    if (alpha(target[0]))
        while (i < target.size() && (alpha(target[i]) || is_digit(target[i]) || target[i] == '+' ||
                                     target[i] == '-' || target[i] == '.'))
            ++i;
    if (i == 0 || i == target.size() || target[i] != ':')
        fail(400, at,
             "request target '" + printable(target) +
                 "' is none of /path, an absolute URL, or * (RFC 9112 §3.2)");
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ]   (RFC 9112 §4)
void HttpParser::parse_status_line(std::string_view line) {
    HttpResponseHead& h = response_;
    reset_keeping_capacity(h);
    trailers_.clear();
    auto at = [&](std::size_t i) { return at_offset(line.data() + i); };

    std::size_t sp = line.find(' ');
    h.version = parse_version(line.substr(0, sp), at(0));
    if (sp == std::string_view::npos) fail(400, at(line.size()), "the status line has no status code");
    std::size_t c = sp + 1;
    if (line.size() < c + 3 || !is_digit(line[c]) || !is_digit(line[c + 1]) || !is_digit(line[c + 2]))
        fail(400, at(c), "the status code is not three digits (RFC 9112 §4)");
    h.status = (line[c] - '0') * 100 + (line[c + 1] - '0') * 10 + (line[c + 2] - '0');
    if (h.status < 100 || h.status > 599)
        fail(400, at(c), "status code " + std::to_string(h.status) + " is outside 100-599 (RFC 9110 §15)");
    std::size_t r = c + 3;
    // "HTTP/1.1 200" without the SP before an empty reason: RFC 9112 §4 requires the SP,
    // but servers omit it and nothing is ambiguous, so a client accepts it.
    if (r < line.size()) {
        if (line[r] != ' ') fail(400, at(r), describe(line[r]) + " after the status code (expected a space)");
        ++r;
        for (std::size_t j = r;; ++j) {
            j += find_ctl(line.data() + j, line.size() - j);
            if (j == line.size()) break;
            if (line[j] != '\t') fail(400, at(j), describe(line[j]) + " in the reason phrase");
        }
    }
    const char* head = buf_.data() + pos_;
    h.reason_ = HttpSpan{std::uint32_t(line.data() + std::min(r, line.size()) - head),
                         std::uint32_t(line.size() - std::min(r, line.size()))};
}

// [docs:parse_field_line]
// field-line = field-name ":" OWS field-value OWS   (RFC 9112 §5, RFC 9110 §5.5)
void HttpParser::parse_field_line(std::string_view line, HttpHeaders& into) {
    auto at = [&](std::size_t i) { return at_offset(line.data() + i); };
    if (is_ows(line[0])) return unfold(line, into);
    if (++field_count_ > limits_.max_headers)
        fail(431, at(0), "more than max_headers (" + std::to_string(limits_.max_headers) + ") field lines");

    std::size_t i = 0;
    while (i < line.size() && is_tchar(line[i])) ++i;
    if (i == line.size()) fail(400, at(i), "a field line without a colon (name: value, RFC 9112 §5)");
    if (line[i] != ':') {
        if (is_ows(line[i]))
            fail(400, at(i),
                 "whitespace between a field name and its colon (RFC 9112 §5.1 requires a 400: proxies "
                 "disagree on whether the name includes it, the heart of request smuggling)");
        fail(400, at(i), describe(line[i]) + " in a field name (a token, RFC 9110 §5.1)");
    }
    if (i == 0) fail(400, at(0), "a field line with an empty name");

    // The value: skip leading OWS, check every byte (only controls are out, HTAB aside:
    // find_ctl takes eight at a time), end after the last byte that is not whitespace.
    std::size_t v = i + 1;
    while (v < line.size() && is_ows(line[v])) ++v;
    for (std::size_t j = v;; ++j) {
        j += find_ctl(line.data() + j, line.size() - j);
        if (j == line.size()) break;
        if (line[j] != '\t')
            fail(400, at(j), describe(line[j]) + " in a field value (RFC 9110 §5.5 forbids CR, LF, NUL and controls)");
    }
    std::size_t end = line.size();
    while (end > v && is_ows(line[end - 1])) --end;
    const char* base = buf_.data() + pos_;
    HttpHeaders::Entry e;
    e.name = HttpSpan{std::uint32_t(line.data() - base), std::uint32_t(i)};
    e.value = HttpSpan{std::uint32_t(line.data() + v - base), std::uint32_t(end - v)};
    into.entries_.push_back(e);
    any_field_ = true;
}
// [/docs:parse_field_line]

// A field line that starts with whitespace: obsolete line folding (RFC 9112 §5.2), the
// continuation of the previous field's value. A server rejects it (400) in a request; a
// client replaces each fold by one SP, as the RFC requires of a user agent. It is done in
// place: the continuation moves back to follow the previous value and one space.
void HttpParser::unfold(std::string_view line, HttpHeaders& into) {
    auto at = [&](std::size_t i) { return at_offset(line.data() + i); };
    if (!any_field_)
        fail(400, at(0),
             "whitespace before the first field line (RFC 9112 §2.2: some parsers would skip the line, "
             "others read a field from it)");
    if (role_ == Role::request)
        fail(400, at(0), "obsolete line folding (a field line starting with whitespace) in a request (RFC 9112 §5.2)");
    std::size_t b = 0;
    while (b < line.size() && is_ows(line[b])) ++b;
    std::size_t end = b;
    for (std::size_t j = b; j < line.size(); ++j) {
        if (!is_field_content(line[j])) fail(400, at(j), describe(line[j]) + " in a folded field value");
        if (!is_ows(line[j])) end = j + 1;
    }
    if (end == b) return;  // a fold with nothing after it adds nothing (trailing OWS is trimmed)
    std::string_view more = line.substr(b, end - b);
    char* base = buf_.data() + pos_;
    HttpSpan& value = into.entries_.back().value;
    if (value.size == 0) {
        value = HttpSpan{std::uint32_t(more.data() - base), std::uint32_t(more.size())};
        return;
    }
    // The previous value ends at least one line end before `more` starts: room for ' '.
    char* dst = base + value.offset + value.size;
    *dst = ' ';
    std::memmove(dst + 1, more.data(), more.size());
    value.size += std::uint32_t(1 + more.size());
}

// ---- framing: RFC 9112 §6 -----------------------------------------------------------------

namespace detail {
// The fields that decide a message's framing and what happens to the connection.
struct FramingFields {
    bool content_length_seen = false;
    std::uint64_t content_length = 0;
    bool transfer_encoding = false;
    int chunked = 0;                // how many times "chunked" is listed
    bool chunked_last = false;      // the final coding is chunked
    std::string_view other_coding;  // the first coding that is not chunked
    int hosts = 0;
    std::string_view host;
    // Where the fields are in the input, for errors: each points at the value of the
    // field's first (Host: second) occurrence.
    std::size_t content_length_at = 0, transfer_encoding_at = 0, host_at = 0;
    bool connection_close = false, connection_keep_alive = false, connection_upgrade = false;
    bool upgrade = false, expect_continue = false;

    // keep_alive() (http_message.hpp), from what was gathered: no second pass.
    bool keep_alive(HttpVersion v) const { return !connection_close && (v.minor >= 1 || connection_keep_alive); }
};
}  // namespace detail

// One pass over a complete head's fields (in `headers`, copied from buf_[pos_...]) for those
// that decide the framing. Names are compared only when their length matches.
void HttpParser::gather(const HttpHeaders& headers, detail::FramingFields& f) const {
    auto at = [&](std::string_view in_head) { return pos_ + std::size_t(in_head.data() - headers.data_.data()); };
    for (const HttpHeaders::Entry& e : headers.entries_) {
        std::string_view name = headers.slice(e.name), value = headers.slice(e.value);
        switch (name.size()) {
        case 4:
            if (iequals(name, "host")) {
                if (f.hosts++ < 2) f.host_at = at(value);
                f.host = value;
            }
            break;
        case 6:
            if (iequals(name, "expect")) f.expect_continue = iequals(value, "100-continue");
            break;
        case 7:
            if (iequals(name, "upgrade")) f.upgrade = true;
            break;
        case 10:
            if (!iequals(name, "connection")) break;
            for_each_list_element(value, [&](std::string_view option) {
                f.connection_close |= iequals(option, "close");
                f.connection_keep_alive |= iequals(option, "keep-alive");
                f.connection_upgrade |= iequals(option, "upgrade");
                return true;
            });
            break;
        case 14:
            if (iequals(name, "content-length")) parse_content_length(value, at(value), f);
            break;
        case 17:
            if (!iequals(name, "transfer-encoding")) break;
            if (!f.transfer_encoding) f.transfer_encoding_at = at(value);
            f.transfer_encoding = true;
            for_each_list_element(value, [&](std::string_view coding) {
                if (coding.empty())
                    fail(400, at(value), "an empty element in Transfer-Encoding '" + printable(value) + "'");
                f.chunked_last = iequals(coding, "chunked");
                if (f.chunked_last)
                    ++f.chunked;
                else if (f.other_coding.empty())
                    f.other_coding = coding;
                return true;
            });
            break;
        }
    }
}

// Content-Length = 1*DIGIT (RFC 9110 §8.6). Nothing else: no sign, no spaces inside, no
// hex; a list of identical values ("5, 5", or the same value in two fields) is one value,
// and differing values are an error: two parsers picking different ones is request
// smuggling.
void HttpParser::parse_content_length(std::string_view value, std::size_t at, detail::FramingFields& f) const {
    for_each_list_element(value, [&](std::string_view element) {
        if (element.empty()) fail(400, at, "an empty element in Content-Length '" + printable(value) + "'");
        std::uint64_t n = 0;
        for (char c : element) {
            if (!is_digit(c))
                fail(400, at,
                     "Content-Length '" + printable(value) +
                         "' is not a decimal number (only digits: no sign, no spaces inside, RFC 9110 §8.6)");
            std::uint64_t digit = std::uint64_t(c - '0');
            if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10)
                fail(400, at, "Content-Length '" + printable(value) + "' is too large");
            n = n * 10 + digit;
        }
        if (!f.content_length_seen) f.content_length_at = at;
        if (f.content_length_seen && n != f.content_length)
            fail(400, at,
                 "Content-Length values differ (" + std::to_string(f.content_length) + " and " + std::to_string(n) +
                     "): RFC 9112 §6.3 item 5 requires rejecting them, as two parsers could pick different ones");
        f.content_length_seen = true;
        f.content_length = n;
        return true;
    });
}

// [docs:finish_request_head]
// The request's head is complete (`size` bytes from pos_): copy it into request_, decide
// how its body is framed (RFC 9112 §6.3, for requests), consume it.
void HttpParser::finish_request_head(std::size_t size) {
    HttpRequestHead& h = request_;
    h.headers.data_.assign(buf_.data() + pos_, size);
    detail::FramingFields f;
    gather(h.headers, f);
    // Errors point at the field at fault; a missing field, at the empty line that ends the head.
    std::size_t end = pos_ + size - 1;

    // Host (RFC 9112 §3.2): exactly one in HTTP/1.1, and a valid host[:port] (or empty).
    if (f.hosts == 0 && h.version.minor == 1) fail(400, end, "an HTTP/1.1 request without a Host field (RFC 9112 §3.2)");
    if (f.hosts > 1) fail(400, f.host_at, "a second Host field (RFC 9112 §3.2)");
    if (f.hosts == 1 && !f.host.empty()) {
        try {
            check_host_port(f.host, false);
        } catch (const InvalidURL& e) {
            fail(400, f.host_at + e.offset(), "the Host field is not host[:port]: " + e.problem());
        }
    }

    if (f.transfer_encoding) {
        // The defences against request smuggling (RFC 9112 §6.1, §6.3, §11.2): one way to
        // frame a body, and only one, or no answer at all.
        std::size_t te = f.transfer_encoding_at;
        if (h.version.minor == 0)
            fail(400, te, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: its framing is faulty)");
        if (f.content_length_seen)
            fail(400, std::min(te, f.content_length_at),
                 "both Content-Length and Transfer-Encoding (RFC 9112 §6.1: the classic request smuggling, "
                 "where a proxy uses one and the server the other)");
        if (!f.chunked_last)
            fail(400, te,
                 "Transfer-Encoding whose final coding is not chunked: the body's length is unknown "
                 "(RFC 9112 §6.3 item 4)");
        if (f.chunked > 1) fail(400, te, "chunked listed twice in Transfer-Encoding (RFC 9112 §7)");
        if (!f.other_coding.empty())
            fail(501, te, "transfer coding '" + printable(f.other_coding) + "' is not implemented (RFC 9112 §6.1)");
        h.framing = BodyFraming::chunked;
    } else if (f.content_length_seen) {
        if (f.content_length > limits_.max_body_size)
            fail(413, f.content_length_at,
                 "Content-Length " + std::to_string(f.content_length) + " is larger than max_body_size (" +
                     std::to_string(limits_.max_body_size) + " bytes)");
        h.framing = BodyFraming::content_length;
        h.content_length = f.content_length;
    }
    h.keep_alive = f.keep_alive(h.version);
    h.upgrade = h.method() == "CONNECT" || (f.upgrade && f.connection_upgrade);
    h.expect_continue = f.expect_continue;
    start_body(h.framing, h.content_length, h.upgrade, size);
}
// [/docs:finish_request_head]

// The same for a response, whose rules differ (RFC 9112 §6.3): the request's method and
// the status can rule a body out, and without Content-Length or Transfer-Encoding the body
// runs until the server closes.
void HttpParser::finish_response_head(std::size_t size) {
    HttpResponseHead& h = response_;
    h.headers.data_.assign(buf_.data() + pos_, size);
    detail::FramingFields f;
    gather(h.headers, f);
    std::size_t te = f.transfer_encoding_at;

    if (h.status < 200 && h.status != 101) {
        h.framing = BodyFraming::none;  // 1xx: an interim response; the final one follows
    } else if (h.status == 101 || (request_was_connect_ && h.status < 300)) {
        h.framing = BodyFraming::tunnel;  // §6.3 item 2: Content-Length and Transfer-Encoding ignored
        h.upgrade = true;
    } else if (request_was_head_ || h.status == 204 || h.status == 304) {
        h.framing = BodyFraming::none;  // §6.3 item 1, whatever the fields say
    } else if (f.transfer_encoding) {
        if (h.version.minor == 0)
            fail(400, te, "Transfer-Encoding in an HTTP/1.0 response (RFC 9112 §6.1: its framing is faulty)");
        if (f.content_length_seen)
            fail(400, std::min(te, f.content_length_at), "both Content-Length and Transfer-Encoding in a response (RFC 9112 §6.1)");
        if (f.chunked > 1) fail(400, te, "chunked listed twice in Transfer-Encoding (RFC 9112 §7)");
        // §6.3 item 4 would read a body whose final coding is not chunked until close; but
        // this client decodes no coding other than chunked, so such a body is useless to it.
        if (!f.other_coding.empty())
            fail(501, te,
                 "transfer coding '" + printable(f.other_coding) + "' is not supported by this client (only chunked)");
        h.framing = BodyFraming::chunked;
    } else if (f.content_length_seen) {
        if (f.content_length > limits_.max_body_size)
            fail(413, f.content_length_at,
                 "Content-Length " + std::to_string(f.content_length) + " is larger than max_body_size (" +
                     std::to_string(limits_.max_body_size) + " bytes)");
        h.framing = BodyFraming::content_length;
        h.content_length = f.content_length;
    } else {
        h.framing = BodyFraming::until_eof;  // §6.3 item 8
    }
    h.keep_alive = f.keep_alive(h.version) && h.framing != BodyFraming::until_eof && !h.upgrade;
    start_body(h.framing, h.content_length, h.upgrade, size);
}

// Consumes the head (`size` bytes) and sets the state its framing leads to.
void HttpParser::start_body(BodyFraming framing, std::uint64_t content_length, bool upgrade, std::size_t size) {
    pos_ += size;
    reset_section();
    body_size_ = 0;
    upgrade_after_ = upgrade;
    close_after_ = framing == BodyFraming::until_eof;
    switch (framing) {
    case BodyFraming::none:
    case BodyFraming::tunnel:
        // An interim (1xx) response is not a message of its own: the next head follows.
        state_ = role_ == Role::response && response_.status < 200 && response_.status != 101 ? State::start_line
                                                                                                : State::message_end;
        break;
    case BodyFraming::content_length:
        remaining_ = content_length;
        state_ = State::body_length;
        break;
    case BodyFraming::chunked: state_ = State::chunk_size; break;
    case BodyFraming::until_eof: state_ = State::body_until_eof; break;
    }
}

void HttpParser::start_message() {
    reset_section();
    remaining_ = 0;
    body_size_ = 0;
    upgrade_after_ = false;
    close_after_ = false;
}

void HttpParser::reset_section() noexcept {
    line_ = scan_ = section_start_ = field_count_ = 0;
    any_field_ = false;
}

// ---- chunked: RFC 9112 §7.1 ---------------------------------------------------------------

// [docs:read_chunk_size]
// chunk-size [ BWS ";" chunk-ext ] CRLF, where chunk-size = 1*HEXDIG. True once the line is
// read and consumed (the state is then chunk_data, or trailers after the last chunk).
bool HttpParser::read_chunk_size() {
    std::optional<std::size_t> lf = find_line_end(sat_add(line_, limits_.max_line_size + 1), 400,
                                                  "a chunk-size line is longer than max_line_size", limits_.max_line_size);
    if (!lf) return false;
    std::string_view line = line_before(*lf, true);
    auto at = [&](std::size_t i) { return at_offset(line.data() + i); };

    std::uint64_t size = 0;
    std::size_t i = 0;
    for (; i < line.size() && is_hexdig(line[i]); ++i) {
        // Leading zeros are fine; a 17th significant digit would overflow. A parser that
        // lets the size wrap (or truncates it to 32 bits) reads a short chunk where its
        // peer reads a long one.
        if (size >> 60) fail(400, at(i), "a chunk size that does not fit in 64 bits");
        size = size * 16 + std::uint64_t(hex_value(line[i]));
    }
    if (i == 0)
        fail(400, at(0),
             (line.empty() ? std::string("an empty chunk-size line") : describe(line[0]) + " where a chunk size") +
                 " (hex digits, no 0x, no sign; RFC 9112 §7.1)");
    std::size_t j = i;
    while (j < line.size() && is_ows(line[j])) ++j;
    if (j < line.size()) {
        // Extensions are ignored (nothing defines one), but must not hide a line end or a
        // control byte: a bare CR there is how CVE-2025-55315 (Kestrel) smuggled requests.
        if (line[j] != ';') fail(400, at(j), describe(line[j]) + " after a chunk size (RFC 9112 §7.1)");
        for (std::size_t k = j + 1; k < line.size(); ++k)
            if (is_ctl(line[k]) && line[k] != '\t') fail(400, at(k), describe(line[k]) + " in a chunk extension");
    } else if (j > i && role_ == Role::request) {
        // Whitespace is allowed only before ';' (BWS); some servers send "5 \r\n", so a client
        // tolerates it, but a server does not.
        fail(400, at(i), "whitespace after a chunk size without an extension (RFC 9112 §7.1)");
    }
    check_body_size(size, at(0));

    pos_ += *lf + 1;
    line_ = scan_ = 0;
    if (size == 0) {
        state_ = State::trailers;
        reset_section();
        trailers_.clear();
    } else {
        remaining_ = size;
        state_ = State::chunk_data;
    }
    return true;
}
// [/docs:read_chunk_size]

void HttpParser::check_body_size(std::uint64_t more, std::size_t at) {
    if (more > limits_.max_body_size - body_size_)
        fail(413, at, "the body is larger than max_body_size (" + std::to_string(limits_.max_body_size) + " bytes)");
}

// trailer-section = *( field-line CRLF ), then CRLF (RFC 9112 §7.1.2): read like a head's
// fields, kept in trailers_. True once the empty line is read and the section consumed.
bool HttpParser::read_trailers() {
    for (;;) {
        std::optional<std::size_t> lf =
            find_line_end(sat_add(section_start_, limits_.max_header_size), 431,
                          "the trailer section is larger than max_header_size", limits_.max_header_size);
        if (!lf) return false;
        std::string_view line = line_before(*lf, true);
        std::size_t next = *lf + 1;
        if (line.empty()) {
            trailers_.data_.assign(buf_.data() + pos_, next);
            pos_ += next;
            reset_section();
            return true;
        }
        parse_field_line(line, trailers_);
        line_ = scan_ = next;
    }
}

}  // namespace aio
