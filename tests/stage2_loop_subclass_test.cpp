// Stage 2 tests: the seams for a loop that waits on file descriptors. close() is virtual, so
// a subclass that owns more than the queues (fds, a selector) frees it however the loop is
// closed, through an EventLoop& too; and add_signal_handler/remove_signal_handler are part
// of the loop's interface, which stage 2's loop cannot offer (NotImplementedError) and a
// subclass may.
#include <catch2/catch.hpp>

#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "stage2_custom_loop/event_loop.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// A loop that owns a resource, freed after the base's close(), as a selector loop frees its
// self-pipe; and that "watches" signals by keeping their callbacks, to fire them by hand.
class OwningLoop final : public aio::EventLoop {
public:
    explicit OwningLoop(Log* log) : log_(log) {}
    ~OwningLoop() override { close(); }
    void close() override {
        if (is_closed()) return;
        aio::EventLoop::close();  // first: the queues may still use what we own
        log_->push_back(std::string("freed, base closed: ") + (is_closed() ? "yes" : "no"));
    }
    void add_signal_handler(int sig, std::function<void()> callback) override { signals[sig] = std::move(callback); }
    bool remove_signal_handler(int sig) override { return signals.erase(sig) > 0; }
    std::map<int, std::function<void()>> signals;

private:
    Log* log_;
};

}  // namespace

TEST_CASE("close() is virtual: a subclass's close runs through an EventLoop&, once, after the base's", "[stage2]") {
    Log log;
    {
        OwningLoop owning(&log);
        aio::EventLoop& loop = owning;
        loop.call_soon([&] { log.push_back("never runs"); });
        loop.close();
        REQUIRE(log == Log{"freed, base closed: yes"});
        loop.close();
        REQUIRE(log.size() == 1);
    }  // the destructor closes again: still once
    REQUIRE(log.size() == 1);
}

TEST_CASE("close() is virtual: destroying a subclass through a std::unique_ptr<EventLoop> frees what it owns",
          "[stage2]") {
    Log log;
    std::unique_ptr<aio::EventLoop> loop = std::make_unique<OwningLoop>(&log);
    loop.reset();
    REQUIRE(log == Log{"freed, base closed: yes"});
}

TEST_CASE("close() is virtual: a subclass's close on a running loop still raises RuntimeError", "[stage2]") {
    Log log;
    OwningLoop owning(&log);
    aio::EventLoop& loop = owning;
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
    REQUIRE(log.empty());
    REQUIRE_FALSE(loop.is_closed());
}

TEST_CASE("add_signal_handler on stage 2's loop raises NotImplementedError, a RuntimeError", "[stage2]") {
    aio::EventLoop loop;  // this class's own answer, whichever class new_event_loop() makes
    bool called = false;
    REQUIRE_THROWS_AS(loop.add_signal_handler(SIGINT, [&] { called = true; }), aio::NotImplementedError);
    REQUIRE_THROWS_AS(loop.remove_signal_handler(SIGINT), aio::RuntimeError);
    try {
        loop.add_signal_handler(SIGTERM, [] {});
        FAIL("no exception");
    } catch (const aio::NotImplementedError& e) {
        REQUIRE(std::string(e.what()).find("cannot watch signals") != std::string::npos);
    }
    REQUIRE_FALSE(called);
}

TEST_CASE("add_signal_handler: a subclass that can watch signals is called through an EventLoop&", "[stage2]") {
    Log log;
    OwningLoop owning(&log);
    aio::EventLoop& loop = owning;
    int calls = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++calls; });
    REQUIRE(owning.signals.count(SIGUSR1) == 1);
    owning.signals[SIGUSR1]();
    REQUIRE(calls == 1);
    REQUIRE(loop.remove_signal_handler(SIGUSR1));
    REQUIRE_FALSE(loop.remove_signal_handler(SIGUSR1));
}
