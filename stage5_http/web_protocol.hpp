// Stage 5: HTTP/1.1, the server. One connection of an HttpServer: a Protocol that parses
// requests as their bytes arrive and answers them in order.
//
// Adds:    RequestHandler (the protocol; its phases, keep-alive, pipelining, 100-continue,
//          the error answers, the timeouts, flow control both ways).
// Mirrors: aiohttp's RequestHandler (web_protocol.py), also an asyncio.Protocol. aiohttp
//          starts one task per connection that loops over the requests; ours starts none:
//          a plain handler is called right in data_received, and only a coroutine handler
//          gets a task, for its one request.
//
// [docs:request_path]
// The path of a request through the server, and back:
//
//   selector: fd readable -> transport.read_ready(): recv() into the loop's read buffer
//     RequestHandler::data_received(view)
//       parser.feed(view); process():  next_event() until need_data
//         head            -> router.resolve(method, path)
//                              plain handler: wait for the body (usually already here)
//                              coroutine handler: create_task(handler(request))
//         data            -> the body: kept for the handler
//         end_of_message  -> plain: response = handler(request), its head and body
//                              appended to out_ (no send yet), and the next request
//       flush(): transport.write(out_): one send() for every response of this read
//     ... a coroutine handler's task finishes (a done callback): its response is written,
//         and process() goes on with the requests that arrived meanwhile.
// [/docs:request_path]
//
// One request at a time: the next request (pipelined behind it) is not even parsed until
// this one's answer is written, so answers leave in the order of the requests, a slow
// handler holds back the answers behind it and never the other way round, and a client
// that sends requests faster than it reads the answers fills the kernel's buffers (reading
// is paused), not our memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "stage3_tasks_futures/future.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/protocols.hpp"
#include "stage4_sockets/transports.hpp"
#include "stage5_http/http_parser.hpp"
#include "stage5_http/web_request.hpp"
#include "stage5_http/web_response.hpp"
#include "stage5_http/web_server.hpp"

namespace aio {

class StreamResponse;

class RequestHandler final : public Protocol {
public:
    explicit RequestHandler(Ref<HttpServer> server);

    void connection_made(Transport& transport) override;
    void data_received(std::string_view data) override;
    bool eof_received() override;
    void connection_lost(std::exception_ptr exc) override;
    void pause_writing() override { writing_paused_ = true; }
    void resume_writing() override;

    // HttpServer::shutdown: close at once if idle, else after the answer in flight (which
    // then says "Connection: close").
    void begin_shutdown();
    // Close now; a running coroutine handler is cancelled.
    void abort();

private:
    friend class Request;
    friend class StreamResponse;

    // What the connection is doing. One request at a time (see the top of this file).
    enum class Phase : std::uint8_t {
        idle,     // between requests: waiting for (the rest of) a head
        body,     // a plain handler's request (or a 404/405): its body is arriving
        running,  // a coroutine handler's task runs
        discard,  // answered before the body was read: the rest of it is read and dropped
        closing,  // nothing more is read or answered: closing, or lingering after an error
    };

    void process();
    bool can_pull() const noexcept;
    void on_head();
    void on_body(std::string_view bytes);
    void on_end_of_message();
    void on_upgrade();
    void call_plain_handler();
    Response plain_answer();
    void start_coroutine_handler(const Handler& handler);
    void handler_done();
    void write_response(Response& response);
    void finish_exchange();
    void flush();
    void send_continue();

    // The rare paths.
    void bad_request(const HttpError& error);
    void close_after_response();
    void close_when_peer_done();
    void report(const std::string& what, std::exception_ptr exc);

    // Timeouts: one lazy timer per connection (see set_deadline).
    void update_deadline();
    void set_deadline(double when);
    void on_timer();
    void timed_out();
    bool waiting_for_body() const noexcept;

    // Flow control of what we read: pause the socket while requests or body pile up.
    void update_reading();

    // For Request and StreamResponse (a coroutine handler).
    Coroutine<std::string> read_body_chunk();
    void start_stream(const Response& head);
    void write_stream(std::string_view data);
    void end_stream();
    Coroutine<> drain();
    bool client_gone() const noexcept;
    void wake(Ref<Future<>>& waiter);

    Ref<HttpServer> server_;
    Ref<Transport> transport_;  // from connection_made to connection_lost
    EventLoop* loop_ = nullptr;
    HttpRequestParser parser_;
    Phase phase_ = Phase::idle;
    SockAddr peer_;

    // The exchange in progress.
    Request request_;
    const Handler* handler_ = nullptr;  // a plain handler, waiting for its body
    RouteMatch miss_;                   // no handler: the 404 or 405 to answer
    Ref<Task<Response>> task_;          // a coroutine handler's task
    std::string body_;                  // the body kept for the handler
    bool body_done_ = false;            // the request's end_of_message has been parsed
    bool keep_alive_ = true;            // the answer keeps the connection
    bool is_head_ = false;              // HEAD: the answer has no body
    bool continue_pending_ = false;     // "Expect: 100-continue", and no 100 sent yet
    bool stream_started_ = false;       // a StreamResponse sent the head
    bool stream_ended_ = false;         // ... and its last chunk
    bool stream_chunked_ = true;        // ... in chunks (else until close: HTTP/1.0)
    std::exception_ptr body_error_;     // why the body cannot be read any more
    Ref<Future<>> body_waiter_;         // read_body_chunk() waits for data
    Ref<Future<>> drain_waiter_;        // drain() waits for resume_writing

    std::string out_;  // answers not yet handed to the transport (flush())
    std::uint64_t requests_ = 0;  // answered on this connection
    bool writing_paused_ = false;
    bool reading_paused_ = false;
    bool peer_eof_ = false;
    bool shutting_down_ = false;
    bool lost_ = false;

    // The lazy timer: deadline_ is when the connection times out (0: never); timer_ fires at
    // timer_when_ <= deadline_ and, if the deadline has moved on since, re-arms itself.
    double deadline_ = 0;
    double timer_when_ = 0;
    double head_started_ = 0;  // when the first byte of the head being read arrived
    Ref<TimerHandle> timer_;
};

}  // namespace aio
