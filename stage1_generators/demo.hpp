// Stage 1: generators. What the demos share: a wall and CPU stopwatch.
//
// Adds:    Stopwatch (wall time and process CPU time: the pair that shows whether a
//          program waits by sleeping, CPU near zero, or by spinning, CPU equal to wall).
//          Stage 2's demo uses it too, so the two demos measure the same way. (Their
//          command lines are read by options.hpp's OptionParser, like every program's.)
// Mirrors: nothing in asyncio; the articles time their examples with time.time().
#pragma once

#include <chrono>
#include <ctime>

namespace aio {

struct Stopwatch {
    std::chrono::steady_clock::time_point wall0 = std::chrono::steady_clock::now();
    std::clock_t cpu0 = std::clock();
    double wall() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count(); }
    double cpu() const { return double(std::clock() - cpu0) / CLOCKS_PER_SEC; }
};

}  // namespace aio
