#!/bin/sh
# tests/e2e/test_rocksdb.sh - the RocksDB keyed-state backend's checkpoints
# (issue 10): incremental uploads into <job>/shared/ named by content,
# reference counting across retained checkpoints, crashes during upload and
# sweep, damaged shared files, bad state directories, working directories.
# The job (tests/e2e/rocksdb_job.lua) is a running word count with keyed
# state into exactly-once part files; its output is checked against a
# Python oracle, and checkpoint directories against tests/e2e/shared_refs.py
# (an independent reader of _metadata and the .state.shared companions that
# recomputes sizes, CRC32C and content names):
#  a. a clean run through at least 20 checkpoints with retained = 2 (state
#     backend from env{state_backend}): at the end shared/ holds exactly the
#     files the two retained checkpoints and the finished subtasks'
#     companions reference, nothing else; no snapshot forked (a thread
#     uploads and writes them);
#  b. incremental: successive checkpoints reference files the one before
#     uploaded, and upload far fewer bytes than they reference;
#  c. SIGKILL at random moments (some right after a checkpoint completed,
#     when unreferenced files are swept) and --resume, 10 times: after every
#     kill each completed checkpoint's shared files are intact, no resume
#     falls back past a checkpoint, and the last run's output is exact;
#  d. a shared file of the newest checkpoint corrupted or missing: --resume
#     warns naming it and takes the previous checkpoint (output exact); one
#     that every checkpoint references: exit 3; a state dir that cannot be
#     written: the job fails naming the path; --state-backend bogus: usage;
#  f. env{rocksdb = {incremental = false}}: full checkpoints, each one
#     self-contained (state files in chk-<n>, nothing in shared/), a
#     SIGKILL and --resume, output exact;
#  e. no tide-<job>-* working directory is left in --state-dir after a
#     clean run, nor after a SIGTERM cancel; clean runs at p = 2 end with
#     every shared file their final checkpoint references (the final states
#     of finishing subtasks are uploaded while checkpoints complete).
# The kill moments are random: SEED (default: this shell's pid) seeds them.
. tests/e2e/lib.sh

JOB=tests/e2e/rocksdb_job.lua
REFS="$PYTHON tests/e2e/shared_refs.py"
SEED=${SEED:-$$}
echo "# SEED=$SEED (replay: SEED=$SEED sh tests/e2e/test_rocksdb.sh)"
INPUT=$TMP/input.txt
gzip -dc "$DATA/git-messages.txt.gz" | head -n 16000 >"$INPUT"
# "w,i" for the i-th occurrence of every word w, sorted
"$PYTHON" - "$INPUT" >"$TMP/want" <<'PY'
import re, sys
counts = {}
for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    for w in re.findall(r"[A-Za-z]+", line.lower()):
        counts[w] = counts.get(w, 0) + 1
print("\n".join(sorted(f"{w},{i}" for w, n in counts.items() for i in range(1, n + 1))))
PY
check "oracle computed ($(wc -l <"$TMP/want" | tr -d ' ') rows)" test -s "$TMP/want"


# check_output NAME OUT_DIR: the committed output is exactly the oracle's
check_output() {
  cat_parts "$2" | sort >"$2.sorted"
  check_eq "$1: the output is exactly an uninterrupted run's" "$TMP/want" "$2.sorted"
}

# ---- a, b. reference counting, incremental uploads --------------------------

# p = 1, a checkpoint every 20 ms, the input rate-limited to last about 8 s;
# the backend chosen in the script (env{state_backend = "rocksdb"}); each
# _metadata copied as it appears (for b)
d=$TMP/a
mkdir -p "$d/meta" "$d/sd"
TIDE_CHECKPOINT_STATS=1 "$TIDE" run "$JOB" -- "$INPUT" "$d/out" "$d/ck" 2000 interval=20ms retained=2 \
  backend=rocksdb "state_dir=$d/sd" >"$d/run.out" 2>"$d/run.err" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  for m in "$d"/ck/rocks/chk-*/_metadata; do
    [ -f "$m" ] || continue
    id=${m%/_metadata}
    id=${id##*/chk-}
    [ -f "$d/meta/$id" ] || cp "$m" "$d/meta/$id" 2>/dev/null
  done
  sleep 0.01
done
wait "$pid"
check_rc_of "a: the job runs to its end, exit 0" 0 "$?" "$d/run.err"
n=$(newest_checkpoint "$d/ck/rocks")
check "a: at least 20 checkpoints completed (newest: $n)" test "$n" -ge 21
check_str "a: retained = 2: two completed checkpoints remain" "$((n - 1)) $n" \
  "$(completed "$d/ck/rocks" | sort -n | tr '\n' ' ' | sed 's/ $//')"
check "a: the checkpoints hold shared files" test -n "$(ls "$d/ck/rocks/shared")"
check "a: shared/ holds exactly what the retained checkpoints and finished/ reference" \
  $REFS check "$d/ck/rocks" --exact
$REFS check "$d/ck/rocks" | sed 's/^/# a: /'
run_tide "$d/verify" verify "$d/ck/rocks"
check_rc "a: tide verify of the job directory passes" 0
check_match "a: tide verify checks the shared files" "$d/verify.out" "ok +\\.\\./shared/[0-9a-f]{16}-[0-9]+: shared file"
check_output "a" "$d/out"
# the keyed state in RocksDB, incremental: every snapshot taken without
# fork (core/asyncsnap.h), the sink's fsyncs included
check_match "a: no snapshot forked (TIDE_CHECKPOINT_STATS)" "$d/run.err" \
  "over [1-9][0-9]+ snapshots \\(0 forked\\)"
ls "$d/sd" >"$d/left"
check_empty "a (e): no working directory is left in the state dir (env{state_dir})" "$d/left"

# b. what each checkpoint had to upload: the bytes of the files it
# references that the one before did not
ls "$d/meta" | sort -n | sed "s|^|$d/meta/|" >"$d/meta.list"
# shellcheck disable=SC2046
$REFS incremental $(cat "$d/meta.list") >"$d/incr"
echo "# b: $(wc -l <"$d/incr" | tr -d ' ') successive pairs seen; id new_bytes total_bytes:" \
  "$(tail -n 4 "$d/incr" | tr '\n' ';')"
check "b: successive checkpoints were observed" test "$(wc -l <"$d/incr")" -ge 5
awk '$2 >= $3 { print "checkpoint " $1 " uploaded everything it references: " $2 " of " $3 " bytes" }' \
  "$d/incr" >"$d/incr.bad"
check_empty "b: every checkpoint uploads fewer bytes than it references" "$d/incr.bad"
total=$(awk '{ n += $2; t += $3 } END { printf "%d %d", n, t }' "$d/incr")
check "b: over the run, less than half of the referenced bytes were uploaded ($total)" \
  awk -v n="${total% *}" -v t="${total#* }" 'BEGIN { exit !(t > 0 && 2 * n < t) }'
# the two retained: the newer shares SST files with the older
$REFS refs "$d/ck/rocks/chk-$((n - 1))" | sort >"$d/older"
$REFS refs "$d/ck/rocks/chk-$n" | sort >"$d/newer"
comm -12 "$d/older" "$d/newer" | awk '$2 > 1000' >"$d/common"
check "b: the newest checkpoint references SST files of the previous one" test -s "$d/common"

# ---- c. SIGKILL during upload and sweep -------------------------------------

d=$TMP/c
mkdir -p "$d"
awk -v s="$SEED" 'BEGIN { srand(s); for (i = 0; i < 40; i++) printf "%d %.3f\n", i % 2, 0.4 + rand() * 1.0 }' \
  >"$d/moments"
kills=0 attempt=0 resume='' bad='' fell_back=0 moments=''
while [ "$kills" -lt 10 ] && read -r after_completion delay; do
  attempt=$((attempt + 1))
  from=$(newest_checkpoint "$d/ck/rocks")
  "$TIDE" run "$JOB" --state-backend rocksdb --state-dir "$d/sd" $resume \
    -- "$INPUT" "$d/out" "$d/ck" 2000 interval=20ms >"$d/a$attempt.out" 2>"$d/a$attempt.err" &
  pid=$!
  if [ "$after_completion" = 1 ]; then
    # right after a checkpoint completed: the coordinator sweeps shared/
    i=0
    while [ "$(newest_checkpoint "$d/ck/rocks")" -le "$from" ] && [ "$i" -lt 500 ] && kill -0 "$pid" 2>/dev/null; do
      sleep 0.005
      i=$((i + 1))
    done
    sleep "0.0$(echo "$delay" | cut -c5)"
    how="after checkpoint $(newest_checkpoint "$d/ck/rocks")"
  else
    sleep "$delay"
    how="after ${delay}s"
  fi
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  grep -q "is corrupt" "$d/a$attempt.err" && fell_back=$((fell_back + 1))
  if [ "$rc" = 137 ]; then
    kills=$((kills + 1))
    moments="$moments $how;"
    [ -n "$(completed "$d/ck/rocks")" ] && resume=--resume
    if ! $REFS check "$d/ck/rocks" >"$d/k$kills.refs"; then
      bad="after kill $kills ($how) a completed checkpoint lost a shared file"
      break
    fi
  elif [ "$rc" = 0 ]; then
    break # it ended before the kill
  else
    bad="attempt $attempt ($how) exited $rc"
    break
  fi
done <"$d/moments"
echo "# c: killed$moments"
echo "# c: after the last kill: $(tail -n 1 "$d/k$kills.refs" 2>/dev/null)"
if [ -n "$bad" ]; then
  not_ok "c: every completed checkpoint keeps its shared files through every kill"
  echo "#   $bad"
  diag "$d/k$kills.refs"
  diag "$d/a$attempt.err"
else
  ok "c: every completed checkpoint keeps its shared files through every kill"
fi
check "c: killed 10 times with SIGKILL ($attempt attempts)" test "$kills" -ge 10
check_str "c: no resume fell back past a corrupt checkpoint" 0 "$fell_back"
run_tide "$d/final" run "$JOB" --state-backend rocksdb --state-dir "$d/sd" --resume \
  -- "$INPUT" "$d/out" "$d/ck" 1000000 interval=20ms
check_rc "c: the last --resume runs to the end, exit 0" 0
check_contains "c: it resumed from a checkpoint" "$d/final.err" "resuming job 'rocks' from checkpoint"
check_not_contains "c: without falling back" "$d/final.err" "is corrupt"
check_output "c" "$d/out"
run_tide "$d/verify" verify "$d/ck/rocks"
check_rc "c: tide verify of the job directory passes" 0
# complete files nobody references are swept; only uploads a kill cut
# short may stay (".tmp-*", removed once older than 600 s)
$REFS check "$d/ck/rocks" >"$d/end.refs"
check_rc_of "c: every referenced shared file is intact at the end" 0 "$?" "$d/end.refs"
un=$(sed -nE 's/.*, ([0-9]+) unreferenced \(([0-9]+) temporary\)$/\1 \2/p' "$d/end.refs")
check_str "c: every unreferenced file in shared/ is a cut-short upload (unreferenced, temporary)" \
  "${un#* } ${un#* }" "$un"

# ---- d. bad input ------------------------------------------------------------

# a run killed once two checkpoints completed after the first (retained = 2)
d=$TMP/d
mkdir -p "$d"
"$TIDE" run "$JOB" --state-backend rocksdb -- "$INPUT" "$d/out" "$d/ck" 2000 interval=200ms \
  >"$d/first.out" 2>"$d/first.err" &
pid=$!
wait_completed "$d/ck/rocks" 2 400
i=0
while [ "$(newest_checkpoint "$d/ck/rocks")" -lt 3 ] && [ "$i" -lt 400 ]; do
  sleep 0.02
  i=$((i + 1))
done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check_rc_of "d: killed while running" 137 "$?" "$d/first.err"
new=$(completed "$d/ck/rocks" | sed -n 1p)
prev=$(completed "$d/ck/rocks" | sed -n 2p)
check "d: two completed checkpoints ($prev, $new)" test -n "$prev"
$REFS refs "$d/ck/rocks/chk-$prev" | sort >"$d/prev.refs"
$REFS refs "$d/ck/rocks/chk-$new" | sort >"$d/new.refs"
# F: referenced by the newest only; G: by both
F=$(comm -13 "$d/prev.refs" "$d/new.refs" | sort -k2,2n | tail -n 1 | cut -d' ' -f1)
G=$(comm -12 "$d/prev.refs" "$d/new.refs" | sort -k2,2n | tail -n 1 | cut -d' ' -f1)
check "d: the newest checkpoint has a shared file of its own ($F) and one shared with the previous ($G)" \
  test -n "$F" -a -n "$G"

flip() { # flip a byte in the middle of file $1
  "$PYTHON" -c 'import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x40
open(p, "wb").write(bytes(b))' "$1"
}

# damage CASE FILE HOW (flip | remove): a copy of the killed run with FILE
# of shared/ damaged
damage() {
  rm -rf "$d/$1"
  mkdir -p "$d/$1"
  cp -a "$d/ck" "$d/out" "$d/$1/"
  if [ "$3" = flip ]; then flip "$d/$1/ck/rocks/shared/$2"; else rm "$d/$1/ck/rocks/shared/$2"; fi
}

for how in flip remove; do
  damage "$how" "$F" "$how"
  c=$d/$how/ck/rocks
  run_tide "$d/$how/verify" verify "$c/chk-$new"
  check_rc "d ($how): tide verify of the newest checkpoint exits 1" 1
  check_match "d ($how): tide verify names the shared file" "$d/$how/verify.out" \
    "^BAD +\\.\\./shared/$F: "
  run_tide "$d/$how/verify-prev" verify "$c/chk-$prev"
  check_rc "d ($how): the previous checkpoint verifies" 0
  run_tide "$d/$how/resume" run "$JOB" --state-backend rocksdb --resume \
    -- "$INPUT" "$d/$how/out" "$d/$how/ck" 1000000
  check_rc "d ($how): --resume exits 0" 0
  check_contains "d ($how): warns that the newest checkpoint is corrupt" "$d/$how/resume.err" \
    "tide: warning: checkpoint $new is corrupt, falling back to an older one"
  check_contains "d ($how): the warning names the shared file" "$d/$how/resume.err" "shared/$F"
  check_contains "d ($how): resumes from the previous checkpoint" "$d/$how/resume.err" \
    "resuming job 'rocks' from checkpoint $prev "
  check_output "d ($how)" "$d/$how/out"
done
# G is in every completed checkpoint: nothing to resume from
damage both "$G" flip
run_tide "$d/both/resume" run "$JOB" --state-backend rocksdb --resume \
  -- "$INPUT" "$d/both/out" "$d/both/ck" 1000000
check_rc "d (every checkpoint): --resume exits 3" 3
check_contains "d (every checkpoint): says every completed checkpoint is corrupt" "$d/both/resume.err" \
  "tide: every completed checkpoint in $d/both/ck/rocks is corrupt"
check_contains "d (every checkpoint): names the shared file" "$d/both/resume.err" "shared/$G"
damage gone "$G" remove
run_tide "$d/gone/resume" run "$JOB" --state-backend rocksdb --resume \
  -- "$INPUT" "$d/gone/out" "$d/gone/ck" 1000000
check_rc "d (every checkpoint, missing): --resume exits 3, not 2 (checkpoints were completed)" 3
check_contains "d (every checkpoint, missing): names the shared file" "$d/gone/resume.err" "shared/$G: missing"

# a state dir that cannot be written
sd=$TMP/ro-state
mkdir -p "$sd"
if [ "$(id -u)" != 0 ]; then
  chmod 500 "$sd"
  run_tide "$TMP/ro" run "$JOB" --state-backend rocksdb --state-dir "$sd" \
    -- "$INPUT" "$TMP/ro-out" "$TMP/ro-ck" 1000000
  chmod 700 "$sd"
  ro_how="chmod 500"
elif unshare -m sh -c "mount --bind '$sd' '$sd' && mount -o remount,bind,ro '$sd'" 2>/dev/null; then
  # root writes through chmod 500: a read-only bind mount instead
  timeout -k 10 "$TIDE_TIMEOUT" unshare -m sh -c "mount --bind '$sd' '$sd' && mount -o remount,bind,ro '$sd' &&
    exec '$TIDE' run '$JOB' --state-backend rocksdb --state-dir '$sd' \
      -- '$INPUT' '$TMP/ro-out' '$TMP/ro-ck' 1000000" >"$TMP/ro.out" 2>"$TMP/ro.err"
  RC=$? LAST=$TMP/ro
  ro_how="read-only bind mount: chmod 500 does not stop root"
else
  ro_how=
  echo "# skip: a state dir that is not writable (running as root, where chmod 500 does not stop" \
    "writes, and no mount namespace for a read-only bind mount)"
fi
if [ -n "$ro_how" ]; then
  check_rc "d: a state dir that cannot be written ($ro_how): the job fails, exit 1" 1
  check_match "d: the message names the path" "$TMP/ro.err" \
    "cannot open the RocksDB state backend: .*'$sd/tide-rocks-[^']*'"
  check_not_contains "d: no traceback" "$TMP/ro.err" "stack traceback"
fi
# a state dir that is a file
: >"$TMP/a-file"
run_tide "$TMP/file-sd" run "$JOB" --state-backend rocksdb --state-dir "$TMP/a-file" \
  -- "$INPUT" "$TMP/file-out" "$TMP/file-ck" 1000000
check_rc "d: a state dir that is a file: the job fails, exit 1" 1
check_contains "d: the message names the path" "$TMP/file-sd.err" "'$TMP/a-file/tide-rocks-"

run_tide "$TMP/bogus" run "$JOB" --state-backend bogus -- "$INPUT" "$TMP/bogus-out" "$TMP/bogus-ck" 1000000
check_rc "d: --state-backend bogus: wrong usage, exit 2" 2
check_contains "d: --state-backend bogus: says what it needs" "$TMP/bogus.err" \
  "tide: --state-backend needs 'heap' or 'rocksdb', not 'bogus'"
check_contains "d: --state-backend bogus: prints the usage" "$TMP/bogus.err" "usage: tide run JOB.lua"
check "d: --state-backend bogus: nothing was run" test ! -e "$TMP/bogus-out" -a ! -e "$TMP/bogus-ck"

# ---- e. working directories --------------------------------------------------

d=$TMP/e
mkdir -p "$d/sd"
run_tide "$d/clean" run "$JOB" -p 2 --state-backend rocksdb --state-dir "$d/sd" \
  -- "$INPUT" "$d/out" "$d/ck" 1000000 interval=100ms
check_rc "e: a clean run at p=2 exits 0" 0
check "e: it took checkpoints into shared/" test -n "$(ls "$d/ck/rocks/shared")"
ls "$d/sd" >"$d/left"
check_empty "e: no tide-rocks-* working directory is left in --state-dir" "$d/left"
check_output "e" "$d/out"
check "e: the final checkpoint's shared files are all there, and nothing else" $REFS check "$d/ck/rocks" --exact
# the final states of finishing subtasks are uploaded while checkpoints
# still complete (and sweep shared/): a few more short runs at p = 2
for i in 1 2; do
  run_tide "$d/fin$i" run "$JOB" -p 2 --state-backend rocksdb --state-dir "$d/sd" \
    -- "$INPUT" "$d/fin$i-out" "$d/fin$i-ck" 40000 interval=20ms
  if [ "$RC" = 0 ] && $REFS check "$d/fin$i-ck/rocks" --exact >"$d/fin$i.refs"; then
    ok "e: run $i: exit 0, every shared file of the final checkpoint is there, nothing else"
  else
    not_ok "e: run $i: exit 0, every shared file of the final checkpoint is there, nothing else"
    echo "#   exit status $RC"
    diag "$d/fin$i.refs"
  fi
done
# a SIGTERM cancel is a clean exit too
"$TIDE" run "$JOB" -p 2 --state-backend rocksdb --state-dir "$d/sd" \
  -- "$INPUT" "$d/out2" "$d/ck2" 2000 interval=50ms >"$d/term.out" 2>"$d/term.err" &
pid=$!
wait_completed "$d/ck2/rocks" 1 400
i=0
while [ -z "$(ls "$d/sd")" ] && [ "$i" -lt 200 ]; do
  sleep 0.02
  i=$((i + 1))
done
check "e: while it runs, the working directories are in --state-dir" test -n "$(ls "$d/sd")"
kill -TERM "$pid"
wait "$pid"
check_rc_of "e: SIGTERM cancels the job, exit 143" 143 "$?" "$d/term.err"
ls "$d/sd" >"$d/left-term"
check_empty "e: after the cancel no working directory is left" "$d/left-term"

# ---- f. full checkpoints (incremental = false) ---------------------------------

d=$TMP/f
mkdir -p "$d"
"$TIDE" run "$JOB" --state-backend rocksdb --state-dir "$d" -- "$INPUT" "$d/out" "$d/ck" 3000 \
  interval=100ms incremental=false >"$d/run1.out" 2>"$d/run1.err" &
pid=$!
sleep 1.5
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
n=$(newest_checkpoint "$d/ck/rocks")
check "f: full checkpoints completed before the kill (newest: $n)" test "$n" -ge 2
check "f: nothing in shared/: every checkpoint is self-contained" \
  test -z "$(ls "$d/ck/rocks/shared" 2>/dev/null)"
check "f: the newest checkpoint holds the counts' state file" test -s "$d/ck/rocks/chk-$n/counts-0.state"
run_tide "$d/verify" verify "$d/ck/rocks/chk-$n"
check_rc "f: tide verify of a full checkpoint passes" 0
TIDE_CHECKPOINT_STATS=1 run_tide "$d/run2" run "$JOB" --state-backend rocksdb --state-dir "$d" --resume -- \
  "$INPUT" "$d/out" "$d/ck" 100000 interval=100ms incremental=false
check_rc "f: --resume from a full checkpoint: exit 0" 0
check_match "f: full checkpoints are snapshot by fork (the heap format, TIDE_CHECKPOINT_STATS)" \
  "$d/run2.err" "over [1-9][0-9]* snapshots \\([1-9][0-9]* forked\\)"
check_output "f" "$d/out"

finish
