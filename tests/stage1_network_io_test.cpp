// Stage 1 tests: the first article's mocked requests. blocking_request() sleeps through its
// wait, as a blocking read does; network_io() polls a deadline and returns 200;
// easy_coroutine() delegates to it and records the reply. On the polling loop several
// requests overlap, so three take about as long as one, but the loop spins while they wait.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "stage1_generators/network_io.hpp"
#include "stage1_generators/polling_loop.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TEST_CASE("blocking_request blocks for its time without using the CPU", "[stage1]") {
    const double duration = 0.1;
    const std::clock_t cpu0 = std::clock();
    const auto start = Clock::now();
    CHECK(aio::blocking_request(7, duration) == "request 7 got response 200");
    const double took = seconds_since(start);
    const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
    CHECK(took >= duration);
    CHECK(took < 1.0);
    CHECK(cpu < duration / 4);  // it slept: a busy wait would use about all of it
}

TEST_CASE("network_io reports 'not yet' until its time is up, then returns 200", "[stage1]") {
    const double duration = 0.01;
    auto request = aio::network_io(duration);
    const auto start = Clock::now();
    long polls = 0;
    while (request.next()) ++polls;
    const double took = seconds_since(start);
    CHECK(request.result() == 200);
    CHECK(polls > 0);           // it handed control back while waiting...
    CHECK(took >= duration);    // ...and did not return before its deadline
    CHECK(took < 1.0);          // a generous bound for a loaded machine
}

TEST_CASE("network_io starts its clock when first resumed, not when called", "[stage1]") {
    auto request = aio::network_io(0.03);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // longer than the request
    CHECK(request.next().has_value());  // the request only starts now, so it is not done
    while (request.next()) {
    }
    CHECK(request.result() == 200);
}

TEST_CASE("easy_coroutine delegates to network_io and records the response", "[stage1]") {
    auto coro = aio::easy_coroutine(4, 0.01);
    while (coro.next()) {
    }
    CHECK(coro.result() == "coroutine 4 got response 200");
}

TEST_CASE("the polling loop runs three requests concurrently", "[stage1]") {
    const double duration = 0.1;
    aio::PollingLoop<std::string> loop;
    for (int i = 0; i < 3; ++i) loop.add(aio::easy_coroutine(i, duration));
    const auto start = Clock::now();
    const std::vector<std::string> results = loop.run();
    const double took = seconds_since(start);

    CHECK(results == std::vector<std::string>{"coroutine 0 got response 200", "coroutine 1 got response 200",
                                              "coroutine 2 got response 200"});
    CHECK(took >= duration);
    // One after another they would take 3 x duration; overlapped, about 1 x. The bound is
    // generous for a loaded 2-core machine and still rules out running them in sequence.
    CHECK(took < 2 * duration);
    // The flaw this stage demonstrates: nothing in the loop waits, so it polls over and over.
    CHECK(loop.passes() > 1);
}

TEST_CASE("the polling loop spins while its coroutines wait: its CPU time is about its wall time", "[stage1]") {
    const double duration = 0.2;
    aio::PollingLoop<std::string> loop;
    loop.add(aio::easy_coroutine(0, duration));
    const std::clock_t cpu0 = std::clock();
    loop.run();
    const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
    // Generous: another program may take the core for a while, but the loop never sleeps.
    CHECK(cpu > duration / 4);
}
