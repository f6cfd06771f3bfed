#!/bin/sh
# scripts/bench/unaligned.sh - unaligned checkpoints under backpressure
# (issue 8); run.sh (make bench) runs it last.
#
#   BUILD=build sh scripts/bench/unaligned.sh
#
# scripts/bench/backpressure.lua: generate (~100-byte strings) -> rebalance
# -> a map that busy-waits 1 ms per record -> discard, at parallelism 2 and
# 3, checkpoints every 1 s, aligned and unaligned. The map is the
# bottleneck, so every channel into it is full; an aligned barrier waits
# behind that backlog, an unaligned one overtakes it (FLIP-76).
# Goal U1: unaligned trigger-to-complete at least 5x faster than aligned
# (median over all checkpoints of UA_RUNS runs, default 1), at p=2 and p=3.
# Durations come from TIDE_CHECKPOINT_STATS ("checkpoint durations");
# checkpoints triggered after a source had finished are left out (they wait
# for the map to drain its input whatever the mode: docs/BENCHMARKS.md).
# Each run lasts about UA_SECONDS (default 20) s of map work.
# Exit status: 0 whatever the verdicts; 1 when a job failed; 2 on a setup
# error.
set -u

BUILD=${BUILD:-build}
UA_RUNS=${UA_RUNS:-1}
UA_SECONDS=${UA_SECONDS:-20}
INTERVAL=1s
TIDE=$BUILD/tide
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR

. "$HERE/lib.sh"
case $UA_RUNS in '' | *[!0-9]* | 0) die "UA_RUNS must be a positive integer" ;; esac
case $UA_SECONDS in '' | *[!0-9]* | 0) die "UA_SECONDS must be a positive integer" ;; esac
[ -x "$TIDE" ] || die "$TIDE not found (run make all, or make bench)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
command -v python3 >/dev/null || die "python3 not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-ua.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

: >"$TMP/times"
: >"$TMP/stats"
: >"$TMP/durations"
T0=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
r=1
while [ "$r" -le "$UA_RUNS" ]; do
  echo "bench: backpressure round $r of $UA_RUNS" >&2
  for p in 2 3; do
    n=$((p * UA_SECONDS * 1000)) # 1 ms per record, p map subtasks
    for mode in aligned unaligned; do
      name=${mode}_p$p
      rm -rf "$TMP/ck"
      timed "$name" env TIDE_CHECKPOINT_STATS=1 "$TIDE" run "$HERE/backpressure.lua" -p "$p" \
        --checkpoint-dir "$TMP/ck" --checkpoint-interval "$INTERVAL" -- "$n" "$mode"
      line=$(grep '^tide: checkpoint durations:' "$TMP/$name.err") ||
        fail "$name" "no checkpoint durations line (TIDE_CHECKPOINT_STATS)"
      echo "$name $line" >>"$TMP/durations"
    done
  done
  r=$((r + 1))
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP/times" "$TMP/durations" "$TMP/stats" "$UA_RUNS" "$UA_SECONDS" "$((T1 - T0))" \
  "$TMP/stat0" "$TMP/stat1" "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'EOF'
import os
import re
import statistics
import sys

sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

times_file, durations_file, stats_file, runs, seconds, elapsed, stat0, stat1, hz = sys.argv[1:]
walls, _ = read_times(times_file)

# "NAME tide: checkpoint durations: 812 790 ms; triggered after a subtask finished: 2405 ms"
steady, late = {}, {}
for line in open(durations_file):
    name, rest = line.split(" ", 1)
    m = re.search(r"checkpoint durations:([0-9 ]*) ms; triggered after a subtask finished:([0-9 ]*) ms", rest)
    if not m:
        sys.exit("bench: cannot parse: " + line.strip())
    steady.setdefault(name, []).extend(int(x) for x in m.group(1).split())
    late.setdefault(name, []).extend(int(x) for x in m.group(2).split())

pauses = {}
PAUSE = re.compile(r"task pause avg ([0-9.]+) ms, max ([0-9.]+) ms over (\d+) snapshots")
for line in open(stats_file):
    name, rest = line.split(" ", 1)
    m = PAUSE.search(rest)
    if m:
        pauses.setdefault(name, []).append((float(m.group(1)), float(m.group(2)), int(m.group(3))))

def med(xs):
    return statistics.median(xs) if xs else float("nan")

def verdict(ok):
    return "PASS" if ok else "MISS"

print()
print("Unaligned checkpoints under backpressure: scripts/bench/backpressure.lua (generate -> rebalance -> "
      "map busy-waiting 1 ms per record -> discard), %s run(s) of about %s s per row, checkpoints every 1 s, "
      "TIDE_CHECKPOINT_STATS=1. Trigger-to-complete over the checkpoints triggered while every source "
      "still ran (n); the ones triggered after a source finished are listed apart." % (runs, seconds))
print()
print("| p | mode | n | trigger to complete median ms | max ms | after a source finished ms | "
      "task pause avg / max ms | wall s |")
print("|---:|---|---:|---:|---:|---|---:|---:|")
verdicts = []
for p in (2, 3):
    for mode in ("aligned", "unaligned"):
        k = "%s_p%d" % (mode, p)
        d = steady.get(k, [])
        ps = pauses.get(k, [])
        snaps = sum(x[2] for x in ps)
        pavg = sum(x[0] * x[2] for x in ps) / snaps if snaps else 0.0
        pmax = max((x[1] for x in ps), default=0.0)
        print("| %d | %s | %d | %.0f | %s | %s | %.2f / %.2f | %.1f |" % (
            p, mode, len(d), med(d), max(d) if d else "-", " ".join(map(str, late.get(k, []))) or "-",
            pavg, pmax, min(w for w, _ in walls[k])))
    a, u = steady.get("aligned_p%d" % p, []), steady.get("unaligned_p%d" % p, [])
    ok = bool(a) and bool(u) and med(a) >= 5 * med(u)
    ratio = med(a) / med(u) if a and u and med(u) > 0 else float("nan")
    mratio = max(a) / max(u) if a and u and max(u) > 0 else float("nan")
    verdicts.append("- goal U1, p=%d: unaligned trigger-to-complete >= 5x faster than aligned (medians): "
                    "%.0f ms vs %.0f ms, %.1fx (maxima %.1fx) -> %s" % (
                        p, med(u), med(a), ratio, mratio, verdict(ok)))
print_verdicts("Unaligned checkpoint verdicts", verdicts,
               "Unaligned checkpoint benchmark wall time: %s s." % elapsed, stat0, stat1, hz, walls,
               "the backpressure runs")
EOF
