// What the fuzz harnesses share: reading the split points and options from the fuzz input,
// and failing loudly when a property does not hold.
//
// Input layout: the first byte c says how many cut bytes follow (c % 8) and picks options
// ((c / 8) % 2: small limits, to reach the limit checks; (c / 16) % 4: the request method a
// response parser is told). Each cut byte b cuts the message at b * size / 256. The rest is
// the message. A seed file is therefore "0" followed by a plain HTTP message ('0' is 0x30:
// no cuts, default limits, GET).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tests/http_test_support.hpp"

namespace fuzz_support {

struct Input {
    std::string_view message;
    std::vector<std::size_t> cuts;
    http_test_support::Options options;
};

inline Input read_input(const std::uint8_t* data, std::size_t size) {
    Input in;
    if (size == 0) return in;
    unsigned control = data[0];
    std::size_t ncuts = std::min<std::size_t>(control % 8, size - 1);
    in.message = std::string_view(reinterpret_cast<const char*>(data) + 1 + ncuts, size - 1 - ncuts);
    for (std::size_t i = 0; i < ncuts; ++i) in.cuts.push_back(data[1 + i] * in.message.size() / 256);
    if ((control / 8) % 2) {
        in.options.limits.max_line_size = 64;
        in.options.limits.max_header_size = 256;
        in.options.limits.max_headers = 8;
        in.options.limits.max_body_size = 1000;
    }
    static const char* methods[] = {"GET", "HEAD", "CONNECT", "POST"};
    in.options.methods = {methods[(control / 16) % 4]};
    return in;
}

// A property failed: print both sides and abort, so libFuzzer saves the input.
[[noreturn]] inline void fail(const char* property, std::string_view input, const std::string& a,
                              const std::string& b) {
    std::fprintf(stderr, "\nPROPERTY FAILED: %s\ninput: %s\n--- one:\n%s--- other:\n%s\n", property,
                 http_test_support::escape(input).c_str(), a.c_str(), b.c_str());
    std::abort();
}

inline void check_same(const char* property, std::string_view input, const std::string& a, const std::string& b) {
    if (a != b) fail(property, input, a, b);
}

// The error at the end of a transcript, if any, must name a status a server sends for a
// malformed message and a byte that was fed (offset <= size: the end of the input counts,
// for a message cut short).
inline void check_error(std::string_view input, const std::string& transcript) {
    // The error is the last line; an earlier "error " may be the input's, echoed in a field.
    std::size_t last = transcript.size() < 2 ? 0 : transcript.rfind('\n', transcript.size() - 2) + 1;
    if (transcript.compare(last, 6, "error ") != 0) return;
    std::size_t at_sign = transcript.find('@', last);
    if (at_sign == std::string::npos) fail("an error line names its offset", input, transcript, "");
    int status = std::atoi(transcript.c_str() + last + 6);
    std::size_t offset = std::strtoull(transcript.c_str() + at_sign + 1, nullptr, 10);
    bool known = status == 400 || status == 413 || status == 414 || status == 431 || status == 501 || status == 505;
    if (!known || offset > input.size()) fail("an error names a known status and a byte of the input", input, transcript, "");
}

}  // namespace fuzz_support
