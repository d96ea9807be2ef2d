// Stage 3 tests: Coroutine and Task. Awaiting a coroutine runs it inside the same task;
// create_task starts a task on a later pass; a million awaits of finished children keep the
// stack flat; names, current_task() and all_tasks(); cancellation at every kind of await
// point; lost errors are reported; and nothing a destroyed task left behind can fire into
// freed (or reused) memory.
#include <catch2/catch.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <new>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// Counts live instances, to see that a destroyed coroutine frame ran its locals' destructors.
struct Probe {
    explicit Probe(int* live) : live(live) { ++*live; }
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;
    ~Probe() { --*live; }
    int* live;
};

// ---- coroutines used by the tests (free functions: no capturing lambda coroutines) ----

aio::Coroutine<int> immediate(int v) { co_return v; }

aio::Coroutine<int> fails_now(int id) {
    throw Marked(id);
    co_return 0;
}

aio::Coroutine<aio::TaskBase*> current_inside() { co_return aio::current_task().get(); }

aio::Coroutine<aio::TaskBase*> current_after_yield() {
    co_await aio::yield_now();
    co_return aio::current_task().get();
}

struct Identity {
    aio::TaskBase* outer = nullptr;
    aio::TaskBase* child = nullptr;
    aio::TaskBase* child_after_suspend = nullptr;
    aio::TaskBase* outer_after = nullptr;
    int value = 0;
    std::string caught;
};

aio::Coroutine<> outer_awaits_children(Identity* id) {
    id->outer = aio::current_task().get();
    id->child = co_await current_inside();
    id->child_after_suspend = co_await current_after_yield();
    id->outer_after = aio::current_task().get();
    id->value = co_await immediate(5);
    try {
        int v = co_await fails_now(3);
        id->value = v;
    } catch (const Marked& m) {
        id->caught = m.what();
    }
}

aio::Coroutine<int> deep(int depth) {
    if (depth == 0) {
        co_await aio::yield_now();
        co_return 0;
    }
    int below = co_await deep(depth - 1);
    co_return below + 1;
}

aio::Coroutine<long long> million_coroutine_awaits() {
    long long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) {
        int v = co_await immediate(i & 1);
        sum += v;
    }
    co_return sum;
}

template <typename F>
aio::Coroutine<long long> million_future_awaits(aio::Ref<F> fut) {
    long long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) {
        int v = co_await fut;
        sum += v;
    }
    co_return sum;
}

aio::Coroutine<> set_flag(bool* flag) {
    *flag = true;
    co_return;
}

aio::Coroutine<int> sleep_then(double delay, int v, Log* log) {
    co_await aio::sleep(delay);
    if (log) log->push_back("finished " + std::to_string(v));
    co_return v;
}

// The third article: a task that finishes before anyone awaits it.
struct Article3 {
    bool done_before_await = false;
    int ticks_before = -1;
    int ticks_after = -1;
    int result = 0;
    int ticks = 0;
    bool stop_ticking = false;
};

aio::Coroutine<> ticker(Article3* a) {
    while (!a->stop_ticking) {
        ++a->ticks;
        co_await aio::yield_now();
    }
}

aio::Coroutine<> article3_main(Article3* a) {
    auto tick = aio::create_task(ticker(a));
    auto t = aio::create_task(immediate(33));
    co_await aio::sleep(0.01);
    a->done_before_await = t->done();
    a->ticks_before = a->ticks;
    a->result = co_await t;  // done: no suspension, so no other task runs in between
    a->ticks_after = a->ticks;
    a->stop_ticking = true;
    co_await tick;
}

aio::Coroutine<std::vector<std::string>> names_inside() {
    std::vector<std::string> names;
    names.push_back(aio::current_task()->get_name());
    aio::current_task()->set_name("renamed inside");
    co_await aio::yield_now();
    names.push_back(aio::current_task()->get_name());
    co_return names;
}

struct AllTasks {
    std::set<std::string> at_start;
    std::set<std::string> after_first;
    std::set<std::string> at_end;
};

std::set<std::string> names_of(const std::vector<aio::Ref<aio::TaskBase>>& tasks) {
    std::set<std::string> s;
    for (auto& t : tasks) s.insert(t->get_name());
    return s;
}

aio::Coroutine<int> wait_gate(aio::Ref<aio::Future<int>> gate) {
    int v = co_await gate;
    co_return v;
}

aio::Coroutine<> all_tasks_main(AllTasks* a) {
    aio::current_task()->set_name("main");
    auto gate = aio::create_future<int>();
    auto fast = aio::create_task(sleep_then(0.001, 1, nullptr), "fast");
    auto slow = aio::create_task(wait_gate(gate), "slow");
    auto unstarted = aio::create_task(immediate(3), "unstarted");
    a->at_start = names_of(aio::all_tasks());
    co_await fast;
    co_await unstarted;
    a->after_first = names_of(aio::all_tasks());
    gate->set_result(0);
    co_await slow;
    a->at_end = names_of(aio::all_tasks());
}

aio::Coroutine<std::string> await_task_outcome(aio::Ref<aio::Task<int>> t) {
    try {
        int v = co_await t;
        co_return "value " + std::to_string(v);
    } catch (const Marked& m) {
        co_return "Marked " + std::to_string(m.id);
    } catch (const aio::CancelledError& c) {
        co_return "CancelledError " + c.message();
    }
}

aio::Coroutine<std::string> await_self(aio::Ref<aio::Task<std::string>>* self) {
    try {
        co_await *self;
        co_return "no error";
    } catch (const aio::RuntimeError& e) {
        co_return std::string("RuntimeError: ") + e.what();
    }
}

aio::Coroutine<std::string> await_twice() {
    aio::Coroutine<int> c = immediate(1);
    int first = co_await c;
    try {
        int second = co_await c;
        co_return "no error " + std::to_string(first + second);
    } catch (const std::logic_error& e) {
        co_return e.what();
    }
}

aio::Coroutine<> await_foreign_awaitable() {
    std::suspend_always foreign;  // an awaitable that is not a Future, Task or Coroutine
    co_await foreign;
}

// ---- cancellation ----

struct CancelState {
    int steps = 0;
    int cancelled_errors = 0;
    bool cleaned_up = false;
    bool after = false;
    std::string message;
};

aio::Coroutine<int> sleeper(double delay, CancelState* s) {
    ++s->steps;
    co_await aio::sleep(delay);
    s->after = true;
    co_return 1;
}

aio::Coroutine<int> future_waiter(aio::Ref<aio::Future<int>> f, CancelState* s) {
    ++s->steps;
    int v = co_await f;
    s->after = true;
    co_return v;
}

aio::Coroutine<int> yielder(CancelState* s) {
    ++s->steps;
    co_await aio::yield_now();
    s->after = true;
    co_return 1;
}

aio::Coroutine<int> task_waiter(aio::Ref<aio::Task<int>> t, CancelState* s) {
    ++s->steps;
    int v = co_await t;
    s->after = true;
    co_return v;
}

// Catches every CancelledError, counts it, and goes on to finish normally.
aio::Coroutine<int> swallower(double delay, CancelState* s) {
    ++s->steps;
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError& e) {
        ++s->cancelled_errors;
        s->message = e.message();
    }
    co_await aio::sleep(0.001);  // no second CancelledError arrives here
    s->after = true;
    co_return 42;
}

// Catches the CancelledError, cleans up (which takes an await), then lets it go on.
aio::Coroutine<int> cleans_up(double delay, CancelState* s) {
    ++s->steps;
    std::exception_ptr cancelled;
    try {
        co_await aio::sleep(delay);
    } catch (const aio::CancelledError&) {
        ++s->cancelled_errors;
        cancelled = std::current_exception();  // no co_await inside a catch handler (g++ 12)
    }
    if (cancelled) {
        co_await aio::sleep(0.001);
        s->cleaned_up = true;
        std::rethrow_exception(cancelled);
    }
    co_return 1;
}

aio::Coroutine<int> cancels_itself_then_returns() {
    aio::current_task()->cancel();
    co_return 5;
}

aio::Coroutine<int> probe_sleeper(double delay, int* live, Log* log) {
    Probe p(live);
    co_await aio::sleep(delay);
    log->push_back("sleeper woke");
    co_return 1;
}

aio::Coroutine<int> probe_future_waiter(aio::Ref<aio::Future<int>> f, int* live) {
    Probe p(live);
    int v = co_await f;
    co_return v;
}

aio::Coroutine<int> probe_task_waiter(aio::Ref<aio::Task<int>> t, int* live) {
    Probe p(live);
    int v = co_await t;
    co_return v;
}

aio::Coroutine<int> counted_future_waiter(aio::Ref<aio::Future<int>> f, int* steps) {
    ++*steps;
    int v = co_await f;
    ++*steps;
    co_return v;
}

aio::Coroutine<> leftover_sleeper(int* live, Log* log) {
    Probe p(live);
    co_await aio::sleep(0.05);
    log->push_back("leftover woke");
}

aio::Coroutine<int> main_leaving_a_sleeper(int* live, Log* log) {
    (void)aio::create_task(leftover_sleeper(live, log));
    co_await aio::yield_now();  // let it start sleeping
    co_return 1;
}

aio::Coroutine<int> main_waiting_for(aio::Ref<aio::Future<int>> f, int* steps, double wait) {
    auto t = aio::create_task(counted_future_waiter(f, steps));
    co_await aio::sleep(wait);  // the old timer's deadline passes meanwhile
    int before = *steps;
    f->set_result(before);
    int v = co_await t;
    co_return v;
}

aio::Coroutine<int> second_run_main(int* steps) {
    auto f = aio::create_future<int>();
    int v = co_await main_waiting_for(f, steps, 0.1);
    co_return v;
}

}  // namespace

// ------------------------------------------------------------------ coroutines and tasks

TEST_CASE("Task: awaiting a coroutine runs it inside the same task", "[stage3]") {
    TEST_LOOP(loop);
    Identity id;
    auto t = aio::create_task(loop, outer_awaits_children(&id));
    loop.run_until_complete(t);
    REQUIRE(id.outer == t.get());
    REQUIRE(id.child == t.get());
    REQUIRE(id.child_after_suspend == t.get());  // a child that suspended, resumed by the same task
    REQUIRE(id.outer_after == t.get());
    REQUIRE(id.value == 5);
    REQUIRE(id.caught == "marked 3");  // a child's exception reaches the awaiting coroutine
}

TEST_CASE("Task: a chain of nested coroutines suspends and resumes as one task", "[stage3]") {
    TEST_LOOP(loop);
    REQUIRE(loop.run_until_complete(deep(200)) == 200);
}

TEST_CASE("Task: a coroutine can be awaited only once", "[stage3]") {
    TEST_LOOP(loop);
    REQUIRE_THAT(loop.run_until_complete(await_twice()), Catch::Contains("already been awaited"));
    aio::Coroutine<int> c = immediate(1);
    auto t = aio::create_task(loop, std::move(c));
    REQUIRE_FALSE(c);  // create_task took it
    REQUIRE_THROWS_AS(aio::create_task(loop, std::move(c)), std::logic_error);
    REQUIRE(loop.run_until_complete(t) == 1);
}

TEST_CASE("Task: create_task schedules the first step on a later pass", "[stage3]") {
    TEST_LOOP(loop);
    bool ran = false;
    auto t = aio::create_task(loop, set_flag(&ran));
    REQUIRE_FALSE(ran);  // not inside create_task
    REQUIRE_FALSE(t->done());
    REQUIRE(loop.ready_count() == 1);
    loop.run_once();
    REQUIRE(ran);
    REQUIRE(t->done());
}

TEST_CASE("Task: a task that finished before it is awaited gives its result at once", "[stage3]") {
    TEST_LOOP(loop);
    Article3 a;
    loop.run_until_complete(article3_main(&a));
    REQUIRE(a.done_before_await);
    REQUIRE(a.result == 33);
    REQUIRE(a.ticks_before > 0);
    REQUIRE(a.ticks_after == a.ticks_before);  // no pass went by during the await
}

TEST_CASE("Task: 1,000,000 awaits of coroutines that finish at once do not grow the stack", "[stage3]") {
    TEST_LOOP(loop);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(loop.run_until_complete(million_coroutine_awaits()) == 500'000);
    INFO("took " << seconds_since(t0) << " s");
    CHECK(seconds_since(t0) < 30.0);  // a generous bound: a sanity check, not a benchmark
}

TEST_CASE("Task: 1,000,000 awaits of a future that is already done do not grow the stack", "[stage3]") {
    TEST_LOOP(loop);
    auto f = aio::create_future<int>(loop);
    f->set_result(1);
    SECTION("a Future") {
        REQUIRE(loop.run_until_complete(million_future_awaits(f)) == 1'000'000);
    }
    SECTION("a finished Task") {
        auto done_task = aio::create_task(loop, immediate(2));
        loop.run_until_complete(done_task);
        REQUIRE(loop.run_until_complete(million_future_awaits(done_task)) == 2'000'000);
    }
}

TEST_CASE("Task: default names are Task-N; set_name and create_task(coro, name) choose another", "[stage3]") {
    TEST_LOOP(loop);
    auto a = aio::create_task(loop, immediate(1));
    auto b = aio::create_task(loop, immediate(2));
    REQUIRE_THAT(a->get_name(), Catch::StartsWith("Task-"));
    REQUIRE_THAT(b->get_name(), Catch::StartsWith("Task-"));
    long na = std::stol(a->get_name().substr(5));
    long nb = std::stol(b->get_name().substr(5));
    REQUIRE(nb == na + 1);  // a counter, as in asyncio
    REQUIRE(a->name() == a->get_name());

    a->set_name("renamed");
    REQUIRE(a->get_name() == "renamed");
    auto c = aio::create_task(loop, immediate(3), "worker");
    REQUIRE(c->get_name() == "worker");

    auto d = aio::create_task(loop, names_inside(), "named");
    auto names = loop.run_until_complete(d);
    REQUIRE(names == std::vector<std::string>{"named", "renamed inside"});
    REQUIRE(d->get_name() == "renamed inside");
}

TEST_CASE("Task: current_task() is the running task inside, null outside", "[stage3]") {
    TEST_LOOP(loop);
    REQUIRE_FALSE(aio::current_task());
    auto t = aio::create_task(loop, current_inside());
    auto u = aio::create_task(loop, current_after_yield());
    aio::TaskBase* in_callback = t.get();
    loop.call_soon([&] { in_callback = aio::current_task().get(); });
    REQUIRE(loop.run_until_complete(t) == t.get());
    REQUIRE(loop.run_until_complete(u) == u.get());
    REQUIRE(in_callback == nullptr);  // a plain callback is no task
    REQUIRE_FALSE(aio::current_task());
}

TEST_CASE("Task: all_tasks() lists the unfinished tasks, started or not", "[stage3]") {
    TEST_LOOP(loop);
    AllTasks a;
    loop.run_until_complete(all_tasks_main(&a));
    REQUIRE(a.at_start == std::set<std::string>{"main", "fast", "slow", "unstarted"});
    REQUIRE(a.after_first == std::set<std::string>{"main", "slow"});
    REQUIRE(a.at_end == std::set<std::string>{"main"});
    REQUIRE(aio::all_tasks(loop).empty());
    REQUIRE_THROWS_AS(aio::all_tasks(), aio::RuntimeError);  // no running loop
}

TEST_CASE("Task: awaiting a task returns its result or rethrows its exception", "[stage3]") {
    TEST_LOOP(loop);
    SECTION("result") {
        auto t = aio::create_task(loop, sleep_then(0.001, 8, nullptr));
        REQUIRE(loop.run_until_complete(await_task_outcome(t)) == "value 8");
    }
    SECTION("exception, with its type") {
        auto t = aio::create_task(loop, fails_now(9));
        REQUIRE(loop.run_until_complete(await_task_outcome(t)) == "Marked 9");
        REQUIRE_THROWS_AS(t->result(), Marked);
    }
    SECTION("a cancelled task raises CancelledError") {
        auto t = aio::create_task(loop, sleep_then(10.0, 1, nullptr));
        one_pass(loop);
        t->cancel("bye");
        REQUIRE(loop.run_until_complete(await_task_outcome(t)) == "CancelledError bye");
    }
}

TEST_CASE("Task: a task awaiting itself raises RuntimeError", "[stage3]") {
    TEST_LOOP(loop);
    aio::Ref<aio::Task<std::string>> self;
    self = aio::create_task(loop, await_self(&self));
    std::string r = loop.run_until_complete(self);
    REQUIRE_THAT(r, Catch::StartsWith("RuntimeError: ") && Catch::Contains("itself"));
}

TEST_CASE("Task: a coroutine suspended by a foreign awaitable fails its task with RuntimeError", "[stage3]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, await_foreign_awaitable());
    one_pass(loop);
    REQUIRE(t->done());
    REQUIRE_THROWS_AS(t->result(), aio::RuntimeError);
}

TEST_CASE("Task: the await-chain dump names the coroutines a task is suspended in", "[stage3]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, deep(2), "deep");
    one_pass(loop);
    auto stack = t->get_stack();
    REQUIRE(stack.size() == 3);
    for (auto& s : stack) REQUIRE_THAT(s, Catch::Contains("deep"));
    std::ostringstream out;
    t->print_stack(out);
    REQUIRE_THAT(out.str(), Catch::Contains("Stack for task deep") && Catch::Contains("suspended"));
    loop.run_until_complete(t);
}

// -------------------------------------------------------------------------- cancellation

TEST_CASE("Task: cancelling at a sleep raises CancelledError there; the task ends cancelled", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto t = aio::create_task(loop, sleeper(10.0, &s));
    one_pass(loop);
    REQUIRE(loop.timer_count() == 1);
    REQUIRE(t->cancel("enough"));
    REQUIRE_FALSE(t->done());  // a request: it is delivered on the task's next step
    auto t0 = std::chrono::steady_clock::now();
    while (!t->done()) one_pass(loop);
    REQUIRE(seconds_since(t0) < 2.0);  // nobody waited for the 10 s timer
    REQUIRE(t->cancelled());
    REQUIRE_FALSE(s.after);
    try {
        (void)t->result();
        FAIL("result() did not throw");
    } catch (const aio::CancelledError& e) {
        REQUIRE(e.message() == "enough");
    }
    // The sleep's timer was cancelled with it, and leaves the heap on the next pass.
    one_pass(loop);
    REQUIRE(loop.timer_count() == 0);
}

TEST_CASE("Task: cancelling at a future cancels that future; the task ends cancelled", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto f = aio::create_future<int>(loop);
    auto t = aio::create_task(loop, future_waiter(f, &s));
    one_pass(loop);
    REQUIRE(t->cancel());
    REQUIRE(f->cancelled());  // as in asyncio: the future the task waits on is cancelled
    one_pass(loop);
    REQUIRE(t->cancelled());
    REQUIRE_FALSE(s.after);
}

TEST_CASE("Task: cancelling at sleep(0) raises CancelledError there", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto t = aio::create_task(loop, yielder(&s));
    one_pass(loop);  // it yielded: it sits in the ready queue, waiting on no future
    REQUIRE(t->cancel());
    one_pass(loop);
    REQUIRE(t->cancelled());
    REQUIRE_FALSE(s.after);
}

TEST_CASE("Task: cancelling a task that awaits another task cancels both", "[stage3]") {
    TEST_LOOP(loop);
    CancelState inner_state, outer_state;
    auto inner = aio::create_task(loop, sleeper(10.0, &inner_state));
    auto outer = aio::create_task(loop, task_waiter(inner, &outer_state));
    one_pass(loop);
    REQUIRE(outer->cancel());
    while (!outer->done()) one_pass(loop);
    REQUIRE(outer->cancelled());
    REQUIRE(inner->cancelled());
    REQUIRE_FALSE(inner_state.after);
    REQUIRE_FALSE(outer_state.after);
}

TEST_CASE("Task: cancelled before its first step, the body never runs", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto t = aio::create_task(loop, sleeper(0.001, &s));
    REQUIRE(t->cancel("early"));
    one_pass(loop);
    REQUIRE(t->done());
    REQUIRE(t->cancelled());
    REQUIRE(s.steps == 0);
    REQUIRE(loop.timer_count() == 0);
    REQUIRE_THROWS_WITH(t->result(), "early");
}

TEST_CASE("Task: a double cancel delivers one CancelledError", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto t = aio::create_task(loop, swallower(10.0, &s));
    one_pass(loop);
    REQUIRE(t->cancel("first"));
    REQUIRE(t->cancel("second"));  // still not done: the request stands, but only one arrives
    REQUIRE(loop.run_until_complete(t) == 42);
    REQUIRE(s.cancelled_errors == 1);
    REQUIRE(s.after);
    REQUIRE_FALSE(t->cancelled());
}

TEST_CASE("Task: a CancelledError swallowed by the coroutine leaves the task with its result", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto t = aio::create_task(loop, swallower(10.0, &s));
    one_pass(loop);
    REQUIRE(t->cancel("try"));
    REQUIRE(loop.run_until_complete(t) == 42);
    REQUIRE_FALSE(t->cancelled());
    REQUIRE(s.cancelled_errors == 1);
    REQUIRE(s.message == "try");
    REQUIRE(s.after);
}

TEST_CASE("Task: a coroutine that cleans up with an await and re-raises ends cancelled, after its cleanup", "[stage3]") {
    TEST_LOOP(loop);
    CancelState s;
    auto t = aio::create_task(loop, cleans_up(10.0, &s));
    one_pass(loop);
    REQUIRE(t->cancel("stop"));
    one_pass(loop);  // the CancelledError arrives; the cleanup starts its own sleep
    REQUIRE(s.cancelled_errors == 1);
    REQUIRE_FALSE(t->done());  // still cleaning up
    REQUIRE_FALSE(s.cleaned_up);
    while (!t->done()) one_pass(loop);
    REQUIRE(s.cleaned_up);
    REQUIRE(t->cancelled());
    REQUIRE_THROWS_WITH(t->result(), "stop");
}

TEST_CASE("Task: cancelling a finished task returns false and changes nothing", "[stage3]") {
    TEST_LOOP(loop);
    auto ok = aio::create_task(loop, immediate(1));
    auto bad = aio::create_task(loop, fails_now(2));
    CancelState s;
    auto gone = aio::create_task(loop, sleeper(10.0, &s));
    REQUIRE(gone->cancel());
    one_pass(loop);
    REQUIRE(ok->done());
    REQUIRE(bad->done());
    REQUIRE(gone->cancelled());
    REQUIRE_FALSE(ok->cancel());
    REQUIRE_FALSE(bad->cancel());
    REQUIRE_FALSE(gone->cancel());
    REQUIRE(ok->result() == 1);
    REQUIRE_THROWS_AS(bad->result(), Marked);
    REQUIRE_FALSE(ok->cancelled());
}

TEST_CASE("Task: waking a finished task is harmless", "[stage3]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, immediate(7));
    one_pass(loop);
    REQUIRE(t->done());
    // A stray wakeup after the end (its coroutine is already freed) can no longer come from
    // outside: a task's Handle side is not reachable (tests/stage3_handle_access_test.cpp).
    static_assert(!std::is_convertible_v<decltype(t), aio::Ref<aio::Handle>>);
    one_pass(loop);
    REQUIRE(t->result() == 7);

    CancelState s;
    auto c = aio::create_task(loop, sleeper(10.0, &s));
    c->cancel();
    one_pass(loop);
    REQUIRE(c->cancelled());
    static_assert(!std::is_convertible_v<decltype(c), aio::Ref<aio::Handle>>);
    one_pass(loop);
    REQUIRE(c->cancelled());
    REQUIRE(s.steps == 0);
}

// A task that cancels itself and returns without reaching an await point: cancel() returned
// true, so, as in asyncio (Task.__step: "Task is cancelled right before coro stops"), the task
// ends cancelled rather than with its result.
TEST_CASE("Task: a task cancelled during its last step ends cancelled, as in asyncio", "[stage3]") {
    TEST_LOOP(loop);
    auto t = aio::create_task(loop, cancels_itself_then_returns());
    one_pass(loop);
    REQUIRE(t->done());
    REQUIRE(t->cancelled());
}

// ------------------------------------------------------------------------- lost errors

TEST_CASE("Task: an exception never retrieved is reported through the exception handler when the task is freed", "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    SECTION("nobody holds the task: reported as soon as it finishes") {
        (void)aio::create_task(loop, fails_now(21), "doomed");
        one_pass(loop);
        REQUIRE(reports.size() == 1);
        REQUIRE_THAT(reports[0].message, Catch::Contains("Task exception was never retrieved") && Catch::Contains("doomed"));
        REQUIRE(reports[0].exception == "marked 21");
    }
    SECTION("held by a reference: reported when the last reference goes") {
        auto t = aio::create_task(loop, fails_now(22), "held");
        one_pass(loop);
        REQUIRE(t->done());
        REQUIRE(reports.empty());
        t = nullptr;
        REQUIRE(reports.size() == 1);
        REQUIRE_THAT(reports[0].message, Catch::Contains("Task exception was never retrieved") && Catch::Contains("held"));
        REQUIRE(reports[0].exception == "marked 22");
    }
}

TEST_CASE("Task: the default handler logs the never-retrieved report with the task's name and the message", "[stage3]") {
    std::vector<std::string> logged;
    TEST_LOOP(loop);
    loop.set_logger([&](std::string_view s) { logged.emplace_back(s); });
    (void)aio::create_task(loop, fails_now(23), "lost-one");
    one_pass(loop);
    REQUIRE(logged.size() == 1);
    REQUIRE_THAT(logged[0], Catch::Contains("Task exception was never retrieved") && Catch::Contains("lost-one") &&
                                Catch::Contains("marked 23"));
}

TEST_CASE("Task: a retrieved exception, or a cancellation, is not reported", "[stage3]") {
    Reports reports;
    TEST_LOOP(loop);
    capture_reports(loop, &reports);
    SECTION("awaited") {
        auto t = aio::create_task(loop, fails_now(1));
        REQUIRE(loop.run_until_complete(await_task_outcome(t)) == "Marked 1");
    }
    SECTION("result()") {
        auto t = aio::create_task(loop, fails_now(2));
        one_pass(loop);
        REQUIRE_THROWS_AS(t->result(), Marked);
    }
    SECTION("exception()") {
        auto t = aio::create_task(loop, fails_now(3));
        one_pass(loop);
        REQUIRE(what_of(t->exception()) == "marked 3");
    }
    SECTION("run_until_complete") {
        REQUIRE_THROWS_AS(loop.run_until_complete(fails_now(4)), Marked);
    }
    SECTION("cancelled") {
        CancelState s;
        auto t = aio::create_task(loop, sleeper(10.0, &s));
        one_pass(loop);
        t->cancel();
        one_pass(loop);
        REQUIRE(t->cancelled());
    }
    one_pass(loop);
    REQUIRE(reports.empty());
}

TEST_CASE("Task: a task still pending when its loop closes is reported and freed", "[stage3]") {
    int live = 0;
    Log log;
    Reports reports;
    aio::Ref<aio::Task<int>> kept;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        kept = aio::create_task(loop, probe_sleeper(10.0, &live, &log), "sleepy");
        (void)aio::create_task(loop, probe_sleeper(10.0, &live, &log), "unreferenced");
        auto f = aio::create_future<int>(loop);
        auto waiter = aio::create_task(loop, probe_future_waiter(f, &live), "future-waiter");
        (void)aio::create_task(loop, probe_task_waiter(waiter, &live), "task-waiter");  // a cycle through two tasks
        one_pass(loop);
        REQUIRE(live == 4);
        auto late = aio::create_task(loop, immediate(2), "not-started");  // still in the ready queue
        REQUIRE(reports.empty());
        loop.close();
        REQUIRE(live == 0);  // every frame was destroyed (its locals' destructors ran)
        std::set<std::string> reported;
        for (auto& r : reports) {
            REQUIRE_THAT(r.message, Catch::Contains("Task was destroyed but it is pending!"));
            for (const char* n : {"sleepy", "unreferenced", "future-waiter", "task-waiter", "not-started"})
                if (r.message.find(n) != std::string::npos) reported.insert(n);
        }
        REQUIRE(reports.size() == 5);
        REQUIRE(reported.size() == 5);
        REQUIRE(late->done());
        REQUIRE(late->cancelled());
    }
    // A task that outlives its loop: done (cancelled), and safe to ask (ASan; LSan: no leak).
    REQUIRE(kept->done());
    REQUIRE(kept->cancelled());
    REQUIRE_THROWS_AS(kept->result(), aio::CancelledError);
    REQUIRE(log.empty());
}

TEST_CASE("Task: a future that outlives its loop forgets the task that was waiting on it", "[stage3]") {
    int live = 0;
    Reports reports;
    aio::Ref<aio::Future<int>> f;
    aio::Ref<aio::Task<int>> waiter;
    {
        TEST_LOOP(loop);
        capture_reports(loop, &reports);
        f = aio::create_future<int>(loop);
        waiter = aio::create_task(loop, probe_future_waiter(f, &live));
        one_pass(loop);
        REQUIRE(live == 1);  // suspended on f
    }
    REQUIRE(live == 0);
    REQUIRE(reports.size() == 1);  // "Task was destroyed but it is pending!"
    REQUIRE(waiter->cancelled());
    // The waiter is no longer one of f's callbacks, so completing f schedules nothing on the
    // destroyed loop (which would raise RuntimeError; under ASan, a use after scope would
    // be reported).
    REQUIRE_NOTHROW(f->set_result(1));
    REQUIRE(f->result() == 1);
}

// ---------------------------------------------------------------------------- lifetime

TEST_CASE("Task: a cancelled task's timer never fires into a new task, wherever it is allocated", "[stage3]") {
    TEST_LOOP(loop);
    int live = 0;
    Log log;
    auto old = aio::create_task(loop, probe_sleeper(0.05, &live, &log));
    one_pass(loop);
    old->cancel();
    while (!old->done()) one_pass(loop);
    REQUIRE(old->ref_count() == 1);  // ours only: nothing the loop holds still refers to it
    old = nullptr;                   // freed: its memory may be reused by the next task
    REQUIRE(live == 0);
    // The new task waits on a future that is set only after the old timer's deadline passed;
    // it must take exactly two steps (start, and the wakeup by that future).
    auto f = aio::create_future<int>(loop);
    int steps = 0;
    int r = loop.run_until_complete(main_waiting_for(f, &steps, 0.1));
    REQUIRE(r == 1);  // one step before the future was set
    REQUIRE(steps == 2);
    REQUIRE(log.empty());
}

TEST_CASE("Task: a task destroyed with its loop leaves nothing that fires into a new loop at the same address", "[stage3]") {
    // Two loops, one after the other, in the same storage: address reuse is certain. (So
    // they are stage 2's EventLoop in every binary: placement new needs the class.)
    alignas(aio::EventLoop) static unsigned char storage[sizeof(aio::EventLoop)];
    int live = 0;
    Log log;
    Reports reports;
    {
        auto* first = new (storage) aio::EventLoop;
        capture_reports(*first, &reports);
        (void)aio::create_task(*first, probe_sleeper(0.05, &live, &log), "old");
        one_pass(*first);
        REQUIRE(live == 1);
        first->close();
        first->~EventLoop();
    }
    REQUIRE(live == 0);
    REQUIRE(reports.size() == 1);
    {
        auto* second = new (storage) aio::EventLoop;
        auto f = aio::create_future<int>(*second);
        int steps = 0;
        int r = second->run_until_complete(main_waiting_for(f, &steps, 0.1));
        REQUIRE(r == 1);
        REQUIRE(steps == 2);
        REQUIRE(aio::all_tasks(*second).empty());
        second->~EventLoop();
    }
    REQUIRE(log.empty());
}

TEST_CASE("Task: a task run() cancels leaves no timer behind for the next run()", "[stage3]") {
    int live = 0;
    Log log;
    REQUIRE(aio::run(main_leaving_a_sleeper(&live, &log)) == 1);
    REQUIRE(live == 0);  // cancelled and freed by run()
    int steps = 0;
    REQUIRE(aio::run(second_run_main(&steps)) == 1);
    REQUIRE(steps == 2);
    REQUIRE(log.empty());
}

// Creating a task on a closed loop raises. It must do so before the task is registered with
// the loop (all_tasks' per-thread registry): a stale entry would be found by a later loop at
// the same address, which would then never have its pending tasks reported and freed at close.
TEST_CASE("Task: create_task on a closed loop leaves no stale registry entry for the next loop at that address",
          "[stage3]") {
    alignas(aio::EventLoop) static unsigned char storage[sizeof(aio::EventLoop)];
    Reports reports;
    int live = 0;
    Log log;
    {
        auto* first = new (storage) aio::EventLoop;
        capture_reports(*first, &reports);
        first->close();
        REQUIRE_THROWS_AS(aio::create_task(*first, immediate(1)), aio::RuntimeError);
        first->~EventLoop();
    }
    reports.clear();
    {
        auto* second = new (storage) aio::EventLoop;
        capture_reports(*second, &reports);
        auto t = aio::create_task(*second, probe_sleeper(10.0, &live, &log), "pending");
        one_pass(*second);
        t = nullptr;
        second->close();
        REQUIRE(live == 0);
        REQUIRE(reports.size() == 1);
        REQUIRE_THAT(reports[0].message, Catch::Contains("Task was destroyed but it is pending!"));
        REQUIRE(aio::all_tasks(*second).empty());
        second->~EventLoop();
    }
}

// ------------------------------------------------------------------------------ debug mode

namespace {
aio::Coroutine<> spin_for(double seconds) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
    }
    co_return;
}
aio::Coroutine<> quick_step() { co_return; }
}  // namespace

TEST_CASE("debug mode: a task step slower than slow_callback_duration is reported with the task's name",
          "[stage3]") {
    TEST_LOOP(loop);
    std::vector<std::string> logged;
    loop.set_logger([&](std::string_view m) { logged.emplace_back(m); });
    loop.set_debug(true);
    auto slow = aio::create_task(loop, spin_for(0.12), "busy");
    auto fast = aio::create_task(loop, quick_step(), "quick");
    loop.run_until_complete(slow);
    loop.run_until_complete(fast);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("Executing busy took ") == 0);
    CHECK(logged[0].find(" seconds") != std::string::npos);
    CHECK(logged[0].find("quick") == std::string::npos);

    logged.clear();
    loop.set_debug(false);  // off: the same slow step goes unreported
    loop.run_until_complete(aio::create_task(loop, spin_for(0.12), "busy again"));
    CHECK(logged.empty());
}
