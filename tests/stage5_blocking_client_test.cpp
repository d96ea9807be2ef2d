// Stage 5 tests: the blocking client (BlockingSession, blocking_get) against the scripted
// peer: a GET and a POST, keep-alive reuse, redirects by the shared rules (303 turns a POST
// into a GET; a loop raises TooManyRedirects), the read and connect timeouts, the stale
// connection retried for a GET and not for a POST, malformed responses, and one session per
// thread on several threads at once.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "stage3_tasks_futures/executor.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/blocking_client.hpp"
#include "tests/net_test_support.hpp"
#include "tests/scripted_peer.hpp"

namespace {

using aio::BlockingResponse;
using aio::BlockingSession;
using scripted_peer::PeerConnection;
using scripted_peer::ScriptedPeer;
using scripted_peer::response;

ScriptedPeer::Script always(std::string reply) {
    return [reply](PeerConnection& c) {
        while (c.read_request()) c.send(reply);
    };
}

NET_TEST_CASE("blocking client: GET and POST, with keep-alive reuse", "[blocking]") {
    ScriptedPeer peer(always(response(200, "hello", "X-Test: yes\r\n")));
    BlockingSession session;
    for (int i = 0; i < 3; ++i) {
        BlockingResponse r = session.get(peer.url("/x?y=1"));
        CHECK(r.status == 200);
        CHECK(r.reason == "OK");
        CHECK(r.headers.get("x-test") == "yes");
        CHECK(r.body == "hello");
        CHECK(r.ok());
    }
    BlockingResponse p = session.post(peer.url("/form"), "a=1");
    CHECK(p.body == "hello");
    CHECK(session.connections_opened() == 1);
    CHECK(session.connections_reused() == 3);
    session.close();
    auto requests = peer.requests();
    REQUIRE(requests.size() == 4);
    CHECK(requests[0].starts_with("GET /x?y=1 HTTP/1.1\r\n"));
    CHECK(requests[3].starts_with("POST /form HTTP/1.1\r\n"));
    CHECK(requests[3].find("\r\nContent-Length: 3\r\n") != std::string::npos);
    CHECK(scripted_peer::request_body(requests[3]) == "a=1");
    CHECK(peer.accepted() == 1);
}

NET_TEST_CASE("blocking client: redirects by the same rules as the async client", "[blocking][redirect]") {
    ScriptedPeer peer([](PeerConnection& c) {
        while (auto request = c.read_request()) {
            if (request->find(" /a/start ") != std::string::npos)
                c.send(response(303, "see", "Location: b\r\n", "See Other"));
            else if (request->find(" /loop ") != std::string::npos)
                c.send(response(302, "", "Location: /loop\r\n", "Found"));
            else
                c.send(response(200, scripted_peer::request_line(*request) + " " + scripted_peer::request_body(*request)));
        }
    });
    BlockingSession session;
    BlockingResponse r = session.post(peer.url("/a/start"), "payload");
    CHECK(r.body == "GET /a/b ");  // 303: a GET without the body, to the relative Location
    REQUIRE(r.history.size() == 1);
    CHECK(r.history[0].status == 303);
    CHECK(r.url.str() == peer.url("/a/b"));
    CHECK_THROWS_AS(session.get(peer.url("/loop")), aio::TooManyRedirects);
    CHECK(peer.requests().size() == 2 + 11);
}

NET_TEST_CASE("blocking client: the read timeout and the connect timeout", "[blocking][timeout]") {
    ScriptedPeer silent([](PeerConnection& c) {
        if (c.read_request()) c.wait_for_close();
    });
    aio::BlockingSessionOptions options;
    options.timeout.read = 0.2;
    BlockingSession session(options);
    const auto start = std::chrono::steady_clock::now();
    try {
        session.get(silent.url("/slow"));
        FAIL("no timeout");
    } catch (const aio::TimeoutError& e) {
        CHECK(std::string(e.what()).find("read timeout of 0.2 s") != std::string::npos);
        CHECK(std::string(e.what()).find(silent.url("/slow")) != std::string::npos);
    }
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 2.0);

    // A listener whose accept queue is full: the SYN is dropped, connect() waits.
    aio::Socket listener = net_test_support::listening_socket("127.0.0.1", 0);
    const aio::SockAddr address = listener.getsockname();
    aio::Socket filler(AF_INET);
    ::connect(filler.fileno(), address.get(), address.size());
    aio::BlockingTimeout connect;
    connect.connect = 0.2;
    CHECK_THROWS_AS(aio::blocking_get("http://127.0.0.1:" + std::to_string(address.port()) + "/", connect),
                    aio::ConnectionTimeoutError);
}

ScriptedPeer::Script closes_after_first() {
    return [](PeerConnection& c) {
        if (c.index() == 0) {
            if (c.read_request()) c.send(response(200, "first"));
            c.read_request();  // and closes without answering
            return;
        }
        while (c.read_request()) c.send(response(200, "fresh"));
    };
}

NET_TEST_CASE("blocking client: a stale connection is retried for a GET, not for a POST", "[blocking][stale]") {
    {
        ScriptedPeer peer(closes_after_first());
        BlockingSession session;
        CHECK(session.get(peer.url("/")).body == "first");
        // The peer closes only once the next request has arrived: the peek before reuse
        // cannot see it coming.
        CHECK(session.get(peer.url("/")).body == "fresh");
        CHECK(peer.accepted() == 2);
    }
    {
        ScriptedPeer peer(closes_after_first());
        BlockingSession session;
        CHECK(session.get(peer.url("/")).body == "first");
        CHECK_THROWS_AS(session.post(peer.url("/"), "x"), aio::ServerDisconnectedError);
        CHECK(peer.accepted() == 1);
    }
}

NET_TEST_CASE("blocking client: malformed responses, a refused connection, an HTTP/1.0 body", "[blocking][malformed]") {
    auto answer = [](std::string bytes) {
        return [bytes](PeerConnection& c) {
            if (c.read_request()) c.send(bytes);
        };
    };
    {
        ScriptedPeer peer(answer("HTTP/1.1 2OO OK\r\n\r\n"));
        CHECK_THROWS_AS(aio::blocking_get(peer.url("/")), aio::BadResponseError);
    }
    {
        ScriptedPeer peer(answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
        CHECK_THROWS_AS(aio::blocking_get(peer.url("/")), aio::ClientPayloadError);
    }
    {
        ScriptedPeer peer(answer(""));
        CHECK_THROWS_AS(aio::blocking_get(peer.url("/")), aio::ServerDisconnectedError);
    }
    {
        ScriptedPeer peer(answer("HTTP/1.0 200 OK\r\n\r\nto the end"));
        BlockingSession session;
        CHECK(session.get(peer.url("/")).body == "to the end");
        CHECK(session.get(peer.url("/")).body == "to the end");
        CHECK(peer.accepted() == 2);  // close-delimited: nothing to reuse
    }
    aio::Socket unused = net_test_support::listening_socket();
    const int port = unused.getsockname().port();
    unused.close();
    CHECK_THROWS_AS(aio::blocking_get("http://127.0.0.1:" + std::to_string(port) + "/"), aio::ClientConnectorError);
    CHECK_THROWS_AS(aio::blocking_get("https://127.0.0.1/"), aio::InvalidURL);
}

NET_TEST_CASE("blocking client: one session per thread, several threads at once", "[blocking][threads]") {
    ScriptedPeer peer([](PeerConnection& c) {
        while (c.read_request()) {
            if (!c.pause(100)) return;
            c.send(response(200, "ok"));
        }
    });
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            BlockingSession session;
            for (int i = 0; i < 3; ++i) ok += session.get(peer.url("/")).body == "ok";
        });
    for (std::thread& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(ok == 12);
    CHECK(peer.accepted() == 4);
    CHECK(elapsed < 1.0);  // the threads overlapped: one after another takes 12 * 0.1 s
}

}  // namespace

namespace {

// The article's third way: blocking requests handed to the loop's default executor.
aio::Coroutine<int> gets_in_executor(std::string url, int n) {
    std::vector<aio::Ref<aio::Future<aio::BlockingResponse>>> futures;
    for (int i = 0; i < n; ++i) futures.push_back(aio::run_in_executor([url] { return aio::blocking_get(url); }));
    int ok = 0;
    for (auto& f : futures) {
        aio::BlockingResponse r = co_await f;
        ok += r.body == "ok";
    }
    co_return ok;
}

NET_TEST_CASE("blocking client: blocking_get on the loop's executor (run_in_executor) runs requests at once",
              "[blocking][threads]") {
    ScriptedPeer peer([](PeerConnection& c) {
        while (c.read_request()) {
            if (!c.pause(100)) return;
            c.send(response(200, "ok"));
        }
    });
    const auto start = std::chrono::steady_clock::now();
    const int ok = aio::run(gets_in_executor(peer.url("/"), 10), aio::new_selector_event_loop);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(ok == 10);
    CHECK(peer.max_concurrent() > 1);
    CHECK(elapsed < 0.9);  // one after another: 1 s
}

}  // namespace
