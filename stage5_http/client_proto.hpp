// Stage 5: HTTP/1.1. The client's side of one connection: a Protocol that feeds what the
// transport receives to a response parser, and lets one task pull the parser's events.
//
// Adds:    ResponseHandler (send_request, next_event, wait_for_data, reusable,
//          response_started, close).
// Mirrors: aiohttp's ResponseHandler (client_proto.py), a Protocol whose data_received
//          feeds an HttpResponseParser. aiohttp pushes each parsed message into a payload
//          StreamReader; ours is pulled (h11's way): the task reading the response asks
//          for the next event, and waits for data only when the parser needs more.
//
// Why a protocol and not stage 4's streams. With open_connection, every piece the network
// delivers is copied into a StreamReader's buffer, a read() copies it out again, and each
// read is a future and a task switch even when the bytes are already there. Here
// data_received hands the transport's view straight to parser.feed() (one copy, into the
// parser, which a response needs anyway), and the reading task parses what is buffered
// without suspending at all; it waits (one future) only when the parser says need_data.
// A response that arrives in one read costs one wakeup.
//
// One request at a time per connection (no pipelining): the connector hands a connection
// to one request, which sends its bytes with send_request() and reads its response; then
// the connection goes back to the pool (reusable()) or is closed.
//
//   ClientSession ─ send_request(head, body) ──► transport.writelines (one sendmsg)
//                                                        ... the server answers ...
//   selector ► transport.read_ready ► data_received(view) ─► parser.feed(view)
//                                                             └► wake the waiting task
//   the task:  next_event() ─► head / data / end_of_message, or need_data:
//                              co_await wait_for_data(), then next_event() again
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/future.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/transports.hpp"
#include "stage5_http/http_parser.hpp"

namespace aio {

class ResponseHandler final : public Protocol {
public:
    explicit ResponseHandler(const HttpParserLimits& limits = {}) : parser_(limits) {}

    // ---- the Protocol side (called by the transport)
    void connection_made(Transport& transport) override;
    void data_received(std::string_view data) override;
    bool eof_received() override;
    void connection_lost(std::exception_ptr exc) override;

    // ---- the client's side

    // The connection can carry a request: made, not closing, not lost, parser healthy.
    bool is_connected() const noexcept;
    // Send one request: its head and body in one system call (writelines), after telling the
    // parser which method the response answers (a response to HEAD has no body). The bytes
    // received from now on belong to this request's response.
    void send_request(std::string_view head, std::string_view body, std::string_view method);

    // The parser's next event, without waiting: need_data means co_await wait_for_data()
    // and ask again. Raises the parser's HttpError for a malformed response (the connection
    // is then aborted), and, when the connection broke with an error (a reset), that
    // OSError; ClientConnectionError once close() was called. A connection closed cleanly is the parser's business: feed_eof() gives it a
    // body that ends at close, connection_closed between messages, or an HttpError for a
    // message cut short.
    HttpEvent next_event();
    // Until data_received or connection_lost has something for next_event(). One waiter at
    // a time; cancelling the wait leaves nothing behind.
    Coroutine<> wait_for_data();
    // The head of the latest head (or informational) event; std::move it out to keep it.
    HttpResponseHead& head() noexcept { return parser_.head(); }

    // After end_of_message: whether the connection may carry another request. The head said
    // keep-alive, nothing arrived after the message (stray bytes after a 204, say, would be
    // read as the next response), and the connection is still up.
    bool reusable() const noexcept;
    // A byte of the response has arrived since send_request(). A reused connection that
    // closes before that was closed by the server while idle: the request never reached it.
    bool response_started() const noexcept { return received_ > received_at_request_; }
    // Requests sent on this connection so far.
    std::uint64_t requests_sent() const noexcept { return requests_; }
    // Bytes received but not yet taken out of the parser: what flow control bounds.
    std::size_t buffered() const noexcept { return parser_.buffered(); }
    // Abort the connection now (nothing of ours is left to send).
    void close();

    // Set by the connector: the connection sits in the pool between requests. A byte that
    // arrives while idle is one no request asked for: the connection is closed.
    bool idle = false;
    double idle_since = 0;  // loop.time() when it went back to the pool

    // Flow control. Above kHighWater bytes in the parser, the transport stops reading (the
    // kernel's buffers fill and TCP slows the server down) until a reader has taken the
    // parser down to kLowWater: a large body streams through bounded memory.
    static constexpr std::size_t kHighWater = 512 * 1024;
    static constexpr std::size_t kLowWater = 128 * 1024;

private:
    void wake() noexcept;

    HttpResponseParser parser_;
    Ref<Transport> transport_;
    Ref<Future<>> waiter_;           // the task in wait_for_data(), if any
    std::exception_ptr lost_error_;  // connection_lost's error (a reset), if any
    bool lost_ = false;              // connection_lost has run
    bool eof_ = false;               // the parser has been told (feed_eof)
    bool broken_ = false;            // the parser raised, or we closed: the connection is useless
    bool closed_ = false;            // close() was called
    bool keep_alive_ = false;        // the latest head's keep_alive
    bool paused_ = false;            // we paused the transport's reading
    std::uint64_t received_ = 0;     // bytes received on this connection
    std::uint64_t received_at_request_ = 0;
    std::uint64_t requests_ = 0;
};

}  // namespace aio
