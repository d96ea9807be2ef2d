// Stage 5 tests: the asynchronous client (ClientSession, TCPConnector, ClientResponse)
// against a scripted peer (tests/scripted_peer.hpp) that answers with exact bytes and records
// what it received. Keep-alive reuse and the pool's limits (counted at the peer); redirects
// (each code and method rule, relative Location, history, a loop); the total and connect
// timeouts; the stale-connection retry (and no retry for a POST); malformed responses (bad
// status line, bad chunk size, truncated body, both framings, huge head), a slow drip, an
// HTTP/1.0 close-delimited body, stray bytes after a 204, 100 Continue; a large body
// streamed through bounded memory; closing sessions and unread responses.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/selector_transport.hpp"
#include "stage5_http/client_session.hpp"
#include "tests/client_test_support.hpp"
#include "tests/net_test_support.hpp"
#include "tests/scripted_peer.hpp"

namespace {

using aio::ClientResponse;
using aio::ClientSession;
using aio::Coroutine;
using scripted_peer::PeerConnection;
using scripted_peer::ScriptedPeer;
using client_test::error_of;
using client_test::fetch;
using scripted_peer::response;

// Runs a client scenario on a selector loop, for `limit` seconds at most.
template <typename T>
T run_client(Coroutine<T> scenario, double limit = 10.0) {
    return aio::run(aio::wait_for(std::move(scenario), limit), aio::new_selector_event_loop);
}

// The same on a session of its own, with these options.
Coroutine<std::string> fetch_once(std::string method, std::string url, std::string body,
                                  aio::ClientSessionOptions options) {
    ClientSession session(options);
    ClientResponse r = co_await session.request(method, url, {}, body);
    std::string got = co_await r.read();
    co_await session.close();
    co_return std::to_string(r.status()) + " " + got;
}

Coroutine<std::string> fetch_with(std::string url, aio::ClientSessionOptions options) {
    return fetch_once("GET", std::move(url), "", std::move(options));
}

// Answers every request on every connection with `reply`.
ScriptedPeer::Script always(std::string reply) {
    return [reply](PeerConnection& c) {
        while (c.read_request()) c.send(reply);
    };
}

// ------------------------------------------------------------------------------ the basics

NET_TEST_CASE("client: a GET returns status, reason, headers and body; the request is well formed", "[client]") {
    ScriptedPeer peer(always(response(200, "hello", "X-Test: yes\r\n", "Fine")));
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        ClientSession session;
        aio::HttpHeaders mine{{"X-Mine", "1"}};
        ClientResponse r = co_await session.get(url, mine);
        REQUIRE(r.status() == 200);
        REQUIRE(r.reason() == "Fine");
        REQUIRE(r.headers().get("x-test") == "yes");
        REQUIRE(r.content_length() == 5u);
        REQUIRE(r.ok());
        REQUIRE(r.history().empty());
        std::string body = co_await r.read();
        std::string again = co_await r.read();  // kept
        REQUIRE(again == body);
        co_await session.close();
        co_return body;
    };
    std::string body = run_client(scenario(peer.url("/a/b?c=d#frag")));
    CHECK(body == "hello");
    auto requests = peer.requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].starts_with("GET /a/b?c=d HTTP/1.1\r\n"));  // no fragment on the wire
    CHECK(requests[0].find("\r\nHost: 127.0.0.1:" + std::to_string(peer.port()) + "\r\n") != std::string::npos);
    CHECK(requests[0].find("\r\nX-Mine: 1\r\n") != std::string::npos);
    CHECK(requests[0].find("\r\nUser-Agent: ") != std::string::npos);
    CHECK(requests[0].find("Content-Length") == std::string::npos);  // a GET without a body has none
}

NET_TEST_CASE("client: a POST sends its body with a Content-Length, in one piece", "[client]") {
    ScriptedPeer peer(always(response(201, "made")));
    std::string got = run_client(fetch_once("POST", peer.url("/items"), "name=x", {}));
    CHECK(got == "201 made");
    auto requests = peer.requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].starts_with("POST /items HTTP/1.1\r\n"));
    CHECK(requests[0].find("\r\nContent-Length: 6\r\n") != std::string::npos);
    CHECK(scripted_peer::request_body(requests[0]) == "name=x");
}

NET_TEST_CASE("client: https and malformed URLs raise InvalidURL before anything is sent", "[client]") {
    std::string tls = run_client(error_of(fetch_with("https://example.com/", {})));
    CHECK(tls.starts_with("InvalidURL"));
    CHECK(tls.find("TLS") != std::string::npos);
    std::string bad = run_client(error_of(fetch_with("http://exa mple.com/", {})));
    CHECK(bad.starts_with("InvalidURL"));
}

NET_TEST_CASE("client: a refused connection raises ClientConnectorError naming the URL", "[client]") {
    aio::Socket unused = net_test_support::listening_socket();
    const int port = unused.getsockname().port();
    unused.close();  // nobody listens there now
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/x";
    std::string error = run_client(error_of(fetch_with(url, {})));
    CHECK(error.starts_with("ClientConnectorError"));
    CHECK(error.find(url) != std::string::npos);
    CHECK(error.find("refused") != std::string::npos);
}

// ----------------------------------------------------------------------- keep-alive, pool

NET_TEST_CASE("client: sequential requests reuse one keep-alive connection", "[client][pool]") {
    ScriptedPeer peer(always(response(200, "ok")));
    auto scenario = [](std::string url) -> Coroutine<std::pair<std::uint64_t, std::uint64_t>> {
        ClientSession session;
        for (int i = 0; i < 5; ++i) {
            std::string got = co_await fetch(session, url);
            REQUIRE(got == "200 ok");
        }
        auto counts = std::make_pair(session.connector().connections_opened(), session.connector().connections_reused());
        REQUIRE(session.connector().idle_count() == 1);
        co_await session.close();
        co_return counts;
    };
    auto [opened, reused] = run_client(scenario(peer.url("/")));
    CHECK(peer.accepted() == 1);
    CHECK(opened == 1);
    CHECK(reused == 4);
}

// Answers each request after `ms`, so that concurrent requests overlap at the peer.
ScriptedPeer::Script slow(int ms) {
    return [ms](PeerConnection& c) {
        while (c.read_request()) {
            if (!c.pause(ms)) return;
            c.send(response(200, "ok"));
        }
    };
}

Coroutine<int> concurrent_gets(std::vector<std::string> urls, aio::ClientSessionOptions options) {
    ClientSession session(options);
    std::vector<Coroutine<std::string>> requests;
    for (const std::string& url : urls) requests.push_back(fetch(session, url));
    std::vector<std::string> got = co_await aio::gather(std::move(requests));
    int ok = 0;
    for (const std::string& g : got) ok += g == "200 ok";
    co_await session.close();
    co_return ok;
}

NET_TEST_CASE("client: limit_per_host holds; the others wait for a connection instead of failing", "[client][pool]") {
    ScriptedPeer peer(slow(50));
    aio::ClientSessionOptions options;
    options.limit_per_host = 2;
    std::vector<std::string> urls(8, peer.url("/"));
    CHECK(run_client(concurrent_gets(urls, options)) == 8);
    CHECK(peer.max_concurrent() == 2);
    CHECK(peer.accepted() == 2);  // and the two were reused for the six others
}

NET_TEST_CASE("client: the total limit holds across hosts", "[client][pool]") {
    // Requests being answered at once, over both peers.
    std::atomic<int> busy{0}, most{0};
    auto script = [&busy, &most](PeerConnection& c) {
        while (c.read_request()) {
            const int now = ++busy;
            for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
            }
            const bool going = c.pause(50);
            --busy;
            if (!going) return;
            c.send(response(200, "ok"));
        }
    };
    ScriptedPeer a(script), b(script);
    aio::ClientSessionOptions options;
    options.limit = 3;
    std::vector<std::string> urls;
    for (int i = 0; i < 12; ++i) urls.push_back(i % 2 ? a.url("/") : b.url("/"));
    CHECK(run_client(concurrent_gets(urls, options)) == 12);
    CHECK(most.load() == 3);
    CHECK(a.accepted() >= 1);
    CHECK(b.accepted() >= 1);
}

NET_TEST_CASE("client: without limits, concurrent requests open connections concurrently", "[client][pool]") {
    ScriptedPeer peer(slow(200));
    std::vector<std::string> urls(10, peer.url("/"));
    const auto start = std::chrono::steady_clock::now();
    CHECK(run_client(concurrent_gets(urls, {})) == 10);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(peer.max_concurrent() == 10);
    CHECK(elapsed < 1.5);  // one after another would take 2 s
}

NET_TEST_CASE("client: a response dropped before its end closes its connection; the next opens a new one",
              "[client][pool]") {
    ScriptedPeer peer(always(response(200, std::string(1000, 'x'))));
    auto scenario = [](std::string url) -> Coroutine<int> {
        ClientSession session;
        {
            ClientResponse r = co_await session.get(url);
            std::string part = co_await r.content().read(10);
            REQUIRE(part.size() <= 10);
        }  // dropped half-read
        std::string second = co_await fetch(session, url);
        REQUIRE(second.size() == 1004);
        std::size_t idle = session.connector().idle_count();
        co_await session.close();
        co_return int(idle);
    };
    CHECK(run_client(scenario(peer.url("/"))) == 1);
    CHECK(peer.accepted() == 2);
}

NET_TEST_CASE("client: closing the session closes its idle connections (the peer sees EOF)", "[client][pool]") {
    std::atomic<int> closed_by_client{0};
    ScriptedPeer peer([&closed_by_client](PeerConnection& c) {
        while (c.read_request()) c.send(response(200, "ok"));
        if (c.pending().empty()) ++closed_by_client;  // (the peer's stop would come later)
    });
    auto scenario = [](std::string url, const ScriptedPeer& peer) -> Coroutine<int> {
        ClientSession session;
        std::string got = co_await fetch(session, url);
        REQUIRE(got == "200 ok");
        REQUIRE(session.connector().idle_count() == 1);
        co_await session.close();
        REQUIRE(session.connector().idle_count() == 0);
        for (int i = 0; i < 200 && peer.open_now() > 0; ++i) co_await aio::sleep(0.01);
        co_return peer.open_now();
    };
    CHECK(run_client(scenario(peer.url("/"), peer)) == 0);
    CHECK(closed_by_client == 1);
}

// ------------------------------------------------------------------------------- redirects

struct RedirectCase {
    int code;
    const char* method;
    const char* expect_method;  // at the target
    bool body_kept;
};

NET_TEST_CASE("client: redirects follow RFC 9110's method rules, with a relative Location and history",
              "[client][redirect]") {
    const RedirectCase cases[] = {
        {301, "GET", "GET", false},   {301, "POST", "GET", false}, {301, "PUT", "PUT", true},
        {302, "POST", "GET", false},  {302, "DELETE", "DELETE", true}, {303, "POST", "GET", false},
        {303, "PUT", "GET", false},   {303, "HEAD", "HEAD", false}, {307, "POST", "POST", true},
        {308, "POST", "POST", true},  {308, "PUT", "PUT", true},
    };
    for (const RedirectCase& c : cases) {
        INFO(c.code << " after " << c.method);
        const int code = c.code;
        ScriptedPeer peer([code](PeerConnection& conn) {
            while (auto request = conn.read_request()) {
                const bool head = request->starts_with("HEAD");  // (a HEAD's answer has no body)
                if (request->find(" /dir/start ") != std::string::npos)
                    conn.send(response(code, head ? "" : "moved", "Location: ../target?q=1\r\n", "Redirect"));
                else
                    conn.send(response(200, scripted_peer::request_line(*request)));
            }
        });
        const bool has_body = std::string(c.method) != "GET" && std::string(c.method) != "HEAD";
        auto scenario = [](std::string method, std::string url, std::string body) -> Coroutine<std::string> {
            ClientSession session;
            ClientResponse r = co_await session.request(method, url, {}, body);
            REQUIRE(r.history().size() == 1);
            std::string out = std::to_string(r.history()[0].status()) + " " + r.method() + " " + r.url().str();
            co_await session.close();
            co_return out;
        };
        std::string got = run_client(scenario(c.method, peer.url("/dir/start"), has_body ? "payload" : ""));
        CHECK(got == std::to_string(c.code) + " " + c.expect_method + " " + peer.url("/target?q=1"));
        auto requests = peer.requests();
        REQUIRE(requests.size() == 2);
        CHECK(scripted_peer::request_line(requests[1]) == std::string(c.expect_method) + " /target?q=1");
        CHECK((scripted_peer::request_body(requests[1]) == "payload") == (has_body && c.body_kept));
        CHECK(peer.accepted() == 1);  // the redirect's body was drained: the connection was reused
    }
}

NET_TEST_CASE("client: a redirect loop raises TooManyRedirects after max_redirects", "[client][redirect]") {
    ScriptedPeer peer(always(response(302, "", "Location: /again\r\n", "Found")));
    aio::ClientSessionOptions options;
    options.max_redirects = 3;
    std::string error = run_client(error_of(fetch_with(peer.url("/start"), options)));
    CHECK(error.starts_with("TooManyRedirects"));
    CHECK(error.find("max_redirects, 3") != std::string::npos);
    CHECK(peer.requests().size() == 4);  // the request and three redirects
}

NET_TEST_CASE("client: allow_redirects=false returns the redirect itself; a redirect to another port works",
              "[client][redirect]") {
    ScriptedPeer target(always(response(200, "there")));
    ScriptedPeer peer(always(response(307, "", "Location: " + target.url("/x") + "\r\n", "Temporary Redirect")));
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        ClientSession session;
        aio::RequestOptions no;
        no.allow_redirects = false;
        ClientResponse r = co_await session.get(url, {}, no);
        std::string first = std::to_string(r.status());
        std::string followed = co_await fetch(session, url);
        co_await session.close();
        co_return first + " " + followed;
    };
    CHECK(run_client(scenario(peer.url("/"))) == "307 200 there");
}

// -------------------------------------------------------------------------------- timeouts

NET_TEST_CASE("client: the total timeout raises TimeoutError naming it and the URL", "[client][timeout]") {
    ScriptedPeer peer([](PeerConnection& c) {
        if (c.read_request()) c.wait_for_close();  // never answers
    });
    aio::ClientSessionOptions options;
    options.timeout.total = 0.2;
    const auto start = std::chrono::steady_clock::now();
    std::string error = run_client(error_of(fetch_with(peer.url("/slow"), options)));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(error.starts_with("TimeoutError"));
    CHECK(error.find("total timeout of 0.2 s") != std::string::npos);
    CHECK(error.find(peer.url("/slow")) != std::string::npos);
    CHECK(elapsed < 2.0);
}

NET_TEST_CASE("client: the total timeout covers reading the body", "[client][timeout]") {
    ScriptedPeer peer([](PeerConnection& c) {
        if (!c.read_request()) return;
        c.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
        c.wait_for_close();
    });
    aio::ClientSessionOptions options;
    options.timeout.total = 0.2;
    std::string error = run_client(error_of(fetch_with(peer.url("/"), options)));
    CHECK(error.starts_with("TimeoutError"));
    CHECK(error.find("while reading the body") != std::string::npos);
}

// A SYN that is never answered cannot be had on loopback; a listener whose accept queue is
// full comes close: Linux drops the SYNs of further connects, which then wait.
NET_TEST_CASE("client: the connect timeout raises ConnectionTimeoutError (a listener with a full backlog)",
              "[client][timeout]") {
    aio::Socket listener = net_test_support::listening_socket("127.0.0.1", 0);
    const aio::SockAddr address = listener.getsockname();
    aio::Socket filler(AF_INET);  // fills the queue of one
    ::connect(filler.fileno(), address.get(), address.size());
    aio::ClientSessionOptions options;
    options.timeout.connect = 0.2;
    const std::string url = "http://127.0.0.1:" + std::to_string(address.port()) + "/";
    std::string error = run_client(error_of(fetch_with(url, options)));
    CHECK(error.starts_with("ConnectionTimeoutError"));
    CHECK(error.find("connect timeout of 0.2 s") != std::string::npos);
    CHECK(error.find(url) != std::string::npos);
}

NET_TEST_CASE("client: the connect timeout also bounds the wait for a free connection of the pool",
              "[client][timeout]") {
    ScriptedPeer peer(slow(1000));
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        aio::ClientSessionOptions options;
        options.limit = 1;
        options.timeout.connect = 0.1;
        ClientSession session(options);
        auto first = aio::create_task(fetch(session, url));
        co_await aio::sleep(0.02);
        std::string second = co_await error_of(fetch(session, url));
        first->cancel();
        try {
            co_await first;
        } catch (const aio::CancelledError&) {
        }
        co_await session.close();
        co_return second;
    };
    std::string error = run_client(scenario(peer.url("/")));
    CHECK(error.starts_with("ConnectionTimeoutError"));
}

// ---------------------------------------------------------------------- stale connections

// The first connection answers one request, then takes the next one and closes without a
// word, as a server whose idle timeout fired just as the request arrived. Later
// connections answer everything.
ScriptedPeer::Script closes_after_first(bool reset) {
    return [reset](PeerConnection& c) {
        if (c.index() == 0) {
            if (!c.read_request()) return;
            c.send(response(200, "first"));
            if (c.read_request() && reset) c.reset();
            return;
        }
        while (c.read_request()) c.send(response(200, "fresh"));
    };
}

Coroutine<std::string> send_and_read(ClientSession& session, std::string method, std::string url) {
    ClientResponse r = co_await session.request(method, url, {}, method == "POST" ? "data" : "");
    std::string body = co_await r.read();
    co_return body;
}

Coroutine<std::string> two_requests(std::string method, std::string url) {
    ClientSession session;
    std::string first = co_await fetch(session, url);
    std::string second = co_await error_of(send_and_read(session, method, url));
    co_await session.close();
    co_return first + " | " + second;
}

NET_TEST_CASE("client: a GET on a connection the server closed while idle is retried once", "[client][stale]") {
    for (bool reset : {false, true}) {
        INFO((reset ? "reset" : "closed"));
        ScriptedPeer peer(closes_after_first(reset));
        CHECK(run_client(two_requests("GET", peer.url("/"))) == "200 first | no error");
        CHECK(peer.accepted() == 2);
        CHECK(peer.requests().size() == 3);  // the second GET went out twice
    }
}

NET_TEST_CASE("client: a POST on a stale connection is not retried", "[client][stale]") {
    ScriptedPeer peer(closes_after_first(false));
    std::string got = run_client(two_requests("POST", peer.url("/")));
    CHECK(got.find("ServerDisconnectedError") != std::string::npos);
    CHECK(got.find("POST " + peer.url("/")) != std::string::npos);
    CHECK(peer.accepted() == 1);
}

NET_TEST_CASE("client: a connection closed while idle, already noticed, is not used", "[client][stale]") {
    ScriptedPeer peer([](PeerConnection& c) {
        if (c.read_request()) c.send(response(200, "ok", "", "OK"));  // then closes
    });
    auto scenario = [](std::string url, const ScriptedPeer& peer) -> Coroutine<std::string> {
        ClientSession session;
        std::string a = co_await fetch(session, url);
        for (int i = 0; i < 500 && peer.open_now() > 0; ++i) co_await aio::sleep(0.01);
        co_await aio::sleep(0.05);  // the FIN has arrived: the loop reads it
        std::string b = co_await fetch(session, url);
        std::uint64_t reused = session.connector().connections_reused();
        co_await session.close();
        co_return a + " " + b + " " + std::to_string(reused);
    };
    CHECK(run_client(scenario(peer.url("/"), peer)) == "200 ok 200 ok 0");
    CHECK(peer.accepted() == 2);
}

// ------------------------------------------------------------------- peers that misbehave

Coroutine<std::string> get_error(std::string url) { return error_of(fetch_with(std::move(url), {})); }

std::string answer_with(std::string bytes, bool close_after = true) {
    ScriptedPeer peer([bytes, close_after](PeerConnection& c) {
        if (!c.read_request()) return;
        c.send(bytes);
        if (!close_after) c.wait_for_close();
    });
    return run_client(get_error(peer.url("/")));
}

NET_TEST_CASE("client: malformed responses raise errors naming the request", "[client][malformed]") {
    std::string status = answer_with("HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n");
    CHECK(status.starts_with("BadResponseError(400)"));
    CHECK(status.find("GET http://127.0.0.1:") != std::string::npos);

    std::string junk = answer_with("hello there\r\n\r\n");
    CHECK(junk.starts_with("BadResponseError"));

    std::string both = answer_with("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    CHECK(both.starts_with("BadResponseError"));

    std::string chunk = answer_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    CHECK(chunk.starts_with("ClientPayloadError"));
    CHECK(chunk.find("malformed") != std::string::npos);

    std::string truncated = answer_with("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    CHECK(truncated.starts_with("ClientPayloadError"));
    CHECK(truncated.find("3 of the 10") != std::string::npos);

    std::string huge = answer_with("HTTP/1.1 200 OK\r\nX-Big: " + std::string(70000, 'a') + "\r\nContent-Length: 0\r\n\r\n",
                                   false);
    CHECK(huge.starts_with("BadResponseError(431)"));

    std::string nothing = answer_with("");
    CHECK(nothing.starts_with("ServerDisconnectedError"));
}

NET_TEST_CASE("client: a response dripped one byte at a time is read whole", "[client][malformed]") {
    ScriptedPeer peer([](PeerConnection& c) {
        if (c.read_request()) c.drip("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1);
    });
    CHECK(run_client(fetch_with(peer.url("/"), {})) == "200 hello");
}

NET_TEST_CASE("client: an HTTP/1.0 body that ends at close is read whole, and the connection not reused",
              "[client][malformed]") {
    ScriptedPeer peer([](PeerConnection& c) {
        if (c.read_request()) c.send("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    });
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        ClientSession session;
        std::string a = co_await fetch(session, url);
        std::string b = co_await fetch(session, url);
        co_await session.close();
        co_return a + " | " + b;
    };
    CHECK(run_client(scenario(peer.url("/"))) == "200 until the end | 200 until the end");
    CHECK(peer.accepted() == 2);
}

NET_TEST_CASE("client: a 204 followed by stray bytes: the connection is not reused", "[client][malformed]") {
    ScriptedPeer peer([](PeerConnection& c) {
        while (c.read_request()) c.send("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray");
    });
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        ClientSession session;
        std::string a = co_await fetch(session, url);
        std::string b = co_await fetch(session, url);
        co_await session.close();
        co_return a + "|" + b;
    };
    CHECK(run_client(scenario(peer.url("/"))) == "204 |204 ");
    CHECK(peer.accepted() == 2);
}

NET_TEST_CASE("client: a 100 Continue before the final response is skipped; HEAD has no body",
              "[client][malformed]") {
    ScriptedPeer peer([](PeerConnection& c) {
        while (auto request = c.read_request()) {
            if (request->starts_with("HEAD"))
                c.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");  // the length a GET would get
            else
                c.send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
        }
    });
    auto scenario = [](std::string url) -> Coroutine<std::string> {
        ClientSession session;
        std::string a = co_await fetch(session, url);
        ClientResponse h = co_await session.head(url);
        std::string body = co_await h.read();
        std::string b = co_await fetch(session, url);
        co_await session.close();
        co_return a + "|" + std::to_string(h.status()) + " '" + body + "'|" + b;
    };
    CHECK(run_client(scenario(peer.url("/"))) == "200 done|200 ''|200 done");
    CHECK(peer.accepted() == 1);
}

// --------------------------------------------------------------------------------- streaming

NET_TEST_CASE("client: a large body streams through bounded memory", "[client][stream]") {
    constexpr std::size_t kSize = 16 << 20;
    ScriptedPeer peer([](PeerConnection& c) {
        if (!c.read_request()) return;
        c.send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n");
        std::string block(1 << 16, 'z');
        for (std::size_t sent = 0; sent < kSize; sent += block.size())
            if (!c.send(block)) return;
    });
    auto scenario = [](std::string url) -> Coroutine<std::pair<std::size_t, std::size_t>> {
        ClientSession session;
        ClientResponse r = co_await session.get(url);
        co_await aio::sleep(0.2);  // let the peer fill everything it can: the transport must pause
        std::size_t total = 0, most = 0;
        for (;;) {
            most = std::max(most, r.content().buffered());
            std::string piece = co_await r.content().read(4096);
            if (piece.empty()) break;
            total += piece.size();
        }
        REQUIRE(r.content().at_eof());
        co_await session.close();
        co_return std::make_pair(total, most);
    };
    auto [total, most] = run_client(scenario(peer.url("/")), 60);
    CHECK(total == kSize);
    INFO("most bytes held at once: " << most);
    CHECK(most <= aio::ResponseHandler::kHighWater + aio::SelectorSocketTransport::max_size);
}

}  // namespace
