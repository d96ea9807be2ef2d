// Stage 1: generators. What the demos share: a wall and CPU stopwatch, and their options.
//
// Adds:    Stopwatch (wall time and process CPU time: the pair that shows a loop burning a
//          core) and parse_demo_options (--help, --quick, --seconds S). Stage 2's demo uses
//          them too, so the two demos measure and parse the same way.
// Mirrors: nothing in asyncio; the articles time their examples with time.time().
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace aio {

struct Stopwatch {
    std::chrono::steady_clock::time_point wall0 = std::chrono::steady_clock::now();
    std::clock_t cpu0 = std::clock();
    double wall() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count(); }
    double cpu() const { return double(std::clock() - cpu0) / CLOCKS_PER_SEC; }
};

// Reads --help, --quick (seconds = quick_seconds) and --seconds S (0 to 3600) into `seconds`.
// Returns -1 to go on, or the exit status to stop with (0 after --help, 2 on bad input).
inline int parse_demo_options(int argc, char** argv, double& seconds, double quick_seconds,
                              void (*usage)(const char* prog)) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(argv[0]);
            return 0;
        } else if (a == "--quick") {
            seconds = quick_seconds;
        } else if (a == "--seconds" && i + 1 < argc) {
            char* end = nullptr;
            seconds = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(seconds >= 0) || seconds > 3600) {
                std::fprintf(stderr, "error: --seconds wants a number of seconds from 0 to 3600, got '%s'\n", argv[i]);
                return 2;
            }
        } else {
            std::fprintf(stderr, "error: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    return -1;
}

}  // namespace aio
