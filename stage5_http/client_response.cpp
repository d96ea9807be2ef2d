// Stage 5: HTTP/1.1. A client's response and its body. See client_response.hpp.
#include "stage5_http/client_response.hpp"

#include <cstdio>
#include <limits>

#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/timeouts.hpp"
#include "stage4_sockets/exceptions.hpp"
#include "stage5_http/client_exceptions.hpp"

namespace aio {

namespace detail {

ResponseState::ResponseState(std::string method_, URL url_, Connection connection_, HttpResponseHead head_)
    : method(std::move(method_)), url(std::move(url_)), connection(std::move(connection_)), head(std::move(head_)) {}

// [docs:read_some]
// The body's next piece: what read(n) left over, else the parser's next data event. The
// bytes are copied out of the parser's buffer once, into the string returned.
Coroutine<std::string> ResponseState::read_some(Ref<ResponseState> self, std::size_t max) {
    if (self->leftover_pos < self->leftover.size()) {
        std::string piece = self->leftover.substr(self->leftover_pos, max);
        self->leftover_pos += piece.size();
        if (self->leftover_pos == self->leftover.size()) {
            self->leftover.clear();
            self->leftover_pos = 0;
        }
        co_return piece;
    }
    for (;;) {
        if (self->eof) co_return std::string();
        if (!self->connection)
            throw ClientPayloadError("the body of " + self->describe() + " cannot be read: the response was closed");
        HttpEvent e;
        try {
            e = self->connection.protocol().next_event();
        } catch (const HttpError& err) {
            self->connection.close();
            throw ClientPayloadError("the body of " + self->describe() + " is malformed: " + err.what());
        } catch (const std::runtime_error& err) {  // OSError (a reset), ClientConnectionError (closed)
            self->connection.close();
            throw ClientPayloadError("the body of " + self->describe() + " was cut short: " + err.what());
        }
        if (e.kind == HttpEvent::data) {
            if (e.bytes.size() <= max) co_return std::string(e.bytes);
            self->leftover.assign(e.bytes.substr(max));  // the parser's view dies at the next feed
            co_return std::string(e.bytes.substr(0, max));
        }
        if (e.kind == HttpEvent::end_of_message) {
            self->eof = true;
            self->connection.release();  // back to the pool, if it may carry another request
            co_return std::string();
        }
        if (e.kind != HttpEvent::need_data) {  // (a head or a close cannot come inside a body)
            self->connection.close();
            throw ClientPayloadError("the body of " + self->describe() + " ended unexpectedly (" +
                                     to_string(e.kind) + ")");
        }
        co_await wait(self);
    }
}
// [/docs:read_some]

// The total timeout covers the body too: each wait for data runs in a timeout_at() scope
// with the request's deadline, so a server that stops sending in the middle of a body
// cannot hold the reader longer than the request was allowed.
Coroutine<> ResponseState::wait(Ref<ResponseState> self) {
    ResponseHandler& handler = self->connection.protocol();
    if (!self->deadline) {
        co_await handler.wait_for_data();
        co_return;
    }
    auto waiting = handler.wait_for_data();
    bool expired = false;
    try {
        co_await timeout_at(*self->deadline, std::move(waiting));
    } catch (const TimeoutError&) {
        expired = true;
    }
    if (expired) {
        self->connection.close();
        char total[32];
        std::snprintf(total, sizeof total, "%g", self->total);
        throw TimeoutError(std::string("total timeout of ") + total + " s expired while reading the body of " +
                           self->describe() + " (ClientTimeout::total)");
    }
}

// The rest of the body, in one string; kept, so that read() again returns it.
Coroutine<std::string> ResponseState::read_all(Ref<ResponseState> self) {
    if (self->body) co_return *self->body;
    std::string body;
    if (self->head.framing == BodyFraming::content_length && self->head.content_length <= (std::uint64_t(64) << 20))
        body.reserve(std::size_t(self->head.content_length));  // one allocation for a known size (up to 64 MiB)
    for (;;) {
        std::string piece = co_await read_some(self, std::numeric_limits<std::size_t>::max());
        if (piece.empty()) break;
        body += piece;
    }
    self->body = body;
    co_return body;
}

void ResponseState::finish_if_empty() {
    if (head.framing != BodyFraming::none) return;
    try {
        if (connection.protocol().next_event().kind == HttpEvent::end_of_message) {
            eof = true;
            connection.release();
        }
    } catch (const std::exception&) {  // cannot happen for an empty body; be safe: close
        connection.close();
    }
}

}  // namespace detail

// ----------------------------------------------------------------------------- ResponseContent

Coroutine<std::string> ResponseContent::read(std::ptrdiff_t n) {
    Ref<detail::ResponseState> state(state_);
    if (n >= 0) return detail::ResponseState::read_some(state, std::size_t(n));
    return detail::ResponseState::read_all(state);
}

Coroutine<std::string> ResponseContent::readany() {
    return detail::ResponseState::read_some(Ref<detail::ResponseState>(state_), std::numeric_limits<std::size_t>::max());
}

bool ResponseContent::at_eof() const noexcept { return state_->eof && state_->leftover_pos == state_->leftover.size(); }

std::size_t ResponseContent::buffered() const noexcept {
    std::size_t n = state_->leftover.size() - state_->leftover_pos;
    if (state_->connection) n += state_->connection.protocol().buffered();
    return n;
}

// ------------------------------------------------------------------------------ ClientResponse

ClientResponse& ClientResponse::operator=(ClientResponse&& o) noexcept {
    if (this != &o) {
        close();
        state_ = std::move(o.state_);
        history_ = std::move(o.history_);
    }
    return *this;
}

std::optional<std::uint64_t> ClientResponse::content_length() const noexcept {
    if (state_->head.framing != BodyFraming::content_length) return std::nullopt;
    return state_->head.content_length;
}

void ClientResponse::raise_for_status() const {
    if (ok()) return;
    throw ClientResponseError(status(), std::to_string(status()) + " " + std::string(reason()) + " for " +
                                            state_->describe());
}

Coroutine<std::string> ClientResponse::read() { return detail::ResponseState::read_all(state_); }

void ClientResponse::close() noexcept {
    if (state_) state_->connection.close();  // (nothing if the body's end released it already)
}

}  // namespace aio
