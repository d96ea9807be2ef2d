// Stage 4 tests: streams (StreamReader, StreamWriter, open_connection, start_server). An
// echo over streams on each selector, IPv4 and IPv6; readline, readuntil and its limit
// (LimitOverrunError keeps the data), read(-1), readexactly (0, and IncompleteReadError);
// a line trickling in many small packets; a large buffer read in small pieces (no O(n^2));
// the reader pausing its transport above twice its limit; drain blocking while the peer
// does not read; a peer resetting; wait_for and timeout() around readline, and cancelled
// open_connection, leaving no waiter and no registration; client_connected_cb as a plain
// function, and failing; a StreamWriter dropped without close().
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/locks.hpp"  // ValueError
#include "stage4_sockets/selector_transport.hpp"
#include "stage4_sockets/streams.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/net_test_support.hpp"
#include "tests/transport_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace transport_test_support;
using aio::Coroutine;
using aio::Ref;
using aio::StreamReader;
using aio::StreamWriter;
using aio::Socket;

using Streams = std::pair<Ref<StreamReader>, Ref<StreamWriter>>;

// Whether awaiting `aw` raises an E. (A co_await may not sit inside Catch's macros: each is
// a statement with temporaries around it, which g++ 12 miscompiles; stage1_generators/README.md's appendix.)
template <typename E, typename Aw>
Coroutine<bool> raises(Aw aw) {
    bool raised = false;
    try {
        co_await std::move(aw);
    } catch (const E&) {
        raised = true;
    }
    co_return raised;
}

// ----------------------------------------------------------------------------------- echo

// Echoes each line until EOF, then closes.
Coroutine<> echo_lines(Ref<StreamReader> reader, Ref<StreamWriter> writer) {
    for (;;) {
        std::string line = co_await reader->readline();
        if (line.empty()) break;
        writer->write(line);
        co_await writer->drain();
    }
    writer->close();
    co_await writer->wait_closed();
}

Coroutine<> echo_scenario(const char* host) {
    auto serving = aio::start_server(echo_lines, host, 0);
    Ref<aio::Server> server = co_await std::move(serving);
    const int port = server->sockets()[0].getsockname().port();
    auto [reader, writer] = co_await aio::open_connection(host, port);
    REQUIRE(writer->get_extra_info().peername.port() == port);
    for (std::size_t size : {std::size_t(0), std::size_t(10), std::size_t(1000), std::size_t(60000)}) {
        INFO("a line of " << size << " bytes");
        const std::string line = pattern(size) + "\n";
        writer->write(line);
        co_await writer->drain();
        std::string echoed = co_await reader->readline();
        REQUIRE(echoed == line);
    }
    writer->writelines({"a ", "b ", "c\n"});
    std::string joined = co_await reader->readline();
    REQUIRE(joined == "a b c\n");
    REQUIRE(writer->can_write_eof());
    writer->write_eof();  // the server's readline gets "": it closes
    std::string rest = co_await reader->read();
    REQUIRE(rest.empty());
    REQUIRE(reader->at_eof());
    writer->close();
    REQUIRE(writer->is_closing());
    co_await writer->wait_closed();
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

}  // namespace

NET_TEST_CASE("streams: an echo of lines over open_connection and start_server, IPv4 and IPv6, on each selector",
              "[stage4][streams]") {
    for (const std::string& kind : selector_kinds()) {
        for (const char* host : {"127.0.0.1", "::1"}) {
            INFO("selector " << kind << ", " << host);
            run_on(kind, echo_scenario(host));
        }
    }
}

// --------------------------------------------------------- the reader, fed by hand

namespace {

// readuntil past its limit: LimitOverrunError, and the data stays; readline past it:
// ValueError, and the line is dropped.
Coroutine<> limit_scenario() {
    Ref<StreamReader> r = aio::make_ref<StreamReader>(10);
    r->feed_data("0123456789abcdef");  // 16 bytes, no separator
    try {
        co_await r->readuntil("\n");
        FAIL("readuntil returned past the limit");
    } catch (const aio::LimitOverrunError& e) {
        REQUIRE(contains(e.what(), "Separator is not found"));
        REQUIRE(e.consumed == 16);
    }
    REQUIRE(r->buffered() == 16);  // kept
    r->feed_data("ghij\n");
    try {
        co_await r->readuntil("\n");
        FAIL("readuntil returned a chunk longer than the limit");
    } catch (const aio::LimitOverrunError& e) {
        REQUIRE(contains(e.what(), "Separator is found, but chunk is longer than limit"));
        REQUIRE(e.consumed == 20);
    }
    std::string taken = co_await r->read(20);  // what LimitOverrunError leaves can be read
    REQUIRE(taken == "0123456789abcdefghij");
    std::string nl = co_await r->readuntil("\n");
    REQUIRE(nl == "\n");

    r->feed_data("this line is too long\nshort\n");
    const bool raised1 = co_await raises<aio::ValueError>(r->readline());
    REQUIRE(raised1);
    std::string next = co_await r->readline();  // the long line was dropped, up to its '\n'
    REQUIRE(next == "short\n");
    r->feed_data("no newline and too long");
    const bool raised2 = co_await raises<aio::ValueError>(r->readline());
    REQUIRE(raised2);
    REQUIRE(r->buffered() == 0);  // dropped, all of it

    // A separator of several bytes, arriving split; and one that never completes before EOF.
    r->feed_data("ab\r");
    r->feed_data("\ncd\r");
    std::string crlf = co_await r->readuntil("\r\n");
    REQUIRE(crlf == "ab\r\n");
    r->feed_eof();
    try {
        co_await r->readuntil("\r\n");
        FAIL("readuntil returned without its separator");
    } catch (const aio::IncompleteReadError& e) {
        REQUIRE(e.partial == "cd\r");
        REQUIRE_FALSE(e.expected);
    }
    REQUIRE(r->at_eof());
    REQUIRE_THROWS_AS(r->feed_data("late"), aio::RuntimeError);
    const bool raised3 = co_await raises<aio::ValueError>(r->readuntil(""));
    REQUIRE(raised3);
}

Coroutine<> read_forms_scenario() {
    Ref<StreamReader> r = aio::make_ref<StreamReader>(8);
    std::string none = co_await r->readexactly(0);  // at once, with nothing buffered
    REQUIRE(none.empty());
    const bool raised4 = co_await raises<aio::ValueError>(r->readexactly(-1));
    REQUIRE(raised4);
    std::string zero = co_await r->read(0);
    REQUIRE(zero.empty());
    r->feed_data("hello world, more than eight bytes");
    std::string some = co_await r->read(5);
    REQUIRE(some == "hello");
    std::string exact = co_await r->readexactly(7);
    REQUIRE(exact == " world,");
    r->feed_eof();
    std::string all = co_await r->read(-1);  // to EOF, above the limit
    REQUIRE(all == " more than eight bytes");
    std::string eof = co_await r->read(10);
    REQUIRE(eof.empty());
    std::string eof_line = co_await r->readline();
    REQUIRE(eof_line.empty());
    std::string none_at_eof = co_await r->readexactly(0);
    REQUIRE(none_at_eof.empty());

    Ref<StreamReader> s = aio::make_ref<StreamReader>();
    s->feed_data("partial");
    s->feed_eof();
    try {
        co_await s->readexactly(20);
        FAIL("readexactly returned short");
    } catch (const aio::IncompleteReadError& e) {
        REQUIRE(e.partial == "partial");
        REQUIRE(e.expected == 20u);
        REQUIRE(contains(e.what(), "7 bytes read on a total of 20 expected bytes"));
    }
    Ref<StreamReader> t = aio::make_ref<StreamReader>();
    t->feed_data("last line without newline");
    t->feed_eof();
    std::string last = co_await t->readline();
    REQUIRE(last == "last line without newline");
    REQUIRE_THROWS_AS(aio::make_ref<StreamReader>(0), aio::ValueError);
}

// Two readers at once: the second gets RuntimeError, the first is undisturbed. An error
// set on the reader wakes the waiter with it, and every later read raises it.
Coroutine<> waiter_scenario() {
    Ref<StreamReader> r = aio::make_ref<StreamReader>();
    auto first = aio::create_task(r->readline());
    co_await aio::sleep(0);
    try {
        co_await r->read(1);
        FAIL("a second reader was let in");
    } catch (const aio::RuntimeError& e) {
        REQUIRE(contains(e.what(), "read() called while another coroutine is already waiting for incoming data"));
    }
    r->feed_data("one\n");
    std::string line = co_await first;
    REQUIRE(line == "one\n");

    auto waiting = aio::create_task(r->readexactly(5));
    co_await aio::sleep(0);
    r->set_exception(std::make_exception_ptr(aio::ConnectionResetError(ECONNRESET, "reset by the test")));
    const bool raised5 = co_await raises<aio::ConnectionResetError>(waiting);
    REQUIRE(raised5);
    const bool raised6 = co_await raises<aio::ConnectionResetError>(r->read(1));
    REQUIRE(raised6);
}

// Many small packets: a line that trickles in one byte at a time, the reader waking for
// each; and a large buffer read back a byte at a time. A buffer that shifted its contents
// on every read, or a search that started over on every packet, would take O(n^2) here:
// minutes at these sizes, not the second this takes even under the sanitizers.
Coroutine<> trickle_feeder(Ref<StreamReader> r, std::string line) {
    for (char c : line) {
        r->feed_data(std::string_view(&c, 1));
        co_await aio::sleep(0);  // the reader runs between two bytes
    }
}

Coroutine<> small_packets_scenario() {
    Ref<StreamReader> r = aio::make_ref<StreamReader>(1 << 20);
    const std::string line = pattern(20000) + "\n";
    auto feeding = aio::create_task(trickle_feeder(r, line));
    std::string got = co_await r->readline();
    co_await feeding;
    REQUIRE(got == line);

    const std::string big = pattern(std::size_t(1) << 20);
    r->feed_data(big);
    const auto t0 = std::chrono::steady_clock::now();
    std::string back;
    back.reserve(big.size());
    for (std::size_t i = 0; i < big.size(); i += 4) {  // 262,144 reads of 4 bytes
        std::string piece = co_await r->read(4);
        back += piece;
    }
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(back == big);
    REQUIRE(took < 20.0);  // O(n) takes well under a second; O(n^2) would take minutes
}

// A transport that only counts pause_reading/resume_reading.
class PauseCounter final : public aio::Transport {
public:
    bool paused = false;
    int pauses = 0, resumes = 0;
    void write(std::string_view) override {}
    void writelines(std::span<const std::string_view>) override {}
    void write_eof() override {}
    bool can_write_eof() const override { return true; }
    std::size_t get_write_buffer_size() const override { return 0; }
    void set_write_buffer_limits(std::optional<std::size_t>, std::optional<std::size_t>) override {}
    aio::WriteBufferLimits get_write_buffer_limits() const override { return {}; }
    void pause_reading() override {
        paused = true;
        ++pauses;
    }
    void resume_reading() override {
        paused = false;
        ++resumes;
    }
    bool is_reading() const override { return !paused; }
    void close() override {}
    void abort() override {}
    bool is_closing() const override { return false; }
    const aio::ExtraInfo& get_extra_info() const override { return info_; }
    void set_protocol(Ref<aio::Protocol>) override {}
    Ref<aio::Protocol> get_protocol() const override { return nullptr; }

private:
    aio::ExtraInfo info_;
};

// Above twice the limit the reader pauses its transport; reading back to the limit (or
// waiting for more while paused) resumes it.
Coroutine<> pause_transport_scenario() {
    Ref<StreamReader> r = aio::make_ref<StreamReader>(100);
    Ref<PauseCounter> t = aio::make_ref<PauseCounter>();
    r->set_transport(t);
    r->feed_data(pattern(200));
    REQUIRE(t->pauses == 0);  // 200 is not above 2 * 100
    r->feed_data("x");
    REQUIRE(t->paused);
    r->feed_data(pattern(50));  // paused already: no second pause
    REQUIRE(t->pauses == 1);
    std::string a = co_await r->read(100);  // 151 left: above the limit, still paused
    REQUIRE(t->paused);
    std::string b = co_await r->read(51);  // 100 left: at the limit, resumed
    REQUIRE_FALSE(t->paused);
    REQUIRE(t->resumes == 1);
    r->feed_data(pattern(150));  // 250: paused again
    REQUIRE(t->pauses == 2);
    // readexactly of more than is buffered, while paused: waiting resumes the transport
    // (or nothing more could ever arrive).
    auto reading = aio::create_task(r->readexactly(300));
    co_await aio::sleep(0);
    REQUIRE_FALSE(t->paused);
    r->feed_data(pattern(50));
    std::string c = co_await reading;
    REQUIRE(c.size() == 300);
}

}  // namespace

TEST_CASE("StreamReader: readuntil past its limit keeps the data (LimitOverrunError); readline drops the line",
          "[stage4][streams]") {
    aio::run(limit_scenario(), aio::new_selector_event_loop);
}

TEST_CASE("StreamReader: read(n), read(-1), readexactly(0), readexactly short (IncompleteReadError), the last line",
          "[stage4][streams]") {
    aio::run(read_forms_scenario(), aio::new_selector_event_loop);
}

TEST_CASE("StreamReader: one waiter at a time; set_exception wakes it and fails every later read", "[stage4][streams]") {
    aio::run(waiter_scenario(), aio::new_selector_event_loop);
}

TEST_CASE("StreamReader: many small packets and many small reads stay O(n)", "[stage4][streams]") {
    aio::run(small_packets_scenario(), aio::new_selector_event_loop);
}

TEST_CASE("StreamReader: pauses its transport above twice the limit, resumes at the limit or when it must wait",
          "[stage4][streams]") {
    aio::run(pause_transport_scenario(), aio::new_selector_event_loop);
}

// --------------------------------------------------------------------- over the network

namespace {

// The server's side of each connection, for the test to drive: start_server's callback
// parks the streams here.
struct Parked {
    std::vector<Streams> connections;
    Ref<aio::Future<>> arrived;
};

Coroutine<Streams> serve_one(const char* host, Ref<aio::Server>* server_out, std::shared_ptr<Parked> parked,
                             std::size_t limit = aio::kDefaultStreamLimit) {
    auto park = [parked](Ref<StreamReader> r, Ref<StreamWriter> w) {
        parked->connections.emplace_back(std::move(r), std::move(w));
        if (parked->arrived && !parked->arrived->done()) parked->arrived->set_result();
    };
    auto serving = aio::start_server(park, host, 0, limit);
    *server_out = co_await std::move(serving);
    parked->arrived = aio::create_future();
    Ref<aio::Future<>> arrived = parked->arrived;
    auto connecting = aio::open_connection(host, (*server_out)->sockets()[0].getsockname().port(), limit);
    Streams client = co_await std::move(connecting);
    co_await arrived;
    co_return client;
}

Coroutine<> trickle_writer(Ref<StreamWriter> w, std::string text) {
    for (char c : text) {
        w->write(std::string_view(&c, 1));  // TCP_NODELAY: each its own packet, more or less
        co_await aio::sleep(0);
    }
}

Coroutine<> network_small_packets_scenario() {
    auto parked = std::make_shared<Parked>();
    Ref<aio::Server> server;
    Streams client = co_await serve_one("127.0.0.1", &server, parked);
    Ref<StreamReader> server_reader = parked->connections[0].first;
    const std::string line = pattern(3000) + "\n";
    auto writing = aio::create_task(trickle_writer(client.second, line + line));
    std::string first = co_await server_reader->readline();
    std::string second = co_await server_reader->readline();
    co_await writing;
    REQUIRE(first == line);
    REQUIRE(second == line);

    // read(-1) to EOF: a megabyte, several times the limit, so the transport is paused and
    // resumed along the way.
    const std::string big = pattern(std::size_t(1) << 20);
    client.second->write(big);
    client.second->write_eof();
    std::string all = co_await server_reader->read(-1);
    REQUIRE(all == big);
    REQUIRE(server_reader->at_eof());
    client.second->close();
    parked->connections[0].second->close();
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

// The peer (the server's side) writes ten bytes and closes: readexactly(20) raises
// IncompleteReadError with those ten, naming the peer.
Coroutine<> closed_mid_stream_scenario() {
    auto parked = std::make_shared<Parked>();
    Ref<aio::Server> server;
    Streams client = co_await serve_one("::1", &server, parked);
    parked->connections[0].second->write("0123456789");
    parked->connections[0].second->close();
    try {
        co_await client.first->readexactly(20);
        FAIL("read 20 bytes of 10");
    } catch (const aio::IncompleteReadError& e) {
        REQUIRE(e.partial == "0123456789");
        REQUIRE(e.expected == 20u);
        REQUIRE(contains(e.what(), "the connection from [::1]:"));
    }
    client.second->close();
    server->close();
    co_await server->wait_closed();
}

// SO_LINGER 0: close() resets.
Coroutine<> reset_scenario() {
    auto parked = std::make_shared<Parked>();
    Ref<aio::Server> server;
    Streams client = co_await serve_one("127.0.0.1", &server, parked);
    auto reading = aio::create_task(client.first->readline());  // waiting when the reset comes
    co_await aio::sleep(0.01);
    linger l{1, 0};
    aio::Socket* s = parked->connections[0].second->get_extra_info().socket;
    REQUIRE(::setsockopt(s->fileno(), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
    parked->connections[0].second->transport().abort();
    const bool raised7 = co_await raises<aio::ConnectionResetError>(reading);
    REQUIRE(raised7);
    const bool raised8 = co_await raises<aio::ConnectionResetError>(client.first->read(1));
    REQUIRE(raised8);
    const bool raised9 = co_await raises<aio::ConnectionResetError>(client.second->drain());
    REQUIRE(raised9);
    const bool raised10 = co_await raises<aio::ConnectionResetError>(client.second->wait_closed());
    REQUIRE(raised10);
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

// A fast writer to a peer that does not read: drain() blocks once the buffer passes the
// high-water mark, and returns when the peer reads.
Coroutine<> drain_scenario() {
    auto parked = std::make_shared<Parked>();
    Ref<aio::Server> server;
    Streams client = co_await serve_one("127.0.0.1", &server, parked);
    Ref<StreamWriter> w = client.second;
    // The peer's transport does not read at all (its StreamReader would otherwise take 128 KiB
    // first), and our send buffer is small. (Not a small receive buffer: TCP's window would
    // then crawl at a few KiB per delayed ACK once the peer reads.)
    parked->connections[0].second->transport().pause_reading();
    w->get_extra_info().socket->setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    // Write until the kernels take no more: our own buffer then stays far above the
    // high-water mark (64 KiB) across a pause.
    const std::string chunk = pattern(64 * 1024);
    std::size_t written = 0;
    for (int round = 0;; ++round) {
        while (w->transport().get_write_buffer_size() <= (std::size_t(1) << 20)) {
            w->write(chunk);
            written += chunk.size();
        }
        co_await aio::sleep(0.02);
        if (w->transport().get_write_buffer_size() > (std::size_t(512) << 10)) break;
        REQUIRE(round < 50);
    }
    auto draining = aio::create_task(w->drain());
    co_await aio::sleep(0.05);
    REQUIRE_FALSE(draining->done());  // blocked: nobody reads
    // The peer reads: the buffer drains below the low-water mark and drain() returns.
    parked->connections[0].second->transport().resume_reading();
    Ref<StreamReader> server_reader = parked->connections[0].first;
    auto consuming = aio::create_task(server_reader->readexactly(std::ptrdiff_t(written)));
    co_await draining;
    REQUIRE(w->transport().get_write_buffer_size() <= 16 * 1024);
    std::string all = co_await consuming;
    REQUIRE(all.size() == written);
    w->close();
    parked->connections[0].second->close();
    server->close();
    co_await server->wait_closed();
}

// wait_for and timeout() around readline: the partial line stays in the buffer, no waiter is
// left behind, the transport is still reading; the next readline gets the whole line.
Coroutine<> timeout_scenario() {
    auto parked = std::make_shared<Parked>();
    Ref<aio::Server> server;
    Streams client = co_await serve_one("127.0.0.1", &server, parked);
    Ref<StreamReader> r = parked->connections[0].first;
    client.second->write("partial ");
    try {
        co_await aio::wait_for(r->readline(), 0.05);
        FAIL("readline returned without a newline");
    } catch (const aio::TimeoutError&) {
    }
    try {
        co_await aio::timeout(0.05, r->readline());
        FAIL("readline returned without a newline");
    } catch (const aio::TimeoutError&) {
    }
    REQUIRE(r->buffered() == 8);  // nothing lost
    auto& loop = aio::get_running_selector_loop();
    const int fd = parked->connections[0].second->get_extra_info().socket->fileno();
    REQUIRE(loop.has_reader(fd));  // the transport's own reader, for as long as it is open
    client.second->write("line\n");
    std::string line = co_await aio::wait_for(r->readline(), 5.0);  // no "already waiting"
    REQUIRE(line == "partial line\n");
    client.second->close();
    co_await client.second->wait_closed();
    parked->connections[0].second->close();
    co_await parked->connections[0].second->wait_closed();
    REQUIRE_FALSE(loop.has_reader(fd));
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

// A connect that cannot finish (the listener's queue is full), ended by cancel() or by
// wait_for: no socket, no registration is left.
Coroutine<> cancel_open_connection_scenario(bool by_timeout) {
    Socket listener = listening_socket("127.0.0.1", 0);  // backlog 0
    Socket first(AF_INET);
    co_await aio::sock_connect(first, listener.getsockname());  // fills the queue
    const int port = listener.getsockname().port();
    const std::size_t before = registered_fds();
    if (by_timeout) {
        try {
            co_await aio::wait_for(aio::open_connection("127.0.0.1", port), 0.05);
            FAIL("connected");
        } catch (const aio::TimeoutError&) {
        }
    } else {
        auto connecting = aio::create_task(aio::open_connection("127.0.0.1", port));
        co_await aio::sleep(0.03);
        REQUIRE_FALSE(connecting->done());
        REQUIRE(registered_fds() == before + 1);  // the connect's writer
        connecting->cancel();
        try {
            co_await connecting;
            FAIL("connected");
        } catch (const aio::CancelledError&) {
        }
    }
    REQUIRE(registered_fds() == before);
    require_nothing_registered();
}

// client_connected_cb that throws: reported (not lost), and the connection closed.
Coroutine<> failing_handler(Ref<StreamReader> reader, Ref<StreamWriter>) {
    std::string line = co_await reader->readline();
    throw std::runtime_error("handler failed on " + line.substr(0, line.size() - 1));
}

Coroutine<> failing_handler_scenario(loop_test_support::Reports* reports) {
    auto serving = aio::start_server(failing_handler, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", server->sockets()[0].getsockname().port());
    writer->write("ping\n");
    std::string rest = co_await reader->read(-1);  // EOF: the server closed the connection
    REQUIRE(rest.empty());
    REQUIRE(count_reports(*reports, "Unhandled exception in client_connected_cb (connection from 127.0.0.1:") == 1);
    REQUIRE(reports->back().exception == "handler failed on ping");
    writer->close();
    server->close();
    co_await server->wait_closed();
}

// A plain (not coroutine) callback, with captures; and a StreamWriter dropped without
// close(): its transport is closed (the server reads EOF).
Coroutine<> plain_callback_scenario() {
    auto seen = std::make_shared<std::vector<Streams>>();
    auto keep = [seen](Ref<StreamReader> r, Ref<StreamWriter> w) {
        w->write("welcome\n");
        seen->emplace_back(std::move(r), std::move(w));
    };
    auto serving = aio::start_server(keep, "127.0.0.1", 0);
    Ref<aio::Server> server = co_await std::move(serving);
    const int port = server->sockets()[0].getsockname().port();
    {
        auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
        std::string hello = co_await reader->readline();
        REQUIRE(hello == "welcome\n");
    }  // reader and writer dropped here, writer->close() never called
    REQUIRE(seen->size() == 1);
    std::string eof = co_await (*seen)[0].first->read(-1);
    REQUIRE(eof.empty());
    (*seen)[0].second->close();
    server->close();
    co_await server->wait_closed();
    require_nothing_registered();
}

}  // namespace

NET_TEST_CASE("streams: a line in many small packets; read(-1) of a megabyte, pausing and resuming the transport",
              "[stage4][streams]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, network_small_packets_scenario());
    }
}

NET_TEST_CASE("streams: the peer closing mid-stream: IncompleteReadError with the partial data", "[stage4][streams]") {
    run_on("poll", closed_mid_stream_scenario());
}

NET_TEST_CASE("streams: a peer resetting: ConnectionResetError from the reader, drain and wait_closed",
              "[stage4][streams]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, reset_scenario());
    }
}

NET_TEST_CASE("streams: drain() blocks while the peer does not read, and returns when it does", "[stage4][streams]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, drain_scenario(), 20.0);
    }
}

NET_TEST_CASE("streams: wait_for/timeout around readline lose nothing and leave no waiter; closing leaves no registration",
              "[stage4][streams]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, timeout_scenario());
    }
}

NET_TEST_CASE("streams: open_connection cancelled or timed out mid-connect leaves no socket and no registration",
              "[stage4][streams]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, cancel_open_connection_scenario(false));
        run_on(kind, cancel_open_connection_scenario(true));
    }
}

NET_TEST_CASE("start_server: a client_connected_cb task that fails is reported and its connection closed",
              "[stage4][streams]") {
    loop_test_support::Reports reports;
    aio::run(aio::wait_for(failing_handler_scenario(&reports), 5.0), [&reports] {
        auto loop = std::make_unique<aio::SelectorEventLoop>(aio::make_selector("epoll"));
        loop_test_support::capture_reports(*loop, &reports);
        return std::unique_ptr<aio::EventLoop>(std::move(loop));
    });
}

NET_TEST_CASE("start_server: a plain callback; a StreamWriter dropped without close() closes its transport",
              "[stage4][streams]") {
    run_on("epoll", plain_callback_scenario());
}
