// Stage 3 tests: the functions of tasks.py and runners.py. run() returns, rethrows, cleans
// up what was left over; sleep(0) yields exactly one pass; gather keeps argument order,
// propagates the first error (or returns them all) and cancels its children when cancelled;
// wait splits done from pending for each return_when and a timeout; wait_for times out by
// cancelling the inner awaitable; as_completed gives results in completion order.
#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// ---- coroutines (free functions with by-value parameters; state through pointers) ----

aio::Coroutine<int> immediate(int v) { co_return v; }

aio::Coroutine<int> fails_now(int id) {
    throw Marked(id);
    co_return 0;
}

aio::Coroutine<int> after(double delay, int v, Log* log) {
    co_await aio::sleep(delay);
    if (log) log->push_back("finished " + std::to_string(v));
    co_return v;
}

aio::Coroutine<std::string> string_after(double delay, std::string v, Log* log) {
    co_await aio::sleep(delay);
    if (log) log->push_back("finished " + v);
    co_return v;
}

aio::Coroutine<> void_after(double delay, Log* log) {
    co_await aio::sleep(delay);
    if (log) log->push_back("finished void");
}

aio::Coroutine<int> fails_after(double delay, int id, Log* log) {
    co_await aio::sleep(delay);
    if (log) log->push_back("failing " + std::to_string(id));
    throw Marked(id);
}

aio::Coroutine<int> await_future(aio::Ref<aio::Future<int>> f) {
    int v = co_await f;
    co_return v;
}

// Sleeps; if cancelled, records it and lets the cancellation go on.
struct Child {
    bool started = false;
    bool cancelled = false;
    bool finished = false;
};
aio::Coroutine<int> child(double delay, int v, Child* c) {
    c->started = true;
    std::exception_ptr cancelled;
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError&) {
        c->cancelled = true;
        cancelled = std::current_exception();
    }
    if (cancelled) std::rethrow_exception(cancelled);
    c->finished = true;
    co_return v;
}

// Like child(), but it finishes when `gate` is set instead of after a delay.
aio::Coroutine<int> gated(aio::Ref<aio::Future<int>> gate, Child* c) {
    c->started = true;
    std::exception_ptr cancelled;
    int v = 0;
    try {
        v = co_await gate;
    } catch (const aio::CancelledError&) {
        c->cancelled = true;
        cancelled = std::current_exception();
    }
    if (cancelled) std::rethrow_exception(cancelled);
    c->finished = true;
    co_return v;
}

// Like child(), but its cleanup takes an await before it re-raises.
aio::Coroutine<int> child_with_slow_cleanup(double delay, Child* c) {
    c->started = true;
    std::exception_ptr cancelled;
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        co_await aio::sleep(0.001);
        c->cancelled = true;  // the cleanup ran to its end
        std::rethrow_exception(cancelled);
    }
    c->finished = true;
    co_return 1;
}

// ------------------------------------------------------------------------------- run()

aio::Coroutine<int> answer() {
    co_await aio::sleep(0.001);
    co_return 42;
}

aio::Coroutine<> nothing(bool* ran) {
    co_await aio::yield_now();
    *ran = true;
}

struct RunState {
    Child leftover;
    bool loop_was_running = false;
    bool nested_raised = false;
    std::string nested_message;
};

aio::Coroutine<int> main_with_leftover(RunState* s) {
    (void)aio::create_task(child(10.0, 1, &s->leftover), "leftover");
    co_await aio::sleep(0.001);  // the leftover has started sleeping
    s->loop_was_running = aio::running_loop_or_null() != nullptr;
    co_return 7;
}

aio::Coroutine<int> main_failing_with_leftover(RunState* s) {
    (void)aio::create_task(child(10.0, 1, &s->leftover), "leftover");
    co_await aio::sleep(0.001);
    throw Marked(5);
}

aio::Coroutine<int> main_with_slow_cleanup_leftover(RunState* s) {
    (void)aio::create_task(child_with_slow_cleanup(10.0, &s->leftover), "slow-cleanup");
    co_await aio::sleep(0.001);
    co_return 3;
}

// A leftover whose cleanup fails: run() reports that exception.
aio::Coroutine<> leftover_failing_on_cancel() {
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
        throw Marked(77);
    }
}

aio::Coroutine<int> main_with_failing_leftover(Reports* reports) {
    capture_reports(aio::get_running_loop(), reports);
    (void)aio::create_task(leftover_failing_on_cancel(), "bad-leftover");
    co_await aio::sleep(0.001);
    co_return 0;
}

aio::Coroutine<int> main_calling_run(RunState* s) {
    try {
        (void)aio::run(immediate(1));
    } catch (const aio::RuntimeError& e) {
        s->nested_raised = true;
        s->nested_message = e.what();
    }
    co_await aio::yield_now();
    co_return 0;
}

// ------------------------------------------------------------------------------- sleep

aio::Coroutine<> alternate(std::string name, int n, Log* log) {
    for (int i = 0; i < n; ++i) {
        log->push_back(name + std::to_string(i));
        co_await aio::sleep(0);
    }
}

aio::Coroutine<> counted_yields(int n, int* steps) {
    for (int i = 0; i < n; ++i) {
        ++*steps;
        co_await aio::sleep(0.0);
    }
    ++*steps;
}

aio::Coroutine<std::string> sleep_with_result(double d) {
    std::string r = co_await aio::sleep(d, std::string("slept"));
    co_return r;
}

aio::Coroutine<double> timed_sleep(double d) {
    auto t0 = std::chrono::steady_clock::now();
    co_await aio::sleep(d);
    co_return seconds_since(t0);
}

aio::Coroutine<> negative_sleep(int* steps) {
    ++*steps;
    co_await aio::sleep(-1.0);
    ++*steps;
}

// ------------------------------------------------------------------------------ gather

aio::Coroutine<std::tuple<int, int, int>> gather_reverse(Log* log) {
    auto r = co_await aio::gather(after(0.03, 1, log), after(0.02, 2, log), after(0.01, 3, log));
    co_return r;
}

aio::Coroutine<std::tuple<int, std::string, aio::None>> gather_mixed(Log* log) {
    auto r = co_await aio::gather(after(0.02, 1, log), string_after(0.01, "two", log), void_after(0.0, log));
    co_return r;
}

aio::Coroutine<std::tuple<int, int>> gather_futures_and_tasks(aio::Ref<aio::Future<int>> f) {
    auto t = aio::create_task(after(0.001, 10, nullptr));
    auto r = co_await aio::gather(f, t);
    co_return r;
}

aio::Coroutine<std::vector<int>> gather_vector(int n, Log* log) {
    std::vector<aio::Coroutine<int>> cs;
    for (int i = 0; i < n; ++i) cs.push_back(after(0.001 * (n - i), i, log));
    auto r = co_await aio::gather(std::move(cs));
    co_return r;
}

aio::Coroutine<std::vector<aio::None>> gather_void_vector(int n, Log* log) {
    std::vector<aio::Coroutine<>> cs;
    for (int i = 0; i < n; ++i) cs.push_back(void_after(0.001, log));
    auto r = co_await aio::gather(std::move(cs));
    co_return r;
}

aio::Coroutine<std::vector<int>> gather_empty_vector() {
    std::vector<aio::Coroutine<int>> cs;
    auto r = co_await aio::gather(std::move(cs));
    co_return r;
}

using IntOrError = aio::ResultOrException<int>;

aio::Coroutine<std::tuple<IntOrError, IntOrError, aio::ResultOrException<std::string>>> gather_return_exceptions(Log* log) {
    auto r = co_await aio::gather(aio::return_exceptions, after(0.02, 1, log), fails_after(0.01, 2, log),
                                  string_after(0.0, "three", log));
    co_return r;
}

aio::Coroutine<std::vector<IntOrError>> gather_vector_return_exceptions(aio::Ref<aio::Task<int>> cancelled) {
    std::vector<aio::Ref<aio::Task<int>>> ts;
    ts.push_back(aio::create_task(fails_after(0.001, 4, nullptr)));
    ts.push_back(aio::create_task(after(0.002, 5, nullptr)));
    ts.push_back(cancelled);
    auto r = co_await aio::gather(aio::return_exceptions, std::move(ts));
    co_return r;
}

struct GatherFailure {
    std::string caught;
    Child slow;
    bool slow_done_at_catch = true;
};

aio::Coroutine<> gather_first_exception(GatherFailure* g, aio::Ref<aio::Future<int>> gate, Log* log) {
    try {
        auto r = co_await aio::gather(fails_after(0.001, 6, log), gated(gate, &g->slow));
        (void)r;
        g->caught = "nothing";
    } catch (const Marked& m) {
        g->caught = m.what();
        g->slow_done_at_catch = g->slow.finished;
    }
}

aio::Coroutine<int> fails_when(aio::Ref<aio::Future<int>> gate, int id) {
    co_await gate;
    throw Marked(id);
}

aio::Coroutine<std::string> gather_two_failures(aio::Ref<aio::Future<int>> gate) {
    std::string caught;
    try {
        auto r = co_await aio::gather(fails_after(0.001, 1, nullptr), fails_when(gate, 2));
        (void)r;
    } catch (const Marked& m) {
        caught = m.what();
    }
    gate->set_result(0);  // now the second child fails too, after the gather is done
    co_return caught;
}

aio::Coroutine<std::tuple<int, int>> gather_two_children(Child* a, Child* b) {
    auto r = co_await aio::gather(child(10.0, 1, a), child(10.0, 2, b));
    co_return r;
}

aio::Coroutine<std::tuple<int, int>> gather_tasks(aio::Ref<aio::Task<int>> a, aio::Ref<aio::Task<int>> b) {
    auto r = co_await aio::gather(a, b);
    co_return r;
}

// -------------------------------------------------------------------------------- wait

using Tasks = std::vector<aio::Ref<aio::Task<int>>>;

aio::Coroutine<aio::WaitResult<aio::Task<int>>> wait_on(Tasks ts, std::optional<double> timeout, aio::ReturnWhen when) {
    auto r = co_await aio::wait(std::move(ts), timeout, when);
    co_return r;
}

aio::Coroutine<std::string> wait_empty() {
    Tasks none;
    try {
        auto r = co_await aio::wait(std::move(none));
        (void)r;
        co_return "no error";
    } catch (const std::invalid_argument&) {
        co_return "invalid_argument";
    }
}

bool contains(const Tasks& v, const aio::Ref<aio::Task<int>>& t) {
    for (auto& x : v)
        if (x == t) return true;
    return false;
}

// ---------------------------------------------------------------------------- wait_for

aio::Coroutine<int> wait_for_int(aio::Coroutine<int> c, double timeout) {
    int v = co_await aio::wait_for(std::move(c), timeout);
    co_return v;
}

aio::Coroutine<std::string> wait_for_outcome(aio::Coroutine<int> c, double timeout) {
    try {
        int v = co_await aio::wait_for(std::move(c), timeout);
        co_return "value " + std::to_string(v);
    } catch (const aio::TimeoutError& e) {
        co_return std::string("TimeoutError: ") + e.what();
    } catch (const Marked& m) {
        co_return std::string("Marked: ") + m.what();
    }
}

aio::Coroutine<int> wait_for_task(aio::Ref<aio::Task<int>> t, double timeout) {
    int v = co_await aio::wait_for(t, timeout);
    co_return v;
}

// ------------------------------------------------------------------------ as_completed

aio::Coroutine<std::vector<std::string>> collect_as_completed(Tasks ts) {
    auto ac = aio::as_completed(std::move(ts));
    std::vector<std::string> out;
    while (ac.size() > 0) {
        try {
            int v = co_await ac.next();
            out.push_back(std::to_string(v));
        } catch (const Marked& m) {
            out.push_back(m.what());
        }
    }
    co_return out;
}

aio::Coroutine<std::vector<int>> drain_after(Tasks ts, aio::Ref<aio::Future<int>> go) {
    auto ac = aio::as_completed(std::move(ts));
    co_await go;  // meanwhile every task finishes
    std::vector<int> out;
    while (ac.size() > 0) {
        int v = co_await ac.next();
        out.push_back(v);
    }
    co_return out;
}

aio::Coroutine<std::string> first_as_completed(Tasks ts) {
    auto ac = aio::as_completed(std::move(ts));
    int v = co_await ac.next();
    co_return std::to_string(v);  // the others are left: ac goes away with this frame
}

aio::Coroutine<std::string> gather_tasks_outcome(aio::Ref<aio::Task<int>> a, aio::Ref<aio::Task<int>> b) {
    try {
        auto r = co_await aio::gather(a, b);
        co_return "value " + std::to_string(std::get<0>(r));
    } catch (const Marked& m) {
        co_return m.what();
    }
}

}  // namespace

// ------------------------------------------------------------------------------- run()

TEST_CASE("run(): returns the coroutine's result", "[stage3]") {
    REQUIRE(aio::run(answer()) == 42);
    bool ran = false;
    aio::run(nothing(&ran));
    REQUIRE(ran);
    REQUIRE(aio::running_loop_or_null() == nullptr);  // no loop is left running
}

TEST_CASE("run(): rethrows the coroutine's exception, with its type", "[stage3]") {
    try {
        aio::run(fails_now(31));
        FAIL("run() did not throw");
    } catch (const Marked& m) {
        REQUIRE(m.id == 31);
    }
}

TEST_CASE("run(): cancels the tasks left over, and their cleanup runs", "[stage3]") {
    RunState s;
    SECTION("after a result") {
        REQUIRE(aio::run(main_with_leftover(&s)) == 7);
    }
    SECTION("after an exception") {
        REQUIRE_THROWS_AS(aio::run(main_failing_with_leftover(&s)), Marked);
    }
    REQUIRE(s.leftover.started);
    REQUIRE(s.leftover.cancelled);  // the catch (CancelledError) in the leftover ran
    REQUIRE_FALSE(s.leftover.finished);
}

// run()'s clean-up must drive the loop as a running loop (asyncio: run_until_complete(gather(
// ...))): a cleanup that awaits sleep(d > 0), or calls get_running_loop(), create_future() or
// create_task(coro), would otherwise get RuntimeError("no running event loop").
TEST_CASE("run(): a leftover's cleanup may await (sleep) before it re-raises", "[stage3]") {
    RunState s;
    REQUIRE(aio::run(main_with_slow_cleanup_leftover(&s)) == 3);
    REQUIRE(s.leftover.started);
    REQUIRE(s.leftover.cancelled);  // set after the cleanup's sleep
}

TEST_CASE("run(): reports a leftover task's exception", "[stage3]") {
    Reports reports;
    REQUIRE(aio::run(main_with_failing_leftover(&reports)) == 0);
    REQUIRE(reports.size() == 1);
    REQUIRE_THAT(reports[0].message, Catch::Contains("bad-leftover"));
    REQUIRE(reports[0].exception == "marked 77");
}

TEST_CASE("run(): inside a running loop raises RuntimeError", "[stage3]") {
    RunState s;
    REQUIRE(aio::run(main_calling_run(&s)) == 0);
    REQUIRE(s.nested_raised);
    REQUIRE_THAT(s.nested_message, Catch::Contains("co_await"));
}

// ------------------------------------------------------------------------------- sleep

TEST_CASE("sleep(0): two tasks alternating with sleep(0) interleave one step each", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto a = aio::create_task(loop, alternate("A", 3, &log));
    auto b = aio::create_task(loop, alternate("B", 3, &log));
    loop.run_until_complete(b);
    REQUIRE(log == Log{"A0", "B0", "A1", "B1", "A2", "B2"});
    REQUIRE(a->done());
}

TEST_CASE("sleep(0): yields exactly one pass", "[stage3]") {
    TEST_LOOP(loop);
    int steps = 0;
    auto t = aio::create_task(loop, counted_yields(3, &steps));
    for (int pass = 1; pass <= 4; ++pass) {
        one_pass(loop);
        REQUIRE(steps == pass);
    }
    REQUIRE(t->done());
    REQUIRE(loop.timer_count() == 0);  // no timer for a zero delay

    int neg = 0;
    auto n = aio::create_task(loop, negative_sleep(&neg));
    one_pass(loop);
    REQUIRE(neg == 1);
    one_pass(loop);
    REQUIRE(neg == 2);  // a negative delay is sleep(0) too
    REQUIRE(n->done());
}

TEST_CASE("sleep(d) waits at least d; sleep(d, result) returns result", "[stage3]") {
    TEST_LOOP(loop);
    double took = loop.run_until_complete(timed_sleep(0.02));
    REQUIRE(took >= 0.019);
    REQUIRE(took < 2.0);
    REQUIRE(loop.run_until_complete(sleep_with_result(0.001)) == "slept");
    REQUIRE(loop.timer_count() == 0);
}

// ------------------------------------------------------------------------------ gather

TEST_CASE("gather: results come in argument order, whatever order the children finish in", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto t0 = std::chrono::steady_clock::now();
    auto r = loop.run_until_complete(gather_reverse(&log));
    REQUIRE(r == std::make_tuple(1, 2, 3));
    REQUIRE(log == Log{"finished 3", "finished 2", "finished 1"});
    REQUIRE(seconds_since(t0) < 0.06 + 1.0);  // concurrently: about the longest, not the sum
}

TEST_CASE("gather: mixed result types; a void child gives None", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto r = loop.run_until_complete(gather_mixed(&log));
    REQUIRE(std::get<0>(r) == 1);
    REQUIRE(std::get<1>(r) == "two");
    REQUIRE(std::get<2>(r) == aio::None{});
    REQUIRE(log == Log{"finished void", "finished two", "finished 1"});
}

TEST_CASE("gather: accepts futures and tasks as well as coroutines", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    loop.call_later(0.005, [f] { f->set_result(20); });
    REQUIRE(loop.run_until_complete(gather_futures_and_tasks(f)) == std::make_tuple(20, 10));
}

TEST_CASE("gather: over a vector gives a vector of results, in order", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto r = loop.run_until_complete(gather_vector(5, &log));
    REQUIRE(r == std::vector<int>{0, 1, 2, 3, 4});
    REQUIRE(log.front() == "finished 4");  // the last child had the shortest sleep
    Log vlog;
    auto v = loop.run_until_complete(gather_void_vector(3, &vlog));
    REQUIRE(v.size() == 3);
    REQUIRE(vlog.size() == 3);
    REQUIRE(loop.run_until_complete(gather_empty_vector()).empty());
}

TEST_CASE("gather: with return_exceptions, exceptions come back in place of results", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    auto r = loop.run_until_complete(gather_return_exceptions(&log));
    REQUIRE(std::get<0>(std::get<0>(r)) == 1);
    auto& second = std::get<1>(r);
    REQUIRE(std::holds_alternative<std::exception_ptr>(second));
    REQUIRE(what_of(std::get<std::exception_ptr>(second)) == "marked 2");
    REQUIRE(std::get<0>(std::get<2>(r)) == "three");
    // Every child ran to its end: the failure did not end the gather early.
    REQUIRE(log == Log{"finished three", "failing 2", "finished 1"});
}

TEST_CASE("gather: with return_exceptions over a vector, a cancelled child gives CancelledError", "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    Child c;
    auto cancelled = aio::create_task(loop, child(10.0, 0, &c));
    cancelled->cancel("not needed");
    auto r = loop.run_until_complete(gather_vector_return_exceptions(cancelled));
    REQUIRE(r.size() == 3);
    REQUIRE(what_of(std::get<std::exception_ptr>(r[0])) == "marked 4");
    REQUIRE(std::get<0>(r[1]) == 5);
    REQUIRE_THROWS_AS(std::rethrow_exception(std::get<std::exception_ptr>(r[2])), aio::CancelledError);
    REQUIRE(what_of(std::get<std::exception_ptr>(r[2])) == "not needed");  // the child's own message
    one_pass(loop);
    REQUIRE(reports.empty());  // the exceptions were retrieved by gather
}

TEST_CASE("gather: without return_exceptions the first exception propagates; the others keep running", "[stage3]") {
    TEST_LOOP(loop);
    Log log;
    GatherFailure g;
    auto gate = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, gather_first_exception(&g, gate, &log));
    loop.run_until_complete(t);
    REQUIRE(g.caught == "marked 6");
    REQUIRE(g.slow.started);
    REQUIRE_FALSE(g.slow_done_at_catch);  // the gather did not wait for it...
    one_pass(loop);
    REQUIRE_FALSE(g.slow.cancelled);  // ...nor cancel it
    gate->set_result(1);
    for (int i = 0; i < 3 && !g.slow.finished; ++i) one_pass(loop);
    REQUIRE(g.slow.finished);  // it finished afterwards, on its own
    REQUIRE_FALSE(g.slow.cancelled);
}

aio::Coroutine<std::string> gather_outcome(aio::Ref<aio::Task<int>> a, aio::Ref<aio::Task<int>> b) {
    try {
        co_await aio::gather(a, b);
    } catch (const aio::CancelledError& e) {
        co_return "CancelledError: " + e.message();
    }
    co_return "no error";
}

TEST_CASE("gather: a child cancelled on its own raises that child's CancelledError in the awaiter", "[stage3]") {
    TEST_LOOP(loop);
    Child a, b;
    auto ta = aio::create_task(loop, child(10.0, 1, &a));
    auto tb = aio::create_task(loop, child(0.001, 2, &b));
    auto t = aio::create_task(loop, gather_outcome(ta, tb));
    one_pass(loop);
    REQUIRE(ta->cancel("a is not wanted"));
    REQUIRE(loop.run_until_complete(t) == "CancelledError: a is not wanted");
    REQUIRE_FALSE(t->cancelled());  // gather failed; the task that awaited it caught that and returned
    loop.run_until_complete(tb);    // the other child was left running, as in asyncio
    REQUIRE(b.finished);
}

TEST_CASE("gather: cancelling the task that awaits a gather cancels its children", "[stage3]") {
    TEST_LOOP(loop);
    Child a, b;
    auto t = aio::create_task(loop, gather_two_children(&a, &b));
    SECTION("while the children run") {
        one_pass(loop);  // t starts the gather: the children are scheduled
        one_pass(loop);  // the children start sleeping
        REQUIRE(a.started);
        REQUIRE(b.started);
        REQUIRE(t->cancel("enough"));
        while (!t->done()) one_pass(loop);
        REQUIRE(t->cancelled());
        REQUIRE(a.cancelled);
        REQUIRE(b.cancelled);
        REQUIRE_THROWS_WITH(t->result(), "enough");  // the message went down and came back up
    }
    SECTION("before the children have started") {
        one_pass(loop);
        REQUIRE_FALSE(a.started);
        REQUIRE(t->cancel());
        while (!t->done()) one_pass(loop);
        REQUIRE(t->cancelled());
        REQUIRE_FALSE(a.started);  // cancelled before their first step: never ran
        REQUIRE_FALSE(b.started);
    }
    REQUIRE_FALSE(a.finished);
    REQUIRE_FALSE(b.finished);
}

TEST_CASE("gather: the awaiting task cancelled while a child's done-callback is already scheduled", "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    auto fa = aio::create_future<int>(loop);
    auto fb = aio::create_future<int>(loop);
    auto a = aio::create_task(loop, await_future(fa), "a");
    auto b = aio::create_task(loop, await_future(fb), "b");
    auto t = aio::create_task(loop, gather_tasks(a, b), "gatherer");
    one_pass(loop);  // a and b wait on their futures; t waits on the gather
    fa->set_result(1);
    one_pass(loop);  // a resumes and finishes: the gather's callback on a is now scheduled
    REQUIRE(a->done());
    REQUIRE(loop.ready_count() >= 1);
    REQUIRE(t->cancel());
    SECTION("the loop goes on") {
        while (!t->done()) one_pass(loop);
        REQUIRE(t->cancelled());
        REQUIRE(b->cancelled());
        REQUIRE(fb->cancelled());
        REQUIRE(a->result() == 1);
    }
    SECTION("the loop is closed at once") {
        loop.close();  // frees the gather with its callback still queued (ASan: no use after free)
        REQUIRE(t->done());
        REQUIRE(b->done());
    }
}

// Two children: a finishes, and b finishes one pass later, so that b's done-callback is
// already queued (behind the task's wakeup) when the combinator returns and its state (a
// frame, a GatheringFuture, an AsCompleted) is freed. That callback must then never run.
TEST_CASE("combinators: a callback still queued when gather, wait or as_completed returns never runs",
          "[stage3]") {
    TEST_LOOP(loop);
    auto fa = aio::create_future<int>(loop);
    auto fb = aio::create_future<int>(loop);
    auto a = aio::create_task(loop, await_future(fa), "a");
    aio::Ref<aio::Task<int>> b;
    aio::Ref<aio::FutureBase> t;
    SECTION("wait(FIRST_COMPLETED)") {
        b = aio::create_task(loop, await_future(fb), "b");
        t = aio::create_task(loop, wait_on(Tasks{a, b}, std::nullopt, aio::FIRST_COMPLETED));
    }
    SECTION("gather, the first child failing") {
        a = aio::create_task(loop, fails_when(fa, 8), "a fails");
        b = aio::create_task(loop, await_future(fb), "b");
        t = aio::create_task(loop, gather_tasks_outcome(a, b));
    }
    SECTION("as_completed, left after the first result") {
        b = aio::create_task(loop, await_future(fb), "b");
        t = aio::create_task(loop, first_as_completed(Tasks{a, b}));
    }
    one_pass(loop);  // a and b wait on their futures; t waits on the combinator
    fa->set_result(1);
    loop.call_soon([fb] { fb->set_result(2); });  // b wakes after a's step, in the same pass
    one_pass(loop);  // a finishes (its callback is queued); b is woken
    REQUIRE(a->done());
    REQUIRE_FALSE(b->done());
    one_pass(loop);  // a's callback wakes t; b finishes and its callback is queued behind t
    REQUIRE(b->done());
    REQUIRE_FALSE(t->done());
    one_pass(loop);  // t returns, freeing the combinator's state; b's callback must be skipped
    REQUIRE(t->done());
    for (int i = 0; i < 3; ++i) one_pass(loop);  // ASan: no use after free
}

// A child that fails after gather has already failed: as asyncio's _GatheringFuture does, its
// exception counts as retrieved (there is nobody left to give it to: the gather reported the
// first failure), so it is not reported as "Task exception was never retrieved".
TEST_CASE("gather: a second child's exception after the gather failed is not reported as lost", "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    auto gate = aio::create_future<int>(loop);
    std::string caught = loop.run_until_complete(gather_two_failures(gate));
    REQUIRE(caught == "marked 1");
    for (int i = 0; i < 3; ++i) one_pass(loop);  // the second child fails and is freed
    REQUIRE(reports.empty());
}

// -------------------------------------------------------------------------------- wait

TEST_CASE("wait: ALL_COMPLETED waits for every task", "[stage3]") {
    TEST_LOOP(loop);
    Tasks ts{aio::create_task(loop, after(0.01, 1, nullptr)), aio::create_task(loop, fails_after(0.001, 2, nullptr)),
             aio::create_task(loop, immediate(3))};
    auto r = loop.run_until_complete(wait_on(ts, std::nullopt, aio::ALL_COMPLETED));
    REQUIRE(r.done.size() == 3);
    REQUIRE(r.pending.empty());
    for (auto& t : ts) REQUIRE(contains(r.done, t));
    REQUIRE(ts[0]->result() == 1);
    REQUIRE_THROWS_AS(ts[1]->result(), Marked);
}

TEST_CASE("wait: FIRST_COMPLETED returns when one is done; the others keep running", "[stage3]") {
    TEST_LOOP(loop);
    Child slow;
    auto gate = aio::create_future<int>(loop);
    auto fast = aio::create_task(loop, after(0.001, 1, nullptr));
    auto slow_task = aio::create_task(loop, gated(gate, &slow));
    auto r = loop.run_until_complete(wait_on(Tasks{slow_task, fast}, std::nullopt, aio::FIRST_COMPLETED));
    REQUIRE(r.done.size() == 1);
    REQUIRE(r.done[0] == fast);
    REQUIRE(r.pending.size() == 1);
    REQUIRE(r.pending[0] == slow_task);
    REQUIRE_FALSE(slow_task->done());
    gate->set_result(2);
    REQUIRE(loop.run_until_complete(slow_task) == 2);  // not cancelled
    REQUIRE_FALSE(slow.cancelled);
}

TEST_CASE("wait: FIRST_EXCEPTION returns at the first failure, or when all are done", "[stage3]") {
    TEST_LOOP(loop);
    SECTION("a failure") {
        auto ok = aio::create_task(loop, after(0.001, 1, nullptr));
        auto bad = aio::create_task(loop, fails_after(0.005, 2, nullptr));
        Child slow;
        auto slow_task = aio::create_task(loop, child(10.0, 3, &slow));
        auto r = loop.run_until_complete(wait_on(Tasks{ok, bad, slow_task}, std::nullopt, aio::FIRST_EXCEPTION));
        REQUIRE(r.done.size() == 2);  // ok finished first but did not end the wait; bad did
        REQUIRE(contains(r.done, ok));
        REQUIRE(contains(r.done, bad));
        REQUIRE(r.pending.size() == 1);
        REQUIRE(r.pending[0] == slow_task);
        REQUIRE_FALSE(slow.cancelled);
        REQUIRE_THROWS_AS(bad->result(), Marked);
        slow_task->cancel();
        loop.run_until_complete(wait_on(Tasks{slow_task}, std::nullopt, aio::ALL_COMPLETED));
    }
    SECTION("no failure: like ALL_COMPLETED") {
        auto a = aio::create_task(loop, after(0.001, 1, nullptr));
        auto b = aio::create_task(loop, after(0.005, 2, nullptr));
        auto r = loop.run_until_complete(wait_on(Tasks{a, b}, std::nullopt, aio::FIRST_EXCEPTION));
        REQUIRE(r.done.size() == 2);
        REQUIRE(r.pending.empty());
    }
}

TEST_CASE("wait: a timeout returns what is done and what is pending, and cancels nothing", "[stage3]") {
    TEST_LOOP(loop);
    Child slow;
    auto fast = aio::create_task(loop, after(0.001, 1, nullptr));
    auto slow_task = aio::create_task(loop, child(10.0, 2, &slow));
    auto t0 = std::chrono::steady_clock::now();
    auto r = loop.run_until_complete(wait_on(Tasks{fast, slow_task}, 0.03, aio::ALL_COMPLETED));
    double took = seconds_since(t0);
    REQUIRE(took >= 0.029);
    REQUIRE(took < 2.0);
    REQUIRE(r.done.size() == 1);
    REQUIRE(r.done[0] == fast);
    REQUIRE(r.pending.size() == 1);
    REQUIRE(r.pending[0] == slow_task);
    REQUIRE_FALSE(slow_task->done());
    REQUIRE_FALSE(slow.cancelled);
    slow_task->cancel();
    while (!slow_task->done()) one_pass(loop);
}

TEST_CASE("wait: an empty set is an error", "[stage3]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(wait_empty()) == "invalid_argument");
}

// exception() marks an exception retrieved, so wait() may read it only when it must (for
// FIRST_EXCEPTION, as asyncio does): a task that failed and was only wait()ed on with
// ALL_COMPLETED is still reported when it is freed.
TEST_CASE("wait: ALL_COMPLETED does not count as retrieving a task's exception", "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    {
        Tasks ts{aio::create_task(loop, fails_now(13), "waited-on")};
        auto r = loop.run_until_complete(wait_on(ts, std::nullopt, aio::ALL_COMPLETED));
        REQUIRE(r.done.size() == 1);
    }  // nobody ever looked at the exception
    one_pass(loop);
    REQUIRE(reports.size() == 1);
}

// ---------------------------------------------------------------------------- wait_for

TEST_CASE("wait_for: returns the result when it comes in time", "[stage3]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(wait_for_int(after(0.001, 8, nullptr), 5.0)) == 8);
    REQUIRE(loop.run_until_complete(wait_for_outcome(fails_after(0.001, 9, nullptr), 5.0)) == "Marked: marked 9");
    REQUIRE(loop.timer_count() <= 1);  // the timeout's timer was cancelled...
    one_pass(loop);
    REQUIRE(loop.timer_count() == 0);  // ...and is gone
}

TEST_CASE("wait_for: on timeout, cancels the inner awaitable, waits for its cleanup, raises TimeoutError", "[stage3]") {
    TEST_LOOP(loop);
    Child c;
    auto inner = aio::create_task(loop, child(10.0, 1, &c));
    auto t0 = std::chrono::steady_clock::now();
    try {
        loop.run_until_complete(wait_for_task(inner, 0.02));
        FAIL("wait_for did not time out");
    } catch (const aio::TimeoutError& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("timed out"));
    }
    double took = seconds_since(t0);
    REQUIRE(took >= 0.019);
    REQUIRE(took < 2.0);
    REQUIRE(inner->cancelled());  // already finished cancelling when TimeoutError arrived
    REQUIRE(c.cancelled);         // its cleanup ran
}

TEST_CASE("wait_for: a coroutine that times out is cancelled too", "[stage3]") {
    TEST_LOOP(loop);
    Child c;
    std::string r = loop.run_until_complete(wait_for_outcome(child(10.0, 1, &c), 0.01));
    REQUIRE_THAT(r, Catch::StartsWith("TimeoutError"));
    REQUIRE(c.started);
    REQUIRE(c.cancelled);
}

TEST_CASE("wait_for: cancelling the task that waits cancels the inner awaitable too", "[stage3]") {
    TEST_LOOP(loop);
    Child c;
    auto inner = aio::create_task(loop, child(10.0, 1, &c));
    auto outer = aio::create_task(loop, wait_for_task(inner, 10.0));
    one_pass(loop);
    one_pass(loop);
    REQUIRE(c.started);
    REQUIRE(outer->cancel());
    auto t0 = std::chrono::steady_clock::now();
    while (!outer->done() && seconds_since(t0) < 5.0) one_pass(loop);
    REQUIRE(outer->cancelled());
    REQUIRE(inner->cancelled());
    REQUIRE(c.cancelled);
}

// Catches the cancellation wait_for sends on timeout and finishes anyway: with a value
// (fail == false) or with a different error.
aio::Coroutine<int> shrugs_off_cancel(int v, bool fail) {
    bool was_cancelled = false;
    try {
        co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
        was_cancelled = true;
    }
    if (!was_cancelled) co_return -1;
    if (fail) throw Marked(v);
    co_return v;
}

TEST_CASE("wait_for: an awaitable that catches the cancellation and finishes gives its own outcome", "[stage3]") {
    TEST_LOOP(loop);
    // asyncio returns fut.result() after cancelling: the value, or the other error.
    REQUIRE(loop.run_until_complete(wait_for_outcome(shrugs_off_cancel(42, false), 0.01)) == "value 42");
    REQUIRE(loop.run_until_complete(wait_for_outcome(shrugs_off_cancel(7, true), 0.01)) == "Marked: marked 7");
}

aio::Coroutine<std::string> cancel_message_of_wait_for(aio::Ref<aio::Task<int>> inner) {
    try {
        co_await aio::wait_for(inner, 10.0);
    } catch (const aio::CancelledError& e) {
        co_return "CancelledError: " + e.message();
    }
    co_return "no cancellation";
}

TEST_CASE("wait_for: when the waiting task is cancelled, its own CancelledError (and message) comes out", "[stage3]") {
    TEST_LOOP(loop);
    Child c;
    auto inner = aio::create_task(loop, child(10.0, 1, &c));
    auto outer = aio::create_task(loop, cancel_message_of_wait_for(inner));
    one_pass(loop);
    one_pass(loop);
    REQUIRE(outer->cancel("stop now"));
    auto t0 = std::chrono::steady_clock::now();
    while (!outer->done() && seconds_since(t0) < 5.0) one_pass(loop);
    REQUIRE(outer->result() == "CancelledError: stop now");
    REQUIRE(inner->cancelled());
}

// ------------------------------------------------------------------------ as_completed

TEST_CASE("as_completed: gives the results in the order the tasks finish", "[stage3]") {
    TEST_LOOP(loop);
    Tasks ts{aio::create_task(loop, after(0.03, 1, nullptr)), aio::create_task(loop, fails_after(0.02, 2, nullptr)),
             aio::create_task(loop, after(0.01, 3, nullptr)), aio::create_task(loop, immediate(4))};
    auto r = loop.run_until_complete(collect_as_completed(ts));
    REQUIRE(r == std::vector<std::string>{"4", "3", "marked 2", "1"});
}

TEST_CASE("as_completed: results that arrived before they are asked for keep their completion order", "[stage3]") {
    TEST_LOOP(loop);
    std::vector<aio::Ref<aio::Future<int>>> fs;
    Tasks ts;
    for (int i = 0; i < 3; ++i) {
        fs.push_back(aio::create_future<int>(loop));
        ts.push_back(aio::create_task(loop, await_future(fs.back())));
    }
    auto go = aio::create_future<int>(loop);
    auto consumer = aio::create_task(loop, drain_after(ts, go));
    one_pass(loop);
    for (int i : {2, 0, 1}) {  // the tasks finish in this order, each on its own pass
        fs[i]->set_result(i);
        one_pass(loop);
        one_pass(loop);
    }
    go->set_result(0);
    REQUIRE(loop.run_until_complete(consumer) == std::vector<int>{2, 0, 1});
}
