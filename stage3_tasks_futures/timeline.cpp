// Stage 3: Futures and Tasks. Recording task steps, and drawing them (timeline.hpp).
#include "stage3_tasks_futures/timeline.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <utility>

#include "stage3_tasks_futures/timeline_text.hpp"

namespace aio {

namespace {

constexpr std::size_t kMaxGanttRows = 50;   // a million tasks would be a million lines
constexpr std::size_t kMaxLabelWidth = 24;  // longer task names are cut in the chart
constexpr int kTickEvery = 10;              // a '+' on the time axis every 10 columns

using timeline_text::append_json_string;
using timeline_text::display_width;
using timeline_text::fixed;
using timeline_text::human_duration;

// A task name as a chart label, at most kMaxLabelWidth bytes.
std::string label_of(const std::string& name) { return timeline_text::chart_label(name, kMaxLabelWidth); }

}  // namespace

// ------------------------------------------------------------------------------ recording

Timeline::Recording::Recording(Timeline& timeline)
    : timeline_(timeline), previous_(set_step_observer(&timeline)) {
    // Made inside a step, which began before we were watching: to the observers, the step
    // ends here for the one going out and begins here for the one coming in. (So a task can
    // record a part of its own work; the destructor hands the step back the same way.)
    if (TaskBase* task = TaskBase::current(); task && previous_ != &timeline_) {
        if (previous_) previous_->step_end(*task);
        timeline_.step_begin(*task);
    }
}

Timeline::Recording::~Recording() {
    if (TaskBase* task = TaskBase::current(); task && previous_ != &timeline_) {
        timeline_.step_end(*task);
        if (previous_) previous_->step_begin(*task);
    }
    set_step_observer(previous_);
}

// The clock is read last in step_begin and first in step_end, so that the bookkeeping
// around it is not charged to the task.
void Timeline::step_begin(TaskBase& task) {
    open_ = slices_.size();
    slices_.push_back(Slice{row_for(task), 0, 0});  // may grow the vector: not the task's time
    Slice& s = slices_.back();
    s.start = s.end = task.get_loop().time();
}

// Steps never nest (a step cannot run an event loop), so the step ending is the one open.
// None is open if clear() forgot it: then there is nothing to close.
void Timeline::step_end(TaskBase& task) {
    const double now = task.get_loop().time();
    if (open_ == kNoSlice) return;
    slices_[open_].end = now;
    open_ = kNoSlice;
}

// Which row a task's step belongs to, keyed by the task's id (the N of Task-N). Not by its
// address: when a task is freed, the next task allocated may get the same memory, and it
// must not be drawn in the dead task's row (the same trap as a handle whose memory is reused
// cancelling the wrong task). The name is read once, at the task's first recorded step; a
// task renamed later keeps the row and the name it started with.
std::uint32_t Timeline::row_for(const TaskBase& task) {
    auto [it, inserted] = row_of_.try_emplace(task.id(), 0);
    if (!inserted) return it->second;
    it->second = static_cast<std::uint32_t>(names_.size());
    names_.push_back(task.get_name());
    return it->second;
}

double Timeline::duration() const noexcept {
    if (slices_.empty()) return 0;
    double end = slices_.back().end;
    for (const Slice& s : slices_) end = std::max(end, s.end);
    return end - slices_.front().start;
}

void Timeline::clear() noexcept {
    names_.clear();
    slices_.clear();
    row_of_.clear();
    open_ = kNoSlice;
}

void Timeline::merge(const Timeline& other) {
    // Sizes first and indices, not iterators: other may be *this.
    const auto offset = static_cast<std::uint32_t>(names_.size());
    const std::size_t their_names = other.names_.size(), their_slices = other.slices_.size();
    const std::size_t mine = slices_.size();
    names_.reserve(names_.size() + their_names);
    for (std::size_t i = 0; i < their_names; ++i) names_.push_back(other.names_[i]);
    slices_.reserve(mine + their_slices);
    for (std::size_t i = 0; i < their_slices; ++i) {
        const Slice s = other.slices_[i];
        slices_.push_back(Slice{s.task + offset, s.start, s.end});
    }
    // Both halves are in time order; keep the whole so (usually a no-op: other came later).
    // The step being recorded, if any, may move: find it again afterwards. It is the last of
    // this timeline's own slices, and the merge is stable, so it is the last match.
    const Slice open = open_ == kNoSlice ? Slice{} : slices_[open_];
    auto by_start = [](const Slice& a, const Slice& b) { return a.start < b.start; };
    std::inplace_merge(slices_.begin(), slices_.begin() + static_cast<std::ptrdiff_t>(mine), slices_.end(), by_start);
    if (open_ != kNoSlice) {
        open_ = slices_.size();
        do --open_;
        while (slices_[open_].task != open.task || slices_[open_].start != open.start);
    }
}

// ---------------------------------------------------------------------------- Gantt chart

// Each column is a bucket of duration()/width seconds. A column is '#' if any step of the
// task touched its bucket: steps are usually microseconds long and buckets milliseconds, so
// a rule like "ran for most of the bucket" would draw nothing at all.
std::string Timeline::gantt(int width) const {
    if (slices_.empty()) return "Timeline: no task steps were recorded.\n";
    const std::size_t columns = static_cast<std::size_t>(std::max(width, 10));
    const double t0 = slices_.front().start;
    const double total = duration();
    const double per_column = total / static_cast<double>(columns);
    auto column_of = [&](double t) -> std::size_t {
        if (per_column <= 0) return 0;  // everything happened in one instant
        const double c = std::floor((t - t0) / per_column);
        return static_cast<std::size_t>(std::clamp(c, 0.0, static_cast<double>(columns - 1)));
    };

    std::vector<std::string> bars(names_.size(), std::string(columns, '.'));
    std::vector<std::size_t> steps(names_.size(), 0);
    std::vector<double> ran(names_.size(), 0.0);
    double ran_total = 0;
    for (const Slice& s : slices_) {
        std::string& bar = bars[s.task];
        for (std::size_t c = column_of(s.start), last = column_of(s.end); c <= last; ++c) bar[c] = '#';
        ++steps[s.task];
        ran[s.task] += s.end - s.start;
        ran_total += s.end - s.start;
    }

    const std::size_t shown = std::min(names_.size(), kMaxGanttRows);
    std::vector<std::string> labels;
    std::size_t label_width = 4;
    for (std::size_t r = 0; r < shown; ++r) {
        labels.push_back(label_of(names_[r]));
        label_width = std::max(label_width, display_width(labels.back()));
    }
    const std::string indent(label_width + 1, ' ');

    std::string out;
    out += "Timeline: " + std::to_string(names_.size()) + (names_.size() == 1 ? " task, " : " tasks, ") +
           std::to_string(slices_.size()) + (slices_.size() == 1 ? " step" : " steps") + " in " +
           human_duration(total) + "; task code ran for " + human_duration(ran_total);
    if (total > 0) {
        const double percent = 100.0 * ran_total / total;  // often tiny: show it as 0.03%, not 0.0%
        out += " of it (" + fixed(percent, percent < 1 ? 2 : 1) + "%), the rest was waiting";
    }
    out += "\n";

    // The time axis: "0" above the opening '|' of the rows, the total above the closing one.
    const std::string end_label = human_duration(total);
    std::string axis = indent + "0";
    const std::size_t axis_end = indent.size() + columns + 2;  // one past the closing '|'
    axis += std::string(std::max<std::size_t>(axis_end - axis.size(), end_label.size() + 1) - end_label.size(), ' ');
    out += axis + end_label + "\n";
    std::string ruler = "+" + std::string(columns, '-') + "+";
    // ruler[c] is column c - 1: a tick ends each group of 10 columns, so the groups look even.
    for (std::size_t c = kTickEvery; c < columns; c += kTickEvery) ruler[c] = '+';
    out += indent + ruler + "\n";

    for (std::size_t r = 0; r < shown; ++r) {
        out += labels[r] + std::string(label_width - display_width(labels[r]) + 1, ' ');
        out += "|" + bars[r] + "|  " + std::to_string(steps[r]) + (steps[r] == 1 ? " step, " : " steps, ") +
               human_duration(ran[r]) + "\n";
    }
    if (shown < names_.size())
        out += indent + "... and " + std::to_string(names_.size() - shown) +
               " more tasks (write_chrome_trace() shows every task)\n";

    out +=
        "Legend: '#' the task ran during that column (a step of any length marks its whole column),"
        " '.' it did not.\n        1 column = " +
        human_duration(per_column) + ", '+' every " + std::to_string(kTickEvery) +
        " columns = " + human_duration(per_column * kTickEvery) + "; time 0 is the first recorded step.\n";
    return out;
}

// --------------------------------------------------------------------------- Chrome trace

// The Trace Event Format (the "JSON Object Format" of Google's spec, which Perfetto and
// chrome://tracing both read). Every step ran on the loop's one thread, but each task gets
// a "tid" of its own: trace viewers draw one row per thread, and one row per task is what
// shows the interleaving. One event per line, so that the file also reads well in an editor.
void Timeline::write_chrome_trace(std::ostream& out) const {
    const double t0 = slices_.empty() ? 0.0 : slices_.front().start;
    auto micros = [&](double seconds) { return fixed(seconds * 1e6, 3); };  // ns precision
    std::string line;
    bool first = true;
    auto emit = [&] {
        out << (first ? "\n" : ",\n") << line;
        first = false;
        line.clear();
    };

    out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[";
    line = R"({"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"aio event loop: one row per task"}})";
    emit();
    for (std::size_t r = 0; r < names_.size(); ++r) {
        const std::string tid = std::to_string(r + 1);
        line = R"({"name":"thread_name","ph":"M","pid":1,"tid":)" + tid + R"(,"args":{"name":)";
        append_json_string(line, names_[r]);
        line += "}}";
        emit();
        // Viewers may order rows their own way (by name, say): keep them in order of first step.
        line =
            R"({"name":"thread_sort_index","ph":"M","pid":1,"tid":)" + tid + R"(,"args":{"sort_index":)" + tid + "}}";
        emit();
    }
    std::vector<std::size_t> step_number(names_.size(), 0);
    for (const Slice& s : slices_) {
        line = R"({"name":)";
        append_json_string(line, names_[s.task]);
        line += R"(,"cat":"task step","ph":"X","ts":)" + micros(s.start - t0) + R"(,"dur":)" + micros(s.end - s.start) +
                R"(,"pid":1,"tid":)" + std::to_string(s.task + 1) + R"(,"args":{"step":)" +
                std::to_string(++step_number[s.task]) + "}}";
        emit();
    }
    out << "\n]}\n";
}

bool Timeline::write_chrome_trace(const std::string& path) const {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) return false;
    write_chrome_trace(file);
    file.flush();
    return static_cast<bool>(file);  // a full disk shows up here, not at open
}

}  // namespace aio
