// A scripted HTTP peer for the client tests: a server on blocking sockets, in threads of its
// own, that answers with exactly the bytes a test chooses and records what it received.
// Header-only.
//
//     ScriptedPeer peer([](PeerConnection& c) {
//         while (c.read_request())                        // one request (head and body)
//             c.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
//     });
//     ... the client fetches peer.url("/x") ...
//     CHECK(peer.accepted() == 1);                        // keep-alive: one connection
//
// Each accepted connection runs the script in a thread of its own (so a test can hold
// several open at once: max_concurrent() counts them); when the script returns, the
// connection is closed. Every wait is bounded: reads give up when the peer is stopped (its
// destructor) or after `kReadLimit` seconds, so a failing test cannot hang the run. The
// peer listens on 127.0.0.1, on an ephemeral port.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "stage4_sockets/socket.hpp"
#include "stage5_http/http_grammar.hpp"

namespace scripted_peer {

class ScriptedPeer;

// One accepted connection, as the script sees it.
class PeerConnection {
public:
    static constexpr double kReadLimit = 10.0;  // seconds a read waits at most

    // The next request: its head and (Content-Length) body, as received. nullopt when the
    // client closed (or reset) the connection first, or the peer is stopping.
    std::optional<std::string> read_request();
    // Bytes in the receive buffer that belong to no request yet (after read_request).
    const std::string& pending() const { return buffer_; }
    // Wait until the client closes the connection (true), or the peer stops (false).
    bool wait_for_close();
    // Send exactly these bytes (all of them; false if the client has gone).
    bool send(std::string_view bytes);
    // Send one byte at a time, `gap_ms` apart: a slow drip.
    bool drip(std::string_view bytes, int gap_ms);
    // Sleep `ms`, waking early if the peer stops. Returns false if it stopped.
    bool pause(int ms);
    // Make the close that follows the script's return a reset (RST) instead of a FIN.
    void reset();
    // This connection's number, from 0 in the order accepted.
    int index() const { return index_; }

private:
    friend class ScriptedPeer;
    PeerConnection(ScriptedPeer& peer, int fd, int index) : peer_(peer), fd_(fd), index_(index) {}
    bool fill();  // one recv into buffer_; false at EOF, error or stop

    ScriptedPeer& peer_;
    int fd_;
    int index_;
    std::string buffer_;
};

class ScriptedPeer {
public:
    using Script = std::function<void(PeerConnection&)>;

    explicit ScriptedPeer(Script script, int backlog = 128) : script_(std::move(script)) {
        listener_ = aio::Socket(AF_INET);
        listener_.bind(aio::SockAddr::ip("127.0.0.1", 0));
        listener_.listen(backlog);
        port_ = listener_.getsockname().port();
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~ScriptedPeer() { stop(); }
    ScriptedPeer(const ScriptedPeer&) = delete;
    ScriptedPeer& operator=(const ScriptedPeer&) = delete;

    // Stop accepting, wake every script's waits, and join every thread.
    void stop() {
        if (stopping_.exchange(true)) return;
        if (acceptor_.joinable()) acceptor_.join();
        std::vector<std::thread> threads;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            threads.swap(threads_);
        }
        for (std::thread& t : threads) t.join();
        listener_.close();
    }

    int port() const { return port_; }
    std::string url(std::string_view path = "/") const {
        return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
    }
    // Connections accepted so far; the most open at once.
    int accepted() const { return accepted_.load(); }
    int max_concurrent() const { return max_open_.load(); }
    int open_now() const { return open_.load(); }
    // Every request read so far, in order.
    std::vector<std::string> requests() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return requests_;
    }
    bool stopping() const { return stopping_.load(); }

private:
    friend class PeerConnection;

    void accept_loop() {
        while (!stopping_) {
            pollfd p{listener_.fileno(), POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            int fd = ::accept4(listener_.fileno(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;  // (the listener is non-blocking: EAGAIN after a race)
            const int index = accepted_++;
            const int open = ++open_;
            int seen = max_open_.load();
            while (open > seen && !max_open_.compare_exchange_weak(seen, open)) {
            }
            std::lock_guard<std::mutex> lock(mutex_);
            threads_.emplace_back([this, fd, index] { serve(fd, index); });
        }
    }

    void serve(int fd, int index) {
        {
            PeerConnection conn(*this, fd, index);
            try {
                script_(conn);
            } catch (...) {  // a script's failure shows in the client's view of the exchange
            }
        }
        --open_;  // before the close, so that a client seeing EOF sees the count already down
        ::close(fd);
    }

    void record(std::string request) {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(std::move(request));
    }

    Script script_;
    aio::Socket listener_;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> accepted_{0}, open_{0}, max_open_{0};
    mutable std::mutex mutex_;
    std::vector<std::thread> threads_;
    std::vector<std::string> requests_;
    std::thread acceptor_;
};

inline bool PeerConnection::fill() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(kReadLimit);
    while (!peer_.stopping() && std::chrono::steady_clock::now() < give_up) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        char buf[65536];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return false;
        buffer_.append(buf, std::size_t(n));
        return true;
    }
    return false;
}

inline std::optional<std::string> PeerConnection::read_request() {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
        if (!fill()) return std::nullopt;
    end += 4;
    // The body's length, from Content-Length (the client sends no chunked bodies).
    std::size_t length = 0;
    std::string_view head(buffer_.data(), end);
    for (std::size_t at = 0; (at = head.find('\n', at)) != std::string_view::npos;) {
        ++at;
        std::string_view line = head.substr(at, head.find('\n', at) - at);
        if (line.size() > 15 && aio::iequals(line.substr(0, 15), "content-length:"))
            length = std::stoul(std::string(line.substr(15)));
    }
    while (buffer_.size() < end + length)
        if (!fill()) return std::nullopt;
    std::string request = buffer_.substr(0, end + length);
    buffer_.erase(0, end + length);
    peer_.record(request);
    return request;
}

inline bool PeerConnection::wait_for_close() {
    while (fill()) {
    }
    return !peer_.stopping();
}

inline bool PeerConnection::send(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) return false;
        bytes.remove_prefix(std::size_t(n));
    }
    return true;
}

inline bool PeerConnection::drip(std::string_view bytes, int gap_ms) {
    for (char c : bytes) {
        if (!send(std::string_view(&c, 1)) || !pause(gap_ms)) return false;
    }
    return true;
}

inline bool PeerConnection::pause(int ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
        if (peer_.stopping()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 5)));
    }
    return true;
}

inline void PeerConnection::reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// A response with a Content-Length body.
inline std::string response(int status, std::string_view body = {}, std::string_view extra_fields = {},
                            std::string_view reason = "OK") {
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + std::string(extra_fields) + "\r\n" + std::string(body);
}

// The method and target of a recorded request ("GET /x").
inline std::string request_line(std::string_view request) {
    std::string_view line = request.substr(0, request.find('\r'));
    return std::string(line.substr(0, line.rfind(' ')));
}

// The body of a recorded request.
inline std::string request_body(std::string_view request) {
    std::size_t end = request.find("\r\n\r\n");
    return end == std::string_view::npos ? std::string() : std::string(request.substr(end + 4));
}

}  // namespace scripted_peer
