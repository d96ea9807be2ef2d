// Stage 5 demo: the articles' HTTP measurements on the course's own clients and server. N
// requests one after another and at once; a blocking client through run_in_executor; three
// slow requests; threads against asyncio at 1 to 500 requests, as a table and a chart; and,
// with --url, real sites.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stage1_generators/demo.hpp"
#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/executor.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/blocking_client.hpp"
#include "stage5_http/client_session.hpp"
#include "stage5_http/server_thread.hpp"
#include "stage5_http/svg_chart.hpp"
#include "stage5_http/threads_vs_asyncio.hpp"
#include "stage5_http/web_httpbin.hpp"

namespace {

using aio::Coroutine;
using aio::RunControl;
using aio::Timing;

// ---- options ------------------------------------------------------------------------------

struct Options {
    bool quick = false, full = false;
    double scale = 0;        // seconds here per second of the articles' latencies (0: by mode)
    int requests = 100;      // part 1
    int max_requests = 500;  // the table's largest size
    int workers = int(aio::ThreadPoolExecutor::default_max_workers());
    int limit = 100;         // the ClientSession's pool (aiohttp's default)
    std::string chart;
    std::vector<std::string> urls;
};

// The table's sizes, the fifth article's.
const std::vector<int> kSizes{1, 10, 50, 100, 500};

// Where the chart goes by default: beside bin/, in the build directory that holds this
// program (build/ when built with `make`), or the current directory.
std::string default_chart_path() {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "stage5_threads_vs_asyncio.svg";
    std::string exe(buf, std::size_t(n));
    std::string dir = exe.substr(0, exe.rfind('/'));  // .../build/bin
    return dir.substr(0, dir.rfind('/')) + "/stage5_threads_vs_asyncio.svg";
}

// `path` relative to the current directory when it is below it (build/...), else as it is.
std::string shown(const std::string& path) {
    char buf[4096];
    if (!::getcwd(buf, sizeof buf)) return path;
    const std::string cwd = std::string(buf) + "/";
    return path.rfind(cwd, 0) == 0 ? path.substr(cwd.size()) : path;
}

std::optional<int> parse_options(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "The articles' HTTP measurements, on the course's clients against its httpbin (run on\n"
        "127.0.0.1, on a thread of its own; /delay/{s} stands in for the network's latency):\n"
        "  1. N requests one after another (blocking client), then at once (ClientSession + gather);\n"
        "  2. 10 requests with the blocking client, one after another, then through run_in_executor;\n"
        "  3. three slow requests, synchronously and asynchronously;\n"
        "  4. threads against asyncio at 1, 10, 50, 100 and 500 requests: a table and an SVG chart;\n"
        "  5. with --url, real http:// sites, one after another and at once.\n"
        "Latencies are the articles' times --scale (default 0.1; --quick 0.05; --full 1, the\n"
        "articles' own, which takes a few minutes). Ctrl-C stops it cleanly.");
    options.flag("--quick", o.quick, "a twentieth of the articles' latencies, for `make run` (about 10 s)")
        .flag("--full", o.full, "the articles' latencies (0.41 s a request in part 1; a few minutes)")
        .number("--scale", o.scale, 0.001, 10, "F", "seconds here per second of the articles' latencies")
        .integer("--requests", o.requests, 1, 1000, "N", "part 1's number of requests")
        .integer("--max-requests", o.max_requests, 1, 500, "N", "leave out the table's sizes above N")
        .integer("--workers", o.workers, 1, 512, "W",
                 "threads of part 4's pool (default: CPython's ThreadPoolExecutor, min(32, cores + 4))")
        .integer("--limit", o.limit, 0, 10000, "L", "connections of the ClientSession's pool (0: no limit)")
        .output_file("--chart", o.chart, "FILE", "where to write part 4's chart (default: build/stage5_threads_vs_asyncio.svg)")
        .repeated("--url", o.urls, "URL", "a real http:// site for part 5 (repeatable; needs a network)");
    if (auto status = options.parse(argc, argv)) return status;
    if (o.quick && o.full) return options.usage_error("--quick and --full contradict each other: choose one");
    if (o.scale == 0) o.scale = o.full ? 1.0 : o.quick ? 0.05 : 0.1;
    for (const std::string& url : o.urls) {
        try {
            (void)aio::URL::parse(url);
        } catch (const aio::InvalidURL& e) {
            return options.usage_error(std::string("--url: ") + e.what());
        }
    }
    if (o.chart.empty()) o.chart = default_chart_path();
    return std::nullopt;
}

// Every connection of the client's pool, or of the thread pool, is two fds (ours and the
// server's, in this process): raise the soft limit as far as the hard one allows.
void raise_fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t wanted = 4096;
    if (lim.rlim_cur >= wanted) return;
    lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(lim.rlim_max, wanted);
    ::setrlimit(RLIMIT_NOFILE, &lim);
}

// ---- progress, and the claims checked ----------------------------------------------------------

// A progress line on stderr (a terminal only) while `work` runs: requests done, seconds.
Coroutine<> tick(std::string what, int total, std::shared_ptr<RunControl> control) {
    const double start = aio::get_running_loop().time();
    for (;;) {
        co_await aio::sleep(0.25);
        std::fprintf(stderr, "\r\033[K   ... %s: %d/%d requests, %.1f s", what.c_str(), control->done.load(), total,
                     aio::get_running_loop().time() - start);
        std::fflush(stderr);
    }
}

template <typename T>
Coroutine<T> with_progress(Coroutine<T> work, std::string what, int total, std::shared_ptr<RunControl> control) {
    const bool tty = ::isatty(STDERR_FILENO);
    aio::Ref<aio::Task<>> ticker;
    if (tty) ticker = aio::create_task(tick(what, total, control), "progress");
    std::optional<T> result;
    std::exception_ptr failure;
    try {
        T r = co_await std::move(work);
        result.emplace(std::move(r));
    } catch (...) {
        failure = std::current_exception();  // (Ctrl-C: the CancelledError goes on below)
    }
    if (ticker) {
        ticker->cancel();
        try {
            co_await ticker;
        } catch (const aio::CancelledError&) {
        }
        std::fprintf(stderr, "\r\033[K");
    }
    if (failure) std::rethrow_exception(failure);
    co_return std::move(*result);
}

// A claim about a measured shape, printed only as far as this run bears it out.
int claims_failed = 0;
void claim(bool holds, const char* what) {
    if (holds) {
        std::printf("   [holds] %s\n", what);
    } else {
        ++claims_failed;
        std::printf("   [did not hold in this run] %s (a busy machine can do that: run it again)\n", what);
    }
}

// Measured against the model (threads_vs_asyncio.hpp): never much slower than it predicts.
bool near_model(double measured, double model) { return measured <= 2 * model + 0.05; }

int request_failures = 0;
void check(const Timing& t, const char* what) {
    if (t.failed == 0) return;
    request_failures += t.failed;
    std::printf("   !! %s: %d of %d requests failed; the first: %s\n", what, t.failed, t.ok + t.failed, t.error.c_str());
}

std::string delay_path(double seconds) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "/delay/%g", seconds);
    return buf;
}

// The blocking measurement `fn` off the loop, with progress.
Coroutine<Timing> blocking(std::function<Timing(RunControl*)> fn, std::string what, int total) {
    auto control = std::make_shared<RunControl>();
    Coroutine<Timing> work = aio::off_loop(std::move(fn), control);
    Timing t = co_await with_progress(std::move(work), std::move(what), total, control);
    co_return t;
}

Coroutine<Timing> gathered(std::string url, int n, std::size_t limit, std::string what) {
    auto control = std::make_shared<RunControl>();
    Coroutine<Timing> work = aio::get_with_gather(std::move(url), n, limit, control);
    Timing t = co_await with_progress(std::move(work), std::move(what), n, control);
    co_return t;
}

// ---- 1. N requests, one after another and at once ----------------------------------------------

Coroutine<> part1(const aio::ServerThread& server, const Options& o) {
    const double d = 0.41 * o.scale;
    const int n = o.requests;
    const std::string url = server.url(delay_path(d));
    std::printf("\n== 1. %d requests: one after another (blocking client), then at once (ClientSession + gather) ==\n"
                "   each is GET %s (%.3f s of latency).  The article: 100 requests of 0.41 s,\n"
                "   41 s one after another (requests), 1.4 s at once (aiohttp).\n",
                n, delay_path(d).c_str(), d);
    std::function<Timing(RunControl*)> sequential = [url, n](RunControl* c) { return aio::get_sequentially(url, n, c); };
    Timing seq = co_await blocking(std::move(sequential), "one after another", n);
    check(seq, "one after another");
    Timing conc = co_await gathered(url, n, std::size_t(o.limit), "at once");
    check(conc, "at once");
    const double model_conc = aio::expected_seconds(n, d, std::size_t(o.limit));
    std::printf("   one after another   %8.3f s   (model: %d x %.3f s = %.3f s)\n", seq.seconds, n, d, n * d);
    std::printf("   at once (gather)    %8.3f s   (model: %.3f s)\n", conc.seconds, model_conc);
    std::printf("   => %.0fx faster\n", seq.seconds / conc.seconds);
    claim(near_model(seq.seconds, n * d), "one after another, N requests take N latencies");
    claim(near_model(conc.seconds, model_conc) && conc.seconds < seq.seconds / 4,
          "at once, N requests take about the time of one (per `limit` connections)");
}

// ---- 2. the blocking client through run_in_executor ---------------------------------------------

Coroutine<> part2(const aio::ServerThread& server, const Options& o) {
    const double d = 0.083 * o.scale;
    const int n = 10;
    const std::string url = server.url(delay_path(d));
    const std::size_t workers = aio::ThreadPoolExecutor::default_max_workers();
    std::printf("\n== 2. %d requests with the blocking client: one after another, then through run_in_executor ==\n"
                "   each is GET %s.  The article: 0.83 s blocking, 0.31 s through run_in_executor.\n",
                n, delay_path(d).c_str());
    // (n is a constant: the lambda uses its value without capturing it)
    std::function<Timing(RunControl*)> sequential = [url](RunControl* c) { return aio::get_sequentially(url, n, c); };
    Timing seq = co_await blocking(std::move(sequential), "one after another", n);
    check(seq, "one after another");
    auto control = std::make_shared<RunControl>();
    Timing ex = co_await aio::get_in_executor(url, n, control);
    check(ex, "run_in_executor");
    const double model_ex = aio::expected_seconds(n, d, workers);
    std::printf("   one after another   %8.3f s   (model: %d x %.3f s = %.3f s)\n", seq.seconds, n, d, n * d);
    std::printf("   run_in_executor     %8.3f s   (model: the default executor has %zu workers here: %.0f round%s,"
                " %.3f s)\n",
                ex.seconds, workers, model_ex / d, model_ex / d > 1 ? "s" : "", model_ex);
    claim(near_model(ex.seconds, model_ex) && ex.seconds < seq.seconds,
          "run_in_executor runs the blocking calls `workers` at a time, on threads");
}

// ---- 3. three slow requests ----------------------------------------------------------------------

Coroutine<> part3(const aio::ServerThread& server, const Options& o) {
    const double d = 3 * o.scale;
    const int n = 3;
    const std::string url = server.url(delay_path(d));
    std::printf("\n== 3. Three slow requests (GET %s), synchronously, then asynchronously ==\n"
                "   The article: three /delay/3, 11.4 s synchronously, about 4 s asynchronously.\n",
                delay_path(d).c_str());
    // (n is a constant: the lambda uses its value without capturing it)
    std::function<Timing(RunControl*)> sequential = [url](RunControl* c) { return aio::get_sequentially(url, n, c); };
    Timing seq = co_await blocking(std::move(sequential), "synchronously", n);
    check(seq, "synchronously");
    Timing conc = co_await gathered(url, n, std::size_t(o.limit), "asynchronously");
    check(conc, "asynchronously");
    std::printf("   synchronously       %8.3f s   (model: %.3f s)\n", seq.seconds, n * d);
    std::printf("   asynchronously      %8.3f s   (model: %.3f s)\n", conc.seconds, d);
    claim(near_model(conc.seconds, d) && near_model(seq.seconds, n * d),
          "three at once take the time of the slowest, not of the three together");
}

// ---- 4. threads against asyncio ---------------------------------------------------------------

Coroutine<> part4(const aio::ServerThread& server, const Options& o) {
    const double d = 1.0 * o.scale;
    const std::string url = server.url(delay_path(d));
    const std::size_t workers = std::size_t(o.workers), limit = std::size_t(o.limit);
    std::printf("\n== 4. Threads against asyncio: 1 to %d requests of GET %s ==\n"
                "   threading: a ThreadPoolExecutor of %zu threads (%s) running the\n"
                "   blocking client; asyncio: one ClientSession (%s) and gather.\n"
                "   The article, at 500 requests: threading 47 s, asyncio 7.4 s.\n",
                std::min(o.max_requests, kSizes.back()), delay_path(d).c_str(), workers,
                workers == aio::ThreadPoolExecutor::default_max_workers() ? "CPython's default size here" : "--workers",
                limit ? ("a pool of " + std::to_string(limit) + " connections").c_str() : "a pool without a limit");
    std::vector<aio::ThreadsVsAsyncioRow> rows;
    std::printf("   %8s  %11s %10s  %11s %10s  %15s\n", "requests", "threading s", "model", "asyncio s", "model",
                "threads/asyncio");
    std::fflush(stdout);
    bool model_holds = true;
    for (int n : kSizes) {
        if (n > o.max_requests) continue;
        auto control = std::make_shared<RunControl>();
        Coroutine<aio::ThreadsVsAsyncioRow> work = aio::measure_threads_vs_asyncio(url, n, workers, limit, 1, control);
        aio::ThreadsVsAsyncioRow row = co_await with_progress(std::move(work), std::to_string(n) + " requests, each way",
                                                               2 * n, control);
        const double mt = aio::expected_seconds(n, d, workers), ma = aio::expected_seconds(n, d, limit);
        std::printf("   %8d  %11.3f %10.3f  %11.3f %10.3f  %14.1fx\n", n, row.threads, mt, row.asyncio, ma,
                    row.threads / row.asyncio);
        std::fflush(stdout);
        if (row.failed) {
            request_failures += row.failed;
            std::printf("   !! %d requests failed; the first: %s\n", row.failed, row.error.c_str());
        }
        model_holds = model_holds && near_model(row.threads, mt) && near_model(row.asyncio, ma);
        rows.push_back(row);
    }
    std::printf("   (model: ceil(requests / %zu threads) or ceil(requests / %s connections) latencies of %.3f s)\n",
                workers, limit ? std::to_string(limit).c_str() : "unlimited", d);
    claim(model_holds, "every time is within twice its model: requests wait in rounds of `workers` or `limit`");
    const aio::ThreadsVsAsyncioRow &first = rows.front(), &last = rows.back();
    if (last.requests > int(workers)) {
        claim(last.threads > 3 * first.threads, "threading grows with the number of requests (N / workers rounds)");
        claim(last.asyncio < last.threads / 2, "asyncio stays far below: one thread waits for all its connections");
    }
    // The chart.
    char title[160];
    std::snprintf(title, sizeof title, "Threading (%zu threads) vs asyncio, %g s a request", workers, d);
    try {
        aio::write_svg(aio::threads_vs_asyncio_chart(rows, title), o.chart);
        std::printf("   The chart: %s\n", shown(o.chart).c_str());
    } catch (const std::exception& e) {
        std::printf("   !! %s\n", e.what());
    }
}

// ---- 5. real sites ----------------------------------------------------------------------------

struct SiteResult {
    std::string line;
    bool ok = false;
};

Coroutine<SiteResult> fetch_site(aio::ClientSession& session, std::string url) {
    const double start = aio::get_running_loop().time();
    SiteResult r;
    try {
        aio::ClientResponse response = co_await session.get(url);
        std::string body = co_await response.read();
        char line[96];
        std::snprintf(line, sizeof line, "%d, %zu bytes, %.3f s", response.status(), body.size(),
                      aio::get_running_loop().time() - start);
        r.line = line;
        r.ok = true;
    } catch (const aio::CancelledError&) {
        throw;
    } catch (const std::exception& e) {
        r.line = e.what();
    }
    co_return r;
}

// requests.get(url), on a worker thread (to_thread): so the loop still notices Ctrl-C.
SiteResult fetch_site_blocking(std::string url) {
    const aio::Stopwatch clock;
    SiteResult r;
    try {
        aio::BlockingResponse response = aio::blocking_get(url, aio::BlockingTimeout{10.0, 20.0});
        char line[96];
        std::snprintf(line, sizeof line, "%d, %zu bytes, %.3f s", response.status, response.body.size(),
                      clock.wall());
        r.line = line;
        r.ok = true;
    } catch (const std::exception& e) {
        r.line = e.what();
    }
    return r;
}

Coroutine<> part5(const Options& o) {
    std::printf("\n== 5. Real sites (--url): one after another, then at once ==\n");
    if (o.urls.empty()) {
        std::printf("   (none given: try --url http://example.com/ --url http://neverssl.com/; http:// only)\n");
        co_return;
    }
    aio::EventLoop& loop = aio::get_running_loop();
    double start = loop.time();
    int reached = 0;
    for (const std::string& url : o.urls) {
        SiteResult r = co_await aio::to_thread(fetch_site_blocking, url);
        reached += r.ok;
        std::printf("   blocking  %-40s %s\n", url.c_str(), r.line.c_str());
    }
    const double seq = loop.time() - start;
    aio::ClientSessionOptions options;
    options.timeout.total = 20.0;
    aio::ClientSession session(options);
    std::vector<Coroutine<SiteResult>> fetches;
    for (const std::string& url : o.urls) fetches.push_back(fetch_site(session, url));
    start = loop.time();
    std::vector<SiteResult> results = co_await aio::gather(std::move(fetches));
    const double conc = loop.time() - start;
    co_await session.close();
    for (std::size_t i = 0; i < results.size(); ++i) {
        reached += results[i].ok;
        std::printf("   gather    %-40s %s\n", o.urls[i].c_str(), results[i].line.c_str());
    }
    if (reached == 0) {
        std::printf("   No site answered: is there a network here? (This part needs one; the rest does not.)\n");
        co_return;
    }
    std::printf("   one after another %.3f s, at once %.3f s\n", seq, conc);
}

// ---- the demo -----------------------------------------------------------------------------

Coroutine<int> demo(Options o) {
    aio::ServerThread server(aio::httpbin_router());
    std::printf("Stage 5: HTTP/1.1. The course's httpbin serves %s from a thread and a loop of its own;\n"
                "its /delay/{s} stands in for the network's latency. 1 s of the articles' = %g s here%s.\n",
                server.url("/").c_str(), o.scale, o.scale == 1 ? " (--full)" : " (--full: 1 s)");
    co_await part1(server, o);
    co_await part2(server, o);
    co_await part3(server, o);
    co_await part4(server, o);
    co_await part5(o);

    std::printf(
        "\nWhat to notice:\n"
        "  - A request is mostly waiting. The blocking client waits with its thread, so N requests\n"
        "    take N waits; the ClientSession waits with a registration in the selector, so the one\n"
        "    thread waits for all N at once, and N requests take about one wait.\n"
        "  - Threads help as far as there are threads: a pool of W runs W requests at a time, and\n"
        "    N take N / W rounds. run_in_executor is that pool, called from the loop: the way to use\n"
        "    a blocking library from asyncio, not a way to make it scale.\n"
        "  - asyncio's limit is the pool's (%s): --limit 0 lifts it.\n",
        o.limit == 100 ? "100 connections, aiohttp's default"
        : o.limit      ? (std::to_string(o.limit) + " connections here").c_str()
                       : "none here");
    if (claims_failed)
        std::printf("\n%d of the claims above did not hold in this run: the figures are what they are.\n",
                    claims_failed);
    if (request_failures) std::printf("\n%d requests to the course's own server failed (see above).\n", request_failures);
    co_return request_failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_options(argc, argv, o)) return *status;
    raise_fd_limit();
    try {
        return aio::run(demo(o), aio::new_selector_event_loop);
    } catch (const aio::KeyboardInterrupt&) {
        std::printf("\nInterrupted (Ctrl-C): the requests in flight finished, the threads and the server stopped.\n");
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
