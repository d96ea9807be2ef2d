// Stage 5 tests: serialising messages (http_writer.hpp) and the header fields they carry
// (http_headers.hpp). What is written is what the RFC prescribes, what the parser reads back
// is what was written, and what would be read differently by a peer is refused.
#include <catch2/catch.hpp>

#include <string>

#include "stage5_http/http_parser.hpp"
#include "stage5_http/http_writer.hpp"
#include "tests/http_test_support.hpp"

namespace {

using aio::HttpHeaders;
using http_test_support::transcript;

}  // namespace

TEST_CASE("HttpHeaders: ordered, repeatable, looked up in any case", "[http][headers]") {
    HttpHeaders h;
    h.add("Set-Cookie", "a=1").add("Content-Type", "text/plain").add("set-cookie", "b=2");
    CHECK(h.size() == 3);
    CHECK(h.get("SET-COOKIE") == "a=1");
    CHECK(h.get_all("Set-Cookie") == std::vector<std::string_view>{"a=1", "b=2"});
    CHECK(h.count("set-cookie") == 2);
    CHECK(h.contains("content-type"));
    CHECK_FALSE(h.contains("content-length"));
    h.set("Set-Cookie", "c=3");
    CHECK(h.get_all("set-cookie") == std::vector<std::string_view>{"c=3"});
    CHECK(h[0].name == "Content-Type");  // set() removes, then appends
    CHECK(h.remove("content-type") == 1);
    CHECK(h.size() == 1);
    h.add("X-Spaces", "  trimmed\t ");
    CHECK(h.get("x-spaces") == "trimmed");
    CHECK(HttpHeaders{{"A", "1"}, {"b", "2"}} == HttpHeaders{{"a", "1"}, {"B", "2"}});
    CHECK_FALSE(HttpHeaders{{"A", "1"}} == HttpHeaders{{"A", "2"}});
    HttpHeaders copy = h;  // spans are offsets: a copy is self-contained
    h.clear();
    CHECK(copy.get("set-cookie") == "c=3");
}

TEST_CASE("HttpHeaders::add refuses what would split a message", "[http][headers]") {
    HttpHeaders h;
    CHECK_THROWS_WITH(h.add("X", "a\r\nInjected: 1"), Catch::Contains("control character"));
    CHECK_THROWS_WITH(h.add("X", "a\nb"), Catch::Contains("control character"));
    CHECK_THROWS_WITH(h.add("X", std::string("a\0b", 3)), Catch::Contains("control character"));
    CHECK_THROWS_WITH(h.add("Bad Name", "1"), Catch::Contains("not a token"));
    CHECK_THROWS_WITH(h.add("", "1"), Catch::Contains("not a token"));
    CHECK_THROWS_WITH(h.add("X:", "1"), Catch::Contains("not a token"));
    CHECK_NOTHROW(h.add("X", "tab\tinside and \xc3\xa9"));
    CHECK(h.size() == 1);
}

TEST_CASE("request and response heads, byte for byte", "[http][writer]") {
    std::string out;
    aio::write_request_head(out, "GET", "/a?b", {{"Host", "example.com"}, {"Accept", "*/*"}});
    CHECK(out == "GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    out.clear();
    aio::write_request_head(out, "GET", "/", {}, {1, 0});
    CHECK(out == "GET / HTTP/1.0\r\n\r\n");
    out.clear();
    aio::write_response_head(out, 200, "OK", {{"Content-Length", "0"}});
    CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    out.clear();
    aio::write_response_head(out, 599, "", {});
    CHECK(out == "HTTP/1.1 599 \r\n\r\n");  // the space before an empty reason stays
    out = "kept: ";
    aio::write_response_head(out, 404, "Not Found", {});
    CHECK(out == "kept: HTTP/1.1 404 Not Found\r\n\r\n");  // appends

    CHECK_THROWS_WITH(aio::write_request_head(out, "G T", "/", {}), Catch::Contains("not a token"));
    CHECK_THROWS_WITH(aio::write_request_head(out, "GET", "/a b", {}), Catch::Contains("percent-encode"));
    CHECK_THROWS_WITH(aio::write_request_head(out, "GET", "/a#f", {}), Catch::Contains("'#'"));
    CHECK_THROWS_WITH(aio::write_request_head(out, "GET", "", {}), Catch::Contains("empty request target"));
    CHECK_THROWS_WITH(aio::write_request_head(out, "GET", "/", {}, {2, 0}), Catch::Contains("HTTP/1.0 and HTTP/1.1"));
    CHECK_THROWS_WITH(aio::write_response_head(out, 99, "x", {}), Catch::Contains("outside 100-599"));
    CHECK_THROWS_WITH(aio::write_response_head(out, 200, "O\r\nK", {}), Catch::Contains("control character"));
}

TEST_CASE("chunked bodies: hex sizes, no empty chunk before the last, trailers", "[http][writer][chunked]") {
    std::string out;
    aio::write_chunk(out, "hello");
    aio::write_chunk(out, "");  // nothing: an empty chunk would end the body
    aio::write_chunk(out, std::string(26, 'x'));
    aio::write_last_chunk(out, {{"Checksum", "abc"}});
    CHECK(out == "5\r\nhello\r\n1a\r\n" + std::string(26, 'x') + "\r\n0\r\nChecksum: abc\r\n\r\n");
    out.clear();
    aio::write_last_chunk(out);
    CHECK(out == "0\r\n\r\n");
}

TEST_CASE("whole messages: framing added, checked, or refused", "[http][writer]") {
    CHECK(aio::serialize_request("GET", "/", {{"Host", "h"}}) == "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(aio::serialize_request("POST", "/", {{"Host", "h"}}, "body") ==
          "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody");
    CHECK(aio::serialize_request("POST", "/", {{"Host", "h"}, {"Transfer-Encoding", "chunked"}}, "body",
                                 {{"T", "1"}}) ==
          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nT: 1\r\n\r\n");
    CHECK(aio::serialize_response(200, {}, "hi") == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    CHECK(aio::serialize_response(200, {}) == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CHECK(aio::serialize_response(204, {}) == "HTTP/1.1 204 No Content\r\n\r\n");
    CHECK(aio::serialize_response(299, {}, "", {}, {}, "Custom") ==
          "HTTP/1.1 299 Custom\r\nContent-Length: 0\r\n\r\n");
    CHECK(aio::serialize_response(200, {{"Content-Length", "2, 2"}}, "ok").find("\r\n\r\nok") != std::string::npos);

    CHECK_THROWS_WITH(aio::serialize_request("POST", "/", {{"Content-Length", "5"}}, "body"),
                      Catch::Contains("not the body's size (4 bytes)"));
    CHECK_THROWS_WITH(aio::serialize_request("POST", "/", {{"Content-Length", "+4"}}, "body"),
                      Catch::Contains("not the body's size"));
    CHECK_THROWS_WITH(
        aio::serialize_request("POST", "/", {{"Content-Length", "4"}, {"Transfer-Encoding", "chunked"}}, "body"),
        Catch::Contains("both Content-Length and Transfer-Encoding"));
    CHECK_THROWS_WITH(aio::serialize_request("POST", "/", {{"Transfer-Encoding", "gzip, chunked"}}, "x"),
                      Catch::Contains("only a single 'chunked'"));
    CHECK_THROWS_WITH(aio::serialize_response(204, {}, "x"), Catch::Contains("has no body"));
    CHECK_THROWS_WITH(aio::serialize_response(304, {{"Transfer-Encoding", "chunked"}}), Catch::Contains("has no body"));
    CHECK_THROWS_WITH(aio::serialize_response(200, {}, "x", {{"T", "1"}}), Catch::Contains("need Transfer-Encoding"));
}

TEST_CASE("what is written parses back to itself", "[http][writer][roundtrip]") {
    struct Request {
        const char* method;
        const char* target;
        HttpHeaders headers;
        std::string body;
        HttpHeaders trailers;
    };
    Request requests[] = {
        {"GET", "/", {{"Host", "example.com"}}, "", {}},
        {"POST", "/submit?x=1", {{"Host", "h"}, {"Content-Type", "text/plain"}}, "some body\r\n\r\nGET / HTTP/1.1", {}},
        {"PUT", "/up", {{"Host", "h"}, {"Transfer-Encoding", "chunked"}}, std::string(5000, 'q'), {{"Digest", "x"}}},
        {"OPTIONS", "*", {{"Host", "h"}, {"X-Empty", ""}, {"X-Obs", "\xff\xfe"}}, "", {}},
    };
    for (Request& r : requests) {
        std::string wire = aio::serialize_request(r.method, r.target, r.headers, r.body, r.trailers);
        aio::HttpRequestParser p;
        p.feed(wire);
        p.feed_eof();
        REQUIRE(p.next_event().kind == aio::HttpEvent::head);
        aio::HttpRequestHead head = std::move(p.head());
        std::string body;
        aio::HttpEvent e;
        while ((e = p.next_event()).kind == aio::HttpEvent::data) body.append(e.bytes);
        CHECK(e.kind == aio::HttpEvent::end_of_message);
        CHECK(head.method() == r.method);
        CHECK(head.target() == r.target);
        CHECK(body == r.body);
        CHECK(p.trailers() == r.trailers);
        HttpHeaders expected = r.headers;
        if (!r.body.empty() && !expected.contains("transfer-encoding"))
            expected.add("Content-Length", std::to_string(r.body.size()));
        CHECK(head.headers == expected);
        CHECK(p.next_event().kind == aio::HttpEvent::connection_closed);
    }
    // A response, through the transcript (whole and one byte at a time agree).
    std::string wire = aio::serialize_response(201, {{"Location", "/new"}, {"Transfer-Encoding", "chunked"}}, "created",
                                               {{"Done", "yes"}});
    std::string whole = transcript<aio::HttpResponseParser>(wire, {});
    CHECK(whole ==
          "head response HTTP/1.1 201 'Created' framing=chunked keep_alive=1 upgrade=0 [Location: /new] "
          "[Transfer-Encoding: chunked]\ndata 'created'\nend_of_message [Done: yes]\nconnection_closed\n");
    CHECK(transcript<aio::HttpResponseParser>(wire, http_test_support::every_byte(wire.size())) == whole);
}

TEST_CASE("reason phrases", "[http][writer]") {
    CHECK(aio::reason_phrase(200) == "OK");
    CHECK(aio::reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(aio::reason_phrase(505) == "HTTP Version Not Supported");
    CHECK(aio::reason_phrase(299) == "");
}
