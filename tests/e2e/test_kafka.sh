#!/bin/sh
# test_kafka.sh - the Kafka connector (lua/tide/kafka.lua) against
# librdkafka's mock cluster, which the test starts and stops:
#  1. a topic of 3 partitions with known records (rows of git-commits.csv,
#     each partition a block of rows) read at p1 and p2: the output is
#     exactly the produced records with their partitions and offsets
#     (oracle: the produced lines, numbered per partition);
#  2. starting offsets: latest, committed (the offsets committed to the
#     group by earlier runs, also while a job runs, after its
#     checkpoints), earliest for a group without commits;
#  3. per-partition watermarks: an event-time window job on the Kafka
#     timestamps, whose partitions are each in order but far apart, equals
#     a Python oracle and drops nothing as late; a partition without
#     records, idle, does not hold the watermark back;
#  4. the sink at_least_once and exactly_once (read_committed): every
#     input line exactly once, a key always in one partition; at least
#     once after SIGKILLs;
#  5. Kafka source resume after SIGKILL: a checkpointed job killed at
#     random moments and resumed, through an exactly-once file sink: every
#     record once, no offset skipped or repeated; the same across restores
#     at parallelism 2 -> 3 -> 1;
#  6. errors: every broker down during a job (the mock cluster's brokers
#     taken down: the job fails, and resumes exactly once when they are
#     back), unknown topic, unreachable brokers, bad options, named by the
#     script's file:line.
# Runs under either VM (TIDE_VM=luajit).
. tests/e2e/lib.sh
. tests/e2e/kafka.sh

JOB=tests/e2e/kafka_job.lua
N=${KAFKA_RECORDS:-6000}
SEED=${SEED:-$$}
echo "# SEED=$SEED (replay: SEED=$SEED sh tests/e2e/test_kafka.sh)"

kafka_start in:3 late:3 idle:3 out_alo:3 out_alo2:3 out_eos:3 out_none:2

# the input: N rows "commit,author" with commit_time_ms as the Kafka
# timestamp; partition k gets the k-th block of N/3 rows (in file order,
# so each partition's timestamps ascend while the blocks are years apart)
tail -n +2 "$DATA/git-commits.csv" | head -n "$N" |
  awk -F, -v n="$N" '{ p = int((NR - 1) / (n / 3)); printf "%d\t%s\t%s,%s\n", p, $4, $2, $5 }' >"$TMP/input.tsv"
kafka_produce in <"$TMP/input.tsv"
check "produced $N records to 3 partitions" test "$(kafka_consume in | wc -l)" -eq "$N"
# oracle: "partition offset value", offsets counted per partition
awk -F'\t' '{ print $1, c[$1]++, $3 }' "$TMP/input.tsv" | sort >"$TMP/expected"

# ---- 1. read at p1 and p2 ----------------------------------------------------
for p in 1 2; do
  run_tide "$TMP/read$p" run "$JOB" -p "$p" -- "$BOOT" read "$TMP/read$p"
  check_rc "read p$p exits 0" 0
  cat_parts "$TMP/read$p" | sort >"$TMP/read$p.sorted"
  check_eq "read p$p: every record once with its partition and offset" "$TMP/expected" "$TMP/read$p.sorted"
done

# ---- 2. starting offsets -------------------------------------------------------
run_tide "$TMP/latest" run "$JOB" -- "$BOOT" read "$TMP/latest" starting=latest
check_rc "starting latest exits 0" 0
cat_parts "$TMP/latest" >"$TMP/latest.all"
check_empty "starting latest, stopping latest: nothing" "$TMP/latest.all"

# (starting_offsets = {timestamp = ms} is not tested: the mock cluster of
# librdkafka 2.0.2 answers every ListOffsets by timestamp with -1, as kcat
# -o s@T shows too; docs/CONNECTORS.md says so)

# committed: a run with group g1 commits its end offsets; a second run
# from the committed offsets reads only what was produced since
run_tide "$TMP/g1a" run "$JOB" -p 2 --checkpoint-dir "$TMP/ck-g1" --checkpoint-interval 200ms \
  -- "$BOOT" read "$TMP/g1a" group=g1
check_rc "a run with group g1 exits 0" 0
printf '1\t1000\tnew,one\n2\t1000\tnew,two\n1\t1000\tnew,three\n' >"$TMP/more.tsv"
kafka_produce in <"$TMP/more.tsv"
printf '1 %d new,one\n1 %d new,three\n2 %d new,two\n' "$((N / 3))" "$((N / 3 + 1))" "$((N / 3))" >"$TMP/expected.g1"
sort "$TMP/expected" "$TMP/expected.g1" >"$TMP/expected.all"
run_tide "$TMP/g1b" run "$JOB" -p 1 -- "$BOOT" read "$TMP/g1b" group=g1 starting=committed
check_rc "a run from g1's committed offsets exits 0" 0
cat_parts "$TMP/g1b" | sort >"$TMP/g1b.sorted"
check_eq "from the committed offsets: only the 3 records produced since" "$TMP/expected.g1" "$TMP/g1b.sorted"
run_tide "$TMP/g0" run "$JOB" -p 1 -- "$BOOT" read "$TMP/g0" group=g0 starting=committed
cat_parts "$TMP/g0" >"$TMP/g0.all"
check "a group with no committed offsets starts from the earliest ($(wc -l <"$TMP/g0.all") records)" \
  test "$(wc -l <"$TMP/g0.all")" -eq "$((N + 3))"

# while a job runs: an unbounded job commits at its checkpoints; a bounded
# job from the committed offsets of its group meanwhile reads nothing
start_tide live run "$JOB" -p 2 --checkpoint-dir "$TMP/ck-live" --checkpoint-interval 200ms \
  -- "$BOOT" read "$TMP/live" group=g2 unbounded=1
wait_checkpoint "$TMP/ck-live/kafka-read" 3
check "the unbounded job completed checkpoint 3" test "$(newest_checkpoint "$TMP/ck-live/kafka-read")" -ge 3
run_tide "$TMP/g2" run "$JOB" -p 1 -- "$BOOT" read "$TMP/g2" group=g2 starting=committed
cat_parts "$TMP/g2" >"$TMP/g2.all"
check_empty "while the job runs, its group's committed offsets are the end: nothing left to read" "$TMP/g2.all"
kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null

# ---- 3. per-partition watermarks -----------------------------------------------
cat >"$TMP/windows.py" <<'PY'
import sys
DAY = 86400000
counts = {}
for line in open(sys.argv[1]):
    p, ts, value = line.rstrip("\n").split("\t")
    author = value.split(",", 1)[1]
    key = (author, int(ts) - int(ts) % DAY)
    counts[key] = counts.get(key, 0) + 1
sys.stdout.write("".join(sorted("%s,%d,%d\n" % (a, d, n) for (a, d), n in counts.items())))
PY
"$PYTHON" "$TMP/windows.py" "$TMP/input.tsv" >"$TMP/expected.windows"
kafka_produce late <"$TMP/input.tsv"
for p in 1 2; do
  run_tide "$TMP/win$p" run "$JOB" -p "$p" -- "$BOOT" windows "$TMP/win$p" topic=late "late=$TMP/win$p-late"
  check_rc "windows p$p exits 0" 0
  cat_parts "$TMP/win$p" | sort >"$TMP/win$p.sorted"
  check_eq "windows p$p on Kafka timestamps equal the Python oracle" "$TMP/expected.windows" "$TMP/win$p.sorted"
  cat_parts "$TMP/win$p-late" >"$TMP/win$p.late"
  check_empty "windows p$p: no record late (the watermark is the min over partitions)" "$TMP/win$p.late"
done

# an idle partition (Flink's withIdleness): topic "idle" has records in
# partitions 0 and 1 (the same rows in both, so the watermark at the end
# is their last timestamp - 1 whichever was read first) and none in 2; an
# unbounded job whose partitions idle after 1 s fires every window that
# ends at or before that timestamp, although partition 2 never has a
# record (without idleness it would hold the watermark back forever)
head -n "$((N / 3))" "$TMP/input.tsv" | awk -F'\t' '{ print "0\t" $2 "\t" $3; print "1\t" $2 "\t" $3 }' >"$TMP/idle.tsv"
kafka_produce idle <"$TMP/idle.tsv"
cat >"$TMP/idle.py" <<'PY'
import sys
DAY = 86400000
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
last = max(int(ts) for _, ts, _ in rows)
counts = {}
for p, ts, value in rows:
    author = value.split(",", 1)[1]
    start = int(ts) - int(ts) % DAY
    if start + DAY <= last:  # fired: max_timestamp start + DAY - 1 <= watermark last - 1
        counts[(author, start)] = counts.get((author, start), 0) + 1
sys.stdout.write("".join(sorted("%s,%d,%d\n" % (a, d, n) for (a, d), n in counts.items())))
PY
"$PYTHON" "$TMP/idle.py" "$TMP/idle.tsv" >"$TMP/expected.idle"
start_tide idle run "$JOB" -p 1 --checkpoint-dir "$TMP/ck-idle" --checkpoint-interval 200ms \
  -- "$BOOT" windows "$TMP/idle-out" topic=idle "late=$TMP/idle-late" idle=1000 unbounded=1
# the committed output grows until every window the watermark passes has
# fired and a checkpoint committed it (at most 60 s: a hang detector)
i=0
while [ "$i" -lt 600 ]; do
  cat_parts "$TMP/idle-out" | sort >"$TMP/idle.sorted"
  cmp -s "$TMP/expected.idle" "$TMP/idle.sorted" && break
  sleep 0.1
  i=$((i + 1))
done
kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
check_eq "an idle partition does not hold the watermark back: every window up to the others' watermark fired" \
  "$TMP/expected.idle" "$TMP/idle.sorted"

# ---- 4. the sink --------------------------------------------------------------------
cut -f 3 "$TMP/input.tsv" >"$TMP/lines"
sort "$TMP/lines" >"$TMP/lines.sorted"
run_tide "$TMP/alo" run "$JOB" -p 2 --checkpoint-dir "$TMP/ck-alo" --checkpoint-interval 200ms \
  -- "$BOOT" sink - topic=out_alo delivery=at_least_once "in=$TMP/lines" rate=4000
check_rc "sink at_least_once exits 0" 0
kafka_consume out_alo | sort >"$TMP/alo.sorted"
check_eq "sink at_least_once: every line once after a clean run" "$TMP/lines.sorted" "$TMP/alo.sorted"
kafka_keys out_alo | sort -u | awk '{ n[$1]++ } END { for (k in n) if (n[k] > 1) print k }' >"$TMP/alo.split"
check_empty "sink at_least_once: each key in one partition" "$TMP/alo.split"

run_tide "$TMP/eos" run "$JOB" -p 2 --checkpoint-dir "$TMP/ck-eos" --checkpoint-interval 200ms \
  -- "$BOOT" sink - topic=out_eos delivery=exactly_once "in=$TMP/lines" rate=4000
check_rc "sink exactly_once exits 0" 0
check "sink exactly_once: checkpoints completed during the run" test -n "$(completed "$TMP/ck-eos/kafka-sink")"
kafka_consume out_eos -X isolation.level=read_committed | sort >"$TMP/eos.sorted"
check_eq "sink exactly_once: a read_committed consumer sees every line once" "$TMP/lines.sorted" "$TMP/eos.sorted"

run_tide "$TMP/none" run "$JOB" -p 1 -- "$BOOT" sink - topic=out_none delivery=none "in=$TMP/lines"
check_rc "sink none exits 0" 0
kafka_consume out_none | sort >"$TMP/none.sorted"
check_eq "sink none: every line (flushed at the end)" "$TMP/lines.sorted" "$TMP/none.sorted"

# ---- 5. Kafka source resume after SIGKILL -----------------------------------------
# chaos LABEL DIR JOB_NAME KILLS MODE ARG...: runs the job (MODE ARG... as
# kafka_job.lua takes them, checkpoints every 200 ms into DIR/ck) at p2,
# SIGKILLs it after 0.6-1.6 s and resumes it, KILLS times, then lets the
# last --resume run to its end (RC, LAST as run_tide sets them)
chaos() {
  label=$1 d=$2 name=$3 want=$4
  shift 4
  kill_resume "$label" "$d" "$want" 0.6 "$BOOT" "$@"
  check_match "$label: the last run resumed from a checkpoint" "$d/final.err" \
    "resuming job '$name' from checkpoint [0-9]+"
}

# about 6 s of input at 1000 records/s
d=$TMP/chaos
chaos "resume after SIGKILL" "$d" kafka-read 4 read "$d/out" rate=1000 group=chaos
cat_parts "$d/out" | sort >"$d/actual"
check_eq "resume after SIGKILL: every record once, no offset skipped or repeated" \
  "$TMP/expected.all" "$d/actual"

# the at-least-once sink killed and resumed: every line at least once
d=$TMP/alo-chaos
chaos "sink at_least_once after SIGKILL" "$d" kafka-sink 3 sink - topic=out_alo2 delivery=at_least_once \
  "in=$TMP/lines" rate=1000
kafka_consume out_alo2 | sort >"$d/all"
sort -u "$d/all" >"$d/unique"
check_eq "sink at_least_once after SIGKILL: every line at least once" "$TMP/lines.sorted" "$d/unique"
echo "# sink at_least_once after SIGKILL: $(wc -l <"$d/all") records for $(wc -l <"$TMP/lines") lines"

# restored at another parallelism: p2, killed after checkpoint 3, resumed
# at p3, killed after a later checkpoint, resumed at p1 to the end
d=$TMP/rescale
"$TIDE" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms \
  -- "$BOOT" read "$d/out" rate=1000 >"$d.a1.out" 2>"$d.a1.err" &
kill_at_checkpoint $! "$d/ck/kafka-read" 3
check_str "rescale: the p2 run was killed after checkpoint 3" 137 "$KILLED"
c=$(newest_checkpoint "$d/ck/kafka-read")
"$TIDE" run "$JOB" -p 3 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms --resume \
  -- "$BOOT" read "$d/out" rate=1000 >"$d.a2.out" 2>"$d.a2.err" &
kill_at_checkpoint $! "$d/ck/kafka-read" $((c + 3))
check_str "rescale: the p3 run resumed and was killed after 3 more checkpoints" 137 "$KILLED"
check_contains "rescale: the p3 run resumed from checkpoint $c" "$d.a2.err" "from checkpoint $c"
# (the last run only has to finish: five times the rate)
run_tide "$d/final" run "$JOB" -p 1 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms --resume \
  -- "$BOOT" read "$d/out" rate=5000
check_rc "rescale: the p1 resume runs to the end" 0
cat_parts "$d/out" | sort >"$d/actual"
check_eq "rescale p2 -> p3 -> p1: every record once, no offset skipped or repeated" "$TMP/expected.all" "$d/actual"

# a broker failure during a job fails it (after the restart strategy's
# attempts), naming the operator; with the brokers back, --resume reads
# on from the last checkpoint: every record once
d=$TMP/down
"$TIDE" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms \
  -- "$BOOT" read "$d/out" rate=1000 >"$d.a1.out" 2>"$d.a1.err" &
pid=$!
wait_checkpoint "$d/ck/kafka-read" 2
kill -USR1 "$MOCK_PID"
wait "$pid"
RC=$? LAST=$d.a1
kill -USR2 "$MOCK_PID"
check "brokers down: the job fails" test "$RC" -ne 0 -a "$RC" -ne 137
check_match "brokers down: the error names the operator, its file:line and the brokers" "$d.a1.err" \
  "job 'kafka-read' failed: operator 'kafka-in' \\(read_kafka, defined at tests/e2e/kafka_job.lua:[0-9]+\\) failed in subtask [12]/2: every Kafka broker is down or unreachable"
run_tide "$d/final" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms --resume \
  -- "$BOOT" read "$d/out" rate=5000
check_rc "brokers back: --resume runs to the end" 0
cat_parts "$d/out" | sort >"$d/actual"
check_eq "brokers down and back: every record once" "$TMP/expected.all" "$d/actual"

# ---- 6. errors -------------------------------------------------------------------------
# bad_job NAME LINE: runs a job whose line 3 is LINE (the error's line)
bad_job() {
  printf 'local tide = require "tide"\nlocal env = tide.env()\n%s\nenv:execute("%s")\n' "$2" "$1" >"$TMP/$1.lua"
  run_tide "$TMP/$1" run "$TMP/$1.lua"
}
bad_job bad_topic "env:read_kafka{ bootstrap_servers = '$BOOT', topics = { 'nosuch' }, stopping_offsets = 'latest' }:discard()"
check "unknown topic: the job fails" test "$RC" -ne 0
check_contains "unknown topic: named, with the script's file:line" "$TMP/bad_topic.err" \
  "bad_topic.lua:3) failed in subtask 1/1: unknown topic 'nosuch'"

bad_job unreachable "env:read_kafka{ bootstrap_servers = '127.0.0.1:1', topics = { 'in' }, timeout = '1s' }:discard()"
check "unreachable brokers: the job fails" test "$RC" -ne 0
check_match "unreachable brokers: a clear error with the script's file:line" "$TMP/unreachable.err" \
  "unreachable.lua:3\\) failed in subtask 1/1: cannot read the cluster's metadata within 1000 ms"

bad_job bad_opts "env:read_kafka{ bootstrap_servers = '127.0.0.1:1', topics = { 'in' }, starting_offsets = 'soon' }:discard()"
check_rc "a bad option: exit 1" 1
check_contains "a bad option: named with file:line" "$TMP/bad_opts.err" \
  "bad_opts.lua:3: read_kafka: starting_offsets must be 'earliest', 'latest', 'committed' or {timestamp = ms}, not soon"

bad_job bad_prop "env:from_list({ 'a' }):write_kafka{ bootstrap_servers = '127.0.0.1:1', topic = 'x', properties = { ['no.such.property'] = '1' } }"
check "a bad librdkafka property: the job fails" test "$RC" -ne 0
check_contains "a bad librdkafka property: named" "$TMP/bad_prop.err" "property 'no.such.property' = '1'"

bad_job key_field "env:from_list({ 'a' }):write_kafka{ bootstrap_servers = '$BOOT', topic = 'out_none', key = 'user' }"
check "a key field on a record that is not a table: the job fails" test "$RC" -ne 0
check_contains "a key field on a record that is not a table: named" "$TMP/key_field.err" \
  "key_field.lua:3) failed in subtask 1/1: key = 'user' names a field, but a record is a string, not a table: a"

bad_job no_prefix "env:from_list({ 'a' }):write_kafka{ bootstrap_servers = '127.0.0.1:1', topic = 'x', delivery_guarantee = 'exactly_once' }"
check_contains "exactly_once without transactional_id_prefix: named with file:line" "$TMP/no_prefix.err" \
  "no_prefix.lua:3: write_kafka: delivery_guarantee = 'exactly_once' needs transactional_id_prefix"

finish
