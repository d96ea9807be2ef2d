// Stage 4: readiness I/O. The socket transport of the selector loop.
//
// Adds:    SelectorSocketTransport, the Transport (transports.hpp) of a connected TCP socket
//          on a SelectorEventLoop: made by create_connection and by a Server for each
//          connection it accepts (base_events.hpp).
// Mirrors: _SelectorTransport and _SelectorSocketTransport in Lib/asyncio/selector_events.py.
//
// [docs:transport_journey]
// Where sock_recv registers the fd for one wait and removes it again, a transport keeps its
// fd registered for as long as it reads: one add_reader for the whole connection. Each time
// the selector reports the fd readable, the reader callback reads what is there and hands
// the protocol a view of it:
//
//   selector.select() -> (fd, EVENT_READ)
//     process_events: add_callback(the transport's reader handle)
//       read_ready():  recv(fd, the loop thread's 256 KiB read buffer)
//         n > 0:       protocol.data_received(string_view(buffer, n))   <- no copy, no future
//         n == 0:      protocol.eof_received() -> false: close()
//         error:       abort: connection_lost(ConnectionResetError...)
//
// Writing is the other way round: write() calls send() at once, and only what the socket
// does not take is copied into the write buffer, with an add_writer that flushes it when
// the selector says the socket is writable, and removes itself when the buffer is empty.
// [/docs:transport_journey]
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "stage3_tasks_futures/future.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/transports.hpp"

namespace aio {

class Server;

class SelectorSocketTransport final : public Transport {
public:
    // A transport for the connected `sock` (whose other end is `peername`) on `loop`, with
    // `protocol`. Nothing happens inside this call: connection_made runs on the next pass,
    // then the transport starts reading, then `waiter` (if any) gets its result; if
    // connection_made throws, or the selector cannot watch the socket (select: an fd at or
    // above FD_SETSIZE; the connection is then aborted and the loop told), `waiter` gets that
    // exception instead. The loop owns the transport from now until connection_lost has
    // returned (transports.hpp). `server` is the Server that accepted the connection, told
    // when it ends. Throws what setting up the socket throws (OSError), with `sock` then
    // closed.
    static Ref<SelectorSocketTransport> make(SelectorEventLoop& loop, Socket sock, Ref<Protocol> protocol,
                                             SockAddr peername, Ref<Future<>> waiter = nullptr,
                                             Server* server = nullptr);

    void write(std::string_view data) override;
    void writelines(std::span<const std::string_view> pieces) override;
    using Transport::writelines;
    void write_eof() override;
    bool can_write_eof() const override { return true; }
    std::size_t get_write_buffer_size() const override { return buffer_.size() - sent_; }
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override;
    WriteBufferLimits get_write_buffer_limits() const override { return limits_; }

    void pause_reading() override;
    void resume_reading() override;
    bool is_reading() const override { return !closing_ && !reading_paused_; }

    void close() override;
    void abort() override { force_close(nullptr); }
    bool is_closing() const override { return closing_; }
    const ExtraInfo& get_extra_info() const override { return extra_; }
    void set_protocol(Ref<Protocol> protocol) override;
    Ref<Protocol> get_protocol() const override { return protocol_; }

    // The socket's fd, for tests and messages; -1 once the connection is closed.
    int fileno() const noexcept { return sock_.fileno(); }

    // How much one recv() asks for (asyncio's max_size).
    static constexpr std::size_t max_size = 256 * 1024;

private:
    friend class TransportRegistry;
    SelectorSocketTransport(SelectorEventLoop& loop, Socket sock, Ref<Protocol> protocol, SockAddr peername);
    ~SelectorSocketTransport() override;

    void start(Ref<Future<>> waiter);
    void read_ready();
    void on_eof();
    void write_ready();
    void add_reader();
    bool send_now(std::span<const std::string_view> pieces, std::size_t& sent);
    void buffer_rest(std::span<const std::string_view> pieces, std::size_t sent);
    void flushed();
    void maybe_pause_protocol();
    void maybe_resume_protocol();
    void ignore_write_after_loss();
    void socket_error(int err, const char* op);
    void protocol_error(const char* callback, std::exception_ptr exc);
    void force_close(std::exception_ptr exc);
    void call_connection_lost(std::exception_ptr exc);
    void loop_closing();
    std::string describe() const;

    SelectorEventLoop* loop_;  // null once connection_lost has been called
    Socket sock_;
    const int fd_;  // sock_'s fd, kept for messages once the socket is closed
    Ref<Protocol> protocol_;
    Ref<Server> server_;
    ExtraInfo extra_;
    // The write buffer: the bytes of buffer_ from sent_ on are still to send (see write()).
    std::string buffer_;
    std::size_t sent_ = 0;
    WriteBufferLimits limits_;
    unsigned conn_lost_ = 0;  // > 0 once connection_lost is scheduled: counts writes after it
    std::exception_ptr lost_with_;  // the error it is scheduled with (force_close), for loop_closing
    bool closing_ = false;
    bool reading_paused_ = false;
    bool started_ = false;             // connection_made has been called
    bool read_eof_ = false;            // the peer's EOF has been read
    bool write_eof_ = false;           // write_eof() was called
    bool protocol_paused_ = false;     // pause_writing() was called, resume_writing() not yet
    std::size_t registry_index_ = 0;   // its place in the loop's list of transports
};

}  // namespace aio
