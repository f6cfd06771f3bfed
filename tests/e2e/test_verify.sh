#!/bin/sh
# End-to-end: `tide verify DIR` checks the state files of a checkpoint
# directory; the files are written by an independent Python writer that
# follows the byte layout documented in state/snapshot.h.
. tests/e2e/lib.sh

dir=$TMP/chk-1
mkdir -p "$dir"
"$PYTHON" tests/e2e/make_snapshot.py "$dir/_metadata" 2 "1:checkpoint 1"
"$PYTHON" tests/e2e/make_snapshot.py "$dir/op-0.state" 1 "7:keyed state" "8:" "7:timers"
echo "not state" >"$dir/README.txt"
run_tide "$TMP/good" verify "$dir"
check_rc "a sound directory verifies (exit 0)" 0
check_contains "_metadata is ok" "$TMP/good.out" "ok       _metadata: kind 2, version 1, 1 sections"
check_contains "the state file is ok" "$TMP/good.out" "ok       op-0.state: kind 1, version 1, 3 sections"
check_contains "other files are skipped" "$TMP/good.out" "skipped  README.txt"

# flip one byte in the middle of the state file
"$PYTHON" - "$dir/op-0.state" <<'EOF2'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(bytes(b))
EOF2
run_tide "$TMP/bad" verify "$dir"
check_rc "a corrupt file fails verification (exit 1)" 1
check_contains "names the corrupt file" "$TMP/bad.out" "BAD      op-0.state"
check_contains "says the CRC does not match" "$TMP/bad.out" "CRC mismatch"

# a truncated metadata file
"$PYTHON" tests/e2e/make_snapshot.py "$dir/op-0.state" 1 "7:keyed state"
head -c 20 "$dir/_metadata" >"$dir/_metadata.cut" && mv "$dir/_metadata.cut" "$dir/_metadata"
run_tide "$TMP/cut" verify "$dir"
check_rc "a truncated _metadata fails verification (exit 1)" 1
check_contains "names _metadata" "$TMP/cut.out" "BAD      _metadata"

run_tide "$TMP/none" verify "$TMP/does-not-exist"
check_rc "a missing directory exits 1" 1
check_contains "says it cannot list it" "$TMP/none.err" "does-not-exist"
run_tide "$TMP/usage" verify
check_rc "verify without a directory is a usage error (exit 2)" 2

finish
