# scripts/bench/lib.sh - helpers shared by run.sh and checkpoint.sh (sourced;
# the caller sets TMP).

# die MESSAGE: the benchmark cannot run (setup, missing tools or inputs).
die() { echo "bench: $*" >&2; exit 2; }

# timed NAME CMD...: run CMD once under /usr/bin/time; stdout to
# $TMP/NAME.out, stderr to $TMP/NAME.err, "NAME WALL_S RSS_KB USER_S SYS_S"
# appended to $TMP/times, and a checkpoint stats line, if any, to
# $TMP/stats as "NAME LINE". A failing command stops with status 1.
timed() {
  name=$1
  shift
  if ! /usr/bin/time -f '%e %M %U %S' -o "$TMP/time" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then
    echo "bench: $name failed: $*" >&2
    tail -n 20 "$TMP/$name.err" >&2
    exit 1
  fi
  printf '%s %s\n' "$name" "$(tail -n 1 "$TMP/time")" >>"$TMP/times"
  grep '^tide: checkpoint stats:' "$TMP/$name.err" | sed "s/^/$name /" >>"$TMP/stats"
}

# fail NAME MESSAGE: a job ran but gave a wrong result.
fail() {
  echo "bench: $1 gave a wrong result: $2" >&2
  exit 1
}

# "DISTINCT TOTAL" of committed part files whose rows end in a count.
tide_counts() {
  cat "$1"/part-* | awk -F, '{ d++; t += $NF } END { printf "%d %d\n", d, t }'
}

# bench_setup NAME: check that $TIDE was built, make TMP (a fresh
# directory, removed at exit) and decompress the messages into TXT.
bench_setup() {
  [ -x "$TIDE" ] || die "$TIDE not found (make all)"
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-$1.XXXXXX") || die "mktemp failed"
  trap 'rm -rf "$TMP"' EXIT
  trap 'exit 130' INT TERM
  TXT=$TMP/git-messages.txt
  gzip -dc "$DATA/git-messages.txt.gz" >"$TXT" || die "cannot decompress the messages"
}
