// Stage 4: readiness I/O. The loop's socket coroutines.
//
// Adds:    sock_connect, sock_accept, sock_recv, sock_recv_into, sock_sendall (and our
//          sock_recv_exactly), and getaddrinfo, on the running SelectorEventLoop.
// Mirrors: the sock_* methods of BaseSelectorEventLoop in Lib/asyncio/selector_events.py,
//          and loop.getaddrinfo in Lib/asyncio/base_events.py.
//
// Each one is the same three steps, the whole idea of readiness I/O:
//   1. try the system call on the non-blocking socket; if it did something, done;
//   2. if it failed with EAGAIN ("it would block"), register the fd with the loop
//      (add_reader/add_writer) and await a Future that the callback completes when the
//      selector reports the fd ready;
//   3. then remove the registration and go back to 1.
// Step 1 comes first, as in CPython: most calls on a busy connection succeed at once and
// never touch the selector. The registration lives exactly as long as the wait: however
// the wait ends (ready, cancelled, wait_for's timeout, the task destroyed), it is removed.
//
// They are free functions on the running loop (asyncio's are loop methods: `await
// loop.sock_recv(sock, n)`), like stage 3's sleep and run_in_executor. The Socket (and the
// buffer of sock_recv_into and sock_sendall) is the caller's: it must outlive the await, as
// it does when you co_await the call where you make it.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/socket.hpp"

namespace aio {

// The running loop, which must be a SelectorEventLoop. Throws RuntimeError if no loop
// runs, or if it is one that cannot wait on sockets (stage 2's EventLoop).
SelectorEventLoop& get_running_selector_loop();

// Connect `sock` to `address` (a numeric address: see getaddrinfo for names). Raises
// ConnectionRefusedError if nobody listens there, OSError for other failures.
Coroutine<> sock_connect(Socket& sock, SockAddr address);

// Wait for a connection on the listening `sock`; returns the new socket (non-blocking)
// and the peer's address, as Python's (conn, address).
Coroutine<std::pair<Socket, SockAddr>> sock_accept(Socket& sock);

// Up to n bytes, as soon as any have arrived; "" once the peer has closed its side (EOF).
// Raises ConnectionResetError if the peer reset the connection.
Coroutine<std::string> sock_recv(Socket& sock, std::size_t n);

// The same into `buf`; returns how many bytes were written (0 at EOF).
Coroutine<std::size_t> sock_recv_into(Socket& sock, std::span<char> buf);

// Send all of `data`, waiting whenever the socket's send buffer is full. Raises
// BrokenPipeError or ConnectionResetError if the peer has gone.
Coroutine<> sock_sendall(Socket& sock, std::string_view data);

// Ours (streams' readexactly for a bare socket): exactly n bytes, or IncompleteReadError,
// holding what did arrive, if the peer closes first.
Coroutine<std::string> sock_recv_exactly(Socket& sock, std::size_t n);

// loop.getaddrinfo: blocking_getaddrinfo (socket.hpp) on the loop's default executor, so
// that a slow DNS server stalls one worker thread instead of every task. A numeric host
// with a given type (SOCK_STREAM) is answered at once, without a thread, as CPython's
// _ipaddr_info does. Raises gaierror if the name cannot be resolved.
Coroutine<std::vector<AddrInfo>> getaddrinfo(std::string host, int port, int family = AF_UNSPEC,
                                             int type = SOCK_STREAM, int protocol = 0, int flags = 0);

}  // namespace aio
