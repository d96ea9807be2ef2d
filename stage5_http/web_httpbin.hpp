// Stage 5: HTTP/1.1, the server. The course's built-in app: a small httpbin, for the demo,
// the client's tests, the crawler and the benchmarks.
//
// Adds:    httpbin_router() (its routes), add_httpbin_routes(router), json_string,
//          site_page_links, kSitePages and the caps below.
// Mirrors: httpbin.org (Kenneth Reitz's httpbin: /get, /delay/n, /status/code, /bytes/n,
//          /stream/n, /redirect/n), which aiohttp's and requests' tests run against; plus a
//          generated site for a crawler. All of it deterministic: the same request always
//          gets the same answer (but for /get's headers and origin, which echo the request).
//
//   GET  /                  a plain-text list of the routes
//   GET  /get               the request as JSON: method, path, args, headers, origin, url
//   GET  /delay/{seconds}   the same, after `seconds` (fractional, at most kMaxDelay)
//   GET  /status/{code}     an answer with that status (200-599)
//   GET  /bytes/{n}         n pseudo-random bytes (at most kMaxBytes), the same each time
//   GET  /stream/{n}        n JSON lines (at most kMaxStreamLines), chunked, one per chunk
//   GET  /redirect/{n}      302 to /redirect/{n-1}, ..., /redirect/1 -> /get (n <= kMaxRedirects)
//   POST /echo              the request's body, with its Content-Type
//   GET  /site/             the index of a generated site of kSitePages linked pages
//   GET  /site/page/{i}     page i (0 <= i < kSitePages), linking to a few others
//
// Bad values (a non-number, past a cap) are answered 400 with what was wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "stage5_http/web_urldispatcher.hpp"

namespace aio {

inline constexpr double kMaxDelay = 10.0;                 // seconds
inline constexpr long kMaxBytes = 10L * 1024 * 1024;     // /bytes
inline constexpr long kMaxStreamLines = 100000;          // /stream
inline constexpr long kMaxRedirects = 100;               // /redirect
inline constexpr int kSitePages = 300;                   // /site/page/0 .. 299

// The routes above, on a new Router (or added to `router`).
Router httpbin_router();
void add_httpbin_routes(Router& router);

// `text` as a JSON string literal, quotes included: "a\"b\n" -> "\"a\\\"b\\n\"". Bytes that
// are not UTF-8 are written as \u00XX (Latin-1), so the output is always valid JSON.
std::string json_string(std::string_view text);

// The pages /site/page/{i} links to, in the order it lists them: the next page (so every
// page is reachable from /site/page/0), and two others that depend on i.
std::vector<int> site_page_links(int i);

}  // namespace aio
