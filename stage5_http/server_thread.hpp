// Stage 5: HTTP/1.1. A tool, not part of the lesson: an HttpServer on a thread of its own,
// with a loop of its own, for programs whose own loop (or own threads) are the client: the
// demo, bench_threads_vs_asyncio and their tests.
//
// Adds:    ServerThread (port, url, stop).
// Mirrors: nothing in asyncio itself; aiohttp's test_utils.TestServer plays this part for
//          its tests (there in the test's own loop, which is why we do not: see below).
//
//     aio::ServerThread server(aio::httpbin_router());          // listening when it returns
//     aio::blocking_get(server.url("/delay/0.1"));               // from any thread
//
// Why a thread with its own loop, and not the client's loop: a measurement of a client must
// time the client's waiting, not a server that shares its loop. On one loop, the server's
// callbacks would run between the client's (and a blocking client would stop the server
// dead); on its own thread, the server answers whatever the client side does. (A child
// process would separate them as well; a thread needs no other program, and it stops with
// the demo, Ctrl-C included.) The server thread blocks every signal, so Ctrl-C is always
// handled by the program's own loop.
#pragma once

#include <future>
#include <string>
#include <string_view>
#include <thread>

#include "stage2_custom_loop/event_loop.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage5_http/web_server.hpp"
#include "stage5_http/web_urldispatcher.hpp"

namespace aio {

class ServerThread {
public:
    // Starts `router` on 127.0.0.1, an ephemeral port, on a new thread; returns once it
    // listens. Throws what HttpServer::start throws (OSError) if it cannot.
    explicit ServerThread(Router router, ServerConfig config = {});
    // stop().
    ~ServerThread();
    ServerThread(const ServerThread&) = delete;
    ServerThread& operator=(const ServerThread&) = delete;

    int port() const noexcept { return port_; }
    // "http://127.0.0.1:<port>" + path (path starts with '/').
    std::string url(std::string_view path) const;

    // A graceful shutdown (the requests in flight get `timeout` seconds), then the thread is
    // joined. Harmless when repeated. Any thread but the server's own.
    void stop(double timeout = 2.0);

private:
    void serve(Router router, ServerConfig config, std::promise<int>& started);

    std::thread thread_;
    int port_ = 0;
    EventLoop* loop_ = nullptr;   // the server's loop; null if it never started
    Ref<Future<>> stopping_;      // the server's thread only
    double stop_timeout_ = 2.0;   // written before the stop is posted
};

}  // namespace aio
