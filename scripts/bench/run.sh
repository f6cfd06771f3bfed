#!/bin/sh
# scripts/bench/run.sh - Tide's benchmarks (make bench).
#
#   BUILD=build DATA=../shared/data sh scripts/bench/run.sh
#
# Builds the C baselines into $BUILD/bench/, runs every contender RUNS times
# (default 3; rounds interleave the contenders so that a noisy moment does
# not hit one contender only), and prints markdown tables (the core goals,
# then the window goals) of the best wall time (whole process, startup
# included, /usr/bin/time), the CPU time of that run and the highest peak
# RSS over the runs, each followed by PASS/MISS verdicts and how busy the
# machine was with other work.
# docs/BENCHMARKS.md explains the rows.
# Exit status: 0 when every job ran and gave the expected result, whatever
# the verdicts (benchmarks never fail the build); 1 when a job failed or
# produced a wrong result; 2 on a setup error.
#
# Environment: BUILD, DATA, RUNS, WIN_RUNS (runs per window row, default
# 2), LUA (lua5.4), BENCH_CC (gcc), FLOW_SPIN (busy-loop iterations per
# record in goal 3's slow operator); checkpoint.sh, unaligned.sh,
# modules.sh and cluster.sh (run last) read CKPT_RUNS, UA_RUNS, UA_SECONDS,
# MOD_RUNS and CLUSTER_*.
set -u

BUILD=${BUILD:-build}
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-3}
LUA=${LUA:-lua5.4}
BENCH_CC=${BENCH_CC:-gcc}
FLOW_N=3000000
FLOW_SPIN=${FLOW_SPIN:-500}
MF_N=10000000
EXPECTED_WORDS=7015351
TIDE=$BUILD/tide
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
GZ=$DATA/git-messages.txt.gz

. "$HERE/lib.sh"
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
case $FLOW_SPIN in '' | *[!0-9]*) die "FLOW_SPIN must be a non-negative integer" ;; esac
[ -x "$TIDE" ] || die "$TIDE not found (run make all, or make bench)"
[ -r "$GZ" ] || die "$GZ not found (set DATA)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
command -v "$LUA" >/dev/null || die "$LUA not found"
command -v python3 >/dev/null || die "python3 not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

T0=$(date +%s)

# ---- C baselines ----------------------------------------------------------
mkdir -p "$BUILD/bench" || die "cannot create $BUILD/bench"
for prog in wordcount mapfilter; do
  "$BENCH_CC" -O2 -Wall -Wextra -o "$BUILD/bench/$prog" "$HERE/$prog.c" ||
    die "cannot compile $HERE/$prog.c"
done

# ---- input: decompressed once, so every contender reads the same plain file
TXT=$TMP/git-messages.txt
gzip -dc "$GZ" >"$TXT" || die "cannot decompress $GZ"

: >"$TMP/times"
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: round $r of $RUNS" >&2
  # goal 1: word count
  timed wc_c "$BUILD/bench/wordcount" "$TXT"
  timed wc_lua "$LUA" "$HERE/wordcount_bare.lua" "$TXT"
  rm -rf "$TMP/wc_p1" "$TMP/wc_p2" "$TMP/wc_gz"
  timed wc_tide_p1 "$TIDE" run "$HERE/../wordcount.lua" --parallelism 1 -- "$TXT" "$TMP/wc_p1" 0
  timed wc_tide_p2 "$TIDE" run "$HERE/../wordcount.lua" --parallelism 2 -- "$TXT" "$TMP/wc_p2" 0
  timed wc_tide_gz "$TIDE" run "$HERE/../wordcount.lua" --parallelism 1 -- "$GZ" "$TMP/wc_gz" 0
  # goal 2: map + filter
  timed mf_c "$BUILD/bench/mapfilter" "$MF_N"
  timed mf_lua "$LUA" "$HERE/mapfilter_bare.lua" "$MF_N"
  timed mf_tide "$TIDE" run "$HERE/mapfilter.lua" --parallelism 1 -- "$MF_N"
  # goal 3: flow control
  timed flow_slow "$TIDE" run "$HERE/flow.lua" --parallelism 1 -- "$FLOW_N" "$FLOW_SPIN"
  timed flow_fast "$TIDE" run "$HERE/flow.lua" --parallelism 1 -- "$FLOW_N" 0

  # check the results of this round
  read -r c_distinct c_total <"$TMP/wc_c.out"
  [ "$c_total" = "$EXPECTED_WORDS" ] ||
    echo "bench: note: the C baseline counts $c_total words, the issue says $EXPECTED_WORDS" >&2
  lua_res=$(tr '\t' ' ' <"$TMP/wc_lua.out")
  [ "$lua_res" = "$c_distinct $c_total" ] || fail wc_lua "'$lua_res', C says '$c_distinct $c_total'"
  for v in p1 p2 gz; do
    res=$(tide_counts "$TMP/wc_$v")
    [ "$res" = "$c_distinct $c_total" ] || fail "wc_tide_$v" "'$res', C says '$c_distinct $c_total'"
  done
  for v in c lua; do
    kept=$(cut -d' ' -f1 <"$TMP/mf_$v.out")
    [ "$kept" = "$((MF_N / 2))" ] || fail "mf_$v" "kept $kept records, expected $((MF_N / 2))"
  done
  r=$((r + 1))
done

T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

# ---- report -----------------------------------------------------------------
python3 - "$TMP/times" "$RUNS" "$c_distinct" "$c_total" "$MF_N" "$FLOW_N" "$FLOW_SPIN" \
  "$((T1 - T0))" "$TMP/stat0" "$TMP/stat1" "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'EOF'
import os
import sys

times_file, runs, distinct, words, mf_n, flow_n, spin, elapsed, stat0, stat1, hz = sys.argv[1:]
runs, distinct, words = int(runs), int(distinct), int(words)
mf_n, flow_n, spin, elapsed = int(mf_n), int(flow_n), int(spin), int(elapsed)

sys.path.insert(0, os.environ["BENCH_DIR"])
from load import other_load_line, read_times

walls, rss = read_times(times_file)
best = {k: min(v)[0] for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}  # CPU seconds of the fastest run
mib = {k: v / 1024 for k, v in rss.items()}

def rate(name, n):
    # /usr/bin/time resolves 0.01 s: a faster run counts as 0.01 s (a lower bound)
    return n / max(best[name], 0.01)

def fmt_rate(name, r, unit):
    return "%s%.2f M %s/s" % (">" if best[name] < 0.01 else "", r / 1e6, unit)

wps = {k: rate(k, words) for k in ("wc_c", "wc_lua", "wc_tide_p1", "wc_tide_p2", "wc_tide_gz")}
rps = {k: rate(k, mf_n) for k in ("mf_c", "mf_lua", "mf_tide")}
fps = {k: rate(k, flow_n) for k in ("flow_slow", "flow_fast")}
pct = lambda a, b: "%.0f%% of bare Lua" % (100 * a / b)

rows = [
    ("1 word count", "C (hand-written, -O2)", "wc_c", fmt_rate("wc_c", wps["wc_c"], "words"),
     "%.1fx bare Lua" % (wps["wc_c"] / wps["wc_lua"])),
    ("1 word count", "bare Lua 5.4 loop, one VM", "wc_lua", fmt_rate("wc_lua", wps["wc_lua"], "words"), "100% (reference)"),
    ("1 word count", "Tide --parallelism 1", "wc_tide_p1", fmt_rate("wc_tide_p1", wps["wc_tide_p1"], "words"),
     pct(wps["wc_tide_p1"], wps["wc_lua"])),
    ("1 word count", "Tide --parallelism 2", "wc_tide_p2", fmt_rate("wc_tide_p2", wps["wc_tide_p2"], "words"),
     "%.2fx Tide p1" % (best["wc_tide_p1"] / best["wc_tide_p2"])),
    ("1 word count (extra)", "Tide --parallelism 1, reading the .gz", "wc_tide_gz",
     fmt_rate("wc_tide_gz", wps["wc_tide_gz"], "words"), pct(wps["wc_tide_gz"], wps["wc_lua"])),
    ("2 map+filter 10M", "C loop (calls through pointers)", "mf_c", fmt_rate("mf_c", rps["mf_c"], "records"),
     "%.0fx bare Lua" % (rps["mf_c"] / rps["mf_lua"])),
    ("2 map+filter 10M", "bare Lua 5.4 loop", "mf_lua", fmt_rate("mf_lua", rps["mf_lua"], "records"), "100% (reference)"),
    ("2 map+filter 10M", "Tide --parallelism 1", "mf_tide", fmt_rate("mf_tide", rps["mf_tide"], "records"),
     pct(rps["mf_tide"], rps["mf_lua"])),
    ("3 flow control", "Tide p1, slow operator after exchange", "flow_slow",
     fmt_rate("flow_slow", fps["flow_slow"], "records"), "%.2f us/record" % (1e6 * best["flow_slow"] / flow_n)),
    ("3 flow control", "Tide p1, same job without the slow part", "flow_fast",
     fmt_rate("flow_fast", fps["flow_fast"], "records"), "%.2f us/record" % (1e6 * best["flow_fast"] / flow_n)),
]

print()
print("Best of %d runs per row: wall clock of the whole process, startup included, and the "
      "CPU time (user+sys) of that run; peak RSS is the highest of the %d runs." % (runs, runs))
print("Word count: %d words, %d distinct (C baseline; Lua and Tide results checked equal). "
      "Map+filter: %d records. Flow: %d records of 100 bytes, slow operator spins %d loop "
      "iterations per record." % (words, distinct, mf_n, flow_n, spin))
print()
print("| goal | contender | best wall s | CPU s | peak RSS MiB | throughput | relative |")
print("|---|---|---:|---:|---:|---:|---|")
for goal, who, key, thr, rel in rows:
    print("| %s | %s | %.2f | %.2f | %.1f | %s | %s |" % (goal, who, best[key], cpu[key], mib[key], thr, rel))
print()

def verdict(ok):
    return "PASS" if ok else "MISS"

p1_pct = 100 * wps["wc_tide_p1"] / wps["wc_lua"]
speedup = best["wc_tide_p1"] / best["wc_tide_p2"]
mf = rps["mf_tide"]
slow_rss, fast_rss = mib["flow_slow"], mib["flow_fast"]
input_mib = flow_n * 100 / 2**20
print("Verdicts:")
print("- goal 1a, Tide p1 word count >= 60%% of bare Lua: %.0f%% -> %s" % (p1_pct, verdict(p1_pct >= 60)))
ncpu = min(2, os.cpu_count() or 1)
print("- goal 1b, Tide p2/p1 speedup >= 1.6x: %.2fx -> %s (CPU s p1 %.2f, p2 %.2f; with %d cores "
      "the ideal is about %d x %.2f / %.2f = %.2fx)" % (speedup, verdict(speedup >= 1.6),
      cpu["wc_tide_p1"], cpu["wc_tide_p2"], ncpu, ncpu, cpu["wc_tide_p1"], cpu["wc_tide_p2"],
      ncpu * cpu["wc_tide_p1"] / cpu["wc_tide_p2"]))
print("- goal 2, Tide map+filter >= 5M records/s on one core: %.2f M/s -> %s" % (mf / 1e6, verdict(mf >= 5e6)))
print("- goal 3, peak RSS with a slow operator < 200 MB: %.1f MiB (without the slow part %.1f MiB; "
      "the records total %.0f MiB) -> %s" % (slow_rss, fast_rss, input_mib, verdict(slow_rss * 2**20 < 200e6)))
print()
print("Benchmark wall time: %d s." % elapsed)

# CPU time the whole machine spent during the rounds, minus the measured
# processes' own: how much other work competed with the benchmark.
line = other_load_line(stat0, stat1, hz, walls, "the runs")
if line:
    print(line)
EOF
report_rc=$?

# ---- windows: event-time window operators on one core ------------------------
# scripts/bench/windows.lua on N generated events (10,000 keys, timestamps
# out of order by < 300 ms, periodic bounded watermarks), all chained in
# one task at --parallelism 1: (a) tumbling 1 s sum, (b) sliding 10 s / 1 s
# count, (c) tumbling 1 s with a Lua aggregate, (d) session windows (1 s
# gap) count; (a) also with WIN_N_SMALL events, to show that peak RSS
# follows the open windows and not the events. Baselines for (a): a C loop
# (windows_tumbling.c) and a bare Lua loop (windows_bare.lua). WIN_RUNS
# rounds (default 2), interleaved as above; a second table and its verdicts.
WIN_RUNS=${WIN_RUNS:-2}
WIN_N=10000000
WIN_N_SMALL=2000000
case $WIN_RUNS in '' | *[!0-9]* | 0) die "WIN_RUNS must be a positive integer" ;; esac
"$BENCH_CC" -O2 -Wall -Wextra -o "$BUILD/bench/windows_tumbling" "$HERE/windows_tumbling.c" ||
  die "cannot compile $HERE/windows_tumbling.c"

# expected results: the C baseline's (window, key) count at each size;
# sessions: one per key per burst of 1,000,000 events
"$BUILD/bench/windows_tumbling" "$WIN_N_SMALL" >"$TMP/win_c_small.out" || die "windows_tumbling failed"
read -r w_small_results w_small_total _ <"$TMP/win_c_small.out"
[ "$w_small_total" = "$WIN_N_SMALL" ] || fail win_c "sum $w_small_total for $WIN_N_SMALL events"
w_sessions=$((10000 * ((WIN_N + 999999) / 1000000)))

: >"$TMP/times"
W0=$(date +%s)
head -n 1 /proc/stat >"$TMP/wstat0" 2>/dev/null || : >"$TMP/wstat0"
r=1
while [ "$r" -le "$WIN_RUNS" ]; do
  echo "bench: window round $r of $WIN_RUNS" >&2
  timed win_c "$BUILD/bench/windows_tumbling" "$WIN_N"
  timed win_lua "$LUA" "$HERE/windows_bare.lua" "$WIN_N"
  timed win_a "$TIDE" run "$HERE/windows.lua" --parallelism 1 -- tumbling_sum "$WIN_N"
  timed win_a_small "$TIDE" run "$HERE/windows.lua" --parallelism 1 -- tumbling_sum "$WIN_N_SMALL"
  timed win_b "$TIDE" run "$HERE/windows.lua" --parallelism 1 -- sliding_count "$WIN_N"
  timed win_agg "$TIDE" run "$HERE/windows.lua" --parallelism 1 -- tumbling_agg "$WIN_N"
  timed win_d "$TIDE" run "$HERE/windows.lua" --parallelism 1 -- session_count "$WIN_N"

  # every output line is "RESULTS TOTAL" (the C baseline adds its peak entries)
  read -r w_results w_total w_open <"$TMP/win_c.out"
  [ "$w_total" = "$WIN_N" ] || fail win_c "sum $w_total over all windows, expected $WIN_N"
  w_expect="$w_results $WIN_N"
  res=$(tr '\t' ' ' <"$TMP/win_lua.out")
  [ "$res" = "$w_expect" ] || fail win_lua "'$res' (results, sum), expected '$w_expect'"
  for v in win_a win_agg; do
    res=$(cat "$TMP/$v.out")
    [ "$res" = "$w_expect" ] || fail "$v" "'$res' (results, sum), expected '$w_expect'"
  done
  res=$(cat "$TMP/win_a_small.out")
  [ "$res" = "$w_small_results $WIN_N_SMALL" ] ||
    fail win_a_small "'$res' (results, sum), expected '$w_small_results $WIN_N_SMALL'"
  res=$(cut -d' ' -f2 <"$TMP/win_b.out")
  [ "$res" = "$((10 * WIN_N))" ] || fail win_b "count $res over all windows, expected $((10 * WIN_N)) (10 windows per event)"
  res=$(cat "$TMP/win_d.out")
  [ "$res" = "$w_sessions $WIN_N" ] || fail win_d "'$res' (sessions, count), expected '$w_sessions $WIN_N'"
  r=$((r + 1))
done
W1=$(date +%s)
head -n 1 /proc/stat >"$TMP/wstat1" 2>/dev/null || : >"$TMP/wstat1"
w_b_results=$(cut -d' ' -f1 <"$TMP/win_b.out")

python3 - "$TMP/times" "$WIN_RUNS" "$WIN_N" "$WIN_N_SMALL" "$w_results" "$w_open" "$w_b_results" \
  "$w_sessions" "$((W1 - W0))" "$((W1 - T0))" "$TMP/wstat0" "$TMP/wstat1" \
  "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'EOF'
import os
import sys

(times_file, runs, n, n_small, results, c_open, b_results, sessions, elapsed, total_elapsed,
 stat0, stat1, hz) = sys.argv[1:]
runs, n, n_small, results, c_open = int(runs), int(n), int(n_small), int(results), int(c_open)
b_results, sessions, elapsed, total_elapsed = int(b_results), int(sessions), int(elapsed), int(total_elapsed)

sys.path.insert(0, os.environ["BENCH_DIR"])
from load import other_load_line, read_times

walls, rss = read_times(times_file)
best = {k: min(v)[0] for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}
mib = {k: v / 1024 for k, v in rss.items()}
events = {k: n for k in walls}
events["win_a_small"] = n_small
eps = {k: events[k] / max(best[k], 0.01) for k in walls}

def fmt(k):
    return "%s%.2f M events/s" % (">" if best[k] < 0.01 else "", eps[k] / 1e6)

lua = eps["win_lua"]
rel = lambda k: "%.0f%% of bare Lua" % (100 * eps[k] / lua)
GOALS = {"win_a": 3e6, "win_a_small": 3e6, "win_b": 2e6, "win_agg": 1e6, "win_d": 1e6}
rows = [
    ("a tumbling 1 s, sum", "C loop (hash map, -O2)", "win_c", "%.0fx bare Lua" % (eps["win_c"] / lua)),
    ("a tumbling 1 s, sum", "bare Lua 5.4 loop, one VM", "win_lua", "100% (reference)"),
    ("a tumbling 1 s, sum", "Tide p1, built-in sum", "win_a", rel("win_a")),
    ("a tumbling 1 s, sum, %dM events" % (n_small // 1000000), "Tide p1, built-in sum", "win_a_small",
     rel("win_a_small")),
    ("b sliding 10 s / 1 s, count", "Tide p1, built-in count", "win_b", rel("win_b")),
    ("c tumbling 1 s, Lua aggregate", "Tide p1, {create, add, result, merge}", "win_agg", rel("win_agg")),
    ("d session, gap 1 s, count", "Tide p1, built-in count", "win_d", rel("win_d")),
]

print()
print("Windows: best of %d runs per row (wall clock of the whole process, startup included; "
      "CPU time of that run; highest peak RSS of the %d runs)." % (runs, runs))
print("%d events (%d for the %dM row), 10000 keys, bursts of 10 s of event time at 100 events/ms "
      "with 6 s pauses, jitter 0..299 ms, bounded watermarks (300 ms) every 200 ms. Results checked: "
      "(a) and (c) %d (window, key) results summing to N, equal to the C loop's; (b) %d results "
      "counting 10 N; (d) %d sessions counting N. The C loop holds at most %d (window, key) entries "
      "at once. Bare Lua and C do case (a) only." % (n, n_small, n_small // 1000000, results, b_results,
                                                     sessions, c_open))
print()
print("| case | contender | best wall s | CPU s | peak RSS MiB | throughput | goal | relative |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for case, who, key, r in rows:
    goal = "%g M/s" % (GOALS[key] / 1e6) if key in GOALS else "-"
    print("| %s | %s | %.2f | %.2f | %.1f | %s | %s | %s |" % (case, who, best[key], cpu[key], mib[key], fmt(key),
                                                           goal, r))
print()

def verdict(ok):
    return "PASS" if ok else "MISS"

print("Window verdicts (one core):")
for label, key, goal in (("a, tumbling 1 s sum", "win_a", 3e6), ("b, sliding 10 s / 1 s count", "win_b", 2e6),
                         ("c, tumbling 1 s Lua aggregate", "win_agg", 1e6), ("d, session count", "win_d", 1e6)):
    print("- %s >= %gM events/s: %.2f M/s -> %s" % (label, goal / 1e6, eps[key] / 1e6, verdict(eps[key] >= goal)))
growth = mib["win_a"] / mib["win_a_small"]
print("- window state bounded by open windows: peak RSS %.1f MiB at %dM events, %.1f MiB at %dM "
      "(x%.2f for %dx the events; flat means within 10%%) -> %s" % (
          mib["win_a_small"], n_small // 1000000, mib["win_a"], n // 1000000, growth, n // n_small,
          verdict(growth <= 1.10)))
print()
print("Window benchmark wall time: %d s (whole make bench run: %d s)." % (elapsed, total_elapsed))

line = other_load_line(stat0, stat1, hz, walls, "the window runs")
if line:
    print(line)
EOF
wreport_rc=$?

# ---- checkpoints: scripts/bench/checkpoint.sh prints a third table ----------
BUILD=$BUILD DATA=$DATA sh "$HERE/checkpoint.sh"
ckpt_rc=$?
# ---- unaligned checkpoints under backpressure: a fourth table ---------------
BUILD=$BUILD sh "$HERE/unaligned.sh"
ua_rc=$?
# ---- issue 9: the engine on both VMs, exchanges, latency: a fifth table -----
BUILD=$BUILD DATA=$DATA sh "$HERE/engine.sh"
engine_rc=$?
# ---- C modules (issue 9): a sixth table ---------------------------------------
BUILD=$BUILD sh "$HERE/modules.sh"
mod_rc=$?
# ---- issue 10: keyed state on the heap backend: a seventh table ---------------
BUILD=$BUILD sh "$HERE/state.sh"
state_rc=$?
# ---- issue 10: keyed state on RocksDB: an eighth table -------------------------
BUILD=$BUILD sh "$HERE/rocksdb.sh"
rocks_rc=$?
# ---- issue 10: keyed state under checkpoints, resume: a ninth table ------------
BUILD=$BUILD sh "$HERE/state_ckpt.sh"
sck_rc=$?
# ---- issue 11: savepoints and live reload: a tenth table -----------------------
BUILD=$BUILD sh "$HERE/reload.sh"
reload_rc=$?
# ---- issue 14: the shuffle over the transport: a twelfth table ------------------
echo
echo "Issue 14 (the network shuffle): one exchange channel between two transport endpoints over"
echo "loopback TCP, against a plain TCP copy and the local exchange, same bytes, same run."
echo
"$BUILD/bench/shuffle" "${SHUFFLE_MB:-1024}"
shuffle_rc=$?
# ---- issue 13: metrics on vs off: an eleventh table ----------------------------
BUILD=$BUILD DATA=$DATA sh "$HERE/metrics.sh"
metrics_rc=$?
# ---- cluster mode: two task managers vs one process, latency: a thirteenth table
BUILD=$BUILD DATA=$DATA sh "$HERE/cluster.sh"
cluster_rc=$?
[ "$cluster_rc" -ne 0 ] && exit "$cluster_rc"
[ "$metrics_rc" -ne 0 ] && exit "$metrics_rc"
[ "$shuffle_rc" -ne 0 ] && exit "$shuffle_rc"
[ "$report_rc" -ne 0 ] && exit "$report_rc"
[ "$wreport_rc" -ne 0 ] && exit "$wreport_rc"
[ "$ckpt_rc" -ne 0 ] && exit "$ckpt_rc"
[ "$ua_rc" -ne 0 ] && exit "$ua_rc"
[ "$engine_rc" -ne 0 ] && exit "$engine_rc"
[ "$mod_rc" -ne 0 ] && exit "$mod_rc"
[ "$state_rc" -ne 0 ] && exit "$state_rc"
[ "$reload_rc" -ne 0 ] && exit "$reload_rc"
[ "$sck_rc" -ne 0 ] && exit "$sck_rc"
exit "$rocks_rc"
