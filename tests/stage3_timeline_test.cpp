// Stage 3 tests: the Timeline (timeline.hpp). It records one slice per task step, and the
// slices never overlap, because one thread runs the steps one at a time; a Recording
// installs it for a scope and uninstalls it after, handing a step over cleanly when it
// begins or ends in the middle of one; a task at a freed task's address gets a row of its
// own; the Gantt chart has a row per task; the Chrome trace is valid JSON, whatever the
// task names contain.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage3_tasks_futures/timeline.hpp"
#include "stage3_tasks_futures/timeline_text.hpp"

namespace {

using Slice = aio::Timeline::Slice;

// A task of `steps` steps: it runs, then sleeps `pause` seconds before each further step.
aio::Coroutine<> worker(int steps, double pause) {
    for (int i = 1; i < steps; ++i) co_await aio::sleep(pause);
}

struct WorkerSpec {
    const char* name;
    int steps;
    double pause;
};
// Started in this order by three_workers(); together they take about 25 ms.
const WorkerSpec kWorkers[] = {{"worker-a", 3, 0.010}, {"worker-b", 2, 0.025}, {"worker-c", 4, 0.005}};

aio::Coroutine<> three_workers() {
    std::vector<aio::Ref<aio::Task<>>> tasks;
    for (const WorkerSpec& w : kWorkers) tasks.push_back(aio::create_task(worker(w.steps, w.pause), w.name));
    for (auto& t : tasks) co_await t;
}

void record_three_workers(aio::Timeline& timeline) {
    aio::Timeline::Recording rec(timeline);
    aio::run(three_workers());
}

// The row of the task called `name`; fails the test unless there is exactly one.
std::uint32_t row_named(const aio::Timeline& timeline, const std::string& name) {
    const auto& names = timeline.task_names();
    REQUIRE(std::count(names.begin(), names.end(), name) == 1);
    return static_cast<std::uint32_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

std::vector<Slice> slices_of(const aio::Timeline& timeline, std::uint32_t row) {
    std::vector<Slice> out;
    for (const Slice& s : timeline.slices())
        if (s.task == row) out.push_back(s);
    return out;
}

// Every slice has start <= end, and each ends before the next begins.
void require_ordered_and_disjoint(const std::vector<Slice>& slices) {
    for (std::size_t i = 0; i < slices.size(); ++i) {
        INFO("slice " << i);
        REQUIRE(slices[i].start <= slices[i].end);
        if (i + 1 < slices.size()) REQUIRE(slices[i].end <= slices[i + 1].start);
    }
}

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// A strict JSON checker (RFC 8259's grammar, nothing more): if it accepts the trace, so
// will a trace viewer's parser.
class JsonChecker {
public:
    explicit JsonChecker(const std::string& text) : s_(text) {}
    bool valid() {
        ws();
        if (!value()) return false;
        ws();
        return i_ == s_.size();
    }

private:
    bool value() {
        if (i_ >= s_.size()) return false;
        switch (s_[i_]) {
            case '{':
                return members('}', true);
            case '[':
                return members(']', false);
            case '"':
                return string();
            case 't':
                return literal("true");
            case 'f':
                return literal("false");
            case 'n':
                return literal("null");
            default:
                return number();
        }
    }
    // An object's "key": value pairs or an array's values, up to `close`.
    bool members(char close, bool keyed) {
        ++i_;
        ws();
        if (eat(close)) return true;
        for (;;) {
            ws();
            if (keyed) {
                if (i_ >= s_.size() || s_[i_] != '"' || !string()) return false;
                ws();
                if (!eat(':')) return false;
                ws();
            }
            if (!value()) return false;
            ws();
            if (eat(close)) return true;
            if (!eat(',')) return false;
        }
    }
    bool string() {
        ++i_;
        while (i_ < s_.size()) {
            const auto c = static_cast<unsigned char>(s_[i_++]);
            if (c == '"') return true;
            if (c < 0x20) return false;  // a raw control character: must be escaped
            if (c != '\\') continue;
            if (i_ >= s_.size()) return false;
            const char e = s_[i_++];
            if (e == 'u') {
                for (int k = 0; k < 4; ++k, ++i_)
                    if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) return false;
            } else if (e == '\0' || !std::strchr("\"\\/bfnrt", e)) {
                return false;
            }
        }
        return false;
    }
    bool number() {
        eat('-');
        if (eat('0')) {
        } else if (!digits()) {
            return false;
        }
        if (eat('.') && !digits()) return false;
        if (eat('e') || eat('E')) {
            if (!eat('+')) eat('-');
            if (!digits()) return false;
        }
        return true;
    }
    bool digits() {
        const std::size_t start = i_;
        while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
        return i_ > start;
    }
    bool literal(const char* word) {
        const std::size_t n = std::strlen(word);
        if (s_.compare(i_, n, word) != 0) return false;
        i_ += n;
        return true;
    }
    bool eat(char c) {
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void ws() {
        while (i_ < s_.size() && s_[i_] != '\0' && std::strchr(" \t\r\n", s_[i_])) ++i_;
    }

    const std::string& s_;
    std::size_t i_ = 0;
};

std::string trace_of(const aio::Timeline& timeline) {
    std::ostringstream out;
    timeline.write_chrome_trace(out);
    return out.str();
}

// Names that JSON must escape, as set_name() can set them.
aio::Coroutine<> oddly_named_tasks() {
    const char* names[] = {"say \"hi\" \\ bye", "tab\there\nnewline", "caf\xc3\xa9", "bad \xff byte"};
    std::vector<aio::Ref<aio::Task<>>> tasks;
    for (const char* name : names) {
        auto t = aio::create_task(worker(2, 0.001));
        t->set_name(name);
        tasks.push_back(t);
    }
    for (auto& t : tasks) co_await t;
}

// A task with a long name, one whose name holds a newline, and n more.
aio::Coroutine<> many_tasks(int n) {
    std::vector<aio::Ref<aio::Task<>>> tasks;
    tasks.push_back(aio::create_task(worker(1, 0), "a name far too long for the chart's label column"));
    tasks.push_back(aio::create_task(worker(1, 0), "line\nbreak"));
    for (int i = 0; i < n; ++i) tasks.push_back(aio::create_task(worker(1, 0), "t" + std::to_string(i)));
    for (auto& t : tasks) co_await t;
}

// Makes a Recording of `inner` in the middle of its second step and ends it in the middle
// of its third; four steps in all.
aio::Coroutine<> records_part_of_itself(aio::Timeline* inner) {
    co_await aio::sleep(0.002);
    {
        aio::Timeline::Recording rec(*inner);
        co_await aio::sleep(0.002);
    }
    co_await aio::sleep(0.002);
}

// Starts `n` tasks one after the other, each awaited and released before the next is made,
// so that the allocator can hand each new task its predecessor's memory.
aio::Coroutine<> one_after_another(int n, std::set<const void*>* addresses) {
    for (int i = 0; i < n; ++i) {
        auto t = aio::create_task(worker(1, 0), "job-" + std::to_string(i));
        addresses->insert(t.get());
        co_await t;
    }
}

}  // namespace

TEST_CASE("the timeline records one slice per step, ordered and never overlapping", "[stage3]") {
    aio::Timeline timeline;
    record_three_workers(timeline);

    // The main task (run()'s, default name) steps first and starts the workers, in order.
    REQUIRE(timeline.task_names().size() == 4);
    REQUIRE(timeline.task_names()[0].rfind("Task-", 0) == 0);
    for (std::size_t i = 0; i < std::size(kWorkers); ++i) REQUIRE(timeline.task_names()[i + 1] == kWorkers[i].name);
    require_ordered_and_disjoint(timeline.slices());
    REQUIRE(timeline.duration() >= 0.025 - 1e-6);  // worker-b slept 25 ms between its steps

    std::vector<std::vector<Slice>> per_worker;
    for (const WorkerSpec& w : kWorkers) {
        INFO(w.name);
        auto slices = slices_of(timeline, row_named(timeline, w.name));
        REQUIRE(slices.size() == static_cast<std::size_t>(w.steps));
        // The sleep's timer was set during a step, so the next step starts at least `pause`
        // after that step started (the timer never fires early).
        for (std::size_t i = 0; i + 1 < slices.size(); ++i)
            REQUIRE(slices[i + 1].start - slices[i].start >= w.pause - 1e-6);
        per_worker.push_back(slices);
    }
    // Concurrent: every worker started before any other one finished.
    for (auto& x : per_worker)
        for (auto& y : per_worker) REQUIRE(x.front().start < y.back().end);
}

TEST_CASE("the Gantt chart has a row per task, with its name and at least one '#'", "[stage3]") {
    aio::Timeline timeline;
    record_three_workers(timeline);
    const int width = 40;
    const std::string chart = timeline.gantt(width);
    INFO(chart);

    std::vector<std::string> rows;  // a row starts with its label; other lines with a space or a heading
    for (const std::string& line : lines_of(chart))
        if (!line.empty() && line[0] != ' ' && line.find('|') != std::string::npos) rows.push_back(line);
    REQUIRE(rows.size() == timeline.task_names().size());

    for (std::size_t r = 0; r < rows.size(); ++r) {
        const std::string& name = timeline.task_names()[r];
        REQUIRE(rows[r].rfind(name + " ", 0) == 0);
        const std::size_t open = rows[r].find('|'), close = rows[r].find('|', open + 1);
        REQUIRE(close - open - 1 == static_cast<std::size_t>(width));
        const std::string bar = rows[r].substr(open + 1, width);
        // Steps last microseconds and a column is about half a millisecond: a step that
        // touches a column still marks it.
        CHECK(bar.find('#') != std::string::npos);
        CHECK(bar.find_first_not_of("#.") == std::string::npos);
        const auto steps = slices_of(timeline, static_cast<std::uint32_t>(r)).size();
        CHECK(rows[r].find("|  " + std::to_string(steps) + (steps == 1 ? " step," : " steps,")) != std::string::npos);
    }
    // Every row's bar starts in the same column, under the time axis.
    for (const std::string& row : rows) CHECK(row.find('|') == rows[0].find('|'));
    CHECK(chart.rfind("Timeline: 4 tasks, ", 0) == 0);
    CHECK(chart.find("Legend: '#'") != std::string::npos);
    CHECK(chart.find("1 column = ") != std::string::npos);
}

TEST_CASE("the Gantt chart cleans and cuts long names, and shows the first 50 tasks of many", "[stage3]") {
    aio::Timeline timeline;
    {
        aio::Timeline::Recording rec(timeline);
        aio::run(many_tasks(60));
    }
    const std::string chart = timeline.gantt();
    INFO(chart);
    REQUIRE(timeline.task_names().size() == 1 + 2 + 60);
    std::size_t rows = 0;
    for (const std::string& line : lines_of(chart))
        if (!line.empty() && line[0] != ' ' && line.find('|') != std::string::npos) ++rows;
    CHECK(rows == 50);
    CHECK(chart.find("... and 13 more tasks") != std::string::npos);
    CHECK(chart.find("\na name far too long for~ |") != std::string::npos);  // cut to 24 characters
    CHECK(chart.find("\nline?break ") != std::string::npos);                 // a newline would break the row
}

TEST_CASE("the Chrome trace is valid JSON with one X event per step and a named row per task", "[stage3]") {
    aio::Timeline timeline;
    {
        aio::Timeline::Recording rec(timeline);
        aio::run(oddly_named_tasks());
    }
    const std::string json = trace_of(timeline);
    INFO(json);

    REQUIRE(JsonChecker(json).valid());
    REQUIRE(json.rfind("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 0) == 0);
    CHECK(count_of(json, "\"ph\":\"X\"") == timeline.slices().size());
    CHECK(count_of(json, "\"name\":\"thread_name\"") == timeline.task_names().size());
    for (std::uint32_t row = 1; row <= 4; ++row) CHECK(slices_of(timeline, row).size() == 2);
    // Each name, escaped: quote and backslash, control characters, UTF-8 kept as it is, and
    // a byte that is not UTF-8 replaced (raw, it would make the whole file invalid).
    CHECK(count_of(json, R"("name":"say \"hi\" \\ bye")") == 1 + 2);  // its row, and its 2 steps
    CHECK(json.find(R"("tab\there\nnewline")") != std::string::npos);
    CHECK(json.find("\"caf\xc3\xa9\"") != std::string::npos);
    CHECK(json.find(R"("bad \ufffd byte")") != std::string::npos);
    CHECK(json.find('\xff') == std::string::npos);
    // The first step is at time 0, in microseconds.
    CHECK(json.find(R"("ph":"X","ts":0.000,)") != std::string::npos);
}

TEST_CASE("write_chrome_trace(path) writes the trace, and returns false if it cannot", "[stage3]") {
    aio::Timeline timeline;
    {
        aio::Timeline::Recording rec(timeline);
        aio::run(worker(2, 0.001));
    }
    char path[] = "/tmp/aio_timeline_test_XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);

    REQUIRE(timeline.write_chrome_trace(std::string(path)));
    std::ifstream in(path, std::ios::binary);
    const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(written == trace_of(timeline));

    // A regular file cannot be a directory: this path can never be opened.
    CHECK_FALSE(timeline.write_chrome_trace(std::string(path) + "/trace.json"));
    std::remove(path);
}

TEST_CASE("a Recording uninstalls its timeline when it ends, and restores the one before", "[stage3]") {
    aio::Timeline outer, inner;
    {
        aio::Timeline::Recording rec_outer(outer);
        {
            aio::Timeline::Recording rec_inner(inner);
            aio::run(worker(2, 0.001));  // only the innermost recording sees these 2 steps
        }
        aio::run(worker(3, 0.001));  // the outer one is back: 3 steps
    }
    aio::run(worker(4, 0.001));  // nobody is recording

    CHECK(inner.slices().size() == 2);
    CHECK(outer.slices().size() == 3);
    CHECK(inner.task_names().size() == 1);
    CHECK(outer.task_names().size() == 1);

    // clear() forgets everything; an empty timeline still draws and writes valid JSON.
    outer.clear();
    CHECK(outer.empty());
    CHECK(outer.duration() == 0);
    CHECK(outer.gantt() == "Timeline: no task steps were recorded.\n");
    CHECK(JsonChecker(trace_of(outer)).valid());
    CHECK(count_of(trace_of(outer), "\"ph\":\"X\"") == 0);
}

TEST_CASE("a Recording made and ended inside a step hands that step over at those moments", "[stage3]") {
    aio::Timeline outer, inner;
    {
        aio::Timeline::Recording rec(outer);
        aio::run(records_part_of_itself(&inner));
    }
    // The task's 4 steps: outer sees step 1, step 2 until the inner Recording begins, step 3
    // from the moment it ends, and step 4; inner sees the rest of step 2 and the start of 3.
    REQUIRE(outer.slices().size() == 4);
    REQUIRE(inner.slices().size() == 2);
    // Handed over, neither lost nor counted twice: together the slices are still ordered and
    // disjoint, with the inner ones between the outer ones of steps 2 and 3.
    std::vector<Slice> all = outer.slices();
    all.insert(all.end(), inner.slices().begin(), inner.slices().end());
    std::sort(all.begin(), all.end(), [](const Slice& a, const Slice& b) { return a.start < b.start; });
    require_ordered_and_disjoint(all);
    CHECK(outer.slices()[1].end <= inner.slices()[0].start);
    CHECK(inner.slices()[1].end <= outer.slices()[2].start);
    // Between the inner Recording's two slices the task slept: 2 ms at least.
    CHECK(inner.slices()[1].start - inner.slices()[0].start >= 0.002 - 1e-6);
}

TEST_CASE("a task allocated at a finished task's address gets its own row", "[stage3]") {
    aio::Timeline timeline;
    std::set<const void*> addresses;
    const int n = 20;
    {
        aio::Timeline::Recording rec(timeline);
        aio::run(one_after_another(n, &addresses));
    }
    // Without AddressSanitizer (which quarantines freed memory), the allocator usually hands
    // each job the memory of the one before: this is the case the name check is there for.
    INFO(addresses.size() << " distinct addresses for " << n << " tasks");
    REQUIRE(timeline.task_names().size() == static_cast<std::size_t>(n) + 1);
    for (int i = 0; i < n; ++i) {
        const std::uint32_t row = row_named(timeline, "job-" + std::to_string(i));
        CHECK(row == static_cast<std::uint32_t>(i) + 1);
        CHECK(slices_of(timeline, row).size() == 1);
    }
}

TEST_CASE("merge() adds another timeline's rows after its own, and keeps the slices in time order", "[stage3]") {
    aio::Timeline first, second;
    {
        aio::Timeline::Recording rec(first);
        aio::run(worker(2, 0.001));
    }
    {
        aio::Timeline::Recording rec(second);
        aio::run(worker(3, 0.001));
    }
    aio::Timeline merged = second;  // the later one first: merge() must restore time order
    merged.merge(first);
    REQUIRE(merged.task_names() == std::vector<std::string>{second.task_names()[0], first.task_names()[0]});
    REQUIRE(merged.slices().size() == 5);
    require_ordered_and_disjoint(merged.slices());
    CHECK(slices_of(merged, 0).size() == 3);
    CHECK(slices_of(merged, 1).size() == 2);
    CHECK(merged.duration() == second.slices().back().end - first.slices().front().start);

    merged.merge(merged);  // with itself, too: every row and slice twice
    CHECK(merged.task_names().size() == 4);
    CHECK(merged.slices().size() == 10);
    CHECK(JsonChecker(trace_of(merged)).valid());
}

// ------------------------------------------------------------- the text helpers (timeline_text.hpp)

TEST_CASE("timeline text: JSON strings escape quotes and controls, and replace bytes that are not UTF-8",
          "[stage3]") {
    namespace text = aio::timeline_text;
    auto json = [](std::string_view s) {
        std::string out;
        text::append_json_string(out, s);
        return out;
    };
    CHECK(json("plain") == "\"plain\"");
    CHECK(json("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json(std::string("\n\t\x01\x1f", 4)) == "\"\\n\\t\\u0001\\u001f\"");
    CHECK(json("caf\xc3\xa9") == "\"caf\xc3\xa9\"");           // valid UTF-8 passes through
    CHECK(json("\xff") == "\"\\ufffd\"");                        // not UTF-8 at all
    CHECK(json("\xc3") == "\"\\ufffd\"");                        // a truncated sequence
    CHECK(json("\xc0\xaf") == "\"\\ufffd\\ufffd\"");            // an overlong '/'
    CHECK(json("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");  // a UTF-16 surrogate
    CHECK(json("\xf4\x90\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // beyond U+10FFFF
}

TEST_CASE("timeline text: numbers use a '.', durations pick their unit, labels are cut at a character",
          "[stage3]") {
    namespace text = aio::timeline_text;
    CHECK(text::fixed(1.5, 3) == "1.500");
    CHECK(text::human_duration(52.1e-6) == "52.1 us");
    CHECK(text::human_duration(3.2e-3) == "3.20 ms");
    CHECK(text::human_duration(1.5) == "1.50 s");
    CHECK(text::chart_label("a\tb", 24) == "a?b");
    CHECK(text::chart_label("abcdefgh", 5) == "abcd~");
    CHECK(text::chart_label("abc\xc3\xa9" "fgh", 5) == "abc~");  // not inside the two bytes of the e-acute
    CHECK(text::display_width("caf\xc3\xa9") == 4);
}
