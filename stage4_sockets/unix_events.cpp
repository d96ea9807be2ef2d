// Stage 4: readiness I/O. SelectorEventLoop's signal handlers (selector_events.hpp).
//
// Mirrors: add_signal_handler, remove_signal_handler and _handle_signal in
//          Lib/asyncio/unix_events.py, with signal.set_wakeup_fd's C handler.
//
// A C signal handler interrupts the program anywhere, even inside malloc or inside the loop
// holding its own lock, so it may only call async-signal-safe functions (signal-safety(7)):
// no allocation, no lock, nothing of the loop's. What it may do is write(2) to a file
// descriptor. So the handler writes the signal's number, one byte, to the loop's self-pipe;
// the write wakes a select() in progress; the loop reads the byte (read_from_self) and
// queues the callback registered for that signal, which then runs like any other, on the
// loop's thread. CPython does the same with signal.set_wakeup_fd().
//
//   SIGINT ──► write_signal_number() ──► self-pipe ──► selector wakes ──► read_from_self()
//              (C handler, any thread)                                     │
//                                                     handle_signal(2) ◄───┘
//                                                     add_callback(handler): runs next
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <mutex>
#include <string>

#include "stage4_sockets/selector_events.hpp"

namespace aio {

namespace {

// Where the C handler writes: the self-pipe of the one loop that watches signals, or -1.
// A lock-free atomic, because the handler may read it on any thread at any moment.
std::atomic<int> g_wakeup_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");
// Which loop that is (only loops touch this, never the handler).
std::mutex g_owner_mutex;
const void* g_owner = nullptr;

// [docs:signal_handler]
void write_signal_number(int sig) {
    const int saved_errno = errno;  // the interrupted code may be about to read errno
    const int fd = g_wakeup_fd.load(std::memory_order_relaxed);
    if (fd >= 0) {
        const unsigned char byte = static_cast<unsigned char>(sig);
        (void)::send(fd, &byte, 1, MSG_DONTWAIT);  // full pipe: the loop has enough to read
    }
    errno = saved_errno;
}
// [/docs:signal_handler]

}  // namespace

void SelectorEventLoop::add_signal_handler(int sig, std::function<void()> callback) {
    if (is_closed()) throw RuntimeError("add_signal_handler on a closed event loop");
    if (sig <= 0 || sig >= NSIG || sig > 255)
        throw std::invalid_argument("add_signal_handler: " + std::to_string(sig) + " is not a signal number");
    if (sig == SIGKILL || sig == SIGSTOP)
        throw RuntimeError("add_signal_handler: signal " + std::to_string(sig) + " cannot be caught");
    {
        std::lock_guard<std::mutex> lock(g_owner_mutex);
        if (g_owner && g_owner != this)
            throw RuntimeError("add_signal_handler: another event loop already watches signals; one loop at a time "
                               "may (remove its handlers or close it first)");
        g_owner = this;
        g_wakeup_fd.store(self_writer_.fileno(), std::memory_order_relaxed);
    }
    Ref<Handle> handle(new Callback<Handle, std::function<void()>>(std::move(callback), "signal handler"));
    if (auto it = signal_handlers_.find(sig); it != signal_handlers_.end()) {
        std::exchange(it->second.handle, handle)->cancel();  // our C handler is already there
        return;
    }
    struct sigaction action {};
    action.sa_handler = write_signal_number;
    sigemptyset(&action.sa_mask);
    // SA_RESTART: a blocking call elsewhere (a worker thread's read, say) that the signal
    // interrupts is resumed instead of failing with EINTR. (select, poll and epoll_wait are
    // never resumed; the selectors retry them.)
    action.sa_flags = SA_RESTART;
    struct sigaction previous {};
    if (::sigaction(sig, &action, &previous) < 0) {
        const int err = errno;
        if (signal_handlers_.empty()) release_signal_wakeup();
        throw_os_error(err, "sigaction(" + std::to_string(sig) + ")");
    }
    signal_handlers_.emplace(sig, SignalHandler{std::move(handle), previous});
}

bool SelectorEventLoop::remove_signal_handler(int sig) {
    auto it = signal_handlers_.find(sig);
    if (it == signal_handlers_.end()) return false;
    ::sigaction(sig, &it->second.previous, nullptr);
    Ref<Handle> handle = std::move(it->second.handle);
    signal_handlers_.erase(it);
    handle->cancel();  // queued already? Then it is skipped.
    if (signal_handlers_.empty()) release_signal_wakeup();
    return true;
}

// A signal's byte came through the self-pipe: queue its callback (unix_events.py's
// _handle_signal). A signal with no callback (removed since it was sent) is dropped.
void SelectorEventLoop::handle_signal(int sig) {
    auto it = signal_handlers_.find(sig);
    if (it != signal_handlers_.end() && !it->second.handle->cancelled()) add_callback(it->second.handle);
}

// close(): remove every handler.
void SelectorEventLoop::close_signal_handlers() noexcept {
    while (!signal_handlers_.empty()) remove_signal_handler(signal_handlers_.begin()->first);
}

// No handler left: stop being the loop the C handler writes to.
void SelectorEventLoop::release_signal_wakeup() noexcept {
    std::lock_guard<std::mutex> lock(g_owner_mutex);
    if (g_owner != this) return;
    g_owner = nullptr;
    // A handler running on another thread this instant may have read the fd already; the
    // self-pipe stays open until close(), so its byte lands in a pipe nobody reads.
    g_wakeup_fd.store(-1, std::memory_order_relaxed);
}

}  // namespace aio
