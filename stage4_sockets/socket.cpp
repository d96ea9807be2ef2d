// Stage 4: readiness I/O. Socket, SockAddr, socketpair and the blocking getaddrinfo
// (socket.hpp).
#include "stage4_sockets/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace aio {

namespace {

void set_nonblocking_cloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_os_error(errno, "fcntl(O_NONBLOCK) on fd " + std::to_string(fd));
    int fdflags = ::fcntl(fd, F_GETFD);
    if (fdflags < 0 || ::fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC) < 0) throw_os_error(errno, "fcntl(FD_CLOEXEC) on fd " + std::to_string(fd));
}

// Where the system has no MSG_NOSIGNAL (macOS), a write to a closed peer would raise
// SIGPIPE and kill the process; SO_NOSIGPIPE turns that into EPIPE for the socket.
void no_sigpipe(int fd) {
#ifdef SO_NOSIGPIPE
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

}  // namespace

// ------------------------------------------------------------------------------- SockAddr

SockAddr::SockAddr(const sockaddr* sa, socklen_t len) : len_(len) {
    if (len > sizeof storage_) throw std::invalid_argument("SockAddr: address longer than sockaddr_storage");
    std::memcpy(&storage_, sa, len);
}

SockAddr SockAddr::ip(std::string_view host, std::uint16_t port) {
    std::string h(host);
    SockAddr a;
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);  // "[::1]"
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    if (::inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.len_ = sizeof *v4;
    } else if (::inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.len_ = sizeof *v6;
    } else {
        throw std::invalid_argument("SockAddr::ip: '" + h +
                                    "' is not a numeric IPv4 or IPv6 address; resolve names with getaddrinfo()");
    }
    return a;
}

std::string SockAddr::host() const {
    char buf[INET6_ADDRSTRLEN] = "";
    if (family() == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
    else if (family() == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
    else if (family() == AF_UNIX)
        return "unix socket";
    return buf;
}

std::uint16_t SockAddr::port() const {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    return 0;
}

std::string SockAddr::to_string() const {
    if (family() == AF_INET) return host() + ":" + std::to_string(port());
    if (family() == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
    if (family() == AF_UNSPEC) return "(no address)";
    return host();
}

// --------------------------------------------------------------------------------- Socket

Socket::Socket(int family, int type, int protocol) {
#ifdef SOCK_NONBLOCK
    fd_ = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);  // one call, no window
    if (fd_ < 0) throw_os_error(errno, "socket()");
#else
    fd_ = ::socket(family, type, protocol);
    if (fd_ < 0) throw_os_error(errno, "socket()");
    set_nonblocking_cloexec(fd_);
#endif
    no_sigpipe(fd_);
}

Socket Socket::from_fd(int fd) {
    Socket s;
    s.fd_ = fd;
    set_nonblocking_cloexec(fd);  // on failure, s closes the fd: it is ours now
    no_sigpipe(fd);
    return s;
}

Socket Socket::adopt(int fd) {
    Socket s;
    s.fd_ = fd;
    no_sigpipe(fd);
    return s;
}

Socket& Socket::operator=(Socket&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        peer_ = o.peer_;
    }
    return *this;
}

void Socket::close() noexcept {
    // Not retried on EINTR: on Linux the fd is released even then, and a retry could close
    // an fd another thread has just been given.
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

int Socket::family() const { return getsockname().family(); }

void Socket::bind(const SockAddr& address) {
    if (::bind(fd_, address.get(), address.size()) < 0) throw_os_error(errno, "bind to " + address.to_string());
}

void Socket::listen(int backlog) {
    if (::listen(fd_, backlog) < 0) throw_os_error(errno, "listen on fd " + std::to_string(fd_));
}

SockAddr Socket::getsockname() const {
    SockAddr a;
    if (::getsockname(fd_, a.buffer(), a.size_ptr()) < 0) throw_os_error(errno, "getsockname of fd " + std::to_string(fd_));
    return a;
}

SockAddr Socket::getpeername() const {
    SockAddr a;
    if (::getpeername(fd_, a.buffer(), a.size_ptr()) < 0) throw_os_error(errno, "getpeername of fd " + std::to_string(fd_));
    return a;
}

void Socket::setsockopt(int level, int option, int value) {
    if (::setsockopt(fd_, level, option, &value, sizeof value) < 0)
        throw_os_error(errno, "setsockopt(" + std::to_string(option) + ") on fd " + std::to_string(fd_));
}

int Socket::getsockopt(int level, int option) const {
    int value = 0;
    socklen_t len = sizeof value;
    if (::getsockopt(fd_, level, option, &value, &len) < 0)
        throw_os_error(errno, "getsockopt(" + std::to_string(option) + ") on fd " + std::to_string(fd_));
    return value;
}

void Socket::shutdown(int how) {
    if (::shutdown(fd_, how) < 0) throw_os_error(errno, "shutdown of the connection to " + peer_description());
}

std::string Socket::peer_description() const {
    if (peer_.family() != AF_UNSPEC) return peer_.to_string();
    SockAddr a;
    if (fd_ >= 0 && ::getpeername(fd_, a.buffer(), a.size_ptr()) == 0 && a.family() != AF_UNIX) return a.to_string();
    return "fd " + std::to_string(fd_);
}

std::pair<Socket, Socket> socketpair(int family, int type, int protocol) {
    int fds[2];
    if (::socketpair(family, type, protocol, fds) < 0) throw_os_error(errno, "socketpair()");
    Socket a, b;
    try {
        a = Socket::from_fd(fds[0]);
    } catch (...) {
        ::close(fds[1]);  // (fds[0] is a's now, closed as it goes)
        throw;
    }
    b = Socket::from_fd(fds[1]);
    return {std::move(a), std::move(b)};
}

// ------------------------------------------------------------------------------ getaddrinfo

std::vector<AddrInfo> blocking_getaddrinfo(const std::string& host, int port, int family, int type, int protocol,
                                           int flags) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_protocol = protocol;
    hints.ai_flags = flags | AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const std::string service = std::to_string(port);
    const std::string what = "getaddrinfo('" + host + "', " + service + ")";
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
    if (rc == EAI_SYSTEM) throw_os_error(errno, what);
    if (rc != 0) throw gaierror(rc, "[Errno " + std::to_string(rc) + "] " + ::gai_strerror(rc) + ": " + what);
    std::vector<AddrInfo> out;
    for (addrinfo* ai = list; ai; ai = ai->ai_next)
        out.push_back(AddrInfo{ai->ai_family, ai->ai_socktype, ai->ai_protocol, ai->ai_canonname ? ai->ai_canonname : "",
                               SockAddr(ai->ai_addr, ai->ai_addrlen)});
    ::freeaddrinfo(list);
    return out;
}

}  // namespace aio
