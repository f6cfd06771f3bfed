#!/bin/sh
# tests/e2e/test_nexmark.sh - the Nexmark queries (scripts/nexmark/q*.lua)
# against their independent oracle (tests/e2e/nexmark_oracle.py: Python
# over the same generated events, one file a query in
# tests/e2e/nexmark_queries/).
#
# The generator (build/modules/nexmark.so) makes $NEXMARK_EVENTS events at
# 200 events per second of event time from a fixed base time, so the
# events span about 100 s of event time: every 10 s window, session and
# auction expiry of the queries closes several times. dump.lua writes them
# as JSON lines for the oracle; each query then runs on the generator
# itself (Lua 5.4: parallelism 2, its source split over two subtasks;
# LuaJIT: parallelism 1) into write_json, and its committed part files must
# be the oracle's rows (a multiset; for updating queries, the last row of
# each key).
. tests/e2e/lib.sh

N=${NEXMARK_EVENTS:-20000}
GEN="rate=200 base_time=1700006350000"
MODULE=${NEXMARK:-build/modules/nexmark.so}
export NEXMARK="$MODULE"
P=2
[ "$TIDE_VM" = luajit ] && P=1

# shellcheck disable=SC2086 # GEN is a list of words
run_tide "$TMP/dump" run scripts/nexmark/dump.lua -- "$N" "$TMP/events.jsonl" $GEN
check_rc "dump.lua writes the $N events (exit 0)" 0
check_str "the dump has $N lines" "$N" "$(wc -l <"$TMP/events.jsonl" | tr -d ' ')"

# q13's side input, as the suite's SideInputGenerator writes it: `i,i`
# for i in 0..9999
awk 'BEGIN { for (i = 0; i < 10000; i++) print i "," i }' >"$TMP/side.csv"

for q in scripts/nexmark/q*.lua; do
  name=${q##*/}
  name=${name%.lua}
  opts=
  case $name in
    q13) opts="side_input=$TMP/side.csv" ;;
  esac
  # shellcheck disable=SC2086
  run_tide "$TMP/$name" run "$q" -p "$P" -- "$N" "$TMP/out-$name" $GEN $opts
  check_rc "$name: runs at parallelism $P (exit 0)" 0
  check "$name: its results are the oracle's" \
    "$PYTHON" tests/e2e/nexmark_oracle.py check "$name" "$TMP/events.jsonl" "$TMP/out-$name"
done

# the same query on the dumped file instead of the generator (from=)
run_tide "$TMP/q2-from" run scripts/nexmark/q2.lua -- "$N" "$TMP/out-q2-from" "from=$TMP/events.jsonl"
check_rc "q2 over the dumped events (from=FILE) exits 0" 0
check "q2 over the dumped events gives the oracle's results" \
  "$PYTHON" tests/e2e/nexmark_oracle.py check q2 "$TMP/events.jsonl" "$TMP/out-q2-from"

# bad arguments: the reason and the usage, exit 2
run_tide "$TMP/bad-events" run scripts/nexmark/q0.lua -- many
check_rc "EVENTS that is not a number: usage, exit 2" 2
check_contains "... saying so, with the usage" "$TMP/bad-events.err" "EVENTS must be a whole number of events, not many"
run_tide "$TMP/bad-pair" run scripts/nexmark/q0.lua -- 10 - rate
check_rc "an option that is not name=value: usage, exit 2" 2
check_contains "... naming it" "$TMP/bad-pair.err" "not name=value: rate"

finish
