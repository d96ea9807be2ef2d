// Stage 5: HTTP/1.1. The blocking client. See blocking_client.hpp.
#include "stage5_http/blocking_client.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

#include "stage4_sockets/exceptions.hpp"
#include "stage4_sockets/socket.hpp"

namespace aio {

namespace {

std::string errno_text(int err) { return "[Errno " + std::to_string(err) + "] " + std::strerror(err); }

timeval to_timeval(double s) {
    timeval tv{};
    tv.tv_sec = time_t(s);
    tv.tv_usec = suseconds_t((s - double(tv.tv_sec)) * 1e6);
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;  // zero would mean "no timeout"
    return tv;
}

// A blocking socket's fd, closed by the destructor.
class Fd {
public:
    explicit Fd(int fd = -1) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

// connect(), bounded by `timeout` if given: the one call the socket makes non-blocking, so
// that poll() can wait for the handshake with a limit (SO_SNDTIMEO does not bound connect
// portably).
int connect_within(int fd, const SockAddr& address, std::optional<double> timeout) {
    if (!timeout) {
        while (::connect(fd, address.get(), address.size()) < 0)
            if (errno != EINTR) return errno;
        return 0;
    }
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int err = 0;
    if (::connect(fd, address.get(), address.size()) < 0) {
        err = errno;
        if (err == EINPROGRESS || err == EINTR) {
            pollfd p{fd, POLLOUT, 0};
            const int ms = int(std::ceil(*timeout * 1000));
            int n;
            while ((n = ::poll(&p, 1, ms)) < 0 && errno == EINTR) {
            }
            if (n == 0) {
                err = ETIMEDOUT;
            } else {
                socklen_t len = sizeof err;
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            }
        }
    }
    ::fcntl(fd, F_SETFL, flags);
    return err;
}

}  // namespace

// A connection: the blocking socket and the parser of its responses, which lives as long as
// the connection (a keep-alive connection's next response continues where the last ended).
struct BlockingSession::Conn {
    Conn(Fd f, const HttpParserLimits& limits) : fd(std::move(f)), parser(limits) {}
    Fd fd;
    HttpResponseParser parser;
    std::uint64_t requests = 0;
    bool eof = false;
};

BlockingSession::BlockingSession(const BlockingSessionOptions& options) : options_(options) {}

BlockingSession::~BlockingSession() { close(); }

void BlockingSession::close() noexcept { idle_.clear(); }

// [docs:blocking_request]
// The same loop as ClientSession's follow_redirects, on blocking calls.
BlockingResponse BlockingSession::request(const std::string& method, std::string_view url, const HttpHeaders& headers,
                                          std::string body) {
    HttpHeaders all = headers;
    for (HttpHeaders::Field f : options_.headers)
        if (!all.contains(f.name)) all.add(f.name, f.value);
    ClientRequest request(method, URL::parse(url), std::move(all), std::move(body));
    std::vector<BlockingResponse> history;
    for (;;) {
        BlockingResponse response = request_once(request);
        std::optional<std::string_view> location = response.headers.get("Location");
        if (!is_redirect(response.status) || !location) {
            response.history = std::move(history);
            return response;
        }
        if (int(history.size()) >= options_.max_redirects)
            throw TooManyRedirects(response.status, "too many redirects (more than max_redirects, " +
                                                        std::to_string(options_.max_redirects) + ") from " +
                                                        request.describe() + ", the last to " + std::string(*location));
        follow_redirect(request, response.status, *location);
        history.push_back(std::move(response));
    }
}
// [/docs:blocking_request]

BlockingResponse BlockingSession::request_once(const ClientRequest& request) {
    std::string head;
    write_request_head_for(head, request);
    head += request.body;  // one send for both
    const std::string key = request.url.host() + " " + std::to_string(request.url.port());
    for (int attempt = 1;; ++attempt) {
        std::unique_ptr<Conn> conn = take_idle(key);
        const bool reused = conn != nullptr;
        if (!conn) conn = connect(request.url, key);
        ++conn->requests;
        conn->parser.set_request_method(request.method);

        // Send it all; a reused connection may turn out closed here already (EPIPE).
        int send_error = 0;
        for (std::size_t sent = 0; sent < head.size();) {
            ssize_t n = ::send(conn->fd.get(), head.data() + sent, head.size() - sent, kSendNoSigpipe);
            if (n >= 0) {
                sent += std::size_t(n);
            } else if (errno != EINTR) {
                send_error = errno;
                break;
            }
        }
        if (send_error == EAGAIN || send_error == EWOULDBLOCK)
            throw TimeoutError("read timeout of " + format_seconds(*options_.timeout.read) + " s expired sending " +
                               request.describe() + " (BlockingTimeout::read)");

        // Read until the head, then the body, into one response.
        BlockingResponse response;
        bool got_head = false, done = false, stale = false;
        std::uint64_t received = 0;
        char buffer[64 * 1024];
        while (!done && !stale) {
            HttpEvent e;
            try {
                e = send_error ? HttpEvent{} : conn->parser.next_event();
            } catch (const HttpError& err) {
                if (!got_head) throw BadResponseError(err, request.describe());
                throw ClientPayloadError("the body of " + request.describe() + " is malformed: " + err.what());
            }
            switch (e.kind) {
            case HttpEvent::informational: break;  // 100 Continue: the answer follows
            case HttpEvent::head: {
                HttpResponseHead& h = conn->parser.head();
                response.status = h.status;
                response.reason = std::string(h.reason());
                response.version = h.version;
                response.headers = std::move(h.headers);
                if (h.framing == BodyFraming::content_length && h.content_length <= (std::uint64_t(64) << 20))
                    response.body.reserve(std::size_t(h.content_length));
                got_head = true;
                break;
            }
            case HttpEvent::data: response.body.append(e.bytes); break;
            case HttpEvent::end_of_message: done = true; break;
            case HttpEvent::connection_closed:  // closed before any byte of a response
            case HttpEvent::need_data: {
                ssize_t n = -1;
                int err = send_error;
                if (e.kind == HttpEvent::need_data && !send_error) {
                    while ((n = ::recv(conn->fd.get(), buffer, sizeof buffer, 0)) < 0 && errno == EINTR) {
                    }
                    err = n < 0 ? errno : 0;
                }
                if (n > 0) {
                    received += std::size_t(n);
                    conn->parser.feed(std::string_view(buffer, std::size_t(n)));
                    break;
                }
                if (n == 0) {  // the server closed: the parser decides what that means
                    conn->eof = true;
                    conn->parser.feed_eof();
                    break;
                }
                if (err == EAGAIN || err == EWOULDBLOCK)
                    throw TimeoutError("read timeout of " + format_seconds(*options_.timeout.read) + " s expired waiting for " +
                                       (got_head ? "the body of " : "the response to ") + request.describe() +
                                       " (BlockingTimeout::read)");
                // The stale connection: reused, and closed or reset before a byte of the
                // response. An idempotent request is sent once more, on a new connection.
                const bool nothing = received == 0;
                if (attempt == 1 && reused && nothing && is_idempotent(request.method)) {
                    stale = true;
                    break;
                }
                std::string why = err ? ": " + errno_text(err) : "";
                if (!got_head)
                    throw ServerDisconnectedError("the server closed the connection without answering " +
                                                  request.describe() + why);
                throw ClientPayloadError("the body of " + request.describe() + " was cut short" + why);
            }
            default: throw ClientPayloadError("unexpected " + std::string(to_string(e.kind)) + " in the response to " +
                                              request.describe());
            }
        }
        if (stale) continue;
        response.method = request.method;
        response.url = request.url;
        // Keep the connection if the response allows and nothing came after it (stray
        // bytes would be read as the next response).
        if (conn->parser.head().keep_alive && !conn->eof && conn->parser.buffered() == 0)
            idle_[key].push_back(std::move(conn));
        return response;
    }
}

// An idle connection for `key`, if one is still open: a peek that finds EOF (the server
// closed it while idle) or bytes nobody asked for drops it.
std::unique_ptr<BlockingSession::Conn> BlockingSession::take_idle(const std::string& key) {
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    std::unique_ptr<Conn> found;
    while (!found && !it->second.empty()) {
        std::unique_ptr<Conn> conn = std::move(it->second.back());
        it->second.pop_back();
        char byte;
        ssize_t n = ::recv(conn->fd.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) found = std::move(conn);
    }
    if (it->second.empty()) idle_.erase(it);
    if (found) ++reused_;
    return found;
}

std::unique_ptr<BlockingSession::Conn> BlockingSession::connect(const URL& url, const std::string& key) {
    (void)key;
    std::vector<AddrInfo> infos;
    try {
        infos = blocking_getaddrinfo(url.host(), url.port(), AF_UNSPEC, SOCK_STREAM);
    } catch (const OSError& e) {
        throw ClientConnectorError(e.error_number(), "cannot connect to " + url.str() + ": " + e.what());
    }
    std::string errors;
    int first_errno = 0;
    for (const AddrInfo& info : infos) {
        Fd fd(::socket(info.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd.get() < 0) {
            errors += (errors.empty() ? "" : "; ") + errno_text(errno);
            continue;
        }
        const int err = connect_within(fd.get(), info.address, options_.timeout.connect);
        if (err == ETIMEDOUT && options_.timeout.connect)
            throw ConnectionTimeoutError("connect timeout of " + format_seconds(*options_.timeout.connect) +
                                         " s expired connecting to " + info.address.to_string() + " for " + url.str() +
                                         " (BlockingTimeout::connect)");
        if (err) {
            if (!first_errno) first_errno = err;
            errors += (errors.empty() ? "" : "; ") + errno_text(err) + ": connect to " + info.address.to_string();
            continue;
        }
        const int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (options_.timeout.read) {
            timeval tv = to_timeval(*options_.timeout.read);
            ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        }
        ++opened_;
        return std::make_unique<Conn>(std::move(fd), options_.parser_limits);
    }
    if (errors.empty()) errors = "the name resolved to no address";
    throw ClientConnectorError(first_errno, "cannot connect to " + url.str() + ": " + errors);
}

BlockingResponse blocking_get(std::string_view url, const BlockingTimeout& timeout) {
    BlockingSessionOptions options;
    options.timeout = timeout;
    BlockingSession session(options);
    return session.get(url);
}

}  // namespace aio
