// Stage 4: readiness I/O. SelectorSocketTransport (selector_transport.hpp): reading,
// writing, closing, flow control, and the loop's list of open transports.
#include "stage4_sockets/selector_transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "stage4_sockets/base_events.hpp"

namespace aio {

namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// The read buffer: one per thread, shared by every transport of the loop that runs there.
// data_received gets a view into it, valid during the call only, so the next read may reuse
// it. asyncio reads into a new bytes object of up to max_size (256 KiB) each time; one
// buffer per connection would cost 256 KiB per idle connection (2.5 GB for c10k). One per
// thread costs nothing per connection and stays hot in the cache. (A read never happens
// inside another: reads start only from the loop, never from a protocol's callback.)
char* read_buffer() {
    static thread_local std::unique_ptr<char[]> buffer(new char[SelectorSocketTransport::max_size]);
    return buffer.get();
}

// A write after the connection is lost is ignored; the 5th says so (asyncio's
// LOG_THRESHOLD_FOR_CONNLOST_WRITES), once: a program that keeps writing to a dead
// connection has a bug worth a line in the log.
constexpr unsigned kLogThresholdForConnLostWrites = 5;

// How many pieces one sendmsg() takes at most (POSIX guarantees IOV_MAX >= 16; Linux has
// 1024). 64 on the stack covers any reasonable writelines(); more go in further calls.
constexpr std::size_t kMaxIov = 64;

// A write buffer that has grown this big for a burst is given back once it drains, rather
// than kept for the connection's life.
constexpr std::size_t kKeepBufferCapacity = 1 << 20;

}  // namespace

// The loop's list of open transports (defined at the end of this file).
class TransportRegistry {
public:
    static void add(SelectorSocketTransport& t, SelectorEventLoop& loop);
    // Drops the loop's reference: may free t.
    static void remove(SelectorSocketTransport& t, EventLoop& loop);

private:
    struct LoopTransports {
        EventLoop* loop;
        std::vector<Ref<SelectorSocketTransport>> open;
    };
    static std::vector<std::unique_ptr<LoopTransports>>& loops();
    static LoopTransports* find(EventLoop* loop);
    static LoopTransports& of(SelectorEventLoop& loop);
    static void close_loop(EventLoop& loop);
};

// ------------------------------------------------------------------------------ reading

// [docs:read_ready]
// The reader callback: the selector said the socket is readable. One recv() of what is
// there, and the protocol gets a view of it (see the top of selector_transport.hpp).
void SelectorSocketTransport::read_ready() {
    if (conn_lost_) return;  // aborted earlier in this pass
    char* buffer = read_buffer();
    ssize_t n;
    do {
        n = ::recv(fd_, buffer, max_size, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        const int err = errno;
        if (!would_block(err)) socket_error(err, "recv from");  // ECONNRESET, ...: abort
        return;
    }
    if (n == 0) {
        on_eof();
        return;
    }
    // A reference for the call: a protocol that replaces itself (set_protocol) inside its
    // own data_received must not be freed while it runs.
    Ref<Protocol> protocol = protocol_;
    try {
        protocol->data_received(std::string_view(buffer, std::size_t(n)));
    } catch (...) {
        protocol_error("data_received", std::current_exception());
    }
}
// [/docs:read_ready]

// The peer has sent everything (recv() returned 0). The protocol chooses: close (the
// default), or keep writing on a half-open connection.
void SelectorSocketTransport::on_eof() {
    read_eof_ = true;
    Ref<Protocol> protocol = protocol_;
    bool keep_open = false;
    try {
        keep_open = protocol->eof_received();
    } catch (...) {
        protocol_error("eof_received", std::current_exception());
        return;
    }
    if (keep_open)
        loop_->remove_reader(fd_);  // nothing more will come: stop watching
    else
        close();
}

void SelectorSocketTransport::pause_reading() {
    if (!is_reading()) return;
    reading_paused_ = true;
    if (started_) loop_->remove_reader(fd_);
}

void SelectorSocketTransport::resume_reading() {
    if (closing_ || !reading_paused_) return;
    reading_paused_ = false;
    if (started_ && !read_eof_) add_reader();
}

void SelectorSocketTransport::add_reader() {
    loop_->add_reader(fd_, [this] { read_ready(); }, "transport read_ready");
}

// ------------------------------------------------------------------------------ writing

// [docs:write]
// Send at once what the socket takes; buffer only the rest. On a connection that keeps up
// (the usual case: a response to a request), the buffer stays empty and a write is one
// send() system call, with no allocation, no copy and no trip through the selector.
// Measured (bench_transport, protocol_echo, 64-byte messages): a round trip is then two
// send, two recv and two epoll_wait calls and nothing else; buffering every write behind
// add_writer instead adds an epoll_ctl pair and a loop pass per write, and cost about 15%
// of the round trips per second.
void SelectorSocketTransport::write(std::string_view data) {
    if (write_eof_) throw RuntimeError("Cannot call write() after write_eof(): the sending side is shut down");
    if (data.empty()) return;
    if (conn_lost_) {
        ignore_write_after_loss();
        return;
    }
    std::size_t sent = 0;
    if (get_write_buffer_size() == 0) {  // (else the socket is full: queue behind what waits)
        if (!send_now({&data, 1}, sent)) return;  // the connection failed: it is being aborted
        if (sent == data.size()) return;
        loop_->add_writer(fd_, [this] { write_ready(); }, "transport write_ready");
    }
    buffer_.append(data.substr(sent));
    maybe_pause_protocol();
}
// [/docs:write]

// The same for several pieces: one sendmsg() gathers them from where they are (a header
// built here, a body elsewhere), so they leave in one system call and, with TCP_NODELAY,
// usually in one packet, without being joined into a new string first.
void SelectorSocketTransport::writelines(std::span<const std::string_view> pieces) {
    if (write_eof_) throw RuntimeError("Cannot call writelines() after write_eof(): the sending side is shut down");
    std::size_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    if (total == 0) return;
    if (conn_lost_) {
        ignore_write_after_loss();
        return;
    }
    std::size_t sent = 0;
    if (get_write_buffer_size() == 0) {
        if (!send_now(pieces, sent)) return;
        if (sent == total) return;
        loop_->add_writer(fd_, [this] { write_ready(); }, "transport write_ready");
    }
    buffer_rest(pieces, sent);
    maybe_pause_protocol();
}

// Send as much of `pieces` as the socket takes now; `sent` says how much. Returns false if
// the connection failed (it is then being aborted).
bool SelectorSocketTransport::send_now(std::span<const std::string_view> pieces, std::size_t& sent) {
    sent = 0;
    std::size_t first = 0, skip = 0;  // the first piece not sent whole, and how much of it was
    while (first < pieces.size()) {
        iovec iov[kMaxIov];
        std::size_t count = 0, offered = 0;
        for (std::size_t i = first; i < pieces.size() && count < kMaxIov; ++i) {
            std::string_view p = i == first ? pieces[i].substr(skip) : pieces[i];
            if (p.empty()) continue;
            iov[count++] = iovec{const_cast<char*>(p.data()), p.size()};
            offered += p.size();
        }
        if (count == 0) return true;
        ssize_t n;
        if (count == 1) {
            n = ::send(fd_, iov[0].iov_base, iov[0].iov_len, kSendNoSigpipe);
        } else {
            msghdr msg{};
            msg.msg_iov = iov;
            msg.msg_iovlen = count;
            n = ::sendmsg(fd_, &msg, kSendNoSigpipe);  // (sendmsg, not writev: writev has no MSG_NOSIGNAL)
        }
        if (n < 0) {
            const int err = errno;
            if (err == EINTR) continue;
            if (would_block(err)) return true;
            socket_error(err, "send to");
            return false;
        }
        sent += std::size_t(n);
        std::size_t left = std::size_t(n);  // move (first, skip) past what was sent
        while (first < pieces.size() && left >= pieces[first].size() - skip) {
            left -= pieces[first].size() - skip;
            ++first;
            skip = 0;
        }
        skip += left;
        // The socket took less than offered: its buffer is full, and another try now would
        // only fail with EAGAIN. Leave the rest to the writer callback.
        if (std::size_t(n) < offered) return true;
    }
    return true;
}

// Copy what send_now() did not send into the write buffer.
void SelectorSocketTransport::buffer_rest(std::span<const std::string_view> pieces, std::size_t sent) {
    for (std::string_view p : pieces) {
        if (sent >= p.size()) {
            sent -= p.size();
            continue;
        }
        buffer_.append(p.substr(sent));
        sent = 0;
    }
}

// The writer callback: the socket is writable again. Send what the buffer holds; once it
// is empty, stop watching, and finish a close() or write_eof() that waited for it.
//
// The buffer is one contiguous string, where asyncio keeps a deque of the bytes objects it
// was given. Python can keep the caller's immutable bytes without copying them; C++ must copy
// the caller's bytes anyway (a string_view promises nothing after the call), and copied into
// one string they leave in a single send() however many writes they came from.
void SelectorSocketTransport::write_ready() {
    if (conn_lost_) return;
    ssize_t n;
    do {
        n = ::send(fd_, buffer_.data() + sent_, buffer_.size() - sent_, kSendNoSigpipe);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        const int err = errno;
        if (would_block(err)) return;
        loop_->remove_writer(fd_);
        buffer_.clear();
        sent_ = 0;
        socket_error(err, "send to");
        return;
    }
    sent_ += std::size_t(n);
    maybe_resume_protocol();  // may write more, close, or abort
    if (conn_lost_) return;
    if (get_write_buffer_size() == 0) {
        flushed();  // may free this transport: nothing after it
        return;
    }
    // Forget the sent head now and then, so that a buffer that never quite drains does not
    // grow for ever; each byte is moved at most once more (amortised O(1)).
    if (sent_ >= 64 * 1024 && 2 * sent_ >= buffer_.size()) {
        buffer_.erase(0, sent_);
        sent_ = 0;
    }
}

// The write buffer is empty.
void SelectorSocketTransport::flushed() {
    buffer_.clear();
    sent_ = 0;
    if (buffer_.capacity() > kKeepBufferCapacity) std::string().swap(buffer_);
    loop_->remove_writer(fd_);
    if (closing_) {
        ++conn_lost_;
        call_connection_lost(nullptr);  // may free this transport
    } else if (write_eof_) {
        ::shutdown(fd_, SHUT_WR);  // (a failure here means the connection is gone: the reader hears it)
    }
}

void SelectorSocketTransport::write_eof() {
    if (closing_ || write_eof_) return;
    write_eof_ = true;
    if (get_write_buffer_size() == 0) ::shutdown(fd_, SHUT_WR);  // else flushed() does it
}

void SelectorSocketTransport::ignore_write_after_loss() {
    if (conn_lost_ == kLogThresholdForConnLostWrites && loop_)
        loop_->log(describe() + ": write() after the connection was lost; ignored (as are the ones before and after)");
    if (conn_lost_ < UINT_MAX) ++conn_lost_;
}

// ------------------------------------------------------------------------- flow control

// [docs:flow_control]
// Above the high-water mark, ask the protocol to stop writing; at the low-water mark, let
// it go on (asyncio's _FlowControlMixin). Between the two nothing changes, so a buffer
// hovering around one mark does not flap the protocol on every write.
void SelectorSocketTransport::maybe_pause_protocol() {
    if (protocol_paused_ || get_write_buffer_size() <= limits_.high) return;
    protocol_paused_ = true;
    Ref<Protocol> protocol = protocol_;
    try {
        protocol->pause_writing();
    } catch (...) {
        protocol_error("pause_writing", std::current_exception());
    }
}

void SelectorSocketTransport::maybe_resume_protocol() {
    if (!protocol_paused_ || get_write_buffer_size() > limits_.low) return;
    protocol_paused_ = false;
    Ref<Protocol> protocol = protocol_;
    try {
        protocol->resume_writing();
    } catch (...) {
        protocol_error("resume_writing", std::current_exception());
    }
}
// [/docs:flow_control]

void SelectorSocketTransport::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    limits_ = WriteBufferLimits::from(high, low);
    if (!conn_lost_) maybe_pause_protocol();
}

// ------------------------------------------------------------------------------ closing

// [docs:close]
// close() lets the buffer drain first (flushed() finishes it); abort() and the errors drop
// it (force_close). Either way connection_lost runs on a later pass, never inside the call
// that closed: the caller may be the protocol itself, in the middle of a callback.
void SelectorSocketTransport::close() {
    if (closing_) return;
    closing_ = true;
    loop_->remove_reader(fd_);
    if (get_write_buffer_size() == 0) {
        ++conn_lost_;
        loop_->remove_writer(fd_);  // (a writer that has just emptied the buffer may still be there)
        loop_->call_soon([self = Ref<SelectorSocketTransport>(this)] { self->call_connection_lost(nullptr); },
                         "transport connection_lost");
    }
}

void SelectorSocketTransport::force_close(std::exception_ptr exc) {
    if (conn_lost_) return;
    if (get_write_buffer_size() != 0) {
        buffer_.clear();
        sent_ = 0;
        loop_->remove_writer(fd_);
    }
    if (!closing_) {
        closing_ = true;
        loop_->remove_reader(fd_);
    }
    ++conn_lost_;
    lost_with_ = exc;
    loop_->call_soon([self = Ref<SelectorSocketTransport>(this), exc] { self->call_connection_lost(exc); },
                     "transport connection_lost");
}

// The end: tell the protocol, close the socket (unregistered already), tell the server,
// and let the loop drop its reference, which may free this transport.
void SelectorSocketTransport::call_connection_lost(std::exception_ptr exc) {
    if (!loop_) return;  // done already (the loop's close got here first)
    SelectorEventLoop& loop = *loop_;
    if (started_) {
        Ref<Protocol> protocol = protocol_;
        try {
            protocol->connection_lost(exc);
        } catch (...) {
            loop.call_exception_handler(ExceptionContext{
                "Exception in protocol.connection_lost() (" + describe() + ")", std::current_exception()});
        }
    }
    protocol_ = nullptr;  // the protocol may hold us: no cycle outlives the connection
    // Unregister before closing (selectors.hpp). Both are gone already, but for a writer
    // whose callback was emptying the buffer when the protocol aborted from resume_writing.
    loop.remove_reader(fd_);
    loop.remove_writer(fd_);
    sock_.close();
    extra_.socket = nullptr;
    loop_ = nullptr;
    if (Ref<Server> server = std::move(server_)) server->detach(*this);
    TransportRegistry::remove(*this, loop);  // last: may free this
}
// [/docs:close]

// A send or recv failed (the peer reset, ...): the connection is over. As in asyncio,
// an OSError of the socket is the connection's fate, not a bug: the protocol hears it in
// connection_lost, and the log only in debug mode.
void SelectorSocketTransport::socket_error(int err, const char* op) {
    std::exception_ptr exc = os_error(err, std::string(op) + " " + extra_.peername.to_string());
    if (loop_->get_debug()) loop_->log(describe() + ": fatal error on the socket: " + std::strerror(err));
    force_close(exc);
}

// A protocol callback threw: that is a bug, so it is reported, and the connection, whose
// state the protocol no longer knows, is aborted. The loop goes on.
void SelectorSocketTransport::protocol_error(const char* callback, std::exception_ptr exc) {
    loop_->call_exception_handler(ExceptionContext{
        std::string("Fatal error: protocol.") + callback + "() call failed (" + describe() + ")", exc});
    force_close(exc);
}

std::string SelectorSocketTransport::describe() const {
    return "transport fd " + std::to_string(fd_) + " to " + extra_.peername.to_string();
}

void SelectorSocketTransport::set_protocol(Ref<Protocol> protocol) {
    if (!protocol) throw std::invalid_argument("set_protocol: pass a protocol (nullptr given)");
    protocol_ = std::move(protocol);
}

// ------------------------------------------------------------------------------ starting


Ref<SelectorSocketTransport> SelectorSocketTransport::make(SelectorEventLoop& loop, Socket sock,
                                                           Ref<Protocol> protocol, SockAddr peername,
                                                           Ref<Future<>> waiter, Server* server) {
    if (!protocol) throw std::invalid_argument("a transport needs a protocol: the protocol factory returned none");
    if (loop.is_closed()) throw RuntimeError("cannot make a transport on a closed event loop");
    Ref<SelectorSocketTransport> t(new SelectorSocketTransport(loop, std::move(sock), std::move(protocol), peername));
    loop.call_soon([t, waiter] { t->start(waiter); }, "transport connection_made");
    TransportRegistry::add(*t, loop);
    if (server) {
        t->server_ = Ref<Server>(server);
        server->attach(*t);
    }
    return t;
}

SelectorSocketTransport::SelectorSocketTransport(SelectorEventLoop& loop, Socket sock, Ref<Protocol> protocol,
                                                 SockAddr peername)
    : loop_(&loop), sock_(std::move(sock)), fd_(sock_.fileno()), protocol_(std::move(protocol)) {
    // No Nagle: a small write leaves at once instead of waiting up to 40 ms for the ACK of
    // the previous one (asyncio does the same). A request/response protocol needs that.
    // (Not a TCP socket, such as a socketpair: nothing to do, and the error is ignored.)
    int one = 1;
    (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SockAddr name;
    if (::getsockname(fd_, name.buffer(), name.size_ptr()) == 0) extra_.sockname = name;
    if (peername.family() != AF_UNSPEC) {
        extra_.peername = peername;
    } else {
        SockAddr peer;
        if (::getpeername(fd_, peer.buffer(), peer.size_ptr()) == 0) extra_.peername = peer;
    }
    extra_.socket = &sock_;
}

SelectorSocketTransport::~SelectorSocketTransport() = default;

// The first callback of a new transport: connection_made, then reading (only then: the
// protocol must be ready for data_received), then the waiter of create_connection.
void SelectorSocketTransport::start(Ref<Future<>> waiter) {
    if (!loop_) return;
    started_ = true;
    std::exception_ptr failed;
    Ref<Protocol> protocol = protocol_;
    try {
        protocol->connection_made(*this);
    } catch (...) {
        failed = std::current_exception();
        protocol_error("connection_made", failed);
    }
    if (is_reading()) {
        try {
            add_reader();
        } catch (...) {  // the selector cannot watch this fd (select: at or above FD_SETSIZE)
            failed = std::current_exception();
            loop_->call_exception_handler(
                ExceptionContext{"Fatal error: the selector cannot watch the socket (" + describe() + ")", failed});
            force_close(failed);
        }
    }
    if (waiter && !waiter->done()) {
        if (failed)
            waiter->set_exception(failed);
        else
            waiter->set_result();
    }
}

// The loop closes with this connection open: end it now, and call connection_lost at once
// (no later pass will come), with the error it was already being lost with, if any.
void SelectorSocketTransport::loop_closing() {
    if (!conn_lost_) {
        closing_ = true;
        buffer_.clear();
        sent_ = 0;
        ++conn_lost_;
        loop_->remove_reader(fd_);
        loop_->remove_writer(fd_);
    }
    call_connection_lost(lost_with_);
}

// The transports open on each loop, each held by a Ref: this list is what keeps an open
// connection alive when nobody else holds it (asyncio's loop._transports, which is weak;
// Python's transports are kept alive by the loop's handles and collected otherwise). When
// the loop closes, those still open are closed, their protocols told, their fds freed.
// Kept beside the loop through stage 2's close-callback seam, like stage 3's task list.
void TransportRegistry::add(SelectorSocketTransport& t, SelectorEventLoop& loop) {
    auto& open = of(loop).open;
    t.registry_index_ = open.size();
    open.emplace_back(&t);
}

void TransportRegistry::remove(SelectorSocketTransport& t, EventLoop& loop) {
    LoopTransports* lt = find(&loop);
    if (!lt) return;
    auto& open = lt->open;
    const std::size_t i = t.registry_index_;
    if (i >= open.size() || open[i].get() != &t) return;  // removed already
    Ref<SelectorSocketTransport> dropped = std::move(open[i]);  // released last, on return
    if (i + 1 != open.size()) {  // the last one takes its place
        open[i] = std::move(open.back());
        open[i]->registry_index_ = i;
    }
    open.pop_back();
}

// The loop is closing (its close callbacks run while it can still schedule): end every
// connection still open, then forget the loop.
void TransportRegistry::close_loop(EventLoop& loop) {
    while (LoopTransports* lt = find(&loop)) {
        if (lt->open.empty()) break;
        Ref<SelectorSocketTransport> t = lt->open.back();
        t->loop_closing();
        remove(*t, loop);  // (loop_closing removed it; this makes sure)
    }
    std::erase_if(loops(), [&](auto& lt) { return lt->loop == &loop; });
}

std::vector<std::unique_ptr<TransportRegistry::LoopTransports>>& TransportRegistry::loops() {
    thread_local std::vector<std::unique_ptr<LoopTransports>> v;
    return v;
}

TransportRegistry::LoopTransports* TransportRegistry::find(EventLoop* loop) {
    for (auto& lt : loops())
        if (lt->loop == loop) return lt.get();
    return nullptr;
}

TransportRegistry::LoopTransports& TransportRegistry::of(SelectorEventLoop& loop) {
    if (LoopTransports* lt = find(&loop)) return *lt;
    loops().push_back(std::make_unique<LoopTransports>(LoopTransports{&loop, {}}));
    loop.add_close_callback([&loop] { close_loop(loop); });
    return *loops().back();
}

}  // namespace aio
