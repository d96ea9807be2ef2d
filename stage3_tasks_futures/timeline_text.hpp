// Stage 3: Futures and Tasks. A tool, not part of the lesson: the text the timeline writes.
//
// Adds:    timeline_text::fixed and human_duration (numbers that do not depend on the
//          locale), append_json_string (any byte string as a valid JSON string), and
//          chart_label and display_width (task names in a terminal). Task names are any
//          std::string, so both outputs must survive control characters and bytes that are
//          not UTF-8; this file does that, so that timeline.cpp can stay about recording
//          steps and drawing them.
// Mirrors: nothing in asyncio; Python's json.dumps and str.format do this for its tools.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace aio::timeline_text {

// `value` with `decimals` digits after the point, always with a '.' (a trace written under
// a German locale must still say 1.5, not 1,5, or it is not JSON).
std::string fixed(double value, int decimals);

// "52.1 us", "3.20 ms", "1.50 s": three significant digits in a unit that suits the value.
std::string human_duration(double seconds);

// Appends `s` to `out` as a JSON string literal: quotes and backslashes escaped, control
// characters as \n, \t, ... or \u00XX, and bytes that are not valid UTF-8 as U+FFFD (a
// strict parser rejects a whole file over one bad byte).
void append_json_string(std::string& out, std::string_view s);

// `name` as a label for one row of a chart: control characters (which would break the row)
// shown as '?', and a name longer than `max_bytes` cut, at a character boundary, with '~'.
std::string chart_label(const std::string& name, std::size_t max_bytes);

// The width a terminal gives `s`: its characters, not the bytes of their UTF-8 sequences.
std::size_t display_width(const std::string& s);

}  // namespace aio::timeline_text
