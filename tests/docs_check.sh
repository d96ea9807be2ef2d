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
#
# `check` also fails on two kinds of drift that the copies alone cannot show:
#  - a marker no README quotes ([docs:name] in a stage's source with no snippet line for it);
#  - a file named in the course that is not there: a *.md, *.hpp, *.cpp or *.sh path in a
#    README, or in a comment of a source, a script or a Makefile. A name with a '/' is looked
#    up from the repository's root and from the naming file's directory; a bare name, in the
#    naming file's directory and then in any directory of the course.
# Paths are relative to the repository's root, which is where `make docs-check` runs it.
cd "$(dirname "$0")/.." || exit 2
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
[ "$mode" = check ] || exit $status
[ "$status" -eq 0 ] && echo "docs-check: every README snippet matches its source"

# The course's files (not the build's, not git's), one per line.
files=$(find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||' | sort)
sources=$(printf '%s\n' "$files" | grep -E '^stage[^/]*/[^/]*\.(hpp|cpp)$')
commented=$(printf '%s\n' "$files" |
    grep -E '^((stage[^/]*|tests)/[^/]*\.(hpp|cpp|sh|py)|Makefile|config\.mk|stage[^/]*/Makefile|\.ci/run)$')

# Markers that no README quotes.
# shellcheck disable=SC2086  # lists of paths without spaces
awk '
    FNR == 1 { readme = FILENAME ~ /README\.md$/; dir = FILENAME; sub(/\/?[^\/]*$/, "", dir) }
    readme && /<!-- snippet: [^ ]+#[^ ]+ -->/ {
        spec = $0; sub(/.*<!-- snippet: /, "", spec); sub(/ -->.*/, "", spec)
        quoted[(dir == "" ? "" : dir "/") spec] = 1
        next
    }
    !readme {
        line = $0
        while (match(line, /\[docs:[A-Za-z0-9_.-]+\]/)) {
            name = substr(line, RSTART + 6, RLENGTH - 7)
            if (!((FILENAME "#" name) in quoted)) {
                printf "%s:%d: [docs:%s] is quoted by no README: quote it (<!-- snippet: ... -->) or remove the marker\n", FILENAME, FNR, name > "/dev/stderr"
                bad = 1
            }
            line = substr(line, RSTART + RLENGTH)
        }
    }
    END { exit bad }
' "$@" $sources || status=1

# Files named in the course that are not there.
# shellcheck disable=SC2086
printf '%s\n' "$files" | awk '
    # "a/./b/../c" -> "a/c"
    function normal(path,    n, parts, out, i, k, stack) {
        n = split(path, parts, "/"); k = 0
        for (i = 1; i <= n; i++) {
            if (parts[i] == "" || parts[i] == ".") continue
            if (parts[i] == ".." && k > 0 && stack[k] != "..") { k--; continue }
            stack[++k] = parts[i]
        }
        out = ""
        for (i = 1; i <= k; i++) out = out (i > 1 ? "/" : "") stack[i]
        return out
    }
    function found(ref, dir) {
        if (index(ref, "/")) return (normal(ref) in exists) || (normal(dir "/" ref) in exists)
        return (normal(dir "/" ref) in exists) || (ref in basename)
    }
    FILENAME == "-" { exists[$0] = 1; b = $0; sub(/.*\//, "", b); basename[b] = 1; next }
    FNR == 1 {
        dir = FILENAME; if (!sub(/\/[^\/]*$/, "", dir)) dir = "."
        kind = FILENAME ~ /\.md$/ ? "md" : FILENAME ~ /\.(hpp|cpp)$/ ? "c" : "hash"
    }
    {
        # The text that may name a file: all of a README; the comments of the rest.
        text = $0
        if (kind == "c") { i = index(text, "//"); if (!i) next; text = substr(text, i + 2) }
        if (kind == "hash") { i = index(text, "#"); if (!i) next; text = substr(text, i + 1) }
        while (match(text, /[A-Za-z0-9_.\/-]*[A-Za-z0-9_-]\.(md|hpp|cpp|sh)([^A-Za-z0-9_]|$)/)) {
            ref = substr(text, RSTART, RLENGTH)
            before = RSTART > 1 ? substr(text, RSTART - 1, 1) : ""
            text = substr(text, RSTART + RLENGTH)
            sub(/[^A-Za-z0-9_]$/, "", ref)
            if (before == "<" || before == "*" || ref ~ /^(https?:)?\/\//) continue  # <catch2/catch.hpp>, *_x.cpp, URLs
            if (!found(ref, dir)) {
                printf "%s:%d: names %s, which is not in the course\n", FILENAME, FNR, ref > "/dev/stderr"
                bad = 1
            }
        }
    }
    END { exit bad }
' - "$@" $commented || status=1

[ "$status" -eq 0 ] && echo "docs-check: every marker is quoted, and every file the course names is there"
exit $status
