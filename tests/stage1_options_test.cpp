// The programs' command line: OptionParser (stage1_generators/options.hpp).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "stage1_generators/options.hpp"

namespace {

using Outcome = aio::OptionParser::Outcome;

// argv as main gets it: mutable strings, the program's name first.
struct Argv {
    explicit Argv(std::vector<std::string> args) : storage(std::move(args)) {
        storage.insert(storage.begin(), "/some/dir/prog");
        for (auto& s : storage) pointers.push_back(s.data());
        pointers.push_back(nullptr);
    }
    int argc() const { return int(storage.size()); }
    char** argv() { return pointers.data(); }
    std::vector<std::string> storage;
    std::vector<char*> pointers;
};

// The options of a demo: a duration, a switch, a trace file.
struct Demo {
    double seconds = 1.0;
    bool quick = false;
    std::string trace;
    aio::OptionParser parser{"Runs the demo."};
    Demo() {
        parser.number("--seconds", seconds, 0, 3600, "S", "how long each request takes")
            .flag("--quick", quick, "shorter requests")
            .output_file("--trace", trace, "FILE", "write a trace there");
    }
    Outcome parse(std::vector<std::string> args) {
        Argv a(std::move(args));
        return parser.try_parse(a.argc(), a.argv());
    }
};

std::string error_of(Outcome o) {
    REQUIRE(o.kind == Outcome::error);
    return o.text;
}

}  // namespace

TEST_CASE("options: values are stored, as the next argument or after '='", "[stage1][options]") {
    Demo d;
    CHECK(d.parse({"--seconds", "2.5", "--quick"}).kind == Outcome::proceed);
    CHECK(d.seconds == 2.5);
    CHECK(d.quick);
    Demo e;
    CHECK(e.parse({"--seconds=0.25"}).kind == Outcome::proceed);
    CHECK(e.seconds == 0.25);
    CHECK_FALSE(e.quick);
    Demo f;
    CHECK(f.parse({}).kind == Outcome::proceed);
    CHECK(f.seconds == 1.0);  // untouched
}

TEST_CASE("options: a later occurrence replaces an earlier one", "[stage1][options]") {
    Demo d;
    CHECK(d.parse({"--seconds", "2", "--seconds", "3"}).kind == Outcome::proceed);
    CHECK(d.seconds == 3);
}

TEST_CASE("options: a number must be whole, finite and within its range", "[stage1][options]") {
    for (const char* bad : {"inf", "-inf", "nan", "1e300", "1e999", "3601", "-1", "3x", "x", " 3", "0x", "--"}) {
        Demo d;
        INFO(bad);
        CHECK(error_of(d.parse({"--seconds", bad})) ==
              std::string("--seconds wants a number from 0 to 3600, got '") + bad + "'");
        CHECK(d.seconds == 1.0);
    }
    for (const char* good : {"0", "3600", "1e3", "0.5", "+2"}) {
        Demo d;
        INFO(good);
        CHECK(d.parse({"--seconds", good}).kind == Outcome::proceed);
        CHECK(d.seconds == std::strtod(good, nullptr));
    }
}

TEST_CASE("options: an option missing its value says so, whatever follows it", "[stage1][options]") {
    Demo d;
    CHECK(error_of(d.parse({"--seconds"})) == "--seconds needs a value");
    CHECK(error_of(d.parse({"--quick", "--trace"})) == "--trace needs a value");
    // The next argument is one of our options: most likely the value was left out.
    CHECK(error_of(d.parse({"--trace", "--quick"})) ==
          "--trace needs a value, got the option '--quick' (if that is the value, write --trace=--quick)");
    CHECK(error_of(d.parse({"--seconds", "-h"})).rfind("--seconds needs a value, got the option '-h'", 0) == 0);
}

TEST_CASE("options: empty values are refused unless the option allows them", "[stage1][options]") {
    Demo d;
    CHECK(error_of(d.parse({"--seconds", ""})) == "--seconds needs a value, got an empty one");
    CHECK(error_of(d.parse({"--seconds="})) == "--seconds needs a value, got an empty one");
    CHECK(error_of(d.parse({"--trace", ""})) == "--trace needs a value, got an empty one");
    CHECK(d.seconds == 1.0);

    std::string data = "unset";
    aio::OptionParser p("");
    p.text("-d, --data", data, "DATA", "the body").allow_empty();
    Argv a({"-d", ""});
    CHECK(p.try_parse(a.argc(), a.argv()).kind == Outcome::proceed);
    CHECK(data.empty());
}

TEST_CASE("options: unknown options, stray arguments and values given to a flag are refused", "[stage1][options]") {
    Demo d;
    CHECK(error_of(d.parse({"--nope"})) == "unknown option '--nope' (or an abbreviation of several)");
    CHECK(error_of(d.parse({"-x"})) == "unknown option '-x' (or an abbreviation of several)");
    CHECK(error_of(d.parse({"stray"})) == "unexpected argument 'stray'");
    CHECK(error_of(d.parse({"--quick", "stray", "--seconds", "2"})) == "unexpected argument 'stray'");
    CHECK(error_of(d.parse({"--quick=yes"})) == "--quick takes no value");
}

TEST_CASE("options: an unambiguous abbreviation is the option, as in argparse", "[stage1][options]") {
    Demo d;
    CHECK(d.parse({"--sec", "2"}).kind == Outcome::proceed);
    CHECK(d.seconds == 2);
    CHECK(error_of(d.parse({"--sec"})) == "--seconds needs a value");
}

TEST_CASE("options: an output file is opened before the work starts", "[stage1][options]") {
    Demo d;
    CHECK(error_of(d.parse({"--trace", "/nonexistent/x.json"})) ==
          "--trace: cannot write to '/nonexistent/x.json': No such file or directory");
    CHECK(d.trace.empty());
    CHECK(error_of(d.parse({"--trace", "/"})).rfind("--trace: cannot write to '/': ", 0) == 0);

    char dir[] = "/tmp/options_test_XXXXXX";
    REQUIRE(::mkdtemp(dir));
    const std::string path = std::string(dir) + "/trace.json";
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        REQUIRE(f);
        std::fputs("old contents", f);
        std::fclose(f);
    }
    CHECK(d.parse({"--trace", path}).kind == Outcome::proceed);
    CHECK(d.trace == path);
    std::FILE* f = std::fopen(path.c_str(), "r");
    REQUIRE(f);
    char buf[32] = {};
    CHECK(std::fread(buf, 1, sizeof buf - 1, f) == 12);  // checked, not truncated
    std::fclose(f);
    CHECK(std::string(buf) == "old contents");
    ::unlink(path.c_str());
    ::rmdir(dir);
}

TEST_CASE("options: --help lists every option with its range and default", "[stage1][options]") {
    Demo d;
    Outcome o = d.parse({"--quick", "--help"});
    REQUIRE(o.kind == Outcome::help);
    CHECK(o.text.rfind("usage: prog [--seconds S] [--quick] [--trace FILE] [--help]\n\nRuns the demo.\n", 0) == 0);
    CHECK(o.text.find("  --seconds S           how long each request takes (0 to 3600, default 1)\n") !=
          std::string::npos);
    CHECK(o.text.find("  -h, --help            show this help and exit\n") != std::string::npos);
    CHECK(d.parse({"-h"}).kind == Outcome::help);
}

TEST_CASE("options: integers, choices, repeated and hidden options, short names", "[stage1][options]") {
    long clients = 10;
    int runs = 5;
    std::string selector = "epoll", method = "GET", out;
    std::vector<std::string> urls, headers;
    std::string child;
    aio::OptionParser p("A client.");
    p.integer("--clients", clients, 1L, 100'000L, "N", "connections")
        .integer("--runs", runs, 1, 1000, "R", "runs")
        .choice("--selector", selector, {"select", "poll", "epoll"}, "the selector")
        .repeated("--url", urls, "URL", "a URL to fetch")
        .repeated("-H, --header", headers, "LINE", "a header to send")
        .text("-X, --request", method, "METHOD", "the method")
        .output_file("-o, --output", out, "FILE", "where the body goes")
        .text("--child", child, "KIND", "internal")
        .hidden();

    char dir[] = "/tmp/options_test_XXXXXX";
    REQUIRE(::mkdtemp(dir));
    const std::string body = std::string(dir) + "/body";
    Argv a({"--clients", "200", "--selector", "poll", "--url", "http://a/", "--url=http://b/", "-H", "A: 1",
            "-HB: 2", "-X", "POST", "-o", body, "--runs=7", "--child", "tasks"});
    REQUIRE(p.try_parse(a.argc(), a.argv()).kind == Outcome::proceed);
    CHECK(clients == 200);
    CHECK(runs == 7);
    CHECK(selector == "poll");
    CHECK(urls == std::vector<std::string>{"http://a/", "http://b/"});
    CHECK(headers == std::vector<std::string>{"A: 1", "B: 2"});
    CHECK(method == "POST");
    CHECK(out == body);
    CHECK(child == "tasks");
    ::unlink(body.c_str());
    ::rmdir(dir);

    auto error = [&](std::vector<std::string> args) {
        Argv b(std::move(args));
        return error_of(p.try_parse(b.argc(), b.argv()));
    };
    CHECK(error({"--clients", "0"}) == "--clients wants a whole number from 1 to 100000, got '0'");
    CHECK(error({"--clients", "1.5"}) == "--clients wants a whole number from 1 to 100000, got '1.5'");
    CHECK(error({"--clients", "99999999999999999999999"}) ==
          "--clients wants a whole number from 1 to 100000, got '99999999999999999999999'");
    CHECK(error({"--runs", "1e3"}) == "--runs wants a whole number from 1 to 1000, got '1e3'");
    CHECK(error({"--selector", "kqueue"}) == "--selector wants one of select, poll, epoll; got 'kqueue'");
    CHECK(error({"-X"}) == "-X needs a value");
    CHECK(error({"--request"}) == "--request needs a value");
    CHECK(error({"-o", "/nonexistent/b"}) == "-o: cannot write to '/nonexistent/b': No such file or directory");

    Argv h({"--help"});
    Outcome help = p.try_parse(h.argc(), h.argv());
    REQUIRE(help.kind == Outcome::help);
    CHECK(help.text.find("--child") == std::string::npos);
    CHECK(help.text.find("[--url URL]...") != std::string::npos);
    CHECK(help.text.find("  -H, --header LINE     a header to send (may be repeated)\n") != std::string::npos);
    CHECK(help.text.find("--selector select|poll|epoll") != std::string::npos);
    CHECK(help.text.find("(one of select, poll, epoll; default epoll)") != std::string::npos);
}

TEST_CASE("options: a mistake in the declarations is the programmer's, and is thrown", "[stage1][options]") {
    bool b = false;
    aio::OptionParser p("");
    p.flag("--a", b, "");
    CHECK_THROWS_AS(p.flag("--a", b, ""), std::invalid_argument);
    CHECK_THROWS_AS(p.flag("-h", b, ""), std::invalid_argument);
    CHECK_THROWS_AS(p.flag("--help", b, ""), std::invalid_argument);
    CHECK_THROWS_AS(p.flag("a", b, ""), std::invalid_argument);
}

TEST_CASE("options: arguments() collects operands wherever they stand; '--' ends the options", "[stage1][options]") {
    std::vector<std::string> urls, headers;
    bool verbose = false;
    aio::OptionParser parser("Fetches URLs.");
    parser.arguments("URL", urls, "what to fetch")
        .flag("-v", verbose, "say more")
        .repeated("-H", headers, "FIELD", "a header");
    Argv a({"http://a/", "-v", "http://b/", "-H", "X: 1", "--", "-H", "http://c/"});
    CHECK(parser.try_parse(a.argc(), a.argv()).kind == Outcome::proceed);
    CHECK(urls == std::vector<std::string>{"http://a/", "http://b/", "-H", "http://c/"});
    CHECK(verbose);
    CHECK(headers == std::vector<std::string>{"X: 1"});
    const std::string help = parser.help_text("fetch");
    CHECK(help.find("[--help] URL...") != std::string::npos);
    CHECK(help.find("arguments:\n  URL") != std::string::npos);

    Argv none({"-v"});
    Outcome missing = parser.try_parse(none.argc(), none.argv());
    CHECK(error_of(missing) == "give at least one URL");

    // Without arguments(), an operand is still refused.
    Demo d;
    CHECK(error_of(d.parse({"--quick", "extra"})) == "unexpected argument 'extra'");
}
