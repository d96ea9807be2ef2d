// Stage 4: readiness I/O. A transport: a connection's end, as its protocol sees it.
//
// Adds:    Transport (write, writelines, write_eof, can_write_eof, close, abort,
//          is_closing, pause_reading, resume_reading, is_reading, set_write_buffer_limits,
//          get_write_buffer_limits, get_write_buffer_size, get_extra_info, set_protocol,
//          get_protocol); ExtraInfo (what get_extra_info answers); WriteBufferLimits (the
//          water marks and asyncio's rules for their defaults).
// Mirrors: BaseTransport, ReadTransport, WriteTransport, Transport and _FlowControlMixin in
//          Lib/asyncio/transports.py. SelectorSocketTransport (selector_transport.hpp) is
//          the one implementation, asyncio's _SelectorSocketTransport.
//
// The transport owns the socket and does all of its I/O: it reads whatever arrives and
// gives it to the protocol (Protocol::data_received), and it takes what the protocol
// writes, sends what the socket accepts at once and keeps the rest in a buffer until the
// selector says the socket is writable again. Neither call ever waits. What keeps a fast
// writer from growing that buffer without bound is flow control: when the buffer goes
// above its high-water mark the transport calls the protocol's pause_writing(), and when it
// has drained to the low-water mark, resume_writing().
//
// Ownership: a Transport is reference counted (Ref<Transport>). The loop keeps each one
// alive from its creation until its protocol's connection_lost has returned, so an open
// connection never vanishes because nobody holds it; hold a Ref to use it longer. Every
// method stays safe to call after the end: once the connection is lost, write() and
// writelines() are ignored (as in asyncio), close(), abort() and the rest do nothing.
// (Between close() and the end, while the buffer drains, a write still joins the queue, as
// in asyncio.)
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "stage2_custom_loop/ref.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/socket.hpp"

namespace aio {

// What transport.get_extra_info() answers: asyncio's get_extra_info("peername"),
// ("sockname") and ("socket"), as typed fields instead of a lookup by name.
struct ExtraInfo {
    SockAddr peername;  // the other end; empty (family() == AF_UNSPEC) if unknown
    SockAddr sockname;  // our end
    // The socket, for getsockopt/setsockopt (asyncio's TransportSocket); null once the
    // connection is closed. Do not read, write or close it: the transport does that.
    Socket* socket = nullptr;
};

// The write buffer's water marks, in bytes: the protocol is paused when the buffer goes
// above `high` and resumed when it is back at `low` or below.
struct WriteBufferLimits {
    std::size_t high = 64 * 1024;  // asyncio's defaults
    std::size_t low = 16 * 1024;
    // asyncio's rules (_FlowControlMixin._set_write_buffer_limits): neither given: 64 KiB
    // and 16 KiB; only low: high = 4 * low; only high: low = high / 4. Throws
    // std::invalid_argument unless high >= low.
    static WriteBufferLimits from(std::optional<std::size_t> high, std::optional<std::size_t> low);
};

inline WriteBufferLimits WriteBufferLimits::from(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    WriteBufferLimits limits;
    limits.high = high ? *high : low ? 4 * *low : 64 * 1024;
    limits.low = low ? *low : limits.high / 4;
    if (limits.high < limits.low)
        throw std::invalid_argument("set_write_buffer_limits: high (" + std::to_string(limits.high) +
                                    ") must be >= low (" + std::to_string(limits.low) + ")");
    return limits;
}

class Transport : public RefCounted {
public:
    // ---- writing (WriteTransport)

    // Send `data`, without waiting: what the socket does not take at once is copied into
    // the write buffer and sent when it is writable (the caller's bytes are free to go as
    // soon as this returns). Ignored once the connection is lost. Throws RuntimeError after
    // write_eof().
    virtual void write(std::string_view data) = 0;
    // Send the pieces one after the other, as one write of their concatenation, but without
    // joining them first (a header and a body, say): one sendmsg() over all of them.
    virtual void writelines(std::span<const std::string_view> pieces) = 0;
    void writelines(std::initializer_list<std::string_view> pieces) {
        writelines(std::span<const std::string_view>(pieces.begin(), pieces.size()));
    }
    // Close our sending side once the buffer has drained (the peer reads EOF); we may still
    // receive. Does nothing if closing or already done.
    virtual void write_eof() = 0;
    virtual bool can_write_eof() const = 0;
    // Bytes written and not sent yet.
    virtual std::size_t get_write_buffer_size() const = 0;
    // Set the water marks (see WriteBufferLimits::from); may pause the protocol at once.
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
    virtual WriteBufferLimits get_write_buffer_limits() const = 0;

    // ---- reading (ReadTransport)

    // Stop calling data_received until resume_reading() (the socket is left unread, so the
    // kernel's buffers fill and TCP slows the peer down). Each does nothing if not needed.
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
    // Reading, and not closing.
    virtual bool is_reading() const = 0;

    // ---- the connection (BaseTransport)

    // Close once the write buffer has been sent: no more data_received; then
    // connection_lost(nullptr), on a later pass. Closing twice does nothing.
    virtual void close() = 0;
    // Close now: the write buffer is dropped; connection_lost(nullptr) follows.
    virtual void abort() = 0;
    // close() or abort() was called, or the connection was lost.
    virtual bool is_closing() const = 0;
    virtual const ExtraInfo& get_extra_info() const = 0;
    // Give the connection to another protocol from now on (an upgrade, say).
    virtual void set_protocol(Ref<Protocol> protocol) = 0;
    // The current protocol; null once connection_lost has been called.
    virtual Ref<Protocol> get_protocol() const = 0;

protected:
    ~Transport() override = default;
};

}  // namespace aio
