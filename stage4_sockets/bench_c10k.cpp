// Stage 4 benchmark: c10k. One server, one thread, 10,000 connections at once.
//
// Measures: for each server, in a process of its own pinned to one core, loaded by this
//           program's client mode (another process, on another core):
//   1. its resident memory growth per idle connection: RSS (/proc/self/statm) before any
//      connection and with all N connected and idle, divided by N. Kernel socket buffers
//      are not in it (they are the kernel's), nor the clients' memory (another process);
//   2. then every client sends one 64-byte message at once: are all N echoed, and how fast?
//   ours-protocol             create_server with an Echo protocol
//   ours-streams              start_server; a task per connection: readline, write, drain
//   python-asyncio-protocol   the same two in asyncio (bench_c10k.py beside this file)
//   python-asyncio-streams
//           Every process raises its limit of open fds (setrlimit) to hold N; where the
//           system will not allow it, N is scaled down and the output says why.
// Targets:  ours-protocol: all N answered, and at most 2 KiB of resident memory per idle
//           connection (standalone Asio's figure for this is about 2 KiB).
//
// How the processes talk: the server prints "PORT <p>"; on SIGUSR1 (a signal handler on
// the loop: add_signal_handler) it prints "OPEN <connections> RSS <KiB>". The client prints
// "CONNECTED <n> FAILED <f> SECONDS <s>" when all its connects are done, sends its messages
// when it reads "SEND" on stdin (add_reader on fd 0), and prints "ANSWERED <a> OF <n>
// SECONDS <s>".
//
// Output: one `RESULT name=<figure> variant=<server> value=<n> unit=...` line per figure,
// then a table. Progress goes to stderr.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
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

constexpr double kTargetBytesPerConnection = 2048;
constexpr int kMessageSize = 64;
// fds a process needs besides its connections: stdio, the listener, the loop's selector
// and self-pipe, the executor's, with room to spare.
constexpr long kSpareFds = 64;
// Connections a client starts at once: enough to keep the server's accept queue busy,
// few enough that no SYN is dropped (the server listens with a backlog of 4096).
constexpr int kConnectWindow = 500;

struct Options {
    int connections = 10'000;
    double answer_timeout = 60;
    bool python = true;
    std::string serve;    // (internal) "protocol" or "streams": be that server
    int client_port = 0;  // (internal) be the clients, against 127.0.0.1:client_port
};

std::optional<int> parse_args(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "c10k: one server, one thread, N connections at once. For each server (in its own\n"
        "process, pinned to one core; the clients in another, on another core): the server's\n"
        "resident memory growth per idle connection, then one 64-byte message on every\n"
        "connection at once, all of which must be echoed.\n"
        "  ours-protocol            create_server with an Echo protocol\n"
        "  ours-streams             start_server: a task per connection (readline, write, drain)\n"
        "  python-asyncio-protocol  the same on asyncio (bench_c10k.py, if python3 is on PATH)\n"
        "  python-asyncio-streams\n"
        "Every process raises its open-file limit to hold N (setrlimit); if the system does not\n"
        "allow it, N is scaled down and the output says why.\n"
        "Targets (ours-protocol): all N answered; at most 2 KiB per idle connection.");
    options.integer("--connections", o.connections, 1, 1'000'000, "N", "concurrent connections")
        .number("--timeout", o.answer_timeout, 1, 3600, "S", "how long the answers may take")
        .constant("--quick", o.connections, 1000, "N = 1000")
        .constant("--no-python", o.python, false, "skip asyncio's servers")
        .choice("--serve", o.serve, {"protocol", "streams"}, "(internal) be this server")
        .hidden()
        .integer("--client", o.client_port, 1, 65535, "PORT", "(internal) connect to 127.0.0.1:PORT")
        .hidden();
    return options.parse(argc, argv);
}

// Raise this process's fd limit for n connections (each process of the bench does).
// Returns how many connections it can hold, saying why on stderr if fewer than n.
int hold_fds(const char* who, int n) {
    std::string why;
    const long limit = bench::raise_fd_limit(n + kSpareFds, &why);
    if (limit >= n + kSpareFds) return n;
    const int fit = int(std::max(0L, limit - kSpareFds));
    bench::progress("%s: %s: holding %d connections instead of %d\n", who, why.c_str(), fit, n);
    return fit;
}

// ---- the servers (--serve) --------------------------------------------------------------

// EchoProtocol and echo_lines: bench_echo_servers.hpp.

Coroutine<int> serve(std::string kind, int connections) {
    hold_fds("server", connections);
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    loop.add_signal_handler(SIGUSR1, [] {
        std::printf("OPEN %ld RSS %ld\n", bench::open_echo_connections, bench::resident_kb());
        std::fflush(stdout);
    });
    Ref<aio::Server> server;
    if (kind == "protocol") {
        auto factory = [] { return aio::make_ref<bench::EchoProtocol>(); };
        server = co_await aio::create_server(factory, "127.0.0.1", 0, 4096);
    } else {
        server = co_await aio::start_server(bench::echo_lines, "127.0.0.1", 0, aio::kDefaultStreamLimit, 4096);
    }
    std::printf("PORT %d\n", int(server->sockets()[0].getsockname().port()));
    std::fflush(stdout);
    // The bench stops us with SIGTERM: close the server, so serve_forever returns and run()
    // ends every connection and frees everything, as a real server would on its way out.
    aio::get_running_selector_loop().add_signal_handler(SIGTERM, [server] { server->close(); });
    co_await server->serve_forever();
    co_return 0;
}

// ---- the clients (--client) -------------------------------------------------------------

struct Answers {
    long answered = 0;
    long expected = 0;
    Ref<aio::Future<>> all = aio::create_future();
};

class Client final : public aio::Protocol {
public:
    explicit Client(Answers& answers) : answers_(answers) {}
    void connection_made(aio::Transport& transport) override { transport_ = Ref<aio::Transport>(&transport); }
    void data_received(std::string_view data) override {
        got_ += data.size();
        if (got_ < std::size_t(kMessageSize) || answered_) return;
        answered_ = true;
        if (++answers_.answered == answers_.expected && !answers_.all->done()) answers_.all->set_result();
    }
    void connection_lost(std::exception_ptr) override { transport_ = nullptr; }
    aio::Transport* transport() const { return transport_.get(); }

private:
    Answers& answers_;
    Ref<aio::Transport> transport_;
    std::size_t got_ = 0;
    bool answered_ = false;
};

Coroutine<Ref<Client>> connect_one(int port, Answers* answers) {
    Ref<Client> client = aio::make_ref<Client>(*answers);
    auto factory = [client] { return client; };
    try {
        auto connecting = aio::create_connection(factory, "127.0.0.1", port);
        co_await std::move(connecting);
    } catch (const aio::OSError& e) {
        bench::progress("client: %s\n", e.what());
        co_return nullptr;
    }
    co_return client;
}

// One line from stdin, waited for on the loop (add_reader on fd 0): the bench's go-ahead.
Coroutine<std::string> read_stdin_line() {
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    std::string line;
    for (;;) {
        Ref<aio::Future<>> readable = aio::create_future();
        auto wake = [readable] {
            if (!readable->done()) readable->set_result();
        };
        loop.add_reader(0, wake, "stdin");
        struct Remove {
            aio::SelectorEventLoop& loop;
            ~Remove() { loop.remove_reader(0); }
        } remove{loop};
        co_await readable;
        char buf[256];
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n == 0) throw aio::EOFError("stdin closed: the bench has gone");
        if (n > 0) line.append(buf, std::size_t(n));
        if (auto nl = line.find('\n'); nl != std::string::npos) co_return line.substr(0, nl);
    }
}

Coroutine<int> clients(int port, int wanted, double timeout) {
    const int n = hold_fds("client", wanted);
    Answers answers;
    std::vector<Ref<Client>> connected;
    long failed = 0;
    const double t0 = bench::now();
    for (int i = 0; i < n; i += kConnectWindow) {
        std::vector<Coroutine<Ref<Client>>> batch;
        for (int j = i; j < std::min(n, i + kConnectWindow); ++j) batch.push_back(connect_one(port, &answers));
        std::vector<Ref<Client>> made = co_await aio::gather(std::move(batch));
        for (auto& c : made) {
            if (c)
                connected.push_back(std::move(c));
            else
                ++failed;
        }
    }
    std::printf("CONNECTED %zu FAILED %ld SECONDS %.3f\n", connected.size(), failed, bench::seconds_since(t0));
    std::fflush(stdout);

    std::string go = co_await read_stdin_line();  // "SEND"
    answers.expected = long(connected.size());
    const std::string message = std::string(kMessageSize - 1, 'x') + "\n";
    const double t1 = bench::now();
    for (auto& c : connected)
        if (c->transport()) c->transport()->write(message);
    if (answers.expected > 0) {
        try {
            co_await aio::wait_for(answers.all, timeout);
        } catch (const aio::TimeoutError&) {
        }
    }
    std::printf("ANSWERED %ld OF %ld SECONDS %.3f\n", answers.answered, answers.expected, bench::seconds_since(t1));
    std::fflush(stdout);
    for (auto& c : connected)
        if (c->transport()) c->transport()->close();
    co_await aio::sleep(0.1);  // let the closes go out
    co_return 0;
}

// ---- the bench ---------------------------------------------------------------------------

struct Server {
    std::string variant;
    std::vector<std::string> argv;
};

struct Outcome {
    bool ran = false;
    long connected = 0;
    double connect_seconds = 0;
    std::optional<double> bytes_per_connection;  // resident memory growth per idle connection
    long answered = 0;
    double answer_seconds = 0;
    std::string failure;
};

// Asks the server for "OPEN <n> RSS <kb>" (SIGUSR1) until at least `open` connections are
// open, for at most `timeout` seconds (accepting may lag behind the clients' connects).
std::optional<std::pair<long, long>> server_report(bench::ChildProcess& server, long open, double timeout) {
    const double deadline = bench::now() + timeout;
    std::optional<std::pair<long, long>> last;
    do {
        server.signal(SIGUSR1);
        auto words = server.expect("OPEN", 5);
        if (!words || words->size() < 3) return std::nullopt;
        last = std::pair<long, long>(std::stol((*words)[0]), std::stol((*words)[2]));
        if (last->first >= open) return last;
        ::usleep(50'000);
    } while (bench::now() < deadline);
    return last;
}

Outcome run_one(const Server& s, const bench::CpuPlan& cpus, const Options& o) {
    Outcome out;
    bench::ChildProcess server(s.argv, cpus.server);
    auto port = server.expect("PORT", 20);
    if (!port || port->empty()) {
        out.failure = "the server did not start";
        return out;
    }
    auto base = server_report(server, 0, 5);
    if (!base) {
        out.failure = "the server did not report its memory";
        return out;
    }
    bench::ChildProcess client({bench::self_exe(), "--client", port->front(), "--connections",
                                std::to_string(o.connections), "--timeout", std::to_string(o.answer_timeout)},
                               cpus.client);
    auto connected = client.expect("CONNECTED", 300);
    if (!connected || connected->size() < 5) {
        out.failure = "the clients did not report their connections";
        return out;
    }
    out.ran = true;
    out.connected = std::stol((*connected)[0]);
    out.connect_seconds = std::stod((*connected)[4]);
    bench::progress(" %ld connected in %.2f s;", out.connected, out.connect_seconds);
    auto idle = server_report(server, out.connected, 30);
    if (idle && idle->first > 0) {
        out.bytes_per_connection = double(idle->second - base->second) * 1024.0 / double(idle->first);
        bench::progress(" %.0f bytes per idle connection;", *out.bytes_per_connection);
    }
    client.write_line("SEND");
    auto answered = client.expect("ANSWERED", o.answer_timeout + 30);
    if (answered && answered->size() >= 5) {
        out.answered = std::stol((*answered)[0]);
        out.answer_seconds = std::stod((*answered)[4]);
        bench::progress(" %ld answered in %.2f s\n", out.answered, out.answer_seconds);
    } else {
        out.failure = "the clients did not report their answers";
        bench::progress(" no answers reported\n");
    }
    client.wait_exit(30);
    return out;
}

int run_bench(Options o) {
    const int n = hold_fds("bench", o.connections);
    if (n < o.connections) {
        std::printf("NOTE: scaled down from %d to %d connections: this system's open-file limit does not allow more\n"
                    "(see the line above: as root, `ulimit -n` and /proc/sys/fs/nr_open).\n",
                    o.connections, n);
        o.connections = n;
    }
    if (o.connections < 1) {
        std::fprintf(stderr, "bench_c10k: no connection can be held under this fd limit\n");
        return 1;
    }
    const bench::CpuPlan cpus = bench::plan_cpus();
    bench::progress("%s\n", cpus.description.c_str());
    const std::string count = std::to_string(o.connections);
    std::vector<Server> servers{
        {"ours-protocol", {bench::self_exe(), "--serve", "protocol", "--connections", count}},
        {"ours-streams", {bench::self_exe(), "--serve", "streams", "--connections", count}}};
    if (o.python) {
        auto python = bench::find_on_path("python3");
        std::optional<std::string> script;
        for (const std::string& c : bench::python_script_candidates(__FILE__))
            if (!script && bench::is_file(c)) script = c;
        if (!python)
            bench::progress("python3 asyncio: skipped: python3 is not on PATH\n");
        else if (!script)
            bench::progress("python3 asyncio: skipped: bench_c10k.py was not found beside the bench's source\n");
        else
            for (const char* kind : {"protocol", "streams"})
                servers.push_back({std::string("python-asyncio-") + kind,
                                   {*python, *script, "--serve", kind, "--connections", count}});
    }

    std::vector<Outcome> outcomes;
    for (const Server& s : servers) {
        bench::progress("%s, %d connections...", s.variant.c_str(), o.connections);
        outcomes.push_back(run_one(s, cpus, o));
        if (!outcomes.back().failure.empty()) bench::progress(" %s\n", outcomes.back().failure.c_str());
    }

    const std::string name = "c10k_" + bench::count_label(o.connections);
    for (std::size_t i = 0; i < servers.size(); ++i) {
        const Outcome& r = outcomes[i];
        if (!r.ran) continue;
        const char* v = servers[i].variant.c_str();
        if (r.bytes_per_connection)
            bench::print_result(name + "_idle_memory", v, *r.bytes_per_connection, "bytes_per_connection", 0);
        bench::print_result(name + "_answered", v, double(r.answered), "connections", 0);
        bench::print_result(name + "_answer_time", v, r.answer_seconds, "s", 3);
    }

    std::printf("\n%d connections to one server, one thread; %s\n", o.connections, cpus.description.c_str());
    bench::Table table({{"server", 24},
                        {"connected", 10},
                        {"in (s)", 7},
                        {"bytes/idle conn", 16},
                        {"answered", 9},
                        {"in (s)", 7}});
    for (std::size_t i = 0; i < servers.size(); ++i) {
        const Outcome& r = outcomes[i];
        if (!r.ran) {
            table.row({servers[i].variant, "failed: " + r.failure});
            continue;
        }
        table.row({servers[i].variant, std::to_string(r.connected), bench::fmt(r.connect_seconds, "%.2f"),
                   bench::fmt(r.bytes_per_connection, "%.0f"), std::to_string(r.answered),
                   bench::fmt(r.answer_seconds, "%.2f")});
    }
    table.print();
    const Outcome& ours = outcomes[0];
    const bool all = ours.ran && ours.connected == o.connections && ours.answered == o.connections;
    std::printf("  target: ours-protocol answers all %d -> %s\n", o.connections, ours.ran ? bench::verdict(all) : "n/a");
    std::printf("  target: ours-protocol at most %.0f bytes per idle connection -> %s\n", kTargetBytesPerConnection,
                ours.bytes_per_connection ? bench::verdict(*ours.bytes_per_connection <= kTargetBytesPerConnection)
                                          : "n/a");
    std::printf("  (resident memory only: each connection's kernel socket buffers are the kernel's, not counted)\n");
    return 0;
}

std::unique_ptr<aio::EventLoop> our_loop() { return aio::new_selector_event_loop(); }

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;
    try {
        if (!o.serve.empty()) return aio::run(serve(o.serve, o.connections), our_loop);
        if (o.client_port != 0) return aio::run(clients(o.client_port, o.connections, o.answer_timeout), our_loop);
        return run_bench(o);
    } catch (const aio::KeyboardInterrupt&) {
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_c10k: %s\n", e.what());
        return 1;
    }
}
