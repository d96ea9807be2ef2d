// libFuzzer harness: the request parser (stage5_http/http_parser.hpp). Properties:
//  1. Any split gives the same events: the input parsed whole, one byte per feed(), and cut
//     where the fuzz input says all give the same transcript (events, or the same error at
//     the same byte); an error names a status from the list and a byte of the input.
//  2. A parsed request, serialised (serialize_request), parses back to itself: same head,
//     fields, framing, keep-alive, body and trailers; and the serialiser accepts it.
// Plus what ASan and UBSan check on the way. Input layout: tests/fuzz/fuzz_support.hpp.
#include <stdexcept>

#include "stage5_http/http_writer.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace http_test_support;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_support::Input in = fuzz_support::read_input(data, size);
    std::string whole = transcript<aio::HttpRequestParser>(in.message, {}, in.options);
    fuzz_support::check_same("one byte per feed", in.message, whole,
                             transcript<aio::HttpRequestParser>(in.message, every_byte(in.message.size()), in.options));
    fuzz_support::check_error(in.message, whole);
    fuzz_support::check_same("cut at the fuzzed offsets", in.message, whole,
                             transcript<aio::HttpRequestParser>(in.message, in.cuts, in.options));

    bool failed = false;
    for (auto& m : parse_messages<aio::HttpRequestParser>(in.message, in.options, failed)) {
        std::string wire;
        try {
            wire = aio::serialize_request(m.head.method(), m.head.target(), m.head.headers, m.body, m.trailers,
                                          m.head.version);
        } catch (const std::invalid_argument& e) {
            fuzz_support::fail("the serialiser accepts what the parser accepted", in.message, describe(m.head),
                               e.what());
        }
        Options reparse;
        reparse.limits.max_body_size = in.options.limits.max_body_size;
        std::string expected = "head " + describe(m.head) + "\n" +
                               (m.body.empty() ? "" : "data '" + escape(m.body) + "'\n") + "end_of_message" +
                               describe(m.trailers) + "\n" +
                               (m.head.upgrade ? "upgrade\nunparsed ''\n" : "connection_closed\n");
        fuzz_support::check_same("serialised, the request parses back to itself", wire, expected,
                                 transcript<aio::HttpRequestParser>(wire, {}, reparse));
    }
    return 0;
}
