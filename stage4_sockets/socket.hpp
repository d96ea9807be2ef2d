// Stage 4: readiness I/O. A socket that owns its fd, and the address of one end.
//
// Adds:    Socket (socket.socket: created non-blocking and close-on-exec, closed by its
//          destructor; bind, listen, getsockname, getpeername, setsockopt, shutdown),
//          SockAddr (an IPv4 or IPv6 address and port), socketpair(), and
//          blocking_getaddrinfo() (socket.getaddrinfo, which the loop's getaddrinfo runs on a
//          worker thread).
// Mirrors: Python's socket module (Modules/socketmodule.c), reduced to what the loop needs.
//
// Every Socket is non-blocking: a call that would wait fails with EAGAIN instead, and the
// sock_* coroutines (sock_ops.hpp) turn that into "wait until the selector says ready, then
// try again". A blocking socket would freeze every task on the loop.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stage4_sockets/exceptions.hpp"

namespace aio {

// An address as the kernel takes it (a sockaddr_storage and its length); Python's
// ("127.0.0.1", 8080) and ("::1", 8080, 0, 0) tuples.
class SockAddr {
public:
    SockAddr() = default;  // empty: family() == AF_UNSPEC
    SockAddr(const sockaddr* sa, socklen_t len);
    // A numeric IPv4 or IPv6 address and a port: ip("127.0.0.1", 8080), ip("::1", 0).
    // Throws std::invalid_argument for anything else (a name: resolve it with getaddrinfo).
    static SockAddr ip(std::string_view host, std::uint16_t port);

    int family() const noexcept { return storage_.ss_family; }
    std::string host() const;     // "127.0.0.1", "::1"
    std::uint16_t port() const;   // 0 if not an IP address
    std::string to_string() const;  // "127.0.0.1:8080", "[::1]:8080"

    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
    socklen_t size() const noexcept { return len_; }
    // For the calls that fill an address in (accept, getsockname): room, and its length.
    sockaddr* buffer() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
    socklen_t* size_ptr() noexcept {
        len_ = sizeof storage_;
        return &len_;
    }

private:
    sockaddr_storage storage_{};
    socklen_t len_ = 0;
};

class Socket {
public:
    Socket() noexcept = default;  // no socket (fileno() == -1)
    // socket.socket(family, type, proto): AF_INET or AF_INET6 (or AF_UNIX), SOCK_STREAM...
    // Non-blocking, close-on-exec, and, where the system has it, SO_NOSIGPIPE. Throws OSError.
    explicit Socket(int family, int type = SOCK_STREAM, int protocol = 0);
    // Adopt an open fd (Python's socket(fileno=fd)) and make it non-blocking.
    static Socket from_fd(int fd);
    // Adopt an fd that is non-blocking and close-on-exec already (accept4 made it so).
    static Socket adopt(int fd);
    ~Socket() { close(); }
    Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), peer_(o.peer_) {}
    Socket& operator=(Socket&& o) noexcept;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    int fileno() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    // Close the fd (again: nothing). Unregister it from the loop first: see selectors.hpp.
    void close() noexcept;
    // Give up the fd without closing it; the caller now owns it.
    int detach() noexcept { return std::exchange(fd_, -1); }

    int family() const;
    void bind(const SockAddr& address);
    void listen(int backlog = 128);
    SockAddr getsockname() const;
    SockAddr getpeername() const;  // OSError(ENOTCONN) if not connected
    void setsockopt(int level, int option, int value);
    int getsockopt(int level, int option) const;
    void shutdown(int how);  // SHUT_RD, SHUT_WR or SHUT_RDWR

    // Who is at the other end, for error messages: the address it was connected to or
    // accepted from, else getpeername(), else "fd N".
    std::string peer_description() const;
    void set_peer(const SockAddr& peer) { peer_ = peer; }

private:
    int fd_ = -1;
    SockAddr peer_;  // set by sock_connect and sock_accept
};

// socket.socketpair(): two connected sockets, non-blocking and close-on-exec.
std::pair<Socket, Socket> socketpair(int family = AF_UNIX, int type = SOCK_STREAM, int protocol = 0);

// send()'s flag that turns "the peer has gone" into EPIPE instead of a SIGPIPE that would
// end the process; where there is none (macOS), Socket sets SO_NOSIGPIPE instead.
#ifdef MSG_NOSIGNAL
inline constexpr int kSendNoSigpipe = MSG_NOSIGNAL;
#else
inline constexpr int kSendNoSigpipe = 0;
#endif

// One answer of getaddrinfo: what to pass to Socket(family, type, protocol), and where to
// connect (Python's (family, type, proto, canonname, sockaddr) tuple).
struct AddrInfo {
    int family;
    int type;
    int protocol;
    std::string canonname;
    SockAddr address;
};

// socket.getaddrinfo(host, port, family, type, proto, flags): blocks while it resolves (it
// may ask a DNS server), so on the loop use the coroutine getaddrinfo() in sock_ops.hpp.
// An empty host means the wildcard address with AI_PASSIVE, else the loopback. Throws
// gaierror if the name cannot be resolved.
std::vector<AddrInfo> blocking_getaddrinfo(const std::string& host, int port, int family = AF_UNSPEC,
                                           int type = SOCK_STREAM, int protocol = 0, int flags = 0);

}  // namespace aio
