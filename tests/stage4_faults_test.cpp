// Stage 4 tests: faults, as a hostile peer, a hurried user and a newcomer would cause them.
// Each case names the behaviour it pins. First those that once failed: a signal arriving
// after a flood of call_soon_threadsafe wake-ups (the self-pipe was full); select(2) given a
// timeout beyond any clock (EINVAL); an accepted connection whose fd select(2) cannot watch
// (left open, its peer waiting for ever); a reset read just before the loop closes
// (connection_lost was told "orderly"); read(-1) on a reader with the largest limit (it
// recursed for ever); sock_recv_exactly asked for a terabyte by a peer (it allocated it).
// Then what held, kept so that it keeps holding: a storm of signals (EINTR) during every
// kind of wait; cancelling a client at every pass of its life; protocols that call their
// transport from inside every callback; a writer fed from resume_writing; writelines of many
// pieces through a tiny send buffer; a protocol throwing what is not a std::exception; a
// thousand connections at once; the loop closed with everything open.
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/selector_transport.hpp"
#include "stage4_sockets/streams.hpp"
#include "tests/fork_test_support.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/net_test_support.hpp"
#include "tests/transport_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace transport_test_support;
using aio::Coroutine;
using aio::Ref;
using aio::Socket;
using aio::StreamReader;
using aio::StreamWriter;

// A SelectorEventLoop on `kind` whose exception handler records what it is told.
auto reporting_loop(std::string kind, loop_test_support::Reports* reports) {
    return [kind, reports] {
        auto loop = std::make_unique<aio::SelectorEventLoop>(aio::make_selector(kind));
        loop_test_support::capture_reports(*loop, reports);
        return std::unique_ptr<aio::EventLoop>(std::move(loop));
    };
}

// Echoes each line until EOF, then closes.
Coroutine<> echo_lines(Ref<StreamReader> reader, Ref<StreamWriter> writer) {
    for (;;) {
        std::string line = co_await reader->readline();
        if (line.empty()) break;
        writer->write(line);
        co_await writer->drain();
    }
    writer->close();
}

// ------------------------------------------------------------------------ the self-pipe

// Installs a do-nothing handler for `sig` for the scope of a test, and restores what was there.
class QuietSignal {
public:
    explicit QuietSignal(int sig) : sig_(sig) {
        struct sigaction action {};
        action.sa_handler = [](int) {};
        sigemptyset(&action.sa_mask);
        ::sigaction(sig, &action, &saved_);
    }
    ~QuietSignal() { ::sigaction(sig_, &saved_, nullptr); }
    QuietSignal(const QuietSignal&) = delete;
    QuietSignal& operator=(const QuietSignal&) = delete;

private:
    int sig_;
    struct sigaction saved_ {};
};

}  // namespace

// A signal's callback runs even when, just before it arrived, threads woke the loop far more
// often than its self-pipe holds bytes (while the loop was busy in a long callback).
NET_TEST_CASE("add_signal_handler: a signal after a flood of call_soon_threadsafe wake-ups still runs its callback",
              "[stage4][faults][threads]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        QuietSignal quiet(SIGUSR1);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        bool signalled = false;
        std::size_t posted_ran = 0;
        loop.add_signal_handler(SIGUSR1, [&] {
            signalled = true;
            loop.stop();
        });
        const std::size_t kPosts = 100000;
        loop.call_soon([&] {
            std::thread poster([&] {
                for (std::size_t i = 0; i < kPosts; ++i) loop.call_soon_threadsafe([&posted_ran] { ++posted_ran; });
            });
            poster.join();
            ::raise(SIGUSR1);  // its byte goes into the self-pipe behind the wake-ups
        });
        auto limit = loop.call_later(3.0, [&loop] { loop.stop(); });
        loop.run_forever();
        limit->cancel();
        REQUIRE(posted_ran == kPosts);
        REQUIRE(signalled);
        loop.remove_signal_handler(SIGUSR1);
    }
}

// ------------------------------------------------------------------------- the selectors

// A timeout beyond any clock (1e300 seconds, infinity) waits as if there were no limit: a
// ready fd is reported, on every selector.
NET_TEST_CASE("selectors: a timeout too large for any clock waits like no limit", "[stage4][faults]") {
    for (const std::string& kind : selector_kinds()) {
        for (double timeout : {1e300, std::numeric_limits<double>::infinity()}) {
            INFO("selector " << kind << ", timeout " << timeout);
            auto selector = aio::make_selector(kind);
            auto [reader, writer] = aio::socketpair();
            REQUIRE(::send(writer.fileno(), "x", 1, 0) == 1);
            selector->register_fd(reader.fileno(), aio::EVENT_READ);
            const auto& ready = selector->select(timeout);
            REQUIRE(ready.size() == 1);
            REQUIRE(ready[0].key->fd == reader.fileno());
            selector->unregister(reader.fileno());
        }
    }
}

// ---------------------------------------------------------- an fd the selector cannot watch

namespace {

// Holds fds (of /dev/null) until the next fd made is at least `at`; closes them when destroyed.
class FdFiller {
public:
    explicit FdFiller(int at) {
        for (;;) {
            const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0) FAIL("out of fds while filling them up to " << at);
            fds_.push_back(fd);
            if (fd >= at - 1) break;
        }
    }
    ~FdFiller() {
        for (int fd : fds_) ::close(fd);
    }
    FdFiller(const FdFiller&) = delete;
    FdFiller& operator=(const FdFiller&) = delete;

private:
    std::vector<int> fds_;
};

Coroutine<> unwatchable_fd_scenario(loop_test_support::Reports* reports) {
    auto accepted = std::make_shared<std::vector<Ref<Recorder>>>();
    auto factory = [accepted] {
        accepted->push_back(aio::make_ref<Recorder>());
        return accepted->back();
    };
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    const aio::SockAddr address = server->sockets()[0].getsockname();
    Socket first(AF_INET), second(AF_INET);  // below FD_SETSIZE: this loop can watch them
    std::string got;
    {
        FdFiller filler(FD_SETSIZE);  // the server's next accept gets an fd select cannot watch
        co_await aio::sock_connect(first, address);
        auto receiving = aio::sock_recv(first, 100);
        got = co_await aio::wait_for(std::move(receiving), 2.0);  // EOF, not a wait for ever
    }
    REQUIRE(got.empty());
    REQUIRE(accepted->size() == 1);
    Ref<Recorder> dropped = (*accepted)[0];
    co_await aio::wait_for(dropped->lost, 2.0);
    REQUIRE(dropped->events.size() == 2);
    REQUIRE(dropped->events[0] == "made");
    REQUIRE(contains(dropped->events[1], "FD_SETSIZE"));
    REQUIRE(count_reports(*reports, "the selector cannot watch the socket") == 1);

    co_await aio::sock_connect(second, address);  // fds are free again: served as usual
    co_await aio::sock_sendall(second, "ping");
    while (accepted->size() < 2) co_await aio::sleep(0.01);
    co_await aio::wait_for((*accepted)[1]->wait_for_bytes(4), 2.0);
    REQUIRE((*accepted)[1]->received == "ping");
    server->close();
    server->close_clients();
    co_await server->wait_closed();
    require_nothing_registered();
}

}  // namespace

// An accepted connection whose fd select(2) cannot watch (at or above FD_SETSIZE) is reported
// and aborted at once: the peer sees it closed, and the server goes on serving.
NET_TEST_CASE("Server: a connection whose fd the selector cannot watch is reported and closed; serving goes on",
              "[stage4][faults]") {
    loop_test_support::Reports reports;
    aio::run(aio::wait_for(unwatchable_fd_scenario(&reports), 5.0), reporting_loop("select", &reports));
}

// ------------------------------------------------------------------------ the loop closes

namespace {

// A connection from a Recorder to a raw peer: the client's protocol and the peer's socket.
Coroutine<std::pair<Ref<Recorder>, Socket>> connect_to_raw_peer() {
    Socket listener = listening_socket();
    Ref<Recorder> client = aio::make_ref<Recorder>();
    auto factory = [client] { return client; };
    auto connecting = aio::create_connection(factory, "127.0.0.1", listener.getsockname().port());
    co_await std::move(connecting);
    auto accepted = co_await aio::sock_accept(listener);
    co_return std::pair<Ref<Recorder>, Socket>(client, std::move(accepted.first));
}

// A handler that never returns.
Coroutine<> never_returns(Ref<StreamReader> reader, Ref<StreamWriter> writer) {
    writer->write("hello\n");
    for (;;) {
        std::string line = co_await reader->readline();
        co_await aio::sleep(100);
    }
}

// Returns with everything in flight: a server, a connection with a handler that never
// returns, a readline, an open_connection resolving a name on the executor.
Coroutine<> leave_everything_open() {
    auto serving = aio::start_server(never_returns, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    const int port = server->sockets()[0].getsockname().port();
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    std::string hello = co_await reader->readline();
    REQUIRE(hello == "hello\n");
    auto resolving = aio::create_task(aio::open_connection("localhost", port));
    auto reading = aio::create_task(reader->readline());
    co_await aio::sleep(0);
}

}  // namespace

// A connection reset by its peer tells its protocol so (connection_lost with the error) even
// when the loop closes before the pass that would have called connection_lost.
NET_TEST_CASE("transport: a reset read just before the loop closes reaches connection_lost as an error",
              "[stage4][faults]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        auto made = loop.run_until_complete(aio::create_task(loop, connect_to_raw_peer()));
        Ref<Recorder> client = made.first;
        linger reset{1, 0};
        REQUIRE(::setsockopt(made.second.fileno(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0);
        made.second.close();  // the peer resets the connection
        // Pass by pass until the transport has read the reset: connection_lost is then
        // scheduled, for the next pass, which never comes.
        for (int i = 0; !client->transport->is_closing(); ++i) {
            REQUIRE(i < 2000);
            ::usleep(1000);
            loop_test_support::one_pass(loop);
        }
        REQUIRE(client->events.back() != "lost");
        loop.close();
        REQUIRE(client->lost->done());
        REQUIRE(client->lost_with);
        REQUIRE(contains(what_of(client->lost_with), "Connection reset"));
    }
}

// Closing the loop with a server listening, handlers and reads pending and a name being
// resolved on the executor frees everything (the sanitizers watch), and leaves no fd open.
NET_TEST_CASE("SelectorEventLoop: closing with servers, connections, reads and a lookup in flight frees them all",
              "[stage4][faults]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, leave_everything_open());
        aio::SelectorEventLoop loop(aio::make_selector(kind));  // closed by hand, tasks still pending
        loop_test_support::Reports reports;
        loop_test_support::capture_reports(loop, &reports);
        loop.run_until_complete(aio::create_task(loop, leave_everything_open()));
        loop.close();
        REQUIRE(count_reports(reports, "Task was destroyed but it is pending!") >= 3);
    }
}

// ----------------------------------------------------------------------- sizes and limits

namespace {

Coroutine<std::string> read_all(Ref<StreamReader> reader) {
    std::string all = co_await reader->read(-1);
    co_return all;
}

// A peer that announces a terabyte, sends five bytes and closes.
Coroutine<> announced_terabyte_scenario() {
    auto pair = co_await connected_pair();
    co_await aio::sock_sendall(pair.second, "hello");
    pair.second.close();
    bool raised = false;
    try {
        co_await aio::sock_recv_exactly(pair.first, std::size_t(1) << 40);
    } catch (const aio::IncompleteReadError& e) {
        raised = true;
        REQUIRE(e.partial == "hello");
        REQUIRE(e.expected == std::size_t(1) << 40);
    }
    REQUIRE(raised);
}

}  // namespace

// read(-1) reads to EOF whatever the limit, even the largest (a "no limit" reader).
TEST_CASE("StreamReader: read(-1) reads to EOF with the largest limit", "[stage4][faults]") {
    std::string outcome = fork_test_support::in_child(
        [] {
            Ref<StreamReader> reader = aio::make_ref<StreamReader>(std::numeric_limits<std::size_t>::max());
            reader->feed_data("all of it");
            reader->feed_eof();
            return aio::run(read_all(reader), aio::new_selector_event_loop) == "all of it" ? 0 : 10;
        },
        5.0);
    REQUIRE(outcome == "ok");
}

// sock_recv_exactly(n) takes memory for what arrives, not for what it was asked to wait for:
// a peer cannot make it allocate a length it announces and never sends.
NET_TEST_CASE("sock_recv_exactly: a huge n from a peer that closes early raises IncompleteReadError",
              "[stage4][faults]") {
    run_on("epoll", announced_terabyte_scenario());
}

// ------------------------------------------------------------------------- a signal storm

namespace {

// Streams (a name resolved on the executor, a megabyte line each way) and sock_* (accept,
// connect, sendall, recv), while signals interrupt every system call they can.
Coroutine<int> storm_scenario() {
    const std::size_t limit = std::size_t(4) << 20;
    auto serving = aio::start_server(echo_lines, "127.0.0.1", 0, limit);
    Ref<aio::Server> server = co_await std::move(serving);
    const int port = server->sockets()[0].getsockname().port();
    const std::string big = pattern(std::size_t(1) << 20);
    for (int round = 0; round < 3; ++round) {
        auto [reader, writer] = co_await aio::open_connection("localhost", port, limit);
        writer->write(big + "\n");
        co_await writer->drain();
        std::string back = co_await reader->readline();
        if (back != big + "\n") co_return 20;
        writer->close();
        co_await writer->wait_closed();

        auto pair = co_await connected_pair();
        auto sending = aio::create_task(aio::sock_sendall(pair.first, big));
        std::string got = co_await aio::sock_recv_exactly(pair.second, big.size());
        co_await sending;
        if (got != big) co_return 21;
        co_await aio::sleep(0.01);
    }
    server->close();
    co_await server->wait_closed();
    co_return 0;
}

std::atomic<long> g_storm_signals{0};
extern "C" void count_storm_signal(int) { g_storm_signals.fetch_add(1, std::memory_order_relaxed); }

// In a child process: SIGUSR1 every 100 us at the loop's thread, whose handler has no
// SA_RESTART, so that every blocking call it interrupts fails with EINTR.
int run_in_signal_storm(const std::string& kind) {
    struct sigaction action {};
    action.sa_handler = count_storm_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGUSR1, &action, nullptr);
    const pthread_t loop_thread = ::pthread_self();
    std::atomic<bool> stop{false};
    std::thread storm([&] {
        while (!stop.load()) {
            ::pthread_kill(loop_thread, SIGUSR1);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    });
    int code = 3;
    try {
        code = aio::run(storm_scenario(), loop_on(kind));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "signal storm on %s: %s\n", kind.c_str(), e.what());
    }
    stop = true;
    storm.join();
    if (code == 0 && g_storm_signals.load() < 100) code = 22;  // (the storm did not blow)
    return code;
}

}  // namespace

// Signals arriving every 100 us, each interrupting whatever system call the loop is in
// (EINTR), change nothing: the waits resume, the transfers complete intact.
NET_TEST_CASE("signals every 100 us (EINTR everywhere) leave streams and sock_* intact", "[stage4][faults]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind << "; exit codes: 20, 21 data damaged, 22 too few signals");
        std::string outcome = fork_test_support::in_child([kind] { return run_in_signal_storm(kind); }, 30.0);
        REQUIRE(outcome == "ok");
    }
}

// ----------------------------------------------------------- cancelled at every pass

namespace {

// A client's life on streams, every kind of await in turn.
Coroutine<> stream_client(int port) {
    auto [reader, writer] = co_await aio::open_connection("localhost", port);  // on the executor
    writer->write("one\n");
    co_await writer->drain();
    std::string one = co_await reader->readline();
    writer->write("two\n");
    std::string two = co_await reader->readuntil("\n");
    writer->write("three\n");
    std::string three = co_await reader->readexactly(6);
    writer->write_eof();
    std::string rest = co_await reader->read(-1);
    writer->close();
    co_await writer->wait_closed();
}

// And on sock_*.
Coroutine<> sock_client(int port) {
    Socket listener = listening_socket();
    Socket client(AF_INET);
    co_await aio::sock_connect(client, aio::SockAddr::ip("127.0.0.1", std::uint16_t(port)));
    co_await aio::sock_sendall(client, "one\n");
    std::string got = co_await aio::sock_recv(client, 100);
    Socket other(AF_INET);
    co_await aio::sock_connect(other, listener.getsockname());
    auto accepted = co_await aio::sock_accept(listener);
    const std::string data = pattern(std::size_t(16) << 10);
    co_await aio::sock_sendall(other, data);
    std::string back = co_await aio::sock_recv_exactly(accepted.first, data.size());
}

// Cancel a new client after 0, 1, 2, ... passes, until one finishes before it is cancelled:
// every time, what it registered goes away with it.
Coroutine<> cancel_at_every_pass_scenario(bool streams) {
    auto serving = aio::start_server(echo_lines, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    const int port = server->sockets()[0].getsockname().port();
    const std::size_t registered_before = registered_fds();
    for (int passes = 0;; ++passes) {
        Ref<aio::Task<>> client;
        if (streams)
            client = aio::create_task(stream_client(port));
        else
            client = aio::create_task(sock_client(port));
        for (int i = 0; i < passes; ++i) co_await aio::sleep(0);
        const bool finished = client->done();
        client->cancel();
        try {
            co_await client;
        } catch (const aio::CancelledError&) {
        }
        // (The server's side of the connection takes a few passes to see the end.)
        for (int i = 0; i < 1000 && registered_fds() != registered_before; ++i) co_await aio::sleep(0.002);
        INFO("cancelled after " << passes << " passes");
        REQUIRE(registered_fds() == registered_before);
        if (finished) break;
        REQUIRE(passes < 5000);
    }
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

}  // namespace

// A client cancelled at any await of its life (resolving a name on the executor, connecting,
// draining, reading a line, an exact count, to EOF; sock_connect, sendall, recv, accept)
// leaves nothing registered and no fd open.
NET_TEST_CASE("cancellation at every pass of a streams client and of a sock_* client leaves nothing behind",
              "[stage4][faults]") {
    loop_test_support::Reports reports;  // (the server's handlers meet the resets: reported)
    aio::run(aio::wait_for(cancel_at_every_pass_scenario(true), 60.0), reporting_loop("epoll", &reports));
    aio::run(aio::wait_for(cancel_at_every_pass_scenario(false), 60.0), reporting_loop("poll", &reports));
}

// ------------------------------------------------------- protocols calling their transport

namespace {

// Calls its transport back from inside every callback: writes more than the socket takes
// and closes from data_received, then writes, pauses, resumes and closes again; calls
// everything once more from connection_lost.
class Reentrant : public Recorder {
public:
    std::string reply;
    int lost_calls = 0;
    void connection_made(aio::Transport& t) override {
        Recorder::connection_made(t);
        t.get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);  // so that writes queue
    }
    void data_received(std::string_view data) override {
        Recorder::data_received(data);
        transport->write(reply);   // queued, mostly
        transport->close();        // once the queue is sent
        transport->write("tail");  // joins the queue (closing, not lost)
        transport->pause_reading();
        transport->resume_reading();
        transport->close();
        transport->set_write_buffer_limits(1, 0);
    }
    void connection_lost(std::exception_ptr exc) override {
        ++lost_calls;
        Ref<aio::Transport> t = transport;
        Recorder::connection_lost(exc);
        t->write("ignored");
        t->writelines({"a", "b"});
        t->close();
        t->abort();
        t->pause_reading();
        t->resume_reading();
        t->write_eof();
        t->set_write_buffer_limits(10, 5);
    }
};

// Writes `total` bytes of `data` in pieces of changing sizes whenever it may (until
// pause_writing, and again from resume_writing), then closes.
class Producer : public Recorder {
public:
    std::string data;
    bool use_writelines = false;
    void connection_made(aio::Transport& t) override {
        Recorder::connection_made(t);
        t.get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 8192);
        t.set_write_buffer_limits(32 * 1024, 8 * 1024);
        produce();
    }
    void pause_writing() override {
        Recorder::pause_writing();
        paused_ = true;
    }
    void resume_writing() override {
        Recorder::resume_writing();
        paused_ = false;
        produce();
    }

private:
    void produce() {
        while (!paused_ && produced_ < data.size()) {
            const std::size_t n = std::min(chunk_, data.size() - produced_);
            const std::string_view piece = std::string_view(data).substr(produced_, n);
            produced_ += n;
            if (use_writelines)
                transport->writelines({piece.substr(0, n / 3), std::string_view(), piece.substr(n / 3)});
            else
                transport->write(piece);
            chunk_ = chunk_ * 7 % 50000 + 1;
        }
        if (produced_ == data.size() && !transport->is_closing()) transport->close();
    }
    std::size_t produced_ = 0, chunk_ = 1000;
    bool paused_ = false;
};

// A server of Recorders; returns its latest protocol through `last`.
Coroutine<Ref<aio::Server>> recording_server(std::shared_ptr<Ref<Recorder>> last) {
    auto factory = [last] {
        *last = aio::make_ref<Recorder>();
        return *last;
    };
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    co_return server;
}

Coroutine<> reentrant_scenario() {
    auto server_side = std::make_shared<Ref<Reentrant>>();
    const std::string reply = pattern(std::size_t(1) << 20);
    auto factory = [server_side, reply] {
        *server_side = aio::make_ref<Reentrant>();
        (*server_side)->reply = reply;
        return *server_side;
    };
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    Ref<Recorder> client = aio::make_ref<Recorder>();
    auto client_factory = [client] { return client; };
    auto connecting = aio::create_connection(client_factory, "127.0.0.1", server->sockets()[0].getsockname().port());
    auto made = co_await std::move(connecting);
    made.first->write("go");
    co_await aio::wait_for(client->lost, 10.0);
    REQUIRE(client->received.size() == reply.size() + 4);
    REQUIRE(client->received == reply + "tail");
    co_await aio::wait_for((*server_side)->lost, 2.0);
    REQUIRE((*server_side)->saw("pause"));
    REQUIRE((*server_side)->lost_calls == 1);
    REQUIRE((*server_side)->events.back() == "lost");
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

Coroutine<> producer_scenario(bool writelines) {
    auto receiver = std::make_shared<Ref<Recorder>>();
    auto serving = recording_server(receiver);
    Ref<aio::Server> server = co_await std::move(serving);
    Ref<Producer> producer = aio::make_ref<Producer>();
    producer->data = pattern(std::size_t(2) << 20);
    producer->use_writelines = writelines;
    auto factory = [producer] { return producer; };
    auto connecting = aio::create_connection(factory, "127.0.0.1", server->sockets()[0].getsockname().port());
    co_await std::move(connecting);
    co_await aio::wait_for(producer->lost, 10.0);
    co_await aio::wait_for((*receiver)->wait_for_bytes(producer->data.size() + 1), 5.0);  // to EOF
    REQUIRE((*receiver)->saw("eof"));
    REQUIRE((*receiver)->received.size() == producer->data.size());
    REQUIRE((*receiver)->received == producer->data);
    REQUIRE(producer->saw("pause"));
    REQUIRE(producer->saw("resume"));
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

// writelines of thousands of pieces (empty ones among them), more than one sendmsg takes.
Coroutine<> many_pieces_scenario() {
    auto receiver = std::make_shared<Ref<Recorder>>();
    auto serving = recording_server(receiver);
    Ref<aio::Server> server = co_await std::move(serving);
    Ref<Recorder> client = aio::make_ref<Recorder>();
    auto factory = [client] { return client; };
    auto connecting = aio::create_connection(factory, "127.0.0.1", server->sockets()[0].getsockname().port());
    auto made = co_await std::move(connecting);
    made.first->get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    const std::string data = pattern(1500000);
    std::vector<std::string_view> pieces;
    for (std::size_t at = 0, size = 1; at < data.size(); size = size * 13 % 9001 + 1) {
        const std::size_t n = std::min(size, data.size() - at);
        pieces.push_back(std::string_view(data).substr(at, n));
        if (size % 5 == 0) pieces.push_back(std::string_view());
        at += n;
    }
    const std::span<const std::string_view> all(pieces);
    for (std::size_t i = 0; i < all.size(); i += 300)
        made.first->writelines(all.subspan(i, std::min<std::size_t>(300, all.size() - i)));
    made.first->close();
    co_await aio::wait_for(client->lost, 10.0);
    co_await aio::wait_for((*receiver)->wait_for_bytes(data.size() + 1), 5.0);  // to EOF
    REQUIRE((*receiver)->received == data);
    server->close();
    co_await server->wait_closed();
}

}  // namespace

// A protocol may call any transport method from inside any of its callbacks: from
// data_received a write that queues, close, a write that joins the queue (it is sent, then
// the connection closes); from connection_lost, everything, which then does nothing.
NET_TEST_CASE("transport: a protocol calling its transport from inside data_received and connection_lost",
              "[stage4][faults]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, reentrant_scenario(), 15.0);
    }
}

// A protocol that writes whenever it may (until pause_writing, then from resume_writing, in
// pieces of changing sizes, with write or writelines) delivers every byte in order.
NET_TEST_CASE("transport: writing from resume_writing, and writelines of many pieces, deliver every byte in order",
              "[stage4][faults]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, producer_scenario(false), 20.0);
        run_on(kind, producer_scenario(true), 20.0);
    }
    run_on("epoll", many_pieces_scenario(), 20.0);
}

// --------------------------------------------------------------------- odd and numerous

namespace {

// Throws an int (not a std::exception) from data_received.
class ThrowsInt : public Recorder {
public:
    void data_received(std::string_view) override { throw 42; }
};

Coroutine<> throws_int_scenario(loop_test_support::Reports* reports) {
    auto server_side = std::make_shared<Ref<ThrowsInt>>();
    auto factory = [server_side] {
        *server_side = aio::make_ref<ThrowsInt>();
        return *server_side;
    };
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", server->sockets()[0].getsockname().port());
    writer->write("x");
    std::string rest = co_await reader->read(-1);  // the server aborted the connection
    REQUIRE(rest.empty());
    REQUIRE((*server_side)->events.back() == "lost: ?");
    REQUIRE(count_reports(*reports, "protocol.data_received() call failed") == 1);
    writer->close();
    server->close();
    co_await server->wait_closed();
}

Coroutine<> one_client(int port, int i, std::shared_ptr<int> echoed) {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    const std::string line = "client " + std::to_string(i) + "\n";
    writer->write(line);
    co_await writer->drain();
    std::string back = co_await reader->readline();
    if (back == line) ++*echoed;
    writer->close();
    co_await writer->wait_closed();
}

Coroutine<> thousand_clients_scenario() {
    auto serving = aio::start_server(echo_lines, "127.0.0.1", 0, aio::kDefaultStreamLimit, 4096);
    Ref<aio::Server> server = co_await std::move(serving);
    const int port = server->sockets()[0].getsockname().port();
    auto echoed = std::make_shared<int>(0);
    std::vector<Ref<aio::Task<>>> clients;
    for (int i = 0; i < 1000; ++i) clients.push_back(aio::create_task(one_client(port, i, echoed)));
    for (auto& c : clients) co_await c;
    REQUIRE(*echoed == 1000);
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

}  // namespace

// A protocol callback that throws what is not a std::exception is reported and aborts its
// connection like any other failure.
NET_TEST_CASE("transport: a protocol throwing an int is reported, its connection aborted", "[stage4][faults]") {
    loop_test_support::Reports reports;
    aio::run(aio::wait_for(throws_int_scenario(&reports), 5.0), reporting_loop("epoll", &reports));
}

// A thousand clients connecting at once to one server are all served, and all let go.
NET_TEST_CASE("streams: a thousand clients at once are all echoed, and every fd is freed", "[stage4][faults]") {
    run_on("epoll", thousand_clients_scenario(), 60.0);
}
