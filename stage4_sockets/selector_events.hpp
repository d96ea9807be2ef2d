// Stage 4: readiness I/O. The event loop whose wait is a selector.
//
// Adds:    SelectorEventLoop: stage 2's EventLoop with select(timeout) replaced by the
//          selector's; add_reader/remove_reader, add_writer/remove_writer (call back when an
//          fd is ready); a self-pipe that wakes the wait for call_soon_threadsafe and for
//          signals; add_signal_handler/remove_signal_handler; a close() that frees what the
//          loop owns; and new_selector_event_loop(), the factory run() takes.
// Mirrors: BaseSelectorEventLoop in Lib/asyncio/selector_events.py, and the signal half of
//          _UnixSelectorEventLoop in Lib/asyncio/unix_events.py.
//
// Stage 2's invariants hold, and:
//  1. An fd has at most one reader and one writer callback. Adding one replaces (cancels)
//     the previous; the fd is registered with the selector exactly while it has either.
//  2. A ready fd's callback is queued (not run) when the selector reports it, and runs in
//     the same pass, after the callbacks that were already ready: I/O is just more
//     callbacks. The selector is level-triggered, so a callback that does not drain its fd
//     is called again on the next poll.
//  3. The selector is polled whenever the loop would otherwise block, and while callbacks
//     keep the ready queue busy, at least once every kCallbacksPerPoll callbacks (see
//     select() in selector_events.cpp): I/O waits a bounded number of callbacks.
//  4. The only thing done from a C signal handler is writing the signal's number to the
//     self-pipe; the Python-style handler runs later, on the loop, as a callback.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stage2_custom_loop/event_loop.hpp"
#include "stage4_sockets/selectors.hpp"
#include "stage4_sockets/socket.hpp"

namespace aio {

class SelectorEventLoop : public EventLoop {
public:
    // A loop on `selector`; without one, on selector_from_env() (AIO_SELECTOR, else
    // DefaultSelector). Throws OSError if the self-pipe cannot be made (out of fds).
    explicit SelectorEventLoop(std::unique_ptr<BaseSelector> selector = nullptr);
    ~SelectorEventLoop() override;

    // [docs:add_reader]
    // Call fn on the loop whenever `fd` is readable, until remove_reader(fd); replaces (and
    // cancels) the fd's previous reader. Returns fn's handle. Throws RuntimeError if the
    // loop is closed, and what the selector throws for an fd it cannot watch (OSError,
    // std::invalid_argument).
    template <typename F>
    Ref<Handle> add_reader(int fd, F fn, const char* name = nullptr) {
        return add_fd_callback(fd, EVENT_READ, Ref<Handle>(new Callback<Handle, F>(std::move(fn), name)));
    }
    // Stop calling the reader of `fd`: returns whether it had one (false on a closed loop).
    bool remove_reader(int fd) { return remove_fd_callback(fd, EVENT_READ); }
    // [/docs:add_reader]

    // The same for "fd is writable".
    template <typename F>
    Ref<Handle> add_writer(int fd, F fn, const char* name = nullptr) {
        return add_fd_callback(fd, EVENT_WRITE, Ref<Handle>(new Callback<Handle, F>(std::move(fn), name)));
    }
    bool remove_writer(int fd) { return remove_fd_callback(fd, EVENT_WRITE); }

    // Whether `fd` has a reader (a writer) now: for tests, and for sock_* to refuse a
    // second waiter on one socket.
    bool has_reader(int fd) const noexcept { return live_callback(fd, EVENT_READ); }
    bool has_writer(int fd) const noexcept { return live_callback(fd, EVENT_WRITE); }

    // unix_events.py's add_signal_handler: whenever signal `sig` arrives, `callback` runs on
    // the loop, as an ordinary callback (so it may do anything a callback may). Replaces an
    // earlier callback for sig. One loop at a time may watch signals: RuntimeError if
    // another does, or if sig cannot be caught (SIGKILL, SIGSTOP); std::invalid_argument if
    // sig is not a signal number.
    void add_signal_handler(int sig, std::function<void()> callback) override;
    // Restore what sig did before add_signal_handler; returns whether it was watched.
    bool remove_signal_handler(int sig) override;

    // Stage 2's close(), then unregister and close what the loop owns: the fds' callbacks,
    // the signal handlers, the self-pipe and the selector. The fds themselves belong to
    // whoever added them. RuntimeError while the loop runs.
    void close() override;

    // The selector (for tests and curious readers). RuntimeError once the loop is closed.
    BaseSelector& selector();

    // See invariant 3.
    static constexpr std::size_t kCallbacksPerPoll = 64;

protected:
    void select(std::optional<double> timeout) override;
    void write_to_self() override;

private:
    // A key's data: the fd's callbacks (asyncio keeps the same (reader, writer) pair).
    struct FdCallbacks {
        Ref<Handle> reader;
        Ref<Handle> writer;
        Ref<Handle>& slot(int event) { return event == EVENT_READ ? reader : writer; }
        int events() const { return (reader ? EVENT_READ : 0) | (writer ? EVENT_WRITE : 0); }
    };
    struct SignalHandler {
        Ref<Handle> handle;
        struct sigaction previous;  // restored by remove_signal_handler
    };

    Ref<Handle> add_fd_callback(int fd, int event, Ref<Handle> handle);
    bool remove_fd_callback(int fd, int event) noexcept;
    bool live_callback(int fd, int event) const noexcept;
    void process_events(const std::vector<SelectorEvent>& events);
    void report_closed_fd(int fd);
    void read_from_self();
    void handle_signal(int sig);
    void close_signal_handlers() noexcept;
    void release_signal_wakeup() noexcept;

    std::unique_ptr<BaseSelector> selector_;
    // fd -> its callbacks. Node-based, so each key's data (a pointer to its entry) stays
    // valid while other fds come and go.
    std::unordered_map<int, FdCallbacks> fd_callbacks_;
    // The self-pipe (see write_to_self in selector_events.cpp): the loop reads one end, any
    // thread and any signal handler may write to the other.
    Socket self_reader_;
    Socket self_writer_;
    std::atomic<bool> wakeup_pending_{false};  // write_to_self's zero is in the pipe, not read yet
    std::map<int, SignalHandler> signal_handlers_;
    std::size_t callbacks_since_poll_ = 0;
};

// A loop factory for run(): `aio::run(main(), aio::new_selector_event_loop)` runs main on
// a SelectorEventLoop over selector_from_env() (AIO_SELECTOR=select|poll|epoll).
std::unique_ptr<EventLoop> new_selector_event_loop();

}  // namespace aio
