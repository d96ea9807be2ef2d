// Stage 5: HTTP/1.1. Built on the clients: the articles' measurements, N GET requests made
// four ways, each timed, for the demo (main.cpp) and bench_threads_vs_asyncio.
//
// Adds:    RunControl, Timing, get_sequentially, get_on_thread_pool (the blocking client),
//          get_with_gather (one ClientSession), get_in_executor (run_in_executor), off_loop,
//          expected_seconds, ThreadsVsAsyncioRow, threads_vs_asyncio_chart.
// Mirrors: the articles' Python, line for line:
//              for url in urls: requests.get(url)                        get_sequentially
//              with ThreadPoolExecutor() as ex: ex.map(requests.get, urls)
//                                                                         get_on_thread_pool
//              async with aiohttp.ClientSession() as s:
//                  await asyncio.gather(*(fetch(s, url) for url in urls))  get_with_gather
//              await asyncio.gather(*(loop.run_in_executor(None, requests.get, url) ...))
//                                                                         get_in_executor
//
// The blocking ways use blocking_get (requests.get: a new connection per request, as the
// articles' code does); the asyncio way one ClientSession, whose pool keeps its connections.
// On loopback a connection costs a few tens of microseconds, nothing beside the latency the
// server's /delay/{s} adds, which stands in for the network's.
//
// The model the measurements are checked against (expected_seconds): with a latency of d
// seconds per request, n requests take
//     one after another                 n * d
//     on a pool of w threads            ceil(n / w) * d    (w requests at a time)
//     one ClientSession, limit l        ceil(n / l) * d    (l connections at a time)
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/executor.hpp"
#include "stage5_http/svg_chart.hpp"

namespace aio {

// Shared by a measurement running on other threads and whoever watches it (by pointer, or
// shared_ptr when the measurement may outlive the caller's frame).
struct RunControl {
    std::atomic<bool> stop{false};  // set: start no more requests (Ctrl-C); those in flight finish
    std::atomic<int> done{0};       // requests finished so far, for a progress line
};

// What a run of n requests gave.
struct Timing {
    double seconds = 0;  // wall clock, from the first request's start to the last one's end
    int ok = 0;          // answered 200, the whole body read
    int failed = 0;      // anything else (an error status, an exception, skipped after a stop)
    std::string error;   // the first failure's message, "" if none
};

// n blocking GETs of `url`, one after another, on the calling thread. The control (if given)
// is checked before each request.
Timing get_sequentially(const std::string& url, int n, RunControl* control = nullptr);

// The same n GETs submitted to a ThreadPoolExecutor of `workers` threads (CPython's
// default: ThreadPoolExecutor::default_max_workers()), waiting for all of them. Blocks the
// calling thread.
Timing get_on_thread_pool(const std::string& url, int n, std::size_t workers, RunControl* control = nullptr);

// The same n GETs on the running loop: one ClientSession (its pool holds at most `limit`
// connections at once, 0 for no limit; aiohttp's default is 100) and gather. The session is
// closed before it returns.
Coroutine<Timing> get_with_gather(std::string url, int n, std::size_t limit = 100,
                                  std::shared_ptr<RunControl> control = nullptr);

// The same n GETs with the blocking client, each handed to the loop's default executor with
// run_in_executor, and the n Futures gathered: the articles' way of calling a blocking
// library from asyncio.
Coroutine<Timing> get_in_executor(std::string url, int n, std::shared_ptr<RunControl> control = nullptr);

// Runs blocking_measurement(control) on the loop's default executor and returns its result,
// so that the loop stays free meanwhile (to print progress, to notice Ctrl-C). If the
// awaiting task is cancelled, control->stop is set, so the measurement stops starting
// requests and the worker is soon free again; the CancelledError goes on.
Coroutine<Timing> off_loop(std::function<Timing(RunControl*)> blocking_measurement,
                           std::shared_ptr<RunControl> control);

// The model above: seconds for n requests of `latency` seconds, `at_once` at a time
// (0: all at once).
double expected_seconds(int n, double latency, std::size_t at_once);

// One line of the threads-versus-asyncio table: seconds for `requests` requests each way
// (the median of the runs).
struct ThreadsVsAsyncioRow {
    int requests = 0;
    double threads = 0;
    double asyncio = 0;
    int failed = 0;      // requests that failed, over every run of both ways
    std::string error;   // the first failure's message
};

// Measures one row: `runs` times get_on_thread_pool (off the loop, through off_loop) and
// get_with_gather, alternately, and keeps each way's median. `control` is shared by all the
// runs (its `done` counts every request of the row).
Coroutine<ThreadsVsAsyncioRow> measure_threads_vs_asyncio(std::string url, int requests, std::size_t workers,
                                                          std::size_t limit, int runs,
                                                          std::shared_ptr<RunControl> control);

// The fifth article's figure: seconds against requests, a line for each.
LineChart threads_vs_asyncio_chart(const std::vector<ThreadsVsAsyncioRow>& rows, const std::string& title);

}  // namespace aio
