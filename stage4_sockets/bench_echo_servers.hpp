// Stage 4: readiness I/O. A tool, not part of the lesson: the two echo servers the network
// benchmarks (bench_echo, bench_c10k) load, one over a protocol and one over streams. They
// are the demo's (main.cpp, where the README quotes them), plus a count of the connections
// open, which bench_c10k reports.
//
// Adds:    EchoProtocol, echo_lines, open_echo_connections.
// Mirrors: the echo servers of Python's asyncio documentation (an EchoServerProtocol and a
//          handle_echo coroutine), which bench_echo.py and bench_c10k.py run beside ours.
#pragma once

#include <exception>
#include <string>
#include <string_view>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage4_sockets/exceptions.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/streams.hpp"

namespace aio::bench {

// Connections open now on either server (one loop, one thread: a plain counter).
inline long open_echo_connections = 0;

// The protocol server: whatever arrives goes straight back. No task, no future, no copy:
// data_received gets a view of the transport's read buffer, and write() sends it at once.
// What an idle connection costs is this object, its transport, and the loop's bookkeeping
// for its fd: no coroutine frame, no buffer of its own.
class EchoProtocol final : public aio::Protocol {
public:
    void connection_made(aio::Transport& transport) override {
        transport_ = &transport;
        ++open_echo_connections;
    }
    void data_received(std::string_view data) override { transport_->write(data); }
    void connection_lost(std::exception_ptr) override { --open_echo_connections; }

private:
    aio::Transport* transport_ = nullptr;  // valid until connection_lost (protocols.hpp)
};

// The streams server: a task per connection that asks for a line and writes it back.
inline Coroutine<> echo_lines(Ref<aio::StreamReader> reader, Ref<aio::StreamWriter> writer) {
    ++open_echo_connections;
    try {
        for (;;) {
            std::string line = co_await reader->readline();
            if (line.empty()) break;  // EOF: the client is done
            writer->write(line);
            co_await writer->drain();
        }
    } catch (const aio::ConnectionError&) {
        // The client went away mid-conversation: part of a server's life, not an error.
    }
    writer->close();
    --open_echo_connections;
}

}  // namespace aio::bench
