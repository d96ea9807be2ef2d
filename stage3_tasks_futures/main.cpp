// Stage 3 demo: the articles' Task, Future, gather and executor examples on async/await.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/executor.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/taskgroups.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage3_tasks_futures/timeline.hpp"

namespace {

// One "second" of the articles, in real seconds: 1 with --full, a tenth by default.
double unit = 0.1;
aio::Timeline* timeline = nullptr;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// [docs:go]
// The third article's `say_after`: sleep, then say something.
aio::Coroutine<> go(double units, std::string what) {
    co_await aio::sleep(units * unit);
    std::printf("   %s\n", what.c_str());
}

aio::Coroutine<> create_task_example() {
    double t0 = now();
    auto hello = aio::create_task(go(2, "hello"), "hello");
    auto world = aio::create_task(go(1, "world"), "world");
    co_await hello;  // both are already running: awaiting one doesn't stop the other
    co_await world;
    std::printf("   create_task + await: %.1f units (one after another would take 3)\n", (now() - t0) / unit);
}
// [/docs:go]

aio::Coroutine<> gather_example() {
    double t0 = now();
    co_await aio::gather(go(2, "hello"), go(1, "world"));
    std::printf("   gather: %.1f units\n", (now() - t0) / unit);
}

// [docs:arithmetic]
// The four arithmetic coroutines: each "computes" for a number of units.
aio::Coroutine<int> compute(std::string op, int x, int y, double units) {
    co_await aio::sleep(units * unit);
    int r = op == "add" ? x + y : op == "sub" ? x - y : op == "mul" ? x * y : x / y;
    std::printf("   %s(%d, %d) = %d after %.0f units\n", op.c_str(), x, y, r, units);
    co_return r;
}

aio::Coroutine<> arithmetic_example() {
    std::printf("  awaited one after another:\n");
    double t0 = now();
    int a = co_await compute("add", 1, 2, 3);
    int b = co_await compute("sub", 9, 4, 1);
    int c = co_await compute("mul", 3, 4, 5);
    int d = co_await compute("div", 8, 2, 7);
    std::printf("   results %d %d %d %d in %.1f units (3 + 1 + 5 + 7 = 16)\n", a, b, c, d, (now() - t0) / unit);

    std::printf("  as tasks, with gather:\n");
    t0 = now();
    auto add = aio::create_task(compute("add", 1, 2, 3), "add");  // named, for the timeline
    auto sub = aio::create_task(compute("sub", 9, 4, 1), "sub");
    auto mul = aio::create_task(compute("mul", 3, 4, 5), "mul");
    auto div = aio::create_task(compute("div", 8, 2, 7), "div");
    auto [ra, rb, rc, rd] = co_await aio::gather(add, sub, mul, div);
    std::printf("   gather's results, in argument order: %d %d %d %d, in %.1f units (the longest is 7)\n", ra, rb, rc,
                rd, (now() - t0) / unit);
}
// [/docs:arithmetic]

// The four again, started in a TaskGroup (named, for the timeline).
using Tasks = std::vector<aio::Ref<aio::Task<int>>>;
void start_four(aio::TaskGroup& tg, Tasks& tasks) {
    tasks.push_back(tg.create_task(compute("add", 1, 2, 3), "add"));
    tasks.push_back(tg.create_task(compute("sub", 9, 4, 1), "sub"));
    tasks.push_back(tg.create_task(compute("mul", 3, 4, 5), "mul"));
    tasks.push_back(tg.create_task(compute("div", 8, 2, 7), "div"));
}

// [docs:task_group_example]
// async with asyncio.TaskGroup() as tg: four tg.create_task(...) calls. Leaving the block
// waits for all four; had one failed, the others would have been cancelled.
aio::Coroutine<> task_group_example() {
    double t0 = now();
    Tasks tasks;
    auto body = [&](aio::TaskGroup& tg) -> aio::Coroutine<> {  // named first: see timeouts.hpp
        start_four(tg, tasks);
        co_return;
    };
    co_await aio::task_group(body);
    std::printf("   the block ended with all four done: %d %d %d %d, in %.1f units\n", tasks[0]->result(),
                tasks[1]->result(), tasks[2]->result(), tasks[3]->result(), (now() - t0) / unit);
}

// The same group inside `async with asyncio.timeout(4):`. At 4 units the timeout cancels
// the task running the block; the group cancels mul and div, and the CancelledError that
// comes out of the group becomes TimeoutError.
aio::Coroutine<> timeout_example() {
    double t0 = now();
    Tasks tasks;
    auto body = [&](aio::TaskGroup& tg) -> aio::Coroutine<> {
        start_four(tg, tasks);
        co_return;
    };
    try {
        co_await aio::timeout(4 * unit, aio::task_group(body));
    } catch (const aio::TimeoutError& e) {
        std::printf("   TimeoutError after %.1f units (%s)\n", (now() - t0) / unit, e.what());
    }
    for (auto& t : tasks)
        std::printf("   %s: %s\n", t->get_name().c_str(), t->cancelled() ? "cancelled" : std::to_string(t->result()).c_str());
}
// [/docs:task_group_example]

aio::Coroutine<> named(double units) { co_await aio::sleep(units * unit); }

aio::Coroutine<> registry_example() {
    auto me = aio::current_task();
    std::printf("   current_task(): %s\n", me->get_name().c_str());
    auto downloader = aio::create_task(named(1), "downloader");
    auto parser = aio::create_task(named(2));
    std::printf("   all_tasks():");
    for (auto& t : aio::all_tasks()) std::printf(" %s", t->get_name().c_str());
    std::printf("\n");
    co_await aio::sleep(0);
    std::printf("   where is %s now?\n", parser->get_name().c_str());
    parser->print_stack(std::cout);
    co_await downloader;
    co_await parser;
}

// [docs:future]
// The article's Future example: foo sets the result that bar is waiting for.
aio::Coroutine<> foo(aio::Ref<aio::Future<std::string>> future) {
    co_await aio::sleep(1 * unit);
    future->set_result("Future is done!");
}

aio::Coroutine<> bar(aio::Ref<aio::Future<std::string>> future) {
    std::string result = co_await future;  // suspends bar until foo sets the result
    std::printf("   bar got: %s\n", result.c_str());
}
// [/docs:future]

aio::Coroutine<> future_example() {
    auto future = aio::create_future<std::string>();
    co_await aio::gather(foo(future), bar(future));
}

int blocking_io(int i) {
    std::this_thread::sleep_for(std::chrono::duration<double>(unit));  // a blocking call
    return i * i;
}

// [docs:executor]
// Ten blocking calls, on the default executor (or `pool`), awaited together.
aio::Coroutine<> ten_blocking_calls(aio::ThreadPoolExecutor* pool) {
    double t0 = now();
    std::vector<aio::Ref<aio::Future<int>>> calls;
    for (int i = 0; i < 10; ++i) {
        if (pool)
            calls.push_back(aio::run_in_executor(*pool, blocking_io, i));
        else
            calls.push_back(aio::run_in_executor(blocking_io, i));
    }
    auto results = co_await aio::gather(std::move(calls));
    std::printf("   results");
    for (int r : results) std::printf(" %d", r);
    std::printf(" in %.1f units\n", (now() - t0) / unit);
}
// [/docs:executor]

aio::Coroutine<> executor_example() {
    std::printf("   ten blocking calls of 1 unit each, on the default executor (%zu workers, CPython's\n"
                "   min(32, cores + 4)): two rounds of calls\n",
                aio::ThreadPoolExecutor::default_max_workers());
    co_await ten_blocking_calls(nullptr);
    std::printf("   the same on a pool of 10 workers: one round\n");
    aio::ThreadPoolExecutor pool(10);
    co_await ten_blocking_calls(&pool);
    pool.shutdown();
}

aio::Coroutine<std::string> quick_job() { co_return "the quick job's result"; }

aio::Coroutine<> done_before_await_example() {
    auto task = aio::create_task(quick_job());
    std::printf("   right after create_task: done() = %s (it starts on a later pass)\n", task->done() ? "true" : "false");
    co_await aio::sleep(0.5 * unit);
    std::printf("   after sleeping half a unit: done() = %s\n", task->done() ? "true" : "false");
    std::string r = co_await task;  // no suspension: the result is there
    std::printf("   co_await task returns at once: %s\n", r.c_str());
}

// [docs:cpu_bound]
aio::Coroutine<> cpu_bound(double seconds) {
    double end = now() + seconds;
    volatile unsigned long spin = 0;
    while (now() < end) spin = spin + 1;  // never awaits: nothing else can run meanwhile
    co_return;
}
// [/docs:cpu_bound]

aio::Coroutine<> ticker(int* ticks) {
    for (;;) {
        co_await aio::sleep(0.01);
        ++*ticks;
    }
}

aio::Coroutine<> debug_example() {
    // Debug mode's warnings go to the loop's logger (stderr by default); print them here.
    aio::get_running_loop().set_logger([](std::string_view m) { std::printf("   [debug] %.*s\n", int(m.size()), m.data()); });
    int ticks = 0;
    auto t = aio::create_task(ticker(&ticks), "ticker");
    co_await aio::sleep(0.05);
    int before = ticks;
    co_await aio::create_task(cpu_bound(0.15), "cpu_bound");
    std::printf("   the ticker (every 10 ms) ticked %d times during the 150 ms CPU-bound step\n", ticks - before);
    t->cancel();
}

// Run one example on a fresh loop, recording its timeline if asked.
template <typename F>
void example(const char* title, F make, bool record = false, bool debug = false) {
    std::printf("\n== %s ==\n", title);
    if (!record) {
        aio::run(make(), debug);
        return;
    }
    aio::Timeline tl;
    {
        aio::Timeline::Recording rec(tl);
        aio::run(make(), debug);
    }
    std::printf("%s", tl.gantt().c_str());
    if (timeline) timeline->merge(tl);
}

}  // namespace

int main(int argc, char** argv) {
    std::string trace_path;
    aio::OptionParser options(
        "Reproduces the articles' examples of Tasks and Futures on stage 3's async/await:\n"
        "create_task and gather, the four arithmetic coroutines, current_task/all_tasks, a Future\n"
        "set by another task, run_in_executor, a task that is done before it is awaited, and a\n"
        "CPU-bound step caught by debug mode. Concurrent parts are drawn as a timeline.\n"
        "One unit of the articles' time is 0.1 s unless --full or --quick says otherwise.");
    options.constant("--full", unit, 1.0, "the articles' timings: 1 unit = 1 s")
        .constant("--quick", unit, 0.05, "1 unit = 0.05 s, for `make run`")
        .output_file("--trace", trace_path, "FILE",
                     "also write the timeline as Chrome Trace Event JSON (open it in\n"
                     "https://ui.perfetto.dev or chrome://tracing)");
    if (auto status = options.parse(argc, argv)) return *status;
    aio::Timeline all;
    if (!trace_path.empty()) timeline = &all;

    std::printf("Stage 3: Futures and Tasks, async/await on the loop (1 unit = %.2f s)\n", unit);
    example("go(2, \"hello\") and go(1, \"world\") as tasks", create_task_example, true);
    example("the same with gather", gather_example);
    example("four arithmetic coroutines: 3, 1, 5 and 7 units", arithmetic_example, true);
    example("the four in a TaskGroup", task_group_example, true);
    example("the same TaskGroup inside a timeout of 4 units", timeout_example, true);
    example("current_task() and all_tasks()", registry_example);
    example("a Future: foo sets the result bar awaits", future_example);
    example("run_in_executor: blocking calls on a thread pool", executor_example, true);
    example("a task that finishes before it is awaited", done_before_await_example);
    example("debug mode catches a CPU-bound step", debug_example, true, true);

    std::printf(
        "\nWhat to notice: tasks overlap their waits (7 units, not 16), and blocking calls run on\n"
        "threads while the loop goes on. But a step that computes without awaiting still stops\n"
        "everything (debug mode names it), and so would a blocking read of a real socket: stage 4\n"
        "replaces the loop's wait with a selector, so tasks can wait for network I/O as they wait\n"
        "for timers here.\n");

    if (!trace_path.empty()) {
        if (!all.write_chrome_trace(trace_path)) {
            std::fprintf(stderr, "error: cannot write the trace to '%s' (check the directory exists and is writable)\n",
                         trace_path.c_str());
            return 1;
        }
        std::printf("\nWrote the timeline to %s: open it in https://ui.perfetto.dev or chrome://tracing\n",
                    trace_path.c_str());
    }
    return 0;
}
