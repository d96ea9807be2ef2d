// Stage 5 tests: the HTTP/1.1 message parser (http_parser.hpp), for requests and responses.
//
// Nearly every test goes through parse_all(), which parses the input whole, one byte per
// feed(), and cut at random offsets, and checks that the three give the same events (or the
// same error at the same byte): any split of the input must give the same result. Rejections
// are checked for their status and the byte offset they name. The cases come from RFC 9112
// and RFC 9110 and from bugs found in other parsers (cited where they were found).
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "stage5_http/http_parser.hpp"
#include "tests/http_test_support.hpp"

namespace {

using namespace http_test_support;
using aio::BodyFraming;
using aio::HttpError;
using aio::HttpEvent;
using aio::HttpRequestParser;
using aio::HttpResponseParser;
using Req = aio::HttpRequestParser;
using Resp = aio::HttpResponseParser;

// The transcript of `input` parsed whole, after checking that one byte per feed() and ten
// random cuttings give the same one.
template <typename P>
std::string parse_all(std::string_view input, const Options& opt = {}) {
    INFO("input: " << escape(input));
    std::string whole = transcript<P>(input, {}, opt);
    CHECK(transcript<P>(input, every_byte(input.size()), opt) == whole);
    std::mt19937 rng(unsigned(input.size()));
    for (std::size_t n = 1; n <= 10; ++n) CHECK(transcript<P>(input, random_cuts(input.size(), rng, n), opt) == whole);
    return whole;
}

// Expects `input` to be rejected, whole and in pieces, with `status` at byte `offset`, by
// an error whose text mentions `mentions`.
template <typename P>
void expect_error(std::string_view input, int status, std::size_t offset, std::string_view mentions,
                  const Options& opt = {}) {
    std::string t = parse_all<P>(input, opt);
    INFO("input: " << escape(input) << "\ntranscript:\n" << t);
    std::size_t at = t.find("error ");
    REQUIRE(at != std::string::npos);
    std::string err = t.substr(at);
    CHECK(err.rfind("error " + std::to_string(status) + " @" + std::to_string(offset) + ": ", 0) == 0);
    CHECK(err.find(mentions) != std::string::npos);
}

template <typename P>
void expect_ok(std::string_view input, const Options& opt = {}) {
    std::string t = parse_all<P>(input, opt);
    INFO("input: " << escape(input) << "\ntranscript:\n" << t);
    CHECK(t.find("error") == std::string::npos);
}

// Parses one request head from `input` (fed whole) and returns it.
aio::HttpRequestHead request_head(std::string_view input) {
    HttpRequestParser p;
    p.feed(input);
    HttpEvent e = p.next_event();
    REQUIRE(e.kind == HttpEvent::head);
    return std::move(p.head());
}

aio::HttpResponseHead response_head(std::string_view input, std::string_view method = "GET") {
    HttpResponseParser p;
    p.set_request_method(method);
    p.feed(input);
    HttpEvent e = p.next_event();
    REQUIRE(e.kind == HttpEvent::head);
    return std::move(p.head());
}

}  // namespace

// ------------------------------------------------------------------------ the request head

TEST_CASE("a request: method, target, version and fields, looked up in any case", "[http][parser]") {
    auto h = request_head(
        "GET /search?q=a%20b HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\nX-Two: 1\r\n"
        "accept: text/plain\r\nX-Empty:\r\n\r\n");
    CHECK(h.method() == "GET");
    CHECK(h.target() == "/search?q=a%20b");
    CHECK(h.version == aio::HttpVersion{1, 1});
    CHECK(h.headers.size() == 5);
    CHECK(h.headers.get("HOST") == "example.com");
    CHECK(h.headers.get("accept") == "text/html");  // the first of the repeated ones
    CHECK(h.headers.get_all("Accept") == std::vector<std::string_view>{"text/html", "text/plain"});
    CHECK(h.headers[3].name == "accept");  // names kept as sent, in order
    CHECK(h.headers.get("x-empty") == "");
    CHECK_FALSE(h.headers.get("missing").has_value());
    CHECK(h.framing == BodyFraming::none);
    CHECK(h.keep_alive);
    CHECK_FALSE(h.upgrade);
}

TEST_CASE("field values lose their surrounding whitespace, keep the inside, and may hold obs-text",
          "[http][parser]") {
    auto h = request_head("GET / HTTP/1.1\r\nHost: h\r\nX-A: \t a  b \t\r\nX-B:\xc3\xa9t\xc3\xa9\r\n\r\n");
    CHECK(h.headers.get("x-a") == "a  b");
    CHECK(h.headers.get("x-b") == "\xc3\xa9t\xc3\xa9");
}

TEST_CASE("one byte at a time and any cutting give the same events as the whole input", "[http][parser]") {
    const char* requests[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        ("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n"
         "Checksum: abc\r\n\r\n"),
        "\r\n\r\nGET /after-empty-lines HTTP/1.0\r\n\r\n",
    };
    for (const char* r : requests) {
        std::string t = parse_all<Req>(r);
        CHECK(t.find("error") == std::string::npos);
        CHECK(t.find("end_of_message") != std::string::npos);
    }
    // And a typical browser request, cut at every pair of offsets.
    std::string browser =
        "GET /index.html?lang=en HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
        "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-GB,en;q=0.5\r\nConnection: keep-alive\r\n\r\n";
    std::string whole = transcript<Req>(browser, {});
    for (std::size_t a = 1; a < browser.size(); a += 7)
        for (std::size_t b = a; b < browser.size(); b += 11) CHECK(transcript<Req>(browser, {a, b}) == whole);
}

TEST_CASE("pipelined requests in one feed come out in order, and the consumer sets the pace", "[http][parser]") {
    std::string in =
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    HttpRequestParser p;
    p.feed(in);
    std::vector<std::string> seen;
    for (HttpEvent e = p.next_event(); e.kind != HttpEvent::need_data; e = p.next_event()) {
        if (e.kind == HttpEvent::head) seen.push_back(std::string(p.head().target()));
        if (e.kind == HttpEvent::data) seen.push_back("data:" + std::string(e.bytes));
        if (e.kind == HttpEvent::end_of_message) seen.push_back("end");
        if (seen.size() == 2) CHECK(p.buffered() > 0);  // the rest waits until asked for
    }
    CHECK(seen == std::vector<std::string>{"/1", "end", "/2", "data:abc", "end", "/3", "end"});
    CHECK(p.buffered() == 0);
    CHECK(p.offset() == in.size());
    CHECK(parse_all<Req>(in).find("error") == std::string::npos);
}

TEST_CASE("a head moved out of the parser stays valid while the parser goes on", "[http][parser]") {
    HttpRequestParser p;
    p.feed("GET /first HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n");
    REQUIRE(p.next_event().kind == HttpEvent::head);
    aio::HttpRequestHead first = std::move(p.head());
    REQUIRE(p.next_event().kind == HttpEvent::end_of_message);
    p.feed("GET /second HTTP/1.1\r\nHost: b\r\n\r\n");  // feed() moves the parser's buffer
    REQUIRE(p.next_event().kind == HttpEvent::head);
    CHECK(first.target() == "/first");
    CHECK(first.headers.get("x") == "1");
    CHECK(p.head().target() == "/second");
    CHECK(p.head().headers.size() == 1);
}

TEST_CASE("request lines that are rejected, with the byte at fault", "[http][parser][reject]") {
    expect_error<Req>("GET  / HTTP/1.1\r\n\r\n", 400, 4, "target is empty");
    expect_error<Req>(" GET / HTTP/1.1\r\n\r\n", 400, 0, "does not start with a method");
    expect_error<Req>("GE(T / HTTP/1.1\r\n\r\n", 400, 2, "in the method");
    expect_error<Req>("GET\r\n\r\n", 400, 3, "no target");
    expect_error<Req>("GET /\r\n\r\n", 400, 5, "no HTTP version");
    expect_error<Req>("GET / http/1.1\r\n\r\n", 400, 6, "malformed HTTP version");
    expect_error<Req>("GET / HTTP/1.1 \r\n\r\n", 400, 6, "malformed HTTP version");
    expect_error<Req>("GET / HTTP/11\r\n\r\n", 400, 6, "malformed HTTP version");
    expect_error<Req>("GET /a b HTTP/1.1\r\n\r\n", 400, 7, "%20");
    expect_error<Req>("GET /a\x01 HTTP/1.1\r\n\r\n", 400, 6, "control character 0x01");
    expect_error<Req>("GET /a#frag HTTP/1.1\r\n\r\n", 400, 6, "fragment");
    expect_error<Req>("GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", 400, 4, "none of /path");
    expect_error<Req>("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, 4, "OPTIONS only");
    expect_error<Req>("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, 19, "port is required");
    // A bare CR ends nothing: it is an error wherever it appears (RFC 9112 §2.2).
    expect_error<Req>("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400, 6, "HTTP/1.1\\x0d");
}

TEST_CASE("versions: 1.0 and 1.1 are parsed, others get 505", "[http][parser]") {
    CHECK(request_head("GET / HTTP/1.0\r\n\r\n").version == aio::HttpVersion{1, 0});
    expect_error<Req>("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 6, "HTTP/2.0 is not supported");
    expect_error<Req>("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, 6, "HTTP/1.2 is not supported");
    expect_error<Req>("GET / HTTP/0.9\r\n\r\n", 505, 6, "not supported");
}

TEST_CASE("the four forms of request target are accepted where they belong", "[http][parser]") {
    CHECK(request_head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target() == "*");
    CHECK(request_head("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n").target() ==
          "http://example.com/x?y");
    auto c = request_head("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    CHECK(c.target() == "example.com:443");
    CHECK(c.upgrade);
    CHECK(request_head("GET //double/slash HTTP/1.1\r\nHost: a\r\n\r\n").target() == "//double/slash");
}

TEST_CASE("empty lines before a request line are skipped; whitespace lines are not", "[http][parser]") {
    std::string t = parse_all<Req>("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(t.rfind("head request GET / HTTP/1.1", 0) == 0);
    expect_error<Req>(" \r\nGET / HTTP/1.1\r\n\r\n", 400, 0, "does not start with a method");
}

// ------------------------------------------------------------------------------ field lines

TEST_CASE("field lines that are rejected, with the byte at fault", "[http][parser][reject]") {
    std::string start = "GET / HTTP/1.1\r\n";
    std::size_t s = start.size();
    expect_error<Req>(start + "Host : a\r\n\r\n", 400, s + 4, "whitespace between a field name and its colon");
    expect_error<Req>(start + "Host\t: a\r\n\r\n", 400, s + 4, "whitespace between a field name and its colon");
    expect_error<Req>(start + "Host a\r\n\r\n", 400, s + 4, "whitespace between");
    expect_error<Req>(start + "NoColon\r\n\r\n", 400, s + 7, "without a colon");
    expect_error<Req>(start + ": empty-name\r\n\r\n", 400, s, "empty name");
    expect_error<Req>(start + "X(y): 1\r\n\r\n", 400, s + 1, "in a field name");
    expect_error<Req>(start + std::string("X\0Y: 1\r\n\r\n", 11), 400, s + 1, "NUL");
    expect_error<Req>(start + "X: a" + std::string(1, '\0') + "b\r\n\r\n", 400, s + 4, "NUL byte in a field value");
    expect_error<Req>(start + "X: a\x7f\r\n\r\n", 400, s + 4, "control character 0x7f");
    expect_error<Req>(start + "X: a\x0b" "b\r\n\r\n", 400, s + 4, "control character 0x0b");
    // aiohttp's CVE-2023-37276: a bare CR inside a value, hiding a second field from a
    // parser that ends lines there.
    std::string cve = start + "Host: localhost\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n";
    expect_error<Req>(cve, 400, cve.find("\rx"), "bare CR");
    // RFC 9112 §2.2: whitespace between the start line and the first field.
    expect_error<Req>(start + " Host: a\r\n\r\n", 400, s, "before the first field line");
}

TEST_CASE("obsolete line folding: rejected in a request, unfolded with one space in a response",
          "[http][parser]") {
    std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n";
    expect_error<Req>(req, 400, req.find(" two"), "obsolete line folding");

    std::string resp =
        "HTTP/1.1 200 OK\r\nX-Long: one  \r\n two\r\n\t \tthree \r\n \r\nX-Empty:\r\n  late\r\nContent-Length: 0\r\n\r\n";
    expect_ok<Resp>(resp);
    auto h = response_head(resp);
    CHECK(h.headers.get("x-long") == "one two three");
    CHECK(h.headers.get("x-empty") == "late");
    CHECK(h.headers.get("content-length") == "0");
    expect_error<Resp>("HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n", 400, 17, "before the first field line");
    expect_error<Resp>("HTTP/1.1 200 OK\r\nX: a\r\n b\x01\r\n\r\n", 400, 25, "folded field value");
}

TEST_CASE("a folded Content-Length is read after unfolding", "[http][parser]") {
    // The fold is part of the value, so "1\r\n 2" is "1 2": not a number.
    expect_error<Resp>("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n", 400, 33, "not a decimal number");
}

TEST_CASE("bare LF line ends: rejected in requests, accepted in responses", "[http][parser]") {
    // Requests: a proxy in front that does not end lines at a bare LF would see one field
    // where this server sees two; so the server refuses.
    expect_error<Req>("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, 14, "bare LF");
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, 23, "bare LF");
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, 25, "bare LF");
    expect_error<Req>("\nGET / HTTP/1.1\r\n\r\n", 400, 0, "bare LF");
    // Responses: servers that send LF alone exist (RFC 9112 §2.2 allows accepting them).
    std::string t = parse_all<Resp>("HTTP/1.1 200 OK\nContent-Length: 2\nX: y\r\n\nok");
    CHECK(t == "head response HTTP/1.1 200 'OK' framing=content-length:2 keep_alive=1 upgrade=0 [Content-Length: 2] "
               "[X: y]\ndata 'ok'\nend_of_message\nconnection_closed\n");
}

TEST_CASE("Host: exactly one in HTTP/1.1, and a valid host[:port]", "[http][parser]") {
    expect_error<Req>("GET / HTTP/1.1\r\n\r\n", 400, 17, "without a Host field");
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 31, "second Host");
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 23, "Host field is not host[:port]");
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400, 24, "out of range");
    expect_error<Req>("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, 22, "user information");
    expect_ok<Req>("GET / HTTP/1.1\r\nHost:\r\n\r\n");  // empty: allowed (RFC 9112 §3.2)
    expect_ok<Req>("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    expect_ok<Req>("GET / HTTP/1.0\r\n\r\n");  // HTTP/1.0 needs none
}

// ----------------------------------------------------------------------------- status lines

TEST_CASE("status lines: the reason may be empty, or missing with its space", "[http][parser]") {
    CHECK(response_head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").reason() == "OK");
    auto empty = response_head("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
    CHECK(empty.status == 404);
    CHECK(empty.reason() == "");
    CHECK(response_head("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").reason() == "");
    CHECK(response_head("HTTP/1.0 500 Internal  Server\tError\r\nContent-Length: 0\r\n\r\n").reason() ==
          "Internal  Server\tError");
    expect_error<Resp>("HTTP/1.1 99 Low\r\n\r\n", 400, 9, "not three digits");
    expect_error<Resp>("HTTP/1.1 600 High\r\n\r\n", 400, 9, "outside 100-599");
    expect_error<Resp>("HTTP/1.1 099 Low\r\n\r\n", 400, 9, "outside 100-599");
    expect_error<Resp>("HTTP/1.1 2000 OK\r\n\r\n", 400, 12, "after the status code");
    expect_error<Resp>("HTTP/1.1 200 O\x01K\r\n\r\n", 400, 14, "reason phrase");
    expect_error<Resp>("HTTP/1.1\r\n\r\n", 400, 8, "no status code");
    expect_error<Resp>("HTTP/2 200\r\n\r\n", 400, 0, "malformed HTTP version");
    expect_error<Resp>("HTTP/2.0 200 OK\r\n\r\n", 505, 0, "not supported");
    expect_error<Resp>("ICY 200 OK\r\n\r\n", 400, 0, "malformed HTTP version");
}

// ----------------------------------------------------------------------- bodies and framing

TEST_CASE("Content-Length: one valid value, identical duplicates accepted", "[http][parser][body]") {
    auto post = [](std::string_view fields, std::string_view body) {
        return "POST / HTTP/1.1\r\nHost: a\r\n" + std::string(fields) + "\r\n" + std::string(body);
    };
    CHECK(parse_all<Req>(post("Content-Length: 5\r\n", "hello")).find("data 'hello'\nend_of_message") !=
          std::string::npos);
    CHECK(parse_all<Req>(post("Content-Length: 0\r\n", "")).find("framing=content-length:0") != std::string::npos);
    CHECK(parse_all<Req>(post("Content-Length: 005\r\n", "hello")).find("framing=content-length:5") !=
          std::string::npos);
    // RFC 9110 §8.6: a list of identical values, or repeated identical fields, is one value.
    CHECK(parse_all<Req>(post("Content-Length: 5, 5\r\n", "hello")).find("data 'hello'") != std::string::npos);
    CHECK(parse_all<Req>(post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello")).find("data 'hello'") !=
          std::string::npos);
    // Surrounding whitespace is not part of a field value (RFC 9110 §5.5): " 5 " is 5.
    CHECK(parse_all<Req>(post("Content-Length:  5 \r\n", "hello")).find("data 'hello'") != std::string::npos);
}

TEST_CASE("Content-Length values that are rejected", "[http][parser][body][smuggling]") {
    std::string start = "POST / HTTP/1.1\r\nHost: a\r\n";
    std::size_t v = start.size() + 16;  // the value of a Content-Length field placed first
    for (const char* bad : {"+5", "-1", "5 5", "0x5", "5.0", "1e3", "five", "5;", "\xd9\xa5"}) {
        INFO(bad);
        expect_error<Req>(start + "Content-Length: " + bad + "\r\n\r\nhello", 400, v, "not a decimal number");
    }
    expect_error<Req>(start + "Content-Length: \r\n\r\n", 400, v, "empty element");
    expect_error<Req>(start + "Content-Length: 5,\r\n\r\n", 400, v, "empty element");
    expect_error<Req>(start + "Content-Length: 5, 6\r\n\r\nhello", 400, v, "values differ (5 and 6)");
    std::string two = start + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello";
    expect_error<Req>(two, 400, two.find("6\r\n"), "values differ");
    expect_error<Req>(start + "Content-Length: 99999999999999999999\r\n\r\n", 400, v, "too large");
    expect_ok<Req>(start + "Content-Length: 18446744073709551615\r\n\r\n", Options{{}, false, {}});
}

TEST_CASE("chunked bodies: sizes, extensions, trailers", "[http][parser][body][chunked]") {
    std::string start = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string t = parse_all<Req>(start + "5\r\nhello\r\nA;name=value;quoted=\"a b\"\r\n0123456789\r\n0\r\n\r\n");
    CHECK(t.find("data 'hello0123456789'\nend_of_message\n") != std::string::npos);
    t = parse_all<Req>(start + "00005\r\nhello\r\n000\r\nExpires: never\r\nX-Sum: 1\r\n\r\n");
    CHECK(t.find("data 'hello'\nend_of_message [Expires: never] [X-Sum: 1]\n") != std::string::npos);
    t = parse_all<Req>(start + "0\r\n\r\n");
    CHECK(t.find("framing=chunked") != std::string::npos);
    CHECK(t.find("end_of_message\n") != std::string::npos);
    t = parse_all<Req>(start + "1a\r\n" + std::string(26, 'x') + "\r\n0 ; ext\r\n\r\n");
    CHECK(t.find("data '" + std::string(26, 'x') + "'") != std::string::npos);

    HttpRequestParser p;
    p.feed(start + "3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n");
    for (HttpEvent e = p.next_event(); e.kind != HttpEvent::end_of_message; e = p.next_event())
        REQUIRE(e.kind != HttpEvent::need_data);
    CHECK(p.trailers().get("x-trailer") == "yes");
}

TEST_CASE("chunked bodies that are rejected", "[http][parser][body][chunked][smuggling]") {
    std::string start = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::size_t s = start.size();
    // chunk-size = 1*HEXDIG: no prefix, no sign, nothing else (Pound, uhttpd, ATS accepted these).
    expect_error<Req>(start + "0x5\r\nhello\r\n0\r\n\r\n", 400, s + 1, "'x' after a chunk size");
    expect_error<Req>(start + "-0\r\n\r\n", 400, s, "'-' where a chunk size");
    expect_error<Req>(start + "+5\r\nhello\r\n0\r\n\r\n", 400, s, "'+' where a chunk size");
    expect_error<Req>(start + " 5\r\nhello\r\n0\r\n\r\n", 400, s, "a space where a chunk size");
    expect_error<Req>(start + "\r\n", 400, s, "empty chunk-size line");
    expect_error<Req>(start + "0_0\r\n\r\n", 400, s + 1, "'_' after a chunk size");
    expect_error<Req>(start + "1these-bytes\r\nZ\r\n0\r\n\r\n", 400, s + 1, "'t' after a chunk size");
    expect_error<Req>(start + "5 \r\nhello\r\n0\r\n\r\n", 400, s + 1, "whitespace after a chunk size");
    // Overflow: 17 significant hex digits do not fit in 64 bits (Bun truncated 0x100000005 to 5).
    expect_error<Req>(start + "10000000000000000\r\n", 400, s + 16, "does not fit in 64 bits");
    expect_error<Req>(start + "0000000000000000010000000000000000\r\n", 400, s + 33, "does not fit in 64 bits");
    // The data must be followed by exactly CRLF (vanilla#109, Pound#43).
    expect_error<Req>(start + "5\r\nhello0\r\n\r\n", 400, s + 8, "not followed by CRLF");
    expect_error<Req>(start + "5\r\nhelloXX\r\n0\r\n\r\n", 400, s + 8, "not followed by CRLF");
    expect_error<Req>(start + "5\r\nhello\r0\r\n\r\n", 400, s + 9, "CR without LF");
    // Bare LF in chunk lines (Go's CVE-2025-22871), a bare CR in an extension (Kestrel's
    // CVE-2025-55315), in requests and responses alike.
    expect_error<Req>(start + "5\nhello\r\n0\r\n\r\n", 400, s + 1, "bare LF");
    expect_error<Req>(start + "5;a\nb\r\nhello\r\n0\r\n\r\n", 400, s + 3, "bare LF");
    expect_error<Req>(start + "5;a\rb\r\nhello\r\n0\r\n\r\n", 400, s + 3, "bare CR");
    expect_error<Req>(start + "5;a\x01\r\nhello\r\n0\r\n\r\n", 400, s + 3, "control character 0x01");
    expect_error<Req>(start + "0\r\n\n", 400, s + 3, "bare LF");
    expect_error<Req>(start + "0\r\nX: 1\n\r\n", 400, s + 7, "bare LF");
    std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_error<Resp>(resp + "5\nhello\r\n0\r\n\r\n", 400, resp.size() + 1, "bare LF");
    // Trailer fields follow the rules of header fields.
    expect_error<Req>(start + "0\r\nBad Name: 1\r\n\r\n", 400, s + 6, "whitespace between");
    expect_error<Req>(start + "0\r\nX: 1\r\n folded\r\n\r\n", 400, s + 9, "obsolete line folding");
}

TEST_CASE("a chunk size of 16 hex digits is accepted until max_body_size says no", "[http][parser][chunked]") {
    std::string start = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string t = parse_all<Req>(start + "ffffffffffffffff\r\nabc", Options{{}, false, {}});
    CHECK(t.find("data 'abc'") != std::string::npos);
    CHECK(t.find("error") == std::string::npos);
    aio::HttpParserLimits small;
    small.max_body_size = 10;
    expect_error<Req>(start + "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 413, start.size() + 10, "max_body_size",
                      Options{small, true, {}});
    expect_ok<Req>(start + "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", Options{small, true, {}});
}

TEST_CASE("chunked in a response: trailing whitespace after the size is tolerated", "[http][parser][chunked]") {
    std::string t = parse_all<Resp>("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n");
    CHECK(t.find("data 'hello'\nend_of_message") != std::string::npos);
}

// ---------------------------------------------------------------- request smuggling defences

TEST_CASE("Transfer-Encoding in requests: chunked last and alone, or rejected", "[http][parser][smuggling]") {
    std::string start = "POST / HTTP/1.1\r\nHost: a\r\n";
    std::size_t te = start.size() + 19;  // the value of a Transfer-Encoding field placed first
    std::string both = start + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_error<Req>(both, 400, both.find("5\r\n"), "both Content-Length and Transfer-Encoding");
    std::string both2 = start + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
    expect_error<Req>(both2, 400, te, "both Content-Length and Transfer-Encoding");
    expect_error<Req>(start + "Transfer-Encoding: gzip\r\n\r\n", 400, te, "final coding is not chunked");
    expect_error<Req>(start + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, te, "final coding is not chunked");
    expect_error<Req>(start + "Transfer-Encoding: xchunked\r\n\r\n", 400, te, "final coding is not chunked");
    expect_error<Req>(start + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400, te, "final coding is not chunked");
    expect_error<Req>(start + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, te, "'gzip' is not implemented");
    std::string two_fields = start + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_error<Req>(two_fields, 501, te, "'gzip' is not implemented");
    expect_error<Req>(start + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, te, "chunked listed twice");
    expect_error<Req>(start + "Transfer-Encoding: , chunked\r\n\r\n", 400, te, "empty element");
    expect_error<Req>(start + "Transfer-Encoding: chunked,\r\n\r\n", 400, te, "empty element");
    std::string http10 = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_error<Req>(http10, 400, 36, "HTTP/1.0 request");
    // Case and surrounding whitespace do not matter (RFC 9110 §7.6.1, §5.5).
    for (const char* ok : {"chunked", "Chunked", "CHUNKED", "chunked \t", "\tchunked"}) {
        std::string in = start + "Transfer-Encoding:" + ok + "\r\n\r\n0\r\n\r\n";
        CHECK(parse_all<Req>(in).find("framing=chunked") != std::string::npos);
    }
}

TEST_CASE("smuggling classics: a second request hidden in a body is never parsed as one",
          "[http][parser][smuggling]") {
    // CL.TE: a proxy using Content-Length would forward "0\r\n\r\nGET /admin..." as body.
    std::string clte =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    std::string t = parse_all<Req>(clte);
    CHECK(t.find("/admin") == std::string::npos);
    CHECK(t.find("error 400") != std::string::npos);
    // TE with a space before the colon (tiny-http, HAProxy).
    std::string ws = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n1\r\nZ\r\n";
    CHECK(parse_all<Req>(ws).find("error 400") != std::string::npos);
}

// --------------------------------------------------------------------- responses' framing

TEST_CASE("no body: responses to HEAD, and 204 and 304, whatever their fields say", "[http][parser][body]") {
    Options head;
    head.methods = {"HEAD"};
    std::string t = parse_all<Resp>("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 200 OK\r\n"
                                    "Content-Length: 2\r\n\r\nok",
                                    Options{{}, true, {"HEAD", "GET"}});
    CHECK(t == "head response HTTP/1.1 200 'OK' framing=none keep_alive=1 upgrade=0 [Content-Length: 1000]\n"
               "end_of_message\n"
               "head response HTTP/1.1 200 'OK' framing=content-length:2 keep_alive=1 upgrade=0 [Content-Length: 2]\n"
               "data 'ok'\nend_of_message\nconnection_closed\n");
    CHECK(response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD").framing == BodyFraming::none);
    CHECK(response_head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").framing == BodyFraming::none);
    CHECK(response_head("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n").framing == BodyFraming::none);
    CHECK(response_head("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n").framing ==
          BodyFraming::none);
}

TEST_CASE("1xx interim responses are reported as informational, then the final one follows",
          "[http][parser][body]") {
    std::string t = parse_all<Resp>(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes");
    CHECK(t == "informational response HTTP/1.1 100 'Continue' framing=none keep_alive=1 upgrade=0\n"
               "informational response HTTP/1.1 103 'Early Hints' framing=none keep_alive=1 upgrade=0 [Link: "
               "</style.css>]\n"
               "head response HTTP/1.1 200 'OK' framing=content-length:3 keep_alive=1 upgrade=0 [Content-Length: 3]\n"
               "data 'yes'\nend_of_message\nconnection_closed\n");
}

TEST_CASE("HTTP/1.0-style responses: the body runs until the connection closes", "[http][parser][body]") {
    std::string t = parse_all<Resp>("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of this\r\nis the body");
    CHECK(t == "head response HTTP/1.0 200 'OK' framing=until-eof keep_alive=0 upgrade=0 [Server: old]\n"
               "data 'all of this\\r\\nis the body'\nend_of_message\nconnection_closed\n");
    // HTTP/1.1 too, without Content-Length or Transfer-Encoding.
    t = parse_all<Resp>("HTTP/1.1 200 OK\r\n\r\nbody");
    CHECK(t.find("framing=until-eof keep_alive=0") != std::string::npos);
    CHECK(t.find("data 'body'\nend_of_message\nconnection_closed") != std::string::npos);
    // Without feed_eof() the body is not over.
    HttpResponseParser p;
    p.feed("HTTP/1.1 200 OK\r\n\r\nsome");
    CHECK(p.next_event().kind == HttpEvent::head);
    CHECK(p.next_event().kind == HttpEvent::data);
    CHECK(p.next_event().kind == HttpEvent::need_data);
    p.feed_eof();
    CHECK(p.next_event().kind == HttpEvent::end_of_message);
    CHECK(p.next_event().kind == HttpEvent::connection_closed);
    CHECK_THROWS_AS(p.feed("more"), std::logic_error);
}

TEST_CASE("responses' Transfer-Encoding and Content-Length rules", "[http][parser][body][smuggling]") {
    std::string start = "HTTP/1.1 200 OK\r\n";
    std::size_t te = start.size() + 19;
    expect_error<Resp>(start + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, te,
                       "both Content-Length and Transfer-Encoding");
    expect_error<Resp>(start + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, te, "'gzip' is not supported");
    expect_error<Resp>(start + "Transfer-Encoding: gzip\r\n\r\n", 501, te, "'gzip' is not supported");
    expect_error<Resp>("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 36, "HTTP/1.0 response");
    expect_error<Resp>(start + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, 52, "values differ");
    std::string chunked = parse_all<Resp>(start + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    CHECK(chunked.find("framing=chunked keep_alive=1") != std::string::npos);
}

TEST_CASE("101 and a 2xx to CONNECT end HTTP: the rest of the bytes are the new protocol's",
          "[http][parser][upgrade]") {
    std::string t = parse_all<Resp>(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello");
    CHECK(t == "head response HTTP/1.1 101 'Switching Protocols' framing=tunnel keep_alive=0 upgrade=1 [Upgrade: "
               "websocket] [Connection: Upgrade]\nend_of_message\nupgrade\nunparsed '\\x81\\x05hello'\n");
    t = parse_all<Resp>("HTTP/1.1 200 Connection established\r\nContent-Length: 10\r\n\r\ntunnel bytes",
                        Options{{}, true, {"CONNECT"}});
    CHECK(t.find("framing=tunnel") != std::string::npos);
    CHECK(t.find("unparsed 'tunnel bytes'") != std::string::npos);
    // A refused CONNECT is an ordinary response.
    t = parse_all<Resp>("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno", Options{{}, true, {"CONNECT"}});
    CHECK(t.find("data 'no'\nend_of_message\nconnection_closed") != std::string::npos);
}

TEST_CASE("an upgrade request pauses the parser until the server decides", "[http][parser][upgrade]") {
    std::string upgrade =
        "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
    std::string t = parse_all<Req>(upgrade + "\x81\x02hi");
    CHECK(t.find("upgrade=1") != std::string::npos);
    CHECK(t.find("end_of_message\nupgrade\nunparsed '\\x81\\x02hi'\n") != std::string::npos);

    // Refused (the server answered as HTTP): resume() parses what follows as requests.
    HttpRequestParser p;
    p.feed(upgrade + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(p.next_event().kind == HttpEvent::head);
    CHECK(p.next_event().kind == HttpEvent::end_of_message);
    CHECK(p.next_event().kind == HttpEvent::upgrade);
    CHECK(p.next_event().kind == HttpEvent::upgrade);  // stays there until told
    p.resume();
    CHECK(p.next_event().kind == HttpEvent::head);
    CHECK(p.head().target() == "/next");
    CHECK_FALSE(p.head().upgrade);
    CHECK_THROWS_AS(p.resume(), std::logic_error);
    // "Upgrade" without "Connection: upgrade" is only a field.
    CHECK_FALSE(request_head("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").upgrade);
}

// ---------------------------------------------------------------------------- keep-alive

TEST_CASE("keep-alive: HTTP/1.1 unless close, HTTP/1.0 only with keep-alive", "[http][parser][keepalive]") {
    CHECK(request_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
    CHECK_FALSE(request_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    CHECK_FALSE(request_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
    CHECK_FALSE(request_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n").keep_alive);
    CHECK_FALSE(request_head("GET / HTTP/1.0\r\n\r\n").keep_alive);
    CHECK(request_head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    CHECK_FALSE(request_head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    CHECK(request_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n").keep_alive);  // not a token match
    CHECK(response_head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    CHECK_FALSE(response_head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").keep_alive);
    CHECK(response_head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    CHECK_FALSE(response_head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keep_alive);  // until close
    aio::HttpHeaders h{{"Connection", "TE, keep-alive"}};
    CHECK(aio::keep_alive({1, 0}, h));
    CHECK(aio::keep_alive({1, 1}, {}));
    CHECK_FALSE(aio::keep_alive({1, 0}, {}));
}

TEST_CASE("Expect: 100-continue is reported", "[http][parser]") {
    CHECK(request_head("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
              .expect_continue);
    CHECK_FALSE(request_head("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n").expect_continue);
}

// ------------------------------------------------------------------------------- limits

TEST_CASE("limits: request line, header section, field count; each maps to its status", "[http][parser][limits]") {
    aio::HttpParserLimits limits;
    // The request line may be max_line_size bytes with its CR; one more is 414.
    std::string target = "/" + std::string(limits.max_line_size - 15, 'a');  // "GET " + target + " HTTP/1.1\r"
    std::string line = "GET " + target + " HTTP/1.1\r\n";
    REQUIRE(line.size() == limits.max_line_size + 1);
    expect_ok<Req>(line + "Host: a\r\n\r\n");
    std::string longer = "GET " + target + "a HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_error<Req>(longer, 414, limits.max_line_size + 1, "request line is longer");
    // Reported as soon as the limit is passed, without waiting for the LF.
    expect_error<Req>(std::string(limits.max_line_size + 1, 'G'), 414, limits.max_line_size + 1,
                      "request line is longer", Options{{}, false, {}});

    // The header section: at most max_header_size bytes, at most max_headers fields.
    std::string start = "GET / HTTP/1.1\r\nHost: a\r\n";
    std::string many;
    for (std::size_t i = 1; i < limits.max_headers; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    expect_ok<Req>(start + many + "\r\n");  // exactly max_headers fields, with Host
    std::string too_many = start + many + "X-One-More: v\r\n\r\n";
    expect_error<Req>(too_many, 431, too_many.find("X-One-More"), "more than max_headers (100)");
    std::string big = "X-Big: " + std::string(limits.max_header_size, 'b') + "\r\n";
    expect_error<Req>(start + big + "\r\n", 431, 16 + limits.max_header_size, "header section is larger");

    // Configurable: smaller limits, the same rules.
    aio::HttpParserLimits small;
    small.max_line_size = 20;
    small.max_header_size = 30;
    small.max_headers = 2;
    Options o{small, true, {}};
    expect_ok<Req>("GET /12345 HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n", o);
    expect_error<Req>("GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n", 414, 21, "request line", o);
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n", 431, 31, "max_headers (2)", o);
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a\r\nX: 123456789012345\r\n\r\n", 431, 46, "header section", o);
    expect_error<Resp>("HTTP/1.1 200 OK, a long reason\r\n\r\n", 400, 21, "status line is longer", o);
    small.max_header_size = 64;  // room for the fields of a chunked request
    o = Options{small, true, {}};
    std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_ok<Req>(chunked + "5;12345678901234567\r\nhello\r\n0\r\n\r\n", o);  // 20 bytes with its CR
    expect_error<Req>(chunked + "5;123456789012345678\r\n", 400, chunked.size() + 21, "chunk-size line is longer", o);
    expect_error<Req>(chunked + "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, chunked.size() + 15, "max_headers", o);
    expect_error<Req>(chunked + "0\r\nA: " + std::string(64, 'a') + "\r\n\r\n", 431, chunked.size() + 3 + 64,
                      "trailer section is larger", o);
}

TEST_CASE("max_body_size: 413 for Content-Length at once, for the other framings at the first byte past it",
          "[http][parser][limits]") {
    aio::HttpParserLimits limits;
    limits.max_body_size = 4;
    Options o{limits, true, {}};
    std::string cl = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    expect_error<Req>(cl, 413, cl.find("5\r\n"), "larger than max_body_size", o);
    expect_ok<Req>("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nhell", o);
    // Close-delimited: the 4 allowed bytes are delivered, then the error, however it was cut.
    std::string t = parse_all<Resp>("HTTP/1.0 200 OK\r\n\r\nhello", o);
    CHECK(t.find("data 'hell'\nerror 413 @23: ") != std::string::npos);
}

// --------------------------------------------------------------- the end of the stream

TEST_CASE("feed_eof: a clean close between messages, an error inside one", "[http][parser][eof]") {
    CHECK(parse_all<Req>("") == "connection_closed\n");
    CHECK(parse_all<Req>("GET / HTTP/1.1\r\nHost: a\r\n\r\n").find("end_of_message\nconnection_closed") !=
          std::string::npos);
    expect_error<Req>("GET / HTTP/1.1\r\nHost: a\r\n", 400, 25, "in the middle of a message head");
    expect_error<Req>("GET / HT", 400, 8, "in the middle of a message head");
    expect_error<Req>("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello", 400, 53,
                      "after 5 of the 10 body bytes");
    expect_error<Req>("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 400, 62,
                      "inside a chunked body");
    expect_error<Req>("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", 400,
                      69, "inside a chunked body");
    // Without feed_eof(), an incomplete message just waits.
    CHECK(parse_all<Req>("GET / HTTP/1.1\r\nHost: a\r\n", Options{{}, false, {}}) == "");
}

TEST_CASE("after an error the parser stays failed, with the same error", "[http][parser]") {
    HttpRequestParser p;
    p.feed("GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    std::string first;
    try {
        p.next_event();
        FAIL("no error");
    } catch (const HttpError& e) {
        first = e.what();
        CHECK(e.status() == 400);
        CHECK(e.offset() == 20);
        CHECK(first.find("at byte 20") != std::string::npos);
        CHECK(first.find("(400 Bad Request)") != std::string::npos);
    }
    p.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    try {
        p.next_event();
        FAIL("no error");
    } catch (const HttpError& e) {
        CHECK(std::string(e.what()) == first);
    }
}

TEST_CASE("offsets count over the whole connection, across pipelined messages", "[http][parser]") {
    std::string first = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_error<Req>(first + first + "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, 2 * first.size() + 20,
                      "whitespace between");
}

// ----------------------------------------------------------------------------- streaming

TEST_CASE("a large body streams through in pieces without being buffered whole", "[http][parser][body]") {
    const std::size_t total = 4 * 1024 * 1024, piece = 16 * 1024;
    std::string chunk(piece, 'z');
    for (bool chunked : {false, true}) {
        HttpResponseParser p;
        std::string head = chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   : "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n";
        p.feed(head);
        REQUIRE(p.next_event().kind == HttpEvent::head);
        std::size_t received = 0, most_buffered = 0;
        bool ended = false;
        for (std::size_t sent = 0; sent < total; sent += piece) {
            if (chunked) {
                char size[16];
                std::snprintf(size, sizeof size, "%zx\r\n", piece);
                p.feed(size);
                p.feed(chunk);
                p.feed("\r\n");
            } else {
                p.feed(chunk);
            }
            most_buffered = std::max(most_buffered, p.buffered());
            for (HttpEvent e = p.next_event(); e.kind != HttpEvent::need_data; e = p.next_event()) {
                if (e.kind == HttpEvent::end_of_message) {
                    ended = true;
                    break;
                }
                REQUIRE(e.kind == HttpEvent::data);
                received += e.bytes.size();
            }
        }
        if (chunked) {
            p.feed("0\r\n\r\n");
            ended = p.next_event().kind == HttpEvent::end_of_message;
        }
        CHECK(ended);
        CHECK(received == total);
        CHECK(most_buffered <= piece + 16);  // one read's worth, never the whole body
    }
}

TEST_CASE("data events are views into the parser's buffer, valid until the next feed", "[http][parser][body]") {
    HttpRequestParser p;
    p.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc");
    REQUIRE(p.next_event().kind == HttpEvent::head);
    HttpEvent e = p.next_event();
    REQUIRE(e.kind == HttpEvent::data);
    CHECK(e.bytes == "abc");
    CHECK(p.next_event().kind == HttpEvent::need_data);
    CHECK(e.bytes == "abc");  // still valid: no feed() since
    p.feed("def");
    e = p.next_event();
    CHECK(e.bytes == "def");
    CHECK(p.next_event().kind == HttpEvent::end_of_message);
}

TEST_CASE("feed after feed_eof is a programming error", "[http][parser]") {
    HttpRequestParser p;
    p.feed_eof();
    CHECK_THROWS_AS(p.feed("x"), std::logic_error);
    CHECK(p.next_event().kind == HttpEvent::connection_closed);
    CHECK_THROWS_AS(p.take_unparsed(), std::logic_error);
}
