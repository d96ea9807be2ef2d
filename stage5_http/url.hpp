// Stage 5: HTTP/1.1. URLs: what the client is asked to fetch, and where a redirect points.
//
// Adds:    URL (parse, host, port, target, authority, str, join), InvalidURL,
//          resolve_reference (RFC 3986 §5.2 on any URI), parse_host_port (a Host field or a
//          CONNECT target).
// Mirrors: yarl's URL, which aiohttp's client takes (URL("http://h/p").join(location) for
//          redirects), and aiohttp's InvalidURL (client_exceptions.py). The grammar is
//          RFC 3986's; RFC 9110 §4.2.1 adds what an http URI requires (a non-empty host).
//
// Only http:// URLs: https:// needs TLS, which this course leaves out (InvalidURL says so).
// Percent-encoding is checked but kept as given, so a URL re-serialises to what was written
// (apart from the scheme and host, which are case-insensitive and come out in lower case, and
// a port of 80, which is left out). A character that needs encoding (a space, a non-ASCII
// byte) is an error that says how to encode it, rather than being encoded silently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace aio {

// A malformed URL: what is wrong and at which byte of the text (counting from 0).
class InvalidURL : public std::invalid_argument {
public:
    InvalidURL(std::string_view url, std::size_t offset, const std::string& problem);
    std::size_t offset() const noexcept { return offset_; }
    const std::string& problem() const noexcept { return problem_; }

private:
    std::size_t offset_;
    std::string problem_;
};

class URL {
public:
    // Parses http://host[:port][/path][?query][#fragment]. Throws InvalidURL.
    static URL parse(std::string_view text);

    const std::string& scheme() const noexcept { return scheme_; }  // always "http"
    // A name ("example.com", lower case), an IPv4 address, or an IPv6 address without its
    // brackets ("::1"): what getaddrinfo takes.
    const std::string& host() const noexcept { return host_; }
    bool host_is_ipv6() const noexcept { return ipv6_; }
    std::uint16_t port() const noexcept { return port_; }  // 80 unless given
    const std::string& path() const noexcept { return path_; }  // "" or "/...", encoded as given
    bool has_query() const noexcept { return has_query_; }       // "http://h/?" has an empty one
    const std::string& query() const noexcept { return query_; }
    bool has_fragment() const noexcept { return has_fragment_; }
    const std::string& fragment() const noexcept { return fragment_; }

    // What the request line carries (RFC 9112 §3.2.1, origin-form): the path ("/" when
    // empty) and the query; never the fragment, which stays with the client.
    std::string target() const;
    // host[:port], brackets round an IPv6 address, the port left out when it is 80: the
    // Host field (RFC 9110 §7.2).
    std::string authority() const;
    // The whole URL, normalised as described above: parse(u.str()) == u.
    std::string str() const;

    // The URL a reference such as a redirect's Location points to, relative to this one
    // (RFC 3986 §5.2, "strict"): "/b" on http://h/a/c gives http://h/b, "d" gives
    // http://h/a/d, "//other/x" gives http://other/x. Throws InvalidURL if the result is not
    // an http URL.
    URL join(std::string_view reference) const;

    bool operator==(const URL&) const = default;

private:
    std::string scheme_ = "http";
    std::string host_;
    bool ipv6_ = false;
    std::uint16_t port_ = 80;
    std::string path_;
    bool has_query_ = false;
    std::string query_;
    bool has_fragment_ = false;
    std::string fragment_;
};

// RFC 3986 §5.2 (the algorithm of §5.2.2 with remove_dot_segments, §5.2.4) on any
// absolute URI `base` and any URI reference, as text: the function behind URL::join, and
// the one the RFC's examples (§5.4) are tested against. No validation beyond splitting the
// components (Appendix B); throws InvalidURL if `base` has no scheme.
std::string resolve_reference(std::string_view base, std::string_view reference);

// host[:port], as a Host field (RFC 9112 §3.2) or a CONNECT target (RFC 9110 §9.3.6,
// where the port is required) carries it. Throws InvalidURL, offsets counting in `text`.
struct HostPort {
    std::string host;  // lower case; an IPv6 address without brackets
    bool ipv6 = false;
    bool has_port = false;
    std::uint16_t port = 0;
};
HostPort parse_host_port(std::string_view text, bool port_required);
// The same check, without building a HostPort: what the parser runs on every request's Host.
void check_host_port(std::string_view text, bool port_required);

}  // namespace aio
