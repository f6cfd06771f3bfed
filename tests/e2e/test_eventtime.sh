#!/bin/sh
# End-to-end: event time through the tide binary. Per-record bounded
# watermarks through a key_by exchange feeding a keyed process function
# that counts records per key up to each 10-second boundary on event-time
# timers, at parallelism 1 and 3, against an awk oracle; timestamps carried
# across exchanges; the final +inf watermark firing every pending timer;
# side outputs; a two-input union whose second input is silent for a long
# time (with and without idleness); and failures (a timestamp function
# returning nil, timers on a non-keyed stream).
. tests/e2e/lib.sh

job() { cat >"$TMP/$1.lua"; }
run() {
  _name=$1
  shift
  run_tide "$TMP/$_name" run "$TMP/$_name.lua" "$@"
}

# ---- input: "key,ts" lines, out of order by less than 4 s ------------------
# ts_i = 10 i + (7919 i mod 4000): every record is at least 10 i and every
# earlier one at most 10 (i-1) + 3999, so a 5 s bound is never exceeded
# (also within any split of the file, a subsequence).
N=30000
awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++) printf "k%d,%d\n", (i * 31) % 13, i * 10 + (i * 7919) % 4000 }' \
  >"$TMP/events.txt"
check_str "input: $N lines" $N "$(wc -l <"$TMP/events.txt" | tr -d ' ')"

END_TS=9000000000000000

job counts <<'EOF'
local tide = require "tide"
local compat = require "tide.compat"
local input, out_dir, side_dir = arg[1], arg[2], arg[3]
local END = 9000000000000000
local env = tide.env()

local counted = env:read_text(input)
  :map(function(line)
    local k, t = line:match("^([^,]+),(%d+)$")
    return { k = k, t = compat.tointeger(t) }
  end)
  :assign_timestamps(function(v) return v.t end, tide.watermarks.bounded("5s", { per_record = true }))
  :uid("stamp")
  :key_by("k")
  :process{
    on_record = function(v, ctx)
      if ctx.timestamp ~= v.t then
        error("record " .. v.k .. "," .. v.t .. " arrived with timestamp " .. tostring(ctx.timestamp))
      end
      local wm = ctx.timers:current_watermark()
      if v.t <= wm then error("late record " .. v.k .. "," .. v.t .. " at watermark " .. wm) end
      local b = compat.idiv(v.t, 10000) * 10000 + 9999
      local m = ctx.state:map("counts")
      m:put(b, (m:get(b) or 0) + 1)
      ctx.timers:register_event_time(b)
      ctx.timers:register_event_time(END)
      if v.t % 7 == 0 then ctx:output("sevens", v.k .. "," .. v.t) end
    end,
    on_timer = function(ts, ctx, out)
      local wm = ctx.timers:current_watermark()
      if ts > wm then error("timer " .. ts .. " fired at watermark " .. wm) end
      local total = ctx.state:value("total")
      if ts == END then
        out:collect(ctx.key .. ",end," .. total:value())
        return
      end
      local m = ctx.state:map("counts")
      local n = m:get(ts)
      m:remove(ts)
      total:update((total:value() or 0) + n)
      out:collect(string.format("%s,%d,%d,%d", ctx.key, ts, n, total:value()))
    end,
  }
  :uid("counter")

-- across an exchange (at parallelism > 1), each line gets the timestamp it
-- arrived with (tide.format: LuaJIT's tostring writes 9e15 as "9e+15")
local function with_ts(v, ctx, out) out:collect(v .. "," .. tide.format(ctx.timestamp)) end
counted:rebalance():process(with_ts):uid("stamp-out"):write_text(out_dir)
counted:side_output("sevens"):rebalance():process(with_ts):uid("side-stamp-out"):write_text(side_dir)
env:execute("eventtime-counts")
EOF

# oracle: per key and 10 s boundary b = floor(ts / 10000) * 10000 + 9999,
# "key,b,count,cumulative count,b" and "key,end,total,END"; side output:
# "key,ts,ts" for the records whose ts is a multiple of 7
awk -F, '{ b = int($2 / 10000) * 10000 + 9999; c[$1 "," b]++ } END { for (k in c) print k "," c[k] }' \
  "$TMP/events.txt" | sort -t, -k1,1 -k2,2n |
  awk -F, -v end="$END_TS" '
    $1 != key { if (key != "") print key ",end," cum "," end; key = $1; cum = 0 }
    { cum += $3; print $1 "," $2 "," $3 "," cum "," $2 }
    END { print key ",end," cum "," end }' | sort >"$TMP/counts.oracle"
awk -F, '$2 % 7 == 0 { print $1 "," $2 "," $2 }' "$TMP/events.txt" | sort >"$TMP/sevens.oracle"
check_str "oracle: 13 keys end lines" 13 "$(grep -c ',end,' "$TMP/counts.oracle")"
check_str "oracle: end totals add up to $N" $N "$(awk -F, '$2 == "end" { s += $3 } END { print s }' "$TMP/counts.oracle")"

for p in 1 3; do
  run counts --parallelism $p -- "$TMP/events.txt" "$TMP/counts$p" "$TMP/sevens$p"
  check_rc "p=$p: event-time counts job exits 0" 0
  cat_parts "$TMP/counts$p" | sort >"$TMP/counts$p.sorted"
  cat_parts "$TMP/sevens$p" | sort >"$TMP/sevens$p.sorted"
  check_eq "p=$p: per key and 10 s boundary counts (timer output, with the timers' timestamps) equal the oracle" \
    "$TMP/counts.oracle" "$TMP/counts$p.sorted"
  check_eq "p=$p: side output 'sevens' (with the records' timestamps) equals the oracle" \
    "$TMP/sevens.oracle" "$TMP/sevens$p.sorted"
  check_str "p=$p: the timer at $END_TS fired at the end for each of the 13 keys" 13 \
    "$(grep -c ",end,[0-9]*,$END_TS\$" "$TMP/counts$p.sorted")"
done
check_eq "p=1 and p=3 give the same sorted output" "$TMP/counts1.sorted" "$TMP/counts3.sorted"

# ---- a two-input union whose second input is silent for 2 s --------------------
# Input A: 2000 records, keys a0..a4, ts 100 i, monotonous per-record
# watermarks ("slow": its source sleeps 1 s before its second batch).
# Input B: 2 records (ts 1 and 2) that come only after its source sleeps
# 2 s. The keyed process counts A's records per 10 s boundary on timers
# and, for each B record, reports how many timers had fired.
job union <<'EOF'
local tide = require "tide"
local idiv = require("tide.compat").idiv
local out_dir, idle, slow = arg[1], arg[2] == "idle", arg[3] == "slow"
local env = tide.env{ chaining = false }
local a = env:generate(function(i)
    if slow and i == 1500 then os.execute("sleep 1") end
    return { k = "a" .. (i % 5), t = 100 * i }
  end, 2000)
  :assign_timestamps(function(v) return v.t end, tide.watermarks.monotonous{ per_record = true })
  :uid("stamp-a")
local strategy = tide.watermarks.bounded(0, { per_record = true })
if idle then strategy = strategy:with_idleness("300ms") end
local b = env:generate(function(i)
    if i == 1 then os.execute("sleep 2") end
    return { k = "b", t = i }
  end, 2)
  :assign_timestamps(function(v) return v.t end, strategy)
  :uid("stamp-b")
local fired = 0
a:union(b):key_by("k"):process{
  on_record = function(v, ctx, out)
    if v.k == "b" then
      out:collect("b," .. v.t .. ",after," .. fired)
      return
    end
    local bnd = idiv(v.t, 10000) * 10000 + 9999
    local m = ctx.state:map("counts")
    m:put(bnd, (m:get(bnd) or 0) + 1)
    ctx.timers:register_event_time(bnd)
  end,
  on_timer = function(ts, ctx, out)
    fired = fired + 1
    local m = ctx.state:map("counts")
    out:collect(ctx.key .. "," .. ts .. "," .. m:get(ts))
  end,
}:uid("union-counter"):write_text(out_dir)
env:execute("eventtime-union")
EOF

awk 'BEGIN { for (i = 1; i <= 2000; i++) { t = 100 * i; c["a" (i % 5) "," (int(t / 10000) * 10000 + 9999)]++ }
  for (k in c) print k "," c[k] }' | sort >"$TMP/union.a.oracle"
ntimers=$(wc -l <"$TMP/union.a.oracle" | tr -d ' ')
check_str "union oracle: 101 (key, boundary) timers" 101 "$ntimers"

# union_case NAME IDLE SLOW FIRED WHAT: run the union job; A's counts must
# equal the oracle and each B record must see FIRED timers fired before it.
union_case() {
  run union -- "$TMP/union-$1" "$2" "$3"
  check_rc "union ($1): the job finishes, exit 0" 0
  cat_parts "$TMP/union-$1" | sort >"$TMP/union-$1.sorted"
  grep -v '^b,' "$TMP/union-$1.sorted" >"$TMP/union-$1.a"
  check_eq "union ($1): every timer of A fired by the end, with the right counts" \
    "$TMP/union.a.oracle" "$TMP/union-$1.a"
  printf 'b,1,after,%s\nb,2,after,%s\n' "$4" "$4" >"$TMP/union-$1.b.expected"
  grep '^b,' "$TMP/union-$1.sorted" >"$TMP/union-$1.b"
  check_eq "union ($1): $5" "$TMP/union-$1.b.expected" "$TMP/union-$1.b"
}
# Without idleness, B holds the watermark back: no timer fires before B's
# records come, and the job still finishes with every count.
union_case active active fast 0 "the silent input holds the watermark back: no timer before its records"
# With with_idleness("300ms"), B is idle from 0.3 s; A's records and
# watermarks come from 1 s on and go through, up to A's final +inf one:
# every timer of A has fired when B wakes up at 2 s.
union_case idle-slow-a idle slow "$ntimers" \
  "the idle input does not hold the watermark back: all of A's timers before its records"
# A ends (with its final +inf watermark) before B goes idle: as in Flink's
# StatusWatermarkValve, a finished channel stays at +inf, so once B is idle
# the +inf watermark goes through and every timer of A fires before B wakes.
union_case idle-fast-a idle fast "$ntimers" \
  "a finished input (at +inf) and an idle one: all of A's timers before B's records"

# ---- failures ------------------------------------------------------------------
job nil_ts <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ 1, 2, 3 }
  :assign_timestamps(function(v) if v == 2 then return nil end return v end,
    tide.watermarks.bounded(10, { per_record = true }))
  :uid("bad-stamp")
  :discard()
env:execute()
EOF
run nil_ts
check_rc "timestamp function returning nil: exit 1" 1
check_contains "timestamp function returning nil: stderr names the operator uid" "$TMP/nil_ts.err" "'bad-stamp'"
check_contains "timestamp function returning nil: stderr says what it returned" "$TMP/nil_ts.err" "returned nil"

job nokey_timer <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ "x", "y" }
  :process(function(v, ctx, out)
    ctx.timers:register_event_time(100)
    out:collect(v)
  end)
  :uid("no-key-timers")
  :discard()
env:execute()
EOF
run nokey_timer
check_rc "timers on a non-keyed stream: exit 1" 1
check_contains "timers on a non-keyed stream: stderr names the operator uid" "$TMP/nokey_timer.err" "'no-key-timers'"
check_contains "timers on a non-keyed stream: stderr says timers need a keyed stream" "$TMP/nokey_timer.err" \
  "only available on a keyed stream"

finish
