// Stage 5 tests: hostile and careless peers. The server and the client each meet the other
// side at its worst (a client that leaves mid-request or never reads, requests built to
// overflow a limit, nonsense in the paths of httpbin; a server that redirects to nowhere,
// stops in the middle of a body, or answers too slowly; requests cancelled at every step),
// and each must answer with a clear error and lose nothing else: no crash, no hang, no
// file descriptor left open (NET_TEST_CASE counts them), the pool's counts right after.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <thread>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "stage5_http/client_session.hpp"
#include "tests/client_test_support.hpp"
#include "stage5_http/web_httpbin.hpp"
#include "stage5_http/web_server.hpp"
#include "stage5_http/web_stream_response.hpp"
#include "tests/child_process.hpp"
#include "tests/net_test_support.hpp"
#include "tests/scripted_peer.hpp"
#include "tests/server_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace server_test_support;
using aio::ClientResponse;
using aio::ClientSession;
using aio::Coroutine;
using aio::Ref;
using aio::Request;
using aio::Response;
using scripted_peer::PeerConnection;
using scripted_peer::ScriptedPeer;
using client_test::error_of;
using client_test::fetch;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Close with SO_LINGER 0: the peer sees a reset, not an EOF.
void reset(RawClient& client) {
    struct linger l{1, 0};
    ::setsockopt(client.socket().fileno(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    client.socket().close();
}

// Records what the loop's exception handler is given (the server's reports).
struct Reports {
    std::shared_ptr<std::vector<std::string>> messages = std::make_shared<std::vector<std::string>>();
    Reports() {
        auto m = messages;
        aio::get_running_loop().set_exception_handler(
            [m](aio::EventLoop&, const aio::ExceptionContext& c) { m->push_back(c.message); });
    }
    ~Reports() { aio::get_running_loop().set_exception_handler(nullptr); }
};

// Until `done()` or `limit` seconds, polling the loop.
template <typename F>
Coroutine<bool> eventually(F done, double limit = 2.0) {
    const double start = now();
    while (!done()) {
        if (now() - start > limit) co_return false;
        co_await aio::sleep(0.01);
    }
    co_return true;
}

// One request on a connection of its own: the response, or nullopt if the server closed.
Coroutine<std::optional<Reply>> ask(int port, std::string request, bool head = false) {
    RawClient client = co_await RawClient::connect(port);
    co_await client.send(std::move(request));
    std::optional<Reply> reply = co_await client.response(head);
    co_return reply;
}

}  // namespace

// ------------------------------------------------------------------ the server: clients leaving

namespace {

// A client that sends a request and leaves before the answer: by a reset (the coroutine
// handler is cancelled), by a close (the handler finishes; its answer goes nowhere). Either
// way nothing is reported, the connection is forgotten, the others are served.
Coroutine<> client_leaves_scenario() {
    auto finished = std::make_shared<int>(0);
    auto cancelled = std::make_shared<int>(0);
    aio::Router router;
    router.add_get("/wait", [finished, cancelled](Request&) -> Coroutine<Response> {
        try {
            co_await aio::sleep(0.3);
        } catch (const aio::CancelledError&) {
            ++*cancelled;
            throw;
        }
        ++*finished;
        co_return Response::text(std::string(200000, 'w'));  // larger than a socket buffer
    });
    router.add_get("/ok", [](Request&) { return Response::text("ok"); });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    Reports reports;

    RawClient resetting = co_await RawClient::connect(server->port());
    co_await resetting.send(get("/wait"));
    co_await aio::sleep(0.05);
    reset(resetting);
    RawClient closing = co_await RawClient::connect(server->port());
    co_await closing.send(get("/wait"));
    co_await aio::sleep(0.05);
    closing.socket().close();

    std::optional<Reply> ok = co_await ask(server->port(), get("/ok"));
    REQUIRE(ok->body == "ok");
    auto all_gone_check = [&] { return server->open_connections() == 0; };
    bool all_gone = co_await eventually(all_gone_check);
    REQUIRE(all_gone);
    REQUIRE(*cancelled == 1);
    REQUIRE(*finished == 1);
    INFO((reports.messages->empty() ? "" : reports.messages->front()));
    REQUIRE(reports.messages->empty());
    co_await server->shutdown(1.0);
}

// A client that sends its requests, then shuts its sending side (a half-close): every
// request is still answered, then the server closes. Also with a body cut short by it: 400.
Coroutine<> half_close_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send(get("/delay/0.1") + get("/get?n=2") + request("POST", "/echo", "", "body"));
    client.socket().shutdown(SHUT_WR);
    std::optional<Reply> r1 = co_await client.response();
    std::optional<Reply> r2 = co_await client.response();
    std::optional<Reply> r3 = co_await client.response();
    REQUIRE(r1->status == 200);
    REQUIRE(r2->status == 200);
    REQUIRE(r3->body == "body");
    bool closed = co_await client.closed_within(1.0);
    REQUIRE(closed);

    RawClient cut = co_await RawClient::connect(server->port());
    co_await cut.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    cut.socket().shutdown(SHUT_WR);
    std::optional<Reply> r = co_await cut.response();
    REQUIRE(r->status == 400);
    closed = co_await cut.closed_within(1.0);
    REQUIRE(closed);
    auto gone_check = [&] { return server->open_connections() == 0; };
    bool gone = co_await eventually(gone_check);
    REQUIRE(gone);
    co_await server->shutdown(1.0);
}

// A thousand connections (fewer where fds are scarce) made and dropped at once, in every
// way: closed, reset, half a head, a whole request then gone. The server forgets each one.
Coroutine<> many_connections_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    Reports reports;
    // Each connection costs two fds here (the client's and the server's): stay well inside
    // the limit (often 1024), which would only make the server pause accepting.
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    const long room = (long(std::min<rlim_t>(nofile.rlim_cur, 100000)) - std::max(open_fd_count(), 0) - 64) / 2;
    const int n = int(std::max(50L, std::min(1000L, room)));
    std::vector<RawClient> clients;
    for (int i = 0; i < n; ++i) {
        RawClient c = co_await RawClient::connect(server->port());
        clients.push_back(std::move(c));
    }
    for (int i = 0; i < n; ++i) {
        if (i % 4 == 1) co_await clients[std::size_t(i)].send("GET /get HTTP/1.1\r\nHo");
        if (i % 4 == 2) co_await clients[std::size_t(i)].send(get("/delay/0.1"));
        if (i % 4 == 3) co_await clients[std::size_t(i)].send(get("/bytes/100000"));
    }
    co_await aio::sleep(0.05);
    for (int i = 0; i < n; ++i) {
        if (i % 2)
            reset(clients[std::size_t(i)]);
        else
            clients[std::size_t(i)].socket().close();
    }
    clients.clear();
    std::optional<Reply> ok = co_await ask(server->port(), get("/get"));
    REQUIRE(ok->status == 200);
    auto all_gone_check = [&] { return server->open_connections() == 0; };
    bool all_gone = co_await eventually(all_gone_check, 5.0);
    INFO(n << " connections; still open: " << server->open_connections());
    REQUIRE(all_gone);
    REQUIRE(server->connections_accepted() == std::uint64_t(n) + 1);
    REQUIRE(reports.messages->empty());
    co_await server->shutdown(1.0);
}

// A handler that streams without pause (a large file, an endless feed) to a client that
// has closed: the first write reaches the client's kernel, which answers with a reset; the
// next fails, and the transport starts closing. Its writes from then on are dropped without
// filling the buffer (so write() never waits), and the handler must hear that the client
// has gone rather than spin without ever yielding to the loop.
Coroutine<> endless_stream_scenario() {
    auto writes = std::make_shared<long>(0);
    auto outcome = std::make_shared<std::string>();
    aio::Router router;
    router.add_get("/endless", [writes, outcome](Request& request) -> Coroutine<Response> {
        aio::StreamResponse response(request);
        const std::string piece(4096, 'e');
        try {
            co_await response.prepare();
            co_await aio::sleep(0.2);  // the client reads the head and closes
            for (; *writes < 2000000; ++*writes) co_await response.write(piece);  // (bounded: a test must end)
            *outcome = "wrote everything";
        } catch (const aio::ConnectionResetError&) {
            *outcome = "ConnectionResetError";
            throw;
        } catch (const aio::CancelledError&) {  // (the connection_lost of a reset)
            *outcome = "cancelled";
            throw;
        }
        co_return response;
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    Reports reports;
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send(get("/endless"));
    std::string first = co_await aio::sock_recv(client.socket(), 65536);
    REQUIRE(first.starts_with("HTTP/1.1 200"));
    client.socket().close();
    auto ended_check = [&] { return !outcome->empty(); };
    bool ended = co_await eventually(ended_check, 5.0);
    REQUIRE(ended);
    INFO("writes: " << *writes);
    REQUIRE(*outcome != "wrote everything");
    REQUIRE(*writes < 1000);
    auto gone_check = [&] { return server->open_connections() == 0; };
    bool gone = co_await eventually(gone_check);
    REQUIRE(gone);
    REQUIRE(reports.messages->empty());
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("faults: a client that leaves before its answer (reset: handler cancelled; close: answer dropped)",
              "[stage5][faults][server]") {
    run_on("epoll", client_leaves_scenario());
}

NET_TEST_CASE("faults: a client that half-closes after its requests gets every answer, then EOF",
              "[stage5][faults][server]") {
    run_on("epoll", half_close_scenario());
}

NET_TEST_CASE("faults: a handler streaming without pause hears that the client has gone, and stops",
              "[stage5][faults][server][flow]") {
    run_on("epoll", endless_stream_scenario(), 20.0);
}

NET_TEST_CASE("faults: a thousand connections made and dropped at once, every way", "[stage5][faults][server]") {
    run_on("epoll", many_connections_scenario(), 30.0);
}

// ------------------------------------------------------------ the server: handlers that throw

namespace {

// Handlers that throw what is not a std::exception: a 500, reported, the connection kept.
Coroutine<> non_std_throw_scenario() {
    aio::Router router;
    router.add_get("/int", [](Request&) -> Response { throw 42; });
    router.add_get("/int-later", [](Request&) -> Coroutine<Response> {
        co_await aio::sleep(0.01);
        throw 42;
    });
    router.add_get("/ok", [](Request&) { return Response::text("ok"); });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    Reports reports;
    RawClient client = co_await RawClient::connect(server->port());
    for (const char* target : {"/int", "/int-later"}) {
        co_await client.send(get(target));
        std::optional<Reply> r = co_await client.response();
        REQUIRE(r->status == 500);
        REQUIRE(r->keep_alive);
    }
    co_await client.send(get("/ok"));
    std::optional<Reply> ok = co_await client.response();
    REQUIRE(ok->body == "ok");
    REQUIRE(reports.messages->size() == 2);
    co_await server->shutdown(1.0);
}

}  // namespace

namespace {

// A content type taken from the request (decoded from the query, where %0d%0a is a CR LF):
// it must not split the head and inject a field of the client's choosing. The server
// refuses it as it refuses such a field: a 500.
Coroutine<> content_type_injection_scenario() {
    aio::Router router;
    router.add_get("/typed", [](Request& request) {
        Response r = Response::text("typed");
        r.content_type = request.query("type").value_or("text/plain");
        return r;
    });
    router.add_get("/typed-stream", [](Request& request) -> Coroutine<Response> {
        aio::StreamResponse response(request);
        response.content_type() = request.query("type").value_or("text/plain");
        co_await response.prepare();
        co_await response.write("typed");
        co_return response;
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    Reports reports;
    RawClient client = co_await RawClient::connect(server->port());
    for (const char* target : {"/typed?type=text/plain%0d%0aX-Injected:%201", "/typed-stream?type=text/plain%0aX-Injected:%201"}) {
        co_await client.send(get(target));
        std::optional<Reply> r = co_await client.response();
        INFO(target);
        REQUIRE(r->status == 500);
        REQUIRE(r->header("X-Injected").empty());
    }
    co_await client.send(get("/typed?type=text/html;%20charset=latin1"));
    std::optional<Reply> ok = co_await client.response();
    REQUIRE(ok->header("Content-Type") == "text/html; charset=latin1");
    REQUIRE(reports.messages->size() == 2);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("faults: a content type with a CR LF cannot inject a field: 500", "[stage5][faults][server]") {
    run_on("epoll", content_type_injection_scenario());
}

NET_TEST_CASE("faults: handlers that throw a non-std exception give a 500, and the connection goes on",
              "[stage5][faults][server]") {
    run_on("epoll", non_std_throw_scenario());
}

// ------------------------------------------------------------ the server: requests at a limit

namespace {

// What the server says to one request on a connection of its own: "<status>" and, if the
// connection is then closed, " close".
Coroutine<std::string> status_of(int port, std::string request, bool head = false) {
    RawClient client = co_await RawClient::connect(port);
    try {
        co_await client.send(std::move(request));
    } catch (const aio::OSError&) {  // the server answered and closed before we were done
    }
    std::optional<Reply> reply = co_await client.response(head);
    if (!reply) co_return "closed";
    std::string out = std::to_string(reply->status);
    if (!reply->keep_alive) out += " close";
    co_return out;
}

Coroutine<> limits_scenario() {
    aio::Router router = aio::httpbin_router();
    router.add_post("/read", [](Request& request) -> Coroutine<Response> {
        std::string body = co_await request.read();
        co_return Response::text(std::to_string(body.size()));
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    Reports reports;
    const int port = server->port();
    std::string s;

    // A field line of a megabyte; 1000 small fields (the limit is 100).
    s = co_await status_of(port, get("/get", "X-Big: " + std::string(1 << 20, 'a') + "\r\n"));
    REQUIRE(s == "431 close");
    std::string many;
    for (int i = 0; i < 1000; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    s = co_await status_of(port, get("/get", many));
    REQUIRE(s == "431 close");

    // A Content-Length of 2^63 and of 2^64 (which overflows): refused before any body.
    s = co_await status_of(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9223372036854775808\r\n\r\n");
    REQUIRE(s == "413 close");
    s = co_await status_of(port, "POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551616\r\n\r\n");
    REQUIRE(s == "400 close");
    // A chunk size that overflows 64 bits; one that fits but is past the body limit.
    s = co_await status_of(port, "POST /read HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "1ffffffffffffffff\r\nx");
    REQUIRE(s.substr(0, 1) == "4");
    REQUIRE(s.find("close") != std::string::npos);
    s = co_await status_of(port, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "ffffffffffffffff\r\nxyz");
    REQUIRE(s == "413 close");

    // A chunk extension of a megabyte; a thousand trailer fields (llhttp's and aiohttp's
    // unbounded chunk extensions and trailers were denial-of-service bugs).
    s = co_await status_of(port, "POST /read HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3;ext=" + std::string(1 << 20, 'x') + "\r\nabc\r\n0\r\n\r\n");
    REQUIRE(s.substr(0, 1) == "4");
    REQUIRE(s.find("close") != std::string::npos);
    s = co_await status_of(port, "POST /read HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3\r\nabc\r\n0\r\n" + many + "\r\n");
    REQUIRE(s == "431 close");

    // Expect: 100-continue with a body over the limit: 413 at once, and no 100 first.
    RawClient expecting = co_await RawClient::connect(port);
    co_await expecting.send("POST /read HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n");
    std::optional<Reply> first = co_await expecting.response(false, true);
    REQUIRE(first->status == 413);

    // Nothing of it reached a handler or the log.
    REQUIRE(reports.messages->empty());
    std::optional<Reply> ok = co_await ask(port, get("/get"));
    REQUIRE(ok->status == 200);
    co_await server->shutdown(1.0);
}

// Pipelined: two good requests, a malformed one, a good one. The first two are answered,
// then the 400, then the connection closes: the fourth is never read.
Coroutine<> pipelined_malformed_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send(get("/get?n=1") + get("/status/201") + "GET /bad path HTTP/1.1\r\nHost: t\r\n\r\n" +
                         get("/get?n=4"));
    std::optional<Reply> r1 = co_await client.response();
    std::optional<Reply> r2 = co_await client.response();
    std::optional<Reply> r3 = co_await client.response();
    REQUIRE(r1->status == 200);
    REQUIRE(contains(r1->body, "\"n\": \"1\""));
    REQUIRE(r2->status == 201);
    REQUIRE(r3->status == 400);
    REQUIRE_FALSE(r3->keep_alive);
    std::optional<Reply> r4 = co_await client.response();
    REQUIRE_FALSE(r4);
    REQUIRE(server->requests_handled() == 3);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("faults: requests built to overflow a limit get their 4xx, before any body is read",
              "[stage5][faults][server][limits]") {
    run_on("epoll", limits_scenario());
}

NET_TEST_CASE("faults: a malformed request among pipelined ones: those before it answered, then 400 and close",
              "[stage5][faults][server]") {
    run_on("epoll", pipelined_malformed_scenario());
}

// ------------------------------------------------------------ the server: httpbin's nonsense

namespace {

Coroutine<> httpbin_nonsense_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    Reports reports;
    const int port = server->port();
    RawClient client = co_await RawClient::connect(port);
    // Every one is answered with a 4xx, and the connection goes on.
    const char* bad[] = {"/delay/nan", "/delay/NaN", "/delay/inf",  "/delay/-inf", "/delay/-1",  "/delay/1e400",
                         "/delay/",    "/delay/0x10", "/delay/1%20", "/bytes/-1",   "/bytes/999999999999",
                         "/bytes/99999999999999999999999", "/bytes/1.5", "/bytes/+5", "/status/0", "/status/99999",
                         "/status/-200", "/redirect/100000", "/redirect/0", "/stream/-1", "/stream/100001",
                         "/site/page/-1", "/site/page/%31", "/%zz", "/get%00", "/..%2f..%2fetc/passwd"};
    for (const char* target : bad) {
        co_await client.send(get(target));
        std::optional<Reply> r = co_await client.response();
        INFO(target << " -> " << r->status << " " << r->body);
        REQUIRE(r->status >= 400);
        REQUIRE(r->status < 500);
        REQUIRE(r->keep_alive);
    }
    // Odd but valid: a query of percent junk, an encoded NUL, non-ASCII.
    co_await client.send(get("/get?%ff=%00&%zz=%&a=%2"));
    std::optional<Reply> q = co_await client.response();
    REQUIRE(q->status == 200);
    REQUIRE(reports.messages->empty());

    // HEAD: the heads of /bytes and /stream, and no body (the next answer parses).
    for (const char* target : {"/bytes/100000", "/stream/3", "/delay/0", "/redirect/2"}) {
        co_await client.send(request("HEAD", target));
        std::optional<Reply> h = co_await client.response(true);
        INFO(target);
        REQUIRE(h->status < 400);
        REQUIRE(h->body.empty());
        co_await client.send(get("/status/202"));
        std::optional<Reply> next = co_await client.response();
        REQUIRE(next->status == 202);
    }
    REQUIRE(server->connections_accepted() == 1);
    co_await server->shutdown(1.0);
}

// The absolute form of a target (what a proxy is sent, and a server must accept) with a
// query and no path: the path is "/", and the query is kept.
Coroutine<> absolute_form_scenario() {
    aio::Router router;
    router.add_get("/", [](Request& request) {
        return Response::text(std::string(request.path()) + " ? " + std::string(request.query_string()));
    });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    RawClient client = co_await RawClient::connect(server->port());
    for (const char* target : {"http://test?a=1", "http://test/?a=1", "/?a=1"}) {
        co_await client.send(std::string("GET ") + target + " HTTP/1.1\r\nHost: test\r\n\r\n");
        std::optional<Reply> r = co_await client.response();
        INFO(target);
        REQUIRE(r->body == "/ ? a=1");
    }
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("faults: an absolute-form target with a query and no path keeps its query", "[stage5][faults][server]") {
    run_on("epoll", absolute_form_scenario());
}

NET_TEST_CASE("faults: httpbin's endpoints given nonsense answer 4xx and keep the connection; HEAD sends no body",
              "[stage5][faults][server][httpbin]") {
    run_on("epoll", httpbin_nonsense_scenario());
}

// ------------------------------------------------------------------ the server: slow bodies

namespace {

// A body dripped, then stalled, to a coroutine handler that reads it: as for a plain
// handler, its next bytes are due within header_timeout; past it, 408 and close, and the
// handler is cancelled (a slowloris on bodies must not hold a connection and a handler
// for ever).
Coroutine<> stalled_body_scenario() {
    auto cancelled = std::make_shared<int>(0);
    aio::Router router;
    router.add_post("/read", [cancelled](Request& request) -> Coroutine<Response> {
        try {
            std::string body = co_await request.read();
            co_return Response::text(std::to_string(body.size()));
        } catch (const aio::CancelledError&) {
            ++*cancelled;
            throw;
        }
    });
    aio::ServerConfig config;
    config.header_timeout = 0.3;
    Ref<aio::HttpServer> server = co_await start_server(std::move(router), config);
    Reports reports;
    RawClient client = co_await RawClient::connect(server->port());
    const double start = now();
    co_await client.send("POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    co_await aio::sleep(0.2);
    co_await client.send("de");  // still coming: the deadline moves on
    auto answered = aio::wait_for(client.response(), 3.0);
    std::optional<Reply> r = co_await std::move(answered);
    const double after = now() - start;
    REQUIRE(r->status == 408);
    REQUIRE_FALSE(r->keep_alive);
    REQUIRE(after >= 0.45);
    REQUIRE(after < 2.0);
    bool closed = co_await client.closed_within(3.0);
    REQUIRE(closed);
    REQUIRE(*cancelled == 1);
    REQUIRE(reports.messages->empty());
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("faults: a body that stalls while a coroutine handler reads it: 408 after header_timeout",
              "[stage5][faults][server][timeouts]") {
    run_on("epoll", stalled_body_scenario());
}

// ------------------------------------------------------------------ the server: shutdown

namespace {

// Shutdown while a slow client is in the middle of a head and a /delay is in flight: the
// /delay answers (saying close), the half head is cut off at the shutdown's timeout.
Coroutine<> shutdown_mid_request_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    RawClient slow = co_await RawClient::connect(server->port());
    co_await slow.send("GET /get HTTP/1.1\r\nHost: t\r\nX-Half: ");
    RawClient delayed = co_await RawClient::connect(server->port());
    co_await delayed.send(get("/delay/0.2"));
    co_await aio::sleep(0.05);
    const double start = now();
    auto stopping = aio::create_task(server->shutdown(0.6));
    std::optional<Reply> answer = co_await delayed.response();
    REQUIRE(answer->status == 200);
    REQUIRE(answer->header("Connection") == "close");
    co_await stopping;
    REQUIRE(now() - start < 2.0);
    REQUIRE(server->open_connections() == 0);
    bool closed = co_await slow.closed_within(1.0);
    REQUIRE(closed);
}

// Shutdown while the connection drops the rest of a body its handler did not read (it
// answered first, keeping the connection): once the body has arrived, the connection is
// idle, and it closes then, not at the shutdown's timeout.
Coroutine<> shutdown_while_discarding_scenario() {
    aio::Router router;
    router.add_post("/early", [](Request&) -> Coroutine<Response> { co_return Response::text("early"); });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    RawClient client = co_await RawClient::connect(server->port());
    co_await client.send("POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    std::optional<Reply> answer = co_await client.response();
    REQUIRE(answer->body == "early");
    REQUIRE(answer->keep_alive);
    auto stopping = aio::create_task(server->shutdown(5.0));
    co_await aio::sleep(0.05);
    const double start = now();
    co_await client.send("defghij");  // the rest of the body
    bool closed = co_await client.closed_within(2.0);
    REQUIRE(closed);
    co_await stopping;
    REQUIRE(now() - start < 1.0);
}

}  // namespace

NET_TEST_CASE("faults: shutdown while a client is mid-head and a /delay is in flight", "[stage5][faults][server][shutdown]") {
    run_on("epoll", shutdown_mid_request_scenario());
}

NET_TEST_CASE("faults: shutdown while a connection drops an unread body closes it once the body is in",
              "[stage5][faults][server][shutdown]") {
    run_on("epoll", shutdown_while_discarding_scenario());
}

// ----------------------------------------------------------------------------- the client

namespace {

std::string base(const Ref<aio::HttpServer>& server) { return "http://127.0.0.1:" + std::to_string(server->port()); }

// httpbin, and /stall: one chunk of a streamed answer, then one every 0.2 s for 5 s.
aio::Router stalling_httpbin() {
    aio::Router router = aio::httpbin_router();
    router.add_get("/stall", [](Request& request) -> Coroutine<Response> {
        aio::StreamResponse response(request);
        co_await response.prepare();
        co_await response.write("first piece\n");
        for (int i = 0; i < 25; ++i) {  // (a write to a client that has gone raises)
            co_await aio::sleep(0.2);
            co_await response.write("another piece\n");
        }
        co_await response.write_eof();
        co_return response;
    });
    return router;
}

// A request cancelled at each of its awaits in turn (after 0, 1, 2, ... passes of the
// loop), through a redirect, the head and a streamed body: the pool's counts are right
// after each, and the next request works.
Coroutine<> cancel_everywhere_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    ClientSession session(aio::ClientSessionOptions{.limit = 2});
    const std::string url = base(server) + "/redirect/2";
    const std::string stream_url = base(server) + "/stream/30";
    int finished_after = -1;
    for (int passes = 0; passes < 200 && finished_after < 0; ++passes) {
        auto requesting = aio::create_task(fetch(session, passes % 2 ? url : stream_url));
        for (int i = 0; i < passes && !requesting->done(); ++i) co_await aio::sleep(0);
        if (requesting->done()) {
            finished_after = passes;
        } else {
            requesting->cancel();
        }
        try {
            co_await requesting;
        } catch (const aio::CancelledError&) {
        }
        INFO("cancelled after " << passes << " passes");
        REQUIRE(session.connector().in_use() == 0);
        REQUIRE(session.connector().idle_count() <= 2);
    }
    INFO("finished after " << finished_after << " passes");
    REQUIRE(finished_after > 5);

    // With limit=1, a second request waits for the first's connection; cancelled at each
    // pass, it is cancelled while waiting, or just after the slot was handed to it, or
    // while using it: the slot is never lost (the third request would wait forever).
    ClientSession one(aio::ClientSessionOptions{.limit = 1});
    for (int passes = 0; passes < 60; ++passes) {
        auto first = aio::create_task(fetch(one, base(server) + "/get"));
        auto second = aio::create_task(fetch(one, base(server) + "/get"));
        for (int i = 0; i < passes && !second->done(); ++i) co_await aio::sleep(0);
        second->cancel();
        std::string got = co_await first;
        REQUIRE(got.starts_with("200"));
        try {
            co_await second;
        } catch (const aio::CancelledError&) {
        }
        INFO("the second cancelled after " << passes << " passes");
        REQUIRE(one.connector().in_use() == 0);
        std::string third = co_await aio::wait_for(fetch(one, base(server) + "/status/204"), 2.0);
        REQUIRE(third.starts_with("204"));
    }
    co_await one.close();
    std::string again = co_await fetch(session, base(server) + "/status/203");
    REQUIRE(again.starts_with("203"));
    co_await session.close();
    co_await server->shutdown(1.0);
}

// The total timeout expires in the middle of a body: TimeoutError, and the connection is
// closed, not pooled; the server sees it go (its handler's next write fails).
Coroutine<> body_cut_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(stalling_httpbin());
    ClientSession session(aio::ClientSessionOptions{.timeout = aio::ClientTimeout{.total = 0.3}});
    std::string e = co_await error_of(fetch(session, base(server) + "/stall"));
    REQUIRE(e.starts_with("TimeoutError: total timeout of 0.3 s expired while reading the body"));
    REQUIRE(session.connector().in_use() == 0);
    REQUIRE(session.connector().idle_count() == 0);
    auto gone_check = [&] { return server->open_connections() == 0; };
    bool gone = co_await eventually(gone_check);
    REQUIRE(gone);
    // The session still works.
    std::string ok = co_await fetch(session, base(server) + "/status/200");
    REQUIRE(ok.starts_with("200"));
    co_await session.close();
    co_await server->shutdown(1.0);
}

// The redirects a client must refuse: a loop, https, a malformed Location, one with no
// host. Each is a clear error; no connection is left lent out.
Coroutine<> bad_redirects_scenario(int port) {
    ClientSession session;
    const std::string at = "http://127.0.0.1:" + std::to_string(port);
    std::string loop = co_await error_of(fetch(session, at + "/loop"));
    REQUIRE(loop.starts_with("TooManyRedirects"));
    std::string https = co_await error_of(fetch(session, at + "/https"));
    REQUIRE(https.starts_with("InvalidURL"));
    std::string junk = co_await error_of(fetch(session, at + "/junk"));
    REQUIRE(junk.starts_with("InvalidURL"));
    std::string port0 = co_await error_of(fetch(session, at + "/port0"));
    REQUIRE(port0.starts_with("InvalidURL"));
    REQUIRE(session.connector().in_use() == 0);
    co_await session.close();
}

// Many requests at once, far over the pool's limit: all are answered, over at most `limit`
// connections; none is left lent out.
Coroutine<> over_limit_scenario(int n) {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    ClientSession session(aio::ClientSessionOptions{.limit = 10});
    std::vector<Ref<aio::Task<std::string>>> tasks;
    for (int i = 0; i < n; ++i)
        tasks.push_back(aio::create_task(fetch(session, base(server) + "/status/" + std::to_string(200 + i % 7))));
    int ok = 0;
    for (auto& t : tasks) {
        std::string got = co_await t;
        if (got.starts_with("20")) ++ok;
    }
    REQUIRE(ok == n);
    REQUIRE(session.connector().connections_opened() <= 10);
    REQUIRE(session.connector().in_use() == 0);
    co_await session.close();
    co_await server->shutdown(1.0);
}

// Responses over the session's max_body_size: one that says its size in its head, and a
// chunked one that passes it on the way. Each is an error naming the limit; neither
// connection goes back to the pool.
Coroutine<> over_body_limit_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    aio::ClientSessionOptions options;
    options.parser_limits.max_body_size = 1000;
    ClientSession session(options);
    std::string sized = co_await error_of(fetch(session, base(server) + "/bytes/5000"));
    INFO(sized);
    REQUIRE(sized.find("max_body_size") != std::string::npos);
    std::string streamed = co_await error_of(fetch(session, base(server) + "/stream/100"));
    INFO(streamed);
    REQUIRE(streamed.starts_with("ClientPayloadError"));
    REQUIRE(streamed.find("max_body_size") != std::string::npos);
    REQUIRE(session.connector().in_use() == 0);
    REQUIRE(session.connector().idle_count() == 0);
    std::string small = co_await fetch(session, base(server) + "/bytes/10");
    REQUIRE(small.starts_with("200"));
    co_await session.close();
    co_await server->shutdown(1.0);
}

// The session closed while requests are in flight (some reading, some waiting for a slot):
// each fails with a client error at once, and nothing is left open.
Coroutine<> close_in_flight_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    auto session = std::make_unique<ClientSession>(aio::ClientSessionOptions{.limit = 3});
    std::vector<Ref<aio::Task<std::string>>> tasks;
    for (int i = 0; i < 8; ++i)
        tasks.push_back(aio::create_task(error_of(fetch(*session, base(server) + "/delay/0.5"))));
    co_await aio::sleep(0.1);
    const double start = now();
    co_await session->close();
    for (auto& t : tasks) {
        std::string e = co_await t;
        INFO(e);
        REQUIRE(e.find("Error") != std::string::npos);
    }
    REQUIRE(now() - start < 1.0);
    REQUIRE(session->connector().in_use() == 0);
    session.reset();
    // (The client's close is a FIN, which the server takes for a half-close: the handlers
    // finish, their answers go nowhere, then the connections close.)
    auto gone_check = [&] { return server->open_connections() == 0; };
    bool gone = co_await eventually(gone_check, 3.0);
    REQUIRE(gone);
    co_await server->shutdown(1.0);
}

// A body over the server's limit: its 413 arrives before the body is sent; the client
// reads it as the answer (no exception), and does not reuse the connection.
Coroutine<> early_answer_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    ClientSession session;
    ClientResponse r = co_await session.post(base(server) + "/echo", std::string(3 << 20, 'p'));
    std::string body = co_await r.read();
    REQUIRE(r.status() == 413);
    REQUIRE(session.connector().in_use() == 0);
    REQUIRE(session.connector().idle_count() == 0);
    co_await session.close();
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("faults: a request cancelled at each of its awaits leaves the pool's counts right",
              "[stage5][faults][client][pool]") {
    run_on("epoll", cancel_everywhere_scenario(), 30.0);
}

NET_TEST_CASE("faults: the total timeout in the middle of a body: the connection is closed, not pooled",
              "[stage5][faults][client]") {
    run_on("epoll", body_cut_scenario());
}

NET_TEST_CASE("faults: redirects to nowhere: a loop, https, malformed, port 0", "[stage5][faults][client][redirect]") {
    ScriptedPeer peer([](PeerConnection& c) {
        while (std::optional<std::string> req = c.read_request()) {
            std::string location = "/loop";
            if (req->starts_with("GET /https")) location = "https://127.0.0.1/";
            if (req->starts_with("GET /junk")) location = "http://[::1/";
            if (req->starts_with("GET /port0")) location = "http://127.0.0.1:0/";
            c.send("HTTP/1.1 302 Found\r\nLocation: " + location + "\r\nContent-Length: 0\r\n\r\n");
        }
    });
    run_on("epoll", bad_redirects_scenario(peer.port()));
}

NET_TEST_CASE("faults: a thousand concurrent requests over limit=10", "[stage5][faults][client][pool]") {
    run_on("epoll", over_limit_scenario(1000), 60.0);
}

NET_TEST_CASE("faults: a response over the client's max_body_size is an error naming the limit",
              "[stage5][faults][client][limits]") {
    run_on("epoll", over_body_limit_scenario());
}

NET_TEST_CASE("faults: the session closed while requests are in flight", "[stage5][faults][client]") {
    run_on("epoll", close_in_flight_scenario());
}

NET_TEST_CASE("faults: a 413 answered before the body was sent is the client's answer", "[stage5][faults][client]") {
    run_on("epoll", early_answer_scenario());
}

NET_TEST_CASE("faults: an HTTP/1.1 body without framing runs to the close; that connection is not pooled",
              "[stage5][faults][client]") {
    ScriptedPeer peer([](PeerConnection& c) {
        if (!c.read_request()) return;
        c.send("HTTP/1.1 200 OK\r\n\r\nabc");
        c.pause(100);
        c.send("def");
    });
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        ClientSession session;
        std::string got = co_await fetch(session, url);
        REQUIRE(session.connector().idle_count() == 0);
        REQUIRE(session.connector().in_use() == 0);
        co_await session.close();
        co_return got;
    };
    CHECK(aio::run(scenario(peer.url("/")), aio::new_selector_event_loop) == "200 abcdef");
}

// Answers no client asked for: a 101 Switching Protocols to a plain GET (returned as it is,
// with no body: what follows is not HTTP, and the connection is not reused), and an endless
// stream of 100 Continue (bounded by the total timeout). No connection is left lent out or
// pooled.
NET_TEST_CASE("faults: a 101 nobody asked for, and a flood of 1xx answers", "[stage5][faults][client]") {
    ScriptedPeer peer([](PeerConnection& c) {
        std::optional<std::string> req = c.read_request();
        if (!req) return;
        if (req->starts_with("GET /switch")) {
            c.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nnot http");
            c.pause(2000);
            return;
        }
        for (int i = 0; i < 2000 && c.send("HTTP/1.1 100 Continue\r\n\r\n"); ++i) c.pause(1);
    });
    auto scenario = [](std::string switch_url, std::string flood_url) -> Coroutine<std::vector<std::string>> {
        ClientSession session(aio::ClientSessionOptions{.timeout = aio::ClientTimeout{.total = 0.5}});
        std::vector<std::string> errors;
        std::string switched = co_await fetch(session, switch_url);  // (what follows is not read as a body)
        errors.push_back(switched);
        std::string e;
        e = co_await error_of(fetch(session, flood_url));
        errors.push_back(e);
        REQUIRE(session.connector().in_use() == 0);
        REQUIRE(session.connector().idle_count() == 0);
        co_await session.close();
        co_return errors;
    };
    std::vector<std::string> errors =
        aio::run(scenario(peer.url("/switch"), peer.url("/flood")), aio::new_selector_event_loop);
    INFO(errors[0]);
    CHECK(errors[0] == "101 ");
    INFO(errors[1]);
    CHECK(errors[1].starts_with("TimeoutError: total timeout of 0.5 s expired"));
}

NET_TEST_CASE("faults: a name that does not resolve: ClientConnectorError naming it", "[stage5][faults][client]") {
    auto scenario = []() -> Coroutine<std::string> {
        ClientSession session(aio::ClientSessionOptions{.timeout = aio::ClientTimeout{.total = 8.0}});
        std::string e = co_await error_of(fetch(session, "http://no-such-host.invalid/"));
        REQUIRE(session.connector().in_use() == 0);
        co_await session.close();
        co_return e;
    };
    std::string e = aio::run(scenario(), aio::new_selector_event_loop);
    INFO(e);
    CHECK((e.starts_with("ClientConnectorError: cannot connect to host no-such-host.invalid:80") ||
           e.starts_with("TimeoutError")));  // (a machine whose resolver does not answer)
}

// ----------------------------------------------------------------------------- the programs

namespace {

using Run = child_process::ProgramRun;

// Runs build/bin/<name> with `args`; nullopt (after a warning) if it is not built.
std::optional<Run> run_program(const std::string& name, std::vector<std::string> args) {
    std::optional<Run> run = child_process::run_course_program(name, std::move(args));
    if (!run) WARN("build/bin/" << name << " is not built (run make): its tests are skipped");
    return run;
}

}  // namespace

NET_TEST_CASE("faults: fetch refuses a method that is not a token and an unwritable -o, saying why", "[stage5][faults][fetch]") {
    auto method = run_program("fetch", {"-X", "GE T", "http://127.0.0.1:1/"});
    if (!method) return;
    INFO(method->err);
    CHECK(method->status == 2);
    CHECK(method->err.find("-X wants a method name") != std::string::npos);
    auto output = run_program("fetch", {"-o", "/nonexistent-dir/x", "http://127.0.0.1:1/"});
    INFO(output->err);
    CHECK(output->status == 2);
    CHECK(output->err.find("No such file or directory") != std::string::npos);
}

NET_TEST_CASE("faults: httpbin on a port in use says so, with a hint; --help", "[stage5][faults][httpbin]") {
    aio::Socket taken = listening_socket();
    auto busy = run_program("httpbin", {"--port", std::to_string(taken.getsockname().port())});
    if (!busy) return;
    INFO(busy->err);
    CHECK(busy->status == 1);
    CHECK(busy->err.find("Address already in use") != std::string::npos);
    CHECK(busy->err.find("pick another --port") != std::string::npos);
    auto help = run_program("httpbin", {"--help"});
    CHECK(help->status == 0);
    CHECK(help->out.find("--port") != std::string::npos);
}

NET_TEST_CASE("faults: httpbin: a second SIGINT during the graceful shutdown ends it at once", "[stage5][faults][httpbin]") {
    struct sigaction current {};
    ::sigaction(SIGINT, nullptr, &current);
    if (current.sa_handler == SIG_IGN) {  // (a shell started us with it ignored: so would httpbin be)
        WARN("SIGINT is ignored in this process: skipped");
        return;
    }
    const std::string program = child_process::course_program("httpbin");
    if (program.empty()) {
        WARN("build/bin/httpbin is not built (run make): skipped");
        return;
    }
    child_process::Child child({program, "--port", "0"});
    std::optional<std::string> address = child.read_line(10);
    REQUIRE(address);
    const int port = std::stoi(address->substr(address->rfind(':') + 1));
    // A request in flight for 3 s holds the graceful shutdown (its timeout is 10 s).
    aio::Socket sock(AF_INET);
    const int fd = sock.fileno();
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    const aio::SockAddr to = aio::SockAddr::ip("127.0.0.1", std::uint16_t(port));
    REQUIRE(::connect(fd, to.get(), to.size()) == 0);
    const std::string req = get("/delay/3");
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double start = now();
    ::kill(child.pid(), SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::kill(child.pid(), SIGINT);
    std::string out, err;
    const int status = child.finish(10, out, err);
    INFO(err);
    CHECK(status == -1);  // ended by the signal, not by an exit
    CHECK(now() - start < 2.0);
    CHECK(err.find("SIGINT: shutting down") != std::string::npos);
}
