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

# gen_csv CSV EXPECTED LAST QUOTE_BELOW BAD: writes CSV, "id,name,n" with
# rows on lines 2..LAST (id = line - 1, name "n<id>", n = 3 * id; the
# names on lines divisible by 7 below QUOTE_BELOW quoted, with a delimiter
# inside: after a stray quote a quote would pair with it), except the
# lines BAD lists ("LINE=TEXT;LINE=TEXT"), which hold TEXT; and writes the
# good rows to EXPECTED as the jobs print them, "id|name|n".
gen_csv() {
  awk -v csv="$1" -v want="$2" -v last="$3" -v qbelow="$4" -v bad="$5" 'BEGIN {
    nb = split(bad, parts, ";")
    for (i = 1; i <= nb; i++) {
      eq = index(parts[i], "=")
      badline[substr(parts[i], 1, eq - 1) + 0] = substr(parts[i], eq + 1)
    }
    print "id,name,n" >csv
    for (line = 2; line <= last; line++) {
      id = line - 1
      if (line in badline) { print badline[line] >csv; continue }
      if (line % 7 == 0 && line < qbelow) { name = "\"n" id ", q\""; shown = "n" id ", q" }
      else { name = "n" id; shown = name }
      print id "," name "," id * 3 >csv
      print id "|" shown "|" id * 3 >want
    }
  }'
}

# data.csv: line 1 the header; lines 2-16 good; line 17 a row whose quoted
# field never closes; lines 18-1017 good, except line 500 (a bad int) and
# line 900 (two fields instead of three). Under skip, reading resumes at
# line 18, the line after the one the quote opened on.
gen_csv "$TMP/data.csv" "$TMP/expected" 1017 17 '17=16,"broken,5;500=499,bad-int,x499;900=899,short'

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

# ---- across a restore from a checkpoint ----------------------------------------
# 2000 rows at 4000/s, a checkpoint every 100 ms; the map fails once, at the
# first row from id 1000 on after a checkpoint completed, and the job
# restarts from its latest checkpoint (taken after at least one batch of
# 200 rows, so after the bad row on line 6, and before the failing row, so
# before the bad row on line 1601). Each bad row is counted once, the one
# warning says which one was skipped before the checkpoint, the first bad
# row's message survives in the checkpoint, and the committed output holds
# every good row exactly once.
gen_csv "$TMP/ck.csv" "$TMP/ck.expected" 2001 1601 '6=5,short;1601=1600,"broken,1600'
sort "$TMP/ck.expected" >"$TMP/ck.expected.sorted"
cat >"$TMP/ckjob.lua" <<'EOF2'
local tide = require "tide"
local path, out, ck, marker = arg[1], arg[2], arg[3], arg[4]
local env = tide.env{ name = "skipck", checkpoint = { dir = ck, interval = "100ms" },
  restart = { strategy = "fixed_delay", attempts = 1, delay = 10 } }
env:read_csv(path, { types = { id = "int", n = "int" }, on_error = "skip", rate_limit = 4000 }):uid("csv-in")
   :map(function(r)
     local f = io.open(marker)
     if f then f:close() elseif r.id >= 1000 then
       local ls = io.popen("ls " .. ck .. "/skipck/*/_metadata 2>/dev/null")
       local done = ls:read("l")
       ls:close()
       if done then
         io.open(marker, "w"):close()
         error("fails once")
       end
     end
     return r.id .. "|" .. r.name .. "|" .. r.n
   end):uid("flaky")
   :write_text(out)
env:execute()
EOF2
run_tide "$TMP/ck" run "$TMP/ckjob.lua" -- "$TMP/ck.csv" "$TMP/ck-sink" "$TMP/ck.d" "$TMP/ck.marker"
check_rc "restore: exit 0" 0
check_contains "restore: the job restarted from a checkpoint" "$TMP/ck.err" "tide: restoring checkpoint"
cat_parts "$TMP/ck-sink" | sort >"$TMP/ck.rows"
check_eq "restore: every good row exactly once" "$TMP/ck.expected.sorted" "$TMP/ck.rows"
grep -c '^tide: warning:' "$TMP/ck.err" >"$TMP/ck.nwarn"
check_eq "restore: one warning line" "$TMP/one" "$TMP/ck.nwarn"
check_contains "restore: each bad row counted once, the first one's message kept" "$TMP/ck.err" \
  "tide: warning: read_csv (uid 'csv-in', subtask 1/1): skipped 2 bad rows of $TMP/ck.csv (1 before the restored checkpoint), first at $TMP/ck.csv:6: expected 3 fields, got 2"

finish
