// Stage 5: HTTP/1.1, the server. StreamResponse (web_stream_response.hpp): the connection
// does the writing; this is the handler's handle on it.
#include "stage5_http/web_stream_response.hpp"

#include "stage3_tasks_futures/exceptions.hpp"
#include "stage5_http/web_protocol.hpp"

namespace aio {

RequestHandler& StreamResponse::connection(const char* what) const {
    if (!request_->connection_)
        throw RuntimeError(std::string("StreamResponse.") + what +
                           "(): only a coroutine handler can stream, while it runs (a plain handler returns a Response)");
    return *request_->connection_;
}

Coroutine<> StreamResponse::prepare() {
    connection("prepare").start_stream(head_);
    prepared_ = true;
    co_return;
}

// [docs:stream_write]
Coroutine<> StreamResponse::write(std::string_view data) {
    RequestHandler& conn = connection("write");
    conn.write_stream(data);        // now: the transport copies what the socket does not take
    co_await conn.drain();          // then wait while its buffer is above the high-water mark
}
// [/docs:stream_write]

Coroutine<> StreamResponse::write_eof() {
    connection("write_eof").end_stream();
    co_return;
}

}  // namespace aio
