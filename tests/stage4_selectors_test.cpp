// Stage 4 tests: the selectors, each operation and each error on each implementation
// (select, poll, epoll). Readiness of a socketpair's ends; timeouts that neither end early
// nor end late; a signal in the middle of a wait (EINTR) that does not end it; an fd closed
// while registered, which each selector handles its own way (selectors.hpp); and select's
// FD_SETSIZE limit.
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "stage4_sockets/selectors.hpp"
#include "stage4_sockets/socket.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/net_test_support.hpp"

namespace {

using loop_test_support::seconds_since;
using namespace net_test_support;
using Clock = std::chrono::steady_clock;

void send_byte(const aio::Socket& s) {
    char c = 'x';
    REQUIRE(::send(s.fileno(), &c, 1, 0) == 1);
}

void drain(const aio::Socket& s) {
    char buf[256];
    while (::recv(s.fileno(), buf, sizeof buf, 0) > 0) {
    }
}

// The events select(timeout) reports for `fd` (0 if none).
int events_for(aio::BaseSelector& sel, int fd, double timeout = 0) {
    int events = 0;
    for (const aio::SelectorEvent& e : sel.select(timeout))
        if (e.key->fd == fd) events |= e.events;
    return events;
}

}  // namespace

NET_TEST_CASE("selectors: register_fd, get_key, get_map, modify and unregister keep the key table", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        int data = 0, other = 0;
        const aio::SelectorKey& key = sel->register_fd(a.fileno(), aio::EVENT_READ, &data);
        REQUIRE(key.fd == a.fileno());
        REQUIRE(key.events == aio::EVENT_READ);
        REQUIRE(key.data == &data);
        REQUIRE(sel->get_key(a.fileno()).data == &data);
        REQUIRE(sel->get_map().size() == 1);
        REQUIRE(sel->get_map().count(b.fileno()) == 0);

        sel->modify(a.fileno(), aio::EVENT_READ | aio::EVENT_WRITE, &other);
        REQUIRE(sel->get_key(a.fileno()).events == (aio::EVENT_READ | aio::EVENT_WRITE));
        REQUIRE(sel->get_key(a.fileno()).data == &other);

        aio::SelectorKey old = sel->unregister(a.fileno());
        REQUIRE(old.data == &other);
        REQUIRE(sel->get_map().empty());
        // And it can be registered again.
        sel->register_fd(a.fileno(), aio::EVENT_WRITE);
        REQUIRE(events_for(*sel, a.fileno()) == aio::EVENT_WRITE);
        sel->unregister(a.fileno());
    }
}

NET_TEST_CASE("selectors: an fd registered twice, or not registered, raises KeyError naming it", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        sel->register_fd(a.fileno(), aio::EVENT_READ);
        try {
            sel->register_fd(a.fileno(), aio::EVENT_WRITE);
            FAIL("registered twice");
        } catch (const aio::KeyError& e) {
            REQUIRE(std::string(e.what()).find("fd " + std::to_string(a.fileno()) + " is already registered") !=
                    std::string::npos);
        }
        REQUIRE(sel->get_key(a.fileno()).events == aio::EVENT_READ);  // unchanged
        REQUIRE_THROWS_AS(sel->unregister(b.fileno()), aio::KeyError);
        REQUIRE_THROWS_AS(sel->modify(b.fileno(), aio::EVENT_READ, nullptr), aio::KeyError);
        REQUIRE_THROWS_AS(sel->get_key(b.fileno()), aio::KeyError);
        try {
            sel->unregister(b.fileno());
        } catch (const aio::KeyError& e) {
            REQUIRE(std::string(e.what()).find("is not registered") != std::string::npos);
        }
        sel->unregister(a.fileno());
        REQUIRE_THROWS_AS(sel->unregister(a.fileno()), aio::KeyError);
    }
}

NET_TEST_CASE("selectors: invalid events or a negative fd raise std::invalid_argument", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        REQUIRE_THROWS_AS(sel->register_fd(a.fileno(), 0), std::invalid_argument);
        REQUIRE_THROWS_AS(sel->register_fd(a.fileno(), 8), std::invalid_argument);
        REQUIRE_THROWS_AS(sel->register_fd(a.fileno(), aio::EVENT_CLOSED), std::invalid_argument);
        REQUIRE_THROWS_AS(sel->register_fd(-1, aio::EVENT_READ), std::invalid_argument);
        REQUIRE(sel->get_map().empty());
        sel->register_fd(a.fileno(), aio::EVENT_READ);
        REQUIRE_THROWS_AS(sel->modify(a.fileno(), 0, nullptr), std::invalid_argument);
        REQUIRE(sel->get_key(a.fileno()).events == aio::EVENT_READ);
        sel->unregister(a.fileno());
    }
}

NET_TEST_CASE("selectors: readable once data arrives, writable at once, level-triggered until drained", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        sel->register_fd(a.fileno(), aio::EVENT_READ);
        REQUIRE(sel->select(0).empty());
        send_byte(b);
        REQUIRE(events_for(*sel, a.fileno()) == aio::EVENT_READ);
        REQUIRE(events_for(*sel, a.fileno()) == aio::EVENT_READ);  // not drained: reported again
        drain(a);
        REQUIRE(sel->select(0).empty());

        // Watching both: only what is ready is reported.
        sel->modify(a.fileno(), aio::EVENT_READ | aio::EVENT_WRITE, nullptr);
        REQUIRE(events_for(*sel, a.fileno()) == aio::EVENT_WRITE);
        send_byte(b);
        REQUIRE(events_for(*sel, a.fileno()) == (aio::EVENT_READ | aio::EVENT_WRITE));
        sel->unregister(a.fileno());
        drain(a);
    }
}

NET_TEST_CASE("selectors: the peer closing makes the fd readable (recv then reads the EOF)", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        sel->register_fd(a.fileno(), aio::EVENT_READ);
        b.close();
        REQUIRE(events_for(*sel, a.fileno(), 1.0) == aio::EVENT_READ);
        char c;
        REQUIRE(::recv(a.fileno(), &c, 1, 0) == 0);
        sel->unregister(a.fileno());
    }
}

NET_TEST_CASE("selectors: a timeout neither ends early nor runs much late; nullopt waits for an event", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto sockets = aio::socketpair();  // (not auto [a, b]: clang 14 cannot capture those)
        aio::Socket& a = sockets.first;
        aio::Socket& b = sockets.second;
        sel->register_fd(a.fileno(), aio::EVENT_READ);
        auto t0 = Clock::now();
        REQUIRE(sel->select(0.05).empty());
        double took = seconds_since(t0);
        REQUIRE(took >= 0.049);  // poll and epoll round the milliseconds up, never down
        REQUIRE(took < 1.0);

        // A negative timeout only looks.
        t0 = Clock::now();
        REQUIRE(sel->select(-1.0).empty());
        REQUIRE(seconds_since(t0) < 0.5);

        // No limit: until another thread writes.
        std::thread writer([&b] {
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
            char c = 'x';
            (void)::send(b.fileno(), &c, 1, 0);
        });
        t0 = Clock::now();
        int events = 0;
        while (!events) {
            for (const aio::SelectorEvent& e : sel->select(std::nullopt))
                if (e.key->fd == a.fileno()) events = e.events;
        }
        writer.join();
        REQUIRE(events == aio::EVENT_READ);
        REQUIRE(seconds_since(t0) < 5.0);
        sel->unregister(a.fileno());
    }
}

namespace {
void ignore_signal(int) {}
}  // namespace

NET_TEST_CASE("selectors: a signal during the wait (EINTR) resumes it with the time left", "[stage4]") {
    // A handler without SA_RESTART, so the system call does fail with EINTR.
    struct sigaction action {}, saved {};
    action.sa_handler = ignore_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGUSR2, &action, &saved);
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        sel->register_fd(a.fileno(), aio::EVENT_READ);
        const pthread_t waiter = ::pthread_self();
        std::thread interrupter([waiter] {
            for (int i = 0; i < 3; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(40));
                ::pthread_kill(waiter, SIGUSR2);
            }
        });
        auto t0 = Clock::now();
        bool empty = sel->select(0.3).empty();
        double took = seconds_since(t0);
        interrupter.join();
        REQUIRE(empty);
        REQUIRE(took >= 0.29);  // not cut short at 40 ms by the first signal
        REQUIRE(took < 2.0);    // nor restarted from the beginning each time (that would be 0.3 s * 4)
        sel->unregister(a.fileno());
    }
    ::sigaction(SIGUSR2, &saved, nullptr);
}

NET_TEST_CASE("selectors: select and poll report an fd closed while registered once, then leave it out", "[stage4]") {
    for (const std::string kind : {"select", "poll"}) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        auto [c, d] = aio::socketpair();
        int data = 0;
        const int fd = a.fileno();
        sel->register_fd(fd, aio::EVENT_READ, &data);
        sel->register_fd(c.fileno(), aio::EVENT_READ);
        a.close();  // still registered
        const auto& ready = sel->select(0);
        REQUIRE(ready.size() == 1);
        REQUIRE(ready[0].key->fd == fd);
        REQUIRE(ready[0].key->data == &data);
        REQUIRE(ready[0].events == (aio::EVENT_READ | aio::EVENT_CLOSED));
        // Once: not again, so a loop cannot spin on it; the other fd is still watched.
        REQUIRE(sel->select(0).empty());
        send_byte(d);
        REQUIRE(events_for(*sel, c.fileno()) == aio::EVENT_READ);
        REQUIRE(sel->get_map().count(fd) == 1);  // still registered, until unregistered
        sel->unregister(fd);
        // The number, reused by a new socket, can be registered and works.
        auto [e, f] = aio::socketpair();
        const int reused = e.fileno();
        sel->register_fd(reused, aio::EVENT_READ);
        send_byte(f);
        REQUIRE(events_for(*sel, reused) == aio::EVENT_READ);
        sel->unregister(reused);
        sel->unregister(c.fileno());
    }
}

NET_TEST_CASE("selectors: select and poll watch a closed-and-reported fd again after modify()", "[stage4]") {
    for (const std::string kind : {"select", "poll"}) {
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        auto [a, b] = aio::socketpair();
        const int fd = a.fileno();
        sel->register_fd(fd, aio::EVENT_READ);
        a.close();
        REQUIRE(events_for(*sel, fd) == (aio::EVENT_READ | aio::EVENT_CLOSED));
        auto [e, f] = aio::socketpair();  // takes the lowest free number: fd's
        REQUIRE(e.fileno() == fd);
        sel->modify(fd, aio::EVENT_READ, nullptr);
        send_byte(f);
        REQUIRE(events_for(*sel, fd) == aio::EVENT_READ);
        sel->unregister(fd);
    }
}

#ifdef __linux__
NET_TEST_CASE("selectors: epoll drops an fd closed while registered, silently; unregister and modify still work",
              "[stage4]") {
    auto sel = aio::make_selector("epoll");
    auto [a, b] = aio::socketpair();
    const int fd = a.fileno();
    sel->register_fd(fd, aio::EVENT_READ);
    send_byte(b);
    a.close();
    REQUIRE(sel->select(0).empty());  // the kernel forgot it: nothing to report, nothing to spin on
    REQUIRE(sel->get_map().count(fd) == 1);
    // A new socket gets the same number; the stale key's modify() watches it (MOD fails
    // with ENOENT, ADD succeeds).
    auto [e, f] = aio::socketpair();
    REQUIRE(e.fileno() == fd);
    sel->modify(fd, aio::EVENT_READ, nullptr);
    send_byte(f);
    REQUIRE(events_for(*sel, fd) == aio::EVENT_READ);
    sel->unregister(fd);
    // And unregistering a closed fd is quiet too (the kernel says EBADF; expected).
    auto [g, h] = aio::socketpair();
    const int gfd = g.fileno();
    sel->register_fd(gfd, aio::EVENT_READ);
    g.close();
    sel->unregister(gfd);
    REQUIRE(sel->get_map().empty());
}

NET_TEST_CASE("selectors: epoll refuses an fd that is not open, with OSError(EBADF)", "[stage4]") {
    auto sel = aio::make_selector("epoll");
    auto [a, b] = aio::socketpair();
    const int fd = a.fileno();
    a.close();
    try {
        sel->register_fd(fd, aio::EVENT_READ);
        FAIL("registered a closed fd");
    } catch (const aio::OSError& e) {
        REQUIRE(e.error_number() == EBADF);
    }
    REQUIRE(sel->get_map().empty());  // the table is unchanged
}
#endif

NET_TEST_CASE("selectors: select refuses an fd at or above FD_SETSIZE and says to use poll or epoll", "[stage4]") {
    auto [a, b] = aio::socketpair();
    const int high = FD_SETSIZE + 100;
    REQUIRE(::dup2(a.fileno(), high) == high);
    aio::Socket high_socket = aio::Socket::from_fd(high);  // closes it at the end
    {
        auto sel = aio::make_selector("select");
        try {
            sel->register_fd(high, aio::EVENT_READ);
            FAIL("select accepted fd " << high);
        } catch (const std::invalid_argument& e) {
            std::string what = e.what();
            REQUIRE(what.find("FD_SETSIZE") != std::string::npos);
            REQUIRE(what.find("poll") != std::string::npos);
            REQUIRE(what.find("epoll") != std::string::npos);
        }
        REQUIRE(sel->get_map().empty());
    }
    for (const std::string& kind : selector_kinds()) {
        if (kind == "select") continue;
        INFO("selector " << kind);
        auto sel = aio::make_selector(kind);
        sel->register_fd(high, aio::EVENT_READ);
        send_byte(b);
        REQUIRE(events_for(*sel, high) == aio::EVENT_READ);
        drain(high_socket);
        sel->unregister(high);
    }
}

TEST_CASE("selectors: make_selector and AIO_SELECTOR choose one; an unknown name lists the choices", "[stage4]") {
    REQUIRE(std::string(aio::make_selector("select")->name()) == "SelectSelector");
    REQUIRE(std::string(aio::make_selector("poll")->name()) == "PollSelector");
#ifdef __linux__
    REQUIRE(std::string(aio::make_selector("epoll")->name()) == "EpollSelector");
    REQUIRE(std::string(aio::make_selector("")->name()) == "EpollSelector");  // DefaultSelector
#endif
    try {
        aio::make_selector("kqueue");
        FAIL("kqueue accepted");
    } catch (const std::invalid_argument& e) {
        REQUIRE(std::string(e.what()).find("select, poll") != std::string::npos);
    }
    const char* saved = std::getenv("AIO_SELECTOR");
    std::string saved_value = saved ? saved : "";
    ::setenv("AIO_SELECTOR", "poll", 1);
    REQUIRE(std::string(aio::selector_from_env()->name()) == "PollSelector");
    ::setenv("AIO_SELECTOR", "nonsense", 1);
    try {
        aio::selector_from_env();
        FAIL("nonsense accepted");
    } catch (const std::invalid_argument& e) {
        REQUIRE(std::string(e.what()).find("AIO_SELECTOR") != std::string::npos);
    }
    if (saved)
        ::setenv("AIO_SELECTOR", saved_value.c_str(), 1);
    else
        ::unsetenv("AIO_SELECTOR");
}
