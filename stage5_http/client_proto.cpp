// Stage 5: HTTP/1.1. The client's side of one connection. See client_proto.hpp.
#include "stage5_http/client_proto.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "stage2_custom_loop/exceptions.hpp"
#include "stage3_tasks_futures/task.hpp"
#include "stage4_sockets/exceptions.hpp"
#include "stage5_http/client_exceptions.hpp"

namespace aio {

// [docs:response_handler]
// The transport's reader callback: hand the view to the parser and wake the reading task.
// Nothing is parsed here: the task does that when it runs, as far as it needs.
void ResponseHandler::data_received(std::string_view data) {
    if (broken_ || eof_) return;
    if (idle) {  // no request is waiting for these bytes: the connection is out of step
        close();
        return;
    }
    received_ += data.size();
    parser_.feed(data);
    if (!paused_ && parser_.buffered() > kHighWater) {
        paused_ = true;
        transport_->pause_reading();
    }
    wake();
}

// The reading task's side: the parser's next event. need_data is where it waits.
HttpEvent ResponseHandler::next_event() {
    HttpEvent e;
    try {
        e = parser_.next_event();
    } catch (const HttpError&) {
        broken_ = true;  // nobody knows where the next message would start: close
        close();
        throw;
    }
    if (e.kind == HttpEvent::head) keep_alive_ = parser_.head().keep_alive;
    if (paused_ && parser_.buffered() <= kLowWater && !lost_) {
        paused_ = false;
        transport_->resume_reading();
    }
    // The connection broke with an error (a reset), or we closed it, and the parser wants
    // more: it will never come. (A clean close by the peer was fed to the parser as EOF,
    // which decides for itself: a body that ends at close, or a message cut short.)
    if (e.kind == HttpEvent::need_data) {
        if (lost_error_) {
            broken_ = true;
            std::rethrow_exception(lost_error_);
        }
        if (closed_) throw ClientConnectionError("the connection was closed (by close(), or the session's close())");
    }
    return e;
}
// [/docs:response_handler]

Coroutine<> ResponseHandler::wait_for_data() {
    Ref<ResponseHandler> self(this);  // the connection may be dropped by everyone else meanwhile
    if (lost_ || eof_ || broken_) co_return;  // nothing more will come: next_event() decides
    if (waiter_)
        throw RuntimeError("ResponseHandler::wait_for_data: another task is already reading this connection");
    Ref<Future<>> waiter = create_future();
    waiter_ = waiter;
    // However the wait ends (woken, cancelled, the task destroyed), forget the waiter.
    struct Forget {
        ResponseHandler& handler;
        const Ref<Future<>>& waiter;
        ~Forget() {
            if (handler.waiter_ == waiter) handler.waiter_ = nullptr;
        }
    } forget{*this, waiter};
    co_await waiter;
}

void ResponseHandler::wake() noexcept {
    if (waiter_ && !waiter_->done()) waiter_->set_result();
}

void ResponseHandler::connection_made(Transport& transport) {
    transport_ = Ref<Transport>(&transport);
    // A request is written with one send and then we wait for the answer: Nagle's algorithm
    // could only hold back the tail of a large request. aiohttp sets TCP_NODELAY too.
    if (Socket* sock = transport.get_extra_info().socket) {
        try {
            sock->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
        } catch (const OSError&) {  // not TCP (a Unix socket): nothing to turn off
        }
    }
}

bool ResponseHandler::eof_received() {
    if (!eof_ && !broken_) {
        eof_ = true;
        parser_.feed_eof();
    }
    wake();
    return false;  // the transport closes; connection_lost follows
}

void ResponseHandler::connection_lost(std::exception_ptr exc) {
    lost_ = true;
    if (!eof_ && !broken_) {
        if (exc) {
            lost_error_ = exc;
        } else {
            eof_ = true;
            parser_.feed_eof();
        }
    }
    wake();
}

bool ResponseHandler::is_connected() const noexcept {
    return transport_ && !lost_ && !eof_ && !broken_ && !transport_->is_closing();
}

void ResponseHandler::send_request(std::string_view head, std::string_view body, std::string_view method) {
    parser_.set_request_method(method);
    received_at_request_ = received_;
    ++requests_;
    if (body.empty())
        transport_->write(head);
    else
        transport_->writelines({head, body});
}

bool ResponseHandler::reusable() const noexcept { return keep_alive_ && parser_.buffered() == 0 && is_connected(); }

void ResponseHandler::close() {
    closed_ = broken_ = true;
    if (transport_ && !transport_->is_closing()) transport_->abort();
}

}  // namespace aio
