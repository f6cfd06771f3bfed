#!/bin/sh
# scripts/bench/rocksdb.sh - issue 10's RocksDB goals (make bench runs it
# from run.sh; alone: BUILD=build sh scripts/bench/rocksdb.sh):
#   R1 a process function counting per key with value state over 1M keys
#      on rocksdb, p1: >= 400K records/s (baseline: the bare Lua loop of
#      keyed_state_bare.lua, same records, same counting, and the same job
#      on the heap backend; its floor: rocksdb_count.c, a C loop making the
#      backend's RocksDB calls per record, a get, and a put per batch)
#   R2 built-in count() per key over 1M keys on rocksdb: >= 1M records/s
#   R3 value state of 100-byte values over ROCKS_BIG_N distinct keys
#      (default 20M) on rocksdb: peak RSS < 1 GB
#   R4 an incremental checkpoint after touching 1% of ROCKS_INC_KEYS keys
#      (default 10M) writes < 10% of the bytes of a full one
#   W  event-time tumbling windows (windows.lua tumbling_sum: 1 s windows
#      over 10K keys, ROCKS_WIN_N events, default 500K) on rocksdb with the
#      timers stored in RocksDB (the default) and kept on the heap
#      (timer_service = "heap"), beside the heap backend's fast path
#   T  the timer services alone (timers.lua): ROCKS_TIMERS event-time
#      timers (default 1M) over 100K keys registered, then fired, heap
#      against RocksDB: rates and peak RSS (the RocksDB service's memory
#      does not grow with the timers)
# ROCKS_N records for R1/R2 (default 2M), ROCKS_RUNS runs (default 1).
set -u

BUILD=${BUILD:-build}
RUNS=${ROCKS_RUNS:-1}
N=${ROCKS_N:-2000000}
BIG=${ROCKS_BIG_N:-20000000}
INC=${ROCKS_INC_KEYS:-10000000}
WIN=${ROCKS_WIN_N:-500000}
TIMERS=${ROCKS_TIMERS:-1000000}
KEYS=1000000
LUA=${LUA:-lua5.4}
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
TIDE=$BUILD/tide
BENCH_CC=${BENCH_CC:-gcc}

. "$HERE/lib.sh"
[ -x "$TIDE" ] || die "$TIDE not found (make all)"
mkdir -p "$BUILD/bench"
"$BENCH_CC" -O2 -Wall -Wextra -o "$BUILD/bench/rocksdb_count" "$HERE/rocksdb_count.c" -lrocksdb ||
  die "cannot compile $HERE/rocksdb_count.c"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-rocksdb.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

: >"$TMP/times"
T0=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: rocksdb round $r of $RUNS" >&2
  timed bare "$LUA" "$HERE/keyed_state_bare.lua" "$N" "$KEYS"
  timed heap "$TIDE" run "$HERE/keyed_state.lua" -p 1 -- "$N" "$KEYS"
  timed rocks "$TIDE" run "$HERE/keyed_state.lua" -p 1 --state-backend rocksdb --state-dir "$TMP" -- "$N" "$KEYS"
  rm -rf "$TMP/c-rocks"
  timed c_rocks "$BUILD/bench/rocksdb_count" "$TMP/c-rocks" "$N" "$KEYS"
  rm -rf "$TMP/c-rocks"
  timed count_heap "$TIDE" run "$HERE/keyed_count.lua" -p 1 -- "$N" "$KEYS"
  timed count_rocks "$TIDE" run "$HERE/keyed_count.lua" -p 1 --state-backend rocksdb --state-dir "$TMP" -- "$N" "$KEYS"
  for x in heap rocks c_rocks count_heap count_rocks; do
    [ "$(cat "$TMP/$x.out")" = "$(cat "$TMP/bare.out")" ] ||
      fail "$x" "counted '$(cat "$TMP/$x.out")', the bare loop '$(cat "$TMP/bare.out")'"
  done
  timed win_heap "$TIDE" run "$HERE/windows.lua" -p 1 -- tumbling_sum "$WIN"
  timed win_rocks_heap "$TIDE" run "$HERE/windows.lua" -p 1 --state-backend rocksdb --state-dir "$TMP" \
    -- tumbling_sum "$WIN" periodic heap
  timed win_rocks "$TIDE" run "$HERE/windows.lua" -p 1 --state-backend rocksdb --state-dir "$TMP" \
    -- tumbling_sum "$WIN" periodic rocksdb
  for x in win_rocks_heap win_rocks; do
    [ "$(cat "$TMP/$x.out")" = "$(cat "$TMP/win_heap.out")" ] ||
      fail "$x" "gave '$(cat "$TMP/$x.out")' window results and total, the heap backend '$(cat "$TMP/win_heap.out")'"
  done
  for k in heap rocksdb; do
    timed "timers_$k" env LUA_CPATH="$BUILD/lua/?.so;;" LUA_PATH="lua/?.lua;;" TMPDIR="$TMP" \
      "$LUA" "$HERE/timers.lua" "$k" "$TIMERS"
  done
  # the same timers fired in the same order (count and checksum)
  [ "$(cut -d' ' -f1,2 "$TMP/timers_rocksdb.out")" = "$(cut -d' ' -f1,2 "$TMP/timers_heap.out")" ] ||
    fail timers_rocksdb "fired '$(cat "$TMP/timers_rocksdb.out")', the heap service '$(cat "$TMP/timers_heap.out")'"
  r=$((r + 1))
done
timed big "$TIDE" run "$HERE/keyed_big.lua" -p 1 --state-backend rocksdb --state-dir "$TMP" -- "$BIG"
[ "$(cat "$TMP/big.out")" = "$BIG" ] || fail big "stored $(cat "$TMP/big.out") keys, not $BIG"
timed inc env LUA_CPATH="$BUILD/lua/?.so;;" LUA_PATH="lua/?.lua;;" TMPDIR="$TMP" \
  "$LUA" "$HERE/incremental.lua" "$INC"
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP/times" "$RUNS" "$N" "$BIG" "$INC" "$(cat "$TMP/inc.out")" "$((T1 - T0))" \
  "$TMP/stat0" "$TMP/stat1" "$(getconf CLK_TCK 2>/dev/null || echo 100)" "$WIN" "$TIMERS" \
  "$(cat "$TMP/timers_heap.out")" "$(cat "$TMP/timers_rocksdb.out")" <<'PY'
import os
import sys

(times_file, runs, n, big, inc, inc_out, elapsed, stat0, stat1, hz, win, ntimers,
 t_heap, t_rocks) = sys.argv[1:]
runs, n, big, inc, elapsed, win, ntimers = (int(runs), int(n), int(big), int(inc), int(elapsed),
                                           int(win), int(ntimers))
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, rss = read_times(times_file)
best = {k: min(v)[0] for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}
rate = {k: n / max(best[k], 0.01) for k in ("bare", "heap", "rocks", "c_rocks", "count_heap", "count_rocks")}
print()
print("Keyed state on RocksDB (issue 10): best of %d runs (wall clock of the whole process, startup "
      "included; CPU time of that run, RocksDB's background threads included); %d records over "
      "1000000 keys, p1." % (runs, n))
print()
print("| goal | contender | best wall s | CPU s | peak RSS MiB | throughput | relative |")
print("|---|---|---:|---:|---:|---:|---|")
rows = [("R1/R2 baseline", "bare Lua 5.4 loop, table count", "bare"),
        ("R1 value-state count", "Tide, process + value state, heap", "heap"),
        ("R1 value-state count", "Tide, process + value state, rocksdb", "rocks"),
        ("R1 floor", "C loop, RocksDB get per record + put per batch (rocksdb_count.c)", "c_rocks"),
        ("R2 built-in count()", "Tide, key_by + count(), heap", "count_heap"),
        ("R2 built-in count()", "Tide, key_by + count(), rocksdb", "count_rocks")]
for goal, who, k in rows:
    print("| %s | %s | %.2f | %.2f | %.0f | %.0f K records/s | %.0f%% of bare |" % (
        goal, who, best[k], cpu[k], rss[k] / 1024, rate[k] / 1e3, 100 * rate[k] / rate["bare"]))
print("| R3 large state | Tide, value state of 100-byte values, %d keys, rocksdb | %.2f | %.2f | %.0f | %.0f K records/s | |" % (
    big, best["big"], cpu["big"], rss["big"] / 1024, big / max(best["big"], 0.01) / 1e3))
print()
print("W: event-time tumbling 1 s windows, built-in sum, %d events over 10000 keys (windows.lua "
      "tumbling_sum), p1; on rocksdb the general window operator (contents in RocksDB), its timers "
      "in RocksDB or on the heap." % win)
print()
print("| contender | best wall s | CPU s | peak RSS MiB | throughput | relative |")
print("|---|---:|---:|---:|---:|---|")
for who, k in (("heap backend (fast path)", "win_heap"),
               ("rocksdb backend, timers on the heap", "win_rocks_heap"),
               ("rocksdb backend, timers in RocksDB", "win_rocks")):
    print("| %s | %.2f | %.2f | %.0f | %.0f K events/s | %.0f%% of the heap timers' CPU time |" % (
        who, best[k], cpu[k], rss[k] / 1024, win / max(best[k], 0.01) / 1e3,
        100 * cpu[k] / max(cpu["win_rocks_heap"], 0.01)))
print()
print("T: the timer services alone (timers.lua), %d registrations (every fourth a repeat) of event-time "
      "timers over 100000 keys in batches of 1024, then fired by 100 watermarks; CPU seconds of each "
      "phase (the last run), peak RSS of the process." % ntimers)
print()
print("| service | timers fired | register CPU s | fire CPU s | registrations/s (CPU) | fired/s (CPU) | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|")
for who, k, out in (("heap (tide.timers)", "timers_heap", t_heap),
                    ("RocksDB (tide.timers_rocksdb)", "timers_rocksdb", t_rocks)):
    fired, _, reg_s, fire_s = out.split()
    fired, reg_s, fire_s = int(fired), float(reg_s), float(fire_s)
    print("| %s | %d | %.2f | %.2f | %.0f K | %.0f K | %.0f |" % (
        who, fired, reg_s, fire_s, ntimers / max(reg_s, 0.001) / 1e3, fired / max(fire_s, 0.001) / 1e3,
        rss[k] / 1024))
full, new, sync_ms, upload_ms = inc_out.split()
full, new = int(full), int(new)
print()
print("R4: %d keys of value state written and checkpointed, then 1%% of them updated: the next "
      "checkpoint references %.1f MB (a full checkpoint's size) and uploads %.2f MB (%.1f%%); its "
      "synchronous part (memtable flush + RocksDB checkpoint, the task's pause) took %s ms, the "
      "upload %s ms." % (inc, full / 1e6, new / 1e6, 100.0 * new / max(full, 1), sync_ms, upload_ms))
lines = [
    "- R1, rocksdb value-state count over 1M keys >= 400K records/s: %.0fK -> %s (the C loop's "
    "RocksDB calls alone: %.0fK)" % (
        rate["rocks"] / 1e3, "PASS" if rate["rocks"] >= 4e5 else "MISS", rate["c_rocks"] / 1e3),
    "- R2, built-in count() on rocksdb >= 1M records/s: %.0fK -> %s" % (
        rate["count_rocks"] / 1e3, "PASS" if rate["count_rocks"] >= 1e6 else "MISS"),
    "- R3, %d keys of 100-byte values on rocksdb: peak RSS %.0f MiB < 1 GB -> %s" % (
        big, rss["big"] / 1024, "PASS" if rss["big"] < 1024 * 1024 else "MISS"),
    "- R4, incremental checkpoint after touching 1%% of %d keys < 10%% of a full one: %.1f%% -> %s" % (
        inc, 100.0 * new / max(full, 1), "PASS" if new < 0.1 * full else "MISS"),
]
print_verdicts("RocksDB verdicts", lines, "RocksDB benchmark wall time: %d s." % elapsed,
               stat0, stat1, hz, walls, "the RocksDB runs")
PY
