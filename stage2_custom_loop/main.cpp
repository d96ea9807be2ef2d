// Stage 2 demo: the first two articles on a real event loop, and the flaw that motivates stage 3.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "stage1_generators/demo.hpp"
#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/event_loop.hpp"
#include "stage2_custom_loop/generator_task.hpp"

using namespace aio::generator_based;

namespace {

// [docs:demo_coroutine]
// The first article's coroutine, as a generator coroutine on the loop.
Coroutine<> easy_coroutine(int i, double seconds, int* count) {
    co_await sleep(seconds);  // Python: yield from asyncio.sleep(seconds)
    ++*count;
    std::printf("   coroutine %d finish, count: %d\n", i, *count);
}
// [/docs:demo_coroutine]

// The second article's coroutines: sleep, then return a result.
Coroutine<std::string> coro(int n, double seconds) {
    co_await sleep(seconds);
    co_return "coro" + std::to_string(n) + " done";
}

void first_article(double seconds) {
    std::printf("== 1. Ten coroutines, each sleeping %.2f s ==\n", seconds);
    aio::EventLoop loop;
    int count = 0;
    std::vector<Coroutine<>> coros;
    for (int i = 0; i < 10; ++i) coros.push_back(easy_coroutine(i, seconds, &count));
    aio::Stopwatch sw;
    loop.run_until_complete(wait(std::move(coros)));
    double wall = sw.wall(), cpu = sw.cpu();
    std::printf("   wall %.2f s   cpu %.3f s\n", wall, cpu);
    std::printf(
        "   Ten sleeps of %.2f s took %.2f s together, and the CPU time is near zero: the loop\n"
        "   slept in select() until the timers were due instead of polling. Stage 1's flaw is gone.\n\n",
        seconds, wall);
}

void second_article(double seconds) {
    std::printf("== 2. The run_forever trap ==\n");
    {
        aio::EventLoop loop;
        auto t1 = loop.create_task(coro(1, seconds));
        auto t2 = loop.create_task(coro(2, seconds));
        // In Python this would hang for ever: run_forever returns only when someone calls
        // stop(). Our watchdog does, three sleeps later, so the demo can go on.
        loop.call_later(3 * seconds, [&loop] { loop.stop(); }, "watchdog");
        std::printf("   loop.run_forever() with two tasks and no stop()...\n");
        aio::Stopwatch sw;
        loop.run_forever();
        std::printf(
            "   ...returned after %.2f s only because a watchdog called stop(). The tasks were done\n"
            "   after %.2f s, but nothing printed their results or stopped the loop.\n",
            sw.wall(), seconds);
    }
    {
        aio::EventLoop loop;
        auto t1 = loop.create_task(coro(1, seconds));
        t1->add_done_callback([&loop] { loop.stop(); });
        aio::Stopwatch sw;
        loop.run_forever();
        std::printf("   With a done-callback that calls stop(): %s, after %.2f s.\n", t1->result().c_str(), sw.wall());
    }
    std::printf("\n== 2b. The fix: run_until_complete(wait(...)) ==\n");
    for (int n = 2; n <= 3; ++n) {
        aio::EventLoop loop;
        aio::Stopwatch sw;
        std::vector<std::string> results;
        if (n == 2)
            results = loop.run_until_complete(wait(coro(1, seconds), coro(2, seconds)));
        else
            results = loop.run_until_complete(wait(coro(1, seconds), coro(2, seconds), coro(3, seconds)));
        std::printf("   %d coroutines:", n);
        for (auto& r : results) std::printf(" [%s]", r.c_str());
        std::printf("  in %.2f s (one sleep is %.2f s)\n", sw.wall(), seconds);
    }
    std::printf("\n");
}

// [docs:blocking_flaw]
void blocking_flaw(double seconds) {
    std::printf("== 3. The flaw: a callback that blocks ==\n");
    aio::EventLoop loop;
    loop.set_debug(true);  // report callbacks slower than slow_callback_duration (0.1 s)
    loop.set_logger([](std::string_view m) { std::printf("   [debug] %.*s\n", int(m.size()), m.data()); });
    const int n = 5;
    std::vector<double> lateness(n);
    const double start = loop.time();
    for (int i = 0; i < n; ++i) {
        double when = start + 0.02 * (i + 1);  // timers due at 20, 40, ... 100 ms
        loop.call_at(when, [&loop, &lateness, i, when] { lateness[i] = loop.time() - when; }, "timer");
    }
    loop.call_soon([seconds] { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); },
                   "blocking_call");
    loop.call_at(start + 0.2 + seconds, [&loop] { loop.stop(); }, "stop");
    loop.run_forever();
    for (int i = 0; i < n; ++i)
        std::printf("   timer due at %3d ms fired %6.1f ms late\n", 20 * (i + 1), lateness[i] * 1000);
}
// [/docs:blocking_flaw]

}  // namespace

int main(int argc, char** argv) {
    double seconds = 1.0;
    aio::OptionParser options(
        "Reproduces the first two articles on stage 2's event loop:\n"
        "  1. ten coroutines each sleep S seconds and finish together, in about S s, using\n"
        "     almost no CPU;\n"
        "  2. the run_forever trap, then run_until_complete(wait(...)) with 2 and 3 coroutines;\n"
        "  3. the flaw: one callback that blocks delays every timer behind it.");
    options
        .number("--seconds", seconds, 0, 3600, "S", "the sleep of each coroutine; 10 gives the first article's numbers")
        .constant("--quick", seconds, 0.2, "S = 0.2, for `make run`");
    if (auto status = options.parse(argc, argv)) return *status;
    std::printf("Stage 2: an event loop with a ready queue and timers\n\n");
    first_article(seconds);
    second_article(seconds);
    blocking_flaw(seconds);
    std::printf(
        "\nWhat to notice: while one callback blocks (here, sleep_for; in real code, a CPU-heavy\n"
        "computation or a blocking read), nothing else runs: every timer behind it is late by the\n"
        "whole blocking time. Stage 3 adds Futures and Tasks, and a way to move blocking work off\n"
        "the loop (run_in_executor) while other tasks keep running.\n");
    return 0;
}
