// Stage 1: generators. The programs' command line (see options.hpp).
#include "stage1_generators/options.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace aio {

namespace {

constexpr int kFirstLongOnly = 256;  // getopt_long's code for option i without a short name: 256 + i
constexpr std::size_t kHelpColumn = 24;
constexpr std::size_t kLineWidth = 88;

// "%g" without a locale's decimal comma: 0.2, 3600, 1e+06.
std::string number_text(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    for (char& c : buf)
        if (c == ',') c = '.';
    return buf;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

OptionParser::OptionParser(std::string description) : description_(std::move(description)) {}

// ------------------------------------------------------------------------------ declaring

OptionParser& OptionParser::add(const char* names, const char* metavar, const char* help, bool takes_value,
                                Store store, std::string range) {
    Option o;
    // "-s", "--long" or "-s, --long"
    for (std::string_view rest = names; !rest.empty();) {
        std::size_t comma = rest.find(',');
        std::string_view name = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
        if (name.size() > 2 && name.substr(0, 2) == "--")
            o.long_name = name.substr(2);
        else if (name.size() == 2 && name[0] == '-' && name[1] != '-' && name[1] != 'h')
            o.short_name = name[1];
        else
            throw std::invalid_argument("OptionParser: bad option name '" + std::string(name) +
                                        "' (want \"--long\", \"-s\" or \"-s, --long\"; -h is --help's)");
    }
    for (const Option& other : options_)
        if ((o.short_name && o.short_name == other.short_name) ||
            (!o.long_name.empty() && o.long_name == other.long_name))
            throw std::invalid_argument(std::string("OptionParser: option declared twice: ") + names);
    if (o.long_name == "help") throw std::invalid_argument("OptionParser: --help is built in");
    if (takes_value) o.metavar = metavar && *metavar ? metavar : "VALUE";
    o.help = help ? help : "";
    o.range = std::move(range);
    o.store = std::move(store);
    options_.push_back(std::move(o));
    return *this;
}

OptionParser& OptionParser::flag(const char* names, bool& target, const char* help) {
    return constant(names, target, true, help);
}

OptionParser& OptionParser::number(const char* names, double& target, double min, double max, const char* metavar,
                                   const char* help) {
    if (!(min <= max)) throw std::invalid_argument(std::string("OptionParser: empty range for ") + names);
    std::string range = max >= std::numeric_limits<double>::max() ? "at least " + number_text(min)
                                                                  : number_text(min) + " to " + number_text(max);
    const std::string wants = "a number " + (max >= std::numeric_limits<double>::max()
                                                 ? "of at least " + number_text(min)
                                                 : "from " + number_text(min) + " to " + number_text(max));
    if (std::isfinite(target)) range += ", default " + number_text(target);
    return add(names, metavar, help, true, [&target, min, max, wants](std::string_view v) -> std::string {
        // strtod would skip leading blanks and accept "inf", "nan" and overflow to HUGE_VAL:
        // a blank start is refused here, the rest by the finiteness and range test.
        const std::string text(v);
        char* end = nullptr;
        errno = 0;
        const double x = std::strtod(text.c_str(), &end);
        if (text.empty() || std::isspace(static_cast<unsigned char>(text[0])) || *end != '\0' || errno == ERANGE ||
            !std::isfinite(x) || x < min || x > max)
            return "wants " + wants + ", got " + quoted(v);
        target = x;
        return {};
    }, range);
}

OptionParser& OptionParser::text(const char* names, std::string& target, const char* metavar, const char* help) {
    return add(names, metavar, help, true, [&target](std::string_view v) -> std::string {
        target = v;
        return {};
    }, target.empty() ? std::string() : "default " + target);
}

OptionParser& OptionParser::choice(const char* names, std::string& target, std::vector<std::string> choices,
                                   const char* help) {
    if (choices.empty()) throw std::invalid_argument(std::string("OptionParser: no choices for ") + names);
    std::string list, metavar;
    for (const std::string& c : choices) {
        list += (list.empty() ? "" : ", ") + c;
        metavar += (metavar.empty() ? "" : "|") + c;
    }
    std::string range = "one of " + list + (target.empty() ? "" : "; default " + target);
    return add(names, metavar.c_str(), help, true,
               [&target, choices = std::move(choices), list](std::string_view v) -> std::string {
                   if (std::find(choices.begin(), choices.end(), v) == choices.end())
                       return "wants one of " + list + "; got " + quoted(v);
                   target = v;
                   return {};
               },
               range);
}

OptionParser& OptionParser::repeated(const char* names, std::vector<std::string>& target, const char* metavar,
                                     const char* help) {
    add(names, metavar, help, true, [&target](std::string_view v) -> std::string {
        target.emplace_back(v);
        return {};
    }, "may be repeated");
    options_.back().repeatable = true;
    return *this;
}

OptionParser& OptionParser::output_file(const char* names, std::string& path, const char* metavar, const char* help) {
    return add(names, metavar, help, true, [&path](std::string_view v) -> std::string {
        // Open it now, as the shell opens `> file` before the command runs: a missing
        // directory or a read-only file is reported before the work, not after it.
        const std::string p(v);
        const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) return "cannot write to " + quoted(v) + ": " + std::strerror(errno);
        ::close(fd);
        path = p;
        return {};
    });
}

OptionParser& OptionParser::arguments(const char* metavar, std::vector<std::string>& target, const char* help,
                                      bool required) {
    operands_ = Operands{metavar, help, &target, required};
    return *this;
}

OptionParser& OptionParser::hidden() {
    if (!options_.empty()) options_.back().hidden = true;
    return *this;
}

OptionParser& OptionParser::allow_empty() {
    if (!options_.empty()) options_.back().allow_empty = true;
    return *this;
}

OptionParser& OptionParser::epilog(std::string text) {
    epilog_ = std::move(text);
    return *this;
}

// -------------------------------------------------------------------------------- parsing

std::optional<int> OptionParser::parse(int argc, char** argv) {
    Outcome out = try_parse(argc, argv);
    if (out.kind == Outcome::help) {
        std::fputs(out.text.c_str(), stdout);
        return 0;
    }
    if (out.kind == Outcome::error) return usage_error(out.text);
    return std::nullopt;
}

int OptionParser::usage_error(const std::string& message) const {
    std::fprintf(stderr, "%s: %s (see --help)\n", prog_.c_str(), message.c_str());
    return 2;
}

OptionParser::Outcome OptionParser::try_parse(int argc, char** argv) {
    if (argc > 0 && argv[0] && *argv[0]) {
        prog_ = argv[0];
        prog_ = prog_.substr(prog_.rfind('/') + 1);
    }
    // getopt_long's tables: "+" stops at the first argument that is not an option (we refuse
    // it below) instead of reordering argv; ":" makes a missing value return ':', not '?'.
    std::string shorts = "+:h";
    std::vector<option> longs;
    for (std::size_t i = 0; i < options_.size(); ++i) {
        const Option& o = options_[i];
        const int code = o.short_name ? o.short_name : kFirstLongOnly + int(i);
        const int has_arg = o.metavar.empty() ? no_argument : required_argument;
        if (o.short_name) shorts += std::string(1, o.short_name) + (has_arg ? ":" : "");
        if (!o.long_name.empty()) longs.push_back(option{o.long_name.c_str(), has_arg, nullptr, code});
    }
    longs.push_back(option{"help", no_argument, nullptr, 'h'});
    longs.push_back(option{nullptr, 0, nullptr, 0});

    auto option_of = [&](int code) -> const Option* {
        for (std::size_t i = 0; i < options_.size(); ++i)
            if (options_[i].short_name ? code == options_[i].short_name : code == kFirstLongOnly + int(i))
                return &options_[i];
        return nullptr;
    };
    // getopt_long parses args[1..count): all of argv at first. Where it stops at an operand,
    // the operand is taken and getopt_long starts afresh on what follows (the operand then
    // stands where it expects the program's name), so options may come after operands
    // without letting glibc reorder argv.
    char** args = argv;
    int count = argc;
    // How the user wrote the option just read: "-o" or "--output" (abbreviations spelled out).
    auto as_typed = [&](const Option& o) {
        const char* arg = args[optind - 1];
        const bool typed_short = o.short_name && !(arg[0] == '-' && arg[1] == '-');
        return typed_short ? std::string("-") + o.short_name : "--" + o.long_name;
    };

    optind = 0;  // glibc: start afresh (a program, or a test, may parse more than once)
    opterr = 0;  // we say what went wrong ourselves
    if (operands_.target) operands_.target->clear();
    for (;;) {
        const int code = ::getopt_long(count, args, shorts.c_str(), longs.data(), nullptr);
        if (code == -1) {
            if (optind >= count || !operands_.target) break;
            if (optind > 1 && std::string_view(args[optind - 1]) == "--") {  // the rest are operands
                while (optind < count) operands_.target->push_back(args[optind++]);
                break;
            }
            operands_.target->push_back(args[optind]);
            args += optind;
            count -= optind;
            optind = 0;
            continue;
        }
        if (code == 'h') return Outcome{Outcome::help, help_text(prog_)};
        if (code == ':') {
            const Option* o = option_of(optopt);
            return Outcome{Outcome::error, (o ? as_typed(*o) : std::string(args[optind - 1])) + " needs a value"};
        }
        if (code == '?') {
            // A known option given a value it does not take (--quick=3), or an unknown one.
            if (const Option* o = optopt ? option_of(optopt) : nullptr)
                return Outcome{Outcome::error, as_typed(*o) + " takes no value"};
            const std::string unknown = optopt ? std::string("-") + char(optopt) : std::string(args[optind - 1]);
            return Outcome{Outcome::error, "unknown option " + quoted(unknown) + " (or an abbreviation of several)"};
        }
        const Option& o = *option_of(code);
        const std::string name = as_typed(o);
        if (!o.metavar.empty()) {
            // A value given as its own argument (not --opt=value or -oVALUE) that is one of
            // our options: the user most likely left the value out (--trace --quick).
            const bool separate = optarg == args[optind - 1];
            if (separate && is_option_name(optarg))
                return Outcome{Outcome::error, name + " needs a value, got the option " + quoted(optarg) +
                                                   " (if that is the value, write " + name + "=" + optarg + ")"};
            if (!*optarg && !o.allow_empty) return Outcome{Outcome::error, name + " needs a value, got an empty one"};
        }
        if (std::string why = o.store(optarg ? optarg : ""); !why.empty())
            return Outcome{Outcome::error, name + (why.rfind("wants ", 0) == 0 ? " " : ": ") + why};
    }
    if (optind < count) return Outcome{Outcome::error, "unexpected argument " + quoted(args[optind])};
    if (operands_.target && operands_.required && operands_.target->empty())
        return Outcome{Outcome::error, "give at least one " + operands_.metavar};
    return Outcome{};
}

// Is `arg` one of our options as it would be typed: "--name", "--name=...", "-s", "-h"?
bool OptionParser::is_option_name(std::string_view arg) const {
    if (arg == "-h" || arg == "--help") return true;
    if (arg.size() > 2 && arg.substr(0, 2) == "--") {
        std::string_view name = arg.substr(2, arg.find('=') == std::string_view::npos ? std::string_view::npos
                                                                                      : arg.find('=') - 2);
        for (const Option& o : options_)
            if (o.long_name == name) return true;
        return false;
    }
    if (arg.size() == 2 && arg[0] == '-')
        for (const Option& o : options_)
            if (o.short_name && o.short_name == arg[1]) return true;
    return false;
}

bool OptionParser::parse_integer(std::string_view text, long long min, long long max, long long& out) {
    const std::string s(text);
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(s.c_str(), &end, 10);
    if (*end != '\0' || errno == ERANGE || n < min || n > max) return false;
    out = n;
    return true;
}

std::string OptionParser::wants_integer(long long min, long long max, std::string_view got) {
    const std::string range = max == std::numeric_limits<long long>::max() ? "of at least " + std::to_string(min)
                                                                           : "from " + std::to_string(min) + " to " +
                                                                                 std::to_string(max);
    return "wants a whole number " + range + ", got " + quoted(got);
}

std::string OptionParser::range_text(long long min, long long max, long long dflt) {
    std::string range = max == std::numeric_limits<long long>::max()
                            ? "at least " + std::to_string(min)
                            : std::to_string(min) + " to " + std::to_string(max);
    return range + ", default " + std::to_string(dflt);
}

// ----------------------------------------------------------------------------------- help

std::string OptionParser::display_name(const Option& o) const {
    std::string s;
    if (o.short_name) s += std::string("-") + o.short_name;
    if (o.short_name && !o.long_name.empty()) s += ", ";
    if (!o.long_name.empty()) s += "--" + o.long_name;
    if (!o.metavar.empty()) s += " " + o.metavar;
    return s;
}

std::string OptionParser::help_text(const std::string& prog) const {
    // The usage line, wrapped under its first item.
    std::string out = "usage: " + prog;
    const std::size_t indent = out.size() + 1;
    std::size_t line_start = 0;
    auto usage_item = [&](const std::string& item) {
        if (out.size() - line_start + 1 + item.size() > kLineWidth) {
            out += "\n";
            line_start = out.size();
            out += std::string(indent - 1, ' ');
        }
        out += " " + item;
    };
    for (const Option& o : options_) {
        if (o.hidden) continue;
        std::string item = o.long_name.empty() ? std::string("-") + o.short_name : "--" + o.long_name;
        if (!o.metavar.empty()) item += " " + o.metavar;
        usage_item("[" + item + "]" + (o.repeatable ? "..." : ""));
    }
    usage_item("[--help]");
    if (operands_.target) usage_item(operands_.required ? operands_.metavar + "..." : "[" + operands_.metavar + "...]");
    out += "\n";
    if (!description_.empty()) out += "\n" + description_ + (description_.back() == '\n' ? "" : "\n");

    // The options: name column, then the help, its range or default last, in brackets.
    // The help is wrapped at spaces to fit kLineWidth; a '\n' in it starts a new line.
    auto entry = [&](const std::string& name, const std::string& help) {
        std::string line = "  " + name;
        if (line.size() + 2 > kHelpColumn)
            line += "\n" + std::string(kHelpColumn, ' ');
        else
            line += std::string(kHelpColumn - line.size(), ' ');
        std::size_t column = kHelpColumn;
        bool first_word = true;
        for (std::size_t pos = 0; pos <= help.size();) {
            const std::size_t end = std::min(help.find_first_of(" \n", pos), help.size());
            const std::string word = help.substr(pos, end - pos);
            if (!first_word && column + 1 + word.size() > kLineWidth) {
                line += "\n" + std::string(kHelpColumn, ' ');
                column = kHelpColumn;
                first_word = true;
            }
            line += (first_word ? "" : " ") + word;
            column += (first_word ? 0 : 1) + word.size();
            first_word = false;
            if (end < help.size() && help[end] == '\n') {
                line += "\n" + std::string(kHelpColumn, ' ');
                column = kHelpColumn;
                first_word = true;
            }
            pos = end + 1;
        }
        out += line + "\n";
    };
    if (operands_.target) {
        out += "\narguments:\n";
        entry(operands_.metavar, operands_.help);
    }
    out += "\noptions:\n";
    for (const Option& o : options_)
        if (!o.hidden) entry(display_name(o), o.range.empty() ? o.help : o.help + " (" + o.range + ")");
    entry("-h, --help", "show this help and exit");
    if (!epilog_.empty()) out += "\n" + epilog_ + (epilog_.back() == '\n' ? "" : "\n");
    return out;
}

}  // namespace aio
