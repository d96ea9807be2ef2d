// Stage 5: HTTP/1.1. A tool, not part of the lesson: a line chart written as SVG text, for
// the threads-versus-asyncio figure (the demo's --chart, bench_threads_vs_asyncio's).
//
// Adds:    LineChart, ChartSeries, to_svg(chart), write_svg(chart, path), nice_ticks.
// Mirrors: nothing in asyncio; the articles draw their figure with matplotlib
//          (plt.plot(x, y, label=...), xlabel, ylabel, legend). This is the few lines of it
//          the figure needs, with no dependency: SVG is XML text a browser draws.
//
//     LineChart c{"Threads vs asyncio", "requests", "seconds", {}};
//     c.series.push_back({"threading", "#d62728", {{1, 0.1}, {500, 8.4}}});
//     write_svg(c, "chart.svg");                      // throws std::runtime_error if it cannot
//
// Both axes are linear and start at 0; each ends at the first "nice" tick (1, 2 or 5 times a
// power of ten) at or above the largest value, so every point is inside the plot.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace aio {

struct ChartSeries {
    std::string name;                            // the legend's label
    std::string color;                           // any SVG colour: "#1f77b4", "red"
    std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
};

struct LineChart {
    std::string title;
    std::string x_label, y_label;
    std::vector<ChartSeries> series;
    int width = 640, height = 400;  // pixels, the whole picture

    // Where the plot's axes are, in pixels from the picture's top left corner: the margins
    // hold the title, the tick labels and the axis labels.
    double plot_left() const { return 70; }
    double plot_top() const { return 40; }
    double plot_right() const { return width - 20.0; }
    double plot_bottom() const { return height - 55.0; }
};

// Ticks from 0 to at least `max`, about `count` of them, a step of 1, 2 or 5 times a power
// of ten: nice_ticks(8.4, 5) = {0, 2, 4, 6, 8, 10}. A max of 0 or less gives {0, 1}.
std::vector<double> nice_ticks(double max, int count = 5);

// The chart as an SVG document (UTF-8 text, one element per line). Text is XML-escaped.
std::string to_svg(const LineChart& chart);

// to_svg() written to `path`; throws std::runtime_error saying why if it cannot be written.
void write_svg(const LineChart& chart, const std::string& path);

}  // namespace aio
