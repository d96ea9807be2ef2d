#!/bin/sh
# Run every Catch2 test binary given, show their output, and end with the plain line
# "N passed, N failed", counting test cases over all binaries. A binary that dies
# without its summary (a crash, a sanitizer report) counts all its test cases as failed.
# TEST_ARGS (from make) is passed to every binary, e.g. a tag filter.
passed=0
failed=0
for bin in "$@"; do
    name=$(basename "$bin")
    printf '\n-- %s %s\n' "$name" "${TEST_ARGS:-}"
    listed=$("$bin" --list-test-names-only ${TEST_ARGS:-} 2>/dev/null | grep -c .)
    out=$("$bin" ${TEST_ARGS:-} 2>&1)
    rc=$?
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
done
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
