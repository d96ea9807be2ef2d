// Stage 5: the articles' measurements: N GET requests, four ways. See threads_vs_asyncio.hpp.
#include "stage5_http/threads_vs_asyncio.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>

#include "stage3_tasks_futures/tasks.hpp"
#include "stage5_http/blocking_client.hpp"
#include "stage5_http/client_session.hpp"

namespace aio {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Generous: the server's longest delay is 10 s (kMaxDelay). They only bound a broken run.
const BlockingTimeout kBlockingTimeout{10.0, 60.0};

struct Outcome {
    bool ok = false;
    std::string error;
};

void add(Timing& t, const Outcome& o) {
    if (o.ok) {
        ++t.ok;
        return;
    }
    ++t.failed;
    if (t.error.empty()) t.error = o.error;
}

bool stopped(const RunControl* control) { return control && control->stop.load(std::memory_order_relaxed); }

// requests.get(url): a new connection, the whole body read.
Outcome blocking_fetch(const std::string& url, RunControl* control) {
    Outcome o;
    if (stopped(control)) {
        o.error = "stopped before it started";
        return o;
    }
    try {
        BlockingResponse r = blocking_get(url, kBlockingTimeout);
        o.ok = r.status == 200;
        if (!o.ok) o.error = "HTTP " + std::to_string(r.status) + " from " + url;
    } catch (const std::exception& e) {
        o.error = e.what();
    }
    if (control) control->done.fetch_add(1, std::memory_order_relaxed);
    return o;
}

// What run_in_executor calls: its arguments are copies, and the shared_ptr's count is atomic.
Outcome blocking_fetch_shared(std::string url, std::shared_ptr<RunControl> control) {
    return blocking_fetch(url, control.get());
}

// async with session.get(url) as r: await r.read()
Coroutine<Outcome> fetch(ClientSession& session, std::string url, RunControl* control) {
    Outcome o;
    try {
        ClientResponse r = co_await session.get(url);
        std::string body = co_await r.read();
        o.ok = r.status() == 200;
        if (!o.ok) o.error = "HTTP " + std::to_string(r.status()) + " from " + url;
    } catch (const CancelledError&) {
        throw;  // (a std::exception too, but not this request's failure)
    } catch (const std::exception& e) {
        o.error = e.what();
    }
    if (control) control->done.fetch_add(1, std::memory_order_relaxed);
    co_return o;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

Timing get_sequentially(const std::string& url, int n, RunControl* control) {
    Timing t;
    const double start = now();
    for (int i = 0; i < n; ++i) add(t, blocking_fetch(url, control));
    t.seconds = now() - start;
    return t;
}

// [docs:thread_pool_get]
// with ThreadPoolExecutor(max_workers=workers) as pool: pool.map(requests.get, urls)
// Each worker blocks in its request; `workers` requests are in flight at a time, and the
// rest wait in the pool's queue: n requests take about ceil(n / workers) latencies.
Timing get_on_thread_pool(const std::string& url, int n, std::size_t workers, RunControl* control) {
    Timing t;
    std::mutex mutex;  // guards t while the workers add their outcomes
    const double start = now();
    {
        ThreadPoolExecutor pool(workers);
        for (int i = 0; i < n; ++i)
            pool.submit([&t, &mutex, &url, control] {
                Outcome o = blocking_fetch(url, control);
                std::lock_guard<std::mutex> lock(mutex);
                add(t, o);
            });
    }  // leaving the `with` block: shutdown(wait=True), every request has finished
    t.seconds = now() - start;
    return t;
}
// [/docs:thread_pool_get]

// [docs:gather_get]
// async with aiohttp.ClientSession() as session:
//     await asyncio.gather(*(fetch(session, url) for url in urls))
// Every request is a task waiting on its socket; the one thread waits for all of them at
// once, in the selector. n requests take about one latency (ceil(n / limit) of them).
Coroutine<Timing> get_with_gather(std::string url, int n, std::size_t limit, std::shared_ptr<RunControl> control) {
    const double start = now();
    ClientSessionOptions options;
    options.limit = limit;
    ClientSession session(options);
    std::vector<Coroutine<Outcome>> requests;
    for (int i = 0; i < n; ++i) requests.push_back(fetch(session, url, control.get()));
    std::vector<Outcome> outcomes = co_await gather(std::move(requests));
    co_await session.close();
    Timing t;
    t.seconds = now() - start;
    for (const Outcome& o : outcomes) add(t, o);
    co_return t;
}
// [/docs:gather_get]

// [docs:executor_get]
// await asyncio.gather(*(loop.run_in_executor(None, requests.get, url) for url in urls))
// The blocking call runs on a worker of the loop's default executor; the loop awaits a
// Future that the worker completes through call_soon_threadsafe.
Coroutine<Timing> get_in_executor(std::string url, int n, std::shared_ptr<RunControl> control) {
    const double start = now();
    std::vector<Ref<Future<Outcome>>> calls;
    for (int i = 0; i < n; ++i) calls.push_back(run_in_executor(blocking_fetch_shared, url, control));
    std::vector<Outcome> outcomes = co_await gather(std::move(calls));
    Timing t;
    t.seconds = now() - start;
    for (const Outcome& o : outcomes) add(t, o);
    co_return t;
}
// [/docs:executor_get]

Coroutine<Timing> off_loop(std::function<Timing(RunControl*)> blocking_measurement,
                           std::shared_ptr<RunControl> control) {
    auto job = [measure = std::move(blocking_measurement), control] { return measure(control.get()); };
    Ref<Future<Timing>> call = run_in_executor(std::move(job));
    try {
        Timing t = co_await call;
        co_return t;
    } catch (const CancelledError&) {
        control->stop.store(true, std::memory_order_relaxed);  // the worker finishes soon
        throw;
    }
}

double expected_seconds(int n, double latency, std::size_t at_once) {
    if (n <= 0) return 0;
    const double rounds = at_once == 0 ? 1.0 : std::ceil(double(n) / double(at_once));
    return rounds * latency;
}

Coroutine<ThreadsVsAsyncioRow> measure_threads_vs_asyncio(std::string url, int requests, std::size_t workers,
                                                          std::size_t limit, int runs,
                                                          std::shared_ptr<RunControl> control) {
    ThreadsVsAsyncioRow row;
    row.requests = requests;
    std::vector<double> threads, asyncio;
    auto note = [&row](const Timing& t) {
        row.failed += t.failed;
        if (row.error.empty()) row.error = t.error;
    };
    for (int run = 0; run < std::max(runs, 1); ++run) {
        // Named first: a temporary made from a capturing lambda inside a co_await is
        // miscompiled by g++ 12 (stage1_generators/README.md's appendix, hazard 2).
        std::function<Timing(RunControl*)> on_pool = [url, requests, workers](RunControl* c) {
            return get_on_thread_pool(url, requests, workers, c);
        };
        Timing t = co_await off_loop(std::move(on_pool), control);
        threads.push_back(t.seconds);
        note(t);
        Timing a = co_await get_with_gather(url, requests, limit, control);
        asyncio.push_back(a.seconds);
        note(a);
    }
    row.threads = median(threads);
    row.asyncio = median(asyncio);
    co_return row;
}

LineChart threads_vs_asyncio_chart(const std::vector<ThreadsVsAsyncioRow>& rows, const std::string& title) {
    LineChart chart;
    chart.title = title;
    chart.x_label = "requests";
    chart.y_label = "seconds";
    ChartSeries threads{"threading (ThreadPoolExecutor + blocking client)", "#d62728", {}};
    ChartSeries asyncio{"asyncio (one ClientSession + gather)", "#1f77b4", {}};
    for (const ThreadsVsAsyncioRow& r : rows) {
        threads.points.emplace_back(r.requests, r.threads);
        asyncio.points.emplace_back(r.requests, r.asyncio);
    }
    chart.series.push_back(std::move(threads));
    chart.series.push_back(std::move(asyncio));
    return chart;
}

}  // namespace aio
