// Stage 4: readiness I/O. SelectSelector, on select(2) (selectors.hpp).
//
// The oldest of the three: the interest set is two bitmaps (fd_set) indexed by fd, which
// select() overwrites with the answer, so every call copies them in and scans them out.
// An fd_set has FD_SETSIZE bits (1024 on Linux): an fd beyond that would write past it,
// so register_fd refuses one.
#include <fcntl.h>
#include <sys/select.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "stage4_sockets/selectors.hpp"

namespace aio {

struct SelectSelector::Sets {
    fd_set read;
    fd_set write;
    int max_fd = -1;          // the highest fd in either set: select() looks at 0..max_fd
    std::vector<int> closed;  // fds found closed, left out of the sets until modified
};

SelectSelector::SelectSelector() : sets_(std::make_unique<Sets>()) {
    FD_ZERO(&sets_->read);
    FD_ZERO(&sets_->write);
}

SelectSelector::~SelectSelector() = default;

const std::vector<SelectorEvent>& SelectSelector::select(std::optional<double> timeout) {
    ready_.clear();
    detail::WaitDeadline deadline(timeout);
    for (;;) {
        fd_set readable = sets_->read, writable = sets_->write;  // select() overwrites them
        timeval tv{}, *limit = nullptr;
        if (!deadline.unlimited()) {
            // Rounded up, as poll's ms; at most 1e9 s (31 years): a timeout beyond that
            // (1e300, infinity) would not convert to a timeval, and nobody can tell the difference.
            double us = std::ceil(std::min(deadline.remaining(), 1e9) * 1e6);
            tv.tv_sec = time_t(us / 1e6);
            tv.tv_usec = suseconds_t(us - double(tv.tv_sec) * 1e6);
            limit = &tv;
        }
        int n = ::select(sets_->max_fd + 1, &readable, &writable, nullptr, limit);
        if (n < 0 && errno == EINTR) continue;  // a signal: wait again, for what is left
        if (n < 0 && errno == EBADF) {
            report_closed_fds();
            return ready_;
        }
        if (n < 0) throw_os_error(errno, "select()");
        if (n == 0) return ready_;
        for (auto& [fd, key] : get_map()) {
            int events = (FD_ISSET(fd, &readable) ? EVENT_READ : 0) | (FD_ISSET(fd, &writable) ? EVENT_WRITE : 0);
            if (events) ready_.push_back(SelectorEvent{&key, events});
        }
        return ready_;
    }
}

// select() said EBADF: some registered fd was closed, but it does not say which. Ask each
// one (fcntl fails with EBADF on a closed fd), report those once, and leave them out.
void SelectSelector::report_closed_fds() {
    for (auto& [fd, key] : get_map()) {
        if (std::find(sets_->closed.begin(), sets_->closed.end(), fd) != sets_->closed.end()) continue;
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        FD_CLR(fd, &sets_->read);
        FD_CLR(fd, &sets_->write);
        sets_->closed.push_back(fd);
        ready_.push_back(SelectorEvent{&key, key.events | EVENT_CLOSED});
    }
    if (ready_.empty()) throw_os_error(EBADF, "select(): a file descriptor it was given is not open");
}

void SelectSelector::add_fd(const SelectorKey& key) {
    if (key.fd >= FD_SETSIZE)
        throw std::invalid_argument("SelectSelector: fd " + std::to_string(key.fd) + " is at or above FD_SETSIZE (" +
                                    std::to_string(FD_SETSIZE) +
                                    "), which select(2) cannot watch; use PollSelector or EpollSelector "
                                    "(AIO_SELECTOR=poll or epoll)");
    if (key.events & EVENT_READ) FD_SET(key.fd, &sets_->read);
    if (key.events & EVENT_WRITE) FD_SET(key.fd, &sets_->write);
    sets_->max_fd = std::max(sets_->max_fd, key.fd);
}

void SelectSelector::modify_fd(const SelectorKey& old_key, const SelectorKey& key) {
    remove_fd(old_key);  // also forgets that it was closed: a modified key is watched again
    add_fd(key);
}

void SelectSelector::remove_fd(const SelectorKey& key) noexcept {
    FD_CLR(key.fd, &sets_->read);
    FD_CLR(key.fd, &sets_->write);
    std::erase(sets_->closed, key.fd);
    while (sets_->max_fd >= 0 && !FD_ISSET(sets_->max_fd, &sets_->read) && !FD_ISSET(sets_->max_fd, &sets_->write))
        --sets_->max_fd;
}

}  // namespace aio
