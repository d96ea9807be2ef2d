// Stage 4: readiness I/O. SelectorEventLoop: the wait, the fds' callbacks, the self-pipe
// and close (selector_events.hpp). Signals are in unix_events.cpp.
#include "stage4_sockets/selector_events.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <string>

namespace aio {

// The self-pipe is a socketpair, as in CPython, and not a Linux eventfd (which would save
// an fd and a syscall's worth of buffer): the bytes it carries say *why* the loop was woken.
// A zero byte is call_soon_threadsafe's "look at the queue"; any other byte is the number of
// a signal that arrived (unix_events.cpp). An eventfd only counts, so it could wake the
// loop but not say which signal. A socketpair also works beyond Linux.
SelectorEventLoop::SelectorEventLoop(std::unique_ptr<BaseSelector> selector)
    : selector_(selector ? std::move(selector) : selector_from_env()) {
    auto [reader, writer] = socketpair();
    self_reader_ = std::move(reader);
    self_writer_ = std::move(writer);
    selector_->register_fd(self_reader_.fileno(), EVENT_READ, nullptr);
}

SelectorEventLoop::~SelectorEventLoop() { close(); }

BaseSelector& SelectorEventLoop::selector() {
    if (!selector_) throw RuntimeError("SelectorEventLoop::selector(): the loop is closed, and its selector with it");
    return *selector_;
}

// [docs:selector_select]
// The seam stage 2 left: wait in the selector instead of on a condition variable, then
// queue the callbacks of the fds it reports.
//
// When callbacks are ready the wait is zero, and CPython still polls the selector on
// every pass, so that a stream of ready callbacks cannot starve I/O. A poll is a system
// call (~0.3 us with epoll, more with poll and select), five times the cost of a whole
// task switch here (~60 ns, bench_switch). So while the ready queue is busy we poll only
// once per kCallbacksPerPoll callbacks run (counting the callbacks, not the passes: a pass
// that runs a thousand callbacks polls at once, as CPython would, and one that runs a
// single task step polls every 64th time). That spreads the system call's cost to a few
// ns per callback, and bounds how long a ready fd waits: at most 64 callbacks.
void SelectorEventLoop::select(std::optional<double> timeout) {
    const std::size_t ready = ready_count();
    if (timeout && *timeout <= 0 && ready > 0) {
        callbacks_since_poll_ += ready;
        if (callbacks_since_poll_ < kCallbacksPerPoll) return;
    }
    callbacks_since_poll_ = 0;
    process_events(selector_->select(timeout));
}

// CPython's _process_events: a ready fd's reader or writer joins the ready queue, and runs
// later in this same pass.
void SelectorEventLoop::process_events(const std::vector<SelectorEvent>& events) {
    for (const SelectorEvent& e : events) {
        if (e.key->fd == self_reader_.fileno()) {
            read_from_self();
            continue;
        }
        auto& callbacks = *static_cast<FdCallbacks*>(e.key->data);
        // Reported by a callback of its own: the handler is user code, which may remove
        // readers, and so change the key table that `events` points into.
        if (e.events & EVENT_CLOSED) call_soon([this, fd = e.key->fd] { report_closed_fd(fd); }, "report closed fd");
        if ((e.events & EVENT_READ) && callbacks.reader && !callbacks.reader->cancelled()) add_callback(callbacks.reader);
        if ((e.events & EVENT_WRITE) && callbacks.writer && !callbacks.writer->cancelled())
            add_callback(callbacks.writer);
    }
}
// [/docs:selector_select]

// An fd was closed while it still had callbacks (selectors.hpp). Its callbacks run once
// more, so that whoever waits on it tries its recv or send and meets EBADF; the selector
// leaves it out of the wait from now on.
void SelectorEventLoop::report_closed_fd(int fd) {
    call_exception_handler(ExceptionContext{
        "fd " + std::to_string(fd) +
            " was closed while the loop still watched it: remove_reader/remove_writer before closing an fd",
        os_error(EBADF, "the selector found fd " + std::to_string(fd) + " closed")});
}

// ------------------------------------------------------------------------ add/remove_reader

Ref<Handle> SelectorEventLoop::add_fd_callback(int fd, int event, Ref<Handle> handle) {
    if (is_closed()) throw RuntimeError("add_reader/add_writer on a closed event loop");
    auto found = fd_callbacks_.find(fd);
    if (found == fd_callbacks_.end()) {
        auto [entry, inserted] = fd_callbacks_.emplace(fd, FdCallbacks{});
        try {
            selector_->register_fd(fd, event, &entry->second);
        } catch (...) {
            fd_callbacks_.erase(entry);
            throw;
        }
        entry->second.slot(event) = handle;
        return handle;
    }
    FdCallbacks& callbacks = found->second;
    selector_->modify(fd, callbacks.events() | event, &callbacks);
    Ref<Handle> previous = std::exchange(callbacks.slot(event), handle);
    if (previous) previous->cancel();  // already queued for this pass? Then it is skipped.
    return handle;
}

bool SelectorEventLoop::remove_fd_callback(int fd, int event) noexcept {
    if (is_closed()) return false;
    auto found = fd_callbacks_.find(fd);
    if (found == fd_callbacks_.end()) return false;
    FdCallbacks& callbacks = found->second;
    Ref<Handle> removed = std::exchange(callbacks.slot(event), nullptr);
    Ref<Handle> other;  // released last: a callable's destructor may call back into us
    if (const int left = callbacks.events()) {
        try {
            selector_->modify(fd, left, &callbacks);
        } catch (...) {
            // Only epoll can fail here: the fd was closed, and its number names nothing now.
            // Nothing can be watched on it any more; forget it altogether.
            other = std::exchange(callbacks.slot(left), nullptr);
            other->cancel();
        }
    }
    if (!callbacks.events()) {
        selector_->unregister(fd);
        fd_callbacks_.erase(found);
    }
    if (!removed) return false;
    removed->cancel();  // queued for this pass already? Then it is skipped.
    return true;
}

bool SelectorEventLoop::live_callback(int fd, int event) const noexcept {
    auto found = fd_callbacks_.find(fd);
    if (found == fd_callbacks_.end()) return false;
    const Ref<Handle>& h = event == EVENT_READ ? found->second.reader : found->second.writer;
    return h && !h->cancelled();
}

// ------------------------------------------------------------------------------ self-pipe

// [docs:write_to_self]
// Any thread (call_soon_threadsafe, under the loop's mutex) may call this. Never blocking,
// and one zero in the pipe is enough: a second would wake nobody, and thousands (threads
// posting while a long callback runs) would fill the pipe, losing the byte of a signal that
// arrives then. So a zero that EINTR kept out is sent again: no other would follow it.
void SelectorEventLoop::write_to_self() {
    if (wakeup_pending_.exchange(true)) return;  // a zero is in the pipe already
    const char zero = 0;
    ssize_t n;
    do {
        n = ::send(self_writer_.fileno(), &zero, 1, MSG_DONTWAIT | kSendNoSigpipe);
    } while (n < 0 && errno == EINTR);
}

// Drain the pipe: zeros were only wake-ups; other bytes are signals that arrived.
void SelectorEventLoop::read_from_self() {
    unsigned char buf[256];
    for (;;) {
        ssize_t n = ::recv(self_reader_.fileno(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EAGAIN: drained
        for (ssize_t i = 0; i < n; ++i)
            if (buf[i] != 0) handle_signal(buf[i]);
    }
    // Only now may posting threads write a new zero. Cleared before the drain, the flag let
    // a thread write its zero into the pipe we were draining: we read it, the flag stayed
    // set, and no thread wrote again: the loop slept through every later post (a test with
    // four posting threads stalled one run in five). A thread that finds the flag still set
    // queued its callback first, under the mutex; the exchange (not a plain store) makes
    // that queueing visible to take_threadsafe_ready, which runs after us.
    wakeup_pending_.exchange(false);
}
// [/docs:write_to_self]

// ---------------------------------------------------------------------------------- close

void SelectorEventLoop::close() {
    if (is_running()) throw RuntimeError("Cannot close a running event loop: call stop() and let run_forever return first");
    if (is_closed()) return;
    // First stage 2's close: its close callbacks free the tasks, whose clean-up may still
    // remove readers and writers; and from then on no thread writes to the self-pipe.
    EventLoop::close();
    close_signal_handlers();
    auto left = std::move(fd_callbacks_);  // released after the selector is gone
    fd_callbacks_.clear();
    selector_.reset();  // closes the epoll fd; the fds themselves are not ours
    self_reader_.close();
    self_writer_.close();
}

std::unique_ptr<EventLoop> new_selector_event_loop() { return std::make_unique<SelectorEventLoop>(); }

}  // namespace aio
