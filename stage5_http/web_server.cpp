// Stage 5: HTTP/1.1, the server. HttpServer (web_server.hpp): listening, the connections,
// the graceful shutdown.
#include "stage5_http/web_server.hpp"

#include <vector>

#include "stage3_tasks_futures/exceptions.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage5_http/web_protocol.hpp"

namespace aio {

HttpServer::HttpServer(Router router, ServerConfig config) : router_(std::move(router)), config_(config) {}

HttpServer::~HttpServer() {
    if (server_) server_->close();
}

Coroutine<> HttpServer::start(std::string host, int port) {
    if (server_) throw RuntimeError("HttpServer::start(): already started");
    // The factory holds the server by pointer: the listening Server lives inside this object
    // (closed by shutdown or the destructor), and each connection takes a Ref of its own.
    auto factory = [this] { return make_ref<RequestHandler>(Ref<HttpServer>(this)); };
    auto creating = create_server(factory, std::move(host), port, config_.backlog);
    server_ = co_await std::move(creating);
}

SockAddr HttpServer::address() const {
    if (!server_ || server_->sockets().empty())
        throw RuntimeError("HttpServer::address(): not listening (call start() first)");
    return server_->sockets()[0].getsockname();
}

void HttpServer::connection_made(RequestHandler& c) {
    connections_.insert(&c);
    ++accepted_;
    if (shutting_down_) c.begin_shutdown();  // accepted just before the listener closed
}

void HttpServer::connection_lost(RequestHandler& c) {
    connections_.erase(&c);
    if (connections_.empty() && all_closed_ && !all_closed_->done()) all_closed_->set_result();
}

// [docs:shutdown]
// aiohttp's graceful shutdown (web_runner's cleanup): stop accepting, close what is idle,
// give the requests in flight `timeout` seconds to finish, then end what is left.
Coroutine<> HttpServer::shutdown(double timeout) {
    Ref<HttpServer> self(this);
    shutting_down_ = true;
    if (server_) server_->close();  // the listening sockets close: new connections are refused
    all_closed_ = create_future();
    // (begin_shutdown may close a connection at once: iterate over a copy.)
    std::vector<RequestHandler*> open(connections_.begin(), connections_.end());
    for (RequestHandler* c : open) c->begin_shutdown();
    if (!connections_.empty()) {
        auto closed = shield(all_closed_);  // the timeout cancels this, not all_closed_
        try {
            co_await wait_for(std::move(closed), timeout);
        } catch (const TimeoutError&) {
            std::vector<RequestHandler*> left(connections_.begin(), connections_.end());
            for (RequestHandler* c : left) c->abort();  // their handlers are cancelled
        }
    }
    if (!connections_.empty()) {
        Ref<Future<>> closed = all_closed_;
        co_await closed;
    }
    if (server_) co_await server_->wait_closed();
}
// [/docs:shutdown]

}  // namespace aio
