#!/bin/sh
# tests/e2e/test_rescale.sh - a checkpoint restored at another parallelism
# (issue 10): a streaming word count with a running sum (keyed state) into
# exactly-once part files is killed (SIGKILL) after checkpoints completed
# at parallelism 2, then resumed at 1, at 4, and at 4 then (killed again)
# at 3; the committed output must be exactly an uninterrupted run's: for
# every word w seen N times, the lines "w,1" .. "w,N" once each (the
# running sums, whatever order the records come in). The same with count
# windows of 3 per word (the general window operator), resumed at 3 and 1,
# and with event-time timers per word (stored in RocksDB on that backend).
# Oracle: Python.
. tests/e2e/lib.sh

JOB=tests/e2e/rescale_job.lua
# the running sums and the count windows over the first 5000 lines of the
# commit messages (2849 words, 30166 records), read at 1000 lines/s while
# a run is to be killed (at most 5 s: a run is killed two checkpoints of
# 100 ms after its start, and must not reach the end first, nor must the
# run resumed from it in the scenarios of three parallelisms, whatever the
# load); the timers over the first 20000 (41410 timers: most beyond the
# caches, 128 per key group of 128, 16384 in all), at 4000 lines/s (5 s
# too). IN and RATE are the input and rate of the scenarios that follow.
INPUT=$TMP/input.txt
TIMERS_INPUT=$TMP/input-timers.txt
gzip -dc "$DATA/git-messages.txt.gz" | head -n 20000 >"$TIMERS_INPUT"
head -n 5000 "$TIMERS_INPUT" >"$INPUT"
IN=$INPUT RATE=1000
# oracle FILE...: per FILE, the running sums in FILE.sums, the count
# windows in FILE.window, the timers in FILE.timers (one Python run)
oracle() {
  "$PYTHON" - "$@" <<'PY'
import re, sys
for path in sys.argv[1:]:
    counts = {}
    for line in open(path, encoding="utf-8", errors="surrogateescape"):
        for w in re.findall(r"[A-Za-z]+", line.lower()):
            counts[w] = counts.get(w, 0) + 1
    with open(path + ".sums", "w") as f:
        f.write("\n".join(sorted(f"{w},{i}" for w, n in counts.items() for i in range(1, n + 1))) + "\n")
    with open(path + ".window", "w") as f:
        lines = sorted(f"{w},3" for w, n in counts.items() for _ in range(n // 3))
        f.write("\n".join(lines) + "\n")
    with open(path + ".timers", "w") as f:
        lines = sorted(f"{w},{t},{n}" for w, n in counts.items() for t in range(1, (n + 2) // 3 + 1))
        f.write("\n".join(lines) + "\n")
PY
}
oracle "$INPUT" "$TIMERS_INPUT"
sort "$INPUT.sums" >"$TMP/want"
sort "$INPUT.window" >"$TMP/wantwindow"
sort "$TIMERS_INPUT.timers" >"$TMP/wanttimers"

# run at parallelism P in the background and SIGKILL it once two more
# checkpoints completed than the directory held (it must not end first:
# the rate limit lets it run for up to 5 s); checkpoints every 100 ms
# (the job's interval)
kill_after() { # NAME P [--resume]
  _name=$1 _p=$2
  shift 2
  _from=$(newest_checkpoint "$TMP/ck-$_name/rescale")
  "$TIDE" run "$JOB" -p "$_p" $STATE_ARGS "$@" -- "$IN" "$TMP/out-$_name" "$TMP/ck-$_name" "$RATE" \
    $MODE >"$TMP/$_name.out" 2>"$TMP/$_name.err" &
  kill_at_checkpoint $! "$TMP/ck-$_name/rescale" $((_from + 2))
  _got=$(newest_checkpoint "$TMP/ck-$_name/rescale")
  check "$_name: killed at parallelism $_p after checkpoints completed, before the end (status $KILLED)" \
    test "$_got" -ge $((_from + 2)) -a "$KILLED" -eq 137
  if [ "$_got" -lt $((_from + 2)) ]; then # what the job said, and its checkpoints
    diag "$TMP/$_name.err" 40
    ls -la "$TMP/ck-$_name/rescale" 2>&1 | diag - 20
  fi
}

scenario() { # NAME P1 P2 [P3]: kill at P1, resume at P2 (kill again, resume at P3)
  name=$1
  kill_after "$name" "$2"
  if [ -n "${4:-}" ]; then
    kill_after "$name" "$3" --resume
    last=$4
  else
    last=$3
  fi
  # the last run, which reads the rest at full speed to the end, takes
  # checkpoints every second instead (none is needed: forks saved)
  run_tide "$TMP/$name-end" run "$JOB" -p "$last" ${END_ARGS:-$STATE_ARGS} --resume \
    --checkpoint-dir "$TMP/ck-$name" --checkpoint-interval 1s -- "$IN" "$TMP/out-$name" "$TMP/ck-$name" 2000000 $MODE
  check_rc "$name: resumed at parallelism $last, the job ends (exit 0)" 0
  check_contains "$name: it resumed from a checkpoint" "$TMP/$name-end.err" "tide: resuming job 'rescale' from checkpoint"
  cat_parts "$TMP/out-$name" | sort >"$TMP/got-$name"
  check_eq "$name: the output is exactly an uninterrupted run's" "$TMP/want$MODE" "$TMP/got-$name"
  hidden_files "$TMP/out-$name" >"$TMP/hidden-$name"
  check_empty "$name: no in-progress or pending part file is left" "$TMP/hidden-$name"
}

MODE=
scenario p2-p1 2 1
scenario p2-p4 2 4
scenario p2-p4-p3 2 4 3
# the general window operator (count windows of 3 per word: its contents,
# trigger state and purging) restored at other parallelisms; expected: for
# a word seen N times, N div 3 lines "w,3" (the last N mod 3 records never
# fill a window, as in Flink)
MODE=window
scenario window-p2-p3 2 3
scenario window-p2-p1 2 1
MODE=

# the same on the RocksDB backend (incremental checkpoints into shared/,
# instances clipped or merged by key-group range), and a job that changes
# backend between runs (the snapshot of either restores on the other)
STATE_ARGS="--state-backend rocksdb"
scenario rocks-p2-p1 2 1
scenario rocks-p2-p4-p3 2 4 3
MODE=window
scenario rocks-window-p2-p3 2 3
MODE=
END_ARGS="--state-backend heap"
scenario rocks-to-heap-p2-p3 2 3
STATE_ARGS= END_ARGS="--state-backend rocksdb"
scenario heap-to-rocks-p2-p1 2 1
END_ARGS=

# event-time timers (tens of thousands, most only in RocksDB beyond its
# per-key-group caches) through kills and rescaling, all firing at the
# end; and across backends (the heap's timer lists restore into RocksDB,
# RocksDB's stored timers into the heap). Expected: for a word seen N
# times, "w,t,N" for each timer t = 1 .. ceil(N / 3)
MODE=timers IN=$TIMERS_INPUT RATE=4000
STATE_ARGS="--state-backend rocksdb"
scenario rocks-timers-p2-p4-p3 2 4 3
END_ARGS="--state-backend heap"
scenario rocks-to-heap-timers-p2-p3 2 3
STATE_ARGS= END_ARGS="--state-backend rocksdb"
scenario heap-to-rocks-timers-p2-p1 2 1
STATE_ARGS= END_ARGS= MODE= IN=$INPUT RATE=1000

# refusals: another max parallelism; the same graph's shape changed
kill_after refuse 2
run_tide "$TMP/maxp" run "$JOB" -p 2 --max-parallelism 256 --resume -- "$INPUT" "$TMP/out-refuse" "$TMP/ck-refuse" 2000000
check_rc "another max parallelism: refused, exit 2" 2
check_contains "... naming both and the flag to use" "$TMP/maxp.err" \
  "was taken with max parallelism 128 and the job now has 256: the number of key groups cannot change; resume with --max-parallelism 128"
finish
