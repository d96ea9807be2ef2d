// Stage 5: HTTP/1.1. The baseline: a client on plain blocking sockets, one request at a
// time per thread, as Python's `requests` is.
//
// Adds:    BlockingSession (request, get, post, close; keep-alive per host), BlockingResponse,
//          BlockingTimeout, blocking_get.
// Mirrors: requests' Session and Response (sessions.py, models.py) over urllib3's pool;
//          timeout=(connect, read) as requests takes it.
//
// It shares the message layer with ClientSession: the same request bytes
// (write_request_head_for), the same parser, the same redirect rules (follow_redirect) and
// the same stale-connection rule (is_idempotent). What differs is only how it waits:
// connect(), send() and recv() block the calling thread, so N requests take N round trips
// one after another, unless N threads each run their own session. That is the comparison
// the demo makes: sequential, a ThreadPoolExecutor of these, run_in_executor, and the
// ClientSession on one thread.
//
// Thread safety: a BlockingSession is used by one thread at a time (its pool is not
// locked); give each thread its own, as the demo's workers do. blocking_get() makes a
// session per call and is safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "stage5_http/client_exceptions.hpp"
#include "stage5_http/client_request.hpp"
#include "stage5_http/http_headers.hpp"
#include "stage5_http/http_message.hpp"
#include "stage5_http/http_parser.hpp"
#include "stage5_http/url.hpp"

namespace aio {

// requests' timeout=(connect, read), in seconds; nullopt waits for ever.
struct BlockingTimeout {
    // For connect() to succeed (per address tried). Expiry: ConnectionTimeoutError.
    std::optional<double> connect = std::nullopt;
    // For each send() and recv() (SO_SNDTIMEO, SO_RCVTIMEO): the longest silence allowed,
    // not a limit on the whole response (as in requests). Expiry: TimeoutError.
    std::optional<double> read = std::nullopt;
};

struct BlockingSessionOptions {
    BlockingTimeout timeout{};
    int max_redirects = 10;  // (requests allows 30; aiohttp and ClientSession 10)
    HttpHeaders headers{};   // sent with every request, unless the request gives its own
    HttpParserLimits parser_limits{};
};

// A whole response: requests' Response, its body already read.
struct BlockingResponse {
    int status = 0;
    std::string reason;
    HttpVersion version;
    HttpHeaders headers;
    std::string body;
    std::string method;  // of the request this answers (after redirects: the last one)
    URL url;
    std::vector<BlockingResponse> history;  // the redirects that led here, oldest first
    bool ok() const noexcept { return status < 400; }
};

class BlockingSession {
public:
    explicit BlockingSession(const BlockingSessionOptions& options = {});
    ~BlockingSession();  // closes the idle connections
    BlockingSession(const BlockingSession&) = delete;
    BlockingSession& operator=(const BlockingSession&) = delete;

    // Send the request, follow redirects, read the whole body, and return the response;
    // the connection stays open for the next request to the same host when the response
    // allows it. Raises what ClientSession raises (client_exceptions.hpp): InvalidURL,
    // ClientConnectorError, ConnectionTimeoutError, TimeoutError (read), ServerDisconnectedError,
    // BadResponseError, ClientPayloadError, TooManyRedirects.
    BlockingResponse request(const std::string& method, std::string_view url, const HttpHeaders& headers = {},
                             std::string body = {});
    BlockingResponse get(std::string_view url, const HttpHeaders& headers = {}) { return request("GET", url, headers); }
    BlockingResponse post(std::string_view url, std::string body, const HttpHeaders& headers = {}) {
        return request("POST", url, headers, std::move(body));
    }
    // Close the idle connections (the session stays usable).
    void close() noexcept;

    std::uint64_t connections_opened() const noexcept { return opened_; }
    std::uint64_t connections_reused() const noexcept { return reused_; }

private:
    struct Conn;  // a blocking socket and its response parser
    BlockingResponse request_once(const ClientRequest& request);
    std::unique_ptr<Conn> connect(const URL& url, const std::string& key);
    std::unique_ptr<Conn> take_idle(const std::string& key);

    BlockingSessionOptions options_;
    std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;
    std::uint64_t opened_ = 0, reused_ = 0;
};

// requests.get(url): one request on a session of its own (no connection is kept).
BlockingResponse blocking_get(std::string_view url, const BlockingTimeout& timeout = {});

}  // namespace aio
