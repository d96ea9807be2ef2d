// Stage 1: generators. The first article's mocked network I/O, made two ways.
//
// Adds:    blocking_request(i, seconds), a request made the ordinary way: the call blocks
//          until the reply is there, as a read on a socket does; network_io(seconds), a
//          pretend request that is "in flight" for `seconds` and then returns status 200,
//          without ever blocking; and easy_coroutine(i, seconds), which delegates to it
//          (`yield from network_io(...)`) and records the response.
// Mirrors: the first article's example; there is no network here yet (stage 4 has one).
#pragma once

#include <string>

#include "stage1_generators/polling_loop.hpp"

namespace aio {

// The baseline: a request whose reply takes `seconds` to come, made by a plain call that
// blocks until then. The thread sleeps in the kernel meanwhile (no CPU time), and it can do
// nothing else: requests made this way happen one after another. Returns
// "request <i> got response 200".
std::string blocking_request(int i, double seconds);

// Start a pretend request, then report "not ready" on every poll until `seconds` have
// passed. Each poll costs a clock read and a resume: cheap, but it never stops.
PolledCoroutine<int> network_io(double seconds);

// One client of the first article: makes a request and records what came back, as
// "coroutine <i> got response <status>".
PolledCoroutine<std::string> easy_coroutine(int i, double seconds);

}  // namespace aio
