// Stage 1: generators. The first article's mocked network I/O (see network_io.hpp).
#include "stage1_generators/network_io.hpp"

#include <chrono>
#include <thread>

namespace aio {

// [docs:blocking_request]
std::string blocking_request(int i, double seconds) {
    // What a blocking recv() does while the reply is on its way: the thread sleeps.
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    return "request " + std::to_string(i) + " got response 200";
}
// [/docs:blocking_request]

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
