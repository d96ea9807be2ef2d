// Stage 2 tests: the EventLoop's ready queue and its life cycle. call_soon is FIFO; one pass
// runs what was ready when it began; run_forever/stop/close follow asyncio's rules; an
// exception in a callback goes to the exception handler and the loop carries on; debug mode
// reports slow callbacks; closing frees whatever was still scheduled.
#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// Counts live instances (constructed, copied or moved, minus destroyed), to see whether
// the callables the loop stores are freed.
struct Probe {
    static inline int live = 0;
    Probe() { ++live; }
    Probe(const Probe&) { ++live; }
    Probe(Probe&&) noexcept { ++live; }
    Probe& operator=(const Probe&) = default;
    ~Probe() { --live; }
};

}  // namespace

TEST_CASE("call_soon runs callbacks in the order they were scheduled", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<int> order;
    for (int i = 0; i < 100; ++i) loop.call_soon([&order, i] { order.push_back(i); });
    REQUIRE(loop.ready_count() == 100);
    loop.run_once();
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i) REQUIRE(order[i] == i);
    REQUIRE(loop.ready_count() == 0);
}

TEST_CASE("a callback scheduled during a pass runs on the next pass", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    loop.call_soon([&] {
        log.push_back("a");
        loop.call_soon([&] { log.push_back("c (scheduled by a)"); });
    });
    loop.call_soon([&] { log.push_back("b"); });

    loop.run_once();
    REQUIRE(log == Log{"a", "b"});
    REQUIRE(loop.ready_count() == 1);

    loop.run_once();
    REQUIRE(log == Log{"a", "b", "c (scheduled by a)"});
    REQUIRE(loop.ready_count() == 0);
}

TEST_CASE("a callback that keeps rescheduling itself cannot starve a timer", "[stage2]") {
    TEST_LOOP(loop);
    int spins = 0;
    // Each run schedules the next one: with "run until the queue is empty" passes, this
    // would never let the loop reach its timers.
    struct Spinner {
        aio::EventLoop* loop;
        int* spins;
        void operator()() const {
            ++*spins;
            loop->call_soon(*this, "spinner");
        }
    };
    loop.call_soon(Spinner{&loop, &spins}, "spinner");
    bool timer_fired = false;
    loop.call_later(0.02, [&] {
        timer_fired = true;
        loop.stop();
    });
    loop.run_forever();
    REQUIRE(timer_fired);
    REQUIRE(spins > 1);
}

TEST_CASE("stop() from a callback ends run_forever after the current pass", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    loop.call_soon([&] {
        log.push_back("a");
        loop.call_soon([&] { log.push_back("next pass"); });
    });
    loop.call_soon([&] {
        log.push_back("stop");
        loop.stop();
    });
    loop.call_soon([&] { log.push_back("b (already queued: same pass)"); });
    loop.run_forever();

    REQUIRE(log == Log{"a", "stop", "b (already queued: same pass)"});
    REQUIRE_FALSE(loop.is_running());
    REQUIRE(loop.ready_count() == 1);  // "next pass" waits, it was not lost

    one_pass(loop);
    REQUIRE(log.back() == "next pass");
}

TEST_CASE("stop() before run_forever makes it run exactly one pass", "[stage2]") {
    TEST_LOOP(loop);
    int passes = 0;
    struct EveryPass {
        aio::EventLoop* loop;
        int* passes;
        void operator()() const {
            ++*passes;
            loop->call_soon(*this, "every pass");
        }
    };
    loop.call_soon(EveryPass{&loop, &passes}, "every pass");
    bool timer_fired = false;
    loop.call_later(0.05, [&] { timer_fired = true; });

    loop.stop();
    loop.run_forever();
    REQUIRE(passes == 1);
    REQUIRE_FALSE(timer_fired);

    SECTION("an empty loop does not block either") {
        TEST_LOOP(empty);
        auto t0 = std::chrono::steady_clock::now();
        empty.stop();
        empty.run_forever();
        REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
    }
    SECTION("the stop request is used up: the next run_forever runs until the next stop()") {
        loop.call_later(0.06, [&] { loop.stop(); });
        loop.run_forever();
        REQUIRE(timer_fired);
        REQUIRE(passes > 2);
    }
}

TEST_CASE("is_running() is true inside a callback, false before and after", "[stage2]") {
    TEST_LOOP(loop);
    REQUIRE_FALSE(loop.is_running());
    REQUIRE(aio::running_loop_or_null() == nullptr);
    REQUIRE_THROWS_AS(aio::get_running_loop(), aio::RuntimeError);

    bool running_inside = false;
    aio::EventLoop* current = nullptr;
    loop.call_soon([&] {
        running_inside = loop.is_running();
        current = &aio::get_running_loop();
    });
    one_pass(loop);

    REQUIRE(running_inside);
    REQUIRE(current == &loop);
    REQUIRE_FALSE(loop.is_running());
    REQUIRE(aio::running_loop_or_null() == nullptr);
}

TEST_CASE("running a loop from one of its own callbacks raises RuntimeError", "[stage2]") {
    TEST_LOOP(loop);
    std::string error;
    loop.call_soon([&] {
        try {
            loop.run_forever();
        } catch (const aio::RuntimeError& e) {
            error = e.what();
        }
    });
    int later = 0;
    loop.call_soon([&] { ++later; });
    one_pass(loop);
    REQUIRE_THAT(error, Catch::Matchers::Contains("already running"));
    REQUIRE(later == 1);  // the failed nested run did not disturb the pass
    REQUIRE_FALSE(loop.is_running());
}

TEST_CASE("running a second loop inside the first one's callback raises RuntimeError", "[stage2]") {
    TEST_LOOP(outer);
    TEST_LOOP(inner);
    std::string error;
    bool inner_callback_ran = false;
    inner.call_soon([&] { inner_callback_ran = true; });
    outer.call_soon([&] {
        try {
            inner.stop();
            inner.run_forever();
        } catch (const aio::RuntimeError& e) {
            error = e.what();
        }
    });
    one_pass(outer);
    REQUIRE_THAT(error, Catch::Matchers::Contains("another loop is running"));
    REQUIRE_FALSE(inner_callback_ran);
    REQUIRE_FALSE(inner.is_running());
}

TEST_CASE("a closed loop refuses to run or to schedule", "[stage2]") {
    TEST_LOOP(loop);
    REQUIRE_FALSE(loop.is_closed());
    loop.close();
    REQUIRE(loop.is_closed());
    REQUIRE_THROWS_AS(loop.call_soon([] {}), aio::RuntimeError);
    REQUIRE_THROWS_AS(loop.call_later(0.0, [] {}), aio::RuntimeError);
    REQUIRE_THROWS_AS(loop.call_at(loop.time(), [] {}), aio::RuntimeError);
    REQUIRE_THROWS_AS(loop.call_soon_threadsafe([] {}), aio::RuntimeError);
    REQUIRE_THROWS_WITH(loop.run_forever(), Catch::Matchers::Contains("closed"));
    REQUIRE(loop.ready_count() == 0);
    REQUIRE(loop.timer_count() == 0);
    REQUIRE_NOTHROW(loop.close());  // closing twice is harmless
    REQUIRE(loop.is_closed());
}

TEST_CASE("close() on a running loop raises and leaves the loop usable", "[stage2]") {
    TEST_LOOP(loop);
    std::string error;
    loop.call_soon([&] {
        try {
            loop.close();
        } catch (const aio::RuntimeError& e) {
            error = e.what();
        }
    });
    one_pass(loop);
    REQUIRE_THAT(error, Catch::Matchers::Contains("running"));
    REQUIRE_FALSE(loop.is_closed());
    bool ran = false;
    loop.call_soon([&] { ran = true; });
    one_pass(loop);
    REQUIRE(ran);
}

TEST_CASE("an exception in a callback reaches the exception handler; later callbacks still run", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<std::string> messages;
    std::vector<int> ids;
    aio::EventLoop* handler_loop = nullptr;
    loop.set_exception_handler([&](aio::EventLoop& l, const aio::ExceptionContext& context) {
        handler_loop = &l;
        messages.push_back(context.message);
        try {
            std::rethrow_exception(context.exception);
        } catch (const Marked& e) {
            ids.push_back(e.id);
        }
    });
    Log log;
    loop.call_soon([] { throw Marked(7); }, "exploding_callback");
    loop.call_soon([&] { log.push_back("after the first"); });
    loop.call_later(0.0, [] { throw Marked(8); }, "exploding_timer");
    loop.call_later(0.01, [&] {
        log.push_back("timer after both");
        loop.stop();
    });
    loop.run_forever();

    REQUIRE(handler_loop == &loop);
    REQUIRE(messages.size() == 2);
    REQUIRE_THAT(messages[0], Catch::Matchers::Contains("exploding_callback"));
    REQUIRE_THAT(messages[1], Catch::Matchers::Contains("exploding_timer"));
    REQUIRE(ids == std::vector<int>{7, 8});
    REQUIRE(log == Log{"after the first", "timer after both"});
}

TEST_CASE("the default exception handler logs 'Exception in callback <name>: <what>'", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<std::string> lines;
    loop.set_logger([&](std::string_view line) { lines.emplace_back(line); });
    loop.call_soon([] { throw std::runtime_error("the disk is on fire"); }, "save_file");
    loop.call_soon([] { throw 42; }, "throws_an_int");
    loop.call_soon([] { throw std::logic_error("no name given"); });
    one_pass(loop);

    REQUIRE(lines.size() == 3);
    REQUIRE(lines[0] == "Exception in callback save_file: the disk is on fire");
    REQUIRE(lines[1] == "Exception in callback throws_an_int: (an exception not derived from std::exception)");
    // Without a name, the callable's type names it: something, never an empty string.
    REQUIRE_THAT(lines[2], Catch::Matchers::StartsWith("Exception in callback "));
    REQUIRE_THAT(lines[2], Catch::Matchers::EndsWith(": no name given"));
    REQUIRE(lines[2].size() > std::string("Exception in callback : no name given").size());
}

TEST_CASE("an exception handler that throws does not stop the loop; both errors are logged", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<std::string> lines;
    loop.set_logger([&](std::string_view line) { lines.emplace_back(line); });
    loop.set_exception_handler(
        [](aio::EventLoop&, const aio::ExceptionContext&) { throw std::logic_error("the handler is broken too"); });
    bool later_ran = false;
    loop.call_soon([] { throw std::runtime_error("boom"); }, "first");
    loop.call_soon([&] { later_ran = true; });
    one_pass(loop);

    REQUIRE(later_ran);
    REQUIRE(lines.size() == 2);
    REQUIRE_THAT(lines[0], Catch::Matchers::Contains("exception handler") &&
                               Catch::Matchers::Contains("the handler is broken too"));
    REQUIRE(lines[1] == "Exception in callback first: boom");

    SECTION("an empty handler restores the default") {
        lines.clear();
        loop.set_exception_handler(nullptr);
        loop.call_soon([] { throw std::runtime_error("again"); }, "second");
        one_pass(loop);
        REQUIRE(lines == std::vector<std::string>{"Exception in callback second: again"});
    }
}

TEST_CASE("debug mode reports a slow callback by name, and only the slow one", "[stage2]") {
    TEST_LOOP(loop);
    std::vector<std::string> lines;
    loop.set_logger([&](std::string_view line) { lines.emplace_back(line); });
    auto slow = [] { std::this_thread::sleep_for(std::chrono::milliseconds(150)); };

    SECTION("debug on") {
        loop.set_debug(true);
        REQUIRE(loop.get_debug());
        loop.call_soon(slow, "slow_callback");
        loop.call_soon([] {}, "fast_callback");
        one_pass(loop);
        REQUIRE(lines.size() == 1);
        REQUIRE_THAT(lines[0], Catch::Matchers::StartsWith("Executing slow_callback took "));
        REQUIRE_THAT(lines[0], Catch::Matchers::EndsWith(" seconds"));
    }
    SECTION("debug off: nothing is measured or reported") {
        REQUIRE_FALSE(loop.get_debug());
        loop.call_soon(slow, "slow_callback");
        one_pass(loop);
        REQUIRE(lines.empty());
    }
}

TEST_CASE("close() frees pending callbacks and timers without running them", "[stage2]") {
    Probe::live = 0;
    int ran = 0;
    {
        TEST_LOOP(loop);
        for (int i = 0; i < 5; ++i) loop.call_soon([p = Probe(), &ran] { (void)p, ++ran; });
        for (int i = 0; i < 5; ++i) loop.call_later(0.001 * i, [p = Probe(), &ran] { (void)p, ++ran; });
        for (int i = 0; i < 5; ++i) loop.call_later(3600, [p = Probe(), &ran] { (void)p, ++ran; });
        loop.call_soon_threadsafe([p = Probe(), &ran] { (void)p, ++ran; });
        // A handle kept by the caller keeps its callback alive, as in asyncio...
        auto kept = loop.call_later(3600, [p = Probe(), &ran] { (void)p, ++ran; });
        REQUIRE(Probe::live == 17);
        REQUIRE(loop.ready_count() == 5);
        REQUIRE(loop.timer_count() == 11);

        loop.close();
        REQUIRE(Probe::live == 1);
        REQUIRE(loop.ready_count() == 0);
        REQUIRE(loop.timer_count() == 0);
        // ...and cancelling it after close is harmless.
        kept->cancel();
        REQUIRE(kept->cancelled());
    }
    REQUIRE(Probe::live == 0);
    REQUIRE(ran == 0);
}

TEST_CASE("destroying a loop without close() frees what it holds", "[stage2]") {
    Probe::live = 0;
    {
        TEST_LOOP(loop);
        loop.call_soon([p = Probe()] { (void)p; });
        loop.call_later(10, [p = Probe()] { (void)p; });
        REQUIRE(Probe::live == 2);
    }
    REQUIRE(Probe::live == 0);
}
