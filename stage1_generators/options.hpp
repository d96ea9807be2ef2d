// Stage 1: generators. A tool, not part of the lesson: the command line of every program of
// the course (the demos and the benchmarks of every stage).
//
// Adds:    OptionParser. A program declares its options, each bound to a variable, with
//          the range or the choices it accepts; parse() fills the variables and checks
//          everything before the program starts any work: numbers are whole and finite and
//          within their range, a value is never empty (unless the option says it may be),
//          an output file can be created, and an option that is missing its value says so
//          ("--seconds needs a value"). --help (-h) is generated from the declarations, so
//          it cannot disagree with what the program accepts.
// Mirrors: nothing in asyncio; Python's argparse plays this part for its programs (the
//          benchmarks' Python twins use it). POSIX getopt_long does the splitting.
//
//     double seconds = 1.0;
//     bool quick = false;
//     aio::OptionParser options("Runs the demo.");
//     options.number("--seconds", seconds, 0, 3600, "S", "how long each request takes");
//     options.flag("--quick", quick, "shorter requests, for `make run`");
//     if (auto status = options.parse(argc, argv)) return *status;
//
// Names are "--long", "-s" or "-s, --long". Values follow as the next argument or after
// '=' (--seconds=3). A later occurrence of an option replaces an earlier one, except for
// repeated() options, which collect every value. Arguments that are not options are
// refused, unless the program asks for them with arguments() (a list of URLs, say);
// abbreviations that fit more than one option are refused too.
#pragma once

#include <concepts>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aio {

class OptionParser {
public:
    // `description` is printed by --help between the usage line and the list of options.
    explicit OptionParser(std::string description);

    // --- declaring options. `names` is "--long", "-s" or "-s, --long"; `metavar` names the
    // value in --help ("S", "FILE"); `help` says what the option does (it may hold '\n').
    // Each returns *this, and the two modifiers below apply to the option declared last.

    // Present: target = true.
    OptionParser& flag(const char* names, bool& target, const char* help);
    // Present: target = value (argparse's store_const), e.g. --quick sets the duration.
    template <typename T>
    OptionParser& constant(const char* names, T& target, T value, const char* help) {
        return add(names, nullptr, help, false, [&target, value](std::string_view) -> std::string {
            target = value;
            return {};
        });
    }
    // A real number in [min, max]: "inf", "nan", "1e999" and "3x" are refused.
    OptionParser& number(const char* names, double& target, double min, double max, const char* metavar,
                         const char* help);
    // A whole number (decimal) in [min, max].
    template <std::integral I>
    OptionParser& integer(const char* names, I& target, I min, I max, const char* metavar, const char* help) {
        const long long lo = min, hi = max;
        return add(names, metavar, help, true, [&target, lo, hi](std::string_view v) -> std::string {
            long long n = 0;
            if (!parse_integer(v, lo, hi, n)) return wants_integer(lo, hi, v);
            target = static_cast<I>(n);
            return {};
        }, range_text(lo, hi, static_cast<long long>(target)));
    }
    // Any text but an empty one (see allow_empty).
    OptionParser& text(const char* names, std::string& target, const char* metavar, const char* help);
    // One of `choices`, spelled exactly.
    OptionParser& choice(const char* names, std::string& target, std::vector<std::string> choices,
                         const char* help);
    // Each occurrence appends its value (for -H, --url), so the option may be given many times.
    OptionParser& repeated(const char* names, std::vector<std::string>& target, const char* metavar,
                           const char* help);
    // A file the program will write when it is done. parse() opens it for writing (creating
    // it if it is not there, leaving its contents alone if it is) and closes it again, so a
    // path that cannot be written is refused before the work starts, not after.
    OptionParser& output_file(const char* names, std::string& path, const char* metavar, const char* help);

    // The arguments that are not options (operands, as POSIX calls them: `fetch URL...`),
    // in order, wherever they stand among the options; after "--" everything is one.
    // `required`: at least one must be given. Without this, such arguments are refused.
    OptionParser& arguments(const char* metavar, std::vector<std::string>& target, const char* help,
                            bool required = true);

    // The option declared last is left out of --help (options a program passes to itself).
    OptionParser& hidden();
    // The option declared last accepts an empty value ("" or --opt=).
    OptionParser& allow_empty();
    // Printed by --help after the list of options.
    OptionParser& epilog(std::string text);

    // --- parsing

    // Parses argv. Returns nullopt when the program should go on; otherwise the status main
    // should return: 0 after --help (printed to stdout), 2 after an error (printed to stderr
    // as "prog: what is wrong (see --help)").
    std::optional<int> parse(int argc, char** argv);

    // The same, without printing: what parse() would print, for tests.
    struct Outcome {
        enum Kind { proceed, help, error } kind = proceed;
        std::string text;  // the help text, or the error message (without the program's name)
    };
    Outcome try_parse(int argc, char** argv);

    // The --help text, for a program called `prog`.
    std::string help_text(const std::string& prog) const;

    // For checks a program makes after parse() (one option against another): prints
    // "prog: message (see --help)" as parse() does, and returns 2, the status to exit with.
    int usage_error(const std::string& message) const;

private:
    using Store = std::function<std::string(std::string_view value)>;  // "" on success, else why not
    struct Option {
        char short_name = 0;
        std::string long_name;  // without the dashes
        std::string metavar;    // empty: takes no value
        std::string help;
        std::string range;      // for --help: "0 to 3600, default 1"
        Store store;
        bool hidden = false;
        bool allow_empty = false;
        bool repeatable = false;
    };

    OptionParser& add(const char* names, const char* metavar, const char* help, bool takes_value, Store store,
                      std::string range = {});
    std::string display_name(const Option& o) const;
    std::string check_value(const Option& o, const char* value) const;
    bool is_option_name(std::string_view arg) const;

    static bool parse_integer(std::string_view text, long long min, long long max, long long& out);
    static std::string wants_integer(long long min, long long max, std::string_view got);
    static std::string range_text(long long min, long long max, long long dflt);

    std::string description_;
    std::string epilog_;
    struct Operands {
        std::string metavar, help;
        std::vector<std::string>* target = nullptr;
        bool required = false;
    } operands_;
    std::vector<Option> options_;
    std::string prog_ = "program";
};

}  // namespace aio
