// Stage 4: readiness I/O. A tool, not part of the lesson: what the network benchmarks
// (bench_echo and bench_c10k here, and the later stages' network benches) need beyond
// stage 2's bench_util.hpp.
//
// Adds:    ChildProcess (start a program with its stdin and stdout on pipes, optionally
//          pinned to one CPU with taskset; read its lines with a time limit, or all it
//          prints until it exits; stop it by its PID, with the signal it takes as "shut
//          down"), plan_cpus() (which cores the server and the clients get: two it picks,
//          or the two a bench's user asked for), raise_fd_limit() (setrlimit(RLIMIT_NOFILE),
//          as far as the system allows) and resident_kb() (/proc/self/statm).
// Mirrors: nothing in asyncio. The role of subprocess.Popen and resource.setrlimit in a
//          Python benchmark script.
//
// A network benchmark's server and its load generator must not share a core, or each
// figure would say as much about the scheduler as about the server: so each runs in its
// own process, pinned with taskset (the course's rule for network benchmarks). The
// processes talk through their stdin and stdout, one line at a time ("PORT 41234").
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stage2_custom_loop/bench_util.hpp"

namespace aio::bench {

// ---------------------------------------------------------------------------- pinning

// Which cores the server and the load generator run on, and a sentence saying so.
struct CpuPlan {
    std::optional<int> server;  // nullopt: not pinned
    std::optional<int> client;
    std::string description;
};

// The cores this process may run on (sched_getaffinity), in order; empty where unknown.
inline std::vector<int> allowed_cpus() {
    std::vector<int> allowed;
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0)
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            if (CPU_ISSET(cpu, &set)) allowed.push_back(cpu);
#endif
    return allowed;
}

// The cores a bench's user asked for (-1: not pinned): pinned when taskset is installed and
// both are cores this process may run on; otherwise not pinned, and the sentence says why.
inline CpuPlan plan_cpus(int server_cpu, int client_cpu) {
    CpuPlan plan;
    const std::vector<int> allowed = allowed_cpus();
    auto may_run_on = [&](int cpu) { return std::find(allowed.begin(), allowed.end(), cpu) != allowed.end(); };
    const bool taskset = find_on_path("taskset").has_value();
    std::string why_not;
    if (!taskset)
        why_not = "taskset not found: apt-get install util-linux";
    else if (allowed.size() < 2)
        why_not = "fewer than 2 cores to run on";
    else if (server_cpu < 0 || client_cpu < 0)
        why_not = "a core of -1 was asked for";
    else if (!may_run_on(server_cpu) || !may_run_on(client_cpu))
        why_not = "CPU " + std::to_string(may_run_on(server_cpu) ? client_cpu : server_cpu) +
                  " is not one this process may run on";
    if (!why_not.empty()) {
        plan.description = "NOT pinned (" + why_not + "): server and clients share the cores; read the ratios only";
        return plan;
    }
    plan.server = server_cpu;
    plan.client = client_cpu;
    plan.description = "server pinned to CPU " + std::to_string(server_cpu) + ", clients to CPU " +
                       std::to_string(client_cpu) + " (taskset), each in its own process";
    if (allowed.size() == 2)
        plan.description += "; a 2-core machine: the figures are ratios measured in the same run, not absolute claims";
    return plan;
}

// Two different cores this process may run on, if there are two and taskset is installed.
inline CpuPlan plan_cpus() {
    const std::vector<int> allowed = allowed_cpus();
    if (allowed.size() >= 2) return plan_cpus(allowed[0], allowed[1]);
    return plan_cpus(-1, -1);
}

// ------------------------------------------------------------------------- child process

// A program started with its stdin and stdout on pipes (its stderr is ours: progress and
// errors go straight to the terminal). Stopped, by its PID, when destroyed: a benchmark
// leaves no server behind, also when it fails. On Linux the child is also killed if we die
// (PR_SET_PDEATHSIG), so even a Ctrl-C or a crash of the bench leaves nothing running.
class ChildProcess {
public:
    // Runs argv (argv[0] is looked up on PATH), on `cpu` if given (through taskset, which
    // execs the program: the PID stays the program's). Throws std::runtime_error if it
    // cannot be started.
    ChildProcess(const std::vector<std::string>& argv, std::optional<int> cpu) {
        std::vector<std::string> full;
        if (cpu) {
            full = {"taskset", "-c", std::to_string(*cpu)};
        }
        full.insert(full.end(), argv.begin(), argv.end());
        std::vector<char*> args;
        for (auto& a : full) args.push_back(a.data());
        args.push_back(nullptr);
        command_ = full[0];
        for (std::size_t i = 1; i < full.size(); ++i) command_ += " " + full[i];
        // Composed now: after fork, only write(2) may say that the exec failed.
        const std::string exec_failed = "cannot run " + full[0] + ": not found or not executable\n";

        int to_child[2], from_child[2];
        if (::pipe2(to_child, O_CLOEXEC) < 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
        if (::pipe2(from_child, O_CLOEXEC) < 0) {
            ::close(to_child[0]);
            ::close(to_child[1]);
            throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
        }
        std::fflush(nullptr);  // nothing of ours may be left in a buffer for the child to copy
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) {
            // Between fork and exec only async-signal-safe calls.
#ifdef __linux__
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);  // the parent died before the prctl
#else
            (void)parent;
#endif
            ::dup2(to_child[0], 0);
            ::dup2(from_child[1], 1);
            ::execvp(args[0], args.data());
            (void)!::write(2, exec_failed.data(), exec_failed.size());
            ::_exit(127);
        }
        const int err = errno;
        ::close(to_child[0]);
        ::close(from_child[1]);
        in_ = to_child[1];
        out_ = from_child[0];
        if (pid_ < 0) {
            close_pipes();
            throw std::runtime_error("fork: " + std::string(std::strerror(err)));
        }
    }
    ~ChildProcess() { stop(); }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const noexcept { return pid_; }
    const std::string& command() const noexcept { return command_; }

    // The next line it prints (without the '\n'), waiting at most `timeout` seconds;
    // nullopt if none comes in time or it closed its stdout (exited).
    std::optional<std::string> read_line(double timeout) {
        const Deadline deadline = deadline_after(timeout);
        for (;;) {
            std::size_t nl = pending_.find('\n');
            if (nl != std::string::npos) {
                std::string line = pending_.substr(0, nl);
                pending_.erase(0, nl + 1);
                return line;
            }
            if (!read_more(deadline)) return std::nullopt;
        }
    }

    // Everything it prints on its stdout until it closes it, then its exit: for a program
    // that prints a report and ends (wrk, a load generator), as Popen.communicate() reads
    // it. Waits at most `timeout` seconds in all; what came before then if it has not
    // ended (it is left running: stop() or the destructor ends it). Lines it printed that
    // read_line has not returned yet come first. Its exit status goes to *status as in
    // wait_exit() (unchanged if it has not ended).
    std::string read_until_exit(double timeout, int* status = nullptr) {
        const Deadline deadline = deadline_after(timeout);
        while (read_more(deadline)) {
        }
        std::string out = std::move(pending_);
        pending_.clear();
        const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
        wait_exit(std::max(left, 0.0), status);
        return out;
    }

    // The next line that starts with `word` followed by a space (other lines are passed on
    // to our stderr), as its words after `word`; nullopt on timeout or exit.
    std::optional<std::vector<std::string>> expect(const std::string& word, double timeout) {
        const Deadline deadline = deadline_after(timeout);
        for (;;) {
            const double left =
                std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
            auto line = read_line(std::max(left, 0.0));
            if (!line) return std::nullopt;
            if (line->rfind(word + " ", 0) != 0) {
                progress("  (%s) %s\n", command_.c_str(), line->c_str());
                continue;
            }
            std::vector<std::string> words;
            std::size_t pos = word.size() + 1;
            while (pos < line->size()) {
                std::size_t end = line->find(' ', pos);
                if (end == std::string::npos) end = line->size();
                if (end > pos) words.push_back(line->substr(pos, end - pos));
                pos = end + 1;
            }
            return words;
        }
    }

    // Writes one line to its stdin. Returns false if it has gone.
    bool write_line(const std::string& line) {
        if (in_ < 0) return false;
        std::string data = line + "\n";
        const char* p = data.data();
        std::size_t left = data.size();
        while (left > 0) {
            ssize_t n = ::write(in_, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            p += n;
            left -= std::size_t(n);
        }
        return true;
    }

    void signal(int sig) {
        if (pid_ > 0) ::kill(pid_, sig);
    }

    // Waits up to `timeout` seconds for it to exit by itself; returns whether it did (or
    // had already), and then its exit status in *status (-1 if a signal ended it).
    bool wait_exit(double timeout, int* status = nullptr) {
        const Deadline deadline = deadline_after(timeout);
        while (pid_ > 0) {
            int st = 0;
            pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                reaped(WIFEXITED(st) ? WEXITSTATUS(st) : -1);
                break;
            }
            if (r < 0 && errno != EINTR) break;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            ::usleep(5000);
        }
        if (status && exit_status_) *status = *exit_status_;
        return pid_ <= 0;
    }

    // Whether it is still running, without waiting (Popen.poll() is None): a server that
    // something else has stopped is noticed here, and its exit status kept for stop().
    bool running() { return !wait_exit(0); }

    // Sends `sig` (SIGTERM, or the signal the program takes as "shut down gracefully":
    // SIGINT for ours and httpbin, SIGQUIT for nginx), then SIGKILL if it has not gone
    // within `grace` seconds; waits for it. Returns its exit status as wait_exit() gives it
    // (-1 if a signal ended it, also the SIGKILL); if it had already ended, the status it
    // ended with (-1 if unknown), and sends nothing.
    int stop(int sig = SIGTERM, double grace = 2.0) noexcept {
        if (pid_ > 0) {
            ::kill(pid_, sig);
            if (!wait_exit(grace)) {
                ::kill(pid_, SIGKILL);
                int st;
                while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
                }
                reaped(-1);
            }
        }
        close_pipes();
        return exit_status_.value_or(-1);
    }

private:
    using Deadline = std::chrono::steady_clock::time_point;

    static Deadline deadline_after(double seconds) {
        return std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    }

    // Reads what it has printed into pending_, waiting until `deadline` for something to
    // come; false once it has closed its stdout or the deadline has passed.
    bool read_more(Deadline deadline) {
        for (;;) {
            if (out_ < 0) return false;
            const double left =
                std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
            if (left <= 0) return false;
            pollfd p{out_, POLLIN, 0};
            const int r = ::poll(&p, 1, int(left * 1000) + 1);
            if (r <= 0) continue;  // EINTR, or the time is up (checked above)
            char buf[4096];
            const ssize_t n = ::read(out_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ::close(out_);
                out_ = -1;
                return false;
            }
            pending_.append(buf, std::size_t(n));
            return true;
        }
    }

    // It has been waited for: its PID may now be another process's, so it is never used
    // again; and its pipes are closed (a line it printed but nobody read is dropped).
    void reaped(int exit_status) noexcept {
        pid_ = -1;
        exit_status_ = exit_status;
        close_pipes();
    }

    void close_pipes() noexcept {
        if (in_ >= 0) ::close(in_);
        if (out_ >= 0) ::close(out_);
        in_ = out_ = -1;
    }

    pid_t pid_ = -1;
    int in_ = -1;   // its stdin
    int out_ = -1;  // its stdout
    std::string pending_;  // read from its stdout, not yet returned
    std::string command_;
    std::optional<int> exit_status_;  // once it has been waited for
};

// ------------------------------------------------------------------------------ resources

// Raises this process's limit on open fds (RLIMIT_NOFILE) to at least `wanted`, the hard
// limit too if need be (root may, up to /proc/sys/fs/nr_open). Returns the soft limit
// now in force, which may be less than wanted; `why` then says what stood in the way.
inline long raise_fd_limit(long wanted, std::string* why = nullptr) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        if (why) *why = std::string("getrlimit: ") + std::strerror(errno);
        return 0;
    }
    if (lim.rlim_cur != RLIM_INFINITY && long(lim.rlim_cur) >= wanted) return long(lim.rlim_cur);
    rlimit want = lim;
    want.rlim_cur = rlim_t(wanted);
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < rlim_t(wanted)) want.rlim_max = rlim_t(wanted);
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) return wanted;
    const int err = errno;
    // Not allowed to raise the hard limit: take what it allows.
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max > lim.rlim_cur) {
        rlimit most = lim;
        most.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &most) == 0) lim = most;
    }
    if (why)
        *why = "the open-file limit is " + std::to_string(long(lim.rlim_cur)) + " and cannot be raised to " +
               std::to_string(wanted) + " (setrlimit: " + std::strerror(err) +
               "; as root: ulimit -n, or raise /proc/sys/fs/nr_open)";
    return long(lim.rlim_cur);
}

// This process's resident memory in KiB (/proc/self/statm's second field, in pages): what
// the kernel has given it and it has touched. -1 where there is no /proc.
inline long resident_kb() {
    std::ifstream statm("/proc/self/statm");
    long size = 0, resident = 0;
    if (!(statm >> size >> resident)) return -1;
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace aio::bench
