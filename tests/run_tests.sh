#!/bin/sh
# Run every Catch2 test binary given, show their output, and end with a line per run, then
# the plain line "N passed, N failed", counting test cases over all runs. A binary that dies
# without its summary (a crash, a sanitizer report) counts all its test cases as failed.
# TEST_ARGS (from make) is passed to every binary, e.g. a tag filter.
#
#   tests/run_tests.sh [NAME=value] BINARY ...
#
# NAME=value sets an environment variable for the next binary's run only, and names the run
# (make test runs tests_stage4_on_selector once with each of AIO_SELECTOR=select, poll, epoll).
passed=0
failed=0
runs=
setting=
for arg in "$@"; do
    case $arg in
        *=*) setting="$setting $arg"; continue ;;
    esac
    bin=$arg
    name="$(basename "$bin")$setting"
    printf '\n-- %s %s\n' "$name" "${TEST_ARGS:-}"
    # shellcheck disable=SC2086  # $setting: NAME=value words; TEST_ARGS: Catch2 arguments
    listed=$(env $setting "$bin" --list-test-names-only ${TEST_ARGS:-} 2>/dev/null | grep -c .)
    # shellcheck disable=SC2086
    out=$(env $setting "$bin" ${TEST_ARGS:-} 2>&1)
    rc=$?
    setting=
    printf '%s\n' "$out" | tail -n 60
    p=$(printf '%s\n' "$out" | sed -n 's/^All tests passed ([0-9]* assertions\{0,1\} in \([0-9]*\) test cases\{0,1\})$/\1/p' | tail -n 1)
    f=0
    if [ -z "$p" ]; then
        p=$(printf '%s\n' "$out" | sed -n 's/^test cases: *[0-9]* | *\([0-9]*\) passed.*/\1/p' | tail -n 1)
        f=$(printf '%s\n' "$out" | sed -n 's/^test cases:.*| *\([0-9]*\) failed.*/\1/p' | tail -n 1)
    fi
    if [ -z "$p" ] && printf '%s\n' "$out" | grep -q '^test cases: *[0-9]* | *[0-9]* failed'; then
        p=0
        f=$(printf '%s\n' "$out" | sed -n 's/^test cases: *[0-9]* | *\([0-9]*\) failed.*/\1/p' | tail -n 1)
    fi
    if [ -z "$p" ] && [ "$listed" -eq 0 ] && [ "$rc" -eq 0 ]; then
        p=0                        # nothing matched the filter (e.g. make tsan's tag)
    fi
    if [ -z "$p" ]; then           # no summary: it crashed before it could write one
        p=0
        f=$listed
        [ "$f" -gt 0 ] || f=1
        echo "!! $name exited with status $rc before printing its summary: counting its $f test case(s) as failed"
    elif [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
        f=1                        # a summary but a failing exit (e.g. a leak report at exit)
        echo "!! $name printed a passing summary but exited with status $rc: counting one failure"
    fi
    passed=$((passed + p))
    failed=$((failed + ${f:-0}))
    runs="$runs$(printf '   %-46s %5d passed, %d failed' "$name" "$p" "${f:-0}")
"
done
echo
printf '%s' "$runs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
