// Stage 2 tests: the timer heap and handles. Timers fire in (deadline, scheduling order);
// zero and negative delays mean "on the next pass"; a cancelled handle never runs; the heap
// sheds cancelled timers by CPython's rule; and waiting for a timer costs no CPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// A loop that counts its waits and remembers the timeouts it was given: select() is the
// seam stage 4 overrides, so a test may override it too.
class CountingLoop : public aio::EventLoop {
public:
    std::vector<std::optional<double>> timeouts;

protected:
    void select(std::optional<double> timeout) override {
        timeouts.push_back(timeout);
        aio::EventLoop::select(timeout);
    }
};

}  // namespace

TEST_CASE("timers with the same deadline fire in the order they were scheduled", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<int> order;
    const double soon = loop.time() + 0.01;
    const double later = soon + 0.005;
    // Interleave two deadlines: the heap is not a stable sort, only the sequence number
    // keeps equal deadlines in call order.
    for (int i = 0; i < 200; ++i) loop.call_at(i % 2 ? later : soon, [&order, i] { order.push_back(i); });
    loop.call_at(later, [&] { loop.stop(); });
    loop.run_forever();

    REQUIRE(order.size() == 200);
    std::vector<int> expected;
    for (int i = 0; i < 200; i += 2) expected.push_back(i);
    for (int i = 1; i < 200; i += 2) expected.push_back(i);
    REQUIRE(order == expected);
}

TEST_CASE("zero and negative delays run on the next pass, earliest deadline first", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    loop.call_later(0.0, [&] { log.push_back("delay 0"); });
    loop.call_later(-1.0, [&] { log.push_back("delay -1"); });
    loop.call_at(loop.time() - 5.0, [&] { log.push_back("5 s in the past"); });
    loop.call_soon([&] { log.push_back("call_soon"); });

    loop.run_once();  // one pass, no waiting: everything is already due
    // What was ready before the pass runs first; then the due timers, by deadline.
    REQUIRE(log == Log{"call_soon", "5 s in the past", "delay -1", "delay 0"});
    REQUIRE(loop.timer_count() == 0);

    SECTION("a lone zero-delay timer needs no other work to be picked up") {
        bool ran = false;
        loop.call_later(0.0, [&] { ran = true; });
        loop.run_once();
        REQUIRE(ran);
    }
}

TEST_CASE("a handle cancelled before it runs never runs", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto soon = loop.call_soon([&] { log.push_back("call_soon"); });
    auto zero = loop.call_later(0.0, [&] { log.push_back("call_later 0"); });
    auto later = loop.call_later(0.01, [&] { log.push_back("call_later 0.01"); });
    auto at = loop.call_at(loop.time() + 0.02, [&] { log.push_back("call_at"); });
    loop.call_later(0.04, [&] { loop.stop(); });
    for (auto* h : {static_cast<aio::Handle*>(soon.get()), static_cast<aio::Handle*>(zero.get()),
                    static_cast<aio::Handle*>(later.get()), static_cast<aio::Handle*>(at.get())}) {
        REQUIRE_FALSE(h->cancelled());
        h->cancel();
        REQUIRE(h->cancelled());
    }
    loop.run_forever();
    REQUIRE(log.empty());
    REQUIRE(loop.timer_count() == 0);
}

TEST_CASE("a handle cancelled by an earlier callback of the same pass does not run", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    aio::Ref<aio::Handle> victim;
    aio::Ref<aio::TimerHandle> due_timer;
    loop.call_soon([&] {
        log.push_back("canceller");
        victim->cancel();
        due_timer->cancel();  // already moved from the heap to the ready queue
    });
    victim = loop.call_soon([&] { log.push_back("victim"); });
    due_timer = loop.call_later(-1.0, [&] { log.push_back("due timer"); });
    loop.call_soon([&] { log.push_back("bystander"); });
    loop.run_once();
    REQUIRE(log == Log{"canceller", "bystander"});
}

TEST_CASE("cancelling a handle that already ran, or cancelling twice, is harmless", "[stage2]") {
    TEST_LOOP(loop);
    int soon_runs = 0, timer_runs = 0;
    auto soon = loop.call_soon([&] { ++soon_runs; });
    auto timer = loop.call_later(0.0, [&] { ++timer_runs; });
    loop.run_once();
    REQUIRE(soon_runs == 1);
    REQUIRE(timer_runs == 1);

    soon->cancel();
    soon->cancel();
    timer->cancel();
    timer->cancel();
    REQUIRE(soon->cancelled());
    REQUIRE(timer->cancelled());

    // Nor was the loop's count of cancelled timers. 51 of 102 timers cancelled is exactly
    // half, which the clean-up rule leaves alone; one stray count (from the cancels above, or
    // from cancelling a pending timer twice) would tip it over and rebuild the heap.
    std::vector<aio::Ref<aio::TimerHandle>> handles;
    for (int i = 0; i < 102; ++i) handles.push_back(loop.call_later(100.0 + i, [] {}));
    for (int i = 1; i <= 51; ++i) handles[i]->cancel();
    handles[1]->cancel();
    one_pass(loop);
    REQUIRE(loop.timer_count() == 102);
    REQUIRE(soon_runs == 1);
    REQUIRE(timer_runs == 1);
}

TEST_CASE("a timer handle may outlive its loop and be cancelled afterwards", "[stage2]") {
    aio::Ref<aio::TimerHandle> h;
    {
        TEST_LOOP(loop);
        h = loop.call_later(10.0, [] {});
    }
    REQUIRE_FALSE(h->cancelled());
    h->cancel();  // the loop is gone: this must not touch it (ASan checks)
    REQUIRE(h->cancelled());
}

TEST_CASE("the timer heap drops its cancelled timers by CPython's rule", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<aio::Ref<aio::TimerHandle>> handles;
    auto schedule = [&](int n) {
        for (int i = 0; i < n; ++i) handles.push_back(loop.call_later(1000.0 + i, [] {}));
    };
    // The earliest timer (index 0) stays live, so the lazy "pop cancelled timers off the top"
    // removes nothing: only the rebuild can shrink the heap.
    auto cancel_all_but_every = [&](int k) {
        for (std::size_t i = 0; i < handles.size(); ++i)
            if (i % k != 0) handles[i]->cancel();
    };

    SECTION("more than 100 timers, more than half cancelled: rebuilt") {
        schedule(1000);
        cancel_all_but_every(10);  // 900 of 1000
        REQUIRE(loop.timer_count() == 1000);
        one_pass(loop);
        REQUIRE(loop.timer_count() == 100);

        // The count of cancelled timers was reset with the rebuild: cancelling the rest
        // empties the heap lazily, from the top.
        for (std::size_t i = 0; i < handles.size(); i += 10) handles[i]->cancel();
        one_pass(loop);
        REQUIRE(loop.timer_count() == 0);
    }
    SECTION("exactly half cancelled: left alone") {
        schedule(1000);
        cancel_all_but_every(2);  // 500 of 1000
        one_pass(loop);
        REQUIRE(loop.timer_count() == 1000);
    }
    SECTION("100 timers, 99 cancelled: too few to bother") {
        schedule(100);
        for (int i = 1; i < 100; ++i) handles[i]->cancel();
        one_pass(loop);
        REQUIRE(loop.timer_count() == 100);
    }
    SECTION("101 timers, 100 cancelled: rebuilt") {
        schedule(101);
        for (int i = 1; i < 101; ++i) handles[i]->cancel();
        one_pass(loop);
        REQUIRE(loop.timer_count() == 1);
    }
    SECTION("cancelled timers at the top are popped on the next pass") {
        schedule(10);
        for (int i = 0; i < 5; ++i) handles[i]->cancel();
        one_pass(loop);
        REQUIRE(loop.timer_count() == 5);
    }
}

TEST_CASE("100,000 timers with random deadlines all fire, in deadline order", "[stage2]") {
    TEST_LOOP(loop);
    constexpr int n = 100'000;
    std::mt19937 rng(20240601);
    // Deadlines on a 100 us grid within 50 ms: random order, and many ties.
    std::uniform_int_distribution<int> tick(0, 500);
    struct Fired {
        double when;
        int seq;
    };
    std::vector<Fired> fired;
    fired.reserve(n);
    const double base = loop.time() + 0.005;
    for (int i = 0; i < n; ++i) {
        const double when = base + tick(rng) * 1e-4;
        loop.call_at(when, [&fired, &loop, when, i] {
            fired.push_back({when, i});
            if (fired.size() == n) loop.stop();
        });
    }
    REQUIRE(loop.timer_count() == n);
    loop.run_forever();

    REQUIRE(fired.size() == n);
    REQUIRE(loop.timer_count() == 0);
    std::size_t out_of_order = 0;
    for (std::size_t i = 1; i < fired.size(); ++i) {
        const auto& a = fired[i - 1];
        const auto& b = fired[i];
        if (a.when > b.when || (a.when == b.when && a.seq > b.seq)) ++out_of_order;
    }
    REQUIRE(out_of_order == 0);
}

TEST_CASE("waiting for a timer sleeps instead of spinning", "[stage2]") {
    CountingLoop loop;
    loop.call_later(0.3, [&] { loop.stop(); });
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t cpu0 = std::clock();
    loop.run_forever();
    const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
    const double wall = seconds_since(t0);

    REQUIRE(wall >= 0.29);
    REQUIRE(wall < 2.0);
    REQUIRE(cpu < 0.03);
    // One long wait (maybe a short top-up if the clock woke us a hair early), not a poll.
    REQUIRE(loop.timeouts.size() <= 5);
    REQUIRE(loop.timeouts.front().has_value());
    REQUIRE(*loop.timeouts.front() > 0.25);
    REQUIRE(*loop.timeouts.front() <= 0.3);
}

TEST_CASE("select() is not allowed to wait when a callback is ready", "[stage2]") {
    CountingLoop loop;
    loop.call_soon([] {});
    loop.call_later(5.0, [] {});
    loop.run_once();
    REQUIRE(loop.timeouts.size() == 1);
    REQUIRE(loop.timeouts[0] == std::optional<double>(0.0));
}
