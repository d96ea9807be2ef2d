// Stage 5 tests: URLs (url.hpp). Parsing http://host[:port]/path?query#fragment; the
// errors, each with the byte it names; what a request is built from (target, authority);
// re-serialising; and resolving references, against every example of RFC 3986 §5.4.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "stage5_http/url.hpp"

namespace {

using aio::InvalidURL;
using aio::URL;

// Expects parsing `text` to fail at byte `offset` with a message that mentions `mentions`.
void expect_invalid(std::string_view text, std::size_t offset, std::string_view mentions) {
    INFO("url: " << text);
    try {
        URL u = URL::parse(text);
        FAIL("parsed as " << u.str());
    } catch (const InvalidURL& e) {
        INFO("error: " << e.what());
        CHECK(e.offset() == offset);
        CHECK(std::string(e.what()).find(mentions) != std::string::npos);
        CHECK(std::string(e.what()).find("at byte " + std::to_string(offset)) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("a URL's parts, and what a request is built from", "[url]") {
    URL u = URL::parse("http://example.com:8080/a/b%20c?x=1&y=%2F#top");
    CHECK(u.scheme() == "http");
    CHECK(u.host() == "example.com");
    CHECK(u.port() == 8080);
    CHECK(u.path() == "/a/b%20c");  // percent-encoding kept as given
    CHECK(u.has_query());
    CHECK(u.query() == "x=1&y=%2F");
    CHECK(u.fragment() == "top");
    CHECK(u.target() == "/a/b%20c?x=1&y=%2F");  // never the fragment
    CHECK(u.authority() == "example.com:8080");

    URL bare = URL::parse("http://example.com");
    CHECK(bare.port() == 80);
    CHECK(bare.path() == "");
    CHECK(bare.target() == "/");
    CHECK(bare.authority() == "example.com");
    CHECK_FALSE(bare.has_query());
    CHECK_FALSE(bare.has_fragment());

    CHECK(URL::parse("http://h?q").target() == "/?q");
    CHECK(URL::parse("http://h/?").target() == "/?");  // an empty query is kept
    CHECK(URL::parse("http://h#f").target() == "/");
    CHECK(URL::parse("http://h/p:@!$&'()*+,;=-._~").path() == "/p:@!$&'()*+,;=-._~");
    CHECK(URL::parse("http://h/?a/b?c").query() == "a/b?c");
}

TEST_CASE("scheme and host are case-insensitive; the URL re-serialises normalised", "[url]") {
    URL u = URL::parse("HTTP://Example.COM:80/Path?Q#F");
    CHECK(u.host() == "example.com");
    CHECK(u.path() == "/Path");
    CHECK(u.str() == "http://example.com/Path?Q#F");
    CHECK(URL::parse(u.str()) == u);
    for (const char* text : {"http://h", "http://h/", "http://h:8080/a?b#c", "http://[::1]:81/", "http://1.2.3.4/?",
                             "http://h#", "http://h:/x", "http://h/%41%2f"}) {
        URL v = URL::parse(text);
        CHECK(URL::parse(v.str()) == v);
    }
}

TEST_CASE("hosts: names, IPv4 and bracketed IPv6 literals", "[url]") {
    URL v4 = URL::parse("http://127.0.0.1:8000/");
    CHECK(v4.host() == "127.0.0.1");
    CHECK_FALSE(v4.host_is_ipv6());
    URL v6 = URL::parse("http://[::1]:8080/x");
    CHECK(v6.host() == "::1");  // what getaddrinfo takes
    CHECK(v6.host_is_ipv6());
    CHECK(v6.authority() == "[::1]:8080");
    CHECK(v6.str() == "http://[::1]:8080/x");
    CHECK(URL::parse("http://[2001:DB8::1]/").host() == "2001:db8::1");
    CHECK(URL::parse("http://[::ffff:192.0.2.1]/").authority() == "[::ffff:192.0.2.1]");
    CHECK(URL::parse("http://a-b.c_d~e/").host() == "a-b.c_d~e");
    CHECK(URL::parse("http://example.123/").host() == "example.123");  // not all digits: a name

    expect_invalid("http://[::1/", 7, "no ']' closes");
    expect_invalid("http://[::g]/", 8, "not a valid IPv6 address");
    expect_invalid("http://[1.2.3.4]/", 8, "not a valid IPv6 address");
    expect_invalid("http://[fe80::1%25eth0]/", 15, "zone identifiers");
    expect_invalid("http://[v1.x]/", 8, "IPvFuture");
    expect_invalid("http://[::1]x/", 12, "only ':port' may follow");
    expect_invalid("http://256.1.1.1/", 7, "not an IPv4 address");
    expect_invalid("http://1.2.3/", 7, "not an IPv4 address");
    expect_invalid("http://01.2.3.4/", 7, "no leading zeros");
    expect_invalid("http://1.2.3.4./", 7, "not an IPv4 address");
}

TEST_CASE("ports: 1 to 65535, empty means 80", "[url]") {
    CHECK(URL::parse("http://h:65535/").port() == 65535);
    CHECK(URL::parse("http://h:1/").port() == 1);
    CHECK(URL::parse("http://h:/").port() == 80);  // RFC 3986 §3.2.3: an empty port is the default
    CHECK(URL::parse("http://h:00080/").port() == 80);
    CHECK(URL::parse("http://h:00080/").str() == "http://h/");
    expect_invalid("http://h:0/", 9, "port 0");
    expect_invalid("http://h:65536/", 9, "out of range");
    expect_invalid("http://h:99999999999999999999/", 9, "out of range");
    expect_invalid("http://h:8o/", 10, "only hold digits");
    expect_invalid("http://h:-1/", 9, "only hold digits");
}

TEST_CASE("malformed URLs: what is wrong and at which byte", "[url]") {
    expect_invalid("", 0, "no scheme");
    expect_invalid("example.com/x", 0, "no scheme");
    expect_invalid("/relative", 0, "no scheme");
    expect_invalid("ftp://h/", 0, "scheme 'ftp' is not supported");
    expect_invalid("http:/h/", 5, "expected '//'");
    expect_invalid("http:h", 5, "expected '//'");
    expect_invalid("http://", 7, "the host is empty");
    expect_invalid("http:///path", 7, "the host is empty");
    expect_invalid("http://:80/", 7, "the host is empty");
    expect_invalid("http://?q", 7, "the host is empty");
    expect_invalid("http://h/a b", 10, "a space is not allowed in the path; percent-encode it as %20");
    expect_invalid("http://h/a?b c", 12, "in the query");
    expect_invalid("http://h/#a#b", 11, "'#' is not allowed in the fragment");
    expect_invalid("http://h/caf\xc3\xa9", 12, "non-ASCII");
    expect_invalid("http://h/a\\b", 10, "percent-encode it as %5C");
    expect_invalid("http://h/a\nb", 10, "control character");
    expect_invalid("http://h/<x>", 9, "'<'");
    expect_invalid("http://h/%zz", 9, "not a percent-encoded byte");
    expect_invalid("http://h/%4", 9, "not followed by two hex digits");
    expect_invalid("http://h/%", 9, "write a literal % as %25");
    expect_invalid("http://h/?%g0", 10, "in the query");
    expect_invalid("http://ex ample.com/", 9, "not allowed in the host");
    expect_invalid("http://ex%2/", 9, "in the host");
    expect_invalid(" http://h/", 0, "a space is not allowed in the scheme");
}

TEST_CASE("https is refused with a pointer to what to use instead", "[url]") {
    expect_invalid("https://example.com/", 0, "https needs TLS");
    expect_invalid("HTTPS://example.com/", 0, "TLS library");
}

TEST_CASE("user information (user:password@) is refused", "[url]") {
    // RFC 9110 §4.2.4: deprecated, and a phishing device (http://bank.com@evil.example/).
    expect_invalid("http://user:pass@example.com/", 7, "Authorization header");
    expect_invalid("http://bank.com@evil.example/", 7, "user information");
    CHECK(URL::parse("http://h/a@b").path() == "/a@b");  // '@' in a path is fine
}

TEST_CASE("resolve_reference: RFC 3986 §5.4.1, the normal examples", "[url][resolve]") {
    const char* base = "http://a/b/c/d;p?q";
    std::pair<const char*, const char*> cases[] = {
        {"g:h", "g:h"},
        {"g", "http://a/b/c/g"},
        {"./g", "http://a/b/c/g"},
        {"g/", "http://a/b/c/g/"},
        {"/g", "http://a/g"},
        {"//g", "http://g"},
        {"?y", "http://a/b/c/d;p?y"},
        {"g?y", "http://a/b/c/g?y"},
        {"#s", "http://a/b/c/d;p?q#s"},
        {"g#s", "http://a/b/c/g#s"},
        {"g?y#s", "http://a/b/c/g?y#s"},
        {";x", "http://a/b/c/;x"},
        {"g;x", "http://a/b/c/g;x"},
        {"g;x?y#s", "http://a/b/c/g;x?y#s"},
        {"", "http://a/b/c/d;p?q"},
        {".", "http://a/b/c/"},
        {"./", "http://a/b/c/"},
        {"..", "http://a/b/"},
        {"../", "http://a/b/"},
        {"../g", "http://a/b/g"},
        {"../..", "http://a/"},
        {"../../", "http://a/"},
        {"../../g", "http://a/g"},
    };
    for (auto [ref, want] : cases) {
        INFO("reference: '" << ref << "'");
        CHECK(aio::resolve_reference(base, ref) == want);
    }
}

TEST_CASE("resolve_reference: RFC 3986 §5.4.2, the abnormal examples", "[url][resolve]") {
    const char* base = "http://a/b/c/d;p?q";
    std::pair<const char*, const char*> cases[] = {
        {"../../../g", "http://a/g"},
        {"../../../../g", "http://a/g"},
        {"/./g", "http://a/g"},
        {"/../g", "http://a/g"},
        {"g.", "http://a/b/c/g."},
        {".g", "http://a/b/c/.g"},
        {"g..", "http://a/b/c/g.."},
        {"..g", "http://a/b/c/..g"},
        {"./../g", "http://a/b/g"},
        {"./g/.", "http://a/b/c/g/"},
        {"g/./h", "http://a/b/c/g/h"},
        {"g/../h", "http://a/b/c/h"},
        {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
        {"g;x=1/../y", "http://a/b/c/y"},
        {"g?y/./x", "http://a/b/c/g?y/./x"},
        {"g?y/../x", "http://a/b/c/g?y/../x"},
        {"g#s/./x", "http://a/b/c/g#s/./x"},
        {"g#s/../x", "http://a/b/c/g#s/../x"},
        {"http:g", "http:g"},  // the strict reading: a scheme of its own wins
    };
    for (auto [ref, want] : cases) {
        INFO("reference: '" << ref << "'");
        CHECK(aio::resolve_reference(base, ref) == want);
    }
    CHECK(aio::resolve_reference("http://a", "b") == "http://a/b");  // §5.2.3: an empty base path
    CHECK_THROWS_AS(aio::resolve_reference("/no/scheme", "x"), InvalidURL);
}

TEST_CASE("URL::join follows redirects, and refuses what is not an http URL", "[url][resolve]") {
    URL base = URL::parse("http://a/b/c/d;p?q");
    CHECK(base.join("../g").str() == "http://a/b/g");
    CHECK(base.join("//other.example:8080/x").str() == "http://other.example:8080/x");
    CHECK(base.join("http://elsewhere/").host() == "elsewhere");
    CHECK(base.join("?y").target() == "/b/c/d;p?y");
    CHECK(base.join("#frag").target() == "/b/c/d;p?q");
    CHECK_THROWS_WITH(base.join("g:h"), Catch::Contains("scheme 'g' is not supported"));
    CHECK_THROWS_WITH(base.join("http:g"), Catch::Contains("expected '//'"));
    CHECK_THROWS_WITH(base.join("https://secure/"), Catch::Contains("TLS"));
    CHECK_THROWS_WITH(base.join("/a b"), Catch::Contains("percent-encode it as %20"));
}

TEST_CASE("parse_host_port: the Host field and the CONNECT target", "[url]") {
    aio::HostPort hp = aio::parse_host_port("Example.com:8443", true);
    CHECK(hp.host == "example.com");
    CHECK(hp.has_port);
    CHECK(hp.port == 8443);
    aio::HostPort v6 = aio::parse_host_port("[::1]", false);
    CHECK(v6.ipv6);
    CHECK_FALSE(v6.has_port);
    CHECK_THROWS_WITH(aio::parse_host_port("example.com", true), Catch::Contains("port is required"));
    CHECK_THROWS_WITH(aio::parse_host_port("example.com:", true), Catch::Contains("port after ':' is empty"));
    CHECK_THROWS_WITH(aio::parse_host_port("a/b", false), Catch::Contains("'/'"));
}
