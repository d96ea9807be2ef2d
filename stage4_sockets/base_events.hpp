// Stage 4: readiness I/O. Where transports come from: connecting, and serving.
//
// Adds:    create_connection(protocol_factory, host, port) -> (transport, protocol);
//          create_server(protocol_factory, host, port, backlog, start_serving) -> Server;
//          Server (close, wait_closed, serve_forever, start_serving, is_serving, sockets,
//          close_clients, abort_clients).
// Mirrors: loop.create_connection, loop.create_server and Server in
//          Lib/asyncio/base_events.py, and the accept loop of selector_events.py
//          (_accept_connection). asyncio's are loop methods; ours are free functions on the
//          running loop, like stage 3's sleep and part 1's sock_*.
//
// A protocol factory is anything callable with no arguments that returns a Ref<P>, P a
// Protocol: one new protocol per connection, as in asyncio (`lambda: EchoProtocol()`).
// Name a lambda before you co_await a call that takes it: g++ 12 miscompiles a capturing
// lambda written inside a co_await (hazards 1 and 2 of stage1_generators/README.md's appendix).
//
//     auto factory = [] { return aio::make_ref<Echo>(); };
//     aio::Ref<aio::Server> server = co_await aio::create_server(factory, "127.0.0.1", 0);
//     int port = server->sockets()[0].getsockname().port();
//
// Ownership: a Server is reference counted. While it listens, the loop's accept callbacks
// hold it; each of its connections' transports holds it too, until connection_lost.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/socket.hpp"
#include "stage4_sockets/transports.hpp"

namespace aio {

class SelectorSocketTransport;

// What create_connection and create_server call for each new connection.
using ProtocolFactory = std::function<Ref<Protocol>()>;

class Server : public RefCounted {
public:
    // Made by create_server, with its bound (not yet listening) sockets.
    Server(SelectorEventLoop& loop, std::vector<Socket> sockets, ProtocolFactory protocol_factory, int backlog);

    // The listening sockets (port 0 asked for an ephemeral port: sockets()[0].getsockname()
    // says which). Empty once closed.
    const std::vector<Socket>& sockets() const noexcept { return sockets_; }
    bool is_serving() const noexcept { return serving_; }
    EventLoop& get_loop() const;

    // Listen and accept, if not yet (create_server does, unless told not to); returns on the
    // next pass, once the sockets are registered.
    Coroutine<> start_serving();
    // start_serving(), then wait until close() (from anywhere) or a cancellation, which
    // raises CancelledError here after closing the server and waiting for wait_closed().
    // RuntimeError if already awaited elsewhere, or closed.
    Coroutine<> serve_forever();
    // Stop listening and close the listening sockets. The connections already accepted go
    // on (close_clients() ends them). Closing twice does nothing.
    void close();
    // close() each connection (abort_clients(): abort() each), asyncio 3.13's.
    void close_clients();
    void abort_clients();
    // Wait until the server is closed and every connection it accepted is closed too
    // (Python 3.12.1's semantics, in either order).
    Coroutine<> wait_closed();

    // After an accept that failed for want of resources (EMFILE: out of fds, ...), the server
    // stops accepting for this long, in seconds, then tries again (asyncio's
    // ACCEPT_RETRY_DELAY); level-triggered readiness would otherwise spin on the socket.
    static constexpr double kAcceptRetryDelay = 1.0;

private:
    friend class SelectorSocketTransport;
    void start_listening();
    void listen_on(std::size_t i);
    void accept_connections(std::size_t i);
    void pause_accepting(std::size_t i, int err);
    void new_connection(SelectorEventLoop& loop, Socket conn, const SockAddr& peer);
    void attach(SelectorSocketTransport& transport);
    void detach(SelectorSocketTransport& transport);
    void wakeup();
    SelectorEventLoop* live_loop() const noexcept;

    Ref<LoopLifeline> lifeline_;  // not the loop itself: a Server may outlive it
    std::vector<Socket> sockets_;
    std::vector<Ref<TimerHandle>> retry_timers_;  // per socket: pause_accepting's retry
    ProtocolFactory protocol_factory_;
    int backlog_;
    bool serving_ = false;
    bool closed_ = false;
    bool woken_ = false;  // closed and no connection left: wait_closed returns at once
    std::unordered_set<SelectorSocketTransport*> clients_;
    std::vector<Ref<Future<>>> waiters_;  // wait_closed()
    Ref<Future<>> serving_forever_;
};

namespace detail {
// create_connection's first half: a socket connected to the first of `addresses` that
// accepts (tried in order), and that address; the errors as create_connection raises them.
Coroutine<std::pair<Socket, SockAddr>> connect_any(std::vector<AddrInfo> addresses);
Coroutine<std::pair<Ref<Transport>, Ref<Protocol>>> create_connection(ProtocolFactory factory, std::string host,
                                                                      int port);
Coroutine<Ref<Server>> create_server(ProtocolFactory factory, std::string host, int port, int backlog,
                                     bool start_serving);

template <typename R>
struct protocol_of {};
template <typename P>
struct protocol_of<Ref<P>> {
    using type = P;
};

// create_connection with the protocol's own type in the result.
template <typename P>
Coroutine<std::pair<Ref<Transport>, Ref<P>>> create_connection_as(ProtocolFactory factory, std::string host, int port) {
    Coroutine<std::pair<Ref<Transport>, Ref<Protocol>>> connecting =
        create_connection(std::move(factory), std::move(host), port);
    std::pair<Ref<Transport>, Ref<Protocol>> made = co_await std::move(connecting);
    Ref<P> protocol(static_cast<P*>(made.second.get()));
    co_return std::pair<Ref<Transport>, Ref<P>>(std::move(made.first), std::move(protocol));
}
}  // namespace detail

// loop.create_connection: resolve host (getaddrinfo, on the executor for a name), try each
// address in turn until one accepts, then make the transport with a new protocol from
// protocol_factory, and return both once connection_made has run. Raises what the connect
// raised (ConnectionRefusedError, naming the address; OSError("Multiple exceptions: ...")
// when several addresses failed differently), gaierror for a name that does not resolve,
// and what connection_made threw. Cancelled, it leaves no socket and no registration behind.
template <typename Factory>
auto create_connection(const Factory& protocol_factory, std::string host, int port) {
    using P = typename detail::protocol_of<std::invoke_result_t<const Factory&>>::type;
    static_assert(std::is_base_of_v<Protocol, P>, "create_connection: the factory must return a Ref to a Protocol");
    return detail::create_connection_as<P>(ProtocolFactory(protocol_factory), std::move(host), port);
}

// loop.create_server: bind a listening socket on each address host resolves to ("" for
// every interface; port 0 for an ephemeral port) and, if start_serving, accept connections
// from the next pass on, each with a new protocol from protocol_factory. IPv6 sockets are
// IPv6-only and all have SO_REUSEADDR, as in asyncio. Raises OSError if a bind fails (in use:
// "[Errno 98] Address already in use: bind to ..."), gaierror for a name.
template <typename Factory>
Coroutine<Ref<Server>> create_server(const Factory& protocol_factory, std::string host, int port, int backlog = 100,
                                     bool start_serving = true) {
    return detail::create_server(ProtocolFactory(protocol_factory), std::move(host), port, backlog, start_serving);
}

}  // namespace aio
