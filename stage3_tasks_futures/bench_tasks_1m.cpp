// Stage 3 benchmark: a million tasks, against threads and processes (the third article).
//
// Measures: what one unit of concurrency costs to create and to hold, four ways:
//   ours            inside aio::run, main creates 1,000,000 tasks of an empty coroutine with
//                   create_task, keeps them in a vector, then awaits each (`for t in tasks:
//                   await t`). Creation time, total time (create + await all), and the growth
//                   of resident memory (VmHWM at the end minus VmRSS before).
//   python-asyncio  the same program on CPython's asyncio (bench_tasks_1m.py beside this file).
//   threads         start N std::threads that do nothing, then join them all: 100,000, and
//                   1,000,000 when 100,000 took under 6 s (so 1M stays under a minute).
//   processes       fork N = 1,000 children that _exit(0) at once, then waitpid them all;
//                   extrapolated to 1,000,000 (and labelled so).
// Every measurement runs in a fresh copy of this program (it re-executes itself with a
// hidden --child argument), so no run inherits another's heap: resident-memory figures need
// a clean process.
// Targets:  issue 4: total time at most 1/60 of CPython's, memory growth at most 1/8 of it.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure, then the
// article's table, the comparison with the targets, and where a task's bytes go (by the
// pool's and operator new's counts, in a run of 10,000 tasks). Progress goes to stderr.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/task.hpp"

// ---- counting allocations -----------------------------------------------------------------
//
// To say where a task's memory goes, the --child alloc run counts every operator new by
// size. Replacing the global operator new is the standard's own hook for this; when not
// counting, it is malloc and a test of one flag, like the library's own. (noinline: g++
// would otherwise inline delete's free() into code whose new it cannot see is malloc,
// and warn about a mismatch that is not there.)
namespace {
constexpr std::size_t kMaxCountedSize = 4096;  // bigger blocks share the last bucket
std::atomic<bool> g_counting{false};
long g_alloc_by_size[kMaxCountedSize + 1];
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
    if (g_counting.load(std::memory_order_relaxed)) ++g_alloc_by_size[std::min(n, kMaxCountedSize)];
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

namespace bench = aio::bench;

constexpr double kTargetTimeRatio = 60.0;   // issue 4: total time at most 1/60 of CPython's
constexpr double kTargetMemoryRatio = 8.0;  // issue 4: memory growth at most 1/8 of CPython's
constexpr double kThreadsBudget = 60.0;     // start the larger thread count only if it fits this (s)
constexpr long kAllocProfileTasks = 10'000;

struct Options {
    long count = 1'000'000;
    int runs = 5;
    int python_runs = 1;
    long threads = 100'000;
    long threads_large = 1'000'000;
    long processes = 1'000;
    bool python = true;
    bool do_threads = true;
    bool do_processes = true;
    std::string child;  // hidden: the measurement a re-executed copy makes
    long child_n = 0;
};

void usage(const char* prog) {
    std::printf(
        "usage: %s [--count N] [--runs R] [--python-runs R] [--threads N] [--threads-large N]\n"
        "       [--processes N] [--no-python] [--no-threads] [--no-processes] [--help]\n"
        "\n"
        "What a unit of concurrency costs to create and to hold (the third article's table):\n"
        "  ours            inside aio::run, main creates N tasks of an empty coroutine with\n"
        "                  create_task, keeps them in a vector, then awaits each one in turn.\n"
        "                  Reports the creation time, the total time (create + await all) and the\n"
        "                  resident-memory growth (peak VmHWM minus VmRSS before): median of R runs.\n"
        "  python-asyncio  the same program on CPython's asyncio: bench_tasks_1m.py, beside this\n"
        "                  program's source, run with python3 if it is on PATH.\n"
        "  threads         start N std::threads doing nothing, then join them all; then the larger\n"
        "                  count too, if the first one predicts it finishes within %.0f s.\n"
        "  processes       fork N children that exit at once, then waitpid them all; extrapolated\n"
        "                  to 1,000,000. Their memory is measured with N children held alive.\n"
        "Each measurement runs in a fresh copy of this program, so runs never share a heap.\n"
        "Targets (issue 4): total time at most 1/%.0f of CPython's; memory growth at most 1/%.0f.\n"
        "\n"
        "  --count N           tasks (default 1000000)\n"
        "  --runs R            runs of ours (and of processes); the median is reported (default 5)\n"
        "  --python-runs R     runs of the Python side, ~10 s each (default 1)\n"
        "  --threads N         threads to start and join (default 100000)\n"
        "  --threads-large N   the larger thread count, 0 to skip it (default 1000000)\n"
        "  --processes N       processes to fork and wait for (default 1000)\n"
        "  --no-python         skip the Python side\n"
        "  --no-threads        skip the threads\n"
        "  --no-processes      skip the processes\n",
        prog, kThreadsBudget, kTargetTimeRatio, kTargetMemoryRatio);
}

Options parse_args(int argc, char** argv) {
    Options o;
    bench::parse_args(argc, argv, usage,
                      {{"--count", &o.count},
                       {"--runs", &o.runs},
                       {"--python-runs", &o.python_runs},
                       {"--threads", &o.threads},
                       {"--threads-large", &o.threads_large},
                       {"--processes", &o.processes},
                       {"--no-python", bench::set_flag(o.python, false)},
                       {"--no-threads", bench::set_flag(o.do_threads, false)},
                       {"--no-processes", bench::set_flag(o.do_processes, false)},
                       {"--child", &o.child},
                       {"--child-n", &o.child_n}});
    if (o.count < 1 || o.runs < 1 || o.python_runs < 1 || o.threads < 1 || o.threads_large < 0 || o.processes < 1)
        bench::usage_error(argv[0], "--count, --runs, --python-runs, --threads and --processes must be at least 1");
    return o;
}

double kb_to_mib(long kb) { return double(kb) / 1024.0; }

// ---- ours: a million tasks ----------------------------------------------------------------

aio::Coroutine<> empty() { co_return; }

struct TasksFigures {
    double create_s = 0, total_s = 0, cpu_s = 0, run_s = 0;
    long rss_before_kb = 0, rss_created_kb = 0, hwm_kb = 0;
    long huge_kb = -1;  // of the resident memory, how much is on transparent huge pages
};

// [docs:bench_tasks_1m]
aio::Coroutine<> tasks_main(long n, TasksFigures& f) {
    f.rss_before_kb = bench::proc_status_kb("VmRSS");
    const double cpu0 = bench::cpu_seconds();
    const double t0 = bench::now();
    std::vector<aio::Ref<aio::Task<>>> tasks;
    tasks.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) tasks.push_back(aio::create_task(empty()));
    f.create_s = bench::seconds_since(t0);
    f.rss_created_kb = bench::proc_status_kb("VmRSS");
    f.huge_kb = bench::proc_status_kb("AnonHugePages", "/proc/self/smaps_rollup");  // object_pool.cpp
    // The first await suspends main, and the loop runs the N first steps in one pass (each
    // task finishes in its first step); main, woken by the first task, is queued behind them.
    // When it resumes, every task is done, and the other awaits do not suspend. asyncio
    // does exactly the same.
    for (auto& t : tasks) co_await t;
    f.total_s = bench::seconds_since(t0);
    f.cpu_s = bench::cpu_seconds() - cpu0;
}
// [/docs:bench_tasks_1m]

void child_tasks(long n) {
    TasksFigures f;
    const double t0 = bench::now();
    aio::run(tasks_main(n, f));
    f.run_s = bench::seconds_since(t0);
    f.hwm_kb = bench::proc_status_kb("VmHWM");
    std::printf(
        "MEASURED create_s=%.6f total_s=%.6f cpu_s=%.6f run_s=%.6f rss_before_kb=%ld rss_created_kb=%ld "
        "hwm_kb=%ld huge_kb=%ld\n",
        f.create_s, f.total_s, f.cpu_s, f.run_s, f.rss_before_kb, f.rss_created_kb, f.hwm_kb, f.huge_kb);
}

// Where a task's memory goes: every allocation made while creating n tasks, by size: the
// small-block pool's (frames and tasks) and operator new's (everything else).
long g_pool_by_size[aio::pool::kMaxPooledSize + 1];

aio::Coroutine<> alloc_main(long n) {
    std::vector<aio::Ref<aio::Task<>>> tasks;
    tasks.reserve(std::size_t(n));
    for (std::size_t s = 0; s <= aio::pool::kMaxPooledSize; ++s) g_pool_by_size[s] = -aio::pool::requests(s);
    g_counting = true;
    for (long i = 0; i < n; ++i) tasks.push_back(aio::create_task(empty()));
    g_counting = false;
    for (std::size_t s = 0; s <= aio::pool::kMaxPooledSize; ++s) g_pool_by_size[s] += aio::pool::requests(s);
    for (auto& t : tasks) co_await t;
}

void child_alloc(long n) {
    aio::run(alloc_main(n));
    std::printf("MEASURED sizeof_task=%zu sizeof_ref=%zu\n", sizeof(aio::Task<void>), sizeof(aio::Ref<aio::Task<>>));
    for (std::size_t s = 0; s <= aio::pool::kMaxPooledSize; ++s)
        if (g_pool_by_size[s]) std::printf("ALLOC from=pool size=%zu count=%ld\n", s, g_pool_by_size[s]);
    for (std::size_t s = 0; s <= kMaxCountedSize; ++s)
        if (g_alloc_by_size[s]) std::printf("ALLOC from=new size=%zu count=%ld\n", s, g_alloc_by_size[s]);
}

// ---- threads ------------------------------------------------------------------------------

// Start n threads that do nothing and keep each std::thread until all have been started,
// then join them: the article's "create N threads, then join". An exited thread that is not
// joined yet still holds its stack mapping, so the system may refuse new ones before n
// (pthread_create fails with EAGAIN: vm.max_map_count, ulimit -u, memory). Then the
// threads held so far are joined and starting goes on: batches, reported as such.
void child_threads(long n) {
    const long rss0 = bench::proc_status_kb("VmRSS"), vm0 = bench::proc_status_kb("VmSize");
    std::vector<std::thread> threads;
    threads.reserve(std::size_t(n));
    std::size_t most_held = 0;
    long batches = 1;
    std::string error;
    const double t0 = bench::now();
    for (long started = 0; started < n;) {
        try {
            threads.emplace_back([] {});
            ++started;
        } catch (const std::system_error& e) {
            if (threads.empty()) {
                std::fprintf(stderr, "threads: cannot start even one thread: %s\n", e.what());
                std::exit(1);
            }
            if (error.empty()) error = e.code().value() == EAGAIN ? "EAGAIN" : e.what();
            most_held = std::max(most_held, threads.size());
            for (auto& t : threads) t.join();
            threads.clear();
            ++batches;
        }
    }
    most_held = std::max(most_held, threads.size());
    for (auto& t : threads) t.join();
    const double seconds = bench::seconds_since(t0);
    for (char& c : error)
        if (c == ' ') c = '_';  // one field of a key=value line
    std::printf(
        "MEASURED seconds=%.6f most_held=%zu batches=%ld rss_before_kb=%ld hwm_kb=%ld vm_before_kb=%ld "
        "vmpeak_kb=%ld error=%s\n",
        seconds, most_held, batches, rss0, bench::proc_status_kb("VmHWM"), vm0, bench::proc_status_kb("VmPeak"),
        error.empty() ? "none" : error.c_str());
}

// ---- processes ----------------------------------------------------------------------------

// A field of a /proc file ("Private_Dirty:" in smaps_rollup, "VmPTE:" in status), in kB.
long proc_file_kb(const std::string& path, const char* field) {
    std::ifstream in(path);
    std::string key = std::string(field) + ":";
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
    return -1;
}

// Fork n children that _exit(0) at once, then waitpid all: the time. Then what n live
// children cost in memory: fork n that wait on a pipe, and add up, per child, the pages only
// it has (Private_Clean + Private_Dirty of smaps_rollup: the copies copy-on-write made), its
// page tables (VmPTE), and the kernel stacks the system gained (KernelStack in
// /proc/meminfo). Not counted: the kernel's own records of a process (task_struct, mm, ...).
void child_processes(long n) {
    std::vector<pid_t> pids;
    pids.reserve(std::size_t(n));
    const double t0 = bench::now();
    for (long i = 0; i < n; ++i) {
        pid_t pid = ::fork();
        if (pid == 0) ::_exit(0);
        if (pid < 0) {
            std::fprintf(stderr, "processes: fork failed after %ld: %s\n", i, std::strerror(errno));
            std::exit(1);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    const double seconds = bench::seconds_since(t0);
    pids.clear();

    int release[2], ready[2];
    if (::pipe(release) != 0 || ::pipe(ready) != 0) {
        std::fprintf(stderr, "processes: pipe: %s\n", std::strerror(errno));
        std::exit(1);
    }
    const long kstack0 = proc_file_kb("/proc/meminfo", "KernelStack");
    for (long i = 0; i < n; ++i) {
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(release[1]);
            char c = 1;
            if (::write(ready[1], &c, 1) != 1) ::_exit(1);
            while (::read(release[0], &c, 1) > 0) {
            }
            ::_exit(0);
        }
        if (pid < 0) {
            std::fprintf(stderr, "processes: fork failed after %ld: %s\n", i, std::strerror(errno));
            break;
        }
        pids.push_back(pid);
    }
    for (std::size_t got = 0; got < pids.size();) {  // every child has run up to its read
        char buf[256];
        ssize_t r = ::read(ready[0], buf, std::min(sizeof buf, pids.size() - got));
        if (r <= 0) break;
        got += std::size_t(r);
    }
    const long kstack = proc_file_kb("/proc/meminfo", "KernelStack") - kstack0;
    long private_kb = 0, pte_kb = 0;
    for (pid_t pid : pids) {
        std::string dir = "/proc/" + std::to_string(pid) + "/";
        private_kb += std::max(0L, proc_file_kb(dir + "smaps_rollup", "Private_Clean")) +
                      std::max(0L, proc_file_kb(dir + "smaps_rollup", "Private_Dirty"));
        pte_kb += std::max(0L, proc_file_kb(dir + "status", "VmPTE"));
    }
    ::close(release[1]);
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    std::printf("MEASURED seconds=%.6f held=%zu private_kb=%ld pte_kb=%ld kernel_stack_kb=%ld parent_rss_kb=%ld\n",
                seconds, pids.size(), private_kb, pte_kb, kstack, bench::proc_status_kb("VmRSS"));
}

// ---- running a measurement in a fresh process ---------------------------------------------

struct Measured {
    std::map<std::string, std::string> fields;
    std::vector<std::string> lines;
    double num(const char* key) const {
        auto it = fields.find(key);
        return it == fields.end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
    }
    std::string str(const char* key) const {
        auto it = fields.find(key);
        return it == fields.end() ? std::string() : it->second;
    }
};

std::optional<Measured> measure(const char* kind, long n) {
    bench::Captured run = bench::run_capture({bench::self_exe(), "--child", kind, "--child-n", std::to_string(n)});
    if (!run.ok) {
        bench::progress(" failed: %s\n", run.failure.c_str());
        return std::nullopt;
    }
    Measured m;
    m.lines = run.lines;
    for (auto& line : run.lines)
        if (auto f = bench::parse_fields(line, "MEASURED")) m.fields = *f;
    if (m.fields.empty()) {
        bench::progress(" failed: it printed no figures\n");
        return std::nullopt;
    }
    return m;
}

int run_child(const Options& o) {
    if (o.child_n < 1) bench::usage_error("--child", "needs --child-n N");
    if (o.child == "tasks")
        child_tasks(o.child_n);
    else if (o.child == "alloc")
        child_alloc(o.child_n);
    else if (o.child == "threads")
        child_threads(o.child_n);
    else if (o.child == "processes")
        child_processes(o.child_n);
    else
        bench::usage_error("--child", "unknown kind '%s'", o.child.c_str());
    return 0;
}

// ---- the report ---------------------------------------------------------------------------

std::string with_commas(long n) {
    std::string s = std::to_string(n), out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}

// "10" for 1,000,000 / 100,000: how far an extrapolation reaches.
std::string fmt_count_ratio(long to, long from) {
    if (to % from == 0) return with_commas(to / from);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", double(to) / double(from));
    return buf;
}

std::string seconds_text(double s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, s < 10 ? "%.3f s" : "%.1f s", s);
    return buf;
}

std::string mib_text(double mib) {
    char buf[64];
    if (mib >= 10240)
        std::snprintf(buf, sizeof buf, "%.1f GiB", mib / 1024);
    else
        std::snprintf(buf, sizeof buf, "%.1f MiB", mib);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_args(argc, argv);
    if (!o.child.empty()) return run_child(o);

    const std::string tasks_name = "tasks_" + bench::count_label(o.count);

    // ---- ours
    std::vector<double> create, total, cpu, run, memory;
    double huge_mib = -1;  // the last run's: how much of the memory was on huge pages
    for (int r = 1; r <= o.runs; ++r) {
        bench::progress("ours: run %d/%d (%ld tasks, fresh process)...", r, o.runs, o.count);
        auto m = measure("tasks", o.count);
        if (!m) return 1;
        create.push_back(m->num("create_s") * 1e3);
        total.push_back(m->num("total_s") * 1e3);
        cpu.push_back(m->num("cpu_s") * 1e3);
        run.push_back(m->num("run_s") * 1e3);
        // The peak: VmHWM, which the kernel updates lazily, so it can trail the VmRSS read
        // right after creating the tasks.
        memory.push_back(
            kb_to_mib(long(std::max(m->num("hwm_kb"), m->num("rss_created_kb")) - m->num("rss_before_kb"))));
        huge_mib = m->num("huge_kb") >= 0 ? kb_to_mib(long(m->num("huge_kb"))) : -1;
        bench::progress(" created in %.1f ms, total %.1f ms (cpu %.1f ms, run() %.1f ms), memory +%.1f MiB%s\n",
                        create.back(), total.back(), cpu.back(), run.back(), memory.back(),
                        huge_mib >= 0 ? (" (" + bench::fmt(huge_mib, "%.0f") + " MiB on huge pages)").c_str() : "");
    }
    const double our_create = bench::median(create), our_total = bench::median(total), our_cpu = bench::median(cpu),
                 our_run = bench::median(run), our_mem = bench::median(memory);
    bench::print_result(tasks_name + "_create", "ours", our_create, "ms");
    bench::print_result(tasks_name, "ours", our_total, "ms");
    bench::print_result(tasks_name + "_cpu", "ours", our_cpu, "ms");
    bench::print_result(tasks_name + "_run", "ours", our_run, "ms");
    bench::print_result(tasks_name + "_memory", "ours", our_mem, "MiB");

    bench::progress("ours: counting allocations for %ld tasks...", kAllocProfileTasks);
    auto alloc = measure("alloc", kAllocProfileTasks);
    if (alloc) bench::progress(" done\n");

    // ---- threads: the table's rows are made as they are measured, printed at the end
    std::vector<std::vector<std::string>> rows;
    if (o.do_threads) {
        std::vector<long> sizes{o.threads};
        if (o.threads_large > o.threads) sizes.push_back(o.threads_large);
        long last_n = 0;
        double last_s = 0, last_kb_each = 0;
        for (long n : sizes) {
            if (last_n) {
                double predicted = last_s * double(n) / double(last_n);
                if (predicted > kThreadsBudget) {
                    bench::progress(
                        "threads: %ld skipped: %ld took %.1f s, so %ld would take about %.0f s (> %.0f s)\n", n, last_n,
                        last_s, n, predicted, kThreadsBudget);
                    break;
                }
            }
            bench::progress("threads: start %ld, then join them (fresh process)...", n);
            auto m = measure("threads", n);
            if (!m) break;
            const double s = m->num("seconds");
            const long most_held = long(m->num("most_held"));
            const double rss_mib = kb_to_mib(long(m->num("hwm_kb") - m->num("rss_before_kb")));
            const double vm_mib = kb_to_mib(long(m->num("vmpeak_kb") - m->num("vm_before_kb")));
            const bool batched = m->num("batches") > 1;
            bench::progress(" %.2f s%s\n", s, batched ? " (in batches: see the table)" : "");
            const std::string name = "threads_" + bench::count_label(n);
            bench::print_result(name, "threads", s * 1e3, "ms");
            bench::print_result(name + "_memory", "threads", rss_mib, "MiB");
            std::string note = "start all, then join all";
            if (batched)
                note = "IN BATCHES: only " + with_commas(most_held) + " could wait unjoined (then " + m->str("error") +
                       "), so " + std::to_string(long(m->num("batches"))) + " batches, each joined before the next";
            note += "; address space +" + mib_text(vm_mib);
            rows.push_back({"threads (std::thread)", with_commas(n), seconds_text(s), mib_text(rss_mib), note});
            last_n = n;
            last_s = s;
            last_kb_each = most_held > 0 ? (m->num("hwm_kb") - m->num("rss_before_kb")) / double(most_held) : 0;
        }
        if (last_n && last_n < 1'000'000) {
            const double s = last_s * 1e6 / double(last_n), mib = last_kb_each * 1e6 / 1024;
            bench::print_result("threads_1m_extrapolated", "threads", s * 1e3, "ms");
            bench::print_result("threads_1m_memory_extrapolated", "threads", mib, "MiB");
            rows.push_back({"threads, EXTRAPOLATED", "1,000,000", seconds_text(s), mib_text(mib),
                            "from " + with_commas(last_n) + ": time x" + fmt_count_ratio(1'000'000, last_n) +
                                "; memory = per thread held x 1,000,000"});
        }
    }

    // ---- processes
    if (o.do_processes) {
        std::vector<double> ms;
        std::optional<Measured> last;
        for (int r = 1; r <= o.runs; ++r) {
            bench::progress("processes: run %d/%d, fork %ld and wait for them (fresh process)...", r, o.runs,
                            o.processes);
            auto m = measure("processes", o.processes);
            if (!m) break;
            ms.push_back(m->num("seconds") * 1e3);
            bench::progress(" %.1f ms\n", ms.back());
            last = m;
        }
        if (!ms.empty()) {
            const double proc_ms = bench::median(ms);
            const std::string name = "processes_" + bench::count_label(o.processes);
            const double held = last->num("held");
            // Memory: the last run's, with `held` children alive (see child_processes).
            std::optional<double> kb_each;
            if (held > 0)
                kb_each = (last->num("private_kb") + last->num("pte_kb") + last->num("kernel_stack_kb")) / held;
            bench::print_result(name, "processes", proc_ms, "ms");
            bench::print_result("processes_1m_extrapolated", "processes", proc_ms * 1e6 / double(o.processes), "ms");
            if (kb_each) {
                bench::print_result(name + "_memory", "processes", *kb_each * held / 1024, "MiB");
                bench::print_result("processes_1m_memory_extrapolated", "processes", *kb_each * 1e6 / 1024, "MiB");
            }
            char breakdown[160] = "";
            if (kb_each)
                std::snprintf(breakdown, sizeof breakdown,
                              " (per child: %.0f kB private pages, %.0f kB page tables, "
                              "%.0f kB kernel stack)",
                              last->num("private_kb") / held, last->num("pte_kb") / held,
                              last->num("kernel_stack_kb") / held);
            rows.push_back(
                {"processes (fork)", with_commas(o.processes), seconds_text(proc_ms / 1e3),
                 kb_each ? mib_text(*kb_each * held / 1024) : "n/a",
                 "fork all, then waitpid all; median of " + std::to_string(ms.size()) + "; memory" + breakdown});
            rows.push_back({"processes, EXTRAPOLATED", "1,000,000", seconds_text(proc_ms * 1e3 / double(o.processes)),
                            kb_each ? mib_text(*kb_each * 1e6 / 1024) : "n/a",
                            "from " + with_commas(o.processes) + ": x" + fmt_count_ratio(1'000'000, o.processes)});
        }
    }

    // ---- python
    std::optional<double> py_create, py_total, py_cpu, py_run, py_mem;
    if (o.python) {
        auto rs =
            bench::run_python(__FILE__, {"--count", std::to_string(o.count), "--runs", std::to_string(o.python_runs)});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        py_create = bench::find_result(rs, tasks_name + "_create");
        py_total = bench::find_result(rs, tasks_name);
        py_cpu = bench::find_result(rs, tasks_name + "_cpu");
        py_run = bench::find_result(rs, tasks_name + "_run");
        py_mem = bench::find_result(rs, tasks_name + "_memory");
        if (!rs.empty() && (!py_create || !py_total || !py_mem))
            bench::progress("python3 asyncio: the script printed no %s figures\n", tasks_name.c_str());
    }

    // ---- the article's table
    std::printf("\n%s tasks, threads, processes: the time to create them, and the memory they take\n",
                with_commas(o.count).c_str());
    bench::Table table({{"", 28}, {"how many", 10}, {"creation time", 14}, {"memory", 12}, {"how", 0, true}});
    table.row({"coroutines: ours (Task)", with_commas(o.count), seconds_text(our_create / 1e3), mib_text(our_mem),
               "create_task; memory: resident growth; median of " + std::to_string(o.runs) +
                   (huge_mib >= 0 ? "; " + bench::fmt(huge_mib, "%.0f") + " MiB of it on huge pages" : "")});
    table.row({"coroutines: CPython asyncio", with_commas(o.count), py_create ? seconds_text(*py_create / 1e3) : "n/a",
               py_mem ? mib_text(*py_mem) : "n/a",
               o.python ? "create_task; memory: resident growth; median of " + std::to_string(o.python_runs)
                        : "skipped (--no-python)"});
    for (auto& r : rows) table.row(r);
    table.print();

    // ---- ours against CPython, and the targets
    std::printf("\n%s: ours against CPython asyncio (ours: median of %d; python: median of %d)\n", tasks_name.c_str(),
                o.runs, o.python_runs);
    bench::Table cmp({{"", 34}, {"ours", 10}, {"python-asyncio", 16}, {"python / ours", 14}});
    cmp.row({"create the tasks (ms)", bench::fmt(our_create, "%.1f"), bench::fmt(py_create, "%.1f"),
             bench::ratio(py_create, our_create)});
    cmp.row({"total: create + await all (ms)", bench::fmt(our_total, "%.1f"), bench::fmt(py_total, "%.1f"),
             bench::ratio(py_total, our_total)});
    cmp.row({"  the same, in CPU time (ms)", bench::fmt(our_cpu, "%.1f"), bench::fmt(py_cpu, "%.1f"),
             bench::ratio(py_cpu, our_cpu)});
    cmp.row({"whole run(): + loop, clean-up, free (ms)", bench::fmt(our_run, "%.1f"), bench::fmt(py_run, "%.1f"),
             bench::ratio(py_run, our_run)});
    cmp.row({"resident memory growth (MiB)", bench::fmt(our_mem, "%.1f"), bench::fmt(py_mem, "%.1f"),
             bench::ratio(py_mem, our_mem)});
    cmp.print();
    if (o.count != 1'000'000) {
        std::printf("  targets: judged on 1,000,000 tasks only; this run has %s\n", with_commas(o.count).c_str());
    } else if (!py_total || !py_mem) {
        std::printf("  targets: n/a (no Python figure to compare with)\n");
    } else {
        std::printf("  target: total time at most 1/%.0f of CPython's (%.1f ms): %.1f ms, %.1fx -> %s\n",
                    kTargetTimeRatio, *py_total / kTargetTimeRatio, our_total, *py_total / our_total,
                    bench::verdict(our_total * kTargetTimeRatio <= *py_total));
        std::printf("  target: memory growth at most 1/%.0f of CPython's (%.1f MiB): %.1f MiB, %.1fx -> %s\n",
                    kTargetMemoryRatio, *py_mem / kTargetMemoryRatio, our_mem, *py_mem / our_mem,
                    bench::verdict(our_mem * kTargetMemoryRatio <= *py_mem));
    }

    // ---- where a task's memory goes
    if (alloc) {
        const std::string task_size = alloc->str("sizeof_task");
        std::printf("\nwhere a task's memory goes: the allocations made while creating %s tasks, per task\n",
                    with_commas(kAllocProfileTasks).c_str());
        double per_task_heap = 0;
        for (auto& line : alloc->lines) {
            auto f = bench::parse_fields(line, "ALLOC");
            if (!f) continue;
            const bool pool = (*f)["from"] == "pool";
            const long size = std::strtol((*f)["size"].c_str(), nullptr, 10);
            // The pool's block, or glibc malloc's: 8 B of header, rounded up to 16, at least 32.
            const double block = pool ? double(aio::pool::block_size(std::size_t(size)))
                                      : std::max(32.0, double((size + 8 + 15) / 16 * 16));
            const double count = std::strtod((*f)["count"].c_str(), nullptr) / double(kAllocProfileTasks);
            per_task_heap += block * count;
            const char* what = !pool                               ? "operator new (a container growing)"
                               : std::to_string(size) == task_size ? "pool: the Task<void>"
                                                                   : "pool: the coroutine frame";
            if (count >= 0.01) std::printf("  %-36s %5ld B, block %5.0f B  x %.3f\n", what, size, block, count);
        }
        // Main's vector was reserved before counting: one pointer per task. (The ready queue's
        // pointer per task is in the operator new rows: its blocks, as the deque grows.)
        std::printf("  %-36s %5zu B                x 1.000\n", "main's vector: one Ref", sizeof(void*));
        per_task_heap += double(sizeof(void*));
        std::printf("  total: %.0f B per task, %.1f MiB for 1,000,000; the 1/8 memory target allows %s\n",
                    per_task_heap, per_task_heap * 1e6 / double(1 << 20),
                    py_mem ? (bench::fmt(*py_mem / kTargetMemoryRatio, "%.1f") + " MiB").c_str()
                           : "1/8 of CPython's (no Python figure in this run)");
    }
    return 0;
}
