// Stage 4 benchmark: why epoll exists when poll works. The cost of one wakeup when N
// connections are registered and 1% of them are active.
//
// Measures: N sockets in this process registered for reading (AF_UNIX datagram sockets,
//           see Receivers), for N = 100, 500, 1,000 and 10,000 by default. Each round writes a byte
//           into N/100 of them (spread over the whole range, a different set each round),
//           then asks the selector which are ready, then reads the bytes back. Only the ask is
//           timed:
//   select() call   ns per call of BaseSelector::select(0), and the same per ready event;
//                   on select(2), poll(2) and epoll(7). select(2) cannot watch an fd at or
//                   above FD_SETSIZE (1024), so it has no figure where N fds do not fit below.
//   loop pass       the same rounds through SelectorEventLoop: add_reader on all N, and
//                   each round one pass of the loop (select, then the N/100 readers, each
//                   recv()ing its byte): the loop's whole cost per wakeup, reads included.
//           select and poll hand the kernel the whole interest list on every call and the
//           kernel looks at every fd: O(N) per wakeup. epoll keeps the list in the kernel
//           and hands back only what is ready: O(ready).
// Python:   bench_selectors.py beside this file times the same select() calls with Python's
//           selectors module (SelectSelector, PollSelector, EpollSelector).
// Target:   at 10,000 connections, epoll's select() at least 10x cheaper than poll's.
//
// Output: one `RESULT name=<figure> variant=<selector> value=<n> unit=...` line per figure,
// then a table. Progress goes to stderr.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage4_sockets/bench_process.hpp"
#include "stage4_sockets/selector_events.hpp"

namespace {

namespace bench = aio::bench;

constexpr double kTargetRatio = 10;  // poll / epoll at the largest N
constexpr int kSpareFds = 64;

struct Options {
    std::vector<std::string> given;  // --connections, as given
    std::vector<int> sizes;          // N values, ascending
    double active_percent = 1;
    long work = 2'000'000;  // rounds x N per figure: the same work at every N
    int runs = 3;
    bool python = true;
};

std::optional<int> parse_args(int argc, char** argv, Options& o) {
    char target[120];
    std::snprintf(target, sizeof target,
                  "Target: at the largest N, epoll's select() at least %.0fx cheaper than poll's.", kTargetRatio);
    aio::OptionParser options(
        "The cost of one wakeup of the loop when N connections are registered and a few are\n"
        "active: N sockets (AF_UNIX datagram) registered for reading; each round makes\n"
        "P% of them readable (a different set each round), asks the selector which are ready\n"
        "(timed), and reads them. On select(2) (only while every fd is below FD_SETSIZE),\n"
        "poll(2) and epoll(7): ns per select() call and per ready event; then the same rounds\n"
        "through SelectorEventLoop (one pass each, the readers' recv() included).\n"
        "Then, if python3 is on PATH, bench_selectors.py times Python's selectors module.\n" +
        std::string(target));
    options.repeated("--connections", o.given, "N", "N registered (default: 100, 500, 1000 and 10000)")
        .number("--active", o.active_percent, 0.01, 100, "P", "percent of them readable per round")
        .integer("--work", o.work, 1000L, 1'000'000'000L, "W", "rounds x N per figure (rounds = W / N, at least 20)")
        .integer("--runs", o.runs, 1, 100, "R", "runs of each; the median is reported")
        .constant("--no-python", o.python, false, "skip the Python side");
    if (auto status = options.parse(argc, argv)) return status;
    for (const std::string& s : o.given) {
        char* end = nullptr;
        const long n = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || n < 1 || n > 500'000)
            return options.usage_error("--connections wants a whole number from 1 to 500000, got '" + s + "'");
        o.sizes.push_back(int(n));
    }
    if (o.sizes.empty()) o.sizes = {100, 500, 1000, 10'000};
    std::sort(o.sizes.begin(), o.sizes.end());
    o.sizes.erase(std::unique(o.sizes.begin(), o.sizes.end()), o.sizes.end());
    return std::nullopt;
}

// ---- the fds -----------------------------------------------------------------------------

// N sockets to watch, and one to make them readable. Each watched socket is an AF_UNIX
// datagram socket bound to an address of its own (in Linux's abstract namespace, so no file
// is left behind), and one unbound datagram socket sends to any of them: N + 1 fds for N
// watched, where socketpairs would take 2N (20,000 for 10,000, past many systems' limit).
struct Receivers {
    std::vector<aio::Socket> reading;
    std::vector<sockaddr_un> addresses;
    aio::Socket sender{AF_UNIX, SOCK_DGRAM};
    explicit Receivers(int n) {
        for (int i = 0; i < n; ++i) {
            aio::Socket s(AF_UNIX, SOCK_DGRAM);
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            // sun_path[0] = '\0': the abstract namespace.
            const int len = std::snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "aio-bench-selectors-%d-%d",
                                          int(::getpid()), i);
            if (::bind(s.fileno(), reinterpret_cast<sockaddr*>(&a), socklen_t(sizeof(sa_family_t) + 1 + len)) != 0)
                aio::throw_os_error(errno, "bind an AF_UNIX datagram socket");
            reading.push_back(std::move(s));
            addresses.push_back(a);
        }
    }
    int size() const { return int(reading.size()); }
    int highest_fd() const {
        int m = -1;
        for (auto& s : reading) m = std::max(m, s.fileno());
        return m;
    }
};

// Round r's active receivers: `active` indices spread evenly over [0, n), shifted each round,
// so that every fd takes its turn and none is ever active twice in a row.
std::vector<int> active_set(int n, int active, long round) {
    std::vector<int> out;
    const int stride = std::max(1, n / active);
    for (int k = 0; k < active; ++k) out.push_back(int((long(k) * stride + round % stride) % n));
    return out;
}

void make_readable(Receivers& p, const std::vector<int>& which) {
    const char byte = 1;
    for (int i : which) {
        const sockaddr_un& a = p.addresses[std::size_t(i)];
        const socklen_t len = socklen_t(sizeof(sa_family_t) + 1 + std::strlen(a.sun_path + 1));
        if (::sendto(p.sender.fileno(), &byte, 1, 0, reinterpret_cast<const sockaddr*>(&a), len) != 1)
            aio::throw_os_error(errno, "sendto an AF_UNIX datagram socket");
    }
}

void drain(Receivers& p, const std::vector<int>& which) {
    char byte;
    for (int i : which) (void)::recv(p.reading[std::size_t(i)].fileno(), &byte, 1, 0);
}

// ---- the two measurements ------------------------------------------------------------------

struct Cost {
    double ns_per_call = 0;
    double ns_per_event = 0;
};

// [docs:time_select]
// Time only the selector's answer: the writes before it and the reads after are the same
// work whichever selector asks.
Cost time_select(aio::BaseSelector& selector, Receivers& pairs, int active, long rounds) {
    double seconds = 0;
    long events = 0;
    for (long r = 0; r < rounds; ++r) {
        const std::vector<int> which = active_set(pairs.size(), active, r);
        make_readable(pairs, which);
        const double t0 = bench::now();
        const std::vector<aio::SelectorEvent>& ready = selector.select(0);
        seconds += bench::seconds_since(t0);
        if (ready.size() != which.size())
            throw std::runtime_error(std::string(selector.name()) + " reported " + std::to_string(ready.size()) +
                                     " ready fds, not " + std::to_string(which.size()));
        events += long(ready.size());
        drain(pairs, which);
    }
    return Cost{seconds * 1e9 / double(rounds), seconds * 1e9 / double(events)};
}
// [/docs:time_select]

std::optional<Cost> measure_select(const std::string& kind, Receivers& pairs, int active, long rounds) {
    std::unique_ptr<aio::BaseSelector> selector = aio::make_selector(kind);
    try {
        for (auto& s : pairs.reading) selector->register_fd(s.fileno(), aio::EVENT_READ);
    } catch (const std::invalid_argument&) {
        return std::nullopt;  // select(2): an fd at or above FD_SETSIZE
    }
    return time_select(*selector, pairs, active, rounds);
}

// The same rounds through the loop: one pass each (stop() before run_forever() runs exactly
// one), in which the selector answers and the N/100 readers each recv() their byte.
std::optional<Cost> measure_loop(const std::string& kind, Receivers& pairs, int active, long rounds) {
    aio::SelectorEventLoop loop(aio::make_selector(kind));
    long events = 0;
    try {
        for (auto& s : pairs.reading) {
            const int fd = s.fileno();
            loop.add_reader(fd, [fd, &events] {
                char byte;
                (void)::recv(fd, &byte, 1, 0);
                ++events;
            });
        }
    } catch (const std::invalid_argument&) {
        loop.close();
        return std::nullopt;
    }
    double seconds = 0;
    for (long r = 0; r < rounds; ++r) {
        make_readable(pairs, active_set(pairs.size(), active, r));
        const double t0 = bench::now();
        loop.stop();
        loop.run_forever();
        seconds += bench::seconds_since(t0);
    }
    for (auto& s : pairs.reading) loop.remove_reader(s.fileno());
    loop.close();
    if (events != long(active) * rounds)
        throw std::runtime_error("the loop ran " + std::to_string(events) + " readers, not " +
                                 std::to_string(long(active) * rounds));
    return Cost{seconds * 1e9 / double(rounds), seconds * 1e9 / double(events)};
}

std::optional<double> median_of(const std::vector<double>& v) {
    if (v.empty()) return std::nullopt;
    return bench::median(v);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;
    std::vector<int> sizes = o.sizes;

    // One fd per watched socket, in this one process: raise the limit, or scale down and say so.
    std::string why;
    const long limit = bench::raise_fd_limit(long(sizes.back()) + kSpareFds, &why);
    const int fit = int(limit - kSpareFds);
    if (sizes.back() > fit) {
        std::printf("NOTE: %s; sizes above %d connections are scaled down to %d.\n", why.c_str(), fit, fit);
        for (int& n : sizes) n = std::min(n, fit);
        sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    }

    const std::vector<std::string> kinds = aio::selector_names();
    // cost[n][kind] and loop_cost[n][kind], median over the runs
    std::map<int, std::map<std::string, std::optional<Cost>>> cost, loop_cost;
    for (int n : sizes) {
        const int active = std::max(1, int(double(n) * o.active_percent / 100.0 + 0.5));
        const long rounds = std::max(20L, o.work / n);
        Receivers pairs(n);
        std::map<std::string, std::vector<double>> call, event, lcall, levent;
        for (int r = 1; r <= o.runs; ++r)
            for (const std::string& kind : kinds) {
                bench::progress("%d connections, %d active, %s, run %d/%d...", n, active, kind.c_str(), r, o.runs);
                auto c = measure_select(kind, pairs, active, rounds);
                if (!c) {
                    bench::progress(" n/a: fd %d is above FD_SETSIZE (%d)\n", pairs.highest_fd(), FD_SETSIZE - 1);
                    continue;
                }
                auto l = measure_loop(kind, pairs, active, rounds);
                call[kind].push_back(c->ns_per_call);
                event[kind].push_back(c->ns_per_event);
                if (l) {
                    lcall[kind].push_back(l->ns_per_call);
                    levent[kind].push_back(l->ns_per_event);
                }
                bench::progress(" %.0f ns per select(), %.0f ns per loop pass\n", c->ns_per_call,
                                l ? l->ns_per_call : 0.0);
            }
        for (const std::string& kind : kinds) {
            if (call[kind].empty()) continue;
            cost[n][kind] = Cost{*median_of(call[kind]), *median_of(event[kind])};
            const std::string name = std::to_string(n) + "conns_" + std::to_string(active) + "active";
            bench::print_result("select_call_" + name, kind.c_str(), cost[n][kind]->ns_per_call, "ns_per_call", 0);
            bench::print_result("select_event_" + name, kind.c_str(), cost[n][kind]->ns_per_event, "ns_per_event", 0);
            if (!lcall[kind].empty()) {
                loop_cost[n][kind] = Cost{*median_of(lcall[kind]), *median_of(levent[kind])};
                bench::print_result("loop_pass_" + name, kind.c_str(), loop_cost[n][kind]->ns_per_call, "ns_per_pass", 0);
            }
        }
    }

    // Python's selectors module, the same rounds (select() calls only).
    std::map<std::pair<int, std::string>, double> python;
    if (o.python) {
        std::vector<std::string> args{"--active", std::to_string(o.active_percent), "--work", std::to_string(o.work)};
        for (int n : sizes) {
            args.push_back("--connections");
            args.push_back(std::to_string(n));
        }
        for (const bench::Result& r : bench::run_python(__FILE__, args)) {
            std::printf("%s\n", r.line.c_str());
            // name=select_call_<n>conns_<a>active variant=python-<kind>
            if (r.name.rfind("select_call_", 0) != 0 || r.variant.rfind("python-", 0) != 0) continue;
            python[{std::atoi(r.name.c_str() + 12), r.variant.substr(7)}] = r.value;
        }
    }

    auto ratio = [](const std::optional<Cost>& a, const std::optional<Cost>& b) -> std::optional<double> {
        if (!a || !b || !(b->ns_per_call > 0)) return std::nullopt;
        return a->ns_per_call / b->ns_per_call;
    };
    std::printf("\nns per select() call, and per ready event, with N registered and %g%% of them readable\n"
                "(median of %d runs); Python's selectors module beside it\n",
                o.active_percent, o.runs);
    std::vector<bench::Table::Column> columns{{"N", 6}};
    for (const std::string& k : kinds) columns.push_back({k + " (per event)", 18});
    columns.push_back({"poll/epoll", 11});
    for (const std::string& k : kinds) columns.push_back({"python " + k, 9});
    bench::Table table(columns);
    std::optional<double> last_ratio;
    for (int n : sizes) {
        std::vector<std::string> row{std::to_string(n)};
        for (const std::string& k : kinds) {
            auto& c = cost[n][k];
            row.push_back(c ? bench::fmt(c->ns_per_call, "%.0f") + " (" + bench::fmt(c->ns_per_event, "%.0f") + ")"
                            : "n/a");
        }
        last_ratio = ratio(cost[n]["poll"], cost[n]["epoll"]);
        row.push_back(bench::fmt(last_ratio, "%.1fx"));
        for (const std::string& k : kinds) {
            auto it = python.find({n, k});
            row.push_back(it == python.end() ? "n/a" : bench::fmt(it->second, "%.0f"));
        }
        table.row(row);
    }
    table.print();

    std::printf("\nns per pass of SelectorEventLoop: the select() above, then the ready fds' readers (a recv() each)\n");
    std::vector<bench::Table::Column> loop_columns{{"N", 6}};
    for (const std::string& k : kinds) loop_columns.push_back({"loop " + k, 12});
    loop_columns.push_back({"poll/epoll", 11});
    bench::Table loop_table(loop_columns);
    for (int n : sizes) {
        std::vector<std::string> row{std::to_string(n)};
        for (const std::string& k : kinds) {
            auto& l = loop_cost[n][k];
            row.push_back(l ? bench::fmt(l->ns_per_call, "%.0f") : "n/a");
        }
        row.push_back(bench::fmt(ratio(loop_cost[n]["poll"], loop_cost[n]["epoll"]), "%.1fx"));
        loop_table.row(row);
    }
    loop_table.print();
    std::printf("  (select: n/a where an fd is at or above FD_SETSIZE, %d)\n", FD_SETSIZE);
    std::printf("  target: at %d connections, epoll's select() at least %.0fx cheaper than poll's: %s -> %s\n",
                sizes.back(), kTargetRatio, bench::fmt(last_ratio, "%.1fx").c_str(),
                last_ratio ? bench::verdict(*last_ratio >= kTargetRatio) : "n/a");
    return 0;
}
