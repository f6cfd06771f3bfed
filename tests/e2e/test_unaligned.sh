#!/bin/sh
# End-to-end: unaligned checkpoints under backpressure (FLIP-76), with
# tests/e2e/backpressure_job.lua: generate -> event time -> rebalance -> a
# map that busy-waits per record -> key_by -> tumbling windows (sum, count)
# -> file sink, every operator a task of its own. The slow map keeps its
# input channels full, so a barrier that waited behind the queued buffers
# would take their whole processing time.
#  1. the fault-free run with unaligned checkpoints equals a Python oracle;
#  2. at parallelism 1 (one input channel per task): the job is killed with
#     SIGKILL once two checkpoints completed. The newest completed
#     checkpoint holds, as in-flight data of the map, records the map had
#     not processed yet (a barrier queued behind the data finds nothing in
#     flight on a single channel), consecutive; with the event-time task's
#     in-flight data they run up to the last record the source had sent
#     before its barrier (its snapshot position - 1), more than a whole
#     exchange buffer (32 KiB) in all: the barriers overtook that backlog,
#     which became in-flight data. --resume then gives exactly the
#     oracle's output;
#  3. the same at parallelism 2 (two channels per map subtask, every
#     second number on each);
#  4. the same at parallelism 2 on the RocksDB backend (snapshots without
#     fork: the in-flight data joins a snapshot thread's file list).
# Each source subtask has N records to send, more than its channels hold
# at once, so it still runs when the checkpoints are taken.
# In-flight files are read by tests/e2e/inflight_records.py, independently
# of Tide. No timing is asserted.
. tests/e2e/lib.sh

JOB=tests/e2e/backpressure_job.lua
N=12000  # records per source subtask: more than its channels hold at once
US=200   # busy microseconds per record in the map: about 2.4 s of work

# ---- the oracle: per key n % 3 and 100 ms window, the sum and count -------
# oracle N FILE: the expected rows for the numbers 1..N
oracle() {
  "$PYTHON" - "$1" >"$2" <<'EOF'
import sys
n = int(sys.argv[1])
agg = {}
for v in range(1, n + 1):
    k = (v % 3, v - v % 100)
    s, c = agg.get(k, (0, 0))
    agg[k] = (s + v, c + 1)
sys.stdout.write("".join(sorted("%d,%d,%d,%d\n" % (k, w, s, c) for (k, w), (s, c) in agg.items())))
EOF
}
oracle "$N" "$TMP/oracle1"
oracle $((2 * N)) "$TMP/oracle2"
check "oracles computed ($(wc -l <"$TMP/oracle1" | tr -d ' ') and $(wc -l <"$TMP/oracle2" | tr -d ' ') windows)" \
  test -s "$TMP/oracle1" -a -s "$TMP/oracle2"

# checkpoints every second in the runs that are not killed: an unaligned
# checkpoint under this backpressure costs much (in-flight data, a fork),
# and at 300 ms they made up most of the run's CPU and wall time; the
# killed runs keep 300 ms, so that two complete while the source still runs
run_tide "$TMP/free" run "$JOB" -p 2 --checkpoint-dir "$TMP/free.ck" --checkpoint-interval 1s \
  -- $((2 * N)) "$US" "$TMP/free-out" unaligned
check_rc "fault-free p=2 unaligned run exits 0" 0
cat_parts "$TMP/free-out" | sort >"$TMP/free.sorted"
check_eq "fault-free p=2 output equals the oracle" "$TMP/oracle2" "$TMP/free.sorted"

# kill_resume LABEL P [TIDE ARGS]: run at parallelism P, SIGKILL it after
# two completed checkpoints, inspect the newest one's in-flight data of the
# map (task 3), resume, compare with the oracle.
kill_resume() {
  label=$1 p=$2
  shift 2
  n=$((p * N))
  d=$TMP/$label
  ck=$d/ck/backpressure
  mkdir -p "$d"
  TIDE_CHECKPOINT_STATS=1 "$TIDE" run "$JOB" -p "$p" "$@" --checkpoint-dir "$d/ck" \
    --checkpoint-interval 300ms -- "$n" "$US" "$d/out" unaligned >"$d/first.out" 2>"$d/first.err" &
  pid=$!
  wait_completed "$ck" 2 600
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null # no "Killed" notice
  check_rc_of "$label: killed while running (before its end)" 137 "$?" "$d/first.err"
  newest=$(completed "$ck" | sed -n 1p)
  check "$label: a completed checkpoint to resume from (${newest:-none})" test -n "$newest"
  s=0
  while [ "$s" -lt "$p" ]; do
    f=$ck/chk-$newest/inflight-3-$s.state
    if "$PYTHON" tests/e2e/inflight_records.py inflight "$f" >"$d/inflight-$s" 2>&1; then
      ok "$label: map $s's in-flight data of checkpoint $newest is well formed (consecutive records per channel)"
    else
      not_ok "$label: map $s's in-flight data of checkpoint $newest is well formed"
      diag "$d/inflight-$s"
    fi
    echo "# $label: map $s, checkpoint $newest, in-flight per channel (channel first last count):" \
      "$(tr '\n' ';' <"$d/inflight-$s")"
    count=$(awk '{ n += $4 } END { print n + 0 }' "$d/inflight-$s")
    check "$label: map $s's in-flight data holds records it had not processed ($count)" test "$count" -gt 0
    s=$((s + 1))
  done
  if [ "$p" = 1 ]; then
    # the map's in-flight data, then the event-time task's, run up to the
    # source's position: records 1 .. seq-1 were sent before the barrier
    seq=$("$PYTHON" tests/e2e/inflight_records.py source_seq "$ck/chk-$newest/numbers-0.state")
    "$PYTHON" tests/e2e/inflight_records.py inflight "$ck/chk-$newest/inflight-2-0.state" >"$d/inflight-et"
    last=$(awk '{ print $3 }' "$d/inflight-0")
    read -r _ et_first et_last et_n <"$d/inflight-et" || et_n=0
    echo "# $label: event-time task's in-flight data: ${et_n:-0} records ${et_first:-} .. ${et_last:-}"
    if [ "${et_n:-0}" -gt 0 ]; then
      check_str "$label: the event-time task's in-flight data continues the map's" "$((last + 1))" "$et_first"
      last=$et_last
    fi
    check_str "$label: the in-flight data ends with the last record sent before the barrier (source position $seq)" \
      "$((seq - 1))" "$last"
    # a 32 KiB buffer holds 321 records of 102 bytes
    total=$(($(awk '{ n += $4 } END { print n + 0 }' "$d/inflight-0") + ${et_n:-0}))
    check "$label: the barriers overtook more than a whole exchange buffer ($total records in flight)" \
      test "$total" -gt 321
  fi
  TIDE_CHECKPOINT_STATS=1 run_tide "$d/resume" run "$JOB" -p "$p" "$@" --checkpoint-dir "$d/ck" \
    --checkpoint-interval 1s --resume -- "$n" "$US" "$d/out" unaligned
  check_rc "$label: --resume exits 0" 0
  check_contains "$label: resumed from checkpoint $newest" "$d/resume.err" \
    "resuming job 'backpressure' from checkpoint $newest "
  cat_parts "$d/out" | sort >"$d/actual"
  check_eq "$label: committed output equals the oracle" "$TMP/oracle$p" "$d/actual"
}

kill_resume "kill-p1" 1
kill_resume "kill-p2" 2
# on the heap backend only the subtasks with keyed state (the windows) fork
# for their snapshots; the sources, maps and the event-time task do not
set -- $(sed -n 's/.* over \([0-9]*\) snapshots (\([0-9]*\) forked).*/\1 \2/p' "$TMP/kill-p2/resume.err")
check "kill-p2: on the heap backend some snapshots forked, not all (${1:-?} snapshots, ${2:-?} forked)" \
  test "${2:-0}" -gt 0 -a "${2:-0}" -lt "${1:-0}"
# 4. the same on the RocksDB backend, whose subtasks snapshot without fork
#    (core/asyncsnap.h): a snapshot thread's acknowledgement lists its
#    files, to which the coordinator adds the in-flight data it wrote
kill_resume "kill-p2-rocksdb" 2 --state-backend rocksdb --state-dir "$TMP"
check_match "kill-p2-rocksdb: the resumed run's snapshots did not fork (TIDE_CHECKPOINT_STATS)" \
  "$TMP/kill-p2-rocksdb/resume.err" "over [0-9]+ snapshots \\(0 forked\\)"

finish
