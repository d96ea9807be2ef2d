// libFuzzer harness: the response parser with its body decoders (chunked, Content-Length,
// until close; HEAD, 1xx, 204, 304, 101, CONNECT). Properties:
//  1. Any split gives the same events (as for requests; see fuzz_http_request.cpp).
//  2. A parsed response, written again (write_response_head, then the body in the framing
//     it arrived in: write_chunk/write_last_chunk for chunked), parses back to itself.
// Input layout (and the request method the parser is told): tests/fuzz/fuzz_support.hpp.
#include <stdexcept>

#include "stage5_http/http_writer.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace http_test_support;

namespace {

// The response written again, and the transcript parsing it must give.
void round_trip(const Message<aio::HttpResponseHead>& m, const Options& options, std::string_view input) {
    const aio::HttpResponseHead& h = m.head;
    std::string wire;
    try {
        aio::write_response_head(wire, h.status, h.reason(), h.headers, h.version);
        if (h.framing == aio::BodyFraming::chunked) {
            aio::write_chunk(wire, m.body);
            aio::write_last_chunk(wire, m.trailers);
        } else {
            wire += m.body;  // content_length or until_eof: as it came; none and tunnel: empty
        }
    } catch (const std::invalid_argument& e) {
        fuzz_support::fail("the writer accepts what the parser accepted", input, describe(h), e.what());
    }
    std::string expected;
    if (m.informational) {
        expected = "informational " + describe(h) + "\nconnection_closed\n";
    } else {
        expected = "head " + describe(h) + "\n" + (m.body.empty() ? "" : "data '" + escape(m.body) + "'\n") +
                   "end_of_message" + describe(m.trailers) + "\n" +
                   (h.upgrade ? "upgrade\nunparsed ''\n" : "connection_closed\n");
    }
    Options reparse;
    reparse.limits.max_body_size = options.limits.max_body_size;
    reparse.methods = options.methods;
    fuzz_support::check_same("written again, the response parses back to itself", wire, expected,
                             transcript<aio::HttpResponseParser>(wire, {}, reparse));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_support::Input in = fuzz_support::read_input(data, size);
    std::string whole = transcript<aio::HttpResponseParser>(in.message, {}, in.options);
    fuzz_support::check_same("one byte per feed", in.message, whole,
                             transcript<aio::HttpResponseParser>(in.message, every_byte(in.message.size()), in.options));
    fuzz_support::check_error(in.message, whole);
    fuzz_support::check_same("cut at the fuzzed offsets", in.message, whole,
                             transcript<aio::HttpResponseParser>(in.message, in.cuts, in.options));

    bool failed = false;
    for (auto& m : parse_messages<aio::HttpResponseParser>(in.message, in.options, failed))
        round_trip(m, in.options, in.message);
    return 0;
}
