// Stage 3: Futures and Tasks. A pool of small blocks for coroutine frames and tasks.
//
// Adds:    pool::allocate / pool::deallocate, used by every Coroutine frame and every Task.
// Mirrors: CPython's small-object allocator, pymalloc (Objects/obmalloc.c), and its free
//          lists for frames: the same observation, that an async program allocates and frees
//          millions of small objects of a few sizes, so a general-purpose malloc is overkill.
//
// Why (measured with bench_tasks_1m and callgrind): creating a million tasks spent half of
// its instructions in malloc, every call taking malloc's slow path because the memory was
// fresh, and finishing them spent a third in free. Here a block is a pointer pop from a
// per-size free list, or a bump of a pointer through a chunk, and freeing is a push. (Chunks
// are 256 KiB at first, then 2 MiB on huge pages: object_pool.cpp says why.)
//
// The rules that keep it simple: sizes are rounded up to 16 bytes (the alignment operator new
// guarantees), up to 256 bytes; larger requests go to operator new. Each thread has its own
// free lists, so there is no lock; a block freed on another thread joins that thread's
// lists, which is fine because chunks are never returned: the pool keeps what it has for
// reuse, like CPython's free lists. Under AddressSanitizer or ThreadSanitizer the pool steps
// aside and every block comes from operator new, so the sanitizers still see each one.
#pragma once

#include <cstddef>

namespace aio::pool {

void* allocate(std::size_t size);
void deallocate(void* p, std::size_t size) noexcept;

// The largest request the pool serves itself; bigger ones go straight to operator new.
inline constexpr std::size_t kMaxPooledSize = 256;
// The block a request of `size` bytes takes: rounded up to 16 (size itself above the max).
constexpr std::size_t block_size(std::size_t size) noexcept {
    return size > kMaxPooledSize ? size : (size + 15) / 16 * 16;
}
// How many times this thread has asked for exactly `size` bytes (sizes up to kMaxPooledSize;
// counted under the sanitizers too). This is how bench_tasks_1m's breakdown and the tests see
// what a task is made of. Measured (callgrind, bench_tasks_1m's run of 200,000 tasks): the
// increment is 3 instructions per allocation, 0.8% of the run's instructions, and no
// difference in its time above the noise (median of 15 runs of a million tasks each way).
// A switch to turn it off would itself cost a load and a branch per allocation, about as
// much, and a build just for the bench would double the library's builds; so it stays on.
long requests(std::size_t size) noexcept;

}  // namespace aio::pool
