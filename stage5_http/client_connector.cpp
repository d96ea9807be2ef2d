// Stage 5: HTTP/1.1. The client's connection pool. See client_connector.hpp.
#include "stage5_http/client_connector.hpp"

#include <exception>
#include <stdexcept>
#include <utility>

#include "stage3_tasks_futures/task.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage5_http/client_exceptions.hpp"

namespace aio {

// A slot taken for a request, given back by the destructor unless it became a Connection:
// whatever ends connect_on early (a refused connect, a cancellation, the task destroyed)
// frees the slot for the next waiter.
class TCPConnector::Reservation {
public:
    Reservation(TCPConnector& connector, const std::string& key) : connector_(connector), key_(key) {}
    ~Reservation() {
        if (held_) connector_.unreserve(key_);
    }
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    void dismiss() noexcept { held_ = false; }

private:
    TCPConnector& connector_;
    const std::string& key_;
    bool held_ = true;
};

// A place in the FIFO of requests waiting for a slot. wake_waiters() reserves a slot for the
// waiter before it wakes it; if the waiter is cancelled after that (its task was cancelled
// between the wakeup and its next step), the destructor gives the slot on to the next one.
class TCPConnector::WaitSlot {
public:
    WaitSlot(TCPConnector& connector, const std::string& key) : connector_(connector) {
        it_ = connector.waiters_.insert(connector.waiters_.end(), Waiter{key, create_future()});
    }
    ~WaitSlot() {
        const bool unused = it_->handed && !taken_;
        const std::string key = std::move(it_->key);
        connector_.waiters_.erase(it_);
        if (unused) connector_.unreserve(key);
    }
    WaitSlot(const WaitSlot&) = delete;
    WaitSlot& operator=(const WaitSlot&) = delete;
    const Ref<Future<>>& future() const noexcept { return it_->future; }
    // The waiter was handed a slot and now owns it (a Reservation takes over).
    void take() noexcept { taken_ = true; }

private:
    TCPConnector& connector_;
    std::list<Waiter>::iterator it_;
    bool taken_ = false;
};

TCPConnector::TCPConnector(std::size_t limit, std::size_t limit_per_host, double keepalive_timeout,
                           const HttpParserLimits& parser_limits)
    : limit_(limit), limit_per_host_(limit_per_host), keepalive_timeout_(keepalive_timeout), parser_limits_(parser_limits) {}

TCPConnector::~TCPConnector() { close(); }

Coroutine<Connection> TCPConnector::connect(URL url, bool reuse) {
    return connect_on(Ref<TCPConnector>(this), std::move(url), reuse);
}

// [docs:connector_connect]
Coroutine<Connection> TCPConnector::connect_on(Ref<TCPConnector> self, URL url, bool reuse) {
    if (self->closed_) throw ClientConnectionError("cannot connect to " + url.str() + ": the session is closed");
    const std::string key = url.host() + " " + std::to_string(url.port());

    // 1. A slot: at once if the limits allow, else in the FIFO until one is handed to us.
    if (self->available(key)) {
        self->reserve(key);
    } else {
        WaitSlot waiting(*self, key);
        co_await waiting.future();  // ClientConnectionError if the connector closes meanwhile
        waiting.take();
    }
    Reservation slot(*self, key);

    // 2. An idle connection to the same host and port, if one is still up.
    if (Ref<ResponseHandler> handler = reuse ? self->take_idle(key) : nullptr) {
        slot.dismiss();
        ++self->reused_;
        self->lent_.insert(handler.get());
        co_return Connection(self, std::move(handler), key, true);
    }

    // 3. A new one.
    std::vector<SockAddr> addresses = co_await self->resolve(url.host(), url.port());
    Ref<ResponseHandler> handler = co_await self->open(url, std::move(addresses));
    if (self->closed_) {  // closed while we connected
        handler->close();
        throw ClientConnectionError("cannot connect to " + url.str() + ": the session was closed meanwhile");
    }
    slot.dismiss();
    ++self->opened_;
    self->lent_.insert(handler.get());
    co_return Connection(self, std::move(handler), key, false);
}
// [/docs:connector_connect]

// A numeric host needs no resolver (and no thread); a name is resolved once, on the loop's
// executor (stage 4's getaddrinfo), and cached for the connector's life. (aiohttp caches for
// 10 s, ttl_dns_cache, and merges concurrent look-ups of one name; neither is done here.)
Coroutine<std::vector<SockAddr>> TCPConnector::resolve(std::string host, std::uint16_t port) {
    std::vector<SockAddr> addresses;
    try {
        addresses.push_back(SockAddr::ip(host, port));
        co_return addresses;
    } catch (const std::invalid_argument&) {  // a name
    }
    const std::string key = host + " " + std::to_string(port);
    if (auto it = dns_cache_.find(key); it != dns_cache_.end()) co_return it->second;
    std::vector<AddrInfo> infos;
    try {
        infos = co_await getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM);
    } catch (const OSError& e) {
        throw ClientConnectorError(e.error_number(), "cannot connect to host " + host + ":" + std::to_string(port) +
                                                         ": " + e.what());
    }
    for (const AddrInfo& info : infos) addresses.push_back(info.address);
    dns_cache_[key] = addresses;
    co_return addresses;
}

// Each address in turn, as create_connection does; the first that accepts wins.
Coroutine<Ref<ResponseHandler>> TCPConnector::open(URL url, std::vector<SockAddr> addresses) {
    HttpParserLimits limits = parser_limits_;
    auto factory = [limits] { return make_ref<ResponseHandler>(limits); };
    std::string errors;
    int first_errno = 0;
    for (const SockAddr& address : addresses) {
        try {
            auto connecting = create_connection(factory, address.host(), address.port());
            auto made = co_await std::move(connecting);
            co_return std::move(made.second);
        } catch (const OSError& e) {  // refused, unreachable, ...: the next address
            if (!first_errno) first_errno = e.error_number();
            errors += errors.empty() ? "" : "; ";
            errors += e.what();
        }
    }
    if (errors.empty()) errors = "the name resolved to no address";
    throw ClientConnectorError(first_errno, "cannot connect to " + url.str() + ": " + errors);
}

bool TCPConnector::available(const std::string& key) const noexcept {
    if (limit_ && acquired_ >= limit_) return false;
    if (!limit_per_host_) return true;
    auto it = acquired_per_host_.find(key);
    return it == acquired_per_host_.end() || it->second < limit_per_host_;
}

void TCPConnector::reserve(const std::string& key) {
    ++acquired_;
    if (limit_per_host_) ++acquired_per_host_[key];
}

void TCPConnector::unreserve(const std::string& key) noexcept {
    --acquired_;
    if (limit_per_host_) {
        auto it = acquired_per_host_.find(key);
        if (--it->second == 0) acquired_per_host_.erase(it);
    }
    wake_waiters();
}

// Hand each freed slot to the first waiter, in FIFO order, that the limits let through: a
// waiter for a host at its limit_per_host does not hold up one for another host.
void TCPConnector::wake_waiters() noexcept {
    for (Waiter& w : waiters_) {
        if (limit_ && acquired_ >= limit_) return;
        if (w.handed || w.future->done() || !available(w.key)) continue;  // (done: cancelled, or failed by close)
        reserve(w.key);
        w.handed = true;
        w.future->set_result();
    }
}

Ref<ResponseHandler> TCPConnector::take_idle(const std::string& key) {
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    std::vector<Ref<ResponseHandler>>& pool = it->second;
    const double now = get_running_loop().time();
    Ref<ResponseHandler> found;
    // The most recently used first: the one least likely to have been closed by the server.
    while (!found && !pool.empty()) {
        Ref<ResponseHandler> handler = std::move(pool.back());
        pool.pop_back();
        if (handler->is_connected() && now - handler->idle_since <= keepalive_timeout_)
            found = std::move(handler);
        else
            handler->close();  // the server closed it while idle, or it waited too long
    }
    if (pool.empty()) idle_.erase(it);
    if (found) found->idle = false;
    return found;
}

void TCPConnector::give_back(const std::string& key, Ref<ResponseHandler> handler, bool reusable) noexcept {
    lent_.erase(handler.get());
    EventLoop* loop = running_loop_or_null();
    if (reusable && !closed_ && loop && handler->reusable()) {
        handler->idle = true;
        handler->idle_since = loop->time();
        try {
            idle_[key].push_back(std::move(handler));
        } catch (...) {  // out of memory: the connection is merely not kept
        }
    }
    if (handler) handler->close();
    unreserve(key);
}

std::size_t TCPConnector::idle_count() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, pool] : idle_) n += pool.size();
    return n;
}

void TCPConnector::close() {
    if (closed_) return;
    closed_ = true;
    for (auto& [key, pool] : idle_)
        for (Ref<ResponseHandler>& handler : pool) handler->close();
    idle_.clear();
    for (ResponseHandler* handler : lent_) handler->close();
    for (Waiter& w : waiters_) {
        if (w.future->done()) continue;
        try {
            w.future->set_exception(std::make_exception_ptr(
                ClientConnectionError("the session was closed while this request waited for a connection")));
        } catch (const std::exception&) {  // its loop is gone: the waiting task went with it
        }
    }
}

// ------------------------------------------------------------------------------ Connection

Connection::Connection(Connection&& o) noexcept
    : connector_(std::move(o.connector_)), handler_(std::move(o.handler_)), key_(std::move(o.key_)), reused_(o.reused_) {}

Connection& Connection::operator=(Connection&& o) noexcept {
    if (this != &o) {
        close();
        connector_ = std::move(o.connector_);
        handler_ = std::move(o.handler_);
        key_ = std::move(o.key_);
        reused_ = o.reused_;
    }
    return *this;
}

void Connection::release() {
    if (!handler_) return;
    Ref<TCPConnector> connector = std::move(connector_);
    connector->give_back(key_, std::move(handler_), true);
}

void Connection::close() {
    if (!handler_) return;
    Ref<TCPConnector> connector = std::move(connector_);
    connector->give_back(key_, std::move(handler_), false);
}

}  // namespace aio
