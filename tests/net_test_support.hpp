// Helpers shared by the networking tests (stage 4 and later). Header-only.
//
// NET_TEST_CASE("name", "[tags]") { ... } is a Catch2 TEST_CASE whose body runs between two
// counts of this process's open file descriptors (/proc/self/fd): a test that leaves one
// open fails, naming how many. Every networking test is written with it, so none can
// forget the check. The rest: the selectors to run each test on, a loop on one of them,
// running a scenario with a time limit, and loopback sockets on ephemeral ports.
#pragma once

#include <dirent.h>
#include <sys/socket.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage4_sockets/socket.hpp"

namespace net_test_support {

// How many fds this process has open (Linux: the entries of /proc/self/fd, less the one
// the listing itself uses). -1 where there is no /proc.
inline int open_fd_count() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return -1;
    int n = 0;
    while (dirent* e = ::readdir(dir))
        if (e->d_name[0] != '.') ++n;
    ::closedir(dir);
    return n - 1;
}

// Counts the open fds when made and when destroyed, and fails the test if they differ.
class FdLeakCheck {
public:
    FdLeakCheck() : before_(open_fd_count()) {}
    ~FdLeakCheck() {
        if (std::uncaught_exceptions() > 0 || before_ < 0) return;  // the test failed already
        const int after = open_fd_count();
        INFO("open file descriptors before the test: " << before_ << ", after: " << after);
        CHECK(after == before_);
    }
    FdLeakCheck(const FdLeakCheck&) = delete;
    FdLeakCheck& operator=(const FdLeakCheck&) = delete;

private:
    int before_;
};

#define NET_TEST_CONCAT2(a, b) a##b
#define NET_TEST_CONCAT(a, b) NET_TEST_CONCAT2(a, b)
#define NET_TEST_CASE_IMPL(body, ...)                      \
    static void body();                                    \
    TEST_CASE(__VA_ARGS__) {                               \
        net_test_support::FdLeakCheck net_test_fd_check_;  \
        body();                                            \
    }                                                      \
    static void body()
#define NET_TEST_CASE(...) NET_TEST_CASE_IMPL(NET_TEST_CONCAT(net_test_body_, __LINE__), __VA_ARGS__)

// The selectors to run each test on: every one this system has.
inline std::vector<std::string> selector_kinds() { return aio::selector_names(); }

// A loop factory for run(): a SelectorEventLoop on the selector called `kind`.
inline auto loop_on(std::string kind) {
    return [kind] { return std::unique_ptr<aio::EventLoop>(new aio::SelectorEventLoop(aio::make_selector(kind))); };
}

// Runs `scenario` on a SelectorEventLoop over `kind`, for `limit` seconds at most: a
// scenario stuck somewhere is cancelled there and fails with TimeoutError, not a hang.
template <typename T>
T run_on(const std::string& kind, aio::Coroutine<T> scenario, double limit = 5.0) {
    return aio::run(aio::wait_for(std::move(scenario), limit), loop_on(kind));
}

// A socket listening on an ephemeral port of `host` ("127.0.0.1" or "::1").
inline aio::Socket listening_socket(const char* host = "127.0.0.1", int backlog = 16) {
    aio::SockAddr address = aio::SockAddr::ip(host, 0);
    aio::Socket s(address.family());
    s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    s.bind(address);
    s.listen(backlog);
    return s;
}

// Both ends of a TCP connection over `host`'s loopback: {client, server side}.
inline aio::Coroutine<std::pair<aio::Socket, aio::Socket>> connected_pair(const char* host = "127.0.0.1") {
    aio::Socket listener = listening_socket(host);
    aio::Socket client(listener.getsockname().family());
    co_await aio::sock_connect(client, listener.getsockname());
    auto accepted = co_await aio::sock_accept(listener);
    co_return std::pair<aio::Socket, aio::Socket>(std::move(client), std::move(accepted.first));
}

}  // namespace net_test_support
