// Stage 5 tests: the fetch tool (build/bin/fetch, stage5_http/fetch_main.cpp), run as a child
// process against the scripted peer: the body to stdout, -o FILE, -X, -d, -H, -v, several
// URLs with a summary line each, exit statuses, and bad command lines. Skipped, saying so,
// where the program has not been built (make builds it; a sanitizer build of the tests alone
// does not).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/child_process.hpp"
#include "tests/net_test_support.hpp"
#include "tests/scripted_peer.hpp"

namespace {

using scripted_peer::PeerConnection;
using scripted_peer::ScriptedPeer;
using scripted_peer::response;

using Run = child_process::ProgramRun;

// Runs fetch with `args`; nullopt (after a warning) if it is not built.
std::optional<Run> fetch(std::vector<std::string> args) {
    std::optional<Run> run = child_process::run_course_program("fetch", std::move(args));
    if (!run) WARN("build/bin/fetch is not built (run make): the fetch tests are skipped");
    return run;
}

// Echoes each request's line, its X-Trace field and its body.
ScriptedPeer::Script echo() {
    return [](PeerConnection& c) {
        while (auto request = c.read_request()) {
            std::string trace;
            if (std::size_t at = request->find("\r\nX-Trace: "); at != std::string::npos)
                trace = request->substr(at + 11, request->find("\r\n", at + 2) - at - 11);
            if (request->find(" /missing ") != std::string::npos)
                c.send(response(404, "no", "", "Not Found"));
            else
                c.send(response(200, scripted_peer::request_line(*request) + "|" + trace + "|" +
                                         scripted_peer::request_body(*request)));
        }
    };
}

NET_TEST_CASE("fetch: one URL prints its body; -X, -d, -H and -v", "[fetch]") {
    ScriptedPeer peer(echo());
    auto plain = fetch({peer.url("/get")});
    if (!plain) return;
    CHECK(plain->status == 0);
    CHECK(plain->out == "GET /get||");
    CHECK(plain->err.empty());

    auto post = fetch({"-d", "a=1", "-H", "X-Trace: 42", peer.url("/post")});
    REQUIRE(post);
    CHECK(post->status == 0);
    CHECK(post->out == "POST /post|42|a=1");

    auto put = fetch({"-X", "PUT", "-v", peer.url("/put")});
    REQUIRE(put);
    CHECK(put->out == "PUT /put||");
    CHECK(put->err.find("> PUT /put HTTP/1.1") != std::string::npos);
    CHECK(put->err.find("< HTTP/1.1 200 OK") != std::string::npos);
}

NET_TEST_CASE("fetch: -o writes the body to a file", "[fetch]") {
    ScriptedPeer peer(echo());
    char path[] = "/tmp/fetch_test_XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    auto run = fetch({"-o", path, peer.url("/file")});
    std::ifstream in(path);
    std::stringstream written;
    written << in.rdbuf();
    ::unlink(path);
    if (!run) return;
    CHECK(run->status == 0);
    CHECK(run->out.empty());
    CHECK(written.str() == "GET /file||");
}

NET_TEST_CASE("fetch: several URLs give a line each; a failure makes the exit status 1", "[fetch]") {
    ScriptedPeer peer(echo());
    aio::Socket unused = net_test_support::listening_socket();
    const std::string refused = "http://127.0.0.1:" + std::to_string(unused.getsockname().port()) + "/";
    unused.close();
    auto run = fetch({"--concurrency", "2", peer.url("/a"), peer.url("/missing"), refused, peer.url("/b")});
    if (!run) return;
    CHECK(run->status == 1);
    CHECK(run->out.find("200 ") == 0);
    CHECK(run->out.find("404 2 bytes") != std::string::npos);
    CHECK(run->out.find(peer.url("/b")) != std::string::npos);
    CHECK(run->err.find("fetch: " + refused + ": cannot connect") != std::string::npos);
    CHECK(run->err.find("fetched 4/4") != std::string::npos);
    CHECK(run->err.find("1 failed") != std::string::npos);

    auto fail = fetch({"--fail", peer.url("/missing")});
    REQUIRE(fail);
    CHECK(fail->status == 1);
    CHECK(fail->err.find("HTTP 404") != std::string::npos);
}

NET_TEST_CASE("fetch: bad command lines exit with 2 and say why", "[fetch]") {
    auto none = fetch({});
    if (!none) return;
    CHECK(none->status == 2);
    CHECK(none->err.find("give at least one URL") != std::string::npos);
    auto tls = fetch({"https://example.com/"});
    CHECK(tls->status == 2);
    CHECK(tls->err.find("TLS") != std::string::npos);
    auto header = fetch({"-H", "no colon", "http://127.0.0.1:1/"});
    CHECK(header->status == 2);
    CHECK(header->err.find("-H wants 'Name: value'") != std::string::npos);
    auto two = fetch({"-o", "/dev/null", "http://127.0.0.1:1/", "http://127.0.0.1:2/"});
    CHECK(two->status == 2);
    auto concurrency = fetch({"--concurrency", "0", "http://127.0.0.1:1/"});
    CHECK(concurrency->status == 2);
    auto help = fetch({"--help"});
    CHECK(help->status == 0);
    CHECK(help->out.find("usage: fetch") != std::string::npos);
}

}  // namespace
