// Stage 5 tests: the Crawler (stage5_http/crawler.hpp) against our server: the built-in
// site crawled whole, each page once; the page limit; a small site of its own with a broken
// link, a redirect, off-host and non-http links; cancelling a crawl; the link scanner; and
// build/bin/crawl (skipped, saying so, where it is not built).
#include <set>
#include <string>
#include <vector>

#include "stage3_tasks_futures/exceptions.hpp"
#include "stage3_tasks_futures/timeouts.hpp"
#include "stage5_http/crawler.hpp"
#include "stage5_http/web_httpbin.hpp"
#include "tests/child_process.hpp"
#include "tests/net_test_support.hpp"
#include "tests/server_test_support.hpp"

namespace {

using namespace net_test_support;
using namespace server_test_support;
using aio::Coroutine;
using aio::Ref;

std::string base(const Ref<aio::HttpServer>& server) { return "http://127.0.0.1:" + std::to_string(server->port()); }

std::multiset<std::string> fetched_urls(const aio::Crawler& crawler) {
    std::multiset<std::string> urls;
    for (const aio::FetchStatistic& stat : crawler.done()) urls.insert(stat.url);
    return urls;
}

Coroutine<> whole_site_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    aio::CrawlerOptions options;
    options.max_tasks = 8;
    aio::Crawler crawler(base(server) + "/site/", options);
    co_await crawler.crawl();

    const std::multiset<std::string> urls = fetched_urls(crawler);
    REQUIRE(urls.size() == std::size_t(aio::kSitePages) + 1);  // the pages and the index
    REQUIRE(urls.count(base(server) + "/site/") == 1);
    for (int i = 0; i < aio::kSitePages; ++i) {
        INFO("page " << i);
        REQUIRE(urls.count(base(server) + "/site/page/" + std::to_string(i)) == 1);
    }
    REQUIRE(crawler.pages() == urls.size());
    REQUIRE(crawler.errors() == 0);
    REQUIRE(crawler.dropped() == 0);
    REQUIRE(crawler.seen_urls().size() == urls.size());
    REQUIRE(crawler.bytes() > 300u * 100u);
    // The server's side of "exactly once": one request per page, none repeated.
    REQUIRE(server->requests_handled() == urls.size());
    co_await server->shutdown(1.0);
}

NET_TEST_CASE("crawler: the built-in site is crawled whole, every page exactly once", "[stage5][crawler]") {
    run_on("epoll", whole_site_scenario(), 20.0);
}

Coroutine<> page_limit_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(aio::httpbin_router());
    aio::CrawlerOptions options;
    options.max_tasks = 4;
    options.max_pages = 25;
    aio::Crawler crawler(base(server) + "/site/", options);
    co_await crawler.crawl();
    REQUIRE(crawler.done().size() == 25);
    REQUIRE(fetched_urls(crawler).size() == 25);
    REQUIRE(crawler.pages() == 25);
    REQUIRE(crawler.dropped() > 0);  // links were found past the limit, and left
    REQUIRE(server->requests_handled() == 25);
    co_await server->shutdown(1.0);
}

NET_TEST_CASE("crawler: max_pages bounds the crawl", "[stage5][crawler]") {
    run_on("epoll", page_limit_scenario(), 20.0);
}

aio::Response html(std::string body) {
    aio::Response r(200, std::move(body));
    r.content_type = "text/html";
    return r;
}

// A small site: / links to a page, a broken link, a redirect, other hosts and schemes.
aio::Router small_site() {
    aio::Router router;
    router.add_get("/", [](aio::Request&) {
        return html("<a href=\"/a\">a</a> <a href='/broken'>broken</a> <a href=\"/redir\">r</a>\n"
                    "<a href=\"http://127.0.0.1:1/x\">another port</a> <a href=\"http://example.invalid/\">other</a>\n"
                    "<a href=\"https://127.0.0.1/\">tls</a> <a href=\"mailto:a@b.c\">mail</a> <a href=\"#top\">top</a>");
    });
    router.add_get("/a", [](aio::Request&) { return html("<A HREF=\"/\">home</A> <a href=\"/a#part\">me</a> <a href=\"b\">b</a>"); });
    router.add_get("/redir", [](aio::Request&) {
        aio::Response r(302);
        r.headers.add("Location", "/b");
        return r;
    });
    // Not HTML: its "link" is not followed.
    router.add_get("/b", [](aio::Request&) { return aio::Response::text("href=\"/never\""); });
    return router;
}

Coroutine<> small_site_scenario() {
    Ref<aio::HttpServer> server = co_await start_server(small_site());
    aio::CrawlerOptions options;
    options.max_tasks = 50;  // more workers than pages: the idle ones must end too
    options.max_tries = 1;
    aio::Crawler crawler(base(server) + "/", options);
    co_await crawler.crawl();

    const std::multiset<std::string> urls = fetched_urls(crawler);
    const std::string b = base(server);
    REQUIRE(urls == std::multiset<std::string>{b + "/", b + "/a", b + "/broken", b + "/redir", b + "/b"});
    REQUIRE(crawler.errors() == 1);  // /broken: a 404, and the crawl went on
    REQUIRE(crawler.redirects() == 1);
    REQUIRE(crawler.pages() == 3);
    for (const aio::FetchStatistic& stat : crawler.done()) {
        if (stat.url == b + "/broken") REQUIRE(stat.status == 404);
        if (stat.url == b + "/redir") REQUIRE(stat.next_url == b + "/b");
        if (stat.url == b + "/") REQUIRE(stat.num_urls == 4);  // itself (#top), /a, /broken, /redir
    }
    co_await server->shutdown(1.0);
}

NET_TEST_CASE("crawler: a broken link is an error, redirects are followed, other hosts are not",
              "[stage5][crawler]") {
    run_on("epoll", small_site_scenario(), 10.0);
}

Coroutine<> cancel_scenario() {
    aio::Router router = aio::httpbin_router();
    router.add_get("/slow", [](aio::Request&) { return html("<a href=\"/delay/5\">slow</a>"); });
    Ref<aio::HttpServer> server = co_await start_server(std::move(router));
    aio::Crawler crawler(base(server) + "/slow");
    bool timed_out = false;
    try {
        auto crawling = aio::wait_for(crawler.crawl(), 0.3);
        co_await std::move(crawling);
    } catch (const aio::TimeoutError&) {
        timed_out = true;
    }
    REQUIRE(timed_out);
    REQUIRE(crawler.done().size() == 1);  // /slow; /delay/5 was cut short
    co_await server->shutdown(0.1);
}

NET_TEST_CASE("crawler: cancelling a crawl stops its workers and closes its connections", "[stage5][crawler]") {
    run_on("epoll", cancel_scenario(), 10.0);
}

TEST_CASE("crawler: find_links finds quoted href values, in any case", "[stage5][crawler]") {
    using V = std::vector<std::string>;
    CHECK(aio::find_links("<a href=\"/a\">x</a><A HREF='b?c=1'>y</A>") == V{"/a", "b?c=1"});
    CHECK(aio::find_links("<a href=/unquoted>") == V{});
    CHECK(aio::find_links("<a href=\"\">") == V{""});
    CHECK(aio::find_links("<a href=\"/cut") == V{});
    CHECK(aio::find_links("href=") == V{});
    CHECK(aio::find_links("") == V{});
}

using Run = child_process::ProgramRun;

std::optional<Run> crawl_program(std::vector<std::string> args) {
    std::optional<Run> run = child_process::run_course_program("crawl", std::move(args));
    if (!run) WARN("build/bin/crawl is not built (run make): its tests are skipped");
    return run;
}

NET_TEST_CASE("crawl: --help, a small run of the built-in site, a root that fails, bad command lines", "[stage5][crawler]") {
    auto help = crawl_program({"--help"});
    if (!help) return;
    CHECK(help->status == 0);
    CHECK(help->out.find("--max-pages") != std::string::npos);

    auto quick = crawl_program({"--quick", "--workers", "4"});
    REQUIRE(quick);
    CHECK(quick->status == 0);
    CHECK(quick->out.find(": 50 pages, 0 errors") != std::string::npos);
    CHECK(quick->err.find("crawling http://127.0.0.1:") != std::string::npos);

    aio::Socket unused = net_test_support::listening_socket();
    const std::string refused = "http://127.0.0.1:" + std::to_string(unused.getsockname().port()) + "/";
    unused.close();
    auto nothing = crawl_program({refused});
    REQUIRE(nothing);
    CHECK(nothing->status == 1);  // the root could not be fetched
    CHECK(nothing->out.find(": 0 pages, 1 errors") != std::string::npos);
    CHECK(nothing->err.find(refused + ": cannot connect") != std::string::npos);

    auto bad = crawl_program({"--max-pages", "0"});
    REQUIRE(bad);
    CHECK(bad->status == 2);
    auto https = crawl_program({"https://example.com/"});
    REQUIRE(https);
    CHECK(https->status == 2);
}

}  // namespace
