#!/bin/sh
# tests/e2e/test_reload.sh - live reload (tide reload, issue 11): new logic
# swapped into the running process at an aligned cut, under a rate limit,
# with an exactly-once file sink; Python oracle: each logic's output for the
# records after its cut, committed exactly once. The edits: a changed
# aggregate with a new field, an added operator and another parallelism
# (v1 p2 -> v2 p3), a removed operator refused without
# --allow-non-restored-state and taken with it (v2 -> v3). Refusals that
# keep (or bring back) the old logic, each with the reason: a syntax error
# (no cut taken), a state re-declared with another kind, a new logic that
# fails on its first record, missing state; a second reload while one is in
# progress; an unknown job; a script that cannot be read; wrong usage. Last,
# a state schema migration through a reload (v1 -> v6: "total" declared
# version 2 with migrate).
. tests/e2e/lib.sh

XDG_RUNTIME_DIR=$TMP/run
export XDG_RUNTIME_DIR
mkdir -m 700 "$XDG_RUNTIME_DIR"
JOB_LUA=tests/e2e/savepoint_job.lua
N=12000
RATE=1000

cuts() { grep -c "for a live reload" "$TMP/job.err"; }

# reload NAME ARGS...: tide reload of the running job ($ID)
reload() {
  _name=$1
  shift
  run_tide "$TMP/$_name" reload "$ID" "$@"
}

start_tide job run "$JOB_LUA" -p 2 --checkpoint-dir "$TMP/ck" --checkpoint-interval 300ms -- v1 "$TMP/out" "$TMP/ck" $N $RATE
check "the job prints its id" test -n "$ID"
wait_output "$TMP/out"

# ---- v1 -> v2 (a changed aggregate, a new field, a new operator, p 3),
# with a second reload refused while the first is in progress ----
timeout -k 10 "$TIDE_TIMEOUT" "$TIDE" reload "$ID" "$JOB_LUA" -- v2 "$TMP/out" "$TMP/ck" $N $RATE 3 \
  >"$TMP/r2.out" 2>"$TMP/r2.err" &
R2=$!
sleep 0.1
reload busy "$JOB_LUA" -- v2 "$TMP/out" "$TMP/ck" $N $RATE 3
check_rc "a second reload while one is in progress: exit 1" 1
check_contains "a second reload: says one is in progress" "$TMP/busy.err" "a reload of this job is in progress"
wait "$R2"
RC=$?
check_rc "tide reload v1 -> v2: exit 0" 0
check_match "tide reload prints the cut, a savepoint in the checkpoint directory" "$TMP/r2.out" \
  "^$TMP/ck/savepoint-$ID-[0-9]+\$"
check_match "tide reload reports when records flowed again" "$TMP/r2.err" \
  "tide: job $ID runs $JOB_LUA: cut after [0-9]+ ms, records flowing after [0-9]+ ms, healthy after [0-9]+ ms"
run_tide "$TMP/verify" verify "$(cat "$TMP/r2.out")"
check_rc "tide verify checks the cut: sound" 0
check_contains "the job says it stopped for the reload" "$TMP/job.err" "stopped at savepoint $(cat "$TMP/r2.out") for a live reload"
run_tide "$TMP/list" list
check_contains "tide list: the same job id after the reload" "$TMP/list.out" "$ID"
check_contains "tide list: the job runs" "$TMP/list.out" "RUNNING"
N_CUTS=$(cuts)

# ---- a syntax error: refused before any cut ----
printf 'local tide = require "tide"\nlocal x = = 1\n' >"$TMP/bad.lua"
reload syntax "$TMP/bad.lua"
check_rc "a new script with a syntax error: exit 1" 1
check_contains "syntax error: names file:line" "$TMP/syntax.err" "bad.lua:2:"
check_contains "syntax error: the old logic keeps running" "$TMP/syntax.err" "the new script does not load"
check_contains "syntax error: says the old logic keeps running" "$TMP/syntax.err" "the old logic keeps running"
check_str "syntax error: no cut was taken" "$N_CUTS" "$(cuts)"

# ---- a state re-declared with another kind: the old logic comes back ----
reload kind "$JOB_LUA" --allow-non-restored-state -- v4 "$TMP/out" "$TMP/ck" $N $RATE 3
check_rc "a changed state kind: exit 1" 1
check_match "a changed state kind: names the operator and the state" "$TMP/kind.err" \
  "reload refused: .*operator 'totals' .*state 'total' is already registered as value state, not map state"
check_contains "a changed state kind: the old logic runs again from the cut" "$TMP/job.err" \
  "the reload failed, so the old logic"

# ---- a new logic that fails on its first record: rolled back ----
reload fails "$JOB_LUA" -- v5 "$TMP/out" "$TMP/ck" $N $RATE 3
check_rc "a new logic failing before it is healthy: exit 1" 1
check_match "a failing new logic: the reason, with file:line" "$TMP/fails.err" \
  "reload refused: job 'sp' failed before it was healthy: .*savepoint_job.lua:[0-9]+: v5 fails on purpose"

# ---- v3 removes operators: refused without the flag, taken with it ----
reload v3no "$JOB_LUA" -- v3 "$TMP/out3" "$TMP/ck" $N $RATE
check_rc "missing state without --allow-non-restored-state: exit 1" 1
check_contains "missing state: names the uids and the flag" "$TMP/v3no.err" \
  "holds state of operators 'out', 'seen', 'totals', which the job no longer has"
reload v3 "$JOB_LUA" --allow-non-restored-state -- v3 "$TMP/out3" "$TMP/ck" $N $RATE
check_rc "v2 -> v3 with --allow-non-restored-state: exit 0" 0

wait_tide job
check_rc "the job ends with exit 0" 0
check_not_contains "the job never restarted by its strategy" "$TMP/job.err" "restarting in"

# ---- the committed output against the oracle ----
cat_parts "$TMP/out" | sort >"$TMP/got"
C1=$(grep -cv ',v2$' "$TMP/got")
C2=$(wc -l <"$TMP/got" | tr -d ' ')
check "the first cut is mid-run (0 < $C1 < $C2 < $N)" test "$C1" -gt 0 -a "$C1" -lt "$C2" -a "$C2" -lt $N
"$PYTHON" tests/e2e/oracle_savepoint.py v1 "$C1" v2 "$C2" v3 $N | grep -v ',v3$' >"$TMP/want"
check_eq "v1 up to the first cut, v2 (rescaled 2 -> 3, new operator empty, through three rolled-back reloads) up to the last: oracle" \
  "$TMP/want" "$TMP/got"
cat_parts "$TMP/out3" | sort >"$TMP/got3"
"$PYTHON" tests/e2e/oracle_savepoint.py v1 "$C1" v2 "$C2" v3 $N | grep ',v3$' >"$TMP/want3"
check_eq "v3 after the last cut: oracle" "$TMP/want3" "$TMP/got3"
hidden_files "$TMP/out" | grep -v '^_' >"$TMP/left"
hidden_files "$TMP/out3" | grep -v '^_' >>"$TMP/left"
check_empty "nothing in progress or pending is left" "$TMP/left"

# ---- a job without a checkpoint directory: refused, it runs on ----
cat >"$TMP/nock.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env{}
local list = {}
for i = 1, 2000 do list[i] = i end
env:from_list(list, { rate_limit = 1000 }):uid("src"):map(function(x) return x .. " " .. arg[1] end):uid("m"):print()
env:execute("nock")
EOF2
start_tide nock run "$TMP/nock.lua" -- a
sleep 0.5
reload nock_reload "$TMP/nock.lua" -- b
check_rc "a job without a checkpoint directory: exit 1" 1
check_contains "no checkpoint directory: says why" "$TMP/nock_reload.err" \
  "a reload needs the job to have a checkpoint directory (tide run --checkpoint-dir D)"
wait_tide nock
check_rc "no checkpoint directory: the job runs on to its end" 0
check_str "no checkpoint directory: the old logic wrote every record" "2000" "$(grep -c ' a$' "$TMP/nock.out")"

# ---- bad usage ----
reload gone "$JOB_LUA"
check_rc "a job that ended: exit 1" 1
check_contains "a job that ended: says so" "$TMP/gone.err" "no running job $ID"
run_tide "$TMP/unknown" reload 0123456789abcdef "$JOB_LUA"
check_rc "an unknown job id: exit 1" 1
run_tide "$TMP/nofile" reload 0123456789abcdef "$TMP/missing.lua"
check_rc "a script that cannot be read: exit 2" 2
check_contains "a script that cannot be read: names it" "$TMP/nofile.err" "cannot read $TMP/missing.lua"
run_tide "$TMP/usage" reload "$ID"
check_rc "reload without a script: exit 2" 2
check_contains "wrong usage prints the usage" "$TMP/usage.err" "usage: tide run"

# ---- a state schema migration through a reload: v1 -> v6 ----
start_tide mig run "$JOB_LUA" -p 2 --checkpoint-dir "$TMP/ckm" --checkpoint-interval 300ms \
  -- v1 "$TMP/outm" "$TMP/ckm" 6000 $RATE
wait_output "$TMP/outm"
reload mig_reload "$JOB_LUA" -- v6 "$TMP/outm" "$TMP/ckm" 6000 $RATE
check_rc "v1 -> v6, 'total' migrated to version 2 by the new logic: exit 0" 0
wait_tide mig
check_rc "the migrated job ends with exit 0" 0
cat_parts "$TMP/outm" | sort >"$TMP/gotm"
CM=$(grep -cv ',v6$' "$TMP/gotm")
check "the cut is mid-run (0 < $CM < 6000)" test "$CM" -gt 0 -a "$CM" -lt 6000
"$PYTHON" tests/e2e/oracle_savepoint.py v1 "$CM" v6 6000 >"$TMP/wantm"
check_eq "v1 up to the cut, v6 after it with every total migrated once: oracle" "$TMP/wantm" "$TMP/gotm"

finish
