// Stage 2 tests: the seams stage 3 builds on. add_callback() queues a Handle that already
// exists (a Task waits in the ready queue as itself); add_close_callback() lets what belongs
// to a loop clean up while the loop can still schedule and cancel; Handle::cancel() calls
// on_cancel() exactly once, so a timer cancelled twice is counted once by the heap's
// clean-up rule; lifeline() tells whoever outlives the loop that it is gone; and
// new_event_loop() makes a loop of the class set_event_loop_factory() chose.
#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

// A Handle of our own, the way stage 3's Task is one: it logs when the loop runs it and
// counts its on_cancel() calls.
class LoggingHandle final : public aio::Handle {
public:
    LoggingHandle(Log* log, std::string label) : log_(log), label_(std::move(label)) {}
    std::string name() const override { return "LoggingHandle " + label_; }
    void run() override { log_->push_back(label_); }
    int on_cancel_calls = 0;

protected:
    void on_cancel() override { ++on_cancel_calls; }

private:
    Log* log_;
    std::string label_;
};

}  // namespace

// ----------------------------------------------------------------------- add_callback

TEST_CASE("add_callback schedules an existing handle for the next pass, FIFO with call_soon", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto h = aio::make_ref<LoggingHandle>(&log, "handle");
    loop.call_soon([&] { log.push_back("soon 1"); });
    loop.add_callback(h);
    loop.call_soon([&] { log.push_back("soon 2"); });
    REQUIRE(log.empty());  // not run inline
    REQUIRE(loop.ready_count() == 3);
    REQUIRE(h->ref_count() == 2);  // ours and the ready queue's
    loop.run_once();
    REQUIRE(log == Log{"soon 1", "handle", "soon 2"});
    REQUIRE(h->ref_count() == 1);  // the queue let go of it after it ran
}

TEST_CASE("add_callback from inside a pass waits for the next pass", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto h = aio::make_ref<LoggingHandle>(&log, "handle");
    loop.call_soon([&] {
        log.push_back("first");
        loop.add_callback(h);
    });
    loop.call_soon([&] { log.push_back("second"); });
    loop.run_once();
    REQUIRE(log == Log{"first", "second"});
    loop.run_once();
    REQUIRE(log == Log{"first", "second", "handle"});
}

TEST_CASE("add_callback: the same handle may be queued again after it ran", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto h = aio::make_ref<LoggingHandle>(&log, "h");
    for (int i = 0; i < 3; ++i) {
        loop.add_callback(h);
        loop.run_once();
    }
    REQUIRE(log == Log{"h", "h", "h"});
}

TEST_CASE("add_callback: a cancelled handle is skipped, and released", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto a = aio::make_ref<LoggingHandle>(&log, "a");
    auto b = aio::make_ref<LoggingHandle>(&log, "b");
    auto c = aio::make_ref<LoggingHandle>(&log, "c");
    loop.add_callback(a);
    loop.add_callback(b);
    loop.add_callback(c);
    b->cancel();
    SECTION("cancelled before the pass") {
        loop.run_once();
        REQUIRE(log == Log{"a", "c"});
    }
    SECTION("cancelled by an earlier callback of the same pass") {
        b->cancel();  // (twice: still just cancelled)
        auto d = aio::make_ref<LoggingHandle>(&log, "d");
        loop.call_soon([&] { d->cancel(); });
        loop.add_callback(d);
        loop.run_once();
        REQUIRE(log == Log{"a", "c"});
        REQUIRE(d->ref_count() == 1);
    }
    REQUIRE(b->ref_count() == 1);  // skipped, but no longer held by the loop
    REQUIRE(b->on_cancel_calls == 1);
    REQUIRE(loop.ready_count() == 0);
}

TEST_CASE("add_callback on a closed loop raises RuntimeError", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto h = aio::make_ref<LoggingHandle>(&log, "h");
    loop.close();
    REQUIRE_THROWS_AS(loop.add_callback(h), aio::RuntimeError);
    REQUIRE(h->ref_count() == 1);
}

TEST_CASE("close() drops a handle queued with add_callback without running it", "[stage2]") {
    Log log;
    auto h = aio::make_ref<LoggingHandle>(&log, "h");
    {
        TEST_LOOP(loop);
        loop.add_callback(h);
        REQUIRE(h->ref_count() == 2);
        loop.close();
        REQUIRE(h->ref_count() == 1);
    }
    REQUIRE(log.empty());
}

// ------------------------------------------------------------------ add_close_callback

TEST_CASE("add_close_callback: runs at close(), before the queues are dropped, and may still schedule and cancel",
          "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto timer = loop.call_later(100.0, [&] { log.push_back("timer ran"); });
    loop.call_soon([&] { log.push_back("ready ran"); });
    std::size_t ready_seen = 0, timers_seen = 0;
    bool was_closed = true;
    aio::Ref<aio::Handle> scheduled_at_close;
    loop.add_close_callback([&] {
        log.push_back("close callback");
        ready_seen = loop.ready_count();
        timers_seen = loop.timer_count();
        was_closed = loop.is_closed();
        scheduled_at_close = loop.call_soon([&] { log.push_back("scheduled at close ran"); });
        timer->cancel();
    });
    REQUIRE(log.empty());  // not at registration
    loop.close();
    REQUIRE(log == Log{"close callback"});  // nothing queued ran: it was dropped
    REQUIRE(ready_seen == 1);
    REQUIRE(timers_seen == 1);
    REQUIRE_FALSE(was_closed);
    REQUIRE(scheduled_at_close);  // call_soon worked
    REQUIRE(scheduled_at_close->ref_count() == 1);  // and was dropped with the queue
    REQUIRE(timer->cancelled());
    REQUIRE(loop.ready_count() == 0);
    REQUIRE(loop.timer_count() == 0);
    REQUIRE(loop.is_closed());
}

TEST_CASE("add_close_callback: callbacks run once, in the order added, and not again on a second close()",
          "[stage2]") {
    Log log;
    {
        TEST_LOOP(loop);
        loop.add_close_callback([&] { log.push_back("1"); });
        loop.add_close_callback([&] {
            log.push_back("2");
            // One added while closing runs too, after the others.
            loop.add_close_callback([&] { log.push_back("4 (added by 2)"); });
        });
        loop.add_close_callback([&] { log.push_back("3"); });
        loop.close();
        REQUIRE(log == Log{"1", "2", "3", "4 (added by 2)"});
        loop.close();
        REQUIRE(log.size() == 4);
    }  // the destructor closes again: still nothing
    REQUIRE(log.size() == 4);
}

TEST_CASE("add_close_callback: destroying the loop without close() runs them", "[stage2]") {
    Log log;
    {
        TEST_LOOP(loop);
        loop.add_close_callback([&] { log.push_back("closed"); });
    }
    REQUIRE(log == Log{"closed"});
}

TEST_CASE("add_close_callback: close() on a running loop raises and runs none of them", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    loop.add_close_callback([&] { log.push_back("closed"); });
    bool raised = false;
    loop.call_soon([&] {
        try {
            loop.close();
        } catch (const aio::RuntimeError&) {
            raised = true;
        }
    });
    one_pass(loop);
    REQUIRE(raised);
    REQUIRE(log.empty());
    loop.close();
    REQUIRE(log == Log{"closed"});
}

// ------------------------------------------------------------- Handle::cancel, on_cancel

TEST_CASE("Handle::cancel calls on_cancel exactly once, however often it is called", "[stage2]") {
    TEST_LOOP(loop);
    Log log;
    auto h = aio::make_ref<LoggingHandle>(&log, "h");
    REQUIRE_FALSE(h->cancelled());
    h->cancel();
    h->cancel();
    h->cancel();
    REQUIRE(h->cancelled());
    REQUIRE(h->on_cancel_calls == 1);

    // After it ran, a first cancel() marks it (and calls on_cancel once); the rest do nothing.
    auto r = aio::make_ref<LoggingHandle>(&log, "r");
    loop.add_callback(r);
    loop.run_once();
    r->cancel();
    r->cancel();
    REQUIRE(r->on_cancel_calls == 1);
    REQUIRE(log == Log{"r"});
}

TEST_CASE("a timer cancelled twice is counted once by the heap's clean-up rule", "[stage2]") {
    // The heap is rebuilt when it holds more than 100 timers and more than half are
    // cancelled. 60 of 200 cancelled is 30%: no rebuild. Counted twice, it would be 60%.
    TEST_LOOP(loop);
    std::vector<aio::Ref<aio::TimerHandle>> timers;
    for (int i = 0; i < 200; ++i) timers.push_back(loop.call_later(1000.0 + i, [] {}));
    // Timer 0 (the earliest) stays live, so nothing is popped lazily from the top.
    for (int i = 1; i <= 60; ++i) {
        timers[i]->cancel();
        timers[i]->cancel();
    }
    one_pass(loop);
    REQUIRE(loop.timer_count() == 200);

    // And the count stays right afterwards: 41 more make 101 of 200, just over half.
    for (int i = 61; i <= 101; ++i) timers[i]->cancel();
    timers[61]->cancel();
    one_pass(loop);
    REQUIRE(loop.timer_count() == 99);
}

TEST_CASE("a timer cancelled after it fired is not counted as a cancelled timer in the heap", "[stage2]") {
    TEST_LOOP(loop);
    int fired = 0;
    auto early = loop.call_later(0.0, [&] { ++fired; });
    std::vector<aio::Ref<aio::TimerHandle>> timers;
    for (int i = 0; i < 150; ++i) timers.push_back(loop.call_later(1000.0 + i, [] {}));
    one_pass(loop);
    REQUIRE(fired == 1);
    early->cancel();  // it has left the heap: the loop must not count it
    early->cancel();
    for (int i = 1; i <= 75; ++i) timers[i]->cancel();  // exactly half: no rebuild
    one_pass(loop);
    REQUIRE(loop.timer_count() == 150);
    timers[76]->cancel();  // now more than half
    one_pass(loop);
    REQUIRE(loop.timer_count() == 74);
}

// A close callback that throws is reported and dropped: close() finishes, a later close()
// does nothing, and ~EventLoop does not throw.
TEST_CASE("add_close_callback: a callback that throws runs once, and the loop can still be closed", "[stage2]") {
    int runs = 0, other = 0;
    aio::EventLoop* loop = aio::new_event_loop().release();  // deleted by hand: see below
    loop->set_exception_handler([](aio::EventLoop&, const aio::ExceptionContext&) {});  // if close() reports it
    loop->add_close_callback([&] {
        ++runs;
        throw std::runtime_error("close callback failed");
    });
    loop->add_close_callback([&] { ++other; });
    try {
        loop->close();  // may let the exception through, or report it
    } catch (const std::runtime_error&) {
    }
    bool closable = true;
    try {
        loop->close();
    } catch (...) {
        closable = false;
    }
    if (!closable) {
        // Neither closable nor destructible (~EventLoop would terminate): leak it, so that
        // the test binary lives on to report the failure.
        FAIL("a second close() threw: the loop can no longer be closed or destroyed");
    }
    REQUIRE(loop->is_closed());
    REQUIRE(runs == 1);
    REQUIRE(other == 1);
    delete loop;
}

TEST_CASE("lifeline: names the loop while it exists, and nothing once it is destroyed", "[stage2]") {
    aio::Ref<aio::LoopLifeline> kept;
    {
        TEST_LOOP(loop);
        kept = loop.lifeline();
        REQUIRE(kept->loop() == &loop);
        REQUIRE(loop.lifeline() == kept);  // one lifeline for the loop's whole life
        loop.close();
        REQUIRE(kept->loop() == &loop);  // closed is not gone: a closed loop still answers
    }
    REQUIRE(kept->loop() == nullptr);
    TEST_LOOP(next);  // perhaps at the same address: a lifeline of its own
    REQUIRE(next.lifeline() != kept);
    REQUIRE(next.lifeline()->loop() == &next);
}

// ---------------------------------------------------------------------- new_event_loop

namespace {

// A loop class of the program's own, the kind a factory chooses (stage 4's is one).
class ChosenLoop final : public aio::EventLoop {
public:
    ChosenLoop() { ++made; }
    static int made;
};
int ChosenLoop::made = 0;

std::unique_ptr<aio::EventLoop> make_chosen_loop() { return std::make_unique<ChosenLoop>(); }
std::unique_ptr<aio::EventLoop> make_no_loop() { return nullptr; }

}  // namespace

TEST_CASE("new_event_loop: stage 2's EventLoop, unless set_event_loop_factory chose another class", "[stage2]") {
    ScopedLoopFactory by_default(nullptr);  // whatever this test binary chose comes back at the end
    ChosenLoop::made = 0;
    auto plain = aio::new_event_loop();
    REQUIRE(plain);
    aio::EventLoop& plain_loop = *plain;
    REQUIRE(typeid(plain_loop) == typeid(aio::EventLoop));

    REQUIRE(aio::set_event_loop_factory(make_chosen_loop) == nullptr);  // it returns what it replaced
    auto chosen = aio::new_event_loop();
    auto second = aio::new_event_loop();
    REQUIRE(dynamic_cast<ChosenLoop*>(chosen.get()) != nullptr);
    REQUIRE(chosen != second);  // a new loop each time
    REQUIRE(ChosenLoop::made == 2);

    REQUIRE(aio::set_event_loop_factory(nullptr) == make_chosen_loop);
    auto plain_again = aio::new_event_loop();
    aio::EventLoop& plain_again_loop = *plain_again;
    REQUIRE(typeid(plain_again_loop) == typeid(aio::EventLoop));
    REQUIRE(ChosenLoop::made == 2);
}

TEST_CASE("new_event_loop: a factory that returns no loop raises RuntimeError", "[stage2]") {
    ScopedLoopFactory broken(make_no_loop);
    try {
        (void)aio::new_event_loop();
        FAIL("no exception");
    } catch (const aio::RuntimeError& e) {
        REQUIRE_THAT(e.what(), Catch::Matchers::Contains("returned no loop"));
    }
}
