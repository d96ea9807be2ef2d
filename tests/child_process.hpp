// Child processes for the stage 5 tests: run a program to completion with its output
// captured (the fetch tool), or keep a server running while a test talks to it (python3's
// http.server). Each child is stopped by its PID, also when the test fails (destructors).
// Header-only.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace child_process {

// The directory of this test binary (build/bin/), to find the course's programs beside it.
inline std::string bin_dir() {
    char path[4096];
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return "build/bin";
    std::string p(path, std::size_t(n));
    return p.substr(0, p.rfind('/'));
}

// The course's program `name`: beside the test binary, else in build/bin (a sanitizer build
// puts its tests elsewhere but does not build the programs). "" if neither has it.
inline std::string course_program(const std::string& name) {
    for (const std::string& dir : {bin_dir(), std::string("build/bin")}) {
        const std::string p = dir + "/" + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return "";
}

// What a program did: its exit status (-1 if it had to be killed) and its two outputs.
struct ProgramRun {
    int status = -1;
    std::string out, err;
};

// Runs the course's program `name` (course_program) with `args` to its end, `timeout`
// seconds at most. nullopt if it is not built: the caller says the test is skipped.
inline std::optional<ProgramRun> run_course_program(const std::string& name, std::vector<std::string> args,
                                                    double timeout = 20);

// Whether `program` is on PATH.
inline bool on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (std::size_t at = 0; at <= dirs.size();) {
        std::size_t end = dirs.find(':', at);
        if (end == std::string::npos) end = dirs.size();
        if (::access((dirs.substr(at, end - at) + "/" + program).c_str(), X_OK) == 0) return true;
        at = end + 1;
    }
    return false;
}

// A running child; killed (SIGTERM, then SIGKILL) and reaped by the destructor.
class Child {
public:
    // Starts argv[0] (searched on PATH) with stdin from /dev/null and stdout and stderr into
    // two pipes, read with read_line() (stdout) and finish(). Throws std::runtime_error if it
    // cannot start.
    explicit Child(const std::vector<std::string>& argv) {
        int fds[2], efds[2];
        if (::pipe2(fds, O_CLOEXEC) < 0) throw std::runtime_error("pipe2 failed");
        if (::pipe2(efds, O_CLOEXEC) < 0) {
            ::close(fds[0]);
            ::close(fds[1]);
            throw std::runtime_error("pipe2 failed");
        }
        posix_spawn_file_actions_t actions;
        ::posix_spawn_file_actions_init(&actions);
        ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        ::posix_spawn_file_actions_adddup2(&actions, efds[1], 2);
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int err = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
        ::posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        ::close(efds[1]);
        out_ = fds[0];
        err_ = efds[0];
        if (err) {
            ::close(out_);
            ::close(err_);
            out_ = err_ = -1;
            pid_ = -1;
            throw std::runtime_error("cannot start " + argv[0]);
        }
    }
    ~Child() {
        stop();
        if (out_ >= 0) ::close(out_);
        if (err_ >= 0) ::close(err_);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }

    // The next line of output (without its '\n'), waiting `timeout` seconds at most.
    std::optional<std::string> read_line(double timeout) {
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout));
        for (;;) {
            if (std::size_t nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            if (std::chrono::steady_clock::now() >= until || !fill(until)) return std::nullopt;
        }
    }
    // Its output until it closes both (or `timeout`), then its exit status (-1 if it had to
    // be killed).
    int finish(double timeout, std::string& output, std::string& errors) {
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout));
        while (std::chrono::steady_clock::now() < until && fill(until)) {
        }
        output = std::move(buffer_);
        errors = std::move(errors_);
        buffer_.clear();
        int status = 0;
        while (std::chrono::steady_clock::now() < until) {
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        stop();
        return -1;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        for (int i = 0; i < 200; ++i) {
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

private:
    // Reads what the child wrote on either pipe; false once both are closed, or at `until`.
    bool fill(std::chrono::steady_clock::time_point until) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        pollfd p[2] = {{out_open_ ? out_ : -1, POLLIN, 0}, {err_open_ ? err_ : -1, POLLIN, 0}};
        if (!out_open_ && !err_open_) return false;
        if (::poll(p, 2, int(std::max<long long>(1, left.count()))) <= 0) return false;
        char buf[4096];
        for (int i = 0; i < 2; ++i) {
            if (!p[i].revents) continue;
            ssize_t n = ::read(p[i].fd, buf, sizeof buf);
            if (n <= 0)
                (i ? err_open_ : out_open_) = false;
            else
                (i ? errors_ : buffer_).append(buf, std::size_t(n));
        }
        return true;
    }

    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    bool out_open_ = true, err_open_ = true;
    std::string buffer_, errors_;
};

inline std::optional<ProgramRun> run_course_program(const std::string& name, std::vector<std::string> args,
                                                    double timeout) {
    const std::string program = course_program(name);
    if (program.empty()) return std::nullopt;
    args.insert(args.begin(), program);
    Child child(args);
    ProgramRun run;
    run.status = child.finish(timeout, run.out, run.err);
    return run;
}

}  // namespace child_process
