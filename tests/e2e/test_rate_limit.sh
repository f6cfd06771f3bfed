#!/bin/sh
# End-to-end: rate_limit on sources (records/s for the whole source) holds
# the source back (checked as a lower bound on the run time, which a slow
# machine cannot break), loses nothing, and bad values are rejected.
. tests/e2e/lib.sh

cat >"$TMP/gen.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env{}
env:generate(function(i) return i end, 200, { rate_limit = 400 }):print()
local r = env:execute("gen")
io.stderr:write("runtime_ms=", r.runtime_ms, "\n")
EOF2
for p in 1 2; do
  run_tide "$TMP/gen$p" run "$TMP/gen.lua" --parallelism "$p"
  check_rc "p=$p: rate-limited generate exits 0" 0
  sed 's/^[0-9]*> //' "$TMP/gen$p.out" | sort -n >"$TMP/gen$p.sorted"
  seq 1 200 >"$TMP/gen.expected"
  check_eq "p=$p: every record once" "$TMP/gen.expected" "$TMP/gen$p.sorted"
  ms=$(sed -n 's/^runtime_ms=//p' "$TMP/gen$p.err")
  # 200 records at 400/s, released in batches of rate/20 per subtask: the
  # last batch may not start before (200 - 20) / 400 s
  check "p=$p: 200 records at 400/s take at least 450 ms (took ${ms} ms)" test "${ms:-0}" -ge 450
done

seq 1 300 >"$TMP/lines.txt"
cat >"$TMP/text.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env{}
env:read_text(arg[1], { rate_limit = 1000 }):map(function(l) return tonumber(l) end):print()
local r = env:execute("text")
io.stderr:write("runtime_ms=", r.runtime_ms, "\n")
EOF2
run_tide "$TMP/text" run "$TMP/text.lua" -- "$TMP/lines.txt"
check_rc "rate-limited read_text exits 0" 0
check_eq "read_text: every line once, in order" "$TMP/lines.txt" "$TMP/text.out"
ms=$(sed -n 's/^runtime_ms=//p' "$TMP/text.err")
check "read_text: 300 lines at 1000/s take at least 250 ms (took ${ms} ms)" test "${ms:-0}" -ge 250

cat >"$TMP/bad.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env{}
env:from_list({ 1, 2 }, { rate_limit = -5 }):print()
env:execute("bad")
EOF2
run_tide "$TMP/bad" run "$TMP/bad.lua"
check_rc "a negative rate_limit exits 1" 1
check_contains "names the option and the script line" "$TMP/bad.err" "bad.lua:3: from_list: rate_limit must be a positive number"

finish
