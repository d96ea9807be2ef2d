// Stage 5: HTTP/1.1. The crawler: see crawler.hpp. The chapter's crawling.py, part for part:
// crawl() and work() first, then fetch() and what it leans on.
#include "stage5_http/crawler.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

#include "stage3_tasks_futures/exceptions.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage5_http/client_request.hpp"
#include "stage5_http/http_grammar.hpp"

namespace aio {

namespace {

ClientSessionOptions session_options(const CrawlerOptions& options) {
    ClientSessionOptions s;
    s.timeout.total = options.timeout;
    return s;
}

// A link as the crawl keys it: resolved against the page's URL, without its fragment (two
// links that differ only after '#' are one page). nullopt if it is not an http URL.
std::optional<URL> resolve_link(const URL& page, std::string_view link) {
    link = link.substr(0, link.find('#'));
    try {
        return page.join(link);
    } catch (const InvalidURL&) {
        return std::nullopt;  // https:, mailto:, javascript:, or not a URL at all
    }
}

}  // namespace

Crawler::Crawler(std::string_view root_url, CrawlerOptions options)
    : options_(options), root_(URL::parse(root_url.substr(0, root_url.find('#')))), session_(session_options(options)) {
    options_.max_tasks = std::max(options_.max_tasks, 1);
    options_.max_tries = std::max(options_.max_tries, 1);
    options_.max_pages = std::max<std::size_t>(options_.max_pages, 1);
    add_url(root_.str(), options_.max_redirect);
}

// [docs:crawler_crawl]
// Run the workers until the queue is drained (every URL put has been task_done()), then
// stop them: they are all waiting in queue.get() by then, and cancelling is how they end.
Coroutine<> Crawler::crawl() {
    EventLoop& loop = get_running_loop();
    const double start = loop.time();
    std::vector<Ref<Task<>>> workers;
    for (int i = 0; i < options_.max_tasks; ++i) workers.push_back(create_task(work()));
    std::exception_ptr interrupted;  // crawl() itself cancelled: stop the workers all the same
    try {
        co_await queue_.join();
    } catch (...) {
        interrupted = std::current_exception();
    }
    for (Ref<Task<>>& w : workers) w->cancel();
    for (Ref<Task<>>& w : workers) {
        try {
            co_await w;  // ended: they hold `this`, so they must not outlive the call
        } catch (const CancelledError&) {
        }
    }
    co_await session_.close();
    seconds_ = loop.time() - start;
    if (interrupted) std::rethrow_exception(interrupted);
}

// One worker: take a URL, fetch it (which queues the new links it finds), say it is done.
Coroutine<> Crawler::work() {
    for (;;) {
        Item item = co_await queue_.get();
        co_await fetch(std::move(item.url), item.max_redirect);
        queue_.task_done();
    }
}
// [/docs:crawler_crawl]

// [docs:crawler_fetch]
// Fetch one URL (up to max_tries times while no answer comes) and queue what it leads to:
// a redirect's target (the session is told not to follow it, so that the target goes
// through seen_urls like any link), or the page's links on this host.
Coroutine<> Crawler::fetch(std::string url, int max_redirect) {
    std::vector<std::string> links;
    FetchStatistic stat;
    for (int tries = 0; tries < options_.max_tries; ++tries) {
        links.clear();
        stat = co_await fetch_once(url, links);
        if (stat.exception.empty()) break;  // an answer, whatever its status
    }
    if (!stat.next_url.empty() && max_redirect > 0 && url_allowed(URL::parse(stat.next_url)))
        add_url(stat.next_url, max_redirect - 1);
    for (const std::string& link : links) {
        const bool fresh = seen_urls_.count(link) == 0;
        if (fresh && add_url(link, options_.max_redirect)) ++stat.num_new_urls;
    }
    record(std::move(stat));
}
// [/docs:crawler_fetch]

// One attempt: the answer's status and size, and the links of an HTML page (resolved,
// on this host, each once). A failure (no connection, a broken answer, the timeout) is
// returned in `exception`, never thrown: one bad URL must not stop the crawl.
Coroutine<FetchStatistic> Crawler::fetch_once(std::string url, std::vector<std::string>& links) {
    FetchStatistic stat;
    stat.url = url;
    RequestOptions request;
    request.allow_redirects = false;
    HttpHeaders no_headers;
    try {
        ClientResponse response = co_await session_.get(url, std::move(no_headers), request);
        stat.status = response.status();
        stat.content_type = std::string(response.headers().get("Content-Type").value_or(""));
        // The body in pieces: all of it is counted (and read, so that the connection goes
        // back to the pool), but only max_page_size bytes are kept to look for links in.
        std::string page;
        for (;;) {
            std::string piece = co_await response.content().read(64 * 1024);
            if (piece.empty()) break;
            stat.size += piece.size();
            if (page.size() < options_.max_page_size)
                page.append(piece, 0, std::min(piece.size(), options_.max_page_size - page.size()));
        }
        if (is_redirect(stat.status)) {
            if (auto location = response.headers().get("Location"))
                if (std::optional<URL> next = resolve_link(response.url(), *location)) stat.next_url = next->str();
        } else if (stat.status >= 200 && stat.status < 300 &&
                   iequals(std::string_view(stat.content_type).substr(0, 9), "text/html")) {
            for (const std::string& link : find_links(page)) {
                std::optional<URL> target = resolve_link(response.url(), link);
                if (!target || !url_allowed(*target)) continue;
                std::string key = target->str();
                if (std::find(links.begin(), links.end(), key) == links.end()) links.push_back(std::move(key));
            }
            stat.num_urls = links.size();
        }
    } catch (const CancelledError&) {
        throw;  // (a std::exception too) the crawl is being stopped: not this URL's failure
    } catch (const std::exception& e) {
        stat.status = 0;
        stat.exception = e.what();
        links.clear();
    }
    co_return stat;
}

// Only the root's host and port: a crawl of one site. (The chapter compares host names and
// lets "www.x.com" follow "x.com"; here another port is another server, not followed.)
bool Crawler::url_allowed(const URL& url) const { return url.host() == root_.host() && url.port() == root_.port(); }

// Accept a URL into the crawl: once (seen_urls), and while max_pages allows.
bool Crawler::add_url(const std::string& url, int max_redirect) {
    if (seen_urls_.count(url)) return false;
    if (seen_urls_.size() >= options_.max_pages) {
        ++dropped_;
        return false;
    }
    seen_urls_.insert(url);
    queue_.put_nowait(Item{url, max_redirect});
    return true;
}

void Crawler::record(FetchStatistic stat) {
    if (stat.failed())
        ++errors_;
    else if (is_redirect(stat.status))
        ++redirects_;
    else if (stat.status >= 200 && stat.status < 300)
        ++pages_;
    bytes_ += stat.size;
    done_.push_back(std::move(stat));
    if (on_fetched) on_fetched(done_.back());
}

std::vector<std::string> find_links(std::string_view html) {
    std::vector<std::string> links;
    constexpr std::string_view attribute = "href=";
    for (std::size_t at = 0; at + attribute.size() < html.size(); ++at) {
        if (!iequals(html.substr(at, attribute.size()), attribute)) continue;
        const std::size_t open = at + attribute.size();
        const char quote = html[open];
        if (quote != '"' && quote != '\'') continue;  // unquoted values are skipped
        const std::size_t close = html.find(quote, open + 1);
        if (close == std::string_view::npos) break;  // the page ends inside the value
        links.emplace_back(html.substr(open + 1, close - open - 1));
        at = close;
    }
    return links;
}

}  // namespace aio
