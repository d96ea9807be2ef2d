// Stage 5: HTTP/1.1. HttpHeaders: building and looking up fields. See http_headers.hpp.
#include "stage5_http/http_headers.hpp"

#include <limits>
#include <stdexcept>

#include "stage5_http/http_grammar.hpp"

namespace aio {

namespace {
std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 60)) {
        if (c >= 0x20 && c < 0x7f) {
            out += char(c);
        } else {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return s.size() > 60 ? out + "..." : out;
}
}  // namespace

HttpHeaders& HttpHeaders::add(std::string_view name, std::string_view value) {
    if (!is_token(name))
        throw std::invalid_argument("HttpHeaders::add: field name '" + printable(name) +
                                    "' is not a token (letters, digits and !#$%&'*+-.^_`|~ only; RFC 9110 §5.1)");
    value = trim_ows(value);
    for (char c : value)
        if (is_ctl(c) && c != '\t')
            throw std::invalid_argument("HttpHeaders::add: the value of " + std::string(name) + " ('" +
                                        printable(value) +
                                        "') holds a control character (CR, LF, NUL, ...); they would end the field "
                                        "early (RFC 9110 §5.5); remove or percent-encode them");
    Entry e;
    e.name = append(name);
    e.value = append(value);
    entries_.push_back(e);
    return *this;
}

HttpHeaders& HttpHeaders::set(std::string_view name, std::string_view value) {
    remove(name);
    return add(name, value);
}

std::size_t HttpHeaders::remove(std::string_view name) {
    // The bytes stay in data_ (other spans point past them); only the entries go.
    std::size_t before = entries_.size();
    std::erase_if(entries_, [&](const Entry& e) { return iequals(slice(e.name), name); });
    return before - entries_.size();
}

void HttpHeaders::clear() noexcept {
    data_.clear();
    entries_.clear();
}

std::optional<std::string_view> HttpHeaders::get(std::string_view name) const {
    for (const Entry& e : entries_)
        if (iequals(slice(e.name), name)) return slice(e.value);
    return std::nullopt;
}

std::vector<std::string_view> HttpHeaders::get_all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const Entry& e : entries_)
        if (iequals(slice(e.name), name)) out.push_back(slice(e.value));
    return out;
}

std::size_t HttpHeaders::count(std::string_view name) const {
    std::size_t n = 0;
    for (const Entry& e : entries_) n += iequals(slice(e.name), name);
    return n;
}

bool HttpHeaders::operator==(const HttpHeaders& other) const {
    if (size() != other.size()) return false;
    for (std::size_t i = 0; i < size(); ++i) {
        Field a = (*this)[i], b = other[i];
        if (!iequals(a.name, b.name) || a.value != b.value) return false;
    }
    return true;
}

HttpSpan HttpHeaders::append(std::string_view bytes) {
    if (data_.size() + bytes.size() > std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("HttpHeaders: more than 4 GiB of fields");
    HttpSpan s{std::uint32_t(data_.size()), std::uint32_t(bytes.size())};
    data_.append(bytes);
    return s;
}

}  // namespace aio
