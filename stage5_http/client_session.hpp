// Stage 5: HTTP/1.1. The client: many requests, one pool of connections.
//
// Adds:    ClientSession (request, get, post, head, close), ClientTimeout,
//          ClientSessionOptions, RequestOptions.
// Mirrors: aiohttp's ClientSession (client.py: _request, the redirect loop, the retry of a
//          request whose pooled connection the server had closed) and ClientTimeout. The
//          defaults are aiohttp's: total timeout 300 s, no connect timeout, 10 redirects,
//          a pool of 100 connections with no limit per host.
//
//     aio::ClientSession session;                     // async with aiohttp.ClientSession() as s:
//     aio::ClientResponse r = co_await session.get("http://127.0.0.1:8080/get");
//     std::string body = co_await r.read();           //     async with s.get(url) as r:
//     co_await session.close();                       //         body = await r.read()
//
// A request, from the call to the head (client_session.cpp's request_once):
//
//   URL::parse ── InvalidURL (https://: "TLS is not supported")
//      │
//   timeout_at(deadline) ─────────────────────────────────── TimeoutError (total)
//   │  connector.connect(url) within the connect timeout ─── ConnectionTimeoutError
//   │     (a pooled connection, or a new one)                ClientConnectorError
//   │  write_request_head_for + body: one writelines()
//   │  parser events: informational (100 Continue) skipped, until the head
//   │     closed before any byte on a reused connection,
//   │     idempotent method: once more on a new connection
//   │  3xx with Location: follow_redirect, drain the body, loop (history) ── TooManyRedirects
//   ▼
//   ClientResponse (the body is read from it; its end gives the connection back)
//
// Ownership: the session owns the connector, which owns the idle connections; each
// response owns the connection it is read from. The destructor closes everything
// synchronously; `co_await session.close()` also waits one loop pass, so that the sockets
// are closed (their connection_lost has run) when it returns. A response that outlives its
// session can no longer read its body (ClientPayloadError).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage5_http/client_connector.hpp"
#include "stage5_http/client_exceptions.hpp"
#include "stage5_http/client_request.hpp"
#include "stage5_http/client_response.hpp"
#include "stage5_http/http_headers.hpp"
#include "stage5_http/http_parser.hpp"

namespace aio {

// aiohttp's ClientTimeout, in seconds; nullopt for no limit.
struct ClientTimeout {
    // The whole request: connecting, sending, every redirect, the head and reading the body.
    // Expiry raises TimeoutError("total timeout of ... s expired ...: GET url").
    std::optional<double> total = 300.0;
    // Getting a connection: waiting for a free slot of the pool, resolving the name and
    // connecting. Expiry raises ConnectionTimeoutError.
    std::optional<double> connect = std::nullopt;
};

struct ClientSessionOptions {
    std::size_t limit = 100;          // connections in use at once (0: no limit)
    std::size_t limit_per_host = 0;   // to one host:port (0: no limit)
    double keepalive_timeout = 15.0;  // seconds an idle pooled connection stays usable
    ClientTimeout timeout{};
    int max_redirects = 10;
    HttpHeaders headers{};            // sent with every request, unless the request gives its own
    HttpParserLimits parser_limits{};
};

// Per request; anything left unset takes the session's value. (Trivially destructible, so a
// braced temporary is safe inside a co_await: stage1_generators/README.md's appendix, hazard 3.)
struct RequestOptions {
    std::optional<ClientTimeout> timeout = std::nullopt;
    bool allow_redirects = true;
    std::optional<int> max_redirects = std::nullopt;
};

class ClientSession {
public:
    explicit ClientSession(const ClientSessionOptions& options = {});
    ~ClientSession();
    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    // Send `method` to `url` with `headers` (added to the session's) and `body`, and return
    // the response once its head has arrived (its body is read from it). Follows redirects
    // (RequestOptions::allow_redirects, max_redirects). Raises InvalidURL (bad URL,
    // https://), ClientConnectorError, ServerDisconnectedError, BadResponseError,
    // TooManyRedirects, ConnectionTimeoutError, TimeoutError (total), ClientConnectionError
    // once the session is closed. The session must outlive the call.
    Coroutine<ClientResponse> request(std::string method, std::string url, HttpHeaders headers = {},
                                      std::string body = {}, RequestOptions options = {});
    Coroutine<ClientResponse> get(std::string url, HttpHeaders headers = {}, RequestOptions options = {}) {
        return request("GET", std::move(url), std::move(headers), {}, options);
    }
    Coroutine<ClientResponse> post(std::string url, std::string body, HttpHeaders headers = {},
                                   RequestOptions options = {}) {
        return request("POST", std::move(url), std::move(headers), std::move(body), options);
    }
    Coroutine<ClientResponse> head(std::string url, HttpHeaders headers = {}, RequestOptions options = {}) {
        return request("HEAD", std::move(url), std::move(headers), {}, options);
    }

    // Close the pool: idle connections and those still lent to responses; requests waiting
    // for a connection fail with ClientConnectionError. Returns after one loop pass, when the
    // sockets are closed. Closing twice does nothing.
    Coroutine<> close();
    bool closed() const noexcept { return connector_->closed(); }

    TCPConnector& connector() noexcept { return *connector_; }
    const ClientSessionOptions& options() const noexcept { return options_; }

private:
    ClientSessionOptions options_;
    Ref<TCPConnector> connector_;
};

}  // namespace aio
