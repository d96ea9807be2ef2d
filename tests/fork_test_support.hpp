// A helper for tests whose failure would be a crash or a hang: run the scenario in a forked
// child, so that it fails one test instead of ending the whole run. Header-only.
#pragma once

#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>

namespace fork_test_support {

// Runs body() in a forked child, killed by SIGALRM after `timeout` seconds. body returns
// nothing (success unless it throws) or an int: 0 for success, or a code of its own
// (>= 10) naming what went wrong. An exception escaping it is exit code 3; a sanitizer
// report is usually exit code 1. Returns "ok", or how the child ended.
template <typename Body>
std::string in_child(Body body, double timeout = 5.0) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return "fork failed";
    if (pid == 0) {
        // Catch2's handlers would report a crash of the child as a failure of the parent's
        // test (and print a second summary): let a signal simply end the child.
        for (int sig : {SIGALRM, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTERM}) std::signal(sig, SIG_DFL);
        itimerval t{};
        t.it_value.tv_sec = static_cast<long>(timeout);
        t.it_value.tv_usec = static_cast<long>((timeout - double(t.it_value.tv_sec)) * 1e6);
        ::setitimer(ITIMER_REAL, &t, nullptr);
        int code = 3;
        try {
            if constexpr (std::is_void_v<decltype(body())>) {
                body();
                code = 0;
            } else {
                code = body();
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "in_child: %s\n", e.what());
        } catch (...) {
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status)) {
        const int code = WEXITSTATUS(status);
        if (code == 0) return "ok";
        if (code == 1) return "exit code 1 (a sanitizer report? see stderr)";
        if (code == 3) return "exit code 3 (an exception escaped)";
        return "exit code " + std::to_string(code);
    }
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        std::string out = "killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
        if (sig == SIGALRM) out += ": it hung";
        return out;
    }
    return "ended oddly";
}

}  // namespace fork_test_support
