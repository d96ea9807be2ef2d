// Stage 5: threads against asyncio, the fifth article's figure as a benchmark. N GET requests
// of GET /delay/{latency} on the course's httpbin (on a thread of its own, in this process),
// made two ways: a ThreadPoolExecutor of CPython's default size running the blocking client,
// and one ClientSession with gather on our loop. N = 1, 10, 50, 100, 500; the median of
// --runs runs each. Where python3 is installed, bench_threads_vs_asyncio.py makes the same
// requests against the same server with the standard library: urllib on a
// ThreadPoolExecutor, and asyncio streams under a Semaphore of the same limit.
//
// The figures are mostly the latency times the rounds each way needs (threads_vs_asyncio.hpp's
// model); what is left over is each client's own cost, which on a loaded 2-core machine is
// noise. The RESULT lines give seconds per workload.
#include <cstdio>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/server_thread.hpp"
#include "stage5_http/threads_vs_asyncio.hpp"
#include "stage5_http/web_httpbin.hpp"

namespace bench = aio::bench;

namespace {

struct Settings {
    double latency = 0.1;
    int runs = 3;
    int max_requests = 500;
    int workers = int(aio::ThreadPoolExecutor::default_max_workers());
    int limit = 100;
    std::string chart;
    bool no_python = false;
};

const std::vector<int> kSizes{1, 10, 50, 100, 500};

aio::Coroutine<std::vector<aio::ThreadsVsAsyncioRow>> measure(std::string url, Settings s) {
    std::vector<aio::ThreadsVsAsyncioRow> rows;
    for (int n : kSizes) {
        if (n > s.max_requests) continue;
        bench::progress("  %d requests, %d runs each way ... ", n, s.runs);
        auto control = std::make_shared<aio::RunControl>();
        aio::ThreadsVsAsyncioRow row = co_await aio::measure_threads_vs_asyncio(
            url, n, std::size_t(s.workers), std::size_t(s.limit), s.runs, control);
        bench::progress("threads %.3f s, asyncio %.3f s\n", row.threads, row.asyncio);
        if (row.failed) bench::progress("  !! %d requests failed; the first: %s\n", row.failed, row.error.c_str());
        rows.push_back(row);
    }
    co_return rows;
}

std::string name_of(int n) { return "get_" + std::to_string(n); }

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    aio::OptionParser options(
        "Threads against asyncio: N GET /delay/{latency} requests on the course's httpbin (in this\n"
        "process, on a thread of its own), made by a ThreadPoolExecutor running the blocking client\n"
        "and by one ClientSession with gather; N = 1, 10, 50, 100, 500, the median of the runs.\n"
        "Then the same in Python (urllib on threads, asyncio streams) when python3 is installed.\n"
        "About a minute on 2 cores with the defaults.");
    options.number("--latency", s.latency, 0.001, 10, "S", "seconds the server waits before each answer")
        .integer("--runs", s.runs, 1, 50, "N", "runs of each measurement (the median is kept)")
        .integer("--max-requests", s.max_requests, 1, 500, "N", "leave out the sizes above N")
        .integer("--workers", s.workers, 1, 512, "W", "threads of the pool (default: CPython's, min(32, cores + 4))")
        .integer("--limit", s.limit, 0, 10000, "L", "connections of the ClientSession's pool (0: no limit)")
        .output_file("--chart", s.chart, "FILE", "also write the figure as an SVG line chart")
        .flag("--no-python", s.no_python, "skip the Python side");
    if (auto status = options.parse(argc, argv)) return *status;

    try {
        aio::ServerThread server(aio::httpbin_router());
        char path[64];
        std::snprintf(path, sizeof path, "/delay/%g", s.latency);
        const std::string url = server.url(path);
        bench::progress("threads vs asyncio: GET %s, %d threads, a pool of %d connections\n", url.c_str(), s.workers,
                        s.limit);
        std::vector<aio::ThreadsVsAsyncioRow> rows = aio::run(measure(url, s), aio::new_selector_event_loop);

        for (const aio::ThreadsVsAsyncioRow& r : rows) {
            bench::print_result(name_of(r.requests), "threads", r.threads, "s");
            bench::print_result(name_of(r.requests), "ours", r.asyncio, "s");
        }
        std::vector<bench::Result> python;
        if (!s.no_python) {
            bench::progress("python3: the same requests, urllib on threads and asyncio streams\n");
            python = bench::run_python(__FILE__, {"--url", url, "--runs", std::to_string(s.runs), "--max-requests",
                                                  std::to_string(s.max_requests), "--workers",
                                                  std::to_string(s.workers), "--limit", std::to_string(s.limit)});
            for (const bench::Result& r : python) std::printf("%s\n", r.line.c_str());
        }

        std::printf("\nThreads vs asyncio: GET /delay/%g, seconds (median of %d runs); %d threads, a pool of %d "
                    "connections\n",
                    s.latency, s.runs, s.workers, s.limit);
        bench::Table table({{"requests"}, {"threads"}, {"ours (asyncio)"}, {"threads/ours"}, {"python-threads"},
                            {"python-asyncio"}, {"model threads"}, {"model asyncio"}});
        for (const aio::ThreadsVsAsyncioRow& r : rows) {
            table.row({std::to_string(r.requests), bench::fmt(r.threads, "%.3f"), bench::fmt(r.asyncio, "%.3f"),
                       bench::ratio(r.threads, r.asyncio),
                       bench::fmt(bench::find_result(python, name_of(r.requests), "python-threads"), "%.3f"),
                       bench::fmt(bench::find_result(python, name_of(r.requests), "python-asyncio"), "%.3f"),
                       bench::fmt(aio::expected_seconds(r.requests, s.latency, std::size_t(s.workers)), "%.3f"),
                       bench::fmt(aio::expected_seconds(r.requests, s.latency, std::size_t(s.limit)), "%.3f")});
        }
        table.print();
        std::printf("  (model: ceil(requests / threads) or ceil(requests / connections) latencies)\n");
        if (!s.chart.empty()) {
            aio::write_svg(aio::threads_vs_asyncio_chart(rows, "Threading vs asyncio (seconds per batch)"), s.chart);
            std::printf("  chart: %s\n", s.chart.c_str());
        }
        return 0;
    } catch (const aio::KeyboardInterrupt&) {
        std::fprintf(stderr, "\ninterrupted\n");
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_threads_vs_asyncio: %s\n", e.what());
        return 1;
    }
}
