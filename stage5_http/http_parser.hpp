// Stage 5: HTTP/1.1. The incremental parser: bytes in, message events out.
//
// Adds:    HttpRequestParser, HttpResponseParser (their base HttpParser), HttpEvent,
//          HttpParserLimits.
// Mirrors: aiohttp's HttpRequestParser and HttpResponseParser (http_parser.py, and its C
//          twin built on llhttp), with the event interface of h11: feed() the bytes that
//          arrived, then call next_event() until it says need_data. The rules are RFC 9112's
//          (message syntax) and RFC 9110's (semantics); each rejection cites its section.
//
// The loop a protocol's data_received runs, and the one a coroutine on a StreamReader runs,
// are the same:
//
//     parser.feed(bytes);                       // or parser.feed_eof() at end of stream
//     for (HttpEvent e = parser.next_event(); e.kind != HttpEvent::need_data;
//          e = parser.next_event()) { ... }     // head, data..., end_of_message, ...
//
// The parser is a push parser that does its work on pull: feed() only stores the bytes, and
// next_event() parses as far as the next event. So the consumer sets the pace (it may stop
// pulling between two pipelined requests), and a client can tell the response parser what
// the next request was (HEAD has no body) between two responses that arrived in one read.
// Any split of the input gives the same events and the same errors: one byte per feed()
// or everything at once.
//
// The state machine (RFC 9112 §6.3 decides the body's framing when a head is complete):
//
//   +-> HEAD: start line, field lines, empty line ---> head event (informational for 1xx)
//   |        |
//   |        +-- none ---------------------------------------------+
//   |        +-- content_length: DATA (n bytes) --------------------+
//   |        +-- chunked: SIZE LINE -> DATA -> CRLF -> SIZE LINE ... |
//   |        |            ... "0" line -> TRAILERS -> empty line ----+
//   |        +-- until_eof: DATA until feed_eof() ------------------+--> end_of_message
//   |        +-- tunnel (101, CONNECT 2xx) -------------------------+        |
//   +------------------------------------------------------------------------+
//        (then HEAD again; after a tunnel or an upgrade request: the upgrade event;
//         after until_eof: connection_closed)
//
// Errors: a malformed message raises HttpError, which carries the status a server answers
// with and the byte offset of the fault; the parser is then dead (every later call raises
// the same error), as the connection must be closed: after a framing error nobody knows
// where the next message starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "stage5_http/http_exceptions.hpp"
#include "stage5_http/http_message.hpp"

namespace aio {

namespace detail {
struct FramingFields;
}

// How much a peer may make the parser hold. The defaults are those the course's server
// uses; nginx and aiohttp use limits of the same size.
struct HttpParserLimits {
    // Bytes of a start line (request line, status line) or of a chunk-size line, counting
    // its CR but not its LF. Longer: 414 URI Too Long for a request line, 400 otherwise.
    std::size_t max_line_size = 8 * 1024;
    // Bytes of the field lines of a head (or of the trailer section), with their line ends
    // and the empty line that ends them. Larger: 431.
    std::size_t max_header_size = 64 * 1024;
    // Field lines in a head (or a trailer section). More: 431.
    std::size_t max_headers = 100;
    // Bytes of a message's body (after chunked decoding). More: 413 Content Too Large.
    std::uint64_t max_body_size = std::numeric_limits<std::uint64_t>::max();
};

struct HttpEvent {
    enum Kind : std::uint8_t {
        need_data,       // feed() more bytes (or feed_eof()), then ask again
        head,            // a request or final response head: parser.head()
        informational,   // a 1xx response other than 101 (a client skips it): parser.head()
        data,            // the next piece of the body: `bytes`
        end_of_message,  // the body is complete (chunked: trailers() holds its trailer fields)
        upgrade,         // what follows is not HTTP: take_unparsed(); for a request, or resume()
        connection_closed,  // the peer closed between messages (after feed_eof())
    };
    Kind kind = need_data;
    // kind == data: bytes of the body, decoded from the chunked coding. They live in the
    // parser's buffer, valid until the next feed() or feed_eof(): copy what must last longer.
    std::string_view bytes;
};

const char* to_string(HttpEvent::Kind k) noexcept;

class HttpParser {
public:
    HttpParser(const HttpParser&) = delete;
    HttpParser& operator=(const HttpParser&) = delete;

    // Stores bytes that arrived (copies them: the caller's buffer may be reused at once).
    // Throws std::logic_error after feed_eof().
    void feed(std::string_view bytes);
    // The peer closed its side: a body that runs until close ends here, a message cut short
    // is an error (raised by next_event()).
    void feed_eof();
    // Parses as far as the next event. Throws HttpError for a malformed message.
    HttpEvent next_event();

    // After end_of_message of a chunked body: its trailer fields (RFC 9112 §7.1.2), else empty.
    const HttpHeaders& trailers() const noexcept { return trailers_; }
    // After an upgrade event: the bytes received after the message, which belong to the new
    // protocol. The parser holds none of them afterwards.
    std::string take_unparsed();
    // After an upgrade event for a request the server refused to upgrade (it answered as
    // HTTP): go on parsing the following bytes as HTTP requests.
    void resume();

    // Bytes fed but not yet consumed by next_event(): what a server's flow control watches.
    std::size_t buffered() const noexcept { return buf_.size() - pos_; }
    // Bytes consumed since the start (the offsets HttpError reports count the same way).
    std::uint64_t offset() const noexcept { return base_ + pos_; }
    const HttpParserLimits& limits() const noexcept { return limits_; }

protected:
    enum class Role : std::uint8_t { request, response };
    HttpParser(Role role, const HttpParserLimits& limits);

    HttpRequestHead request_;    // used by HttpRequestParser
    HttpResponseHead response_;  // used by HttpResponseParser
    bool request_was_head_ = false;     // response parser: the request's method was HEAD
    bool request_was_connect_ = false;  // ... or CONNECT

private:
    enum class State : std::uint8_t {
        start_line,       // waiting for (or skipping empty lines before) a start line
        fields,           // field lines of the head, until the empty line
        body_length,      // content_length bytes
        chunk_size,       // a chunk-size line
        chunk_data,       // the bytes of a chunk
        chunk_data_end,   // the CRLF after them
        trailers,         // trailer field lines, until the empty line
        body_until_eof,   // everything until feed_eof()
        message_end,      // emit end_of_message
        upgraded,         // emit upgrade until take_unparsed()/resume()
        closed,           // emit connection_closed
    };

    HttpEvent step();
    bool read_head();
    bool read_trailers();
    std::optional<std::size_t> find_line_end(std::size_t window_end, int status, const char* what,
                                             std::size_t limit);
    std::string_view line_before(std::size_t lf, bool strict_crlf);
    void parse_request_line(std::string_view line);
    void parse_status_line(std::string_view line);
    void parse_field_line(std::string_view line, HttpHeaders& into);
    void unfold(std::string_view line, HttpHeaders& into);
    void check_request_target(std::string_view method, std::string_view target, std::size_t at) const;
    void finish_request_head(std::size_t size);
    void finish_response_head(std::size_t size);
    void gather(const HttpHeaders& headers, detail::FramingFields& f) const;
    void parse_content_length(std::string_view value, std::size_t at, detail::FramingFields& f) const;
    void start_body(BodyFraming framing, std::uint64_t content_length, bool upgrade, std::size_t size);
    bool read_chunk_size();
    HttpEvent deliver(std::uint64_t limit);
    HttpEvent on_eof();
    void start_message();
    void reset_section() noexcept;
    void check_body_size(std::uint64_t more, std::size_t at);

    [[noreturn, gnu::cold]] void fail(int status, std::size_t at, const std::string& problem) const;
    HttpVersion parse_version(std::string_view text, std::size_t at) const;
    std::size_t at_offset(const char* p) const noexcept { return std::size_t(p - buf_.data()); }

    Role role_;
    HttpParserLimits limits_;
    State state_ = State::start_line;

    std::string buf_;         // bytes fed; buf_[pos_, size) not yet consumed
    std::size_t pos_ = 0;     // the first unconsumed byte
    std::uint64_t base_ = 0;  // stream offset of buf_[0]
    bool eof_ = false;

    // The line scan, in offsets relative to pos_ (so they survive feed() moving the
    // unconsumed bytes to the front of buf_): a head or trailer section stays unconsumed
    // until its empty line arrives, then is parsed where it lies.
    std::size_t line_ = 0;            // start of the line not yet complete
    std::size_t scan_ = 0;            // where the search for its LF resumes: no byte is scanned twice
    std::size_t section_start_ = 0;   // first field line of the section
    std::size_t field_count_ = 0;     // field lines so far in the section
    bool any_field_ = false;          // a field line seen (an obs-fold needs one to continue)

    std::uint64_t remaining_ = 0;     // body bytes left in the content_length body or the chunk
    std::uint64_t body_size_ = 0;     // body bytes delivered so far in this message
    BodyFraming framing_ = BodyFraming::none;
    bool upgrade_after_ = false;      // after end_of_message, emit upgrade
    bool close_after_ = false;        // after end_of_message, the connection is done (until_eof)
    HttpHeaders trailers_;

    std::optional<HttpError> error_;  // once failed, every call raises this again
};

// Parses requests: what a server reads.
class HttpRequestParser : public HttpParser {
public:
    explicit HttpRequestParser(const HttpParserLimits& limits = {}) : HttpParser(Role::request, limits) {}
    // The head of the latest head event. Valid until the next head event; std::move it out
    // to keep it longer.
    HttpRequestHead& head() noexcept { return request_; }
};

// Parses responses: what a client reads.
class HttpResponseParser : public HttpParser {
public:
    explicit HttpResponseParser(const HttpParserLimits& limits = {}) : HttpParser(Role::response, limits) {}
    // The method of the request the next response answers (until called again): a response
    // to HEAD has no body whatever its fields say, and a 2xx to CONNECT opens a tunnel
    // (RFC 9112 §6.3 items 1 and 2). Call it before the response's head is parsed; a client
    // pipelining requests calls it after each end_of_message.
    void set_request_method(std::string_view method) noexcept {
        request_was_head_ = method == "HEAD";
        request_was_connect_ = method == "CONNECT";
    }
    HttpResponseHead& head() noexcept { return response_; }
};

}  // namespace aio
