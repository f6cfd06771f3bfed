#!/bin/sh
# End-to-end: a job's files are shipped to task managers that cannot see
# them (docs/CLUSTER.md, "Files the job ships"). The job directory holds
# the script, a Lua module it requires (lib/words.lua) and the streamkit C
# module it loads (mods/streamkit.so); the job manager and each task
# manager run in a mount namespace of their own where a tmpfs hides that
# directory, as on hosts without a shared file system. Skipped with the
# reason where mount namespaces cannot be made (not root).
#   - word count p=2 (C source, Lua flat_map from the required module,
#     rolling sum: each word's last value) equals a shell pipeline's counts
#   - each task manager's --work-dir holds both files, named by their
#     BLAKE2b-256 (b2sum -l 256: an oracle outside Tide)
#   - an error raised in the shipped module names it as the script's host
#     knows it (lib/words.lua:LINE) and the job's exit status is 1
#   - tide run --detached: the client sends the files with the script; the
#     job manager keeps them by content and the master it starts (which
#     cannot see the job directory either) loads them: the same output; an
#     error in the shipped module names it where the client found it
. tests/e2e/lib.sh

ABS_TIDE=$(cd "$(dirname "$TIDE")" && pwd)/$(basename "$TIDE")
TIDE=$ABS_TIDE # the job runs from its own directory
BUILD=${BUILD:-$(dirname "$ABS_TIDE")}
JOB=$TMP/job
mkdir -p "$JOB/lib" "$JOB/mods"
if ! out=$(unshare -m sh -c "mount -t tmpfs tmpfs '$JOB' && ls -A '$JOB'" 2>&1) || [ -n "$out" ]; then
  ok "# SKIP cannot hide a directory in a mount namespace: $(echo "$out" | tr '\n' ' ')"
  finish
  exit
fi
PIDS=
cleanup() {
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$JOB/lib/words.lua" <<'LUA'
local M = {}
function M.split(line, out)
  if line == "BOOM" then error("a line the job cannot take") end
  for w in line:lower():gmatch("[a-z0-9]+") do out:collect(w) end
end
return M
LUA
cat >"$JOB/job.lua" <<'LUA'
package.path = "./lib/?.lua;" .. package.path
local tide = require "tide"
local words = require "words"
local kit = tide.load_module("mods/streamkit.so")
local env = tide.env()
env:add_source(kit.lines, { path = arg[1] }):uid("lines")
  :flat_map(words.split):uid("split")
  :map(function(w) return { word = w, n = 1 } end)
  :key_by("word"):sum("n"):uid("sum")
  :write_csv(arg[2], { columns = { "word", "n" } })
env:execute("shipped")
LUA
cp "$BUILD/modules/streamkit.so" "$JOB/mods/streamkit.so"

head -c 48 /dev/urandom | base64 | tr -d '\n' >"$TMP/secret"
chmod 600 "$TMP/secret"
unshare -m sh -c "mount -t tmpfs tmpfs '$JOB' && exec '$ABS_TIDE' jobmanager --bind 127.0.0.1:0 \
  --secret-file '$TMP/secret' --work-dir '$TMP/jm'" >"$TMP/jm.out" 2>"$TMP/jm.err" &
PIDS="$PIDS $!"
JM=$(await_jobmanager "$TMP/jm.out")
start_tm() { # start_tm N: a task manager with 2 slots that cannot see $JOB
  unshare -m sh -c "mount -t tmpfs tmpfs '$JOB' && exec '$ABS_TIDE' taskmanager --jobmanager '$JM' \
    --secret-file '$TMP/secret' --slots 2 --work-dir '$TMP/tm$1'" >"$TMP/tm$1.out" 2>"$TMP/tm$1.err" &
  PIDS="$PIDS $!"
}
start_tm 1
start_tm 2
registered() {
  "$ABS_TIDE" list --jobmanager "$JM" --secret-file "$TMP/secret" 2>/dev/null |
    awk '/^TASK MANAGER/ {t = 1; next} /^$/ {t = 0} t' | wc -l
}
for _ in $(seq 100); do [ "$(registered)" = 2 ] && break; sleep 0.1; done
check_str "two task managers register" 2 "$(registered)"

zcat "$DATA/git-messages.txt.gz" | head -n 3000 >"$TMP/in.txt"
# shellcheck disable=SC2018,SC2019 # ASCII ranges on purpose (LC_ALL=C)
tr 'A-Z' 'a-z' <"$TMP/in.txt" | tr -cs 'a-z0-9' '\n' | grep -v '^$' | sort | uniq -c |
  awk '{print $2","$1}' | sort >"$TMP/wc.oracle"
cd "$JOB" || exit 1
run_tide "$TMP/wc" run job.lua -p 2 --jobmanager "$JM" --secret-file "$TMP/secret" -- \
  "$TMP/in.txt" "$TMP/wc-out"
check_rc "the job runs on task managers that cannot see its directory" 0
# the rolling sum's last (largest) value per word
cat_parts "$TMP/wc-out" | awk -F, '$2 > m[$1] {m[$1] = $2} END {for (w in m) print w "," m[w]}' |
  sort >"$TMP/wc.actual"
check_eq "its word count equals the shell oracle" "$TMP/wc.oracle" "$TMP/wc.actual"
for f in lib/words.lua mods/streamkit.so; do
  h=$(b2sum -l 256 "$f" | cut -d' ' -f1)
  for n in 1 2; do
    check "task manager $n keeps $f as files/<its BLAKE2b-256>" cmp -s "$f" "$TMP/tm$n/files/$h"
  done
done
find "$TMP/tm1/files" "$TMP/tm2/files" -name '*.part' >"$TMP/parts"
check_empty "no partial file is left" "$TMP/parts"

printf 'one line\nBOOM\nanother\n' >"$TMP/boom.txt"
run_tide "$TMP/boom" run job.lua -p 2 --jobmanager "$JM" --secret-file "$TMP/secret" -- \
  "$TMP/boom.txt" "$TMP/boom-out" restart=none
check_rc "an error in the shipped module fails the job" 1
check_match "... naming the module as the script's host knows it, with its line" "$TMP/boom.err" \
  "lib/words\\.lua:3: a line the job cannot take"

# -- submitted: the job manager runs the master ----------------------------------
run_tide "$TMP/det" run job.lua -p 2 --detached --jobmanager "$JM" --secret-file "$TMP/secret" -- \
  "$TMP/in.txt" "$TMP/det-out"
check_rc "tide run --detached exits 0" 0
DET=$(cat "$TMP/det.out")
for _ in $(seq 600); do grep -q 'ended: exit status' "$TMP/jm.err" && break; sleep 0.1; done
check_contains "the master the job manager started ended with exit status 0" "$TMP/jm.err" \
  "ended: exit status 0"
cat_parts "$TMP/det-out" | awk -F, '$2 > m[$1] {m[$1] = $2} END {for (w in m) print w "," m[w]}' |
  sort >"$TMP/det.actual"
check_eq "the detached job's word count equals the shell oracle" "$TMP/wc.oracle" "$TMP/det.actual"
for f in lib/words.lua mods/streamkit.so; do
  h=$(b2sum -l 256 "$f" | cut -d' ' -f1)
  check "the job manager keeps $f as files/<its BLAKE2b-256>" cmp -s "$f" "$TMP/jm/files/$h"
done
check_contains "its manifest names where the client found lib/words.lua" \
  "$(ls "$TMP"/jm/logs/job-*.files.json)" "\"origin\":\"$JOB/lib/words.lua\""
[ -n "$DET" ] || diag "$TMP/det.err"
run_tide "$TMP/det-boom" run job.lua -p 2 --detached --jobmanager "$JM" --secret-file "$TMP/secret" \
  -- "$TMP/boom.txt" "$TMP/det-boom-out" restart=none
for _ in $(seq 600); do grep -q 'ended: exit status 1' "$TMP/jm.err" && break; sleep 0.1; done
check_contains "a detached job's error names the module where the client found it" \
  "$(ls "$TMP"/jm/logs/job-2.log)" "$JOB/lib/words.lua:3: a line the job cannot take"
finish
