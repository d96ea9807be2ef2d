// Stage 3 tests: blocking work on worker threads. run_in_executor and to_thread carry a
// result or an exception back into a Future through call_soon_threadsafe, while the loop
// keeps running other tasks; ThreadPoolExecutor starts threads as work arrives and joins
// them on shutdown; a loop's default executor is joined when the loop closes; and no
// worker ever touches a Future off the loop's thread, or a loop that has closed. Tagged
// [threads], so `make tsan` runs them under ThreadSanitizer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "stage3_tasks_futures/executor.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"
#include "tests/stage3_test_support.hpp"

using namespace std::chrono_literals;

namespace {

using namespace loop_test_support;

using stage3_test_support::Gate;

// Collect what the running loop reports (a callback's exception, a lost task), so a test
// can check that nothing went wrong out of sight. `errors` must outlive the loop.
void record_errors(std::vector<std::string>* errors) {
    aio::get_running_loop().set_exception_handler(
        [errors](aio::EventLoop&, const aio::ExceptionContext& c) { errors->push_back(c.message); });
}

long square(int x) { return long(x) * x; }

struct Oops : std::runtime_error {
    using std::runtime_error::runtime_error;
};

aio::Coroutine<int> await_int(aio::Ref<aio::Future<int>> fut) {
    int v = co_await fut;
    co_return v;
}

// ------------------------------------------------------------------------ results, errors

aio::Coroutine<> results_come_back(std::thread::id loop_thread) {
    std::thread::id ran_on;
    auto product = aio::run_in_executor(
        [&ran_on](int a, int b) {
            ran_on = std::this_thread::get_id();
            return a * b;
        },
        6, 7);
    int n = co_await product;
    REQUIRE(n == 42);
    REQUIRE(ran_on != loop_thread);  // it ran on a worker...
    REQUIRE(std::this_thread::get_id() == loop_thread);  // ...and the await resumed on the loop

    // A string literal argument is decayed to const char* and copied into the job.
    auto greeting = aio::run_in_executor([](const char* who) { return std::string("hello, ") + who; }, "world");
    std::string s = co_await greeting;
    REQUIRE(s == "hello, world");

    // A plain function, a void function, and move-only argument and result.
    auto sq = aio::run_in_executor(square, 12);
    long sq_v = co_await sq;
    REQUIRE(sq_v == 144);

    int side_effect = 0;
    auto nothing = aio::run_in_executor([&side_effect] { side_effect = 1; });
    co_await nothing;
    REQUIRE(side_effect == 1);

    auto boxed = aio::run_in_executor([](std::unique_ptr<int> p) { return std::make_unique<int>(*p + 1); },
                                      std::make_unique<int>(41));
    std::unique_ptr<int> box = co_await boxed;
    REQUIRE(*box == 42);
}

TEST_CASE("run_in_executor runs the function on a worker thread and brings its result back",
          "[stage3][threads]") {
    aio::run(results_come_back(std::this_thread::get_id()));
}

aio::Coroutine<> exceptions_come_back() {
    auto failing = aio::run_in_executor([](int x) -> int { throw Oops("bad input " + std::to_string(x)); }, 7);
    std::string caught;
    try {
        co_await failing;
    } catch (const Oops& e) {  // the very type the function threw
        caught = e.what();
    }
    REQUIRE(caught == "bad input 7");
    REQUIRE(failing->exception() != nullptr);

    auto failing_void = aio::run_in_executor([] { throw std::logic_error("void too"); });
    bool void_caught = false;
    try {
        co_await failing_void;
    } catch (const std::logic_error&) {
        void_caught = true;
    }
    REQUIRE(void_caught);
}

TEST_CASE("an exception thrown on the worker comes back through the Future", "[stage3][threads]") {
    aio::run(exceptions_come_back());
}

// ------------------------------------------------------------------- the loop keeps running

aio::Coroutine<> ticker(const bool* stop, int* ticks) {
    while (!*stop) {
        co_await aio::sleep(0.005);
        ++*ticks;
    }
}

aio::Coroutine<> ten_blocking_calls(double* elapsed, int* ticks_meanwhile) {
    bool stop = false;
    int ticks = 0;
    auto ticking = aio::create_task(ticker(&stop, &ticks));
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<aio::Ref<aio::Future<int>>> calls;
    for (int i = 0; i < 10; ++i)
        calls.push_back(aio::run_in_executor(
            [](int x) {
                std::this_thread::sleep_for(50ms);  // blocking: it would stall the loop 50 ms
                return x;
            },
            i));
    int sum = 0;
    for (auto& c : calls) {
        int v = co_await c;
        sum += v;
    }
    *elapsed = seconds_since(t0);
    *ticks_meanwhile = ticks;
    stop = true;
    co_await ticking;
    REQUIRE(sum == 45);
}

TEST_CASE("ten blocking 50 ms calls run concurrently while another task keeps ticking", "[stage3][threads]") {
    double elapsed = 0;
    int ticks = 0;
    aio::run(ten_blocking_calls(&elapsed, &ticks));
    // One after another they would take 500 ms; the default pool has at least 5 workers.
    REQUIRE(elapsed < 0.3);
    REQUIRE(ticks > 0);  // the loop was free while they blocked their threads
}

// ------------------------------------------------------------------------------ under load

aio::Coroutine<> thousand_calls(aio::ThreadPoolExecutor* pool) {
    std::vector<aio::Ref<aio::Future<long>>> calls;
    calls.reserve(1000);
    for (int i = 0; i < 1000; ++i) {
        if (pool)
            calls.push_back(aio::run_in_executor(*pool, square, i));
        else
            calls.push_back(aio::run_in_executor(square, i));
    }
    int correct = 0;
    for (int i = 0; i < 1000; ++i) {
        long v = co_await calls[i];
        if (v == long(i) * i) ++correct;
    }
    REQUIRE(correct == 1000);
}

TEST_CASE("1,000 calls in flight at once all come back with their own result", "[stage3][threads]") {
    SECTION("on the loop's default executor") { aio::run(thousand_calls(nullptr)); }
    SECTION("on an executor of four workers, which starts no more than four threads") {
        aio::ThreadPoolExecutor pool(4);
        aio::run(thousand_calls(&pool));
        REQUIRE(pool.thread_count() <= 4);
        pool.shutdown();
    }
}

// -------------------------------------------------------------------------------- to_thread

// Each coroutine is named before it is awaited: a lambda temporary inside a co_await
// expression is one of g++ 12's miscompilations (hazard 2, stage1_generators/README.md).
aio::Coroutine<> to_thread_forms() {
    auto sum = aio::to_thread([](int a, int b) { return a + b; }, 20, 22);
    int n = co_await std::move(sum);
    REQUIRE(n == 42);

    std::atomic<bool> ran{false};
    auto set_flag = aio::to_thread([&ran] { ran = true; });
    co_await std::move(set_flag);
    REQUIRE(ran);

    bool caught = false;
    auto failing = aio::to_thread([]() -> int { throw Oops("from to_thread"); });
    try {
        co_await std::move(failing);
    } catch (const Oops&) {
        caught = true;
    }
    REQUIRE(caught);

    // Like any coroutine, it runs nothing until it is awaited.
    std::atomic<bool> lazy_ran{false};
    {
        auto unawaited = aio::to_thread([&lazy_ran] { lazy_ran = true; });
    }
    co_await aio::sleep(0.02);
    REQUIRE_FALSE(lazy_ran);
}

TEST_CASE("to_thread is run_in_executor as a coroutine", "[stage3][threads]") { aio::run(to_thread_forms()); }

// ----------------------------------------------------------------------------- cancellation

aio::Coroutine<> cancel_during_call(std::vector<std::string>* errors) {
    record_errors(errors);
    Gate started, release;
    std::atomic<bool> finished{false};
    aio::ThreadPoolExecutor pool(1);
    auto call = aio::run_in_executor(pool, [&] {
        started.open();
        release.wait();
        finished = true;
        return 42;
    });
    auto waiting = aio::create_task(await_int(call));
    co_await aio::sleep(0);  // the task's first step: it now awaits the call's Future
    while (!started.is_open()) co_await aio::sleep(0.001);  // the worker is inside the call now

    waiting->cancel();
    while (!waiting->done()) co_await aio::sleep(0);
    REQUIRE(waiting->cancelled());
    REQUIRE(call->cancelled());  // cancelling the task cancelled the Future it awaited

    // Let the call finish: joining the pool means its result has been posted to the loop,
    // and the next passes deliver it: to a Future that is cancelled, so it is dropped.
    release.open();
    pool.shutdown();
    REQUIRE(finished);
    co_await aio::sleep(0.01);
    REQUIRE(call->cancelled());
}

TEST_CASE("cancelling the task awaiting a running call: the call completes and its late result is dropped",
          "[stage3][threads]") {
    std::vector<std::string> errors;
    aio::run(cancel_during_call(&errors));
    // Setting the result of a cancelled Future would raise InvalidStateError in a callback.
    REQUIRE(errors.empty());
}

aio::Coroutine<> cancel_before_start() {
    Gate release;
    std::atomic<bool> second_ran{false};
    aio::ThreadPoolExecutor pool(1);  // one worker: the second call waits behind the first
    auto first = aio::run_in_executor(pool, [&release] {
        release.wait();
        return 1;
    });
    auto second = aio::run_in_executor(pool, [&second_ran] {
        second_ran = true;
        return 2;
    });
    REQUIRE(second->cancel());
    co_await aio::sleep(0);  // the cancel check is a done-callback: it runs on the next pass
    release.open();
    pool.shutdown();  // the first call completes; the second is skipped
    REQUIRE_FALSE(second_ran);
    int v = co_await first;
    REQUIRE(v == 1);
}

TEST_CASE("a call whose Future is cancelled before a worker starts it never runs", "[stage3][threads]") {
    aio::run(cancel_before_start());
}

// ----------------------------------------------------------------- closing the loop, shutdown

aio::Coroutine<> leave_calls_running(std::vector<std::string>* errors, std::atomic<int>* started,
                                     std::atomic<int>* finished) {
    record_errors(errors);
    auto slow = [started, finished] {
        ++*started;
        std::this_thread::sleep_for(100ms);
        ++*finished;
        return 1;
    };
    auto unawaited = aio::run_in_executor(slow);                              // nobody awaits it
    auto awaiting = aio::create_task(await_int(aio::run_in_executor(slow)));  // run() cancels this task
    while (started->load() < 2) co_await aio::sleep(0.001);
}

TEST_CASE("run() closes the loop, which joins the default executor's workers", "[stage3][threads]") {
    std::vector<std::string> errors;
    std::atomic<int> started{0}, finished{0};
    aio::run(leave_calls_running(&errors, &started, &finished));
    // Both calls were still sleeping when main returned; close() waited for them, and
    // dropped their results (the loop can no longer take them) without a crash.
    REQUIRE(finished == 2);
    REQUIRE(errors.empty());
}

TEST_CASE("closing a loop that was never run joins its default executor", "[stage3][threads]") {
    std::atomic<bool> finished{false};
    TEST_LOOP(loop);
    auto call = aio::run_in_executor(loop, nullptr, [&finished] {
        std::this_thread::sleep_for(30ms);
        finished = true;
        return 5;
    });
    loop.close();
    REQUIRE(finished);
    REQUIRE_FALSE(call->done());  // the result could not be delivered any more
    REQUIRE_THROWS_AS(aio::run_in_executor(loop, nullptr, [] { return 1; }), aio::RuntimeError);
}

TEST_CASE("an executor of your own may outlive the loop: late results are dropped", "[stage3][threads]") {
    aio::ThreadPoolExecutor pool(2);
    SECTION("a call still blocked when the loop is destroyed") {
        Gate release;
        std::atomic<bool> finished{false};
        {
            auto loop = aio::new_event_loop();
            auto call = aio::run_in_executor(*loop, &pool, [&] {
                release.wait();
                finished = true;
                return std::string("too late");
            });
            call = nullptr;
            loop.reset();  // closed and freed while the worker is still inside the call
        }
        release.open();
        pool.shutdown();  // the call completes now, and must not touch the freed loop
        REQUIRE(finished);
    }
    SECTION("loops destroyed while their calls finish, 200 times over") {
        // Races the worker's post against the loop's close: ASan or TSan would catch a worker
        // that touched a closed or freed loop.
        std::atomic<int> ran{0};
        for (int round = 0; round < 200; ++round) {
            auto loop = aio::new_event_loop();
            for (int i = 0; i < 2; ++i) {
                auto call = aio::run_in_executor(*loop, &pool, [&ran](int x) {
                    ++ran;
                    return x;
                }, i);
            }
            loop.reset();
        }
        pool.shutdown();
        REQUIRE(ran == 400);
    }
}

aio::Coroutine<> submit_to_shut_down_executor() {
    aio::ThreadPoolExecutor pool(1);
    pool.shutdown();
    REQUIRE_THROWS_AS(aio::run_in_executor(pool, [] { return 1; }), aio::RuntimeError);
    // The loop is unharmed: the default executor still works.
    auto call = aio::run_in_executor([] { return 2; });
    int v = co_await call;
    REQUIRE(v == 2);
}

TEST_CASE("run_in_executor on a shut-down executor raises RuntimeError", "[stage3][threads]") {
    aio::run(submit_to_shut_down_executor());
}

// ------------------------------------------------------------------------ ThreadPoolExecutor

TEST_CASE("ThreadPoolExecutor is sized like CPython's and rejects zero workers", "[stage3][threads]") {
    const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
    REQUIRE(aio::ThreadPoolExecutor::default_max_workers() == std::min<std::size_t>(32, cores + 4));
    REQUIRE(aio::ThreadPoolExecutor().max_workers() == aio::ThreadPoolExecutor::default_max_workers());
    REQUIRE_THROWS_AS(aio::ThreadPoolExecutor(0), std::invalid_argument);
}

TEST_CASE("ThreadPoolExecutor starts a thread for each job no idle worker can take, up to max_workers",
          "[stage3][threads]") {
    // Every job blocks until the gate opens, so no worker is ever idle while jobs arrive.
    const std::size_t max_workers = GENERATE(3, 32);
    aio::ThreadPoolExecutor pool(max_workers);
    REQUIRE(pool.thread_count() == 0);  // lazily: no work, no threads
    Gate release;
    std::atomic<int> done{0};
    for (int i = 0; i < 10; ++i)
        pool.submit([&] {
            release.wait();
            ++done;
        });
    REQUIRE(pool.thread_count() == std::min<std::size_t>(10, max_workers));
    release.open();
    pool.shutdown();
    REQUIRE(done == 10);
}

TEST_CASE("ThreadPoolExecutor::shutdown runs the queued work and joins; then submit raises", "[stage3][threads]") {
    std::atomic<int> done{0};
    SECTION("shutdown(wait=true)") {
        aio::ThreadPoolExecutor pool(2);
        for (int i = 0; i < 5; ++i)
            pool.submit([&done] {
                std::this_thread::sleep_for(10ms);
                ++done;
            });
        pool.shutdown();
        REQUIRE(done == 5);  // every queued job ran before the workers were joined
        REQUIRE(pool.thread_count() == 0);
        try {
            pool.submit([] {});
            FAIL("submit after shutdown did not raise");
        } catch (const aio::RuntimeError& e) {
            REQUIRE(std::string(e.what()).find("after shutdown") != std::string::npos);
        }
        pool.shutdown();  // again: harmless
    }
    SECTION("shutdown(wait=false), then the destructor joins") {
        {
            aio::ThreadPoolExecutor pool(2);
            pool.submit([&done] {
                std::this_thread::sleep_for(20ms);
                ++done;
            });
            pool.shutdown(false);
            REQUIRE_THROWS_AS(pool.submit([] {}), aio::RuntimeError);
        }
        REQUIRE(done == 1);
    }
}

TEST_CASE("a worker cannot shut its own executor down with wait=true", "[stage3][threads]") {
    aio::ThreadPoolExecutor pool(1);
    Gate checked;
    std::atomic<bool> raised{false};
    pool.submit([&] {
        try {
            pool.shutdown(true);
        } catch (const aio::RuntimeError&) {
            raised = true;
        }
        checked.open();
    });
    checked.wait();
    pool.shutdown();
    REQUIRE(raised);
}

}  // namespace
