#!/bin/sh
# scripts/bench/modules.sh - C module benchmarks (issue 9); run.sh (make
# bench) runs it.
#
#   BUILD=build sh scripts/bench/modules.sh
#
# scripts/bench/modules.lua with the example module (make modules builds
# $BUILD/modules/streamkit.so), against hand-written C loops over the same
# MessagePack records (modules_baseline.c), measured in the same run:
# Goal M1: a chain C source -> C map -> C filter -> discard on one core
#   (--parallelism 1: one task, no Lua per record) >= 50M records/s.
# Goal M2: a C keyed count (value state and a timer per key, 1000 keys)
#   behind a hash exchange at --parallelism 2 >= 10M records/s.
# Each contender runs MOD_RUNS times (default 3), rounds interleaved; best
# wall time of the whole process (startup included). The keyed run's
# per-key counts are checked to add up to the records sent.
# Exit status: 0 whatever the verdicts; 1 when a job failed or gave a wrong
# result; 2 on a setup error.
set -u

BUILD=${BUILD:-build}
MOD_RUNS=${MOD_RUNS:-3}
BENCH_CC=${BENCH_CC:-gcc}
CHAIN_N=${CHAIN_N:-200000000}
KEYED_N=${KEYED_N:-40000000}
TIDE=$BUILD/tide
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
STREAMKIT=$BUILD/modules/streamkit.so
export STREAMKIT

. "$HERE/lib.sh"
case $MOD_RUNS in '' | *[!0-9]* | 0) die "MOD_RUNS must be a positive integer" ;; esac
[ -x "$TIDE" ] || die "$TIDE not found (run make all, or make bench)"
[ -f "$STREAMKIT" ] || die "$STREAMKIT not found (run make modules, or make bench)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
command -v python3 >/dev/null || die "python3 not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-mod.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

mkdir -p "$BUILD/bench" || die "cannot create $BUILD/bench"
"$BENCH_CC" -O2 -Wall -Wextra -Icore -o "$BUILD/bench/modules_baseline" "$HERE/modules_baseline.c" ||
  die "cannot compile $HERE/modules_baseline.c"

: >"$TMP/times"
T0=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
r=1
while [ "$r" -le "$MOD_RUNS" ]; do
  echo "bench: modules round $r of $MOD_RUNS" >&2
  timed chain_c "$BUILD/bench/modules_baseline" chain "$CHAIN_N"
  timed chain_tide "$TIDE" run "$HERE/modules.lua" -p 1 -- chain "$CHAIN_N"
  timed keyed_c "$BUILD/bench/modules_baseline" keyed "$KEYED_N"
  timed keyed_tide "$TIDE" run "$HERE/modules.lua" -p 2 -- keyed "$KEYED_N"
  kept=$(cat "$TMP/chain_c.out")
  [ "$kept" = "$((CHAIN_N / 2))" ] || fail chain_c "kept $kept records, expected $((CHAIN_N / 2))"
  total=$(awk '{ t += $2 } END { print t }' "$TMP/keyed_tide.out")
  [ "$total" = "$KEYED_N" ] || fail keyed_tide "the per-key counts add up to $total, expected $KEYED_N"
  r=$((r + 1))
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP/times" "$MOD_RUNS" "$CHAIN_N" "$KEYED_N" "$((T1 - T0))" "$TMP/stat0" "$TMP/stat1" \
  "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'PY'
import os
import sys

times_file, runs, chain_n, keyed_n, elapsed, stat0, stat1, hz = sys.argv[1:]
runs, chain_n, keyed_n, elapsed = int(runs), int(chain_n), int(keyed_n), int(elapsed)
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, rss = read_times(times_file)
best = {k: min(v)[0] for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}
n = {"chain_c": chain_n, "chain_tide": chain_n, "keyed_c": keyed_n, "keyed_tide": keyed_n}
rps = {k: n[k] / max(best[k], 0.01) for k in best}
rows = [
    ("M1 chain source->map->filter->discard", "C loop over the same MessagePack records", "chain_c", "-"),
    ("M1 chain source->map->filter->discard", "Tide C modules, --parallelism 1", "chain_tide",
     "%.0f%% of the C loop" % (100 * rps["chain_tide"] / rps["chain_c"])),
    ("M2 keyed count behind a hash exchange", "C loop, one core, hash table", "keyed_c", "-"),
    ("M2 keyed count behind a hash exchange", "Tide C modules, --parallelism 2", "keyed_tide",
     "%.0f%% of the C loop" % (100 * rps["keyed_tide"] / rps["keyed_c"])),
]
print()
print("C modules: best of %d runs per row (wall clock of the whole process, startup included; CPU time "
      "of that run; highest peak RSS). M1: %d records; M2: %d records, 1000 keys." % (runs, chain_n, keyed_n))
print()
print("| goal | contender | best wall s | CPU s | peak RSS MiB | throughput | relative |")
print("|---|---|---:|---:|---:|---:|---|")
for goal, who, key, rel in rows:
    print("| %s | %s | %.2f | %.2f | %.1f | %.1f M records/s | %s |" % (
        goal, who, best[key], cpu[key], rss[key] / 1024, rps[key] / 1e6, rel))
verdict = lambda ok: "PASS" if ok else "MISS"
print_verdicts("Module verdicts", [
    "- M1, C chain on one core >= 50M records/s: %.1f M/s -> %s" % (
        rps["chain_tide"] / 1e6, verdict(rps["chain_tide"] >= 50e6)),
    "- M2, C keyed count behind a hash exchange at p=2 >= 10M records/s: %.1f M/s -> %s" % (
        rps["keyed_tide"] / 1e6, verdict(rps["keyed_tide"] >= 10e6)),
], "Module benchmark wall time: %d s." % elapsed, stat0, stat1, hz, walls, "the module runs")
PY
