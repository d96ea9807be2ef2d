// Stage 5 tests: the demo's parts. The SVG chart writer (well-formed, each point where the
// axes put it), the measurements of threads_vs_asyncio.hpp against the course's httpbin on a
// ServerThread (the shapes the demo claims, with generous bounds), and the demo program
// itself (--help, a tiny run), skipped where it is not built.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "stage1_generators/demo.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/timeouts.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/server_thread.hpp"
#include "stage5_http/svg_chart.hpp"
#include "stage5_http/threads_vs_asyncio.hpp"
#include "stage5_http/web_httpbin.hpp"
#include "tests/child_process.hpp"
#include "tests/net_test_support.hpp"

namespace {

// Every element opened is closed, in order, and nothing follows the root: a small XML
// well-formedness check (no comments, CDATA or processing instructions in our output).
bool well_formed(const std::string& xml, std::string& why) {
    std::vector<std::string> open;
    bool root_closed = false;
    for (std::size_t at = xml.find('<'); at != std::string::npos; at = xml.find('<', at + 1)) {
        const std::size_t end = xml.find('>', at);
        if (end == std::string::npos) return why = "a tag is not closed", false;
        if (root_closed) return why = "an element after the root", false;
        std::string tag = xml.substr(at + 1, end - at - 1);
        if (tag.find('<') != std::string::npos) return why = "'<' inside a tag", false;
        if (tag.empty()) return why = "an empty tag", false;
        if (tag[0] == '/') {
            if (open.empty() || open.back() != tag.substr(1)) return why = "</" + tag.substr(1) + "> closes nothing", false;
            open.pop_back();
            root_closed = open.empty();
        } else if (tag.back() != '/') {
            open.push_back(tag.substr(0, tag.find(' ')));
        } else if (open.empty()) {
            return why = "a root element that closes itself", false;
        }
    }
    if (!open.empty()) return why = "<" + open.back() + "> is never closed", false;
    if (xml.find('&') != std::string::npos)
        for (std::size_t at = xml.find('&'); at != std::string::npos; at = xml.find('&', at + 1))
            if (xml.compare(at, 5, "&amp;") && xml.compare(at, 4, "&lt;") && xml.compare(at, 4, "&gt;") &&
                xml.compare(at, 6, "&quot;"))
                return why = "a bare '&'", false;
    return true;
}

std::size_t count(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("nice_ticks: 1, 2 or 5 times a power of ten, from 0 to at least the maximum", "[demo][svg]") {
    CHECK(aio::nice_ticks(8.4, 5) == std::vector<double>{0, 2, 4, 6, 8, 10});
    CHECK(aio::nice_ticks(500, 5) == std::vector<double>{0, 100, 200, 300, 400, 500});
    CHECK(aio::nice_ticks(0.3, 5) == std::vector<double>{0, 0.1, 0.2, 0.30000000000000004});
    CHECK(aio::nice_ticks(0) == std::vector<double>{0, 1});
    CHECK(aio::nice_ticks(-3) == std::vector<double>{0, 1});
    const std::vector<double> t = aio::nice_ticks(47.3, 5);
    CHECK(t.back() >= 47.3);
    CHECK(t.size() <= 7);
}

TEST_CASE("to_svg: a well-formed document, each point where the axes put it", "[demo][svg]") {
    aio::LineChart chart;
    chart.title = "threads <&> asyncio";
    chart.x_label = "requests";
    chart.y_label = "seconds";
    chart.series.push_back({"threading", "#d62728", {{0, 0}, {250, 5}, {500, 10}}});
    chart.series.push_back({"asyncio \"flat\"", "#1f77b4", {{0, 1}, {500, 1}}});
    const std::string svg = aio::to_svg(chart);
    std::string why;
    INFO(svg);
    CHECK(well_formed(svg, why));
    INFO(why);
    CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
    CHECK(count(svg, "<polyline") == 2);
    CHECK(count(svg, "<circle") == 5);
    CHECK(svg.find("threads &lt;&amp;&gt; asyncio") != std::string::npos);
    CHECK(svg.find("asyncio &quot;flat&quot;") != std::string::npos);
    // The axes end at 500 and 10 (nice ticks): (0, 0) is the plot's bottom left corner,
    // (500, 10) its top right, (250, 5) the middle; y = 1 is a tenth of the way up.
    const double l = chart.plot_left(), r = chart.plot_right(), t = chart.plot_top(), b = chart.plot_bottom();
    char expected[200];
    std::snprintf(expected, sizeof expected, "points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"", l, b, (l + r) / 2,
                  (t + b) / 2, r, t);
    CHECK(svg.find(expected) != std::string::npos);
    std::snprintf(expected, sizeof expected, "points=\"%.1f,%.1f %.1f,%.1f\"", l, b - (b - t) / 10, r,
                  b - (b - t) / 10);
    CHECK(svg.find(expected) != std::string::npos);
    // Tick labels on both axes, and the axis labels.
    CHECK(svg.find(">500</text>") != std::string::npos);
    CHECK(svg.find(">10</text>") != std::string::npos);
    CHECK(svg.find(">requests</text>") != std::string::npos);
    CHECK(svg.find(">seconds</text>") != std::string::npos);
}

TEST_CASE("write_svg: writes the file, or says why it cannot", "[demo][svg]") {
    aio::LineChart chart = aio::threads_vs_asyncio_chart({{1, 0.1, 0.1, 0, ""}, {500, 8.4, 0.5, 0, ""}}, "t");
    char path[] = "/tmp/aio_svg_XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    aio::write_svg(chart, path);
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    ::unlink(path);
    CHECK(text.str() == aio::to_svg(chart));
    CHECK_THROWS_WITH(aio::write_svg(chart, "/nonexistent-dir/x.svg"), Catch::Contains("cannot write the chart"));
}

TEST_CASE("expected_seconds: rounds of `at_once` requests, a latency each", "[demo]") {
    CHECK(aio::expected_seconds(500, 0.1, 6) == Approx(8.4));
    CHECK(aio::expected_seconds(6, 0.1, 6) == Approx(0.1));
    CHECK(aio::expected_seconds(7, 0.1, 6) == Approx(0.2));
    CHECK(aio::expected_seconds(500, 1, 0) == Approx(1));
    CHECK(aio::expected_seconds(0, 1, 6) == 0);
}

NET_TEST_CASE("threads_vs_asyncio: one after another takes N latencies, at once about one", "[demo][threads]") {
    aio::ServerThread server(aio::httpbin_router());
    const double d = 0.04;
    const int n = 8;
    const std::string url = server.url("/delay/0.04");

    aio::Timing seq = aio::get_sequentially(url, n);
    CHECK(seq.ok == n);
    CHECK(seq.seconds >= n * d);  // each waited for its latency, one after another

    aio::Timing pool = aio::get_on_thread_pool(url, n, 2);
    CHECK(pool.ok == n);
    CHECK(pool.seconds >= (n / 2) * d);  // two at a time: at least n / 2 rounds
    CHECK(pool.seconds < seq.seconds);

    auto gathered = aio::run(aio::get_with_gather(url, n), aio::new_selector_event_loop);
    CHECK(gathered.ok == n);
    CHECK(gathered.seconds >= d);
    CHECK(gathered.seconds < seq.seconds / 3);  // far faster: about one latency

    // A pool limit of 2 makes the ClientSession wait in rounds too.
    auto limited = aio::run(aio::get_with_gather(url, n, 2), aio::new_selector_event_loop);
    CHECK(limited.ok == n);
    CHECK(limited.seconds >= (n / 2) * d);

    auto control = std::make_shared<aio::RunControl>();
    auto executor = aio::run(aio::get_in_executor(url, 4, control), aio::new_selector_event_loop);
    CHECK(executor.ok == 4);
    CHECK(control->done == 4);
}

NET_TEST_CASE("threads_vs_asyncio: a failure is counted with its message, and a stop starts nothing", "[demo]") {
    aio::ServerThread server(aio::httpbin_router());
    aio::Timing missing = aio::get_sequentially(server.url("/status/404"), 2);
    CHECK(missing.ok == 0);
    CHECK(missing.failed == 2);
    CHECK_THAT(missing.error, Catch::Contains("HTTP 404"));

    aio::RunControl stopped;
    stopped.stop = true;
    aio::Timing none = aio::get_on_thread_pool(server.url("/delay/5"), 20, 4, &stopped);
    CHECK(none.failed == 20);
    CHECK(none.seconds < 2);  // not one request of 5 s was made
    CHECK(stopped.done == 0);
}

NET_TEST_CASE("off_loop: a cancelled await raises the stop flag", "[demo]") {
    aio::ServerThread server(aio::httpbin_router());
    const std::string url = server.url("/delay/0.05");
    auto control = std::make_shared<aio::RunControl>();
    auto scenario = [](std::string url, std::shared_ptr<aio::RunControl> control) -> aio::Coroutine<bool> {
        std::function<aio::Timing(aio::RunControl*)> fn = [url](aio::RunControl* c) {
            return aio::get_sequentially(url, 1000, c);
        };
        try {
            co_await aio::wait_for(aio::off_loop(std::move(fn), control), 0.2);
        } catch (const aio::TimeoutError&) {
            co_return true;
        }
        co_return false;
    };
    const aio::Stopwatch clock;
    CHECK(aio::run(scenario(url, control), aio::new_selector_event_loop));
    CHECK(control->stop);
    CHECK(clock.wall() < 5);  // the loop closed once the worker stopped: not 1000 x 0.05 s
    CHECK(control->done < 100);
}

namespace {

using Run = child_process::ProgramRun;

std::optional<Run> demo(std::vector<std::string> args) {
    std::optional<Run> run = child_process::run_course_program("stage5_http", std::move(args), 60);
    if (!run) WARN("build/bin/stage5_http is not built (run make): its tests are skipped");
    return run;
}

}  // namespace

TEST_CASE("the demo: --help, and a bad value", "[demo]") {
    auto help = demo({"--help"});
    if (!help) return;
    CHECK(help->status == 0);
    CHECK_THAT(help->out, Catch::Contains("--quick") && Catch::Contains("--full") && Catch::Contains("--chart") &&
                              Catch::Contains("--url"));
    auto bad = demo({"--quick", "--full"});
    CHECK(bad->status == 2);
    CHECK_THAT(bad->err, Catch::Contains("choose one"));
    auto https = demo({"--url", "https://example.com/"});
    CHECK(https->status == 2);
    CHECK_THAT(https->err, Catch::Contains("TLS"));
}

NET_TEST_CASE("the demo: a tiny run goes through every part and writes the chart", "[demo]") {
    char path[] = "/tmp/aio_demo_chart_XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    auto run = demo({"--scale", "0.002", "--requests", "5", "--max-requests", "10", "--chart", path});
    std::ifstream in(path);
    std::stringstream chart;
    chart << in.rdbuf();
    ::unlink(path);
    if (!run) return;
    INFO(run->out << run->err);
    CHECK(run->status == 0);
    for (const char* part : {"== 1.", "== 2.", "== 3.", "== 4.", "== 5.", "What to notice"})
        CHECK_THAT(run->out, Catch::Contains(part));
    CHECK_THAT(chart.str(), Catch::StartsWith("<svg") && Catch::Contains("<polyline"));
}
