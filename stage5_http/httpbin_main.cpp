// Stage 5: HTTP/1.1. build/bin/httpbin: the course's httpbin app (web_httpbin.hpp) on an
// HttpServer, until Ctrl-C (SIGINT) or SIGTERM, then a graceful shutdown and exit status 0.
//
//     ./build/bin/httpbin --port 0        # prints http://127.0.0.1:<port>/ on stdout
//
// The first line on stdout is the address it serves, so a script or a test can start it
// on an ephemeral port and read where it went:
//
//     ./build/bin/httpbin --port 0 > addr & sleep 0.2; curl "$(head -n1 addr)get"
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string>

#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage4_sockets/exceptions.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage5_http/web_httpbin.hpp"
#include "stage5_http/web_server.hpp"

namespace {

struct Settings {
    std::string host = "127.0.0.1";
    int port = 8080;
    double shutdown_timeout = 10.0;
    aio::ServerConfig config;
};

aio::Coroutine<int> serve(Settings settings) {
    aio::Ref<aio::HttpServer> server = aio::make_ref<aio::HttpServer>(aio::httpbin_router(), settings.config);
    co_await server->start(settings.host, settings.port);
    const aio::SockAddr address = server->address();
    std::string host = address.host();
    if (address.family() == AF_INET6) host = "[" + host + "]";
    std::printf("http://%s:%d/\n", host.c_str(), int(address.port()));
    std::fflush(stdout);

    // SIGINT (Ctrl-C) or SIGTERM: stop serving, gracefully. The handler runs on the loop as
    // an ordinary callback (stage 4's add_signal_handler), so it may complete a future.
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    aio::Ref<aio::Future<int>> stop = aio::create_future<int>();
    for (int sig : {SIGINT, SIGTERM})
        loop.add_signal_handler(sig, [stop, sig] {
            if (!stop->done()) stop->set_result(sig);
        });
    const int sig = co_await stop;
    // A second Ctrl-C ends the process at once, should the shutdown hang.
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    std::fprintf(stderr, "httpbin: %s: shutting down (the requests in flight have %g s to finish)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", settings.shutdown_timeout);
    co_await server->shutdown(settings.shutdown_timeout);
    std::fprintf(stderr, "httpbin: %llu connections, %llu requests; bye\n",
                 static_cast<unsigned long long>(server->connections_accepted()),
                 static_cast<unsigned long long>(server->requests_handled()));
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    aio::OptionParser options(
        "The course's httpbin: /get, /delay/{s}, /status/{code}, /bytes/{n}, /stream/{n}, /redirect/{n},\n"
        "POST /echo, and a generated site under /site/ (GET / lists them). Prints the address it\n"
        "serves as the first line on stdout; serves until SIGINT or SIGTERM, then shuts down\n"
        "gracefully (the requests in flight finish) and exits 0.");
    options.text("--host", s.host, "HOST", "the address to listen on (127.0.0.1, ::1; \"\" for every interface)")
        .allow_empty();
    options.integer("--port", s.port, 0, 65535, "PORT", "the port; 0 for an ephemeral one (printed)");
    options.number("--header-timeout", s.config.header_timeout, 0.001, 3600, "S",
                   "seconds a client has to send a request's head (against slowloris)");
    options.number("--keepalive-timeout", s.config.keepalive_timeout, 0.001, 3600, "S",
                   "seconds an idle keep-alive connection is kept");
    options.integer("--backlog", s.config.backlog, 1, 65535, "N",
                    "the listen queue: connections the kernel holds until accepted");
    options.number("--shutdown-timeout", s.shutdown_timeout, 0, 3600, "S",
                   "on SIGINT/SIGTERM, seconds the requests in flight have to finish");
    options.epilog("Example:\n  ./build/bin/httpbin --port 0 &\n  curl http://127.0.0.1:<port>/get");
    if (auto status = options.parse(argc, argv)) return *status;
    try {
        return aio::run(serve(s), aio::new_selector_event_loop);
    } catch (const aio::OSError& e) {  // listening failed: the two usual reasons get a hint
        std::fprintf(stderr, "httpbin: %s\n", e.what());
        if (e.error_number() == EADDRINUSE)
            std::fprintf(stderr, "httpbin: another program listens on port %d: pick another --port (0: any free one)\n",
                         s.port);
        else if (e.error_number() == EACCES && s.port < 1024)
            std::fprintf(stderr, "httpbin: ports below 1024 need privileges: try --port 8080 (or 0: any free one)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "httpbin: %s\n", e.what());
        return 1;
    }
}
