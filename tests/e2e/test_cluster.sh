#!/bin/sh
# End-to-end: cluster mode on loopback (docs/CLUSTER.md). A job manager and
# task managers as separate processes, jobs submitted with tide run
# --jobmanager, records crossing processes over the network shuffle.
#   - the secret file: refused when others may read it, never printed;
#     usage errors exit 2
#   - task managers register and heartbeat; one with the wrong secret is
#     refused; a stopped one (SIGSTOP) is lost after the heartbeat timeout
#     and registers again once it runs (SIGCONT)
#   - wordcount at p=2 across two task managers equals the shell oracle of
#     test_wordcount.sh, twice at once on the same task managers (on the
#     first 300000 lines of the messages: some data, across processes)
#   - tide run --detached: the job manager starts the job's master
#   - tide savepoint / stop --savepoint / cancel --jobmanager; a job stopped
#     with a savepoint and resumed from it on the cluster equals the oracle
#   - chaos: chaos_job.lua at p=2 with checkpoints while task managers are
#     SIGKILLed at random moments (CLUSTER_KILLS, default 10) and replaced;
#     the source goes at 2000 records/s (and the slow operator of LuaJIT's
#     runs is slow) until the last kill, then fast;
#     the job restarts from its latest checkpoint on the slots that remain
#     and its committed output equals the Python oracle, exactly once; the
#     job manager is SIGKILLed and restarted on its address after the
#     second kill (the job runs on; restarts take slots from the new one)
. tests/e2e/lib.sh

# ten kills under Lua 5.4, three under LuaJIT (the same path, fewer times)
# (and there with unaligned checkpoints, whose in-flight data crosses
# processes: a slow operator backs its input up)
KILLS=${CLUSTER_KILLS:-10}
CHAOS_MODE=
[ "$TIDE_VM" = luajit ] && KILLS=${CLUSTER_KILLS:-3} && CHAOS_MODE="unaligned=1 slow=100"
SEED=${SEED:-$$}
echo "# SEED=$SEED (replay: SEED=$SEED sh tests/e2e/test_cluster.sh)"
PIDS=
cleanup() {
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# -- the secret and usage ------------------------------------------------------
head -c 48 /dev/urandom | base64 | tr -d '\n' >"$TMP/secret"
SECRET_TEXT=$(cat "$TMP/secret")
chmod 644 "$TMP/secret"
run_tide "$TMP/badmode" jobmanager --bind 127.0.0.1:0 --secret-file "$TMP/secret"
check_rc "a secret file others may read: jobmanager exits 2" 2
check_contains "... and says so" "$TMP/badmode.err" "may be read by others"
chmod 600 "$TMP/secret"
run_tide "$TMP/usage" taskmanager --slots 2
check_rc "taskmanager without --jobmanager: exit 2" 2
check_contains "... with its usage" "$TMP/usage.err" "usage: tide taskmanager"
run_tide "$TMP/usage2" run scripts/wordcount.lua --jobmanager 127.0.0.1:1 -- x y
check_rc "run --jobmanager without --secret-file: exit 2" 2

# -- the cluster -----------------------------------------------------------------
"$TIDE" jobmanager --bind 127.0.0.1:0 --secret-file "$TMP/secret" --heartbeat-interval 200ms \
  --heartbeat-timeout 2s --work-dir "$TMP/jm-work" >"$TMP/jm.out" 2>"$TMP/jm.err" &
JM_PID=$!
PIDS="$PIDS $JM_PID"
JM=$(await_jobmanager "$TMP/jm.out")
check "the job manager prints its address ($JM)" test -n "$JM"

N_TM=0
# task managers work in another directory than the job masters: the jobs'
# relative paths ($DATA, the checkpoint directories) mean the master's
ABS_TIDE=$(cd "$(dirname "$TIDE")" && pwd)/$(basename "$TIDE")
mkdir "$TMP/tm-cwd"
start_tm() { # start_tm [SECRET]: a task manager with 2 slots; TM_PID
  N_TM=$((N_TM + 1))
  (cd "$TMP/tm-cwd" && exec "$ABS_TIDE" taskmanager --jobmanager "$JM" \
    --secret-file "${1:-$TMP/secret}" --slots 2 >"$TMP/tm$N_TM.out" 2>"$TMP/tm$N_TM.err") &
  TM_PID=$!
  PIDS="$PIDS $TM_PID"
}
registered() { # the number of task managers tide list shows
  "$TIDE" list --jobmanager "$JM" --secret-file "$TMP/secret" 2>/dev/null |
    awk '/^TASK MANAGER/ {t = 1; next} /^$/ {t = 0} t' | grep -c .
}
await_registered() { # await_registered N: up to 10 s
  for _ in $(seq 100); do
    [ "$(registered)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
start_tm
TM1=$TM_PID
start_tm
TM2=$TM_PID
check "two task managers register" await_registered 2
"$TIDE" list --jobmanager "$JM" --secret-file "$TMP/secret" >"$TMP/list.out" 2>&1
check_match "tide list shows their slots" "$TMP/list.out" '^[^ ]+ +127\.0\.0\.1:[0-9]+ +2 +2 '

# a task manager with another secret is refused at the handshake
printf '%s' "another secret, of another cluster" >"$TMP/wrong"
chmod 600 "$TMP/wrong"
start_tm "$TMP/wrong"
WRONG=$TM_PID
for _ in $(seq 100); do grep -q "refused the connection" "$TMP/jm.err" && break; sleep 0.1; done
check_str "a task manager with the wrong secret is not registered" 2 "$(registered)"
check_contains "the job manager logs the refusal" "$TMP/jm.err" "refused the connection"
kill "$WRONG" 2>/dev/null
for f in "$TMP"/jm.err "$TMP"/tm*.err "$TMP"/list.out; do
  if grep -qF "$SECRET_TEXT" "$f"; then not_ok "the secret appears in $f"; fi
done
ok "the secret appears in no log"

# a task manager that stops sending heartbeats is lost, and comes back
kill -STOP "$TM2"
check "a stopped task manager is lost after the heartbeat timeout" await_registered 1
check_contains "... and the job manager says why" "$TMP/jm.err" "no heartbeat within the heartbeat timeout"
kill -CONT "$TM2"
check "it registers again once it runs" await_registered 2

# -- wordcount across two task managers -------------------------------------------
INPUT=$TMP/messages.txt.gz
zcat "$DATA/git-messages.txt.gz" | head -n 300000 | gzip -1 >"$INPUT"
# shellcheck disable=SC2018,SC2019 # ASCII ranges on purpose (LC_ALL=C)
zcat "$INPUT" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '\n' | grep -v '^$' | sort | uniq -c |
  awk '{print $2","$1}' | sort >"$TMP/wc.oracle"
# two jobs at once on the same task managers, with different defaults
"$TIDE" run scripts/wordcount.lua -p 2 --buffer-timeout 5ms --jobmanager "$JM" \
  --secret-file "$TMP/secret" -- "$INPUT" "$TMP/wc2-out" 5 >"$TMP/wc2.out" 2>"$TMP/wc2.err" &
WC2=$!
run_tide "$TMP/wc" run scripts/wordcount.lua -p 2 --jobmanager "$JM" --secret-file "$TMP/secret" \
  -- "$INPUT" "$TMP/wc-out" 5
check_rc "wordcount p=2 on the cluster exits 0" 0
check_contains "its 6 subtasks ran on 2 task managers" "$TMP/wc.err" "6 subtasks on 2 task managers"
cat_parts "$TMP/wc-out" | sort >"$TMP/wc.actual"
check_eq "wordcount p=2 across processes equals the oracle" "$TMP/wc.oracle" "$TMP/wc.actual"
wait "$WC2"
RC=$?
LAST=$TMP/wc2
check_rc "a second wordcount at the same time (--buffer-timeout 5ms) exits 0" 0
cat_parts "$TMP/wc2-out" | sort >"$TMP/wc2.actual"
check_eq "... and equals the oracle too" "$TMP/wc.oracle" "$TMP/wc2.actual"
check "both task managers ran a part of it" sh -c "grep -l 'deployment .* finished' '$TMP'/tm1.err '$TMP'/tm2.err | wc -l | grep -qx 2"

# a job submitted to the job manager, which runs its master (--detached);
# the client runs in a directory of its own, where the job's relative
# output path resolves (not the repository: the LuaJIT run of this test
# runs beside this one, from the same directory)
mkdir "$TMP/client-cwd"
ABS_SCRIPT=$(pwd)/scripts/wordcount.lua
(cd "$TMP/client-cwd" && exec "$ABS_TIDE" run "$ABS_SCRIPT" -p 2 --detached --jobmanager "$JM" \
  --secret-file "$TMP/secret" -- "$INPUT" wc-det 5) >"$TMP/det.out" 2>"$TMP/det.err"
RC=$?
LAST=$TMP/det
check_rc "tide run --detached exits 0 at once" 0
DET=$(cat "$TMP/det.out")
check_match "... and prints the job's id" "$TMP/det.out" '^[0-9a-f]{16}$'
for _ in $(seq 600); do
  "$TIDE" list --jobmanager "$JM" --secret-file "$TMP/secret" 2>/dev/null | grep -q "^$DET " || break
  sleep 0.1
done
for _ in $(seq 600); do grep -q 'ended: exit status' "$TMP/jm.err" && break; sleep 0.1; done
check_contains "the job manager started its master" "$TMP/jm.err" "job $DET submitted"
check_contains "... which ended with exit status 0" "$TMP/jm.err" "ended: exit status 0"
cat_parts "$TMP/client-cwd/wc-det" | sort >"$TMP/det.actual"
check_eq "the detached job's output (a relative path: the client's) equals the oracle" \
  "$TMP/wc.oracle" "$TMP/det.actual"

# -- job control through the job manager -------------------------------------------
CSV=$DATA/git-commits.csv
"$PYTHON" tests/e2e/oracle_chaos.py "$CSV" >"$TMP/chaos.oracle"
cl() { echo --jobmanager "$JM" --secret-file "$TMP/secret"; }
# shellcheck disable=SC2046 # cl's words are options
start_tide sp run tests/e2e/chaos_job.lua -p 2 --checkpoint-dir "$TMP/ck-sp" $(cl) -- \
  "$CSV" "$TMP/sp-out" "$TMP/sp-late" rate=8000
sleep 1
# shellcheck disable=SC2046
run_tide "$TMP/sp-take" savepoint "$ID" "$TMP/sps" $(cl)
check_rc "tide savepoint --jobmanager: exit 0" 0
check "... the savepoint is complete" test -f "$(cat "$TMP/sp-take.out")/_metadata"
# shellcheck disable=SC2046
run_tide "$TMP/sp-stop" stop "$ID" --savepoint "$TMP/sps" $(cl)
check_rc "tide stop --savepoint --jobmanager: exit 0" 0
SP=$(cat "$TMP/sp-stop.out")
wait_tide sp
check_rc "the stopped job exits 0" 0
# shellcheck disable=SC2046
run_tide "$TMP/sp-resume" run tests/e2e/chaos_job.lua -p 2 --from-savepoint "$SP" $(cl) -- \
  "$CSV" "$TMP/sp-out" "$TMP/sp-late"
check_rc "the job resumed from that savepoint on the cluster exits 0" 0
cat_parts "$TMP/sp-out" | sort >"$TMP/sp.actual"
check_eq "stopped and resumed: the output equals the oracle, exactly once" "$TMP/chaos.oracle" \
  "$TMP/sp.actual"
# shellcheck disable=SC2046
start_tide cancel run tests/e2e/chaos_job.lua -p 2 $(cl) -- "$CSV" "$TMP/c-out" "$TMP/c-late" rate=8000
sleep 1
# shellcheck disable=SC2046
run_tide "$TMP/cancel-it" cancel "$ID" $(cl)
check_rc "tide cancel --jobmanager: exit 0" 0
wait_tide cancel
check_rc "the cancelled job exits 1" 1
check_contains "... cancelled by tide cancel" "$TMP/cancel.err" "cancelled by tide cancel"
# shellcheck disable=SC2046
run_tide "$TMP/nosuch" cancel 0123456789abcdef $(cl)
check_rc "tide cancel --jobmanager of a job it does not run: exit 1" 1

# -- chaos: task managers killed at random moments ---------------------------------
# a third task manager: after a kill, two remain with the 2 slots the job needs
start_tm
RUNNING="$TM1 $TM2 $TM_PID"
check "three task managers register" await_registered 3
start_tide chaos run tests/e2e/chaos_job.lua -p 2 --checkpoint-dir "$TMP/ck" \
  --checkpoint-interval 200ms --jobmanager "$JM" --secret-file "$TMP/secret" -- \
  "$CSV" "$TMP/chaos-out" "$TMP/chaos-late" rate=10000 pace=2000:"$TMP/chaos-fast" restart=fixed:1000:100ms \
  $CHAOS_MODE # words
"$TIDE" list --jobmanager "$JM" --secret-file "$TMP/secret" >"$TMP/list2.out" 2>&1
check_contains "tide list shows the running job" "$TMP/list2.out" "chaos"
killed=0
rand=$SEED
while [ "$killed" -lt "$KILLS" ] && kill -0 "$PID" 2>/dev/null; do
  rand=$(((rand * 1103515245 + 12345) % 2147483648))
  sleep "0.$((500 + rand % 1000))" 2>/dev/null || sleep 1
  # a checkpoint newer than the last kill's before each kill, so that the
  # job progresses between them
  wait_checkpoint "$TMP/ck/chaos" $(($(newest_checkpoint "$TMP/ck/chaos") + 1)) >/dev/null 2>&1
  n=$(echo "$RUNNING" | wc -w)
  victim=$(echo "$RUNNING" | tr ' ' '\n' | grep . | sed -n "$((1 + rand % n))p")
  kill -9 "$victim" 2>/dev/null && killed=$((killed + 1))
  if [ "$killed" = 2 ]; then
    # the job manager itself dies and comes back on its address: the task
    # managers register again and the job master takes its slots from it
    # at the next restart
    kill -9 "$JM_PID"
    wait "$JM_PID" 2>/dev/null
    "$TIDE" jobmanager --bind "$JM" --secret-file "$TMP/secret" --heartbeat-interval 200ms \
      --heartbeat-timeout 2s >"$TMP/jm2.out" 2>"$TMP/jm2.err" &
    JM_PID=$!
    PIDS="$PIDS $JM_PID"
    JM_RESTARTED=1
  fi
  RUNNING=$(echo "$RUNNING" | tr ' ' '\n' | grep -vx "$victim" | tr '\n' ' ')
  start_tm
  RUNNING="$RUNNING $TM_PID"
done
# the kills are done: the rest of the input need not be slow
: >"$TMP/chaos-fast"
wait_tide chaos
check_rc "the chaos job exits 0" 0
check_str "the job manager was restarted during the run" 1 "${JM_RESTARTED:-0}"
check_contains "the task managers registered with the new job manager" "$TMP/jm2.err" "registered"
check_contains "the job master saw the job manager go" "$TMP/chaos.err" "lost the connection to the job manager"
check_str "$KILLS task managers were killed while it ran" "$KILLS" "$killed"
restarts=$(grep -c 'restarting in' "$TMP/chaos.err")
check "it restarted after the kills ($restarts restarts)" test "$restarts" -ge 1
check_contains "it restored checkpoints" "$TMP/chaos.err" "restoring checkpoint"
cat_parts "$TMP/chaos-out" | sort >"$TMP/chaos.actual"
check_eq "committed output equals the oracle, exactly once" "$TMP/chaos.oracle" "$TMP/chaos.actual"
check_str "no late records" "" "$(cat_parts "$TMP/chaos-late")"

finish
