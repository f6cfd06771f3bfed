#!/bin/sh
# End-to-end: C modules (tide.load_module; docs/MODULES.md), with the
# example module scripts/modules/streamkit.c built into $BUILD/modules
# (make modules) and the test modules of tests/modules.
#  1. scripts/modules/commits_by_author.lua on ../shared/data: every
#     operator in C (source, map, filter, keyed process with state and
#     timers, exactly-once sink), at parallelism 1 and 2, against an
#     independent Python oracle; and with Lua in the chain (watermarks
#     from a Lua assign_timestamps, keys from a Lua function, a Lua CSV
#     sink): the same output.
#  2. records across the C/Lua boundary both ways in one chain; a chain of
#     C operators from a source to a discard.
#  3. bad input: a module file that does not exist, a plain shared object,
#     a text file, an ABI major mismatch, an init that fails, a module that
#     fails in open, in processing, in a source's read, an operator
#     emitting more than its output buffer allows, operators of the wrong
#     kind: exit 1 with a message naming the module, the operator and its
#     uid (or the path), never a crash.
#  4. chaos: the job, rate limited, with watermarks of commit time
#     (windows fire and the sink commits while it runs), killed with SIGKILL at random moments
#     (KILLS times) and resumed with --resume; its committed output is
#     exactly the oracle's.
#  5. make install-headers into a temporary PREFIX (tide.h and tide.pc),
#     the example module built with $(pkg-config --cflags tide), and a job
#     that loads that build.
# TIDE=build/tide-luajit runs it all on the LuaJIT host (tests/run.sh).
#   SEED=1234 sh tests/e2e/test_modules.sh   replays the kill moments
. tests/e2e/lib.sh

BUILD=${BUILD:-$(dirname "$TIDE")}
MODS=$BUILD/modules
KIT=$MODS/streamkit.so
INPUT=$DATA/git-commits.csv
JOB=scripts/modules/commits_by_author.lua
SEED=${SEED:-$$}
KILLS=${KILLS:-4}
export STREAMKIT="$KIT"
echo "# SEED=$SEED (replay: SEED=$SEED sh tests/e2e/test_modules.sh)"

if [ ! -f "$KIT" ] || [ ! -f "$MODS/testmod.so" ]; then
  not_ok "the modules are built ($MODS: make modules)"
  finish
  exit 1
fi

# ---- 1. the example job and its oracle -----------------------------------------

# per author and 30-day window of author time (commit time: the chaos
# job), non-merge commits: count, insertions, deletions, as the JSON lines
# the sink writes; and as CSV rows
oracle() {
  "$PYTHON" tests/e2e/oracle_author_windows.py "$INPUT" "$1" "$TMP/oracle.jsonl" "$TMP/oracle.csv"
}
oracle commit_time_ms
sort "$TMP/oracle.jsonl" >"$TMP/expected.commit"
oracle author_time_ms
sort "$TMP/oracle.jsonl" >"$TMP/expected"
sort "$TMP/oracle.csv" >"$TMP/expected.csv"
check "oracle computed ($(wc -l <"$TMP/expected" | tr -d ' ') author-windows)" test -s "$TMP/expected"

for p in 1 2; do
  run_tide "$TMP/c$p" run "$JOB" -p "$p" -- "$INPUT" "$TMP/c$p-out"
  check_rc "all-C job at p=$p exits 0" 0
  cat "$TMP/c$p-out"/*.jsonl 2>/dev/null | sort >"$TMP/c$p.sorted"
  check_eq "all-C job at p=$p: output equals the oracle" "$TMP/expected" "$TMP/c$p.sorted"
done
check_str "p=2: one committed part per sink subtask, nothing hidden left" \
  "part-commits-by-author-0-0.jsonl part-commits-by-author-1-0.jsonl" \
  "$(cd "$TMP/c2-out" && ls -A | tr '\n' ' ' | sed 's/ $//')"

run_tide "$TMP/wm" run "$JOB" -p 2 -- "$INPUT" "$TMP/wm-out" watermarks=1 key=lua
check_rc "with Lua watermarks and a Lua key function, p=2, exits 0" 0
cat "$TMP/wm-out"/*.jsonl 2>/dev/null | sort >"$TMP/wm.sorted"
check_eq "with Lua watermarks and a Lua key function: output equals the oracle" "$TMP/expected" "$TMP/wm.sorted"

run_tide "$TMP/csv" run "$JOB" -p 2 -- "$INPUT" "$TMP/csv-out" sink=csv watermarks=1
check_rc "C operators into a Lua write_csv sink, p=2, exits 0" 0
cat_parts "$TMP/csv-out" | sort >"$TMP/csv.sorted"
check_eq "C operators into a Lua write_csv sink: rows equal the oracle" "$TMP/expected.csv" "$TMP/csv.sorted"

# ---- 2. the C/Lua boundary both ways; C from source to discard ---------------

cat >"$TMP/boundary.lua" <<'EOF'
local tide = require "tide"
local kit = tide.load_module(os.getenv("STREAMKIT"))
local env = tide.env()
-- Lua source -> C map -> Lua map -> C filter -> C flat_map -> Lua print
env:generate(function(i) return i end, 20)
  :transform(kit.affine, { mul = 3, add = 1 }):uid("affine")
  :map(function(x) return x * 2 end)
  :transform(kit.modulo, { divisor = 4, remainder = 0 }):uid("modulo")
  :map(function(x) return "n" .. x .. " m" .. x end)
  :transform(kit.words):uid("words")
  :print()
-- C source -> C map -> C filter -> discard
env:add_source(kit.seq, { count = 100000 }):uid("seq")
  :transform(kit.affine, { mul = 3 }):uid("affine2")
  :transform(kit.modulo, { divisor = 2 }):uid("even")
  :discard()
env:execute("boundary")
EOF
run_tide "$TMP/bnd" run "$TMP/boundary.lua" -p 1
check_rc "Lua and C operators alternating in one chain exit 0" 0
awk 'BEGIN { for (i = 1; i <= 20; i++) { x = (3 * i + 1) * 2; if (x % 4 == 0) printf "n%d\nm%d\n", x, x } }' \
  >"$TMP/bnd.expected"
check_eq "records cross the boundary both ways unchanged" "$TMP/bnd.expected" "$TMP/bnd.out"

# ---- 3. bad input ------------------------------------------------------------

# bad NAME WANT_RC SCRIPT_BODY STRING...: a job that fails as it should
bad() {
  name=$1 want=$2 body=$3
  shift 3
  printf 'local tide = require "tide"\nlocal env = tide.env()\n%s\n' "$body" >"$TMP/bad.lua"
  run_tide "$TMP/bad" run "$TMP/bad.lua" -- "$MODS"
  check_rc "$name: exits $want" "$want"
  for s in "$@"; do check_contains "$name: says $s" "$TMP/bad.err" "$s"; done
  check_not_contains "$name: no crash" "$TMP/bad.err" "Segmentation"
}

bad "a module file that does not exist" 1 'tide.load_module(arg[1] .. "/nothing-here.so")' \
  "cannot load module '$MODS/nothing-here.so': No such file or directory"
bad "a plain shared object" 1 'tide.load_module(arg[1] .. "/notmod.so")' \
  "'$MODS/notmod.so' is not a Tide module"
printf 'not a module\n' >"$TMP/text.so"
bad "a text file" 1 "tide.load_module('$TMP/text.so')" "cannot load module '$TMP/text.so'"
bad "an ABI major mismatch" 1 'tide.load_module(arg[1] .. "/badabi.so")' \
  "module 'badabi' ($MODS/badabi.so) was built for Tide ABI 99.0, incompatible with this core's ABI 1."
bad "a newer ABI minor" 1 'tide.load_module(arg[1] .. "/newminor.so")' "newer than this core's ABI"
bad "an init that fails" 1 'tide.load_module(arg[1] .. "/failinit.so")' \
  "module 'failinit' ($MODS/failinit.so): init failed: register_op: map operator 'broken' has no process function"

TM='local m = tide.load_module(arg[1] .. "/testmod.so")'
bad "open fails" 1 "$TM
env:generate(function(i) return i end, 10):transform(m.fail_open, { message = 'no config for me' }):uid('opener'):discard()
env:execute('bad')" \
  "operator 'opener' (testmod.fail_open, defined at" \
  "module 'testmod' operator 'fail_open' (uid 'opener'): no config for me"
bad "processing fails" 1 "$TM
local k = tide.load_module(arg[1] .. '/streamkit.so')
env:add_source(k.seq, { count = 100 }):uid('src'):transform(m.fail_process, { after = 42 }):uid('picky'):discard()
env:execute('bad')" \
  "operator 'picky' (testmod.fail_process" \
  "module 'testmod' operator 'fail_process' (uid 'picky'): record 42 is not to my liking"
bad "a source's read fails" 1 "$TM
env:add_source(m.fail_read):uid('reader'):discard()
env:execute('bad')" "module 'testmod' operator 'fail_read' (uid 'reader'): the source's device caught fire"
bad "more output than the buffer allows" 1 "$TM
env:generate(function(i) return i end, 10):transform(m.overflow):uid('doubler'):print()
env:execute('bad')" \
  "module 'testmod' operator 'overflow' (uid 'doubler'): process emitted more records than its output buffer allows"
bad "a keyed process on a stream that is not keyed" 1 "$TM
env:generate(function(i) return i end, 10):transform(m.keyed_sum)" \
  "bad argument #1 to 'transform' (testmod.keyed_sum (process) is a keyed process: it needs a keyed stream, use key_by)"
bad "a source given to transform" 1 "$TM
env:generate(function(i) return i end, 10):transform(m.fail_read)" \
  "bad argument #1 to 'transform' (testmod.fail_read (source) is a source operator; transform takes"
bad "a config that is not plain data" 1 "local k = tide.load_module(arg[1] .. '/streamkit.so')
env:add_source(k.seq, { count = print })" \
  "bad argument #2 to 'add_source' (config must be plain data: cannot encode a function value)"

# ---- 4. chaos: SIGKILL and --resume ---------------------------------------------

d=$TMP/chaos
mkdir -p "$d"
awk -v s="$SEED" 'BEGIN { srand(s); for (i = 0; i < 30; i++) printf "%.2f\n", 0.5 + rand() * 1.5 }' >"$d/delays"
kills=0 attempt=0 resume='' moments='' bad=''
while [ "$kills" -lt "$KILLS" ] && read -r delay; do
  attempt=$((attempt + 1))
  "$TIDE" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms $resume \
    -- "$INPUT" "$d/out" rate=8000 watermarks=1 time=commit >"$d/a$attempt.out" 2>"$d/a$attempt.err" &
  pid=$!
  sleep "$delay"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  if [ "$rc" = 137 ]; then
    kills=$((kills + 1))
    moments="$moments ${delay}s"
    [ -n "$(completed "$d/ck/commits-by-author")" ] && resume=--resume
  else
    bad="attempt $attempt (kill after ${delay}s) exited $rc"
    break
  fi
done <"$d/delays"
echo "# chaos: killed after$moments"
committed_before=$(committed_parts "$d/out" | wc -l | tr -d ' ')
if [ -n "$bad" ]; then
  not_ok "chaos: every attempt runs until killed"
  echo "#   $bad; stderr:"
  diag "$d/a$attempt.err"
else
  ok "chaos: killed $kills times with SIGKILL"
fi
run_tide "$d/final" run "$JOB" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms $resume \
  -- "$INPUT" "$d/out" rate=40000 watermarks=1 time=commit
check_rc "chaos: the last run goes to the end, exit 0" 0
check "chaos: the killed runs had committed part files ($committed_before)" test "$committed_before" -gt 0
[ -n "$resume" ] && check_match "chaos: the last run resumed from a checkpoint" "$d/final.err" \
  "resuming job 'commits-by-author' from checkpoint [0-9]+"
cat "$d/out"/*.jsonl 2>/dev/null | sort >"$d/actual"
check_eq "chaos: committed output is exactly the oracle's (nothing lost, nothing twice)" \
  "$TMP/expected.commit" "$d/actual"
check_str "chaos: no hidden part file left" "" "$(hidden_files "$d/out" | tr '\n' ' ')"

# ---- 5. install, and a module built against the installed header ---------------

if command -v pkg-config >/dev/null && command -v make >/dev/null; then
  make -s install-headers PREFIX="$TMP/prefix" >"$TMP/install.log" 2>&1
  check "make install-headers into a temporary PREFIX" test -f "$TMP/prefix/include/tide.h"
  check "tide.pc is installed" test -f "$TMP/prefix/lib/pkgconfig/tide.pc"
  cflags=$(PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig" pkg-config --cflags tide)
  check_str "pkg-config --cflags tide points at the installed include dir" "-I$TMP/prefix/include" \
    "$(echo $cflags)"
  mkdir -p "$TMP/mod"
  cp scripts/modules/streamkit.c "$TMP/mod/my.c"
  (cd "$TMP/mod" && ${CC:-cc} -shared -fPIC -o my.so my.c $cflags) >"$TMP/mod.log" 2>&1
  check "cc -shared -fPIC -o my.so my.c \$(pkg-config --cflags tide) builds the example" test -f "$TMP/mod/my.so"
  STREAMKIT=$TMP/mod/my.so
  run_tide "$TMP/inst" run "$JOB" -p 2 -- "$INPUT" "$TMP/inst-out2"
  STREAMKIT=$KIT
  check_rc "the job with the module built against the install exits 0" 0
  cat "$TMP/inst-out2"/*.jsonl 2>/dev/null | sort >"$TMP/inst.sorted"
  check_eq "the module built against the install gives the oracle's output" "$TMP/expected" "$TMP/inst.sorted"
else
  not_ok "pkg-config and make are installed (make deps)"
fi

finish
