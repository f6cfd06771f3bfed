#!/bin/sh
# scripts/bench/reload.sh - issue 11's savepoint and live-reload goals
# (make bench runs it from run.sh; alone: BUILD=build sh scripts/bench/reload.sh):
#   L1 a savepoint of a running job holding KEYS keys of value state (heap,
#      p1; scripts/bench/checkpoint_state.lua counting per key, endless):
#      time of `tide savepoint` and the savepoint's size on disk
#   L2 `tide reload` of that running job (same state): from the command to
#      records flowing again (the first record the new logic processes,
#      its RESUMED line) < 2 s; and to healthy (its first checkpoint)
#   L3 the baseline, Flink's way: `tide stop --savepoint`, then a new
#      `tide run --from-savepoint`: from the stop command to the first
#      record the new process processes
# RELOAD_KEYS (default 1000000), RELOAD_RUNS runs of L2/L3 (default 2);
# best and worst are printed.
set -u

BUILD=${BUILD:-build}
KEYS=${RELOAD_KEYS:-1000000}
RUNS=${RELOAD_RUNS:-2}
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
TIDE=$BUILD/tide
JOB=$HERE/checkpoint_state.lua

. "$HERE/lib.sh"
[ -x "$TIDE" ] || die "$TIDE not found (make all)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-reload.XXXXXX") || die "mktemp failed"
XDG_RUNTIME_DIR=$TMP/run
export XDG_RUNTIME_DIR
mkdir -m 700 "$XDG_RUNTIME_DIR"
PIDS=
trap 'for p in $PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

# wait_line FILE PATTERN [SECONDS]: wait until a line of FILE matches; the
# line on stdout.
wait_line() {
  _i=0
  while [ "$_i" -lt "$((${3:-300} * 20))" ]; do
    _l=$(grep -m 1 -E "$2" "$1" 2>/dev/null) && { echo "$_l"; return 0; }
    sleep 0.05
    _i=$((_i + 1))
  done
  echo "bench: no line matching '$2' in $1 after ${3:-300} s" >&2
  tail -n 20 "$1" >&2
  exit 1
}

# start NAME ARGS...: tide run of the job in the background; ID set
start() {
  _n=$1
  shift
  "$TIDE" run "$JOB" -p 1 --checkpoint-dir "$TMP/ck" --checkpoint-interval 1s "$@" -- 0 "$KEYS" \
    >"$TMP/$_n.out" 2>"$TMP/$_n.err" &
  PIDS="$PIDS $!"
  ID=$(wait_line "$TMP/$_n.err" '^tide: job [0-9a-f]+, control' | sed 's/^tide: job \([0-9a-f]*\),.*/\1/')
}

: >"$TMP/results"
T0=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
echo "bench: reload: filling $KEYS keys" >&2
start job
wait_line "$TMP/job.err" '^ALLKEYS ' >/dev/null

# L1: a savepoint of the running job
t=$(now_ms)
"$TIDE" savepoint "$ID" "$TMP/sps" >"$TMP/sp.out" 2>"$TMP/sp.err" || die "tide savepoint failed: $(cat "$TMP/sp.err")"
echo "L1 $(($(now_ms) - t)) $(du -sb "$(cat "$TMP/sp.out")" | cut -f1)" >>"$TMP/results"

# L2: live reloads
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: reload round $r of $RUNS" >&2
  before=$(grep -c '^RESUMED ' "$TMP/job.err")
  t=$(now_ms)
  "$TIDE" reload "$ID" "$JOB" >"$TMP/reload.out" 2>"$TMP/reload.err" ||
    die "tide reload failed: $(cat "$TMP/reload.err")"
  done_ms=$(($(now_ms) - t))
  resumed=$(grep '^RESUMED ' "$TMP/job.err" | sed -n "$((before + 1))p")
  [ -n "$resumed" ] || fail reload "no RESUMED line after the reload"
  set -- $resumed
  [ "$5" = "$6" ] || fail reload "restored count $5 of key $4, expected $6"
  echo "L2 $(($2 - t)) $done_ms" >>"$TMP/results"
  r=$((r + 1))
done

# L3: stop with a savepoint, then a new process from it
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: stop + restore round $r of $RUNS" >&2
  t=$(now_ms)
  "$TIDE" stop "$ID" --savepoint "$TMP/sps" >"$TMP/stop.out" 2>"$TMP/stop.err" ||
    die "tide stop failed: $(cat "$TMP/stop.err")"
  start "job$r" --from-savepoint "$(cat "$TMP/stop.out")"
  resumed=$(wait_line "$TMP/job$r.err" '^RESUMED ')
  set -- $resumed
  [ "$5" = "$6" ] || fail restore "restored count $5 of key $4, expected $6"
  echo "L3 $(($2 - t))" >>"$TMP/results"
  r=$((r + 1))
done
"$TIDE" cancel "$ID" >/dev/null 2>&1
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP/results" "$KEYS" "$((T1 - T0))" "$TMP/stat0" "$TMP/stat1" \
  "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'PY'
import os
import sys

results, keys, elapsed, stat0, stat1, hz = sys.argv[1:]
keys, elapsed = int(keys), int(elapsed)
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts

rows = {}
for line in open(results):
    f = line.split()
    rows.setdefault(f[0], []).append([int(x) for x in f[1:]])
sp_ms, sp_bytes = rows["L1"][0]
flow = sorted(r[0] for r in rows["L2"])
healthy = sorted(r[1] for r in rows["L2"])
base = sorted(r[0] for r in rows["L3"])
print()
print("Savepoints and live reload (issue 11): a job counting per key with value state over %d keys "
      "(heap, p1, checkpoints every 1 s), running without end; %d runs of L2 and L3." % (keys, len(flow)))
print()
print("| goal | what | best | worst |")
print("|---|---|---:|---:|")
print("| L1 savepoint | `tide savepoint` of the running job, command to path printed | %d ms | |" % sp_ms)
print("| L1 savepoint | its size on disk | %.1f MB | |" % (sp_bytes / 1e6))
print("| L2 live reload | `tide reload`: command to records flowing (first record of the new logic) | %d ms | %d ms |" % (flow[0], flow[-1]))
print("| L2 live reload | `tide reload`: command to healthy (the new logic's first checkpoint) | %d ms | %d ms |" % (healthy[0], healthy[-1]))
print("| L3 baseline | `tide stop --savepoint` + `tide run --from-savepoint`: command to first record | %d ms | %d ms |" % (base[0], base[-1]))
lines = ["- L2, reload of a running job with %d keys, command to records flowing < 2 s: %d ms -> %s" % (
    keys, flow[-1], "PASS" if flow[-1] < 2000 else "MISS")]
print_verdicts("Reload verdicts", lines, "Reload benchmark wall time: %d s." % elapsed,
               stat0, stat1, hz, {}, "the reload runs")
PY
