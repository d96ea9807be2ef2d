// Stage 5: HTTP/1.1. `fetch`: a small curl on the course's ClientSession.
//
//     build/bin/fetch http://127.0.0.1:8080/get            # the body to stdout
//     build/bin/fetch -v -X POST -d 'a=1' -H 'X-Trace: 1' http://127.0.0.1:8080/post
//     build/bin/fetch --concurrency 20 $(seq -f 'http://127.0.0.1:8080/delay/0.1?%g' 100)
//
// Every URL is fetched by one ClientSession (one pool of keep-alive connections), at most
// --concurrency at a time (a Semaphore), each within --timeout. With one URL the body goes
// to stdout (or -o FILE) as it arrives, never held whole; with several, one line per URL:
// status, bytes, seconds. The exit status is 0 when every URL was fetched, 1 when any
// failed (with a line on stderr saying why), 2 for a bad command line.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/locks.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/client_session.hpp"
#include "stage5_http/http_grammar.hpp"

namespace {

struct Settings {
    std::vector<std::string> urls;
    std::string output;  // "" for stdout (one URL only)
    bool verbose = false;
    bool fail_on_error_status = false;
    bool no_follow = false;
    std::string method;  // "" for GET, or POST with --data
    std::string data;
    bool has_data = false;
    std::vector<std::string> headers;
    int concurrency = 10;
    double timeout = 30;
    int max_redirects = 10;
};

struct Outcome {
    bool ok = false;
    std::string line;  // the summary, or why it failed
};

void print_head(const char* mark, const aio::ClientResponse& r) {
    std::fprintf(stderr, "%s HTTP/%d.%d %d %.*s\n", mark, r.version().major, r.version().minor, r.status(),
                 int(r.reason().size()), r.reason().data());
    for (aio::HttpHeaders::Field f : r.headers())
        std::fprintf(stderr, "%s %.*s: %.*s\n", mark, int(f.name.size()), f.name.data(), int(f.value.size()),
                     f.value.data());
    std::fprintf(stderr, "%s\n", mark);
}

void print_request(const std::string& method, const std::string& url, const aio::HttpHeaders& headers,
                   const std::string& body) {
    std::string head;
    aio::write_request_head_for(head, aio::ClientRequest(method, aio::URL::parse(url), headers, body));
    for (std::size_t at = 0; at < head.size();) {
        std::size_t end = head.find("\r\n", at);
        std::fprintf(stderr, "> %s\n", head.substr(at, end - at).c_str());
        at = end + 2;
    }
}

// One URL: fetch it, stream the body to `out` (or count it), and say how it went.
aio::Coroutine<Outcome> fetch_one(aio::ClientSession& session, aio::Semaphore limit, const Settings& s,
                                  std::string url, aio::HttpHeaders headers, std::FILE* out) {
    auto slot = co_await limit.acquire_guard();
    aio::EventLoop& loop = aio::get_running_loop();
    const double start = loop.time();
    const std::string method = !s.method.empty() ? s.method : s.has_data ? "POST" : "GET";
    aio::RequestOptions options;
    options.allow_redirects = !s.no_follow;
    std::uint64_t bytes = 0;
    int status = 0;
    std::string failure;
    try {
        if (s.verbose) print_request(method, url, headers, s.data);
        aio::ClientResponse r = co_await session.request(method, url, headers, s.data, options);
        if (s.verbose) {
            for (const aio::ClientResponse& hop : r.history()) print_head("<", hop);
            print_head("<", r);
        }
        status = r.status();
        for (;;) {
            std::string piece = co_await r.content().read(64 * 1024);
            if (piece.empty()) break;
            bytes += piece.size();
            if (out && std::fwrite(piece.data(), 1, piece.size(), out) != piece.size())
                throw std::runtime_error("cannot write the body: the output is full or closed");
        }
        if (s.fail_on_error_status && status >= 400)
            failure = "HTTP " + std::to_string(status) + " " + std::string(r.reason()) + " (--fail)";
    } catch (const aio::CancelledError&) {
        throw;  // (a std::exception too: not a failure of this URL, but of the whole run)
    } catch (const std::exception& e) {
        failure = e.what();
    }
    char line[128];
    std::snprintf(line, sizeof line, "%d %llu bytes %.3f s ", status, static_cast<unsigned long long>(bytes),
                  loop.time() - start);
    if (!failure.empty()) co_return Outcome{false, url + ": " + failure};
    co_return Outcome{true, line + url};
}

aio::Coroutine<int> fetch_all(const Settings& s, aio::HttpHeaders headers, std::FILE* out) {
    aio::ClientSessionOptions options;
    options.timeout.total = s.timeout;
    options.max_redirects = s.max_redirects;
    aio::ClientSession session(options);
    aio::Semaphore limit(s.concurrency);
    const bool many = s.urls.size() > 1;
    const bool tty = ::isatty(STDERR_FILENO);
    std::vector<aio::Ref<aio::Task<Outcome>>> tasks;
    for (const std::string& url : s.urls) tasks.push_back(aio::create_task(fetch_one(session, limit, s, url, headers, out)));
    int failed = 0;
    const double start = aio::get_running_loop().time();
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        Outcome o = co_await tasks[i];  // in order; they run concurrently meanwhile
        if (tty && many) std::fprintf(stderr, "\r\033[K");
        if (!o.ok) {
            ++failed;
            std::fprintf(stderr, "fetch: %s\n", o.line.c_str());
        } else if (many) {
            std::printf("%s\n", o.line.c_str());
        }
        if (many && tty) std::fprintf(stderr, "fetched %zu/%zu", i + 1, tasks.size());
        std::fflush(nullptr);
    }
    if (many)
        std::fprintf(stderr, "%sfetched %zu/%zu in %.3f s, %d failed\n", tty ? "\r\033[K" : "", tasks.size(), tasks.size(),
                     aio::get_running_loop().time() - start, failed);
    co_await session.close();
    co_return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    aio::OptionParser options(
        "Fetches each URL with one aio::ClientSession (keep-alive, redirects), concurrently.\n"
        "One URL: the body goes to stdout. Several: a line per URL (status, bytes, seconds),\n"
        "and the progress on stderr. Exit status: 0 when every URL was fetched, 1 if any\n"
        "failed (a line on stderr says why), 2 for a bad command line.");
    options.arguments("URL", s.urls, "http:// URLs to fetch")
        .text("-o, --output", s.output, "FILE", "write the body to FILE ('-': stdout); one URL only")
        .flag("-v, --verbose", s.verbose, "print the request and response heads on stderr")
        .text("-X, --request", s.method, "METHOD", "the method (default GET, or POST with --data)")
        .text("-d, --data", s.data, "DATA", "send DATA as the body (implies POST)")
        .repeated("-H, --header", s.headers, "'NAME: VALUE'", "add a header field")
        .integer("--concurrency", s.concurrency, 1, 10000, "N", "fetch at most N URLs at once")
        .number("--timeout", s.timeout, 0.001, 86400, "S", "the total timeout of each request, in seconds")
        .integer("--max-redirects", s.max_redirects, 0, 100, "N", "follow at most N redirects")
        .flag("--no-follow", s.no_follow, "return a redirect instead of following it")
        .flag("-f, --fail", s.fail_on_error_status, "count a status of 400 or more as a failure");
    if (auto status = options.parse(argc, argv)) return *status;
    s.has_data = !s.data.empty();
    // A method that is not a token would fail every request the same way: say so now.
    if (!s.method.empty() && !aio::is_token(s.method))
        return options.usage_error("-X wants a method name (GET, POST, ...: letters, digits and !#$%&'*+-.^_`|~), got '" +
                                   s.method + "'");

    aio::HttpHeaders headers;
    for (const std::string& h : s.headers) {
        const std::size_t colon = h.find(':');
        if (colon == std::string::npos || colon == 0)
            return options.usage_error("-H wants 'Name: value', got '" + h + "'");
        try {
            headers.add(std::string_view(h).substr(0, colon), std::string_view(h).substr(colon + 1));
        } catch (const std::invalid_argument& e) {
            return options.usage_error("-H '" + h + "': " + e.what());
        }
    }
    for (const std::string& url : s.urls) {
        try {
            (void)aio::URL::parse(url);
        } catch (const aio::InvalidURL& e) {
            return options.usage_error(e.what());
        }
    }
    if (!s.output.empty() && s.urls.size() > 1) return options.usage_error("-o takes one URL, got " + std::to_string(s.urls.size()));

    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(nullptr, std::fclose);
    std::FILE* out = nullptr;
    if (s.urls.size() == 1) {
        out = stdout;
        if (!s.output.empty() && s.output != "-") {
            file.reset(std::fopen(s.output.c_str(), "wb"));
            if (!file) return options.usage_error("cannot write to '" + s.output + "': " + std::strerror(errno));
            out = file.get();
        }
    }
    try {
        return aio::run(fetch_all(s, std::move(headers), out), aio::new_selector_event_loop);
    } catch (const aio::KeyboardInterrupt&) {
        std::fprintf(stderr, "\nfetch: interrupted\n");
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fetch: %s\n", e.what());
        return 1;
    }
}
