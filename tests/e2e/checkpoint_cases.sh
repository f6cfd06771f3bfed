#!/bin/sh
# The cases of tests/e2e/test_checkpoint*.sh, in parts that those files run
# side by side (tests/run.sh runs end-to-end tests in parallel): PARTS
# lists them (default: all): chaos_heap (1. on the heap backend),
# chaos_rocksdb (1. on RocksDB), recovery (2. to 6., and the fault-free
# runs' own checks).
#
# End-to-end: checkpoints and recovery (tide run --checkpoint-dir D
# --checkpoint-interval T [--resume]; env{checkpoint = ..., restart = ...}),
# with tests/e2e/chaos_job.lua (commits per author per UTC day of
# commit_time_ms, tumbling event-time windows, file sink):
#  1. chaos: the job, rate limited to last about 20 s, is killed with
#     SIGKILL at random moments (at least KILLS times) and resumed with
#     --resume each time, then runs to its end; its committed output equals
#     the fault-free run's, at parallelism 1, 2, and 2 with unaligned
#     checkpoints. The fault-free run itself is checked against an
#     independent Python oracle. Then the same on the RocksDB backend with
#     incremental checkpoints (issue 10), at parallelism 1 and 2, at twice
#     the rate (to keep the run short); after each, tide verify passes on
#     every checkpoint left and every shared file they reference is there;
#     the windows' timers are stored in RocksDB too (Flink's default timer
#     service there), and survive the kills.
#     CHAOS_BACKEND=rocksdb runs every chaos scenario on RocksDB.
#  2. restart strategies: a UDF that fails once recovers from a checkpoint
#     (fixed_delay) with the same output; one that always fails ends the job
#     after the allowed restarts (or at once with "none") with its error.
#  3. command-line errors around --resume and --checkpoint-interval.
#  4. a corrupt newest checkpoint (a flipped byte, a truncated file) is
#     reported by tide verify and skipped by --resume with a warning; the
#     output is still exactly the fault-free one.
#  5. retention: only the `retained` newest completed checkpoints remain.
#  6. nothing silently lost or duplicated (issue 8): every completed
#     checkpoint corrupt (exit 3, never a fresh start over committed
#     output); a fresh start into committed output refused without
#     --allow-existing-output; in-progress files of killed runs cleaned;
#     recovery past a corrupt checkpoint names the committed files it
#     rewrites; a full checkpoint disk fails the job at its first failed
#     checkpoint (tolerable_failed_checkpoints = 0).
#
# The kill moments are random: SEED (default: this shell's pid) seeds them
# and is printed, with the moments, so that a failure can be replayed:
#   SEED=1234 PARTS=chaos_heap sh tests/e2e/checkpoint_cases.sh
. tests/e2e/lib.sh

# part NAME: whether this run has part NAME (PARTS)
part() {
  case " ${PARTS:-chaos_heap chaos_rocksdb recovery} " in
  *" $1 "*) return 0 ;;
  esac
  return 1
}

INPUT=$DATA/git-commits.csv
JOB=tests/e2e/chaos_job.lua
SEED=${SEED:-$$}
KILLS=${KILLS:-5}
echo "# SEED=$SEED (replay: SEED=$SEED PARTS='${PARTS:-}' sh tests/e2e/checkpoint_cases.sh)"

# ---- the fault-free run and its oracle -------------------------------------

# commits per author per UTC day of commit_time_ms: "author,day_start_ms,n"
"$PYTHON" tests/e2e/oracle_chaos.py "$INPUT" >"$TMP/oracle"
check "oracle computed ($(wc -l <"$TMP/oracle" | tr -d ' ') author-days)" test -s "$TMP/oracle"

run_tide "$TMP/free1" run "$JOB" -p 1 -- "$INPUT" "$TMP/free1-out" "$TMP/free1-late"
check_rc "fault-free p=1 run exits 0" 0
cat_parts "$TMP/free1-out" | sort >"$TMP/expected"
check_eq "fault-free p=1 output equals the oracle" "$TMP/oracle" "$TMP/expected"
cat_parts "$TMP/free1-late" >"$TMP/free1.late.all"
check_empty "fault-free p=1: no record is late (output independent of timing)" "$TMP/free1.late.all"

# the whole input through the slow operator: a hang detector with room for
# a loaded machine, as the chaos runs' final resume below
if part recovery; then
_timeout=$TIDE_TIMEOUT
TIDE_TIMEOUT=${CHAOS_TIMEOUT:-360}
run_tide "$TMP/free2" run "$JOB" -p 2 --checkpoint-dir "$TMP/free2.ck" --checkpoint-interval 200ms \
  -- "$INPUT" "$TMP/free2-out" "$TMP/free2-late" unaligned=1
TIDE_TIMEOUT=$_timeout
check_rc "fault-free p=2 unaligned run with checkpoints exits 0" 0
cat_parts "$TMP/free2-out" | sort >"$TMP/free2.sorted"
check_eq "fault-free p=2 output equals p=1's" "$TMP/expected" "$TMP/free2.sorted"
fi

# ---- 1. chaos ---------------------------------------------------------------

# chaos LABEL P SEED_OFFSET JOB_OPTION...: start the job, SIGKILL it after a
# random delay, --resume it, KILLS times; then let it finish and compare.
chaos() {
  label=$1 p=$2 seed=$((SEED * 4 + $3))
  shift 3
  d=$TMP/$label
  mkdir -p "$d"
  # kill delays in seconds, uniform in [MIN_DELAY, MIN_DELAY + 1.3)
  # (MIN_DELAY 0.3 unless set; FIRST_DELAY, if set, first); KILLS of them
  # sum to less than the run's length even with the time lost at every
  # restart
  {
    [ -n "${FIRST_DELAY:-}" ] && echo "$FIRST_DELAY"
    awk -v s="$seed" -v m="${MIN_DELAY:-0.3}" 'BEGIN { srand(s); for (i = 0; i < 30; i++) printf "%.2f\n", m + rand() * 1.3 }'
  } >"$d/delays"
  kills=0 attempt=0 fresh=0 resume='' moments='' bad='' with_inflight=0 inflight_files=0 timers_stored=0
  t0=$(date +%s)
  while [ "$kills" -lt "$KILLS" ] && read -r delay; do
    attempt=$((attempt + 1))
    "$TIDE" run "$JOB" -p "$p" $CHAOS_STATE_ARGS --checkpoint-dir "$d/ck" --checkpoint-interval 200ms $resume \
      -- "${CHAOS_INPUT:-$INPUT}" "$d/out" "$d/late" "$@" >"$d/a$attempt.out" 2>"$d/a$attempt.err" &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null # no "Killed" notice
    rc=$?
    if [ "$rc" = 137 ]; then
      kills=$((kills + 1))
      moments="$moments ${delay}s"
      resume=--resume
      # the checkpoint the next --resume restores: does it carry in-flight
      # data (unaligned checkpoints; an empty in-flight file has 32 bytes)?
      newest=$(completed "$d/ck/chaos" | sed -n 1p)
      if [ -n "$newest" ]; then
        n=$(find "$d/ck/chaos/chk-$newest" -name 'inflight-*' | wc -l)
        inflight_files=$((inflight_files + n))
        n=$(find "$d/ck/chaos/chk-$newest" -name 'inflight-*' -size +64c | wc -l)
        [ "$n" -gt 0 ] && with_inflight=$((with_inflight + 1))
        # on RocksDB, the window operator's timers are in its instance: its
        # snapshot's timers say {store = "rocksdb", ...} (MessagePack)
        grep -aqs 'store.rocksdb' "$d/ck/chaos/chk-$newest/"daily-*.state && timers_stored=$((timers_stored + 1))
      fi
    elif [ "$rc" = 2 ] && [ -n "$resume" ] && grep -q "no completed checkpoint" "$d/a$attempt.err"; then
      # killed before its first checkpoint completed: start afresh, as an
      # operator would (there cannot be committed output yet)
      fresh=$((fresh + 1))
      moments="$moments (no checkpoint: fresh start)"
      resume=
    else
      bad="attempt $attempt (kill after ${delay}s) exited $rc"
      break
    fi
  done <"$d/delays"
  echo "# $label: seed $seed, killed after$moments"
  if [ -n "$bad" ]; then
    not_ok "$label: every attempt runs until killed"
    echo "#   $bad; stderr:"
    diag "$d/a$attempt.err"
  else
    ok "$label: killed $kills times with SIGKILL ($fresh fresh starts)"
  fi
  check "$label: at least $KILLS kills" test "$kills" -ge "$KILLS"
  # killed every time before a first checkpoint completed: start afresh
  [ -z "$(completed "$d/ck/chaos")" ] && resume=
  # the final run reads the rest of the input: the kills are over, so at
  # FINAL_SPEEDUP (default 5) times the rate (a slower source only made it
  # last about 15 s more, checkpointing every 200 ms all along); its
  # timeout is a hang detector, not a timing check: room for a loaded
  # machine
  final_args=
  for a in "$@"; do final_args="$final_args $(faster "$a")"; done
  _timeout=$TIDE_TIMEOUT
  TIDE_TIMEOUT=${CHAOS_TIMEOUT:-360}
  # shellcheck disable=SC2086 # the options hold no blanks
  run_tide "$d/final" run "$JOB" -p "$p" $CHAOS_STATE_ARGS --checkpoint-dir "$d/ck" --checkpoint-interval 200ms $resume \
    -- "${CHAOS_INPUT:-$INPUT}" "$d/out" "$d/late" $final_args
  TIDE_TIMEOUT=$_timeout
  check_rc "$label: the last --resume runs to the end, exit 0 ($(($(date +%s) - t0)) s in all)" 0
  if [ -n "$resume" ]; then
    check_match "$label: the last run resumed from a checkpoint" "$d/final.err" \
      "resuming job 'chaos' from checkpoint [0-9]+"
  fi
  cat_parts "$d/out" | sort >"$d/actual"
  check_eq "$label: committed output equals the fault-free run's" "${CHAOS_EXPECTED:-$TMP/expected}" "$d/actual"
  cat_parts "$d/late" >"$d/late.all"
  check_empty "$label: no late records" "$d/late.all"
  case $CHAOS_STATE_ARGS in
  *rocksdb*)
    check "$label: the RocksDB checkpoints uploaded shared files" test -n "$(ls "$d/ck/chaos/shared" 2>/dev/null)"
    grep -raqs 'store.rocksdb' --include='daily-*' "$d/ck/chaos" && timers_stored=$((timers_stored + 1))
    check "$label: the windows' timers were in RocksDB in the checkpoints ($timers_stored resumed from or left)" \
      test "$timers_stored" -ge 1
    run_tide "$d/verify" verify "$d/ck/chaos"
    check_rc "$label: tide verify of every checkpoint left passes" 0
    check "$label: every shared file a checkpoint references is there (shared_refs.py)" \
      "$PYTHON" tests/e2e/shared_refs.py check "$d/ck/chaos"
    ;;
  esac
}
CHAOS_STATE_ARGS=
[ "${CHAOS_BACKEND:-heap}" = rocksdb ] && CHAOS_STATE_ARGS="--state-backend rocksdb"

# at p=1 the first kill comes before the first checkpoint could complete:
# the --resume after it finds no checkpoint and exits 2, and the job is
# started afresh
if part chaos_heap; then
FIRST_DELAY=0.05
chaos "chaos-p1" 1 1 rate=4100
FIRST_DELAY=
check "chaos-p1: a kill before the first checkpoint led to a fresh start" test "$fresh" -ge 1
# rate_limit is for the whole source (a CSV is read by subtask 0 alone)
chaos "chaos-p2" 2 2 rate=4100
check "chaos-p2: aligned checkpoints hold no in-flight data" test "$inflight_files" -eq 0
# the slow map (600 us a record: about half the source's rate at p=2)
# slows down the first 6000 records each of its subtasks takes in a run,
# 3.6 s at least, which covers every kill moment (at most 1.6 s after the
# start); the rest of the input goes at the source's rate (the whole input
# slowed down made the final run last 45 s instead of about 20)
chaos "chaos-p2-unaligned" 2 3 rate=4100 unaligned=1 slow=600 slow_first=6000
check "chaos-p2-unaligned: in-flight data restored after $with_inflight of $kills kills" test "$with_inflight" -ge 1
# two sources at different rates into one task, unaligned, two checkpoints
# pending at a time: a source may skip a checkpoint id another delivers,
# and barriers must never end up in the in-flight data
# (the slow map: 12000 records slowed down in a run, 2.4 s at least)
# (its final run at the same rate: two sources at five times it made the
# whole job slower, not faster: 74 s against 23)
FINAL_SPEEDUP=1
chaos "chaos-2sources-unaligned" 1 4 rate=4100 unaligned=1 max_concurrent=2 sources=2 slow=200 \
  slow_first=12000
FINAL_SPEEDUP=
check "chaos-2sources-unaligned: in-flight data restored after $with_inflight of $kills kills" \
  test "$with_inflight" -ge 1
fi
# keyed state (the window contents) in RocksDB, incremental checkpoints;
# kills from 1 s on (RocksDB instances take longer to open and checkpoint),
# 3 of them, over the first 12000 commits (RocksDB runs the window
# operator several times slower than the heap: the whole input at p=2
# took two minutes under load), against the oracle of that part
if part chaos_rocksdb; then
head -n 12001 "$INPUT" >"$TMP/commits-head.csv"
"$PYTHON" tests/e2e/oracle_chaos.py "$TMP/commits-head.csv" >"$TMP/oracle-head"
saved=$CHAOS_STATE_ARGS saved_kills=$KILLS
CHAOS_STATE_ARGS="--state-backend rocksdb" MIN_DELAY=1 KILLS=3
CHAOS_INPUT=$TMP/commits-head.csv CHAOS_EXPECTED=$TMP/oracle-head
chaos "chaos-rocksdb-p1" 1 5 rate=1500
chaos "chaos-rocksdb-p2" 2 6 rate=1500
CHAOS_STATE_ARGS=$saved MIN_DELAY= KILLS=$saved_kills CHAOS_INPUT= CHAOS_EXPECTED=
fi

if ! part recovery; then
  finish
  exit
fi

# ---- 2. restart strategies ---------------------------------------------------

# a commit a quarter into the file: at 40000 records/s, reached after
# several 200 ms checkpoints completed
X=$(sed -n 40002p "$INPUT" | cut -d, -f2) # 1 s into the run: checkpoints completed before
# (checkpoints configured in the script: env{checkpoint = {dir =, interval =}})
run_tide "$TMP/once" run "$JOB" -- "$INPUT" "$TMP/once-out" "$TMP/once-late" rate=40000 \
  "dir=$TMP/once.ck" interval=200ms "fail_once=$X:$TMP/once.marker" restart=fixed:2:100ms
check_rc "UDF failing once: the job recovers, exit 0" 0
check_contains "UDF failing once: stderr says it restarts" "$TMP/once.err" "tide: job 'chaos' failed; restarting in 100 ms"
check_contains "UDF failing once: stderr has the UDF's error" "$TMP/once.err" "chaos: failing once on commit $X"
check_match "UDF failing once: restored from a checkpoint" "$TMP/once.err" "^tide: restoring checkpoint [0-9]+"
check_str "UDF failing once: exactly one restart" 1 "$(grep -c 'restarting in' "$TMP/once.err")"
cat_parts "$TMP/once-out" | sort >"$TMP/once.actual"
check_eq "UDF failing once: output equals the fault-free run's" "$TMP/expected" "$TMP/once.actual"

line=$(grep -n 'is poison' "$JOB" | head -n 1 | cut -d: -f1)
Y=$(sed -n 5002p "$INPUT" | cut -d, -f2)
run_tide "$TMP/always" run "$JOB" --checkpoint-dir "$TMP/always.ck" --checkpoint-interval 200ms \
  -- "$INPUT" "$TMP/always-out" "$TMP/always-late" "fail_always=$Y" restart=fixed:2:100ms
check_rc "UDF always failing, fixed_delay attempts=2: exit 1" 1
check_str "UDF always failing: 2 restarts" 2 "$(grep -c 'restarting in 100 ms' "$TMP/always.err")"
check_contains "UDF always failing: the final error names the operator uid, file:line and message" \
  "$TMP/always.err" "tide: job 'chaos' failed: operator 'flaky' (map, defined at $JOB:"
check_contains "UDF always failing: the error's file:line" "$TMP/always.err" \
  "$JOB:$line: chaos: commit $Y is poison"
check_contains "UDF always failing: an error in user code carries its traceback" "$TMP/always.err" \
  "stack traceback:"

run_tide "$TMP/none" run "$JOB" --checkpoint-dir "$TMP/none.ck" --checkpoint-interval 200ms \
  -- "$INPUT" "$TMP/none-out" "$TMP/none-late" "fail_always=$Y" restart=none
check_rc "UDF always failing, strategy none: exit 1" 1
check_not_contains "strategy none: no restart" "$TMP/none.err" "restarting"
check_contains "strategy none: the UDF's error" "$TMP/none.err" "$JOB:$line: chaos: commit $Y is poison"

# ---- 3. command-line errors -------------------------------------------------

run_tide "$TMP/r-missing" run "$JOB" --checkpoint-dir "$TMP/no-such-dir" --resume \
  -- "$INPUT" "$TMP/r-out" "$TMP/r-late"
check_rc "--resume with a missing checkpoint dir: exit 2" 2
check_contains "--resume with a missing dir: says there is no checkpoint" "$TMP/r-missing.err" \
  "no completed checkpoint to resume from in $TMP/no-such-dir/chaos"
mkdir -p "$TMP/empty-ck"
run_tide "$TMP/r-empty" run "$JOB" --checkpoint-dir "$TMP/empty-ck" --resume -- "$INPUT" "$TMP/r-out" "$TMP/r-late"
check_rc "--resume with an empty checkpoint dir: exit 2" 2
check_contains "--resume with an empty dir: says there is no checkpoint" "$TMP/r-empty.err" "no completed checkpoint"
# a checkpoint without _metadata does not exist
mkdir -p "$TMP/empty-ck/chaos/chk-1"
cp "$TMP/free2.ck/chaos/"chk-*/daily-0.state "$TMP/empty-ck/chaos/chk-1/"
run_tide "$TMP/r-incomplete" run "$JOB" --checkpoint-dir "$TMP/empty-ck" --resume -- "$INPUT" "$TMP/r-out" "$TMP/r-late"
check_rc "--resume with only an incomplete checkpoint (no _metadata): exit 2" 2
check_contains "--resume with an incomplete checkpoint: says there is no checkpoint" "$TMP/r-incomplete.err" \
  "no completed checkpoint"
run_tide "$TMP/r-nodir" run "$JOB" --resume -- "$INPUT" "$TMP/r-out" "$TMP/r-late"
check_rc "--resume without --checkpoint-dir: exit 2" 2
check_contains "--resume without a dir: says so" "$TMP/r-nodir.err" "--resume needs a checkpoint directory"
run_tide "$TMP/i-nodir" run "$JOB" --checkpoint-interval 200ms -- "$INPUT" "$TMP/r-out" "$TMP/r-late"
check_rc "--checkpoint-interval without --checkpoint-dir: exit 2" 2
check_contains "--checkpoint-interval without a dir: says so" "$TMP/i-nodir.err" \
  "--checkpoint-interval needs --checkpoint-dir"
check_contains "--checkpoint-interval without a dir: prints the usage" "$TMP/i-nodir.err" "usage: tide run JOB.lua"
run_tide "$TMP/i-bad" run "$JOB" --checkpoint-dir "$TMP/i-bad.ck" --checkpoint-interval 5x -- "$INPUT" "$TMP/r-out" "$TMP/r-late"
check_rc "--checkpoint-interval 5x: wrong usage, exit 2" 2
check_contains "--checkpoint-interval 5x: says what it needs" "$TMP/i-bad.err" \
  "tide: --checkpoint-interval needs a duration such as 500ms, 1s or 5m, not '5x'"
check_contains "--checkpoint-interval 5x: prints the usage" "$TMP/i-bad.err" "usage: tide run JOB.lua"
check_not_contains "--checkpoint-interval 5x: no traceback" "$TMP/i-bad.err" "traceback"

# ---- 4. corrupt newest checkpoint --------------------------------------------

# two_checkpoints_then_kill LABEL P: run with retained = 2 and a checkpoint
# every second into $TMP/LABEL; SIGKILL it once at least two checkpoints
# completed and the file sink committed the part files of the newest (one
# per subtask and checkpoint: the sink commits them when it learns that
# the checkpoint completed), before a newer one completes. A loaded machine
# can let a newer checkpoint complete before the sink committed its files:
# then the run is repeated (at most 3 runs). Sets d, ck, newest and
# previous.
two_checkpoints_then_kill() {
  label=$1
  d=$TMP/$label
  ck=$d/ck/chaos
  attempt=0
  while :; do
    attempt=$((attempt + 1))
    rm -rf "$d"
    mkdir -p "$d"
    "$TIDE" run "$JOB" -p "$2" --checkpoint-dir "$d/ck" --checkpoint-interval 1s \
      -- "$INPUT" "$d/out" "$d/late" rate=20000 retained=2 >"$d/first.out" 2>"$d/first.err" &
    pid=$!
    wait_completed "$ck" 2 600
    i=0
    while [ "$i" -lt 200 ]; do # 10 s at most
      n=$(completed "$ck" | sed -n 1p)
      [ "$(committed_parts "$d/out" | wc -l)" -ge $(($2 * ${n:-1})) ] && break
      sleep 0.05
      i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null # no "Killed" notice
    rc=$?
    newest=$(completed "$ck" | sed -n 1p)
    previous=$(completed "$ck" | sed -n 2p)
    [ "$(committed_parts "$d/out" | wc -l)" -ge $(($2 * ${newest:-1})) ] && break
    [ "$attempt" -ge 3 ] && break
    echo "# $label: run $attempt: checkpoint $newest completed before the sink committed its files; again"
  done
  check_rc_of "$label: killed while running" 137 "$rc" "$d/first.err"
  check "$label: two completed checkpoints ($previous, $newest)" test -n "$previous"
  echo "# $label: $(committed_parts "$d/out" | wc -l | tr -d ' ') part files committed when killed"
}

# corrupt LABEL P HOW: two_checkpoints_then_kill, then damage the newest
# checkpoint's window state (HOW: flip a byte in the middle | truncate to
# half | copy the previous checkpoint's file over it), resume: the previous
# checkpoint is restored, the part files the newest one had committed are
# named as taken back and rewritten, and the output is still exactly the
# fault-free one.
corrupt() {
  label=$1 p=$2 how=$3
  two_checkpoints_then_kill "$label" "$p"
  committed_parts "$d/out" | sed 's|.*/||' >"$d/committed-before"
  f=$ck/chk-$newest/daily-0.state
  size=$(wc -c <"$f" | tr -d ' ')
  case $how in
  flip)
    "$PYTHON" -c 'import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x40
open(p, "wb").write(bytes(b))' "$f"
    ;;
  truncate)
    head -c $((size / 2)) "$f" >"$d/half" && cat "$d/half" >"$f"
    ;;
  copy)
    cp "$ck/chk-$previous/daily-0.state" "$f"
    ;;
  esac
  run_tide "$d/verify" verify "$ck/chk-$newest"
  check_rc "$label: tide verify on the damaged checkpoint exits 1" 1
  check_match "$label: tide verify reports daily-0.state as bad" "$d/verify.out" "^BAD +daily-0\\.state"
  run_tide "$d/verify-prev" verify "$ck/chk-$previous"
  check_rc "$label: tide verify on the previous checkpoint exits 0" 0
  run_tide "$d/resume" run "$JOB" -p "$p" --checkpoint-dir "$d/ck" --checkpoint-interval 200ms --resume \
    -- "$INPUT" "$d/out" "$d/late" retained=2
  check_rc "$label: --resume exits 0" 0
  check_contains "$label: warns that the newest checkpoint is corrupt" "$d/resume.err" \
    "tide: warning: checkpoint $newest is corrupt, falling back to an older one"
  check_contains "$label: resumes from the previous checkpoint" "$d/resume.err" \
    "resuming job 'chaos' from checkpoint $previous "
  # the files the newest checkpoint committed are taken back, loudly
  grep "took back" "$d/resume.err" | grep -v "^tide:   " | sed 's/.*: //; s/, /\n/g' | sort >"$d/taken-back"
  check "$label: a warning names the committed part files taken back and rewritten" test -s "$d/taken-back"
  comm -23 "$d/taken-back" "$d/committed-before" >"$d/not-before"
  check_empty "$label: each of them was committed before the resume" "$d/not-before"
  check_match "$label: the exit summary repeats it" "$d/resume.err" \
    "^tide:   write_csv \(uid 'out'\) in subtask [0-9]+/$p: recovery from checkpoint $previous took back"
  cat_parts "$d/out" | sort >"$d/actual"
  check_eq "$label: committed output equals the fault-free run's" "$TMP/expected" "$d/actual"
  sort -u "$d/actual" >"$d/actual.distinct"
  check_eq "$label: no committed row is wrong or missing (duplicates aside)" "$TMP/expected" "$d/actual.distinct"
}

corrupt "corrupt-flip" 1 flip
corrupt "corrupt-truncate" 2 truncate
corrupt "corrupt-copy" 2 copy
check_contains "corrupt-copy: the copied file is named" "$d/verify.out" \
  "BAD      daily-0.state: $ck/chk-$newest/daily-0.state: not the file checkpoint $newest wrote"

# ---- 5. retention ----------------------------------------------------------

for keep in 1 3; do
  d=$TMP/retain$keep
  run_tide "$d" run "$JOB" --checkpoint-dir "$d.ck" --checkpoint-interval 100ms \
    -- "$INPUT" "$d-out" "$d-late" rate=50000 retained=$keep
  check_rc "retained=$keep: the job exits 0" 0
  ids=$(completed "$d.ck/chaos" | tr '\n' ' ')
  n_done=$(completed "$d.ck/chaos" | wc -l | tr -d ' ')
  n_dirs=$(find "$d.ck/chaos" -mindepth 1 -maxdepth 1 -name 'chk-*' | wc -l | tr -d ' ')
  newest=$(completed "$d.ck/chaos" | sed -n 1p)
  check "retained=$keep: several checkpoints were taken (newest ${newest:-none})" test "${newest:-0}" -gt $((keep + 2))
  check_str "retained=$keep: $keep completed checkpoints remain ($ids)" "$keep" "$n_done"
  check_str "retained=$keep: no other chk- directory remains" "$keep" "$n_dirs"
  run_tide "$d.verify" verify "$d.ck/chaos/chk-$newest"
  check_rc "retained=$keep: the newest checkpoint verifies" 0
done

# ---- 6. nothing silently lost or duplicated ----------------------------------

# every completed checkpoint corrupt: --resume refuses (exit 3, not 2), and
# the output committed so far is left alone
two_checkpoints_then_kill "all-corrupt" 2
ls -l "$d/out" >"$d/out-before"
for c in $(completed "$ck"); do
  printf 'x' | dd of="$ck/chk-$c/daily-1.state" bs=1 seek=40 conv=notrunc 2>/dev/null
done
run_tide "$d/resume" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms --resume \
  -- "$INPUT" "$d/out" "$d/late" retained=2
check_rc "all-corrupt: --resume exits 3 (not 2: checkpoints were completed)" 3
check_contains "all-corrupt: says every completed checkpoint is corrupt" "$d/resume.err" \
  "tide: every completed checkpoint in $ck is corrupt, so the job cannot resume"
check_contains "all-corrupt: names each of them" "$d/resume.err" "checkpoint $previous: $ck/chk-$previous"
check_not_contains "all-corrupt: not the 'none yet' message" "$d/resume.err" "no completed checkpoint"
ls -l "$d/out" >"$d/out-after"
check_eq "all-corrupt: the committed output is untouched" "$d/out-before" "$d/out-after"
# a fresh start would commit everything again beside it: refused
run_tide "$d/fresh" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms \
  -- "$INPUT" "$d/out" "$d/late" retained=2
check_rc "all-corrupt: a fresh start into the committed output is refused (exit 2)" 2
check_contains "all-corrupt: the refusal says why" "$d/fresh.err" \
  "write_csv (uid 'out'): $d/out already holds committed output of job 'chaos' (part-chaos-"
check_contains "all-corrupt: the refusal names the flag" "$d/fresh.err" "--allow-existing-output"
ls -l "$d/out" >"$d/out-after"
check_eq "all-corrupt: the refused start wrote nothing" "$d/out-before" "$d/out-after"
n_before=$(cat_parts "$d/out" | wc -l | tr -d ' ')
run_tide "$d/allowed" run "$JOB" -p 2 --allow-existing-output -- "$INPUT" "$d/out" "$d/late" retained=2
check_rc "all-corrupt: with --allow-existing-output the fresh start runs, exit 0" 0
cat_parts "$d/out" | wc -l | tr -d ' ' >"$d/n-after"
check_str "all-corrupt: it adds a second set of part files beside the first" \
  $((n_before + $(wc -l <"$TMP/expected"))) "$(cat "$d/n-after")"
# another job's output in the directory does not count
mkdir -p "$TMP/other-out"
cp "$d/out/$(ls "$d/out" | grep '^part-' | head -n 1)" "$TMP/other-out/part-otherjob-0123abcd-0-0"
run_tide "$TMP/other" run "$JOB" -- "$INPUT" "$TMP/other-out" "$TMP/other-late" rate=1000000
check_rc "a directory holding another job's part files: the job runs, exit 0" 0

# killed before its first checkpoint: a fresh start removes the killed
# run's in-progress files (no checkpoint references them)
d=$TMP/orphans
mkdir -p "$d"
"$TIDE" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 1h \
  -- "$INPUT" "$d/out" "$d/late" rate=20000 >/dev/null 2>"$d/first.err" &
pid=$!
i=0
while [ -z "$(ls -a "$d/out" 2>/dev/null | grep '^\.part-chaos-.*\.inprogress$')" ] && [ "$i" -lt 100 ]; do
  sleep 0.05
  i=$((i + 1))
done
sleep 0.3
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
ls -a "$d/out" | grep '^\.part-chaos-' >"$d/hidden-before"
check "orphans: the killed run left in-progress files" test -s "$d/hidden-before"
run_tide "$d/fresh" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms \
  -- "$INPUT" "$d/out" "$d/late" rate=1000000
check_rc "orphans: the fresh start exits 0" 0
ls -a "$d/out" | grep '^\.' | grep -v '^\.\.\?$' >"$d/hidden-after"
check_empty "orphans: no hidden part file remains" "$d/hidden-after"
check_contains "orphans: a warning says they were removed" "$d/fresh.err" \
  "in-progress part files of earlier runs that no checkpoint references: $(head -n 1 "$d/hidden-before")"
cat_parts "$d/out" | sort >"$d/actual"
check_eq "orphans: the output is exactly the fault-free one" "$TMP/expected" "$d/actual"

# a full checkpoint disk: the first failed checkpoint fails the job over
# (Flink's tolerable-failed-checkpoints, 0 by default), with the I/O error,
# instead of running on and failing at the end. Needs a mount namespace.
d=$TMP/diskfull
mkdir -p "$d/ck"
if [ "$(id -u)" = 0 ]; then ns="unshare -m"; else ns="unshare -rm"; fi
if $ns sh -c "mount -t tmpfs -o size=8k tmpfs '$d/ck'" 2>/dev/null; then
  $ns sh -c "mount -t tmpfs -o size=8k tmpfs '$d/ck' && exec '$TIDE' run '$JOB' -p 2 \
    --checkpoint-dir '$d/ck' --checkpoint-interval 200ms -- '$INPUT' '$d/out' '$d/late' rate=40000 \
    restart=fixed:1:100ms" >"$d/run.out" 2>"$d/run.err"
  check_rc_of "disk full: the job fails, exit 1" 1 "$?" "$d/run.err"
  check_match "disk full: the job fails at a failed checkpoint with the I/O error" "$d/run.err" \
    "tide: job 'chaos' failed: checkpoint [0-9]+ failed: .*No space left on device \(1 consecutive checkpoint failure, tolerable_failed_checkpoints is 0\)"
  check_str "disk full: one restart, then the job gives up" 1 "$(grep -c 'restarting in 100 ms' "$d/run.err")"
  check_not_contains "disk full: no message points at a message that is not there" "$d/run.err" \
    "see its message above"
  check_not_contains "disk full: operational errors carry no Lua traceback" "$d/run.err" "stack traceback"
  check_str "disk full: nothing committed" 0 "$(committed_parts "$d/out" | wc -l | tr -d ' ')"
else
  echo "# disk full: skipped (cannot mount a tmpfs in a mount namespace here)"
fi

finish
