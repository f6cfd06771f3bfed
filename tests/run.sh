#!/bin/sh
# tests/run.sh [c|lua|luajit|e2e]... - run Tide's test suites and sum them up.
#
# Each suite prints its own results; this script adds up every suite's
# counts and ends with one line "N passed, N failed". Exit status is
# non-zero if anything failed (or a suite ran no test at all).
#   C unit tests:   $BUILD/tests/test_*  (each ends "N passed, N failed")
#   busted specs:   tests/lua/*_spec.lua (TAP output, counted here)
#   LuaJIT:         every Lua file of lua/, scripts/ and tests/ parses
#                   under $LUAJIT (one test per file),
#                   every spec runs under it (busted --run=luajit, with
#                   the LuaJIT build of tide.core), and every end-to-end
#                   test with $BUILD/tide-luajit (TIDE_VM=luajit)
#   end-to-end:     tests/e2e/test_*.sh  (each ends "N passed, N failed"),
#                   TIDE_TEST_JOBS at a time (default: the number of cores)
# Every part (the C tests, each busted run, the LuaJIT parse check, each
# end-to-end test under each VM) runs in one pool, TIDE_TEST_JOBS at a
# time, the longest first; the results are printed afterwards in the order
# above. `tests/run.sh --part NAME` runs one part alone (c, busted,
# busted-rocksdb, luajit-parse, busted-luajit), ending with its own
# "N passed, N failed".
set -u
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
BUSTED=${BUSTED:-busted}
LUAJIT=${LUAJIT:-luajit}
DATA=${DATA:-../shared/data}
export BUILD LUA DATA
suites=${*:-c lua luajit e2e}
jobs=${TIDE_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
passed=0
failed=0
log=$(mktemp)
pool_dir=
trap 'rm -f "$log"; [ -z "$pool_dir" ] || rm -rf "$pool_dir"' EXIT

count_line() { # add the "N passed, N failed" line of $log
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "  (no result line: counted as 1 failure)"
    failed=$((failed + 1))
    return
  fi
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  passed=$((passed + p))
  failed=$((failed + f))
}

# an ASan-built tide/core.so needs the sanitizer runtimes loaded first into
# the lua5.4 or luajit process that runs busted
preload=""
if [ -n "${TIDE_ASAN:-}" ]; then
  preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
fi

count_tap() { # add the TAP results ("ok ...", "not ok ...") of $log
  grep -v '^ok ' "$log"
  p=$(grep -c '^ok ' "$log")
  f=$(grep -c '^not ok ' "$log")
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "  $1"; fi
  echo "$p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

# part NAME: run one part, adding its results to passed and failed
part() {
  case $1 in
  c)
    for t in "$BUILD"/tests/test_*; do
      [ -x "$t" ] || continue
      echo "== $t"
      "$t" >"$log" 2>&1
      rc=$?
      grep -v '^ok ' "$log"
      count_line
      if [ $rc -ne 0 ] && ! grep -qE '^[0-9]+ passed, [1-9]' "$log"; then
        echo "  exited $rc"; failed=$((failed + 1))
      fi
    done
    ;;
  busted)
    echo "== busted (tests/lua)"
    LD_PRELOAD="$preload" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
    LUA_PATH="lua/?.lua;;" LUA_CPATH="$BUILD/lua/?.so;;" TIDE="$BUILD/tide" \
      "$LUA" "$(command -v "$BUSTED")" --cpath="$BUILD/lua/?.so" --output=TAP tests/lua >"$log" 2>&1
    count_tap "busted ran no test"
    ;;
  busted-rocksdb)
    # the in-process specs again with keyed state in RocksDB: every
    # harness of tide.testing takes the backend from the environment, and
    # window_spec reads it itself. The specs that use neither, and
    # timers_rocksdb_spec (whose harnesses name their backend), pick their
    # backends themselves and would run exactly as in the first run: they
    # are left out here.
    echo "== busted, keyed state on rocksdb (tests/lua, #unit, the specs whose harnesses take the backend from the environment)"
    specs=$(grep -l -e 'tide[.]testing' -e harness_helpers -e TIDE_TEST_STATE_BACKEND tests/lua/*_spec.lua |
      grep -v '/timers_rocksdb_spec[.]lua$')
    # shellcheck disable=SC2086
    LD_PRELOAD="$preload" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" TIDE_TEST_STATE_BACKEND=rocksdb \
    LUA_PATH="lua/?.lua;;" LUA_CPATH="$BUILD/lua/?.so;;" TIDE="$BUILD/tide" \
      "$LUA" "$(command -v "$BUSTED")" --cpath="$BUILD/lua/?.so" --tags=unit --output=TAP $specs >"$log" 2>&1
    count_tap "busted ran no test"
    ;;
  luajit-parse)
    echo "== LuaJIT: the library and example jobs parse ($LUAJIT)"
    : >"$log"
    for file in lua/tide.lua lua/tide/*.lua scripts/*.lua scripts/bench/*.lua \
      tests/lua/*.lua tests/e2e/*.lua; do
      if err=$("$LUAJIT" -bl "$file" 2>&1 >/dev/null); then
        echo "ok - $file" >>"$log"
      else
        echo "not ok - $file: $err" >>"$log"
      fi
    done
    count_tap "no file checked"
    ;;
  busted-luajit)
    echo "== busted under LuaJIT (tests/lua)"
    LD_PRELOAD="$preload" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
    LUA_PATH="lua/?.lua;;" LUA_CPATH="$BUILD/luajit/lua/?.so;;" TIDE="$BUILD/tide-luajit" TIDE_EXPECT_VM=luajit \
      "$LUAJIT" "$(command -v "$BUSTED")" --run=luajit --ignore-lua --cpath="$BUILD/luajit/lua/?.so" \
      --output=TAP >"$log" 2>&1
    count_tap "busted ran no test"
    ;;
  *)
    echo "tests/run.sh: no part '$1' (c, busted, busted-rocksdb, luajit-parse, busted-luajit)"
    failed=$((failed + 1))
    ;;
  esac
}

if [ "${1:-}" = --part ]; then
  part "${2:-}"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit
fi

# the parts of each suite, in the order their results are printed
parts_of() {
  case $1 in
  c) echo c ;;
  lua) echo busted busted-rocksdb ;;
  luajit) echo luajit-parse busted-luajit ;;
  esac
}

# Everything the suites ask for runs in one pool, TIDE_TEST_JOBS at a time
# (default: the number of cores): the parts above, and the end-to-end
# tests of every VM asked for (lua5.4 for e2e, luajit for luajit), the
# longest first (HEAVY, from the suite's timings; the rest in file order),
# so that no core idles while another runs a long part alone. Each job
# gets its own XDG_RUNTIME_DIR, so that `tide list` shows only its own
# jobs. The results are printed afterwards, in the order of the suites:
# show_part prints a part's, run_e2e one VM's end-to-end tests' in file
# order, each with its wall time.
HEAVY="busted test_checkpoint busted-luajit test_cluster busted-rocksdb test_rescale test_two_input
  test_checkpoint_recovery test_rocksdb test_metrics test_kafka test_module_rescale c test_unaligned
  test_postgres test_savepoint test_dashboard test_checkpoint_rocksdb test_reload test_control"
pool() {
  pool_dir=$(mktemp -d)
  vms="" all_parts=""
  for suite in $suites; do all_parts="$all_parts $(parts_of "$suite")"; done
  case " $suites " in *" luajit "*) vms="$vms luajit" ;; esac
  case " $suites " in *" e2e "*) vms="$vms lua5.4" ;; esac
  {
    for n in $HEAVY; do
      case " $all_parts " in *" $n "*) echo "part $n" ;; esac
      [ -f "tests/e2e/$n.sh" ] || continue
      for vm in $vms; do echo "$vm tests/e2e/$n.sh"; done
    done
    for n in $all_parts; do
      case " $(echo $HEAVY) " in *" $n "*) continue ;; esac
      echo "part $n"
    done
    for t in tests/e2e/test_*.sh; do
      case " $(echo $HEAVY) " in *" $(basename "$t" .sh) "*) continue ;; esac
      for vm in $vms; do echo "$vm $t"; done
    done
  } | BUILD="$BUILD" POOL_DIR="$pool_dir" xargs -P "$jobs" -n 2 sh -c '
      vm=$0 t=$1 n=$(basename "$1" .sh)
      d="$POOL_DIR/$vm"
      mkdir -p "$d"
      mkdir -m 700 "$d/$n.run"
      s=$(date +%s)
      if [ "$vm" = part ]; then
        XDG_RUNTIME_DIR="$d/$n.run" sh tests/run.sh --part "$n" >"$d/$n.log" 2>&1
      else
        tide="$BUILD/tide"
        [ "$vm" = luajit ] && tide="$BUILD/tide-luajit"
        TIDE="$tide" TIDE_VM="$vm" XDG_RUNTIME_DIR="$d/$n.run" sh "$t" >"$d/$n.log" 2>&1
      fi
      echo $(($(date +%s) - s)) >"$d/$n.time"'
}

# show_part NAME: the results of part NAME (its log but the last line,
# whose counts are added up)
show_part() {
  cp "$pool_dir/part/$1.log" "$log" 2>/dev/null || : >"$log"
  line=$(tail -n 1 "$log")
  if echo "$line" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then
    sed '$d' "$log"
    count_line
  else
    cat "$log"
    echo "  (part $1 ended without its result line: counted as 1 failure)"
    failed=$((failed + 1))
  fi
  echo "-- $1: $(cat "$pool_dir/part/$1.time" 2>/dev/null || echo '?') s"
}

# run_e2e VM LABEL: the results of VM's end-to-end tests
run_e2e() {
  for t in tests/e2e/test_*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    echo "== $t$2 ($(cat "$pool_dir/$1/$n.time" 2>/dev/null || echo '?') s)"
    cp "$pool_dir/$1/$n.log" "$log" 2>/dev/null || : >"$log"
    grep -v '^ok ' "$log"
    count_line
  done
}

pool
for suite in $suites; do
  for n in $(parts_of "$suite"); do show_part "$n"; done
  case $suite in
  luajit) run_e2e luajit " (LuaJIT)" ;;
  e2e) run_e2e lua5.4 "" ;;
  esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
