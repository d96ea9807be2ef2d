// Stage 2 tests: the one door into the loop from other threads. call_soon_threadsafe queues
// a callback and wakes a loop that is asleep in select(), however far away its next timer is;
// the callback then runs on the loop's own thread.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <ctime>
#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

class CountingLoop : public aio::EventLoop {
public:
    int selects = 0;

protected:
    void select(std::optional<double> timeout) override {
        ++selects;
        aio::EventLoop::select(timeout);
    }
};

// From another thread, after `delay`, ask the loop to stop (the callback runs on the loop's
// thread and records which thread that was).
std::thread stop_from_another_thread(aio::EventLoop& loop, std::chrono::milliseconds delay,
                                     std::thread::id* ran_on) {
    return std::thread([&loop, delay, ran_on] {
        std::this_thread::sleep_for(delay);
        loop.call_soon_threadsafe(
            [&loop, ran_on] {
                *ran_on = std::this_thread::get_id();
                loop.stop();
            },
            "stop_from_another_thread");
    });
}

}  // namespace

TEST_CASE("call_soon_threadsafe wakes a loop sleeping on a timer 10 s away", "[stage2][threads]") {
    TEST_LOOP(loop);
    bool far_timer_fired = false;
    loop.call_later(10.0, [&] { far_timer_fired = true; });
    std::thread::id ran_on;
    const auto t0 = std::chrono::steady_clock::now();
    std::thread other = stop_from_another_thread(loop, std::chrono::milliseconds(50), &ran_on);
    loop.run_forever();
    const double elapsed = seconds_since(t0);
    other.join();

    REQUIRE(elapsed < 1.0);
    REQUIRE(ran_on == std::this_thread::get_id());
    REQUIRE_FALSE(far_timer_fired);
    REQUIRE(loop.timer_count() == 1);
}

TEST_CASE("call_soon_threadsafe wakes a loop that has nothing scheduled at all", "[stage2][threads]") {
    TEST_LOOP(loop);
    std::thread::id ran_on;
    const auto t0 = std::chrono::steady_clock::now();
    std::thread other = stop_from_another_thread(loop, std::chrono::milliseconds(50), &ran_on);
    loop.run_forever();  // waits without a timeout until the other thread calls
    const double elapsed = seconds_since(t0);
    other.join();
    REQUIRE(elapsed < 1.0);
    REQUIRE(ran_on == std::this_thread::get_id());
}

TEST_CASE("a timer centuries away does not make the wait spin", "[stage2][threads]") {
    // The wait is capped (asyncio caps it at a day), so a far deadline can neither overflow
    // the clock arithmetic nor turn into a zero timeout and a busy loop.
    CountingLoop loop;
    const double far = GENERATE(1e12, std::numeric_limits<double>::infinity());
    loop.call_later(far, [] {});
    std::thread::id ran_on;
    const std::clock_t cpu0 = std::clock();
    std::thread other = stop_from_another_thread(loop, std::chrono::milliseconds(200), &ran_on);
    loop.run_forever();
    other.join();
    const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
    REQUIRE(cpu < 0.03);
    REQUIRE(loop.selects <= 5);
}

TEST_CASE("callbacks from several threads all run, each thread's in its own order", "[stage2][threads]") {
    TEST_LOOP(loop);
    constexpr int threads = 4, per_thread = 1000;
    std::vector<std::vector<int>> seen(threads);
    int total = 0;
    bool watchdog_fired = false;
    loop.call_later(10.0, [&] {
        watchdog_fired = true;
        loop.stop();
    });
    std::vector<std::thread> producers;
    for (int t = 0; t < threads; ++t) {
        producers.emplace_back([&loop, &seen, &total, t] {
            for (int i = 0; i < per_thread; ++i) {
                loop.call_soon_threadsafe([&loop, &seen, &total, t, i] {
                    seen[t].push_back(i);
                    if (++total == threads * per_thread) loop.stop();
                });
            }
        });
    }
    loop.run_forever();
    for (auto& p : producers) p.join();

    REQUIRE_FALSE(watchdog_fired);
    REQUIRE(total == threads * per_thread);
    for (int t = 0; t < threads; ++t) {
        REQUIRE(seen[t].size() == std::size_t(per_thread));
        for (int i = 0; i < per_thread; ++i) REQUIRE(seen[t][i] == i);
    }
}

TEST_CASE("call_soon_threadsafe is done with the loop once its callback can run", "[stage2][threads]") {
    // The other thread's callback stops the loop, and the loop's owner destroys it at once,
    // before joining that thread. If call_soon_threadsafe still touched the loop after
    // queueing the callback (to wake it), that would be a use after free: a race that
    // AddressSanitizer or ThreadSanitizer catches within a few hundred rounds. (300: each
    // round waits for a thread to be scheduled beside a spinning loop, ~14 ms on a loaded
    // 2-core machine, and this test runs once per loop: four times in make test.)
    struct Busy {  // keeps the loop out of select(), so it picks the callback up at once
        aio::EventLoop* loop;
        void operator()() const { loop->call_soon(*this, "busy"); }
    };
    for (int round = 0; round < 300; ++round) {
        auto loop = aio::new_event_loop();
        aio::EventLoop* raw = loop.get();
        raw->call_soon(Busy{raw}, "busy");
        std::thread other([raw] { raw->call_soon_threadsafe([raw] { raw->stop(); }, "stop"); });
        loop->run_forever();
        loop.reset();
        other.join();
    }
    SUCCEED("300 rounds without touching a destroyed loop");
}

TEST_CASE("call_soon_threadsafe on a closed loop raises, from any thread", "[stage2][threads]") {
    TEST_LOOP(loop);
    loop.close();
    REQUIRE_THROWS_AS(loop.call_soon_threadsafe([] {}), aio::RuntimeError);
    bool raised = false;
    std::thread other([&] {
        try {
            loop.call_soon_threadsafe([] {});
        } catch (const aio::RuntimeError&) {
            raised = true;
        }
    });
    other.join();
    REQUIRE(raised);
}
