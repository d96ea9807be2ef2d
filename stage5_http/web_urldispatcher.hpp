// Stage 5: HTTP/1.1, the server. From a request's method and path to the code that answers.
//
// Adds:    Handler (a plain function or a coroutine function of Request&), Router
//          (add_route, add_get, add_post, add_put, add_delete, resolve), RouteMatch.
// Mirrors: aiohttp's UrlDispatcher (web_urldispatcher.py: router.add_get, add_post,
//          add_route, resources with {name} parts, match_info, 404 and 405 with Allow).
//
// The two kinds of handler are the point of Handler. A plain function
//
//     Response hello(Request&) { return Response::text("Hello, World!"); }
//
// is called right inside the connection's data_received, with no task, no future and no
// coroutine frame: most handlers answer at once, and that is the server's fast path. A
// coroutine function
//
//     Coroutine<Response> slow(Request& r) { co_await sleep(1); co_return Response::text("late"); }
//
// runs as a task of its own, because it may wait. Both are registered the same way; the
// Router sees which one it was given from its return type.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage5_http/web_request.hpp"
#include "stage5_http/web_response.hpp"

namespace aio {

class Handler {
public:
    using Plain = std::function<Response(Request&)>;
    using Async = std::function<Coroutine<Response>(Request&)>;

    Handler() = default;
    // Any callable taking Request& and returning Response (plain) or Coroutine<Response>.
    template <typename F>
        requires std::is_invocable_v<F&, Request&>
    Handler(F fn) {  // NOLINT: implicit, so that add_get("/", fn) takes a function or a lambda
        using R = std::invoke_result_t<F&, Request&>;
        static_assert(std::is_same_v<R, Response> || std::is_same_v<R, Coroutine<Response>>,
                      "a handler returns Response or Coroutine<Response>");
        if constexpr (std::is_same_v<R, Response>)
            plain_ = std::move(fn);
        else
            async_ = std::move(fn);
    }

    bool is_async() const noexcept { return bool(async_); }
    explicit operator bool() const noexcept { return plain_ || async_; }
    Response call(Request& r) const { return plain_(r); }
    Coroutine<Response> start(Request& r) const { return async_(r); }

private:
    Plain plain_;
    Async async_;
};

// What the Router found for a request.
struct RouteMatch {
    // The route's handler, or null: then `status` is 404 (no route has this path) or 405
    // (routes have it, for other methods: `allow` lists them, for the Allow field).
    const Handler* handler = nullptr;
    int status = 200;
    std::string allow;
};

class Router {
public:
    // Route `method` requests for `path` to `handler`. `path` starts with '/' and is matched
    // exactly, except for segments written {name}, which match one non-empty segment (no
    // '/') and are read with request.match_info("name"). "*" as method: any method. Throws
    // std::invalid_argument for a path without its leading '/', a malformed {name}, or a
    // route registered twice.
    Router& add_route(std::string_view method, std::string_view path, Handler handler);
    // GET, and HEAD answered by the same handler without the body (aiohttp's add_get).
    Router& add_get(std::string_view path, Handler handler);
    Router& add_post(std::string_view path, Handler handler) { return add_route("POST", path, std::move(handler)); }
    Router& add_put(std::string_view path, Handler handler) { return add_route("PUT", path, std::move(handler)); }
    Router& add_delete(std::string_view path, Handler handler) { return add_route("DELETE", path, std::move(handler)); }

    // The handler for `method` and `path` (the raw path, as Request::path() gives it). The
    // {name} values go into `params` (cleared first): views of the route and of `path`.
    RouteMatch resolve(std::string_view method, std::string_view path,
                       std::vector<std::pair<std::string_view, std::string_view>>& params) const;

private:
    struct Route {
        std::string method;  // "*": any
        Handler handler;
    };
    struct Resource {
        std::string pattern;                  // as registered
        std::vector<std::string_view> parts;  // its segments, views of `pattern` ("{x}" kept whole)
        std::vector<Route> routes;
    };
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    Resource& resource(std::string_view path);
    static bool match(const Resource& r, std::string_view path,
                      std::vector<std::pair<std::string_view, std::string_view>>& params);
    static RouteMatch pick(const Resource& r, std::string_view method);

    // Resources are kept by pointer: their parts are views of their own pattern string.
    std::vector<std::unique_ptr<Resource>> resources_;
    // Exact paths (no {name}): one hash lookup, the common case.
    std::unordered_map<std::string, Resource*, Hash, std::equal_to<>> exact_;
    std::vector<Resource*> patterns_;  // the others, tried in the order they were added
};

}  // namespace aio
