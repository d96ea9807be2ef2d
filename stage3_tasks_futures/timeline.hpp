// Stage 3: Futures and Tasks. A timeline of task steps: who ran when.
//
// Adds:    Timeline, a StepObserver (task.hpp) that records every task step as a slice
//          (which task, when it started, when it ended, in loop.time() seconds);
//          Timeline::Recording, which installs it for a scope; gantt(), an ASCII Gantt
//          chart with one row per task; write_chrome_trace(), the same slices as Chrome
//          Trace Event JSON for Perfetto (ui.perfetto.dev) or chrome://tracing.
// Mirrors: nothing in CPython. asyncio's debug mode (PYTHONASYNCIODEBUG=1) only reports
//          slow callbacks, and external tools fill the gap: aiomonitor lists the live tasks
//          of a running program, and profilers such as viztracer write this very trace
//          format for Perfetto. Here the loop's own step hook gives it in a few lines.
//
// What the chart teaches. Concurrency on one thread is interleaving: each task runs in
// short slices, one at a time, and in between it waits. The rows show tasks whose lifetimes
// overlap while their slices never do, and how little of the wall time is spent running.
//
//      main      |#.............................#|
//      worker-1  |#.........#.........#..........|     # ran during that column
//      worker-2  |.#..............#..............|     . did not run
//
// Recording is cheap on purpose, so that it can stay on while a demo runs: a step costs two
// clock reads, one hash lookup, a read of the task's name (see row_for in timeline.cpp) and
// one push of a 24-byte Slice. Names are stored once per task, and all the formatting
// happens when you ask for the chart or the trace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

#include "stage3_tasks_futures/task.hpp"

namespace aio {

class Timeline final : public StepObserver {
public:
    // One step of one task: [start, end] in loop.time() seconds. A step still running when
    // you look has end == start.
    struct Slice {
        std::uint32_t task;  // index into task_names(): the row
        double start;
        double end;
    };

    // Installs a timeline as this thread's step observer for the lifetime of the Recording,
    // then puts back the observer that a Recording installed before it (nesting works).
    //
    //     aio::Timeline timeline;
    //     {
    //         aio::Timeline::Recording rec(timeline);
    //         aio::run(main_coroutine());
    //     }
    //     std::cout << timeline.gantt();
    //
    // Made inside a task's step, it records that step from this moment on, and ending it
    // inside a step records the step up to that moment, so a task may time just a part of
    // its own work. The observer is per thread, like the loop: make and end a Recording on
    // the loop's thread, and do not let it outlive its Timeline.
    //
    // task.hpp offers set_step_observer() but no way to read the current observer, so the
    // "previous observer" is the one the enclosing Recording installed (kept in timeline.cpp):
    // an observer installed by calling set_step_observer() directly is not restored.
    class Recording {
    public:
        [[nodiscard]] explicit Recording(Timeline& timeline);
        ~Recording();
        Recording(const Recording&) = delete;
        Recording& operator=(const Recording&) = delete;

    private:
        Timeline& timeline_;
        StepObserver* previous_;
    };

    // Row i is named task_names()[i]; rows are in order of each task's first recorded step.
    const std::vector<std::string>& task_names() const noexcept { return names_; }
    // Every recorded step, in the order they ran (steps never overlap: one thread runs them).
    const std::vector<Slice>& slices() const noexcept { return slices_; }
    bool empty() const noexcept { return slices_.empty(); }
    // Seconds from the first step's start to the last step's end (0 if nothing was recorded).
    double duration() const noexcept;
    // Forget every task and slice (recording, if on, goes on from here).
    void clear() noexcept;
    // Add other's tasks, as rows after this one's, and their slices. Both were timed on the
    // same clock, so they line up: a demo can record each example on its own timeline, draw
    // it, and merge them all into one trace. (A merged task is not recognised if it steps
    // again while this timeline records: its later steps go on a new row.)
    void merge(const Timeline& other);

    // An ASCII Gantt chart, `width` columns for the time axis (at least 10): a header, a
    // time axis, one row per task (the first 50; the trace has them all), a legend.
    std::string gantt(int width = 60) const;

    // Chrome Trace Event Format: one "X" (complete) event per step, in microseconds since the
    // first step, each task on its own row (its own "tid"), rows named by "M" metadata events.
    void write_chrome_trace(std::ostream& out) const;
    // The same, into the file at `path`. Returns false if the file could not be opened or
    // written, for the caller to report (it knows what the file was for).
    [[nodiscard]] bool write_chrome_trace(const std::string& path) const;

private:
    static constexpr std::size_t kNoSlice = static_cast<std::size_t>(-1);

    // StepObserver: private, since only the task machinery has any business calling them.
    void step_begin(TaskBase& task) override;
    void step_end(TaskBase& task) override;

    std::uint32_t row_for(const TaskBase& task);

    std::vector<std::string> names_;                             // row -> task name
    std::vector<Slice> slices_;                                  // in time order
    std::unordered_map<std::uint32_t, std::uint32_t> row_of_;    // task id -> row; see row_for()
    std::size_t open_ = kNoSlice;                                // the slice of the step running now
};

}  // namespace aio
