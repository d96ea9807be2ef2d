// Stage 2: the event loop. Handles: a callback the loop will run, and a way to cancel it.
//
// Adds:    Handle (what call_soon returns), TimerHandle (what call_later/call_at return:
//          a Handle with a deadline), and Callback<Base, F>, which stores the callable.
// Mirrors: Handle and TimerHandle in Lib/asyncio/events.py.
//
// A Handle is reference counted (Ref<Handle>): the ready queue or the timer heap holds one
// reference and whoever called call_soon may hold another, to cancel it. Cancelling only
// marks it; the loop skips a cancelled handle when it reaches it, as asyncio does. The
// callable is not type-erased into a std::function: Callback<Base, F> stores F itself, so
// scheduling a callback is a single allocation.
#pragma once

#include <cstdint>
#include <string>
#include <typeinfo>
#include <utility>

#include "stage2_custom_loop/ref.hpp"

namespace aio {

class EventLoop;

class Handle : public RefCounted {
public:
    // Cancelling twice, or cancelling a handle that has already run, does nothing. Not
    // virtual, so that this stays true for every kind of handle: a subclass that must do
    // something on cancel (a timer tells its loop) overrides on_cancel(), called once.
    void cancel() {
        if (cancelled_) return;
        cancelled_ = true;
        on_cancel();
    }
    bool cancelled() const noexcept { return cancelled_; }

    // A name for error reports: "Exception in callback <name>: ...".
    virtual std::string name() const = 0;

    // Called by the loop, and only by the loop (EventLoop::run_once).
    virtual void run() = 0;

protected:
    virtual void on_cancel() {}

private:
    bool cancelled_ = false;
};

// A Handle with a deadline, kept in the loop's timer heap until it is due.
class TimerHandle : public Handle {
public:
    explicit TimerHandle(double when) : when_(when) {}
    // In loop.time() seconds.
    double when() const noexcept { return when_; }
private:
    // Tells the loop, which counts cancelled timers to know when to clean its heap.
    void on_cancel() override;

    friend class EventLoop;
    double when_;
    EventLoop* scheduled_in_ = nullptr;  // set while the timer is in a loop's heap
};

std::string demangled_type_name(const char* mangled);

// Base (Handle or TimerHandle) plus the callable to run.
template <typename Base, typename F>
class Callback final : public Base {
public:
    template <typename... BaseArgs>
    Callback(F fn, const char* name, BaseArgs... base_args)
        : Base(base_args...), fn_(std::move(fn)), name_(name) {}

    void run() override { fn_(); }
    // The name given to call_soon, else the callable's type (a lambda's type names the
    // function it was written in, which is usually enough to find it).
    std::string name() const override { return name_ ? name_ : demangled_type_name(typeid(F).name()); }

private:
    F fn_;
    const char* name_;  // a string literal, or null
};

}  // namespace aio
