#!/bin/sh
# tests/e2e/test_savepoint.sh - savepoints and restoring them (issue 11):
# tide savepoint mid-run under a rate limit, tide stop --savepoint, a
# moved savepoint restored with changed logic at another parallelism
# (Python oracle: old logic up to the cut, new logic after; the cut is the
# count of committed lines, each record giving one), Flink's restore rules
# (state by uid, new operators empty, missing state refused unless
# --allow-non-restored-state, a state re-declared with another kind
# refused naming it), state schema evolution (a state declared version 2
# with migrate: migrated once, on heap and on rocksdb; a version going
# down refused), savepoints (aligned) of jobs checkpointing unaligned
# or at least once, stop --drain (every window fires), windows whose
# timers are stored in RocksDB stopped with a savepoint and resumed on
# either backend (every window fires once), and bad input: a
# savepoint directory that exists or cannot be created, a corrupted
# savepoint.
. tests/e2e/lib.sh

XDG_RUNTIME_DIR=$TMP/run
export XDG_RUNTIME_DIR
mkdir -m 700 "$XDG_RUNTIME_DIR"
JOB_LUA=tests/e2e/savepoint_job.lua
N=6000
RATE=1500

oracle() { "$PYTHON" tests/e2e/oracle_savepoint.py "$@"; }

# ---- v1 at parallelism 2: a savepoint mid-run, then stop with one ----
start_tide v1 run "$JOB_LUA" -p 2 -- v1 "$TMP/out" "$TMP/ck" $N $RATE
check "v1 prints its job id" test -n "$ID"
wait_output "$TMP/out"
run_tide "$TMP/sp1" savepoint "$ID" "$TMP/sps"
check_rc "tide savepoint: exit 0" 0
check_str "tide savepoint prints the savepoint path" "$TMP/sps/savepoint-$ID-1" "$(cat "$TMP/sp1.out")"
SP1=$(cat "$TMP/sp1.out")
run_tide "$TMP/verify1" verify "$SP1"
check_rc "tide verify checks a savepoint: sound" 0
check_contains "tide verify lists the state of operator totals" "$TMP/verify1.out" "totals-1.state"
run_tide "$TMP/stop1" stop "$ID" --savepoint "$TMP/sps"
check_rc "tide stop --savepoint: exit 0" 0
SP2=$(cat "$TMP/stop1.out")
check_str "tide stop prints the savepoint path" "$TMP/sps/savepoint-$ID-2" "$SP2"
wait_tide v1
check_rc "the stopped job exits 0" 0
check_contains "the job says where it stopped" "$TMP/v1.err" "tide: job 'sp' stopped with savepoint $SP2"
check "the stopped job's run file is gone" test ! -e "$XDG_RUNTIME_DIR/tide/$ID.json"

cat_parts "$TMP/out" | sort >"$TMP/got1"
CUT=$(wc -l <"$TMP/got1" | tr -d ' ')
check "the stop cut the input mid-run (0 < $CUT < $N)" test "$CUT" -gt 0 -a "$CUT" -lt $N
oracle v1 "$CUT" v1 "$CUT" >"$TMP/want1"
check_eq "stopped: committed output is records 1..cut, exactly once (oracle)" "$TMP/want1" "$TMP/got1"
hidden_files "$TMP/out" | grep -v '^_' >"$TMP/left1"
check_empty "stopped: nothing in progress or pending is left" "$TMP/left1"
cp -r "$TMP/out" "$TMP/out4"
cp -r "$TMP/out" "$TMP/out2r"
cp -r "$TMP/out" "$TMP/out6"
cp -r "$TMP/out" "$TMP/out6r"

# ---- the savepoint is self-contained: moved elsewhere, it restores ----
mkdir -p "$TMP/moved"
mv "$SP2" "$TMP/moved/sp"

# bad: v3 drops operator totals (and the sink 'out'), whose state is kept
run_tide "$TMP/v3no" run "$JOB_LUA" --from-savepoint "$TMP/moved/sp" -- v3 "$TMP/out3" "$TMP/ck3" $N $RATE
check_rc "missing state without --allow-non-restored-state: exit 2" 2
check_contains "missing state: names the uids and the flag" "$TMP/v3no.err" \
  "holds state of operators 'out', 'totals', which the job no longer has (no operator with that uid); restoring would lose it. Give the operator back its uid, or pass --allow-non-restored-state to drop that state"
check "missing state: nothing written" test -z "$(ls -A "$TMP/out3" 2>/dev/null)"

# ---- v2: changed aggregate, new field, a new operator, parallelism 3 ----
run_tide "$TMP/v2" run "$JOB_LUA" -p 3 --from-savepoint "$TMP/moved/sp" -- v2 "$TMP/out" "$TMP/ck" $N 100000
check_rc "v2 from the moved savepoint at parallelism 3: exit 0" 0
check_contains "v2 says what it restores" "$TMP/v2.err" "tide: restoring job 'sp' from savepoint $TMP/moved/sp"
check_not_contains "v2: every operator has a uid, no warning" "$TMP/v2.err" "has no uid"
cat_parts "$TMP/out" | sort >"$TMP/got2"
oracle v1 "$CUT" v2 $N >"$TMP/want2"
check_eq "v1 up to the cut, v2 after it (rescaled 2 -> 3, new operator empty): oracle" "$TMP/want2" "$TMP/got2"

# v3 with --allow-non-restored-state: the source goes on from the cut
run_tide "$TMP/v3" run "$JOB_LUA" --from-savepoint "$TMP/moved/sp" --allow-non-restored-state \
  -- v3 "$TMP/out3" "$TMP/ck3" $N 100000
check_rc "missing state with --allow-non-restored-state: exit 0" 0
check_contains "the dropped state is named" "$TMP/v3.err" \
  "--allow-non-restored-state: the state of 'out', 'totals' in savepoint $TMP/moved/sp is not restored"
cat_parts "$TMP/out3" | sort >"$TMP/got3"
oracle v3 "$CUT" v3 $N | awk -F, -v c="$CUT" '$2 > c' >"$TMP/want3"
check_eq "v3 reads on from the cut (oracle)" "$TMP/want3" "$TMP/got3"

# an operator without a uid is warned about (Flink's advice: set uids)
cat >"$TMP/nouid.lua" <<'LUA'
local tide = require "tide"
local env = tide.env{}
env:from_list({ 1, 2, 3 }):map(function(x) return x end):discard()
env:execute("nouid")
LUA
run_tide "$TMP/nouid" run "$TMP/nouid.lua" --from-savepoint "$TMP/moved/sp" --allow-non-restored-state
check_rc "operators without uids restore: exit 0" 0
check_contains "  with a warning naming the derived uid" "$TMP/nouid.err" \
  "tide: warning: map ($TMP/nouid.lua:3) has no uid: its state is matched by the uid 'map-2' derived from its position"

# v4 re-declares the value state "total" as map state
run_tide "$TMP/v4" run "$JOB_LUA" --from-savepoint "$TMP/moved/sp" -- v4 "$TMP/out4" "$TMP/ck4" $N 100000
check_rc "a state of another kind: exit 1" 1
check_match "a state of another kind: names the operator's uid and the state" "$TMP/v4.err" \
  "operator 'totals' .*state 'total' is already registered as value state, not map state"

# ---- state schema evolution: v6 declares "total" version 2, {sum, n,
# from}, migrating v1's number; stopped with a savepoint mid-run ----
start_tide v6 run "$JOB_LUA" -p 2 --from-savepoint "$TMP/moved/sp" -- v6 "$TMP/out6" "$TMP/ck6" $N $RATE
wait_output "$TMP/out6" new
run_tide "$TMP/stop6" stop "$ID" --savepoint "$TMP/sps6"
check_rc "v6 (state version 2 with migrate) from the v1 savepoint: stop --savepoint exit 0" 0
SP6=$(cat "$TMP/stop6.out")
wait_tide v6
check_rc "v6: the stopped job exits 0" 0
cat_parts "$TMP/out6" | sort >"$TMP/got6"
CUT6=$(wc -l <"$TMP/got6" | tr -d ' ')
check "v6: the stop cut the input after the first cut ($CUT < $CUT6 < $N)" test "$CUT6" -gt "$CUT" -a "$CUT6" -lt $N
oracle v1 "$CUT" v6 "$CUT6" >"$TMP/want6"
check_eq "v6: v1 up to the cut, then each total migrated once to {sum, n = 0, from = 1} (oracle)" \
  "$TMP/want6" "$TMP/got6"
# the savepoint records version 2: v1 (version 1, no migrate) is refused
cp -r "$TMP/out6" "$TMP/out6d"
run_tide "$TMP/v6down" run "$JOB_LUA" --from-savepoint "$SP6" -- v1 "$TMP/out6d" "$TMP/ck6d" $N 100000
check_rc "a state restored with a newer version than declared: exit 1" 1
check_match "  refused, naming the state, the operator's uid and both versions" "$TMP/v6down.err" \
  "state 'total' of operator 'totals' .*was restored with version 2, newer than version 1 it is declared with"
LINE=$(grep -n 'total = ctx.state:value("total")' "$JOB_LUA" | cut -d: -f1)
check_contains "  at the declaration's file:line" "$TMP/v6down.err" "savepoint_job.lua:$LINE: state 'total'"
cat_parts "$TMP/out6d" | sort >"$TMP/got6d"
check_eq "  nothing written after the cut" "$TMP/got6" "$TMP/got6d"
# v6 again from its own savepoint, on rocksdb at parallelism 3: version 2
# restored as version 2, nothing migrated twice
run_tide "$TMP/v6b" run "$JOB_LUA" -p 3 --state-backend rocksdb --from-savepoint "$SP6" \
  -- v6 "$TMP/out6" "$TMP/ck6b" $N 100000
check_rc "v6 restored from its own savepoint on rocksdb: exit 0" 0
cat_parts "$TMP/out6" | sort >"$TMP/got6b"
oracle v1 "$CUT" v6 "$CUT6" v6 $N >"$TMP/want6b"
check_eq "  v1, then v6 across its savepoint, no value migrated twice (oracle)" "$TMP/want6b" "$TMP/got6b"
# across backends: the heap savepoint of v1 migrated on rocksdb at parallelism 3
run_tide "$TMP/v6r" run "$JOB_LUA" -p 3 --state-backend rocksdb --from-savepoint "$TMP/moved/sp" \
  -- v6 "$TMP/out6r" "$TMP/ck6r" $N 100000
check_rc "v6 from the heap savepoint on rocksdb (migrated there): exit 0" 0
cat_parts "$TMP/out6r" | sort >"$TMP/got6r"
oracle v1 "$CUT" v6 $N >"$TMP/want6r"
check_eq "  v1 up to the cut, v6 after it, migrated on rocksdb (oracle)" "$TMP/want6r" "$TMP/got6r"

# ---- bad savepoints ----
run_tide "$TMP/none" run "$JOB_LUA" --from-savepoint "$TMP/nothing" -- v1 "$TMP/o5" "$TMP/ck5" 10 100000
check_rc "a directory that is no savepoint: exit 2" 2
check_contains "a directory that is no savepoint: says so" "$TMP/none.err" \
  "cannot restore $TMP/nothing: not a savepoint (no $TMP/nothing/_metadata)"
cp -r "$SP1" "$TMP/bad"
"$PYTHON" -c "
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(bytes(b))" "$TMP/bad/totals-0.state"
run_tide "$TMP/corrupt" run "$JOB_LUA" --from-savepoint "$TMP/bad" -- v1 "$TMP/o6" "$TMP/ck6" 10 100000
check_rc "a corrupted savepoint: exit 2" 2
check_match "a corrupted savepoint: refused, naming the file" "$TMP/corrupt.err" \
  "cannot restore savepoint $TMP/bad: .*totals-0.state"
check "a corrupted savepoint: nothing written" test -z "$(ls -A "$TMP/o6" 2>/dev/null)"
run_tide "$TMP/verifybad" verify "$TMP/bad"
check_rc "tide verify: a corrupted savepoint is BAD" 1
check_match "tide verify names the file" "$TMP/verifybad.out" "BAD +totals-0.state"

# ---- savepoint directories that cannot be used ----
start_tide v1b run "$JOB_LUA" -- v1 "$TMP/out7" "$TMP/ck7" $N $RATE
mkdir -p "$TMP/sps7/savepoint-$ID-1"
run_tide "$TMP/exists" savepoint "$ID" "$TMP/sps7"
check_rc "a savepoint directory that exists: exit 1" 1
check_contains "a savepoint directory that exists: named" "$TMP/exists.err" \
  "the savepoint directory '$TMP/sps7/savepoint-$ID-1' exists already"
check "the existing directory is left alone" test -d "$TMP/sps7/savepoint-$ID-1"
: >"$TMP/plainfile"
run_tide "$TMP/notdir" savepoint "$ID" "$TMP/plainfile/sps"
check_rc "a savepoint directory that cannot be created: exit 1" 1
check_contains "a savepoint directory that cannot be created: named" "$TMP/notdir.err" \
  "cannot create the savepoint directory '$TMP/plainfile/sps'"
run_tide "$TMP/sp7" savepoint "$ID" "$TMP/sps7"
check_rc "the job still takes savepoints after those" 0
check_str "  into the next id's directory" "$TMP/sps7/savepoint-$ID-3" "$(cat "$TMP/sp7.out")"
run_tide "$TMP/cancel7" cancel "$ID"
check_rc "tide cancel: exit 0" 0
wait_tide v1b
check_rc "the cancelled job exits 1" 1
check_contains "the cancelled job says so" "$TMP/v1b.err" "job 'sp' cancelled by tide cancel"

# ---- savepoints are aligned in jobs checkpointing unaligned or at least
# once: a savepoint mid-run, a stop with one, the restore exact (oracle) ----
for MODE in unaligned at_least_once; do
  start_tide "m_$MODE" run "$JOB_LUA" -p 2 --checkpoint-dir "$TMP/ckm_$MODE" --checkpoint-interval 200ms \
    -- v1 "$TMP/outm_$MODE" "$TMP/ckm_$MODE" $N $RATE 2 "$MODE"
  wait_output "$TMP/outm_$MODE"
  run_tide "$TMP/spm_$MODE" savepoint "$ID" "$TMP/spsm_$MODE"
  check_rc "$MODE: a savepoint mid-run: exit 0" 0
  run_tide "$TMP/vm_$MODE" verify "$(cat "$TMP/spm_$MODE.out")"
  check_rc "$MODE: the savepoint is sound" 0
  check_not_contains "$MODE: the savepoint holds no in-flight data (aligned)" "$TMP/vm_$MODE.out" "inflight-"
  run_tide "$TMP/stm_$MODE" stop "$ID" --savepoint "$TMP/spsm_$MODE"
  check_rc "$MODE: stop with a savepoint: exit 0" 0
  wait_tide "m_$MODE"
  check_rc "$MODE: the stopped job exits 0" 0
  check_contains "$MODE: the job says where it stopped" "$TMP/m_$MODE.err" "stopped with savepoint"
  CUTM=$(cat_parts "$TMP/outm_$MODE" | wc -l | tr -d ' ')
  check "$MODE: the stop cut the input mid-run (0 < $CUTM < $N)" test "$CUTM" -gt 0 -a "$CUTM" -lt $N
  run_tide "$TMP/rm_$MODE" run "$JOB_LUA" -p 2 --from-savepoint "$(cat "$TMP/stm_$MODE.out")" \
    -- v2 "$TMP/outm_$MODE" "$TMP/ckm2_$MODE" $N 100000 2 "$MODE"
  check_rc "$MODE: restored from the stop's savepoint: exit 0" 0
  cat_parts "$TMP/outm_$MODE" | sort >"$TMP/gotm_$MODE"
  oracle v1 "$CUTM" v2 $N >"$TMP/wantm_$MODE"
  check_eq "$MODE: v1 up to the cut, v2 after it, exactly once (oracle)" "$TMP/wantm_$MODE" "$TMP/gotm_$MODE"
done

# ---- stop --drain: the MAX watermark first, every window fires ----
cat >"$TMP/win.lua" <<'LUA'
local tide = require "tide"
local list = {}
for i = 1, 6000 do list[i] = i end
local env = tide.env{ checkpoint = { dir = arg[3] } }
local src = env:from_list(list, { rate_limit = 1500 }):uid("src")
  :assign_timestamps(function(x) return x * 10 end, tide.watermarks.monotonous({ per_record = true })):uid("ts")
src:map(function(x) return tostring(x) end):uid("raw"):write_text(arg[2]):uid("raw-out")
src:key_by(function() return "all" end):window(tide.windows.tumbling(1000))
  :aggregate({ create = function() return 0 end, add = function(n) return n + 1 end,
    result = function(n) return n end, merge = function(a, b) return a + b end },
    function(_, window, counts, out) out:collect(window.start .. "," .. counts[1]) end):uid("win")
  :write_text(arg[1]):uid("win-out")
env:execute("drain")
LUA
start_tide win run "$TMP/win.lua" -- "$TMP/wout" "$TMP/raw" "$TMP/ckw"
wait_output "$TMP/raw"
run_tide "$TMP/drain" stop "$ID" --savepoint "$TMP/spw" --drain
check_rc "tide stop --drain: exit 0" 0
wait_tide win
check_rc "the drained job exits 0" 0
C=$(cat_parts "$TMP/raw" | wc -l | tr -d ' ')
cat_parts "$TMP/wout" | sort >"$TMP/gotw"
"$PYTHON" -c "
import sys
c = int(sys.argv[1])
w = {}
for x in range(1, c + 1):
    s = x * 10 // 1000 * 1000
    w[s] = w.get(s, 0) + 1
print(''.join(sorted('%d,%d\n' % kv for kv in w.items())), end='')" "$C" >"$TMP/wantw"
check "drained mid-run (0 < $C < 6000)" test "$C" -gt 0 -a "$C" -lt 6000
check_eq "drained: every window of records 1..cut fired, the last one too (oracle)" "$TMP/wantw" "$TMP/gotw"

# ---- windows' timers in RocksDB through a savepoint: stopped mid-run with
# open windows (their timers stored in RocksDB, written canonical into the
# savepoint), resumed on the heap and on RocksDB: every window of 1..6000
# fires once over both runs ----
"$PYTHON" -c "
w = {}
for x in range(1, 6001):
    s = x * 10 // 1000 * 1000
    w[s] = w.get(s, 0) + 1
print(''.join(sorted('%d,%d\n' % kv for kv in w.items())), end='')" >"$TMP/wantwall"
start_tide winr run "$TMP/win.lua" --state-backend rocksdb -- "$TMP/woutr" "$TMP/rawr" "$TMP/ckwr"
stop_savepoint winr "rocksdb windows"
SPWR=$SP
check "rocksdb windows: stopped mid-run, windows open" test -n "$(cat_parts "$TMP/woutr")" -a \
  "$(cat_parts "$TMP/rawr" | wc -l)" -lt 6000
check "rocksdb windows: the savepoint lists the timers (canonical, not stored in RocksDB)" \
  sh -c "test -s '$SPWR/win-0.state' && ! grep -aq 'store.rocksdb' '$SPWR/win-0.state'"
for to in heap rocksdb; do
  cp -r "$TMP/woutr" "$TMP/woutr-$to"
  cp -r "$TMP/rawr" "$TMP/rawr-$to"
  run_tide "$TMP/winr-$to" run "$TMP/win.lua" --state-backend "$to" --from-savepoint "$SPWR" \
    -- "$TMP/woutr-$to" "$TMP/rawr-$to" "$TMP/ckwr-$to"
  check_rc "rocksdb windows' savepoint resumed on $to: exit 0" 0
  cat_parts "$TMP/woutr-$to" | sort >"$TMP/gotwr-$to"
  check_eq "rocksdb windows' savepoint resumed on $to: every window fired once (oracle)" "$TMP/wantwall" \
    "$TMP/gotwr-$to"
done

# ---- savepoints are backend-independent: heap -> rocksdb, rocksdb -> heap ----
run_tide "$TMP/v2r" run "$JOB_LUA" -p 3 --state-backend rocksdb --from-savepoint "$TMP/moved/sp" \
  -- v2 "$TMP/out2r" "$TMP/ck2r" $N 100000
check_rc "the heap savepoint restored on rocksdb: exit 0" 0
cat_parts "$TMP/out2r" | sort >"$TMP/got2r"
check_eq "heap savepoint on rocksdb: v1 up to the cut, v2 after it (oracle)" "$TMP/want2" "$TMP/got2r"
start_tide r1 run "$JOB_LUA" -p 2 --state-backend rocksdb -- v1 "$TMP/outr" "$TMP/ckr" $N $RATE
stop_savepoint r1 rocksdb
SPR=$SP
check "rocksdb: the savepoint references no shared file (self-contained)" \
  test -z "$(ls "$SPR" | grep '\.shared$')"
cat_parts "$TMP/outr" | sort >"$TMP/gotr1"
CUTR=$(wc -l <"$TMP/gotr1" | tr -d ' ')
run_tide "$TMP/r2" run "$JOB_LUA" -p 3 --from-savepoint "$SPR" -- v2 "$TMP/outr" "$TMP/ckr2" $N 100000
check_rc "the rocksdb savepoint restored on heap at parallelism 3: exit 0" 0
cat_parts "$TMP/outr" | sort >"$TMP/gotr2"
oracle v1 "$CUTR" v2 $N >"$TMP/wantr2"
check_eq "rocksdb savepoint on heap: v1 up to the cut, v2 after it (oracle)" "$TMP/wantr2" "$TMP/gotr2"

finish
