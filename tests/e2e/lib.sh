# tests/e2e/lib.sh - shared helpers for Tide's end-to-end tests (POSIX sh).
#
# Source it from a test script run from the repository root:
#
#   . tests/e2e/lib.sh
#   run_tide "$TMP/job" run "$TMP/job.lua" --parallelism 2 -- "$TMP/out"
#   check_rc "job exits 0" 0
#   check_eq "output" "$TMP/expected" "$TMP/actual"
#   finish
#
# Environment:
#   TIDE    the tide binary (default build/tide, or build/tide-luajit when
#           TIDE_VM is luajit)
#   TIDE_VM the Lua VM that $TIDE runs jobs on: lua5.4 (default) or luajit;
#           by_vm picks the expected output where the VMs differ by design
#           (docs/LUAJIT.md)
#   DATA    the shared data directory (default ../shared/data)
#   PYTHON  python3, used by some oracles (default python3)
#
# Every check prints one TAP-style line, "ok N - name" or "not ok N - name"
# followed by "#"-prefixed diagnostics; finish prints exactly one final line
# "N passed, N failed" and exits non-zero when anything failed.
# TMP is a fresh directory from mktemp -d, removed when the script exits.

TIDE_VM=${TIDE_VM:-lua5.4}
[ "$TIDE_VM" = luajit ] && TIDE=${TIDE:-build/tide-luajit}
TIDE=${TIDE:-build/tide}
DATA=${DATA:-../shared/data}
# the interpreter itself, not a wrapper in PATH (a pyenv shim costs about
# 0.35 s of CPU at every start on the CI machines; the interpreter 0.03 s)
if [ -z "${PYTHON:-}" ]; then
  PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
  [ -x "$PYTHON" ] || PYTHON=python3
fi
# Every tide run gets this many seconds before it counts as a hang.
TIDE_TIMEOUT=${TIDE_TIMEOUT:-120}
export LC_ALL=C

_e2e_n=0
_e2e_pass=0
_e2e_fail=0
RC=
LAST=

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-e2e.XXXXXX") || {
  echo "cannot create a temporary directory" >&2
  echo "0 passed, 1 failed"
  exit 1
}
trap 'rm -rf "$TMP"' EXIT
if [ ! -x "$TIDE" ]; then
  echo "not ok 1 - tide binary '$TIDE' is missing (make all, or set TIDE)"
  echo "0 passed, 1 failed"
  exit 1
fi
trap 'exit 130' INT
trap 'exit 143' TERM

# Indent a file (or stdin) as "#" diagnostics, at most $2 lines (default 15).
diag() {
  if [ -n "${1:-}" ] && [ "$1" != - ]; then
    [ -f "$1" ] || { echo "#   ($1: no such file)"; return 0; }
    head -n "${2:-15}" "$1" | sed 's/^/#   /'
  else
    head -n "${2:-15}" | sed 's/^/#   /'
  fi
}

ok() {
  _e2e_n=$((_e2e_n + 1))
  _e2e_pass=$((_e2e_pass + 1))
  echo "ok $_e2e_n - $1"
}

not_ok() {
  _e2e_n=$((_e2e_n + 1))
  _e2e_fail=$((_e2e_fail + 1))
  echo "not ok $_e2e_n - $1"
}

# check NAME COMMAND [ARG...]: passes when COMMAND exits 0; on failure
# shows what it printed.
check() {
  _e2e_name=$1
  shift
  if "$@" >"$TMP/.check.out" 2>&1; then
    ok "$_e2e_name"
  else
    not_ok "$_e2e_name"
    echo "#   command failed: $*"
    diag "$TMP/.check.out"
  fi
}

# check_eq NAME EXPECTED_FILE ACTUAL_FILE: byte-identical files; on failure
# shows line counts and the start of a unified diff.
check_eq() {
  if cmp -s "$2" "$3"; then
    ok "$1"
  else
    not_ok "$1"
    echo "#   expected $2 ($(wc -l <"$2" 2>/dev/null || echo '?') lines), got $3 ($(wc -l <"$3" 2>/dev/null || echo '?') lines)"
    diff -u "$2" "$3" 2>&1 | diag - 25
  fi
}

# check_str NAME EXPECTED ACTUAL: two strings are equal.
check_str() {
  if [ "$2" = "$3" ]; then
    ok "$1"
  else
    not_ok "$1"
    echo "#   expected: '$2'"
    echo "#   got:      '$3'"
  fi
}

# check_contains NAME FILE STRING: FILE contains STRING (a fixed string).
check_contains() {
  if grep -qF -e "$3" "$2" 2>/dev/null; then
    ok "$1"
  else
    not_ok "$1"
    echo "#   '$2' does not contain: $3"
    diag "$2"
  fi
}

# check_not_contains NAME FILE STRING
check_not_contains() {
  if grep -qF -e "$3" "$2" 2>/dev/null; then
    not_ok "$1"
    echo "#   '$2' contains: $3"
    grep -nF -e "$3" "$2" | diag -
  else
    ok "$1"
  fi
}

# check_match NAME FILE ERE: some line of FILE matches the extended regex.
check_match() {
  if grep -qE -e "$3" "$2" 2>/dev/null; then
    ok "$1"
  else
    not_ok "$1"
    echo "#   no line of '$2' matches: $3"
    diag "$2"
  fi
}

# check_empty NAME FILE: FILE exists and is empty.
check_empty() {
  if [ -f "$2" ] && [ ! -s "$2" ]; then
    ok "$1"
  else
    not_ok "$1"
    echo "#   '$2' is not empty:"
    diag "$2"
  fi
}

# run_tide BASE ARG...: runs "$TIDE" ARG... under a timeout; stdout goes to
# BASE.out, stderr to BASE.err, the exit status to RC (124: it hung). A run
# that outlives TIDE_TIMEOUT has its threads' stacks written to BASE.hang
# (gdb, where installed) before it is stopped with SIGTERM (SIGKILL 10 s
# later), so that a rare hang can be diagnosed from the test's log.
run_tide() {
  LAST=$1
  shift
  rm -f "$LAST.timedout" "$LAST.hang"
  "$TIDE" "$@" >"$LAST.out" 2>"$LAST.err" &
  _rt_pid=$!
  (
    trap 'kill "$_rt_s" 2>/dev/null; exit 0' TERM
    sleep "$TIDE_TIMEOUT" &
    _rt_s=$!
    wait "$_rt_s"
    kill -0 "$_rt_pid" 2>/dev/null || exit 0
    : >"$LAST.timedout"
    if command -v gdb >/dev/null 2>&1; then
      # its child processes first (snapshot children), then its threads
      for _rt_c in $(pgrep -P "$_rt_pid" 2>/dev/null); do
        echo "Process $_rt_c (a child of $_rt_pid): $(tr '\0' ' ' </proc/"$_rt_c"/cmdline 2>/dev/null)"
        timeout 60 gdb -batch -p "$_rt_c" -ex "bt" 2>&1
      done >"$LAST.hang"
      timeout 60 gdb -batch -p "$_rt_pid" -ex "thread apply all bt" >>"$LAST.hang" 2>&1
    fi
    kill -TERM "$_rt_pid" 2>/dev/null
    sleep 10
    kill -KILL "$_rt_pid" 2>/dev/null
  ) >/dev/null 2>&1 &
  _rt_dog=$!
  wait "$_rt_pid"
  RC=$?
  kill -TERM "$_rt_dog" 2>/dev/null
  wait "$_rt_dog" 2>/dev/null
  [ -e "$LAST.timedout" ] && RC=124
  return 0
}

# start_tide NAME ARG...: runs "$TIDE" ARG... in the background under the
# timeout (stdout NAME.out, stderr NAME.err in $TMP) and waits until it
# prints its job id; sets PID (the timeout's), ID (the job id, empty if
# none came), ADDR (its control endpoint, host:port).
start_tide() {
  _e2e_sname=$1
  shift
  timeout -k 10 "$TIDE_TIMEOUT" "$TIDE" "$@" >"$TMP/$_e2e_sname.out" 2>"$TMP/$_e2e_sname.err" &
  PID=$!
  ID=
  _e2e_i=0
  while [ -z "$ID" ] && [ "$_e2e_i" -lt 200 ]; do
    ID=$(sed -n 's/^tide: job \([0-9a-f]*\), control at .*/\1/p' "$TMP/$_e2e_sname.err" 2>/dev/null)
    [ -n "$ID" ] || sleep 0.05
    _e2e_i=$((_e2e_i + 1))
  done
  ADDR=$(sed -n 's|^tide: job [0-9a-f]*, control at http://||p' "$TMP/$_e2e_sname.err")
}

# wait_tide NAME: waits for the run start_tide began; RC and LAST as
# run_tide sets them.
wait_tide() {
  wait "$PID"
  RC=$?
  LAST=$TMP/$1
}

# check_rc NAME WANT: the last run_tide exited with status WANT; on failure
# shows its stderr.
# stop_savepoint NAME LABEL: a second after start_tide NAME began a job,
# stop it with a savepoint into $TMP/sp-NAME (checked: tide stop and the
# job exit 0); SP is the savepoint's directory
stop_savepoint() {
  sleep 1
  run_tide "$TMP/stop-$1" stop "$ID" --savepoint "$TMP/sp-$1"
  check_rc "$2: tide stop --savepoint: exit 0" 0
  SP=$(cat "$TMP/stop-$1.out")
  wait_tide "$1"
  check_rc "$2: the stopped job exits 0" 0
}

check_rc() {
  if [ "$RC" = "$2" ]; then
    ok "$1"
  else
    not_ok "$1"
    case $RC in
    124 | 137) echo "#   exit status $RC (timed out after ${TIDE_TIMEOUT}s: a hang?), expected $2" ;;
    *) echo "#   exit status $RC, expected $2" ;;
    esac
    echo "#   stderr of $LAST:"
    diag "$LAST.err"
    if [ -s "$LAST.hang" ]; then
      echo "#   its threads when it timed out:"
      grep -E '^Process|^Thread|^#' "$LAST.hang" | diag - 160
    fi
  fi
}

# committed_parts DIR: the committed part files of a file sink's output
# directory (names not starting with "." or "_"), one path a line.
committed_parts() {
  for _e2e_f in "$1"/*; do
    [ -f "$_e2e_f" ] || continue
    case ${_e2e_f##*/} in
    .* | _*) ;;
    *) echo "$_e2e_f" ;;
    esac
  done
}

# cat_parts DIR: the committed part files of DIR concatenated (nothing when
# there are none).
cat_parts() {
  committed_parts "$1" >"$TMP/.parts"
  while IFS= read -r _e2e_f; do cat "$_e2e_f"; done <"$TMP/.parts"
}

# completed JOB_DIR: the ids of the completed checkpoints (those with a
# _metadata) of a job's checkpoint directory, newest first.
completed() {
  for _c in "$1"/chk-*/_metadata; do
    [ -f "$_c" ] || continue
    _c=${_c%/_metadata}
    echo "${_c##*/chk-}"
  done | sort -rn
}

# wait_completed JOB_DIR N [TRIES]: wait until JOB_DIR has N completed
# checkpoints, looking every 50 ms, at most TRIES times (default 200).
wait_completed() {
  _e2e_i=0
  while [ "$(completed "$1" | wc -l)" -lt "$2" ] && [ "$_e2e_i" -lt "${3:-200}" ]; do
    sleep 0.05
    _e2e_i=$((_e2e_i + 1))
  done
}

# newest_checkpoint JOB_DIR: the id of the newest completed checkpoint of
# a job's checkpoint directory (0: none).
newest_checkpoint() { completed "$1" | head -n 1 | grep . || echo 0; }

# wait_checkpoint JOB_DIR ID: wait until JOB_DIR's newest completed
# checkpoint is ID or later, looking every 20 ms, at most 30 s (a machine
# busy with the parallel suite can take seconds per checkpoint).
wait_checkpoint() {
  _e2e_i=0
  while [ "$(newest_checkpoint "$1")" -lt "$2" ] && [ "$_e2e_i" -lt 1500 ]; do
    sleep 0.02
    _e2e_i=$((_e2e_i + 1))
  done
}

# kill_at_checkpoint PID JOB_DIR ID: once JOB_DIR completed checkpoint ID
# (wait_checkpoint), SIGKILL PID (a child of this shell) and wait for it;
# KILLED is its exit status (137: killed, not ended first).
kill_at_checkpoint() {
  wait_checkpoint "$2" "$3"
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  KILLED=$?
}

# check_rc_of NAME WANT GOT STDERR_FILE: exit status GOT is WANT; on
# failure shows STDERR_FILE.
check_rc_of() {
  if [ "$3" = "$2" ]; then ok "$1"; else
    not_ok "$1"
    echo "#   exit status $3, expected $2"
    diag "$4"
  fi
}

# hidden_files DIR: names in DIR starting with "." (in-progress/pending).
hidden_files() {
  for _e2e_f in "$1"/.[!.]* "$1"/..?*; do
    [ -e "$_e2e_f" ] && echo "${_e2e_f##*/}"
  done
  return 0
}

# by_vm LUA54 LUAJIT: prints the first under Lua 5.4, the second under
# LuaJIT (TIDE_VM), for what docs/LUAJIT.md says differs between them.
by_vm() {
  if [ "$TIDE_VM" = luajit ]; then printf '%s' "$2"; else printf '%s' "$1"; fi
}

# strip_prefix: drop print()'s "N> " subtask prefixes.
strip_prefix() {
  sed -E 's/^[0-9]+> //'
}

# await_jobmanager OUT: the address ("ADDR:PORT") a `tide jobmanager`
# whose stdout goes to file OUT prints on its "jobmanager ADDR:PORT" line,
# once it is there (up to 5 s; empty if it does not come).
await_jobmanager() {
  _e2e_i=0 _e2e_jm=
  while [ -z "$_e2e_jm" ] && [ "$_e2e_i" -lt 100 ]; do
    _e2e_jm=$(sed -n 's/^jobmanager //p' "$1" 2>/dev/null)
    [ -n "$_e2e_jm" ] || sleep 0.05
    _e2e_i=$((_e2e_i + 1))
  done
  echo "$_e2e_jm"
}

# finish: the final line "N passed, N failed"; exit status 1 on failures
# (or when no check ran at all).
# wait_output DIR [new]: wait until a file sink's directory DIR holds a
# file with data in it (an in-progress part file gets its first 4 KiB of
# records), with "new" an in-progress one (DIR holds committed output
# already): the job runs and wrote records, so a cut taken now is mid-run
# and not empty (a fixed second before); looking every 50 ms, at most 30 s
wait_output() {
  _wo_i=0
  while [ "$_wo_i" -lt 600 ]; do
    for _wo_f in "$1"/.[!.]*; do
      [ -s "$_wo_f" ] && return 0
    done
    if [ "${2:-}" != new ]; then
      for _wo_f in "$1"/*; do
        [ -s "$_wo_f" ] && return 0
      done
    fi
    sleep 0.05
    _wo_i=$((_wo_i + 1))
  done
}

# faster ARG: ARG, or for rate=N and rate_limit=N the rate FINAL_SPEEDUP
# (default 5) times higher: the last run after a test's kills only has to
# finish
faster() {
  case $1 in
  rate=* | rate_limit=*) echo "${1%%=*}=$((${1#*=} * ${FINAL_SPEEDUP:-5}))" ;;
  *) printf '%s\n' "$1" ;;
  esac
}

# kill_resume LABEL DIR WANT MIN_DELAY ARG...: runs `$TIDE run $JOB -p 2
# --checkpoint-dir DIR/ck --checkpoint-interval 200ms [--resume] -- ARG...`
# in the background and SIGKILLs it after MIN_DELAY plus 0-1 s (drawn from
# SEED), WANT times, each run with --resume once DIR/ck holds a completed
# checkpoint; then lets a last run go to its end (RC, LAST as run_tide
# sets them), with a rate=N or rate_limit=N argument FINAL_SPEEDUP (default
# 5) times higher. Checks that every attempt ran until killed and that the
# last one exits 0. AFTER_KILL, if set, is a command run after each kill.
kill_resume() {
  _kr_label=$1 _kr_d=$2 _kr_want=$3 _kr_min=$4
  shift 4
  mkdir -p "$_kr_d"
  awk -v s="$SEED$_kr_want" -v m="$_kr_min" \
    'BEGIN { srand(s); for (i = 0; i < 20; i++) printf "%.2f\n", m + rand() }' >"$_kr_d/delays"
  _kr_kills=0 _kr_n=0 _kr_resume='' _kr_bad=''
  while [ "$_kr_kills" -lt "$_kr_want" ] && read -r _kr_delay; do
    _kr_n=$((_kr_n + 1))
    "$TIDE" run "$JOB" -p 2 --checkpoint-dir "$_kr_d/ck" --checkpoint-interval 200ms $_kr_resume \
      -- "$@" >"$_kr_d/a$_kr_n.out" 2>"$_kr_d/a$_kr_n.err" &
    _kr_pid=$!
    sleep "$_kr_delay"
    kill -KILL "$_kr_pid" 2>/dev/null
    wait "$_kr_pid" 2>/dev/null
    _kr_rc=$?
    if [ "$_kr_rc" = 137 ]; then
      _kr_kills=$((_kr_kills + 1))
      [ -n "${AFTER_KILL:-}" ] && $AFTER_KILL
      for _kr_j in "$_kr_d"/ck/*; do [ -n "$(completed "$_kr_j")" ] && _kr_resume=--resume; done
    else
      _kr_bad="attempt $_kr_n (kill after ${_kr_delay}s) exited $_kr_rc"
      break
    fi
  done <"$_kr_d/delays"
  if [ -n "$_kr_bad" ]; then
    not_ok "$_kr_label: every attempt runs until killed"
    echo "#   $_kr_bad"
    diag "$_kr_d/a$_kr_n.err"
  else
    ok "$_kr_label: killed $_kr_kills times"
  fi
  echo "# $_kr_label: seed $SEED, kills after $(head -n "$_kr_n" "$_kr_d/delays" | tr '\n' ' ')s"
  # the kills are over: the last run only has to finish, at FINAL_SPEEDUP
  # (default 5) times a rate=N or rate_limit=N argument's rate
  # (each argument taken from the front and put back at the end)
  _kr_i=$#
  while [ "$_kr_i" -gt 0 ]; do
    _kr_a=$(faster "$1")
    shift
    set -- "$@" "$_kr_a"
    _kr_i=$((_kr_i - 1))
  done
  run_tide "$_kr_d/final" run "$JOB" -p 2 --checkpoint-dir "$_kr_d/ck" --checkpoint-interval 200ms $_kr_resume \
    -- "$@"
  check_rc "$_kr_label: the last --resume runs to the end" 0
}

finish() {
  echo "$_e2e_pass passed, $_e2e_fail failed"
  [ "$_e2e_fail" -eq 0 ] && [ "$_e2e_n" -gt 0 ]
}
