// Stage 1 tests: one Generator on its own. Python's generator protocol, the C++ way:
// values come out of next() in yield order, the return value comes out of result(),
// send() is the value of the paused co_yield, and misuse is an exception, not UB.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/generator.hpp"

namespace {

// Every value a generator yields, in order, until it returns.
template <typename G>
std::vector<typename G::yield_type> drain(G& gen) {
    std::vector<typename G::yield_type> out;
    while (auto v = gen.next()) out.push_back(std::move(*v));
    return out;
}

// Which exception a call throws. aio::StopIteration is itself a std::logic_error, so a
// plain CHECK_THROWS_AS(..., std::logic_error) could not tell the two apart.
template <typename F>
std::string thrown_by(F&& call) {
    try {
        call();
    } catch (const aio::StopIteration&) {
        return "StopIteration";
    } catch (const std::logic_error&) {
        return "logic_error";
    } catch (const std::exception& e) {
        return std::string("other: ") + e.what();
    }
    return "nothing";
}

// Counts destructor calls, to see which locals of a coroutine frame were destroyed.
struct Counted {
    int* destroyed;
    explicit Counted(int* d) : destroyed(d) {}
    Counted(const Counted&) = delete;
    Counted& operator=(const Counted&) = delete;
    ~Counted() { ++*destroyed; }
};

aio::Generator<int, void, int> count_to(int n) {
    for (int i = 1; i <= n; ++i) co_yield i;
    co_return n * 100;
}

aio::Generator<std::string> words(int n, bool* finished) {
    for (int i = 0; i < n; ++i) co_yield "word number " + std::to_string(i) + ", long enough to live on the heap";
    *finished = true;
}

aio::Generator<int> started_flag(bool* started) {
    *started = true;
    co_yield 1;
}

aio::Generator<int> with_local(int* destroyed, bool* finished) {
    Counted local(destroyed);
    co_yield 1;
    co_yield 2;
    *finished = true;
}

// A running total: each co_yield hands out the total so far and evaluates to the next
// amount sent in. Python: `amount = yield total`.
aio::Generator<int, int, int> running_total(std::vector<int>* received) {
    int total = 0;
    for (;;) {
        int amount = co_yield total;
        received->push_back(amount);
        if (amount < 0) co_return total;
        total += amount;
    }
}

// Reports what each resume delivered, so next()'s Send{} is visible as an empty string.
aio::Generator<std::string, std::string, int> echo() {
    int resumes = 0;
    std::string said = co_yield "ready";
    for (;;) {
        ++resumes;
        if (said == "stop") co_return resumes;
        said = co_yield "heard [" + said + "]";
    }
}

aio::Generator<int, void, int> fails_after(int yields) {
    for (int i = 0; i < yields; ++i) co_yield i;
    throw std::runtime_error("generator failed");
}

aio::Generator<std::unique_ptr<int>, void, std::unique_ptr<int>> boxes() {
    co_yield std::make_unique<int>(1);
    co_return std::make_unique<int>(2);
}

template <typename G>
concept CanSend = requires(G& g) { g.send(1); };

}  // namespace

// Send = void means there is nothing to send: send() does not even exist.
static_assert(!CanSend<aio::Generator<int>>);
static_assert(CanSend<aio::Generator<int, int>>);

TEST_CASE("a generator yields its values in order, then returns", "[stage1]") {
    auto gen = count_to(3);
    CHECK_FALSE(gen.done());
    CHECK(gen.next() == 1);
    CHECK(gen.next() == 2);
    CHECK_FALSE(gen.done());
    CHECK(gen.next() == 3);
    CHECK(gen.next() == std::nullopt);  // the body ran to co_return
    CHECK(gen.done());
    CHECK(gen.result() == 300);
    CHECK(gen.result() == 300);  // result() can be read more than once
}

TEST_CASE("calling a generator function runs none of its body", "[stage1]") {
    bool started = false;
    auto gen = started_flag(&started);
    CHECK_FALSE(started);
    CHECK(gen.next() == 1);
    CHECK(started);
}

TEST_CASE("a generator with a void return: result() returns nothing once it is done", "[stage1]") {
    bool finished = false;
    auto gen = words(2, &finished);
    CHECK(drain(gen) == std::vector<std::string>{"word number 0, long enough to live on the heap",
                                                 "word number 1, long enough to live on the heap"});
    CHECK(finished);
    CHECK(gen.done());
    CHECK_NOTHROW(gen.result());
}

TEST_CASE("a generator that returns before yielding anything", "[stage1]") {
    auto gen = count_to(0);
    CHECK(gen.next() == std::nullopt);
    CHECK(gen.done());
    CHECK(gen.result() == 0);
}

TEST_CASE("move-only values can be yielded and returned", "[stage1]") {
    auto gen = boxes();
    auto first = gen.next();
    REQUIRE(first.has_value());
    REQUIRE(*first != nullptr);
    CHECK(**first == 1);
    CHECK_FALSE(gen.next().has_value());
    auto result = gen.result();
    REQUIRE(result != nullptr);
    CHECK(*result == 2);
}

TEST_CASE("send(): the paused co_yield evaluates to the value sent", "[stage1]") {
    std::vector<int> received;
    auto gen = running_total(&received);
    CHECK(gen.next() == 0);  // runs to the first co_yield; nothing is delivered yet
    CHECK(received.empty());
    CHECK(gen.send(5) == 5);
    CHECK(gen.send(10) == 15);
    CHECK(gen.send(-1) == std::nullopt);
    CHECK(received == std::vector<int>{5, 10, -1});
    CHECK(gen.result() == 15);
}

TEST_CASE("next() on a generator that takes sends delivers Send{}", "[stage1]") {
    auto gen = echo();
    CHECK(gen.next() == std::string("ready"));
    CHECK(gen.send("hi") == std::string("heard [hi]"));
    CHECK(gen.next() == std::string("heard []"));  // Python: next(gen) is gen.send(None)
    CHECK(gen.send("again") == std::string("heard [again]"));
    CHECK(gen.send("stop") == std::nullopt);
    CHECK(gen.result() == 4);

    // With ints, so that a stale copy of the previous send could not pass for Send{}.
    std::vector<int> received;
    auto total = running_total(&received);
    CHECK(total.next() == 0);
    CHECK(total.send(5) == 5);
    CHECK(total.next() == 5);  // delivered 0, not the 5 sent before
    CHECK(total.send(-1) == std::nullopt);
    CHECK(received == std::vector<int>{5, 0, -1});
}

TEST_CASE("send() before the first next() throws std::logic_error and changes nothing", "[stage1]") {
    std::vector<int> received;
    auto gen = running_total(&received);
    CHECK(thrown_by([&] { (void)gen.send(1); }) == "logic_error");
    CHECK_THROWS_WITH(gen.send(1), Catch::Contains("call next() first"));
    // The generator was not started by the failed send: next() still runs it to its first yield.
    CHECK(gen.next() == 0);
    CHECK(gen.send(7) == 7);
    CHECK(received == std::vector<int>{7});
}

TEST_CASE("range-for visits every yielded value, in order", "[stage1]") {
    std::vector<int> seen;
    for (int v : count_to(4)) seen.push_back(v);
    CHECK(seen == std::vector<int>{1, 2, 3, 4});

    std::vector<int> none_seen;
    for (int v : count_to(0)) none_seen.push_back(v);
    CHECK(none_seen.empty());
}

// The iterator reads each value before the generator resumes (which moves it out): a
// std::string is read whole, not as a destroyed string.
TEST_CASE("range-for over a generator of strings sees the strings", "[stage1]") {
    bool finished = false;
    std::vector<std::string> seen;
    for (const std::string& w : words(3, &finished)) seen.push_back(w);
    CHECK(finished);
    CHECK(seen == std::vector<std::string>{"word number 0, long enough to live on the heap",
                                           "word number 1, long enough to live on the heap",
                                           "word number 2, long enough to live on the heap"});
}

TEST_CASE("a moved-from generator is empty and safe; the moved-to one carries on", "[stage1]") {
    auto from = count_to(3);
    CHECK(from.next() == 1);
    auto to = std::move(from);

    CHECK(from.done());
    CHECK_THROWS_AS(from.next(), aio::StopIteration);
    CHECK_THROWS_AS(from.result(), aio::StopIteration);

    CHECK_FALSE(to.done());
    CHECK(to.next() == 2);
    CHECK(to.next() == 3);
    CHECK(to.next() == std::nullopt);
    CHECK(to.result() == 300);
}

TEST_CASE("a moved-from generator that takes sends refuses send() too", "[stage1]") {
    std::vector<int> received;
    auto from = running_total(&received);
    CHECK(from.next() == 0);
    aio::Generator<int, int, int> to;
    to = std::move(from);
    CHECK_THROWS_AS(from.send(1), aio::StopIteration);
    CHECK(to.send(4) == 4);  // the moved-to generator knows it was already started
    CHECK(received == std::vector<int>{4});
}

TEST_CASE("move-assigning over a suspended generator destroys its frame", "[stage1]") {
    int destroyed = 0;
    bool finished = false;
    auto gen = with_local(&destroyed, &finished);
    CHECK(gen.next() == 1);
    CHECK(destroyed == 0);
    bool replacement_started = false;
    gen = started_flag(&replacement_started);
    CHECK(destroyed == 1);  // the old frame's local was destroyed...
    CHECK_FALSE(finished);  // ...without running the rest of its body
    CHECK(gen.next() == 1);
    CHECK(replacement_started);
}

TEST_CASE("destroying a suspended generator runs its locals' destructors", "[stage1]") {
    int destroyed = 0;
    bool finished = false;
    {
        auto gen = with_local(&destroyed, &finished);
        CHECK(gen.next() == 1);
        CHECK(destroyed == 0);
    }
    CHECK(destroyed == 1);
    CHECK_FALSE(finished);

    // A generator that never started has constructed no locals, so it destroys none.
    {
        auto gen = with_local(&destroyed, &finished);
    }
    CHECK(destroyed == 1);
}

TEST_CASE("resuming a finished generator throws aio::StopIteration", "[stage1]") {
    auto gen = count_to(1);
    CHECK(gen.next() == 1);
    CHECK(gen.next() == std::nullopt);
    CHECK(thrown_by([&] { (void)gen.next(); }) == "StopIteration");
    CHECK(thrown_by([&] { (void)gen.next(); }) == "StopIteration");  // and again
    CHECK(gen.result() == 100);                                      // the result is still there

    std::vector<int> received;
    auto sendable = running_total(&received);
    CHECK(sendable.next() == 0);
    CHECK(sendable.send(-1) == std::nullopt);
    CHECK(thrown_by([&] { (void)sendable.send(1); }) == "StopIteration");
    CHECK(thrown_by([&] { (void)sendable.next(); }) == "StopIteration");
}

TEST_CASE("result() before the generator has returned throws std::logic_error", "[stage1]") {
    auto gen = count_to(2);
    CHECK(thrown_by([&] { (void)gen.result(); }) == "logic_error");  // not started
    CHECK(gen.next() == 1);
    CHECK(thrown_by([&] { (void)gen.result(); }) == "logic_error");  // suspended mid-way
    CHECK_THROWS_WITH(gen.result(), Catch::Contains("has not returned yet"));
    CHECK(gen.next() == 2);
    CHECK(gen.next() == std::nullopt);
    CHECK(gen.result() == 200);
}

TEST_CASE("an exception leaves the generator through next(); result() rethrows it", "[stage1]") {
    auto gen = fails_after(2);
    CHECK(gen.next() == 0);
    CHECK(gen.next() == 1);
    CHECK_THROWS_WITH(gen.next(), "generator failed");
    CHECK(gen.done());
    CHECK_THROWS_AS(gen.result(), std::runtime_error);
    CHECK_THROWS_WITH(gen.result(), "generator failed");  // every time it is asked
    CHECK(thrown_by([&] { (void)gen.next(); }) == "StopIteration");

    auto at_once = fails_after(0);
    CHECK_THROWS_WITH(at_once.next(), "generator failed");
    CHECK(at_once.done());
}
