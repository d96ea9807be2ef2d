#!/bin/sh
# After a build (CI runs it after `make test`): fail if make would redo any of it. Asks
# `make -q` about every demo, benchmark and test binary in build/bin/, through the makefile
# that builds it (a stage's own for its programs, the top one for the tests), so a rule that
# rebuilds for nothing (an object deleted as an intermediate file, a missing dependency
# file, a target that is never made) shows up here instead of as a slow `make test`.
#
#   tests/make_check.sh [BUILD]     BUILD: the build directory (default: build)
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/bin
status=0
checked=0

# question DIR TARGET...: make -q in DIR; report each target that is out of date.
question() {
    dir=$1
    shift
    for target in "$@"; do
        checked=$((checked + 1))
        if [ ! -e "$target" ]; then
            echo "make-check: $target was not built (run make test first)" >&2
            status=1
        elif ! make --no-print-directory -q -C "$dir" BUILD="$build" "$target" >/dev/null 2>&1; then
            echo "make-check: make -C $dir would rebuild $target, which is already built:" >&2
            make --no-print-directory -n -C "$dir" BUILD="$build" "$target" 2>&1 | sed 's/^/    /' >&2
            status=1
        fi
    done
}

# Plain `make` must mean `make all`: the programs.
# (-p prints make's database; `clean` is a target whose recipe -q does not run.)
goal=$(make --no-print-directory -pq BUILD="$build" clean 2>/dev/null | sed -n 's/^\.DEFAULT_GOAL := //p' | head -n 1)
if [ "$goal" != all ]; then
    echo "make-check: plain make would build '$goal', not all (the programs)" >&2
    status=1
fi

for stage in stage*_*/; do
    stage=${stage%/}
    [ -f "$stage/Makefile" ] || continue
    programs=
    [ -f "$stage/main.cpp" ] && programs="$bin/$stage"
    for tool in "$stage"/*_main.cpp; do
        [ -f "$tool" ] || continue
        name=$(basename "$tool" _main.cpp)
        programs="$programs $bin/$name"
    done
    for bench in "$stage"/bench_*.cpp; do
        [ -f "$bench" ] || continue
        name=$(basename "$bench" .cpp)
        programs="$programs $bin/$name"
    done
    for tool in "$stage"/*_main.cpp; do
        [ -f "$tool" ] || continue
        name=$(basename "$tool" _main.cpp)
        programs="$programs $bin/$name"
    done
    # shellcheck disable=SC2086  # a list of paths without spaces
    question "$stage" $programs
done
for t in "$bin"/tests_stage*; do
    [ -e "$t" ] && question . "$t"
done

[ "$status" -eq 0 ] && echo "make-check: $checked programs and test binaries are up to date: nothing would be rebuilt"
exit $status
