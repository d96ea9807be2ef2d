// Stage 4: readiness I/O. PollSelector, on poll(2) (selectors.hpp).
//
// An array of (fd, events) entries that poll() answers in place (revents): no limit on fd
// numbers, but the whole array still crosses into the kernel on every call.
#include <poll.h>

#include <cerrno>

#include "stage4_sockets/selectors.hpp"

namespace aio {

namespace {

short to_poll(int events) { return short(((events & EVENT_READ) ? POLLIN : 0) | ((events & EVENT_WRITE) ? POLLOUT : 0)); }

}  // namespace

const std::vector<SelectorEvent>& PollSelector::select(std::optional<double> timeout) {
    ready_.clear();
    detail::WaitDeadline deadline(timeout);
    int n;
    while ((n = ::poll(fds_.data(), nfds_t(fds_.size()), deadline.remaining_ms())) < 0)
        if (errno != EINTR) throw_os_error(errno, "poll()");  // EINTR: wait again, for what is left
    for (std::size_t i = 0; n > 0 && i < fds_.size(); ++i) {
        pollfd& p = fds_[i];
        if (!p.revents) continue;
        --n;
        const SelectorKey& key = get_key(p.fd);
        if (p.revents & POLLNVAL) {  // closed while registered: report it once, then skip it
            ready_.push_back(SelectorEvent{&key, key.events | EVENT_CLOSED});
            p.fd = -1;
            continue;
        }
        // As selectors.py does: an error or hang-up (POLLERR, POLLHUP) wakes both a reader
        // and a writer, whose next recv or send then meets the error.
        int events = ((p.revents & ~POLLIN) ? EVENT_WRITE : 0) | ((p.revents & ~POLLOUT) ? EVENT_READ : 0);
        if (events & key.events) ready_.push_back(SelectorEvent{&key, events & key.events});
    }
    return ready_;
}

void PollSelector::add_fd(const SelectorKey& key) {
    index_.emplace(key.fd, fds_.size());
    fds_.push_back(pollfd{key.fd, to_poll(key.events), 0});
    owners_.push_back(key.fd);
}

void PollSelector::modify_fd(const SelectorKey&, const SelectorKey& key) {
    pollfd& p = fds_[index_.at(key.fd)];
    p.fd = key.fd;  // watched again, if it had been found closed
    p.events = to_poll(key.events);
}

// Move the last entry into the hole: O(1), and poll() does not care about the order.
void PollSelector::remove_fd(const SelectorKey& key) noexcept {
    auto it = index_.find(key.fd);
    const std::size_t hole = it->second;
    index_.erase(it);
    if (hole + 1 != fds_.size()) {
        fds_[hole] = fds_.back();
        owners_[hole] = owners_.back();
        index_[owners_[hole]] = hole;
    }
    fds_.pop_back();
    owners_.pop_back();
}

}  // namespace aio
