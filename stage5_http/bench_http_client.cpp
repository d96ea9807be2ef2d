// Stage 5 benchmark: the HTTP client, N concurrent GETs of a slow page, beside Python's clients.
//
// Measures: the wall-clock time of N concurrent `GET /delay/0.1` (N = 100, then 500) against
//          the course's httpbin (build/bin/httpbin, a child process), each client starting
//          cold: a new session, every connection opened during the measurement, every body
//          read to its end. The server sleeps 0.1 s per request, so 0.1 s is the ideal; what
//          is above it is the overhead: connecting N sockets, sending N requests, parsing N
//          answers, on both sides. Three clients, each a child process of its own:
//            ours            one ClientSession, N tasks gathered (this program, --client)
//            python-threads  urllib.request.urlopen in a ThreadPoolExecutor of N threads
//                            (bench_http_client.py), the blocking way
//            python-aiohttp  one aiohttp.ClientSession, asyncio.gather (bench_http_client.py),
//                            when a python3 can import aiohttp
//          Pools: ours and aiohttp both run with limit=0 (no limit on connections in use):
//          their default limit, 100, would make 500 requests go as five waves of 100, 0.5 s,
//          and measure the limit instead of the client. The server runs pinned to one core
//          and the clients to another (taskset); each run starts a new client process, and
//          the clients take turns run after run, so that load from elsewhere on a shared
//          machine hits all of them alike. The median of the runs (5 by default) is reported.
// Targets: ours at N=100 <= delay + 5 ms (0.105 s); at N=500 <= delay + 20 ms (0.120 s).
//          Printed as PASS or MISS: a benchmark, not a test.
//
// Output: `RESULT name=get_c<N> variant=... value=<s> unit=s` and `name=get_c<N>_overhead
// ... unit=ms` per figure, then a table, then the targets. Progress goes to stderr.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/bench_process.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/client_session.hpp"

namespace {

namespace bench = aio::bench;

struct Options {
    int runs = 5;
    double delay = 0.1;
    std::string counts = "100,500";
    bool quick = false;
    int server_core = -1;  // -1: not pinned; main() starts them at plan_cpus()'s two cores
    int client_core = -1;
    std::string only;
    // Hidden: this program as the measured client.
    std::string client_url;
    int client_count = 0;
};

// ------------------------------------------------------------------- ours: the client side

// [docs:bench_client_gather]
// One request of the N: the head, then the whole body (so its connection is done with).
aio::Coroutine<bool> get_one(aio::ClientSession& session, std::string url) {
    aio::ClientResponse response = co_await session.get(std::move(url));
    std::string body = co_await response.read();
    co_return response.status() == 200 && !body.empty();
}

// N of them at once on one session, as `asyncio.gather(*(get(s, url) for _ in range(n)))`;
// the number that succeeded.
aio::Coroutine<int> get_concurrently(aio::ClientSession& session, std::string url, int n) {
    std::vector<aio::Coroutine<bool>> requests;
    for (int i = 0; i < n; ++i) requests.push_back(get_one(session, url));
    std::vector<bool> ok = co_await aio::gather(std::move(requests));
    int succeeded = 0;
    for (bool b : ok) succeeded += b;
    co_return succeeded;
}
// [/docs:bench_client_gather]

// The measured client (--client): one warm-up request on a session of its own (the program's
// code paged in, as Python's imports are done before its clock starts), then the N requests
// on a new session, timed from the first request made to the last body read. Prints RESULT
// name=run (seconds) and name=ok (requests answered 200 with a body), for the parent.
aio::Coroutine<int> measure_ours(std::string base, double delay, int n) {
    {
        aio::ClientSession warmup;
        aio::ClientResponse r = co_await warmup.get(base + "get");
        std::string body = co_await r.read();
        co_await warmup.close();
    }
    char path[64];
    std::snprintf(path, sizeof path, "delay/%g", delay);
    // limit = 0: no cap on connections in use, as the aiohttp side is given (see the banner).
    aio::ClientSessionOptions options;
    options.limit = 0;
    const double start = bench::now();
    aio::ClientSession session(options);
    const int ok = co_await get_concurrently(session, base + path, n);
    const double elapsed = bench::seconds_since(start);
    co_await session.close();  // not timed (aiohttp's side stops its clock before closing too)
    bench::print_result("run", "ours", elapsed, "s", 6);
    bench::print_result("ok", "ours", ok, "requests", 0);
    co_return 0;
}

// ------------------------------------------------------------------- the server, a child

// Starts build/bin/httpbin (beside this program) on an ephemeral port, on `cpu` if given;
// its first line is its address, put in *url. Throws std::runtime_error, saying what to do,
// if it cannot.
std::unique_ptr<bench::ChildProcess> start_server(std::optional<int> cpu, int backlog, std::string* url) {
    std::string exe = bench::self_exe();
    const std::string httpbin = exe.substr(0, exe.rfind('/') + 1) + "httpbin";
    if (!bench::is_file(httpbin)) throw std::runtime_error(httpbin + " is not built: run make (it builds every program)");
    auto server = std::make_unique<bench::ChildProcess>(
        std::vector<std::string>{httpbin, "--port", "0", "--backlog", std::to_string(backlog)}, cpu);
    std::optional<std::string> line = server->read_line(10);
    if (!line) throw std::runtime_error("httpbin did not print its address within 10 s");
    *url = *line;
    return server;
}

// -------------------------------------------------------------------- the clients, children

struct Variant {
    std::string name;
    std::vector<std::string> argv;  // without the per-run arguments
};

// Which python3 can import aiohttp: the first on PATH, then /usr/bin/python3 (Debian's
// python3-aiohttp is installed for the system interpreter only; a pyenv python3 first on
// PATH does not see it).
std::optional<std::string> python_with_aiohttp() {
    std::vector<std::string> candidates;
    if (auto p = bench::find_on_path("python3")) candidates.push_back(*p);
    if (bench::is_file("/usr/bin/python3")) candidates.push_back("/usr/bin/python3");
    for (const std::string& python : candidates) {
        const std::string cmd = bench::shell_quote(python) + " -c 'import aiohttp' >/dev/null 2>&1";
        if (std::system(cmd.c_str()) == 0) return python;
    }
    return std::nullopt;
}

std::optional<std::string> python_script() {
    for (auto& c : bench::python_script_candidates(__FILE__))
        if (bench::is_file(c)) return c;
    return std::nullopt;
}

std::vector<Variant> variants(const Options& o) {
    std::vector<Variant> out;
    auto wanted = [&](const char* v) { return o.only.empty() || o.only == v; };
    if (wanted("ours")) out.push_back({"ours", {bench::self_exe()}});
    const std::optional<std::string> script = python_script();
    const std::optional<std::string> python = bench::find_on_path("python3");
    if (wanted("python-threads")) {
        if (!python || !script)
            bench::progress("python-threads: skipped: %s\n", python ? "bench_http_client.py not found" : "no python3 on PATH");
        else
            out.push_back({"python-threads", {*python, *script, "--variant", "threads"}});
    }
    if (wanted("python-aiohttp")) {
        const std::optional<std::string> with_aiohttp = python_with_aiohttp();
        if (!script)
            bench::progress("python-aiohttp: skipped: bench_http_client.py not found\n");
        else if (!with_aiohttp)
            bench::progress("python-aiohttp: skipped: no python3 can import aiohttp (apt-get install python3-aiohttp)\n");
        else {
            std::printf("python-aiohttp runs on %s\n", with_aiohttp->c_str());
            out.push_back({"python-aiohttp", {*with_aiohttp, *script, "--variant", "aiohttp"}});
        }
    }
    return out;
}

struct Run {
    std::optional<double> seconds;
    std::string note;
};

// One run of one client: a new process, pinned; it prints RESULT name=run (seconds) and
// name=ok (requests answered 200 with a body).
Run run_client(const Variant& v, const std::string& url, int n, std::optional<int> cpu) {
    std::vector<std::string> argv = v.argv;
    const std::vector<std::string> more = {"--client", url, "--count", std::to_string(n)};
    argv.insert(argv.end(), more.begin(), more.end());
    if (cpu) argv.insert(argv.begin(), {"taskset", "-c", std::to_string(*cpu)});
    bench::Captured c = bench::run_capture(argv);
    Run run;
    std::optional<double> seconds, ok;
    for (auto& line : c.lines)
        if (auto r = bench::parse_result(line)) {
            if (r->name == "run") seconds = r->value;
            if (r->name == "ok") ok = r->value;
        }
    if (!c.ok) run.note = " (" + c.failure + ")";
    if (seconds && ok && int(*ok) == n) run.seconds = seconds;
    else if (seconds && ok) run.note += " only " + std::to_string(int(*ok)) + "/" + std::to_string(n) + " succeeded";
    return run;
}

// ------------------------------------------------------------------------------- the run

// --counts "100,500" -> {100, 500}; nullopt if a part is not a count from 1 to 20000.
std::optional<std::vector<int>> parse_counts(const std::string& text) {
    std::vector<int> counts;
    std::stringstream in(text);
    for (std::string part; std::getline(in, part, ',');) {
        char* end = nullptr;
        const long n = std::strtol(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || n < 1 || n > 20000) return std::nullopt;
        counts.push_back(int(n));
    }
    if (counts.empty()) return std::nullopt;
    return counts;
}

std::optional<int> parse_args(int argc, char** argv, Options& o, aio::OptionParser& options) {
    options.integer("--runs", o.runs, 1, 100, "R", "runs of each client (interleaved); the median is reported")
        .number("--delay", o.delay, 0, 10, "S", "the server's delay per request (GET /delay/S)")
        .text("--counts", o.counts, "N,N", "concurrent requests per run, comma-separated (each 1 to 20000)")
        .flag("--quick", o.quick, "a short run: 3 runs")
        .integer("--server-core", o.server_core, -1, 1023, "CPU", "the core the server runs on (-1: not pinned)")
        .integer("--client-core", o.client_core, -1, 1023, "CPU", "the core the clients run on (-1: not pinned)")
        .choice("--only", o.only, {"ours", "python-threads", "python-aiohttp"}, "run one client only")
        .text("--client", o.client_url, "URL", "(internal) be our client: --count GETs of URL/delay/S")
        .hidden()
        .integer("--count", o.client_count, 1, 100000, "N", "(internal)")
        .hidden();
    return options.parse(argc, argv);
}

// The target for N concurrent requests: seconds of overhead allowed above the delay.
std::optional<double> target_overhead(int n) {
    if (n == 100) return 0.005;
    if (n == 500) return 0.020;
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    const bench::CpuPlan picked = bench::plan_cpus();
    o.server_core = picked.server.value_or(-1);
    o.client_core = picked.client.value_or(-1);
    aio::OptionParser options(
        "HTTP client speed: N concurrent GET /delay/0.1 (N = 100, then 500) against the course's\n"
        "httpbin (build/bin/httpbin, its own process), each client starting cold: ours (one\n"
        "ClientSession + gather), Python's urllib.request in a ThreadPoolExecutor of N threads, and\n"
        "aiohttp (one ClientSession + gather) when a python3 can import it. Ours and aiohttp both\n"
        "use limit=0 (no cap on connections). The server and the clients run pinned to different\n"
        "cores (taskset). Reports the median total time and its overhead above the delay.\n"
        "Targets: ours <= delay + 5 ms at N=100, <= delay + 20 ms at N=500.");
    if (auto status = parse_args(argc, argv, o, options)) return *status;
    if (!o.client_url.empty()) {
        if (o.client_count < 1) return options.usage_error("--client needs --count N");
        try {
            return aio::run(measure_ours(o.client_url, o.delay, o.client_count), aio::new_selector_event_loop);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench_http_client --client: %s\n", e.what());
            return 1;
        }
    }
    const std::optional<std::vector<int>> counts = parse_counts(o.counts);
    if (!counts) return options.usage_error("--counts wants counts from 1 to 20000, comma-separated (100,500), got '" +
                                            o.counts + "'");
    if (o.quick) o.runs = std::min(o.runs, 3);

    // Room for N sockets on each side (the children inherit it).
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    int largest = 0;
    for (int n : *counts) largest = std::max(largest, n);
    if (rlim_t(largest) + 64 > nofile.rlim_cur)
        bench::progress("warning: %d concurrent requests need more file descriptors than the limit (%llu)\n", largest,
                        static_cast<unsigned long long>(nofile.rlim_cur));

    // The listen queue holds every connect of a run at once (N arrive together): 511 (the
    // server's default) or N, whichever is more. A full queue drops SYNs, and a dropped SYN
    // is sent again only after a second, which would be measured as the client's time.
    const bench::CpuPlan cpus = bench::plan_cpus(o.server_core, o.client_core);
    std::unique_ptr<bench::ChildProcess> server;
    std::string url;
    try {
        server = start_server(cpus.server, std::max(511, largest), &url);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_http_client: %s\n", e.what());
        return 1;
    }
    char delay_text[32];
    std::snprintf(delay_text, sizeof delay_text, "%g", o.delay);
    std::printf("N concurrent GET /delay/%s from a cold client; server: build/bin/httpbin at %s; %s\n", delay_text,
                url.c_str(), cpus.description.c_str());
    std::printf("pools: ours and aiohttp with limit=0 (no cap); python-threads: ThreadPoolExecutor(max_workers=N)\n");
    std::fflush(stdout);
    const std::vector<Variant> clients = variants(o);

    // Round after round, each count, each client in turn: a burst of load from elsewhere
    // hits every client alike instead of whichever was being measured.
    std::map<int, std::map<std::string, std::vector<double>>> runs;  // count -> variant -> seconds
    bool server_gone = false;
    for (int round = 1; round <= o.runs && !server_gone; ++round)
        for (int n : *counts)
            for (const Variant& v : clients) {
                if (!server->running()) {
                    if (!server_gone)
                        bench::progress("httpbin has ended (stopped from outside?): the remaining runs are skipped\n");
                    server_gone = true;
                    break;
                }
                bench::progress("run %d/%d, %s, %d concurrent: ", round, o.runs, v.name.c_str(), n);
                std::vector<std::string> argv = v.argv;
                argv.insert(argv.end(), {"--delay", delay_text});
                Run run = run_client({v.name, argv}, url, n, cpus.client);
                bench::progress("%s%s\n", run.seconds ? bench::fmt(run.seconds, "%.4f s").c_str() : "failed",
                                run.note.c_str());
                if (run.seconds) runs[n][v.name].push_back(*run.seconds);
            }
    const bool was_alive = server->running();
    const int status = server->stop(SIGINT, 5.0);  // SIGINT: httpbin's graceful shutdown
    if (was_alive && status != 0)
        bench::progress("httpbin did not exit 0 after SIGINT (exit status %d; -1: a signal ended it)\n", status);

    std::map<int, std::map<std::string, double>> medians;
    for (int n : *counts)
        for (const Variant& v : clients)
            if (!runs[n][v.name].empty()) {
                const double m = bench::median(runs[n][v.name]);
                medians[n][v.name] = m;
                bench::print_result("get_c" + std::to_string(n), v.name.c_str(), m, "s", 4);
                bench::print_result("get_c" + std::to_string(n) + "_overhead", v.name.c_str(), (m - o.delay) * 1000, "ms", 1);
            }
    auto get = [&](int n, const std::string& v) -> std::optional<double> {
        auto it = medians[n].find(v);
        if (it == medians[n].end()) return std::nullopt;
        return it->second;
    };
    auto overhead = [&](std::optional<double> s) -> std::string {
        if (!s) return "n/a";
        return bench::fmt((*s - o.delay) * 1000, "%.1f");
    };
    const std::string of_runs = server_gone ? "of the runs done before httpbin ended" : "of " + std::to_string(o.runs) + " runs";
    std::printf("\nN concurrent GET /delay/%s: total seconds, and +ms: the overhead above %s s; median %s\n", delay_text,
                delay_text, of_runs.c_str());
    bench::Table table({{"N", 5}, {"ours", 8}, {"+ms", 7}, {"python-threads", 15}, {"+ms", 7}, {"python-aiohttp", 15},
                        {"+ms", 7}, {"aiohttp/ours +ms", 17}});
    for (int n : *counts) {
        auto ours = get(n, "ours"), threads = get(n, "python-threads"), aiohttp = get(n, "python-aiohttp");
        std::optional<double> ours_over, aiohttp_over;
        if (ours) ours_over = *ours - o.delay;
        if (aiohttp) aiohttp_over = *aiohttp - o.delay;
        table.row({std::to_string(n), bench::fmt(ours, "%.4f"), overhead(ours), bench::fmt(threads, "%.4f"),
                   overhead(threads), bench::fmt(aiohttp, "%.4f"), overhead(aiohttp),
                   bench::ratio(aiohttp_over, ours_over, 0.0001)});
    }
    table.print();
    std::printf("\n");
    for (int n : *counts) {
        const std::optional<double> allowed = target_overhead(n);
        const std::optional<double> ours = get(n, "ours");
        if (!allowed || !ours) continue;
        std::printf("TARGET get_c%d ours <= %.3f s (delay + %.0f ms): %s (%.4f s)\n", n, o.delay + *allowed,
                    *allowed * 1000, bench::verdict(*ours <= o.delay + *allowed), *ours);
    }
    return 0;
}
