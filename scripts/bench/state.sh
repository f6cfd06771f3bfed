#!/bin/sh
# scripts/bench/state.sh - issue 10's heap keyed-state goal (make bench
# runs it from run.sh; alone: BUILD=build sh scripts/bench/state.sh):
#   S1 a process function counting per key with value state, heap backend,
#      p1, at 10K, 1M and 10M keys: >= 60% of a bare Lua loop doing the
#      same record building and counting (keyed_state_bare.lua)
# STATE_N records per run (default 10M; 10M keys need as many records to
# touch every key), STATE_RUNS runs per contender (default 2), rounds
# interleaved, best wall time; the job's "KEYS RECORDS" must equal the
# bare loop's.
set -u

BUILD=${BUILD:-build}
RUNS=${STATE_RUNS:-2}
N=${STATE_N:-10000000}
LUA=${LUA:-lua5.4}
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
TIDE=$BUILD/tide

. "$HERE/lib.sh"
[ -x "$TIDE" ] || die "$TIDE not found (make all)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-state.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

: >"$TMP/times"
T0=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: keyed state round $r of $RUNS" >&2
  for k in 10000 1000000 10000000; do
    timed "bare_$k" "$LUA" "$HERE/keyed_state_bare.lua" "$N" "$k"
    timed "tide_$k" "$TIDE" run "$HERE/keyed_state.lua" -p 1 -- "$N" "$k"
    [ "$(cat "$TMP/tide_$k.out")" = "$(cat "$TMP/bare_$k.out")" ] ||
      fail "tide_$k" "counted '$(cat "$TMP/tide_$k.out")', the bare loop '$(cat "$TMP/bare_$k.out")'"
  done
  r=$((r + 1))
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP/times" "$RUNS" "$N" "$((T1 - T0))" "$TMP/stat0" "$TMP/stat1" \
  "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'PY'
import os
import sys

times_file, runs, n, elapsed, stat0, stat1, hz = sys.argv[1:]
runs, n, elapsed = int(runs), int(n), int(elapsed)
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, rss = read_times(times_file)
best = {k: min(v)[0] for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}
print()
print("Keyed state (issue 10), heap backend: best of %d runs per row (wall clock of the whole process, "
      "startup included; CPU time of that run; highest peak RSS); %d records per run." % (runs, n))
print()
print("| goal | keys | contender | best wall s | CPU s | peak RSS MiB | throughput | relative |")
print("|---|---:|---|---:|---:|---:|---:|---|")
lines = []
for k in (10000, 1000000, 10000000):
    b, t = "bare_%d" % k, "tide_%d" % k
    rb, rt = n / max(best[b], 0.01), n / max(best[t], 0.01)
    print("| S1 value-state count | %d | bare Lua 5.4 loop | %.2f | %.2f | %.0f | %.2f M records/s | 100%% |" % (
        k, best[b], cpu[b], rss[b] / 1024, rb / 1e6))
    print("| S1 value-state count | %d | Tide, process + value state, p1 | %.2f | %.2f | %.0f | %.2f M records/s | %.0f%% |" % (
        k, best[t], cpu[t], rss[t] / 1024, rt / 1e6, 100 * rt / rb))
    lines.append("- S1, value-state count at %d keys >= 60%% of bare Lua: %.0f%% -> %s" % (
        k, 100 * rt / rb, "PASS" if rt >= 0.6 * rb else "MISS"))
print_verdicts("Keyed state verdicts", lines, "Keyed state benchmark wall time: %d s." % elapsed,
               stat0, stat1, hz, walls, "the keyed state runs")
PY
