#!/bin/sh
# End-to-end: the PostgreSQL sink (stream:write_postgres, issue 12) against
# a real PostgreSQL server started in $TMP (tests/e2e/pg.sh), with
# tests/e2e/postgres_job.lua; every table checked against a Python oracle
# over the same input:
#  1. append, at least once, p2: every commit once;
#  2. upsert of a running sum per author, exactly once, p2, checkpoints
#     every 200 ms: the final counts;
#  3. exactly once under SIGKILLs at random moments, each run resumed
#     with --resume: append (every row once, none twice) and upsert; no
#     prepared transaction left behind;
#  4. a crash after a checkpoint completed and before its prepared
#     transaction was committed: the resumed job commits it (once);
#  5. Kafka (librdkafka's mock cluster) -> event-time tumbling windows ->
#     PostgreSQL exactly once, SIGKILLs at random moments: the exact rows;
#  6. errors: bad conninfo, missing table, missing column, a server with
#     max_prepared_transactions = 0, bad options (file:line).
# SEED (default: this shell's pid) seeds the kill moments:
#   SEED=1234 sh tests/e2e/test_postgres.sh
. tests/e2e/lib.sh
. tests/e2e/pg.sh
. tests/e2e/kafka.sh
trap 'kafka_stop; pg_stop; [ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT

JOB=tests/e2e/postgres_job.lua
SEED=${SEED:-$$}
echo "# SEED=$SEED (replay: SEED=$SEED sh tests/e2e/test_postgres.sh)"

if ! pg_start; then
  not_ok "a PostgreSQL server starts in a temporary directory"
  echo "#   $PG_WHY"
  finish
  exit
fi
ok "a PostgreSQL server starts in a temporary directory"

# the first 12000 commits (the chaos runs read them rate-limited)
head -n 12001 "$DATA/git-commits.csv" >"$TMP/commits.csv"
cat >"$TMP/oracle.py" <<'PYEOF'
import csv, sys
mode, path = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(path, newline="")))
if mode == "append":
    out = ["%s|%s|%s" % (r["commit"], r["repo"], r["author"]) for r in rows]
else:
    counts = {}
    for r in rows:
        counts[r["author"]] = counts.get(r["author"], 0) + 1
    out = ["%s|%d" % kv for kv in counts.items()]
sys.stdout.write("".join(sorted(l + "\n" for l in out)))
PYEOF
"$PYTHON" "$TMP/oracle.py" append "$TMP/commits.csv" >"$TMP/expected-append"
"$PYTHON" "$TMP/oracle.py" sum "$TMP/commits.csv" >"$TMP/expected-sum"

# table NAME: a fresh table NAME for append (commit, repo, author) or sum
# (author, n) rows
fresh_append() { pg_sql "DROP TABLE IF EXISTS $1; CREATE TABLE $1 (commit text, repo text, author text)"; }
fresh_sum() { pg_sql "DROP TABLE IF EXISTS $1; CREATE TABLE $1 (author text PRIMARY KEY, n bigint)"; }
rows_append() { pg_sql "SELECT commit || '|' || repo || '|' || author FROM $1" | sort; }
rows_sum() { pg_sql "SELECT author || '|' || n FROM $1" | sort; }
prepared() { pg_sql "SELECT count(*) FROM pg_prepared_xacts"; }

# ---- 1. append, at least once ------------------------------------------------
fresh_append t1
run_tide "$TMP/t1" run "$JOB" -p 2 -- "$PGCONN" append "$TMP/commits.csv" t1 guarantee=at_least_once batch=300
check_rc "append, at least once, p2: exits 0" 0
rows_append t1 >"$TMP/t1.rows"
check_eq "append, at least once, p2: every commit once" "$TMP/expected-append" "$TMP/t1.rows"

# ---- 2. upsert, exactly once ---------------------------------------------------
fresh_sum t2
run_tide "$TMP/t2" run "$JOB" -p 2 --checkpoint-dir "$TMP/t2.ck" --checkpoint-interval 200ms \
  -- "$PGCONN" sum "$TMP/commits.csv" t2 rate=20000
check_rc "upsert, exactly once, p2, checkpoints: exits 0" 0
rows_sum t2 >"$TMP/t2.rows"
check_eq "upsert, exactly once: the commits per author" "$TMP/expected-sum" "$TMP/t2.rows"
check_str "upsert, exactly once: no prepared transaction left" 0 "$(prepared)"

# ---- 3. exactly once under SIGKILLs ----------------------------------------------
# pgchaos LABEL DIR KILLS ARG...: runs the job (ARG... after the conninfo)
# at p2 with checkpoints every 200 ms into DIR/ck, SIGKILLs it after 0.5-1.5
# s and resumes it, KILLS times, then lets the last --resume run to its end;
# counts the kills that left a prepared transaction behind
note_prepared() { [ "$(prepared)" -gt 0 ] && left=$((left + 1)); }
pgchaos() {
  label=$1 d=$2 want=$3
  shift 3
  left=0
  AFTER_KILL=note_prepared kill_resume "$label" "$d" "$want" 0.5 "$PGCONN" "$@"
  echo "# $label: $left kills left prepared transactions behind"
  check_str "$label: no prepared transaction left" 0 "$(prepared)"
}

fresh_append t3
pgchaos "append, exactly once, SIGKILLs" "$TMP/c3" 4 append "$TMP/commits.csv" t3 rate=2500 batch=100
rows_append t3 >"$TMP/t3.rows"
check_eq "append, exactly once, SIGKILLs: every commit once, none twice" "$TMP/expected-append" "$TMP/t3.rows"

fresh_sum t3s
pgchaos "upsert, exactly once, SIGKILLs" "$TMP/c3s" 3 sum "$TMP/commits.csv" t3s rate=2500 batch=100
rows_sum t3s >"$TMP/t3s.rows"
check_eq "upsert, exactly once, SIGKILLs: the commits per author" "$TMP/expected-sum" "$TMP/t3s.rows"

# ---- 3b. a fresh start after a run killed before its first checkpoint ----------
# Such a run (another job id: a fresh start draws a new one) can leave
# prepared transactions, whose upsert rows stay locked until they end. A
# fresh start of the same job rolls back those of its job name and
# operator (tagged in the transaction's name) before it writes, and leaves
# another job's alone.
fresh_sum t7
tag=$("$PYTHON" -c 'import sys
h = 0
for b in sys.argv[1].encode(): h = (h * 31 + b) % 2**32
print("%08x" % h)' pg-sum)
a1=$(sed -n 2p "$TMP/commits.csv" | cut -d, -f5)
a2=$(tail -n +2 "$TMP/commits.csv" | cut -d, -f5 | grep -vx "$a1" | head -n 1)
pg_sql "BEGIN; INSERT INTO t7 VALUES ('$a1', 1000); PREPARE TRANSACTION 'tide:00000000000000aa:pg:0:3:$tag'"
pg_sql "BEGIN; INSERT INTO t7 VALUES ('$a2', 1000); PREPARE TRANSACTION 'tide:00000000000000aa:pg:1:3:$tag'"
pg_sql "BEGIN; INSERT INTO t7 VALUES ('zz-another-job', 1); PREPARE TRANSACTION 'tide:00000000000000bb:pg:0:3:00000001'"
check_str "left prepared transactions: three" 3 "$(prepared)"
# (a hang here is the failure: the rows of $a1 and $a2 locked)
_timeout=$TIDE_TIMEOUT
TIDE_TIMEOUT=60
run_tide "$TMP/t7" run "$JOB" -p 2 --checkpoint-dir "$TMP/t7.ck" --checkpoint-interval 200ms \
  -- "$PGCONN" sum "$TMP/commits.csv" t7 rate=20000
TIDE_TIMEOUT=$_timeout
check_rc "left prepared transactions: a fresh start of the job runs to the end" 0
rows_sum t7 >"$TMP/t7.rows"
check_eq "left prepared transactions: the commits per author (theirs rolled back)" "$TMP/expected-sum" "$TMP/t7.rows"
check_str "left prepared transactions: another job's is left alone" \
  "tide:00000000000000bb:pg:0:3:00000001" "$(pg_sql "SELECT gid FROM pg_prepared_xacts")"
pg_sql "ROLLBACK PREPARED 'tide:00000000000000bb:pg:0:3:00000001'"

# ---- 4. a crash between PREPARE and COMMIT ---------------------------------------
fresh_append t4
TIDE_TEST_PG_CRASH_BEFORE_COMMIT=1 run_tide "$TMP/t4a" run "$JOB" -p 2 --checkpoint-dir "$TMP/t4.ck" \
  --checkpoint-interval 200ms -- "$PGCONN" append "$TMP/commits.csv" t4 rate=4000
check_rc "crash before COMMIT PREPARED: the job dies (SIGKILL) after its first completed checkpoint" 137
check "  a prepared transaction is left behind" test "$(prepared)" -ge 1
check "  and a completed checkpoint" test -n "$(completed "$TMP/t4.ck/pg-append")"
committed_before=$(pg_sql "SELECT count(*) FROM t4")
run_tide "$TMP/t4b" run "$JOB" -p 2 --checkpoint-dir "$TMP/t4.ck" --checkpoint-interval 200ms --resume \
  -- "$PGCONN" append "$TMP/commits.csv" t4 rate=20000
check_rc "crash before COMMIT PREPARED: --resume runs to the end" 0
rows_append t4 >"$TMP/t4.rows"
check_eq "crash before COMMIT PREPARED: every commit once (its transaction committed on recovery)" \
  "$TMP/expected-append" "$TMP/t4.rows"
check_str "crash before COMMIT PREPARED: no prepared transaction left" 0 "$(prepared)"
echo "# crash before COMMIT PREPARED: $committed_before rows visible before the resume"

# ---- 5. Kafka -> windows -> PostgreSQL, exactly once, SIGKILLs ------------------
N=6000
kafka_start in:3
# "commit,author" values with commit_time_ms as the Kafka timestamp;
# partition k gets the k-th block of N/3 rows (each block's times ascend)
tail -n +2 "$DATA/git-commits.csv" | head -n "$N" |
  awk -F, -v n="$N" '{ p = int((NR - 1) / (n / 3)); printf "%d\t%s\t%s,%s\n", p, $4, $2, $5 }' >"$TMP/kin.tsv"
kafka_produce in <"$TMP/kin.tsv"
# oracle: commits per author per UTC day
awk -F'\t' '{ split($3, v, ","); printf "%s|%.0f\n", v[2], $2 - $2 % 86400000 }' "$TMP/kin.tsv" |
  sort | uniq -c | awk '{ print $2 "|" $1 }' | sort >"$TMP/expected-kafka"
pg_sql "CREATE TABLE tk (author text, day_ms bigint, n bigint)"
pgchaos "Kafka -> windows -> PostgreSQL, SIGKILLs" "$TMP/ck5" 4 kafka "$BOOT" tk rate=1500 batch=50
pg_sql "SELECT author || '|' || day_ms || '|' || n FROM tk" | sort >"$TMP/tk.rows"
check_eq "Kafka -> windows -> PostgreSQL: the exact rows (each window once)" "$TMP/expected-kafka" "$TMP/tk.rows"

# ---- 6. errors -------------------------------------------------------------------
run_tide "$TMP/e1" run "$JOB" -- "host=$TMP/nosuchdir port=1 user=tide" append "$TMP/commits.csv" t1
check "bad conninfo: the job fails" test "$RC" -eq 1
check_match "  named: the operator, its definition, the connection error" "$TMP/e1.err" \
  "operator 'pg' \\(write_postgres, defined at tests/e2e/postgres_job.lua:[0-9]+\\) failed: write_postgres: cannot connect to PostgreSQL: .*nosuchdir"
run_tide "$TMP/e2" run "$JOB" -- "$PGCONN" append "$TMP/commits.csv" nosuch
check "missing table: the job fails" test "$RC" -eq 1
check_contains "  the server's message" "$TMP/e2.err" 'relation "nosuch" does not exist'
pg_sql "CREATE TABLE narrow (commit text, repo text)"
run_tide "$TMP/e3" run "$JOB" -- "$PGCONN" append "$TMP/commits.csv" narrow
check "missing column: the job fails" test "$RC" -eq 1
check_contains "  the server's message" "$TMP/e3.err" 'column "author" does not exist'
check_str "  nothing written" 0 "$(pg_sql "SELECT count(*) FROM narrow")"
printf 'local tide = require "tide"\nlocal env = tide.env()\nenv:from_list({ 1 }):write_postgres{ conninfo = "", table = "t", columns = { "a" }, mode = "merge" }\nenv:execute("x")\n' \
  >"$TMP/badopt.lua"
run_tide "$TMP/e4" run "$TMP/badopt.lua"
check "bad option: refused" test "$RC" -ne 0
check_contains "  with the script's file:line" "$TMP/e4.err" "badopt.lua:3: write_postgres: mode must be 'append' or 'upsert', not merge"
# (the server refuses to start with prepared transactions it could not hold)
pg_sql "SELECT gid FROM pg_prepared_xacts" | while read -r g; do pg_sql "ROLLBACK PREPARED '$g'"; done
pg_sql "ALTER SYSTEM SET max_prepared_transactions = 0" && pg_restart
check "a server restarted with max_prepared_transactions = 0" pg_sql "SELECT 1"
fresh_append t6
run_tide "$TMP/e5" run "$JOB" -- "$PGCONN" append "$TMP/commits.csv" t6
check "max_prepared_transactions = 0: an exactly-once job fails" test "$RC" -eq 1
check_contains "  saying why and what to set" "$TMP/e5.err" \
  "max_prepared_transactions is 0 on the server: set max_prepared_transactions in postgresql.conf"
run_tide "$TMP/e6" run "$JOB" -- "$PGCONN" append "$TMP/commits.csv" t6 guarantee=at_least_once
check_rc "max_prepared_transactions = 0: at least once still runs" 0
check_str "  every commit written" "$(wc -l <"$TMP/expected-append" | tr -d ' ')" "$(pg_sql "SELECT count(*) FROM t6")"

finish
