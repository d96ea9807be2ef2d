// Stage 5: HTTP/1.1. `crawl`: the course's Crawler (crawler.hpp) on a site.
//
//     build/bin/crawl                                   # the built-in site, served in a thread
//     build/bin/crawl --workers 20 http://127.0.0.1:8080/site/
//     build/bin/crawl --max-pages 50 http://127.0.0.1:8000/
//
// With no URL it starts the course's httpbin (web_httpbin.hpp) on 127.0.0.1, an ephemeral
// port, on an event loop of its own in a second thread, and crawls its /site/ (300 linked
// pages and an index). Progress goes to stderr; the summary to stdout: pages, errors,
// redirects, bytes, seconds and pages per second. Exit status: 0 when the crawl fetched at
// least one page (pages that failed are counted, not fatal), 1 when none could be fetched (the
// root failed) or the crawl could not run, 2 for a bad command line.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"
#include "stage3_tasks_futures/runners.hpp"
#include "stage4_sockets/selector_events.hpp"
#include "stage5_http/crawler.hpp"
#include "stage5_http/server_thread.hpp"
#include "stage5_http/web_httpbin.hpp"

namespace {

struct Settings {
    std::vector<std::string> urls;  // none, or one
    int workers = 10;
    long max_pages = 1000;
    bool quick = false;
    bool verbose = false;
    double timeout = 10;
};

aio::Coroutine<int> crawl(std::string root, Settings s) {
    aio::CrawlerOptions options;
    options.max_tasks = s.workers;
    options.max_pages = std::size_t(s.max_pages);
    options.timeout = s.timeout;
    aio::Crawler crawler(root, options);
    const bool tty = ::isatty(STDERR_FILENO);
    crawler.on_fetched = [&crawler, &s, tty](const aio::FetchStatistic& stat) {
        if (stat.failed()) {
            std::fprintf(stderr, "%s%s: %s\n", tty ? "\r\033[K" : "", stat.url.c_str(),
                         stat.exception.empty() ? ("HTTP " + std::to_string(stat.status)).c_str() : stat.exception.c_str());
        } else if (s.verbose) {
            std::fprintf(stderr, "%s%d %llu bytes %zu links (%zu new) %s%s%s\n", tty ? "\r\033[K" : "", stat.status,
                         static_cast<unsigned long long>(stat.size), stat.num_urls, stat.num_new_urls, stat.url.c_str(),
                         stat.next_url.empty() ? "" : " -> ", stat.next_url.c_str());
        }
        const std::size_t n = crawler.done().size();
        if (tty)
            std::fprintf(stderr, "\r\033[Kcrawled %zu, queued %zu", n, crawler.seen_urls().size() - n);
        else if (n % 100 == 0)
            std::fprintf(stderr, "crawled %zu, queued %zu\n", n, crawler.seen_urls().size() - n);
    };
    std::fprintf(stderr, "crawling %s with %d workers, at most %ld pages\n", crawler.root().str().c_str(), s.workers,
                 s.max_pages);
    co_await crawler.crawl();
    if (tty) std::fprintf(stderr, "\r\033[K");
    const double seconds = crawler.seconds();
    std::printf("%s: %zu pages, %zu errors, %zu redirects, %zu links dropped (--max-pages), %llu bytes in %.3f s: "
                "%.0f pages/s\n",
                crawler.root().str().c_str(), crawler.pages(), crawler.errors(), crawler.redirects(), crawler.dropped(),
                static_cast<unsigned long long>(crawler.bytes()), seconds,
                seconds > 0 ? double(crawler.done().size()) / seconds : 0.0);
    co_return crawler.pages() > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    aio::OptionParser options(
        "Crawls an http:// site with the course's Crawler: a queue of URLs, N workers on one\n"
        "ClientSession, each page fetched once, links followed on the root's host and port only,\n"
        "redirects followed, until no URL is left. With no URL, crawls the course's built-in site\n"
        "(httpbin's /site/, 301 pages), served on 127.0.0.1 by a second thread. Links are found\n"
        "by a simplified scanner: href=\"...\" and href='...' anywhere in an HTML page.\n"
        "Prints pages, errors, bytes, seconds and pages/s; progress on stderr. Exit status: 0 when\n"
        "at least one page was fetched, 1 when none could be (the root failed), 2 for a bad command line.");
    options.arguments("URL", s.urls, "the root to crawl (none: the built-in site)", false)
        .integer("--workers", s.workers, 1, 1000, "N", "worker tasks: pages fetched at once (the chapter's max_tasks)")
        .integer("--max-pages", s.max_pages, 1L, 10000000L, "N", "URLs accepted into the crawl, the root included")
        .number("--timeout", s.timeout, 0.001, 3600, "S", "seconds for each page (connect, head, body)")
        .flag("--quick", s.quick, "a short crawl: at most 50 pages")
        .flag("-v, --verbose", s.verbose, "a line per page on stderr");
    options.epilog("Example:\n  ./build/bin/crawl --workers 20\n  ./build/bin/crawl http://127.0.0.1:8000/");
    if (auto status = options.parse(argc, argv)) return *status;
    if (s.urls.size() > 1) return options.usage_error("crawl takes one root URL, got " + std::to_string(s.urls.size()));
    if (s.quick) s.max_pages = std::min(s.max_pages, 50L);
    if (!s.urls.empty()) {
        try {
            (void)aio::URL::parse(s.urls[0]);
        } catch (const aio::InvalidURL& e) {
            return options.usage_error(e.what());
        }
    }
    try {
        // The built-in site on its own loop in a second thread, so that our loop only crawls.
        std::optional<aio::ServerThread> server;
        std::string root;
        if (s.urls.empty()) {
            server.emplace(aio::httpbin_router());
            root = server->url("/site/");
            std::fprintf(stderr, "the built-in site: httpbin on 127.0.0.1:%d, in a thread\n", server->port());
        } else {
            root = s.urls[0];
        }
        return aio::run(crawl(root, s), aio::new_selector_event_loop);
    } catch (const aio::KeyboardInterrupt&) {
        std::fprintf(stderr, "\ncrawl: interrupted\n");
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "crawl: %s\n", e.what());
        return 1;
    }
}
