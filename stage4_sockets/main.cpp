// Stage 4 demo (a first version; the narrated demo comes with transports and streams): an
// echo server and many clients on one thread, over the loop's selector.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stage1_generators/demo.hpp"
#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/sock_ops.hpp"

namespace {

// ---- options --------------------------------------------------------------------------------

struct Options {
    std::string selector;  // "" = AIO_SELECTOR, else DefaultSelector
    int clients = 200;
    int rounds = 20;
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_options(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "An echo server and N clients, all tasks on one thread: every client connects, sends\n" +
        std::to_string(Options{}.rounds) +
        " messages and reads each echo back with sock_sendall and sock_recv, while the\n"
        "loop's selector waits on all their sockets at once. Ctrl-C stops it cleanly.");
    // Two fds per client: select(2) cannot watch fds above 1023.
    options.choice("--selector", o.selector, aio::selector_names(),
                   "the selector to wait with (default: $AIO_SELECTOR, else the best one)")
        .integer("--clients", o.clients, 1, 400, "N", "concurrent clients")
        .constant("--quick", o.clients, 20, "20 clients, for `make run`");
    return options.parse(argc, argv);
}

// ---- the echo ------------------------------------------------------------------------------

aio::Coroutine<> serve_client(aio::Socket conn) {
    std::vector<char> buf(4096);
    try {
        for (;;) {
            std::size_t n = co_await aio::sock_recv_into(conn, std::span<char>(buf.data(), buf.size()));
            if (n == 0) co_return;  // the client is done
            co_await aio::sock_sendall(conn, std::string_view(buf.data(), n));
        }
    } catch (const aio::ConnectionError&) {
        // The client went away mid-conversation (on Ctrl-C, say, its socket closes with our
        // echo unread, and that resets the connection): part of a server's life, not an error.
    }
}

aio::Coroutine<> echo_server(aio::Socket* listener, std::vector<aio::Ref<aio::Task<>>>* connections) {
    for (;;) {
        auto accepted = co_await aio::sock_accept(*listener);
        connections->push_back(aio::create_task(serve_client(std::move(accepted.first))));
    }
}

aio::Coroutine<int> client(aio::SockAddr server, int id, int rounds) {
    aio::Socket sock(server.family());
    co_await aio::sock_connect(sock, server);
    int echoed = 0;
    for (int r = 0; r < rounds; ++r) {
        const std::string message = "client " + std::to_string(id) + " message " + std::to_string(r) + "\n";
        co_await aio::sock_sendall(sock, message);
        std::string back = co_await aio::sock_recv_exactly(sock, message.size());
        if (back == message) ++echoed;
    }
    co_return echoed;
}

aio::Coroutine<int> demo(Options o) {
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    aio::Socket listener(AF_INET);
    listener.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    listener.bind(aio::SockAddr::ip("127.0.0.1", 0));
    listener.listen(512);
    const aio::SockAddr address = listener.getsockname();
    std::printf("Stage 4: readiness I/O. An echo server on %s, waiting with %s.\n", address.to_string().c_str(),
                loop.selector().name());

    std::vector<aio::Ref<aio::Task<>>> connections;
    auto server = aio::create_task(echo_server(&listener, &connections));
    std::vector<aio::Coroutine<int>> clients;
    for (int i = 0; i < o.clients; ++i) clients.push_back(client(address, i, o.rounds));
    aio::Stopwatch sw;
    std::vector<int> echoed = co_await aio::gather(std::move(clients));
    const double wall = sw.wall(), cpu = sw.cpu();
    int total = 0;
    for (int e : echoed) total += e;
    std::printf("%d clients, %d messages each: %d echoed intact, in %.3f s (CPU %.3f s), one thread.\n", o.clients,
                o.rounds, total, wall, cpu);
    std::printf(
        "\nWhat to notice: %d connections were in flight at once on one thread. Each task\n"
        "tried its recv or send first, and only when the kernel said \"it would block\"\n"
        "registered its socket with the selector and awaited a Future; one wait of the\n"
        "selector then served every socket that was ready.\n"
        "Each sock_* call is a future and a registration per wait, and the code that reads a\n"
        "line or a message is ours to write every time. Transports and protocols keep the fd\n"
        "registered and hand a protocol whatever arrives; streams (open_connection,\n"
        "start_server) put readline on top: see the README and bench_transport.\n",
        o.clients);
    server->cancel();
    for (auto& c : connections) c->cancel();
    co_return total == o.clients * o.rounds ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_options(argc, argv, o)) return *status;
    try {
        std::string selector = o.selector;
        return aio::run(demo(o), [selector] {
            return std::unique_ptr<aio::EventLoop>(new aio::SelectorEventLoop(
                selector.empty() ? aio::selector_from_env() : aio::make_selector(selector)));
        });
    } catch (const aio::KeyboardInterrupt&) {
        std::printf("\nInterrupted (Ctrl-C): the main task was cancelled and every task cleaned up.\n");
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
