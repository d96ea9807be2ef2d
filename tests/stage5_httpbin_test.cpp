// Stage 5 tests: the built-in httpbin app (web_httpbin.hpp), every endpoint, over raw
// sockets; then crawling its generated site; then real peers: curl against our server
// (skipped, saying so, when curl is not installed), and build/bin/httpbin as a child process
// that prints its address and exits 0 on SIGINT.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/executor.hpp"
#include "stage5_http/http_writer.hpp"
#include "stage5_http/web_httpbin.hpp"
#include "tests/net_test_support.hpp"
#include "tests/server_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace server_test_support;
using aio::Coroutine;
using aio::Ref;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

Coroutine<Reply> fetch(RawClient& client, std::string request_bytes, bool head = false) {
    co_await client.send(std::move(request_bytes));
    std::optional<Reply> reply = co_await client.response(head);
    REQUIRE(reply);
    co_return *reply;
}

Coroutine<> endpoints_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    RawClient c = co_await RawClient::connect(server->port());

    Reply index = co_await fetch(c, get("/"));
    REQUIRE(index.status == 200);
    REQUIRE(contains(index.body, "/delay/{seconds}"));

    Reply got = co_await fetch(c, get("/get?a=1&b=x%20y&a=2", "X-Test: yes\r\n"));
    REQUIRE(got.status == 200);
    REQUIRE(got.header("Content-Type") == "application/json");
    REQUIRE(contains(got.body, "\"method\": \"GET\""));
    REQUIRE(contains(got.body, "\"path\": \"/get\""));
    REQUIRE(contains(got.body, "\"args\": {\"a\": \"1, 2\", \"b\": \"x y\"}"));
    REQUIRE(contains(got.body, "\"X-Test\": \"yes\""));
    REQUIRE(contains(got.body, "\"origin\": \"127.0.0.1\""));
    REQUIRE(contains(got.body, "\"url\": \"http://test/get?a=1&b=x%20y&a=2\""));

    Reply head = co_await fetch(c, "HEAD /get HTTP/1.1\r\nHost: test\r\n\r\n", true);
    REQUIRE(head.status == 200);
    REQUIRE(head.body.empty());
    REQUIRE(std::stoul(head.header("Content-Length")) > 50);  // the size GET's body would have

    double start = now();
    Reply delayed = co_await fetch(c, get("/delay/0.2"));
    REQUIRE(now() - start >= 0.19);
    REQUIRE(delayed.status == 200);
    REQUIRE(contains(delayed.body, "\"delay\": 0.2"));
    for (const char* bad : {"/delay/x", "/delay/-1", "/delay/nan", "/delay/1e999"}) {
        Reply r = co_await fetch(c, get(bad));
        INFO(bad);
        REQUIRE(r.status == 400);
    }

    Reply teapot = co_await fetch(c, get("/status/418"));
    REQUIRE(teapot.status == 418);
    Reply no_content = co_await fetch(c, get("/status/204"));
    REQUIRE(no_content.status == 204);
    REQUIRE(no_content.body.empty());
    Reply not_found = co_await fetch(c, get("/status/404"));
    REQUIRE(not_found.status == 404);
    Reply bad_status = co_await fetch(c, get("/status/99"));
    REQUIRE(bad_status.status == 400);

    Reply bytes = co_await fetch(c, get("/bytes/5000"));
    REQUIRE(bytes.status == 200);
    REQUIRE(bytes.body.size() == 5000);
    REQUIRE(bytes.header("Content-Type") == "application/octet-stream");
    Reply again = co_await fetch(c, get("/bytes/5000"));
    REQUIRE(again.body == bytes.body);  // deterministic
    REQUIRE(std::set<char>(bytes.body.begin(), bytes.body.end()).size() > 200);  // and varied
    Reply big = co_await fetch(c, get("/bytes/100000"));
    REQUIRE(big.body.size() == 100000);
    Reply too_many = co_await fetch(c, get("/bytes/999999999"));
    REQUIRE(too_many.status == 400);

    Reply streamed = co_await fetch(c, get("/stream/5"));
    REQUIRE(streamed.status == 200);
    REQUIRE(streamed.header("Transfer-Encoding") == "chunked");
    REQUIRE(std::count(streamed.body.begin(), streamed.body.end(), '\n') == 5);
    REQUIRE(contains(streamed.body, "{\"id\": 4, \"path\": \"/stream/5\"}\n"));

    Reply hop = co_await fetch(c, get("/redirect/3"));
    REQUIRE(hop.status == 302);
    REQUIRE(hop.header("Location") == "/redirect/2");
    Reply last_hop = co_await fetch(c, get("/redirect/1"));
    REQUIRE(last_hop.header("Location") == "/get");

    const aio::HttpHeaders echo_fields{{"Host", "t"}, {"Content-Type", "text/x-test"}};
    std::string echo_request = aio::serialize_request("POST", "/echo", echo_fields, "ping");
    Reply echoed = co_await fetch(c, echo_request);
    REQUIRE(echoed.status == 200);
    REQUIRE(echoed.body == "ping");
    REQUIRE(echoed.header("Content-Type") == "text/x-test");
    Reply echo_get = co_await fetch(c, get("/echo"));
    REQUIRE(echo_get.status == 405);
    REQUIRE(echo_get.header("Allow") == "POST");

    Reply missing = co_await fetch(c, get("/nope"));
    REQUIRE(missing.status == 404);
    REQUIRE(server->connections_accepted() == 1);  // all of it on one keep-alive connection
    co_await server->shutdown(1.0);
}

// Crawl /site/ breadth-first over one connection: every page is reachable, each lists the
// links site_page_links says, and a page outside the site is a 404.
Coroutine<> site_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    RawClient c = co_await RawClient::connect(server->port());
    const std::regex link("href=\"(/site/[^\"]*)\"");
    std::set<std::string> seen{"/site/"};
    std::vector<std::string> queue{"/site/"};
    for (std::size_t i = 0; i < queue.size(); ++i) {
        Reply page = co_await fetch(c, get(queue[i]));
        REQUIRE(page.status == 200);
        REQUIRE(page.header("Content-Type") == "text/html; charset=utf-8");
        std::vector<std::string> links;
        for (auto it = std::sregex_iterator(page.body.begin(), page.body.end(), link); it != std::sregex_iterator(); ++it)
            links.push_back((*it)[1]);
        if (queue[i] != "/site/") {
            const int n = std::stoi(queue[i].substr(std::string("/site/page/").size()));
            std::vector<std::string> expected;
            for (int to : aio::site_page_links(n)) expected.push_back("/site/page/" + std::to_string(to));
            expected.push_back("/site/");
            REQUIRE(links == expected);
        }
        for (auto& l : links)
            if (seen.insert(l).second) queue.push_back(l);
    }
    REQUIRE(seen.size() == std::size_t(aio::kSitePages) + 1);
    Reply outside = co_await fetch(c, get("/site/page/300"));
    REQUIRE(outside.status == 404);
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("httpbin: every endpoint", "[stage5][httpbin]") { run_on("epoll", endpoints_scenario(), 10.0); }

NET_TEST_CASE("httpbin: the generated site is deterministic and all of it is reachable from /site/", "[stage5][httpbin]") {
    run_on("epoll", site_scenario(), 20.0);
}

// ------------------------------------------------------------------------------ with curl

namespace {

// Runs a shell command on the loop's executor (the loop goes on serving meanwhile) and
// returns its stdout and stderr.
std::string run_command(std::string command) {
    std::string out;
    std::fflush(nullptr);
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return "popen failed";
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

Coroutine<std::string> shell(std::string command) {
    Ref<aio::Future<std::string>> done = aio::run_in_executor(run_command, std::move(command));
    std::string out = co_await done;
    co_return out;
}

Coroutine<> curl_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    const std::string base = "http://127.0.0.1:" + std::to_string(server->port());

    // Two URLs in one invocation: curl keeps the connection between them.
    std::string two = co_await shell("curl -sv --max-time 5 " + base + "/get " + base + "/status/201");
    INFO(two);
    REQUIRE(contains(two, "Re-using existing connection"));
    REQUIRE(contains(two, "\"path\": \"/get\""));
    REQUIRE(contains(two, "201 Created"));
    REQUIRE(server->connections_accepted() == 1);

    // A chunked upload from stdin (-T - sends Transfer-Encoding: chunked).
    std::string upload = co_await shell("printf 'hello chunks' | curl -s --max-time 5 -X POST -T - " + base + "/echo");
    REQUIRE(upload == "hello chunks");
    std::string binary = co_await shell("printf 'more chunks' | curl -s --max-time 5 -H 'Transfer-Encoding: chunked' "
                                        "--data-binary @- " + base + "/echo");
    REQUIRE(binary == "more chunks");
    // A form body with -d; and curl's 100-continue on a larger one.
    std::string form = co_await shell("curl -s --max-time 5 -d 'a=1&b=2' " + base + "/echo");
    REQUIRE(form == "a=1&b=2");
    std::string large = co_await shell("head -c 200000 /dev/zero | tr '\\0' x | curl -s --max-time 5 "
                                       "-H 'Expect: 100-continue' --data-binary @- " + base + "/echo | wc -c");
    REQUIRE(std::stoul(large) == 200000);
    std::string streamed = co_await shell("curl -s --max-time 5 " + base + "/stream/20 | wc -l");
    REQUIRE(std::stoul(streamed) == 20);
    std::string redirected = co_await shell("curl -s --max-time 5 -L -o /dev/null -w '%{http_code} %{num_redirects}' " +
                                            base + "/redirect/4");
    REQUIRE(redirected == "200 4");
    co_await server->shutdown(1.0);
}

}  // namespace

NET_TEST_CASE("httpbin with curl: keep-alive across two URLs, chunked uploads, -d, 100-continue, redirects",
              "[stage5][httpbin][curl]") {
    if (!aio::bench::find_on_path("curl")) {
        WARN("skipped: curl is not installed (apt-get install curl)");
        return;
    }
    run_on("epoll", curl_scenario(), 30.0);
}

// ------------------------------------------------------------------------ build/bin/httpbin

// The program itself, as a script would use it: start it on port 0, read its address from
// its first line, fetch, send SIGINT, expect exit status 0.
NET_TEST_CASE("build/bin/httpbin: prints its address, serves, exits 0 on SIGINT", "[stage5][httpbin]") {
    // Beside this test binary, or (for make sanitize's binaries, in build/sanitize-*/bin/)
    // in the default build's build/bin/.
    const std::string self = aio::bench::self_exe();
    const std::string dir = self.substr(0, self.rfind('/'));
    std::string exe = dir + "/httpbin";
    if (!aio::bench::is_file(exe)) exe = dir + "/../../bin/httpbin";
    if (!aio::bench::is_file(exe)) {
        WARN("skipped: " << exe << " is not built (make -C stage5_http)");
        return;
    }
    int out[2];
    REQUIRE(::pipe(out) == 0);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        ::execl(exe.c_str(), exe.c_str(), "--port", "0", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    struct Reap {  // however the test ends, the child does not outlive it
        pid_t pid;
        int fd;
        bool waited = false;
        ~Reap() {
            ::close(fd);
            if (!waited) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
            }
        }
    } reap{pid, out[0]};
    std::string line;
    char ch;
    while (::read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
    INFO("first line: " << line);
    std::smatch m;
    REQUIRE(std::regex_match(line, m, std::regex("http://127\\.0\\.0\\.1:(\\d+)/")));
    const int port = std::stoi(m[1]);

    auto scenario = [](int p) -> Coroutine<> {
        RawClient c = co_await RawClient::connect(p);
        Reply r = co_await fetch(c, get("/get"));
        REQUIRE(r.status == 200);
    };
    run_on("epoll", scenario(port));
    REQUIRE(::kill(pid, SIGINT) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    reap.waited = true;
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
}
