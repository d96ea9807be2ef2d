// What the stage 5 client tests ask of a request: the error it raised, named, or its status
// and body. Shared by the client's tests and the fault tests. Header-only.
#pragma once

#include <string>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage5_http/client_exceptions.hpp"
#include "stage5_http/client_session.hpp"
#include "stage5_http/url.hpp"

namespace client_test {

// What a request raised: the exception's what(), prefixed by the class we caught it as.
// (A co_await may not sit inside Catch's macros: g++ 12, stage1_generators/README.md's appendix.)
inline aio::Coroutine<std::string> error_of(aio::Coroutine<std::string> request) {
    try {
        co_await std::move(request);
    } catch (const aio::ConnectionTimeoutError& e) {
        co_return std::string("ConnectionTimeoutError: ") + e.what();
    } catch (const aio::TimeoutError& e) {
        co_return std::string("TimeoutError: ") + e.what();
    } catch (const aio::TooManyRedirects& e) {
        co_return std::string("TooManyRedirects: ") + e.what();
    } catch (const aio::BadResponseError& e) {
        co_return "BadResponseError(" + std::to_string(e.parser_status()) + "): " + e.what();
    } catch (const aio::ClientPayloadError& e) {
        co_return std::string("ClientPayloadError: ") + e.what();
    } catch (const aio::ServerDisconnectedError& e) {
        co_return std::string("ServerDisconnectedError: ") + e.what();
    } catch (const aio::ClientConnectorError& e) {
        co_return std::string("ClientConnectorError: ") + e.what();
    } catch (const aio::ClientConnectionError& e) {
        co_return std::string("ClientConnectionError: ") + e.what();
    } catch (const aio::InvalidURL& e) {
        co_return std::string("InvalidURL: ") + e.what();
    }
    co_return "no error";
}

// GET url and read the body: "status body".
inline aio::Coroutine<std::string> fetch(aio::ClientSession& session, std::string url) {
    aio::ClientResponse r = co_await session.get(url);
    std::string body = co_await r.read();
    co_return std::to_string(r.status()) + " " + body;
}

}  // namespace client_test
