// Stage 5: HTTP/1.1, the server. The built-in httpbin app (web_httpbin.hpp).
//
// Its handlers show the two kinds (web_urldispatcher.hpp): most are plain functions that
// answer at once; /delay and /stream are coroutines, because they wait (a timer, the
// client's reading).
#include "stage5_http/web_httpbin.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "stage3_tasks_futures/tasks.hpp"
#include "stage5_http/http_writer.hpp"
#include "stage5_http/web_stream_response.hpp"

namespace aio {

namespace {

// A whole number in [min, max] from a path part; nullopt for anything else.
std::optional<long> parse_long(std::string_view text, long min, long max) {
    long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) return std::nullopt;
    return value;
}

Response bad_value(std::string_view what, std::string_view got, std::string_view wanted) {
    return error_response(400, std::string(what) + " '" + std::string(got.substr(0, 40)) + "': " + std::string(wanted));
}

// The request as httpbin's /get describes it. Repeated fields are joined with ", " (what
// RFC 9110 §5.3 says they mean); so are repeated query parameters.
std::string describe_request(const Request& request, const char* extra = nullptr) {
    std::map<std::string, std::string> args;
    for (auto& [name, value] : request.query_items()) {
        auto [it, fresh] = args.emplace(name, value);
        if (!fresh) it->second += ", " + value;
    }
    std::string out = "{\n  \"method\": " + json_string(request.method()) + ",\n  \"path\": " +
                      json_string(request.path()) + ",\n  \"args\": {";
    bool first = true;
    for (auto& [name, value] : args) {
        out += (first ? "" : ", ") + json_string(name) + ": " + json_string(value);
        first = false;
    }
    out += "},\n  \"headers\": {";
    std::vector<std::pair<std::string, std::string>> fields;  // in order, repeats joined
    for (HttpHeaders::Field f : request.headers()) {
        bool joined = false;
        for (auto& [name, value] : fields)
            if (iequals(name, f.name)) {
                value += ", " + std::string(f.value);
                joined = true;
            }
        if (!joined) fields.emplace_back(std::string(f.name), std::string(f.value));
    }
    first = true;
    for (auto& [name, value] : fields) {
        out += (first ? "" : ", ") + json_string(name) + ": " + json_string(value);
        first = false;
    }
    std::string host(request.headers().get("Host").value_or(""));
    out += "},\n  \"origin\": " + json_string(request.remote().host()) + ",\n  \"url\": " +
           json_string("http://" + host + std::string(request.target()));
    if (extra) out += ",\n  " + std::string(extra);
    out += "\n}\n";
    return out;
}

Response route_list(Request&) {
    return Response::text(
        "The course's httpbin (stage5_http/web_httpbin.hpp):\n"
        "  GET  /get              the request, as JSON\n"
        "  GET  /delay/{seconds}  the same, after a delay (at most 10 s)\n"
        "  GET  /status/{code}    an answer with that status\n"
        "  GET  /bytes/{n}        n pseudo-random bytes\n"
        "  GET  /stream/{n}       n JSON lines, chunked\n"
        "  GET  /redirect/{n}     a chain of n redirects, ending at /get\n"
        "  POST /echo             the request's body\n"
        "  GET  /site/            a generated site of linked pages, for a crawler\n");
}

Response get(Request& request) { return Response::json(describe_request(request)); }

// [docs:httpbin_delay]
// A coroutine handler: it waits, so it runs as a task, and the connection's other
// requests (pipelined behind it) wait for its answer; other connections do not.
Coroutine<Response> delay(Request& request) {
    std::string_view text = request.match_info("seconds");
    double seconds = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(seconds) || seconds < 0)
        co_return bad_value("delay", text, "a number of seconds, 0 or more (fractions allowed)");
    seconds = std::min(seconds, kMaxDelay);
    co_await sleep(seconds);
    char extra[64];
    std::snprintf(extra, sizeof extra, "\"delay\": %g", seconds);
    co_return Response::json(describe_request(request, extra));
}
// [/docs:httpbin_delay]

Response status(Request& request) {
    std::string_view text = request.match_info("code");
    std::optional<long> code = parse_long(text, 200, 599);
    if (!code) return bad_value("status", text, "a status code from 200 to 599");
    Response r{int(*code)};
    if (*code != 204 && *code != 304) r.body = std::to_string(*code) + " " + std::string(reason_phrase(int(*code))) + "\n";
    if (*code >= 300 && *code < 400 && *code != 304) r.headers.add("Location", "/redirect/1");
    return r;
}

Response bytes(Request& request) {
    std::string_view text = request.match_info("n");
    std::optional<long> n = parse_long(text, 0, kMaxBytes);
    if (!n) return bad_value("bytes", text, "a count from 0 to " + std::to_string(kMaxBytes));
    Response r(200);
    r.content_type = "application/octet-stream";
    r.body.resize(std::size_t(*n));
    // xorshift64: the same bytes for the same n, every time.
    std::uint64_t x = 0x9e3779b97f4a7c15ULL ^ std::uint64_t(*n);
    for (char& c : r.body) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = char(x >> 56);
    }
    return r;
}

// A streamed answer: each line leaves as a chunk when it is written, and write() waits
// while the client reads slower than we write, so a slow client costs no memory.
Coroutine<Response> stream(Request& request) {
    std::string_view text = request.match_info("n");
    std::optional<long> n = parse_long(text, 0, kMaxStreamLines);
    if (!n) co_return bad_value("stream", text, "a count from 0 to " + std::to_string(kMaxStreamLines));
    StreamResponse response(request);
    response.content_type() = "application/json";
    co_await response.prepare();
    for (long i = 0; i < *n; ++i) {
        std::string line = "{\"id\": " + std::to_string(i) + ", \"path\": " + json_string(request.path()) + "}\n";
        co_await response.write(line);
    }
    co_await response.write_eof();
    co_return response;
}

Response redirect(Request& request) {
    std::string_view text = request.match_info("n");
    std::optional<long> n = parse_long(text, 1, kMaxRedirects);
    if (!n) return bad_value("redirect", text, "a count from 1 to " + std::to_string(kMaxRedirects));
    Response r(302);
    r.headers.add("Location", *n == 1 ? "/get" : "/redirect/" + std::to_string(*n - 1));
    r.body = "redirecting\n";
    return r;
}

Response echo(Request& request) {
    Response r(200, std::string(request.body()));
    r.content_type = std::string(request.headers().get("Content-Type").value_or("application/octet-stream"));
    return r;
}

Response site_index(Request&) {
    std::string out = "<!doctype html>\n<html><head><title>The course's site</title></head><body>\n"
                      "<h1>The course's site</h1>\n<p>" + std::to_string(kSitePages) +
                      " pages, each linking to a few others.</p>\n<ul>\n";
    for (int i = 0; i < 10; ++i)
        out += "<li><a href=\"/site/page/" + std::to_string(i) + "\">page " + std::to_string(i) + "</a></li>\n";
    out += "</ul>\n</body></html>\n";
    Response r(200, std::move(out));
    r.content_type = "text/html; charset=utf-8";
    return r;
}

Response site_page(Request& request) {
    std::string_view text = request.match_info("i");
    std::optional<long> i = parse_long(text, 0, kSitePages - 1);
    if (!i) return error_response(404, "no page " + std::string(text.substr(0, 40)) + " on this site");
    std::string out = "<!doctype html>\n<html><head><title>Page " + std::to_string(*i) + "</title></head><body>\n<h1>Page " +
                      std::to_string(*i) + "</h1>\n<p>Links:</p>\n<ul>\n";
    for (int link : site_page_links(int(*i)))
        out += "<li><a href=\"/site/page/" + std::to_string(link) + "\">page " + std::to_string(link) + "</a></li>\n";
    out += "<li><a href=\"/site/\">index</a></li>\n</ul>\n</body></html>\n";
    Response r(200, std::move(out));
    r.content_type = "text/html; charset=utf-8";
    return r;
}

}  // namespace

std::vector<int> site_page_links(int i) {
    const int n = kSitePages;
    return {(i + 1) % n, (i * 7 + 3) % n, (i * i + 11) % n};
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        switch (c) {
        case '"': out += "\\\""; continue;
        case '\\': out += "\\\\"; continue;
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        default: break;
        }
        if (c < 0x20 || c >= 0x80) {  // controls, and every non-ASCII byte as Latin-1
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out + "\"";
}

void add_httpbin_routes(Router& router) {
    router.add_get("/", route_list);
    router.add_get("/get", get);
    router.add_get("/delay/{seconds}", delay);
    router.add_get("/status/{code}", status);
    router.add_get("/bytes/{n}", bytes);
    router.add_get("/stream/{n}", stream);
    router.add_get("/redirect/{n}", redirect);
    router.add_post("/echo", echo);
    router.add_get("/site/", site_index);
    router.add_get("/site/page/{i}", site_page);
}

Router httpbin_router() {
    Router router;
    add_httpbin_routes(router);
    return router;
}

}  // namespace aio
