// Stage 3 benchmark: what a wait_for (a timeout scope around one await) costs, in ns.
//
// Measures: two programs, the same as bench_wait_for.py runs on CPython's asyncio:
//   ready   N x `co_await wait_for(ready(), 10.0)`, on a coroutine that returns at once:
//           the cost of the scope alone (note the cancel count, set a timer, cancel it).
//   sleep0  N x `co_await wait_for(sleep0(), 10.0)`, on a coroutine that suspends once
//           (sleep(0)): a wait_for that has to wait, plus one pass of the loop.
//           Beside it, `plain_sleep0`: the same loop without wait_for, so the difference
//           is what wait_for adds to an await that waits.
//   timeout_ready  N x `co_await timeout(10.0, ready())`: the scope written out, which is
//           what 3.12's wait_for is; on a Python older than 3.12 (whose wait_for makes a
//           task for the coroutine) this is the figure to compare the 3.12 shape with.
// No timeout ever passes. Target: none; the figures stand beside CPython 3.12+'s.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure, then a table
// with CPython's figures and the ratios. Progress goes to stderr.
#include <cstdio>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"

namespace {

namespace bench = aio::bench;

struct Options {
    long calls = 100'000;
    int runs = 5;
    int python_runs = 3;
    bool python = true;
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "The cost of wait_for when nothing times out, in ns per call (median of R runs):\n"
        "  ready         N x `co_await wait_for(ready(), 10.0)`, ready() returning at once: the\n"
        "                timeout scope alone\n"
        "  sleep0        N x `co_await wait_for(sleep0(), 10.0)`, sleep0() suspending once\n"
        "  plain_sleep0  N x `co_await sleep0()`, the same without wait_for\n"
        "  timeout_ready N x `co_await timeout(10.0, ready())`: 3.12's wait_for written out (on a\n"
        "                Python before 3.12, wait_for makes a task: compare this line instead)\n"
        "Then, if python3 is on PATH, runs bench_wait_for.py (beside this program's source), the\n"
        "same programs on CPython's asyncio (wait_for is built on asyncio.timeout since 3.12),\n"
        "and prints both side by side with the ratio.");
    options.integer("--calls", o.calls, 1L, 1'000'000'000L, "N", "wait_for calls per program")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of ours; the median is reported")
        .integer("--python-runs", o.python_runs, 1, 1000, "R", "runs of the Python side, ~1 s each")
        .constant("--no-python", o.python, false, "skip the Python side");
    return options.parse(argc, argv);
}

aio::Coroutine<int> ready() { co_return 1; }

aio::Coroutine<int> sleep0() {
    co_await aio::sleep(0);
    co_return 1;
}

enum class Program { ready, sleep0, plain_sleep0, timeout_ready };

aio::Coroutine<long> calls(Program program, long n) {
    long sum = 0;
    for (long i = 0; i < n; ++i) {
        int v = 0;
        if (program == Program::ready) {
            v = co_await aio::wait_for(ready(), 10.0);
        } else if (program == Program::sleep0) {
            v = co_await aio::wait_for(sleep0(), 10.0);
        } else if (program == Program::timeout_ready) {
            v = co_await aio::timeout(10.0, ready());
        } else {
            v = co_await sleep0();
        }
        sum += v;
    }
    co_return sum;
}

struct Figure {
    double ns;      // wall clock, per call
    double cpu_ns;  // CPU time, the same
};

Figure run(Program program, long n) {
    const double cpu0 = bench::cpu_seconds(), t0 = bench::now();
    long sum = aio::run(calls(program, n));
    const double seconds = bench::seconds_since(t0), cpu = bench::cpu_seconds() - cpu0;
    if (sum != n) {
        std::fprintf(stderr, "wait_for: %ld calls returned %ld, expected %ld\n", n, sum, n);
        std::exit(1);
    }
    return {seconds * 1e9 / double(n), cpu * 1e9 / double(n)};
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;

    struct Workload {
        const char* name;
        Program program;
    };
    const Workload workloads[] = {
        {"ready", Program::ready},
        {"sleep0", Program::sleep0},
        {"plain_sleep0", Program::plain_sleep0},
        {"timeout_ready", Program::timeout_ready}};
    struct Figures {
        double ns = 0, cpu_ns = 0;
        std::optional<double> py_ns, py_cpu_ns;
    } fig[std::size(workloads)];

    for (std::size_t i = 0; i < std::size(workloads); ++i) {
        const Workload& w = workloads[i];
        std::vector<double> ns, cpu;
        for (int r = 1; r <= o.runs; ++r) {
            bench::progress("ours: %s, run %d/%d (%ld calls)...", w.name, r, o.runs, o.calls);
            Figure f = run(w.program, o.calls);
            ns.push_back(f.ns);
            cpu.push_back(f.cpu_ns);
            bench::progress(" %.1f ns per call (cpu %.1f ns)\n", f.ns, f.cpu_ns);
        }
        fig[i].ns = bench::median(ns);
        fig[i].cpu_ns = bench::median(cpu);
        bench::print_result(w.name, "ours", fig[i].ns, "ns_per_call", 1);
        bench::print_result(std::string(w.name) + "_cpu", "ours", fig[i].cpu_ns, "ns_per_call", 1);
    }

    if (o.python) {
        auto rs = bench::run_python(__FILE__, {"--calls", std::to_string(o.calls), "--runs",
                                               std::to_string(o.python_runs)});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t i = 0; i < std::size(workloads); ++i) {
            fig[i].py_ns = bench::find_result(rs, workloads[i].name);
            fig[i].py_cpu_ns = bench::find_result(rs, std::string(workloads[i].name) + "_cpu");
            if (!rs.empty() && !fig[i].py_ns)
                bench::progress("python3 asyncio: the script printed no %s figure\n", workloads[i].name);
        }
    }

    std::printf("\nwait_for with a 10 s timeout that never passes, %ld calls; ours: median of %d runs, python: median of %d\n",
                o.calls, o.runs, o.python_runs);
    bench::Table table({{"workload", 22}, {"ours", 10}, {"python-asyncio", 16}, {"python / ours", 14}});
    for (std::size_t i = 0; i < std::size(workloads); ++i) {
        const Figures& f = fig[i];
        table.row({std::string(workloads[i].name) + " (ns/call)", bench::fmt(f.ns, "%.1f"), bench::fmt(f.py_ns, "%.1f"),
                   bench::ratio(f.py_ns, f.ns)});
        table.row({"  in CPU time", bench::fmt(f.cpu_ns, "%.1f"), bench::fmt(f.py_cpu_ns, "%.1f"),
                   bench::ratio(f.py_cpu_ns, f.cpu_ns)});
    }
    table.print();
    std::printf("  what wait_for adds to an await that waits: %.1f ns (sleep0 - plain_sleep0)\n", fig[1].ns - fig[2].ns);
    return 0;
}
