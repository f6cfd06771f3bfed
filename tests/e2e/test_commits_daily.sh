#!/bin/sh
# End-to-end: scripts/commits_daily.lua (event-time tumbling windows over
# the git commit history, late commits to a side output) against an
# independent Python oracle, at window parallelism 1, 2 and 4; and
# scripts/coding_sessions.lua (merging session windows) against its own
# oracle at parallelism 1 and 2.
. tests/e2e/lib.sh

INPUT=$DATA/git-commits.csv
"$PYTHON" tests/e2e/oracle_commits_daily.py "$INPUT" "$TMP/daily.oracle" "$TMP/late.oracle"
n_late=$(wc -l <"$TMP/late.oracle" | tr -d ' ')
check "oracle finds late commits ($n_late)" test "$n_late" -gt 0

for p in 1 2 4; do
  out=$TMP/daily$p late=$TMP/late$p
  run_tide "$TMP/run$p" run scripts/commits_daily.lua --parallelism "$p" -- "$INPUT" "$out" "$late"
  check_rc "p=$p: commits_daily exits 0" 0
  cat_parts "$out" | sort >"$TMP/daily.actual$p"
  cat_parts "$late" | sort >"$TMP/late.actual$p"
  check_eq "p=$p: daily counts equal the oracle" "$TMP/daily.oracle" "$TMP/daily.actual$p"
  check_eq "p=$p: late commits equal the oracle" "$TMP/late.oracle" "$TMP/late.actual$p"
  check_str "p=$p: late count" "$n_late" "$(wc -l <"$TMP/late.actual$p" | tr -d ' ')"
done

# every commit is either counted in a day or late
total=$(awk -F, '{s += $3} END {print s}' "$TMP/daily.actual1")
rows=$(($(wc -l <"$INPUT") - 1))
check_str "daily counts plus late commits cover every row" "$rows" "$((total + n_late))"

"$PYTHON" tests/e2e/oracle_sessions.py "$INPUT" "$TMP/sessions.oracle"
for p in 1 2; do
  run_tide "$TMP/sess$p" run scripts/coding_sessions.lua --parallelism "$p" -- "$INPUT" "$TMP/sessions$p"
  check_rc "p=$p: coding_sessions exits 0" 0
  cat_parts "$TMP/sessions$p" | sort >"$TMP/sessions.actual$p"
  check_eq "p=$p: sessions equal the oracle" "$TMP/sessions.oracle" "$TMP/sessions.actual$p"
done

finish
