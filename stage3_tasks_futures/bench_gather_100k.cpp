// Stage 3 benchmark: gather over 100,000 tasks that each sleep(0) once.
//
// Measures: the combinator at scale. main makes N coroutines `one()` (each does
//           `co_await sleep(0)` once), and `co_await gather(std::move(them))`: gather wraps
//           each in a task, each task runs its first step, yields one pass, finishes, and its
//           done-callback counts it in the gathering future, which completes with the last.
//           Timed from making the first coroutine to gather's return, so it counts the tasks'
//           creation, their two steps each, the done-callbacks and the vector of results.
// Python:   bench_gather_100k.py beside this file runs the same program on CPython's asyncio
//           (`await asyncio.gather(*[one() for _ in range(N)])`) when python3 is on PATH.
// Target:   none; the ratio to CPython is printed.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure, then a table.
// Progress goes to stderr.
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"

namespace {

namespace bench = aio::bench;

struct Options {
    long count = 100'000;
    int runs = 5;
    int python_runs = 3;
    bool python = true;
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "gather over N tasks that each `co_await sleep(0)` once: the time from making the N\n"
        "coroutines to gather's return (median of R runs), in ms, and per task in ns.\n"
        "Then, if python3 is on PATH, runs bench_gather_100k.py (beside this program's source),\n"
        "the same program on CPython's asyncio, and prints both side by side with the ratio.");
    options.integer("--count", o.count, 1L, 100'000'000L, "N", "tasks")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of ours; the median is reported")
        .integer("--python-runs", o.python_runs, 1, 1000, "R", "runs of the Python side")
        .constant("--no-python", o.python, false, "skip the Python side");
    return options.parse(argc, argv);
}

aio::Coroutine<> one() { co_await aio::sleep(0); }

aio::Coroutine<> gather_main(long n, double& seconds, double& cpu) {
    const double cpu0 = bench::cpu_seconds(), t0 = bench::now();
    std::vector<aio::Coroutine<>> coros;
    coros.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) coros.push_back(one());
    auto all = aio::gather(std::move(coros));
    auto results = co_await std::move(all);
    seconds = bench::seconds_since(t0);
    cpu = bench::cpu_seconds() - cpu0;
    if (results.size() != std::size_t(n)) {
        std::fprintf(stderr, "gather returned %zu results, expected %ld\n", results.size(), n);
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;
    const std::string name = "gather_" + bench::count_label(o.count);

    std::vector<double> ms, cpu_ms;
    for (int r = 1; r <= o.runs; ++r) {
        bench::progress("ours: run %d/%d (gather over %ld tasks)...", r, o.runs, o.count);
        double seconds = 0, cpu = 0;
        aio::run(gather_main(o.count, seconds, cpu));
        ms.push_back(seconds * 1e3);
        cpu_ms.push_back(cpu * 1e3);
        bench::progress(" %.1f ms (cpu %.1f ms)\n", ms.back(), cpu_ms.back());
    }
    const double ours = bench::median(ms), ours_cpu = bench::median(cpu_ms);
    bench::print_result(name, "ours", ours, "ms");
    bench::print_result(name + "_cpu", "ours", ours_cpu, "ms");

    std::optional<double> py, py_cpu;
    if (o.python) {
        auto rs =
            bench::run_python(__FILE__, {"--count", std::to_string(o.count), "--runs", std::to_string(o.python_runs)});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        py = bench::find_result(rs, name);
        py_cpu = bench::find_result(rs, name + "_cpu");
        if (!rs.empty() && !py) bench::progress("python3 asyncio: the script printed no %s figure\n", name.c_str());
    }

    auto per_task_ns = [&](std::optional<double> v) -> std::optional<double> {
        if (!v) return std::nullopt;
        return *v * 1e6 / double(o.count);
    };
    std::printf("\ngather over %ld tasks that each sleep(0) once; ours: median of %d runs, python: median of %d\n",
                o.count, o.runs, o.python_runs);
    bench::Table table({{"", 24}, {"ours", 10}, {"python-asyncio", 16}, {"python / ours", 14}});
    table.row({"total (ms)", bench::fmt(ours, "%.1f"), bench::fmt(py, "%.1f"), bench::ratio(py, ours)});
    table.row({"  in CPU time (ms)", bench::fmt(ours_cpu, "%.1f"), bench::fmt(py_cpu, "%.1f"),
               bench::ratio(py_cpu, ours_cpu)});
    table.row({"per task (ns)", bench::fmt(per_task_ns(ours), "%.0f"), bench::fmt(per_task_ns(py), "%.0f"),
               bench::ratio(py, ours)});
    table.print();
    return 0;
}
