// Stage 5: HTTP/1.1. The client session. See client_session.hpp.
#include "stage5_http/client_session.hpp"

#include <cstdio>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/task.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage3_tasks_futures/timeouts.hpp"
#include "stage4_sockets/exceptions.hpp"

namespace aio {

namespace {

// What the request path needs besides the request itself (one struct, passed by reference
// to the coroutines below: each is awaited by the one that owns it, so it outlives them).
struct Plan {
    Plan(Ref<TCPConnector> c, ClientTimeout t, bool allow, int max)
        : connector(std::move(c)), timeout(t), allow_redirects(allow), max_redirects(max) {}
    Ref<TCPConnector> connector;
    ClientTimeout timeout;
    bool allow_redirects;
    int max_redirects;
    std::optional<double> deadline;  // loop.time() at which the total timeout expires
};

// A connection for `request`, within the connect timeout (`reuse`: from the pool if one is
// idle there).
Coroutine<Connection> get_connection(const Plan& plan, const ClientRequest& request, bool reuse) {
    auto connecting = plan.connector->connect(request.url, reuse);
    if (!plan.timeout.connect) {
        Connection connection = co_await std::move(connecting);
        co_return connection;
    }
    Connection connection;
    bool expired = false;
    try {
        connection = co_await timeout(*plan.timeout.connect, std::move(connecting));
    } catch (const TimeoutError&) {
        expired = true;
    }
    if (expired)
        throw ConnectionTimeoutError("connect timeout of " + format_seconds(*plan.timeout.connect) + " s expired: " +
                                     request.describe() +
                                     " (waiting for a free connection, resolving and connecting; ClientTimeout::connect)");
    co_return connection;
}

// Parser events until the response's head: a 1xx (100 Continue, 103 Early Hints) is
// skipped, as the final answer follows it (RFC 9110 §15.2).
Coroutine<> read_head(ResponseHandler& handler, const ClientRequest& request) {
    for (;;) {
        HttpEvent e;
        try {
            e = handler.next_event();
        } catch (const HttpError& err) {
            throw BadResponseError(err, request.describe());
        } catch (const OSError& err) {  // reset
            throw ServerDisconnectedError("the server closed the connection without answering " + request.describe() +
                                          ": " + err.what());
        }
        if (e.kind == HttpEvent::head) co_return;
        if (e.kind == HttpEvent::connection_closed)
            throw ServerDisconnectedError("the server closed the connection without answering " + request.describe());
        if (e.kind == HttpEvent::need_data) co_await handler.wait_for_data();
        // (informational: skipped; nothing else can come before a head)
    }
}

// [docs:request_once]
// One request and its response's head, on a pooled or new connection. A reused connection
// that the server closed while it sat idle shows up only now: closed (or reset) before a
// single byte of the response. The request never reached the server, so an idempotent one
// is sent once more, on a new connection (aiohttp and urllib3 do the same).
Coroutine<ClientResponse> request_once(const Plan& plan, const ClientRequest& request) {
    std::string head;
    write_request_head_for(head, request);
    for (int attempt = 1;; ++attempt) {
        // (A retry takes a new connection: the others in the pool are likely as stale.)
        Connection connection = co_await get_connection(plan, request, attempt == 1);
        ResponseHandler& handler = connection.protocol();
        handler.send_request(head, request.body, request.method);
        bool stale = false;
        try {
            co_await read_head(handler, request);
        } catch (const ServerDisconnectedError&) {
            stale = attempt == 1 && connection.reused() && !handler.response_started() && is_idempotent(request.method);
            if (!stale) throw;
        }
        if (stale) continue;  // (the old connection closes as `connection` goes)

        auto state = make_ref<detail::ResponseState>(request.method, request.url, std::move(connection),
                                                     std::move(handler.head()));
        state->deadline = plan.deadline;
        state->total = plan.timeout.total.value_or(0);
        state->finish_if_empty();  // HEAD, 204, 304: the connection goes back at once
        co_return ClientResponse(std::move(state));
    }
}
// [/docs:request_once]

// A redirect's body is read and dropped, so that its connection can go back to the pool; a
// large one is not worth it: the connection is closed instead.
Coroutine<> drain(ClientResponse& response) {
    constexpr std::size_t kMaxDrain = 64 * 1024;
    std::size_t drained = 0;
    while (drained <= kMaxDrain) {
        std::string piece = co_await response.content().read(std::ptrdiff_t(kMaxDrain));
        if (piece.empty()) co_return;
        drained += piece.size();
    }
    response.close();
}

// The request, then each redirect in turn (client_request.cpp's follow_redirect has the
// rules), keeping the responses met on the way as the final one's history.
Coroutine<ClientResponse> follow_redirects(const Plan& plan, ClientRequest request) {
    std::vector<ClientResponse> history;
    for (;;) {
        ClientResponse response = co_await request_once(plan, request);
        const int status = response.status();
        std::optional<std::string_view> location = response.headers().get("Location");
        if (!plan.allow_redirects || !is_redirect(status) || !location) {
            response.set_history(std::move(history));
            co_return response;
        }
        if (int(history.size()) >= plan.max_redirects)
            throw TooManyRedirects(status, "too many redirects (more than max_redirects, " +
                                               std::to_string(plan.max_redirects) + ") from " + request.describe() +
                                               ", the last to " + std::string(*location));
        follow_redirect(request, status, *location);  // InvalidURL for a Location we cannot follow
        co_await drain(response);
        history.push_back(std::move(response));
    }
}

// [docs:run_request]
// The whole request inside the total timeout's scope (stage 3's timeout_at): its expiry
// cancels whatever the request is waiting for (a free connection, the connect, the head),
// and the scope turns that cancellation into TimeoutError, which we reword to say which
// timeout expired and for which URL. The deadline stays with the response, whose body
// reads are bounded by it too.
Coroutine<ClientResponse> run_request(Ref<TCPConnector> connector, std::string method, std::string url,
                                      HttpHeaders headers, std::string body, HttpHeaders session_headers,
                                      ClientTimeout timeout, bool allow_redirects, int max_redirects) {
    for (HttpHeaders::Field f : session_headers)
        if (!headers.contains(f.name)) headers.add(f.name, f.value);
    ClientRequest request(std::move(method), URL::parse(url), std::move(headers), std::move(body));
    Plan plan(std::move(connector), timeout, allow_redirects, max_redirects);
    if (!timeout.total) {
        ClientResponse response = co_await follow_redirects(plan, std::move(request));
        co_return response;
    }
    plan.deadline = get_running_loop().time() + *timeout.total;
    const std::string what = request.describe();
    auto requesting = follow_redirects(plan, std::move(request));
    std::optional<ClientResponse> response;
    bool expired = false;
    try {
        response = co_await timeout_at(*plan.deadline, std::move(requesting));
    } catch (const ConnectionTimeoutError&) {
        throw;
    } catch (const TimeoutError&) {
        expired = true;
    }
    if (expired) throw TimeoutError("total timeout of " + format_seconds(*timeout.total) + " s expired: " + what +
                                    " (ClientTimeout::total)");
    co_return std::move(*response);
}
// [/docs:run_request]

}  // namespace

ClientSession::ClientSession(const ClientSessionOptions& options)
    : options_(options),
      connector_(make_ref<TCPConnector>(options.limit, options.limit_per_host, options.keepalive_timeout,
                                        options.parser_limits)) {}

ClientSession::~ClientSession() { connector_->close(); }

Coroutine<ClientResponse> ClientSession::request(std::string method, std::string url, HttpHeaders headers,
                                                 std::string body, RequestOptions options) {
    return run_request(connector_, std::move(method), std::move(url), std::move(headers), std::move(body),
                       options_.headers, options.timeout.value_or(options_.timeout), options.allow_redirects,
                       options.max_redirects.value_or(options_.max_redirects));
}

Coroutine<> ClientSession::close() {
    Ref<TCPConnector> connector = connector_;
    connector->close();
    co_await sleep(0);  // the transports' connection_lost, and so their close(2), run first
}

}  // namespace aio
