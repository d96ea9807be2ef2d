// Stage 3: Futures and Tasks. The small-block pool (see object_pool.hpp).
#include "stage3_tasks_futures/object_pool.hpp"

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
constexpr std::size_t kChunkSize = 256 * 1024;

struct FreeBlock {
    FreeBlock* next;
};

struct ThreadPool {
    FreeBlock* free_lists[kClasses] = {};
    char* next = nullptr;  // the unused rest of the current chunk
    char* end = nullptr;
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

void refill(ThreadPool& p) {
    void* chunk = ::operator new(kChunkSize);
    {
        std::lock_guard<std::mutex> lock(chunks_mutex);
        chunks().push_back(chunk);
    }
    p.next = static_cast<char*>(chunk);
    p.end = p.next + kChunkSize;
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
