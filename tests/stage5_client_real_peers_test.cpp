// Stage 5 tests: both clients against a real server, Python's `python3 -m http.server`, in a
// child process stopped by its PID (also when a test fails). It answers in HTTP/1.0 and
// closes each connection after its response. Skipped, saying so, without python3.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/blocking_client.hpp"
#include "stage5_http/client_session.hpp"
#include "tests/child_process.hpp"
#include "tests/net_test_support.hpp"

namespace {

// A directory with one file, and python3's http.server serving it on an ephemeral port.
class PythonServer {
public:
    PythonServer() {
        char dir[] = "/tmp/aio_http_server_XXXXXX";
        if (::mkdtemp(dir)) dir_ = dir;
        std::ofstream(dir_ + "/hello.txt") << "hello from python\n";
        child_.emplace(std::vector<std::string>{"python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                                                "--directory", dir_});
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        if (auto line = child_->read_line(10)) {
            const std::size_t at = line->find(" port ");
            if (at != std::string::npos) port_ = std::stoi(line->substr(at + 6));
        }
    }
    ~PythonServer() {
        child_.reset();  // stopped by PID
        ::unlink((dir_ + "/hello.txt").c_str());
        ::rmdir(dir_.c_str());
    }
    int port() const { return port_; }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

private:
    std::string dir_;
    std::optional<child_process::Child> child_;
    int port_ = 0;
};

aio::Coroutine<std::string> fetch_three(std::string file, std::string missing) {
    aio::ClientSession session;
    aio::ClientResponse a = co_await session.get(file);
    std::string body = co_await a.read();
    aio::ClientResponse b = co_await session.get(missing);
    std::string ignored = co_await b.read();
    aio::ClientResponse c = co_await session.get(file);
    std::string again = co_await c.read();
    std::string out = std::to_string(a.version().minor) + " " + std::to_string(a.status()) + " " + body +
                      std::to_string(b.status()) + " " + again + std::to_string(session.connector().connections_opened());
    co_await session.close();
    co_return out;
}

NET_TEST_CASE("real peers: both clients against python3 -m http.server (HTTP/1.0)", "[client][real]") {
    if (!child_process::on_path("python3")) {
        WARN("python3 is not installed (apt-get install python3): this test is skipped");
        return;
    }
    PythonServer server;
    REQUIRE(server.port() > 0);
    std::string got = aio::run(aio::wait_for(fetch_three(server.url("/hello.txt"), server.url("/nope")), 20.0),
                               aio::new_selector_event_loop);
    // HTTP/1.0 without keep-alive: a new connection for each request.
    CHECK(got == "0 200 hello from python\n404 hello from python\n3");

    aio::BlockingSession session;
    aio::BlockingResponse r = session.get(server.url("/hello.txt"));
    CHECK(r.status == 200);
    CHECK(r.body == "hello from python\n");
    CHECK(session.get(server.url("/nope")).status == 404);
    CHECK(session.connections_reused() == 0);
}

}  // namespace
