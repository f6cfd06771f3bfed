#!/bin/sh
# scripts/bench/checkpoint.sh - the checkpoint benchmarks (issue 4); run.sh
# (make bench) runs it last.
#
#   BUILD=build DATA=../shared/data sh scripts/bench/checkpoint.sh
#
# Goals C1a, C1b: throughput with checkpoints every second >= 95% of the
#   same run without: the word count of run.sh (scripts/wordcount.lua -p 1)
#   on git-messages.txt WC_COPIES times over, and scripts/commits_daily.lua
#   on git-commits.csv DAILY_COPIES times over (copy c shifted by c x 7806
#   days, so each copy is the real history again, later).
# Goal C2: 1M keys of keyed state (checkpoint_state.lua): time from barrier
#   injection to checkpoint complete and the task pause per checkpoint
#   (TIDE_CHECKPOINT_STATS); pause < 10 ms.
# Goal C3: recovery of 1M keys (checkpoint_recover.py): from starting
#   `tide run --resume` to the first record processed; < 2 s.
# Every contender runs CKPT_RUNS times (default 3), rounds interleaved; the
# report is a markdown table with PASS/MISS verdicts. docs/BENCHMARKS.md
# ("Checkpoints") explains the method.
# Exit status: 0 whatever the verdicts; 1 when a job failed or gave a wrong
# result; 2 on a setup error.
set -u

BUILD=${BUILD:-build}
DATA=${DATA:-../shared/data}
CKPT_RUNS=${CKPT_RUNS:-3}
WC_COPIES=2
DAILY_COPIES=20
STATE_N=10000000
KEYS=1000000
INTERVAL=1s
EXPECTED_WORDS=7015351
TIDE=$BUILD/tide
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
GZ=$DATA/git-messages.txt.gz
CSV=$DATA/git-commits.csv

. "$HERE/lib.sh"
case $CKPT_RUNS in '' | *[!0-9]* | 0) die "CKPT_RUNS must be a positive integer" ;; esac
[ -x "$TIDE" ] || die "$TIDE not found (run make all, or make bench)"
[ -r "$GZ" ] || die "$GZ not found (set DATA)"
[ -r "$CSV" ] || die "$CSV not found (set DATA)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
command -v python3 >/dev/null || die "python3 not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-ckpt.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# ---- inputs -----------------------------------------------------------------
WC_IN=$TMP/messages.txt
: >"$WC_IN"
i=0
while [ "$i" -lt "$WC_COPIES" ]; do
  gzip -dc "$GZ" >>"$WC_IN" || die "cannot decompress $GZ"
  i=$((i + 1))
done
DAILY_IN=$TMP/commits.csv
# prints the number of commits it wrote
DAILY_ROWS=$(python3 - "$CSV" "$DAILY_IN" "$DAILY_COPIES" <<'EOF'
import sys
src, dst, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
DAY = 86400000
lines = open(src).read().splitlines()
cols, rows = lines[0].split(","), [l.split(",") for l in lines[1:]]
ia, ic = cols.index("author_time_ms"), cols.index("commit_time_ms")
ts = [int(r[i]) for r in rows for i in (ia, ic)]
shift = ((max(ts) - min(ts)) // DAY + 2) * DAY  # whole days: UTC days stay aligned
with open(dst, "w") as f:
    f.write(lines[0] + "\n")
    for c in range(copies):
        for r in rows:
            r = list(r)
            r[ia], r[ic] = str(int(r[ia]) + c * shift), str(int(r[ic]) + c * shift)
            f.write(",".join(r) + "\n")
print(copies * len(rows))
EOF
) || die "cannot write $DAILY_IN"

# "ROWS COMMITS LATE CKSUM SIZE" of commits_daily's output: rows in $1 and
# the commits they count, late rows in $2, a checksum of all rows sorted.
daily_result() {
  a=$(tide_counts "$1")
  l=$(cat "$2"/part-* | wc -l)
  s=$(cat "$1"/part-* "$2"/part-* | sort | cksum)
  echo "$a $l $s"
}

CK="--checkpoint-dir $TMP/ck --checkpoint-interval $INTERVAL"
: >"$TMP/times"
: >"$TMP/stats"
: >"$TMP/allkeys"
: >"$TMP/recover"
T0=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
r=1
while [ "$r" -le "$CKPT_RUNS" ]; do
  echo "bench: checkpoint round $r of $CKPT_RUNS" >&2
  rm -rf "$TMP/ck" "$TMP/wc_off" "$TMP/wc_on"
  timed wc_off "$TIDE" run "$HERE/../wordcount.lua" --parallelism 1 -- "$WC_IN" "$TMP/wc_off" 0
  # shellcheck disable=SC2086 # $CK is three words
  timed wc_on env TIDE_CHECKPOINT_STATS=1 "$TIDE" run "$HERE/../wordcount.lua" --parallelism 1 $CK \
    -- "$WC_IN" "$TMP/wc_on" 0
  rm -rf "$TMP/ck" "$TMP/d_off" "$TMP/l_off" "$TMP/d_on" "$TMP/l_on"
  timed daily_off "$TIDE" run "$HERE/../commits_daily.lua" --parallelism 1 -- "$DAILY_IN" "$TMP/d_off" "$TMP/l_off"
  # shellcheck disable=SC2086
  timed daily_on env TIDE_CHECKPOINT_STATS=1 "$TIDE" run "$HERE/../commits_daily.lua" --parallelism 1 $CK \
    -- "$DAILY_IN" "$TMP/d_on" "$TMP/l_on"
  rm -rf "$TMP/ck"
  timed state_off "$TIDE" run "$HERE/checkpoint_state.lua" --parallelism 1 -- "$STATE_N" "$KEYS"
  start=$(date +%s%3N)
  # shellcheck disable=SC2086
  timed state_on env TIDE_CHECKPOINT_STATS=1 "$TIDE" run "$HERE/checkpoint_state.lua" --parallelism 1 $CK \
    -- "$STATE_N" "$KEYS"
  echo "$start $(sed -n 's/^ALLKEYS //p' "$TMP/state_on.err")" >>"$TMP/allkeys"
  rm -rf "$TMP/ck"
  timed recover python3 "$HERE/checkpoint_recover.py" "$TIDE" "$HERE/checkpoint_state.lua" "$TMP/ck" "$KEYS"
  cat "$TMP/recover.out" >>"$TMP/recover"

  # check the results of this round
  res_off=$(tide_counts "$TMP/wc_off")
  res_on=$(tide_counts "$TMP/wc_on")
  [ "$res_on" = "$res_off" ] || fail wc_on "'$res_on' (distinct, total), without checkpoints '$res_off'"
  [ "${res_off#* }" = "$((WC_COPIES * EXPECTED_WORDS))" ] ||
    echo "bench: note: the word count counts ${res_off#* } words, expected $((WC_COPIES * EXPECTED_WORDS))" >&2
  res_off=$(daily_result "$TMP/d_off" "$TMP/l_off")
  res_on=$(daily_result "$TMP/d_on" "$TMP/l_on")
  [ "$res_on" = "$res_off" ] || fail daily_on "'$res_on', without checkpoints '$res_off'"
  read -r d_rows d_commits d_late _ <<EOF
$res_off
EOF
  [ $((d_commits + d_late)) = "$DAILY_ROWS" ] ||
    fail daily_off "$d_commits commits in windows + $d_late late, expected $DAILY_ROWS in all"
  for v in state_off state_on; do
    res=$(cat "$TMP/$v.out")
    [ "$res" = "$KEYS $STATE_N" ] || fail "$v" "'$res' (keys, records), expected '$KEYS $STATE_N'"
  done
  for v in wc_on daily_on state_on; do
    grep -q "^$v " "$TMP/stats" || fail "$v" "no checkpoint stats line"
  done
  r=$((r + 1))
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

# ---- report -----------------------------------------------------------------
python3 - "$TMP/times" "$TMP/stats" "$TMP/allkeys" "$TMP/recover" "$CKPT_RUNS" "$WC_COPIES" \
  "$DAILY_COPIES" "$DAILY_ROWS" "$d_rows" "$STATE_N" "$KEYS" "$((T1 - T0))" \
  "$TMP/stat0" "$TMP/stat1" "$(getconf CLK_TCK 2>/dev/null || echo 100)" "$(tide_counts "$TMP/wc_off")" <<'EOF'
import os
import re
import statistics
import sys

(times_file, stats_file, allkeys_file, recover_file, runs, wc_copies, daily_copies, daily_rows,
 daily_windows, state_n, keys, elapsed, stat0, stat1, hz, wc_res) = sys.argv[1:]
runs, state_n, keys, elapsed = int(runs), int(state_n), int(keys), int(elapsed)
words = int(wc_res.split()[1])
daily_rows = int(daily_rows)

sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, _ = read_times(times_file)
best = {k: min(v)[0] for k, v in walls.items()}
median = {k: statistics.median(w for w, _ in v) for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}  # CPU s (user+sys, snapshot children included) of the fastest run

STATS = re.compile(r"completed (\d+) \(\+ final\), aborted (\d+); trigger to complete avg ([0-9.]+) ms, "
                   r"max (\d+) ms; task pause avg ([0-9.]+) ms, max ([0-9.]+) ms over (\d+) snapshots")
stats = {}
for line in open(stats_file):
    name, rest = line.split(" ", 1)
    m = STATS.search(rest)
    if m:
        c, a, tavg, tmax, pavg, pmax, snaps = m.groups()
        stats.setdefault(name, []).append((int(c), int(a), float(tavg), int(tmax), float(pavg),
                                           float(pmax), int(snaps)))

def agg(name):
    """Over all runs: checkpoints per run (min, max), aborted, trigger-to-complete
    avg (weighted) and max, pause avg (weighted) and max, snapshots."""
    s = stats.get(name, [])
    done = sum(x[0] for x in s)
    snaps = sum(x[6] for x in s)
    return {
        "runs": len(s), "cmin": min((x[0] for x in s), default=0), "cmax": max((x[0] for x in s), default=0),
        "aborted": sum(x[1] for x in s),
        "tavg": sum(x[0] * x[2] for x in s) / done if done else 0.0, "tmax": max((x[3] for x in s), default=0),
        "pavg": sum(x[6] * x[4] for x in s) / snaps if snaps else 0.0, "pmax": max((x[5] for x in s), default=0.0),
        "snaps": snaps,
    }

def verdict(ok):
    return "PASS" if ok else "MISS"

rows, verdicts = [], []

def throughput(goal_no, label, key, n, unit):
    goal = goal_no is not None
    off, on = key + "_off", key + "_on"
    ratio = best[off] / best[on]
    mratio = median[off] / median[on]
    a = agg(on)
    rows.append(("%s %s" % (goal_no or "-", label),
                 "%.2f s, %.2f M %s/s, CPU %.2f s" % (best[off], n / best[off] / 1e6, unit, cpu[off]),
                 "%.2f s, %.2f M %s/s, CPU %.2f s (%s checkpoints per run)" % (
                     best[on], n / best[on] / 1e6, unit, cpu[on],
                     a["cmin"] if a["cmin"] == a["cmax"] else "%d-%d" % (a["cmin"], a["cmax"])),
                 "%.1f%% (median of runs %.1f%%; CPU x%.2f)" % (100 * ratio, 100 * mratio, cpu[on] / cpu[off]),
                 ">= 95%" if goal else "-", verdict(ratio >= 0.95) if goal else "-"))
    if goal:
        verdicts.append("- goal %s, %s with checkpoints every 1 s >= 95%% of without: %.1f%% -> %s" % (
            goal_no, label, 100 * ratio, verdict(ratio >= 0.95)))

throughput("C1a", "word count p1, %dx git-messages" % int(wc_copies), "wc", words, "words")
throughput("C1b", "daily windows p1, %dx git-commits" % int(daily_copies), "daily", daily_rows, "commits")
throughput(None, "1M keys of value state p1, %dM records (no goal)" % (state_n // 1000000), "state", state_n,
           "records")
s = agg("state_on")
rows.append(("C2 1M keys: barrier injection to checkpoint complete", "-",
             "avg %.1f ms, max %d ms (%d checkpoints)" % (s["tavg"], s["tmax"], sum(x[0] for x in stats["state_on"])),
             "max %d ms" % s["tmax"], "-", "-"))
rows.append(("C2 1M keys: task pause per checkpoint", "-",
             "avg %.2f ms, max %.2f ms (%d snapshots)" % (s["pavg"], s["pmax"], s["snaps"]),
             "max %.2f ms" % s["pmax"], "< 10 ms", verdict(s["pmax"] < 10)))
verdicts.append("- goal C2, task pause with 1M keys < 10 ms: avg %.2f ms, max %.2f ms over %d snapshots -> %s" % (
    s["pavg"], s["pmax"], s["snaps"], verdict(s["pmax"] < 10)))

rec = [tuple(float(x) for x in l.split()) for l in open(recover_file) if l.strip()]
restore = [r[0] for r in rec]
first = [r[1] for r in rec]
state_mib = statistics.median(r[3] for r in rec) / 2**20
rows.append(("C3 recovery, 1M keys: restore (runtime's restored-in)", "-",
             "median %.0f ms (%.0f-%.0f)" % (statistics.median(restore), min(restore), max(restore)),
             "%.0f ms" % max(restore), "-", "-"))
rows.append(("C3 recovery, 1M keys: process start to first record", "-",
             "median %.0f ms (%.0f-%.0f)" % (statistics.median(first), min(first), max(first)),
             "max %.0f ms" % max(first), "< 2 s", verdict(max(first) < 2000)))
verdicts.append("- goal C3, recovery of 1M keys (%.1f MiB checkpoint) < 2 s: process start to first record "
                "at most %.0f ms of %d runs (restore %.0f ms of it at most) -> %s" % (
                    state_mib, max(first), len(first), max(restore), verdict(max(first) < 2000)))

allkeys = [int(l.split()[1]) - int(l.split()[0]) for l in open(allkeys_file) if len(l.split()) == 2]

print()
print("Checkpoints: best of %d runs per throughput row (wall clock of the whole process, startup and "
      "the final checkpoint included; CPU is user+sys of that run, snapshot children included; the ratio "
      "is throughput with / without); checkpoints every 1 s, TIDE_CHECKPOINT_STATS=1." % runs)
print("Word count: scripts/wordcount.lua on git-messages.txt %s times over (%d words; results with "
      "and without checkpoints checked equal). Daily windows: scripts/commits_daily.lua on git-commits.csv "
      "%s times over, copy c shifted by c x 7806 days (%d commits, %s daily rows; output checked equal). "
      "1M keys: checkpoint_state.lua, generate(i -> {key = i %% %d}) -> key_by -> process with a value "
      "state per key; every key had state %s after the process started, before the first checkpoint "
      "was triggered (1 s) in %d of %d runs." % (
          wc_copies, words, daily_copies, daily_rows, daily_windows, keys,
          "%.2f-%.2f s" % (min(allkeys) / 1000, max(allkeys) / 1000) if allkeys else "?",
          sum(1 for a in allkeys if a < 1000), len(allkeys)))
print()
print("| case | without checkpoints | with checkpoints | ratio / value | goal | verdict |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| %s |" % " | ".join(r))
print()
print("Checkpoint stats of the runs with checkpoints (all %d runs of each job):" % runs)
print()
print("| job | checkpoints per run | aborted | trigger to complete avg / max ms | task pause avg / max ms |")
print("|---|---:|---:|---:|---:|")
for key, label in (("wc_on", "word count"), ("daily_on", "daily windows"), ("state_on", "1M keys")):
    a = agg(key)
    print("| %s | %s | %d | %.1f / %d | %.2f / %.2f |" % (
        label, a["cmin"] if a["cmin"] == a["cmax"] else "%d-%d" % (a["cmin"], a["cmax"]), a["aborted"],
        a["tavg"], a["tmax"], a["pavg"], a["pmax"]))
print_verdicts("Checkpoint verdicts", verdicts, "Checkpoint benchmark wall time: %d s." % elapsed,
               stat0, stat1, hz, walls, "the checkpoint runs")
EOF
