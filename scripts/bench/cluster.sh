#!/bin/sh
# scripts/bench/cluster.sh - the cluster issue's goals (docs/CLUSTER.md):
# make bench runs it from run.sh; alone:
#   BUILD=build DATA=../shared/data sh scripts/bench/cluster.sh
# It starts a cluster on loopback (a job manager and two task managers of
# one slot each: a job at -p 2 has subtask k of every task in task manager
# k+1, so a keyed exchange sends half of each subtask's records to the
# other process) and measures the same jobs in one process (tide run -p 2)
# and on the cluster (tide run -p 2 --jobmanager), in the same run:
#   C1 keyed word count across two task managers >= 80% of the same job in
#      one process (records/s by best wall time of the job's master, start
#      and deployment included). The job is issue 9's streaming word count
#      (wordcount_stream.lua: read_text of the decompressed messages, split
#      over the subtasks, flat_map, key_by("word"), a running sum: every
#      word crosses the keyed exchange). scripts/wordcount.lua (batch mode,
#      on the .gz) runs both ways too, its results checked equal, as an
#      extra row: its keyed exchange carries one partial count per word and
#      subtask (batch pre-aggregation), its rebalance the lines.
#      CLUSTER_RUNS rounds (default 3), contenders interleaved; best and
#      median wall time; CPU time of all processes (the master's user+sys
#      from /usr/bin/time, the task managers' and the job manager's from
#      /proc/PID/stat before and after the run).
#   C2 latency of a record through a keyed exchange between task managers
#      at 50% load: p99 < 2x the buffer timeout (cluster_latency.lua, with
#      --buffer-timeout 5ms and the default 100ms, one process and the
#      cluster side by side). The rate is half of what the cluster
#      sustained in a calibration run of the same job without a rate limit
#      (the best of CLUSTER_CAL_RUNS, default 2), or CLUSTER_LAT_RATE;
#      each run lasts about CLUSTER_LAT_SECONDS (default 10).
set -u

HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
BUILD=${BUILD:-build} DATA=${DATA:-../shared/data} RUNS=${CLUSTER_RUNS:-3} LUA=${LUA:-lua5.4}
CAL_RUNS=${CLUSTER_CAL_RUNS:-2}
CAL_N=${CLUSTER_CAL_N:-2000000}
LAT_SECONDS=${CLUSTER_LAT_SECONDS:-10}
LAT_RATE=${CLUSTER_LAT_RATE:-}
TIDE=$BUILD/tide
GZ=$DATA/git-messages.txt.gz
. "$HERE/lib.sh"
for v in "$RUNS" "$CAL_RUNS" "$CAL_N" "$LAT_SECONDS" ${LAT_RATE:+"$LAT_RATE"}; do
  case $v in '' | *[!0-9]* | 0) die "CLUSTER_RUNS, CLUSTER_CAL_RUNS, CLUSTER_CAL_N, CLUSTER_LAT_SECONDS and CLUSTER_LAT_RATE must be positive integers" ;; esac
done
bench_setup cluster
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ---- the cluster ---------------------------------------------------------------
CLUSTER_PIDS=
stop_cluster() {
  for p in $CLUSTER_PIDS; do kill "$p" 2>/dev/null; done
  for p in $CLUSTER_PIDS; do wait "$p" 2>/dev/null; done
  CLUSTER_PIDS=
}
trap 'stop_cluster; rm -rf "$TMP"' EXIT
(umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n' >"$TMP/secret") || die "cannot write the secret"
"$TIDE" jobmanager --bind 127.0.0.1:0 --secret-file "$TMP/secret" >"$TMP/jm.out" 2>"$TMP/jm.err" &
CLUSTER_PIDS=$!
JM=
for _ in $(seq 100); do
  JM=$(sed -n 's/^jobmanager //p' "$TMP/jm.out")
  [ -n "$JM" ] && break
  sleep 0.05
done
[ -n "$JM" ] || die "the job manager printed no address: $(cat "$TMP/jm.err")"
for i in 1 2; do
  "$TIDE" taskmanager --jobmanager "$JM" --secret-file "$TMP/secret" --slots 1 \
    >"$TMP/tm$i.out" 2>"$TMP/tm$i.err" &
  CLUSTER_PIDS="$CLUSTER_PIDS $!"
done
registered=0
for _ in $(seq 100); do
  registered=$("$TIDE" list --jobmanager "$JM" --secret-file "$TMP/secret" 2>/dev/null |
    awk '/^TASK MANAGER/ {t = 1; next} /^$/ {t = 0} t' | grep -c .)
  [ "$registered" = 2 ] && break
  sleep 0.1
done
[ "$registered" = 2 ] || die "$registered of 2 task managers registered: $(cat "$TMP"/tm*.err)"
CLUSTER="--jobmanager $JM --secret-file $TMP/secret"

# CPU ticks (user+sys) the cluster's processes have used so far
cluster_ticks() {
  t=0
  for p in $CLUSTER_PIDS; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
# ctimed NAME CMD...: timed, and "NAME TICKS" (the cluster's CPU during the
# run) appended to $TMP/ticks
ctimed() {
  t0=$(cluster_ticks)
  timed "$@"
  echo "$1 $(($(cluster_ticks) - t0))" >>"$TMP/ticks"
}

: >"$TMP/times"
: >"$TMP/ticks"
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
T0=$(date +%s)

# ---- C1: keyed word count, one process vs two task managers ------------------
# the streaming word count's records: the bare loop's word total (%a+)
ctimed words "$LUA" "$HERE/wordcount_stream_bare.lua" "$TXT"
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: cluster round $r of $RUNS" >&2
  ctimed wcs_local "$TIDE" run "$HERE/wordcount_stream.lua" -p 2 -- "$TXT"
  # shellcheck disable=SC2086 # CLUSTER is options
  ctimed wcs_cluster "$TIDE" run "$HERE/wordcount_stream.lua" -p 2 $CLUSTER -- "$TXT"
  rm -rf "$TMP/wcb_local" "$TMP/wcb_cluster"
  ctimed wcb_local "$TIDE" run "$HERE/../wordcount.lua" -p 2 -- "$GZ" "$TMP/wcb_local" 0
  # shellcheck disable=SC2086
  ctimed wcb_cluster "$TIDE" run "$HERE/../wordcount.lua" -p 2 $CLUSTER -- "$GZ" "$TMP/wcb_cluster" 0
  tide_counts "$TMP/wcb_local" >"$TMP/wcb_counts"
  res=$(tide_counts "$TMP/wcb_cluster")
  [ "$res" = "$(cat "$TMP/wcb_counts")" ] ||
    fail wcb_cluster "'$res' (distinct, total), in one process '$(cat "$TMP/wcb_counts")'"
  r=$((r + 1))
done

# ---- C2: latency through a keyed exchange at 50% load -------------------------
# calibration: the same job without a rate limit, N records; its rate is
# the records over first creation to last arrival (start-up excluded)
span_rate() { # span_rate OUT: records/s of a cluster_latency.lua run
  awk '$1 == "span" { if (f == "" || $2 < f) f = $2; if ($3 > l) l = $3; n += $4 }
    END { if (l > f) printf "%d\n", n * 1e6 / (l - f); else print 0 }' "$1".*
}
: >"$TMP/cal"
i=1
while [ "$i" -le "$CAL_RUNS" ]; do
  echo "bench: cluster latency calibration $i of $CAL_RUNS" >&2
  rm -f "$TMP"/h_cal_*
  ctimed cal_local "$TIDE" run "$HERE/cluster_latency.lua" -p 2 -- 0 "$CAL_N" "$TMP/h_cal_local"
  # shellcheck disable=SC2086
  ctimed cal_cluster "$TIDE" run "$HERE/cluster_latency.lua" -p 2 $CLUSTER -- 0 "$CAL_N" "$TMP/h_cal_cluster"
  echo "local $(span_rate "$TMP/h_cal_local")" >>"$TMP/cal"
  echo "cluster $(span_rate "$TMP/h_cal_cluster")" >>"$TMP/cal"
  i=$((i + 1))
done
max_rate=$(awk '$1 == "cluster" && $2 > m { m = $2 } END { print m + 0 }' "$TMP/cal")
[ "$max_rate" -gt 0 ] || die "the calibration runs measured no rate"
# half the best, rounded down to a thousand
rate=${LAT_RATE:-$((max_rate / 2 / 1000 * 1000))}
[ "$rate" -gt 0 ] || rate=1000
lat_n=$((rate * LAT_SECONDS))
for bt in 5ms 100ms; do
  echo "bench: cluster latency at $rate records/s, buffer timeout $bt" >&2
  ctimed "lat_local_$bt" "$TIDE" run "$HERE/cluster_latency.lua" -p 2 --buffer-timeout "$bt" -- \
    "$rate" "$lat_n" "$TMP/h_lat_local_$bt"
  # shellcheck disable=SC2086
  ctimed "lat_cluster_$bt" "$TIDE" run "$HERE/cluster_latency.lua" -p 2 --buffer-timeout "$bt" $CLUSTER -- \
    "$rate" "$lat_n" "$TMP/h_lat_cluster_$bt"
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP" "$RUNS" "$((T1 - T0))" "$HZ" "$rate" "$max_rate" "$lat_n" "$CAL_N" "${LAT_RATE:-}" <<'PY'
import glob
import os
import statistics
import sys

tmp, runs, elapsed, hz, rate, max_rate, lat_n, cal_n, fixed_rate = sys.argv[1:]
runs, elapsed, hz, rate, max_rate, lat_n = int(runs), int(elapsed), int(hz), int(rate), int(max_rate), int(lat_n)
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, _ = read_times(os.path.join(tmp, "times"))
# the cluster's CPU during each run, in run order per row, added to the
# master's own: the CPU time of all processes
ticks = {}
for line in open(os.path.join(tmp, "ticks")):
    name, t = line.split()
    ticks.setdefault(name, []).append(int(t) / hz)
runs_of = {k: [(w, c, ticks[k][i]) for i, (w, c) in enumerate(v)] for k, v in walls.items()}
all_cpu = {k: [(w, c + t) for w, c, t in v] for k, v in runs_of.items()}
best = {k: min(v) for k, v in runs_of.items()}  # (wall, master CPU, cluster CPU) of the fastest run
median = {k: statistics.median(w for w, _, _ in v) for k, v in runs_of.items()}
words = int(open(os.path.join(tmp, "words.out")).read().split()[1])
distinct_b, words_b = (int(x) for x in open(os.path.join(tmp, "wcb_counts")).read().split())

print()
print("Cluster mode: the same job in one process (tide run -p 2) and on a cluster of two task managers "
      "with one slot each (tide run -p 2 --jobmanager; a job manager, two task managers and the job's "
      "master, four processes on this machine). Best of %d runs per row: wall clock of the job's master "
      "(start and deployment included), the median of the runs, and CPU time (user+sys) of that run: "
      "the master's, and all processes' (the task managers' and the job manager's from /proc)." % runs)
print("Streaming word count (wordcount_stream.lua): %d words, every one through the keyed exchange. "
      "Batch word count (wordcount.lua on the .gz): %d words, %d distinct, equal both ways." % (
          words, words_b, distinct_b))
print()
print("| job | contender | best wall s | median wall s | CPU s master | CPU s all processes | throughput | relative |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for job, key, n in (("streaming word count", "wcs", words), ("batch word count (extra)", "wcb", words_b)):
    loc, clu = best[key + "_local"], best[key + "_cluster"]
    for who, k, b in (("one process, -p 2", key + "_local", loc), ("2 task managers x 1 slot, -p 2", key + "_cluster", clu)):
        rel = "100% (reference)" if b is loc else "%.0f%% of one process" % (100 * loc[0] / clu[0])
        print("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f M words/s | %s |" % (
            job, who, b[0], median[k], b[1], b[1] + b[2], n / b[0] / 1e6, rel))


def hist(pattern):
    """{"local": {us: count}, "remote": {...}} and (first, last, n) over a run's files."""
    h = {"local": {}, "remote": {}}
    first, last, n = None, 0, 0
    for path in glob.glob(pattern):
        for line in open(path):
            kind, a, b, *rest = line.split()
            if kind == "span":
                if int(rest[0]) > 0:
                    first = int(a) if first is None else min(first, int(a))
                    last, n = max(last, int(b)), n + int(rest[0])
            else:
                h[kind][int(a)] = h[kind].get(int(a), 0) + int(b)
    return h, (first or 0, last, n)


def pct(h):
    """(p50, p99, max) in ms and the count of a histogram {us: count}."""
    n = sum(h.values())
    if n == 0:
        return None
    out, seen, keys = [], 0, sorted(h)
    targets = [max(1, -(-n * p // 100)) for p in (50, 99)]
    for us in keys:
        seen += h[us]
        while targets and seen >= targets[0]:
            out.append(us / 1000)
            targets.pop(0)
    return out[0], out[1], keys[-1] / 1000, n


cal = {}
for line in open(os.path.join(tmp, "cal")):
    who, r = line.split()
    cal.setdefault(who, []).append(int(r))
print()
print("Latency: cluster_latency.lua at -p 2, records stamped at creation (CLOCK_MONOTONIC, one clock on "
      "one machine) by a rate-limited generate, key_by, a process function taking now - stamp per record. "
      "Calibration without a rate limit (%s records, first creation to last arrival): the cluster "
      "sustained %s records/s (best %d), one process %s; the runs below use %d records/s%s, %d records each." % (
          cal_n,
          " / ".join("%d" % r for r in cal.get("cluster", [])), max_rate,
          " / ".join("%d" % r for r in cal.get("local", [])), rate,
          " (CLUSTER_LAT_RATE)" if fixed_rate else " (half the best)", lat_n))
print()
print("| run | buffer timeout | records | achieved rate | p50 ms | p99 ms | max ms | 2x timeout ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
verdicts = []
for bt in ("5ms", "100ms"):
    limit = 2 * int(bt[:-2])
    for who in ("local", "cluster"):
        h, (first, last, n) = hist(os.path.join(tmp, "h_lat_%s_%s.*" % (who, bt)))
        achieved = n * 1e6 / (last - first) if last > first else 0
        rows = [("one process", h["local"])] if who == "local" else [
            ("cluster, records that crossed processes", h["remote"]),
            ("cluster, records that stayed in their process", h["local"])]
        for label, hh in rows:
            p = pct(hh)
            if p is None:
                continue
            print("| %s | %s | %d | %.0f/s | %.2f | %.2f | %.2f | %d |" % (label, bt, p[3], achieved, p[0], p[1], p[2], limit))
            if label.startswith("cluster, records that crossed"):
                ok = p[1] < limit
                verdicts.append("- C2, p99 through a keyed exchange between task managers at %d records/s, "
                                "buffer timeout %s: %.2f ms (< %d ms) -> %s%s" % (
                                    rate, bt, p[1], limit, "PASS" if ok else "MISS",
                                    "" if achieved >= 0.9 * rate else
                                    " (the source fell behind: %.0f records/s achieved)" % achieved))
wl, wc = best["wcs_local"], best["wcs_cluster"]
ratio = 100 * wl[0] / wc[0]
verdicts.insert(0, "- C1, keyed (streaming) word count on 2 task managers >= 80%% of one process: %.0f%% -> %s "
                   "(best wall %.2f s vs %.2f s; by the medians %.0f%%; CPU of all processes %.2f s vs %.2f s)" % (
                       ratio, "PASS" if ratio >= 80 else "MISS", wc[0], wl[0],
                       100 * median["wcs_local"] / median["wcs_cluster"], wc[1] + wc[2], wl[1] + wl[2]))
print_verdicts("Cluster verdicts", verdicts, "Cluster benchmark wall time: %d s." % elapsed,
               os.path.join(tmp, "stat0"), os.path.join(tmp, "stat1"), hz, all_cpu, "the cluster runs")
PY
rc=$?
stop_cluster
exit "$rc"
