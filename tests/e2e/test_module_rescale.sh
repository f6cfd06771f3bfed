#!/bin/sh
# tests/e2e/test_module_rescale.sh - a checkpoint of a job with a C module
# keyed process restored at another parallelism (docs/MODULES.md,
# "Rescaling"): tests/e2e/module_rescale_job.lua counts commits per author
# and 30-day window of commit time in streamkit's window_count (C keyed
# state and event-time timers) between Lua operators (read_csv, a C filter,
# watermarks, a Lua keyed sum, exactly-once part files). It is killed
# (SIGKILL) after checkpoints completed at parallelism 2, then resumed at 1,
# at 4, and at 4 then (killed again) at 3, on the heap and the RocksDB
# backend (the module's keyed state lives in C on the heap backend either
# way; the Lua keyed sum follows --state-backend). Every new subtask must
# take, from every old subtask's snapshot, exactly the entries (state and
# timers) of its key-group range: the committed output must be exactly an
# uninterrupted run's (oracle: tests/e2e/oracle_author_windows.py). The
# same for a savepoint (tide stop --savepoint) restored at parallelism 3.
# A job whose module source wrote state of its own (streamkit's lines: a
# byte offset) is refused at another parallelism, from a checkpoint or a
# savepoint, naming the operator, and resumes at its own.
. tests/e2e/lib.sh

BUILD=${BUILD:-$(dirname "$TIDE")}
export STREAMKIT="$BUILD/modules/streamkit.so"
JOB=tests/e2e/module_rescale_job.lua
# the first 15000 of the 82000 commits (571 authors, 1894 author-windows;
# commit time is non-decreasing in the file), at 2500 records/s while a
# run is to be killed or stopped (two checkpoints of 100 ms after its
# start): at most 6 s, more than the 4 s that the whole file took at
# 20000/s, so the kills and the stop come at the same moments, with more
# room under load; the resumed runs read the rest at full speed, with a
# checkpoint every second instead of every 100 ms (they only have to reach
# the end: fewer forks)
INPUT=$TMP/commits.csv
head -n 15001 "$DATA/git-commits.csv" >"$INPUT"
RATE=2500
LAST_CK="--checkpoint-interval 1s --checkpoint-dir"
if [ ! -f "$STREAMKIT" ]; then
  not_ok "the modules are built ($STREAMKIT: make modules)"
  finish
  exit 1
fi

# per author and 30-day window of commit time, non-merge commits: the
# window lines, and per author the running number of its windows
"$PYTHON" tests/e2e/oracle_author_windows.py "$INPUT" commit_time_ms "$TMP/oracle.jsonl" "$TMP/oracle.csv" \
  "$TMP/oracle.tallies"
sort "$TMP/oracle.csv" >"$TMP/want.windows"
sort "$TMP/oracle.tallies" >"$TMP/want.tallies"
check "oracle computed ($(wc -l <"$TMP/want.windows" | tr -d ' ') author-windows)" test -s "$TMP/want.windows"

# run at parallelism P in the background and SIGKILL it once two more
# checkpoints completed than the directory held (the rate limit keeps it
# running for up to 6 s; checkpoints every 100 ms, the job's interval)
kill_after() { # NAME P [ARG...]
  _name=$1 _p=$2
  shift 2
  _dir=$TMP/ck-$_name/module-rescale
  _from=$(newest_checkpoint "$_dir")
  "$TIDE" run "$JOB" -p "$_p" $STATE_ARGS "$@" -- "$INPUT" "$TMP/out-$_name" "$TMP/ck-$_name" "$RATE" $OWN \
    >"$TMP/$_name.out" 2>"$TMP/$_name.err" &
  kill_at_checkpoint $! "$_dir" $((_from + 2))
  check "$_name: killed at parallelism $_p after checkpoints completed, before the end (status $KILLED)" \
    test "$(newest_checkpoint "$_dir")" -ge $((_from + 2)) -a "$KILLED" -eq 137
}

# NAME P... : killed at each parallelism but the last (resumed from the
# second on), then resumed at the last to the end
scenario() {
  name=$1
  shift
  resume=
  while [ $# -gt 1 ]; do
    kill_after "$name" "$1" $resume
    resume=--resume
    shift
  done
  last=$1
  run_tide "$TMP/$name-end" run "$JOB" -p "$last" $STATE_ARGS --resume $LAST_CK "$TMP/ck-$name" -- "$INPUT" "$TMP/out-$name" \
    "$TMP/ck-$name" 10000000
  check_rc "$name: resumed at parallelism $last, the job ends (exit 0)" 0
  check_contains "$name: it resumed from a checkpoint" "$TMP/$name-end.err" \
    "tide: resuming job 'module-rescale' from checkpoint"
  for what in windows tallies; do
    cat_parts "$TMP/out-$name/$what" | sort >"$TMP/got-$name.$what"
    check_eq "$name: the $what are exactly an uninterrupted run's" "$TMP/want.$what" "$TMP/got-$name.$what"
    hidden_files "$TMP/out-$name/$what" >"$TMP/hidden-$name"
    check_empty "$name: no in-progress or pending $what part file is left" "$TMP/hidden-$name"
  done
}

OWN=
STATE_ARGS=
scenario p2-p1 2 1
scenario p2-p4 2 4
scenario p2-p4-p3 2 4 3
STATE_ARGS="--state-backend rocksdb"
scenario rocks-p2-p1 2 1
scenario rocks-p2-p4 2 4
STATE_ARGS=

# a savepoint (tide stop --savepoint mid-run at parallelism 2) restored at 3
XDG_RUNTIME_DIR=$TMP/run
export XDG_RUNTIME_DIR
mkdir -m 700 "$XDG_RUNTIME_DIR"
stop_with_savepoint() { # NAME [own]: SP the savepoint's path
  start_tide "$1" run "$JOB" -p 2 -- "$INPUT" "$TMP/out-$1" "$TMP/ck-$1" "$RATE" ${2:-}
  wait_checkpoint "$TMP/ck-$1/module-rescale" 2
  run_tide "$TMP/$1-stop" stop "$ID" --savepoint "$TMP/sps-$1"
  SP=$(cat "$TMP/$1-stop.out")
  wait_tide "$1"
  check "$1: stopped with a savepoint" test -n "$SP" -a -f "$SP/_metadata"
  check "$1: ... before the end of the input" test "$(cat_parts "$TMP/out-$1/windows" | wc -l)" \
    -lt "$(wc -l <"$TMP/want.windows")"
}
stop_with_savepoint sp
run_tide "$TMP/sp-end" run "$JOB" -p 3 --from-savepoint "$SP" $LAST_CK "$TMP/ck-sp2" -- "$INPUT" "$TMP/out-sp" "$TMP/ck-sp2" \
  10000000
check_rc "sp: restored from the savepoint at parallelism 3, the job ends (exit 0)" 0
for what in windows tallies; do
  cat_parts "$TMP/out-sp/$what" | sort >"$TMP/got-sp.$what"
  check_eq "sp: the $what are exactly an uninterrupted run's" "$TMP/want.$what" "$TMP/got-sp.$what"
done
stop_with_savepoint spown own
run_tide "$TMP/spown-p1" run "$JOB" -p 1 --from-savepoint "$SP" -- "$INPUT" "$TMP/out-spown" "$TMP/ck-spown2" \
  10000000 own
check_rc "a savepoint with state of a module's own: refused at another parallelism, exit 2" 2
check_match "... naming the operator and the parallelism to restore at" "$TMP/spown-p1.err" \
  "savepoint .* cannot be restored at another parallelism: streamkit.lines \(uid 'lines'\) is a C module operator whose subtask [12] of 2 wrote state of its own.*restore it at the parallelism it was taken with \(2\)"

# state of the module's own (the lines source's byte offset) cannot be
# split: refused at another parallelism, naming the operator and the old
# parallelism; the same checkpoint resumes at its own
OWN=own
kill_after own 2
run_tide "$TMP/own-p3" run "$JOB" -p 3 --resume -- "$INPUT" "$TMP/out-own" "$TMP/ck-own" 10000000 own
check_rc "state of a module's own: refused at another parallelism, exit 2" 2
check_match "... naming the operator, its uid, the old subtask and the parallelism to resume at" "$TMP/own-p3.err" \
  "cannot be restored at another parallelism: streamkit.lines \(uid 'lines'\) is a C module operator whose subtask [12] of 2 wrote state of its own \([0-9]+ bytes from its snapshot callback.*which cannot be split by key group.*resume at the parallelism it was taken with \(2\)"
run_tide "$TMP/own-p2" run "$JOB" -p 2 --resume $LAST_CK "$TMP/ck-own" -- "$INPUT" "$TMP/out-own" "$TMP/ck-own" \
  10000000 own
check_rc "... and resumes at its own parallelism (exit 0)" 0
cat_parts "$TMP/out-own/windows" | sort >"$TMP/got-own.windows"
check_eq "... with exactly an uninterrupted run's windows" "$TMP/want.windows" "$TMP/got-own.windows"
finish
