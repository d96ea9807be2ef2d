// Stage 5: HTTP/1.1. URL parsing and reference resolution. See url.hpp.
//
// The parser walks the text once, left to right, in the order of RFC 3986 §3:
//   http : // host [: port] [/path] [? query] [# fragment]
// and checks each component's characters as it goes, so an error names the first bad byte.
#include "stage5_http/url.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "stage5_http/http_grammar.hpp"

namespace aio {

namespace {

constexpr std::size_t npos = std::string_view::npos;

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 200)) {
        if (c >= 0x20 && c < 0x7f) {
            out += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return s.size() > 200 ? out + "..." : out;
}

// RFC 3986 §2.3 (unreserved) and §2.2 (sub-delims), as one table: the characters a host
// may hold as they are; a path, a query and a fragment add a few delimiters.
constexpr std::array<bool, 256> make_plain_chars() {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c)
        t[std::size_t(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            std::string_view("-._~!$&'()*+,;=").find(char(c)) != npos;
    return t;
}
constexpr std::array<bool, 256> kPlainChars = make_plain_chars();
bool is_plain(char c) { return kPlainChars[static_cast<unsigned char>(c)]; }

// A bad character, described for a person, with how to write it instead.
std::string bad_char(char ch, const char* where, bool hint = true) {
    unsigned char c = static_cast<unsigned char>(ch);
    char hex[8];
    std::snprintf(hex, sizeof hex, "%%%02X", c);
    std::string what;
    if (c == ' ')
        what = "a space";
    else if (c >= 0x80)
        what = "a non-ASCII byte (0x" + std::string(hex + 1) + ")";
    else if (c < 0x20 || c == 0x7f)
        what = "a control character (0x" + std::string(hex + 1) + ")";
    else
        what = std::string("'") + ch + "'";
    std::string how = c >= 0x80 ? " (text: each byte of its UTF-8 as %XX)" : "";
    return what + " is not allowed in the " + where + (hint ? std::string("; percent-encode it as ") + hex + how : "");
}

// Checks url[begin, end) against one component's characters: unreserved, sub-delims,
// %XX, and the delimiters in `extra` (RFC 3986 §3.3-3.5).
void check_chars(std::string_view url, std::size_t begin, std::size_t end, std::string_view extra, const char* where) {
    for (std::size_t i = begin; i < end; ++i) {
        char c = url[i];
        if (c == '%') {
            if (i + 2 >= end)
                throw InvalidURL(url, i, std::string("'%' in the ") + where +
                                             " is not followed by two hex digits; write a literal % as %25");
            if (!is_hexdig(url[i + 1]) || !is_hexdig(url[i + 2]))
                throw InvalidURL(url, i, std::string("'%") + printable(url.substr(i + 1, 2)) + "' in the " + where +
                                             " is not a percent-encoded byte (two hex digits); write a literal % as %25");
            i += 2;
            continue;
        }
        if (is_plain(c) || (!extra.empty() && extra.find(c) != npos)) continue;
        throw InvalidURL(url, i, bad_char(c, where));
    }
}

// "1.2.3.4": four decimal numbers 0-255. Leading zeros are refused, since inet_aton and
// browsers read "010" as octal 8: two programs must not see two different addresses.
bool is_ipv4(std::string_view s) {
    int parts = 0;
    std::size_t i = 0;
    while (true) {
        std::size_t start = i;
        int value = 0;
        while (i < s.size() && is_digit(s[i]) && i - start < 3) value = value * 10 + (s[i++] - '0');
        std::size_t len = i - start;
        if (len == 0 || value > 255 || (len > 1 && s[start] == '0')) return false;
        ++parts;
        if (i == s.size()) return parts == 4;
        if (s[i] != '.' || parts == 4) return false;
        ++i;
    }
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

// host[:port] in url[begin, end), offsets counting in `url`. The host is a view into `url`
// (not yet in lower case): a server checks every request's Host field with this, so it
// allocates nothing.
struct HostPortView {
    std::string_view host;
    bool ipv6 = false;
    bool has_port = false;
    std::uint16_t port = 0;
};

HostPortView parse_host_port_in(std::string_view url, std::size_t begin, std::size_t end, bool port_required) {
    HostPortView hp;
    std::string_view authority = url.substr(0, end);
    if (authority.find('@', begin) != npos)
        throw InvalidURL(url, begin,
                         "user information (user:password@) is not accepted in http URLs: RFC 9110 §4.2.4 "
                         "deprecates it (it disguises the real host); send credentials in an Authorization header");
    std::size_t host_end;  // where host ends: at ':' before a port, or at end
    if (begin < end && url[begin] == '[') {
        std::size_t close = authority.find(']', begin);
        if (close == npos) throw InvalidURL(url, begin, "'[' opens an IPv6 address that no ']' closes");
        std::string_view literal = url.substr(begin + 1, close - begin - 1);
        if (!literal.empty() && (literal[0] == 'v' || literal[0] == 'V'))
            throw InvalidURL(url, begin + 1, "IPvFuture addresses ([v1.x]) are not supported");
        if (literal.find('%') != npos)
            throw InvalidURL(url, begin + 1 + literal.find('%'),
                             "IPv6 zone identifiers ([fe80::1%25eth0], RFC 6874) are not supported");
        char text[64];  // inet_pton wants a C string; the longest IPv6 address has 45 characters
        in6_addr addr{};
        bool ok = literal.size() < sizeof text;
        if (ok) {
            std::memcpy(text, literal.data(), literal.size());
            text[literal.size()] = '\0';
            ok = ::inet_pton(AF_INET6, text, &addr) == 1;
        }
        if (!ok) throw InvalidURL(url, begin + 1, "'" + printable(literal) + "' is not a valid IPv6 address");
        hp.host = literal;
        hp.ipv6 = true;
        host_end = close + 1;
        if (host_end < end && url[host_end] != ':')
            throw InvalidURL(url, host_end, "after an IPv6 address's ']' only ':port' may follow");
    } else {
        std::size_t colon = authority.find(':', begin);
        host_end = colon == npos ? end : colon;
        if (host_end == begin) throw InvalidURL(url, begin, "the host is empty (an http URL needs one, RFC 9110 §4.2.1)");
        check_chars(url, begin, host_end, "", "host");
        std::string_view host = url.substr(begin, host_end - begin);
        if (std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; }) && !is_ipv4(host))
            throw InvalidURL(url, begin,
                             "host '" + std::string(host) +
                                 "' is made of digits and dots but is not an IPv4 address (four numbers 0-255, "
                                 "no leading zeros)");
        hp.host = host;
    }
    if (host_end == end) {
        if (port_required) throw InvalidURL(url, end, "a port is required here (host:port)");
        return hp;
    }
    // url[host_end] == ':'
    std::size_t p = host_end + 1;
    if (p == end) {
        // "http://h:/" has an empty port, which RFC 3986 §3.2.3 allows and means the default.
        if (port_required) throw InvalidURL(url, p, "the port after ':' is empty");
        return hp;
    }
    unsigned long port = 0;
    for (std::size_t i = p; i < end; ++i) {
        if (!is_digit(url[i]))
            throw InvalidURL(url, i, "the port may only hold digits (a '/' or '?' ends the host and port)");
        port = port * 10 + unsigned(url[i] - '0');
        if (port > 65535)
            throw InvalidURL(url, p, "port " + std::string(url.substr(p, end - p)) + " is out of range (1-65535)");
    }
    if (port == 0) throw InvalidURL(url, p, "port 0 cannot be connected to (ports are 1-65535)");
    hp.has_port = true;
    hp.port = static_cast<std::uint16_t>(port);
    return hp;
}

// ---- RFC 3986 §5.2: reference resolution ------------------------------------------------

// A URI reference split into its five components (the regular expression of Appendix B).
struct Parts {
    bool has_scheme = false, has_authority = false, has_query = false, has_fragment = false;
    std::string_view scheme, authority, path, query, fragment;
};

Parts split(std::string_view s) {
    Parts p;
    std::size_t colon = s.find_first_of(":/?#");
    if (colon != npos && colon > 0 && s[colon] == ':') {
        p.has_scheme = true;
        p.scheme = s.substr(0, colon);
        s.remove_prefix(colon + 1);
    }
    if (s.substr(0, 2) == "//") {
        s.remove_prefix(2);
        std::size_t end = s.find_first_of("/?#");
        p.has_authority = true;
        p.authority = s.substr(0, end);
        s.remove_prefix(end == npos ? s.size() : end);
    }
    std::size_t end = s.find_first_of("?#");
    p.path = s.substr(0, end);
    s.remove_prefix(end == npos ? s.size() : end);
    if (!s.empty() && s[0] == '?') {
        end = s.find('#');
        p.has_query = true;
        p.query = s.substr(1, end == npos ? npos : end - 1);
        s.remove_prefix(end == npos ? s.size() : end);
    }
    if (!s.empty() && s[0] == '#') {
        p.has_fragment = true;
        p.fragment = s.substr(1);
    }
    return p;
}

// §5.2.4: interpret "." and ".." segments, as a file system would.
std::string remove_dot_segments(std::string_view in) {
    std::string out;
    auto drop_last_segment = [&out] {
        std::size_t slash = out.rfind('/');
        out.erase(slash == npos ? 0 : slash);
    };
    while (!in.empty()) {
        if (in.starts_with("../")) {
            in.remove_prefix(3);
        } else if (in.starts_with("./")) {
            in.remove_prefix(2);
        } else if (in.starts_with("/./")) {
            in.remove_prefix(2);  // leaves "/..."
        } else if (in == "/.") {
            in = "/";
        } else if (in.starts_with("/../")) {
            in.remove_prefix(3);
            drop_last_segment();
        } else if (in == "/..") {
            in = "/";
            drop_last_segment();
        } else if (in == "." || in == "..") {
            in = {};
        } else {
            std::size_t next = in.find('/', 1);
            std::size_t n = next == npos ? in.size() : next;
            out.append(in.substr(0, n));
            in.remove_prefix(n);
        }
    }
    return out;
}

}  // namespace

InvalidURL::InvalidURL(std::string_view url, std::size_t offset, const std::string& problem)
    : std::invalid_argument("invalid URL '" + printable(url) + "' at byte " + std::to_string(offset) + ": " + problem),
      offset_(offset),
      problem_(problem) {}

URL URL::parse(std::string_view text) {
    URL u;
    std::size_t colon = text.find(':');
    std::size_t scheme_end = text.find_first_of(":/?#");
    if (text.empty() || scheme_end == npos || text[scheme_end] != ':' || scheme_end == 0)
        throw InvalidURL(text, 0, "no scheme: an absolute URL starts with http://host");
    for (std::size_t i = 0; i < colon; ++i) {
        char c = text[i];
        bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        if (!alpha && (i == 0 || !(is_digit(c) || c == '+' || c == '-' || c == '.')))
            throw InvalidURL(text, i, bad_char(c, "scheme (a letter, then letters, digits, '+', '-', '.'; RFC 3986 §3.1)", false));
    }
    std::string scheme = lower(text.substr(0, colon));
    if (scheme == "https")
        throw InvalidURL(text, 0,
                         "https needs TLS, which this course does not implement; use a TLS library (OpenSSL's "
                         "SSL_read/SSL_write over the socket) or Python's aiohttp, which wraps asyncio's ssl support");
    if (scheme != "http")
        throw InvalidURL(text, 0, "scheme '" + printable(scheme) + "' is not supported; only http:// URLs are");
    if (text.substr(colon + 1, 2) != "//")
        throw InvalidURL(text, colon + 1, "expected '//' after 'http:' (http://host/path)");

    std::size_t host_begin = colon + 3;
    std::size_t host_end = std::min(text.find_first_of("/?#", host_begin), text.size());
    HostPortView hp = parse_host_port_in(text, host_begin, host_end, false);
    u.host_ = lower(hp.host);
    u.ipv6_ = hp.ipv6;
    if (hp.has_port) u.port_ = hp.port;

    std::size_t path_end = std::min(text.find_first_of("?#", host_end), text.size());
    check_chars(text, host_end, path_end, ":@/", "path");
    u.path_ = text.substr(host_end, path_end - host_end);

    std::size_t i = path_end;
    if (i < text.size() && text[i] == '?') {
        std::size_t query_end = std::min(text.find('#', i), text.size());
        check_chars(text, i + 1, query_end, ":@/?", "query");
        u.has_query_ = true;
        u.query_ = text.substr(i + 1, query_end - i - 1);
        i = query_end;
    }
    if (i < text.size()) {  // text[i] == '#'
        check_chars(text, i + 1, text.size(), ":@/?", "fragment");
        u.has_fragment_ = true;
        u.fragment_ = text.substr(i + 1);
    }
    return u;
}

std::string URL::target() const {
    std::string t = path_.empty() ? "/" : path_;
    if (has_query_) t += "?" + query_;
    return t;
}

std::string URL::authority() const {
    std::string a = ipv6_ ? "[" + host_ + "]" : host_;
    if (port_ != 80) a += ":" + std::to_string(port_);
    return a;
}

std::string URL::str() const {
    std::string s = scheme_ + "://" + authority() + path_;
    if (has_query_) s += "?" + query_;
    if (has_fragment_) s += "#" + fragment_;
    return s;
}

URL URL::join(std::string_view reference) const {
    // The base's own "." and ".." segments go first (RFC 3986 §5.2.1 allows normalising the
    // base; browsers do): otherwise a reference that keeps the base's path ("?x", "#f") would
    // keep "/./p", and joining the result again would give "/p". Found by fuzz_url.
    URL base = *this;
    base.path_ = remove_dot_segments(path_);
    return parse(resolve_reference(base.str(), reference));
}

HostPort parse_host_port(std::string_view text, bool port_required) {
    HostPortView v = parse_host_port_in(text, 0, text.size(), port_required);
    return HostPort{lower(v.host), v.ipv6, v.has_port, v.port};
}

void check_host_port(std::string_view text, bool port_required) {
    parse_host_port_in(text, 0, text.size(), port_required);
}

// [docs:resolve_reference]
// RFC 3986 §5.2.2, the "strict" variant (a reference's own scheme always wins).
std::string resolve_reference(std::string_view base_text, std::string_view reference) {
    Parts base = split(base_text), ref = split(reference);
    if (!base.has_scheme) throw InvalidURL(base_text, 0, "a base URL must be absolute (have a scheme)");
    Parts t;
    std::string path;  // t.path, when it has to be built
    if (ref.has_scheme) {
        t = ref;
        path = remove_dot_segments(ref.path);
    } else {
        if (ref.has_authority) {
            t = ref;
            path = remove_dot_segments(ref.path);
        } else {
            if (ref.path.empty()) {
                path = base.path;
                t.has_query = ref.has_query || base.has_query;
                t.query = ref.has_query ? ref.query : base.query;
            } else {
                if (ref.path[0] == '/') {
                    path = remove_dot_segments(ref.path);
                } else {
                    // §5.2.3 merge: the reference replaces the base's last segment.
                    std::string merged;
                    if (base.has_authority && base.path.empty())
                        merged = "/" + std::string(ref.path);
                    else
                        merged = std::string(base.path.substr(0, base.path.rfind('/') + 1)) + std::string(ref.path);
                    path = remove_dot_segments(merged);
                }
                t.has_query = ref.has_query;
                t.query = ref.query;
            }
            t.has_authority = base.has_authority;
            t.authority = base.authority;
        }
        t.has_scheme = true;
        t.scheme = base.scheme;
    }
    t.has_fragment = ref.has_fragment;
    t.fragment = ref.fragment;

    // §5.3: put the components back together.
    std::string out;
    if (t.has_scheme) out.append(t.scheme).append(":");
    if (t.has_authority) out.append("//").append(t.authority);
    out.append(path);
    if (t.has_query) out.append("?").append(t.query);
    if (t.has_fragment) out.append("#").append(t.fragment);
    return out;
}
// [/docs:resolve_reference]

}  // namespace aio
