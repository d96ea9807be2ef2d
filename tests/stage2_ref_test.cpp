// Stage 2 tests: Ref<T>'s conversions. A Ref<Derived> becomes a Ref<Base> exactly where a
// Derived* becomes a Base*: upward, through public bases only. No implicit downcast, and no
// way round a base a class keeps to itself (stage 3's futures keep their Handle side so:
// tests/stage3_handle_access_test.cpp).
#include <catch2/catch.hpp>

#include <string>
#include <type_traits>
#include <utility>

#include "stage2_custom_loop/event_loop.hpp"
#include "tests/loop_test_support.hpp"

namespace {

using namespace loop_test_support;

struct Base : aio::RefCounted {};
struct Derived : Base {};
struct Unrelated : aio::RefCounted {};

// Counts references through its RefCounted base, but keeps its Handle side to itself: only
// its own members (and Ref, to count) may treat it as a Handle.
class PrivateHandle final : protected aio::Handle {
public:
    using aio::RefCounted::ref_count;
    // For the loop: the one place that hands out the Handle side.
    static aio::Ref<aio::Handle> as_handle(PrivateHandle& h) { return aio::Ref<aio::Handle>(&h); }
    int runs = 0;

private:
    template <typename>
    friend class aio::Ref;
    std::string name() const override { return "PrivateHandle"; }
    void run() override { ++runs; }
};

// Up, as a pointer converts; never down, never sideways.
static_assert(std::is_convertible_v<aio::Ref<Derived>, aio::Ref<Base>>);
static_assert(std::is_convertible_v<aio::Ref<aio::TimerHandle>, aio::Ref<aio::Handle>>);
static_assert(!std::is_convertible_v<aio::Ref<Base>, aio::Ref<Derived>>);
static_assert(!std::is_constructible_v<aio::Ref<Derived>, aio::Ref<Base>>);
static_assert(!std::is_convertible_v<aio::Ref<aio::Handle>, aio::Ref<aio::TimerHandle>>);
static_assert(!std::is_constructible_v<aio::Ref<Unrelated>, aio::Ref<Base>>);
// A base the class keeps to itself is not reachable through a Ref either.
static_assert(!std::is_convertible_v<aio::Ref<PrivateHandle>, aio::Ref<aio::Handle>>);
static_assert(!std::is_constructible_v<aio::Ref<aio::Handle>, aio::Ref<PrivateHandle>>);
static_assert(!std::is_constructible_v<aio::Ref<aio::Handle>, PrivateHandle*>);

}  // namespace

TEST_CASE("Ref: converting to a base shares the one count, copied or moved", "[stage2]") {
    aio::Ref<Derived> d = aio::make_ref<Derived>();
    aio::Ref<Base> copied = d;
    REQUIRE(copied.get() == d.get());
    REQUIRE(d->ref_count() == 2);
    aio::Ref<Base> moved = std::move(d);
    REQUIRE_FALSE(d);
    REQUIRE(moved.get() == copied.get());
    REQUIRE(moved->ref_count() == 2);  // moved, not counted again
}

TEST_CASE("Ref: a class with a hidden Handle base is still counted and run by the loop", "[stage2]") {
    TEST_LOOP(loop);
    aio::Ref<PrivateHandle> h = aio::make_ref<PrivateHandle>();
    loop.add_callback(PrivateHandle::as_handle(*h));
    REQUIRE(h->ref_count() == 2);  // ours and the ready queue's
    one_pass(loop);
    REQUIRE(h->runs == 1);
    REQUIRE(h->ref_count() == 1);
}
