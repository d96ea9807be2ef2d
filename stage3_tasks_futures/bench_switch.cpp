// Stage 3 benchmark: what switching from one task to another costs, in ns.
//
// Measures: two programs, the same as bench_switch.py runs on CPython's asyncio:
//   ping_pong  two tasks hand control back and forth through futures, N round trips. Each
//              side, in turn, creates a fresh Future for itself (a future completes only
//              once), completes the other side's, and awaits its own. A switch is one task
//              suspending and the other resuming (through the loop's ready queue); a round
//              trip is two switches. The figure is the wall time over the switches counted.
//   sleep0     one task running `co_await sleep(0)` N times: each iteration suspends the
//              task, lets the loop run one pass and resumes it. ns per iteration.
// Target:   at most 100 ns per switch (CPython: about 2,000 to 3,000 ns).
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure, then a table
// with CPython's figures and the ratios. Progress goes to stderr.
#include <cstdio>
#include <cstdlib>
#include <iterator>
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

constexpr double kTargetNsPerSwitch = 100.0;

struct Options {
    long rounds = 1'000'000;
    long sleeps = 1'000'000;
    int runs = 5;
    int python_runs = 1;
    bool python = true;
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    char target[48];
    std::snprintf(target, sizeof target, "Target: at most %.0f ns per switch.", kTargetNsPerSwitch);
    aio::OptionParser options(
        "The cost of a task switch, in ns, for two programs (median of R runs):\n"
        "  ping_pong  two tasks hand control back and forth through futures for N round trips:\n"
        "             each side creates a fresh Future for itself, completes the other side's,\n"
        "             and awaits its own. A switch = one task suspends and the other resumes;\n"
        "             a round trip = 2 switches. Reported: ns per switch.\n"
        "  sleep0     one task running `co_await sleep(0)` N times. Reported: ns per iteration\n"
        "             (each one a suspension, a pass of the loop, a resumption).\n"
        "Then, if python3 is on PATH, runs bench_switch.py (beside this program's source), the\n"
        "same two programs on CPython's asyncio, and prints both side by side with the ratio.\n" +
        std::string(target));
    options.integer("--rounds", o.rounds, 1L, 1'000'000'000L, "N", "ping-pong round trips")
        .integer("--sleeps", o.sleeps, 1L, 1'000'000'000L, "N", "sleep(0) iterations")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of ours; the median is reported")
        .integer("--python-runs", o.python_runs, 1, 1000, "R", "runs of the Python side, ~10 s each")
        .constant("--no-python", o.python, false, "skip the Python side");
    return options.parse(argc, argv);
}

// ---- ping_pong ----------------------------------------------------------------------------

struct PingPong {
    aio::Ref<aio::Future<>> inbox[2];  // the future each side waits on, once it has made it
    long switches = 0;                 // resumptions counted: one per switch
};

// One side. Completing the other side's future schedules that task (call_soon); awaiting
// our own suspends us, and the loop runs the other side: one switch.
aio::Coroutine<> player(PingPong& s, int me, long rounds) {
    const int other = 1 - me;
    for (long i = 0; i < rounds; ++i) {
        aio::Ref<aio::Future<>> mine = aio::create_future();
        s.inbox[me] = mine;
        if (auto theirs = std::exchange(s.inbox[other], nullptr)) theirs->set_result();
        co_await mine;
        ++s.switches;
    }
    // The other side still waits for its last turn.
    if (auto theirs = std::exchange(s.inbox[other], nullptr)) theirs->set_result();
}

aio::Coroutine<> ping_pong_main(long rounds, PingPong& s, double& seconds, double& cpu) {
    const double cpu0 = bench::cpu_seconds(), t0 = bench::now();
    auto b = aio::create_task(player(s, 1, rounds));  // b runs first and waits for a
    auto a = aio::create_task(player(s, 0, rounds));
    co_await a;
    co_await b;
    seconds = bench::seconds_since(t0);
    cpu = bench::cpu_seconds() - cpu0;
}

// ---- sleep0 -------------------------------------------------------------------------------

aio::Coroutine<> sleep0_main(long n, double& seconds, double& cpu) {
    const double cpu0 = bench::cpu_seconds(), t0 = bench::now();
    for (long i = 0; i < n; ++i) co_await aio::sleep(0);
    seconds = bench::seconds_since(t0);
    cpu = bench::cpu_seconds() - cpu0;
}

struct Figure {
    double ns;      // wall clock, per switch or iteration
    double cpu_ns;  // CPU time, the same
};

Figure run_ping_pong(long rounds) {
    PingPong s;
    double seconds = 0, cpu = 0;
    aio::run(ping_pong_main(rounds, s, seconds, cpu));
    if (s.switches != 2 * rounds) {
        std::fprintf(stderr, "ping_pong: counted %ld switches, expected %ld\n", s.switches, 2 * rounds);
        std::exit(1);
    }
    return {seconds * 1e9 / double(s.switches), cpu * 1e9 / double(s.switches)};
}

Figure run_sleep0(long n) {
    double seconds = 0, cpu = 0;
    aio::run(sleep0_main(n, seconds, cpu));
    return {seconds * 1e9 / double(n), cpu * 1e9 / double(n)};
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;

    struct Workload {
        const char* name;
        const char* unit;  // the figure is ns per this
        const char* what;  // what n counts
        long n;
        Figure (*run)(long);
    };
    const Workload workloads[] = {{"ping_pong", "switch", "round trips", o.rounds, run_ping_pong},
                                  {"sleep0", "iteration", "sleeps", o.sleeps, run_sleep0}};
    struct Figures {
        double ns = 0, cpu_ns = 0;
        std::optional<double> py_ns, py_cpu_ns;
    } fig[std::size(workloads)];

    for (std::size_t i = 0; i < std::size(workloads); ++i) {
        const Workload& w = workloads[i];
        std::vector<double> ns, cpu;
        for (int r = 1; r <= o.runs; ++r) {
            bench::progress("ours: %s, run %d/%d (%ld %s)...", w.name, r, o.runs, w.n, w.what);
            Figure f = w.run(w.n);
            ns.push_back(f.ns);
            cpu.push_back(f.cpu_ns);
            bench::progress(" %.1f ns per %s (cpu %.1f ns)\n", f.ns, w.unit, f.cpu_ns);
        }
        fig[i].ns = bench::median(ns);
        fig[i].cpu_ns = bench::median(cpu);
        const std::string unit = std::string("ns_per_") + w.unit;
        bench::print_result(w.name, "ours", fig[i].ns, unit.c_str(), 1);
        bench::print_result(std::string(w.name) + "_cpu", "ours", fig[i].cpu_ns, unit.c_str(), 1);
    }

    if (o.python) {
        auto rs = bench::run_python(__FILE__, {"--rounds", std::to_string(o.rounds), "--sleeps",
                                               std::to_string(o.sleeps), "--runs", std::to_string(o.python_runs)});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t i = 0; i < std::size(workloads); ++i) {
            fig[i].py_ns = bench::find_result(rs, workloads[i].name);
            fig[i].py_cpu_ns = bench::find_result(rs, std::string(workloads[i].name) + "_cpu");
            if (!rs.empty() && !fig[i].py_ns)
                bench::progress("python3 asyncio: the script printed no %s figure\n", workloads[i].name);
        }
    }

    std::printf(
        "\ntask switches: ping_pong = %ld round trips (2 switches each), sleep0 = %ld sleep(0)s;\n"
        "ours: median of %d runs, python: median of %d\n",
        o.rounds, o.sleeps, o.runs, o.python_runs);
    bench::Table table({{"workload", 22}, {"ours", 10}, {"python-asyncio", 16}, {"python / ours", 14}});
    for (std::size_t i = 0; i < std::size(workloads); ++i) {
        const Figures& f = fig[i];
        table.row({std::string(workloads[i].name) + " (ns/" + workloads[i].unit + ")", bench::fmt(f.ns, "%.1f"),
                   bench::fmt(f.py_ns, "%.1f"), bench::ratio(f.py_ns, f.ns)});
        table.row({"  in CPU time", bench::fmt(f.cpu_ns, "%.1f"), bench::fmt(f.py_cpu_ns, "%.1f"),
                   bench::ratio(f.py_cpu_ns, f.cpu_ns)});
    }
    table.print();
    const Figures& pp = fig[0];
    std::printf("  target: at most %.0f ns per switch (ping_pong): %.1f ns -> %s%s\n", kTargetNsPerSwitch, pp.ns,
                bench::verdict(pp.ns <= kTargetNsPerSwitch),
                pp.ns > kTargetNsPerSwitch && pp.cpu_ns <= kTargetNsPerSwitch
                    ? " (in CPU time: PASS; the machine is busy)"
                    : "");
    return 0;
}
