#!/bin/sh
# tests/e2e/test_metrics.sh - the control endpoint's Prometheus metrics
# (issue 13, docs/METRICS.md): the exposition parses as the text format
# 0.0.4 (tests/e2e/prom_check.py, written from the format's description);
# records in/out equal the input's line count (wc -l); a task waiting for
# input is idle, the tasks before a slow map are backpressured and the map
# busy; the output watermark of a source stamping records now - 5 s lags
# by 5 s; the last checkpoint is one completed on disk; the series do not
# grow with the number of keys; late records dropped by windows equal a
# Python count (tests/e2e/late_input.py), none when they go to a side
# output; env{metrics = false} as --no-metrics; a job failing twice lists
# both failures in GET /jobs/ID/exceptions, newest first; the slow map's
# checkpoint start delay exceeds the time its queued input takes, and the
# subtasks' checkpointed sizes add up to the checkpoint's files.
. tests/e2e/lib.sh

XDG_RUNTIME_DIR=$TMP/run
export XDG_RUNTIME_DIR
mkdir -m 700 "$XDG_RUNTIME_DIR"
INPUT=$DATA/git-commits.csv
LINES=$(wc -l <"$INPUT")

# (every Python process costs this machine a few tenths of a second of
# CPU: the helpers start as few as they can, and the sums and comparisons
# are awk's)
cat >"$TMP/scrape.py" <<'PY'
import contextlib, re, runpy, sys, time, urllib.request
# scrape.py ADDR OUT [CONDITION...]: GET /metrics into OUT.raw, its
# samples (prom_check.py) into OUT; prints the wall time before and after
# the request, ms. With conditions ("records TASK N": TASK took N records;
# "final_wm TASK N": N of TASK's subtasks have the final watermark as their
# input watermark), it first GETs /metrics every 0.2 s, at most 60 s, until
# they hold.
addr, out = sys.argv[1:3]
conds = [sys.argv[i:i + 3] for i in range(3, len(sys.argv), 3)]
def get():
    before = int(time.time() * 1000)
    with urllib.request.urlopen("http://" + addr + "/metrics", timeout=10) as r:
        body = r.read()
    return before, body, int(time.time() * 1000)
def met(body, cond):
    what, task, n = cond[0], cond[1], float(cond[2])
    total = 0.0
    for m in re.finditer(r"^(\w+)\{([^}]*)\} (\S+)$", body.decode(), re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))).get("task") != task:
            continue
        if what == "records" and m.group(1) == "tide_subtask_records_in_total":
            total += float(m.group(3))
        elif what == "final_wm" and m.group(1) == "tide_subtask_current_input_watermark_ms":
            total += float(m.group(3)) == 9.223372036854776e18
    return total == n if what == "records" else total >= n
if conds:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            body = get()[1]
            if all(met(body, c) for c in conds):
                break
        except Exception:
            pass
        time.sleep(0.2)
before, body, after = get()
open(out + ".raw", "wb").write(body)
print(before, after)
sys.stdout.flush()
sys.argv = ["prom_check.py", out + ".raw"]
with open(out, "w") as o, open(out + ".err", "w") as e, contextlib.redirect_stdout(o), \
        contextlib.redirect_stderr(e):
    try:
        runpy.run_path("tests/e2e/prom_check.py", run_name="__main__")
        code = 0
    except SystemExit as x:
        code = x.code
sys.exit(code)
PY

# scrape OUT [CONDITION]: GET /metrics into OUT.raw, its samples
# (prom_check.py) into OUT; prints the wall time before and after the
# request, ms (scrape.py: after CONDITION holds)
scrape() {
  _sc=$1
  shift
  "$PYTHON" "$TMP/scrape.py" "$ADDR" "$_sc" "$@"
}

# value FILE METRIC TASK: the sum of METRIC over the subtasks of TASK (-: all)
# (an integer as such, any other number with 16 significant digits)
value() {
  awk -v metric="$2" -v task="$3" '
    {
      line = $0
      sub(/^[ \t]+/, "", line)
      sub(/[ \t]+$/, "", line)
      o = index(line, "{")
      if (o < 2 || substr(line, 1, o - 1) != metric) next
      v = line
      sub(/.* /, "", v)
      lab = substr(line, o + 1, length(line) - o - length(v) - 2)
      if (substr(line, length(line) - length(v) - 1, 2) != "} ") next
      hit = task == "-"
      nl = split(lab, l, ",")
      for (i = 1; i <= nl; i++) if (l[i] == "task=" task) hit = 1
      if (hit) total += v
    }
    END {
      if (total == int(total)) printf "%.0f\n", total
      else printf "%.16g\n", total
    }' "$1"
}

# gt V LIMIT: the number V is greater than LIMIT
gt() { awk -v v="$1" -v l="$2" 'BEGIN { exit !(v != "" && v + 0 > l + 0) }'; }

cancel() {
  "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request('http://' + sys.argv[1] + '/jobs/' + sys.argv[2] + '/cancel', method='POST'), timeout=10)" "$ADDR" "$ID"
  wait "$PID"
}

# wait_records NAME TASK N: scrape into $TMP/NAME once TASK took N
# records, waiting at most 60 s
wait_records() {
  scrape "$TMP/$1" records "$2" "$3" >/dev/null 2>&1
}

# run_metrics_job NAME K [OPTION]: start the metrics job with K keys (and
# tide run OPTION) and wait, at most 60 s, until its last task took every
# line of the input; the last scrape in $TMP/NAME
run_metrics_job() {
  start_tide "$1" run tests/e2e/metrics_job.lua ${3:-} -- "$INPUT" "$2" "$TMP/out$1"
  wait_records "$1" 2 "$LINES"
}

# ---- a job that read a file and waits --------------------------------------------
run_metrics_job k10 10
sleep 1.2
T=$(scrape "$TMP/m10")
check "the exposition parses as Prometheus text 0.0.4" test -s "$TMP/m10" -a ! -s "$TMP/m10.err"
diag "$TMP/m10.err"
check_str "records out of the file's task = its lines (wc -l)" "$LINES" \
  "$(value "$TMP/m10" tide_subtask_records_out_total 0)"
check_str "records into the keyed task = the file's lines" "$LINES" \
  "$(value "$TMP/m10" tide_subtask_records_in_total 2)"
check_str "nothing out of the tick task (its filter drops every record)" 0 \
  "$(value "$TMP/m10" tide_subtask_records_out_total 1)"
# the tick source goes on sending watermarks (10 bytes each, 200 a second):
# one can be between the two tasks while the counters are read, so read
# them again (at most 20 times) until none is
i=0
cp "$TMP/m10" "$TMP/m10b"
while :; do
  b_in=$(value "$TMP/m10b" tide_subtask_bytes_in_total 2)
  b_out=$(( $(value "$TMP/m10b" tide_subtask_bytes_out_total 0) + $(value "$TMP/m10b" tide_subtask_bytes_out_total 1) ))
  [ "$b_in" = "$b_out" ] || [ "$i" -ge 20 ] && break
  i=$((i + 1))
  sleep 0.05
  scrape "$TMP/m10b" >/dev/null
done
check "bytes in of the keyed task = bytes out of the tasks before it ($b_in, $b_out)" test "$b_in" = "$b_out"
IDLE=$(value "$TMP/m10" tide_subtask_idle_time_ms_per_second 2)
check "the keyed task, waiting for input, is idle (> 800 ms/s: $IDLE)" \
  gt "$IDLE" 800
IDLE1=$(value "$TMP/m10" tide_subtask_idle_time_ms_per_second 1)
check "the rate-limited tick source, pausing between batches, is idle (> 800 ms/s: $IDLE1)" \
  gt "$IDLE1" 800
check "busy + idle + backpressured = 1000 ms/s for every subtask" "$PYTHON" - "$TMP/m10" <<'PY'
import re, sys
sums = {}
for line in open(sys.argv[1]):
    m = re.match(r"tide_subtask_(busy|idle|backpressured)_time_ms_per_second\{(.*)\} (\S+)$", line.strip())
    if m:
        sums[m.group(2)] = sums.get(m.group(2), 0) + float(m.group(3))
sys.exit(not (sums and all(abs(v - 1000) < 1 for v in sums.values())))
PY
WM=$(value "$TMP/m10" tide_subtask_current_output_watermark_ms 1)
check "the watermark of records stamped now - 5 s lags 5 s (within 1 s)" "$PYTHON" -c "
import sys
before, after, wm = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sys.exit(not (before - wm > 4000 and after - wm < 6000))" $T "$WM"
check "GET /jobs/ID/vertices/2: read-records = the file's lines, idle > 800 ms/s" "$PYTHON" - "$ADDR" "$ID" "$LINES" <<'PY'
import json, sys, urllib.request
addr, jid, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
v = json.load(urllib.request.urlopen(f"http://{addr}/jobs/{jid}/vertices/2", timeout=10))
m = [s["metrics"] for s in v["subtasks"]]
ok = sum(x["read-records"] for x in m) == lines and all(x["idle-time-ms-per-second"] > 800 for x in m)
sys.exit(not ok)
PY
grep -v '^tide_job_uptime' "$TMP/m10" | sed 's/job=[0-9a-f]*,\{0,1\}//; s/} .*/}/' | sort >"$TMP/series10"
cancel

run_metrics_job k100 100
scrape "$TMP/m100" >/dev/null
grep -v '^tide_job_uptime' "$TMP/m100" | sed 's/job=[0-9a-f]*,\{0,1\}//; s/} .*/}/' | sort >"$TMP/series100"
check_str "10x the keys: as many series" "$(wc -l <"$TMP/series10")" "$(wc -l <"$TMP/series100")"
check_eq "  and the same ones" "$TMP/series10" "$TMP/series100"
cancel

# ---- --no-metrics: no time or byte accounting, the record counts stay -------------
run_metrics_job off 10 --no-metrics
check_str "--no-metrics: records into the keyed task = the file's lines" "$LINES" \
  "$(value "$TMP/off" tide_subtask_records_in_total 2)"
check_not_contains "  no busy/idle/backpressured time" "$TMP/off" "_time_ms_per_second"
check_not_contains "  no byte counts" "$TMP/off" "bytes_"
cancel

# ---- a slow map (sleeping 400 us a record) behind two fast tasks, with checkpoints --
start_tide bp run tests/e2e/backpressure_job.lua --checkpoint-dir "$TMP/ck" \
  --checkpoint-interval 300ms -- 100000 400 "$TMP/bp" sleep
wait_completed "$TMP/ck/backpressure" 2 400
scrape "$TMP/bp1" >/dev/null
sleep 1.2
scrape "$TMP/bp2" >/dev/null
BP=$(value "$TMP/bp2" tide_subtask_backpressured_time_ms_per_second 1)
BUSY=$(value "$TMP/bp2" tide_subtask_busy_time_ms_per_second 2)
check "the task before the slow map is backpressured (> 500 ms/s: $BP)" \
  gt "$BP" 500
check "the slow map is busy (> 500 ms/s: $BUSY)" \
  gt "$BUSY" 500
LAST=$(value "$TMP/bp2" tide_job_last_checkpoint_id -)
check "the last checkpoint ($LAST) is a completed one on disk" test -f "$TMP/ck/backpressure/chk-$LAST/_metadata"
check "completed checkpoints counted: at least 2" test "$(value "$TMP/bp2" tide_job_checkpoints_completed_total -)" -ge 2
# the slow map's input channel holds at least one full 32 KiB buffer of
# 100-byte records (>= 300) ahead of each barrier, 400 us each: its barrier
# comes > 120 ms after the trigger
DELAY=$(value "$TMP/bp2" tide_subtask_last_checkpoint_start_delay_ms 2)
check "the slow map's start delay in the last checkpoint > 100 ms ($DELAY)" \
  gt "$DELAY" 100
check_str "the subtasks' checkpointed sizes sum to the last checkpoint's size" \
  "$(value "$TMP/bp2" tide_job_last_checkpoint_size_bytes -)" \
  "$(value "$TMP/bp2" tide_subtask_checkpointed_state_size_bytes -)"
check_str "  which is the bytes of its state files on disk (wc -c)" \
  "$(cat "$TMP/ck/backpressure/chk-$LAST/"*.state | wc -c | tr -d ' ')" \
  "$(value "$TMP/bp2" tide_subtask_checkpointed_state_size_bytes -)"
check "every subtask has alignment, sync and async figures of the last checkpoint" "$PYTHON" - "$TMP/bp2" <<'PY'
import re, sys
seen = {}
for line in open(sys.argv[1]):
    m = re.match(r"tide_subtask_last_checkpoint_(alignment|sync|async|start_delay)_ms\{(.*)\} (\S+)$", line.strip())
    if m and float(m.group(3)) >= 0:
        seen.setdefault(m.group(2), set()).add(m.group(1))
sys.exit(not (len(seen) == 5 and all(len(v) == 4 for v in seen.values())))
PY
check "GET /jobs/ID/checkpoints: every completed checkpoint lists its 5 subtasks, sizes summing to its state_size; the newest: the map's start delay > 100 ms" \
  "$PYTHON" - "$ADDR" "$ID" <<'PY'
import json, sys, urllib.request
addr, jid = sys.argv[1:3]
h = json.load(urllib.request.urlopen(f"http://{addr}/jobs/{jid}/checkpoints", timeout=10))["history"]
done = [c for c in h if c["status"] == "COMPLETED"]
ok = bool(done)
for c in done:
    subs = c["subtasks"]
    ok = ok and len(subs) == 5 and sum(s["state_size"] for s in subs) == c["state_size"]
    ok = ok and all(s["acknowledged"] and set(s["checkpoint"]) == {"sync", "async"} for s in subs)
ok = ok and [s for s in done[0]["subtasks"] if s["task"] == 2][0]["start_delay"] > 100
sys.exit(not ok)
PY
cancel
# ---- late records dropped (tests/e2e/late_input.py counts them) -------------------
LATE=$("$PYTHON" tests/e2e/late_input.py "$TMP/late.csv")
check "the oracle found late rows ($LATE)" test "${LATE:-0}" -gt 0
ROWS=$(($(wc -l <"$TMP/late.csv") - 1))
# run_late NAME [MODE]: the late job until its window task took every row;
# the last scrape in $TMP/NAME
run_late() {
  rm -f "$TMP/late-flag"
  start_tide "$1" run tests/e2e/late_job.lua -- "$TMP/late.csv" "$TMP/late-flag" ${2:-}
  # (and until both window subtasks took the final watermark, which comes
  # after the last rows' batch and its late count)
  scrape "$TMP/$1" records 1 "$ROWS" final_wm 1 2 >/dev/null 2>&1
}
end_late() {
  touch "$TMP/late-flag"
  wait_tide "$1"
  check_rc "  $1: the job ends (exit 0)" 0
}
run_late late
check_str "late records dropped by the window task = the Python count" "$LATE" \
  "$(value "$TMP/late" tide_operator_late_records_dropped_total 1)"
check_str "  none by the source task" 0 "$(value "$TMP/late" tide_operator_late_records_dropped_total 0)"
check "  one series per subtask of each task (3)" test \
  "$(grep -c '^tide_operator_late_records_dropped_total{' "$TMP/late")" -eq 3
check "GET /jobs/ID/vertices/1: late-records-dropped sums to the Python count" "$PYTHON" - "$ADDR" "$ID" "$LATE" <<'PY'
import json, sys, urllib.request
addr, jid, late = sys.argv[1], sys.argv[2], int(sys.argv[3])
v = json.load(urllib.request.urlopen(f"http://{addr}/jobs/{jid}/vertices/1", timeout=10))
sys.exit(not sum(s["metrics"]["late-records-dropped"] for s in v["subtasks"]) == late)
PY
check_contains "  and the time figures are there (metrics on)" "$TMP/late" "busy_time_ms_per_second"
end_late late

run_late lateside side
check_str "late rows sent to a late side output are not counted as dropped" 0 \
  "$(value "$TMP/lateside" tide_operator_late_records_dropped_total -)"
check_str "  the side output's task took them all" "$LATE" \
  "$(value "$TMP/lateside" tide_subtask_records_in_total 2)"
end_late lateside

# ---- env{metrics = false}: as --no-metrics ----------------------------------------
run_late lateoff off
check_str "env{metrics = false}: the late count stays" "$LATE" \
  "$(value "$TMP/lateoff" tide_operator_late_records_dropped_total -)"
check_not_contains "  no busy/idle/backpressured time" "$TMP/lateoff" "_time_ms_per_second"
check_not_contains "  no byte counts" "$TMP/lateoff" "bytes_"
end_late lateoff

# ---- the exception history: a job failing at records 100 and 200 ------------------
seq 1 300 >"$TMP/nums"
mkdir "$TMP/ex"
start_tide ex run tests/e2e/exceptions_job.lua -- "$TMP/nums" "$TMP/ex"
_i=0
while [ ! -f "$TMP/ex/2" ] && [ "$_i" -lt 200 ]; do sleep 0.1; _i=$((_i + 1)); done
check "GET /jobs/ID/exceptions: both failures, newest first, with task, subtask, file:line and uid" \
  "$PYTHON" - "$ADDR" "$ID" "$TMP/ex" <<'PY'
import json, os, sys, time, urllib.request
addr, jid, d = sys.argv[1:4]
# the second failure is in the history soon after its marker file: up to 10 s
for _ in range(100):
    body = json.load(urllib.request.urlopen(f"http://{addr}/jobs/{jid}/exceptions", timeout=10))
    ex = body["exceptions"]
    if len(ex) >= 2:
        break
    time.sleep(0.1)
def fail(why):
    sys.exit(why + ": " + json.dumps(body)[:2000])
if list(body) != ["exceptions"] or len(ex) != 2:
    fail("two exceptions expected")
for e in ex:
    if sorted(e) != ["message", "subtask", "task", "timestamp"]:
        fail("fields")
    if e["subtask"] != 0 or e["task"] != "read_text -> map -> process -> discard":
        fail("task/subtask")
    if "operator 'boom'" not in e["message"]:
        fail("the operator uid")
if "exceptions_job.lua:32: boom at 200" not in ex[0]["message"]:
    fail("newest first: boom at 200")
if "exceptions_job.lua:29: boom at 100" not in ex[1]["message"]:
    fail("then boom at 100")
# the marker files were written just before each failure: wall times agree
for e, marker in ((ex[0], "2"), (ex[1], "1")):
    if abs(e["timestamp"] - os.stat(os.path.join(d, marker)).st_mtime * 1000) > 5000:
        fail("timestamp")
if not ex[0]["timestamp"] >= ex[1]["timestamp"]:
    fail("order")
PY
touch "$TMP/ex/done"
wait_tide ex
check_rc "  the job ends (exit 0) once its third attempt ran through" 0
finish
