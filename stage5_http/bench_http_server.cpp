// Stage 5 benchmark: the HTTP server, in requests per second, beside Python's asyncio and nginx.
//
// Measures: keep-alive "hello" (GET / answered with the 13 bytes "Hello, World!"), loaded by
//          wrk (`wrk -t1 -c50 -d5s`, then -c1000), against four servers in the same run, each
//          in a process of its own:
//            ours             HttpServer with a plain handler (this program, --serve)
//            python-streams   asyncio.start_server, readuntil/write/drain (bench_http_server.py)
//            python-protocol  an asyncio.Protocol (bench_http_server.py)
//            nginx            nginx-light, one process, `return 200 "Hello, World!"`
//          The server runs pinned to one core and the load to another (taskset), so neither
//          steals the other's CPU; on a 2-core machine the figures are ratios, measured in the
//          same run, never absolute claims. The servers take turns, round after round (3 by
//          default), and the median of the rounds is reported.
// Targets: ours >= 2x python-streams, and ours >= nginx (c50): printed as PASS or MISS.
// Peers:   wrk and nginx are Debian packages (wrk, nginx-light). Running as root, the bench
//          installs the missing ones with apt-get (and says so); otherwise it says what to
//          install and skips that part. Without wrk, a load generator of the course's own
//          (this program, --load: N keep-alive connections on one loop, each sending its next
//          request when the answer has come, as wrk does) stands in, and the output says so.
//
// Output: one `RESULT name=... variant=... value=... unit=req/s` line per figure, then a
// table with the ratios, then the targets. Progress goes to stderr.
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/base_events.hpp"
#include "stage4_sockets/bench_process.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage4_sockets/sock_ops.hpp"
#include "stage5_http/http_parser.hpp"
#include "stage5_http/web_server.hpp"

namespace {

namespace bench = aio::bench;

struct Options {
    double seconds = 5;
    double warmup = 1;
    int rounds = 3;
    std::vector<std::string> connections;  // default: 50 and 1000
    int server_core = -1;  // -1: not pinned; main() starts them at plan_cpus()'s two cores
    int load_core = -1;
    bool own_load = false;
    bool no_install = false;
    std::string only;  // one server
    // Hidden: the modes this program runs itself in.
    bool serve = false;
    int load_port = 0;
    int load_connections = 50;
};

// ------------------------------------------------------------------ ours: the server side

// [docs:bench_hello]
// The benchmark's server: one plain handler, answered inside data_received (no task).
aio::Coroutine<int> serve_hello() {
    aio::Router router;
    router.add_get("/", [](aio::Request&) { return aio::Response::text("Hello, World!"); });
    aio::ServerConfig config;
    config.backlog = 4096;  // wrk -c1000 connects all at once
    aio::Ref<aio::HttpServer> server = aio::make_ref<aio::HttpServer>(std::move(router), config);
    co_await server->start("127.0.0.1", 0);
    std::printf("%d\n", server->port());
    std::fflush(stdout);
    aio::Ref<aio::Future<>> stop = aio::create_future();
    aio::SelectorEventLoop& loop = aio::get_running_selector_loop();
    for (int sig : {SIGINT, SIGTERM})
        loop.add_signal_handler(sig, [stop] {
            if (!stop->done()) stop->set_result();
        });
    co_await stop;
    co_await server->shutdown(1.0);
    co_return 0;
}
// [/docs:bench_hello]

// ------------------------------------------------------------- ours: the load generator

// One keep-alive connection of the load generator: send a request, parse the answer, count
// it, send the next; like wrk, which keeps each connection busy with one request at a time.
class LoadConnection final : public aio::Protocol {
public:
    LoadConnection(long& completed, long& failed, const bool& running)
        : completed_(completed), failed_(failed), running_(running) {}
    void connection_made(aio::Transport& t) override {
        transport_ = aio::Ref<aio::Transport>(&t);
        send();
    }
    void data_received(std::string_view data) override {
        parser_.feed(data);
        try {
            for (aio::HttpEvent e = parser_.next_event(); e.kind != aio::HttpEvent::need_data; e = parser_.next_event()) {
                if (e.kind == aio::HttpEvent::head && parser_.head().status != 200) ++failed_;
                if (e.kind != aio::HttpEvent::end_of_message) continue;
                ++completed_;
                if (running_) send();
                else transport_->close();
            }
        } catch (const aio::HttpError&) {
            ++failed_;
            transport_->abort();
        }
    }
    void connection_lost(std::exception_ptr) override { transport_ = nullptr; }

private:
    void send() { transport_->write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); }
    long& completed_;
    long& failed_;
    const bool& running_;
    aio::Ref<aio::Transport> transport_;
    aio::HttpResponseParser parser_;
};

aio::Coroutine<int> run_load(int port, int connections, double seconds) {
    long completed = 0, failed = 0;
    bool running = true;
    auto factory = [&] { return aio::make_ref<LoadConnection>(completed, failed, running); };
    std::vector<aio::Ref<aio::Transport>> open;
    for (int i = 0; i < connections; ++i) {
        auto connecting = aio::create_connection(factory, "127.0.0.1", port);
        auto made = co_await std::move(connecting);
        open.push_back(made.first);
    }
    const double start = bench::now();
    co_await aio::sleep(seconds);
    const long done = completed;
    const double elapsed = bench::seconds_since(start);
    running = false;
    co_await aio::sleep(0.2);  // let the last answers come and the connections close
    for (auto& t : open) t->abort();
    co_await aio::sleep(0);
    std::printf("Requests/sec: %.2f\nfailed: %ld\n", double(done) / elapsed, failed);
    std::fflush(stdout);
    co_return 0;
}

// --------------------------------------------------------------- processes and the peers

int free_port() {
    aio::Socket s(AF_INET);
    s.bind(aio::SockAddr::ip("127.0.0.1", 0));
    return s.getsockname().port();
}

bool accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    aio::SockAddr a = aio::SockAddr::ip("127.0.0.1", std::uint16_t(port));
    bool ok = ::connect(fd, a.get(), a.size()) == 0;
    ::close(fd);
    return ok;
}

bool wait_until_accepting(int port, double timeout) {
    const double deadline = bench::now() + timeout;
    while (bench::now() < deadline) {
        if (accepts(port)) return true;
        ::usleep(20000);
    }
    return false;
}

// wrk and nginx-light: there, installed now (root), or missing (and said so).
void ensure_peers(bool may_install) {
    std::vector<std::string> missing;
    if (!bench::find_on_path("wrk")) missing.push_back("wrk");
    if (!bench::find_on_path("nginx") && !bench::is_file("/usr/sbin/nginx")) missing.push_back("nginx-light");
    if (missing.empty()) return;
    std::string names;
    for (auto& m : missing) names += " " + m;
    if (::geteuid() != 0 || may_install == false || !bench::find_on_path("apt-get")) {
        bench::progress("missing:%s (as root: apt-get install%s); that part is skipped%s\n", names.c_str(), names.c_str(),
                        missing.front() == "wrk" ? ", and the course's own load generator stands in for wrk" : "");
        return;
    }
    bench::progress("installing%s with apt-get (running as root): apt-get update, then apt-get install -y%s\n",
                    names.c_str(), names.c_str());
    std::string cmd = "apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq" + names + " >&2";
    if (std::system(cmd.c_str()) != 0) bench::progress("apt-get failed: that part is skipped\n");
}

std::string nginx_path() {
    if (auto p = bench::find_on_path("nginx")) return *p;
    return bench::is_file("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "";
}

// A directory with nginx's config: one process (master_process off), no access log, every
// request on a connection kept alive (keepalive_requests: nginx closes after 1000 by default).
std::string write_nginx_config(int port) {
    char dir[] = "/tmp/bench_http_server.XXXXXX";
    if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    std::ofstream conf(std::string(dir) + "/nginx.conf");
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
         << "pid " << dir << "/nginx.pid;\nerror_log " << dir << "/error.log warn;\n"
         << "events { worker_connections 4096; }\n"
         << "http {\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 75s;\n"
         << "  client_body_temp_path " << dir << "/body;\n  proxy_temp_path " << dir << "/proxy;\n"
         << "  server {\n    listen 127.0.0.1:" << port << " backlog=4096;\n"
         << "    location / { default_type text/plain; return 200 \"Hello, World!\"; }\n  }\n}\n";
    return dir;
}

// ------------------------------------------------------------------------- the load

struct Load {
    std::optional<double> rps;
    std::string note;  // errors, non-2xx answers
};

// How long a load may run past its --seconds before it counts as hung (and is killed).
constexpr double load_grace = 30;

Load run_wrk(int port, int connections, double seconds, std::optional<int> cpu) {
    bench::ChildProcess c({"wrk", "-t1", "-c" + std::to_string(connections), "-d" + std::to_string(int(seconds)) + "s",
                           "http://127.0.0.1:" + std::to_string(port) + "/"},
                          cpu);
    std::string out = c.read_until_exit(seconds + load_grace);
    Load load;
    std::smatch m;
    if (std::regex_search(out, m, std::regex("Requests/sec:\\s+([0-9.]+)"))) load.rps = std::stod(m[1]);
    if (std::regex_search(out, m, std::regex("Non-2xx or 3xx responses: (\\d+)"))) load.note += " non-2xx=" + m[1].str();
    if (std::regex_search(out, m, std::regex("Socket errors: ([^\\n]*)"))) load.note += " socket errors: " + m[1].str();
    if (!load.rps) load.note += " wrk said: " + out.substr(0, 300);
    return load;
}

Load run_own_load(int port, int connections, double seconds, std::optional<int> cpu) {
    bench::ChildProcess c({bench::self_exe(), "--load", std::to_string(port), "--load-connections",
                           std::to_string(connections), "--seconds", std::to_string(seconds)},
                          cpu);
    std::string out = c.read_until_exit(seconds + load_grace);
    Load load;
    std::smatch m;
    if (std::regex_search(out, m, std::regex("Requests/sec: ([0-9.]+)"))) load.rps = std::stod(m[1]);
    if (std::regex_search(out, m, std::regex("failed: (\\d+)")) && m[1] != "0") load.note += " failed=" + m[1].str();
    if (!load.rps) load.note += " the load generator said: " + out.substr(0, 300);
    return load;
}

// ------------------------------------------------------------------------------ the run

struct Server {
    std::string variant;
    std::unique_ptr<bench::ChildProcess> child;  // (a pointer: Servers move, a ChildProcess does not)
    int port = 0;
    std::string dir;  // nginx's
};

std::optional<Server> start_server(const std::string& variant, std::optional<int> cpu) {
    Server s;
    s.variant = variant;
    if (variant == "ours") {
        s.child = std::make_unique<bench::ChildProcess>(std::vector<std::string>{bench::self_exe(), "--serve"}, cpu);
    } else if (variant == "python-streams" || variant == "python-protocol") {
        auto python = bench::find_on_path("python3");
        std::string script;
        for (auto& c : bench::python_script_candidates(__FILE__))
            if (bench::is_file(c)) script = c;
        if (!python || script.empty()) {
            bench::progress("%s: skipped: %s\n", variant.c_str(), python ? "bench_http_server.py not found" : "no python3");
            return std::nullopt;
        }
        s.child = std::make_unique<bench::ChildProcess>(
            std::vector<std::string>{*python, script, "--variant", variant.substr(7)}, cpu);
    } else {
        std::string nginx = nginx_path();
        if (nginx.empty()) {
            bench::progress("nginx: skipped: not installed (apt-get install nginx-light)\n");
            return std::nullopt;
        }
        s.port = free_port();
        s.dir = write_nginx_config(s.port);
        s.child = std::make_unique<bench::ChildProcess>(
            std::vector<std::string>{nginx, "-p", s.dir, "-e", s.dir + "/error.log", "-c", s.dir + "/nginx.conf"}, cpu);
        if (!wait_until_accepting(s.port, 5)) {
            bench::progress("nginx: skipped: it did not start (see %s/error.log)\n", s.dir.c_str());
            return std::nullopt;
        }
        return s;
    }
    std::optional<std::string> line = s.child->read_line(10);
    if (!line) {
        bench::progress("%s: skipped: it did not print its port\n", variant.c_str());
        return std::nullopt;
    }
    s.port = std::atoi(line->c_str());
    return s;
}

std::optional<int> parse_args(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "HTTP server speed: keep-alive GET / answered with \"Hello, World!\", loaded by wrk -t1 -cN -dS\n"
        "(N = 50, then 1000), against ours, Python asyncio (streams and protocol, bench_http_server.py)\n"
        "and nginx (nginx-light, one process), each in its own process. The server and the load run\n"
        "pinned to different cores (taskset). Targets: ours >= 2x python-streams, ours >= nginx.\n"
        "As root, missing wrk / nginx-light are installed with apt-get; without wrk, the course's\n"
        "own load generator stands in.");
    options.number("--seconds", o.seconds, 1, 600, "S", "each measurement's duration")
        .number("--warmup", o.warmup, 0, 60, "S", "a short load before each measurement (not counted)")
        .integer("--rounds", o.rounds, 1, 100, "R", "rounds over all servers; the median is reported")
        .repeated("-c, --connections", o.connections, "N", "connections (repeat for several; default 50 and 1000)")
        .integer("--server-core", o.server_core, -1, 1023, "CPU", "the core the servers run on (-1: not pinned)")
        .integer("--load-core", o.load_core, -1, 1023, "CPU", "the core the load runs on (-1: not pinned)")
        .flag("--own-load", o.own_load, "use the course's load generator even if wrk is installed")
        .flag("--no-install", o.no_install, "never run apt-get; skip what is missing")
        .choice("--only", o.only, {"ours", "python-streams", "python-protocol", "nginx"}, "run one server only")
        .flag("--serve", o.serve, "(internal) be our server: print the port, serve until SIGINT")
        .hidden()
        .integer("--load", o.load_port, 0, 65535, "PORT", "(internal) be the load generator")
        .hidden()
        .integer("--load-connections", o.load_connections, 1, 100000, "N", "(internal)")
        .hidden();
    return options.parse(argc, argv);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    const bench::CpuPlan picked = bench::plan_cpus();
    o.server_core = picked.server.value_or(-1);
    o.load_core = picked.client.value_or(-1);
    if (auto status = parse_args(argc, argv, o)) return *status;
    if (o.serve) return aio::run(serve_hello(), aio::new_selector_event_loop);
    if (o.load_port) return aio::run(run_load(o.load_port, o.load_connections, o.seconds), aio::new_selector_event_loop);

    // Room for -c1000 on both sides (children inherit it).
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    if (o.connections.empty()) o.connections = {"50", "1000"};

    ensure_peers(!o.no_install);
    const bool wrk = !o.own_load && bench::find_on_path("wrk");
    const bench::CpuPlan cpus = bench::plan_cpus(o.server_core, o.load_core);
    std::printf("keep-alive GET / -> \"Hello, World!\" (13 bytes); load: %s; %s\n",
                wrk ? "wrk -t1"
                    : o.own_load ? "the course's load generator (--own-load)"
                                 : "the course's load generator (wrk is not installed: apt-get install wrk)",
                cpus.description.c_str());
    std::fflush(stdout);

    // Every server is started once, idle between its turns; then each round loads each
    // server in turn, and the median of the rounds is reported. Interleaved this way, a
    // burst of load from elsewhere on a shared machine hits every server alike, instead of
    // whichever happened to be measured at that moment.
    const std::vector<std::string> variants = {"ours", "python-streams", "python-protocol", "nginx"};
    std::vector<Server> servers;
    for (const std::string& variant : variants) {
        if (!o.only.empty() && variant != o.only) continue;
        if (std::optional<Server> server = start_server(variant, cpus.server)) servers.push_back(std::move(*server));
    }
    std::vector<std::string> workloads;
    for (auto& c : o.connections) workloads.push_back("hello_c" + c);
    std::map<std::string, std::map<std::string, std::vector<double>>> runs;  // workload -> variant -> req/s
    for (int round = 1; round <= o.rounds; ++round) {
        for (std::size_t i = 0; i < o.connections.size(); ++i) {
            const int conns = std::atoi(o.connections[i].c_str());
            for (Server& server : servers) {
                bench::progress("round %d/%d, %s, %d connections: ", round, o.rounds, server.variant.c_str(), conns);
                auto measure = [&](double seconds) {
                    return wrk ? run_wrk(server.port, conns, seconds, cpus.client)
                               : run_own_load(server.port, conns, seconds, cpus.client);
                };
                if (o.warmup > 0) measure(o.warmup);
                Load load = measure(o.seconds);
                bench::progress("%s%s\n", load.rps ? bench::fmt(load.rps, "%.0f req/s").c_str() : "failed",
                                load.note.c_str());
                if (load.rps) runs[workloads[i]][server.variant].push_back(*load.rps);
            }
        }
    }
    for (Server& server : servers) {
        // The signal each takes as "finish and exit": SIGQUIT is nginx's graceful shutdown.
        const int status = server.child->stop(server.variant == "nginx" ? SIGQUIT : SIGINT, 5.0);
        if (server.variant == "ours" && status != 0)
            bench::progress("ours: did not exit 0 after SIGINT (exit status %d; -1: a signal ended it)\n", status);
        if (!server.dir.empty()) (void)std::system(("rm -rf " + bench::shell_quote(server.dir)).c_str());
    }
    std::map<std::string, std::map<std::string, double>> rps;  // the medians
    for (auto& w : workloads)
        for (const std::string& variant : variants)
            if (!runs[w][variant].empty()) {
                rps[w][variant] = bench::median(runs[w][variant]);
                bench::print_result(w, variant.c_str(), rps[w][variant], "req/s", 0);
            }

    auto get = [&](const std::string& w, const std::string& v) -> std::optional<double> {
        auto it = rps[w].find(v);
        if (it == rps[w].end()) return std::nullopt;
        return it->second;
    };
    std::printf("\nrequests per second, median of %d rounds%s\n", o.rounds,
                wrk ? " (wrk)" : " (the course's load generator)");
    bench::Table table({{"workload"}, {"ours"}, {"python-streams"}, {"python-protocol"}, {"nginx"},
                        {"ours/streams"}, {"ours/protocol"}, {"ours/nginx"}});
    for (auto& w : workloads)
        table.row({w, bench::fmt(get(w, "ours"), "%.0f"), bench::fmt(get(w, "python-streams"), "%.0f"),
                   bench::fmt(get(w, "python-protocol"), "%.0f"), bench::fmt(get(w, "nginx"), "%.0f"),
                   bench::ratio(get(w, "ours"), get(w, "python-streams")),
                   bench::ratio(get(w, "ours"), get(w, "python-protocol")),
                   bench::ratio(get(w, "ours"), get(w, "nginx"), 0, "%.2fx")});
    table.print();
    std::printf("\n");
    for (auto& w : workloads) {
        if (w != "hello_c50") continue;
        auto ours = get(w, "ours"), streams = get(w, "python-streams"), nginx = get(w, "nginx");
        if (ours && streams)
            std::printf("TARGET %s ours >= 2x python-streams: %s (%s)\n", w.c_str(), bench::verdict(*ours >= 2 * *streams),
                        bench::ratio(ours, streams).c_str());
        if (ours && nginx)
            std::printf("TARGET %s ours >= nginx: %s (%s)\n", w.c_str(), bench::verdict(*ours >= *nginx),
                        bench::ratio(ours, nginx, 0, "%.2fx").c_str());
    }
    return 0;
}
