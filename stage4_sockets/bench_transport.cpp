// Stage 4 benchmark: echo round trips over one connection, with a protocol, with streams,
// and with part 1's sock_* coroutines, client and server on one loop in this process.
//
// Measures: round trips per second of a `--size`-byte message (default 64: a small
//           request), each sent only once the previous one has come back:
//   protocol_echo  the server's Echo protocol writes back what data_received gets; the
//                  client's protocol sends the next message from data_received
//   streams_echo   start_server's task: read(65536), write, drain; the client task:
//                  write, drain, readexactly(size)
//   sock_echo      tasks on sock_recv_into/sock_sendall (server), sock_sendall and
//                  sock_recv_exactly (client): a registration per wait
// Each round trip is at least two recv() and two send() system calls and two selector
// waits, so this measures the layers' overhead around a fixed kernel cost: the protocol is
// the floor, streams add a future and two task switches per read, sock_* adds an
// add_reader/remove_reader pair per wait.
// Python:   bench_transport.py beside this file runs the same three on asyncio.
//
// Output: one `RESULT name=<workload> variant=<ours|python-asyncio> value=<n> unit=...` line
// per figure, then a table. Progress goes to stderr.
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage4_sockets/streams.hpp"

namespace {

namespace bench = aio::bench;
using aio::Coroutine;
using aio::Ref;

// ---- options -----------------------------------------------------------------------------

struct Options {
    long count = 50'000;
    long size = 64;
    int runs = 3;
    long python_count = 10'000;
    bool python = true;
    std::string selector;  // "" = AIO_SELECTOR, else the default
    std::string workload = "all";
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "Echo round trips per second over one loopback connection, client and server on one\n"
        "loop in this process, a B-byte message at a time (median of R runs of N round trips):\n"
        "  protocol_echo  an Echo protocol; the client's protocol sends from data_received\n"
        "  streams_echo   start_server and open_connection: write, drain, readexactly\n"
        "  sock_echo      part 1's sock_sendall and sock_recv_exactly\n"
        "Then, if python3 is on PATH, bench_transport.py runs the same on asyncio.");
    options.integer("--count", o.count, 1L, 1'000'000'000L, "N", "round trips per run")
        .integer("--size", o.size, 1L, long(1 << 20), "B", "bytes per message")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of each; the median is reported")
        .choice("--selector", o.selector, aio::selector_names(),
                "the selector to wait with (default: $AIO_SELECTOR, else the best one)")
        .choice("--workload", o.workload, {"all", "protocol_echo", "streams_echo", "sock_echo"},
                "only this one")
        .integer("--python-count", o.python_count, 1L, 1'000'000'000L, "N", "the Python side's N")
        .constant("--no-python", o.python, false, "skip the Python side");
    return options.parse(argc, argv);
}

// ---- protocol_echo -----------------------------------------------------------------------

class EchoServer final : public aio::Protocol {
public:
    void connection_made(aio::Transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    aio::Transport* transport_ = nullptr;
};

// Sends the message, and again each time it has come back whole, `remaining` times.
class EchoClient final : public aio::Protocol {
public:
    EchoClient(std::string message, long round_trips)
        : message_(std::move(message)), remaining_(round_trips), done(aio::create_future()) {}
    void connection_made(aio::Transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override {
        got_ += data.size();
        while (got_ >= message_.size()) {
            got_ -= message_.size();
            if (--remaining_ == 0) {
                done->set_result();
                return;
            }
            transport_->write(message_);
        }
    }
    void start() { transport_->write(message_); }
    void connection_lost(std::exception_ptr) override {
        if (!done->done()) done->set_exception(std::make_exception_ptr(std::runtime_error("connection lost")));
    }

private:
    std::string message_;
    long remaining_;
    std::size_t got_ = 0;
    aio::Transport* transport_ = nullptr;

public:
    Ref<aio::Future<>> done;
};

Coroutine<double> protocol_echo(long n, std::string message) {
    auto echo = [] { return aio::make_ref<EchoServer>(); };
    auto serving = aio::create_server(echo, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    Ref<EchoClient> client = aio::make_ref<EchoClient>(message, n);
    auto factory = [client] { return client; };
    auto connecting = aio::create_connection(factory, "127.0.0.1", server->sockets()[0].getsockname().port());
    auto made = co_await std::move(connecting);
    const double t0 = bench::now();
    client->start();
    Ref<aio::Future<>> done = client->done;
    co_await done;
    const double took = bench::seconds_since(t0);
    made.first->close();
    server->close();
    co_await server->wait_closed();
    co_return double(n) / took;
}

// ---- streams_echo ------------------------------------------------------------------------

Coroutine<> streams_echo_handler(Ref<aio::StreamReader> reader, Ref<aio::StreamWriter> writer) {
    for (;;) {
        std::string data = co_await reader->read(65536);
        if (data.empty()) break;
        writer->write(data);
        co_await writer->drain();
    }
    writer->close();
}

Coroutine<double> streams_echo(long n, std::string message) {
    auto serving = aio::start_server(streams_echo_handler, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", server->sockets()[0].getsockname().port());
    const double t0 = bench::now();
    for (long i = 0; i < n; ++i) {
        writer->write(message);
        co_await writer->drain();
        std::string back = co_await reader->readexactly(std::ptrdiff_t(message.size()));
        if (back.size() != message.size()) throw std::runtime_error("streams_echo: short echo");
    }
    const double took = bench::seconds_since(t0);
    writer->close();
    co_await writer->wait_closed();
    server->close();
    co_await server->wait_closed();
    co_return double(n) / took;
}

// ---- sock_echo ---------------------------------------------------------------------------

Coroutine<> sock_echo_server(aio::Socket* listener) {
    auto accepted = co_await aio::sock_accept(*listener);
    aio::Socket conn = std::move(accepted.first);
    std::vector<char> buf(65536);
    for (;;) {
        std::size_t got = co_await aio::sock_recv_into(conn, std::span<char>(buf.data(), buf.size()));
        if (got == 0) break;
        co_await aio::sock_sendall(conn, std::string_view(buf.data(), got));
    }
}

Coroutine<double> sock_echo(long n, std::string message) {
    aio::Socket listener(AF_INET);
    listener.bind(aio::SockAddr::ip("127.0.0.1", 0));
    listener.listen(16);
    auto server = aio::create_task(sock_echo_server(&listener));
    aio::Socket client(AF_INET);
    co_await aio::sock_connect(client, listener.getsockname());
    client.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);  // as the transports do
    const double t0 = bench::now();
    for (long i = 0; i < n; ++i) {
        co_await aio::sock_sendall(client, message);
        std::string back = co_await aio::sock_recv_exactly(client, message.size());
    }
    const double took = bench::seconds_since(t0);
    client.shutdown(SHUT_WR);
    co_await server;
    co_return double(n) / took;
}

// ---- the runs ----------------------------------------------------------------------------

struct Workload {
    const char* name;
    Coroutine<double> (*run)(long, std::string);
};
const Workload kWorkloads[] = {
    {"protocol_echo", protocol_echo}, {"streams_echo", streams_echo}, {"sock_echo", sock_echo}};

double run_once(const Workload& w, const Options& o) {
    const std::string message(std::size_t(o.size), 'x');
    std::string selector = o.selector;
    return aio::run(w.run(o.count, message), [selector] {
        return std::unique_ptr<aio::EventLoop>(
            new aio::SelectorEventLoop(selector.empty() ? aio::selector_from_env() : aio::make_selector(selector)));
    });
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;
    const std::string size = std::to_string(o.size) + "B";

    std::vector<const Workload*> chosen;
    for (const Workload& w : kWorkloads)
        if (o.workload == "all" || o.workload == w.name) chosen.push_back(&w);

    // The workloads take turns run by run, after a warm-up run of each that is not counted.
    std::vector<std::vector<double>> runs(chosen.size());
    for (const Workload* w : chosen) {
        bench::progress("%s: warm-up...", w->name);
        bench::progress(" %.0f round trips/s\n", run_once(*w, o));
    }
    for (int r = 1; r <= o.runs; ++r)
        for (std::size_t i = 0; i < chosen.size(); ++i) {
            bench::progress("%s, run %d/%d...", chosen[i]->name, r, o.runs);
            runs[i].push_back(run_once(*chosen[i], o));
            bench::progress(" %.0f round trips/s\n", runs[i].back());
        }
    std::vector<double> ours;
    for (std::size_t i = 0; i < chosen.size(); ++i) {
        ours.push_back(bench::median(runs[i]));
        bench::print_result(std::string(chosen[i]->name) + "_" + size, "ours", ours.back(), "round_trips_per_s", 0);
    }

    std::vector<std::optional<double>> python(chosen.size());
    if (o.python) {
        auto rs = bench::run_python(__FILE__, {"--count", std::to_string(o.python_count), "--size",
                                               std::to_string(o.size), "--runs", "1", "--workload", o.workload});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t i = 0; i < chosen.size(); ++i)
            python[i] = bench::find_result(rs, std::string(chosen[i]->name) + "_" + size);
    }

    std::printf("\nround trips per second, one connection, %ld-byte messages, client and server on one loop;\n"
                "ours: median of %d runs of %ld; python: one run of %ld\n",
                o.size, o.runs, o.count, o.python_count);
    bench::Table table({{"workload", 16}, {"ours", 10}, {"vs first", 12}, {"python-asyncio", 15}, {"ours/python", 12}});
    for (std::size_t i = 0; i < chosen.size(); ++i)
        table.row({chosen[i]->name, bench::fmt(ours[i], "%.0f"), bench::ratio(ours[i], ours[0], 0, "%.2fx"),
                   bench::fmt(python[i], "%.0f"), bench::ratio(ours[i], python[i])});
    table.print();
    return 0;
}
