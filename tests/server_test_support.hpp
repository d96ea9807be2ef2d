// Helpers for the stage 5 server tests: start an HttpServer on an ephemeral port, and a raw
// HTTP client on stage 4's sock_* (the course's ClientSession is tested on its own), which
// sends bytes exactly as written and reads responses with the course's response parser.
// Header-only.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <catch2/catch.hpp>

#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/exceptions.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage4_sockets/socket.hpp"
#include "stage5_http/http_parser.hpp"
#include "stage5_http/web_server.hpp"

namespace server_test_support {

using aio::Coroutine;
using aio::Ref;

// Starts `router` on 127.0.0.1, port 0.
inline Coroutine<Ref<aio::HttpServer>> start_server(aio::Router router, aio::ServerConfig config = {}) {
    Ref<aio::HttpServer> server = aio::make_ref<aio::HttpServer>(std::move(router), config);
    co_await server->start("127.0.0.1", 0);
    co_return server;
}

struct Reply {
    int status = 0;
    aio::HttpVersion version;
    aio::HttpHeaders headers;
    std::string body;
    bool keep_alive = true;
    std::string header(std::string_view name) const { return std::string(headers.get(name).value_or("")); }
};

// One client connection, read through an HttpResponseParser.
class RawClient {
public:
    static Coroutine<RawClient> connect(int port) {
        RawClient c;
        c.sock_ = aio::Socket(AF_INET);
        co_await aio::sock_connect(c.sock_, aio::SockAddr::ip("127.0.0.1", std::uint16_t(port)));
        co_return c;
    }
    RawClient() = default;
    RawClient(RawClient&&) = default;
    RawClient& operator=(RawClient&&) = default;

    Coroutine<> send(std::string data) { co_await aio::sock_sendall(sock_, data); }

    // The next response (an interim 1xx too, if `interim`), or nullopt if the server closed
    // the connection before one began. Tell it when the request was HEAD.
    Coroutine<std::optional<Reply>> response(bool head_request = false, bool interim = false) {
        parser_->set_request_method(head_request ? "HEAD" : "GET");
        Reply reply;
        for (;;) {
            aio::HttpEvent e = parser_->next_event();
            switch (e.kind) {
            case aio::HttpEvent::need_data: {
                std::string more = co_await aio::sock_recv(sock_, 65536);
                if (more.empty())
                    parser_->feed_eof();
                else
                    parser_->feed(more);
                break;
            }
            case aio::HttpEvent::informational:
                if (interim) {
                    reply.status = parser_->head().status;
                    co_return reply;
                }
                break;
            case aio::HttpEvent::head:
                reply.status = parser_->head().status;
                reply.version = parser_->head().version;
                reply.headers = parser_->head().headers;
                reply.keep_alive = parser_->head().keep_alive;
                break;
            case aio::HttpEvent::data: reply.body.append(e.bytes); break;
            case aio::HttpEvent::end_of_message: co_return reply;
            default: co_return std::nullopt;  // connection_closed (or an upgrade)
            }
        }
    }

    // Everything until the server closes the connection ("" if it already has); the bytes
    // the parser holds come first.
    Coroutine<std::string> read_to_eof() {
        std::string all;
        for (;;) {
            std::string more = co_await aio::sock_recv(sock_, 65536);
            if (more.empty()) co_return all;
            all += more;
        }
    }

    // True if the server closes the connection (EOF or reset) within `timeout` seconds,
    // dropping whatever it sends first.
    Coroutine<bool> closed_within(double timeout) {
        try {
            co_await aio::wait_for(drain(), timeout);
            co_return true;
        } catch (const aio::TimeoutError&) {
            co_return false;
        } catch (const aio::ConnectionResetError&) {
            co_return true;
        }
    }

    aio::Socket& socket() { return sock_; }

private:
    Coroutine<> drain() {
        for (;;) {
            std::string more = co_await aio::sock_recv(sock_, 65536);
            if (more.empty()) co_return;
        }
    }

    aio::Socket sock_;
    std::unique_ptr<aio::HttpResponseParser> parser_ = std::make_unique<aio::HttpResponseParser>();  // (not movable)
};

// A request with a Host field and, if `body` is given, a Content-Length.
inline std::string request(std::string_view method, std::string_view target, std::string_view extra_fields = "",
                           std::optional<std::string_view> body = std::nullopt) {
    std::string out = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n";
    out += extra_fields;
    if (body) out += "Content-Length: " + std::to_string(body->size()) + "\r\n";
    out += "\r\n";
    if (body) out += *body;
    return out;
}

inline std::string get(std::string_view target, std::string_view extra_fields = "") {
    return request("GET", target, extra_fields);
}

inline bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

}  // namespace server_test_support
