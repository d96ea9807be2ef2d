// Stage 4: readiness I/O. The socket coroutines (sock_ops.hpp).
#include "stage4_sockets/sock_ops.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "stage3_tasks_futures/executor.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"

namespace aio {

namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Removes the wait's registration when the wait ends, however it ends. If someone else
// replaced our callback meanwhile (add_reader cancels the one it replaces), theirs stays.
struct Unregister {
    SelectorEventLoop& loop;
    int fd;
    int event;
    Ref<Handle> handle;
    ~Unregister() {
        if (handle->cancelled()) return;
        if (event == EVENT_READ)
            loop.remove_reader(fd);
        else
            loop.remove_writer(fd);
    }
};

// [docs:wait_ready]
// Suspend the current task until `fd` is ready for `event` (EVENT_READ or EVENT_WRITE):
// a Future that the fd's reader (or writer) completes. `op` names the caller in errors.
Coroutine<> wait_ready(SelectorEventLoop& loop, int fd, int event, const char* op) {
    if (event == EVENT_READ ? loop.has_reader(fd) : loop.has_writer(fd))
        throw RuntimeError(std::string(op) + ": another task is already waiting to " +
                           (event == EVENT_READ ? "read from" : "write to") + " fd " + std::to_string(fd) +
                           "; one reader and one writer at a time per socket");
    Ref<Future<>> ready = create_future(loop);
    auto wake = [ready] {
        if (!ready->done()) ready->set_result();  // the fd may be reported again before we run
    };
    Ref<Handle> handle = event == EVENT_READ ? loop.add_reader(fd, wake, op) : loop.add_writer(fd, wake, op);
    Unregister unregister{loop, fd, event, handle};
    co_await ready;
}
// [/docs:wait_ready]

}  // namespace

SelectorEventLoop& get_running_selector_loop() {
    auto* loop = dynamic_cast<SelectorEventLoop*>(&get_running_loop());
    if (!loop)
        throw RuntimeError(
            "socket operations need a SelectorEventLoop, but this loop cannot wait on sockets: "
            "run the program with aio::run(main(), aio::new_selector_event_loop)");
    return *loop;
}

// [docs:sock_recv_into]
Coroutine<std::size_t> sock_recv_into(Socket& sock, std::span<char> buf) {
    SelectorEventLoop& loop = get_running_selector_loop();
    for (;;) {
        ssize_t n = ::recv(sock.fileno(), buf.data(), buf.size(), 0);  // 1. try
        if (n >= 0) co_return std::size_t(n);
        const int err = errno;
        if (err == EINTR) continue;
        if (!would_block(err)) throw_os_error(err, "recv from " + sock.peer_description());
        co_await wait_ready(loop, sock.fileno(), EVENT_READ, "sock_recv");  // 2. wait, 3. again
    }
}
// [/docs:sock_recv_into]

Coroutine<std::string> sock_recv(Socket& sock, std::size_t n) {
    std::string data(n, '\0');
    std::size_t got = co_await sock_recv_into(sock, std::span<char>(data.data(), data.size()));
    data.resize(got);
    co_return data;
}

// n often comes from the peer (a length prefix), which may announce a terabyte and send five
// bytes: so the buffer grows with what arrives (doubling, from 64 KiB), never to n at once.
Coroutine<std::string> sock_recv_exactly(Socket& sock, std::size_t n) {
    std::string data;
    std::size_t got = 0;
    while (got < n) {
        if (got == data.size()) data.resize(std::min(n, std::max<std::size_t>(2 * got, 64 * 1024)));
        std::size_t k = co_await sock_recv_into(sock, std::span<char>(data.data() + got, data.size() - got));
        if (k == 0) {
            data.resize(got);
            throw IncompleteReadError(std::move(data), n, "the connection from " + sock.peer_description() + " closed");
        }
        got += k;
    }
    co_return data;
}

// [docs:sock_sendall]
// A send may take only part of the data (the socket's buffer is full): send the rest when
// the selector says the socket is writable again.
Coroutine<> sock_sendall(Socket& sock, std::string_view data) {
    SelectorEventLoop& loop = get_running_selector_loop();
    std::size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(sock.fileno(), data.data() + sent, data.size() - sent, kSendNoSigpipe);
        if (n >= 0) {
            sent += std::size_t(n);
            continue;
        }
        const int err = errno;
        if (err == EINTR) continue;
        if (!would_block(err)) throw_os_error(err, "send to " + sock.peer_description());
        co_await wait_ready(loop, sock.fileno(), EVENT_WRITE, "sock_sendall");
    }
}
// [/docs:sock_sendall]

// [docs:sock_connect]
// A non-blocking connect returns at once with EINPROGRESS; the socket becomes writable when
// the handshake has finished, well or badly, and SO_ERROR says which.
Coroutine<> sock_connect(Socket& sock, SockAddr address) {
    SelectorEventLoop& loop = get_running_selector_loop();
    if (::connect(sock.fileno(), address.get(), address.size()) < 0) {
        const int err = errno;
        // EINTR: the handshake goes on without us, as with EINPROGRESS. EAGAIN: a Unix
        // socket whose listener's queue is full.
        if (err != EINPROGRESS && err != EINTR && !would_block(err)) throw_os_error(err, "connect to " + address.to_string());
        co_await wait_ready(loop, sock.fileno(), EVENT_WRITE, "sock_connect");
        if (int failed = sock.getsockopt(SOL_SOCKET, SO_ERROR)) throw_os_error(failed, "connect to " + address.to_string());
    }
    sock.set_peer(address);
}
// [/docs:sock_connect]

Coroutine<std::pair<Socket, SockAddr>> sock_accept(Socket& sock) {
    SelectorEventLoop& loop = get_running_selector_loop();
    for (;;) {
        SockAddr peer;
#ifdef __linux__
        // accept4 makes the new socket non-blocking and close-on-exec in the same call.
        int fd = ::accept4(sock.fileno(), peer.buffer(), peer.size_ptr(), SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int fd = ::accept(sock.fileno(), peer.buffer(), peer.size_ptr());
#endif
        if (fd >= 0) {
#ifdef __linux__
            Socket conn = Socket::adopt(fd);
#else
            Socket conn = Socket::from_fd(fd);
#endif
            conn.set_peer(peer);
            co_return std::pair<Socket, SockAddr>(std::move(conn), peer);
        }
        const int err = errno;
        // ECONNABORTED: a client gave up while it waited in the queue; wait for the next.
        if (err == EINTR || err == ECONNABORTED) continue;
        if (!would_block(err)) throw_os_error(err, "accept on fd " + std::to_string(sock.fileno()));
        co_await wait_ready(loop, sock.fileno(), EVENT_READ, "sock_accept");
    }
}

// [docs:getaddrinfo]
Coroutine<std::vector<AddrInfo>> getaddrinfo(std::string host, int port, int family, int type, int protocol, int flags) {
    if (type != 0 && port >= 0 && port <= 65535) {
        try {
            SockAddr numeric = SockAddr::ip(host, std::uint16_t(port));
            if (family == AF_UNSPEC || family == numeric.family()) {
                std::vector<AddrInfo> one;
                one.push_back(AddrInfo{numeric.family(), type, protocol, "", numeric});
                co_return one;
            }
        } catch (const std::invalid_argument&) {  // a name: ask the resolver
        }
    }
    Ref<Future<std::vector<AddrInfo>>> resolved =
        run_in_executor(blocking_getaddrinfo, std::move(host), port, family, type, protocol, flags);
    std::vector<AddrInfo> result = co_await resolved;
    co_return result;
}
// [/docs:getaddrinfo]

}  // namespace aio
