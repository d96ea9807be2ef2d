// Stage 4 benchmark: what the selector costs a loop that has no I/O to do.
//
// Measures: the workloads of bench_call_soon (stage 2) and bench_switch (stage 3), side by
//           side on stage 2's EventLoop and on SelectorEventLoop over each selector:
//   call_soon        N call_soon(cb), then run_forever: ns per callback
//   call_soon_chain  each callback schedules the next: ns per callback (one pass each)
//   ping_pong        two tasks hand control back and forth through futures: ns per switch
//   sleep0           one task awaiting sleep(0) N times: ns per iteration
// Only call_soon_chain and sleep0 run one callback per pass, where the selector's fairness
// poll (SelectorEventLoop::select, once per kCallbacksPerPoll callbacks) shows the most.
// Python:   bench_loops.py beside this file runs the same four on asyncio's default loop
//           (a selector loop too), for scale.
// Target:   the selector loop within 1.5x of stage 2's loop on each.
//
// Output: one `RESULT name=<workload> variant=<loop> value=<ns> unit=...` line per figure,
// then a table. Progress goes to stderr.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"

namespace {

namespace bench = aio::bench;

constexpr double kTargetRatio = 1.5;

using LoopFactory = std::function<std::unique_ptr<aio::EventLoop>()>;

struct Options {
    long count = 1'000'000;
    long python_count = 200'000;
    int runs = 5;
    bool python = true;
    std::string selectors = "all";
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    char target[80];
    std::snprintf(target, sizeof target, "Target: the selector loop within %.1fx of stage 2's loop on each workload.",
                  kTargetRatio);
    std::vector<std::string> selectors{"all"};
    for (const std::string& kind : aio::selector_names()) selectors.push_back(kind);
    aio::OptionParser options(
        "What the selector costs a loop with no I/O to do: four workloads, in ns (median of R\n"
        "runs), on stage 2's EventLoop and on SelectorEventLoop over each selector:\n"
        "  call_soon        N call_soon(cb), then run_forever (ns per callback)\n"
        "  call_soon_chain  each callback schedules the next, N in all (ns per callback)\n"
        "  ping_pong        two tasks hand control back and forth through futures, N round\n"
        "                   trips (ns per switch)\n"
        "  sleep0           one task awaiting sleep(0) N times (ns per iteration)\n"
        "Then, if python3 is on PATH, bench_loops.py runs the same on asyncio, for scale.\n" +
        std::string(target));
    options.integer("--count", o.count, 1L, 1'000'000'000L, "N", "callbacks, round trips or sleeps per run")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of each; the median is reported")
        .choice("--selector", o.selectors, selectors, "only this selector (default: all of them)")
        .integer("--python-count", o.python_count, 1L, 1'000'000'000L, "N", "the Python side's N (it is ~40x slower)")
        .constant("--no-python", o.python, false, "skip the Python side");
    return options.parse(argc, argv);
}

// ---- the workloads: each returns ns per unit ----------------------------------------------

struct Counter {
    aio::EventLoop* loop;
    long remaining;
};

double run_call_soon(const LoopFactory& make_loop, long n) {
    auto loop = make_loop();
    Counter c{loop.get(), n};
    const double t0 = bench::now();
    for (long i = 0; i < n; ++i)
        loop->call_soon([&c] {
            if (--c.remaining == 0) c.loop->stop();
        });
    loop->run_forever();
    return bench::seconds_since(t0) * 1e9 / double(n);
}

struct ChainLink {
    Counter* c;
    void operator()() const {
        if (--c->remaining == 0)
            c->loop->stop();
        else
            c->loop->call_soon(*this);
    }
};

double run_call_soon_chain(const LoopFactory& make_loop, long n) {
    auto loop = make_loop();
    Counter c{loop.get(), n};
    const double t0 = bench::now();
    loop->call_soon(ChainLink{&c});
    loop->run_forever();
    return bench::seconds_since(t0) * 1e9 / double(n);
}

struct PingPong {
    aio::Ref<aio::Future<>> inbox[2];
    long switches = 0;
};

aio::Coroutine<> player(PingPong& s, int me, long rounds) {
    const int other = 1 - me;
    for (long i = 0; i < rounds; ++i) {
        aio::Ref<aio::Future<>> mine = aio::create_future();
        s.inbox[me] = mine;
        if (auto theirs = std::exchange(s.inbox[other], nullptr)) theirs->set_result();
        co_await mine;
        ++s.switches;
    }
    if (auto theirs = std::exchange(s.inbox[other], nullptr)) theirs->set_result();
}

aio::Coroutine<double> ping_pong_main(long rounds, PingPong& s) {
    const double t0 = bench::now();
    auto b = aio::create_task(player(s, 1, rounds));
    auto a = aio::create_task(player(s, 0, rounds));
    co_await a;
    co_await b;
    co_return bench::seconds_since(t0);
}

double run_ping_pong(const LoopFactory& make_loop, long rounds) {
    PingPong s;
    double seconds = aio::run(ping_pong_main(rounds, s), make_loop);
    if (s.switches != 2 * rounds) {
        std::fprintf(stderr, "ping_pong: counted %ld switches, expected %ld\n", s.switches, 2 * rounds);
        std::exit(1);
    }
    return seconds * 1e9 / double(s.switches);
}

aio::Coroutine<double> sleep0_main(long n) {
    const double t0 = bench::now();
    for (long i = 0; i < n; ++i) co_await aio::sleep(0);
    co_return bench::seconds_since(t0);
}

double run_sleep0(const LoopFactory& make_loop, long n) { return aio::run(sleep0_main(n), make_loop) * 1e9 / double(n); }

struct Workload {
    const char* name;
    const char* unit;
    double (*run)(const LoopFactory&, long);
};
const Workload kWorkloads[] = {{"call_soon", "callback", run_call_soon},
                               {"call_soon_chain", "callback", run_call_soon_chain},
                               {"ping_pong", "switch", run_ping_pong},
                               {"sleep0", "iteration", run_sleep0}};

struct Loop {
    std::string name;  // the RESULT variant: "eventloop", "selector-epoll", ...
    LoopFactory make;
};

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;

    std::vector<Loop> loops{{"eventloop", [] { return std::make_unique<aio::EventLoop>(); }}};
    for (const std::string& kind : aio::selector_names())
        if (o.selectors == "all" || o.selectors == kind)
            loops.push_back({"selector-" + kind, [kind] {
                                 return std::unique_ptr<aio::EventLoop>(new aio::SelectorEventLoop(aio::make_selector(kind)));
                             }});

    // ns[w][l]: workload w on loop l. The loops take turns run by run, after a warm-up run
    // that is not counted: whatever drifts during the bench (the allocator's pools filling,
    // another program taking the CPU) then touches every loop alike.
    std::vector<std::vector<double>> ns(std::size(kWorkloads), std::vector<double>(loops.size()));
    for (std::size_t w = 0; w < std::size(kWorkloads); ++w) {
        const Workload& wl = kWorkloads[w];
        bench::progress("%s: warm-up...", wl.name);
        bench::progress(" %.1f ns per %s\n", wl.run(loops[0].make, o.count), wl.unit);
        std::vector<std::vector<double>> runs(loops.size());
        for (int r = 1; r <= o.runs; ++r) {
            for (std::size_t l = 0; l < loops.size(); ++l) {
                bench::progress("%s on %s, run %d/%d...", wl.name, loops[l].name.c_str(), r, o.runs);
                runs[l].push_back(wl.run(loops[l].make, o.count));
                bench::progress(" %.1f ns per %s\n", runs[l].back(), wl.unit);
            }
        }
        for (std::size_t l = 0; l < loops.size(); ++l) {
            ns[w][l] = bench::median(runs[l]);
            bench::print_result(wl.name, loops[l].name.c_str(), ns[w][l], (std::string("ns_per_") + wl.unit).c_str(), 1);
        }
    }

    std::vector<std::optional<double>> python(std::size(kWorkloads));
    if (o.python) {
        auto rs = bench::run_python(__FILE__, {"--count", std::to_string(o.python_count), "--runs", "1"});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t w = 0; w < std::size(kWorkloads); ++w) python[w] = bench::find_result(rs, kWorkloads[w].name);
    }

    std::printf("\nns per unit, median of %d runs of %ld; python: one run of %ld, on its default loop\n", o.runs,
                o.count, o.python_count);
    std::vector<bench::Table::Column> columns{{"workload", 26}};
    for (const Loop& l : loops) columns.push_back({l.name, 10});
    columns.push_back({"worst / eventloop", 18});
    columns.push_back({"python-asyncio", 15});
    bench::Table table(columns);
    bool all_met = true;
    for (std::size_t w = 0; w < std::size(kWorkloads); ++w) {
        std::vector<std::string> row{std::string(kWorkloads[w].name) + " (ns/" + kWorkloads[w].unit + ")"};
        double worst = 0;
        for (std::size_t l = 0; l < loops.size(); ++l) {
            row.push_back(bench::fmt(ns[w][l], "%.1f"));
            if (l > 0) worst = std::max(worst, ns[w][l]);
        }
        const double ratio = worst / ns[w][0];
        all_met = all_met && ratio <= kTargetRatio;
        row.push_back(loops.size() > 1 ? bench::fmt(ratio, "%.2fx") : "n/a");
        row.push_back(bench::fmt(python[w], "%.1f"));
        table.row(row);
    }
    table.print();
    std::printf("  target: every selector loop within %.1fx of stage 2's EventLoop -> %s\n", kTargetRatio,
                loops.size() > 1 ? bench::verdict(all_met) : "n/a");
    return 0;
}
