#!/bin/sh
# End-to-end: bad input to event-time windows gets a clear error naming the
# operator (or the script line for bad arguments), never a crash or a hang.
. tests/e2e/lib.sh

job() { # job NAME BODY: a job script whose pipeline is BODY
  cat >"$TMP/$1.lua" <<EOF2
local tide = require "tide"
local env = tide.env{}
$2
env:execute("$1")
EOF2
}

job no_ts 'env:from_list{{k = 1}}:key_by("k"):window(tide.windows.tumbling("1s")):count():uid("win-no-ts"):print()'
run_tide "$TMP/no_ts" run "$TMP/no_ts.lua"
check_rc "event-time window without timestamps exits 1" 1
check_contains "names the window operator" "$TMP/no_ts.err" "operator 'win-no-ts'"
check_contains "says timestamps are missing" "$TMP/no_ts.err" "event-time windows need assign_timestamps"

job slide0 'env:from_list{{k = 1}}:key_by("k"):window(tide.windows.sliding("1s", 0)):count():print()'
run_tide "$TMP/slide0" run "$TMP/slide0.lua"
check_rc "slide 0 exits 1" 1
check_contains "slide 0: names argument and script line" "$TMP/slide0.err" "slide0.lua:3: bad argument #2 to 'sliding'"

job size0 'env:from_list{{k = 1}}:key_by("k"):window(tide.windows.tumbling(0)):count():print()'
run_tide "$TMP/size0" run "$TMP/size0.lua"
check_rc "size 0 exits 1" 1
check_contains "size 0: names argument" "$TMP/size0.err" "bad argument #1 to 'tumbling'"

job offset 'env:from_list{{k = 1}}:key_by("k"):window(tide.windows.sliding(10, 5, { offset = 5 })):count():print()'
run_tide "$TMP/offset" run "$TMP/offset.lua"
check_rc "|offset| >= slide exits 1" 1
check_contains "offset: names the sliding window" "$TMP/offset.err" "sliding"

job ts_nil 'env:from_list{{k = 1}}:assign_timestamps(function(r) return r.t end, tide.watermarks.monotonous()):uid("stamps"):print()'
run_tide "$TMP/ts_nil" run "$TMP/ts_nil.lua"
check_rc "timestamp function returning nil exits 1" 1
check_contains "names the timestamp operator" "$TMP/ts_nil.err" "operator 'stamps'"
check_contains "says what it returned" "$TMP/ts_nil.err" "returned nil"

job trig 'env:from_list{{k = 1, t = 5}}
  :assign_timestamps(function(r) return r.t end, tide.watermarks.monotonous())
  :key_by("k"):window(tide.windows.tumbling(10))
  :trigger({ on_element = function() error("trigger exploded") end,
             on_event_time = function() return "continue" end,
             on_processing_time = function() return "continue" end,
             clear = function() end })
  :count():uid("custom-trigger"):print()'
run_tide "$TMP/trig" run "$TMP/trig.lua" --parallelism 2
check_rc "a Lua trigger that raises exits 1" 1
check_contains "names the window operator" "$TMP/trig.err" "operator 'custom-trigger'"
check_contains "gives the trigger's file:line" "$TMP/trig.err" "trig.lua:6: trigger exploded"

finish
