// Stage 5 benchmark: the HTTP/1.1 parser, in messages parsed per second.
//
// Measures: what parsing costs a server (requests) and a client (responses), with one
// parser reused as on a keep-alive connection: feed() the bytes, pull every event, read the
// method, target and a field of each head and touch each body byte. Workloads:
//   request_browser    a 535-byte request as a browser sends it (12 fields)
//   request_minimal    "GET / HTTP/1.1" with a Host field: what wrk sends
//   request_pieces     the browser request in 8 pieces: the incremental path
//   request_pipelined  16 minimal requests per feed()
//   response_small     an nginx-like "hello" response, 7 fields and a 13-byte body
//   response_chunked   a chunked response of 4 chunks and a trailer
// Python:  bench_http_parse.py beside this file parses the same messages with the standard
//          library's parsers (http.server's parse_request, http.client's HTTPResponse), and
//          with aiohttp's (llhttp inside) when python3-aiohttp is installed.
// Target:  none of its own: the parser is on the path of the stage 5 server, which must
//          reach nginx's requests/second (bench_http_server); here it should cost well under
//          a microsecond per request.
//
// Output: one `RESULT name=... variant=... value=... unit=...` line per figure, then a
// table. Progress goes to stderr.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage2_custom_loop/bench_util.hpp"
#include "stage5_http/http_parser.hpp"

namespace {

namespace bench = aio::bench;

struct Options {
    long count = 1'000'000;
    int runs = 5;
    bool python = true;
    std::string only;  // one workload, for profiling
};

// Parses the command line into `o`. Returns nullopt to go on, or the status to exit with.
std::optional<int> parse_args(int argc, char** argv, Options& o) {
    aio::OptionParser options(
        "HTTP/1.1 parsing speed, in messages per second (median of R runs), one parser reused as\n"
        "on a keep-alive connection, for six workloads:\n"
        "  request_browser    a 535-byte browser request (12 fields)\n"
        "  request_minimal    GET / with a Host field, as wrk sends it\n"
        "  request_pieces     the browser request fed in 8 pieces (the incremental path)\n"
        "  request_pipelined  16 minimal requests per feed()\n"
        "  response_small     an nginx-like hello response (7 fields, 13-byte body)\n"
        "  response_chunked   a chunked response, 4 chunks and a trailer\n"
        "Then, if python3 is on PATH, bench_http_parse.py (beside this program's source) parses the\n"
        "same messages with Python's standard library, and with aiohttp's parser if installed.");
    options.integer("--count", o.count, 16L, 1'000'000'000L, "N", "messages per run (Python parses N/20)")
        .integer("--runs", o.runs, 1, 1000, "R", "runs of each workload; the median is reported")
        .choice("--workload", o.only,
                {"request_browser", "request_minimal", "request_pieces", "request_pipelined", "response_small",
                 "response_chunked"},
                "run only this workload (for a profiler), without the Python side")
        .constant("--no-python", o.python, false, "skip the Python side");
    if (auto status = options.parse(argc, argv)) return status;
    if (!o.only.empty()) o.python = false;
    return std::nullopt;
}

// ---- the messages -------------------------------------------------------------------------

const std::string kBrowser =
    "GET /articles/2024/parsing-http.html?ref=home&lang=en HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-GB,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: http://www.example.com/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Priority: u=0, i\r\n"
    "\r\n";
const std::string kMinimal = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const std::string kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Mon, 02 Jun 2025 10:00:00 GMT\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Last-Modified: Mon, 02 Jun 2025 09:00:00 GMT\r\n"
    "Connection: keep-alive\r\n"
    "Accept-Ranges: bytes\r\n"
    "\r\n"
    "Hello, World!";
const std::string kChunked =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "7\r\nHello, \r\n6\r\nWorld!\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n3;ext=1\r\n...\r\n0\r\n"
    "X-Checksum: 42\r\n"
    "\r\n";

// Pulls every event; returns a number that depends on what was parsed, so the compiler
// cannot drop the work, and the count of complete messages.
template <typename Parser>
std::size_t drain(Parser& p, std::size_t& sink) {
    std::size_t messages = 0;
    for (aio::HttpEvent e = p.next_event(); e.kind != aio::HttpEvent::need_data; e = p.next_event()) {
        if (e.kind == aio::HttpEvent::head) {
            if constexpr (std::is_same_v<Parser, aio::HttpRequestParser>)
                sink += p.head().method().size() + p.head().target().size() + p.head().headers.size();
            else
                sink += std::size_t(p.head().status) + p.head().headers.size();
        } else if (e.kind == aio::HttpEvent::data) {
            for (char c : e.bytes) sink += std::size_t(c);
        } else if (e.kind == aio::HttpEvent::end_of_message) {
            ++messages;
        }
    }
    return messages;
}

std::size_t g_sink = 0;

// Parses `count` messages, fed `per_feed` messages at a time and each message cut into
// `pieces`; returns messages per second.
template <typename Parser>
double run(const std::string& message, long count, int per_feed, int pieces) {
    std::string batch;
    for (int i = 0; i < per_feed; ++i) batch += message;
    std::vector<std::string> parts;
    for (int i = 0; i < pieces; ++i)
        parts.push_back(batch.substr(batch.size() * i / pieces, batch.size() * (i + 1) / pieces - batch.size() * i / pieces));
    Parser p;
    std::size_t sink = 0, parsed = 0;
    double t0 = bench::now();
    for (long done = 0; done < count; done += per_feed) {
        for (const std::string& part : parts) {
            p.feed(part);
            parsed += drain(p, sink);
        }
    }
    double rate = double(parsed) / bench::seconds_since(t0);
    g_sink += sink;
    if (parsed < std::size_t(count)) {
        std::fprintf(stderr, "bench_http_parse: parsed %zu of %ld messages\n", parsed, count);
        std::exit(1);
    }
    return rate;
}

struct Workload {
    const char* name;
    double (*run)(long count);
    std::size_t bytes;  // per message
};
const Workload kWorkloads[] = {
    {"request_browser", [](long n) { return run<aio::HttpRequestParser>(kBrowser, n, 1, 1); }, kBrowser.size()},
    {"request_minimal", [](long n) { return run<aio::HttpRequestParser>(kMinimal, n, 1, 1); }, kMinimal.size()},
    {"request_pieces", [](long n) { return run<aio::HttpRequestParser>(kBrowser, n, 1, 8); }, kBrowser.size()},
    {"request_pipelined", [](long n) { return run<aio::HttpRequestParser>(kMinimal, n, 16, 1); }, kMinimal.size()},
    {"response_small", [](long n) { return run<aio::HttpResponseParser>(kResponse, n, 1, 1); }, kResponse.size()},
    {"response_chunked", [](long n) { return run<aio::HttpResponseParser>(kChunked, n, 1, 1); }, kChunked.size()},
};

std::string millions(std::optional<double> v) {
    if (!v) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f M", *v / 1e6);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (auto status = parse_args(argc, argv, o)) return *status;

    std::vector<std::optional<double>> ours;
    for (const Workload& w : kWorkloads) {
        if (!o.only.empty() && o.only != w.name) {
            ours.push_back(std::nullopt);
            continue;
        }
        std::vector<double> rates;
        for (int r = 1; r <= o.runs; ++r) {
            bench::progress("ours: %s, run %d/%d (%ld messages)...", w.name, r, o.runs, o.count);
            rates.push_back(w.run(o.count));
            bench::progress(" %.2f M/s\n", rates.back() / 1e6);
        }
        ours.push_back(bench::median(rates));
        bench::print_result(w.name, "ours", *ours.back(), "messages_per_s", 0);
    }

    std::vector<std::optional<double>> stdlib(std::size(kWorkloads)), aiohttp(std::size(kWorkloads));
    if (o.python) {
        auto rs = bench::run_python(
            __FILE__, {"--count", std::to_string(std::max(1L, o.count / 20)), "--runs", std::to_string(o.runs)});
        for (auto& r : rs) std::printf("%s\n", r.line.c_str());
        for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
            stdlib[i] = bench::find_result(rs, kWorkloads[i].name, "python-stdlib");
            aiohttp[i] = bench::find_result(rs, kWorkloads[i].name, "python-aiohttp");
        }
    }

    std::printf("\nHTTP/1.1 parsing, %ld messages per run, median of %d runs (messages/s)\n", o.count, o.runs);
    bench::Table table({{"workload", 18},
                        {"bytes", 6},
                        {"ours", 10},
                        {"ns/msg", 7},
                        {"MB/s", 7},
                        {"python-stdlib", 14},
                        {"python-aiohttp", 15},
                        {"ours / aiohttp", 15}});
    for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
        if (!ours[i]) continue;
        table.row({kWorkloads[i].name, std::to_string(kWorkloads[i].bytes), millions(ours[i]),
                   bench::fmt(1e9 / *ours[i], "%.0f"), bench::fmt(*ours[i] * double(kWorkloads[i].bytes) / 1e6, "%.0f"),
                   millions(stdlib[i]), millions(aiohttp[i]), bench::ratio(ours[i], aiohttp[i])});
    }
    table.print();
    if (o.python && !aiohttp[0])
        std::printf("  (aiohttp's parser: n/a; apt-get install python3-aiohttp to compare with it)\n");
    return g_sink == 42 ? 1 : 0;  // never true; keeps the parsing observable
}
