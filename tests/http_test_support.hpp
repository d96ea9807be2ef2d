// Helpers shared by the stage 5 HTTP tests and the fuzz harnesses (tests/fuzz/): run a
// parser over an input cut at chosen offsets and write down every event as text, so two
// runs (whole, one byte at a time, random cuts) compare as two strings.
//
// The transcript merges adjacent data events (how the body is cut into pieces depends on
// how the input was, and must not matter) and ends with the error, if any, as
// "error <status> @<offset>: <problem>". Header-only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage5_http/http_parser.hpp"

namespace http_test_support {

// Printable text for bytes: \r, \n, \t and \xNN escapes.
inline std::string escape(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c >= 0x7f) {
            const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += char(c);
        }
    }
    return out;
}

inline std::string describe(const aio::HttpHeaders& h) {
    std::string out;
    for (aio::HttpHeaders::Field f : h) out += " [" + escape(f.name) + ": " + escape(f.value) + "]";
    return out;
}

inline std::string describe(const aio::HttpRequestHead& h) {
    return "request " + escape(h.method()) + " " + escape(h.target()) + " HTTP/" + std::to_string(h.version.major) +
           "." + std::to_string(h.version.minor) + " framing=" + aio::to_string(h.framing) +
           (h.framing == aio::BodyFraming::content_length ? ":" + std::to_string(h.content_length) : "") +
           " keep_alive=" + std::to_string(h.keep_alive) + " upgrade=" + std::to_string(h.upgrade) +
           " expect_continue=" + std::to_string(h.expect_continue) + describe(h.headers);
}

inline std::string describe(const aio::HttpResponseHead& h) {
    return "response HTTP/" + std::to_string(h.version.major) + "." + std::to_string(h.version.minor) + " " +
           std::to_string(h.status) + " '" + escape(h.reason()) + "' framing=" + aio::to_string(h.framing) +
           (h.framing == aio::BodyFraming::content_length ? ":" + std::to_string(h.content_length) : "") +
           " keep_alive=" + std::to_string(h.keep_alive) + " upgrade=" + std::to_string(h.upgrade) +
           describe(h.headers);
}

struct Options {
    aio::HttpParserLimits limits{};
    bool eof = true;  // call feed_eof() after the last piece
    // Response parser: the request method of each response in turn (the last one stays).
    std::vector<std::string> methods{};
};

// Feeds `input` to a new Parser in pieces that end at each of `cuts` (sorted offsets, any
// duplicates or out-of-range ones ignored), pulling every event after each piece, and
// returns the transcript, one line per event.
template <typename Parser>
std::string transcript(std::string_view input, std::vector<std::size_t> cuts, const Options& opt = {}) {
    Parser p(opt.limits);
    std::size_t method_index = 0;
    auto set_method = [&](auto& parser) {
        if constexpr (std::is_same_v<Parser, aio::HttpResponseParser>) {
            if (method_index < opt.methods.size()) parser.set_request_method(opt.methods[method_index]);
            ++method_index;
        }
    };
    set_method(p);
    std::string out, body;
    bool stopped = false;  // an upgrade or connection_closed: later bytes are not parsed
    auto flush_body = [&] {
        if (!body.empty()) out += "data '" + escape(body) + "'\n";
        body.clear();
    };
    auto drain = [&] {
        while (!stopped) {
            aio::HttpEvent e = p.next_event();
            if (e.kind == aio::HttpEvent::need_data) return;
            if (e.kind == aio::HttpEvent::data) {
                if (e.bytes.empty()) out += "EMPTY DATA EVENT\n";  // never expected
                body.append(e.bytes);
                continue;
            }
            flush_body();
            switch (e.kind) {
            case aio::HttpEvent::head: out += "head " + describe(p.head()) + "\n"; break;
            case aio::HttpEvent::informational: out += "informational " + describe(p.head()) + "\n"; break;
            case aio::HttpEvent::end_of_message:
                out += "end_of_message" + describe(p.trailers()) + "\n";
                set_method(p);
                break;
            case aio::HttpEvent::upgrade: out += "upgrade\n"; stopped = true; break;
            case aio::HttpEvent::connection_closed: out += "connection_closed\n"; stopped = true; break;
            default: break;
            }
        }
    };
    try {
        cuts.push_back(input.size());
        std::sort(cuts.begin(), cuts.end());
        std::size_t prev = 0;
        for (std::size_t cut : cuts) {
            if (cut <= prev || cut > input.size()) continue;
            p.feed(input.substr(prev, cut - prev));
            prev = cut;
            drain();
        }
        if (input.empty()) drain();
        if (stopped && p.next_event().kind == aio::HttpEvent::upgrade) {
            out += "unparsed '" + escape(p.take_unparsed()) + "'\n";
        } else if (opt.eof && !stopped) {
            p.feed_eof();
            drain();
        }
        flush_body();
    } catch (const aio::HttpError& e) {
        flush_body();
        out += "error " + std::to_string(e.status()) + " @" + std::to_string(e.offset()) + ": " + e.problem() + "\n";
    }
    return out;
}

// The complete messages of `input`, parsed whole (then feed_eof()), with their bodies and
// trailers: what a round trip through the serialiser must reproduce. Parsing stops at the
// first error (sets `failed`), upgrade or close.
template <typename Head>
struct Message {
    Head head;
    bool informational = false;
    std::string body;
    aio::HttpHeaders trailers;
};

template <typename Parser, typename Head = std::remove_reference_t<decltype(std::declval<Parser>().head())>>
std::vector<Message<Head>> parse_messages(std::string_view input, const Options& opt, bool& failed) {
    std::vector<Message<Head>> out;
    Parser p(opt.limits);
    std::size_t method_index = 0;
    auto set_method = [&] {
        if constexpr (std::is_same_v<Parser, aio::HttpResponseParser>) {
            if (method_index < opt.methods.size()) p.set_request_method(opt.methods[method_index]);
            ++method_index;
        }
    };
    set_method();
    failed = false;
    Message<Head> current;
    try {
        p.feed(input);
        p.feed_eof();
        for (;;) {
            aio::HttpEvent e = p.next_event();
            switch (e.kind) {
            case aio::HttpEvent::head: current = Message<Head>{p.head(), false, {}, {}}; break;
            case aio::HttpEvent::informational: out.push_back(Message<Head>{p.head(), true, {}, {}}); break;
            case aio::HttpEvent::data: current.body.append(e.bytes); break;
            case aio::HttpEvent::end_of_message:
                current.trailers = p.trailers();
                out.push_back(std::move(current));
                set_method();
                break;
            default: return out;  // upgrade, connection_closed (need_data cannot follow feed_eof)
            }
        }
    } catch (const aio::HttpError&) {
        failed = true;
    }
    return out;
}

// Every offset from 1 to size - 1: one byte per feed().
inline std::vector<std::size_t> every_byte(std::size_t size) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
    return cuts;
}

// `count` random offsets in [1, size).
inline std::vector<std::size_t> random_cuts(std::size_t size, std::mt19937& rng, std::size_t count) {
    std::vector<std::size_t> cuts;
    if (size < 2) return cuts;
    std::uniform_int_distribution<std::size_t> d(1, size - 1);
    for (std::size_t i = 0; i < count; ++i) cuts.push_back(d(rng));
    return cuts;
}

}  // namespace http_test_support
