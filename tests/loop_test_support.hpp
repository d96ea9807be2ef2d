// Helpers shared by the tests of stage 2 and later: driving a loop by hand, timing, and
// reading exceptions. Header-only; included by tests/stage2_*.cpp and tests/stage3_*.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"

namespace loop_test_support {

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

}  // namespace loop_test_support
