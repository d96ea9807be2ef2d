// Stage 5: HTTP/1.1. The client's connection pool.
//
// Adds:    TCPConnector (connect, close, limit, limit_per_host, counters), Connection (one
//          connection lent to one request: release() gives it back, close() ends it).
// Mirrors: aiohttp's TCPConnector and Connection (connector.py). The same defaults: at most
//          100 connections in use at once (limit), no limit per host (limit_per_host = 0),
//          idle connections kept 15 s (keepalive_timeout), names resolved once per
//          connector and cached.
//
// Why a pool. A new connection costs a round trip (SYN, SYN-ACK) before the request can
// even leave, a socket, a file descriptor and a registration with the selector; on the
// server's side an accept(). Keep-alive (HTTP/1.1's default, RFC 9112 §9.3) lets the next
// request to the same host skip all of it: the connection goes back to the pool when its
// response has been read to the end, and the next connect() to that host takes it out.
//
// The limits count connections in use (lent out, or being opened), as aiohttp's do: idle
// ones in the pool do not count. A request that finds the limit reached waits, in a FIFO,
// for a connection to be given back or closed; it does not fail (use the connect timeout
// to bound the wait). A slot freed is handed straight to the first waiter that may use it,
// as stage 3's Semaphore hands its units over, so a newcomer cannot overtake the queue.
//
//    connect(url):  slot free? ── no ──► wait in the FIFO (handed a slot by release/close)
//                     │ yes
//                     ▼
//                   idle connection for host:port, still up? ── yes ──► lend it (reused)
//                     │ no
//                     ▼
//                   resolve (cached) ─► create_connection ─► lend it (new)
//
//    Connection::release():  response read to the end, keep-alive, nothing extra
//                            received? ──► back to the pool ; else close.  Then hand the
//                            slot to the first waiter that may use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage4_sockets/socket.hpp"
#include "stage5_http/client_proto.hpp"
#include "stage5_http/url.hpp"

namespace aio {

class TCPConnector;

// One connection, lent to one request (aiohttp's Connection). Move-only. Destroyed or
// closed without release(), it closes the connection: a response that was not read to its
// end leaves the connection in the middle of a message, useless to the next request.
class Connection {
public:
    Connection() = default;
    Connection(Connection&& o) noexcept;
    Connection& operator=(Connection&& o) noexcept;
    ~Connection() { close(); }

    explicit operator bool() const noexcept { return bool(handler_); }
    ResponseHandler& protocol() const noexcept { return *handler_; }
    // Taken from the pool (it carried requests before) rather than newly opened.
    bool reused() const noexcept { return reused_; }
    // Give the connection back: to the pool if protocol().reusable(), else closed. Either
    // way the connector's slot is freed. Does nothing if already released or closed.
    void release();
    // Close the connection and free the slot. Does nothing if already done.
    void close();

private:
    friend class TCPConnector;
    Connection(Ref<TCPConnector> connector, Ref<ResponseHandler> handler, std::string key, bool reused)
        : connector_(std::move(connector)), handler_(std::move(handler)), key_(std::move(key)), reused_(reused) {}
    Ref<TCPConnector> connector_;
    Ref<ResponseHandler> handler_;
    std::string key_;  // "host:port"
    bool reused_ = false;
};

class TCPConnector : public RefCounted {
public:
    // limit: connections in use at once, all hosts together; limit_per_host: to one
    // host:port. 0 means no limit. keepalive_timeout: seconds an idle connection may wait in
    // the pool before it is closed rather than reused (checked when one is taken).
    explicit TCPConnector(std::size_t limit = 100, std::size_t limit_per_host = 0, double keepalive_timeout = 15.0,
                          const HttpParserLimits& parser_limits = {});
    ~TCPConnector() override;

    // A connection to url's host and port: an idle one from the pool if there is one, else a
    // new one (resolving the name once, then from the cache; a numeric address needs no
    // resolving). Waits while the limits are reached. Raises ClientConnectorError when the
    // connection cannot be made (refused, a name that does not resolve: the message names
    // the URL and carries the OSError's), ClientConnectionError if the connector is closed.
    // Cancelled (by a timeout), it leaves no slot taken and no socket open. `reuse` false
    // skips the pool: a retry after a stale connection wants a new one.
    Coroutine<Connection> connect(URL url, bool reuse = true);

    // Close every connection, idle and in use (a response being read then fails with
    // ClientConnectionError), and fail the waiters with ClientConnectionError. Later
    // connect() calls fail. The transports finish closing on the loop's next pass. Closing
    // twice does nothing.
    void close();
    bool closed() const noexcept { return closed_; }

    std::size_t limit() const noexcept { return limit_; }
    std::size_t limit_per_host() const noexcept { return limit_per_host_; }

    // Counters, for tests, benchmarks and the curious: connections opened so far, and
    // requests that were given a pooled connection instead.
    std::uint64_t connections_opened() const noexcept { return opened_; }
    std::uint64_t connections_reused() const noexcept { return reused_; }
    // Connections lent out (or being opened) now; idle connections in the pool now.
    std::size_t in_use() const noexcept { return acquired_; }
    std::size_t idle_count() const noexcept;

private:
    friend class Connection;
    struct Waiter {
        std::string key;
        Ref<Future<>> future;  // set_result(): a slot has been reserved for this waiter
        bool handed = false;   // ... and this says so (the future may be cancelled after)
    };
    class WaitSlot;
    class Reservation;

    static Coroutine<Connection> connect_on(Ref<TCPConnector> self, URL url, bool reuse);
    Coroutine<std::vector<SockAddr>> resolve(std::string host, std::uint16_t port);
    Coroutine<Ref<ResponseHandler>> open(URL url, std::vector<SockAddr> addresses);
    bool available(const std::string& key) const noexcept;
    void reserve(const std::string& key);
    void unreserve(const std::string& key) noexcept;
    void wake_waiters() noexcept;
    Ref<ResponseHandler> take_idle(const std::string& key);
    void give_back(const std::string& key, Ref<ResponseHandler> handler, bool reusable) noexcept;

    std::size_t limit_, limit_per_host_;
    double keepalive_timeout_;
    HttpParserLimits parser_limits_;
    bool closed_ = false;
    std::size_t acquired_ = 0;                                   // slots taken, all hosts
    std::unordered_map<std::string, std::size_t> acquired_per_host_;
    std::unordered_map<std::string, std::vector<Ref<ResponseHandler>>> idle_;  // LIFO per host:port
    std::unordered_set<ResponseHandler*> lent_;                  // in use: close() ends them too
    std::list<Waiter> waiters_;                                  // FIFO, all hosts
    std::unordered_map<std::string, std::vector<SockAddr>> dns_cache_;  // host -> addresses (port 0)
    std::uint64_t opened_ = 0, reused_ = 0;
};

}  // namespace aio
