-- tide.testing: operators driven through the test harness (Flink's
-- KeyedOneInputStreamOperatorTestHarness). Event-time and processing-time
-- timers of keyed process functions, keyed state, side outputs,
-- snapshot/restore, assign_timestamps and the timestamps of records through
-- map, filter and flat_map. Expected outputs are derived by hand from
-- Flink's rules (KeyedProcessOperator, InternalTimerServiceImpl,
-- TimestampsAndWatermarksOperator, BoundedOutOfOrdernessWatermarks).
local tide = require "tide"
local testing = require "tide.testing"

local compat = require "tide.compat"
local MAXWM = compat.MAX_INT -- +inf: math.maxinteger on Lua 5.4, 2^63 on LuaJIT

local helpers = dofile("tests/lua/harness_helpers.lua")
local show, output, error_of, contains = helpers.show, helpers.output, helpers.error_of, helpers.contains

-- A keyed process function that registers an event-time timer at v.t for
-- key v.k, emits "rec <k>" and, on a timer, "<key> fired <ts>".
local function event_timers(extra)
  extra = extra or {}
  return function(s)
    return s:key_by("k"):process{
      on_record = function(v, ctx, out)
        if v.t then ctx.timers:register_event_time(v.t) end
        if v.del then ctx.timers:delete_event_time(v.del) end
        out:collect("rec " .. v.k)
      end,
      on_timer = function(ts, ctx, out)
        out:collect(string.format("%s fired %d", ctx.key, ts))
        if extra.on_timer then extra.on_timer(ts, ctx, out) end
      end,
    }:uid("timers")
  end
end

describe("harness: keyed process, event-time timers #unit", function()
  it("fires timers in timestamp order once the watermark reaches them, ties in registration order", function()
    local h = testing.harness(event_timers())
    h:process({ k = "a", t = 30 }, 1)
    h:process({ k = "b", t = 10 }, 2)
    h:process({ k = "a", t = 20 }, 3)
    h:process({ k = "b", t = 20 }, 4)
    h:watermark(9)
    h:watermark(20)
    h:watermark(29)
    h:watermark(30)
    assert.are.same({
      "rec a@1", "rec b@2", "rec a@3", "rec b@4",
      "W9",
      "b fired 10@10", "a fired 20@20", "b fired 20@20", "W20",
      "W29",
      "a fired 30@30", "W30",
    }, output(h))
  end)

  it("fires a timer exactly at the watermark (ts <= watermark) and not one ms before", function()
    local h = testing.harness(event_timers())
    h:process({ k = "a", t = 100 }, 0)
    h:clear_output()
    h:watermark(99)
    assert.are.same({ "W99" }, output(h))
    h:watermark(100)
    assert.are.same({ "W99", "a fired 100@100", "W100" }, output(h))
  end)

  it("keeps one timer per (key, timestamp)", function()
    local h = testing.harness(event_timers())
    h:process({ k = "a", t = 10 }, 1)
    h:process({ k = "a", t = 10 }, 2)
    h:process({ k = "b", t = 10 }, 3)
    h:process({ k = "a", t = 10 }, 4)
    h:process({ k = "b", t = 10 }, 5)
    h:clear_output()
    h:watermark(50)
    assert.are.same({ "a fired 10@10", "b fired 10@10", "W50" }, output(h))
    -- a fired timer is gone: registering it again makes a new one
    h:clear_output()
    h:watermark(60)
    assert.are.same({ "W60" }, output(h))
  end)

  it("deletes timers: only the (key, timestamp) named, and deleting a missing timer is a no-op", function()
    local h = testing.harness(event_timers())
    h:process({ k = "a", t = 10 }, 1)
    h:process({ k = "a", t = 20 }, 1)
    h:process({ k = "b", t = 10 }, 1)
    h:process({ k = "a", del = 10 }, 1)   -- a's 10, not b's
    h:process({ k = "b", del = 99 }, 1)   -- no such timer
    h:process({ k = "c", del = 20 }, 1)   -- another key's timestamp
    h:clear_output()
    h:watermark(100)
    assert.are.same({ "b fired 10@10", "a fired 20@20", "W100" }, output(h))
  end)

  it("deletes and registers again: the timer fires once", function()
    local h = testing.harness(event_timers())
    h:process({ k = "a", t = 10 }, 1)
    h:process({ k = "a", del = 10 }, 1)
    h:process({ k = "a", t = 10 }, 1)
    h:clear_output()
    h:watermark(10)
    assert.are.same({ "a fired 10@10", "W10" }, output(h))
  end)

  it("a timer deleted by an earlier timer of the same watermark does not fire", function()
    local h = testing.harness(event_timers{
      on_timer = function(ts, ctx)
        if ts == 10 then ctx.timers:delete_event_time(15) end
      end,
    })
    h:process({ k = "a", t = 15 }, 1)
    h:process({ k = "a", t = 10 }, 1)
    h:process({ k = "b", t = 15 }, 1)
    h:clear_output()
    h:watermark(20)
    assert.are.same({ "a fired 10@10", "b fired 15@15", "W20" }, output(h))
  end)

  it("timers registered in on_timer fire in the same watermark when due, later otherwise", function()
    local h = testing.harness(event_timers{
      on_timer = function(ts, ctx)
        if ts == 10 then
          ctx.timers:register_event_time(25)
          ctx.timers:register_event_time(15)
        end
      end,
    })
    h:process({ k = "a", t = 10 }, 1)
    h:process({ k = "b", t = 18 }, 1)
    h:clear_output()
    h:watermark(20)
    assert.are.same({ "a fired 10@10", "a fired 15@15", "b fired 18@18", "W20" }, output(h))
    h:clear_output()
    h:watermark(24)
    h:watermark(25)
    assert.are.same({ "W24", "a fired 25@25", "W25" }, output(h))
  end)

  it("a timer registered for a time the watermark has passed fires with the next watermark", function()
    local h = testing.harness(event_timers())
    h:watermark(100)
    h:process({ k = "a", t = 50 }, 120)
    assert.are.same({ "W100", "rec a@120" }, output(h))
    h:watermark(101)
    assert.are.same({ "W100", "rec a@120", "a fired 50@50", "W101" }, output(h))
  end)

  it("the final watermark of finish() fires every pending timer, then forwards +inf", function()
    -- the last timestamp before +inf: MAXWM - 1 on Lua 5.4; on LuaJIT,
    -- whose timestamps are exact below 2^53 only (and MAXWM - 1 is MAXWM
    -- there: docs/LUAJIT.md), the last exact one
    local last = compat.luajit and 2 ^ 53 - 1 or MAXWM - 1
    local h = testing.harness(event_timers())
    h:process({ k = "a", t = last }, 1)
    h:process({ k = "b", t = 1000000000000000 }, 1)
    h:process({ k = "c", t = 7 }, 1)
    h:clear_output()
    h:finish()
    assert.are.same({ "c fired 7@7", "b fired 1000000000000000@1000000000000000",
      string.format("a fired %d@%d", last, last), "W+inf" }, output(h))
  end)

  it("gives on_record the record's timestamp and on_timer the timer's, with the time domain", function()
    local seen = {}
    local h = testing.harness(function(s)
      return s:key_by("k"):process{
        on_record = function(v, ctx, out)
          seen[#seen + 1] = string.format("rec %s ts=%s", v.k, tostring(ctx.timestamp))
          ctx.timers:register_event_time(v.t)
          out:collect(v.k)
        end,
        on_timer = function(ts, ctx, out)
          seen[#seen + 1] = string.format("timer %s ts=%d ctx.ts=%s domain=%s", ctx.key, ts,
            tostring(ctx.timestamp), ctx.time_domain)
          out:collect("t" .. ts)
        end,
      }
    end)
    h:process({ k = "a", t = 40 }, 33)
    h:process({ k = "b", t = 45 })
    h:watermark(50)
    h:process({ k = "c", t = 60 }, 55)
    -- records emitted in on_record keep the input's timestamp (none stays
    -- none); those of on_timer (event time) carry the timer's
    assert.are.same({ "a@33", "b@-", "t40@40", "t45@45", "W50", "c@55" }, output(h))
    assert.are.same({
      "rec a ts=33",
      "rec b ts=nil",
      "timer a ts=40 ctx.ts=40 domain=event",
      "timer b ts=45 ctx.ts=45 domain=event",
      "rec c ts=55",
    }, seen)
  end)

  it("ctx.time_domain is set only in on_timer, not in on_record after a timer fired", function()
    local seen = {}
    local h = testing.harness(function(s)
      return s:key_by("k"):process{
        on_record = function(v, ctx)
          seen[#seen + 1] = "rec " .. tostring(ctx.time_domain)
          ctx.timers:register_event_time(v.t)
        end,
        on_timer = function(_, ctx) seen[#seen + 1] = "timer " .. tostring(ctx.time_domain) end,
      }
    end)
    h:process({ k = "a", t = 10 }, 1)
    h:watermark(10)
    h:process({ k = "a", t = 20 }, 11)
    assert.are.same({ "rec nil", "timer event", "rec nil" }, seen)
  end)

  it("current_watermark() is MIN_INT (-inf) first, then the last watermark received", function()
    local seen = {}
    local h = testing.harness(function(s)
      return s:key_by("k"):process{
        on_record = function(v, ctx)
          seen[#seen + 1] = "rec " .. ctx.timers:current_watermark()
          if v.t then ctx.timers:register_event_time(v.t) end
        end,
        on_timer = function(ts, ctx)
          seen[#seen + 1] = "timer " .. ts .. " wm " .. ctx.timers:current_watermark()
        end,
      }
    end)
    h:process({ k = "a", t = 5 }, 1)
    h:watermark(7)
    h:process({ k = "a" }, 8)
    h:watermark(12)
    h:process({ k = "b" }, 13)
    assert.are.same({ "rec " .. compat.MIN_INT, "timer 5 wm 7", "rec 7", "rec 12" }, seen)
  end)
end)

describe("harness: keyed process, processing-time timers #unit", function()
  local function build(s)
    return s:key_by("k"):process{
      on_record = function(v, ctx, out)
        for _, t in ipairs(v.reg or {}) do ctx.timers:register_processing_time(t) end
        if v.del then ctx.timers:delete_processing_time(v.del) end
        out:collect("rec " .. v.k .. " now " .. ctx.timers:current_processing_time())
      end,
      on_timer = function(ts, ctx, out)
        out:collect(string.format("%s %s %d", ctx.key, ctx.time_domain, ts))
        if ts == 50 and ctx.key == "a" then ctx.timers:register_processing_time(70) end
      end,
    }
  end

  it("fires when processing time reaches them, in order, with no timestamp on their output", function()
    local h = testing.harness(build)
    h:processing_time(5)
    h:process({ k = "a", reg = { 100, 50 } }, 1)
    h:process({ k = "b", reg = { 100, 100, 60 } }, 2)
    h:process({ k = "c", reg = { 80 }, del = 80 }, 3)
    assert.are.same({ "rec a now 5@1", "rec b now 5@2", "rec c now 5@3" }, output(h))
    h:clear_output()
    h:watermark(1000) -- event time does not fire processing-time timers
    h:processing_time(49)
    assert.are.same({ "W1000" }, output(h))
    h:clear_output()
    -- a's timer at 50 registers one at 70, which is due too
    h:processing_time(100)
    assert.are.same({ "a processing 50@-", "b processing 60@-", "a processing 70@-",
      "a processing 100@-", "b processing 100@-" }, output(h))
    h:clear_output()
    h:processing_time(1000)
    h:process({ k = "a" }, 4)
    assert.are.same({ "rec a now 1000@4" }, output(h))
  end)

  it("pending processing-time timers are dropped at the end of input", function()
    local h = testing.harness(build)
    h:process({ k = "a", reg = { 100 } }, 1)
    h:clear_output()
    h:finish()
    assert.are.same({ "W+inf" }, output(h))
  end)
end)

describe("harness: keyed process, keys, state, open and close #unit", function()
  it("on_timer sees the timer's key (as the user's value) and that key's state", function()
    local h = testing.harness(function(s)
      return s:key_by(function(v) return v.key end):process{
        on_record = function(v, ctx)
          local n = ctx.state:value("n")
          n:update((n:value() or 0) + v.n)
          ctx.timers:register_event_time(100)
        end,
        on_timer = function(ts, ctx, out)
          local k = ctx.key
          local shown = type(k) == "table" and ("{" .. k.x .. "," .. k.y .. "}") or tostring(k)
          out:collect(shown .. "=" .. ctx.state:value("n"):value())
        end,
      }
    end)
    h:process({ key = "s", n = 1 }, 1)
    h:process({ key = 7, n = 10 }, 2)
    h:process({ key = { x = 1, y = 2 }, n = 100 }, 3)
    h:process({ key = "s", n = 2 }, 4)
    h:process({ key = { y = 2, x = 1 }, n = 200 }, 5) -- the same table key, by value
    h:process({ key = 7, n = 20 }, 6)
    h:watermark(100)
    assert.are.same({ "s=3@100", "7=30@100", "{1,2}=300@100", "W100" }, output(h))
  end)

  it("keeps state per key", function()
    local h = testing.harness(function(s)
      return s:key_by("k"):process(function(v, ctx, out)
        local c = ctx.state:value("count")
        c:update((c:value() or 0) + 1)
        local l = ctx.state:list("seen")
        l:add(v.x)
        out:collect(v.k .. ":" .. c:value() .. ":" .. table.concat(l:get(), ","))
      end)
    end)
    for _, r in ipairs { { "a", 1 }, { "b", 2 }, { "a", 3 }, { "a", 4 }, { "b", 5 } } do
      h:process({ k = r[1], x = r[2] })
    end
    assert.are.same({ "a:1:1@-", "b:1:2@-", "a:2:1,3@-", "a:3:1,3,4@-", "b:2:2,5@-" }, output(h))
  end)

  it("calls open before the first record and close after the final timers", function()
    local calls = {}
    local h = testing.harness(function(s)
      return s:key_by("k"):process{
        open = function(ctx) calls[#calls + 1] = "open " .. ctx.subtask .. "/" .. ctx.parallelism end,
        on_record = function(v, ctx)
          calls[#calls + 1] = "rec " .. v.k
          ctx.timers:register_event_time(50)
        end,
        on_timer = function(ts, ctx) calls[#calls + 1] = "timer " .. ctx.key .. " " .. ts end,
        close = function() calls[#calls + 1] = "close" end,
      }
    end)
    h:process({ k = "a" }, 1)
    h:finish()
    assert.are.same({ "open 0/1", "rec a", "timer a 50", "close" }, calls)
  end)
end)

describe("harness: side outputs #unit", function()
  local function build(s)
    return s:key_by("k"):process{
      on_record = function(v, ctx, out)
        if v.x % 2 == 1 then
          ctx:output("odd", v.k .. v.x)
        else
          out:collect(v.k .. v.x)
        end
        if v.x == 4 then
          ctx.timers:register_event_time(40)
          ctx:output("big", "four")
        end
      end,
      on_timer = function(ts, ctx, out)
        ctx:output("odd", "timer " .. ctx.key)
        out:collect("main timer " .. ctx.key)
      end,
    }:uid("splitter")
  end

  it("ctx:output sends to the tag's side output with the record's (or timer's) timestamp", function()
    local h = testing.harness(build)
    h:process({ k = "a", x = 1 }, 10)
    h:process({ k = "a", x = 2 }, 20)
    h:process({ k = "b", x = 3 }, 30)
    h:process({ k = "b", x = 4 }, 35)
    h:process({ k = "c", x = 5 })
    h:watermark(40)
    assert.are.same({ "a2@20", "b4@35", "main timer b@40", "W40" }, output(h))
    assert.are.same({ "a1@10", "b3@30", "c5@-", "timer b@40" }, show(h:side_output("odd")))
    assert.are.same({ "four@35" }, show(h:side_output("big")))
    assert.are.same({}, show(h:side_output("nothing")))
    h:clear_output()
    assert.are.same({}, output(h))
    assert.are.same({}, show(h:side_output("odd")))
  end)

  it(":side_output(tag) is a stream of that tag's records, with the watermarks", function()
    local h = testing.harness(function(s)
      return build(s):side_output("odd"):map(function(v) return "side " .. v end)
    end)
    h:process({ k = "a", x = 1 }, 10)
    h:process({ k = "a", x = 2 }, 20)
    h:process({ k = "b", x = 4 }, 35)
    h:process({ k = "a", x = 7 }, 36)
    h:watermark(40)
    assert.are.same({ "side a1@10", "side a7@36", "side timer b@40", "W40" }, output(h))
  end)
end)

describe("harness: snapshot and restore #unit", function()
  local function build(s)
    return s:key_by("k"):process{
      on_record = function(v, ctx, out)
        local c = ctx.state:value("count")
        c:update((c:value() or 0) + 1)
        if v.t then ctx.timers:register_event_time(v.t) end
        if v.p then ctx.timers:register_processing_time(v.p) end
        if v.del then ctx.timers:delete_event_time(v.del) end
        out:collect(v.k .. " count " .. c:value())
      end,
      on_timer = function(ts, ctx, out)
        out:collect(string.format("%s %s %d count %d", ctx.key, ctx.time_domain, ts,
          ctx.state:value("count"):value()))
      end,
    }:uid("counter")
  end

  it("a restored harness has the state and fires the restored timers", function()
    local h = testing.harness(build)
    h:process({ k = "a", t = 30 }, 1)
    h:process({ k = "b", t = 20, p = 500 }, 2)
    h:process({ k = "a", t = 10 }, 3)
    h:process({ k = "c", t = 15, del = 15 }, 4) -- deleted: not in the snapshot
    h:process({ k = "a", t = 30 }, 5)           -- a duplicate
    h:watermark(10)                             -- fires a's 10 before the snapshot
    local snap = h:snapshot()

    local r = testing.harness(build, { restore = snap })
    assert.are.same({}, output(r))
    r:process({ k = "b" }, 6)
    r:watermark(25)
    r:watermark(30)
    r:processing_time(499)
    r:processing_time(500)
    assert.are.same({
      "b count 2@6",
      "b event 20 count 2@20", "W25",
      "a event 30 count 3@30", "W30",
      "b processing 500 count 2@-",
    }, output(r))

    -- the original goes on by itself: the snapshot is a copy
    h:clear_output()
    h:process({ k = "a" }, 7)
    h:watermark(30)
    assert.are.same({ "a count 4@7", "b event 20 count 1@20", "a event 30 count 4@30", "W30" }, output(h))
  end)

  it("restores timers of table keys with the user's key", function()
    local function b2(s)
      return s:key_by("key"):process{
        on_record = function(v, ctx)
          ctx.state:value("v"):update(v.v)
          ctx.timers:register_event_time(9)
        end,
        on_timer = function(_, ctx, out) out:collect(ctx.key[1] .. ctx.key[2] .. "=" .. ctx.state:value("v"):value()) end,
      }:uid("tablekeys")
    end
    local h = testing.harness(b2)
    h:process({ key = { "x", "y" }, v = "first" })
    h:process({ key = { "p", "q" }, v = "second" })
    local r = testing.harness(b2, { restore = h:snapshot() })
    r:watermark(9)
    assert.are.same({ "xy=first@9", "pq=second@9", "W9" }, output(r))
  end)
end)

describe("harness: assign_timestamps #unit", function()
  local function by_field(v) return v end

  -- a flat_map that expands a list into records, so that assign_timestamps
  -- gets them as one batch
  local function expand(s)
    return s:flat_map(function(list, out) for _, x in ipairs(list) do out:collect(x) end end)
  end

  it("per_record bounded: each record, then the watermark max - bound - 1 when it advances", function()
    local h = testing.harness(function(s)
      return s:assign_timestamps(by_field, tide.watermarks.bounded(10, { per_record = true }))
    end)
    for _, t in ipairs { 100, 95, 120, 110, 121, 131 } do h:process(t) end
    assert.are.same({ "100@100", "W89", "95@95", "120@120", "W109", "110@110",
      "121@121", "W110", "131@131", "W120" }, output(h))
  end)

  it("per_record bounded within one batch: the same records and watermarks in the same order", function()
    local h = testing.harness(function(s)
      return expand(s):assign_timestamps(by_field, tide.watermarks.bounded("1s", { per_record = true }))
    end)
    h:process({ 5000, 4500, 7000, 6500, 6000, 7001, 2000 })
    assert.are.same({ "5000@5000", "W3999", "4500@4500", "7000@7000", "W5999", "6500@6500",
      "6000@6000", "7001@7001", "W6000", "2000@2000" }, output(h))
  end)

  it("does not forward upstream watermarks, except the final one", function()
    local h = testing.harness(function(s)
      return s:assign_timestamps(by_field, tide.watermarks.bounded(0, { per_record = true }))
    end)
    h:process(10)
    h:watermark(500)
    h:process(20)
    h:finish()
    assert.are.same({ "10@10", "W9", "20@20", "W19", "W+inf" }, output(h))
  end)

  it("monotonous: watermark = max timestamp - 1", function()
    local h = testing.harness(function(s)
      return expand(s):assign_timestamps(by_field, tide.watermarks.monotonous{ per_record = true })
    end)
    h:process({ 5, 5, 7, 6, 8 })
    assert.are.same({ "5@5", "W4", "5@5", "7@7", "W6", "6@6", "8@8", "W7" }, output(h))
  end)

  it("periodic: emits max - bound - 1 every auto_watermark_interval (200 ms) when it advanced", function()
    local h = testing.harness(function(s)
      return s:assign_timestamps(by_field, tide.watermarks.bounded(10))
    end)
    h:process(100)
    h:process(150)
    h:process(120)
    h:processing_time(199)
    assert.are.same({ "100@100", "150@150", "120@120" }, output(h))
    h:clear_output()
    h:processing_time(200)
    assert.are.same({ "W139" }, output(h))
    h:processing_time(400) -- no new maximum: no watermark
    h:process(160)
    h:processing_time(599)
    h:processing_time(600)
    assert.are.same({ "W139", "160@160", "W149" }, output(h))
  end)

  it("calls the timestamp function with (value, previous timestamp)", function()
    local calls = {}
    local h = testing.harness(function(s)
      return s:assign_timestamps(function(v, prev)
        calls[#calls + 1] = v.name .. ":" .. tostring(prev)
        return (prev or 0) + v.add
      end, tide.watermarks.monotonous{ per_record = true })
    end)
    h:process({ name = "x", add = 5 }, 100)
    h:process({ name = "y", add = 7 })
    assert.are.same({ "x:100", "y:nil" }, calls)
    local out = h:output()
    assert.are.equal(105, out[1].ts)
    assert.are.same({ watermark = 104 }, out[2])
    assert.are.equal(7, out[3].ts)
    assert.are.equal(3, #out)
  end)

  it("rejects timestamps that are not integers, naming the operator and what was returned", function()
    local function try(ret)
      local h = testing.harness(function(s)
        return s:assign_timestamps(function() return ret end, tide.watermarks.monotonous()):uid("stamper")
      end)
      return error_of(function() h:process("record", 5) end)
    end
    local e = try(nil)
    contains(e, "'stamper'")
    contains(e, "assign_timestamps")
    contains(e, "returned nil")
    e = try("12")
    contains(e, "'stamper'")
    contains(e, "returned string 12")
    e = try(1.5)
    contains(e, "'stamper'")
    contains(e, "returned number 1.5")
    e = try({})
    contains(e, "'stamper'")
    contains(e, "returned table")
  end)

  it("rejects an infinite timestamp with a message saying what was returned", function()
    local h = testing.harness(function(s)
      return s:assign_timestamps(function() return math.huge end, tide.watermarks.monotonous()):uid("inf-stamper")
    end)
    local e = error_of(function() h:process("record") end)
    contains(e, "'inf-stamper'")
    contains(e, "returned number inf")
  end)
end)

describe("harness: timers need a keyed stream #unit", function()
  local function non_keyed(action)
    return function(s)
      return s:process(function(_, ctx) action(ctx) end):uid("plain-process")
    end
  end

  it("raises a clear error naming the operator for every timer call", function()
    for _, call in ipairs { "register_event_time", "register_processing_time", "delete_event_time",
      "delete_processing_time" } do
      local h = testing.harness(non_keyed(function(ctx) ctx.timers[call](ctx.timers, 10) end))
      local e = error_of(function() h:process("x", 1) end)
      contains(e, "'plain-process'")
      contains(e, call)
      contains(e, "keyed stream")
    end
  end)

  it("current_watermark() and current_processing_time() work on a non-keyed stream (as Flink's)", function()
    local seen = {}
    local h = testing.harness(function(s)
      return s:process(function(_, ctx)
        seen[#seen + 1] = ctx.timers:current_watermark() .. " " .. ctx.timers:current_processing_time()
      end)
    end)
    h:process("x", 1)
    h:watermark(40)
    h:processing_time(70)
    h:process("y", 2)
    assert.are.same({ compat.MIN_INT .. " 0", "40 70" }, seen)
  end)

  it("a non-keyed process forwards watermarks and keeps timestamps", function()
    local h = testing.harness(function(s)
      return s:process(function(v, ctx, out) out:collect(v .. "/" .. tostring(ctx.timestamp)) end)
    end)
    h:process("a", 3)
    h:process("b")
    h:watermark(5)
    assert.are.same({ "a/3@3", "b/nil@-", "W5" }, output(h))
  end)
end)

describe("harness: map, filter and flat_map keep timestamps #unit", function()
  it("map and flat_map give every output record its input's timestamp", function()
    local h = testing.harness(function(s)
      return s:map(function(v) return v * 10 end)
        :flat_map(function(v, out)
          out:collect(v)
          out:collect(v + 1)
        end)
    end)
    h:process(1, 100)
    h:process(2)
    h:watermark(150)
    h:process(3, 200)
    assert.are.same({ "10@100", "11@100", "20@-", "21@-", "W150", "30@200", "31@200" }, output(h))
  end)

  it("filter drops records with their timestamps (within one batch of mixed timestamps)", function()
    local h = testing.harness(function(s)
      return s:flat_map(function(list, out) for _, x in ipairs(list) do out:collect(x) end end)
        :assign_timestamps(function(v) return v * 7 end, tide.watermarks.bounded(1000))
        :filter(function(v) return v % 3 ~= 0 end)
        :map(function(v) return "v" .. v end)
    end)
    h:process({ 1, 2, 3, 4, 5, 6, 7, 9, 10 })
    assert.are.same({ "v1@7", "v2@14", "v4@28", "v5@35", "v7@49", "v10@70" }, output(h))
  end)

  it("filter keeps records without timestamps without inventing any", function()
    local h = testing.harness(function(s)
      return s:filter(function(v) return v ~= "drop" end)
    end)
    h:process("keep", 4)
    h:process("drop", 5)
    h:process("also")
    h:process("last", 6)
    assert.are.same({ "keep@4", "also@-", "last@6" }, output(h))
  end)
end)
