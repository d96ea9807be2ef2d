// Stage 1: generators. The first "event loop": poll every coroutine, round-robin.
//
// Adds:    PollingLoop, which steps a set of generator coroutines one co_yield at a time,
//          in turn, until all of them have returned, and collects what they returned.
// Mirrors: nothing in asyncio directly; it is the loop of the first article, and the
//          ancestor of BaseEventLoop._run_once (Lib/asyncio/base_events.py). Its flaw, that
//          it resumes every coroutine on every pass whether or not it can make progress, is
//          what stage 2's event loop removes.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage1_generators/generator.hpp"

namespace aio {

// A coroutine on the polling loop yields None to say "not finished, poll me again".
template <typename Result = void>
using PolledCoroutine = Generator<None, void, Result>;

template <typename Result = void>
class PollingLoop {
public:
    using Coroutine = PolledCoroutine<Result>;

    // Add a coroutine; it starts on the next pass. Returns its index in run()'s results.
    std::size_t add(Coroutine coro) {
        if (coro.done())
            throw std::invalid_argument("PollingLoop::add: this coroutine has already finished (or was moved from)");
        coros_.push_back(std::move(coro));
        return coros_.size() - 1;
    }

    // [docs:run]
    // Step each unfinished coroutine once per pass, in the order they were added, until
    // all have returned. Every pass resumes every coroutine, even one whose network reply
    // cannot possibly have arrived yet: that is the busy polling stage 2 gets rid of.
    auto run() {
        std::vector<Coroutine> coros = std::move(coros_);  // a later run() starts afresh
        coros_.clear();
        std::vector<Slot> results(coros.size());
        std::size_t unfinished = coros.size();
        while (unfinished > 0) {
            ++passes_;
            for (std::size_t i = 0; i < coros.size(); ++i) {
                Coroutine& coro = coros[i];
                if (coro.done()) continue;
                if (coro.next()) continue;  // it yielded: poll it again next pass
                --unfinished;               // it returned: collect its result
                if constexpr (!std::is_void_v<Result>) results[i] = coro.result();
            }
        }
        return collect(std::move(results));
    }
    // [/docs:run]

    // How many passes the last run() (and every earlier one) made over the coroutines.
    std::size_t passes() const noexcept { return passes_; }

private:
    struct NoResult {};
    using Slot = std::conditional_t<std::is_void_v<Result>, NoResult, std::optional<Result>>;

    static auto collect(std::vector<Slot> slots) {
        if constexpr (std::is_void_v<Result>) {
            return;
        } else {
            std::vector<Result> out;
            out.reserve(slots.size());
            for (auto& s : slots) out.push_back(std::move(*s));
            return out;
        }
    }

    std::vector<Coroutine> coros_;
    std::size_t passes_ = 0;
};

}  // namespace aio
