// Stage 4: readiness I/O. create_connection, create_server and Server (base_events.hpp).
#include "stage4_sockets/base_events.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <stdexcept>

#include "stage3_tasks_futures/task.hpp"
#include "stage4_sockets/selector_transport.hpp"
#include "stage4_sockets/sock_ops.hpp"

namespace aio {

namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

void check_port(int port, const char* who) {
    if (port < 0 || port > 65535)
        throw std::invalid_argument(std::string(who) + ": port " + std::to_string(port) + " is not in 0..65535");
}

std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown exception";
    }
}

// Every address failed: one error is raised as it is; several that say the same are one;
// several different ones become one OSError listing them all (asyncio's rule).
std::exception_ptr connect_failure(const std::vector<std::exception_ptr>& errors) {
    const std::string first = what_of(errors.front());
    bool same = true;
    std::string all;
    for (const auto& e : errors) {
        const std::string w = what_of(e);
        same = same && w == first;
        all += (all.empty() ? "" : ", ") + w;
    }
    if (errors.size() == 1 || same) return errors.front();
    return std::make_exception_ptr(OSError(0, "Multiple exceptions: " + all));
}

}  // namespace

// ------------------------------------------------------------------- create_connection

// Each address in turn (asyncio without happy eyeballs): the first that accepts wins.
Coroutine<std::pair<Socket, SockAddr>> detail::connect_any(std::vector<AddrInfo> addresses) {
    std::vector<std::exception_ptr> errors;
    for (const AddrInfo& info : addresses) {
        try {
            Socket candidate(info.family, info.type, info.protocol);
            co_await sock_connect(candidate, info.address);
            co_return std::pair<Socket, SockAddr>(std::move(candidate), info.address);
        } catch (const OSError&) {  // (a cancellation is not one: it goes on up, closing candidate)
            errors.push_back(std::current_exception());
        }
    }
    if (errors.empty()) throw OSError(0, "create_connection: no address to connect to");
    std::rethrow_exception(connect_failure(errors));
}

Coroutine<std::pair<Ref<Transport>, Ref<Protocol>>> detail::create_connection(ProtocolFactory factory,
                                                                              std::string host, int port) {
    SelectorEventLoop& loop = get_running_selector_loop();
    check_port(port, "create_connection");
    std::vector<AddrInfo> infos = co_await getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM);
    if (infos.empty()) throw OSError(0, "getaddrinfo('" + host + "', " + std::to_string(port) + ") returned no address");

    auto connecting = connect_any(std::move(infos));
    auto [sock, peer] = co_await std::move(connecting);

    Ref<Protocol> protocol = factory();
    Ref<Future<>> waiter = create_future(loop);
    Ref<SelectorSocketTransport> transport =
        SelectorSocketTransport::make(loop, std::move(sock), protocol, peer, waiter);
    std::exception_ptr failed;
    try {
        co_await waiter;  // connection_made has run
    } catch (...) {
        failed = std::current_exception();
    }
    if (failed) {  // cancelled, or connection_made threw
        transport->close();
        std::rethrow_exception(failed);
    }
    co_return std::pair<Ref<Transport>, Ref<Protocol>>(std::move(transport), std::move(protocol));
}

// ----------------------------------------------------------------------- create_server

Coroutine<Ref<Server>> detail::create_server(ProtocolFactory factory, std::string host, int port, int backlog,
                                             bool start_serving) {
    SelectorEventLoop& loop = get_running_selector_loop();
    check_port(port, "create_server");
    if (backlog < 0) throw std::invalid_argument("create_server: backlog must be >= 0, got " + std::to_string(backlog));
    std::vector<AddrInfo> infos = co_await getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE);
    std::vector<Socket> sockets;
    std::vector<std::string> bound;  // a name may resolve to one address twice: bind it once
    for (const AddrInfo& info : infos) {
        const std::string address = info.address.to_string();
        if (std::find(bound.begin(), bound.end(), address) != bound.end()) continue;
        Socket sock;
        try {
            sock = Socket(info.family, info.type, info.protocol);
        } catch (const OSError&) {  // that family is not supported here (no IPv6, say)
            continue;
        }
        sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
        // Linux makes an IPv6 socket on :: take IPv4 too, which would then collide with the
        // IPv4 socket of the same name: one family per socket, as asyncio does.
        if (info.family == AF_INET6) sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1);
        try {
            sock.bind(info.address);
        } catch (const OSError& e) {
            if (e.error_number() == EADDRNOTAVAIL) continue;  // that family is not enabled here
            throw;
        }
        sockets.push_back(std::move(sock));
        bound.push_back(address);
    }
    if (sockets.empty())  // "[Errno 99] Cannot assign requested address: ...", as Python words it
        throw_os_error(EADDRNOTAVAIL, "create_server: could not bind on any address of '" + host + "', port " +
                                          std::to_string(port) + " (is it an address of this machine?)");
    Ref<Server> server = make_ref<Server>(loop, std::move(sockets), std::move(factory), backlog);
    if (start_serving) co_await server->start_serving();
    co_return server;
}

// ------------------------------------------------------------------------------ Server

Server::Server(SelectorEventLoop& loop, std::vector<Socket> sockets, ProtocolFactory protocol_factory, int backlog)
    : lifeline_(loop.lifeline()),
      sockets_(std::move(sockets)),
      retry_timers_(sockets_.size()),
      protocol_factory_(std::move(protocol_factory)),
      backlog_(backlog) {}

SelectorEventLoop* Server::live_loop() const noexcept { return static_cast<SelectorEventLoop*>(lifeline_->loop()); }

EventLoop& Server::get_loop() const {
    if (SelectorEventLoop* loop = live_loop()) return *loop;
    throw RuntimeError("Server: its event loop has been destroyed");
}

// [docs:accept_connections]
// The listening socket is readable: connections are waiting. Accept them (up to backlog at
// once, as asyncio does, so that one busy listener cannot starve the rest of the loop) and
// give each a protocol and a transport, right here. asyncio starts a task per connection
// for that (_accept_connection2), because its transport creation may await a TLS handshake;
// ours never waits, so it needs none: an accepted connection costs no task and no future.
void Server::accept_connections(std::size_t i) {
    SelectorEventLoop* loop = live_loop();
    for (int n = 0; n < std::max(backlog_, 1); ++n) {
        if (closed_ || !loop) return;  // (a protocol factory may close the server)
        SockAddr peer;
#ifdef __linux__
        int fd = ::accept4(sockets_[i].fileno(), peer.buffer(), peer.size_ptr(), SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int fd = ::accept(sockets_[i].fileno(), peer.buffer(), peer.size_ptr());
#endif
        if (fd < 0) {
            const int err = errno;
            if (err == EINTR || err == ECONNABORTED) continue;  // (the client gave up: the next one)
            if (would_block(err)) return;                        // none left
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                pause_accepting(i, err);
                return;
            }
            throw_os_error(err, "accept on " + sockets_[i].getsockname().to_string());  // the loop reports it
        }
#ifdef __linux__
        Socket conn = Socket::adopt(fd);
#else
        Socket conn = Socket::from_fd(fd);
#endif
        conn.set_peer(peer);
        new_connection(*loop, std::move(conn), peer);
    }
}
// [/docs:accept_connections]

void Server::new_connection(SelectorEventLoop& loop, Socket conn, const SockAddr& peer) {
    try {
        Ref<Protocol> protocol = protocol_factory_();
        SelectorSocketTransport::make(loop, std::move(conn), std::move(protocol), peer, nullptr, this);
    } catch (...) {  // the factory threw, or the socket could not be set up: drop this one
        loop.call_exception_handler(ExceptionContext{
            "Error on transport creation for incoming connection from " + peer.to_string(), std::current_exception()});
    }
}

// Out of fds (or memory): the connection stays in the kernel's queue, so the socket stays
// readable and the loop would call us again at once, for ever. Stop watching it, say so,
// and try again in a second, when fds may have been freed.
void Server::pause_accepting(std::size_t i, int err) {
    SelectorEventLoop& loop = *live_loop();
    const std::string where = sockets_[i].getsockname().to_string();
    loop.call_exception_handler(ExceptionContext{
        "socket.accept() out of system resource on " + where + ": accepting again in " +
            std::to_string(int(kAcceptRetryDelay)) + " s",
        os_error(err, "accept on " + where)});
    loop.remove_reader(sockets_[i].fileno());
    retry_timers_[i] = loop.call_later(kAcceptRetryDelay, [self = Ref<Server>(this), i] {
        if (self->closed_) return;
        self->retry_timers_[i] = nullptr;
        self->listen_on(i);
    }, "Server accept retry");
}

void Server::start_listening() {
    if (serving_ || closed_) return;
    serving_ = true;
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
        sockets_[i].listen(backlog_);
        listen_on(i);
    }
}

void Server::listen_on(std::size_t i) {
    live_loop()->add_reader(sockets_[i].fileno(), [self = Ref<Server>(this), i] { self->accept_connections(i); },
                            "Server accept");
}

Coroutine<> Server::start_serving() {
    Ref<Server> self(this);
    start_listening();
    co_await yield_now();  // (asyncio's sleep(0): the add_readers are in place when we return)
}

void Server::close() {
    if (closed_) return;
    closed_ = true;
    serving_ = false;
    SelectorEventLoop* loop = live_loop();
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
        if (loop) loop->remove_reader(sockets_[i].fileno());  // before the close (selectors.hpp)
        if (retry_timers_[i]) retry_timers_[i]->cancel();
    }
    sockets_.clear();  // closes them
    retry_timers_.clear();
    if (!loop) return;  // nobody can be waiting on a destroyed loop
    if (Ref<Future<>> forever = std::move(serving_forever_); forever && !forever->done()) forever->cancel();
    if (clients_.empty()) wakeup();
}

void Server::close_clients() {
    std::vector<SelectorSocketTransport*> clients(clients_.begin(), clients_.end());
    for (SelectorSocketTransport* t : clients) t->close();
}

void Server::abort_clients() {
    std::vector<SelectorSocketTransport*> clients(clients_.begin(), clients_.end());
    for (SelectorSocketTransport* t : clients) t->abort();
}

Coroutine<> Server::serve_forever() {
    Ref<Server> self(this);
    if (serving_forever_) throw RuntimeError("Server.serve_forever() is already being awaited by another task");
    if (closed_) throw RuntimeError("Server.serve_forever(): the server is closed");
    start_listening();
    Ref<Future<>> forever = create_future(get_loop());
    serving_forever_ = forever;
    std::exception_ptr cancelled;
    try {
        co_await forever;
    } catch (const CancelledError&) {  // our task was cancelled, or close() cancelled `forever`
        cancelled = std::current_exception();
    }
    if (serving_forever_ == forever) serving_forever_ = nullptr;
    close();
    co_await wait_closed();
    if (cancelled) std::rethrow_exception(cancelled);
}

Coroutine<> Server::wait_closed() {
    Ref<Server> self(this);
    if (woken_) co_return;  // closed, and the last connection is gone
    Ref<Future<>> waiter = create_future(get_loop());
    waiters_.push_back(waiter);
    co_await waiter;
}

// Each connection's transport attaches itself when made and detaches when connection_lost
// has run; the last one out of a closed server wakes wait_closed().
void Server::attach(SelectorSocketTransport& transport) { clients_.insert(&transport); }

void Server::detach(SelectorSocketTransport& transport) {
    clients_.erase(&transport);
    if (clients_.empty() && closed_) wakeup();
}

void Server::wakeup() {
    woken_ = true;
    for (Ref<Future<>>& waiter : std::exchange(waiters_, {}))
        if (!waiter->done()) waiter->set_result();
}

}  // namespace aio
