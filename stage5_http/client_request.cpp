// Stage 5: HTTP/1.1. A client's request and its rules. See client_request.hpp.
#include "stage5_http/client_request.hpp"

#include <cstdio>
#include <stdexcept>

#include "stage5_http/http_grammar.hpp"
#include "stage5_http/http_writer.hpp"

namespace aio {

namespace {

// Methods whose requests carry content, for which a Content-Length is always sent.
bool defines_content(std::string_view method) { return method == "POST" || method == "PUT" || method == "PATCH"; }

}  // namespace

void write_request_head_for(std::string& out, const ClientRequest& request) {
    const HttpHeaders& given = request.headers;
    if (given.contains("content-length") || given.contains("transfer-encoding"))
        throw std::invalid_argument("request " + request.describe() +
                                    ": do not set Content-Length or Transfer-Encoding; the client frames the body");
    // The caller's fields first (as given), then the defaults it left out. Host is not
    // first on the wire here; RFC 9110 §7.2 only asks that it be sent.
    HttpHeaders headers = given;
    if (!given.contains("host")) headers.add("Host", request.url.authority());
    if (!given.contains("accept")) headers.add("Accept", "*/*");
    if (!given.contains("user-agent")) headers.add("User-Agent", kUserAgent);
    if (!request.body.empty() || defines_content(request.method))
        headers.add("Content-Length", std::to_string(request.body.size()));
    write_request_head(out, request.method, request.url.target(), headers);
}

bool is_idempotent(std::string_view method) noexcept {
    return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS" ||
           method == "TRACE";
}

bool is_redirect(int status) noexcept {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// [docs:follow_redirect]
bool follow_redirect(ClientRequest& request, int status, std::string_view location) {
    if (!is_redirect(status)) return false;
    // RFC 9110 §10.2.2: a Location without a fragment inherits the request's.
    std::string reference(location);
    if (request.url.has_fragment() && reference.find('#') == std::string::npos)
        reference += "#" + request.url.fragment();
    URL next = request.url.join(reference);  // InvalidURL for https:// and the like

    // §15.4.4: 303 means "GET the answer elsewhere". §15.4.2-3: 301 and 302 allow turning a
    // POST into a GET, which every browser does. 307 and 308 forbid any change.
    const bool to_get = (status == 303 && request.method != "HEAD") ||
                        ((status == 301 || status == 302) && request.method == "POST");
    if (to_get) {
        request.method = "GET";
        request.body.clear();
        request.headers.remove("Content-Type");
    }
    if (next.host() != request.url.host() || next.port() != request.url.port()) {
        request.headers.remove("Authorization");  // credentials stay with their origin
        request.headers.remove("Cookie");
        request.headers.remove("Host");  // a Host the caller gave named the first server
    }
    request.url = std::move(next);
    return true;
}
// [/docs:follow_redirect]

std::string format_seconds(double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", s);
    return text;
}

}  // namespace aio
