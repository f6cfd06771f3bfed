#!/bin/sh
# End-to-end: read_csv with on_error = "skip" loses nothing silently. A CSV
# file holds an unterminated quote followed by many good rows (and two
# more bad rows); the good rows after the quote all come out, the bad ones
# are counted, and one warning per reading subtask says how many were
# skipped and where the first one starts. With on_error = "fail" the job
# fails naming the line the bad row starts on.
# Oracle: the generator below writes the expected output next to the input
# (the good rows, as the job prints them), by construction, not by Tide.
. tests/e2e/lib.sh

# data.csv: line 1 the header; lines 2-16 good; line 17 a row whose quoted
# field never closes; lines 18-1017 good, except line 500 (a bad int) and
# line 900 (two fields instead of three). Under skip, reading resumes at
# line 18, the line after the one the quote opened on.
awk -v csv="$TMP/data.csv" -v want="$TMP/expected" 'BEGIN {
  print "id,name,n" >csv
  for (line = 2; line <= 1017; line++) {
    id = line - 1
    if (line == 17) { print id ",\"broken,5" >csv; continue }
    if (line == 500) { print id ",bad-int,x" id >csv; continue }
    if (line == 900) { print id ",short" >csv; continue }
    # some names before the bad row quoted, with a delimiter inside (after
    # it, a quote would pair with the stray one: see test_source_file.c)
    if (line % 7 == 0 && line < 17) { name = "\"n" id ", q\""; shown = "n" id ", q" }
    else { name = "n" id; shown = name }
    print id "," name "," id * 3 >csv
    print id "|" shown "|" id * 3 >want
  }
}'

cat >"$TMP/job.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env()
env:read_csv(arg[1], { types = { id = "int", n = "int" }, on_error = arg[2] }):uid("csv-in")
   :map(function(r) return r.id .. "|" .. r.name .. "|" .. r.n end):uid("fmt")
   :print()
env:execute()
EOF2

run_tide "$TMP/skip" run "$TMP/job.lua" -- "$TMP/data.csv" skip
check_rc "skip: exit 0" 0
strip_prefix <"$TMP/skip.out" >"$TMP/skip.rows"
check_eq "skip: exactly the good rows, in order, the 1000 after the quote included" \
  "$TMP/expected" "$TMP/skip.rows"
grep -c '^tide: warning:' "$TMP/skip.err" >"$TMP/skip.nwarn"
echo 1 >"$TMP/one"
check_eq "skip: one warning line" "$TMP/one" "$TMP/skip.nwarn"
check_contains "skip: the warning counts the rows and names the first one's start line" "$TMP/skip.err" \
  "tide: warning: read_csv (uid 'csv-in', subtask 1/1): skipped 3 bad rows of $TMP/data.csv, first at $TMP/data.csv:17: unterminated quoted field (opened at line 17, runs to the end of the file)"

# at parallelism 2 the file is read by subtask 0 alone: one warning
run_tide "$TMP/skip2" run "$TMP/job.lua" --parallelism 2 -- "$TMP/data.csv" skip
check_rc "skip, parallelism 2: exit 0" 0
strip_prefix <"$TMP/skip2.out" | sort >"$TMP/skip2.rows"
sort "$TMP/expected" >"$TMP/expected.sorted"
check_eq "skip, parallelism 2: exactly the good rows" "$TMP/expected.sorted" "$TMP/skip2.rows"
grep -c '^tide: warning:' "$TMP/skip2.err" >"$TMP/skip2.nwarn"
check_eq "skip, parallelism 2: one warning line" "$TMP/one" "$TMP/skip2.nwarn"
check_contains "skip, parallelism 2: the warning names the reading subtask" "$TMP/skip2.err" \
  "tide: warning: read_csv (uid 'csv-in', subtask 1/2): skipped 3 bad rows of $TMP/data.csv, first at $TMP/data.csv:17:"

# a file with no bad row: no warning
head -n 16 "$TMP/data.csv" >"$TMP/good.csv"
run_tide "$TMP/good" run "$TMP/job.lua" -- "$TMP/good.csv" skip
check_rc "skip, no bad row: exit 0" 0
check_not_contains "skip, no bad row: no warning" "$TMP/good.err" "warning"

# one bad row: "1 bad row"
head -n 20 "$TMP/data.csv" >"$TMP/one.csv"
run_tide "$TMP/onebad" run "$TMP/job.lua" -- "$TMP/one.csv" skip
check_rc "skip, one bad row: exit 0" 0
check_contains "skip, one bad row: singular" "$TMP/onebad.err" \
  "skipped 1 bad row of $TMP/one.csv, first at $TMP/one.csv:17:"
strip_prefix <"$TMP/onebad.out" >"$TMP/onebad.rows"
head -n 18 "$TMP/expected" >"$TMP/onebad.expected"
check_eq "skip, one bad row: the rows after it come out" "$TMP/onebad.expected" "$TMP/onebad.rows"

# on_error = "fail": the line the row starts on, the operator, no traceback
run_tide "$TMP/fail" run "$TMP/job.lua" -- "$TMP/data.csv" fail
check_rc "fail: exit 1" 1
check_contains "fail: names the start line and the unterminated quote" "$TMP/fail.err" \
  "$TMP/data.csv:17: unterminated quoted field (opened at line 17, runs to the end of the file)"
check_contains "fail: names the source's uid" "$TMP/fail.err" "operator 'csv-in' (read_csv"
check_not_contains "fail: no traceback of Tide's internals" "$TMP/fail.err" "stack traceback"
strip_prefix <"$TMP/fail.out" >"$TMP/fail.rows"
head -n 15 "$TMP/expected" >"$TMP/fail.expected"
check_eq "fail: the rows before the bad one came out" "$TMP/fail.expected" "$TMP/fail.rows"

finish
