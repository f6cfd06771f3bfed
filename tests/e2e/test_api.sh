#!/bin/sh
# End-to-end: the DataStream API (lua/tide.lua) through small job scripts,
# each checked against expected output written here by hand or computed
# independently with awk / python3.
. tests/e2e/lib.sh

# job NAME: the job script read from stdin is saved as $TMP/NAME.lua
job() { cat >"$TMP/$1.lua"; }
# run NAME [TIDE-OPTION...] [-- ARG...]: run $TMP/NAME.lua (output $TMP/NAME.out/.err)
run() {
  _name=$1
  shift
  run_tide "$TMP/$_name" run "$TMP/$_name.lua" "$@"
}
# sorted FILE: FILE's lines without print prefixes, C-sorted
sorted() { strip_prefix <"$1" | sort; }

# ---- map / filter / flat_map / from_list with print at parallelism 1 ----
job chain <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ 1, 2, 3, 4, 5 }
   :map(function(x) return x * 10 end)
   :filter(function(x) return x ~= 30 end)
   :flat_map(function(x, out)
     out:collect(x)
     if x >= 40 then out:collect(-x) end
   end)
   :print()
env:from_list{ "only" }
   :flat_map(function(s, out) end) -- emits nothing
   :print()
env:execute()
EOF
run chain
check_rc "chain p=1: exits 0" 0
printf '10\n20\n40\n-40\n50\n-50\n' >"$TMP/chain.expected"
check_eq "chain p=1: exact stdout, in order, no prefix" "$TMP/chain.expected" "$TMP/chain.out"

job fmt <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ "plain text", 42, 1.5, 3.0, true, { 1, "two", 3.5 }, { name = "x", n = 1, sub = { a = 1 } } }
   :print()
env:execute()
EOF
run fmt
check_rc "print formats p=1: exits 0" 0
# 3.0: the integer 3 on LuaJIT (docs/LUAJIT.md)
cat >"$TMP/fmt.expected" <<EOF
plain text
42
1.5
$(by_vm 3.0 3)
true
{1, "two", 3.5}
{n=1, name="x", sub={a=1}}
EOF
check_eq "print formats: strings bare, ints, floats read back, tables with sorted keys" \
  "$TMP/fmt.expected" "$TMP/fmt.out"

# ---- print at parallelism 2: "1> " / "2> " prefixes ---------------------
job print2 <<'EOF'
local tide = require "tide"
local env = tide.env()
local xs = {}
for i = 1, 10 do xs[i] = "r" .. i end
env:from_list(xs):map(function(s) return s end):print()
env:execute()
EOF
run print2 --parallelism 2
check_rc "print p=2: exits 0" 0
check_str "print p=2: every line starts with '1> ' or '2> '" "" "$(grep -vE '^[12]> ' "$TMP/print2.out")"
check_match "print p=2: subtask 1 printed (prefix '1> ')" "$TMP/print2.out" '^1> r[0-9]+$'
check_match "print p=2: subtask 2 printed (prefix '2> ')" "$TMP/print2.out" '^2> r[0-9]+$'
seq 1 10 | sed 's/^/r/' | sort >"$TMP/print2.expected"
sorted "$TMP/print2.out" >"$TMP/print2.actual"
check_eq "print p=2: each record printed once" "$TMP/print2.expected" "$TMP/print2.actual"

# ---- generate(fn, count) ------------------------------------------------
job gen <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end, 1000):print()
env:execute()
EOF
seq 1 1000 >"$TMP/gen.expected"
for p in 1 3; do
  run gen --parallelism $p
  check_rc "generate p=$p: exits 0" 0
  strip_prefix <"$TMP/gen.out" | sort -n >"$TMP/gen.actual$p"
  check_eq "generate p=$p: each of 1..1000 exactly once" "$TMP/gen.expected" "$TMP/gen.actual$p"
done
check_str "generate p=3: all 3 source subtasks emitted" "1> 2> 3> " \
  "$(cut -d' ' -f1 "$TMP/gen.out" | sort -u | tr '\n' ' ')"
cat >"$TMP/gen0.lua" <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end, 0):print()
env:execute()
EOF
run gen0 --parallelism 2
check_rc "generate count 0: exits 0" 0
check_empty "generate count 0: prints nothing" "$TMP/gen0.out"

# ---- key_by + reduce, streaming: a rolling value per record --------------
job reduce <<'EOF'
local tide = require "tide"
local env = tide.env()
local recs = {}
for i = 1, 60 do recs[i] = { k = "k" .. (i * i % 5), v = i } end
env:from_list(recs)
   :key_by("k")
   :reduce(function(acc, r) return { k = acc.k, v = acc.v + r.v, n = (acc.n or 1) + 1 } end)
   :map(function(r) return r.k .. "," .. r.v .. "," .. (r.n or 1) end)
   :print()
env:execute()
EOF
awk 'BEGIN { for (i = 1; i <= 60; i++) { k = "k" (i * i % 5); s[k] += i; n[k]++; print k "," s[k] "," n[k] } }' |
  sort -s -t, -k1,1 >"$TMP/reduce.expected"
for p in 1 2; do
  run reduce --parallelism $p
  check_rc "streaming reduce p=$p: exits 0" 0
  strip_prefix <"$TMP/reduce.out" | sort -s -t, -k1,1 >"$TMP/reduce.actual$p"
  check_eq "streaming reduce p=$p: one rolling value per record, in order per key" \
    "$TMP/reduce.expected" "$TMP/reduce.actual$p"
done

# batch mode: one final value per key
job reduce_batch <<'EOF'
local tide = require "tide"
local env = tide.env{ runtime_mode = "batch" }
local recs = {}
for i = 1, 60 do recs[i] = { k = "k" .. (i * i % 5), v = i } end
env:from_list(recs)
   :key_by("k")
   :reduce(function(acc, r) return { k = acc.k, v = acc.v + r.v } end)
   :map(function(r) return r.k .. "," .. r.v end)
   :print()
env:execute()
EOF
awk 'BEGIN { for (i = 1; i <= 60; i++) { k = "k" (i * i % 5); s[k] += i } for (k in s) print k "," s[k] }' |
  sort >"$TMP/reduce_batch.expected"
run reduce_batch --parallelism 2
check_rc "batch reduce p=2: exits 0" 0
sorted "$TMP/reduce_batch.out" >"$TMP/reduce_batch.actual"
check_eq "batch reduce p=2: only the final value per key" "$TMP/reduce_batch.expected" "$TMP/reduce_batch.actual"

# ---- sum / min / max: Flink's semantics ----------------------------------
# The emitted record is the key's first record with the field replaced by
# the running aggregate (min/max do not take the other fields of the
# minimal/maximal record).
job aggs <<'EOF'
local tide = require "tide"
local math_type = require("tide.compat").math_type
local env = tide.env()
local recs = {
  { k = "a", v = 3, t = "a1" }, { k = "b", v = 10, t = "b1" }, { k = "a", v = 1, t = "a2" },
  { k = "a", v = 5, t = "a3" }, { k = "b", v = 7, t = "b2" }, { k = "a", v = 2.5, t = "a4" },
}
local function tagged(tag)
  return function(r) return tag .. " " .. r.k .. " " .. tide.format(r) end
end
env:from_list(recs):key_by("k"):sum("v"):map(tagged("sum")):print()
env:from_list(recs):key_by("k"):min("v"):map(tagged("min")):print()
env:from_list(recs):key_by("k"):max("v"):map(tagged("max")):print()
-- key and field by index: array records
env:from_list{ { "odd", 1 }, { "even", 2 }, { "odd", 3 }, { "even", 4 }, { "odd", 5 }, { "odd", 6.5 } }
   :key_by(1)
   :sum(2)
   :map(function(r) return "sumi " .. r[1] .. " " .. math_type(r[2]) .. " " .. tide.format(r[2]) end)
   :print()
-- no field: records are numbers and the running sum itself is emitted
env:from_list{ 1, 2, 3, 4, 5, 6.5 }
   :key_by(function(x) return (x == 2 or x == 4) and "even" or "odd" end)
   :sum()
   :map(function(s) return "sumn " .. ((s == 2 or s == 6) and "even" or "odd") .. " " .. math_type(s) .. " " .. tide.format(s) end)
   :print()
env:execute()
EOF
cat >"$TMP/aggs.expected" <<'EOF'
max a {k="a", t="a1", v=3}
max a {k="a", t="a1", v=3}
max a {k="a", t="a1", v=5}
max a {k="a", t="a1", v=5}
max b {k="b", t="b1", v=10}
max b {k="b", t="b1", v=10}
min a {k="a", t="a1", v=3}
min a {k="a", t="a1", v=1}
min a {k="a", t="a1", v=1}
min a {k="a", t="a1", v=1}
min b {k="b", t="b1", v=10}
min b {k="b", t="b1", v=7}
sum a {k="a", t="a1", v=3}
sum a {k="a", t="a1", v=4}
sum a {k="a", t="a1", v=9}
sum a {k="a", t="a1", v=11.5}
sum b {k="b", t="b1", v=10}
sum b {k="b", t="b1", v=17}
sumi even integer 2
sumi even integer 6
sumi odd integer 1
sumi odd integer 4
sumi odd integer 9
sumi odd float 15.5
sumn even integer 2
sumn even integer 6
sumn odd integer 1
sumn odd integer 4
sumn odd integer 9
sumn odd float 15.5
EOF
for p in 1 2; do
  run aggs --parallelism $p
  check_rc "sum/min/max p=$p: exits 0" 0
  # group by aggregation and key, keeping each key's order of emission
  strip_prefix <"$TMP/aggs.out" | sort -s -k1,1 -k2,2 >"$TMP/aggs.actual$p"
  check_eq "sum/min/max p=$p: rolling values; other fields from the key's first record" \
    "$TMP/aggs.expected" "$TMP/aggs.actual$p"
done

# ---- count() ---------------------------------------------------------------
job count <<'EOF'
local tide = require "tide"
local math_type = require("tide.compat").math_type
local env = tide.env{ runtime_mode = arg[1] }
env:from_list{ "a", "b", "a", "c", "a", "b" }
   :key_by(function(w) return w end)
   :count()
   :map(function(r) return r.key .. " " .. r.count .. " " .. math_type(r.count) end)
   :print()
env:execute()
EOF
run count --parallelism 2 -- streaming
check_rc "count streaming p=2: exits 0" 0
strip_prefix <"$TMP/count.out" | sort -s -k1,1 >"$TMP/count.actual"
printf 'a 1 integer\na 2 integer\na 3 integer\nb 1 integer\nb 2 integer\nc 1 integer\n' >"$TMP/count.expected"
check_eq "count streaming: {key, count} per record, integer counts, in order per key" \
  "$TMP/count.expected" "$TMP/count.actual"
run count --parallelism 2 -- batch
check_rc "count batch p=2: exits 0" 0
sorted "$TMP/count.out" >"$TMP/count.actual_b"
printf 'a 3 integer\nb 2 integer\nc 1 integer\n' >"$TMP/count.expected_b"
check_eq "count batch: one final count per key" "$TMP/count.expected_b" "$TMP/count.actual_b"

# table keys are compared by value
job tkey <<'EOF'
local tide = require "tide"
local env = tide.env{ runtime_mode = "batch" }
env:generate(function(i) return { a = i % 3, b = (i % 2 == 0) } end, 600)
   :key_by(function(r) return { r.a, r.b } end)
   :count()
   :map(function(r) return r.key[1] .. " " .. tostring(r.key[2]) .. " " .. r.count end)
   :print()
env:execute()
EOF
run tkey --parallelism 3
check_rc "table keys p=3: exits 0" 0
awk 'BEGIN { for (i = 1; i <= 600; i++) c[(i % 3) " " ((i % 2 == 0) ? "true" : "false")]++; for (k in c) print k " " c[k] }' |
  sort >"$TMP/tkey.expected"
sorted "$TMP/tkey.out" >"$TMP/tkey.actual"
check_eq "table keys p=3: equal tables are one key" "$TMP/tkey.expected" "$TMP/tkey.actual"

# ---- union ------------------------------------------------------------------
job union <<'EOF'
local tide = require "tide"
local env = tide.env()
local a = env:from_list{ "a1", "a2", "a3" }
local b = env:generate(function(i) return "b" .. i end, 5)
local c = env:from_list{ "c1" }:map(function(s) return s end)
a:union(b, c):map(function(s) return "u:" .. s end):print()
env:execute()
EOF
printf 'u:a1\nu:a2\nu:a3\nu:b1\nu:b2\nu:b3\nu:b4\nu:b5\nu:c1\n' >"$TMP/union.expected"
for p in 1 2; do
  run union --parallelism $p
  check_rc "union p=$p: exits 0" 0
  sorted "$TMP/union.out" >"$TMP/union.actual$p"
  check_eq "union p=$p: every record of the three inputs once" "$TMP/union.expected" "$TMP/union.actual$p"
  # at p=1 the union and map run in one subtask: each input's order is kept
  [ "$p" = 1 ] && check_str "union p=1: a from_list's records keep their order" "u:a1 u:a2 u:a3 " \
    "$(grep '^u:a' "$TMP/union.out" | tr '\n' ' ')"
done

# ---- broadcast ----------------------------------------------------------------
job bcast <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ "x", "y" }
   :broadcast()
   :map(function(s) return s .. "!" end):set_parallelism(3)
   :process{ on_record = function(v, ctx, out) out:collect(ctx.subtask .. ":" .. v) end }:set_parallelism(3)
   :print():set_parallelism(1)
env:execute()
EOF
run bcast
check_rc "broadcast: exits 0" 0
printf '0:x!\n0:y!\n1:x!\n1:y!\n2:x!\n2:y!\n' >"$TMP/bcast.expected"
sorted "$TMP/bcast.out" >"$TMP/bcast.actual"
check_eq "broadcast to a map at parallelism 3: 3 copies, one per subtask" "$TMP/bcast.expected" "$TMP/bcast.actual"

# ---- rebalance --------------------------------------------------------------
job rebal <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end, 12):set_parallelism(1)
   :rebalance()
   :process{ on_record = function(v, ctx, out) out:collect(ctx.subtask .. " " .. v) end }:set_parallelism(3)
   :print():set_parallelism(1)
env:execute()
EOF
run rebal
check_rc "rebalance: exits 0" 0
cut -d' ' -f2 "$TMP/rebal.out" | sort -n >"$TMP/rebal.values"
seq 1 12 >"$TMP/rebal.expected"
check_eq "rebalance: each record once" "$TMP/rebal.expected" "$TMP/rebal.values"
cut -d' ' -f1 "$TMP/rebal.out" | sort | uniq -c | awk '{print $2" "$1}' >"$TMP/rebal.spread"
printf '0 4\n1 4\n2 4\n' >"$TMP/rebal.spread_expected"
check_eq "rebalance: 12 records from one sender go round-robin, 4 to each of 3 subtasks" \
  "$TMP/rebal.spread_expected" "$TMP/rebal.spread"

# ---- process: ctx.subtask / ctx.parallelism, open / close ----------------------
job pctx <<'EOF'
local tide = require "tide"
local env = tide.env{ runtime_mode = "batch" }
env:generate(function(i) return i end, 30)
   :process(function(v, ctx, out) out:collect(ctx.subtask .. "/" .. ctx.parallelism) end)
   :key_by(function(s) return s end):count()
   :map(function(r) return r.key .. " " .. r.count end)
   :print():set_parallelism(1)
env:execute()
EOF
run pctx --parallelism 3
check_rc "process ctx p=3: exits 0" 0
printf '0/3 10\n1/3 10\n2/3 10\n' >"$TMP/pctx.expected"
sort "$TMP/pctx.out" >"$TMP/pctx.actual"
check_eq "process: ctx.subtask/ctx.parallelism; generate splits 30 records 10/10/10" \
  "$TMP/pctx.expected" "$TMP/pctx.actual"

job close <<'EOF'
local tide = require "tide"
local env = tide.env()
local n, opens = 0, 0
env:generate(function(i) return i end, 30)
   :process{
     open = function(ctx) opens = opens + 1 end,
     on_record = function(v, ctx, out)
       n = n + 1
       if n == 10 then out:collect("seen " .. n .. " opens " .. opens) end
     end,
     close = function(ctx) io.stderr:write("closed " .. ctx.subtask .. " " .. n .. " " .. opens .. "\n") end,
   }
   :print():set_parallelism(1)
env:execute()
EOF
run close --parallelism 3
check_rc "process open/close p=3: exits 0" 0
sort "$TMP/close.out" >"$TMP/close.actual"
printf 'seen 10 opens 1\nseen 10 opens 1\nseen 10 opens 1\n' >"$TMP/close.expected"
check_eq "process open: called once per subtask before the first record" "$TMP/close.expected" "$TMP/close.actual"
grep '^closed ' "$TMP/close.err" | sort >"$TMP/close.closed"
printf 'closed 0 10 1\nclosed 1 10 1\nclosed 2 10 1\n' >"$TMP/close.closed_expected"
check_eq "process close: called once per subtask after the last record" "$TMP/close.closed_expected" "$TMP/close.closed"

# ---- keyed process with value / list / map / reducing / aggregating state ----
# Per record i = 1..N of user u = "u"..(i*7 % 13) with item (i*i % 17): the
# user's record count (value), distinct items so far (map state, counted two
# ways), the last 3 items (list), the sum of items (reducing) and
# "sum/count" (aggregating). The source has parallelism 1 so each key's
# records arrive in order whatever the process's parallelism.
job keyed <<'EOF'
local tide = require "tide"
local env = tide.env()
local N = 3000
env:generate(function(i) return { i = i, user = "u" .. (i * 7 % 13), item = i * i % 17 } end, N)
   :set_parallelism(1)
   :key_by("user")
   :process{
     on_record = function(r, ctx, out)
       assert(ctx.key == r.user, "ctx.key is the record's key")
       local st = ctx.state
       local count = st:value("count")
       local n = (count:value() or 0) + 1
       count:update(n)
       local seen = st:map("seen")
       local distinct = st:value("distinct")
       if not seen:contains(r.item) then
         seen:put(r.item, true)
         distinct:update((distinct:value() or 0) + 1)
       end
       local d2 = 0
       for _ in seen:keys() do d2 = d2 + 1 end
       local recent = st:list("recent")
       recent:add(r.item)
       local l = recent:get()
       if #l > 3 then recent:update({ l[#l - 2], l[#l - 1], l[#l] }) end
       local total = st:reducing("total", function(a, b) return a + b end)
       total:add(r.item)
       local avg = st:aggregating("avg", {
         create = function() return { 0, 0 } end,
         add = function(acc, v) return { acc[1] + v, acc[2] + 1 } end,
         result = function(acc) return acc[1] .. "/" .. acc[2] end,
       })
       avg:add(r.item)
       out:collect(string.format("%d,%s,%d,%d,%d,%s,%d,%s", r.i, r.user, n, distinct:value(), d2,
         table.concat(recent:get(), "-"), total:get(), avg:get()))
     end,
   }
   :write_text(arg[1])
env:execute()
EOF
awk 'BEGIN {
  for (i = 1; i <= 3000; i++) {
    u = "u" (i * 7 % 13); it = i * i % 17
    n[u]++
    if (!((u, it) in seen)) { seen[u, it] = 1; d[u]++ }
    r3[u] = r2[u]; r2[u] = r1[u]; r1[u] = it
    rec = r1[u]; if (n[u] >= 2) rec = r2[u] "-" rec; if (n[u] >= 3) rec = r3[u] "-" rec
    s[u] += it
    print i "," u "," n[u] "," d[u] "," d[u] "," rec "," s[u] "," s[u] "/" n[u]
  }
}' >"$TMP/keyed.expected"
for p in 1 3; do
  run keyed --parallelism $p -- "$TMP/keyed$p"
  check_rc "keyed state p=$p: exits 0" 0
  cat_parts "$TMP/keyed$p" | sort -t, -k1,1n >"$TMP/keyed.actual$p"
  check_eq "keyed state p=$p: value/map/list/reducing/aggregating state per key" \
    "$TMP/keyed.expected" "$TMP/keyed.actual$p"
done
check_eq "keyed state: parallelism 1 and 3 give the same output" "$TMP/keyed.actual1" "$TMP/keyed.actual3"

# ---- write_text ------------------------------------------------------------------
job wtext <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ "line one", "", "tab\there", 7, 2.5, -0.0, { 1, 2 }, { k = "v" } }:write_text(arg[1])
env:execute()
EOF
run wtext -- "$TMP/wtext.d"
check_rc "write_text: exits 0" 0
# -0.0: the integer 0 on LuaJIT (docs/LUAJIT.md)
printf 'line one\n\ntab\there\n7\n2.5\n%s\n{1, 2}\n{k="v"}\n' "$(by_vm -0.0 0)" >"$TMP/wtext.expected"
cat_parts "$TMP/wtext.d" >"$TMP/wtext.actual"
check_eq "write_text: one line per record, formatted as print does" "$TMP/wtext.expected" "$TMP/wtext.actual"
check_str "write_text: one committed part file (name not hidden), no hidden files" \
  "1 " "$(committed_parts "$TMP/wtext.d" | wc -l | tr -d ' ') $(hidden_files "$TMP/wtext.d")"
check_match "write_text: part file is named part-..." "$TMP/.parts" '/part-[^/]*$'

# rolling: a part file is committed when it reaches rolling_size bytes
job roll <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return string.format("line %04d", i) end, 1000) -- 10 bytes a line
   :write_text(arg[1], { rolling_size = 1000 })
env:execute()
EOF
run roll -- "$TMP/roll.d"
check_rc "write_text rolling_size = 1000: exits 0" 0
check_str "write_text rolling_size: no hidden files remain" "" "$(hidden_files "$TMP/roll.d")"
cat_parts "$TMP/roll.d" | sort >"$TMP/roll.actual"
awk 'BEGIN { for (i = 1; i <= 1000; i++) printf "line %04d\n", i }' >"$TMP/roll.expected"
check_eq "write_text rolling_size: every line once over the rolled files" "$TMP/roll.expected" "$TMP/roll.actual"
# 10000 bytes of output with rolling_size = 1000: at least 5 part files,
# none much larger than rolling_size (allowing one 4 KiB batch of slack)
committed_parts "$TMP/roll.d" >"$TMP/roll.parts"
check "write_text rolling_size: 10000 bytes at rolling_size 1000 give several part files ($(wc -l <"$TMP/roll.parts" | tr -d ' '))" \
  test "$(wc -l <"$TMP/roll.parts")" -ge 5
big=
while IFS= read -r f; do [ "$(wc -c <"$f")" -le 5096 ] || big="$big ${f##*/}:$(wc -c <"$f")"; done <"$TMP/roll.parts"
check_str "write_text rolling_size: no part file over rolling_size + 4 KiB" "" "$big"

# ---- write_csv: RFC 4180 quoting, columns, header ---------------------------------
job wcsv <<'EOF'
local tide = require "tide"
local env = tide.env()
local out = arg[1]
local recs = {
  { a = "plain", b = 1, c = 1.5 },
  { a = "with,comma", b = 2, c = true },
  { a = 'with "quotes"', b = -3 },
  { a = "two\nlines", b = 4, c = "cr\r\nlf" },
  { a = "", b = 0, c = " spaced " },
}
env:from_list(recs):write_csv(out .. "/cols", { columns = { "c", "a", "b" } })
env:from_list(recs):write_csv(out .. "/header", { columns = { "a", "b", "c" }, header = true })
env:from_list{ { 1, "x,y", false }, { 2, 'q"', 2.25 } }:write_csv(out .. "/arrays")
env:from_list{ { zeta = 1, alpha = "A", mid = "m" } }:write_csv(out .. "/sortednames")
env:from_list{ { a = "s;t", b = "u,v" } }:write_csv(out .. "/semicolon", { columns = { "a", "b" }, delimiter = ";" })
env:execute()
EOF
run wcsv -- "$TMP/wcsv"
check_rc "write_csv: exits 0" 0
printf '1.5,plain,1\ntrue,"with,comma",2\n,"with ""quotes""",-3\n"cr\r\nlf","two\nlines",4\n spaced ,,0\n' >"$TMP/wcsv.cols.expected"
cat_parts "$TMP/wcsv/cols" >"$TMP/wcsv.cols"
check_eq "write_csv columns: order, quoting of , \" CR LF, nil as empty field" "$TMP/wcsv.cols.expected" "$TMP/wcsv.cols"
printf 'a,b,c\nplain,1,1.5\n"with,comma",2,true\n"with ""quotes""",-3,\n"two\nlines",4,"cr\r\nlf"\n,0, spaced \n' >"$TMP/wcsv.header.expected"
cat_parts "$TMP/wcsv/header" >"$TMP/wcsv.header"
check_eq "write_csv header = true: column names first" "$TMP/wcsv.header.expected" "$TMP/wcsv.header"
printf '1,"x,y",false\n2,"q""",2.25\n' >"$TMP/wcsv.arrays.expected"
cat_parts "$TMP/wcsv/arrays" >"$TMP/wcsv.arrays"
check_eq "write_csv without columns: array records in order" "$TMP/wcsv.arrays.expected" "$TMP/wcsv.arrays"
printf 'A,m,1\n' >"$TMP/wcsv.sorted.expected"
cat_parts "$TMP/wcsv/sortednames" >"$TMP/wcsv.sorted"
check_eq "write_csv without columns: map records by sorted field names" "$TMP/wcsv.sorted.expected" "$TMP/wcsv.sorted"
printf '"s;t";u,v\n' >"$TMP/wcsv.semi.expected"
cat_parts "$TMP/wcsv/semicolon" >"$TMP/wcsv.semi"
check_eq "write_csv delimiter ';': quotes fields holding ';' only" "$TMP/wcsv.semi.expected" "$TMP/wcsv.semi"
# an independent reader (python3's csv module) gets the original values back
"$PYTHON" - "$TMP/wcsv.header" >"$TMP/wcsv.py" <<'EOF'
import csv, sys
with open(sys.argv[1], newline="") as f:
    for row in csv.reader(f):
        print(repr(row))
EOF
cat >"$TMP/wcsv.py.expected" <<'EOF'
['a', 'b', 'c']
['plain', '1', '1.5']
['with,comma', '2', 'true']
['with "quotes"', '-3', '']
['two\nlines', '4', 'cr\r\nlf']
['', '0', ' spaced ']
EOF
check_eq "write_csv: python3's csv module reads the values back" "$TMP/wcsv.py.expected" "$TMP/wcsv.py"

# header in every part file at parallelism 2
job wcsv2 <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return { n = i, sq = i * i } end, 100)
   :write_csv(arg[1], { columns = { "n", "sq" }, header = true })
env:execute()
EOF
run wcsv2 --parallelism 2 -- "$TMP/wcsv2"
check_rc "write_csv p=2 with header: exits 0" 0
committed_parts "$TMP/wcsv2" >"$TMP/wcsv2.parts"
check_str "write_csv p=2: two committed part files" 2 "$(wc -l <"$TMP/wcsv2.parts" | tr -d ' ')"
hdr_ok=yes
while IFS= read -r f; do [ "$(head -n 1 "$f")" = "n,sq" ] || hdr_ok="no: $f"; done <"$TMP/wcsv2.parts"
check_str "write_csv p=2: each part file starts with the header" yes "$hdr_ok"
while IFS= read -r f; do tail -n +2 "$f"; done <"$TMP/wcsv2.parts" | sort -t, -k1,1n >"$TMP/wcsv2.rows"
awk 'BEGIN { for (i = 1; i <= 100; i++) print i "," i * i }' >"$TMP/wcsv2.expected"
check_eq "write_csv p=2: every row once" "$TMP/wcsv2.expected" "$TMP/wcsv2.rows"

# ---- read_csv: typed columns, quoted fields ----------------------------------------
printf 'name,n,x,flag,note\r\nalice,1,1.5,true,"hello, world"\r\n"bob ""b""",-2,3,false,"multi\nline"\r\ncarol,,2e3,true,\r\n"d,e",9007199254740991,-0.25,false,"""q"""\r\n' >"$TMP/in.csv"
job rcsv <<'EOF'
local tide = require "tide"
local math_type = require("tide.compat").math_type
local env = tide.env()
local function show(v)
  if v == nil then return "nil" end
  if type(v) == "number" then return math_type(v) .. ":" .. tide.format(v) end
  if type(v) == "string" then return (string.format("%q", v):gsub("\n", "n")) end
  return type(v) .. ":" .. tostring(v)
end
env:read_csv(arg[1], { types = { n = "int", x = "float", flag = "bool" } })
   :map(function(r) return table.concat({ show(r.name), show(r.n), show(r.x), show(r.flag), show(r.note) }, " ") end)
   :print()
env:execute()
EOF
run rcsv -- "$TMP/in.csv"
check_rc "read_csv typed: exits 0" 0
# float columns: 3 and 2e3 are the integers 3 and 2000 on LuaJIT
# (docs/LUAJIT.md)
cat >"$TMP/rcsv.expected" <<EOF
"alice" integer:1 float:1.5 boolean:true "hello, world"
"bob \\"b\\"" integer:-2 $(by_vm float:3.0 integer:3) boolean:false "multi\\nline"
"carol" nil $(by_vm float:2000.0 integer:2000) boolean:true ""
"d,e" integer:9007199254740991 float:-0.25 boolean:false "\\"q\\""
EOF
check_eq "read_csv: int/float/bool columns, quoted fields (comma, quote, newline), CRLF, empty typed field is nil" \
  "$TMP/rcsv.expected" "$TMP/rcsv.out"
# int columns beyond 2^53: 64-bit integers on Lua 5.4; on LuaJIT, whose
# integers are exact below 2^53 only, a bad int (docs/LUAJIT.md)
printf 'name,n,x,flag,note\nbig,9007199254740993,,,\nmin,-9223372036854775808,,,\n' >"$TMP/big.csv"
run rcsv -- "$TMP/big.csv"
if [ "$TIDE_VM" = luajit ]; then
  check_rc "read_csv int beyond 2^53 on LuaJIT: the job fails, exit 1" 1
  check_contains "read_csv int beyond 2^53 on LuaJIT: a bad int, with file:line and why" "$TMP/rcsv.err" \
    "$TMP/big.csv:2: column 'n': bad int '9007199254740993' (beyond 2^53: LuaJIT's integers are exact below it)"
else
  check_rc "read_csv int beyond 2^53 on Lua 5.4: exits 0" 0
  printf '"big" integer:9007199254740993 nil nil ""\n"min" integer:-9223372036854775808 nil nil ""\n' >"$TMP/big.expected"
  check_eq "read_csv int beyond 2^53 on Lua 5.4: 64-bit integers, exact" "$TMP/big.expected" "$TMP/rcsv.out"
fi

printf 'x;y\n1;"a;b"\n' | gzip >"$TMP/nohdr.csv.gz"
job rcsv2 <<'EOF'
local tide = require "tide"
local env = tide.env()
env:read_csv(arg[1], { header = false, columns = { "p", "q" }, delimiter = ";", types = { p = "string" } })
   :map(function(r) return r.p .. "|" .. r.q end)
   :print()
env:execute()
EOF
run rcsv2 -- "$TMP/nohdr.csv.gz"
check_rc "read_csv .gz, header = false, delimiter ';': exits 0" 0
printf 'x|y\n1|a;b\n' >"$TMP/rcsv2.expected"
check_eq "read_csv .gz, header = false with columns, delimiter ';'" "$TMP/rcsv2.expected" "$TMP/rcsv2.out"

# ---- values survive an exchange (MessagePack between tasks) ------------------------
job types <<'EOF'
local tide = require "tide"
local compat = require "tide.compat"
local env = tide.env()
local function allbytes()
  local t = {}
  for b = 0, 255 do t[#t + 1] = string.char(b) end
  return table.concat(t)
end
local function show(v)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return show(a) < show(b) end)
    local p = {}
    for _, k in ipairs(keys) do p[#p + 1] = "[" .. show(k) .. "]=" .. show(v[k]) end
    return "{" .. table.concat(p, ",") .. "}"
  elseif t == "number" then
    if compat.math_type(v) == "integer" then return "integer:" .. string.format("%d", v) end
    return "float:" .. string.format("%a", v)
  elseif t == "string" then
    if v == allbytes() then return "string:allbytes" end
    return "string:" .. (v:gsub("[^%w]", function(c) return string.format("\\x%02x", c:byte()) end))
  end
  return t .. ":" .. tostring(v)
end
local vals = {
  1, 2.0, -0.0, 0.1, compat.MAX_INT, compat.MIN_INT, 2^53, 1e300, math.huge, -math.huge,
  "a\0b\255", "", allbytes(), true, false,
  { 1, 2.5, { x = { true, false } }, k = "v" }, {}, { [1] = 1, [3] = 3 }, { [2.5] = "f", [10] = "i" },
}
env:from_list(vals)
   :map(function(v) return { tag = "rec", v = v } end)
   :rebalance()
   :map(function(r) return show(r.v) end):set_parallelism(2)
   :print():set_parallelism(1)
env:execute()
EOF
run types
check_rc "values across a rebalance to parallelism 2: exits 0" 0
# 2.0 and -0.0: the integers 2 and 0 on LuaJIT; the +-inf timestamps: the
# doubles +-2^63 there (docs/LUAJIT.md)
sort >"$TMP/types.expected" <<EOF
boolean:false
boolean:true
$(by_vm float:-0x0p+0 integer:0)
float:-inf
float:0x1.7e43c8800759cp+996
float:0x1.999999999999ap-4
$(by_vm float:0x1p+1 integer:2)
float:0x1p+53
float:inf
$(by_vm integer:-9223372036854775808 float:-0x1p+63)
integer:1
$(by_vm integer:9223372036854775807 float:0x1p+63)
string:
string:a\\x00b\\xff
string:allbytes
{[float:0x1.4p+1]=string:f,[integer:10]=string:i}
{[integer:1]=integer:1,[integer:2]=float:0x1.4p+1,[integer:3]={[string:x]={[integer:1]=boolean:true,[integer:2]=boolean:false}},[string:k]=string:v}
{[integer:1]=integer:1,[integer:3]=integer:3}
{}
EOF
sort "$TMP/types.out" >"$TMP/types.actual"
check_eq "integers stay integers, floats stay floats (incl. -0.0, inf), binary strings, nested tables survive" \
  "$TMP/types.expected" "$TMP/types.actual"

job types2 <<'EOF'
local tide = require "tide"
local math_type = require("tide.compat").math_type
local env = tide.env()
env:generate(function(i) return i end, 100)
   :rebalance()
   :map(function(x) return math_type(x) end)
   :print()
env:generate(function(i) return i + 0.5 end, 100)
   :key_by(function(x) return x end)
   :map(function(x) return math_type(x) end)
   :print()
env:execute()
EOF
run types2 --parallelism 2
check_rc "math.type after exchanges p=2: exits 0" 0
strip_prefix <"$TMP/types2.out" | sort | uniq -c | awk '{print $2" "$1}' >"$TMP/types2.actual"
printf 'float 100\ninteger 100\n' >"$TMP/types2.expected"
check_eq "math.type after rebalance prints integer for ints, float after key_by for floats" \
  "$TMP/types2.expected" "$TMP/types2.actual"

# ---- object reuse behind a keyed exchange ---------------------------------------
# A running sum and a sliding window sum borrow their input: at p=2 the
# exchange decodes each batch into the tables of the batch before. What
# they keep must not change with it: every output of a key carries the
# fields of one first record of that key, and the sums are p=1's.
job reuse <<'EOF'
local tide = require "tide"
local env = tide.env()
local s = env:generate(function(i) return { k = i % 7, v = i, tag = "t" .. i, ts = i } end, 20000)
s:key_by("k"):sum("v")
   :map(function(r) return "sum " .. r.k .. " " .. r.v .. " " .. r.tag end)
   :print():set_parallelism(1)
s:assign_timestamps(function(r) return r.ts end, tide.watermarks.monotonous())
   :key_by("k"):window(tide.windows.sliding(1000, 500)):sum("v")
   :map(function(r) return "win " .. r.k .. " " .. r.v .. " " .. r.tag end)
   :print():set_parallelism(1)
env:execute()
EOF
for p in 1 2; do
  run reuse --parallelism $p
  check_rc "reuse p=$p: exits 0" 0
  strip_prefix <"$TMP/reuse.out" >"$TMP/reuse$p.out"
done
awk '$1 == "sum" { if (!($2 in tag)) tag[$2] = $4; else if (tag[$2] != $4) bad++ }
     { split($4, t, "t"); if (t[2] % 7 != $2 + 0) bad++ }
     END { print bad + 0 }' "$TMP/reuse2.out" >"$TMP/reuse.bad"
echo 0 >"$TMP/reuse.nobad"
check_eq "reuse p=2: each key's outputs carry one first record of that key" "$TMP/reuse.nobad" "$TMP/reuse.bad"
for p in 1 2; do
  awk '$1 == "sum" { if ($3 > m[$2]) m[$2] = $3 } $1 == "win" { print $2, $3 } END { for (k in m) print "total", k, m[k] }' \
    "$TMP/reuse$p.out" | sort >"$TMP/reuse$p.sums"
done
check_eq "reuse p=2: the running sums' totals and the window sums are p=1's" "$TMP/reuse1.sums" "$TMP/reuse2.sums"

finish
