// Stage 5 tests: what the fuzzers found (make fuzz, tests/fuzz/). Each input is also kept in
// the fuzzer's seed corpus (tests/fuzz/corpus/<harness>/regression-*), so a later run starts
// from it; here the property it broke is checked directly, with the reason for the fix.
#include <catch2/catch.hpp>

#include <string>

#include "stage5_http/url.hpp"

// fuzz_url, "joining a joined URL again changes nothing" (tests/fuzz/corpus/url/
// regression-join-dot-base). Base http://hA/./p?@sExampel;M:p?(q, reference "?#f/?": RFC 3986
// §5.2.2 keeps the base's path as it is when the reference has none, so the result kept "/./p";
// joining that result again (an absolute reference) removed the dot segment: "/p". Was a bug in
// URL::join (url.cpp), which now removes the base's dot segments first, as §5.2.1 allows and
// browsers do; resolve_reference itself stays the RFC's algorithm, word for word.
TEST_CASE("fuzz regression: join() with a base whose path has dot segments is stable", "[url][fuzz]") {
    aio::URL base = aio::URL::parse("http://hA/./p?@sExampel;M:p?(q");
    aio::URL joined = base.join("?#f/?");
    CHECK(joined.str() == "http://ha/p?#f/?");
    CHECK(base.join(joined.str()) == joined);
    CHECK(aio::URL::parse("http://h/a/../b/./c").join("").str() == "http://h/b/c");
    CHECK(aio::URL::parse("http://h/a/../b").join("#f").path() == "/b");
    // The RFC's algorithm on text is unchanged: the base's path is kept when the reference
    // has none.
    CHECK(aio::resolve_reference("http://h/./p?q", "?x") == "http://h/./p?x");
}
