// Stage 1: generators. A coroutine is a function that can stop and later be resumed.
//
// Adds:    Generator<Yield, Send, Return>, a C++20 coroutine type with Python's generator
//          protocol (next, send, a return value, exceptions), and `co_await sub` as
//          PEP 380's `yield from`: delegation to a sub-generator, nested to any depth.
// Mirrors: CPython's generator objects (Objects/genobject.c, gen_send_ex) and PEP 380.
//          The parameters come in typing.Generator's order: [YieldType, SendType, ReturnType].
//
// How delegation works here. Python keeps a delegating generator "inside" its `yield from`
// and forwards every next()/send() down the chain, one C call per level. We do the same
// thing without the recursion: the outermost (root) generator remembers the innermost one
// (the leaf), every next()/send() resumes the leaf directly, and a small loop, the
// trampoline in Generator::advance(), hands control back up the chain when a leaf returns.
// Nothing ever resumes a coroutine from inside another coroutine, so the C++ stack stays
// flat however deep or long the delegation is (hazard 7 of stage1_generators/README.md's appendix).
#pragma once

#include <coroutine>
#include <exception>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace aio {

// Python's None: what a bare `yield` produces. `co_yield none;` hands control back and says
// nothing, which is all a coroutine on a polling loop needs to say.
struct None {
    friend bool operator==(None, None) { return true; }
};
inline constexpr None none{};

// Raised when a finished (or moved-from) generator is resumed. Python raises StopIteration
// for every next() on an exhausted generator; here it is an error, because in C++ resuming a
// finished coroutine would be undefined behaviour.
class StopIteration : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

template <typename Yield, typename Send = void, typename Return = void>
class Generator;

namespace detail {

// Where a send() waits for the paused co_yield to pick it up. Send = void means the
// generator takes no sends: `co_yield x` is then an expression of type void.
template <typename Send>
struct SendSlot {
    std::optional<Send> value;
    Send take() {
        Send v = std::move(*value);
        value.reset();
        return v;
    }
};
template <>
struct SendSlot<void> {
    void take() {}
};

// The part of a promise that the whole delegation chain shares. Only the root's `leaf`,
// `value` and `sent` are used: a sub-generator writes its yields straight into the root,
// so they reach the outermost consumer without passing through the generators between.
template <typename Yield, typename Send>
struct GeneratorPromiseBase {
    std::coroutine_handle<> self;           // this generator's own frame
    GeneratorPromiseBase* root = this;      // the generator the consumer holds
    GeneratorPromiseBase* parent = nullptr; // the generator delegating to us, if any
    GeneratorPromiseBase* leaf = this;      // root only: the innermost generator, resumed next
    std::optional<Yield> value;             // root only: the last value yielded
    SendSlot<Send> sent;                    // root only: the value the next resume delivers
    std::exception_ptr exception;           // what escaped this generator's body

    // `co_yield v` stores v in the root, where the consumer reads it, and pauses. When the
    // consumer resumes us, the co_yield expression evaluates to the value it sent.
    struct YieldAwaiter {
        GeneratorPromiseBase* root;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<>) const noexcept {}
        decltype(auto) await_resume() const { return root->sent.take(); }
    };
    YieldAwaiter yield_value(Yield v) {
        root->value = std::move(v);
        return YieldAwaiter{root};
    }

    // Lazy start, as in Python: calling a generator function runs none of its body.
    std::suspend_always initial_suspend() const noexcept { return {}; }
    // Stay suspended at the end so the consumer (or the delegating generator) can read the
    // result before the frame goes away; the owning Generator object destroys it.
    std::suspend_always final_suspend() const noexcept { return {}; }
    void unhandled_exception() { exception = std::current_exception(); }
};

// The return value, or nothing for Return = void. A promise may declare return_value or
// return_void but not both, so each lives in its own base.
template <typename Return>
struct ReturnSlot {
    std::optional<Return> result;
    void return_value(Return v) { result = std::move(v); }
    Return take_result() { return std::move(*result); }
    // result() may be asked more than once, so it copies when it can.
    Return copy_result() {
        if constexpr (std::is_copy_constructible_v<Return>)
            return *result;
        else
            return take_result();
    }
};
template <>
struct ReturnSlot<void> {
    void return_void() const noexcept {}
    void take_result() const noexcept {}
    void copy_result() const noexcept {}
};

}  // namespace detail

template <typename Yield, typename Send, typename Return>
class [[nodiscard]] Generator {
    using Base = detail::GeneratorPromiseBase<Yield, Send>;

public:
    using yield_type = Yield;
    using send_type = Send;
    using return_type = Return;

    struct promise_type : Base, detail::ReturnSlot<Return> {
        Generator get_return_object() {
            auto h = std::coroutine_handle<promise_type>::from_promise(*this);
            this->self = h;
            return Generator{h};
        }

        // `co_await sub` inside a generator is `yield from sub`. Only generators with the
        // same Yield and Send can be delegated to, because the sub-generator's yields go to
        // our consumer and our consumer's sends go to it. Anything else is a compile error.
        // A named sub-generator keeps its return value (result() may still be asked); a
        // temporary hands it over by move.
        template <typename SubReturn>
        auto await_transform(Generator<Yield, Send, SubReturn>& sub) {
            return DelegateAwaiter<SubReturn>{sub.fresh_promise(), this->root, false};
        }
        template <typename SubReturn>
        auto await_transform(Generator<Yield, Send, SubReturn>&& sub) {
            return DelegateAwaiter<SubReturn>{sub.fresh_promise(), this->root, true};
        }
    };

    Generator() = default;
    Generator(Generator&& other) noexcept : handle_(std::exchange(other.handle_, {})), started_(other.started_) {}
    Generator& operator=(Generator&& other) noexcept {
        if (this != &other) {
            destroy();
            handle_ = std::exchange(other.handle_, {});
            started_ = other.started_;
        }
        return *this;
    }
    Generator(const Generator&) = delete;
    Generator& operator=(const Generator&) = delete;
    // Destroying an unfinished generator destroys its frame: its locals' destructors run, and
    // so do those of any sub-generator it is delegating to (the sub-generator is a temporary
    // in our frame). Python does the same by throwing GeneratorExit into it on close().
    ~Generator() { destroy(); }

    // Run to the next co_yield and return its value, or nullopt when the generator returned
    // (read what it returned with result()). An exception from the generator, or from any
    // generator it delegates to, propagates out of here. For a generator that takes sends,
    // next() is send(Send{}), as Python's next(gen) is gen.send(None).
    std::optional<Yield> next() {
        if constexpr (!std::is_void_v<Send>) {
            auto& root = checked_promise("next()");
            if (started_) root.sent.value = Send{};
        }
        return resume("next()");
    }

    // Resume with a value: the paused `co_yield` expression evaluates to v.
    // (A template only so that Generator<Y, void, R> can exist: a parameter can't be void.)
    template <typename S = Send>
        requires(!std::is_void_v<S>)
    std::optional<Yield> send(std::type_identity_t<S> v) {
        auto& root = checked_promise("send()");
        if (!started_)
            throw std::logic_error(
                "can't send a value to a just-started generator: call next() first to run it to its first co_yield");
        root.sent.value = std::move(v);
        return resume("send()");
    }

    // True once the generator has returned or thrown (and for an empty, moved-from one).
    bool done() const noexcept { return !handle_ || handle_.done(); }

    // What the generator returned. Rethrows its exception if it ended with one.
    Return result() {
        if (!handle_) throw StopIteration("result() of an empty (moved-from) generator");
        if (!handle_.done())
            throw std::logic_error("result() of a generator that has not returned yet: call next() until it returns nullopt");
        auto& p = handle_.promise();
        if (p.exception) std::rethrow_exception(p.exception);
        return p.copy_result();
    }

    // Range-for over the yielded values: for (auto v : gen) ...
    class iterator {
    public:
        using value_type = Yield;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(Generator* g) : gen_(g) {}
        Yield& operator*() const { return *current_; }
        iterator& operator++() {
            current_ = gen_->next();  // the iterator keeps the value next() hands over
            if (!current_) gen_ = nullptr;
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.gen_ == nullptr; }

    private:
        Generator* gen_ = nullptr;
        mutable std::optional<Yield> current_;
    };
    iterator begin() {
        if (handle_ && handle_.done()) return iterator(nullptr);  // exhausted: Python's for just ends
        iterator it(this);
        return ++it;
    }
    std::default_sentinel_t end() const noexcept { return {}; }

private:
    template <typename, typename, typename>
    friend class Generator;

    explicit Generator(std::coroutine_handle<promise_type> h) : handle_(h) {}

    void destroy() noexcept {
        if (handle_) std::exchange(handle_, {}).destroy();
    }

    // Delegation takes a generator that has not started: one paused at a co_yield would
    // resume into a send slot and a chain that belong to its old consumer.
    promise_type& fresh_promise() {
        auto& p = checked_promise("yield from");
        if (started_)
            throw std::logic_error("yield from (co_await) a generator that has already started: delegate to a fresh one");
        started_ = true;
        return p;
    }

    promise_type& checked_promise(const char* what) {
        if (!handle_) throw StopIteration(std::string(what) + " on an empty (moved-from) generator");
        if (handle_.done())
            throw StopIteration(std::string(what) + " on a generator that has already finished; check done() first");
        return handle_.promise();
    }

    std::optional<Yield> resume(const char* what) {
        auto& root = checked_promise(what);
        started_ = true;
        advance(root);
        if (handle_.done()) {
            if (root.exception) std::rethrow_exception(root.exception);
            return std::nullopt;
        }
        return std::exchange(root.value, std::nullopt);
    }

    // [docs:trampoline]
    // Resume the innermost generator until some generator yields or the root returns.
    // When a sub-generator returns, we (not the sub-generator) resume the one that was
    // delegating to it; when a generator starts delegating, we start the new sub-generator.
    // Each resume returns here first, so the stack never grows with the chain.
    static void advance(Base& root) {
        for (;;) {
            Base* leaf = root.leaf;
            leaf->self.resume();
            if (root.leaf != leaf) continue;         // it began a `yield from`: run the sub-generator
            if (!leaf->self.done()) return;          // it yielded: the value is in root.value
            if (leaf == &root) return;               // the whole generator has returned
            root.leaf = leaf->parent;                // a sub-generator returned: back to its delegator
        }
    }
    // [/docs:trampoline]

    // [docs:yield_from]
    // `co_await sub`: make `sub` the innermost generator of our chain and pause. The
    // trampoline then runs `sub`; when `sub` returns, it resumes us, and await_resume hands
    // over sub's return value or rethrows its exception, just as `yield from` evaluates to
    // the sub-generator's return value.
    template <typename SubReturn>
    struct DelegateAwaiter {
        typename Generator<Yield, Send, SubReturn>::promise_type& sub;
        Base* root;
        bool move_result;
        mutable bool suspended = false;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<>) const noexcept {
            sub.root = root;
            sub.parent = root->leaf;  // the generator running this co_await
            root->leaf = &sub;
            suspended = true;
        }
        SubReturn await_resume() const {
            if (sub.exception) std::rethrow_exception(sub.exception);
            if (move_result) return sub.take_result();
            return sub.copy_result();
        }
        // The delegating frame is destroyed while it waits here (its owner dropped it), but a
        // named `sub` may live on and be used on its own: it becomes the root of what is left
        // of the chain below it, instead of pointing into frames that are gone. (sub.root,
        // not `root`: an outer fix-up like this one may already have moved the chain's root.)
        ~DelegateAwaiter() {
            if (!suspended || sub.self.done()) return;
            Base* innermost = sub.root->leaf;
            for (Base* g = innermost;; g = g->parent) {
                g->root = &sub;
                if (g == &sub) break;
            }
            sub.parent = nullptr;
            sub.leaf = innermost;
        }
    };
    // [/docs:yield_from]

    std::coroutine_handle<promise_type> handle_;
    bool started_ = false;
};

}  // namespace aio
