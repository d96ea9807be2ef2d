// Helpers shared by the tests of transports, servers and streams (stage 4 and later).
// Header-only.
//
// Recorder is a protocol that writes down every callback it gets, and lets a test wait for
// "n bytes received" or "connection lost"; Echo sends back what it receives. The rest:
// a byte pattern that shows a lost or repeated chunk, and "nothing but the self-pipe is
// registered with the running loop".
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage4_sockets/transports.hpp"

namespace transport_test_support {

// Bytes that differ from one position to the next, so that a lost or repeated chunk shows.
inline std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = char('a' + (i * 7 + i / 251) % 26);
    return s;
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "?";
    }
}

// The running loop watches nothing but its own self-pipe: no reader, writer or accept of
// any connection is left.
inline std::size_t registered_fds() { return aio::get_running_selector_loop().selector().get_map().size(); }
inline void require_nothing_registered() { REQUIRE(registered_fds() == 1); }

// A protocol that records what happens to it. Make it on the running loop.
class Recorder : public aio::Protocol {
public:
    aio::Ref<aio::Transport> transport;  // from connection_made to connection_lost
    std::string received;
    std::vector<std::string> events;  // "made", "data", "eof", "pause", "resume", "lost", "lost: <what>"
    std::exception_ptr lost_with;
    std::vector<std::size_t> buffer_at_pause, buffer_at_resume;  // get_write_buffer_size() then
    bool keep_open_on_eof = false;
    bool pause_reading_at_start = false;
    aio::Ref<aio::Future<>> lost = aio::create_future();  // done at connection_lost

    void connection_made(aio::Transport& t) override {
        transport = aio::Ref<aio::Transport>(&t);
        events.push_back("made");
        if (pause_reading_at_start) t.pause_reading();
    }
    void data_received(std::string_view data) override {
        if (events.empty() || events.back() != "data") events.push_back("data");
        received.append(data);
        if (waiting_ && received.size() >= wanted_ && !waiting_->done()) waiting_->set_result();
    }
    bool eof_received() override {
        events.push_back("eof");
        if (waiting_ && !waiting_->done()) waiting_->set_result();
        return keep_open_on_eof;
    }
    void connection_lost(std::exception_ptr exc) override {
        events.push_back(exc ? "lost: " + what_of(exc) : "lost");
        lost_with = exc;
        transport = nullptr;
        if (!lost->done()) lost->set_result();
        if (waiting_ && !waiting_->done()) waiting_->set_result();
    }
    void pause_writing() override {
        events.push_back("pause");
        buffer_at_pause.push_back(transport->get_write_buffer_size());
    }
    void resume_writing() override {
        events.push_back("resume");
        buffer_at_resume.push_back(transport->get_write_buffer_size());
    }

    // Until `n` bytes have been received in all (or EOF, or the end of the connection).
    aio::Coroutine<> wait_for_bytes(std::size_t n) {
        aio::Ref<Recorder> self(this);
        while (received.size() < n && !lost->done() && !saw("eof")) {
            wanted_ = n;
            waiting_ = aio::create_future();
            aio::Ref<aio::Future<>> w = waiting_;
            co_await w;
            waiting_ = nullptr;
        }
    }

    bool saw(const std::string& event) const {
        for (auto& e : events)
            if (e == event) return true;
        return false;
    }

private:
    std::size_t wanted_ = 0;
    aio::Ref<aio::Future<>> waiting_;
};

// Sends back whatever it receives.
class Echo : public aio::Protocol {
public:
    void connection_made(aio::Transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    aio::Transport* transport_ = nullptr;  // valid until connection_lost
};

}  // namespace transport_test_support
