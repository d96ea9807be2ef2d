// Stage 4: readiness I/O. StreamReader, StreamWriter, StreamReaderProtocol,
// open_connection and start_server (streams.hpp).
#include "stage4_sockets/streams.hpp"

#include <algorithm>
#include <cstdint>

#include "stage3_tasks_futures/locks.hpp"  // ValueError

namespace aio {

// ---------------------------------------------------------------------------- StreamReader

StreamReader::StreamReader(std::size_t limit) : limit_(limit) {
    if (limit == 0) throw ValueError("StreamReader: the limit must be > 0");
}

// [docs:readuntil]
// Wait until the buffer holds `separator`, then take everything up to and including it.
// Each time data arrives the search goes on from where the last one stopped (less the
// separator's length minus one, which may hold the separator's start), so a line that
// trickles in one byte at a time is still searched once: O(n), not O(n^2).
Coroutine<std::string> StreamReader::read_until(std::string_view separator) {
    throw_if_failed();
    std::size_t offset = 0;  // buffer_[start_ .. start_ + offset) holds no separator
    std::size_t found;
    for (;;) {
        const std::string_view data = std::string_view(buffer_).substr(start_);
        if (data.size() - offset >= separator.size()) {
            found = data.find(separator, offset);
            if (found != std::string_view::npos) break;
            offset = data.size() + 1 - separator.size();
            if (offset > limit_)
                throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
        }
        // EOF is checked after the search: the last bytes may have completed the separator.
        if (eof_) throw IncompleteReadError(take(buffered()), std::nullopt, eof_context());
        co_await wait_for_data("readuntil");
    }
    if (found > limit_) throw LimitOverrunError("Separator is found, but chunk is longer than limit", found);
    std::string chunk = take(found + separator.size());
    maybe_resume_transport();
    co_return chunk;
}
// [/docs:readuntil]

Coroutine<std::string> StreamReader::readuntil(std::string separator) {
    Ref<StreamReader> self(this);
    if (separator.empty()) throw ValueError("readuntil: the separator must be at least one byte");
    std::string chunk = co_await read_until(separator);
    co_return chunk;
}

Coroutine<std::string> StreamReader::readline() {
    Ref<StreamReader> self(this);
    std::string line;
    try {
        line = co_await read_until("\n");
    } catch (IncompleteReadError& e) {  // EOF: the last line, without its '\n'
        line = std::move(e.partial);
    } catch (const LimitOverrunError& e) {
        // Drop the line that was too long: up to its '\n' if it came, else all of it.
        const std::string_view data = std::string_view(buffer_).substr(start_);
        if (data.substr(e.consumed).starts_with('\n'))
            take(e.consumed + 1);
        else
            take(buffered());
        maybe_resume_transport();
        throw ValueError(std::string("readline: ") + e.what() + " (" + std::to_string(limit_) + " bytes)");
    }
    co_return line;
}

Coroutine<std::string> StreamReader::read(std::ptrdiff_t n) {
    Ref<StreamReader> self(this);
    throw_if_failed();
    if (n == 0) co_return std::string();
    if (n < 0) {
        // Everything up to EOF, read limit bytes at a time (so the transport is resumed
        // between reads instead of the buffer growing to the whole stream). A limit beyond
        // PTRDIFF_MAX would turn negative, into this very call again.
        const auto block_size = std::ptrdiff_t(std::min<std::size_t>(limit_, PTRDIFF_MAX));
        std::string all;
        for (;;) {
            std::string block = co_await read(block_size);
            if (block.empty()) break;
            all += block;
        }
        co_return all;
    }
    if (buffered() == 0 && !eof_) co_await wait_for_data("read");
    std::string data = take(std::min(std::size_t(n), buffered()));
    maybe_resume_transport();
    co_return data;
}

Coroutine<std::string> StreamReader::readexactly(std::ptrdiff_t n) {
    Ref<StreamReader> self(this);
    if (n < 0) throw ValueError("readexactly: the size must be >= 0, got " + std::to_string(n));
    throw_if_failed();
    const std::size_t wanted = std::size_t(n);
    while (buffered() < wanted) {
        if (eof_) throw IncompleteReadError(take(buffered()), wanted, eof_context());
        co_await wait_for_data("readexactly");
    }
    std::string data = take(wanted);
    maybe_resume_transport();
    co_return data;
}

// [docs:wait_for_data]
// Wait until feed_data, feed_eof or set_exception is called. Nothing is taken from the
// buffer while waiting, so a read cancelled here loses nothing: the bytes are still there.
Coroutine<> StreamReader::wait_for_data(const char* func_name) {
    if (waiter_)
        throw RuntimeError(std::string(func_name) +
                           "() called while another coroutine is already waiting for incoming data");
    // Paused (the buffer was full) and about to wait for more: it must come, so resume. This
    // is what lets readexactly(n) with n above the limit finish.
    if (paused_) {
        paused_ = false;
        transport_->resume_reading();
    }
    Ref<Future<>> waiter = create_future();
    waiter_ = waiter;
    // However the wait ends (data, cancellation, the task destroyed), forget the waiter,
    // unless it is already another one's.
    struct Forget {
        StreamReader& reader;
        const Ref<Future<>>& waiter;
        ~Forget() {
            if (reader.waiter_ == waiter) reader.waiter_ = nullptr;
        }
    } forget{*this, waiter};
    co_await waiter;
}
// [/docs:wait_for_data]

// [docs:feed_data]
void StreamReader::feed_data(std::string_view data) {
    if (eof_) throw RuntimeError("StreamReader.feed_data() after feed_eof()");
    if (data.empty()) return;
    // Drop what was read before appending, once it is at least half the string: each byte is
    // then moved at most once more, whatever the sizes of the reads and the packets.
    if (start_ > 0 && 2 * start_ >= buffer_.size()) {
        buffer_.erase(0, start_);
        start_ = 0;
    }
    buffer_.append(data);
    wakeup_waiter();
    // Far more than a read will take: stop reading from the socket, so that a peer sending
    // faster than we read fills the kernel's buffers (and TCP slows it down), not our memory.
    if (transport_ && !paused_ && buffered() > 2 * limit_) {
        transport_->pause_reading();
        paused_ = true;
    }
}

void StreamReader::maybe_resume_transport() {
    if (paused_ && buffered() <= limit_) {
        paused_ = false;
        transport_->resume_reading();
    }
}
// [/docs:feed_data]

void StreamReader::feed_eof() {
    eof_ = true;
    wakeup_waiter();
}

void StreamReader::set_exception(std::exception_ptr exc) {
    exception_ = exc;
    if (Ref<Future<>> waiter = std::exchange(waiter_, nullptr); waiter && !waiter->done()) waiter->set_exception(exc);
}

void StreamReader::set_transport(Ref<Transport> transport) {
    if (transport_) throw RuntimeError("StreamReader.set_transport(): the transport is already set");
    transport_ = std::move(transport);
}

void StreamReader::wakeup_waiter() {
    if (Ref<Future<>> waiter = std::exchange(waiter_, nullptr); waiter && !waiter->done()) waiter->set_result();
}

// The first n bytes not read yet, now read.
std::string StreamReader::take(std::size_t n) {
    std::string out(buffer_, start_, n);
    start_ += n;
    if (start_ == buffer_.size()) {  // all read: start over (keeping the capacity)
        buffer_.clear();
        start_ = 0;
    }
    return out;
}

void StreamReader::throw_if_failed() const {
    if (exception_) std::rethrow_exception(exception_);
}

std::string StreamReader::eof_context() const {
    if (transport_) return "the connection from " + transport_->get_extra_info().peername.to_string() + " was closed";
    return "feed_eof() was called";
}

// ---------------------------------------------------------------------------- StreamWriter

StreamWriter::StreamWriter(Ref<Transport> transport, Ref<StreamReaderProtocol> protocol, Ref<StreamReader> reader)
    : transport_(std::move(transport)), protocol_(std::move(protocol)), reader_(std::move(reader)) {}

// Forgotten without close(): close (asyncio does the same when it collects the writer).
StreamWriter::~StreamWriter() {
    if (!transport_->is_closing()) transport_->close();
}

// [docs:drain]
Coroutine<> StreamWriter::drain() {
    Ref<StreamWriter> self(this);
    if (reader_)
        if (std::exception_ptr e = reader_->exception()) std::rethrow_exception(e);
    // Closing: let connection_lost run first, so that a loop of write(); drain(); meets the
    // connection's error instead of writing into the void for ever (asyncio does the same).
    if (transport_->is_closing()) co_await yield_now();
    co_await protocol_->drain_helper();
}

Coroutine<> StreamReaderProtocol::drain_helper() {
    if (connection_lost_)
        throw ConnectionResetError(0, "Connection lost: the connection is closed; nothing can be written to it");
    if (!paused_) co_return;
    Ref<Future<>> waiter = create_future();
    drain_waiters_.push_back(waiter);
    struct Remove {
        std::vector<Ref<Future<>>>& waiters;
        const Ref<Future<>>& waiter;
        ~Remove() { std::erase(waiters, waiter); }
    } remove{drain_waiters_, waiter};
    co_await waiter;
}
// [/docs:drain]

Coroutine<> StreamWriter::wait_closed() {
    Ref<StreamWriter> self(this);
    Ref<Future<>> closed = protocol_->closed();
    co_await closed;
}

// -------------------------------------------------------------------- StreamReaderProtocol

StreamReaderProtocol::StreamReaderProtocol(Ref<StreamReader> reader,
                                           std::shared_ptr<const ClientConnected> client_connected)
    : reader_(std::move(reader)), client_connected_(std::move(client_connected)), closed_(create_future()) {}

void StreamReaderProtocol::connection_made(Transport& transport) {
    transport_ = Ref<Transport>(&transport);
    reader_->set_transport(transport_);
    if (client_connected_) start_client_connected(transport);
}

bool StreamReaderProtocol::eof_received() {
    reader_->feed_eof();
    return true;  // keep the connection half-open: the task may still write, then close
}

void StreamReaderProtocol::connection_lost(std::exception_ptr exc) {
    if (exc)
        reader_->set_exception(exc);
    else
        reader_->feed_eof();
    if (!closed_->done()) {
        if (exc)
            closed_->set_exception(exc);
        else
            closed_->set_result();
    }
    // FlowControlMixin: a drain() waiting for the buffer to empty will never see it; it
    // gets the error, or returns.
    connection_lost_ = true;
    if (paused_)
        for (Ref<Future<>>& waiter : drain_waiters_)
            if (!waiter->done()) {
                if (exc)
                    waiter->set_exception(exc);
                else
                    waiter->set_result();
            }
    // Break the cycles through the transport (it holds us until this returns).
    transport_ = nullptr;
    writer_ = nullptr;
    task_ = nullptr;
}

void StreamReaderProtocol::resume_writing() {
    paused_ = false;
    for (Ref<Future<>>& waiter : drain_waiters_)
        if (!waiter->done()) waiter->set_result();
}

namespace {

// The task of a coroutine callback: it holds the callback (so a lambda's captures live as
// long as the task), then runs it.
Coroutine<> run_client_connected(std::shared_ptr<const ClientConnected> callback, Ref<StreamReader> reader,
                                 Ref<StreamWriter> writer) {
    Coroutine<> body = callback->coroutine(std::move(reader), std::move(writer));
    co_await std::move(body);
}

}  // namespace

// A server's connection: give the callback its reader and writer. A coroutine runs as a
// task; when it ends with an error, that is reported (never lost) and the connection is
// closed (asyncio 3.12's rule), and so it is when the task is cancelled.
void StreamReaderProtocol::start_client_connected(Transport& transport) {
    writer_ = make_ref<StreamWriter>(transport_, Ref<StreamReaderProtocol>(this), reader_);
    // Used once: let go of it now. The callback often keeps the writers it is given (a chat
    // server's list of clients); if their protocols kept the callback, that would be a cycle
    // of references that nothing breaks. The task keeps it while it runs.
    std::shared_ptr<const ClientConnected> callback = std::move(client_connected_);
    if (callback->plain) {
        callback->plain(reader_, writer_);
        return;
    }
    task_ = create_task(run_client_connected(std::move(callback), reader_, writer_));
    auto on_done = [transport = Ref<Transport>(&transport)](FutureBase& task) {
        if (task.cancelled()) {
            transport->close();
            return;
        }
        if (std::exception_ptr e = task.exception()) {
            task.get_loop().call_exception_handler(ExceptionContext{
                "Unhandled exception in client_connected_cb (connection from " +
                    transport->get_extra_info().peername.to_string() + ")",
                e});
            transport->close();
        }
    };
    task_->add_done_callback(std::move(on_done), "client_connected_cb done");
}

// --------------------------------------------------------------- open_connection, start_server

// [docs:open_connection]
Coroutine<std::pair<Ref<StreamReader>, Ref<StreamWriter>>> open_connection(std::string host, int port,
                                                                           std::size_t limit) {
    Ref<StreamReader> reader = make_ref<StreamReader>(limit);
    Ref<StreamReaderProtocol> protocol = make_ref<StreamReaderProtocol>(reader);
    auto factory = [protocol] { return protocol; };
    auto connecting = create_connection(factory, std::move(host), port);
    auto made = co_await std::move(connecting);
    Ref<StreamWriter> writer = make_ref<StreamWriter>(std::move(made.first), protocol, reader);
    co_return std::pair<Ref<StreamReader>, Ref<StreamWriter>>(std::move(reader), std::move(writer));
}
// [/docs:open_connection]

Coroutine<Ref<Server>> detail::start_server(std::shared_ptr<const ClientConnected> callback, std::string host,
                                            int port, std::size_t limit, int backlog) {
    auto factory = [callback, limit] {
        return make_ref<StreamReaderProtocol>(make_ref<StreamReader>(limit), callback);
    };
    auto serving = aio::create_server(factory, std::move(host), port, backlog);
    Ref<Server> server = co_await std::move(serving);
    co_return server;
}

}  // namespace aio
