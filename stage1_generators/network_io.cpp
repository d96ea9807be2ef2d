// Stage 1: generators. The first article's mocked network I/O (see network_io.hpp).
#include "stage1_generators/network_io.hpp"

#include <chrono>

namespace aio {

// [docs:network_io]
PolledCoroutine<int> network_io(double seconds) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(seconds);
    while (clock::now() < deadline) co_yield none;  // "no reply yet": back to the loop
    co_return 200;
}

PolledCoroutine<std::string> easy_coroutine(int i, double seconds) {
    int status = co_await network_io(seconds);  // Python: status = yield from network_io(...)
    co_return "coroutine " + std::to_string(i) + " got response " + std::to_string(status);
}
// [/docs:network_io]

}  // namespace aio
