// Stage 3 tests: run()'s loop factory and its Ctrl-C handling. run(main, loop_factory)
// runs main on the loop the factory makes (3.12's asyncio.run(..., loop_factory=)), and
// closes and destroys it before returning. While main runs, a SIGINT (given a loop that can
// watch signals, and SIGINT at its default) cancels main's task, so its clean-up runs, and
// run() raises KeyboardInterrupt, as asyncio.Runner does. Signals are fired by hand here,
// through a loop that keeps its signal callbacks; stage 4 tests the real thing.
#include <catch2/catch.hpp>

#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// A loop that counts its passes and "watches" signals by keeping their callbacks.
class SignalLoop final : public aio::EventLoop {
public:
    explicit SignalLoop(Log* log) : log_(log) { log_->push_back("made"); }
    ~SignalLoop() override {
        log_->push_back(is_closed() ? "destroyed, closed" : "destroyed, open");
        instance = nullptr;
    }
    void add_signal_handler(int sig, std::function<void()> callback) override {
        log_->push_back("add_signal_handler " + std::to_string(sig));
        signals[sig] = std::move(callback);
    }
    bool remove_signal_handler(int sig) override {
        log_->push_back("remove_signal_handler " + std::to_string(sig));
        return signals.erase(sig) > 0;
    }
    // What the real loop does when the signal arrives: run the callback as a callback.
    void deliver(int sig) {
        if (auto it = signals.find(sig); it != signals.end()) call_soon(it->second);
    }
    std::map<int, std::function<void()>> signals;
    static SignalLoop* instance;

private:
    Log* log_;
};
SignalLoop* SignalLoop::instance = nullptr;

struct SignalLoopFactory {
    Log* log;
    std::unique_ptr<aio::EventLoop> operator()() const {
        auto loop = std::make_unique<SignalLoop>(log);
        SignalLoop::instance = loop.get();
        return loop;
    }
};

// Sets SIGINT's disposition for the scope of a test, and restores it (Catch2 installs its
// own SIGINT handler while a test runs, which run() must respect).
class SigintDisposition {
public:
    explicit SigintDisposition(void (*handler)(int)) {
        struct sigaction action {};
        action.sa_handler = handler;
        sigemptyset(&action.sa_mask);
        ::sigaction(SIGINT, &action, &saved_);
    }
    ~SigintDisposition() { ::sigaction(SIGINT, &saved_, nullptr); }

private:
    struct sigaction saved_ {};
};

aio::Coroutine<int> answer() { co_return 42; }

aio::Coroutine<bool> on_signal_loop() { co_return dynamic_cast<SignalLoop*>(&aio::get_running_loop()) != nullptr; }

// Waits a long time; the first SIGINT should cut that short. Logs its clean-up.
aio::Coroutine<int> long_wait(Log* log, bool swallow) {
    try {
        co_await aio::sleep(30.0);
    } catch (const aio::CancelledError&) {
        log->push_back("main cancelled");
        if (!swallow) throw;
    }
    co_return 7;
}

// Fires SIGINT once main has started waiting.
aio::Coroutine<> press_ctrl_c() {
    co_await aio::sleep(0);
    SignalLoop::instance->deliver(SIGINT);
}

aio::Coroutine<int> interrupted_main(Log* log, bool swallow) {
    auto ctrl_c = aio::create_task(press_ctrl_c());
    int r = co_await long_wait(log, swallow);
    co_await ctrl_c;
    co_return r;
}

std::unique_ptr<aio::EventLoop> make_plain_loop() { return std::make_unique<aio::EventLoop>(); }

// A factory for set_event_loop_factory (a plain function), logging to one Log.
Log signal_loops_log;
std::unique_ptr<aio::EventLoop> make_signal_loop() { return SignalLoopFactory{&signal_loops_log}(); }

}  // namespace

TEST_CASE("run(main, loop_factory) runs main on the factory's loop, then closes and destroys it", "[stage3]") {
    Log log;
    SigintDisposition sigint(SIG_IGN);  // (so no signal handler is involved here)
    REQUIRE(aio::run(on_signal_loop(), SignalLoopFactory{&log}));
    REQUIRE(log == Log{"made", "destroyed, closed"});
}

TEST_CASE("run(main) without a factory runs main on new_event_loop()'s loop, then closes and destroys it",
          "[stage3]") {
    SigintDisposition sigint(SIG_IGN);
    signal_loops_log.clear();
    {
        ScopedLoopFactory signal_loops(make_signal_loop);
        REQUIRE(aio::run(on_signal_loop()));
        REQUIRE(signal_loops_log == Log{"made", "destroyed, closed"});
    }
    REQUIRE_FALSE(aio::run(on_signal_loop()));  // the factory this binary chose is back
    REQUIRE(signal_loops_log.size() == 2);
}

TEST_CASE("run(main, loop_factory): a function as the factory is a factory, not the debug flag", "[stage3]") {
    // A function converts to bool; run(main, bool debug) must not win the overload.
    REQUIRE(aio::run(answer(), make_plain_loop) == 42);
    REQUIRE(aio::run(answer(), &make_plain_loop, true) == 42);
    REQUIRE(aio::run(answer(), true) == 42);
}

TEST_CASE("run(main, loop_factory): a factory that returns no loop raises std::invalid_argument", "[stage3]") {
    auto no_loop = [] { return std::unique_ptr<aio::EventLoop>(); };
    REQUIRE_THROWS_AS(aio::run(answer(), no_loop), std::invalid_argument);
}

TEST_CASE("run(): SIGINT cancels the main task, its clean-up runs, and run() raises KeyboardInterrupt",
          "[stage3]") {
    Log log;
    SigintDisposition sigint(SIG_DFL);
    REQUIRE_THROWS_AS(aio::run(interrupted_main(&log, false), SignalLoopFactory{&log}), aio::KeyboardInterrupt);
    // The handler goes as soon as it has run (a second Ctrl-C would end the process), before
    // main's clean-up runs, on a later pass.
    REQUIRE(log == Log{"made", "add_signal_handler " + std::to_string(SIGINT),
                       "remove_signal_handler " + std::to_string(SIGINT), "main cancelled", "destroyed, closed"});
}

TEST_CASE("run(): a main task that handles the SIGINT's cancellation and returns gives its result", "[stage3]") {
    Log log;
    SigintDisposition sigint(SIG_DFL);
    REQUIRE(aio::run(interrupted_main(&log, true), SignalLoopFactory{&log}) == 7);
    REQUIRE(log.at(3) == "main cancelled");
}

TEST_CASE("run(): the SIGINT handler is removed when main ends, and a second SIGINT is left to its default",
          "[stage3]") {
    Log log;
    SigintDisposition sigint(SIG_DFL);
    REQUIRE(aio::run(answer(), SignalLoopFactory{&log}) == 42);
    REQUIRE(log == Log{"made", "add_signal_handler " + std::to_string(SIGINT),
                       "remove_signal_handler " + std::to_string(SIGINT), "destroyed, closed"});
}

TEST_CASE("run(): a SIGINT that someone else handles (or ignores) is left alone", "[stage3]") {
    Log log;
    SigintDisposition sigint(SIG_IGN);
    REQUIRE(aio::run(answer(), SignalLoopFactory{&log}) == 42);
    REQUIRE(log == Log{"made", "destroyed, closed"});
}

TEST_CASE("run(): on a loop that cannot watch signals, Ctrl-C keeps its default and run() works", "[stage3]") {
    SigintDisposition sigint(SIG_DFL);
    REQUIRE(aio::run(answer(), make_plain_loop) == 42);
    struct sigaction now {};
    ::sigaction(SIGINT, nullptr, &now);
    REQUIRE(now.sa_handler == SIG_DFL);
}
