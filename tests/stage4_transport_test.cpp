// Stage 4 tests: transports and protocols (SelectorSocketTransport, create_connection). An
// echo over a protocol on each selector, IPv4 and IPv6; the order of the callbacks; writes
// that the socket takes only in part (tiny SO_SNDBUF), the write buffer and the water marks
// (pause_writing/resume_writing, set_write_buffer_limits); pause_reading; writelines,
// write_eof and a half-open connection; a peer closing, a peer resetting, nobody listening,
// a name that does not resolve; a protocol callback that throws; writes after close; and a
// loop closed with connections open, which ends them and frees their fds.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/selector_transport.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/net_test_support.hpp"
#include "tests/transport_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace transport_test_support;
using aio::Coroutine;
using aio::Ref;
using aio::Socket;

// A connection from a Recorder (client side) to a server whose protocols are made by
// `server_factory`; returns the client's protocol, connected.
struct Connected {
    Ref<aio::Server> server;
    Ref<Recorder> client;
    aio::SockAddr address;
};

template <typename Factory>
Coroutine<Connected> connect_to_new_server(const Factory& server_factory, const char* host = "127.0.0.1") {
    Connected c;
    auto serving = aio::create_server(server_factory, host, 0);
    c.server = co_await std::move(serving);
    c.address = c.server->sockets()[0].getsockname();
    c.client = aio::make_ref<Recorder>();
    Ref<Recorder> client = c.client;
    auto client_factory = [client] { return client; };
    auto connecting = aio::create_connection(client_factory, host, c.address.port());
    auto made = co_await std::move(connecting);
    REQUIRE(made.second.get() == client.get());  // the protocol the factory made
    REQUIRE(made.first.get() == client->transport.get());
    co_return c;
}

// A server factory whose protocols do not read until told (pause_reading_at_start), so the
// client's writes back up; the last protocol it made is kept in *made.
auto unread_server_factory(std::shared_ptr<Ref<Recorder>> made) {
    return [made] {
        *made = aio::make_ref<Recorder>();
        (*made)->pause_reading_at_start = true;
        return *made;
    };
}

// ----------------------------------------------------------------------------------- echo

Coroutine<> echo_scenario(const char* host) {
    auto echo = [] { return aio::make_ref<Echo>(); };
    auto connecting = connect_to_new_server(echo, host);
    Connected c = co_await std::move(connecting);
    Ref<aio::Transport> transport = c.client->transport;  // (the Recorder lets go at connection_lost)
    aio::Transport& t = *transport;
    REQUIRE(t.get_extra_info().peername.to_string() == c.address.to_string());
    REQUIRE(t.get_extra_info().sockname.family() == c.address.family());
    REQUIRE(t.get_extra_info().socket != nullptr);
    REQUIRE(t.get_extra_info().socket->getsockopt(IPPROTO_TCP, TCP_NODELAY) != 0);  // as asyncio sets it
    REQUIRE(t.is_reading());
    std::string sent;
    for (std::size_t size : {std::size_t(1), std::size_t(100), std::size_t(70000), std::size_t(1) << 20}) {
        INFO("message of " << size << " bytes");
        const std::string message = pattern(size);
        t.write(message);
        sent += message;
        co_await c.client->wait_for_bytes(sent.size());
        REQUIRE(c.client->received == sent);
    }
    // writelines: pieces, empty ones among them, leave as one stream.
    t.writelines({"first ", "", "second ", "third"});
    sent += "first second third";
    co_await c.client->wait_for_bytes(sent.size());
    REQUIRE(c.client->received == sent);
    REQUIRE(t.get_write_buffer_size() == 0);

    t.close();
    REQUIRE(t.is_closing());
    REQUIRE_FALSE(t.is_reading());
    Ref<aio::Future<>> lost = c.client->lost;
    co_await lost;
    REQUIRE(c.client->events == std::vector<std::string>{"made", "data", "lost"});
    REQUIRE(t.get_extra_info().socket == nullptr);
    c.server->close();
    co_await c.server->wait_closed();  // the server's side of the connection is gone too
    require_nothing_registered();
}

}  // namespace

NET_TEST_CASE("transport: an echo over a protocol, IPv4 and IPv6, messages up to 1 MiB, on each selector",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        for (const char* host : {"127.0.0.1", "::1"}) {
            INFO("selector " << kind << ", " << host);
            run_on(kind, echo_scenario(host));
        }
    }
}

// ------------------------------------------------------------------ partial writes, marks

namespace {

// In these, the server's protocol does not read until told (pause_reading_at_start), and
// the client has a tiny send buffer: the client's writes soon go into its write buffer.
Coroutine<> partial_write_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = unread_server_factory(server_side);
    auto connecting = connect_to_new_server(factory);
    Connected c = co_await std::move(connecting);
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    Ref<aio::Transport> transport = c.client->transport;  // (the Recorder lets go at connection_lost)
    aio::Transport& t = *transport;
    t.get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    const int fd = t.get_extra_info().socket->fileno();
    co_await aio::sleep(0.01);  // the server's connection_made has run: it does not read
    REQUIRE(*server_side);
    REQUIRE_FALSE((*server_side)->transport->is_reading());

    const std::string message = pattern(std::size_t(1) << 20);
    t.write(message);  // send() takes what fits; the rest waits in the buffer, with a writer
    REQUIRE(t.get_write_buffer_size() > 0);
    REQUIRE(t.get_write_buffer_size() < message.size());
    REQUIRE(loop.has_writer(fd));
    REQUIRE(c.client->events.back() == "pause");  // far above 64 KiB
    REQUIRE(c.client->buffer_at_pause.back() > 64 * 1024);

    (*server_side)->transport->resume_reading();
    co_await (*server_side)->wait_for_bytes(message.size());
    REQUIRE((*server_side)->received == message);
    REQUIRE(t.get_write_buffer_size() == 0);
    REQUIRE_FALSE(loop.has_writer(fd));  // the writer removed itself once the buffer drained
    REQUIRE(c.client->saw("resume"));
    REQUIRE(c.client->buffer_at_resume.back() <= 16 * 1024);
    t.close();
    c.server->close();
    co_await c.server->wait_closed();
    require_nothing_registered();
}

Coroutine<> water_marks_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = unread_server_factory(server_side);
    auto connecting = connect_to_new_server(factory);
    Connected c = co_await std::move(connecting);
    Ref<aio::Transport> transport = c.client->transport;  // (the Recorder lets go at connection_lost)
    aio::Transport& t = *transport;
    REQUIRE(t.get_write_buffer_limits().high == 64 * 1024);  // asyncio's defaults
    REQUIRE(t.get_write_buffer_limits().low == 16 * 1024);
    REQUIRE_THROWS_AS(t.set_write_buffer_limits(100, 200), std::invalid_argument);  // high < low
    t.set_write_buffer_limits(std::nullopt, 1000);
    REQUIRE(t.get_write_buffer_limits().high == 4000);  // only low: high = 4 * low
    t.set_write_buffer_limits(40000);
    REQUIRE(t.get_write_buffer_limits().low == 10000);  // only high: low = high / 4
    t.get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    co_await aio::sleep(0.01);

    // Write 1000 bytes at a time: pause_writing comes with the first write that takes the
    // buffer above 40000, and not before.
    const std::string chunk = pattern(1000);
    std::size_t written = 0;
    while (!c.client->saw("pause")) {
        REQUIRE(t.get_write_buffer_size() <= 40000);
        t.write(chunk);
        written += chunk.size();
        REQUIRE(written < (std::size_t(8) << 20));  // (the kernel's buffers are not that big)
    }
    REQUIRE(c.client->buffer_at_pause == std::vector<std::size_t>{t.get_write_buffer_size()});
    REQUIRE(t.get_write_buffer_size() > 40000);
    REQUIRE(t.get_write_buffer_size() <= 41000);
    t.write(chunk);  // paused already: no second pause_writing
    written += chunk.size();
    REQUIRE(c.client->buffer_at_pause.size() == 1);

    // Lowering the high mark under the buffer pauses at once; raising it does not resume (only
    // draining to the low mark does).
    c.client->events.clear();
    c.client->buffer_at_pause.clear();
    t.set_write_buffer_limits(1 << 20, 1000);
    REQUIRE(c.client->events.empty());

    (*server_side)->transport->resume_reading();
    co_await (*server_side)->wait_for_bytes(written);
    REQUIRE(c.client->events == std::vector<std::string>{"resume"});
    REQUIRE(c.client->buffer_at_resume.back() <= 1000);

    // A buffer above a newly set high mark pauses the protocol at once.
    (*server_side)->transport->pause_reading();
    co_await aio::sleep(0.01);
    c.client->events.clear();
    while (t.get_write_buffer_size() == 0) {  // fill the kernel's buffers first
        t.write(chunk);
        written += chunk.size();
    }
    REQUIRE(c.client->events.empty());  // (high is 1 MiB now)
    t.set_write_buffer_limits(t.get_write_buffer_size() - 1);
    REQUIRE(c.client->events == std::vector<std::string>{"pause"});
    (*server_side)->transport->resume_reading();
    co_await (*server_side)->wait_for_bytes(written);
    REQUIRE(c.client->events == std::vector<std::string>{"pause", "resume"});
    REQUIRE((*server_side)->received.size() == written);
    t.close();
    c.server->close();
    co_await c.server->wait_closed();
}

Coroutine<> pause_reading_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = [server_side] { return *server_side = aio::make_ref<Recorder>(); };
    auto connecting = connect_to_new_server(factory);
    Connected c = co_await std::move(connecting);
    Ref<aio::Transport> transport = c.client->transport;  // (the Recorder lets go at connection_lost)
    aio::Transport& t = *transport;
    t.write("before");
    co_await (*server_side)->wait_for_bytes(6);
    Recorder& server = **server_side;
    server.transport->pause_reading();
    REQUIRE_FALSE(server.transport->is_reading());
    server.transport->pause_reading();  // twice: nothing more
    t.write("during");
    co_await aio::sleep(0.05);
    REQUIRE(server.received == "before");  // data_received was not called
    server.transport->resume_reading();
    REQUIRE(server.transport->is_reading());
    co_await server.wait_for_bytes(12);
    REQUIRE(server.received == "beforeduring");
    t.close();
    c.server->close();
    co_await c.server->wait_closed();
}

}  // namespace

NET_TEST_CASE("transport: write() sends what the socket takes and buffers the rest; the writer drains it",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, partial_write_scenario());
    }
}

NET_TEST_CASE("transport: pause_writing/resume_writing at the water marks; set_write_buffer_limits",
              "[stage4][transport]") {
    run_on("epoll", water_marks_scenario());
}

NET_TEST_CASE("transport: pause_reading stops data_received until resume_reading", "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, pause_reading_scenario());
    }
}

// ------------------------------------------------------------------- EOF, half-close, errors

namespace {

// The peer (a plain socket) sends some bytes and shuts its sending side: our protocol gets
// the bytes, then eof_received; keeping the connection open, it still writes its answer.
Coroutine<> half_close_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = [server_side] {
        *server_side = aio::make_ref<Recorder>();
        (*server_side)->keep_open_on_eof = true;
        return *server_side;
    };
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    Socket peer(AF_INET);
    co_await aio::sock_connect(peer, server->sockets()[0].getsockname());
    co_await aio::sock_sendall(peer, "question");
    peer.shutdown(SHUT_WR);
    co_await aio::sleep(0.01);
    Recorder& ours = **server_side;
    co_await ours.wait_for_bytes(100);  // returns at EOF
    REQUIRE(ours.events == std::vector<std::string>{"made", "data", "eof"});
    REQUIRE(ours.received == "question");
    REQUIRE_FALSE(ours.transport->is_closing());
    REQUIRE(ours.transport->can_write_eof());
    ours.transport->writelines({"ans", "wer"});
    ours.transport->write_eof();  // our side done too: the peer reads EOF after the answer
    REQUIRE_THROWS_AS(ours.transport->write("more"), aio::RuntimeError);
    std::string got;
    for (;;) {
        std::string chunk = co_await aio::sock_recv(peer, 100);
        if (chunk.empty()) break;
        got += chunk;
    }
    REQUIRE(got == "answer");
    ours.transport->close();
    Ref<aio::Future<>> lost = ours.lost;
    co_await lost;
    REQUIRE(ours.events.back() == "lost");
    server->close();
    co_await server->wait_closed();
}

// The peer closes: eof_received returns false (the default), so the transport closes.
Coroutine<> peer_closes_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = [server_side] { return *server_side = aio::make_ref<Recorder>(); };
    auto serving = aio::create_server(factory, "::1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    {
        Socket peer(AF_INET6);
        co_await aio::sock_connect(peer, server->sockets()[0].getsockname());
        co_await aio::sock_sendall(peer, "0123456789");
    }  // closed here, mid-conversation
    co_await aio::sleep(0.01);
    Ref<aio::Future<>> lost = (*server_side)->lost;
    co_await lost;
    REQUIRE((*server_side)->events == std::vector<std::string>{"made", "data", "eof", "lost"});
    REQUIRE((*server_side)->received == "0123456789");
    REQUIRE_FALSE((*server_side)->lost_with);  // an orderly close
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

// SO_LINGER with a zero timeout: close() sends a reset instead of the orderly FIN.
void reset_on_close(Socket& s) {
    linger l{1, 0};
    REQUIRE(::setsockopt(s.fileno(), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
    s.close();
}

Coroutine<> peer_resets_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = [server_side] { return *server_side = aio::make_ref<Recorder>(); };
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    Socket peer(AF_INET);
    co_await aio::sock_connect(peer, server->sockets()[0].getsockname());
    co_await aio::sleep(0.01);
    reset_on_close(peer);
    Ref<aio::Future<>> lost = (*server_side)->lost;
    co_await lost;
    REQUIRE((*server_side)->lost_with);
    try {
        std::rethrow_exception((*server_side)->lost_with);
    } catch (const aio::ConnectionResetError& e) {
        REQUIRE(e.error_number() == ECONNRESET);
        REQUIRE(contains(e.what(), "recv from 127.0.0.1:"));  // names the peer
    }
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

Coroutine<> refused_scenario(const char* host) {
    aio::SockAddr address = aio::SockAddr::ip(host, 0);
    Socket bound(address.family());  // bound, not listening: the kernel answers with a reset
    bound.bind(address);
    const aio::SockAddr target = bound.getsockname();
    Ref<Recorder> never = aio::make_ref<Recorder>();
    auto factory = [never] { return never; };
    try {
        auto connecting = aio::create_connection(factory, host, target.port());
        co_await std::move(connecting);
        FAIL("connected to a port nobody listens on");
    } catch (const aio::ConnectionRefusedError& e) {
        REQUIRE(e.error_number() == ECONNREFUSED);
        REQUIRE(contains(e.what(), target.to_string()));
    }
    REQUIRE(never->events.empty());
    require_nothing_registered();
}

Coroutine<> unresolvable_scenario() {
    Ref<Recorder> never = aio::make_ref<Recorder>();
    auto factory = [never] { return never; };
    try {
        // .invalid is reserved (RFC 2606): it never resolves, and asks no real server.
        auto connecting = aio::create_connection(factory, "no-such-host.invalid", 80);
        co_await std::move(connecting);
        FAIL("no-such-host.invalid resolved");
    } catch (const aio::gaierror& e) {
        REQUIRE(contains(e.what(), "no-such-host.invalid"));
    }
    REQUIRE(never->events.empty());
}

// connect_any, create_connection's first half: each address in turn, the first that accepts
// wins; when all fail, one error, or "Multiple exceptions" naming each.
Coroutine<> each_address_scenario() {
    Socket listener = listening_socket("127.0.0.1");
    aio::SockAddr closed6 = aio::SockAddr::ip("::1", 0);
    Socket bound6(AF_INET6);
    bound6.bind(closed6);
    closed6 = bound6.getsockname();
    auto info = [](const aio::SockAddr& a) { return aio::AddrInfo{a.family(), SOCK_STREAM, 0, "", a}; };
    std::vector<aio::AddrInfo> addresses{info(closed6), info(listener.getsockname())};
    auto connecting = aio::detail::connect_any(addresses);
    auto connected = co_await std::move(connecting);
    REQUIRE(connected.second.to_string() == listener.getsockname().to_string());  // the second one
    REQUIRE(connected.first.fileno() >= 0);

    aio::SockAddr closed4 = aio::SockAddr::ip("127.0.0.1", 0);
    Socket bound4(AF_INET);
    bound4.bind(closed4);
    closed4 = bound4.getsockname();
    std::vector<aio::AddrInfo> both_closed{info(closed6), info(closed4)};
    try {
        auto failing = aio::detail::connect_any(both_closed);
        co_await std::move(failing);
        FAIL("connected to two closed ports");
    } catch (const aio::OSError& e) {
        REQUIRE(contains(e.what(), "Multiple exceptions: "));
        REQUIRE(contains(e.what(), closed6.to_string()));
        REQUIRE(contains(e.what(), closed4.to_string()));
    }
    require_nothing_registered();
}

}  // namespace

NET_TEST_CASE("transport: a half-open connection: eof_received returns true, then write, write_eof, close",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, half_close_scenario());
    }
}

NET_TEST_CASE("transport: a peer closing mid-stream: data, eof_received, connection_lost(null)", "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, peer_closes_scenario());
    }
}

NET_TEST_CASE("transport: a peer resetting: connection_lost(ConnectionResetError naming the peer)",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, peer_resets_scenario());
    }
}

NET_TEST_CASE("create_connection: nobody listening raises ConnectionRefusedError naming the address",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        for (const char* host : {"127.0.0.1", "::1"}) {
            INFO("selector " << kind << ", " << host);
            run_on(kind, refused_scenario(host));
        }
    }
}

NET_TEST_CASE("create_connection: a name that does not resolve raises gaierror", "[stage4][transport]") {
    run_on("poll", unresolvable_scenario(), 20.0);  // a slow resolver may take seconds to say no
}

NET_TEST_CASE("create_connection: tries each address in turn; all failing differently: 'Multiple exceptions'",
              "[stage4][transport]") {
    run_on("epoll", each_address_scenario());
}

// ------------------------------------------------------------------- misuse and failures

namespace {

// A protocol whose data_received throws.
class Throwing : public aio::Protocol {
public:
    aio::Ref<aio::Future<>> lost = aio::create_future();
    std::exception_ptr lost_with;
    void data_received(std::string_view) override { throw std::runtime_error("boom in data_received"); }
    void connection_lost(std::exception_ptr exc) override {
        lost_with = exc;
        lost->set_result();
    }
};

Coroutine<> throwing_callback_scenario(loop_test_support::Reports* reports) {
    auto server_side = std::make_shared<Ref<Throwing>>();
    auto factory = [server_side] { return *server_side = aio::make_ref<Throwing>(); };
    auto connecting = connect_to_new_server(factory);
    Connected c = co_await std::move(connecting);
    c.client->transport->write("hello");
    co_await c.client->wait_for_bytes(1);  // returns at EOF: the server aborted
    Ref<aio::Future<>> client_lost = c.client->lost;
    co_await client_lost;
    REQUIRE(c.client->received.empty());
    Ref<aio::Future<>> server_lost = (*server_side)->lost;
    co_await server_lost;
    REQUIRE(what_of((*server_side)->lost_with) == "boom in data_received");
    REQUIRE(count_reports(*reports, "Fatal error: protocol.data_received() call failed") == 1);
    REQUIRE(reports->back().exception == "boom in data_received");

    // The loop goes on: the server serves the next connection.
    c.server->close();
    co_await c.server->wait_closed();
    auto echo = [] { return aio::make_ref<Echo>(); };
    auto again = connect_to_new_server(echo);
    Connected d = co_await std::move(again);
    d.client->transport->write("still alive");
    co_await d.client->wait_for_bytes(11);
    REQUIRE(d.client->received == "still alive");
    d.client->transport->close();
    d.server->close();
    co_await d.server->wait_closed();
}

class ThrowsOnConnect : public aio::Protocol {
public:
    void connection_made(aio::Transport&) override { throw std::runtime_error("no thanks"); }
};

Coroutine<> throwing_connection_made_scenario(loop_test_support::Reports* reports) {
    auto echo = [] { return aio::make_ref<Echo>(); };
    auto serving = aio::create_server(echo, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    auto factory = [] { return aio::make_ref<ThrowsOnConnect>(); };
    try {
        auto connecting = aio::create_connection(factory, "127.0.0.1", server->sockets()[0].getsockname().port());
        co_await std::move(connecting);
        FAIL("create_connection returned although connection_made threw");
    } catch (const std::runtime_error& e) {
        REQUIRE(std::string(e.what()) == "no thanks");
    }
    REQUIRE(count_reports(*reports, "protocol.connection_made() call failed") == 1);
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

// After close() (and after write_eof()), what asyncio does: writes are ignored once the
// connection is lost; close and abort again are harmless.
Coroutine<> after_close_scenario(std::vector<std::string>* log) {
    auto echo = [] { return aio::make_ref<Echo>(); };
    auto connecting = connect_to_new_server(echo);
    Connected c = co_await std::move(connecting);
    Ref<aio::Transport> t = c.client->transport;
    t->close();
    for (int i = 0; i < 10; ++i) t->write("ignored");  // no throw; the 5th is logged, once
    t->writelines({"also", "ignored"});
    t->close();
    t->abort();
    t->pause_reading();
    t->resume_reading();
    REQUIRE_FALSE(t->is_reading());
    Ref<aio::Future<>> lost = c.client->lost;
    co_await lost;
    t->write("after connection_lost");
    t->close();
    REQUIRE(t->get_protocol() == nullptr);
    REQUIRE(c.client->events == std::vector<std::string>{"made", "lost"});
    REQUIRE(std::count_if(log->begin(), log->end(), [](auto& l) { return contains(l, "after the connection was lost"); }) == 1);
    c.server->close();
    co_await c.server->wait_closed();
}

// abort(): the buffer is dropped, connection_lost(null) follows.
Coroutine<> abort_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = unread_server_factory(server_side);
    auto connecting = connect_to_new_server(factory);
    Connected c = co_await std::move(connecting);
    Ref<aio::Transport> transport = c.client->transport;  // (the Recorder lets go at connection_lost)
    aio::Transport& t = *transport;
    t.get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    t.write(pattern(std::size_t(4) << 20));
    REQUIRE(t.get_write_buffer_size() > 0);
    t.abort();
    REQUIRE(t.get_write_buffer_size() == 0);
    Ref<aio::Future<>> lost = c.client->lost;
    co_await lost;
    REQUIRE(c.client->events.back() == "lost");
    c.server->close();
    c.server->close_clients();
    co_await c.server->wait_closed();
    require_nothing_registered();
}

// A protocol that aborts its transport from resume_writing: the writer callback that has
// just drained the buffer is still registered then; nothing of it may outlive the connection.
class AbortsOnResume : public Recorder {
public:
    void resume_writing() override {
        Recorder::resume_writing();
        transport->abort();
    }
};

Coroutine<> abort_on_resume_scenario() {
    auto server_side = std::make_shared<Ref<Recorder>>();
    auto factory = unread_server_factory(server_side);
    auto serving = aio::create_server(factory, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    Ref<AbortsOnResume> client = aio::make_ref<AbortsOnResume>();
    auto client_factory = [client] { return client; };
    auto connecting = aio::create_connection(client_factory, "127.0.0.1", server->sockets()[0].getsockname().port());
    auto made = co_await std::move(connecting);
    made.first->get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    co_await aio::sleep(0.01);
    made.first->write(pattern(std::size_t(4) << 20));
    REQUIRE(client->saw("pause"));
    (*server_side)->transport->resume_reading();
    Ref<aio::Future<>> lost = client->lost;
    co_await lost;
    REQUIRE(client->saw("resume"));
    REQUIRE(client->events.back() == "lost");
    server->close();
    server->close_clients();
    co_await server->wait_closed();
    require_nothing_registered();  // no writer left behind for the closed fd
}

}  // namespace

NET_TEST_CASE("transport: a protocol callback that throws is reported, its connection aborted; the loop goes on",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        loop_test_support::Reports reports;
        aio::run(aio::wait_for(throwing_callback_scenario(&reports), 5.0), [&reports, kind] {
            auto loop = std::make_unique<aio::SelectorEventLoop>(aio::make_selector(kind));
            loop_test_support::capture_reports(*loop, &reports);
            return std::unique_ptr<aio::EventLoop>(std::move(loop));
        });
    }
}

NET_TEST_CASE("create_connection: connection_made that throws is reported and raised; nothing is left open",
              "[stage4][transport]") {
    loop_test_support::Reports reports;
    aio::run(aio::wait_for(throwing_connection_made_scenario(&reports), 5.0), [&reports] {
        auto loop = std::make_unique<aio::SelectorEventLoop>(aio::make_selector("epoll"));
        loop_test_support::capture_reports(*loop, &reports);
        return std::unique_ptr<aio::EventLoop>(std::move(loop));
    });
}

NET_TEST_CASE("transport: after close(), writes are ignored and close/abort/pause do nothing", "[stage4][transport]") {
    std::vector<std::string> log;
    aio::run(aio::wait_for(after_close_scenario(&log), 5.0), [&log] {
        auto loop = std::make_unique<aio::SelectorEventLoop>(aio::make_selector("poll"));
        loop->set_logger([&log](std::string_view m) { log.emplace_back(m); });
        return std::unique_ptr<aio::EventLoop>(std::move(loop));
    });
}

NET_TEST_CASE("transport: abort() drops the write buffer and closes at once", "[stage4][transport]") {
    run_on("epoll", abort_scenario());
}

NET_TEST_CASE("transport: a protocol that aborts from resume_writing leaves no writer registered",
              "[stage4][transport]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, abort_on_resume_scenario());
    }
}

// ------------------------------------------------------------------------ the loop closes

namespace {

Coroutine<> leave_open_scenario(Ref<Recorder>* client_out) {
    auto echo = [] { return aio::make_ref<Echo>(); };
    auto connecting = connect_to_new_server(echo);
    Connected c = co_await std::move(connecting);
    c.client->transport->write("hi");
    co_await c.client->wait_for_bytes(2);
    *client_out = c.client;
    // Return with the server serving and the connection open; nobody keeps the transports.
}

}  // namespace

NET_TEST_CASE("transport: closing the loop ends the connections still open, tells their protocols, frees the fds",
              "[stage4][transport]") {
    Ref<Recorder> client;
    run_on("epoll", leave_open_scenario(&client));
    REQUIRE(client);
    REQUIRE(client->events.back() == "lost");  // connection_lost ran as the loop closed
    REQUIRE(client->transport == nullptr);
    // (and NET_TEST_CASE checks that no fd is left open)
}
