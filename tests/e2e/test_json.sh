#!/bin/sh
# End-to-end: JSON lines (env:read_json, stream:write_json). Records
# round-trip through a job and come out as the values Python's json module
# computes from the input (the oracle: tests/e2e/json_oracle.py); bad
# lines are named file:line (on_error = "fail") or counted (on_error =
# "skip"); integers beyond 2^53 follow docs/LUAJIT.md; a job killed after a
# checkpoint and resumed writes every record exactly once.
. tests/e2e/lib.sh

ORACLE=tests/e2e/json_oracle.py

cat >"$TMP/job.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env{ parallelism = 2 }
env:read_json(arg[1], { on_error = arg[3], rate_limit = tonumber(arg[4]) }):uid("json-in")
   :map(function(r)
     if type(r) == "table" and r.id then r.twice = r.id * 2 end
     return r
   end):uid("twice")
   :write_json(arg[2]):uid("json-out")
env:execute("json")
EOF2

# ---- round trip -------------------------------------------------------
"$PYTHON" "$ORACLE" gen "$TMP/in.jsonl" 3000 "$TMP/bad-lines"
run_tide "$TMP/rt" run "$TMP/job.lua" -- "$TMP/in.jsonl" "$TMP/out" fail
check_rc "round trip: exit 0" 0
cat_parts "$TMP/out" >"$TMP/out.jsonl"
check "round trip: the records Python's json computes, each once" \
  "$PYTHON" "$ORACLE" compare "$TMP/in.jsonl" "$TMP/out.jsonl" "$TIDE_VM"
check "round trip: compact lines with sorted object names" \
  "$PYTHON" "$ORACLE" canonical "$TMP/out.jsonl"

# ---- integers beyond 2^53 ----------------------------------------------
printf '{"id":1,"big":1152921504606846977,"neg":-9007199254740993,"small":9007199254740991}\n' >"$TMP/big.jsonl"
run_tide "$TMP/big" run "$TMP/job.lua" -- "$TMP/big.jsonl" "$TMP/bigout" fail
check_rc "big integers: exit 0" 0
check_str "big integers: exact on Lua 5.4, digits as strings beyond 2^53 on LuaJIT" \
  "$(by_vm '{"big":1152921504606846977,"id":1,"neg":-9007199254740993,"small":9007199254740991,"twice":2}' \
    '{"big":"1152921504606846977","id":1,"neg":"-9007199254740993","small":9007199254740991,"twice":2}')" \
  "$(cat_parts "$TMP/bigout")"

# ---- bad lines ----------------------------------------------------------
"$PYTHON" "$ORACLE" gen "$TMP/bad.jsonl" 500 "$TMP/bad-lines" 37,200,411
run_tide "$TMP/fail" run "$TMP/job.lua" -- "$TMP/bad.jsonl" "$TMP/failout" fail
check_rc "fail: exit 1" 1
check_contains "fail: the first bad line is named file:line" "$TMP/fail.err" "$TMP/bad.jsonl:37: bad JSON"
cat_parts "$TMP/failout" >"$TMP/failout.jsonl"
check_empty "fail: nothing committed" "$TMP/failout.jsonl"

run_tide "$TMP/skip" run "$TMP/job.lua" -- "$TMP/bad.jsonl" "$TMP/skipout" skip
check_rc "skip: exit 0" 0
cat_parts "$TMP/skipout" >"$TMP/skip.jsonl"
check "skip: exactly the good records" "$PYTHON" "$ORACLE" compare "$TMP/bad.jsonl" "$TMP/skip.jsonl" "$TIDE_VM"
check_contains "skip: one warning with the count and the first bad line" "$TMP/skip.err" \
  "skipped 3 bad lines of $TMP/bad.jsonl, first at $TMP/bad.jsonl:37: bad JSON"

# ---- records JSON cannot hold ----------------------------------------
cat >"$TMP/unwritable.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env()
env:from_list{ { a = 1 }, { f = print } }:write_json(arg[1]):uid("out")
env:execute()
EOF2
run_tide "$TMP/unw" run "$TMP/unwritable.lua" -- "$TMP/unwout"
check_rc "unwritable record: exit 1" 1
check_contains "unwritable record: the error says why" "$TMP/unw.err" "write_json: cannot write a function value in JSON"

# ---- exactly once across a kill and --resume ------------------------------
"$PYTHON" "$ORACLE" gen "$TMP/many.jsonl" 20000 "$TMP/bad-lines"
"$TIDE" run "$TMP/job.lua" --checkpoint-dir "$TMP/chk" --checkpoint-interval 200ms \
  -- "$TMP/many.jsonl" "$TMP/eoout" fail 8000 >"$TMP/eo.out" 2>"$TMP/eo.err" &
kill_at_checkpoint $! "$TMP/chk/json" 2
check_str "exactly once: the first run was killed" 137 "$KILLED"
run_tide "$TMP/eo2" run "$TMP/job.lua" --checkpoint-dir "$TMP/chk" --checkpoint-interval 200ms --resume \
  -- "$TMP/many.jsonl" "$TMP/eoout" fail
check_rc "exactly once: the resumed run ends" 0
cat_parts "$TMP/eoout" >"$TMP/eo.jsonl"
check "exactly once: every record once after the kill and resume" \
  "$PYTHON" "$ORACLE" compare "$TMP/many.jsonl" "$TMP/eo.jsonl" "$TIDE_VM"

finish
