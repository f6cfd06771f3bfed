#!/bin/sh
# scripts/bench/kafka.sh - the Kafka source's throughput (issue 12):
# records/s of read_kafka (bounded, format "text", parallelism 1) into a
# discarding sink, beside librdkafka's own consumer loop (kcat -C, a C
# program over the same library writing each value to /dev/null), both
# reading the same topic of 8 partitions from librdkafka's mock cluster
# (started here, killed on exit) in the same run, rounds interleaved.
# (The mock keeps about 5 MB per partition and trims older records: the
# count is what both readers find, checked equal.)
#
#   BUILD=build DATA=../shared/data [KAFKA_COPIES=6] [RUNS=3] sh scripts/bench/kafka.sh
#
# Input: git-commits.csv's rows KAFKA_COPIES times over (81,966 each).
# The mock broker runs on the same 2 cores, so both figures include the
# broker's share; compare them with each other, not with a real cluster.
set -u
BUILD=${BUILD:-build}
DATA=${DATA:-../shared/data}
COPIES=${KAFKA_COPIES:-6}
RUNS=${RUNS:-3}
TIDE=$BUILD/tide
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-kafka.XXXXXX") || exit 2
MOCK_PID=
trap '[ -n "$MOCK_PID" ] && kill "$MOCK_PID"; rm -rf "$TMP"' EXIT
for f in "$TIDE" "$BUILD/tests/kafka_mock_cluster" "$BUILD/tests/kafka_produce"; do
  [ -x "$f" ] || { echo "kafka.sh: $f missing (make all build/tests/kafka_mock_cluster build/tests/kafka_produce)" >&2; exit 2; }
done
"$BUILD/tests/kafka_mock_cluster" 1 bench:8 >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!
i=0
while [ ! -s "$TMP/mock.out" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
BOOT=$(head -n 1 "$TMP/mock.out")
c=0
while [ "$c" -lt "$COPIES" ]; do
  tail -n +2 "$DATA/git-commits.csv"
  c=$((c + 1))
done | awk '{ printf "%d\t%d\t%s\n", NR % 8, 1000 + NR, $0 }' | "$BUILD/tests/kafka_produce" "$BOOT" bench || exit 2
N=$(kcat -C -b "$BOOT" -t bench -e -q -o beginning -f '%s\n' | wc -l)
cat >"$TMP/job.lua" <<LUA
local tide = require "tide"
local env = tide.env()
env:read_kafka{ bootstrap_servers = "$BOOT", topics = { "bench" }, stopping_offsets = "latest" }
  :discard()
env:execute("bench-kafka")
LUA
# the same job writing what it reads: its count must be N
sed "s|:discard()|:write_text('$TMP/out')|" "$TMP/job.lua" >"$TMP/check.lua"
"$TIDE" run "$TMP/check.lua" 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
got=$(cat "$TMP"/out/part-* | wc -l)
[ "$got" -eq "$N" ] || { echo "kafka.sh: read_kafka read $got records, kcat $N" >&2; exit 1; }
# secs COMMAND...: wall seconds of COMMAND (stdout discarded)
secs() {
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$TMP/err" || { echo "kafka.sh: failed: $*" >&2; cat "$TMP/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}
echo "| round | read_kafka -> discard (records/s) | kcat -C (records/s) |"
echo "|---|---|---|"
r=1
while [ "$r" -le "$RUNS" ]; do
  t=$(secs "$TIDE" run "$TMP/job.lua")
  k=$(secs kcat -C -b "$BOOT" -t bench -e -q -o beginning -f '%s\n')
  echo "$r $t $k $N" | awk '{ printf "| %d | %.0f (%.2f s) | %.0f (%.2f s) |\n", $1, $4 / $2, $2, $4 / $3, $3 }'
  r=$((r + 1))
done
echo "records: $N in 8 partitions, mock cluster of librdkafka $(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null)"
