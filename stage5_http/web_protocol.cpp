// Stage 5: HTTP/1.1, the server. RequestHandler (web_protocol.hpp): a connection's requests,
// from data_received to the answers.
//
// The fast path, a keep-alive request for a plain handler (bench_http_server measures it
// against nginx), costs: one recv (the transport's), one memcpy into the parser, one parse
// (in place, no allocation), one hash lookup in the router, the handler, one head formatted
// into out_ (no allocation: the Date is cached, out_ keeps its capacity), and one send for
// all the answers of that read. No task, no future, no coroutine frame, no timer: the
// timeouts move a deadline (a double), and the one timer per connection re-arms itself
// only when it fires (set_deadline).
#include "stage5_http/web_protocol.hpp"

#include <algorithm>
#include <utility>

#include "stage4_sockets/exceptions.hpp"
#include "stage5_http/web_stream_response.hpp"

namespace aio {

namespace {

// A response body at least this big is not copied into out_: it leaves with the heads
// before it in one writelines() (one sendmsg), straight from the handler's string.
constexpr std::size_t kCopyBodyBelow = 16 * 1024;
// Answers kept in out_ before they are handed to the transport, at most (see write_response).
constexpr std::size_t kFlushAbove = 64 * 1024;
// Unparsed bytes (requests pipelined behind one in progress, or a body nobody reads yet)
// above which we stop reading from the socket: the kernel's buffers fill and TCP slows the
// client down (see update_reading).
constexpr std::size_t kMaxUnparsed = 64 * 1024;
// Body bytes kept for a coroutine handler that has not read them yet: above this, the
// parser is not asked for more until the handler reads (read_body_chunk).
constexpr std::size_t kMaxBufferedBody = 64 * 1024;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// A client that left is not a bug in the handler: not reported.
bool is_connection_gone(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const ConnectionError&) {
        return true;
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace

RequestHandler::RequestHandler(Ref<HttpServer> server)
    : server_(std::move(server)), parser_(server_->config().limits) {}

void RequestHandler::connection_made(Transport& transport) {
    transport_ = Ref<Transport>(&transport);
    loop_ = &get_running_loop();
    peer_ = transport.get_extra_info().peername;
    request_.remote_ = &peer_;
    request_.transport_ = &transport;
    server_->connection_made(*this);
    // The first request's head is due header_timeout after the connection is made, so a
    // client that connects and sends nothing is a slowloris too.
    head_started_ = loop_->time();
    set_deadline(head_started_ + server_->config().header_timeout);
}

// [docs:data_received]
// Bytes arrived: parse and answer every request they complete, then send every answer
// in one write. Pipelined requests that came in one read leave in one send().
void RequestHandler::data_received(std::string_view data) {
    if (phase_ == Phase::closing) return;  // lingering after an error answer: drop it
    parser_.feed(data);
    process();
    flush();
    update_reading();
    update_deadline();
}

// Pull events from the parser while the exchange in progress can take them.
void RequestHandler::process() {
    try {
        while (can_pull()) {
            HttpEvent e = parser_.next_event();
            switch (e.kind) {
            case HttpEvent::need_data: return;
            case HttpEvent::head: on_head(); break;
            case HttpEvent::data: on_body(e.bytes); break;
            case HttpEvent::end_of_message: on_end_of_message(); break;
            case HttpEvent::upgrade: on_upgrade(); break;
            case HttpEvent::connection_closed: close_when_peer_done(); return;
            case HttpEvent::informational: return;  // (responses only)
            }
        }
    } catch (const HttpError& error) {
        bad_request(error);  // 400, 413, 414, 431, 501, 505: answered, then closed
    }
}

// One request at a time: a new head only once the previous answer is written (and not
// while the client leaves our answers unread); a running coroutine handler's body only
// until some is waiting to be read.
bool RequestHandler::can_pull() const noexcept {
    switch (phase_) {
    case Phase::idle: return !writing_paused_;
    case Phase::body:
    case Phase::discard: return true;
    case Phase::running: return !body_done_ && body_.size() < kMaxBufferedBody;
    case Phase::closing: return false;
    }
    return false;
}
// [/docs:data_received]

// [docs:on_head]
// A request's head is complete: find its handler. A plain one waits for the body (it is
// usually in the same read); a coroutine one starts now, as a task, and reads the body
// itself if it wants it.
void RequestHandler::on_head() {
    HttpRequestHead& head = parser_.head();
    request_.head_ = &head;  // the parser's: valid until the next head, which waits for us
    request_.set_target_parts();
    request_.body_ = {};
    body_.clear();
    body_done_ = false;
    body_error_ = nullptr;
    stream_started_ = stream_ended_ = false;
    head_started_ = 0;
    is_head_ = head.method() == "HEAD";
    // After a CONNECT (which we never tunnel) the client's next bytes are not HTTP.
    keep_alive_ = head.keep_alive && !shutting_down_ && !(head.upgrade && head.method() == "CONNECT");
    // RFC 9110 §10.1.1: a 100 (Continue) only to an HTTP/1.1 client that announced a body.
    continue_pending_ = head.expect_continue && head.version.minor >= 1 && head.framing != BodyFraming::none;

    RouteMatch match = server_->router().resolve(head.method(), request_.path(), request_.match_);
    if (match.handler && match.handler->is_async()) {
        start_coroutine_handler(*match.handler);
        return;
    }
    handler_ = match.handler;
    if (!handler_) miss_ = std::move(match);
    phase_ = Phase::body;
    if (continue_pending_) send_continue();  // a plain handler needs the body: ask for it
}
// [/docs:on_head]

void RequestHandler::on_body(std::string_view bytes) {
    if (phase_ == Phase::discard) return;
    body_.append(bytes);
    if (phase_ == Phase::running) wake(body_waiter_);
}

void RequestHandler::on_end_of_message() {
    body_done_ = true;
    switch (phase_) {
    case Phase::body: call_plain_handler(); break;
    case Phase::running: wake(body_waiter_); break;
    case Phase::discard:
        phase_ = Phase::idle;
        // Its answer went out before the shutdown began, saying keep-alive: now idle, the
        // connection is one that shutdown closes at once, not one to wait for.
        if (shutting_down_) begin_shutdown();
        break;
    default: break;
    }
}

// An upgrade request (Upgrade: websocket, CONNECT) has been answered as plain HTTP: after a
// CONNECT the connection closes (keep_alive_ said so); otherwise the client goes on in HTTP
// (RFC 9110 §7.8: a server may ignore Upgrade).
void RequestHandler::on_upgrade() { parser_.resume(); }

void RequestHandler::call_plain_handler() {
    request_.body_ = body_;
    // Initialised from the call, not assigned after: a Response is five members to move
    // (measured: the move-assignment cost more than the router's lookup).
    Response response = plain_answer();
    write_response(response);
    finish_exchange();
}

Response RequestHandler::plain_answer() {
    if (handler_) {
        try {
            return handler_->call(request_);
        } catch (...) {
            report("handler", std::current_exception());
            return error_response(500, "the handler failed; the server's log says why");
        }
    }
    if (miss_.status == 405) {
        Response response = error_response(405, std::string(request_.method()) + " is not one of the methods of " +
                                                    std::string(request_.path()));
        response.headers.add("Allow", miss_.allow);
        return response;
    }
    return error_response(404, "no route for " + std::string(request_.path()));
}

void RequestHandler::start_coroutine_handler(const Handler& handler) {
    phase_ = Phase::running;
    request_.connection_ = this;
    try {
        task_ = create_task(*loop_, handler.start(request_));
    } catch (...) {  // the handler's function threw before its coroutine even started
        report("handler", std::current_exception());
        request_.connection_ = nullptr;
        Response response = error_response(500, "the handler failed; the server's log says why");
        if (continue_pending_) keep_alive_ = false;
        write_response(response);
        finish_exchange();
        return;
    }
    // The callback holds the connection: the handler's Request& is a member of it.
    Ref<RequestHandler> self(this);
    task_->add_done_callback([self](FutureBase&) { self->handler_done(); }, "HTTP handler done");
}

// A coroutine handler's task has finished: write its answer (unless it streamed one), then
// go on with the requests that arrived meanwhile.
void RequestHandler::handler_done() {
    Ref<Task<Response>> task = std::move(task_);
    request_.connection_ = nullptr;
    if (phase_ != Phase::running) {  // abandoned: the connection was lost or answered an error
        if (!task->cancelled())
            if (std::exception_ptr e = task->exception(); e && !is_connection_gone(e)) report("handler", e);
        return;
    }
    Response response;
    std::exception_ptr failure = task->cancelled() ? cancelled_error_of(*task) : task->exception();
    if (failure) {
        if (!is_connection_gone(failure)) report("handler", failure);
        if (stream_started_) {  // half a body is out: only closing can tell the client
            phase_ = Phase::closing;
            transport_->abort();
            return;
        }
        response = error_response(500, "the handler failed; the server's log says why");
    } else {
        response = task->result();
    }
    // The client waits for a 100 we never sent, or sends the body anyway: we cannot know
    // which, so this connection ends with this answer.
    if (!body_done_ && continue_pending_) keep_alive_ = false;
    if (stream_started_)
        end_stream();
    else
        write_response(response);
    finish_exchange();
    process();
    flush();
    update_reading();
    update_deadline();
}

// [docs:write_response]
// Appends the answer to out_, which flush() sends with the other answers of the same read.
void RequestHandler::write_response(Response& response) {
    const ResponseFraming framing{request_.version(), keep_alive_};
    const std::size_t mark = out_.size();
    try {
        append_response_head(out_, response, framing);
    } catch (const std::invalid_argument&) {  // a status or a field the server cannot send
        out_.resize(mark);
        report("response of the handler", std::current_exception());
        response = error_response(500, "the handler's response was invalid; the server's log says why");
        append_response_head(out_, response, framing);
    }
    ++requests_;
    ++server_->handled_;
    const bool bodiless = response.status < 200 || response.status == 204 || response.status == 304;
    if (is_head_ || bodiless || response.body.empty()) return;
    if (response.body.size() < kCopyBodyBelow) {
        out_.append(response.body);
        // Many answers to one read (a burst of pipelined requests): hand them over now and
        // then, so that a client that does not read them pauses us (pause_writing, and
        // can_pull() stops) before they pile up here.
        if (out_.size() >= kFlushAbove) flush();
        return;
    }
    // A large body is not copied: it leaves after the heads before it, in one sendmsg().
    transport_->writelines({std::string_view(out_), std::string_view(response.body)});
    out_.clear();
}
// [/docs:write_response]

// The answer is written: what next for the connection?
void RequestHandler::finish_exchange() {
    handler_ = nullptr;
    request_.connection_ = nullptr;
    if (!keep_alive_) {
        close_after_response();
    } else if (!body_done_) {
        phase_ = Phase::discard;  // answered without reading the body: drop the rest of it
    } else {
        phase_ = Phase::idle;
    }
}

void RequestHandler::flush() {
    if (out_.empty() || !transport_) return;
    transport_->write(out_);  // one send(); what the socket does not take, it buffers
    out_.clear();
}

void RequestHandler::send_continue() {
    continue_pending_ = false;
    out_.append(kContinue);
}

void RequestHandler::resume_writing() {
    writing_paused_ = false;
    wake(drain_waiter_);
    if (phase_ != Phase::idle) return;
    process();  // the requests that waited for the client to read our answers
    flush();
    update_reading();
    update_deadline();
}

bool RequestHandler::eof_received() {
    peer_eof_ = true;
    if (phase_ == Phase::closing) return false;  // lingering: the client is done, so are we
    parser_.feed_eof();
    process();  // a request cut short is a 400; between requests, connection_closed
    flush();
    // While a handler runs, keep our side open for its answer; its end closes it. A FIN is
    // only the client's half of the connection (RFC 9112 §9.6: it may still read), so the
    // handler is not cancelled, as aiohttp since 3.9 by default (handler_cancellation=False);
    // a reset or a failed write, connection_lost below, does cancel it.
    return phase_ == Phase::running;
}

void RequestHandler::connection_lost(std::exception_ptr) {
    lost_ = true;
    phase_ = Phase::closing;
    if (timer_) timer_->cancel();
    timer_ = nullptr;
    deadline_ = 0;
    if (!body_error_)
        body_error_ = std::make_exception_ptr(ConnectionResetError(0, "the client closed the connection"));
    wake(body_waiter_);
    wake(drain_waiter_);
    if (task_) task_->cancel();  // nobody is left to answer
    server_->connection_lost(*this);
    request_.transport_ = nullptr;
    transport_ = nullptr;
}

void RequestHandler::begin_shutdown() {
    shutting_down_ = true;
    if (phase_ == Phase::closing) return;
    if (phase_ == Phase::idle && parser_.buffered() == 0) {
        phase_ = Phase::closing;
        transport_->close();
        return;
    }
    keep_alive_ = false;  // the answer in flight says "Connection: close", then we close
}

void RequestHandler::abort() {
    if (transport_) transport_->abort();
}

// ------------------------------------------------------------------------ the rare paths

// [docs:bad_request]
// A malformed request (HttpError from the parser): answer with its status and what was
// wrong, then close. No handler sees it; a handler already running for this request (its
// body was the fault: too large, badly chunked) is cancelled.
void RequestHandler::bad_request(const HttpError& error) {
    body_error_ = std::make_exception_ptr(error);
    if (task_) task_->cancel();  // handler_done will find the exchange abandoned
    if (stream_started_) {  // an answer is half sent: only closing can say something went wrong
        phase_ = Phase::closing;
        transport_->abort();
        return;
    }
    keep_alive_ = false;
    Response response = error_response(error.status(), error.problem());
    append_response_head(out_, response, ResponseFraming{HttpVersion{1, 1}, false});
    out_.append(response.body);
    ++server_->handled_;
    body_done_ = false;  // the client may still be sending: linger
    close_after_response();
}
// [/docs:bad_request]

// The last answer is written and the connection ends. If the client may still be sending
// (a body we did not read, requests behind this one), closing now would make the kernel
// answer its bytes with a reset, which can destroy our answer before the client reads it.
// So shut only our side (the client reads the answer, then EOF), read and drop what still
// comes, and close when the client closes, or after lingering_timeout (nginx's lingering
// close).
void RequestHandler::close_after_response() {
    phase_ = Phase::closing;
    flush();
    if (peer_eof_ || (body_done_ && parser_.buffered() == 0)) {
        transport_->close();
        return;
    }
    transport_->write_eof();
    if (reading_paused_) {
        transport_->resume_reading();
        reading_paused_ = false;
    }
    set_deadline(loop_->time() + server_->config().lingering_timeout);
}

// The client closed its side between requests: nothing more to answer.
void RequestHandler::close_when_peer_done() {
    phase_ = Phase::closing;
    flush();
    transport_->close();
}

void RequestHandler::report(const std::string& what, std::exception_ptr exc) {
    std::string message = "Exception in HTTP " + what;
    if (request_.head_)
        message += " for " + std::string(request_.method()) + " " + std::string(request_.target().substr(0, 200));
    message += " (client " + peer_.to_string() + ")";
    loop_->call_exception_handler(ExceptionContext{message, exc});
}

void RequestHandler::wake(Ref<Future<>>& waiter) {
    Ref<Future<>> w = std::move(waiter);
    if (w && !w->done()) w->set_result();
}

// ------------------------------------------------------------------------------ timeouts

// [docs:timeouts]
// What the connection is waiting for decides its deadline, recomputed after each read:
// idle, the next request's first byte (keepalive_timeout); a head under way, its end, at
// header_timeout after its first byte (slowloris: a head sent one byte every few seconds
// is cut off after header_timeout in all, however its bytes are spaced); a body, its next
// bytes, also while a coroutine handler waits for them; a running handler otherwise,
// nothing (its own business).
void RequestHandler::update_deadline() {
    if (lost_) return;
    const ServerConfig& config = server_->config();
    switch (phase_) {
    case Phase::idle:
        if (parser_.buffered() > 0 || requests_ == 0) {
            if (head_started_ == 0) head_started_ = loop_->time();
            set_deadline(head_started_ + config.header_timeout);
        } else {
            set_deadline(loop_->time() + config.keepalive_timeout);
        }
        break;
    case Phase::body:
    case Phase::discard: set_deadline(loop_->time() + config.header_timeout); break;
    case Phase::running:
        set_deadline(waiting_for_body() ? loop_->time() + config.header_timeout : 0);
        break;
    case Phase::closing: break;  // lingering has its own deadline
    }
}

// A timer per request (call_later, then cancel when the request completes) would cost an
// allocation and two heap operations per request, and a busy keep-alive connection moves
// its deadline on every request. So the deadline is a plain number, and one timer per
// connection fires at the earliest deadline it was armed for; if the deadline has moved
// later since, it re-arms itself for the new one (on_timer). A connection that serves a
// thousand requests in its keep-alive period re-arms once, not a thousand times.
void RequestHandler::set_deadline(double when) {
    deadline_ = when;
    if (when == 0 || lost_) return;
    if (timer_ && timer_when_ <= when) return;  // it fires first, and re-arms for the rest
    if (timer_) timer_->cancel();
    timer_when_ = when;
    // `this`, not a Ref: connection_lost cancels the timer, and a cancelled handle never runs.
    timer_ = loop_->call_at(when, [this] { on_timer(); }, "HTTP connection timeout");
}

void RequestHandler::on_timer() {
    timer_ = nullptr;
    if (lost_ || deadline_ == 0) return;
    if (loop_->time() < deadline_) {
        set_deadline(deadline_);  // moved on since it was armed
        return;
    }
    deadline_ = 0;
    timed_out();
}
// [/docs:timeouts]

void RequestHandler::timed_out() {
    switch (phase_) {
    case Phase::idle:
        if (parser_.buffered() == 0) {  // an idle keep-alive connection, or one that never spoke
            phase_ = Phase::closing;
            transport_->close();
            return;
        }
        [[fallthrough]];
    case Phase::body:
    case Phase::discard: {
        keep_alive_ = false;
        Response response =
            error_response(408, "the request did not arrive within header_timeout (" +
                                    std::to_string(server_->config().header_timeout) + " s)");
        append_response_head(out_, response, ResponseFraming{HttpVersion{1, 1}, false});
        out_.append(response.body);
        ++server_->handled_;
        body_done_ = false;
        close_after_response();
        return;
    }
    case Phase::closing: transport_->abort(); return;  // lingered long enough
    case Phase::running:
        // The handler waits for a body that has stopped coming: cancelled, 408, and close.
        if (waiting_for_body())
            bad_request(HttpError(408, parser_.offset(), "the body's next bytes did not arrive within header_timeout (" +
                                                           std::to_string(server_->config().header_timeout) + " s)"));
        return;
    }
}

// A coroutine handler is waiting in read_body_chunk() for bytes of the body.
bool RequestHandler::waiting_for_body() const noexcept { return body_waiter_ && !body_waiter_->done(); }

// [docs:update_reading]
// Stop reading from the socket while bytes pile up that we cannot parse yet (requests
// pipelined behind a slow one, a body the handler does not read, a client that does not
// read our answers): the kernel's buffers fill, and TCP makes the client wait. So a client
// can make us hold at most kMaxUnparsed bytes plus one read, never more.
void RequestHandler::update_reading() {
    if (phase_ == Phase::closing || lost_) return;
    const bool full = !can_pull() && parser_.buffered() >= kMaxUnparsed;
    if (full && !reading_paused_) {
        transport_->pause_reading();
        reading_paused_ = true;
    } else if (!full && reading_paused_) {
        transport_->resume_reading();
        reading_paused_ = false;
    }
}
// [/docs:update_reading]

// ------------------------------------------------------- for Request and StreamResponse

// A coroutine handler asks for the next piece of the body. What the parser delivered
// meanwhile is handed over whole; reading makes room, so the parser is asked for more.
Coroutine<std::string> RequestHandler::read_body_chunk() {
    Ref<RequestHandler> self(this);
    for (;;) {
        if (!body_.empty()) {
            std::string piece;
            piece.swap(body_);
            if (phase_ == Phase::running) {
                process();
                flush();
                update_reading();
            }
            co_return piece;
        }
        if (body_done_) co_return std::string();
        if (body_error_) std::rethrow_exception(body_error_);
        if (phase_ != Phase::running)
            throw RuntimeError("Request::read(): the body can only be read while the handler runs");
        if (continue_pending_) {  // the client waits for our go-ahead before sending the body
            send_continue();
            flush();
        }
        Ref<Future<>> waiter = create_future(*loop_);
        body_waiter_ = waiter;
        update_deadline();  // the body's next bytes are due within header_timeout
        co_await waiter;
    }
}

void RequestHandler::start_stream(const Response& head) {
    if (client_gone()) throw ConnectionResetError(0, "StreamResponse.prepare(): the client closed the connection");
    if (phase_ != Phase::running) throw RuntimeError("StreamResponse.prepare(): the exchange is over");
    if (stream_started_) throw RuntimeError("StreamResponse.prepare() called twice");
    // An HTTP/1.0 client knows no chunked coding: the body runs until we close.
    stream_chunked_ = request_.version().minor >= 1;
    if (!stream_chunked_ || (!body_done_ && continue_pending_)) keep_alive_ = false;
    append_response_head(out_, head, ResponseFraming{request_.version(), keep_alive_, stream_chunked_, !stream_chunked_});
    stream_started_ = true;
    ++requests_;
    ++server_->handled_;
    flush();
}

void RequestHandler::write_stream(std::string_view data) {
    if (client_gone()) throw ConnectionResetError(0, "StreamResponse.write(): the client closed the connection");
    if (!stream_started_ || stream_ended_) throw RuntimeError("StreamResponse.write() before prepare() or after write_eof()");
    if (is_head_ || data.empty()) return;
    if (!stream_chunked_) {
        transport_->write(data);
        return;
    }
    char size_line[20];
    int n = 0;
    char hex[16];
    int h = 0;
    for (std::size_t size = data.size(); size; size >>= 4) hex[h++] = "0123456789abcdef"[size & 15];
    while (h) size_line[n++] = hex[--h];
    size_line[n++] = '\r';
    size_line[n++] = '\n';
    // Size line, bytes and CRLF in one sendmsg(), without copying the bytes first.
    transport_->writelines({std::string_view(size_line, std::size_t(n)), data, std::string_view("\r\n")});
}

void RequestHandler::end_stream() {
    if (stream_ended_ || lost_) return;
    stream_ended_ = true;
    if (stream_chunked_ && !is_head_) transport_->write("0\r\n\r\n");
}

Coroutine<> RequestHandler::drain() {
    Ref<RequestHandler> self(this);
    while (writing_paused_ && !client_gone()) {
        Ref<Future<>> waiter = create_future(*loop_);
        drain_waiter_ = waiter;
        co_await waiter;
    }
    if (client_gone()) throw ConnectionResetError(0, "StreamResponse.write(): the client closed the connection");
}

// The client has gone, or is going: a send failed (a reset) and the transport is closing,
// though its connection_lost, a callback, has not run yet. A handler that writes in a loop
// must hear it now: drain() does not suspend unless the buffer is full, and writes into a
// closing transport are dropped without filling it, so a handler streaming without pause
// would otherwise never yield to the loop, and never learn (asyncio's drain() yields once
// for the same reason).
bool RequestHandler::client_gone() const noexcept { return lost_ || !transport_ || transport_->is_closing(); }

}  // namespace aio
