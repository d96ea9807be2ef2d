// Stage 2: the event loop. Ref<T>, the reference-counted pointer the loop hands out.
//
// Adds:    Ref<T>, an intrusive reference: the count lives in the object (a RefCounted
//          base), so a handle is one allocation and copying a Ref is an increment.
// Mirrors: Python's own reference counting; asyncio's Handle objects are kept alive by
//          whoever refers to them (the ready deque, the timer heap, your variable).
//
// Why not std::shared_ptr: it keeps a separate control block (or, with make_shared, a
// larger one), and counts atomically. The loop is single-threaded, and call_soon runs
// millions of times a second, so a plain integer in the object is both smaller and faster.
// The one path that crosses threads (call_soon_threadsafe) hands over a Ref without
// sharing it: the other thread creates it, the loop thread is the only one that touches it.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace aio {

class RefCounted {
public:
    RefCounted() = default;
    RefCounted(const RefCounted&) = delete;
    RefCounted& operator=(const RefCounted&) = delete;
    std::uint32_t ref_count() const noexcept { return refs_; }

protected:
    virtual ~RefCounted() = default;

private:
    template <typename>
    friend class Ref;
    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }
    std::uint32_t refs_ = 0;
};

template <typename T>
class Ref {
public:
    Ref() noexcept = default;
    Ref(std::nullptr_t) noexcept {}
    // Adopts nothing: every Ref made from a raw pointer adds one reference.
    explicit Ref(T* p) noexcept : p_(p) {
        if (p_) p_->add_ref();
    }
    Ref(const Ref& o) noexcept : Ref(o.p_) {}
    Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    // From a Ref to a class derived from T, as a U* converts to a T*: implicitly, and only
    // where that conversion is allowed (as std::shared_ptr's). Never a downcast, and never
    // to a base the class keeps to itself (a private or protected base).
    template <typename U>
        requires std::is_convertible_v<U*, T*>
    Ref(const Ref<U>& o) noexcept : Ref(o.get()) {}
    template <typename U>
        requires std::is_convertible_v<U*, T*>
    Ref(Ref<U>&& o) noexcept : p_(o.detach()) {}
    Ref& operator=(Ref o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~Ref() {
        if (p_) p_->release();
    }

    T* get() const noexcept { return p_; }
    T* operator->() const noexcept { return p_; }
    T& operator*() const noexcept { return *p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    friend bool operator==(const Ref& a, const Ref& b) noexcept { return a.p_ == b.p_; }
    // Give up ownership without releasing: the caller now holds the reference.
    T* detach() noexcept { return std::exchange(p_, nullptr); }

private:
    T* p_ = nullptr;
};

template <typename T, typename... Args>
Ref<T> make_ref(Args&&... args) {
    return Ref<T>(new T(std::forward<Args>(args)...));
}

}  // namespace aio
