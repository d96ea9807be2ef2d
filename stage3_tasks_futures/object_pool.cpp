// Stage 3: Futures and Tasks. The small-block pool (see object_pool.hpp).
#include "stage3_tasks_futures/object_pool.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AIO_POOL_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AIO_POOL_BYPASS 1
#endif
#endif
#ifndef AIO_POOL_BYPASS
#define AIO_POOL_BYPASS 0
#endif

namespace aio::pool {

namespace {

constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = kMaxPooledSize / kGranule;  // blocks of 16, 32, ... 256 bytes
static_assert(block_size(104) == 112 && block_size(64) == 64 && block_size(300) == 300);
constexpr std::size_t kSmallChunk = 256 * 1024;
constexpr std::size_t kSmallChunks = 4;            // a thread's first 1 MiB comes in these
constexpr std::size_t kHugeChunk = 2 * 1024 * 1024;  // then this: one x86-64 huge page

struct FreeBlock {
    FreeBlock* next;
};

struct ThreadPool {
    FreeBlock* free_lists[kClasses] = {};
    char* next = nullptr;  // the unused rest of the current chunk
    char* end = nullptr;
    std::size_t chunks_made = 0;
    long requests[kMaxPooledSize + 1] = {};  // by requested size: see requests()
};

thread_local ThreadPool tl_pool;

// Every chunk ever made, so that the memory stays reachable (leak checkers call it "still
// reachable", not lost) after the thread that made it has exited.
std::mutex chunks_mutex;
std::vector<void*>& chunks() {
    static auto* v = new std::vector<void*>;  // never destroyed: blocks may outlive statics
    return *v;
}

// [docs:huge_chunk]
// Measured (bench_tasks_1m, /usr/bin/time): once frames and tasks came from the pool, more
// than half of creating a million tasks was system time, the kernel handing out 47,000
// fresh 4 KiB pages one fault at a time. So a thread that has already used 1 MiB gets its
// further chunks as 2 MiB regions aligned to 2 MiB, and asks Linux to back each with one
// transparent huge page: a fault per 2 MiB instead of per 4 KiB (about 4,300 faults for the
// million, and the total time roughly halved). A kernel with huge pages off ignores the
// advice, and the chunk works as before, 4 KiB at a time. (The price: when the kernel has no
// free huge page at hand it may first compact memory, so a run now and then is slower.)
void* huge_chunk() {
    // mmap gives page alignment only: take twice the size and give back the unaligned ends.
    void* raw = ::mmap(nullptr, 2 * kHugeChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(raw);
    const auto aligned = (start + kHugeChunk - 1) & ~std::uintptr_t(kHugeChunk - 1);
    if (aligned != start) ::munmap(raw, aligned - start);
    const std::size_t tail = start + 2 * kHugeChunk - (aligned + kHugeChunk);
    if (tail) ::munmap(reinterpret_cast<void*>(aligned + kHugeChunk), tail);
#ifdef MADV_HUGEPAGE
    ::madvise(reinterpret_cast<void*>(aligned), kHugeChunk, MADV_HUGEPAGE);  // advice: may be ignored
#endif
    return reinterpret_cast<void*>(aligned);
}
// [/docs:huge_chunk]

void refill(ThreadPool& p) {
    // Small programs (and threads that make a coroutine or two) stay small.
    const bool small = p.chunks_made < kSmallChunks;
    const std::size_t size = small ? kSmallChunk : kHugeChunk;
    void* chunk = small ? ::operator new(size) : huge_chunk();
    ++p.chunks_made;
    {
        std::lock_guard<std::mutex> lock(chunks_mutex);
        chunks().push_back(chunk);
    }
    p.next = static_cast<char*>(chunk);
    p.end = p.next + size;
}

}  // namespace

void* allocate(std::size_t size) {
    const std::size_t cls = (size + kGranule - 1) / kGranule;  // 1 for 1..16 bytes, ...
    ThreadPool& p = tl_pool;
    if (size <= kMaxPooledSize) ++p.requests[size];
    if (AIO_POOL_BYPASS || size == 0 || cls > kClasses) return ::operator new(size);
    if (FreeBlock* b = p.free_lists[cls - 1]) {
        p.free_lists[cls - 1] = b->next;
        return b;
    }
    const std::size_t bytes = cls * kGranule;
    if (static_cast<std::size_t>(p.end - p.next) < bytes) refill(p);  // the rest is too small: dropped
    void* block = p.next;
    p.next += bytes;
    return block;
}

void deallocate(void* ptr, std::size_t size) noexcept {
    const std::size_t cls = (size + kGranule - 1) / kGranule;
    if (AIO_POOL_BYPASS || size == 0 || cls > kClasses) {
        ::operator delete(ptr);
        return;
    }
    ThreadPool& p = tl_pool;
    auto* b = static_cast<FreeBlock*>(ptr);
    b->next = p.free_lists[cls - 1];
    p.free_lists[cls - 1] = b;
}

long requests(std::size_t size) noexcept { return size <= kMaxPooledSize ? tl_pool.requests[size] : 0; }

}  // namespace aio::pool
