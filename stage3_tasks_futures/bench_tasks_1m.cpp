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
// Targets:  total time at most 1/60 of CPython's; memory at most 200 B per task all in, with
//           every byte of it accounted for by the breakdown below (the breakdown's sum within
//           5% of the measured growth). The course keeps the per-task state asyncio has (a
//           Task is a Future and a Handle, with its name, its place in all_tasks(), ...), so
//           the memory target is a budget in bytes, not a fraction of CPython's.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure, then the
// article's table, the comparison with CPython and the targets, and where a task's bytes go
// (by the pool's and operator new's counts, in a run of 10,000 tasks). Progress goes to
// stderr.
//
// main() reads as the list of its steps: measure ours, count a task's allocations, measure
// threads and processes, run the Python side, then print the three reports.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
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

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/object_pool.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/task.hpp"

// ---- counting allocations -----------------------------------------------------------------
//
// To say where a task's memory goes, the --child alloc run counts every operator new by
// size. Replacing the global operator new is the standard's own hook for this; when not
// counting, it is malloc and a test of one flag. (noinline: g++
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

constexpr double kTargetTimeRatio = 60.0;        // total time at most 1/60 of CPython's
constexpr double kTargetBytesPerTask = 200.0;    // memory growth per task, all in
constexpr double kBreakdownTolerance = 0.05;     // the breakdown's sum within 5% of the growth
constexpr double kThreadsBudget = 60.0;          // start the larger thread count only if it fits this (s)
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

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    char text[2000];
    std::snprintf(
        text, sizeof text,
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
        "Each measurement runs in a fresh copy of this program, so runs never share a heap. It ends\n"
        "with where a task's bytes go.\n"
        "Targets: total time at most 1/%.0f of CPython's; memory at most %.0f B per task all in,\n"
        "every byte accounted for by the breakdown (its sum within %.0f%% of the measured growth).",
        kThreadsBudget, kTargetTimeRatio, kTargetBytesPerTask, kBreakdownTolerance * 100);
    aio::OptionParser options(text);
    options.integer("--count", o.count, 1L, 100'000'000L, "N", "tasks")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of ours (and of processes); the median is reported")
        .integer("--python-runs", o.python_runs, 1, 1000, "R", "runs of the Python side, ~10 s each")
        .integer("--threads", o.threads, 1L, 10'000'000L, "N", "threads to start and join")
        .integer("--threads-large", o.threads_large, 0L, 10'000'000L, "N", "the larger thread count, 0 to skip it")
        .integer("--processes", o.processes, 1L, 100'000L, "N", "processes to fork and wait for")
        .constant("--no-python", o.python, false, "skip the Python side")
        .constant("--no-threads", o.do_threads, false, "skip the threads")
        .constant("--no-processes", o.do_processes, false, "skip the processes")
        .choice("--child", o.child, {"tasks", "alloc", "threads", "processes"}, "the measurement of a fresh copy")
        .hidden()
        .integer("--child-n", o.child_n, 1L, 100'000'000L, "N", "its size")
        .hidden();
    if (auto status = options.parse(argc, argv)) return status;
    if (!o.child.empty() && o.child_n < 1) return options.usage_error("--child needs --child-n N");
    return std::nullopt;
}

double kb_to_mib(long kb) { return double(kb) / 1024.0; }

// ---- ours: a million tasks ----------------------------------------------------------------

aio::Coroutine<> empty() { co_return; }

struct TasksFigures {
    double create_s = 0, total_s = 0, cpu_s = 0, run_s = 0;
    long rss_before_kb = 0, rss_created_kb = 0, hwm_kb = 0;
    long huge_kb = -1;  // of the resident memory, how much is on transparent huge pages
};

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

// A fresh copy of this program, run by measure(): make one measurement and print it.
int run_child(const Options& o) {
    if (o.child == "tasks")
        child_tasks(o.child_n);
    else if (o.child == "alloc")
        child_alloc(o.child_n);
    else if (o.child == "threads")
        child_threads(o.child_n);
    else
        child_processes(o.child_n);  // the command line allows no other kind
    return 0;
}

// ---- formatting ---------------------------------------------------------------------------

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

// Resident growth in MiB, as bytes per task.
double bytes_per_task(double mib, long tasks) { return mib * double(1 << 20) / double(tasks); }

// ---- the steps of main ---------------------------------------------------------------------

// Ours: the median of R fresh runs of the million tasks.
struct Ours {
    double create_ms = 0, total_ms = 0, cpu_ms = 0, run_ms = 0, memory_mib = 0;
    double huge_mib = -1;  // the last run's: how much of the memory was on huge pages
};

std::optional<Ours> measure_ours(const Options& o, const std::string& tasks_name) {
    std::vector<double> create, total, cpu, run, memory;
    Ours ours;
    for (int r = 1; r <= o.runs; ++r) {
        bench::progress("ours: run %d/%d (%ld tasks, fresh process)...", r, o.runs, o.count);
        auto m = measure("tasks", o.count);
        if (!m) return std::nullopt;
        create.push_back(m->num("create_s") * 1e3);
        total.push_back(m->num("total_s") * 1e3);
        cpu.push_back(m->num("cpu_s") * 1e3);
        run.push_back(m->num("run_s") * 1e3);
        // The peak: VmHWM, which the kernel updates lazily, so it can trail the VmRSS read
        // right after creating the tasks.
        memory.push_back(
            kb_to_mib(long(std::max(m->num("hwm_kb"), m->num("rss_created_kb")) - m->num("rss_before_kb"))));
        ours.huge_mib = m->num("huge_kb") >= 0 ? kb_to_mib(long(m->num("huge_kb"))) : -1;
        bench::progress(" created in %.1f ms, total %.1f ms (cpu %.1f ms, run() %.1f ms), memory +%.1f MiB%s\n",
                        create.back(), total.back(), cpu.back(), run.back(), memory.back(),
                        ours.huge_mib >= 0 ? (" (" + bench::fmt(ours.huge_mib, "%.0f") + " MiB on huge pages)").c_str()
                                           : "");
    }
    ours.create_ms = bench::median(create);
    ours.total_ms = bench::median(total);
    ours.cpu_ms = bench::median(cpu);
    ours.run_ms = bench::median(run);
    ours.memory_mib = bench::median(memory);
    bench::print_result(tasks_name + "_create", "ours", ours.create_ms, "ms");
    bench::print_result(tasks_name, "ours", ours.total_ms, "ms");
    bench::print_result(tasks_name + "_cpu", "ours", ours.cpu_ms, "ms");
    bench::print_result(tasks_name + "_run", "ours", ours.run_ms, "ms");
    bench::print_result(tasks_name + "_memory", "ours", ours.memory_mib, "MiB");
    bench::print_result(tasks_name + "_bytes_per_task", "ours", bytes_per_task(ours.memory_mib, o.count), "B", 1);
    return ours;
}

// Where a task's bytes go: one line per kind of block, from the allocations counted while
// creating kAllocProfileTasks tasks, per task.
struct Breakdown {
    struct Line {
        std::string what;
        long size;     // requested, bytes
        double block;  // what it takes, bytes
        double count;  // per task
    };
    std::vector<Line> lines;
    double per_task() const {
        double sum = 0;
        for (auto& l : lines) sum += l.block * l.count;
        return sum;
    }
};

std::optional<Breakdown> measure_breakdown() {
    bench::progress("ours: counting allocations for %ld tasks...", kAllocProfileTasks);
    auto alloc = measure("alloc", kAllocProfileTasks);
    if (!alloc) return std::nullopt;
    bench::progress(" done\n");
    const std::string task_size = alloc->str("sizeof_task");
    Breakdown b;
    for (auto& line : alloc->lines) {
        auto f = bench::parse_fields(line, "ALLOC");
        if (!f) continue;
        const bool pool = (*f)["from"] == "pool";
        const long size = std::strtol((*f)["size"].c_str(), nullptr, 10);
        // The pool's block, or glibc malloc's: 8 B of header, rounded up to 16, at least 32.
        const double block = pool ? double(aio::pool::block_size(std::size_t(size)))
                                  : std::max(32.0, double((size + 8 + 15) / 16 * 16));
        const double count = std::strtod((*f)["count"].c_str(), nullptr) / double(kAllocProfileTasks);
        const char* what = !pool                               ? "operator new (a container growing)"
                           : std::to_string(size) == task_size ? "pool: the Task<void>"
                                                               : "pool: the coroutine frame";
        b.lines.push_back({what, size, block, count});
    }
    // Main's vector was reserved before counting: one pointer per task. (The ready queue's
    // pointer per task is in the operator new lines: its blocks, as the deque grows.)
    b.lines.push_back({"main's vector: one Ref", long(sizeof(void*)), double(sizeof(void*)), 1.0});
    return b;
}

// The table's rows for threads, made as they are measured (RESULT lines go out at once).
using Rows = std::vector<std::vector<std::string>>;

void measure_threads(const Options& o, Rows& rows) {
    std::vector<long> sizes{o.threads};
    if (o.threads_large > o.threads) sizes.push_back(o.threads_large);
    long last_n = 0;
    double last_s = 0, last_kb_each = 0;
    for (long n : sizes) {
        if (last_n) {
            double predicted = last_s * double(n) / double(last_n);
            if (predicted > kThreadsBudget) {
                bench::progress("threads: %ld skipped: %ld took %.1f s, so %ld would take about %.0f s (> %.0f s)\n",
                                n, last_n, last_s, n, predicted, kThreadsBudget);
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

void measure_processes(const Options& o, Rows& rows) {
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
    if (ms.empty()) return;
    const double proc_ms = bench::median(ms);
    const std::string name = "processes_" + bench::count_label(o.processes);
    const double held = last->num("held");
    // Memory: the last run's, with `held` children alive (see child_processes).
    std::optional<double> kb_each;
    if (held > 0) kb_each = (last->num("private_kb") + last->num("pte_kb") + last->num("kernel_stack_kb")) / held;
    bench::print_result(name, "processes", proc_ms, "ms");
    bench::print_result("processes_1m_extrapolated", "processes", proc_ms * 1e6 / double(o.processes), "ms");
    if (kb_each) {
        bench::print_result(name + "_memory", "processes", *kb_each * held / 1024, "MiB");
        bench::print_result("processes_1m_memory_extrapolated", "processes", *kb_each * 1e6 / 1024, "MiB");
    }
    char breakdown[160] = "";
    if (kb_each)
        std::snprintf(breakdown, sizeof breakdown,
                      " (per child: %.0f kB private pages, %.0f kB page tables, %.0f kB kernel stack)",
                      last->num("private_kb") / held, last->num("pte_kb") / held, last->num("kernel_stack_kb") / held);
    rows.push_back({"processes (fork)", with_commas(o.processes), seconds_text(proc_ms / 1e3),
                    kb_each ? mib_text(*kb_each * held / 1024) : "n/a",
                    "fork all, then waitpid all; median of " + std::to_string(ms.size()) + "; memory" + breakdown});
    rows.push_back({"processes, EXTRAPOLATED", "1,000,000", seconds_text(proc_ms * 1e3 / double(o.processes)),
                    kb_each ? mib_text(*kb_each * 1e6 / 1024) : "n/a",
                    "from " + with_commas(o.processes) + ": x" + fmt_count_ratio(1'000'000, o.processes)});
}

// CPython's figures for the same program, when python3 is there.
struct Python {
    std::optional<double> create_ms, total_ms, cpu_ms, run_ms, memory_mib;
};

Python measure_python(const Options& o, const std::string& tasks_name) {
    auto rs =
        bench::run_python(__FILE__, {"--count", std::to_string(o.count), "--runs", std::to_string(o.python_runs)});
    for (auto& r : rs) std::printf("%s\n", r.line.c_str());
    Python py{bench::find_result(rs, tasks_name + "_create"), bench::find_result(rs, tasks_name),
              bench::find_result(rs, tasks_name + "_cpu"), bench::find_result(rs, tasks_name + "_run"),
              bench::find_result(rs, tasks_name + "_memory")};
    if (!rs.empty() && (!py.create_ms || !py.total_ms || !py.memory_mib))
        bench::progress("python3 asyncio: the script printed no %s figures\n", tasks_name.c_str());
    return py;
}

// The third article's table: tasks, threads and processes side by side.
void print_article_table(const Options& o, const Ours& ours, const Python& py, const Rows& rows) {
    std::printf("\n%s tasks, threads, processes: the time to create them, and the memory they take\n",
                with_commas(o.count).c_str());
    bench::Table table({{"", 28}, {"how many", 10}, {"creation time", 14}, {"memory", 12}, {"how", 0, true}});
    table.row({"coroutines: ours (Task)", with_commas(o.count), seconds_text(ours.create_ms / 1e3),
               mib_text(ours.memory_mib),
               "create_task; memory: resident growth; median of " + std::to_string(o.runs) +
                   (ours.huge_mib >= 0 ? "; " + bench::fmt(ours.huge_mib, "%.0f") + " MiB of it on huge pages" : "")});
    table.row({"coroutines: CPython asyncio", with_commas(o.count),
               py.create_ms ? seconds_text(*py.create_ms / 1e3) : "n/a",
               py.memory_mib ? mib_text(*py.memory_mib) : "n/a",
               o.python ? "create_task; memory: resident growth; median of " + std::to_string(o.python_runs)
                        : "skipped (--no-python)"});
    for (auto& r : rows) table.row(r);
    table.print();
}

// Ours against CPython, and the time target.
void print_comparison(const Options& o, const std::string& tasks_name, const Ours& ours, const Python& py) {
    std::printf("\n%s: ours against CPython asyncio (ours: median of %d; python: median of %d)\n", tasks_name.c_str(),
                o.runs, o.python_runs);
    bench::Table cmp({{"", 34}, {"ours", 10}, {"python-asyncio", 16}, {"python / ours", 14}});
    cmp.row({"create the tasks (ms)", bench::fmt(ours.create_ms, "%.1f"), bench::fmt(py.create_ms, "%.1f"),
             bench::ratio(py.create_ms, ours.create_ms)});
    cmp.row({"total: create + await all (ms)", bench::fmt(ours.total_ms, "%.1f"), bench::fmt(py.total_ms, "%.1f"),
             bench::ratio(py.total_ms, ours.total_ms)});
    cmp.row({"  the same, in CPU time (ms)", bench::fmt(ours.cpu_ms, "%.1f"), bench::fmt(py.cpu_ms, "%.1f"),
             bench::ratio(py.cpu_ms, ours.cpu_ms)});
    cmp.row({"whole run(): + loop, clean-up, free (ms)", bench::fmt(ours.run_ms, "%.1f"), bench::fmt(py.run_ms, "%.1f"),
             bench::ratio(py.run_ms, ours.run_ms)});
    cmp.row({"resident memory growth (MiB)", bench::fmt(ours.memory_mib, "%.1f"), bench::fmt(py.memory_mib, "%.1f"),
             bench::ratio(py.memory_mib, ours.memory_mib)});
    cmp.print();
    if (o.count != 1'000'000)
        std::printf("  target: time judged on 1,000,000 tasks only; this run has %s\n", with_commas(o.count).c_str());
    else if (!py.total_ms)
        std::printf("  target: time at most 1/%.0f of CPython's: n/a (no Python figure to compare with)\n",
                    kTargetTimeRatio);
    else
        std::printf("  target: total time at most 1/%.0f of CPython's (%.1f ms): %.1f ms, %.1fx -> %s\n",
                    kTargetTimeRatio, *py.total_ms / kTargetTimeRatio, ours.total_ms, *py.total_ms / ours.total_ms,
                    bench::verdict(ours.total_ms * kTargetTimeRatio <= *py.total_ms));
}

// Where a task's bytes go, against what was measured, and the memory target.
void print_breakdown(const Options& o, const Ours& ours, const Breakdown& b) {
    std::printf("\nwhere a task's memory goes: the allocations made while creating %s tasks, per task\n",
                with_commas(kAllocProfileTasks).c_str());
    for (auto& l : b.lines)
        if (l.count >= 0.01)
            std::printf("  %-36s %5ld B, block %5.0f B  x %.3f  = %6.1f B\n", l.what.c_str(), l.size, l.block, l.count,
                        l.block * l.count);
    const double accounted = b.per_task(), measured = bytes_per_task(ours.memory_mib, o.count);
    const double off = measured > 0 ? accounted / measured - 1 : 1;
    std::printf("  %-68s = %6.1f B\n", "accounted for", accounted);
    std::printf("  %-68s = %6.1f B  (%+.1f%% off)\n", "measured: resident growth / tasks", measured, off * 100);
    if (o.count != 1'000'000) {
        std::printf("  target: memory judged on 1,000,000 tasks only; this run has %s\n", with_commas(o.count).c_str());
        return;
    }
    const bool small = measured <= kTargetBytesPerTask, accounted_for = std::fabs(off) <= kBreakdownTolerance;
    std::printf(
        "  target: at most %.0f B per task all in, every byte accounted for (within %.0f%%): %.1f B measured, %.1f B "
        "accounted for -> %s\n",
        kTargetBytesPerTask, kBreakdownTolerance * 100, measured, accounted, bench::verdict(small && accounted_for));
    if (!small) std::printf("    (over the budget by %.1f B per task)\n", measured - kTargetBytesPerTask);
    if (!accounted_for) std::printf("    (the breakdown misses %.1f B per task)\n", measured - accounted);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;
    if (!o.child.empty()) return run_child(o);
    const std::string tasks_name = "tasks_" + bench::count_label(o.count);

    const std::optional<Ours> ours = measure_ours(o, tasks_name);
    if (!ours) return 1;
    const std::optional<Breakdown> breakdown = measure_breakdown();
    Rows rows;
    if (o.do_threads) measure_threads(o, rows);
    if (o.do_processes) measure_processes(o, rows);
    const Python python = o.python ? measure_python(o, tasks_name) : Python{};

    print_article_table(o, *ours, python, rows);
    print_comparison(o, tasks_name, *ours, python);
    if (breakdown) print_breakdown(o, *ours, *breakdown);
    return 0;
}
