// Stage 5: HTTP/1.1, the server. Request (web_request.hpp): the target's parts, the query,
// and reading the body from a coroutine handler.
#include "stage5_http/web_request.hpp"

#include "stage3_tasks_futures/exceptions.hpp"
#include "stage5_http/http_grammar.hpp"
#include "stage5_http/web_protocol.hpp"

namespace aio {

std::string percent_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%' && i + 2 < text.size() && is_hexdig(text[i + 1]) && is_hexdig(text[i + 2])) {
            out += char(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

// Origin form "/p?q" is the usual target; absolute form "http://host/p?q" is what a proxy
// is sent, and a server must accept it too (RFC 9112 §3.2.2); "*" (OPTIONS) has no path.
void Request::set_target_parts() {
    std::string_view t = target();
    if (!t.empty() && t[0] != '/' && t != "*") {
        std::size_t scheme = t.find("://");
        if (scheme != std::string_view::npos) {
            std::size_t path = t.find_first_of("/?", scheme + 3);
            // ("http://h?q" leaves "?q": an empty path, made "/" below, and the query kept.)
            t = path == std::string_view::npos ? std::string_view("/") : t.substr(path);
        }
    }
    std::size_t q = t.find('?');
    path_ = t.substr(0, q);
    query_ = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
    if (path_.empty()) path_ = "/";
}

std::vector<std::pair<std::string, std::string>> Request::query_items() const {
    std::vector<std::pair<std::string, std::string>> items;
    std::string_view rest = query_;
    while (!rest.empty()) {
        std::size_t amp = rest.find('&');
        std::string_view item = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (item.empty()) continue;
        std::size_t eq = item.find('=');
        std::string_view name = item.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
        items.emplace_back(percent_decode(name, true), percent_decode(value, true));
    }
    return items;
}

std::optional<std::string> Request::query(std::string_view name) const {
    for (auto& [n, v] : query_items())
        if (n == name) return v;
    return std::nullopt;
}

std::string_view Request::match_info(std::string_view name) const {
    for (auto& [n, v] : match_)
        if (n == name) return v;
    return {};
}

Coroutine<std::string> Request::read_chunk() {
    if (!connection_)
        throw RuntimeError("Request::read_chunk(): only a coroutine handler reads the body; a plain one has body()");
    std::string piece = co_await connection_->read_body_chunk();
    co_return piece;
}

Coroutine<std::string> Request::read() {
    if (!connection_)
        throw RuntimeError("Request::read(): only a coroutine handler reads the body; a plain one has body()");
    std::string whole;
    for (;;) {
        std::string piece = co_await connection_->read_body_chunk();
        if (piece.empty()) co_return whole;
        if (whole.empty())
            whole = std::move(piece);
        else
            whole.append(piece);
    }
}

}  // namespace aio
