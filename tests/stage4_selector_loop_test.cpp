// Stage 4 tests: SelectorEventLoop, on each selector. add_reader/add_writer and their
// removal (one callback per fd and direction, the selector's key kept in step); the timers
// still fire on time, without a busy wait; call_soon_threadsafe wakes a loop blocked in the
// selector; close() frees what the loop owns and nothing else; an fd closed while watched;
// and the fairness policy, both ways: a ready socket is serviced within a bounded number of
// callbacks while tasks keep the ready queue busy, and the selector is not polled on every
// pass meanwhile.
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/net_test_support.hpp"

namespace {

using namespace loop_test_support;
using namespace net_test_support;
using Clock = std::chrono::steady_clock;

void send_byte(const aio::Socket& s) {
    char c = 'x';
    REQUIRE(::send(s.fileno(), &c, 1, 0) == 1);
}

char recv_byte(const aio::Socket& s) {
    char c = 0;
    REQUIRE(::recv(s.fileno(), &c, 1, 0) == 1);
    return c;
}

// A selector that forwards to a real one and counts the waits, to see how often the loop
// polls. (Its own key table mirrors the inner one's; the events it returns are the inner
// selector's, whose keys carry the same data.)
class CountingSelector final : public aio::BaseSelector {
public:
    explicit CountingSelector(std::unique_ptr<aio::BaseSelector> inner, int* selects)
        : inner_(std::move(inner)), selects_(selects) {}
    const std::vector<aio::SelectorEvent>& select(std::optional<double> timeout) override {
        ++*selects_;
        return inner_->select(timeout);
    }
    const char* name() const noexcept override { return "CountingSelector"; }

private:
    void add_fd(const aio::SelectorKey& key) override { inner_->register_fd(key.fd, key.events, key.data); }
    void modify_fd(const aio::SelectorKey&, const aio::SelectorKey& key) override {
        inner_->modify(key.fd, key.events, key.data);
    }
    void remove_fd(const aio::SelectorKey& key) noexcept override { inner_->unregister(key.fd); }
    std::unique_ptr<aio::BaseSelector> inner_;
    int* selects_;
};

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

NET_TEST_CASE("add_reader: the callback runs when the fd is readable; remove_reader stops it and unregisters",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        auto sockets = aio::socketpair();  // (not auto [a, b]: clang 14 cannot capture those)
        aio::Socket& a = sockets.first;
        aio::Socket& b = sockets.second;
        int calls = 0;
        aio::Ref<aio::Handle> h = loop.add_reader(a.fileno(), [&] {
            ++calls;
            recv_byte(a);
        });
        REQUIRE(loop.has_reader(a.fileno()));
        REQUIRE_FALSE(loop.has_writer(a.fileno()));
        REQUIRE(loop.selector().get_key(a.fileno()).events == aio::EVENT_READ);
        one_pass(loop);
        REQUIRE(calls == 0);  // nothing to read yet
        send_byte(b);
        one_pass(loop);
        REQUIRE(calls == 1);
        one_pass(loop);
        REQUIRE(calls == 1);  // drained: not called again
        send_byte(b);
        send_byte(b);
        one_pass(loop);
        one_pass(loop);
        REQUIRE(calls == 3);  // level-triggered: once per byte, since it reads one at a time

        REQUIRE(loop.remove_reader(a.fileno()));
        REQUIRE(h->cancelled());
        REQUIRE_FALSE(loop.has_reader(a.fileno()));
        REQUIRE(loop.selector().get_map().count(a.fileno()) == 0);
        REQUIRE_FALSE(loop.remove_reader(a.fileno()));  // nothing left to remove
        send_byte(b);
        one_pass(loop);
        REQUIRE(calls == 3);
    }
}

NET_TEST_CASE("add_reader twice replaces the first (cancelled); reader and writer share one key", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        auto sockets = aio::socketpair();
        aio::Socket& a = sockets.first;
        aio::Socket& b = sockets.second;
        Log log;
        auto first = loop.add_reader(a.fileno(), [&] { log.push_back("first"); });
        auto second = loop.add_reader(a.fileno(), [&] {
            log.push_back("second");
            recv_byte(a);
        });
        REQUIRE(first->cancelled());
        auto writer = loop.add_writer(a.fileno(), [&] { log.push_back("writer"); });
        REQUIRE(loop.selector().get_key(a.fileno()).events == (aio::EVENT_READ | aio::EVENT_WRITE));
        send_byte(b);
        one_pass(loop);
        REQUIRE(log == Log{"second", "writer"});

        // Removing the writer keeps the reader, and the key now asks for reading only.
        REQUIRE(loop.remove_writer(a.fileno()));
        REQUIRE(writer->cancelled());
        REQUIRE(loop.selector().get_key(a.fileno()).events == aio::EVENT_READ);
        REQUIRE(loop.has_reader(a.fileno()));
        send_byte(b);
        one_pass(loop);
        REQUIRE(log == Log{"second", "writer", "second"});
        REQUIRE(loop.remove_reader(a.fileno()));
        REQUIRE(loop.selector().get_map().count(a.fileno()) == 0);
    }
}

NET_TEST_CASE("add_writer: called while the socket is writable; a callback removed in the same pass is skipped",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        auto first_pair = aio::socketpair();
        auto second_pair = aio::socketpair();
        aio::Socket& a = first_pair.first;
        aio::Socket& c = second_pair.first;
        Log log;
        // Both fds are writable; whichever runs first removes the other's writer, which was
        // already queued for this pass: it must not run.
        loop.add_writer(a.fileno(), [&] {
            log.push_back("a");
            loop.remove_writer(c.fileno());
            loop.remove_writer(a.fileno());
        });
        loop.add_writer(c.fileno(), [&] {
            log.push_back("c");
            loop.remove_writer(a.fileno());
            loop.remove_writer(c.fileno());
        });
        one_pass(loop);
        REQUIRE(log.size() == 1);
        one_pass(loop);
        REQUIRE(log.size() == 1);
        REQUIRE(loop.selector().get_map().size() == 1);  // only the self-pipe is left
    }
}

NET_TEST_CASE("add_reader: an fd the selector refuses leaves nothing behind", "[stage4]") {
    {
        aio::SelectorEventLoop loop(aio::make_selector("select"));
        auto [a, b] = aio::socketpair();
        const int high = FD_SETSIZE + 7;
        REQUIRE(::dup2(a.fileno(), high) == high);
        aio::Socket high_socket = aio::Socket::from_fd(high);
        REQUIRE_THROWS_AS(loop.add_reader(high, [] {}), std::invalid_argument);
        REQUIRE_FALSE(loop.has_reader(high));
        REQUIRE(loop.selector().get_map().count(high) == 0);
        REQUIRE_FALSE(loop.remove_reader(high));
    }
#ifdef __linux__
    {
        aio::SelectorEventLoop loop(aio::make_selector("epoll"));
        auto [a, b] = aio::socketpair();
        const int fd = a.fileno();
        a.close();
        REQUIRE_THROWS_AS(loop.add_reader(fd, [] {}), aio::OSError);
        REQUIRE_FALSE(loop.has_reader(fd));
        REQUIRE(loop.selector().get_map().count(fd) == 0);
    }
#endif
}

NET_TEST_CASE("SelectorEventLoop: timers fire on time, and waiting for one is not a busy loop", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        int selects = 0;
        aio::SelectorEventLoop loop(std::make_unique<CountingSelector>(aio::make_selector(kind), &selects));
        std::vector<double> fired;
        const double t0 = loop.time();
        loop.call_later(0.06, [&] { fired.push_back(loop.time() - t0); });
        loop.call_later(0.03, [&] { fired.push_back(loop.time() - t0); });
        loop.call_later(0.09, [&] {
            fired.push_back(loop.time() - t0);
            loop.stop();
        });
        loop.run_forever();
        REQUIRE(fired.size() == 3);
        REQUIRE(fired[0] >= 0.03);
        REQUIRE(fired[1] >= 0.06);
        REQUIRE(fired[2] >= 0.09);
        REQUIRE(fired[2] < 1.0);
        // Three timers, three waits (and a few more if the machine is slow), not thousands.
        REQUIRE(selects <= 10);
    }
}

NET_TEST_CASE("SelectorEventLoop: call_soon_threadsafe wakes a loop blocked in the selector", "[stage4][threads]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        bool ran = false;
        // Nothing else to wait for: without the self-pipe the loop would sleep for ever.
        std::thread poster([&loop, &ran] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            loop.call_soon_threadsafe([&loop, &ran] {
                ran = true;
                loop.stop();
            });
        });
        auto t0 = Clock::now();
        // A limit, so that a lost wakeup fails instead of hanging.
        auto limit = loop.call_later(5.0, [&loop] { loop.stop(); });
        loop.run_forever();
        poster.join();
        limit->cancel();
        REQUIRE(ran);
        REQUIRE(seconds_since(t0) < 2.0);
    }
}

NET_TEST_CASE("SelectorEventLoop: close() closes the self-pipe and the selector, not the fds it watched", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        const int before = open_fd_count();
        auto [a, b] = aio::socketpair();
        aio::Ref<aio::Handle> reader;
        {
            aio::SelectorEventLoop loop(aio::make_selector(kind));
            REQUIRE(open_fd_count() > before + 2);  // the self-pipe (and epoll's fd)
            reader = loop.add_reader(a.fileno(), [] {});
            REQUIRE(reader->ref_count() == 2);
            loop.close();
            REQUIRE(loop.is_closed());
            REQUIRE(open_fd_count() == before + 2);  // only a and b are left
            REQUIRE(reader->ref_count() == 1);       // the loop let go of the callback
            REQUIRE(fd_is_open(a.fileno()));
            REQUIRE_FALSE(loop.remove_reader(a.fileno()));  // closed: nothing to remove
            REQUIRE_THROWS_AS(loop.add_reader(a.fileno(), [] {}), aio::RuntimeError);
            REQUIRE_THROWS_AS(loop.selector(), aio::RuntimeError);
            loop.close();  // twice: nothing
        }
        REQUIRE(open_fd_count() == before + 2);
    }
}

NET_TEST_CASE("SelectorEventLoop: close() on a running loop raises RuntimeError, even through an EventLoop&",
              "[stage4]") {
    aio::SelectorEventLoop selector_loop;
    aio::EventLoop& loop = selector_loop;
    bool raised = false;
    loop.call_soon([&] {
        try {
            loop.close();
        } catch (const aio::RuntimeError&) {
            raised = true;
        }
    });
    one_pass(loop);
    REQUIRE(raised);
    REQUIRE_FALSE(loop.is_closed());
    REQUIRE_NOTHROW(selector_loop.selector());
}

NET_TEST_CASE("SelectorEventLoop: an fd closed while watched is reported once (select, poll) or dropped (epoll)",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        Reports reports;
        capture_reports(loop, &reports);
        auto [a, b] = aio::socketpair();
        const int fd = a.fileno();
        int calls = 0;
        loop.add_reader(fd, [&] { ++calls; });
        a.close();
        for (int i = 0; i < 5; ++i) one_pass(loop);
        if (kind == "epoll") {
            REQUIRE(calls == 0);  // the kernel forgot it: nothing to report
            REQUIRE(reports.empty());
        } else {
            REQUIRE(calls == 1);  // once, so that a waiter meets EBADF; never spun on
            REQUIRE(count_reports(reports, "fd " + std::to_string(fd) + " was closed while the loop still watched it") ==
                    1);
        }
        REQUIRE(loop.remove_reader(fd));
        REQUIRE(loop.selector().get_map().count(fd) == 0);
    }
}

namespace {

// Tasks that keep the ready queue busy: each yields (sleep(0)) until told to stop.
aio::Coroutine<> spinner(long* passes, const bool* stop) {
    while (!*stop) {
        ++*passes;
        co_await aio::sleep(0);
    }
}

// Waits on a socket (registered with the selector) while the spinners run; notes how many
// spinner steps had run when it got its byte.
aio::Coroutine<> waiting_reader(aio::Socket* a, const long* passes, long* done_at) {
    std::string got = co_await aio::sock_recv(*a, 1);
    REQUIRE(got == "x");
    *done_at = *passes;
}

// A reader waits; the spinners spin; once they have run `at` steps, a byte is sent. Returns
// how many spinner steps ran between the send and the reader's wakeup.
aio::Coroutine<long> fairness_scenario(int spinners, long at) {
    auto [a, b] = aio::socketpair();
    long passes = 0, done_at = -1;
    bool stop = false;
    auto reader = aio::create_task(waiting_reader(&a, &passes, &done_at));
    std::vector<aio::Ref<aio::Task<>>> tasks;
    for (int i = 0; i < spinners; ++i) tasks.push_back(aio::create_task(spinner(&passes, &stop)));
    while (passes < at) co_await aio::sleep(0);
    REQUIRE(done_at == -1);  // still waiting: the byte is not there yet
    send_byte(b);
    const long sent_at = passes;
    co_await reader;
    stop = true;
    for (auto& t : tasks) co_await t;
    co_return done_at - sent_at;
}

// Only yields, n times: a busy ready queue and no I/O at all.
aio::Coroutine<> yield_n(long n) {
    for (long i = 0; i < n; ++i) co_await aio::sleep(0);
}

}  // namespace

NET_TEST_CASE("fairness: a socket that becomes readable while tasks keep yielding is serviced within a bound",
              "[stage4]") {
    // Without any poll while the queue is busy, the read would wait until the spinners
    // stop, i.e. for ever (run_on's time limit would fail the test). With a poll every
    // kCallbacksPerPoll callbacks, the reader's callback is queued within that many
    // callbacks, and its task resumes a pass or two later.
    const long bound = long(aio::SelectorEventLoop::kCallbacksPerPoll) + 4 * 8;
    for (const std::string& kind : selector_kinds()) {
        for (int spinners : {1, 8}) {
            INFO("selector " << kind << ", " << spinners << " spinning tasks");
            long waited = run_on(kind, fairness_scenario(spinners, 1000));
            REQUIRE(waited <= bound);
        }
    }
}

NET_TEST_CASE("fairness: while callbacks keep the queue busy, the selector is polled once per kCallbacksPerPoll",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        int selects = 0;
        auto factory = [&] {
            return std::unique_ptr<aio::EventLoop>(
                new aio::SelectorEventLoop(std::make_unique<CountingSelector>(aio::make_selector(kind), &selects)));
        };
        const long n = 6400;  // one task: one callback per pass
        aio::run(yield_n(n), factory);
        const long expected = n / long(aio::SelectorEventLoop::kCallbacksPerPoll);
        REQUIRE(selects >= expected / 2);  // it does poll while busy
        REQUIRE(selects <= expected + 20);  // but far from once per pass (6400)
    }
}
