// Stage 5: HTTP/1.1. The character classes of HTTP's grammar, shared by the parser, the
// serialiser and the URL parser.
//
// Adds:    is_tchar (token characters), is_field_vchar, is_ctl, is_token, iequals (ASCII
//          case-insensitive comparison), trim_ows (strip optional whitespace).
// Mirrors: the ABNF rules of RFC 9110 §5.6 (token, OWS) and §5.5 (field-vchar), and
//          RFC 5234 Appendix B.1 (VCHAR, CTL). aiohttp keeps the same rules as regular
//          expressions in http_parser.py (TOKENRE, ...); a 256-entry table is the C way of
//          writing a character class, one memory read per byte.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace aio {

namespace detail {
// One bit per class, so a single table serves every rule.
enum CharClass : std::uint8_t {
    kTchar = 1,       // token: ALPHA DIGIT and !#$%&'*+-.^_`|~        (RFC 9110 §5.6.2)
    kFieldVchar = 2,  // VCHAR (0x21-0x7e) or obs-text (0x80-0xff)     (RFC 9110 §5.5)
    kWhitespace = 4,  // SP or HTAB: OWS/BWS                           (RFC 9110 §5.6.3)
    kDigit = 8,
    kHexDigit = 16,
    kCtl = 32,  // 0x00-0x1f and DEL: never valid inside a line except HTAB (RFC 5234 B.1)
};

constexpr std::array<std::uint8_t, 256> make_char_classes() {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        std::uint8_t v = 0;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (alpha || digit) v |= kTchar;
        for (char s : std::string_view("!#$%&'*+-.^_`|~"))
            if (c == s) v |= kTchar;
        if ((c >= 0x21 && c <= 0x7e) || c >= 0x80) v |= kFieldVchar;
        if (c == ' ' || c == '\t') v |= kWhitespace;
        if (digit) v |= kDigit | kHexDigit;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHexDigit;
        if (c < 0x20 || c == 0x7f) v |= kCtl;
        t[std::size_t(c)] = v;
    }
    return t;
}
inline constexpr std::array<std::uint8_t, 256> kCharClasses = make_char_classes();

constexpr bool has(char c, CharClass k) { return kCharClasses[static_cast<unsigned char>(c)] & k; }
}  // namespace detail

constexpr bool is_tchar(char c) { return detail::has(c, detail::kTchar); }
constexpr bool is_field_vchar(char c) { return detail::has(c, detail::kFieldVchar); }
constexpr bool is_ows(char c) { return detail::has(c, detail::kWhitespace); }
constexpr bool is_digit(char c) { return detail::has(c, detail::kDigit); }
constexpr bool is_hexdig(char c) { return detail::has(c, detail::kHexDigit); }
constexpr bool is_ctl(char c) { return detail::has(c, detail::kCtl); }

constexpr int hex_value(char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;  // only for is_hexdig(c)
}

// The index of the first control byte (0x00-0x1f or DEL) in p[0, n), or n. Field values,
// targets and reason phrases are checked with it, so it runs over most bytes of a head:
// it tests eight bytes per step with word arithmetic ("SWAR": a byte below 0x20 borrows
// into its high bit when 0x20 is subtracted; DEL becomes zero when xored with 0x7f), and
// looks at single bytes only in a word that has a candidate. A browser's request has few
// control bytes (a tab, perhaps), so this is about five times faster than a byte loop.
inline std::size_t find_ctl(const char* p, std::size_t n) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);  // an unaligned load, done right
        std::uint64_t below = (w - ones * 0x20) & ~w & highs;
        std::uint64_t x = w ^ (ones * 0x7f);
        std::uint64_t del = (x - ones) & ~x & highs;
        if (below | del) break;  // a candidate in this word: find it byte by byte
    }
    for (; i < n; ++i)
        if (is_ctl(p[i])) return i;
    return n;
}

// token = 1*tchar: method names and field names.
constexpr bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

constexpr char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c | 0x20) : c; }

// Field names, transfer codings and connection options are case-insensitive ASCII
// (RFC 9110 §5.1, §7.6.1, §10.1.4); locale-independent on purpose.
constexpr bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// A field value without the optional whitespace (SP, HTAB) around it (RFC 9110 §5.5).
constexpr std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

// Calls fn(element) for each element of a comma-separated list value (RFC 9110 §5.6.1:
// `#element`), each with its OWS trimmed; empty elements are passed too (as ""), for the
// caller to accept or reject. Returns false as soon as fn does.
template <typename F>
constexpr bool for_each_list_element(std::string_view value, F fn) {
    for (;;) {
        std::size_t comma = value.find(',');
        if (!fn(trim_ows(value.substr(0, comma)))) return false;
        if (comma == std::string_view::npos) return true;
        value.remove_prefix(comma + 1);
    }
}

// True if the comma-separated list `value` holds `token` (case-insensitive), as the
// Connection field holds "close" or "keep-alive".
constexpr bool list_contains(std::string_view value, std::string_view token) {
    return !for_each_list_element(value, [&](std::string_view e) { return !iequals(e, token); });
}

}  // namespace aio
