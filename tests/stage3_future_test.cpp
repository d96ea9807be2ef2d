// Stage 3 tests: Future. Pending, then done exactly once (a result, an exception, or
// cancelled); result() and exception() say which, or raise; done-callbacks are scheduled on
// the loop in registration order, never called inside set_result; and `co_await fut`
// suspends the awaiting task until the future is done.
#include <catch2/catch.hpp>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// One pass of the loop, with the loop running (so get_running_loop() works inside), never
// blocking on a far timer: asyncio's "stop() before run_forever() runs exactly one pass".
// The coroutines below are free functions taking their state by pointer or by value: a
// capturing lambda coroutine is one of g++ 12's miscompiled patterns.

aio::Coroutine<int> await_int(aio::Ref<aio::Future<int>> fut, Log* log, std::string who) {
    log->push_back(who + " waits");
    int v = co_await fut;
    log->push_back(who + " got " + std::to_string(v));
    co_return v;
}

aio::Coroutine<> await_void(aio::Ref<aio::Future<>> fut, Log* log) {
    log->push_back("waits");
    co_await fut;
    log->push_back("resumed");
}

aio::Coroutine<> set_after_yield(aio::Ref<aio::Future<int>> fut, Log* log) {
    log->push_back("setter runs");
    co_await aio::yield_now();
    log->push_back("setter sets");
    fut->set_result(7);
    log->push_back("setter goes on");
}

aio::Coroutine<> append(Log* log, std::string what) {
    log->push_back(what);
    co_return;
}

aio::Coroutine<std::string> await_failing(aio::Ref<aio::Future<int>> fut) {
    try {
        int v = co_await fut;
        co_return "value " + std::to_string(v);
    } catch (const Marked& m) {
        co_return "caught " + std::to_string(m.id);
    }
}

aio::Coroutine<std::string> await_foreign(aio::Ref<aio::Future<int>> fut) {
    try {
        int v = co_await fut;
        co_return "value " + std::to_string(v);
    } catch (const aio::RuntimeError& e) {
        co_return std::string("RuntimeError: ") + e.what();
    }
}

}  // namespace

TEST_CASE("Future: a new future is pending; set_result makes it done with that value", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    REQUIRE_FALSE(f->done());
    REQUIRE_FALSE(f->cancelled());
    REQUIRE(&f->get_loop() == &loop);
    REQUIRE_THROWS_AS(f->result(), aio::InvalidStateError);
    REQUIRE_THROWS_AS(f->exception(), aio::InvalidStateError);

    f->set_result(42);
    REQUIRE(f->done());
    REQUIRE_FALSE(f->cancelled());
    REQUIRE(f->result() == 42);
    REQUIRE(f->result() == 42);  // may be read again
    REQUIRE(f->exception() == nullptr);
}

TEST_CASE("Future: set_exception makes result() rethrow it and exception() return it", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    f->set_exception(std::make_exception_ptr(Marked(3)));
    REQUIRE(f->done());
    REQUIRE_FALSE(f->cancelled());
    try {
        (void)f->result();
        FAIL("result() did not throw");
    } catch (const Marked& m) {
        REQUIRE(m.id == 3);  // the very type and value that were stored
    }
    auto e = f->exception();
    REQUIRE(e != nullptr);
    REQUIRE(what_of(e) == "marked 3");

    auto g = aio::create_future<int>(loop);
    REQUIRE_THROWS_AS(g->set_exception(nullptr), std::invalid_argument);
    REQUIRE_FALSE(g->done());
}

TEST_CASE("Future: cancel(msg) makes it done and cancelled; result() raises CancelledError(msg)", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    REQUIRE(f->cancel("no longer needed"));
    REQUIRE(f->done());
    REQUIRE(f->cancelled());
    try {
        (void)f->result();
        FAIL("result() did not throw");
    } catch (const aio::CancelledError& e) {
        REQUIRE(e.message() == "no longer needed");
    }
    // exception() of a cancelled future raises too, as in asyncio.
    REQUIRE_THROWS_AS(f->exception(), aio::CancelledError);
    // CancelledError is not an ordinary error: catching runtime errors does not swallow it.
    STATIC_REQUIRE_FALSE(std::is_base_of_v<std::runtime_error, aio::CancelledError>);
    STATIC_REQUIRE(std::is_base_of_v<std::exception, aio::CancelledError>);

    REQUIRE_FALSE(f->cancel("again"));  // already done
    try {
        (void)f->result();
    } catch (const aio::CancelledError& e) {
        REQUIRE(e.message() == "no longer needed");  // the first message stays
    }
}

TEST_CASE("Future: it completes exactly once; a second completion raises InvalidStateError", "[stage3]") {
    TEST_LOOP(loop);
    SECTION("set_result twice") {
        auto f = aio::create_future<int>(loop);
        f->set_result(1);
        REQUIRE_THROWS_AS(f->set_result(2), aio::InvalidStateError);
        REQUIRE(f->result() == 1);
    }
    SECTION("set_exception after set_result") {
        auto f = aio::create_future<int>(loop);
        f->set_result(1);
        REQUIRE_THROWS_AS(f->set_exception(std::make_exception_ptr(Marked(1))), aio::InvalidStateError);
        REQUIRE(f->result() == 1);
    }
    SECTION("set_result after set_exception") {
        auto f = aio::create_future<int>(loop);
        f->set_exception(std::make_exception_ptr(Marked(1)));
        REQUIRE_THROWS_AS(f->set_result(1), aio::InvalidStateError);
        REQUIRE_THROWS_AS(f->result(), Marked);
    }
    SECTION("set_result and set_exception after cancel") {
        auto f = aio::create_future<int>(loop);
        REQUIRE(f->cancel());
        REQUIRE_THROWS_AS(f->set_result(1), aio::InvalidStateError);
        REQUIRE_THROWS_AS(f->set_exception(std::make_exception_ptr(Marked(1))), aio::InvalidStateError);
        REQUIRE(f->cancelled());
    }
    SECTION("cancel() on a done future returns false and changes nothing") {
        auto f = aio::create_future<int>(loop);
        f->set_result(5);
        REQUIRE_FALSE(f->cancel());
        REQUIRE_FALSE(f->cancelled());
        REQUIRE(f->result() == 5);

        auto g = aio::create_future<int>(loop);
        g->set_exception(std::make_exception_ptr(Marked(2)));
        REQUIRE_FALSE(g->cancel());
        REQUIRE_FALSE(g->cancelled());
        REQUIRE_THROWS_AS(g->result(), Marked);
    }
    SECTION("the error says what went wrong") {
        auto f = aio::create_future<int>(loop);
        f->set_result(1);
        REQUIRE_THROWS_WITH(f->set_result(2), Catch::Contains("already done"));
        auto g = aio::create_future<int>(loop);
        REQUIRE_THROWS_WITH(g->result(), Catch::Contains("pending"));
    }
}

TEST_CASE("Future: done-callbacks run on a later pass, never inside set_result, in registration order", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    Log log;
    aio::FutureBase* seen = nullptr;
    f->add_done_callback([&](aio::FutureBase& fut) {
        seen = &fut;
        log.push_back("1 with future: " + std::to_string(static_cast<aio::Future<int>&>(fut).result()));
    });
    f->add_done_callback([&] { log.push_back("2 without future"); });
    f->add_done_callback([&](aio::FutureBase&) { log.push_back("3 with future"); });
    REQUIRE(loop.ready_count() == 0);  // nothing is scheduled while the future is pending

    f->set_result(9);
    REQUIRE(log.empty());              // not inline
    REQUIRE(loop.ready_count() == 3);  // scheduled instead

    loop.run_once();
    REQUIRE(log == Log{"1 with future: 9", "2 without future", "3 with future"});
    REQUIRE(seen == f.get());
    REQUIRE(loop.ready_count() == 0);
}

TEST_CASE("Future: done-callbacks are scheduled by set_exception and cancel too", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto g = aio::create_future<int>(loop);
    f->add_done_callback([&](aio::FutureBase& fut) { log.push_back(std::string("f ") + (fut.cancelled() ? "cancelled" : "done")); });
    g->add_done_callback([&](aio::FutureBase& fut) { log.push_back("g " + what_of(fut.exception())); });
    REQUIRE(f->cancel());
    g->set_exception(std::make_exception_ptr(Marked(4)));
    REQUIRE(log.empty());
    loop.run_once();
    REQUIRE(log == Log{"f cancelled", "g marked 4"});
}

TEST_CASE("Future: a callback that completes another future makes that one's callbacks wait a pass", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto a = aio::create_future<int>(loop);
    auto b = aio::create_future<int>(loop);
    a->add_done_callback([&] {
        log.push_back("a done");
        b->set_result(2);
        log.push_back("b set");
    });
    b->add_done_callback([&] { log.push_back("b done"); });
    a->set_result(1);
    loop.run_once();
    REQUIRE(log == Log{"a done", "b set"});
    loop.run_once();
    REQUIRE(log == Log{"a done", "b set", "b done"});
}

TEST_CASE("Future: a callback added to a future that is already done runs on the next pass", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    f->set_result(3);
    int got = 0;
    f->add_done_callback([&](aio::FutureBase& fut) { got = static_cast<aio::Future<int>&>(fut).result(); });
    REQUIRE(got == 0);  // not inline
    REQUIRE(loop.ready_count() == 1);
    loop.run_once();
    REQUIRE(got == 3);
}

TEST_CASE("Future: remove_done_callback forgets a callback that has not been scheduled", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    Log log;
    auto h1 = f->add_done_callback([&] { log.push_back("1"); });
    auto h2 = f->add_done_callback([&] { log.push_back("2"); });
    auto h3 = f->add_done_callback([&] { log.push_back("3"); });
    REQUIRE(f->remove_done_callback(h2));
    REQUIRE_FALSE(f->remove_done_callback(h2));  // already removed

    auto other = aio::create_future<int>(loop);
    auto foreign = other->add_done_callback([] {});
    REQUIRE_FALSE(f->remove_done_callback(foreign));  // not one of f's

    f->set_result(0);
    REQUIRE_FALSE(f->remove_done_callback(h1));  // already scheduled: too late to remove
    loop.run_once();
    REQUIRE(log == Log{"1", "3"});
}

TEST_CASE("Future: the future stays alive until its scheduled callbacks have run", "[stage3]") {
    TEST_LOOP(loop);
    int got = 0;
    {
        auto f = aio::create_future<int>(loop);
        f->add_done_callback([&](aio::FutureBase& fut) { got = static_cast<aio::Future<int>&>(fut).result(); });
        f->set_result(11);
    }  // the last outside reference is gone; the scheduled callback keeps the future
    loop.run_once();  // ASan: no use after free
    REQUIRE(got == 11);
}

TEST_CASE("Future: an exception from a done-callback goes to the exception handler; the others still run", "[stage3]") {
    std::vector<std::string> reports;
    TEST_LOOP(loop);
    loop.set_exception_handler([&](aio::EventLoop&, const aio::ExceptionContext& c) {
        reports.push_back(c.message + " / " + what_of(c.exception));
    });
    auto f = aio::create_future<int>(loop);
    Log log;
    f->add_done_callback([&] { throw Marked(8); }, "the thrower");
    f->add_done_callback([&] { log.push_back("second"); });
    f->set_result(0);
    loop.run_once();
    REQUIRE(log == Log{"second"});
    REQUIRE(reports.size() == 1);
    REQUIRE_THAT(reports[0], Catch::Contains("the thrower") && Catch::Contains("marked 8"));
}

TEST_CASE("Future: a move-only value is moved out by result()", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<std::unique_ptr<int>>(loop);
    f->set_result(std::make_unique<int>(5));
    std::unique_ptr<int> p = f->result();
    REQUIRE(p);
    REQUIRE(*p == 5);
}

TEST_CASE("Future<void>: set_result() without a value; result() returns or raises", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future(loop);
    STATIC_REQUIRE(std::is_same_v<decltype(f), aio::Ref<aio::Future<void>>>);
    REQUIRE_THROWS_AS(f->result(), aio::InvalidStateError);
    bool called = false;
    f->add_done_callback([&] { called = true; });
    f->set_result();
    REQUIRE(f->done());
    REQUIRE_NOTHROW(f->result());
    REQUIRE_THROWS_AS(f->set_result(), aio::InvalidStateError);
    REQUIRE_FALSE(called);
    loop.run_once();
    REQUIRE(called);

    auto g = aio::create_future(loop);
    g->set_exception(std::make_exception_ptr(Marked(6)));
    REQUIRE_THROWS_AS(g->result(), Marked);
}

TEST_CASE("Future: co_await fut suspends the task until a callback sets the result", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, await_int(f, &log, "task"));
    one_pass(loop);
    REQUIRE(log == Log{"task waits"});
    // Nothing completes the future: the task stays suspended, and the loop has nothing ready.
    for (int i = 0; i < 3; ++i) one_pass(loop);
    REQUIRE(log == Log{"task waits"});
    REQUIRE_FALSE(t->done());
    REQUIRE(loop.ready_count() == 0);

    loop.call_soon([&] {
        f->set_result(5);
        log.push_back("callback set it");
    });
    one_pass(loop);  // the callback runs; the task is only scheduled
    REQUIRE(log == Log{"task waits", "callback set it"});
    one_pass(loop);
    REQUIRE(log == Log{"task waits", "callback set it", "task got 5"});
    REQUIRE(t->done());
    REQUIRE(t->result() == 5);
}

TEST_CASE("Future: co_await fut resumes after set_result from another task, on a later pass", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto waiter = aio::create_task(loop, await_int(f, &log, "waiter"));
    auto setter = aio::create_task(loop, set_after_yield(f, &log));
    loop.run_until_complete(waiter);
    // The setter goes on after set_result; the waiter resumes only on a later pass.
    REQUIRE(log == Log{"waiter waits", "setter runs", "setter sets", "setter goes on", "waiter got 7"});
    REQUIRE(setter->done());
}

TEST_CASE("Future: several tasks waiting on one future all resume, in the order they waited", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    auto a = aio::create_task(loop, await_int(f, &log, "a"));
    auto b = aio::create_task(loop, await_int(f, &log, "b"));
    auto c = aio::create_task(loop, await_int(f, &log, "c"));
    one_pass(loop);
    f->set_result(1);
    one_pass(loop);
    REQUIRE(log == Log{"a waits", "b waits", "c waits", "a got 1", "b got 1", "c got 1"});
}

TEST_CASE("Future: co_await on a future that is already done does not suspend", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future<int>(loop);
    f->set_result(4);
    auto a = aio::create_task(loop, await_int(f, &log, "a"));
    auto b = aio::create_task(loop, append(&log, "b"));
    one_pass(loop);
    // a ran to its end within its first step, before b's first step.
    REQUIRE(log == Log{"a waits", "a got 4", "b"});
    REQUIRE(a->done());
}

TEST_CASE("Future: co_await fut rethrows the future's exception; a cancelled future raises CancelledError", "[stage3]") {
    TEST_LOOP(loop);
    SECTION("exception") {
        auto f = aio::create_future<int>(loop);
        auto t = aio::create_task(loop, await_failing(f));
        one_pass(loop);
        f->set_exception(std::make_exception_ptr(Marked(12)));
        REQUIRE(loop.run_until_complete(t) == "caught 12");
    }
    SECTION("cancelled") {
        Log log;
        auto f = aio::create_future<int>(loop);
        auto t = aio::create_task(loop, await_int(f, &log, "t"));
        one_pass(loop);
        REQUIRE(f->cancel("stop"));
        one_pass(loop);
        REQUIRE(t->done());
        REQUIRE(t->cancelled());  // the CancelledError went through the coroutine
        REQUIRE(log == Log{"t waits"});
        try {
            (void)t->result();
            FAIL("result() did not throw");
        } catch (const aio::CancelledError& e) {
            REQUIRE(e.message() == "stop");
        }
    }
}

TEST_CASE("Future<void>: co_await suspends until set_result()", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto f = aio::create_future(loop);
    auto t = aio::create_task(loop, await_void(f, &log));
    one_pass(loop);
    REQUIRE(log == Log{"waits"});
    f->set_result();
    loop.run_until_complete(t);
    REQUIRE(log == Log{"waits", "resumed"});
}

TEST_CASE("Future: awaiting a future of another loop raises RuntimeError in the task", "[stage3]") {
    TEST_LOOP(loop);
    TEST_LOOP(other);
    auto f = aio::create_future<int>(other);
    std::string r = loop.run_until_complete(await_foreign(f));
    REQUIRE_THAT(r, Catch::StartsWith("RuntimeError: ") && Catch::Contains("another event loop"));
    REQUIRE_FALSE(f->done());
}
