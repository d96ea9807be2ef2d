// Stage 4 benchmark: an echo server under load from another process; ours beside asyncio's.
//
// Measures: messages per second through an echo server, a message being a `--size`-byte
//           request (64 by default) and its echo, each connection sending its next request
//           only once the echo of the last has come back (so 1 connection measures latency,
//           100 connections a server juggling 100 sockets). Four servers, each a process of
//           its own, pinned to one core, loaded by this program's client mode on another:
//   ours-protocol             create_server with an Echo protocol (data_received -> write)
//   ours-streams              start_server; each connection a task: readline, write, drain
//   python-asyncio-protocol   the same two in Python's asyncio (bench_echo.py beside this
//   python-asyncio-streams    file, stdlib only), on its default loop
//           The client is the same for all four: this program in client mode, on our loop,
//           one Protocol per connection, written to be cheap, so that the servers differ
//           and not their clients. Each figure is the median of R runs; the runs take turns
//           server by server, so that noise from other programs touches all four alike.
//           Beside messages per second: the server's CPU time per message (from
//           /proc/<pid>/stat), which a busy machine disturbs less than the wall clock.
// Targets:  at 100 connections, ours-streams >= 5x python-asyncio-streams, and
//           ours-protocol >= 2x python-asyncio-protocol.
//
// Output: one `RESULT name=<workload> variant=<server> value=<n> unit=...` line per figure,
// then a table. Progress goes to stderr.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/bench_echo_servers.hpp"
#include "stage4_sockets/bench_process.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage4_sockets/streams.hpp"

namespace {

namespace bench = aio::bench;
using aio::Coroutine;
using aio::Ref;

constexpr double kStreamsTarget = 5.0;   // ours-streams / python-asyncio-streams, at 100 connections
constexpr double kProtocolTarget = 2.0;  // ours-protocol / python-asyncio-protocol

struct Options {
    int connections = 100;
    double seconds = 1.5;
    double warmup = 0.3;
    long size = 64;
    int runs = 3;
    bool python = true;
    // The modes this program runs itself in (hidden from --help):
    std::string serve;  // "protocol" or "streams": be that server
    int client_port = 0;  // be the load generator, against 127.0.0.1:client_port
};

std::optional<int> parse_args(int argc, char** argv, Options& o) {
    char targets[160];
    std::snprintf(targets, sizeof targets,
                  "Targets, at the many-connection count: ours-streams >= %.0fx python-asyncio-streams,\n"
                  "ours-protocol >= %.0fx python-asyncio-protocol.",
                  kStreamsTarget, kProtocolTarget);
    aio::OptionParser options(
        "Messages per second through an echo server: a B-byte request and its echo, each\n"
        "connection sending the next only when the echo is back, over 1 connection and over C.\n"
        "Four servers, each in its own process pinned to one core (taskset), loaded by this\n"
        "program's client mode pinned to another:\n"
        "  ours-protocol            create_server with an Echo protocol\n"
        "  ours-streams             start_server: readline, write, drain\n"
        "  python-asyncio-protocol  the same on asyncio (bench_echo.py, if python3 is on PATH)\n"
        "  python-asyncio-streams\n"
        "Each figure is the median of R runs of S seconds (after a warm-up).\n" +
        std::string(targets));
    options.integer("--connections", o.connections, 1, 5000, "C", "the many-connection count")
        .number("--seconds", o.seconds, 0.1, 600, "S", "how long each figure is measured")
        .number("--warmup", o.warmup, 0, 60, "W", "seconds of load before measuring")
        .integer("--size", o.size, 2L, 65536L, "B", "bytes per message (the last is a newline)")
        .integer("--runs", o.runs, 1, 100, "R", "runs of each; the median is reported")
        .constant("--no-python", o.python, false, "skip asyncio's servers")
        .choice("--serve", o.serve, {"protocol", "streams"}, "(internal) be this server")
        .hidden()
        .integer("--client", o.client_port, 1, 65535, "PORT", "(internal) load 127.0.0.1:PORT")
        .hidden();
    return options.parse(argc, argv);
}

// ---- the servers (--serve) ------------------------------------------------------------------

// EchoProtocol and echo_lines: bench_echo_servers.hpp.

// Serves until killed (SIGTERM from the bench), after printing "PORT <n>" for the bench.
Coroutine<int> serve(std::string kind) {
    Ref<aio::Server> server;
    if (kind == "protocol") {
        auto factory = [] { return aio::make_ref<bench::EchoProtocol>(); };
        server = co_await aio::create_server(factory, "127.0.0.1", 0, 1024);
    } else {
        server = co_await aio::start_server(bench::echo_lines, "127.0.0.1", 0, aio::kDefaultStreamLimit, 1024);
    }
    std::printf("PORT %d\n", int(server->sockets()[0].getsockname().port()));
    std::fflush(stdout);
    // The bench stops us with SIGTERM: close the server, so serve_forever returns and run()
    // ends every connection and frees everything, as a real server would on its way out.
    aio::get_running_selector_loop().add_signal_handler(SIGTERM, [server] { server->close(); });
    co_await server->serve_forever();
    co_return 0;
}

// ---- the load generator (--client) ----------------------------------------------------------

// What every connection of the client shares: the count, and whether to count or stop.
struct Load {
    long measured = 0;   // echoes received while counting
    long total = 0;      // all echoes
    long in_flight = 0;  // messages sent whose echo is not back yet
    bool counting = false;
    bool stopping = false;
    Ref<aio::Future<>> drained = aio::create_future();  // stopping, and nothing in flight
};

// One connection of the client: sends a message, and the next each time the whole echo is
// back. Cheap on purpose (a protocol, no copy): the servers, not the clients, must differ.
class LoadClient final : public aio::Protocol {
public:
    LoadClient(const std::string& message, Load& load) : message_(message), load_(load) {}
    void connection_made(aio::Transport& transport) override { transport_ = &transport; }
    void data_received(std::string_view data) override {
        got_ += data.size();
        while (got_ >= message_.size()) {
            got_ -= message_.size();
            ++load_.total;
            --load_.in_flight;
            if (load_.counting) ++load_.measured;
            if (load_.stopping) {
                if (load_.in_flight == 0 && !load_.drained->done()) load_.drained->set_result();
                return;
            }
            send();
        }
    }
    void send() {
        ++load_.in_flight;
        transport_->write(message_);
    }

private:
    const std::string& message_;
    Load& load_;
    aio::Transport* transport_ = nullptr;
    std::size_t got_ = 0;
};

// Prints "MESSAGES <measured> SECONDS <s> CPU <s>": the client's own CPU time in the
// window says whether it, and not the server, was the bottleneck.
Coroutine<int> generate_load(Options o) {
    const std::string message = std::string(std::size_t(o.size - 1), 'x') + "\n";
    Load load;
    std::vector<Ref<aio::Transport>> transports;
    std::vector<Ref<LoadClient>> clients;
    for (int i = 0; i < o.connections; ++i) {
        Ref<LoadClient> client = aio::make_ref<LoadClient>(message, load);
        auto factory = [client] { return client; };
        auto connecting = aio::create_connection(factory, "127.0.0.1", o.client_port);
        auto made = co_await std::move(connecting);
        transports.push_back(made.first);
        clients.push_back(client);
    }
    for (auto& c : clients) c->send();
    co_await aio::sleep(o.warmup);
    load.counting = true;
    const double t0 = bench::now(), cpu0 = bench::cpu_seconds();
    co_await aio::sleep(o.seconds);
    load.counting = false;
    const double took = bench::seconds_since(t0), cpu = bench::cpu_seconds() - cpu0;
    load.stopping = true;
    std::printf("MESSAGES %ld SECONDS %.6f CPU %.6f TOTAL %ld\n", load.measured, took, cpu, load.total);
    std::fflush(stdout);
    // Let the last echoes come back, then close: the servers see a clean EOF, not a reset.
    if (load.in_flight > 0) co_await load.drained;
    for (auto& t : transports) t->close();
    co_await aio::sleep(0);
    co_return load.measured > 0 ? 0 : 1;
}

// ---- the bench --------------------------------------------------------------------------------

// A process's CPU time so far, in seconds, in user space and in the kernel (utime and
// stime of /proc/<pid>/stat); nullopt if unknown.
struct CpuTimes {
    double user = 0, system = 0;
};
std::optional<CpuTimes> process_cpu(pid_t pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (!f) return std::nullopt;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // The command name, field 2, is in parentheses and may hold spaces: count from after it.
    const char* p = std::strrchr(buf, ')');
    if (!p) return std::nullopt;
    unsigned long utime = 0, stime = 0;
    // Fields 3..13 skipped, then utime (14) and stime (15), in clock ticks.
    if (std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return std::nullopt;
    const double tick = double(::sysconf(_SC_CLK_TCK));
    return CpuTimes{double(utime) / tick, double(stime) / tick};
}

struct Server {
    std::string variant;            // the RESULT variant
    std::vector<std::string> argv;  // how to start it
};

struct Figure {
    std::vector<double> rates;        // messages per second, one per run
    std::vector<double> server_user;  // the server's CPU microseconds per message in user space,
    std::vector<double> server_sys;   // and in the kernel, one per run
    std::vector<double> client_busy;  // the client's CPU time / wall time, one per run
};

// One run of the load generator against `server`'s port: messages per second and the
// server's CPU per message. nullopt (and why, on stderr) if it failed.
bool measure(const Options& o, const bench::CpuPlan& cpus, bench::ChildProcess& server, int port, int connections,
             Figure& figure) {
    const std::optional<CpuTimes> cpu0 = process_cpu(server.pid());
    bench::ChildProcess client({bench::self_exe(), "--client", std::to_string(port), "--connections",
                                std::to_string(connections), "--seconds", std::to_string(o.seconds), "--warmup",
                                std::to_string(o.warmup), "--size", std::to_string(o.size)},
                               cpus.client);
    auto words = client.expect("MESSAGES", o.seconds + o.warmup + 60);
    if (!words || words->size() < 7) {
        bench::progress(" the client gave no figure (see above)\n");
        return false;
    }
    const std::optional<CpuTimes> cpu1 = process_cpu(server.pid());
    const double messages = std::stod((*words)[0]), seconds = std::stod((*words)[2]), client_cpu = std::stod((*words)[4]),
                 total = std::stod((*words)[6]);
    client.wait_exit(10);
    figure.rates.push_back(messages / seconds);
    if (cpu0 && cpu1 && total > 0) {
        figure.server_user.push_back((cpu1->user - cpu0->user) * 1e6 / total);
        figure.server_sys.push_back((cpu1->system - cpu0->system) * 1e6 / total);
    }
    figure.client_busy.push_back(client_cpu / seconds);
    bench::progress(" %.0f messages/s (the client's core %.0f%% busy)\n", messages / seconds, 100 * client_cpu / seconds);
    return true;
}

std::optional<double> median_of(const std::vector<double>& v) {
    if (v.empty()) return std::nullopt;
    return bench::median(v);
}

std::optional<std::string> python_script() {
    for (const std::string& c : bench::python_script_candidates(__FILE__))
        if (bench::is_file(c)) return c;
    return std::nullopt;
}

// The RESULT lines, the table, and the targets' verdicts.
void report(const Options& o, const bench::CpuPlan& cpus, const std::vector<Server>& servers,
            const std::vector<int>& counts, const std::vector<std::vector<Figure>>& figures) {
    const std::string size = std::to_string(o.size) + "B";
    auto name = [&](const char* what, int count) {
        return std::string(what) + "_" + std::to_string(count) + "conn_" + size;
    };
    // rate[s][c], and the server's CPU per message at the many-connection count: user[s], sys[s]
    std::vector<std::vector<std::optional<double>>> rate(servers.size());
    std::vector<std::optional<double>> user(servers.size()), sys(servers.size());
    bool client_saturated = false;
    for (std::size_t s = 0; s < servers.size(); ++s) {
        const char* variant = servers[s].variant.c_str();
        for (std::size_t c = 0; c < counts.size(); ++c) {
            rate[s].push_back(median_of(figures[s][c].rates));
            if (rate[s][c]) bench::print_result(name("echo", counts[c]), variant, *rate[s][c], "messages_per_s", 0);
            auto busy = median_of(figures[s][c].client_busy);
            if (busy && *busy > 0.9 && servers[s].variant.rfind("ours", 0) == 0) client_saturated = true;
        }
        user[s] = median_of(figures[s].back().server_user);
        sys[s] = median_of(figures[s].back().server_sys);
        if (user[s]) bench::print_result(name("server_user_cpu", counts.back()), variant, *user[s], "us_per_message", 2);
        if (sys[s]) bench::print_result(name("server_kernel_cpu", counts.back()), variant, *sys[s], "us_per_message", 2);
    }

    std::printf("\nmessages per second through an echo server (%ld-byte messages, one in flight per connection),\n"
                "median of %d runs of %.1f s, and the server's CPU time per message at %d connections;\n%s\n",
                o.size, o.runs, o.seconds, counts.back(), cpus.description.c_str());
    const std::string many = std::to_string(counts.back()) + " conns";
    bench::Table table({{"server", 24}, {"1 conn", 9}, {many, 11}, {"CPU us/msg: user", 17}, {"kernel", 7}});
    for (std::size_t s = 0; s < servers.size(); ++s)
        table.row({servers[s].variant, bench::fmt(rate[s].front(), "%.0f"), bench::fmt(rate[s].back(), "%.0f"),
                   bench::fmt(user[s], "%.1f"), bench::fmt(sys[s], "%.1f")});
    table.print();

    auto index = [&](const char* variant) -> std::optional<std::size_t> {
        for (std::size_t s = 0; s < servers.size(); ++s)
            if (servers[s].variant == variant) return s;
        return std::nullopt;
    };
    auto target = [&](const char* ours, const char* theirs, double wanted) {
        auto i = index(ours), j = index(theirs);
        std::optional<double> a = i ? rate[*i].back() : std::nullopt, b = j ? rate[*j].back() : std::nullopt;
        std::printf("  target at %d connections: %s >= %.0fx %s: %s -> %s\n", counts.back(), ours, wanted, theirs,
                    bench::ratio(a, b).c_str(), a && b ? bench::verdict(*a >= wanted * *b) : "n/a (not measured)");
        if (!i || !j || !user[*i] || !user[*j] || !sys[*i] || !sys[*j]) return;
        std::printf("    the server's CPU per message, theirs / ours: %s in all, %s in user space alone\n",
                    bench::ratio(*user[*j] + *sys[*j], *user[*i] + *sys[*i]).c_str(),
                    bench::ratio(user[*j], user[*i], 0.01).c_str());
    };
    target("ours-streams", "python-asyncio-streams", kStreamsTarget);
    target("ours-protocol", "python-asyncio-protocol", kProtocolTarget);
    // A server that does not keep its core busy is not what limits the rate: another program
    // on that core is (a shared machine), or the client. Then messages per second measure the
    // scheduler, and the CPU time per message is the figure to compare.
    for (std::size_t s = 0; s < servers.size(); ++s) {
        if (!rate[s].back() || !user[s] || !sys[s]) continue;
        const double busy = *rate[s].back() * (*user[s] + *sys[s]) / 1e6;
        if (busy < 0.8)
            std::printf("  note: %s kept its core only %.0f%% busy at %d connections: the rate was limited by\n"
                        "  something else (other programs on its core?); compare the CPU per message instead.\n",
                        servers[s].variant.c_str(), 100 * busy, counts.back());
    }
    if (client_saturated)
        std::printf("  note: the client used over 90%% of its core against one of our servers: that figure is what\n"
                    "  one client core can drive, a lower bound for our server.\n");
}

int run_bench(const Options& o) {
    const bench::CpuPlan cpus = bench::plan_cpus();
    std::vector<Server> servers{{"ours-protocol", {bench::self_exe(), "--serve", "protocol"}},
                                {"ours-streams", {bench::self_exe(), "--serve", "streams"}}};
    if (o.python) {
        auto python = bench::find_on_path("python3");
        auto script = python_script();
        if (!python)
            bench::progress("python3 asyncio: skipped: python3 is not on PATH\n");
        else if (!script)
            bench::progress("python3 asyncio: skipped: bench_echo.py was not found beside the bench's source\n");
        else {
            servers.push_back({"python-asyncio-protocol", {*python, *script, "--serve", "protocol"}});
            servers.push_back({"python-asyncio-streams", {*python, *script, "--serve", "streams"}});
        }
    }
    const std::vector<int> counts{1, o.connections};
    bench::progress("%s\n", cpus.description.c_str());

    // figures[server][count]
    std::vector<std::vector<Figure>> figures(servers.size(), std::vector<Figure>(counts.size()));
    for (int r = 1; r <= o.runs; ++r) {
        for (std::size_t s = 0; s < servers.size(); ++s) {
            bench::ChildProcess server(servers[s].argv, cpus.server);
            auto port = server.expect("PORT", 20);
            if (!port || port->empty()) {
                bench::progress("%s: did not start (no PORT line within 20 s); skipped this run\n",
                                servers[s].variant.c_str());
                continue;
            }
            for (std::size_t c = 0; c < counts.size(); ++c) {
                bench::progress("%s, %d connection%s, run %d/%d...", servers[s].variant.c_str(), counts[c],
                                counts[c] == 1 ? "" : "s", r, o.runs);
                measure(o, cpus, server, std::stoi(port->front()), counts[c], figures[s][c]);
            }
        }
    }

    report(o, cpus, servers, counts, figures);
    return 0;
}

std::unique_ptr<aio::EventLoop> our_loop() { return aio::new_selector_event_loop(); }

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;
    try {
        if (!o.serve.empty()) return aio::run(serve(o.serve), our_loop);
        if (o.client_port != 0) return aio::run(generate_load(o), our_loop);
        return run_bench(o);
    } catch (const aio::KeyboardInterrupt&) {
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_echo: %s\n", e.what());
        return 1;
    }
}
