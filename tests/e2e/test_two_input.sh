#!/bin/sh
# tests/e2e/test_two_input.sh - two-input operators in jobs (issue 12):
# tests/e2e/two_input_job.lua over the first 12000 git commits sorted by
# author time, in three modes: broadcast state (commits keyed by author
# enriched by a slow broadcast rules stream, waiting commits in keyed list
# state flushed through apply_to_keyed_state), an interval join, and a
# window join plus co-group. Each runs uninterrupted, then is killed
# (SIGKILL) after checkpoints completed and resumed; the committed output
# must be exactly the oracle's (tests/e2e/oracle_two_input.py, Python over
# the rows). Also: the broadcast job rescaled p2 -> p3 from a checkpoint
# (keyed state by key group, broadcast state copied to the new subtask),
# the interval join on --state-backend rocksdb, the window join with
# unaligned checkpoints (in-flight data of both inputs), and a stop with a
# savepoint on heap restored on RocksDB at parallelism 3.
# The interval join on RocksDB scans a key's buffer of the other side in
# RocksDB for every record (as Flink's operator does), which grows with
# the square of an author's commits: over the 12000 commits one such run
# took 35 s, over 3000 about 9 s of CPU, over 1500 about 2.5 s; so the runs
# of the interval join that end on RocksDB take the first 1500 commits
# (their own oracle, over 300 joined pairs) at an eighth of the rate,
# which keeps the moments of their kill and stop.
. tests/e2e/lib.sh

CSV=$TMP/commits.csv
"$PYTHON" tests/e2e/oracle_two_input.py sort "$DATA/git-commits.csv" 12000 "$CSV"
SMALL=$TMP/commits-1500.csv
"$PYTHON" tests/e2e/oracle_two_input.py sort "$DATA/git-commits.csv" 1500 "$SMALL"
JOB=tests/e2e/two_input_job.lua
for m in broadcast interval window; do
  "$PYTHON" tests/e2e/oracle_two_input.py "$m" "$CSV" >"$TMP/want-$m"
done
"$PYTHON" tests/e2e/oracle_two_input.py interval "$SMALL" >"$TMP/want-interval-1500"

# check_output NAME MODE OUTDIR: the committed part files hold exactly the
# oracle's lines, and no hidden file is left
check_output() {
  cat_parts "$3" | sort >"$TMP/got-$1"
  check_eq "$1: the output is exactly the oracle's ($(wc -l <"$TMP/want-$2") lines)" "$TMP/want-$2" "$TMP/got-$1"
  hidden_files "$3" >"$TMP/hidden-$1"
  check_empty "$1: no in-progress or pending part file is left" "$TMP/hidden-$1"
}

for m in broadcast interval window; do
  run_tide "$TMP/plain-$m" run "$JOB" -p 2 -- "$m" "$CSV" "$TMP/out-plain-$m" "$TMP/ck-plain-$m" 10000000
  check_rc "$m: an uninterrupted run at parallelism 2 ends (exit 0)" 0
  check_output "plain-$m" "$m" "$TMP/out-plain-$m"
done

# scenario NAME MODE P1 P2 [ARGS...]: run MODE at parallelism P1, over
# $IN (default $CSV) at $RATE records/s (default 6000: about 2 s), SIGKILL
# it once two checkpoints completed, resume at P2 (checkpoints every
# second instead of 100 ms: that run only has to read the rest to its end);
# the output must be $TMP/want-$WANT's (default MODE's)
scenario() {
  name=$1 mode=$2 p1=$3 p2=$4
  shift 4
  ck=$TMP/ck-$name
  "$TIDE" run "$JOB" -p "$p1" "$@" -- "$mode" "${IN:-$CSV}" "$TMP/out-$name" "$ck" "${RATE:-6000}" $EXTRA \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  kill_at_checkpoint $! "$ck/two_input_$mode" 3
  check "$name: killed (status $KILLED) after checkpoints completed, before the end" \
    test "$(newest_checkpoint "$ck/two_input_$mode")" -ge 3 -a "$KILLED" -eq 137
  run_tide "$TMP/$name-end" run "$JOB" -p "$p2" "$@" --resume --checkpoint-dir "$ck" --checkpoint-interval 1s \
    -- "$mode" "${IN:-$CSV}" "$TMP/out-$name" "$ck" 10000000 $EXTRA
  check_rc "$name: resumed at parallelism $p2, the job ends (exit 0)" 0
  check_contains "$name: it resumed from a checkpoint" "$TMP/$name-end.err" "tide: resuming job 'two_input_$mode' from checkpoint"
  check_output "$name" "${WANT:-$mode}" "$TMP/out-$name"
}

EXTRA=
scenario kill-broadcast broadcast 2 2
scenario kill-interval interval 2 2
scenario kill-window window 2 2
scenario rescale-broadcast broadcast 2 3
IN=$SMALL RATE=750 WANT=interval-1500
scenario rocksdb-interval interval 2 2 --state-backend rocksdb
IN= RATE= WANT=
EXTRA=unaligned
scenario unaligned-window window 2 2
scenario unaligned-broadcast broadcast 2 2
EXTRA=

# stop with a savepoint mid-run (heap, parallelism 2), restore it on RocksDB
# at parallelism 3: keyed list state, broadcast state and the interval
# join's buffers and timers in the canonical savepoint format (the
# interval join over the 1500 commits at 500/s: about 3 s, as the
# broadcast job's 12000 at 4000/s)
for m in broadcast interval; do
  in=$CSV rate=4000 want=$m
  [ "$m" = interval ] && in=$SMALL rate=500 want=interval-1500
  start_tide "sp-$m" run "$JOB" -p 2 -- "$m" "$in" "$TMP/out-sp-$m" "$TMP/ck-sp-$m" "$rate"
  stop_savepoint "sp-$m" "savepoint-$m (mid-run)"
  check "savepoint-$m: it stopped before the end of its input" \
    test "$(cat_parts "$TMP/out-sp-$m" | wc -l)" -lt "$(wc -l <"$TMP/want-$want")"
  run_tide "$TMP/sp-$m-end" run "$JOB" -p 3 --state-backend rocksdb --from-savepoint "$SP" \
    -- "$m" "$in" "$TMP/out-sp-$m" "$TMP/ck-sp-$m" 10000000
  check_rc "savepoint-$m: restored on rocksdb at parallelism 3, the job ends (exit 0)" 0
  check_output "savepoint-$m" "$want" "$TMP/out-sp-$m"
done
finish
