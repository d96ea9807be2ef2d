// Stage 5: HTTP/1.1, the server. The Router. See web_urldispatcher.hpp.
#include "stage5_http/web_urldispatcher.hpp"

#include <algorithm>
#include <stdexcept>

#include "stage5_http/http_grammar.hpp"

namespace aio {

namespace {

bool is_param(std::string_view part) { return part.size() >= 2 && part.front() == '{' && part.back() == '}'; }

// "/a/{b}/c" -> "a", "{b}", "c". The leading '/' is not a segment; a trailing one gives an
// empty last segment, so "/a/" and "/a" are different paths, as in aiohttp.
std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> parts;
    std::size_t start = 1;
    for (;;) {
        std::size_t slash = path.find('/', start);
        parts.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
        if (slash == std::string_view::npos) return parts;
        start = slash + 1;
    }
}

}  // namespace

Router::Resource& Router::resource(std::string_view path) {
    if (path.empty() || path[0] != '/')
        throw std::invalid_argument("Router: the path '" + std::string(path) + "' must start with '/'");
    for (auto& r : resources_)
        if (r->pattern == path) return *r;
    auto r = std::make_unique<Resource>();
    r->pattern = std::string(path);
    r->parts = split_path(r->pattern);
    bool exact = true;
    for (std::string_view part : r->parts) {
        if (is_param(part)) {
            if (!is_token(part.substr(1, part.size() - 2)))
                throw std::invalid_argument("Router: '" + std::string(part) + "' in '" + r->pattern +
                                            "': a {name} holds a name (letters, digits, _)");
            exact = false;
        } else if (part.find_first_of("{}") != std::string_view::npos) {
            throw std::invalid_argument("Router: '" + std::string(part) + "' in '" + r->pattern +
                                        "': a {name} must be a whole segment, between two '/'");
        }
    }
    Resource* raw = r.get();
    resources_.push_back(std::move(r));
    if (exact)
        exact_.emplace(raw->pattern, raw);
    else
        patterns_.push_back(raw);
    return *raw;
}

Router& Router::add_route(std::string_view method, std::string_view path, Handler handler) {
    if (!handler) throw std::invalid_argument("Router: an empty handler for " + std::string(path));
    if (method != "*" && !is_token(method))
        throw std::invalid_argument("Router: '" + std::string(method) + "' is not a method (a token, e.g. GET)");
    Resource& r = resource(path);
    for (const Route& route : r.routes)
        if (route.method == method)
            throw std::invalid_argument("Router: " + std::string(method) + " " + std::string(path) +
                                        " is already routed");
    r.routes.push_back(Route{std::string(method), std::move(handler)});
    return *this;
}

Router& Router::add_get(std::string_view path, Handler handler) {
    add_route("GET", path, handler);
    return add_route("HEAD", path, std::move(handler));
}

// [docs:resolve]
// An exact path is one hash lookup; only then are the {name} patterns tried, in order.
// The path matched but not the method: 405, with the methods that would have matched.
RouteMatch Router::resolve(std::string_view method, std::string_view path,
                           std::vector<std::pair<std::string_view, std::string_view>>& params) const {
    params.clear();
    auto it = exact_.find(path);
    if (it != exact_.end()) return pick(*it->second, method);
    for (const Resource* r : patterns_)
        if (match(*r, path, params)) return pick(*r, method);
    return RouteMatch{nullptr, 404, {}};
}
// [/docs:resolve]

bool Router::match(const Resource& r, std::string_view path,
                   std::vector<std::pair<std::string_view, std::string_view>>& params) {
    if (path.empty() || path[0] != '/') return false;
    params.clear();
    std::size_t start = 1;
    for (std::size_t i = 0; i < r.parts.size(); ++i) {
        if (start > path.size()) return false;
        std::size_t slash = path.find('/', start);
        const bool last = i + 1 == r.parts.size();
        if (last != (slash == std::string_view::npos)) return false;  // more or fewer segments
        std::string_view segment = path.substr(start, last ? std::string_view::npos : slash - start);
        std::string_view part = r.parts[i];
        if (is_param(part)) {
            if (segment.empty()) return false;
            params.emplace_back(part.substr(1, part.size() - 2), segment);
        } else if (segment != part) {
            return false;
        }
        start = last ? path.size() : slash + 1;
    }
    return true;
}

RouteMatch Router::pick(const Resource& r, std::string_view method) {
    for (const Route& route : r.routes)
        if (route.method == method || route.method == "*") return RouteMatch{&route.handler, 200, {}};
    RouteMatch m{nullptr, 405, {}};
    for (const Route& route : r.routes) m.allow += (m.allow.empty() ? "" : ", ") + route.method;
    return m;
}

}  // namespace aio
