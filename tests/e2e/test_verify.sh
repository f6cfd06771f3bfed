#!/bin/sh
# End-to-end: `tide verify DIR` checks a checkpoint directory the way
# recovery does (state/metadata.h): _metadata, and every file it lists
# present, sound, of the recorded size and CRC32C, and written for this
# checkpoint and job. The checkpoints are written by an independent Python
# writer that follows the byte layouts documented in state/snapshot.h and
# state/metadata.h.
. tests/e2e/lib.sh

job=$TMP/ck/wc
mk() { "$PYTHON" tests/e2e/make_snapshot.py checkpoint "$job/chk-$1" "$1" wc \
  "op-0.state:0:keyed state $1" "op-1.state:1:more state $1"; }
mk 1
mk 2
dir=$job/chk-2
echo "not state" >"$dir/README.txt"
run_tide "$TMP/good" verify "$dir"
check_rc "a sound checkpoint verifies (exit 0)" 0
check_contains "_metadata is ok" "$TMP/good.out" "ok       _metadata: checkpoint 2 of job 'wc', 2 files"
check_contains "the state file is ok" "$TMP/good.out" "ok       op-0.state: kind 1, version 1, 2 sections"
check_contains "files _metadata does not list are skipped" "$TMP/good.out" \
  "skipped  README.txt: $dir/README.txt: not part of the checkpoint (not in _metadata)"

run_tide "$TMP/jobdir" verify "$job"
check_rc "a job's checkpoint directory verifies (exit 0)" 0
check_contains "every checkpoint is listed" "$TMP/jobdir.out" "chk-1:"
check_contains "says which one --resume restores" "$TMP/jobdir.out" "--resume restores chk-2"

# flip one byte in the middle of a state file
cp "$dir/op-0.state" "$TMP/op-0.saved"
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
run_tide "$TMP/bad-job" verify "$job"
check_rc "a job directory with a corrupt checkpoint fails (exit 1)" 1
check_contains "--resume would fall back to the older one" "$TMP/bad-job.out" "--resume restores chk-1"

# a sound state file of the previous checkpoint copied over this one's
cp "$job/chk-1/op-0.state" "$dir/op-0.state"
run_tide "$TMP/copied" verify "$dir"
check_rc "a state file of another checkpoint fails verification (exit 1)" 1
check_contains "says it is not the file this checkpoint wrote" "$TMP/copied.out" \
  "BAD      op-0.state: $dir/op-0.state: not the file checkpoint 2 wrote"
cp "$TMP/op-0.saved" "$dir/op-0.state"

# a state file missing
mv "$dir/op-1.state" "$TMP/op-1.saved"
run_tide "$TMP/missing" verify "$dir"
check_rc "a missing state file fails verification (exit 1)" 1
check_contains "names the missing file" "$TMP/missing.out" "BAD      op-1.state: $dir/op-1.state: missing"
mv "$TMP/op-1.saved" "$dir/op-1.state"

# a truncated metadata file
head -c 20 "$dir/_metadata" >"$dir/_metadata.cut" && mv "$dir/_metadata.cut" "$dir/_metadata"
run_tide "$TMP/cut" verify "$dir"
check_rc "a truncated _metadata fails verification (exit 1)" 1
check_contains "names _metadata" "$TMP/cut.out" "BAD      _metadata"

# no _metadata at all: state files alone are not a checkpoint
rm "$dir/_metadata"
run_tide "$TMP/nometa" verify "$dir"
check_rc "a directory without _metadata fails verification (exit 1)" 1
check_contains "says it is not a completed checkpoint" "$TMP/nometa.out" "missing: not a completed checkpoint"
mkdir -p "$TMP/empty"
run_tide "$TMP/empty" verify "$TMP/empty"
check_rc "an empty directory fails verification (exit 1)" 1

run_tide "$TMP/none" verify "$TMP/does-not-exist"
check_rc "a missing directory exits 1" 1
check_contains "says it cannot list it" "$TMP/none.err" "does-not-exist"
run_tide "$TMP/usage" verify
check_rc "verify without a directory is a usage error (exit 2)" 2

finish
