// Stage 5 tests: the HTTP server (HttpServer, RequestHandler, Router, StreamResponse), with
// raw sockets as the client so that every byte sent is the test's own: keep-alive and
// HTTP/1.0, pipelining in order, the error statuses of malformed requests (none reaching a
// handler), 100-continue, handlers that throw, the header and keep-alive timeouts, the
// graceful shutdown, and flow control both ways.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "stage5_http/web_server.hpp"
#include "stage5_http/web_stream_response.hpp"
#include "tests/net_test_support.hpp"
#include "tests/server_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace server_test_support;
using aio::Coroutine;
using aio::Ref;
using aio::Request;
using aio::Response;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Routes that count their calls: "/" (plain), "/slow" (a coroutine that sleeps 0.2 s),
// "/echo" (plain, POST), "/read" (a coroutine that reads the body, POST).
struct Counted {
    std::shared_ptr<int> calls = std::make_shared<int>(0);
    aio::Router router() const {
        aio::Router r;
        auto calls_ = calls;
        r.add_get("/", [calls_](Request&) {
            ++*calls_;
            return Response::text("root");
        });
        r.add_get("/slow", [calls_](Request&) -> Coroutine<Response> {
            ++*calls_;
            co_await aio::sleep(0.2);
            co_return Response::text("slow");
        });
        r.add_post("/echo", [calls_](Request& request) {
            ++*calls_;
            return Response::text(std::string(request.body()));
        });
        r.add_post("/read", [calls_](Request& request) -> Coroutine<Response> {
            ++*calls_;
            std::string body = co_await request.read();
            co_return Response::text("read " + std::to_string(body.size()) + ": " + body.substr(0, 20));
        });
        return r;
    }
};

// ------------------------------------------------------------------- keep-alive, HTTP/1.0

Coroutine<> keep_alive_scenario() {
    Counted counted;
    Ref<aio::HttpServer> server = co_await start_server(counted.router());
    RawClient client = co_await RawClient::connect(server->port());
    for (int i = 0; i < 3; ++i) {
        co_await client.send(get("/"));
        std::optional<Reply> reply = co_await client.response();
        REQUIRE(reply);
        REQUIRE(reply->status == 200);
        REQUIRE(reply->body == "root");
        REQUIRE(reply->keep_alive);
        REQUIRE(reply->header("Connection").empty());  // HTTP/1.1's default: nothing said
        REQUIRE_FALSE(reply->header("Date").empty());
    }
    REQUIRE(server->connections_accepted() == 1);
    REQUIRE(server->requests_handled() == 3);

    // Connection: close: the answer says so, then the server closes.
    co_await client.send(get("/", "Connection: close\r\n"));
    std::optional<Reply> last = co_await client.response();
    REQUIRE(last->header("Connection") == "close");
    REQUIRE_FALSE(last->keep_alive);
    bool closed = co_await client.closed_within(2.0);
    REQUIRE(closed);

    // HTTP/1.0: closed after the answer unless the client asks for keep-alive.
    RawClient old = co_await RawClient::connect(server->port());
    co_await old.send("GET / HTTP/1.0\r\n\r\n");
    std::optional<Reply> r10 = co_await old.response();
    REQUIRE(r10->status == 200);
    REQUIRE(r10->version == aio::HttpVersion{1, 0});
    REQUIRE(r10->header("Connection") == "close");
    closed = co_await old.closed_within(2.0);
    REQUIRE(closed);
    RawClient kept = co_await RawClient::connect(server->port());
    for (int i = 0; i < 2; ++i) {
        co_await kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        std::optional<Reply> r = co_await kept.response();
        REQUIRE(r->header("Connection") == "keep-alive");
        REQUIRE(r->keep_alive);
    }
    REQUIRE(server->connections_accepted() == 3);
    REQUIRE(*counted.calls == 7);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: keep-alive reuses one connection; Connection: close and HTTP/1.0 close it", "[stage5][server]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        run_on(kind, keep_alive_scenario());
    }
}

// --------------------------------------------------------------------------- pipelining

namespace {

Coroutine<> pipelining_scenario() {
    Counted counted;
    Ref<aio::HttpServer> server = co_await start_server(counted.router());
    RawClient client = co_await RawClient::connect(server->port());
    // Slow first, then fast, in one write: the fast answer waits for the slow one.
    const double start = now();
    co_await client.send(get("/slow") + get("/") + get("/slow") + get("/"));
    std::vector<std::string> bodies;
    for (int i = 0; i < 4; ++i) {
        std::optional<Reply> r = co_await client.response();
        REQUIRE(r);
        bodies.push_back(r->body);
    }
    REQUIRE(bodies == std::vector<std::string>{"slow", "root", "slow", "root"});
    REQUIRE(now() - start >= 0.35);  // the two slow ones, one after the other

    // Fast first: its answer does not wait for the slow one behind it.
    co_await client.send(get("/") + get("/slow"));
    const double sent = now();
    std::optional<Reply> fast = co_await client.response();
    const double fast_at = now() - sent;
    std::optional<Reply> slow = co_await client.response();
    REQUIRE(fast->body == "root");
    REQUIRE(slow->body == "slow");
    REQUIRE(fast_at < 0.15);
    REQUIRE(server->connections_accepted() == 1);

    // Many small pipelined requests: all answered, in order (each says its number).
    aio::Router numbered;
    numbered.add_get("/n/{i}", [](Request& r) { return Response::text(std::string(r.match_info("i"))); });
    Ref<aio::HttpServer> second = co_await start_server(std::move(numbered));
    RawClient many = co_await RawClient::connect(second->port());
    std::string burst;
    for (int i = 0; i < 200; ++i) burst += get("/n/" + std::to_string(i));
    co_await many.send(burst);
    for (int i = 0; i < 200; ++i) {
        std::optional<Reply> r = co_await many.response();
        REQUIRE(r->body == std::to_string(i));
    }
    co_await server->shutdown(1.0);
    co_await second->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: pipelined requests are answered in order; a slow one delays those behind it, not those before",
              "[stage5][server]") {
    run_on("epoll", pipelining_scenario());
}

// --------------------------------------------------------------------- malformed requests

namespace {

struct Malformed {
    const char* what;
    std::string bytes;
    int status;
};

Coroutine<> malformed_scenario(Malformed m) {
    Counted counted;
    aio::ServerConfig config;
    config.limits.max_line_size = 200;
    config.limits.max_header_size = 400;
    config.limits.max_body_size = 1000;
    Ref<aio::HttpServer> server = co_await start_server(counted.router(), config);
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send(m.bytes);
    std::optional<Reply> reply = co_await client.response();
    REQUIRE(reply);
    REQUIRE(reply->status == m.status);
    REQUIRE(reply->header("Content-Type") == "text/plain; charset=utf-8");
    REQUIRE(contains(reply->body, std::to_string(m.status)));
    REQUIRE(reply->body.size() > 20);  // says what was wrong, not just the number
    REQUIRE(reply->header("Connection") == "close");
    bool closed = co_await client.closed_within(3.0);
    REQUIRE(closed);
    REQUIRE(*counted.calls == 0);  // no handler saw it
    // Done with it: the server lingers on it until we close (or for lingering_timeout),
    // and its shutdown below would wait that long.
    client.socket().close();

    // The server goes on serving everyone else.
    RawClient other = co_await RawClient::connect(server->port());
    co_await other.send(get("/"));
    std::optional<Reply> fine = co_await other.response();
    REQUIRE(fine->status == 200);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: malformed requests get 400/413/414/431/501/505 with a plain-text reason, then a close; no handler runs",
              "[stage5][server][errors]") {
    const std::string long_target = "/" + std::string(300, 'a');
    std::string many_fields;
    for (int i = 0; i < 30; ++i) many_fields += "X-Field-" + std::to_string(i) + ": some value\r\n";
    const std::vector<Malformed> cases = {
        {"a field line without a colon", "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", 400},
        {"whitespace before the colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
        {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
        {"Content-Length and Transfer-Encoding", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"a bad chunk size", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"a bare LF", "GET / HTTP/1.1\nHost: t\n\n", 400},
        {"a request line too long", "GET " + long_target + " HTTP/1.1\r\nHost: t\r\n\r\n", 414},
        {"a header section too large", "GET / HTTP/1.1\r\nHost: t\r\n" + many_fields + "\r\n", 431},
        {"Content-Length over the limit", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413},
        {"a chunked body over the limit (plain handler)",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + std::string(0x800, 'x') + "\r\n0\r\n\r\n", 413},
        {"an unknown transfer coding", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505},
    };
    for (const Malformed& m : cases) {
        INFO(m.what);
        run_on("epoll", malformed_scenario(m));
    }
}

namespace {

// A coroutine handler reading a chunked body that grows past the limit: the client gets 413
// and the handler is cancelled (it never returns its answer).
Coroutine<> body_limit_in_coroutine_scenario() {
    Counted counted;
    aio::ServerConfig config;
    config.limits.max_body_size = 1000;
    Ref<aio::HttpServer> server = co_await start_server(counted.router(), config);
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send("POST /read HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    co_await aio::sleep(0.05);  // the handler starts, and waits for the body
    co_await client.send("800\r\n" + std::string(0x800, 'x') + "\r\n0\r\n\r\n");
    std::optional<Reply> reply = co_await client.response();
    REQUIRE(reply->status == 413);
    bool closed = co_await client.closed_within(3.0);
    REQUIRE(closed);
    REQUIRE(*counted.calls == 1);
    client.socket().close();  // or the server lingers on it, and its shutdown waits
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: a body over the limit while a coroutine handler reads it: 413, the handler cancelled",
              "[stage5][server][errors]") {
    run_on("epoll", body_limit_in_coroutine_scenario());
}

// ----------------------------------------------------------------------- 100-continue

namespace {

Coroutine<> continue_scenario() {
    Counted counted;
    aio::Router router = counted.router();
    router.add_post("/refuse", [](Request&) -> Coroutine<Response> { co_return Response::text("no", 403); });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));

    // A plain handler needs the body: 100 at once, then the answer.
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    std::optional<Reply> go = co_await client.response(false, true);
    REQUIRE(go->status == 100);
    co_await client.send("hello");
    std::optional<Reply> echoed = co_await client.response();
    REQUIRE(echoed->status == 200);
    REQUIRE(echoed->body == "hello");

    // A coroutine handler: 100 only when it reads the body.
    co_await client.send("POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    std::optional<Reply> go2 = co_await client.response(false, true);
    REQUIRE(go2->status == 100);
    co_await client.send("abc");
    std::optional<Reply> read = co_await client.response();
    REQUIRE(read->body == "read 3: abc");
    REQUIRE(read->keep_alive);

    // A coroutine handler that answers without reading: no 100, and the connection closes
    // (the client might send the body yet, or might not: nobody can tell).
    co_await client.send("POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    std::optional<Reply> refused = co_await client.response();
    REQUIRE(refused->status == 403);
    REQUIRE(refused->header("Connection") == "close");
    bool closed = co_await client.closed_within(3.0);
    REQUIRE(closed);
    client.socket().close();  // or the server lingers on it, and its shutdown waits
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: Expect: 100-continue", "[stage5][server]") { run_on("epoll", continue_scenario()); }

// ------------------------------------------------------------------ handlers that throw

namespace {

Coroutine<> throwing_scenario() {
    aio::Router router;
    router.add_get("/boom", [](Request&) -> Response { throw std::runtime_error("boom (plain)"); });
    router.add_get("/boom-later", [](Request&) -> Coroutine<Response> {
        co_await aio::sleep(0.01);
        throw std::runtime_error("boom (coroutine)");
    });
    router.add_get("/bad-status", [](Request&) { return Response(42); });
    router.add_get("/ok", [](Request&) { return Response::text("ok"); });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    std::vector<std::string> reports;
    aio::get_running_loop().set_exception_handler([&](aio::EventLoop&, const aio::ExceptionContext& c) {
        reports.push_back(c.message);
    });
    RawClient client = co_await RawClient::connect(server->port());
    for (const char* target : {"/boom", "/boom-later", "/bad-status"}) {
        co_await client.send(get(target));
        std::optional<Reply> r = co_await client.response();
        REQUIRE(r->status == 500);
        REQUIRE(r->keep_alive);  // the request was read whole: the connection goes on
        co_await client.send(get("/ok"));
        std::optional<Reply> ok = co_await client.response();
        REQUIRE(ok->body == "ok");
    }
    REQUIRE(server->connections_accepted() == 1);
    REQUIRE(reports.size() == 3);
    REQUIRE(contains(reports[0], "GET /boom"));
    REQUIRE(contains(reports[1], "GET /boom-later"));
    aio::get_running_loop().set_exception_handler(nullptr);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: a handler that throws gives a 500, is reported, and the connection is kept", "[stage5][server]") {
    run_on("epoll", throwing_scenario());
}

// ------------------------------------------------------------------------------- timeouts

namespace {

Coroutine<> slowloris_scenario() {
    Counted counted;
    aio::ServerConfig config;
    config.header_timeout = 0.3;
    Ref<aio::HttpServer> server = co_await start_server(counted.router(), config);
    RawClient client = co_await RawClient::connect(server->port());
    // One byte every 50 ms: the whole head would take 1.5 s; the server cuts it at 0.3 s.
    const std::string head = get("/", "X-Padding: aaaaaaaaaa\r\n");
    const double start = now();
    auto reading = aio::create_task(client.read_to_eof());  // the answer, and the close
    std::size_t sent = 0;
    try {
        for (; sent < head.size() && !reading->done() && now() - start < 3.0; ++sent) {
            co_await client.send(head.substr(sent, 1));
            co_await aio::sleep(0.05);
        }
    } catch (const aio::OSError&) {  // the server closed: a send fails (EPIPE, ECONNRESET)
    }
    const std::string answer = co_await reading;
    const double cut_after = now() - start;
    INFO("cut off after " << cut_after << " s, " << sent << " of " << head.size() << " bytes sent");
    REQUIRE(sent < head.size());
    REQUIRE(contains(answer, "HTTP/1.1 408"));
    REQUIRE(cut_after >= 0.25);
    REQUIRE(cut_after < 1.5);
    REQUIRE(*counted.calls == 0);

    // A connection that never sends anything is closed after header_timeout too.
    RawClient silent = co_await RawClient::connect(server->port());
    bool closed = co_await silent.closed_within(2.0);
    REQUIRE(closed);
    co_await server->shutdown(1.0);
}

Coroutine<> idle_scenario() {
    Counted counted;
    aio::ServerConfig config;
    config.keepalive_timeout = 0.2;
    Ref<aio::HttpServer> server = co_await start_server(counted.router(), config);
    RawClient client = co_await RawClient::connect(server->port());
    // Busy: requests closer together than the timeout keep the connection.
    for (int i = 0; i < 5; ++i) {
        co_await client.send(get("/"));
        std::optional<Reply> r = co_await client.response();
        REQUIRE(r->status == 200);
        co_await aio::sleep(0.1);
    }
    const double start = now();
    bool closed = co_await client.closed_within(2.0);
    REQUIRE(closed);
    REQUIRE(now() - start >= 0.05);
    REQUIRE(server->open_connections() == 0);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: a head sent a byte at a time is cut off after header_timeout (slowloris)", "[stage5][server][timeouts]") {
    run_on("epoll", slowloris_scenario());
}

NET_TEST_CASE("HttpServer: an idle keep-alive connection is closed after keepalive_timeout", "[stage5][server][timeouts]") {
    run_on("epoll", idle_scenario());
}

// ---------------------------------------------------------------------- graceful shutdown

namespace {

Coroutine<> shutdown_scenario() {
    Counted counted;
    Ref<aio::HttpServer> server = co_await start_server(counted.router());
    const int port = server->port();
    RawClient idle = co_await RawClient::connect(port);
    co_await idle.send(get("/"));
    std::optional<Reply> first = co_await idle.response();
    REQUIRE(first->status == 200);
    RawClient busy = co_await RawClient::connect(port);
    co_await busy.send(get("/slow"));
    co_await aio::sleep(0.05);  // /slow is running

    auto stopping = aio::create_task(server->shutdown(5.0));
    co_await aio::sleep(0.02);
    // The idle connection is closed at once; new connections are refused.
    bool idle_closed = co_await idle.closed_within(0.1);
    REQUIRE(idle_closed);
    try {
        co_await RawClient::connect(port);
        FAIL("connected to a server shutting down");
    } catch (const aio::ConnectionRefusedError&) {
    }
    REQUIRE_FALSE(stopping->done());
    // The request in flight finishes, and says the connection ends.
    std::optional<Reply> answer = co_await busy.response();
    REQUIRE(answer->status == 200);
    REQUIRE(answer->body == "slow");
    REQUIRE(answer->header("Connection") == "close");
    bool busy_closed = co_await busy.closed_within(2.0);
    REQUIRE(busy_closed);
    co_await stopping;
    REQUIRE(server->open_connections() == 0);

    // A handler that outlasts the shutdown's timeout is cancelled, its connection aborted.
    auto cancelled = std::make_shared<bool>(false);
    aio::Router router;
    router.add_get("/forever", [cancelled](Request&) -> Coroutine<Response> {
        try {
            co_await aio::sleep(30);
        } catch (const aio::CancelledError&) {
            *cancelled = true;
            throw;
        }
        co_return Response::text("never");
    });
    Ref<aio::HttpServer> second = co_await start_server(std::move(router));
    RawClient stuck = co_await RawClient::connect(second->port());
    co_await stuck.send(get("/forever"));
    co_await aio::sleep(0.05);
    const double start = now();
    co_await second->shutdown(0.2);
    REQUIRE(now() - start < 2.0);
    REQUIRE(*cancelled);
    bool stuck_closed = co_await stuck.closed_within(1.0);
    REQUIRE(stuck_closed);
}

}  // namespace

NET_TEST_CASE("HttpServer: graceful shutdown refuses new connections, closes idle ones, lets requests in flight finish",
              "[stage5][server][shutdown]") {
    run_on("epoll", shutdown_scenario());
}

// ------------------------------------------------------------------------- flow control

namespace {

// A handler streaming 16 MiB to a client that does not read: write() must wait, so the
// transport's buffer stays near its high-water mark instead of growing to 16 MiB.
Coroutine<> slow_reader_scenario() {
    struct Progress {
        std::size_t chunks = 0;
        std::size_t max_buffer = 0;
        bool done = false;
    };
    auto progress = std::make_shared<Progress>();
    constexpr std::size_t kChunk = 64 * 1024, kChunks = 256;
    aio::Router router;
    router.add_get("/big", [progress](Request& request) -> Coroutine<Response> {
        aio::StreamResponse response(request);
        co_await response.prepare();
        const std::string chunk(kChunk, 'z');
        for (std::size_t i = 0; i < kChunks; ++i) {
            co_await response.write(chunk);
            ++progress->chunks;
            if (aio::Transport* t = request.transport())
                progress->max_buffer = std::max(progress->max_buffer, t->get_write_buffer_size());
        }
        co_await response.write_eof();
        progress->done = true;
        co_return response;
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    RawClient client = co_await RawClient::connect(server->port());
    client.socket().setsockopt(SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    co_await client.send(get("/big"));
    co_await aio::sleep(0.3);  // not reading
    INFO("chunks written while the client did not read: " << progress->chunks << ", largest buffer "
                                                           << progress->max_buffer);
    REQUIRE(progress->chunks < kChunks / 2);  // the handler was made to wait
    REQUIRE(progress->max_buffer <= 64 * 1024 + kChunk + 64);
    std::optional<Reply> reply = co_await client.response();
    REQUIRE(reply->status == 200);
    REQUIRE(reply->header("Transfer-Encoding") == "chunked");
    REQUIRE(reply->body.size() == kChunk * kChunks);
    REQUIRE(progress->done);
    REQUIRE(progress->max_buffer <= 64 * 1024 + kChunk + 64);
    co_await server->shutdown(1.0);
}

// A client pipelining requests without reading the answers: the server stops answering
// (and reading) once the transport's buffer is full, so its memory does not grow with the
// answers the client leaves unread. Then the client reads, and everything is answered.
// (200 answers of 64 KiB: far more than the kernel's socket buffers hold, 4 MiB at most.)
Coroutine<> unread_answers_scenario() {
    constexpr int kRequests = 200;
    auto max_buffer = std::make_shared<std::size_t>(0);
    aio::Router router;
    const std::string big(64 * 1024, 'b');
    router.add_get("/big", [big, max_buffer](Request& request) {
        if (aio::Transport* t = request.transport()) *max_buffer = std::max(*max_buffer, t->get_write_buffer_size());
        return Response::text(big);
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    RawClient client = co_await RawClient::connect(server->port());
    client.socket().setsockopt(SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    std::string burst;
    for (int i = 0; i < kRequests; ++i) burst += get("/big");
    co_await client.send(burst);
    co_await aio::sleep(0.3);
    INFO("answered while the client did not read: " << server->requests_handled() << "; largest write buffer "
                                                     << *max_buffer);
    REQUIRE(server->requests_handled() < kRequests);  // it stopped answering an unread client
    REQUIRE(*max_buffer <= 64 * 1024 + big.size() + 1024);
    for (int i = 0; i < kRequests; ++i) {
        std::optional<Reply> r = co_await client.response();
        REQUIRE(r->body.size() == big.size());
    }
    REQUIRE(server->requests_handled() == kRequests);
    REQUIRE(*max_buffer <= 64 * 1024 + big.size() + 1024);
    co_await server->shutdown(1.0);
}

// A chunked upload read piece by piece by a coroutine handler, sent in pieces.
Coroutine<> chunked_upload_scenario() {
    aio::Router router;
    router.add_post("/count", [](Request& request) -> Coroutine<Response> {
        std::size_t total = 0, pieces = 0;
        for (;;) {
            std::string piece = co_await request.read_chunk();
            if (piece.empty()) break;
            total += piece.size();
            ++pieces;
        }
        co_return Response::text(std::to_string(total));
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send("POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::size_t expected = 0;
    for (int i = 1; i <= 20; ++i) {
        std::string data(std::size_t(i * 100), 'q');
        expected += data.size();
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", data.size());
        co_await client.send(std::string(size) + data + "\r\n");
        if (i % 5 == 0) co_await aio::sleep(0.01);
    }
    co_await client.send("0\r\n\r\n");
    std::optional<Reply> r = co_await client.response();
    REQUIRE(r->body == std::to_string(expected));
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("HttpServer: a streamed answer to a client that does not read waits; the buffer stays bounded",
              "[stage5][server][flow]") {
    run_on("epoll", slow_reader_scenario(), 20.0);
}

NET_TEST_CASE("HttpServer: a client that pipelines without reading is paused, then fully answered", "[stage5][server][flow]") {
    run_on("epoll", unread_answers_scenario(), 20.0);
}

NET_TEST_CASE("HttpServer: a chunked upload is read piece by piece by a coroutine handler", "[stage5][server]") {
    run_on("epoll", chunked_upload_scenario());
}

// ---------------------------------------------------------------------------- the router

TEST_CASE("Router: exact paths, {name} parts, 404, 405 with Allow; bad routes refused", "[stage5][router]") {
    aio::Router router;
    router.add_get("/a", [](Request&) { return Response(); });
    router.add_post("/a", [](Request&) { return Response(); });
    router.add_get("/u/{id}/posts/{post}", [](Request&) { return Response(); });
    router.add_route("*", "/any", [](Request&) { return Response(); });
    std::vector<std::pair<std::string_view, std::string_view>> params;
    REQUIRE(router.resolve("GET", "/a", params).handler);
    REQUIRE(router.resolve("HEAD", "/a", params).handler);  // add_get routes HEAD too
    aio::RouteMatch put = router.resolve("PUT", "/a", params);
    REQUIRE(put.status == 405);
    REQUIRE(put.allow == "GET, HEAD, POST");
    REQUIRE(router.resolve("GET", "/b", params).status == 404);
    REQUIRE(router.resolve("GET", "/a/", params).status == 404);
    aio::RouteMatch m = router.resolve("GET", "/u/42/posts/7", params);
    REQUIRE(m.handler);
    REQUIRE(params.size() == 2);
    REQUIRE(params[0] == std::pair<std::string_view, std::string_view>("id", "42"));
    REQUIRE(params[1] == std::pair<std::string_view, std::string_view>("post", "7"));
    REQUIRE(router.resolve("GET", "/u//posts/7", params).status == 404);  // an empty part matches nothing
    REQUIRE(router.resolve("GET", "/u/1/posts", params).status == 404);
    REQUIRE(router.resolve("GET", "/u/1/posts/2/3", params).status == 404);
    REQUIRE(router.resolve("DELETE", "/any", params).handler);
    REQUIRE_THROWS_AS(router.add_get("/a", [](Request&) { return Response(); }), std::invalid_argument);
    REQUIRE_THROWS_AS(router.add_get("nope", [](Request&) { return Response(); }), std::invalid_argument);
    REQUIRE_THROWS_AS(router.add_get("/x{y}", [](Request&) { return Response(); }), std::invalid_argument);
}

TEST_CASE("Response head: status line, Date, Content-Length, Connection only when not the default", "[stage5][server]") {
    std::string out;
    aio::Response r = aio::Response::text("Hello, World!");
    aio::append_response_head(out, r, aio::ResponseFraming{});
    REQUIRE(out.rfind("HTTP/1.1 200 OK\r\nServer: aio\r\nDate: ", 0) == 0);
    REQUIRE(contains(out, "\r\nContent-Length: 13\r\n"));
    REQUIRE(contains(out, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    REQUIRE_FALSE(contains(out, "Connection"));
    REQUIRE(out.substr(out.size() - 4) == "\r\n\r\n");
    // The head parses back, with the framing it announced.
    aio::HttpResponseParser parser;
    parser.feed(out + r.body);
    REQUIRE(parser.next_event().kind == aio::HttpEvent::head);
    REQUIRE(parser.head().content_length == 13);
    REQUIRE(aio::http_date().size() == 29);  // "Sun, 06 Nov 1994 08:49:37 GMT"

    out.clear();
    aio::Response teapot(418);
    teapot.reason = "I'm a teapot";
    teapot.headers.add("X-A", "b");
    aio::append_response_head(out, teapot, aio::ResponseFraming{aio::HttpVersion{1, 0}, true});
    REQUIRE(out.rfind("HTTP/1.0 418 I'm a teapot\r\n", 0) == 0);
    REQUIRE(contains(out, "\r\nConnection: keep-alive\r\n"));
    REQUIRE(contains(out, "\r\nX-A: b\r\n"));

    aio::Response framed = aio::Response::text("x");
    framed.headers.add("Content-Length", "1");
    REQUIRE_THROWS_AS(aio::append_response_head(out, framed, aio::ResponseFraming{}), std::invalid_argument);
    REQUIRE_THROWS_AS(aio::append_response_head(out, aio::Response(600), aio::ResponseFraming{}), std::invalid_argument);
}

TEST_CASE("percent_decode: %XX and + in queries", "[stage5][server]") {
    REQUIRE(aio::percent_decode("a%20b+c", true) == "a b c");
    REQUIRE(aio::percent_decode("a%20b+c", false) == "a b+c");
    REQUIRE(aio::percent_decode("100%", true) == "100%");
    REQUIRE(aio::percent_decode("%zz%4", true) == "%zz%4");
}
