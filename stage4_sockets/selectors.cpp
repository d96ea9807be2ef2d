// Stage 4: readiness I/O. The key table every selector shares, and choosing a selector
// (selectors.hpp). The three system calls are in select_selector.cpp, poll_selector.cpp
// and epoll_selector.cpp.
#include "stage4_sockets/selectors.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace aio {

namespace {

void check_events(int fd, int events) {
    if (fd < 0) throw std::invalid_argument("selector: fd " + std::to_string(fd) + " is negative; pass an open file descriptor");
    if (events == 0 || (events & ~(EVENT_READ | EVENT_WRITE)))
        throw std::invalid_argument("selector: invalid events " + std::to_string(events) + " for fd " +
                                    std::to_string(fd) + "; pass EVENT_READ, EVENT_WRITE or both");
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

namespace detail {

WaitDeadline::WaitDeadline(std::optional<double> timeout) {
    if (timeout) deadline_ = now() + std::max(0.0, *timeout);
}

double WaitDeadline::remaining() const { return deadline_ ? std::max(0.0, *deadline_ - now()) : 0.0; }

int WaitDeadline::remaining_ms() const {
    if (!deadline_) return -1;
    return int(std::min(std::ceil(remaining() * 1e3), double(INT_MAX)));
}

}  // namespace detail

SelectorKey* BaseSelector::find(int fd) noexcept {
    auto it = keys_.find(fd);
    return it == keys_.end() ? nullptr : &it->second;
}

const SelectorKey& BaseSelector::get_key(int fd) const {
    auto it = keys_.find(fd);
    if (it == keys_.end()) throw KeyError(std::string(name()) + ": fd " + std::to_string(fd) + " is not registered");
    return it->second;
}

const SelectorKey& BaseSelector::register_fd(int fd, int events, void* data) {
    check_events(fd, events);
    if (find(fd))
        throw KeyError(std::string(name()) + ": fd " + std::to_string(fd) +
                       " is already registered; modify() changes what it waits for");
    SelectorKey key{fd, events, data};
    add_fd(key);  // first: if the kernel refuses, the table is unchanged
    return keys_.emplace(fd, key).first->second;
}

SelectorKey BaseSelector::unregister(int fd) {
    SelectorKey* key = find(fd);
    if (!key) throw KeyError(std::string(name()) + ": fd " + std::to_string(fd) + " is not registered");
    SelectorKey old = *key;
    remove_fd(old);
    keys_.erase(fd);
    return old;
}

const SelectorKey& BaseSelector::modify(int fd, int events, void* data) {
    check_events(fd, events);
    SelectorKey* key = find(fd);
    if (!key) throw KeyError(std::string(name()) + ": fd " + std::to_string(fd) + " is not registered; register_fd() it first");
    SelectorKey updated{fd, events, data};
    modify_fd(*key, updated);
    *key = updated;
    return *key;
}

std::unique_ptr<BaseSelector> make_selector(std::string_view name) {
    if (name.empty() || name == "default") return std::make_unique<DefaultSelector>();
    if (name == "select") return std::make_unique<SelectSelector>();
    if (name == "poll") return std::make_unique<PollSelector>();
#ifdef __linux__
    if (name == "epoll") return std::make_unique<EpollSelector>();
#endif
    std::string choices;
    for (auto& n : selector_names()) choices += (choices.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown selector '" + std::string(name) + "': choose one of " + choices);
}

std::unique_ptr<BaseSelector> selector_from_env() {
    const char* name = std::getenv("AIO_SELECTOR");
    try {
        return make_selector(name ? name : "");
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string("AIO_SELECTOR: ") + e.what());
    }
}

std::vector<std::string> selector_names() {
#ifdef __linux__
    return {"select", "poll", "epoll"};
#else
    return {"select", "poll"};
#endif
}

}  // namespace aio
