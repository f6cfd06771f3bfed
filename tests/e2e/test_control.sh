#!/bin/sh
# tests/e2e/test_control.sh - a running job's control endpoint and the job
# control commands (issue 11): tide run prints the job id and the control
# address; tide list finds the job through the per-user run directory and
# ignores and removes stale entries; the REST endpoints (docs/REST.md) give
# the status, the graph (tasks, operators, chaining, ship strategies),
# per-subtask records in/out and watermarks (checked against what the job
# was given), the checkpoint history; cancel; one job per checkpoint
# directory; wrong usage; unknown job ids.
. tests/e2e/lib.sh

XDG_RUNTIME_DIR=$TMP/run
export XDG_RUNTIME_DIR
mkdir -m 700 "$XDG_RUNTIME_DIR"

# 60000 records at 200/s: 5 minutes, so that the job still runs when a
# loaded machine reaches the last checks (the test cancels it)
cat >"$TMP/job.lua" <<'LUA'
local tide = require "tide"
local list = {}
for i = 1, 60000 do list[i] = i end
local env = tide.env{ checkpoint = { dir = arg[2], interval = "200ms" } }
env:from_list(list, { rate_limit = 200 }):uid("numbers")
  :assign_timestamps(function(x) return x end, tide.watermarks.monotonous({ per_record = true })):uid("ts")
  :key_by(function(x) return x % 3 end):sum():uid("sums"):set_parallelism(2)
  :map(function(x) return tostring(x) end):uid("fmt"):set_parallelism(2)
  :write_text(arg[1]):uid("out"):set_parallelism(2)
env:execute("ctl")
LUA

# TPID: the tide process of the last start_tide (PID is the timeout
# around it), as its run file says
tide_pid() {
  "$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" \
    "$XDG_RUNTIME_DIR/tide/$ID.json" 2>/dev/null
}

# rest METHOD PATH OUT: the endpoint's JSON answer in OUT, the HTTP status
# printed (rest_batch below)
rest() { rest_batch "$1" "$2" "$3"; }

# jq_py FILE EXPR: the Python expression EXPR over the JSON in FILE (j)
jq_py() { "$PYTHON" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# (every Python process costs this machine a few tenths of a second of
# CPU: the endpoints are read, and the expressions evaluated, in batches)
# rest_batch METHOD PATH OUT [METHOD PATH OUT...]: rest for each, in one
# Python; the HTTP statuses printed one a line
rest_batch() {
  "$PYTHON" - "$ADDR" "$@" <<'PY'
import sys, urllib.request, urllib.error
addr, args = sys.argv[1], sys.argv[2:]
for method, path, out in zip(args[0::3], args[1::3], args[2::3]):
    req = urllib.request.Request("http://" + addr + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            code, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read()
    open(out, "wb").write(body)
    print(code)
PY
}
# jq_batch FILE EXPR [FILE EXPR...]: jq_py for each, in one Python, one
# line each (an error's line says so)
jq_batch() {
  "$PYTHON" - "$@" <<'PY'
import json, sys
args = sys.argv[1:]
for f, expr in zip(args[0::2], args[1::2]):
    try:
        j = json.load(open(f))
        print(str(eval(expr, {"j": j})).replace("\n", " "))
    except Exception as e:
        print("error: %r" % e)
PY
}
# nth N FILE: line N of FILE
nth() { sed -n "${1}p" "$2"; }

start_tide job run "$TMP/job.lua" -- "$TMP/out" "$TMP/ck"
TPID=$(tide_pid)
check_match "tide run prints the job id and control address" "$TMP/job.err" \
  "^tide: job [0-9a-f]{16}, control at http://127\.0\.0\.1:[0-9]+$"
check "the run file is in the run directory, closed to others" test -f "$XDG_RUNTIME_DIR/tide/$ID.json"
check_str "  it names the tide process, a child of the timeout" "$PID" "$(cut -d' ' -f4 "/proc/$TPID/stat")"
check_str "  mode 700" "700" "$(stat -c %a "$XDG_RUNTIME_DIR/tide")"
sleep 1
# (and two completed checkpoints, up to 30 s: the history below has some)
wait_completed "$TMP/ck/ctl" 2 600

run_tide "$TMP/list" list
check_rc "tide list: exit 0" 0
check_match "tide list shows the job, its name, running, its pid, address and script" "$TMP/list.out" \
  "^$ID +ctl +RUNNING +$TPID +$ADDR +$TMP/job.lua$"

rest_batch GET /jobs "$TMP/jobs.json" GET "/jobs/$ID" "$TMP/job.json" GET "/jobs/$ID/plan" "$TMP/plan.json" \
  GET "/jobs/$ID/vertices/0" "$TMP/v0.json" GET "/jobs/$ID/vertices/1" "$TMP/v1.json" \
  GET "/jobs/$ID/vertices/1/watermarks" "$TMP/w1.json" GET "/jobs/$ID/checkpoints" "$TMP/cks.json" \
  GET /jobs/0000000000000000 "$TMP/e.json" >"$TMP/codes"
jq_batch "$TMP/jobs.json" "[(x['id'], x['status']) for x in j['jobs']]" \
  "$TMP/job.json" "j['name'] + ' ' + j['state'] + ' ' + ' | '.join(v['name'] for v in j['vertices'])" \
  "$TMP/plan.json" "[(n['parallelism'], [o['uid'] for o in n['operators']], [i['ship_strategy'] for i in n['inputs']]) for n in j['plan']['nodes']]" \
  "$TMP/v0.json" "len(j['subtasks'])" "$TMP/v1.json" "len(j['subtasks'])" \
  "$TMP/v0.json" "j['subtasks'][0]['metrics']['write-records']" \
  "$TMP/w1.json" "[w['id'] for w in j]" \
  "$TMP/cks.json" "all(h['status'] in ('COMPLETED', 'IN_PROGRESS') and not h['is_savepoint'] and '/chk-' in h['external_path'] for h in j['history']) and j['counts']['completed'] > 0 and j['latest']['completed']['state_size'] > 0" \
  "$TMP/e.json" "len(j['errors'])" >"$TMP/vals"
check_str "GET /jobs: 200" 200 "$(nth 1 "$TMP/codes")"
check_str "  the job and its status" "[('$ID', 'RUNNING')]" "$(nth 1 "$TMP/vals")"
check_str "GET /jobs/ID: 200" 200 "$(nth 2 "$TMP/codes")"
check_str "  name, state and tasks (chains of operators)" \
  "ctl RUNNING from_list -> assign_timestamps | sum -> map -> write_text" "$(nth 2 "$TMP/vals")"
check_str "GET /jobs/ID/plan: 200" 200 "$(nth 3 "$TMP/codes")"
check_str "  operators by uid per task, parallelism, ship strategy" \
  "[(1, ['numbers', 'ts'], []), (2, ['sums', 'fmt', 'out'], ['HASH'])]" "$(nth 3 "$TMP/vals")"

# counters: what the source task sent is what the keyed task received, and
# the keyed task's watermark is at most the largest number sent
check_str "vertex 0: one subtask, vertex 1: two" "1 2" "$(nth 4 "$TMP/vals") $(nth 5 "$TMP/vals")"
check "records flow: the source sent some" test "$(nth 6 "$TMP/vals")" -gt 0
check_str "watermarks endpoint: one per subtask" "['0.currentInputWatermark', '1.currentInputWatermark']" \
  "$(nth 7 "$TMP/vals")"
check "checkpoint history: completed checkpoints with path, size, duration" test "$(nth 8 "$TMP/vals")" = True
check_str "an unknown job on the endpoint: 404" 404 "$(nth 8 "$TMP/codes")"
check_str "  with Flink's error list" "1" "$(nth 9 "$TMP/vals")"

# one job per checkpoint directory
run_tide "$TMP/second" run "$TMP/job.lua" -- "$TMP/out2" "$TMP/ck"
check_rc "a second job on the same checkpoint directory: exit 2" 2
check_contains "  refused, naming the holder's pid" "$TMP/second.err" \
  "checkpoint directory '$TMP/ck/ctl' is in use by another job (process $TPID holds $TMP/ck/ctl/.lock)"

# cancel through REST (PATCH, as Flink); the counters then add up
check_str "PATCH /jobs/ID: 202" 202 "$(rest PATCH "/jobs/$ID?mode=cancel" "$TMP/c.json")"
wait_tide job
check_rc "the cancelled job exits 1" 1
check_contains "  and says it was cancelled" "$TMP/job.err" "job 'ctl' cancelled by tide cancel"
run_tide "$TMP/list2" list
check_empty "tide list: no job any more" "$TMP/list2.out"

# stale run files: a dead process's entry is ignored and removed
sh -c 'exit 0' &
dead=$!
wait "$dead"
printf '{"id":"deadbeefdeadbeef","pid":%s,"address":"127.0.0.1:1","script":"x.lua","started":1}' "$dead" \
  >"$XDG_RUNTIME_DIR/tide/deadbeefdeadbeef.json"
printf '{"id":"feedfeedfeedfeed","pid":%s,"address":"127.0.0.1:1","script":"y.lua","started":2}' "$dead" \
  >"$XDG_RUNTIME_DIR/tide/feedfeedfeedfeed.json"
run_tide "$TMP/stale" savepoint deadbeefdeadbeef "$TMP/sps"
check_rc "a dead job's stale run file: exit 1" 1
check_contains "  says the process is gone" "$TMP/stale.err" \
  "tide: job deadbeefdeadbeef is not running: its process is gone (its stale run file was removed)"
check "  the run file is removed" test ! -e "$XDG_RUNTIME_DIR/tide/deadbeefdeadbeef.json"
run_tide "$TMP/list3" list
check_rc "tide list with a stale entry: exit 0" 0
check_empty "  lists nothing" "$TMP/list3.out"
check_contains "  says it removed it" "$TMP/list3.err" "tide: removed 1 stale run file of jobs whose process is gone"

# unknown job ids
for verb in savepoint cancel; do
  run_tide "$TMP/unknown" $verb 0123456789abcdef
  check_rc "tide $verb of an unknown job: exit 1" 1
  check_contains "  a clear error" "$TMP/unknown.err" \
    "tide: no running job 0123456789abcdef (tide list shows the running jobs)"
done
run_tide "$TMP/unknown" stop 0123456789abcdef --savepoint
check_rc "tide stop of an unknown job: exit 1" 1

# wrong usage: usage, exit 2
for args in "savepoint" "stop" "stop 0123456789abcdef" "stop 0123456789abcdef --savepoint d --bogus" \
  "cancel" "cancel a b" "list extra"; do
  run_tide "$TMP/usage" $args
  check_rc "tide $args: exit 2" 2
  check_contains "  prints the usage" "$TMP/usage.err" "usage: tide run JOB.lua"
done
run_tide "$TMP/usage" stop 0123456789abcdef
check_contains "tide stop without --savepoint says what it needs" "$TMP/usage.err" \
  "stop needs --savepoint [DIR] (tide cancel ends a job without one)"

# --rest-port and --rest-bind
port=$("$PYTHON" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cat >"$TMP/short.lua" <<'LUA'
local tide = require "tide"
local env = tide.env{}
env:from_list({ 1, 2, 3 }):discard()
env:execute("short")
LUA
run_tide "$TMP/port" run "$TMP/short.lua" --rest-port "$port" --rest-bind 127.0.0.1
check_rc "--rest-port and --rest-bind: exit 0" 0
check_match "  the endpoint is where they say" "$TMP/port.err" "control at http://127\.0\.0\.1:$port$"
run_tide "$TMP/badbind" run "$TMP/short.lua" --rest-bind nowhere
check_rc "a bad --rest-bind: exit 2" 2
check_contains "  says so" "$TMP/badbind.err" "--rest-bind needs an IPv4 address, not 'nowhere'"

finish
