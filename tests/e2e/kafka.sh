# tests/e2e/kafka.sh - helpers for the Kafka end-to-end tests (POSIX sh),
# sourced after tests/e2e/lib.sh:
#
#   kafka_start TOPIC:PARTITIONS ...   start librdkafka's mock cluster
#       (build/tests/kafka_mock_cluster, 3 brokers) with these topics; BOOT
#       is its bootstrap servers, MOCK_PID its process (kill -USR1 takes
#       every broker down, -USR2 brings them back). The cluster lives as
#       long as the test: the EXIT trap kills it (and removes TMP, as
#       lib.sh's does, unless KEEP is set: for debugging).
#   kafka_produce TOPIC < lines "PARTITION<TAB>TS_MS<TAB>VALUE"
#   kafka_consume TOPIC [KCAT_ARG...]  every record's value of TOPIC, one
#       a line, read with kcat up to the end of every partition
#   kafka_keys TOPIC                   "key partition" per record

KAFKA_BIN=${KAFKA_BIN:-${BUILD:-build}/tests}
MOCK_PID=

kafka_stop() {
  if [ -n "$MOCK_PID" ]; then
    kill "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
    MOCK_PID=
  fi
}
trap 'kafka_stop; [ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT

kafka_start() {
  if [ ! -x "$KAFKA_BIN/kafka_mock_cluster" ] || [ ! -x "$KAFKA_BIN/kafka_produce" ]; then
    echo "not ok 1 - $KAFKA_BIN/kafka_mock_cluster or kafka_produce is missing (make test-e2e builds them)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  "$KAFKA_BIN/kafka_mock_cluster" 3 "$@" >"$TMP/mock.out" 2>"$TMP/mock.err" &
  MOCK_PID=$!
  BOOT=
  _k_i=0
  while [ -z "$BOOT" ] && [ "$_k_i" -lt 100 ]; do
    BOOT=$(head -n 1 "$TMP/mock.out" 2>/dev/null)
    [ -n "$BOOT" ] || sleep 0.05
    _k_i=$((_k_i + 1))
  done
  if [ -z "$BOOT" ]; then
    echo "not ok 1 - the mock cluster did not start"
    diag "$TMP/mock.err"
    echo "0 passed, 1 failed"
    exit 1
  fi
}

kafka_produce() {
  "$KAFKA_BIN/kafka_produce" "$BOOT" "$1"
}

kafka_consume() {
  _k_t=$1
  shift
  timeout 60 kcat -C -b "$BOOT" -t "$_k_t" -e -q -f '%s\n' "$@"
}

kafka_keys() {
  timeout 60 kcat -C -b "$BOOT" -t "$1" -e -q -f '%k %p\n'
}
