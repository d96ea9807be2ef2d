// Stage 5: HTTP/1.1, built on the client. A web crawler: a queue of URLs, N workers, one
// ClientSession.
//
// Adds:    Crawler (crawl, done, seen_urls, pages, errors, bytes), CrawlerOptions,
//          FetchStatistic, find_links (a simplified href scanner).
// Mirrors: `Crawler` in "A Web Crawler With asyncio Coroutines" (A. Jesse Jiryu Davis and
//          Guido van Rossum, in "500 Lines or Less"), its crawling.py on asyncio.Queue and
//          aiohttp: the same parts, by the same names (max_tasks, max_redirect, max_tries,
//          seen_urls, done, add_url, work, fetch, FetchStatistic).
//
//   root ──► add_url ──► Queue ──► worker 1..max_tasks: get ─ fetch ─ task_done ─ get ...
//              ▲                                         │
//              └── new links on this host, not seen ◄────┤ 2xx text/html: find_links
//              └── a redirect's Location (max_redirect) ◄┘ 3xx: not followed by the session
//
//   crawl(): start the workers; queue.join() (every URL put has been task_done()); cancel
//   the workers, wait for them to end, close the session.
//
// The queue never waits on a full slot (no maxsize): a worker adds the links it finds with
// put_nowait, so a worker never blocks on another. The crawl ends when no URL is queued or
// being fetched: join() is the count of unfinished URLs reaching zero, which a worker can
// only cause after it has added the new links of its page, so nothing is cut short.
//
// Differences from the chapter: a link is followed only on the root's host *and port*
// (the chapter compares host names, with a "lenient" mode for subdomains); redirects are
// checked against that rule too; max_pages, which the chapter does not have, caps the URLs
// accepted into the crawl, so that a crawl of an unknown site is bounded; links are found by
// a simplified scanner (find_links), as naive as the chapter's regular expression on purpose.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "stage3_tasks_futures/coroutine.hpp"
#include "stage3_tasks_futures/queues.hpp"
#include "stage5_http/client_session.hpp"
#include "stage5_http/url.hpp"

namespace aio {

struct CrawlerOptions {
    int max_tasks = 10;          // workers: URLs fetched at once (the session's pool follows)
    std::size_t max_pages = 1000;  // URLs accepted into the crawl, the root included; the rest are dropped
    int max_redirect = 10;       // redirects followed from one link
    int max_tries = 4;           // attempts at a URL whose connection fails (not for HTTP errors)
    double timeout = 10.0;       // seconds for each attempt: connect, head and body (total)
    std::size_t max_page_size = 4 * 1024 * 1024;  // bytes of a page scanned for links (the rest only counted)
};

// What became of one URL: the chapter's FetchStatistic (a namedtuple there).
struct FetchStatistic {
    std::string url;
    std::string next_url;       // where a redirect pointed; "" otherwise
    int status = 0;             // 0 when no answer came
    std::string exception;      // why no answer came, after max_tries attempts; "" otherwise
    std::uint64_t size = 0;     // body bytes received
    std::string content_type;   // the answer's Content-Type, as sent
    std::size_t num_urls = 0;   // links found on the page that may be followed
    std::size_t num_new_urls = 0;  // of those, links not seen before (now queued)
    // An error: no answer, or a status of 400 or more.
    bool failed() const noexcept { return status == 0 || status >= 400; }
};

class Crawler {
public:
    // Queues `root_url` (an http:// URL; throws InvalidURL). The crawl follows links to
    // root's host:port only.
    explicit Crawler(std::string_view root_url, CrawlerOptions options = {});
    Crawler(const Crawler&) = delete;
    Crawler& operator=(const Crawler&) = delete;

    // Crawls until no URL is left queued or in flight, then stops the workers and closes
    // the session. Errors of single URLs are recorded in done(), never thrown. Call once;
    // the crawler must outlive the call. Cancelling it stops the workers too.
    Coroutine<> crawl();

    // Called on the loop after each URL is done (progress, logging); may be left empty.
    std::function<void(const FetchStatistic&)> on_fetched;

    // Every URL fetched, in the order each finished.
    const std::vector<FetchStatistic>& done() const noexcept { return done_; }
    // Every URL accepted into the crawl (fetched, or to be), normalised (URL::str()).
    const std::unordered_set<std::string>& seen_urls() const noexcept { return seen_urls_; }
    const URL& root() const noexcept { return root_; }
    std::size_t pages() const noexcept { return pages_; }      // answered 2xx
    std::size_t errors() const noexcept { return errors_; }    // FetchStatistic::failed()
    std::size_t redirects() const noexcept { return redirects_; }
    std::size_t dropped() const noexcept { return dropped_; }  // new links refused by max_pages
    std::uint64_t bytes() const noexcept { return bytes_; }    // body bytes, all answers
    double seconds() const noexcept { return seconds_; }      // the crawl's wall-clock time

private:
    struct Item {
        std::string url;
        int max_redirect;
    };
    Coroutine<> work();
    Coroutine<> fetch(std::string url, int max_redirect);
    Coroutine<FetchStatistic> fetch_once(std::string url, std::vector<std::string>& links);
    bool url_allowed(const URL& url) const;
    bool add_url(const std::string& url, int max_redirect);
    void record(FetchStatistic stat);

    CrawlerOptions options_;
    URL root_;
    Queue<Item> queue_;
    ClientSession session_;
    std::unordered_set<std::string> seen_urls_;
    std::vector<FetchStatistic> done_;
    std::size_t pages_ = 0, errors_ = 0, redirects_ = 0, dropped_ = 0;
    std::uint64_t bytes_ = 0;
    double seconds_ = 0;
};

// The links of an HTML page: the value of every href="..." or href='...' attribute, as
// written (not resolved, not decoded). Simplified: a scan for `href=` followed by a quote,
// in any case, anywhere in the text, comments and scripts included; entities such as
// &amp; are not decoded; unquoted values are skipped. Enough for the course's site and
// most hand-written pages; a browser's HTML parser it is not.
std::vector<std::string> find_links(std::string_view html);

}  // namespace aio
