// Stage 4: readiness I/O. A selector: "tell me which of these fds are ready".
//
// Adds:    SelectorKey (fd, events, data), BaseSelector (register_fd, modify, unregister,
//          get_key, get_map, select), and three implementations: SelectSelector (select(2)),
//          PollSelector (poll(2)) and EpollSelector (epoll(7), Linux); DefaultSelector, the
//          best one available; make_selector(name) and selector_from_env() (AIO_SELECTOR).
// Mirrors: Lib/selectors.py (SelectorKey, BaseSelector, _BaseSelectorImpl, SelectSelector,
//          PollSelector, EpollSelector, DefaultSelector).
//
// A selector holds a table fd -> key and asks the kernel to wait until some of those fds
// are ready for what their key asks (EVENT_READ: recv would not block; EVENT_WRITE: send
// would not block). The three system calls answer the same question at different costs:
//   select(2)  copies its bitmaps in and out on every call, and cannot watch an fd at or above
//              FD_SETSIZE (1024): O(highest fd) per call.
//   poll(2)    an array of (fd, events): no fd limit, still O(registered fds) per call.
//   epoll(7)   the kernel keeps the interest list between calls; a wait costs O(ready fds).
// All three are level-triggered here, as in Python: an fd stays ready until it is drained.
//
// An fd closed while registered (ours; selectors.py leaves it to the system call):
//   select  fails the whole call with EBADF; the selector finds the closed fds (fcntl) and
//   poll    flags the entry POLLNVAL;        reports each once, as ready for the events it
//                                            was registered for, plus EVENT_CLOSED, then
//                                            leaves it out of the wait until it is modified
//                                            or unregistered: reported once, never spun on.
//   epoll   drops it silently (the kernel removes a file from every interest list when
//           its last fd is closed): nothing is reported, and a waiter on it waits until it
//           is cancelled. unregister still works (the kernel's EBADF/ENOENT is expected
//           there), and modify() of a key whose fd number now names a new file re-adds it.
//           (If the file lives on in a dup() of the fd, epoll keeps reporting the old
//           number, which nobody can unregister any more: epoll(7), "Questions and answers".)
// So close an fd only after unregistering it; the loop's sock_* functions do.
#pragma once

#include <poll.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include <climits>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "stage4_sockets/exceptions.hpp"

namespace aio {

// What a key waits for, as bits (selectors.EVENT_READ and EVENT_WRITE).
inline constexpr int EVENT_READ = 1 << 0;
inline constexpr int EVENT_WRITE = 1 << 1;
// Ours, only in select()'s answers: the fd was found closed while registered (see above).
inline constexpr int EVENT_CLOSED = 1 << 2;

// selectors.SelectorKey: the fd, the events it waits for, and the caller's data (opaque to
// the selector: the loop keeps its reader and writer callbacks there). Python's key also
// has the file object; ours has only the fd.
struct SelectorKey {
    int fd;
    int events;
    void* data;
};

// One answer of select(): this key is ready for `events` (a subset of key->events, plus
// EVENT_CLOSED for a closed fd).
struct SelectorEvent {
    const SelectorKey* key;
    int events;
};

class BaseSelector {
public:
    BaseSelector() = default;
    virtual ~BaseSelector() = default;
    BaseSelector(const BaseSelector&) = delete;
    BaseSelector& operator=(const BaseSelector&) = delete;

    // [docs:selector_interface]
    // Watch `fd` for `events` (EVENT_READ | EVENT_WRITE). (Python's register(): `register`
    // is a keyword in C++.) Throws KeyError if fd is already registered,
    // std::invalid_argument for a negative fd or events outside READ|WRITE, OSError if the
    // kernel refuses it (EBADF for a closed fd; epoll: EPERM for a regular file).
    const SelectorKey& register_fd(int fd, int events, void* data = nullptr);
    // Stop watching `fd`; returns its last key. Throws KeyError if it is not registered.
    SelectorKey unregister(int fd);
    // Change what `fd` waits for, and its data. KeyError if it is not registered.
    const SelectorKey& modify(int fd, int events, void* data);
    // Wait until some registered fd is ready, or `timeout` seconds pass (nullopt: no limit;
    // zero or less: just look). Returns the ready keys; the vector is the selector's own
    // and valid until the next call of any method. A signal that interrupts the wait
    // (EINTR) does not end it early: it resumes with what is left of the timeout.
    virtual const std::vector<SelectorEvent>& select(std::optional<double> timeout) = 0;
    // [/docs:selector_interface]

    // The key of `fd`; KeyError if it is not registered.
    const SelectorKey& get_key(int fd) const;
    // Every key, by fd (Python's get_map(); `get_map().find(fd)` for "is it registered?").
    const std::unordered_map<int, SelectorKey>& get_map() const noexcept { return keys_; }

    // "SelectSelector", "PollSelector" or "EpollSelector", for messages.
    virtual const char* name() const noexcept = 0;

protected:
    // What each implementation tells its system call. add_fd and modify_fd may throw (the
    // kernel refused); then the table is left as it was. remove_fd must not throw.
    virtual void add_fd(const SelectorKey& key) = 0;
    virtual void modify_fd(const SelectorKey& old_key, const SelectorKey& key) = 0;
    virtual void remove_fd(const SelectorKey& key) noexcept = 0;

    SelectorKey* find(int fd) noexcept;
    // The answer vector, reused across calls (select() runs on every idle pass of the loop).
    std::vector<SelectorEvent> ready_;

private:
    std::unordered_map<int, SelectorKey> keys_;
};

// select(2). Refuses (std::invalid_argument) an fd at or above FD_SETSIZE.
class SelectSelector final : public BaseSelector {
public:
    SelectSelector();
    ~SelectSelector() override;
    const std::vector<SelectorEvent>& select(std::optional<double> timeout) override;
    const char* name() const noexcept override { return "SelectSelector"; }

private:
    void add_fd(const SelectorKey& key) override;
    void modify_fd(const SelectorKey& old_key, const SelectorKey& key) override;
    void remove_fd(const SelectorKey& key) noexcept override;
    void report_closed_fds();
    struct Sets;
    std::unique_ptr<Sets> sets_;  // the fd_sets (fd_set is large: kept off the header)
};

// poll(2).
class PollSelector final : public BaseSelector {
public:
    const std::vector<SelectorEvent>& select(std::optional<double> timeout) override;
    const char* name() const noexcept override { return "PollSelector"; }

private:
    void add_fd(const SelectorKey& key) override;
    void modify_fd(const SelectorKey& old_key, const SelectorKey& key) override;
    void remove_fd(const SelectorKey& key) noexcept override;
    // What poll() is asked, one entry per key. A closed fd's entry gets fd = -1, which
    // poll() skips, until modify() or unregister().
    std::vector<pollfd> fds_;
    std::vector<int> owners_;                     // the fd of each entry's key, even at -1
    std::unordered_map<int, std::size_t> index_;  // fd -> its entry in fds_
};

#ifdef __linux__
// epoll(7): the kernel keeps the interest list.
class EpollSelector final : public BaseSelector {
public:
    EpollSelector();  // throws OSError if epoll_create1 fails (out of fds)
    ~EpollSelector() override;
    const std::vector<SelectorEvent>& select(std::optional<double> timeout) override;
    const char* name() const noexcept override { return "EpollSelector"; }
    int fileno() const noexcept { return epfd_; }

private:
    void add_fd(const SelectorKey& key) override;
    void modify_fd(const SelectorKey& old_key, const SelectorKey& key) override;
    void remove_fd(const SelectorKey& key) noexcept override;
    int epfd_;
    std::vector<epoll_event> events_;  // epoll_wait's answer, reused
};
// selectors.DefaultSelector: the most efficient one this system has.
using DefaultSelector = EpollSelector;
#else
using DefaultSelector = PollSelector;
#endif

namespace detail {
// A wait's time limit, kept as a deadline: a wait that a signal interrupts (EINTR) resumes
// with what is left of it, as Python does since PEP 475.
class WaitDeadline {
public:
    explicit WaitDeadline(std::optional<double> timeout);
    bool unlimited() const noexcept { return !deadline_; }
    // Seconds left, at least 0 (meaningless when unlimited()).
    double remaining() const;
    // The same in whole milliseconds for poll/epoll, rounded up (rounding down would wake
    // the loop just before its timer is due, for a pass that does nothing); -1 if unlimited.
    int remaining_ms() const;

private:
    std::optional<double> deadline_;  // on steady_clock, in seconds
};
}  // namespace detail

// "select", "poll" or "epoll" (where it exists) -> a new selector of that kind; "" or
// "default" -> DefaultSelector. Anything else throws std::invalid_argument, naming the choices.
std::unique_ptr<BaseSelector> make_selector(std::string_view name);
// make_selector($AIO_SELECTOR): how the tests and the demo's --selector choose one.
std::unique_ptr<BaseSelector> selector_from_env();
// The names make_selector accepts on this system, best last: {"select", "poll", "epoll"}.
std::vector<std::string> selector_names();

}  // namespace aio
