// Stage 2 benchmark: call_soon throughput, in callbacks per second.
//
// Measures: what one callback costs the loop, from call_soon to having run it. Two workloads:
//   call_soon        (the main figure) N call_soon(cb) in a row from outside the loop, then
//                    run_forever(): the pass runs all N, and the last one calls stop(). Timed
//                    from the first call_soon to run_forever's return, so it counts making
//                    each handle, queueing it, running it and freeing it.
//   call_soon_chain  each callback schedules the next (N in all); the loop sees one callback
//                    per pass, so this also counts a whole run_once() pass per callback.
// Python:   bench_call_soon.py beside this file runs the identical workloads on asyncio's
//           loop (same N, same number of runs, median) when python3 is on PATH.
// Target:   call_soon throughput at least 30 times CPython's.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure (the
// course's convention, for scripts), then a table for people. Progress goes to stderr.
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage2_custom_loop/event_loop.hpp"

namespace {

namespace bench = aio::bench;

constexpr double kTargetRatio = 30.0;  // at least 30x CPython

struct Options {
    int count = 1'000'000;
    int runs = 5;
    bool python = true;
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    char target[64];
    std::snprintf(target, sizeof target, "Target: call_soon throughput at least %.0f times CPython's.", kTargetRatio);
    aio::OptionParser options(
        "call_soon throughput, in callbacks per second (median of R runs), for two workloads:\n"
        "  call_soon        N call_soon(cb) in a row, then run_forever(); cb increments a counter\n"
        "                   and the last one calls stop(). Timed from the first call_soon to the\n"
        "                   return of run_forever: scheduling, running and freeing N handles.\n"
        "                   This is the main figure.\n"
        "  call_soon_chain  each callback schedules the next, N in all: one run_once() pass per\n"
        "                   callback, so it also measures the cost of a pass.\n"
        "Then, if python3 is on PATH, runs bench_call_soon.py (beside this program's source), the\n"
        "identical workloads on Python's asyncio, and prints both side by side with the ratio.\n" +
        std::string(target));
    options.integer("--count", o.count, 1, 100'000'000, "N", "callbacks per run")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of each workload on each side; the median is reported")
        .constant("--no-python", o.python, false, "skip the Python side");
    return options.parse(argc, argv);
}

// ---- the workloads ------------------------------------------------------------------------

struct Counter {
    aio::EventLoop* loop;
    int remaining;
};

// call_soon: N callbacks queued before the loop runs; one pass runs them all.
double run_call_soon(int count) {
    aio::EventLoop loop;
    Counter c{&loop, count};
    double t0 = bench::now();
    for (int i = 0; i < count; ++i)
        loop.call_soon([&c] {
            if (--c.remaining == 0) c.loop->stop();
        });
    loop.run_forever();
    return count / bench::seconds_since(t0);
}

// call_soon_chain: each callback schedules the next. A named functor rather than a lambda,
// because the callback must schedule a copy of itself.
struct ChainLink {
    Counter* c;
    void operator()() const {
        if (--c->remaining == 0)
            c->loop->stop();
        else
            c->loop->call_soon(*this);
    }
};

double run_call_soon_chain(int count) {
    aio::EventLoop loop;
    Counter c{&loop, count};
    double t0 = bench::now();
    loop.call_soon(ChainLink{&c});
    loop.run_forever();
    return count / bench::seconds_since(t0);
}

struct Workload {
    const char* name;
    double (*run)(int count);
};
constexpr Workload kWorkloads[] = {{"call_soon", run_call_soon}, {"call_soon_chain", run_call_soon_chain}};

// ---- the report ---------------------------------------------------------------------------

std::string millions(std::optional<double> v) {
    if (!v) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f M", *v / 1e6);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;

    std::vector<double> ours;
    for (const Workload& w : kWorkloads) {
        std::vector<double> rates;
        for (int r = 1; r <= o.runs; ++r) {
            bench::progress("ours: %s, run %d/%d (%d callbacks)...", w.name, r, o.runs, o.count);
            rates.push_back(w.run(o.count));
            bench::progress(" %.2f M callbacks/s\n", rates.back() / 1e6);
        }
        ours.push_back(bench::median(rates));
        bench::print_result(w.name, "ours", ours.back(), "callbacks_per_s", 0);
    }

    std::vector<std::optional<double>> python(std::size(kWorkloads));
    if (o.python) {
        auto rs = bench::run_python(__FILE__, {"--count", std::to_string(o.count), "--runs", std::to_string(o.runs)});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
            python[i] = bench::find_result(rs, kWorkloads[i].name);
            if (!rs.empty() && !python[i])
                bench::progress("python3 asyncio: the script printed no %s figure\n", kWorkloads[i].name);
        }
    }

    std::printf("\ncall_soon throughput, %d callbacks per run, median of %d runs (callbacks/s)\n", o.count, o.runs);
    bench::Table table({{"workload", 18}, {"ours", 12}, {"python-asyncio", 16}, {"ours / python", 14}});
    for (std::size_t i = 0; i < std::size(kWorkloads); ++i)
        table.row({kWorkloads[i].name, millions(ours[i]), millions(python[i]), bench::ratio(ours[i], python[i])});
    table.print();
    if (python[0] && *python[0] > 0) {
        double x = ours[0] / *python[0];
        std::printf("  target: call_soon at least %.0fx CPython: %.1fx -> %s\n", kTargetRatio, x,
                    bench::verdict(x >= kTargetRatio));
    } else {
        std::printf("  target: call_soon at least %.0fx CPython: n/a (no Python figure)\n", kTargetRatio);
    }
    return 0;
}
