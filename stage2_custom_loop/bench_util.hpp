// Stage 2: the benchmarks' shared helpers. Not part of the event loop; only bench_*.cpp
// include it (stage 2's, and the later stages', which may include earlier stages' headers).
//
// Adds:    aio::bench, what every bench_<workload> program needs to follow the course's
//          convention for benchmarks (the root README.md, "How to read it"): the median of
//          the runs; progress on stderr; one `RESULT name=... variant=... value=... unit=...`
//          line per figure on stdout, then a table for people; and running the same workload
//          in Python's asyncio, from the script that sits beside the bench's source, to print
//          both side by side. (Its command line is read by stage 1's OptionParser, options.hpp,
//          like every program's.)
// Mirrors: nothing in asyncio. The role of Python's timeit and pyperf: run it several
//          times, report a robust summary (the median), compare.
//
// A bench file then holds only its workload and its report. The helpers are plain
// functions on purpose, so a reader can follow a bench's main() top to bottom.
#pragma once

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aio::bench {

// -------------------------------------------------------------------------------- progress

// Progress for the person watching: stderr, flushed at once, so stdout stays machine
// readable (RESULT lines) and a slow run shows where it is.
[[gnu::format(printf, 1, 2)]] inline void progress(const char* format, ...) {
    va_list args;
    va_start(args, format);
    std::vfprintf(stderr, format, args);
    va_end(args);
    std::fflush(stderr);
}

// ---------------------------------------------------------------------- timing and summary

// Seconds on the steady clock (the one that never jumps), for timing a workload.
inline double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline double seconds_since(double start) { return now() - start; }

// CPU seconds this process has used, user + system (Python's time.process_time()). On a
// shared machine the wall clock also counts the time other programs held the CPU; this does
// not, so benches print it beside the wall-clock figure.
inline double cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
    return s(ru.ru_utime) + s(ru.ru_stime);
}

// The median, as Python's statistics.median computes it (mean of the middle two when even),
// so both sides summarise their runs the same way. The median, not the mean: on a shared,
// noisy machine one slow run must not move the figure.
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// "100k" for 100000, "1m" for 1000000, else the number: a workload's name says its size.
// The Python scripts name their workloads the same way.
inline std::string count_label(long n) {
    if (n % 1'000'000 == 0) return std::to_string(n / 1'000'000) + "m";
    if (n % 1'000 == 0) return std::to_string(n / 1'000) + "k";
    return std::to_string(n);
}

// A field of /proc/self/status, in kB ("VmRSS" is resident memory now, "VmHWM" its peak,
// "VmSize"/"VmPeak" the same for address space); -1 if it cannot be read (not Linux).
inline long proc_status_kb(const char* field, const char* file = "/proc/self/status") {
    std::ifstream in(file);
    std::string key = std::string(field) + ":";
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
    return -1;
}

// ---------------------------------------------------------------------------- RESULT lines

// A line of `key=value` fields after a tag: `RESULT name=a variant=b value=1.5 unit=c`.
// nullopt if the line does not start with the tag.
inline std::optional<std::map<std::string, std::string>> parse_fields(const std::string& line, const std::string& tag) {
    if (line.rfind(tag + " ", 0) != 0) return std::nullopt;
    std::map<std::string, std::string> fields;
    std::size_t pos = tag.size() + 1;
    while (pos < line.size()) {
        std::size_t end = line.find(' ', pos);
        std::string field = line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        std::size_t eq = field.find('=');
        if (eq != std::string::npos) fields[field.substr(0, eq)] = field.substr(eq + 1);
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return fields;
}

struct Result {
    std::string line;  // as printed, to pass on verbatim
    std::string name, variant, unit;
    double value = 0;
};

// Parses a RESULT line; nullopt for any other line, or one without name, variant or a
// numeric value.
inline std::optional<Result> parse_result(const std::string& line) {
    auto f = parse_fields(line, "RESULT");
    if (!f) return std::nullopt;
    Result r{line, (*f)["name"], (*f)["variant"], (*f)["unit"], 0};
    const std::string& v = (*f)["value"];
    char* end = nullptr;
    r.value = std::strtod(v.c_str(), &end);
    if (r.name.empty() || r.variant.empty() || v.empty() || !end || *end != '\0') return std::nullopt;
    return r;
}

// Prints one figure as a RESULT line, with `decimals` digits after the point, and flushes
// it, so a script reading our stdout sees each figure as soon as it is measured.
inline void print_result(const std::string& name, const char* variant, double value, const char* unit,
                         int decimals = 3) {
    std::printf("RESULT name=%s variant=%s value=%.*f unit=%s\n", name.c_str(), variant, decimals, value, unit);
    std::fflush(stdout);
}

// The figure called `name` of `variant` among `results`, if there is one.
inline std::optional<double> find_result(const std::vector<Result>& results, const std::string& name,
                                         const std::string& variant = "python-asyncio") {
    for (auto& r : results)
        if (r.name == name && r.variant == variant) return r.value;
    return std::nullopt;
}

// ------------------------------------------------------------------- running other programs

inline bool is_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The first executable `name` on PATH, like `command -v`.
inline std::optional<std::string> find_on_path(const char* name) {
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

// This program's own path, to run a fresh copy of it (a measurement that needs a clean
// process, such as resident memory, runs there). Empty if it cannot be found.
inline std::string self_exe() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, std::size_t(n)) : std::string();
}

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

struct Captured {
    bool ok = false;                 // started, and exited with status 0
    std::string failure;             // why not, when !ok
    std::vector<std::string> lines;  // its stdout, line by line
};

// Runs argv[0] with the arguments, waits for it and returns its stdout; its stderr (its
// progress) goes straight to ours.
inline Captured run_capture(const std::vector<std::string>& argv) {
    Captured out;
    std::string cmd;
    for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + shell_quote(a);
    std::fflush(stdout);  // popen forks: nothing of ours may be left in the buffer to copy
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) {
        out.failure = "cannot run " + cmd + ": " + std::strerror(errno);
        return out;
    }
    std::string line;
    for (int c; (c = std::fgetc(p)) != EOF;) {
        if (c != '\n') {
            line += char(c);
            continue;
        }
        out.lines.push_back(std::move(line));
        line.clear();
    }
    if (!line.empty()) out.lines.push_back(std::move(line));
    int status = ::pclose(p);
    if (status == -1)
        out.failure = std::string("cannot wait for it: ") + std::strerror(errno);
    else if (WIFSIGNALED(status))
        out.failure = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    else if (WEXITSTATUS(status) != 0)
        out.failure = "exit status " + std::to_string(WEXITSTATUS(status));
    out.ok = out.failure.empty();
    return out;
}

// ---------------------------------------------------------------------------- the Python side

// Where the Python twin of a bench is: beside its source, same name, .py. Pass __FILE__ of
// the bench's .cpp (config.mk compiles with absolute paths, so it is the source's absolute
// path). Failing that (the sources moved), look where a default build puts the binaries:
// build/bin/, two levels below the repository root, which holds the stage's directory.
inline std::vector<std::string> python_script_candidates(const std::string& bench_source) {
    std::vector<std::string> out;
    std::string stem = bench_source;
    if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".cpp") == 0) stem.resize(stem.size() - 4);
    out.push_back(stem + ".py");
    std::size_t slash = stem.rfind('/');
    std::string file = stem.substr(slash == std::string::npos ? 0 : slash + 1) + ".py";
    std::string stage;
    if (slash != std::string::npos && slash > 0) {
        std::size_t before = stem.rfind('/', slash - 1);
        stage = stem.substr(before == std::string::npos ? 0 : before + 1,
                            slash - (before == std::string::npos ? 0 : before + 1));
    }
    std::string exe = self_exe();
    if (!exe.empty() && !stage.empty()) out.push_back(exe.substr(0, exe.rfind('/')) + "/../../" + stage + "/" + file);
    return out;
}

// Runs the bench's Python script (see python_script_candidates) with `args` on the system
// python3 and returns the RESULT lines it printed. When it cannot (no python3, no script,
// the script failed), says why on stderr and returns nothing: the bench then prints "n/a"
// for Python's figures. The script's progress goes straight to our stderr.
inline std::vector<Result> run_python(const std::string& bench_source, const std::vector<std::string>& args) {
    auto python = find_on_path("python3");
    if (!python) {
        progress("python3 asyncio: skipped: python3 is not on PATH\n");
        return {};
    }
    std::string script;
    auto candidates = python_script_candidates(bench_source);
    for (auto& c : candidates)
        if (is_file(c)) {
            script = c;
            break;
        }
    if (script.empty()) {
        std::string looked;
        for (auto& c : candidates) looked += "\n  " + c;
        progress("python3 asyncio: skipped: the Python script was not found; looked at:%s\n", looked.c_str());
        return {};
    }
    std::vector<std::string> argv{*python, script};
    argv.insert(argv.end(), args.begin(), args.end());
    Captured run = run_capture(argv);
    if (!run.ok) {
        progress("python3 asyncio: %s failed (%s); its figures are ignored\n", script.c_str(), run.failure.c_str());
        return {};
    }
    std::vector<Result> results;
    for (auto& line : run.lines)
        if (auto r = parse_result(line)) results.push_back(*r);
    return results;
}

// --------------------------------------------------------------------------------- the table

// A number for a table cell; "n/a" when there is none.
inline std::string fmt(std::optional<double> v, const char* format = "%.2f") {
    if (!v) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, *v);
    return buf;
}

// a / b as "12.3x"; "n/a" when either is missing or b is not above `min_b` (a ratio to
// something too close to zero means nothing).
inline std::string ratio(std::optional<double> a, std::optional<double> b, double min_b = 0,
                         const char* format = "%.1fx") {
    if (!a || !b || !(*b > 0) || *b < min_b) return "n/a";
    return fmt(*a / *b, format);
}

inline const char* verdict(bool met) { return met ? "PASS" : "MISS"; }

// A table for people, indented by two spaces: each column at least its given width and
// wider if a cell needs it; the first column, and any other marked `left`, left-aligned, the
// rest right-aligned (numbers line up).
class Table {
public:
    struct Column {
        std::string header;
        std::size_t width = 0;
        bool left = false;
    };
    explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {
        if (!columns_.empty()) columns_[0].left = true;
    }

    void row(std::vector<std::string> cells) {
        cells.resize(columns_.size());
        rows_.push_back(std::move(cells));
    }

    void print() const {
        std::vector<std::size_t> width;
        for (auto& c : columns_) width.push_back(std::max(c.width, c.header.size()));
        for (auto& r : rows_)
            for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
        auto line = [&](auto cell) {
            std::string out = " ";
            for (std::size_t i = 0; i < width.size(); ++i) {
                std::string s = cell(i);
                std::string pad(width[i] - s.size(), ' ');
                out += " " + (columns_[i].left ? s + pad : pad + s);
            }
            out.erase(out.find_last_not_of(' ') + 1);
            std::printf("%s\n", out.c_str());
        };
        line([&](std::size_t i) { return columns_[i].header; });
        for (auto& r : rows_) line([&](std::size_t i) { return r[i]; });
    }

private:
    std::vector<Column> columns_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace aio::bench
