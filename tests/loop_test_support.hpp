// Helpers shared by the tests of stage 2 and later: making a loop, driving it by hand,
// timing, and reading exceptions. Header-only; included by tests/stage2_*.cpp and
// tests/stage3_*.cpp.
//
// Which loop a test runs on. Stages 2 and 3 promise to work on any loop that keeps stage 2's
// contract, and stage 4's SelectorEventLoop is one: so their suites run twice. The binaries
// build/bin/tests_stage2 and tests_stage3 run them on stage 2's EventLoop;
// build/bin/tests_stage4_on_selector links the very same test objects with
// tests/catch_main_on_selector.cpp, which makes new_event_loop() return a SelectorEventLoop,
// and `make test` runs it once per selector (AIO_SELECTOR=select, poll, epoll). For that,
// a test asks for "a loop" instead of naming a class:
//
//   TEST_LOOP(loop);                     // aio::EventLoop& loop, from aio::new_event_loop(),
//                                        // destroyed at the end of the scope like a local
//   auto owned = aio::new_event_loop();  // a std::unique_ptr, to destroy it at a chosen point
//   aio::run(main());                    // run() makes its loop with new_event_loop() too
//
// Name aio::EventLoop only when the test needs that class, and say why in the test: to
// subclass it (overriding select(), say), to check its own answers (NotImplementedError
// for signals), or to construct it with placement new (tests/stage3_teardown_test.cpp's
// LoopSlot). Such a test runs on stage 2's loop in both binaries.
//
// A test that cannot hold on a SelectorEventLoop gets the tag [stage2-loop-only] and a
// comment saying why; tests_stage4_on_selector leaves it out. None needs it today, and a
// test that fails only on the selector loop is far more likely a bug in that loop.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"

// TEST_LOOP(name); declares `aio::EventLoop& name`: a new loop from aio::new_event_loop()
// (stage 2's EventLoop, or the class the test binary chose), owned by the enclosing scope.
#define TEST_LOOP(name)                                                         \
    const std::unique_ptr<aio::EventLoop> name##_owner = aio::new_event_loop(); \
    aio::EventLoop& name = *name##_owner

namespace loop_test_support {

// Makes new_event_loop() use `factory` for the scope of a test, then restores the factory
// that was there before (which, in the runs on the selector loop, is not stage 2's).
class ScopedLoopFactory {
public:
    explicit ScopedLoopFactory(aio::EventLoopFactory factory) : previous_(aio::set_event_loop_factory(factory)) {}
    ~ScopedLoopFactory() { aio::set_event_loop_factory(previous_); }
    ScopedLoopFactory(const ScopedLoopFactory&) = delete;
    ScopedLoopFactory& operator=(const ScopedLoopFactory&) = delete;

private:
    aio::EventLoopFactory previous_;
};

using Log = std::vector<std::string>;

// Exactly one pass of the loop, whatever is scheduled (asyncio's rule: stop() before
// run_forever() makes it run one pass). Unlike a bare run_once(), it never blocks waiting
// for a far timer.
inline void one_pass(aio::EventLoop& loop) {
    loop.stop();
    loop.run_forever();
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "?";
    }
}

// An exception that says which test step threw it.
struct Marked : std::runtime_error {
    explicit Marked(int id) : std::runtime_error("marked " + std::to_string(id)), id(id) {}
    int id;
};

// What the loop's exception handler was told: capture_reports() installs a handler that
// records each report, so a test can check what was reported and that nothing else was.
struct Report {
    std::string message;
    std::string exception;  // what(), or empty
};
using Reports = std::vector<Report>;
inline void capture_reports(aio::EventLoop& loop, Reports* reports) {
    loop.set_exception_handler([reports](aio::EventLoop&, const aio::ExceptionContext& c) {
        reports->push_back(Report{c.message, c.exception ? what_of(c.exception) : std::string()});
    });
}

// How many reports mention `text`.
inline std::size_t count_reports(const Reports& reports, const std::string& text) {
    std::size_t n = 0;
    for (auto& r : reports)
        if (r.message.find(text) != std::string::npos) ++n;
    return n;
}

// Captures what this process writes to stderr (file descriptor 2) while it lives, so that a
// test that provokes a last-resort message (the loop's logger failing, say) can check it
// instead of printing it into `make test`'s output. Stderr is back on destruction or text().
// Only for tests without threads that write to stderr meanwhile.
class CapturedStderr {
public:
    CapturedStderr() : file_(std::tmpfile()) {
        std::fflush(stderr);
        if (file_) saved_ = ::dup(2);
        if (saved_ >= 0) ::dup2(::fileno(file_), 2);
    }
    ~CapturedStderr() {
        restore();
        if (file_) std::fclose(file_);
    }
    CapturedStderr(const CapturedStderr&) = delete;
    CapturedStderr& operator=(const CapturedStderr&) = delete;

    // Stops capturing, and returns everything written meanwhile.
    std::string text() {
        restore();
        std::string out;
        if (!file_) return out;
        std::rewind(file_);
        for (int c; (c = std::fgetc(file_)) != EOF;) out += char(c);
        return out;
    }

private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    std::FILE* file_;
    int saved_ = -1;
};

}  // namespace loop_test_support
