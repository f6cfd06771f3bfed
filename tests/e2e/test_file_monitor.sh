#!/bin/sh
# End-to-end: the continuous file source, env:read_text(dir, {monitor =}).
# Files appear in the directory while the job runs (written under a "."
# name, then renamed in), the job is SIGKILLed after a checkpoint, more
# files appear while it is down, and the resumed job reads on; once it has
# committed every line it is stopped with a savepoint. Every line of every
# file must be in the exactly-once file sink once (oracle: the files' own
# lines, sorted by the shell). A bad JSON line with format = "json" fails
# the job naming dir/file:line.
. tests/e2e/lib.sh

cat >"$TMP/job.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env()
env:read_text(arg[1], { monitor = "100ms", format = arg[3], rate_limit = tonumber(arg[4]) }):uid("files")
   :map(function(x) return type(x) == "table" and x.k or x end):uid("key")
   :write_text(arg[2]):uid("out")
env:execute("monitor")
EOF2

mkdir "$TMP/in"
# add_file N: file f<N> of 1500 lines "f<N>-<i>", renamed into the directory
add_file() {
  awk -v n="$1" 'BEGIN { for (i = 1; i <= 1500; i++) print "f" n "-" i }' >"$TMP/in/.f$1"
  mv "$TMP/in/.f$1" "$TMP/in/f$1"
}
# wait_lines DIR N: until DIR's committed parts hold N lines (at most 60 s)
wait_lines() {
  for _ in $(seq 600); do
    [ "$(cat_parts "$1" | wc -l)" -ge "$2" ] && return 0
    sleep 0.1
  done
}

add_file 1
add_file 2
"$TIDE" run "$TMP/job.lua" --checkpoint-dir "$TMP/chk" --checkpoint-interval 200ms \
  -- "$TMP/in" "$TMP/out" text 3000 >"$TMP/first.out" 2>"$TMP/first.err" &
FIRST=$!
wait_checkpoint "$TMP/chk/monitor" 1
add_file 3
add_file 4
kill_at_checkpoint "$FIRST" "$TMP/chk/monitor" 4
check_rc_of "the first run was killed" 137 "$KILLED" "$TMP/first.err"
add_file 5
add_file 6

start_tide second run "$TMP/job.lua" --checkpoint-dir "$TMP/chk" --checkpoint-interval 200ms --resume \
  -- "$TMP/in" "$TMP/out" text 20000
add_file 7
wait_lines "$TMP/out" 10500
"$TIDE" stop "$ID" --savepoint "$TMP/sp" >"$TMP/stop.out" 2>"$TMP/stop.err"
check_str "tide stop succeeds" 0 "$?"
wait_tide second
check_rc "the resumed run stops with exit 0" 0

for n in 1 2 3 4 5 6 7; do cat "$TMP/in/f$n"; done | sort >"$TMP/want"
cat_parts "$TMP/out" | sort >"$TMP/got"
check_eq "every line of the 7 files exactly once" "$TMP/want" "$TMP/got"

# ---- format = "json": a bad line names dir/file:line ----------------------
mkdir "$TMP/json"
printf '{"k":"a"}\n{"k":"b"}\n' >"$TMP/json/j1"
printf '{"k":"c"}\n\n{"k":\n' >"$TMP/json/j2"
run_tide "$TMP/bad" run "$TMP/job.lua" -- "$TMP/json" "$TMP/jout" json
check_rc "json: a bad line fails the job" 1
check_contains "json: the error names the file and line" "$TMP/bad.err" "$TMP/json/j2:3: bad JSON"

# ---- errors --------------------------------------------------------------
run_tide "$TMP/nodir" run "$TMP/job.lua" -- "$TMP/missing" "$TMP/nout" text
check_rc "monitor of a missing directory: exit 1" 1
check_contains "monitor of a missing directory: says so" "$TMP/nodir.err" "read_text: monitor needs a readable directory"

finish
