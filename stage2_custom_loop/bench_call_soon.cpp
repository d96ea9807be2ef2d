// Stage 2 benchmark: call_soon throughput, in callbacks per second.
//
// Measures: what one callback costs the loop, from call_soon to having run it. Two workloads:
//   call_soon        (the main figure) N call_soon(cb) in a row from outside the loop, then
//                    run_forever(): the pass runs all N, and the last one calls stop(). Timed
//                    from the first call_soon to run_forever's return, so it counts making
//                    each handle, queueing it, running it and freeing it.
//   call_soon_chain  each callback schedules the next (N in all); the loop sees one callback
//                    per pass, so this also counts a whole run_once() pass per callback.
// Python:   bench_call_soon.py beside this file runs the identical workloads on asyncio's
//           loop (same N, same number of runs, median) when python3 is on PATH.
// Target:   issue 3: call_soon throughput at least 30 times CPython's.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure (the
// course's convention, for scripts), then a table for people. Progress goes to stderr.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"

namespace {

constexpr double kTargetRatio = 30.0;  // issue 3: at least 30x CPython

struct Options {
    int count = 1'000'000;
    int runs = 5;
    bool python = true;
};

void usage(const char* prog) {
    std::printf(
        "usage: %s [--count N] [--runs R] [--no-python] [--help]\n"
        "\n"
        "call_soon throughput, in callbacks per second (median of R runs), for two workloads:\n"
        "  call_soon        N call_soon(cb) in a row, then run_forever(); cb increments a counter\n"
        "                   and the last one calls stop(). Timed from the first call_soon to the\n"
        "                   return of run_forever: scheduling, running and freeing N handles.\n"
        "                   This is the main figure.\n"
        "  call_soon_chain  each callback schedules the next, N in all: one run_once() pass per\n"
        "                   callback, so it also measures the cost of a pass.\n"
        "Then, if python3 is on PATH, runs bench_call_soon.py (beside this program's source), the\n"
        "identical workloads on Python's asyncio, and prints both side by side with the ratio.\n"
        "Target (issue 3): call_soon throughput at least %.0f times CPython's.\n"
        "\n"
        "  --count N     callbacks per run (default 1000000)\n"
        "  --runs R      runs of each workload on each side; the median is reported (default 5)\n"
        "  --no-python   skip the Python side\n",
        prog, kTargetRatio);
}

// Parses the command line; exits on --help or on a bad argument.
Options parse_args(int argc, char** argv) {
    Options o;
    auto value = [&](int& i) -> const char* {
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s: %s needs a value (see --help)\n", argv[0], argv[i]);
            std::exit(2);
        }
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(argv[0]);
            std::exit(0);
        } else if (a == "--count") {
            o.count = std::atoi(value(i));
        } else if (a == "--runs") {
            o.runs = std::atoi(value(i));
        } else if (a == "--no-python") {
            o.python = false;
        } else {
            std::fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", argv[0], argv[i]);
            std::exit(2);
        }
    }
    if (o.count < 1 || o.runs < 1) {
        std::fprintf(stderr, "%s: --count and --runs must be at least 1\n", argv[0]);
        std::exit(2);
    }
    return o;
}

// The median, as Python's statistics.median computes it (mean of the middle two when even),
// so both sides summarise their runs the same way.
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- the workloads ------------------------------------------------------------------------

struct Counter {
    aio::EventLoop* loop;
    int remaining;
};

// call_soon: N callbacks queued before the loop runs; one pass runs them all.
double run_call_soon(int count) {
    aio::EventLoop loop;
    Counter c{&loop, count};
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i)
        loop.call_soon([&c] {
            if (--c.remaining == 0) c.loop->stop();
        });
    loop.run_forever();
    return count / seconds_since(t0);
}

// call_soon_chain: each callback schedules the next. A named functor rather than a lambda,
// because the callback must schedule a copy of itself.
struct ChainLink {
    Counter* c;
    void operator()() const {
        if (--c->remaining == 0)
            c->loop->stop();
        else
            c->loop->call_soon(*this);
    }
};

double run_call_soon_chain(int count) {
    aio::EventLoop loop;
    Counter c{&loop, count};
    auto t0 = std::chrono::steady_clock::now();
    loop.call_soon(ChainLink{&c});
    loop.run_forever();
    return count / seconds_since(t0);
}

struct Workload {
    const char* name;
    double (*run)(int count);
};
constexpr Workload kWorkloads[] = {{"call_soon", run_call_soon}, {"call_soon_chain", run_call_soon_chain}};

// ---- the Python side ----------------------------------------------------------------------

bool is_file(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The first executable `name` on PATH, like `command -v`.
std::optional<std::string> find_on_path(const char* name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    for (;;) {
        std::size_t end = dirs.find(':', start);
        std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (is_file(candidate) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        if (end == std::string::npos) return std::nullopt;
        start = end + 1;
    }
}

// The script sits beside this source file. config.mk compiles with absolute paths, so
// __FILE__ is that file's absolute path; failing that, look where a default build puts the
// binary (build/bin/, two levels below the repository root).
std::vector<std::string> python_script_candidates(const char* script_name) {
    std::vector<std::string> out;
    std::string src = __FILE__;
    if (src.size() > 4 && src.compare(src.size() - 4, 4, ".cpp") == 0)
        out.push_back(src.substr(0, src.size() - 4) + ".py");
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        std::string dir(exe, std::size_t(n));
        dir = dir.substr(0, dir.rfind('/'));
        out.push_back(dir + "/../../stage2_custom_loop/" + script_name);
    }
    return out;
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

struct ResultLine {
    std::string line;  // as printed, to pass on verbatim
    std::string name, variant, unit;
    double value = 0;
};

// Parses `RESULT name=a variant=b value=1.5 unit=c`; nullopt for any other line.
std::optional<ResultLine> parse_result(const std::string& line) {
    if (line.rfind("RESULT ", 0) != 0) return std::nullopt;
    ResultLine r;
    r.line = line;
    bool has_value = false;
    std::size_t pos = 7;
    while (pos < line.size()) {
        std::size_t end = line.find(' ', pos);
        std::string field = line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        std::size_t eq = field.find('=');
        if (eq != std::string::npos) {
            std::string key = field.substr(0, eq), val = field.substr(eq + 1);
            if (key == "name") r.name = val;
            else if (key == "variant") r.variant = val;
            else if (key == "unit") r.unit = val;
            else if (key == "value") {
                char* endp = nullptr;
                r.value = std::strtod(val.c_str(), &endp);
                has_value = endp && *endp == '\0' && !val.empty();
            }
        }
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    if (r.name.empty() || r.variant.empty() || !has_value) return std::nullopt;
    return r;
}

// Runs the Python script and returns its RESULT lines; says why on stderr when it can't.
// Its progress messages go straight to our stderr.
std::vector<ResultLine> run_python(const Options& o) {
    auto python = find_on_path("python3");
    if (!python) {
        std::fprintf(stderr, "python3 asyncio: skipped: python3 is not on PATH\n");
        return {};
    }
    std::string script;
    auto candidates = python_script_candidates("bench_call_soon.py");
    for (auto& c : candidates)
        if (is_file(c)) {
            script = c;
            break;
        }
    if (script.empty()) {
        std::string looked;
        for (auto& c : candidates) looked += "\n  " + c;
        std::fprintf(stderr, "python3 asyncio: skipped: bench_call_soon.py not found; looked at:%s\n", looked.c_str());
        return {};
    }
    char args[128];
    std::snprintf(args, sizeof args, " --count %d --runs %d", o.count, o.runs);
    std::string cmd = shell_quote(*python) + " " + shell_quote(script) + args;
    std::fflush(stdout);
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) {
        std::fprintf(stderr, "python3 asyncio: skipped: cannot run %s: %s\n", cmd.c_str(), std::strerror(errno));
        return {};
    }
    std::vector<ResultLine> results;
    std::string line;
    for (int c; (c = std::fgetc(p)) != EOF;) {
        if (c != '\n') {
            line += char(c);
            continue;
        }
        if (auto r = parse_result(line)) results.push_back(*r);
        line.clear();
    }
    if (auto r = parse_result(line)) results.push_back(*r);
    int status = ::pclose(p);
    if (status != 0) {
        std::fprintf(stderr, "python3 asyncio: %s failed (status %d); its figures are ignored\n", script.c_str(), status);
        return {};
    }
    return results;
}

std::optional<double> find_figure(const std::vector<ResultLine>& rs, const std::string& name) {
    for (auto& r : rs)
        if (r.name == name && r.variant == "python-asyncio") return r.value;
    return std::nullopt;
}

// ---- the report ---------------------------------------------------------------------------

std::string millions(std::optional<double> v) {
    if (!v) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f M", *v / 1e6);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_args(argc, argv);

    std::vector<double> ours;
    for (const Workload& w : kWorkloads) {
        std::vector<double> rates;
        for (int r = 1; r <= o.runs; ++r) {
            std::fprintf(stderr, "ours: %s, run %d/%d (%d callbacks)...", w.name, r, o.runs, o.count);
            rates.push_back(w.run(o.count));
            std::fprintf(stderr, " %.2f M callbacks/s\n", rates.back() / 1e6);
        }
        ours.push_back(median(rates));
        std::printf("RESULT name=%s variant=ours value=%.0f unit=callbacks_per_s\n", w.name, ours.back());
        std::fflush(stdout);
    }

    std::vector<std::optional<double>> python(std::size(kWorkloads));
    if (o.python) {
        auto rs = run_python(o);
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
            python[i] = find_figure(rs, kWorkloads[i].name);
            if (!rs.empty() && !python[i])
                std::fprintf(stderr, "python3 asyncio: the script printed no %s figure\n", kWorkloads[i].name);
        }
    }

    std::printf("\ncall_soon throughput, %d callbacks per run, median of %d runs (callbacks/s)\n", o.count, o.runs);
    std::printf("  %-18s %12s %16s %14s\n", "workload", "ours", "python-asyncio", "ours / python");
    for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
        char r[32] = "n/a";
        if (python[i] && *python[i] > 0) std::snprintf(r, sizeof r, "%.1fx", ours[i] / *python[i]);
        std::printf("  %-18s %12s %16s %14s\n", kWorkloads[i].name, millions(ours[i]).c_str(),
                    millions(python[i]).c_str(), r);
    }
    if (python[0] && *python[0] > 0) {
        double x = ours[0] / *python[0];
        std::printf("  target: call_soon at least %.0fx CPython: %.1fx -> %s\n", kTargetRatio, x,
                    x >= kTargetRatio ? "PASS" : "MISS");
    } else {
        std::printf("  target: call_soon at least %.0fx CPython: n/a (no Python figure)\n", kTargetRatio);
    }
    return 0;
}
