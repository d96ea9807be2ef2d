// Stage 3 tests: the small-block pool. It counts what it is asked for, rounds blocks up to
// 16 bytes, and a task is exactly two of its blocks (the Task and its coroutine's frame);
// waking a task that waits on a future asks it for nothing.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "stage3_tasks_futures/object_pool.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;
namespace pool = aio::pool;

long all_requests() {
    long n = 0;
    for (std::size_t s = 0; s <= pool::kMaxPooledSize; ++s) n += pool::requests(s);
    return n;
}

aio::Coroutine<> empty() { co_return; }

aio::Coroutine<> waits_on(aio::Ref<aio::Future<>> f) { co_await f; }

}  // namespace

TEST_CASE("pool: blocks are rounded up to 16 bytes, up to 256; bigger requests keep their size", "[stage3]") {
    REQUIRE(pool::block_size(1) == 16);
    REQUIRE(pool::block_size(16) == 16);
    REQUIRE(pool::block_size(17) == 32);
    REQUIRE(pool::block_size(104) == 112);
    REQUIRE(pool::block_size(256) == 256);
    REQUIRE(pool::block_size(257) == 257);
}

TEST_CASE("pool: each request is counted by its size, and its block is all usable", "[stage3]") {
    const long before40 = pool::requests(40), before300 = pool::requests(300);
    void* a = pool::allocate(40);
    void* b = pool::allocate(40);
    void* big = pool::allocate(300);  // served by operator new: not counted
    REQUIRE(a != b);
    std::memset(a, 0xab, 40);  // under ASan a short block would be caught here
    std::memset(b, 0xcd, 40);
    std::memset(big, 0xef, 300);
    REQUIRE(static_cast<unsigned char*>(a)[39] == 0xab);  // the two blocks do not overlap
    REQUIRE(pool::requests(40) == before40 + 2);
    REQUIRE(pool::requests(300) == before300);
    pool::deallocate(a, 40);
    pool::deallocate(b, 40);
    pool::deallocate(big, 300);
}

TEST_CASE("pool: past its first small chunks (on 2 MiB huge-page chunks), every block is usable and distinct",
          "[stage3]") {
    // 4 MiB of 48-byte blocks: more than the first 1 MiB of small chunks, so it crosses
    // into the 2 MiB chunks and across one chunk boundary at least.
    constexpr std::size_t kSize = 48, kCount = 4 * 1024 * 1024 / kSize;
    std::vector<long*> blocks;
    blocks.reserve(kCount);
    for (std::size_t i = 0; i < kCount; ++i) {
        auto* b = static_cast<long*>(pool::allocate(kSize));
        std::memset(b, 0, kSize);
        b[0] = long(i);
        b[kSize / sizeof(long) - 1] = -long(i);  // the last word of the block too
        blocks.push_back(b);
    }
    std::size_t wrong = 0;  // a block overlapping another would have been overwritten
    for (std::size_t i = 0; i < kCount; ++i)
        if (blocks[i][0] != long(i) || blocks[i][kSize / sizeof(long) - 1] != -long(i)) ++wrong;
    REQUIRE(wrong == 0);
    for (long* b : blocks) pool::deallocate(b, kSize);
}

TEST_CASE("pool: a task is two blocks, its Task and its coroutine's frame; waking it asks for none", "[stage3]") {
    TEST_LOOP(loop);
    const long before = all_requests();
    const long tasks_before = pool::requests(sizeof(aio::Task<void>));
    auto t = aio::create_task(loop, empty());
    REQUIRE(all_requests() - before == 2);
    REQUIRE(pool::requests(sizeof(aio::Task<void>)) - tasks_before == 1);
    loop.run_until_complete(t);

    auto f = aio::create_future(loop);
    auto waiter = aio::create_task(loop, waits_on(f));
    one_pass(loop);  // it starts and suspends on f
    REQUIRE_FALSE(waiter->done());
    const long suspended = all_requests();
    f->set_result();
    one_pass(loop);  // the future's done-callback is the task itself: it runs its step
    REQUIRE(waiter->done());
    REQUIRE(all_requests() == suspended);
}
