// Stage 5: HTTP/1.1. A message's header fields: names and values, in the order received.
//
// Adds:    HttpHeaders (add, set, remove, get, get_all, count, contains, iteration),
//          HttpSpan.
// Mirrors: the CIMultiDict that aiohttp gives as `message.headers` (from the multidict
//          package): a list of (name, value) pairs, looked up case-insensitively, where a
//          name may repeat and the order is kept (RFC 9110 §5.2, §5.3).
//
// Storage is the point of this class. All the bytes live in one std::string and each field
// is two (offset, size) spans into it: a parsed head is copied in with one memcpy, never one
// allocation per field, and copies and moves stay valid (offsets, unlike pointers, survive
// a short std::string moving its bytes). The parser fills it through HttpHeaders' private
// side; a program building a message calls add(), which checks what it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aio {

// A range of bytes inside a HttpHeaders' buffer.
struct HttpSpan {
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
};

class HttpHeaders {
public:
    struct Field {
        std::string_view name;
        std::string_view value;
    };

    HttpHeaders() = default;
    HttpHeaders(std::initializer_list<Field> fields) {
        for (const Field& f : fields) add(f.name, f.value);
    }

    // Appends a field (an existing one of the same name is kept: fields may repeat). Throws
    // std::invalid_argument (Python's ValueError) if `name` is not a token or `value` holds
    // CR, LF, NUL or another control character: either would let the value end the field or
    // the head early and smuggle in fields of its own ("response splitting", RFC 9110 §5.5).
    // Surrounding spaces of `value` are dropped, as a recipient would drop them.
    HttpHeaders& add(std::string_view name, std::string_view value);
    // Removes every field called `name`, then adds one.
    HttpHeaders& set(std::string_view name, std::string_view value);
    // Removes every field called `name`; returns how many there were.
    std::size_t remove(std::string_view name);
    void clear() noexcept;

    std::size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }
    Field operator[](std::size_t i) const { return {slice(entries_[i].name), slice(entries_[i].value)}; }

    // The value of the first field called `name` (any case), or nullopt.
    std::optional<std::string_view> get(std::string_view name) const;
    // Every value of the fields called `name`, in order.
    std::vector<std::string_view> get_all(std::string_view name) const;
    std::size_t count(std::string_view name) const;
    bool contains(std::string_view name) const { return get(name).has_value(); }

    // Same fields, same order, same values; names compared case-insensitively.
    bool operator==(const HttpHeaders& other) const;

    class iterator {
    public:
        iterator(const HttpHeaders* h, std::size_t i) : h_(h), i_(i) {}
        Field operator*() const { return (*h_)[i_]; }
        iterator& operator++() {
            ++i_;
            return *this;
        }
        bool operator==(const iterator& o) const { return i_ == o.i_; }
        bool operator!=(const iterator& o) const { return i_ != o.i_; }

    private:
        const HttpHeaders* h_;
        std::size_t i_;
    };
    iterator begin() const { return {this, 0}; }
    iterator end() const { return {this, entries_.size()}; }

    // The bytes a span refers to (a head's method, target or reason phrase is a span too).
    std::string_view slice(HttpSpan s) const { return std::string_view(data_).substr(s.offset, s.size); }

private:
    friend class HttpParser;
    struct Entry {
        HttpSpan name, value;
    };
    HttpSpan append(std::string_view bytes);

    std::string data_;            // the bytes every span points into
    std::vector<Entry> entries_;  // one per field, in order
};

}  // namespace aio
