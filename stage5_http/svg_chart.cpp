// Stage 5: a line chart as SVG text. See svg_chart.hpp.
#include "stage5_http/svg_chart.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace aio {

namespace {

std::string escape_xml(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

// A coordinate or a tick's label: as few digits as it needs ("0", "2.5", "100").
std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}
std::string px(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

double largest(const LineChart& chart, bool x) {
    double m = 0;
    for (const ChartSeries& s : chart.series)
        for (const auto& p : s.points) m = std::max(m, x ? p.first : p.second);
    return m;
}

}  // namespace

std::vector<double> nice_ticks(double max, int count) {
    if (!(max > 0) || !std::isfinite(max)) return {0, 1};
    count = std::max(count, 1);
    // The step: the raw step (max / count) rounded up to 1, 2 or 5 times a power of ten.
    const double raw = max / count;
    const double power = std::pow(10.0, std::floor(std::log10(raw)));
    double step = 10 * power;
    for (double m : {1.0, 2.0, 5.0})
        if (m * power >= raw * (1 - 1e-9)) {
            step = m * power;
            break;
        }
    std::vector<double> ticks;
    for (int i = 0;; ++i) {
        const double t = i * step;  // (multiplied, not summed: no drift)
        ticks.push_back(t);
        if (t >= max * (1 - 1e-9)) break;
    }
    return ticks;
}

std::string to_svg(const LineChart& chart) {
    const std::vector<double> xt = nice_ticks(largest(chart, true));
    const std::vector<double> yt = nice_ticks(largest(chart, false));
    const double left = chart.plot_left(), top = chart.plot_top();
    const double right = chart.plot_right(), bottom = chart.plot_bottom();
    auto X = [&](double x) { return left + x / xt.back() * (right - left); };
    auto Y = [&](double y) { return bottom - y / yt.back() * (bottom - top); };

    std::string s;
    s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(chart.width) + "\" height=\"" +
         std::to_string(chart.height) + "\" viewBox=\"0 0 " + std::to_string(chart.width) + " " +
         std::to_string(chart.height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += "<text x=\"" + px((left + right) / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" +
         escape_xml(chart.title) + "</text>\n";

    // Grid lines and tick labels, then the two axes over them.
    for (double t : xt) {
        s += "<line x1=\"" + px(X(t)) + "\" y1=\"" + px(top) + "\" x2=\"" + px(X(t)) + "\" y2=\"" + px(bottom) +
             "\" stroke=\"#e5e5e5\"/>\n";
        s += "<text x=\"" + px(X(t)) + "\" y=\"" + px(bottom + 16) + "\" text-anchor=\"middle\">" + num(t) +
             "</text>\n";
    }
    for (double t : yt) {
        s += "<line x1=\"" + px(left) + "\" y1=\"" + px(Y(t)) + "\" x2=\"" + px(right) + "\" y2=\"" + px(Y(t)) +
             "\" stroke=\"#e5e5e5\"/>\n";
        s += "<text x=\"" + px(left - 6) + "\" y=\"" + px(Y(t) + 4) + "\" text-anchor=\"end\">" + num(t) +
             "</text>\n";
    }
    s += "<line x1=\"" + px(left) + "\" y1=\"" + px(bottom) + "\" x2=\"" + px(right) + "\" y2=\"" + px(bottom) +
         "\" stroke=\"black\"/>\n";
    s += "<line x1=\"" + px(left) + "\" y1=\"" + px(top) + "\" x2=\"" + px(left) + "\" y2=\"" + px(bottom) +
         "\" stroke=\"black\"/>\n";
    s += "<text x=\"" + px((left + right) / 2) + "\" y=\"" + px(chart.height - 12.0) +
         "\" text-anchor=\"middle\">" + escape_xml(chart.x_label) + "</text>\n";
    s += "<text x=\"16\" y=\"" + px((top + bottom) / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " +
         px((top + bottom) / 2) + ")\">" + escape_xml(chart.y_label) + "</text>\n";

    // Each series: a polyline through its points, a dot on each, and a line of the legend
    // (top left, inside the plot, where both lines start low).
    for (std::size_t i = 0; i < chart.series.size(); ++i) {
        const ChartSeries& series = chart.series[i];
        std::string points;
        for (const auto& [x, y] : series.points) points += (points.empty() ? "" : " ") + px(X(x)) + "," + px(Y(y));
        s += "<polyline fill=\"none\" stroke=\"" + escape_xml(series.color) + "\" stroke-width=\"2\" points=\"" +
             points + "\"/>\n";
        for (const auto& [x, y] : series.points)
            s += "<circle cx=\"" + px(X(x)) + "\" cy=\"" + px(Y(y)) + "\" r=\"3\" fill=\"" + escape_xml(series.color) +
                 "\"/>\n";
        const double ly = top + 14 + 18.0 * double(i);
        s += "<line x1=\"" + px(left + 12) + "\" y1=\"" + px(ly - 4) + "\" x2=\"" + px(left + 36) + "\" y2=\"" +
             px(ly - 4) + "\" stroke=\"" + escape_xml(series.color) + "\" stroke-width=\"2\"/>\n";
        s += "<text x=\"" + px(left + 42) + "\" y=\"" + px(ly) + "\">" + escape_xml(series.name) + "</text>\n";
    }
    s += "</svg>\n";
    return s;
}

void write_svg(const LineChart& chart, const std::string& path) {
    const std::string svg = to_svg(chart);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (out) out.write(svg.data(), std::streamsize(svg.size()));
    if (!out) throw std::runtime_error("cannot write the chart to '" + path + "': " + std::strerror(errno));
}

}  // namespace aio
