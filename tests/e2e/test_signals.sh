#!/bin/sh
# tests/e2e/test_signals.sh - SIGINT and SIGTERM cancel a job cleanly
# (issue 11): a message, the run's in-progress part files removed, the
# completed checkpoints kept (--resume then gives the exact output), exit
# 130 / 143; a second signal exits at once; the print sink's output
# reaches a pipe or file per batch while the job runs.
. tests/e2e/lib.sh

cat >"$TMP/job.lua" <<'LUA'
local tide = require "tide"
local list = {}
for i = 1, 20000 do list[i] = i end
local env = tide.env{ parallelism = 2, checkpoint = { dir = arg[2], interval = "100ms" } }
env:from_list(list, { rate_limit = 4000 }):map(function(x) return "r" .. x end):write_text(arg[1])
env:execute("sig")
LUA

# start JOB ARGS in the background, wait SECONDS, send SIGNAL, wait for it
signal_run() { # NAME SECONDS SIGNAL ARGS...
  _n=$1 _s=$2 _sig=$3
  shift 3
  "$TIDE" run "$@" >"$TMP/$_n.out" 2>"$TMP/$_n.err" &
  _pid=$!
  sleep "$_s"
  kill "-$_sig" "$_pid"
  wait "$_pid"
  RC=$?
  LAST=$TMP/$_n
}

signal_run int 1.5 INT "$TMP/job.lua" -- "$TMP/out" "$TMP/ck"
check_rc "SIGINT: exit 130" 130
check_contains "SIGINT: says it cancels" "$TMP/int.err" "tide: SIGINT: cancelling the job (again to exit at once)"
check_match "SIGINT: says what it removed and kept" "$TMP/int.err" \
  "job 'sig' cancelled by SIGINT: [0-9]+ in-progress part files? removed; completed checkpoints kept in $TMP/ck/sig"
hidden_files "$TMP/out" | grep inprogress >"$TMP/int.left"
check_empty "SIGINT: no in-progress part file is left" "$TMP/int.left"
check "SIGINT: completed checkpoints are kept" test -n "$(completed "$TMP/ck/sig")"
check_not_contains "SIGINT: no restart" "$TMP/int.err" "restarting"

run_tide "$TMP/resume" run "$TMP/job.lua" --resume -- "$TMP/out" "$TMP/ck"
check_rc "--resume after SIGINT: exit 0" 0
cat_parts "$TMP/out" | sort >"$TMP/got"
seq 1 20000 | sed 's/^/r/' | sort >"$TMP/want"
check_eq "--resume after SIGINT: every record exactly once" "$TMP/want" "$TMP/got"

signal_run term 1 TERM "$TMP/job.lua" -- "$TMP/out2" "$TMP/ck2"
check_rc "SIGTERM: exit 143" 143
check_contains "SIGTERM: says so" "$TMP/term.err" "job 'sig' cancelled by SIGTERM"
hidden_files "$TMP/out2" | grep inprogress >"$TMP/term.left"
check_empty "SIGTERM: no in-progress part file is left" "$TMP/term.left"

# a function that never returns: the first signal cannot stop it, the
# second exits at once
cat >"$TMP/stuck.lua" <<'LUA'
local tide = require "tide"
local env = tide.env{}
env:from_list({ 1, 2, 3 }):map(function(x)
  if x == 2 then
    io.open(arg[1], "w"):close()
    while true do end
  end
  return x
end):discard()
env:execute("stuck")
LUA
"$TIDE" run "$TMP/stuck.lua" -- "$TMP/stuck.mark" >"$TMP/stuck.out" 2>"$TMP/stuck.err" &
pid=$!
i=0
while [ ! -e "$TMP/stuck.mark" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT "$pid"
sleep 0.5
check "a stuck function: the first SIGINT does not end the process" kill -0 "$pid"
kill -INT "$pid"
wait "$pid"
RC=$?
LAST=$TMP/stuck
check_rc "a stuck function: the second SIGINT exits at once, 130" 130

# the print sink: lines reach a file while the job runs
cat >"$TMP/print.lua" <<'LUA'
local tide = require "tide"
local list = {}
for i = 1, 5000 do list[i] = i end
local env = tide.env{}
env:from_list(list, { rate_limit = 500 }):print()
env:execute("print")
LUA
"$TIDE" run "$TMP/print.lua" >"$TMP/print.out" 2>"$TMP/print.err" &
pid=$!
sleep 1.5
lines=$(wc -l <"$TMP/print.out")
kill -TERM "$pid"
wait "$pid"
check "print: output reached the file while the job ran ($lines lines after 1.5 s)" test "$lines" -gt 0
finish
