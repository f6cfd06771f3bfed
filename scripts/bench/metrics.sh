#!/bin/sh
# scripts/bench/metrics.sh - issue 13's goal: the cost of the metrics
# (docs/METRICS.md). make bench runs it from run.sh; alone:
#   BUILD=build DATA=../shared/data sh scripts/bench/metrics.sh
# Issue 9's streaming word count (wordcount_stream.lua) with metrics on
# (the default) and off (--no-metrics), p1 and p2, beside the bare Lua 5.4
# loop (wordcount_stream_bare.lua) measured in the same run. Every
# contender runs METRICS_RUNS times (default 3), rounds interleaved; the
# report prints the best wall time and the CPU time (user+sys) of that run
# (the machine is shared: CPU time is the steadier figure), and PASS/MISS:
#   M1 throughput with metrics on within 2% of metrics off (p1 and p2,
#      by best wall time)
set -u

HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
BUILD=${BUILD:-build} DATA=${DATA:-../shared/data} RUNS=${METRICS_RUNS:-3} LUA=${LUA:-lua5.4}
TIDE=$BUILD/tide
. "$HERE/lib.sh"
bench_setup metrics

: >"$TMP/times"
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
T0=$(date +%s)
r=1
while [ "$r" -le "$RUNS" ]; do
  timed wc_bare "$LUA" "$HERE/wordcount_stream_bare.lua" "$TXT"
  for p in 1 2; do
    timed "wc_on_p$p" "$TIDE" run "$HERE/wordcount_stream.lua" -p "$p" -- "$TXT"
    timed "wc_off_p$p" "$TIDE" run "$HERE/wordcount_stream.lua" --no-metrics -p "$p" -- "$TXT"
  done
  r=$((r + 1))
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP" "$RUNS" "$((T1 - T0))" "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'PY'
import os
import sys

tmp, runs, elapsed, hz = sys.argv[1:]
runs, elapsed = int(runs), int(elapsed)
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, _ = read_times(os.path.join(tmp, "times"))
best = {k: min(v) for k, v in walls.items()}  # (wall, cpu) of the fastest run
words = int(open(os.path.join(tmp, "wc_bare.out")).read().split()[1])

print()
print("Issue 13 (metrics on vs off): streaming word count, best of %d runs per row (wall clock "
      "of the whole process), the CPU time (user+sys) of that run. %d words." % (runs, words))
print()
print("| contender | best wall s | CPU s | throughput | relative |")
print("|---|---:|---:|---:|---|")
rows = [("bare Lua 5.4 loop", "wc_bare", "100% (reference)")]
for p in (1, 2):
    rows.append(("Tide p%d, --no-metrics" % p, "wc_off_p%d" % p,
                 "%.0f%% of bare Lua 5.4" % (100 * best["wc_bare"][0] / best["wc_off_p%d" % p][0])))
    rows.append(("Tide p%d, metrics on" % p, "wc_on_p%d" % p,
                 "%+.1f%% wall, %+.1f%% CPU vs off" % (
                     100 * (best["wc_on_p%d" % p][0] / best["wc_off_p%d" % p][0] - 1),
                     100 * (best["wc_on_p%d" % p][1] / best["wc_off_p%d" % p][1] - 1))))
for label, key, rel in rows:
    wall, cpu = best[key]
    print("| %s | %.2f | %.2f | %.2f M words/s | %s |" % (label, wall, cpu, words / wall / 1e6, rel))
verdicts = []
for p in (1, 2):
    on, off = best["wc_on_p%d" % p][0], best["wc_off_p%d" % p][0]
    verdicts.append("- M1 p%d metrics on within 2%% of off: %s (%.2f s vs %.2f s)" % (
        p, "PASS" if on <= off * 1.02 else "MISS", on, off))
print_verdicts("Verdicts", verdicts, "Wall time of this benchmark: %d s" % elapsed,
               os.path.join(tmp, "stat0"), os.path.join(tmp, "stat1"), hz, walls,
               "the metrics benchmark")
PY
