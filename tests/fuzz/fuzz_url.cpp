// libFuzzer harness: URLs (stage5_http/url.hpp). Properties:
//  1. A URL that parses re-serialises (str()) to text that parses to the same parts, and
//     re-serialises to the same text; its target() and authority() are what a request
//     line and a Host field accept.
//  2. An error names a byte inside the text.
//  3. Resolving the input as a reference (RFC 3986 §5.2) against a base never fails for
//     lack of a scheme; join() is that resolution, then parse(); a result that is an http URL
//     parses back to itself and resolves to itself again.
// The input is "reference", or "base\nreference" when it holds a newline.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "stage5_http/url.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

void check(bool ok, const char* property, std::string_view input, const std::string& detail) {
    if (!ok) fuzz_support::fail(property, input, detail, "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        aio::URL u = aio::URL::parse(text);
        std::string s = u.str();
        aio::URL v = aio::URL::parse(s);
        check(v == u, "str() parses back to the same parts", text, s);
        check(v.str() == s, "str() is stable", text, s + " / " + v.str());
        std::string target = u.target();
        check(!target.empty() && target[0] == '/' && target.find('#') == std::string::npos &&
                  target.find(' ') == std::string::npos,
              "target() is an origin-form target", text, target);
        aio::HostPort hp = aio::parse_host_port(u.authority(), false);
        check(hp.host == u.host() && (hp.has_port ? hp.port : 80) == u.port(), "authority() parses back", text,
              u.authority());
    } catch (const aio::InvalidURL& e) {
        check(e.offset() <= text.size(), "an error names a byte of the text", text, e.what());
    }

    std::string_view base_text = "http://a/b/c/d;p?q", ref = text;
    if (std::size_t nl = text.find('\n'); nl != std::string_view::npos) {
        base_text = text.substr(0, nl);
        ref = text.substr(nl + 1);
    }
    std::optional<aio::URL> base;
    try {
        base = aio::URL::parse(base_text);
    } catch (const aio::InvalidURL&) {
        return 0;
    }
    // join() resolves against the base with its dot segments removed: join("") gives that base.
    std::string resolved;
    try {
        aio::URL normalised = base->join("");
        resolved = aio::resolve_reference(normalised.str(), ref);
    } catch (const aio::InvalidURL& e) {
        check(false, "resolving against an absolute base never fails", text, e.what());
    }
    try {
        aio::URL joined = aio::URL::parse(resolved);
        check(joined == base->join(ref), "join() is resolve_reference, then parse", text, resolved);
        check(aio::URL::parse(joined.str()) == joined, "a joined URL parses back", text, joined.str());
        check(base->join(joined.str()) == joined, "joining a joined URL again changes nothing", text, joined.str());
    } catch (const aio::InvalidURL&) {
        // not an http URL (another scheme, a bad character): fine, as long as it says so
    }
    return 0;
}
