// Stage 4: readiness I/O. A protocol: what a connection does with the bytes it receives.
//
// Adds:    Protocol, the six callbacks a transport makes: connection_made, data_received,
//          eof_received, connection_lost, pause_writing, resume_writing.
// Mirrors: BaseProtocol and Protocol in Lib/asyncio/protocols.py (no BufferedProtocol).
//
// A protocol is the other way round from a task. A task asks ("co_await sock_recv") and
// waits; a protocol is told. The transport owns the socket, keeps it registered with the
// selector, reads whatever arrives and calls data_received with it, on the loop, as a plain
// callback: no future, no task, no suspension per read. That is why asyncio's fastest
// servers are protocols, and why stage 5's HTTP server is one.
//
// The order of the calls, for one connection (protocols.py's state machine):
//
//     connection_made  data_received*  [eof_received]  connection_lost
//
// connection_made exactly once, first; data_received any number of times; eof_received at
// most once, when the peer has finished sending; connection_lost exactly once, last, after
// which nothing else is called. pause_writing and resume_writing alternate (pause first)
// anywhere between connection_made and connection_lost.
//
// Ownership: a Protocol is reference counted (Ref<>, as the loop's handles are). Its
// transport holds a Ref to it from creation until connection_lost has returned, then drops
// it; the protocol may hold a Ref to its transport (Ref<Transport>(&transport) in
// connection_made) without making a cycle that outlives the connection.
//
// A callback that throws does not take the loop down: the exception goes to the loop's
// exception handler and the transport is aborted, so connection_lost(that exception) follows.
#pragma once

#include <exception>
#include <string_view>

#include "stage2_custom_loop/ref.hpp"

namespace aio {

class Transport;

class Protocol : public RefCounted {
public:
    // The connection is up; `transport` is how to write to it and close it. It stays valid
    // at least until connection_lost returns (keep a Ref<Transport> to use it longer).
    virtual void connection_made(Transport& transport) { (void)transport; }

    // Some bytes arrived: a view of them, valid only during this call (it points into the
    // transport's read buffer, which the next read overwrites). Copy what you keep. The
    // bytes may be any part of what the peer sent: a message can arrive in pieces, and
    // several messages in one piece.
    virtual void data_received(std::string_view data) { (void)data; }

    // The peer will send nothing more (it closed or shut down its side). Return true to keep
    // the connection half-open (you may still write, then close()); false (the default)
    // lets the transport close itself.
    virtual bool eof_received() { return false; }

    // The connection is closed: by close() or abort(), by the peer, or because of an error,
    // which `exc` then holds (ConnectionResetError, ...); null for an orderly close. The
    // last call this protocol gets.
    virtual void connection_lost(std::exception_ptr exc) { (void)exc; }

    // The transport's write buffer went above its high-water mark: stop writing until
    // resume_writing() (see Transport::set_write_buffer_limits). Called on the loop, from
    // inside write() too.
    virtual void pause_writing() {}
    // The buffer drained to its low-water mark: writing may go on.
    virtual void resume_writing() {}

protected:
    ~Protocol() override = default;
};

}  // namespace aio
