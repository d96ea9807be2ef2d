#!/bin/sh
# Keep README code blocks identical to the sources they quote.
#
# In a README, one line names a snippet:        <!-- snippet: event_loop.cpp#run_once -->
# and the fenced code block right after it is the copy. The path is relative to the README.
# In the source, the snippet sits between two marker comments:
#     // [docs:run_once]
#     ...
#     // [/docs:run_once]
# Marker lines of other snippets inside it are left out of the copy.
#
#   docs_check.sh check  README...   fail (exit 1) if any copy differs from its source
#   docs_check.sh update README...   rewrite the copies from the sources
mode=$1
shift
status=0
for readme in "$@"; do
    [ -f "$readme" ] || continue
    dir=$(dirname "$readme")
    tmp=$(mktemp)
    awk -v dir="$dir" -v readme="$readme" -v mode="$mode" '
    function fail(msg) { printf "%s:%d: %s\n", readme, NR, msg > "/dev/stderr"; bad = 1 }
    # The lines of snippet `name` in `file`, into src[1..n]; returns n, or -1 if not found.
    function extract(file, name,    line, n, inside, found) {
        n = 0; inside = 0; found = 0
        while ((getline line < file) > 0) {
            if (index(line, "[/docs:" name "]")) { inside = 0; found = 1; break }
            if (inside && line !~ /\[\/?docs:[A-Za-z0-9_.-]+\]/) src[++n] = line
            if (index(line, "[docs:" name "]")) inside = 1
        }
        close(file)
        return found ? n : -1
    }
    /<!-- snippet: [^ ]+#[^ ]+ -->/ {
        print
        spec = $0; sub(/.*<!-- snippet: /, "", spec); sub(/ -->.*/, "", spec)
        file = spec; sub(/#.*/, "", file); name = spec; sub(/.*#/, "", name)
        n = extract(dir "/" file, name)
        if (n < 0) { fail("snippet " spec ": no [docs:" name "] ... [/docs:" name "] in " dir "/" file); next }
        # The README copy: a fence, the lines, a closing fence.
        if ((getline fence) <= 0 || fence !~ /^```/) { fail("snippet " spec ": the next line must open a ``` code block"); print fence; next }
        m = 0
        while ((getline line) > 0 && line !~ /^```[ \t]*$/) copy[++m] = line
        same = (m == n)
        for (i = 1; same && i <= n; i++) if (copy[i] != src[i]) same = 0
        if (!same && mode == "check") fail("snippet " spec " differs from " dir "/" file " (run: make docs)")
        print fence
        if (mode == "update") for (i = 1; i <= n; i++) print src[i]
        else for (i = 1; i <= m; i++) print copy[i]
        print "```"
        next
    }
    { print }
    END { exit bad }
    ' "$readme" > "$tmp" || status=1
    if [ "$mode" = update ] && ! cmp -s "$tmp" "$readme"; then cat "$tmp" > "$readme"; echo "updated $readme"; fi
    rm -f "$tmp"
done
[ "$status" -eq 0 ] && [ "$mode" = check ] && echo "docs-check: every README snippet matches its source"
exit $status
