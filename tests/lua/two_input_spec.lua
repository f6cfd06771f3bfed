-- Two-input operators through tide.testing's two-input harness (Flink's
-- TwoInputStreamOperatorTestHarness): connect + process (CoProcessOperator,
-- KeyedCoProcessOperator), CoMap / CoFlatMap, broadcast state
-- (KeyedBroadcastProcessFunction), the interval join (IntervalJoinOperator)
-- and window joins / co-groups. Cases ported from Flink's
-- CoProcessOperatorTest, KeyedCoProcessOperatorTest,
-- LegacyKeyedCoProcessOperatorTest and IntervalJoinOperatorTest: the
-- expected outputs are Flink's; others are derived by hand from Flink's
-- rules and say so.
local tide = require "tide"
local testing = require "tide.testing"
local util = require "tide.util"

local helpers = dofile("tests/lua/harness_helpers.lua")
local show, output, error_of, contains = helpers.show, helpers.output, helpers.error_of, helpers.contains
local function records(h)
  local out = {}
  for _, e in ipairs(show(h:output())) do
    if e:sub(1, 1) ~= "W" then out[#out + 1] = e end
  end
  return out
end
local function sorted(t)
  table.sort(t)
  return t
end
local function fmt(v) return v == nil and "null" or util.format(v) end

describe("connect + process, non-keyed (Flink's CoProcessOperatorTest) #unit", function()
  it("gives on_record1/2 the timestamp and the watermark, the minimum of both inputs'", function()
    local h = testing.two_input_harness(function(a, b)
      local function f(v, ctx, out)
        out:collect(tostring(v) .. "WM:" .. fmt(ctx.timers:current_watermark()) .. " TS:" .. fmt(ctx.timestamp))
      end
      return a:connect(b):process{ on_record1 = f, on_record2 = f }
    end)
    h:watermark1(17)
    h:watermark2(17)
    h:process1(5, 12)
    h:watermark1(42)
    h:watermark2(42)
    h:process2("6", 13)
    assert.are.same({ "W17", "5WM:17 TS:12@12", "W42", "6WM:42 TS:13@13" }, output(h))
  end)

  it("gives the processing time", function()
    local h = testing.two_input_harness(function(a, b)
      local function f(v, ctx, out)
        out:collect(tostring(v) .. "PT:" .. fmt(ctx.timers:current_processing_time()) .. " TS:" .. fmt(ctx.timestamp))
      end
      return a:connect(b):process{ on_record1 = f, on_record2 = f }
    end)
    h:processing_time(17)
    h:process1(5)
    h:processing_time(42)
    h:process2("6")
    assert.are.same({ "5PT:17 TS:null@-", "6PT:42 TS:null@-" }, output(h))
  end)

  it("forwards the watermark only when the minimum of both inputs advances (hand-derived)", function()
    local h = testing.two_input_harness(function(a, b)
      return a:connect(b):map(function(v) return v end, function(v) return v end)
    end)
    h:watermark1(10)
    h:watermark2(5)
    h:watermark2(20)
    h:watermark1(15)
    h:watermark1(30)
    h:watermark2(25)
    assert.are.same({ "W5", "W10", "W15", "W20", "W25" }, output(h))
  end)

  it("maps and flat_maps each input with its own function (CoMap, CoFlatMap)", function()
    local h = testing.two_input_harness(function(a, b)
      return a:connect(b):map(function(v) return "L" .. v end, function(v) return "R" .. v end)
    end)
    h:process1(1, 3)
    h:process2(2)
    h:process1(4)
    assert.are.same({ "L1@3", "R2@-", "L4@-" }, output(h))
    local h2 = testing.two_input_harness(function(a, b)
      return a:connect(b):flat_map(function(v, out) for w in v:gmatch("%S+") do out:collect(w) end end,
        function(n, out) for i = 1, n do out:collect(i) end end)
    end)
    h2:process1("x y", 7)
    h2:process2(2, 8)
    assert.are.same({ "x@7", "y@7", "1@8", "2@8" }, output(h2))
  end)

  it("refuses keyed state and timers on a connect of a keyed and a non-keyed stream, naming the connect", function()
    local line
    local h = testing.two_input_harness(function(a, b)
      line = debug.getinfo(1, "l").currentline + 1
      return a:key_by(function(v) return v end):connect(b):process{
        on_record1 = function(v, ctx) ctx.state:value("x"):update(v) end,
        on_record2 = function(v, ctx) ctx.timers:register_event_time(v) end,
      }
    end)
    local err = error_of(h.process1, h, 1)
    contains(err, "keyed state needs both inputs keyed")
    contains(err, "two_input_spec.lua:" .. line)
    contains(error_of(h.process2, h, 1), "timers need both inputs keyed")
  end)

  it("names the calling line for bad arguments", function()
    local env = tide.env{}
    local a = env:from_list{ 1 }
    local line = debug.getinfo(1, "l").currentline
    local e1 = error_of(function() a:connect(a):process{ on_record1 = print } end)
    local e2 = error_of(function() a:connect(a:broadcast(tide.map_state_descriptor("r"))):process{ on_record = print } end)
    local e3 = error_of(function() a:connect(5) end)
    local e4 = error_of(function() a:connect(a):map(print) end)
    contains(e1, "two_input_spec.lua:" .. (line + 1) .. ": bad argument #1 to 'process' (on_record2 function expected, got nil)")
    contains(e2, "two_input_spec.lua:" .. (line + 2) .. ": bad argument #1 to 'process' (on_broadcast function expected")
    contains(e3, "two_input_spec.lua:" .. (line + 3) .. ": bad argument #1 to 'connect' (stream expected, got number)")
    contains(e4, "two_input_spec.lua:" .. (line + 4) .. ": bad argument #2 to 'map' (function expected, got nil)")
  end)

  it("sends side outputs from both inputs", function()
    local h = testing.two_input_harness(function(a, b)
      return a:connect(b):process{
        on_record1 = function(v, ctx, out) out:collect(v) end,
        on_record2 = function(v, ctx) ctx:output("two", v) end,
      }
    end)
    h:process1("a", 1)
    h:process2("b", 2)
    assert.are.same({ "a@1" }, output(h))
    assert.are.same({ { value = "b", ts = 2 } }, h:side_output("two"))
  end)
end)

-- Flink's IntToStringKeySelector / IdentityKeySelector
local function keyed_co(spec)
  return function(a, b)
    return a:key_by(function(v) return tostring(v) end):connect(b:key_by(function(v) return v end))
      :process(spec):uid("co")
  end
end

describe("connect + process, keyed (Flink's KeyedCoProcessOperatorTest) #unit", function()
  it("gives the current key in on_record1/2", function()
    local h = testing.two_input_harness(keyed_co{
      on_record1 = function(v, ctx, out) out:collect(v .. "," .. ctx.key) end,
      on_record2 = function(v, ctx, out) out:collect(v .. "," .. ctx.key) end,
    })
    h:process1(5)
    h:process1(6)
    h:process2("hello")
    h:process2("world")
    assert.are.same({ "5,5@-", "6,6@-", "hello,hello@-", "world,world@-" }, output(h))
  end)

  it("fires event-time timers of both inputs with their key, at the minimum watermark", function()
    local h = testing.two_input_harness(keyed_co{
      on_record1 = function(v, ctx, out)
        out:collect("INPUT1:" .. v)
        ctx.timers:register_event_time(5)
      end,
      on_record2 = function(v, ctx, out)
        out:collect("INPUT2:" .. v)
        ctx.timers:register_event_time(6)
      end,
      on_timer = function(_, ctx, out)
        assert.are.equal("event", ctx.time_domain)
        out:collect(ctx.key .. ":1777")
      end,
    })
    h:process1(17, 42)
    h:process2("18", 42)
    h:watermark1(5)
    h:watermark2(5)
    h:watermark1(6)
    h:watermark2(6)
    assert.are.same({ "INPUT1:17@42", "INPUT2:18@42", "17:1777@5", "W5", "18:1777@6", "W6" }, output(h))
  end)

  it("fires processing-time timers and shares keyed state between the inputs (LegacyKeyedCoProcessOperatorTest)", function()
    local h = testing.two_input_harness(keyed_co{
      on_record1 = function(v, ctx, out)
        local s = ctx.state:value("state")
        s:update("" .. v)
        ctx.timers:register_processing_time(ctx.timers:current_processing_time() + 5)
        out:collect("INPUT1:" .. v)
      end,
      on_record2 = function(v, ctx, out)
        ctx.state:value("state"):update(v)
        ctx.timers:register_processing_time(ctx.timers:current_processing_time() + 5)
        out:collect("INPUT2:" .. v)
      end,
      on_timer = function(ts, ctx, out)
        assert.are.equal("processing", ctx.time_domain)
        out:collect("STATE:" .. ctx.key .. ":" .. ctx.state:value("state"):value() .. ":" .. ts)
      end,
    })
    h:processing_time(1)
    h:process1(17)
    h:process1(13)
    h:process2("42")
    h:processing_time(6)
    assert.are.same({ "INPUT1:13@-", "INPUT1:17@-", "INPUT2:42@-",
      "STATE:13:13:6@-", "STATE:17:17:6@-", "STATE:42:42:6@-" }, sorted(records(h)))
  end)

  it("snapshots and restores keyed state and timers of both inputs", function()
    local spec = {
      on_record1 = function(v, ctx) ctx.state:value("s"):update("" .. v); ctx.timers:register_event_time(5) end,
      on_record2 = function(v, ctx) ctx.state:value("s"):update(v); ctx.timers:register_processing_time(6) end,
      on_timer = function(ts, ctx, out)
        out:collect(ctx.time_domain .. ":" .. ctx.key .. ":" .. ctx.state:value("s"):value() .. ":" .. ts)
      end,
    }
    local h = testing.two_input_harness(keyed_co(spec))
    h:process1(5, 1)
    h:process2("6", 1)
    local snap = h:snapshot()
    h:dispose()
    local h2 = testing.two_input_harness(keyed_co(spec), { restore = snap })
    h2:watermark1(10)
    h2:watermark2(10)
    h2:processing_time(10)
    assert.are.same({ "event:5:5:5@5", "W10", "processing:6:6:6@-" }, output(h2))
    h2:dispose()
  end)

  it("requires a key for each input with ConnectedStreams:key_by(k1, k2)", function()
    local h = testing.two_input_harness(function(a, b)
      return a:connect(b):key_by("id", "ref"):process{
        on_record1 = function(v, ctx) ctx.state:value("name"):update(v.name) end,
        on_record2 = function(v, ctx, out) out:collect(v.ref .. "=" .. tostring(ctx.state:value("name"):value())) end,
      }
    end)
    h:process1({ id = 1, name = "ann" })
    h:process2({ ref = 1 })
    h:process2({ ref = 2 })
    assert.are.same({ "1=ann@-", "2=nil@-" }, output(h))
    contains(error_of(function()
      local env = tide.env{}
      local a = env:from_list{ 1 }
      a:connect(a):key_by("x")
    end), "a key for the second input expected")
  end)
end)

describe("broadcast state (Flink's KeyedBroadcastProcessFunction) #unit", function()
  local rules = tide.map_state_descriptor("rules")
  local function build(a, b)
    return a:key_by("user"):connect(b:broadcast(rules)):process{
      on_record = function(v, ctx, out)
        local c = ctx.state:value("count")
        c:update((c:value() or 0) + 1)
        local r = ctx:broadcast_state("rules"):get(v.kind)
        out:collect(v.user .. ":" .. v.kind .. ":" .. tostring(r) .. ":" .. c:value())
      end,
      on_broadcast = function(v, ctx, out)
        ctx:broadcast_state("rules"):put(v.kind, v.rule)
        local n = 0
        ctx:apply_to_keyed_state("count", function(_, st)
          n = n + 1
          if v.reset then st:value("count"):clear() end
        end)
        out:collect("rule " .. v.kind .. " over " .. n .. " keys")
      end,
    }:uid("bcast")
  end

  it("reads broadcast state on the keyed side, writes it on the broadcast side, reaches every key", function()
    local h = testing.two_input_harness(build)
    h:process1({ user = "u1", kind = "a" })
    h:process2({ kind = "a", rule = "alert" })
    h:process1({ user = "u1", kind = "a" })
    h:process1({ user = "u2", kind = "b" })
    h:process2({ kind = "b", rule = "log", reset = true })
    h:process1({ user = "u2", kind = "b" })
    assert.are.same({ "u1:a:nil:1@-", "rule a over 1 keys@-", "u1:a:alert:2@-", "u2:b:nil:1@-",
      "rule b over 2 keys@-", "u2:b:log:1@-" }, output(h))
  end)

  it("refuses writes on the keyed side and keyed state on the broadcast side", function()
    local h = testing.two_input_harness(function(a, b)
      return a:key_by("user"):connect(b:broadcast(rules)):process{
        on_record = function(v, ctx) ctx:broadcast_state("rules"):put("x", v) end,
        on_broadcast = function(v, ctx) ctx.state:value("x"):update(v) end,
      }
    end)
    contains(error_of(h.process1, h, { user = "u" }), "broadcast state 'rules' is read-only in on_record")
    contains(error_of(h.process2, h, 1), "on_broadcast has no current key")
    local h2 = testing.two_input_harness(function(a, b)
      return a:connect(b:broadcast(rules)):process{
        on_record = function(_, ctx) ctx:broadcast_state("other") end,
        on_broadcast = function() end,
      }
    end)
    contains(error_of(h2.process1, h2, 1), "no broadcast state 'other': broadcast() declared rules")
  end)

  it("refuses any use of a broadcast stream but connect", function()
    local env = tide.env{}
    local b = env:from_list{ 1 }:broadcast(rules)
    contains(error_of(function() b:map(print) end), "'map' on a broadcast stream with state descriptors")
    contains(error_of(function() env:from_list{ 1 }:broadcast({}) end),
      "bad argument #1 to 'broadcast' (state descriptor from tide.map_state_descriptor expected)")
  end)

  it("non-keyed (BroadcastProcessFunction): every record sees the rules so far", function()
    local h = testing.two_input_harness(function(a, b)
      return a:connect(b:broadcast(rules)):process{
        on_record = function(v, ctx, out)
          local bs = ctx:broadcast_state("rules")
          out:collect(v .. "=" .. tostring(bs:get(v)))
        end,
        on_broadcast = function(v, ctx) ctx:broadcast_state("rules"):put(v[1], v[2]) end,
      }
    end)
    h:process1("x")
    h:process2({ "x", 1 })
    h:process1("x")
    assert.are.same({ "x=nil@-", "x=1@-" }, output(h))
  end)

  it("restores broadcast state at another parallelism: new subtask i takes old subtask i mod p's copy", function()
    -- non-keyed: a subtask sees any record (keyed ones only its key groups')
    local function build_plain(a, b)
      return a:connect(b:broadcast(rules)):process{
        on_record = function(v, ctx, out)
          out:collect(v.user .. ":" .. v.kind .. ":" .. tostring(ctx:broadcast_state("rules"):get(v.kind)) .. ":1")
        end,
        on_broadcast = function(v, ctx) ctx:broadcast_state("rules"):put(v.kind, v.rule) end,
      }:uid("bcast")
    end
    local snaps = {}
    for i = 0, 1 do
      local h = testing.two_input_harness(build_plain, { subtask = i, parallelism = 2 })
      h:process2({ kind = "a", rule = "r" .. i })  -- (a job gives all subtasks the same records)
      snaps[i + 1] = h:snapshot()
      h:dispose()
    end
    for i = 0, 2 do
      local h = testing.two_input_harness(build_plain, { subtask = i, parallelism = 3, restore = snaps })
      h:process1({ user = "x", kind = "a" })
      assert.are.same({ "x:a:r" .. (i % 2) .. ":1@-" }, output(h))
      h:dispose()
    end
  end)
end)

-- Flink's IntervalJoinOperatorTest: TestElem(ts, "lhs"/"rhs") with key
-- "key", a pass-through join function; streamRecordOf(l, r) is the pair at
-- max(l, r). Output compared as sets, as the test's assertOutput does.
local function ij(lower, lower_incl, upper, upper_incl, late)
  return function(a, b)
    local j = a:key_by("key"):interval_join(b:key_by("key")):between(lower, upper)
    if not lower_incl then j = j:lower_bound_exclusive() end
    if not upper_incl then j = j:upper_bound_exclusive() end
    if late then j = j:side_output_left_late_data("left_late"):side_output_right_late_data("right_late") end
    return j:process(function(l, r, ctx, out)
      assert.are.equal(l.ts, ctx.left_timestamp)
      assert.are.equal(r.ts, ctx.right_timestamp)
      assert.are.equal(math.max(l.ts, r.ts), ctx.timestamp)
      out:collect(l.ts .. "," .. r.ts)
    end):uid("ij")
  end
end
local function elem(ts, side) return { key = "key", ts = ts, side = side } end
local function pairs_of(...)
  local t = {}
  for _, p in ipairs { ... } do t[#t + 1] = p[1] .. "," .. p[2] .. "@" .. math.max(p[1], p[2]) end
  return sorted(t)
end

for _, lhs_faster in ipairs { true, false } do
  local function elements_and_watermarks(h, from, to)
    local function side(i)
      for t = from, to do
        h["process" .. i](h, elem(t, i == 1 and "lhs" or "rhs"), t)
        h["watermark" .. i](h, t)
      end
    end
    if lhs_faster then side(1); side(2) else side(2); side(1) end
  end
  local function run(lo, loi, hi, hii)
    local h = testing.two_input_harness(ij(lo, loi, hi, hii))
    elements_and_watermarks(h, 1, 4)
    local r = sorted(records(h))
    h:dispose()
    return r
  end
  describe("interval join (Flink's IntervalJoinOperatorTest, lhs faster: " .. tostring(lhs_faster) .. ") #unit", function()
    it("mirrors correctly", function()
      assert.are.same(pairs_of({ 1, 2 }, { 1, 3 }, { 2, 3 }, { 2, 4 }, { 3, 4 }), run(1, true, 3, false))
      assert.are.same(pairs_of({ 2, 1 }, { 3, 1 }, { 3, 2 }, { 4, 2 }, { 4, 3 }), run(-3, false, -1, true))
    end)
    it("negative inclusive and negative inclusive", function()
      assert.are.same(pairs_of({ 2, 1 }, { 3, 1 }, { 3, 2 }, { 4, 2 }, { 4, 3 }), run(-2, true, -1, true))
    end)
    it("negative inclusive and positive inclusive", function()
      assert.are.same(pairs_of({ 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 2 }, { 2, 3 }, { 3, 2 }, { 3, 3 }, { 3, 4 },
        { 4, 3 }, { 4, 4 }), run(-1, true, 1, true))
    end)
    it("positive inclusive and positive inclusive", function()
      assert.are.same(pairs_of({ 1, 2 }, { 1, 3 }, { 2, 3 }, { 2, 4 }, { 3, 4 }), run(1, true, 2, true))
    end)
    it("negative exclusive and negative exclusive", function()
      assert.are.same(pairs_of({ 3, 1 }, { 4, 2 }), run(-3, false, -1, false))
    end)
    it("negative exclusive and positive exclusive", function()
      assert.are.same(pairs_of({ 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }), run(-1, false, 1, false))
    end)
    it("positive exclusive and positive exclusive", function()
      assert.are.same(pairs_of({ 1, 3 }, { 2, 4 }), run(1, false, 3, false))
    end)
  end)
end

-- the timestamps buffered on each side: a snapshot of the harness's keyed
-- state holds them; here the join's buffers are read back through a probe
-- that joins nothing (the cleanup cases of IntervalJoinOperatorTest)
describe("interval join state cleanup (Flink's IntervalJoinOperatorTest) #unit", function()
  local function buffers(lo, loi, hi, hii)
    -- the same operator, observed by counting what a late-enough probe of
    -- each side could still join: instead, restore the buffers from a
    -- snapshot into a process function over the same state names
    local h = testing.two_input_harness(ij(lo, loi, hi, hii))
    for t = 1, 5 do h:process1(elem(t, "lhs"), t) end
    for t = 1, 5 do h:process2(elem(t, "rhs"), t) end
    local function state()
      local snap = h:snapshot()
      local p = testing.two_input_harness(function(a, b)
        return a:key_by("key"):connect(b:key_by("key")):process{
          on_record1 = function(_, ctx, out)
            for _, side in ipairs { "left", "right" } do
              local ts = {}
              for t in ctx.state:map("interval_join_" .. side):keys() do ts[#ts + 1] = t end
              table.sort(ts)
              out:collect(side .. ":" .. table.concat(ts, ","))
            end
          end,
          on_record2 = function() end,
        }:uid("ij")
      end, { restore = snap })
      p:process1({ key = "key" })
      local r = records(p)
      p:dispose()
      return { r[1]:gsub("@%-$", ""), r[2]:gsub("@%-$", "") }
    end
    return h, state
  end
  local cases = {
    { "negative inclusive, negative inclusive", -1, true, 0, true,
      { "left:2,3,4,5", "right:1,2,3,4,5" }, { "left:5", "right:4,5" } },
    { "negative exclusive, positive exclusive", -2, false, 1, false,
      { "left:2,3,4,5", "right:1,2,3,4,5" }, { "left:5", "right:4,5" } },
    { "positive inclusive, positive inclusive", 0, true, 1, true,
      { "left:1,2,3,4,5", "right:2,3,4,5" }, { "left:4,5", "right:5" } },
    { "negative exclusive, positive exclusive (2)", -1, false, 2, false,
      { "left:1,2,3,4,5", "right:2,3,4,5" }, { "left:4,5", "right:5" } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local h, state = buffers(c[2], c[3], c[4], c[5])
      h:watermark1(1)
      h:watermark2(1)
      local s1 = state()
      assert.are.same(c[6], { s1[1], s1[2] })
      h:watermark1(4)
      h:watermark2(4)
      local s4 = state()
      assert.are.same(c[7], { s4[1], s4[2] })
      h:watermark1(6)
      h:watermark2(6)
      local s6 = state()
      assert.are.same({ "left:", "right:" }, { s6[1], s6[2] })
      h:dispose()
    end)
  end
end)

describe("interval join: restore, late data, errors #unit", function()
  it("restores from a snapshot (testRestoreFromSnapshot)", function()
    local h = testing.two_input_harness(ij(-1, true, 1, true))
    for t = 1, 3 do
      h:process1(elem(t, "lhs"), t)
      h:watermark1(t)
      h:process2(elem(t, "rhs"), t)
      h:watermark2(t)
    end
    assert.are.same(pairs_of({ 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 2 }, { 2, 3 }, { 3, 2 }, { 3, 3 }), sorted(records(h)))
    local snap = h:snapshot()
    h:dispose()
    local h2 = testing.two_input_harness(ij(-1, true, 1, true), { restore = snap })
    h2:process1(elem(4, "lhs"), 4)
    h2:watermark1(4)
    h2:process2(elem(4, "rhs"), 4)
    h2:watermark2(4)
    assert.are.same(pairs_of({ 3, 4 }, { 4, 3 }, { 4, 4 }), sorted(records(h2)))
    h2:dispose()
  end)

  it("discards late data (testDiscardsLateData)", function()
    local h = testing.two_input_harness(ij(-1, true, 1, true))
    for t = 1, 3 do
      h:process1(elem(t), t)
      h:process2(elem(t), t)
    end
    h:watermark1(3)
    h:watermark2(3)
    h:process1(elem(1), 1) -- late: not joined again
    for t = 4, 5 do
      h:process1(elem(t), t)
      h:process2(elem(t), t)
    end
    assert.are.same(pairs_of({ 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 2 }, { 2, 3 }, { 3, 2 }, { 3, 3 }, { 3, 4 },
      { 4, 3 }, { 4, 4 }, { 4, 5 }, { 5, 4 }, { 5, 5 }), sorted(records(h)))
    h:dispose()
  end)

  it("sends late data to the side outputs (testLateData)", function()
    local h = testing.two_input_harness(ij(-1, true, 1, true, true))
    h:process1(elem(3, "lhs"), 3)
    h:process2(elem(3, "rhs"), 3)
    h:watermark1(3)
    h:watermark2(3)
    h:process1(elem(4, "lhs"), 4)
    h:process2(elem(4, "rhs"), 4)
    h:process1(elem(1, "lhs"), 1)
    h:process2(elem(2, "rhs"), 2)
    h:process1(elem(5, "lhs"), 5)
    h:process2(elem(5, "rhs"), 5)
    assert.are.same(pairs_of({ 3, 3 }, { 3, 4 }, { 4, 3 }, { 4, 4 }, { 4, 5 }, { 5, 4 }, { 5, 5 }), sorted(records(h)))
    local l, r = h:side_output("left_late"), h:side_output("right_late")
    assert.are.same({ 1, "lhs", 1 }, { #l, l[1].value.side, l[1].ts })
    assert.are.same({ 1, "rhs", 2 }, { #r, r[1].value.side, r[1].ts })
    h:dispose()
  end)

  it("fails on records without timestamps, on either side (testFailsWithNoTimestamps)", function()
    local h = testing.two_input_harness(ij(0, true, 0, true))
    contains(error_of(h.process1, h, elem(0)), "a record of the left input has no timestamp")
    contains(error_of(h.process2, h, elem(0)), "a record of the right input has no timestamp")
  end)

  it("refuses non-keyed inputs and lower > upper, naming file:line", function()
    local env = tide.env{}
    local a, b = env:from_list{ 1 }, env:from_list{ 2 }
    local line = debug.getinfo(1, "l").currentline + 1
    local err = error_of(function() a:interval_join(b:key_by(tostring)) end)
    contains(err, "interval_join at ")
    contains(err, "two_input_spec.lua:" .. line)
    contains(err, "the left stream is not keyed")
    contains(error_of(function() return a:key_by(tostring):interval_join(b) end), "the right stream is not keyed")
    contains(error_of(function() return a:key_by(tostring):interval_join(b:key_by(tostring)):between(5, 2) end),
      "lower bound 5 is above upper bound 2")
    contains(error_of(function()
      return a:key_by(tostring):interval_join(b:key_by(tostring)):between(2, 2):lower_bound_exclusive():process(print)
    end), "is empty")
  end)
end)

describe("window join and co-group #unit", function()
  -- hand-derived: tumbling windows of 10 ms, key "k"
  local function build_join(a, b)
    return a:join(b):where("k"):equal_to("k"):window(tide.windows.tumbling(10)):apply(function(l, r)
      return l.k .. ":" .. l.n .. "-" .. r.n
    end)
  end
  it("joins every pair of a key's window, at the window's max timestamp", function()
    local h = testing.two_input_harness(build_join)
    h:process1({ k = "a", n = 1 }, 1)
    h:process1({ k = "a", n = 2 }, 5)
    h:process2({ k = "a", n = 3 }, 9)
    h:process2({ k = "b", n = 4 }, 2)   -- no partner
    h:process2({ k = "a", n = 5 }, 12)  -- next window, no partner
    h:process1({ k = "a", n = 6 }, 15)
    h:watermark1(9)
    h:watermark2(9)
    h:watermark1(30)
    h:watermark2(30)
    assert.are.same({ "a:1-3@9", "a:2-3@9", "W9", "a:6-5@19", "W30" }, output(h))
  end)

  it("co-groups: both sides' lists once per key and window, one side may be empty", function()
    local h = testing.two_input_harness(function(a, b)
      return a:co_group(b):where("k"):equal_to(function(v) return v.key end):window(tide.windows.tumbling(10))
        :apply(function(ls, rs, out)
          local function ns(list)
            local t = {}
            for i, v in ipairs(list) do t[i] = v.n end
            return table.concat(t, ",")
          end
          out:collect((ls[1] or rs[1]).n .. "[" .. ns(ls) .. "|" .. ns(rs) .. "]")
        end)
    end)
    h:process1({ k = "a", n = 1 }, 1)
    h:process2({ key = "a", n = 2 }, 3)
    h:process2({ key = "b", n = 3 }, 4)
    h:process1({ k = "a", n = 4 }, 8)
    h:watermark1(9)
    h:watermark2(9)
    assert.are.same({ "1[1,4|2]@9", "3[|3]@9", "W9" }, sorted(output(h)))
  end)

  it("honours allowed_lateness through the window operator (a late pair fires again)", function()
    local h = testing.two_input_harness(function(a, b)
      return a:join(b):where("k"):equal_to("k"):window(tide.windows.tumbling(10)):allowed_lateness(10)
        :apply(function(l, r) return l.n .. "-" .. r.n end)
    end)
    h:process1({ k = "a", n = 1 }, 1)
    h:process2({ k = "a", n = 2 }, 2)
    h:watermark1(12)
    h:watermark2(12)
    h:process2({ k = "a", n = 3 }, 3) -- late but within the lateness: fires [0,10) again
    assert.are.same({ "1-2@9", "W12", "1-2@9", "1-3@9" }, output(h))
  end)

  it("needs where and equal_to before window", function()
    local env = tide.env{}
    local a = env:from_list{ 1 }
    contains(error_of(function() return a:join(a):window(tide.windows.tumbling(10)) end),
      "window needs where(key) and equal_to(key) first")
    contains(error_of(function() return a:co_group(a):where(1):apply(print) end),
      "apply needs where(key), equal_to(key) and window(assigner) first")
    contains(error_of(function() return a:key_by(1):interval_join(a:key_by(1)):process(print) end),
      "process needs between(lower, upper) first")
  end)
end)
