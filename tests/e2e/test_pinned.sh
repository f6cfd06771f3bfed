#!/bin/sh
# tests/e2e/test_pinned.sh - the job script is pinned at submission: every
# subtask VM, and every restart after a failure, runs the text `tide run`
# read, never the file again (issue 11); its hash is in every checkpoint.
#
# The job fails once in the middle of its input after the test has edited
# the script on disk ("v1" -> "v2" in its output); the restarted job must
# still write "v1" lines only. Before pinning, the restart loaded the edited
# file and wrote "v2".
. tests/e2e/lib.sh

# the job: 1..40 -> map to "v1:x" -> write_text, failing once at x = 20
# after telling the test it got there, and waiting for the test's go
cat >"$TMP/job.lua" <<'LUA'
local tide = require "tide"
local ctl = arg[1]
local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() end
  return f ~= nil
end
local list = {}
for i = 1, 40 do list[i] = i end
local env = tide.env{ parallelism = 2, restart = { strategy = "fixed_delay", attempts = 2, delay = "50ms" } }
env:from_list(list)
   :map(function(x)
     if x == 20 and not exists(ctl .. "/failed") then
       io.open(ctl .. "/reached", "w"):close()
       while not exists(ctl .. "/go") do os.execute("sleep 0.05") end
       io.open(ctl .. "/failed", "w"):close()
       error("failing once")
     end
     return "v1:" .. x
   end)
   :write_text(arg[2])
env:execute("pinned")
LUA

mkdir -p "$TMP/ctl"
"$TIDE" run "$TMP/job.lua" -- "$TMP/ctl" "$TMP/out" >"$TMP/run.out" 2>"$TMP/run.err" &
pid=$!
i=0
while [ ! -e "$TMP/ctl/reached" ] && [ "$i" -lt 400 ]; do
  sleep 0.05
  i=$((i + 1))
done
check "the job reached the record where it fails" test -e "$TMP/ctl/reached"
# edit the script on disk while the job runs: v1 -> v2
sed 's/"v1:"/"v2:"/' "$TMP/job.lua" >"$TMP/job.lua.new" && mv "$TMP/job.lua.new" "$TMP/job.lua"
: >"$TMP/ctl/go"
wait "$pid"
RC=$?
LAST=$TMP/run
check_rc "the job restarts once and ends, exit 0" 0
check_contains "it failed once and restarted" "$TMP/run.err" "restarting in 50 ms"
cat_parts "$TMP/out" | sort >"$TMP/got"
seq 1 40 | sed 's/^/v1:/' | sort >"$TMP/want"
check_eq "the restart ran the script as submitted: 40 'v1' lines, none from the edited file" \
  "$TMP/want" "$TMP/got"

# the hash of the pinned text is in each checkpoint's _metadata; a resume
# with another script says so
cat >"$TMP/ck.lua" <<'LUA'
local tide = require "tide"
local list = {}
for i = 1, 200 do list[i] = i end
local env = tide.env{ checkpoint = { dir = arg[1], interval = "20ms" } }
env:from_list(list, { rate = 2000 }):map(function(x) return x end):discard()
env:execute("ck")
LUA
run_tide "$TMP/ck" run "$TMP/ck.lua" -- "$TMP/ckdir"
check_rc "a checkpointed job ends, exit 0" 0
# the oracle: xxhsum (Debian's xxhash) over the file as submitted
want_hash=$(xxhsum -H1 <"$TMP/ck.lua" | cut -d' ' -f1)
meta=$(ls -d "$TMP"/ckdir/ck/chk-*/_metadata 2>/dev/null | head -n 1)
check "a completed checkpoint exists" test -n "$meta"
check "_metadata records the XXH64 of the script text ($want_hash)" grep -q "$want_hash" "$meta"
# resume after editing the script: a note names both hashes
echo "-- edited" >>"$TMP/ck.lua"
new_hash=$(xxhsum -H1 <"$TMP/ck.lua" | cut -d' ' -f1)
run_tide "$TMP/ck2" run "$TMP/ck.lua" --resume -- "$TMP/ckdir"
check_rc "the resumed job ends, exit 0" 0
check_contains "resuming with an edited script says so, with both hashes" "$TMP/ck2.err" \
  "is not the script checkpoint"
check_contains "... the old hash" "$TMP/ck2.err" "$want_hash then, $new_hash now"
finish
