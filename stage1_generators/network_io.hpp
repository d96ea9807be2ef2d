// Stage 1: generators. The first article's mocked network I/O.
//
// Adds:    network_io(duration), a pretend request that is "in flight" for `duration`
//          seconds and then returns status 200, and easy_coroutine(i), which delegates to it
//          (`yield from network_io(...)`) and records the response.
// Mirrors: the first article's example; there is no network here yet (stage 4 has one).
#pragma once

#include <string>

#include "stage1_generators/polling_loop.hpp"

namespace aio {

// Start a pretend request, then report "not ready" on every poll until `seconds` have
// passed. Each poll costs a clock read and a resume: cheap, but it never stops.
PolledCoroutine<int> network_io(double seconds);

// One client of the first article: makes a request and records what came back, as
// "coroutine <i> got response <status>".
PolledCoroutine<std::string> easy_coroutine(int i, double seconds);

}  // namespace aio
