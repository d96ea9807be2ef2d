// Stage 4: readiness I/O. EpollSelector, on Linux's epoll(7) (selectors.hpp).
//
// The interest list lives in the kernel, behind one fd (epfd_): register_fd, modify and
// unregister change it (epoll_ctl), and a wait (epoll_wait) returns only the fds that are
// ready. What a wait costs no longer grows with the number of fds watched, which is why
// every production loop on Linux (libuv, Tokio, asyncio's DefaultSelector) uses it.
#ifdef __linux__
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "stage4_sockets/selectors.hpp"

namespace aio {

namespace {

std::uint32_t to_epoll(int events) {
    return ((events & EVENT_READ) ? EPOLLIN : 0u) | ((events & EVENT_WRITE) ? EPOLLOUT : 0u);
}

}  // namespace

EpollSelector::EpollSelector() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epfd_ < 0) throw_os_error(errno, "epoll_create1()");
}

EpollSelector::~EpollSelector() { ::close(epfd_); }

// [docs:epoll_selector]
const std::vector<SelectorEvent>& EpollSelector::select(std::optional<double> timeout) {
    ready_.clear();
    // Room for every registered fd to be ready at once, as selectors.py allows.
    events_.resize(std::max<std::size_t>(1, get_map().size()));
    detail::WaitDeadline deadline(timeout);
    int n;
    while ((n = ::epoll_wait(epfd_, events_.data(), int(events_.size()), deadline.remaining_ms())) < 0)
        if (errno != EINTR) throw_os_error(errno, "epoll_wait()");  // EINTR: wait again, for what is left
    for (int i = 0; i < n; ++i) {
        const epoll_event& e = events_[std::size_t(i)];
        auto it = get_map().find(e.data.fd);
        if (it == get_map().end()) continue;  // unregistered since (see selectors.hpp)
        const SelectorKey& key = it->second;
        // EPOLLERR and EPOLLHUP wake both a reader and a writer, as in PollSelector.
        int events = ((e.events & ~EPOLLIN) ? EVENT_WRITE : 0) | ((e.events & ~EPOLLOUT) ? EVENT_READ : 0);
        if (events & key.events) ready_.push_back(SelectorEvent{&key, events & key.events});
    }
    return ready_;
}
// [/docs:epoll_selector]

void EpollSelector::add_fd(const SelectorKey& key) {
    epoll_event ev{};
    ev.events = to_epoll(key.events);
    ev.data.fd = key.fd;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, key.fd, &ev) < 0)
        throw_os_error(errno, "epoll_ctl(ADD) of fd " + std::to_string(key.fd));
}

void EpollSelector::modify_fd(const SelectorKey&, const SelectorKey& key) {
    epoll_event ev{};
    ev.events = to_epoll(key.events);
    ev.data.fd = key.fd;
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, key.fd, &ev) == 0) return;
    // ENOENT: the kernel dropped the fd when it was closed, and the number now names a new
    // file (or none). Watch whatever it names now; if nothing, ADD fails with EBADF.
    if (errno != ENOENT || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, key.fd, &ev) < 0)
        throw_os_error(errno, "epoll_ctl(MOD) of fd " + std::to_string(key.fd));
}

void EpollSelector::remove_fd(const SelectorKey& key) noexcept {
    // EBADF (closed) or ENOENT (closed, the number reused): the kernel already dropped it.
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, key.fd, nullptr);
}

}  // namespace aio
#endif
