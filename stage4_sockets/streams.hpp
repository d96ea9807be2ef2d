// Stage 4: readiness I/O. Streams: `co_await reader->readline()`, on top of a protocol.
//
// Adds:    StreamReader (read, readline, readexactly, readuntil, at_eof, exception, and
//          feed_data, feed_eof, set_exception for its protocol), StreamWriter (write,
//          writelines, drain, write_eof, can_write_eof, close, is_closing, wait_closed,
//          get_extra_info, transport), StreamReaderProtocol (the protocol between them),
//          open_connection(host, port) and start_server(client_connected_cb, host, port).
// Mirrors: Lib/asyncio/streams.py (its FlowControlMixin is folded into
//          StreamReaderProtocol).
//
// [docs:streams_diagram]
// A protocol is told about bytes; a task wants to ask for them. Streams join the two: the
// transport calls a StreamReaderProtocol, which appends what arrives to a StreamReader's
// buffer and wakes the task waiting in readline(); the task's writes go through a
// StreamWriter straight to the transport.
//
//   selector -> transport.read_ready()                      task: co_await reader->readline()
//                 StreamReaderProtocol.data_received(view)          |  no '\n' in the buffer:
//                   reader.feed_data(view): append, ------------> waiter future set: the task
//                   wake the waiter                                 |  resumes, finds the line
//               transport.write() <--- writer->write(line) <-------+
//                 (over the high-water mark: pause_writing) ---> writer->drain() waits until
//                 (drained to the low-water mark: resume_writing)    resume_writing
// [/docs:streams_diagram]
//
// Ownership: readers, writers and the protocol are reference counted (Ref<>). The protocol
// holds the reader, the writer (for a server's connection) and the handler's task until
// connection_lost; a StreamWriter holds its transport, protocol and reader, and closes the
// transport when the last reference to it goes (asyncio closes it when the writer is
// garbage collected). The coroutines a reader or writer returns keep it alive while they
// run.
//
// One reader at a time: a second task calling read*() while one waits gets RuntimeError,
// as in asyncio (which task would get the next bytes?). A read that is cancelled (or times
// out) takes nothing from the buffer: the next read finds every byte that arrived.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/transports.hpp"

namespace aio {

// asyncio's _DEFAULT_LIMIT: the longest line readline() accepts, and half the buffer size
// above which the reader pauses its transport.
inline constexpr std::size_t kDefaultStreamLimit = 64 * 1024;

class StreamReader : public RefCounted {
public:
    // `limit` in bytes (> 0, else ValueError).
    explicit StreamReader(std::size_t limit = kDefaultStreamLimit);

    // ---- for the task: each raises the connection's error if it was lost with one
    // (ConnectionResetError, ...), and RuntimeError if another task is already waiting.

    // Up to n bytes, as soon as any are there; n = -1: everything up to EOF. "" at EOF.
    Coroutine<std::string> read(std::ptrdiff_t n = -1);
    // Up to and including the next '\n'; at EOF, what is left without one ("" if nothing).
    // A line longer than the limit raises ValueError, and is dropped from the buffer (up to
    // its '\n' if that arrived, else the whole buffer), as asyncio does.
    Coroutine<std::string> readline();
    // Exactly n bytes; IncompleteReadError (with .partial, what arrived) if EOF comes
    // first. ValueError for n < 0.
    Coroutine<std::string> readexactly(std::ptrdiff_t n);
    // Up to and including `separator` (non-empty, else ValueError). IncompleteReadError at
    // EOF (with .partial: the rest of the buffer, which is emptied); LimitOverrunError if
    // limit bytes arrive without it, which leaves the data in the buffer.
    Coroutine<std::string> readuntil(std::string separator = "\n");
    // EOF has been fed and the buffer is empty.
    bool at_eof() const noexcept { return eof_ && buffered() == 0; }
    // The error the connection was lost with, or null.
    std::exception_ptr exception() const noexcept { return exception_; }

    // ---- for the protocol

    void feed_data(std::string_view data);
    void feed_eof();
    void set_exception(std::exception_ptr exc);
    // The transport to pause and resume (see feed_data); set once, by connection_made.
    void set_transport(Ref<Transport> transport);

    std::size_t limit() const noexcept { return limit_; }
    // Bytes received and not read yet (ours: for tests and curious readers).
    std::size_t buffered() const noexcept { return buffer_.size() - start_; }

private:
    Coroutine<std::string> read_until(std::string_view separator);
    Coroutine<> wait_for_data(const char* func_name);
    std::string take(std::size_t n);
    void wakeup_waiter();
    void maybe_resume_transport();
    void throw_if_failed() const;
    std::string eof_context() const;

    std::size_t limit_;
    // The bytes not read yet are buffer_[start_..]: reading advances start_, and the read
    // part is dropped only when it is at least half the string (see feed_data), so taking
    // many small reads from a large buffer costs O(1) each, not a shift of what is left.
    std::string buffer_;
    std::size_t start_ = 0;
    bool eof_ = false;
    bool paused_ = false;  // we paused the transport's reading
    Ref<Future<>> waiter_;  // the task waiting in wait_for_data, if any
    std::exception_ptr exception_;
    Ref<Transport> transport_;
};

class StreamReaderProtocol;

class StreamWriter : public RefCounted {
public:
    StreamWriter(Ref<Transport> transport, Ref<StreamReaderProtocol> protocol, Ref<StreamReader> reader);
    ~StreamWriter() override;

    // transport.write: never waits; follow a series of writes with `co_await drain()`.
    void write(std::string_view data) { transport_->write(data); }
    void writelines(std::span<const std::string_view> pieces) { transport_->writelines(pieces); }
    void writelines(std::initializer_list<std::string_view> pieces) { transport_->writelines(pieces); }
    // Wait until the transport's buffer is below its high-water mark (at once if it is).
    // Raises the error the connection was lost with, or ConnectionResetError("Connection
    // lost") if it is closed.
    Coroutine<> drain();
    void write_eof() { transport_->write_eof(); }
    bool can_write_eof() const { return transport_->can_write_eof(); }
    void close() { transport_->close(); }
    bool is_closing() const { return transport_->is_closing(); }
    // Wait until connection_lost; raises the error the connection was lost with, if any.
    Coroutine<> wait_closed();
    const ExtraInfo& get_extra_info() const { return transport_->get_extra_info(); }
    Transport& transport() const noexcept { return *transport_; }

private:
    Ref<Transport> transport_;
    Ref<StreamReaderProtocol> protocol_;
    Ref<StreamReader> reader_;
};

// What start_server calls for each connection: plain, or a coroutine run as a task of its own.
struct ClientConnected {
    std::function<void(Ref<StreamReader>, Ref<StreamWriter>)> plain;
    std::function<Coroutine<>(Ref<StreamReader>, Ref<StreamWriter>)> coroutine;
};

// [docs:stream_reader_protocol]
class StreamReaderProtocol final : public Protocol {
public:
    // For open_connection (no callback), or start_server (client_connected: see there).
    // Must be made on the running loop.
    explicit StreamReaderProtocol(Ref<StreamReader> reader,
                                  std::shared_ptr<const ClientConnected> client_connected = nullptr);

    void connection_made(Transport& transport) override;
    void data_received(std::string_view data) override { reader_->feed_data(data); }
    bool eof_received() override;
    void connection_lost(std::exception_ptr exc) override;
    void pause_writing() override { paused_ = true; }
    void resume_writing() override;

    // FlowControlMixin._drain_helper: wait while writing is paused.
    Coroutine<> drain_helper();
    // Done when connection_lost has run (with its error, if any): wait_closed's future.
    const Ref<Future<>>& closed() const noexcept { return closed_; }

private:
    void start_client_connected(Transport& transport);

    Ref<StreamReader> reader_;
    std::shared_ptr<const ClientConnected> client_connected_;
    Ref<Transport> transport_;
    Ref<StreamWriter> writer_;  // a server connection's, given to the callback
    Ref<TaskBase> task_;        // the callback's task
    Ref<Future<>> closed_;
    bool paused_ = false;  // pause_writing() was called, resume_writing() not yet
    bool connection_lost_ = false;
    std::vector<Ref<Future<>>> drain_waiters_;
};
// [/docs:stream_reader_protocol]

// asyncio.open_connection: create_connection with a StreamReaderProtocol, returning its
// reader and a writer. Raises what create_connection raises.
Coroutine<std::pair<Ref<StreamReader>, Ref<StreamWriter>>> open_connection(std::string host, int port,
                                                                           std::size_t limit = kDefaultStreamLimit);

namespace detail {
Coroutine<Ref<Server>> start_server(std::shared_ptr<const ClientConnected> callback, std::string host, int port,
                                    std::size_t limit, int backlog);
}

// asyncio.start_server: create_server whose connections each get a StreamReader and a
// StreamWriter, passed to client_connected_cb(reader, writer). The callback returns void,
// or Coroutine<> (then it runs as a task of its own; if it fails, the failure goes to the
// loop's exception handler and the connection is closed; if it is cancelled, the connection
// is closed). The callback is kept (a capturing lambda's captures too) as long as any of
// its tasks runs. Name a lambda first (see base_events.hpp).
template <typename Callback>
Coroutine<Ref<Server>> start_server(const Callback& client_connected_cb, std::string host, int port,
                                    std::size_t limit = kDefaultStreamLimit, int backlog = 100) {
    using Result = std::invoke_result_t<const Callback&, Ref<StreamReader>, Ref<StreamWriter>>;
    static_assert(std::is_void_v<Result> || std::is_same_v<Result, Coroutine<>>,
                  "start_server: client_connected_cb(reader, writer) must return void or aio::Coroutine<>");
    auto callback = std::make_shared<ClientConnected>();
    if constexpr (std::is_void_v<Result>)
        callback->plain = client_connected_cb;
    else
        callback->coroutine = client_connected_cb;
    return detail::start_server(std::move(callback), std::move(host), port, limit, backlog);
}

}  // namespace aio
