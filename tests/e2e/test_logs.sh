#!/bin/sh
# tests/e2e/test_logs.sh - tide run's log (core/log.h): --log-level
# filters by level (error < warn < info < debug), --log-format json writes
# one JSON object a line (parsed by Python's json) naming the level,
# component, job and message; text keeps the lines Tide always wrote; bad
# values are usage errors. The job warns once: read_csv skips one bad row
# (row 3 of the file below has one field of two). On a pty: the progress
# line, with a file source its share of the file's bytes (wc -c) growing
# to 100% and an ETA.
. tests/e2e/lib.sh

printf 'a,b\n1,2\n3\n5,6\n' >"$TMP/in.csv"
cat >"$TMP/job.lua" <<'LUA'
local tide = require "tide"
local env = tide.env{}
env:read_csv(arg[1], { header = true, on_error = "skip" }):uid("rows")
  :map(function(r) return r.a end):uid("a")
  :write_text(arg[2]):uid("out")
env:execute("logs")
LUA
WARN="read_csv (uid 'rows', subtask 1/1): skipped 1 bad row of $TMP/in.csv, first at $TMP/in.csv:3: expected 2 fields, got 1"

run_tide "$TMP/text" run "$TMP/job.lua" -- "$TMP/in.csv" "$TMP/o1"
check_rc "text (default): exit 0" 0
check_match "  the control line as always" "$TMP/text.err" "^tide: job [0-9a-f]{16}, control at http://"
check_contains "  the warning as always" "$TMP/text.err" "tide: warning: $WARN"
check_str "  two lines" 2 "$(wc -l <"$TMP/text.err")"

run_tide "$TMP/err" run "$TMP/job.lua" --log-level error -- "$TMP/in.csv" "$TMP/o2"
check_rc "--log-level error: exit 0" 0
check_empty "  no info or warn line" "$TMP/err.err"

run_tide "$TMP/warn" run "$TMP/job.lua" --log-level warn -- "$TMP/in.csv" "$TMP/o3"
check_str "--log-level warn: the warning only" "tide: warning: $WARN" "$(cat "$TMP/warn.err")"

run_tide "$TMP/json" run "$TMP/job.lua" --log-format json --log-level debug -- "$TMP/in.csv" "$TMP/o4"
check_rc "--log-format json: exit 0" 0
check "  every line is a JSON object with ts, level, component, job, message" "$PYTHON" - "$TMP/json.err" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
ok = lines and all(isinstance(o, dict) and isinstance(o.get("ts"), int) and
                   o.get("level") in ("error", "warn", "info", "debug") and
                   isinstance(o.get("component"), str) and isinstance(o.get("job"), str) and
                   len(o["job"]) == 16 and isinstance(o.get("message"), str) for o in objs)
sys.exit(not ok)
PY
check_str "  the levels and messages (job id and address aside)" \
  "info:job ID, control at ADDR|warn:$WARN" \
  "$("$PYTHON" -c "
import json, re, sys
out = []
for l in open(sys.argv[1]):
    o = json.loads(l)
    m = re.sub(r'http://\S+', 'ADDR', o['message'].replace(o['job'], 'ID'))
    out.append(o['level'] + ':' + m)
print('|'.join(out))" "$TMP/json.err")"

# the exit summary: with --summary, or when stderr is a terminal (a pty
# here) unless --quiet; the counts by hand: 3 data rows, 1 skipped
run_tide "$TMP/sum" run "$TMP/job.lua" --summary -- "$TMP/in.csv" "$TMP/o7"
check_match "--summary: the summary line" "$TMP/sum.err" "^tide: summary of job 'logs': finished after [0-9]+ ms, 0 restarts$"
check_contains "  records per task: 2 rows read" "$TMP/sum.err" \
  "tide:   task 1 (read_csv -> map -> write_text): 2 records read, 0 in, 0 out"
check_contains "  checkpoints" "$TMP/sum.err" "tide:   checkpoints completed: 0"
# on_tty OUT ARGS...: run tide with stderr on a pseudo-terminal, its
# output in OUT
on_tty() {
  "$PYTHON" - "$@" <<'PY'
import os, pty, subprocess, sys
out = sys.argv[1]
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
p.wait()
open(out, "wb").write(data.replace(b"\r\n", b"\n"))
PY
}
on_tty "$TMP/tty.err" "$TIDE" run "$TMP/job.lua" -- "$TMP/in.csv" "$TMP/o8"
check_contains "stderr a terminal: the summary" "$TMP/tty.err" "tide:   task 1 (read_csv -> map -> write_text): 2 records read"
on_tty "$TMP/quiet.err" "$TIDE" run "$TMP/job.lua" --quiet -- "$TMP/in.csv" "$TMP/o9"
check_not_contains "  --quiet: none" "$TMP/quiet.err" "summary of job"
check_contains "  (but the warning)" "$TMP/quiet.err" "tide: warning: $WARN"

# the progress line on a terminal: a job reading 300 records at 200/s
# (1.5 s) shows the records read as its status line, then clears it
cat >"$TMP/slow.lua" <<'LUA'
local tide = require "tide"
local env = tide.env{}
env:generate(function(i) return i end, 300, { rate_limit = 200 }):uid("n")
  :map(function(x) return x end):uid("m"):discard()
env:execute("slow")
LUA
on_tty "$TMP/slow.err" "$TIDE" run "$TMP/slow.lua"
check_match "stderr a terminal: a progress line (records read, records/s, time)" "$TMP/slow.err" \
  "tide: [0-9]+ records read, [0-9]+ records/s, [0-9]+ s"
check "  ending cleared (the last bytes erase the line)" "$PYTHON" -c "
import sys; sys.exit(not open(sys.argv[1], 'rb').read().endswith(b'\\r\\x1b[K'))" "$TMP/slow.err"
on_tty "$TMP/slowq.err" "$TIDE" run "$TMP/slow.lua" --quiet
check_not_contains "  --quiet: no progress line" "$TMP/slowq.err" "records/s"
run_tide "$TMP/slown" run "$TMP/slow.lua"
check_not_contains "  stderr not a terminal: none" "$TMP/slown.err" "records/s"

# a file source read at 300 lines/s (600 lines: 2 s), held 1.2 s after its
# end: the progress line gives the share of the file's bytes read, growing
# to 100%, and an ETA while it reads
seq 1 600 >"$TMP/lines.txt"
cat >"$TMP/file.lua" <<'LUA'
local tide = require "tide"
local core = require "tide.core"
local env = tide.env{ parallelism = 1 }
env:read_text(arg[1], { rate_limit = 300 }):uid("lines")
  :process{ on_record = function() end, close = function() core.sleep_ms(1200) end }:uid("hold")
  :discard()
env:execute("progress")
LUA
on_tty "$TMP/file.err" "$TIDE" run "$TMP/file.lua" -- "$TMP/lines.txt"
check "a file source: a percentage of its $(wc -c <"$TMP/lines.txt" | tr -d ' ') bytes that grows and ends at 100%" \
  "$PYTHON" - "$TMP/file.err" "$(wc -c <"$TMP/lines.txt")" <<'PY'
import re, sys
text = open(sys.argv[1], "rb").read().decode()
size = int(sys.argv[2])
got = [(int(p), float(t), u) for p, t, u in re.findall(r"records/s, \d+ s, (\d+)% of ([0-9.]+) (kB|MB)", text)]
pcts = [g[0] for g in got]
ok = (len(set(pcts)) >= 2 and pcts == sorted(pcts) and pcts[-1] == 100
      and all(abs(t * (1e3 if u == "kB" else 1e6) - size) <= 50 for _, t, u in got))
sys.exit(not ok)
PY
check_match "  with an ETA while it reads" "$TMP/file.err" "% of [0-9.]+ kB, ETA [0-9]+ s"

run_tide "$TMP/bad" run "$TMP/job.lua" --log-level loud -- "$TMP/in.csv" "$TMP/o5"
check_rc "--log-level loud: exit 2" 2
check_contains "  says which levels" "$TMP/bad.err" "--log-level needs error, warn, info or debug, not 'loud'"
run_tide "$TMP/badf" run "$TMP/job.lua" --log-format xml -- "$TMP/in.csv" "$TMP/o6"
check_rc "--log-format xml: exit 2" 2
check_contains "  says which formats" "$TMP/badf.err" "--log-format needs text or json, not 'xml'"
finish
