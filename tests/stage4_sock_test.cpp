// Stage 4 tests: the sock_* coroutines and getaddrinfo, on each selector. An echo over IPv4
// and IPv6; sendall through a tiny send buffer (partial writes, a registered writer); the
// errors a peer can cause, each named as Python names it and naming the peer (refused,
// closed mid-stream, reset, a broken pipe that must not raise SIGPIPE); a name that cannot
// be resolved; and cancellation, directly or by wait_for's timeout, in every kind of wait:
// no registration is left behind, and the socket works afterwards.
#include <signal.h>
#include <sys/socket.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage4_sockets/sock_ops.hpp"
#include "tests/net_test_support.hpp"

namespace {

using namespace net_test_support;
using aio::Coroutine;
using aio::Socket;

// Bytes that differ from one position to the next, so that a lost or repeated chunk shows.
std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = char('a' + (i * 7 + i / 251) % 26);
    return s;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// "Nothing of this socket is registered with the running loop any more."
void require_unregistered(const Socket& s) {
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    REQUIRE_FALSE(loop.has_reader(s.fileno()));
    REQUIRE_FALSE(loop.has_writer(s.fileno()));
    REQUIRE(loop.selector().get_map().count(s.fileno()) == 0);
}

// ----------------------------------------------------------------------------------- echo

Coroutine<> echo_server(Socket* listener) {
    auto [conn, peer] = co_await aio::sock_accept(*listener);
    REQUIRE(peer.port() != 0);
    std::vector<char> buf(65536);
    for (;;) {
        std::size_t n = co_await aio::sock_recv_into(conn, std::span<char>(buf.data(), buf.size()));
        if (n == 0) break;  // the client shut its side: we are done
        co_await aio::sock_sendall(conn, std::string_view(buf.data(), n));
    }
}

Coroutine<> echo_scenario(const char* host) {
    Socket listener = listening_socket(host);
    auto server = aio::create_task(echo_server(&listener));
    Socket client(listener.getsockname().family());
    co_await aio::sock_connect(client, listener.getsockname());
    REQUIRE(client.peer_description() == listener.getsockname().to_string());
    for (std::size_t size : {std::size_t(1), std::size_t(100), std::size_t(70000), std::size_t(1) << 20}) {
        INFO("message of " << size << " bytes");
        const std::string message = pattern(size);
        // Send and receive at once: a megabyte does not fit in the socket buffers, so
        // sending it all before reading would deadlock against the echo.
        auto sending = aio::create_task(aio::sock_sendall(client, message));
        std::string echoed = co_await aio::sock_recv_exactly(client, size);
        co_await sending;
        REQUIRE(echoed == message);
    }
    client.shutdown(SHUT_WR);
    co_await server;
    std::string rest = co_await aio::sock_recv(client, 10);
    REQUIRE(rest.empty());  // EOF: the server closed after our shutdown
    require_unregistered(client);
}

// ------------------------------------------------------------------------- partial writes

Coroutine<> slow_reader(Socket* conn, std::string* received, std::size_t total) {
    co_await aio::sleep(0.1);  // let the sender fill every buffer first
    while (received->size() < total) {
        std::string chunk = co_await aio::sock_recv(*conn, 8192);
        if (chunk.empty()) break;
        *received += chunk;
    }
}

Coroutine<> partial_write_scenario() {
    Socket listener = listening_socket();
    Socket client(AF_INET);
    // Tiny (the kernel doubles it): each send() takes a few KiB at most. (Not a tiny receive
    // buffer too: TCP's window would then crawl at a few KiB per delayed ACK.)
    client.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    co_await aio::sock_connect(client, listener.getsockname());
    auto [server, peer] = co_await aio::sock_accept(listener);
    const std::string message = pattern(std::size_t(1) << 20);
    std::string received;
    auto reader = aio::create_task(slow_reader(&server, &received, message.size()));
    auto sender = aio::create_task(aio::sock_sendall(client, message));
    co_await aio::sleep(0.05);
    // The reader is asleep and the buffers are full: send() took part of the data and the
    // sender now waits for the socket to become writable.
    REQUIRE_FALSE(sender->done());
    REQUIRE(aio::get_running_selector_loop().has_writer(client.fileno()));
    co_await sender;
    co_await reader;
    REQUIRE(received.size() == message.size());
    REQUIRE(received == message);
    require_unregistered(client);
}

}  // namespace

NET_TEST_CASE("sock_*: an echo over IPv4 and IPv6, with messages up to 1 MiB, on each selector", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        for (const char* host : {"127.0.0.1", "::1"}) {
            INFO("selector " << kind << ", " << host);
            run_on(kind, echo_scenario(host));
        }
    }
}

NET_TEST_CASE("sock_sendall: a tiny SO_SNDBUF makes send() partial; it waits writable and sends the rest",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, partial_write_scenario());
    }
}

// --------------------------------------------------------------------------------- errors

namespace {

Coroutine<> refused_scenario(const char* host) {
    // Bound but not listening: the kernel answers a SYN with a reset.
    aio::SockAddr address = aio::SockAddr::ip(host, 0);
    Socket bound(address.family());
    bound.bind(address);
    const aio::SockAddr target = bound.getsockname();
    Socket client(target.family());
    try {
        co_await aio::sock_connect(client, target);
        FAIL("connected to a port nobody listens on");
    } catch (const aio::ConnectionRefusedError& e) {
        REQUIRE(e.error_number() == ECONNREFUSED);
        REQUIRE(contains(e.what(), "Connection refused"));
        REQUIRE(contains(e.what(), target.to_string()));  // names the peer
    }
    require_unregistered(client);
}

Coroutine<> closed_mid_stream_scenario() {
    auto [client, server] = co_await connected_pair();
    co_await aio::sock_sendall(server, "0123456789");  // ten of the twenty expected
    server.close();
    try {
        co_await aio::sock_recv_exactly(client, 20);
        FAIL("read 20 bytes of 10");
    } catch (const aio::IncompleteReadError& e) {
        REQUIRE(e.partial == "0123456789");
        REQUIRE(e.expected == 20);
        REQUIRE(contains(e.what(), "10 bytes read on a total of 20"));
        REQUIRE(contains(e.what(), client.peer_description()));
        REQUIRE(contains(e.what(), "127.0.0.1:"));
    }
    std::string eof = co_await aio::sock_recv(client, 10);
    REQUIRE(eof.empty());
}

// SO_LINGER with a zero timeout: close() sends a reset instead of the orderly FIN.
void reset_on_close(Socket& s) {
    linger l{1, 0};
    REQUIRE(::setsockopt(s.fileno(), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
    s.close();
}

Coroutine<> reset_scenario() {
    auto [client, server] = co_await connected_pair("::1");
    auto reader = aio::create_task(aio::sock_recv(client, 100));  // waiting when the reset comes
    co_await aio::sleep(0.01);
    reset_on_close(server);
    try {
        co_await reader;
        FAIL("recv after a reset returned");
    } catch (const aio::ConnectionResetError& e) {
        REQUIRE(e.error_number() == ECONNRESET);
        REQUIRE(contains(e.what(), "Connection reset by peer"));
        REQUIRE(contains(e.what(), "recv from [::1]:"));
    }
    require_unregistered(client);
}

Coroutine<> broken_pipe_scenario() {
    auto [client, server] = co_await connected_pair();
    server.close();  // an orderly close: our first send is accepted, and answered with a reset
    co_await aio::sock_sendall(client, "x");
    co_await aio::sleep(0.05);
    try {
        // A few sends: the first after the reset fails with EPIPE (or ECONNRESET).
        for (int i = 0; i < 10; ++i) {
            co_await aio::sock_sendall(client, pattern(1000));
            co_await aio::sleep(0.01);
        }
        FAIL("sending to a closed peer kept working");
    } catch (const aio::ConnectionError& e) {
        const bool pipe = dynamic_cast<const aio::BrokenPipeError*>(&e) != nullptr;
        const bool reset = dynamic_cast<const aio::ConnectionResetError*>(&e) != nullptr;
        REQUIRE((pipe || reset));
        REQUIRE(contains(e.what(), "send to 127.0.0.1:"));
    }
}

}  // namespace

NET_TEST_CASE("sock_connect: nobody listening raises ConnectionRefusedError naming the address", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        for (const char* host : {"127.0.0.1", "::1"}) {
            INFO("selector " << kind << ", " << host);
            run_on(kind, refused_scenario(host));
        }
    }
}

NET_TEST_CASE("sock_recv_exactly: the peer closing mid-stream raises IncompleteReadError with what arrived",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, closed_mid_stream_scenario());
    }
}

NET_TEST_CASE("sock_recv: a peer that resets (SO_LINGER 0) raises ConnectionResetError naming it", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, reset_scenario());
    }
}

NET_TEST_CASE("sock_sendall: writing to a closed peer raises BrokenPipeError, and SIGPIPE does not end the process",
              "[stage4]") {
    // SIGPIPE at its default ends the process: this test would not get to its end.
    struct sigaction dfl {}, saved {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGPIPE, &dfl, &saved);
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, broken_pipe_scenario());
    }
    ::sigaction(SIGPIPE, &saved, nullptr);
}

// ---------------------------------------------------------------------------- getaddrinfo

namespace {

Coroutine<> resolve_scenario() {
    auto v4 = co_await aio::getaddrinfo("127.0.0.1", 8080);  // numeric: answered without a thread
    REQUIRE(v4.size() == 1);
    REQUIRE(v4[0].address.to_string() == "127.0.0.1:8080");
    auto v6 = co_await aio::getaddrinfo("::1", 443, AF_INET6);
    REQUIRE(v6.size() == 1);
    REQUIRE(v6[0].address.to_string() == "[::1]:443");
    auto local = co_await aio::getaddrinfo("localhost", 80, AF_INET);  // through the executor
    REQUIRE_FALSE(local.empty());
    REQUIRE(local[0].address.to_string() == "127.0.0.1:80");
    REQUIRE(local[0].type == SOCK_STREAM);
    try {
        // .invalid is reserved (RFC 2606): it never resolves, and asks no real server.
        co_await aio::getaddrinfo("no-such-host.invalid", 80);
        FAIL("no-such-host.invalid resolved");
    } catch (const aio::gaierror& e) {
        REQUIRE(e.error_number() != 0);
        REQUIRE(contains(e.what(), "no-such-host.invalid"));
    }
}

}  // namespace

NET_TEST_CASE("getaddrinfo: numeric hosts at once, names on the executor, an unresolvable name raises gaierror",
              "[stage4]") {
    run_on("poll", resolve_scenario(), 20.0);  // a slow resolver may take seconds to say no
}

// --------------------------------------------------------------------------- cancellation

namespace {

// Each scenario: a wait that cannot finish, ended by cancel() or by wait_for's timeout;
// then nothing of it is registered, and the socket still works.
enum class End { cancel, wait_for_timeout };

template <typename T>
Coroutine<> end_wait(Coroutine<T> wait, End how) {
    if (how == End::wait_for_timeout) {
        try {
            co_await aio::wait_for(std::move(wait), 0.05);
            FAIL("the wait finished");
        } catch (const aio::TimeoutError&) {
        }
        co_return;
    }
    auto task = aio::create_task(std::move(wait));
    co_await aio::sleep(0.02);
    REQUIRE_FALSE(task->done());
    task->cancel();
    try {
        co_await task;
        FAIL("the wait finished");
    } catch (const aio::CancelledError&) {
    }
}

Coroutine<> cancel_recv_scenario(End how) {
    auto [client, server] = co_await connected_pair();
    co_await end_wait(aio::sock_recv(client, 10), how);
    require_unregistered(client);
    // A later reader on the same fd works.
    auto reader = aio::create_task(aio::sock_recv(client, 10));
    co_await aio::sleep(0.01);
    co_await aio::sock_sendall(server, "late");
    std::string got = co_await reader;
    REQUIRE(got == "late");
}

Coroutine<> cancel_accept_scenario(End how) {
    Socket listener = listening_socket("::1");
    co_await end_wait(aio::sock_accept(listener), how);
    require_unregistered(listener);
    auto accepting = aio::create_task(aio::sock_accept(listener));
    Socket client(AF_INET6);
    co_await aio::sock_connect(client, listener.getsockname());
    auto accepted = co_await accepting;
    REQUIRE(accepted.first.fileno() >= 0);
}

Coroutine<> cancel_sendall_scenario(End how) {
    auto [client, server] = co_await connected_pair();
    client.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    const std::string big = pattern(std::size_t(1) << 20);  // far more than the buffers hold
    co_await end_wait(aio::sock_sendall(client, big), how);
    require_unregistered(client);
    // The socket still works: drain what the first sendall got through, then a second
    // sendall's marker arrives.
    auto sending = aio::create_task(aio::sock_sendall(client, "|END|"));
    std::string received;
    while (!contains(received, "|END|")) {
        std::string chunk = co_await aio::sock_recv(server, 65536);
        REQUIRE_FALSE(chunk.empty());
        received += chunk;
    }
    co_await sending;
    REQUIRE(received.size() > 5);
}

Coroutine<> cancel_connect_scenario(End how) {
    // A listener with a backlog of 0 and a connection nobody accepts: its queue is full,
    // so the kernel drops the next SYN and that connect stays in progress.
    Socket listener = listening_socket("127.0.0.1", 0);
    Socket first(AF_INET);
    co_await aio::sock_connect(first, listener.getsockname());
    Socket second(AF_INET);
    co_await end_wait(aio::sock_connect(second, listener.getsockname()), how);
    require_unregistered(second);
}

}  // namespace

NET_TEST_CASE("cancellation: sock_recv, sock_accept, sock_sendall and sock_connect leave no registration",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        for (End how : {End::cancel, End::wait_for_timeout}) {
            INFO("selector " << kind << (how == End::cancel ? ", cancel()" : ", wait_for's timeout"));
            run_on(kind, cancel_recv_scenario(how));
            run_on(kind, cancel_accept_scenario(how));
            run_on(kind, cancel_sendall_scenario(how));
            run_on(kind, cancel_connect_scenario(how));
        }
    }
}

// ----------------------------------------------------------------------------------- misuse

namespace {

Coroutine<> two_readers_scenario() {
    auto [client, server] = co_await connected_pair();
    auto first = aio::create_task(aio::sock_recv(client, 10));
    co_await aio::sleep(0.01);
    try {
        co_await aio::sock_recv(client, 10);
        FAIL("a second reader was let in");
    } catch (const aio::RuntimeError& e) {
        REQUIRE(contains(e.what(), "another task is already waiting to read from fd"));
    }
    co_await aio::sock_sendall(server, "hi");
    std::string got = co_await first;  // the first reader was not disturbed
    REQUIRE(got == "hi");
}

Coroutine<> recv_on_plain_loop() {
    auto [a, b] = aio::socketpair();
    co_await aio::sock_recv(a, 1);
}

}  // namespace

NET_TEST_CASE("sock_recv: a second task reading the same socket at once raises RuntimeError", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, two_readers_scenario());
    }
}

NET_TEST_CASE("sock_*: on stage 2's loop, a RuntimeError says to run on a SelectorEventLoop", "[stage4]") {
    try {
        aio::run(recv_on_plain_loop());
        FAIL("sock_recv ran on a loop without a selector");
    } catch (const aio::RuntimeError& e) {
        REQUIRE(contains(e.what(), "new_selector_event_loop"));
    }
}
