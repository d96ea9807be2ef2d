// Stage 4 demo: the flaw of a blocking server, then the same echo server on the selector
// loop three ways (sock_* coroutines, a Protocol, streams), each under the same load: N
// clients at once, one of them slow.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "stage1_generators/demo.hpp"
#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage4_sockets/streams.hpp"

namespace {

using aio::Coroutine;
using aio::Ref;

// ---- options ------------------------------------------------------------------------------

struct Options {
    std::string selector;  // "" = $AIO_SELECTOR, else the best one
    int clients = 100;
    int messages = 10;
    double slow = 1.0;  // seconds the slow client takes over its messages
    bool quick = false;
};

// select(2) cannot watch an fd at or above 1024, and every client costs two (its socket
// and the server's): the most clients the demo runs on SelectSelector.
constexpr int kMaxClientsOnSelect = 480;

std::optional<int> parse_options(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "An echo server and N clients, each sending M lines and reading each echo back; client 0\n"
        "is slow (it pauses before each line, S seconds in all). The same clients meet four\n"
        "servers in turn:\n"
        "  1. a blocking server, as a beginner writes it: one thread, blocking accept/recv/send;\n"
        "  2. tasks on the selector loop with sock_* coroutines;\n"
        "  3. a Protocol (create_server);\n"
        "  4. streams (start_server: readline, write, drain).\n"
        "Each prints how long the slow client and the others took. Ctrl-C stops it cleanly.");
    options.choice("--selector", o.selector, aio::selector_names(),
                   "the selector to wait with (default: $AIO_SELECTOR, else the best one)")
        .integer("--clients", o.clients, 2, 2000, "N", "concurrent clients, one of them slow")
        .integer("--messages", o.messages, 1, 100'000, "M", "lines each client sends")
        .number("--slow", o.slow, 0, 60, "S", "seconds the slow client spreads its lines over")
        .flag("--quick", o.quick, "20 clients and a slow client of 0.3 s, for `make run`");
    if (auto status = options.parse(argc, argv)) return status;
    if (o.quick) {
        o.clients = 20;
        o.slow = 0.3;
    }
    const char* env = std::getenv("AIO_SELECTOR");
    const std::string kind = o.selector.empty() && env ? env : o.selector;
    if (kind == "select" && o.clients > kMaxClientsOnSelect)
        return options.usage_error("select(2) cannot watch fds at or above 1024, and each client takes two: with "
                                   "the select selector, use at most " +
                                   std::to_string(kMaxClientsOnSelect) + " clients");
    return std::nullopt;
}

// Two fds per client, and a few for the loop: raise the soft limit if the hard one allows.
bool enough_fds(int clients) {
    rlimit lim{};
    const rlim_t wanted = rlim_t(2 * clients + 64);
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= wanted) return true;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < wanted) {
        std::fprintf(stderr,
                     "error: %d clients need %lu open files, and this system allows %lu (ulimit -Hn): use fewer "
                     "--clients\n",
                     clients, static_cast<unsigned long>(wanted), static_cast<unsigned long>(lim.rlim_max));
        return false;
    }
    lim.rlim_cur = wanted;
    return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

// ---- the clients: the same for every server -------------------------------------------------

struct ClientResult {
    double seconds = 0;  // from the start of the run to the last echo
    int echoed = 0;      // lines that came back intact
};

// Connects, sends `messages` lines and reads each echo back. A slow client first says it is
// connected (so that it is the first a blocking server accepts), then pauses before each line.
Coroutine<ClientResult> client(int port, int id, int messages, double pause, Ref<aio::Future<>> connected) {
    const double t0 = aio::get_running_loop().time();
    auto connecting = aio::open_connection("127.0.0.1", port);
    std::pair<Ref<aio::StreamReader>, Ref<aio::StreamWriter>> connection;
    try {
        connection = co_await std::move(connecting);
    } catch (...) {
        if (connected) connected->set_exception(std::current_exception());  // or run_clients waits for ever
        throw;
    }
    auto& [reader, writer] = connection;
    if (connected) connected->set_result();
    ClientResult result;
    for (int m = 0; m < messages; ++m) {
        if (pause > 0) co_await aio::sleep(pause);
        const std::string line = "client " + std::to_string(id) + " line " + std::to_string(m) + "\n";
        writer->write(line);
        co_await writer->drain();
        std::string back = co_await reader->readline();
        if (back == line) ++result.echoed;
    }
    writer->close();
    co_await writer->wait_closed();
    result.seconds = aio::get_running_loop().time() - t0;
    co_return result;
}

struct RunResult {
    ClientResult slow;
    std::vector<ClientResult> others;
    double wall = 0, cpu = 0;
};

// The slow client first, and once it is connected, all the others at once.
Coroutine<RunResult> run_clients(int port, Options o) {
    aio::Stopwatch sw;
    Ref<aio::Future<>> connected = aio::create_future();
    auto slow = aio::create_task(client(port, 0, o.messages, o.slow / o.messages, connected), "slow client");
    bool failed = false;
    try {
        co_await connected;
    } catch (...) {
        failed = true;
    }
    if (failed) co_await slow;  // it could not connect: its task raises why (and is not left unretrieved)
    std::vector<Coroutine<ClientResult>> others;
    for (int i = 1; i < o.clients; ++i) others.push_back(client(port, i, o.messages, 0, nullptr));
    RunResult run;
    run.others = co_await aio::gather(std::move(others));
    run.slow = co_await slow;
    run.wall = sw.wall();
    run.cpu = sw.cpu();
    co_return run;
}

std::vector<double> sorted_times(const RunResult& r) {
    std::vector<double> t;
    for (const ClientResult& c : r.others) t.push_back(c.seconds);
    std::sort(t.begin(), t.end());
    return t;
}
double median_of_others(const RunResult& r) { return sorted_times(r)[r.others.size() / 2]; }

void report(const RunResult& r, const Options& o) {
    const std::vector<double> t = sorted_times(r);
    int echoed = r.slow.echoed;
    for (const ClientResult& c : r.others) echoed += c.echoed;
    std::printf("   the slow client:      %6.0f ms (%d lines, one every %.0f ms)\n", r.slow.seconds * 1e3, o.messages,
                o.slow / o.messages * 1e3);
    std::printf("   the other %d clients: %6.0f ms median (fastest %.0f ms, slowest %.0f ms)\n", o.clients - 1,
                t[t.size() / 2] * 1e3, t.front() * 1e3, t.back() * 1e3);
    std::printf("   %d of %d lines echoed intact; wall %.3f s, CPU %.3f s\n", echoed, o.clients * o.messages, r.wall,
                r.cpu);
}

// ---- 1. the flaw: a blocking server -----------------------------------------------------------

// Blocking send() of all of data; false if the client has gone.
bool send_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n <= 0) return false;
        data += n;
        size -= std::size_t(n);
    }
    return true;
}

// [docs:blocking_server]
// The echo server as a beginner writes it: one thread, and every call blocks until it is
// done. While it waits in recv() for one client, nobody else is accepted or answered.
void blocking_echo_server(int listener, std::atomic<int>* serving) {
    for (;;) {
        int conn = ::accept(listener, nullptr, nullptr);  // wait for a client
        if (conn < 0) return;                              // (the demo shut the listener down)
        serving->store(conn);
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(conn, buf, sizeof buf, 0);  // wait for its next line
            if (n <= 0) break;                             // it is done (or gone)
            if (!send_all(conn, buf, std::size_t(n))) break;
        }
        serving->store(-1);
        ::close(conn);
    }
}
// [/docs:blocking_server]

// The blocking server on a thread of its own (the clients need the loop's thread), and
// stopped however the demo ends, Ctrl-C included: shutting the sockets down wakes its
// accept() and recv(). (It joins from the loop's thread: the server returns at once.)
class BlockingServer {
public:
    explicit BlockingServer(int backlog) : listener_(::socket(AF_INET, SOCK_STREAM, 0)) {
        if (listener_ < 0) aio::throw_os_error(errno, "socket");
        int one = 1;
        ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        const aio::SockAddr any = aio::SockAddr::ip("127.0.0.1", 0);
        if (::bind(listener_, any.get(), any.size()) < 0 || ::listen(listener_, backlog) < 0) {
            const int err = errno;
            ::close(listener_);
            aio::throw_os_error(err, "bind/listen");
        }
        aio::SockAddr bound;
        ::getsockname(listener_, bound.buffer(), bound.size_ptr());
        port_ = bound.port();
        // Signals (Ctrl-C) go to the loop's thread, not to a thread blocked in recv().
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        thread_ = std::thread(blocking_echo_server, listener_, &serving_);
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
    ~BlockingServer() {
        ::shutdown(listener_, SHUT_RDWR);  // accept() returns: the server's loop ends
        if (int conn = serving_.load(); conn >= 0) ::shutdown(conn, SHUT_RDWR);  // so does recv()
        thread_.join();
        ::close(listener_);
    }
    BlockingServer(const BlockingServer&) = delete;
    BlockingServer& operator=(const BlockingServer&) = delete;
    int port() const { return port_; }

private:
    int listener_;
    int port_ = 0;
    std::atomic<int> serving_{-1};
    std::thread thread_;
};

Coroutine<RunResult> with_blocking_server(Options o) {
    BlockingServer server(o.clients + 16);
    RunResult r = co_await run_clients(server.port(), o);
    co_return r;
}

// ---- 2. sock_* coroutines -----------------------------------------------------------------------

// [docs:sock_echo]
// One task per connection: wait for data, echo it, and again. Each sock_* call tries the
// system call first, and only when it would block awaits the selector.
Coroutine<> serve_client(aio::Socket conn) {
    std::vector<char> buf(4096);
    try {
        for (;;) {
            std::size_t n = co_await aio::sock_recv_into(conn, std::span<char>(buf.data(), buf.size()));
            if (n == 0) co_return;  // the client is done
            co_await aio::sock_sendall(conn, std::string_view(buf.data(), n));
        }
    } catch (const aio::ConnectionError&) {
        // The client went away mid-conversation (Ctrl-C, say): part of a server's life.
    }
}

Coroutine<> accept_clients(aio::Socket* listener, std::vector<Ref<aio::Task<>>>* connections) {
    for (;;) {
        auto accepted = co_await aio::sock_accept(*listener);
        connections->push_back(aio::create_task(serve_client(std::move(accepted.first))));
    }
}
// [/docs:sock_echo]

// Cancel a task and wait until it has finished (its guards have unregistered its fds).
Coroutine<> cancel_and_wait(Ref<aio::Task<>> task) {
    task->cancel();
    try {
        co_await task;
    } catch (const aio::CancelledError&) {
    }
}

Coroutine<RunResult> with_sock_server(Options o) {
    aio::Socket listener(AF_INET);
    listener.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    listener.bind(aio::SockAddr::ip("127.0.0.1", 0));
    listener.listen(o.clients + 16);
    std::vector<Ref<aio::Task<>>> connections;
    Ref<aio::Task<>> server = aio::create_task(accept_clients(&listener, &connections), "accept_clients");
    RunResult r = co_await run_clients(listener.getsockname().port(), o);
    co_await cancel_and_wait(server);  // before the listener closes: unregister first
    for (auto& c : connections) co_await cancel_and_wait(c);
    co_return r;
}

// ---- 3. a Protocol ------------------------------------------------------------------------------

// [docs:echo_protocol]
// No task and no loop of our own: the transport calls data_received with whatever arrived,
// and write() sends it back at once.
class EchoProtocol final : public aio::Protocol {
public:
    void connection_made(aio::Transport& transport) override { transport_ = &transport; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    aio::Transport* transport_ = nullptr;  // valid until connection_lost (protocols.hpp)
};
// [/docs:echo_protocol]

Coroutine<RunResult> with_protocol_server(Options o) {
    auto factory = [] { return aio::make_ref<EchoProtocol>(); };
    Ref<aio::Server> server = co_await aio::create_server(factory, "127.0.0.1", 0, o.clients + 16);
    RunResult r = co_await run_clients(server->sockets()[0].getsockname().port(), o);
    server->close();
    co_await server->wait_closed();  // and every connection it accepted
    co_return r;
}

// ---- 4. streams ---------------------------------------------------------------------------------

// [docs:echo_streams]
// A task per connection again, but one that asks for what it wants: a line.
Coroutine<> echo_lines(Ref<aio::StreamReader> reader, Ref<aio::StreamWriter> writer) {
    try {
        for (;;) {
            std::string line = co_await reader->readline();
            if (line.empty()) break;  // EOF: the client is done
            writer->write(line);
            co_await writer->drain();
        }
    } catch (const aio::ConnectionError&) {
    }
    writer->close();
}
// [/docs:echo_streams]

Coroutine<RunResult> with_streams_server(Options o) {
    Ref<aio::Server> server = co_await aio::start_server(echo_lines, "127.0.0.1", 0, aio::kDefaultStreamLimit,
                                                         o.clients + 16);
    RunResult r = co_await run_clients(server->sockets()[0].getsockname().port(), o);
    server->close();
    co_await server->wait_closed();
    co_return r;
}

// ---- the demo -----------------------------------------------------------------------------------

Coroutine<int> demo(Options o) {
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    std::printf("Stage 4: readiness I/O. %d clients at once, %d lines each; client 0 is slow (%.2f s for its\n"
                "lines). The clients are tasks on the loop, which waits with %s.\n",
                o.clients, o.messages, o.slow, loop.selector().name());

    std::printf("\n== 1. The flaw: a blocking echo server (one thread; accept, recv, send block) ==\n");
    RunResult blocking = co_await with_blocking_server(o);
    report(blocking, o);
    std::printf("   Every other client waited for the slow one: the server was blocked in its recv(),\n"
                "   and the others sat in the kernel's accept queue until it was done.\n");

    std::printf("\n== 2. The same server as tasks on the selector loop, with sock_* coroutines ==\n");
    RunResult sock = co_await with_sock_server(o);
    report(sock, o);

    std::printf("\n== 3. With a Protocol (create_server): data_received -> write ==\n");
    RunResult protocol = co_await with_protocol_server(o);
    report(protocol, o);

    std::printf("\n== 4. With streams (start_server): readline, write, drain ==\n");
    RunResult streams = co_await with_streams_server(o);
    report(streams, o);

    std::printf("\n== The other %d clients' median time, beside the slow client's %.0f ms ==\n", o.clients - 1,
                blocking.slow.seconds * 1e3);
    std::printf("   blocking server, one thread  %8.1f ms\n", median_of_others(blocking) * 1e3);
    std::printf("   sock_* coroutines            %8.1f ms\n", median_of_others(sock) * 1e3);
    std::printf("   a Protocol                   %8.1f ms\n", median_of_others(protocol) * 1e3);
    std::printf("   streams                      %8.1f ms\n", median_of_others(streams) * 1e3);

    std::printf(
        "\nWhat to notice:\n"
        "  - On the blocking server nobody is faster than the slow client: one thread can wait\n"
        "    for one thing at a time. On the loop, the same one thread serves everyone, and a slow\n"
        "    client costs nobody else anything: a task that waits for its socket is a registration\n"
        "    in the selector, not a blocked thread.\n"
        "  - The three loop servers are one idea in three layers. sock_* registers the fd for each\n"
        "    wait; a transport keeps it registered and calls a Protocol with whatever arrives (the\n"
        "    fastest and leanest: bench_echo, bench_c10k); streams put readline() back on top.\n"
        "  - Which selector waits is a detail: --selector select|poll|epoll gives the same results\n"
        "    here. At 10,000 mostly idle connections it is not: bench_selectors.\n"
        "\nBytes are not messages: a protocol gets half a request or three, and a stream reads lines\n"
        "without knowing what they mean. Stage 5 speaks HTTP/1.1 on these two layers: a server\n"
        "whose Protocol parses requests from data_received, and a client on streams.\n");

    int intact = 0;
    for (const RunResult* r : {&blocking, &sock, &protocol, &streams}) {
        intact += r->slow.echoed;
        for (const ClientResult& c : r->others) intact += c.echoed;
    }
    co_return intact == 4 * o.clients * o.messages ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_options(argc, argv, o)) return *status;
    if (!enough_fds(o.clients)) return 1;
    try {
        std::string selector = o.selector;
        return aio::run(demo(o), [selector] {
            return std::unique_ptr<aio::EventLoop>(new aio::SelectorEventLoop(
                selector.empty() ? aio::selector_from_env() : aio::make_selector(selector)));
        });
    } catch (const aio::KeyboardInterrupt&) {
        std::printf("\nInterrupted (Ctrl-C): the main task was cancelled, every task cleaned up, every server\n"
                    "stopped.\n");
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
