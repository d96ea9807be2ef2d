// Stage 5: HTTP/1.1, the server. A listening HTTP server: a Router, limits and timeouts, the
// connections, and a graceful shutdown.
//
// Adds:    HttpServer (start, address, port, shutdown, counters), ServerConfig.
// Mirrors: aiohttp's web.Server and the AppRunner/TCPSite pair that starts it (web_server.py,
//          web_runner.py: shutdown_timeout, keepalive_timeout, max_line_size,
//          max_field_size, client_max_size), on stage 4's create_server.
//
// In a coroutine on a SelectorEventLoop:
//
//     Router router;
//     router.add_get("/", [](Request&) { return Response::text("Hello, World!"); });
//     Ref<HttpServer> server = make_ref<HttpServer>(std::move(router));
//     co_await server->start("127.0.0.1", 0);         // port 0: an ephemeral port
//     std::printf("http://127.0.0.1:%d/\n", server->port());
//     ...
//     co_await server->shutdown();                     // graceful: in-flight requests finish
//
// Each accepted connection gets a RequestHandler (web_protocol.hpp), a Protocol: requests
// are parsed in data_received and answered there, without a task, unless the handler is a
// coroutine (web_urldispatcher.hpp).
//
// Ownership: an HttpServer is reference counted; each open connection holds a reference, so
// the router its handlers use lives as long as they do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage5_http/http_parser.hpp"
#include "stage5_http/web_urldispatcher.hpp"

namespace aio {

class RequestHandler;

struct ServerConfig {
    // The parser's limits (http_parser.hpp): the request line (414 past it), the header
    // section and its number of fields (431), the body (413). A body of at most
    // max_body_size bytes is what a handler may read (aiohttp's client_max_size: 1 MiB).
    HttpParserLimits limits = default_limits();
    // Seconds a client has to send a whole request head, from its first byte (from the
    // connection's start for the first request): past it, 408 and the connection is closed.
    // This is what stops slowloris (a head sent one byte every few seconds, to hold a
    // connection for ever). Also the longest pause inside a request body a plain handler
    // waits for. (nginx's client_header_timeout and client_body_timeout, 60 s each.)
    double header_timeout = 10.0;
    // Seconds an idle keep-alive connection (no request in progress) is kept. aiohttp's
    // keepalive_timeout (75 s), nginx's keepalive_timeout (75 s); 15 s here.
    double keepalive_timeout = 15.0;
    // After an error answer (400, 413, ...), how long to read and drop what the client still
    // sends before closing (nginx's lingering_timeout): closing a socket with unread data
    // makes the kernel send a reset, which can destroy the answer before the client reads it.
    double lingering_timeout = 2.0;
    int backlog = 511;  // the listen() queue (nginx's default)

    static HttpParserLimits default_limits() {
        HttpParserLimits l;
        l.max_body_size = 1024 * 1024;
        return l;
    }
};

class HttpServer : public RefCounted {
public:
    explicit HttpServer(Router router, ServerConfig config = {});
    ~HttpServer() override;

    // Listen on host:port ("127.0.0.1", "::1", "" for every interface; port 0: an ephemeral
    // port, see port()) and serve from the next pass on. Raises what create_server raises
    // (OSError: the address is in use, ...); RuntimeError if already started.
    Coroutine<> start(std::string host, int port);
    // The listening address (the first, if the host has several). Only after start().
    SockAddr address() const;
    int port() const { return address().port(); }

    // The graceful shutdown: stop accepting (new connections are refused), close the idle
    // connections, let the requests in flight finish (their answers say "Connection:
    // close"), and wait until every connection is closed, for `timeout` seconds at most;
    // then abort those left (their handlers are cancelled). Returns once all are closed.
    Coroutine<> shutdown(double timeout = 10.0);
    bool is_shutting_down() const noexcept { return shutting_down_; }

    const Router& router() const noexcept { return router_; }
    const ServerConfig& config() const noexcept { return config_; }

    // For tests and the curious: connections accepted since start(); requests answered
    // (each response counts, the server's own 4xx/5xx too); connections open now.
    std::uint64_t connections_accepted() const noexcept { return accepted_; }
    std::uint64_t requests_handled() const noexcept { return handled_; }
    std::size_t open_connections() const noexcept { return connections_.size(); }

private:
    friend class RequestHandler;
    void connection_made(RequestHandler& c);
    void connection_lost(RequestHandler& c);

    Router router_;
    ServerConfig config_;
    Ref<Server> server_;
    std::unordered_set<RequestHandler*> connections_;
    Ref<Future<>> all_closed_;  // shutdown() waits on it
    bool shutting_down_ = false;
    std::uint64_t accepted_ = 0;
    std::uint64_t handled_ = 0;
};

}  // namespace aio
