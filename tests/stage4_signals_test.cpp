// Stage 4 tests: signals on SelectorEventLoop (unix_events.py's add_signal_handler). The C
// handler only writes to the self-pipe; the callback runs later, on the loop, as an
// ordinary callback, and wakes a loop blocked in its selector. Handlers are replaced and
// removed, and removing one restores what the signal did before; one loop at a time may
// watch signals; close() removes them. And run() on this loop turns a real SIGINT into
// cancelling the main task, whose clean-up runs before run() raises KeyboardInterrupt
// (in a child process, so that a failure cannot interrupt the test run).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "tests/fork_test_support.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/net_test_support.hpp"

namespace {

using namespace loop_test_support;
using namespace net_test_support;
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_previous_handler_calls = 0;
void previous_handler(int) { g_previous_handler_calls = g_previous_handler_calls + 1; }

// Installs previous_handler for `sig` for the scope of a test, and restores what was there.
class Disposition {
public:
    Disposition(int sig, void (*handler)(int)) : sig_(sig) {
        struct sigaction action {};
        action.sa_handler = handler;
        sigemptyset(&action.sa_mask);
        ::sigaction(sig, &action, &saved_);
    }
    ~Disposition() { ::sigaction(sig_, &saved_, nullptr); }

private:
    int sig_;
    struct sigaction saved_ {};
};

void (*current_handler(int sig))(int) {
    struct sigaction now {};
    ::sigaction(sig, nullptr, &now);
    return now.sa_handler;
}

}  // namespace

NET_TEST_CASE("add_signal_handler: the callback runs later, on the loop, never inside the C handler", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        Disposition keep(SIGUSR1, previous_handler);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        int calls = 0;
        bool on_loop = false;
        loop.add_signal_handler(SIGUSR1, [&] {
            ++calls;
            on_loop = aio::running_loop_or_null() == &loop;
        });
        REQUIRE(current_handler(SIGUSR1) != previous_handler);
        ::raise(SIGUSR1);  // delivered before raise() returns: the byte is in the pipe now
        REQUIRE(calls == 0);
        one_pass(loop);  // (nothing else is ready, so the pass polls the selector)
        one_pass(loop);
        REQUIRE(calls == 1);
        REQUIRE(on_loop);
        REQUIRE(g_previous_handler_calls == 0);
        ::raise(SIGUSR1);
        ::raise(SIGUSR1);
        one_pass(loop);
        one_pass(loop);
        REQUIRE(calls == 3);  // one callback per signal received
    }
}

NET_TEST_CASE("add_signal_handler: a signal wakes a loop blocked in its selector", "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        Disposition keep(SIGUSR1, previous_handler);
        aio::SelectorEventLoop loop(aio::make_selector(kind));
        bool ran = false;
        loop.add_signal_handler(SIGUSR1, [&] {
            ran = true;
            loop.stop();
        });
        const pthread_t loop_thread = ::pthread_self();
        std::thread sender([loop_thread] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            ::pthread_kill(loop_thread, SIGUSR1);  // the loop's thread is blocked in its wait
        });
        auto limit = loop.call_later(5.0, [&loop] { loop.stop(); });
        auto t0 = Clock::now();
        loop.run_forever();
        sender.join();
        limit->cancel();
        REQUIRE(ran);
        REQUIRE(seconds_since(t0) < 2.0);
    }
}

NET_TEST_CASE("add_signal_handler: replacing, removing (restores the old disposition), and bad signals", "[stage4]") {
    Disposition keep(SIGUSR2, previous_handler);
    aio::SelectorEventLoop loop;
    Log log;
    loop.add_signal_handler(SIGUSR2, [&] { log.push_back("first"); });
    loop.add_signal_handler(SIGUSR2, [&] { log.push_back("second"); });
    ::raise(SIGUSR2);
    one_pass(loop);
    one_pass(loop);
    REQUIRE(log == Log{"second"});

    REQUIRE(loop.remove_signal_handler(SIGUSR2));
    REQUIRE(current_handler(SIGUSR2) == previous_handler);
    REQUIRE_FALSE(loop.remove_signal_handler(SIGUSR2));
    const int before = g_previous_handler_calls;
    ::raise(SIGUSR2);  // the program's own handler again
    one_pass(loop);
    REQUIRE(g_previous_handler_calls == before + 1);
    REQUIRE(log == Log{"second"});

    REQUIRE_THROWS_AS(loop.add_signal_handler(0, [] {}), std::invalid_argument);
    REQUIRE_THROWS_AS(loop.add_signal_handler(100000, [] {}), std::invalid_argument);
    REQUIRE_THROWS_AS(loop.add_signal_handler(SIGKILL, [] {}), aio::RuntimeError);
    REQUIRE_THROWS_AS(loop.add_signal_handler(SIGSTOP, [] {}), aio::RuntimeError);
}

NET_TEST_CASE("add_signal_handler: one loop at a time; close() removes the handlers", "[stage4]") {
    Disposition keep(SIGUSR1, previous_handler);
    aio::SelectorEventLoop first;
    aio::SelectorEventLoop second;
    first.add_signal_handler(SIGUSR1, [] {});
    try {
        second.add_signal_handler(SIGUSR2, [] {});
        FAIL("two loops watch signals");
    } catch (const aio::RuntimeError& e) {
        REQUIRE(std::string(e.what()).find("another event loop already watches signals") != std::string::npos);
    }
    first.close();
    REQUIRE(current_handler(SIGUSR1) == previous_handler);  // close() restored it
    REQUIRE_NOTHROW(second.add_signal_handler(SIGUSR1, [] {}));
    REQUIRE(second.remove_signal_handler(SIGUSR1));
    REQUIRE_THROWS_AS(first.add_signal_handler(SIGUSR1, [] {}), aio::RuntimeError);  // closed
}

// ---------------------------------------------------------------- run() and a real SIGINT

namespace {

aio::Coroutine<> press_ctrl_c() {
    co_await aio::sleep(0.02);
    ::kill(::getpid(), SIGINT);  // as the terminal does on Ctrl-C
}

aio::Coroutine<int> long_main(bool* cleaned_up) {
    auto ctrl_c = aio::create_task(press_ctrl_c());
    try {
        co_await aio::sleep(30.0);
    } catch (const aio::CancelledError&) {
        *cleaned_up = true;  // the catch (and every destructor) ran
        throw;
    }
    co_return 0;
}

}  // namespace

NET_TEST_CASE("run() on a SelectorEventLoop: SIGINT cancels the main task, its clean-up runs, KeyboardInterrupt",
              "[stage4]") {
    for (const std::string& kind : selector_kinds()) {
        INFO("selector " << kind);
        std::string outcome = fork_test_support::in_child([kind]() -> int {
            ::signal(SIGINT, SIG_DFL);  // as in a fresh program
            bool cleaned_up = false;
            auto t0 = Clock::now();
            try {
                aio::run(long_main(&cleaned_up), loop_on(kind));
                return 10;  // main returned: SIGINT did nothing
            } catch (const aio::KeyboardInterrupt&) {
            }
            if (!cleaned_up) return 11;
            if (seconds_since(t0) > 5.0) return 12;
            if (current_handler(SIGINT) != SIG_DFL) return 13;  // the default is back
            return 0;
        });
        REQUIRE(outcome == "ok");
    }
}
