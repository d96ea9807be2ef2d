#!/bin/sh
# Make sure Catch2 v2 (Debian's `catch2`, <catch2/catch.hpp>) is there before the tests build.
# Installs it with apt-get when running as root; otherwise says exactly what to install.
CXX=${1:-c++}
have() { printf '#include <catch2/catch.hpp>\n' | "$CXX" -std=c++20 -E -x c++ - >/dev/null 2>&1; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Catch2 is missing: installing Debian's catch2 package (apt-get update && apt-get install -y catch2)..."
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq catch2 >/dev/null && have; then
        echo "Catch2 installed."
        exit 0
    fi
    echo "error: could not install Catch2 with apt-get; install Debian's 'catch2' package (version 2) by hand" >&2
    exit 1
fi
echo "error: the tests need Catch2 v2: install Debian's package 'catch2' (sudo apt-get install catch2)" >&2
exit 1
