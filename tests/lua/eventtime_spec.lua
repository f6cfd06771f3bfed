-- tide.timers: the timer service of keyed operators (Flink's
-- InternalTimerService), driven directly: at most one timer per (key,
-- namespace, timestamp), fired in timestamp order with ties in registration
-- order when the watermark / the processing-time clock reaches them,
-- deletes, and snapshot/restore. Expectations come from a plain reference
-- model (a list sorted by (timestamp, registration order)).
local timers = require "tide.timers"
local core = require "tide.core"
local compat = require "tide.compat"

-- A service that records what fires as "domain:ts:key:ns".
local function recorder(extra)
  local fired = {}
  local svc
  svc = timers.new(function(domain, ts, key, ns, raw)
    fired[#fired + 1] = string.format("%s:%d:%s:%s", domain, ts, tostring(key), tostring(ns))
    if extra then extra(svc, domain, ts, key, ns, raw) end
  end)
  return svc, fired
end

-- A deterministic pseudo-random generator, so that failures reproduce:
-- Park and Miller's minimal standard generator (x * 48271 mod 2^31 - 1),
-- whose products stay below 2^53, so it is exact and the same on Lua 5.4
-- and LuaJIT.
local function lcg(seed)
  local x = seed
  return function(n)
    x = x * 48271 % 2147483647
    return x % n
  end
end

-- Reference model: the live timers with the order of their (latest)
-- registration.
local function model()
  local m = { live = {}, seq = 0 }
  local function id(ts, key, ns) return ts .. "|" .. tostring(key) .. "|" .. tostring(ns) end
  function m.register(ts, key, ns)
    local k = id(ts, key, ns)
    if m.live[k] then return end
    m.seq = m.seq + 1
    m.live[k] = { ts = ts, key = key, ns = ns, seq = m.seq }
  end
  function m.delete(ts, key, ns) m.live[id(ts, key, ns)] = nil end
  -- fire everything <= limit: the expected "domain:ts:key:ns" lines
  function m.fire(domain, limit)
    local due = {}
    for k, t in pairs(m.live) do
      if t.ts <= limit then
        due[#due + 1] = t
        m.live[k] = nil
      end
    end
    table.sort(due, function(a, b)
      if a.ts ~= b.ts then return a.ts < b.ts end
      return a.seq < b.seq
    end)
    local out = {}
    for i, t in ipairs(due) do out[i] = string.format("%s:%d:%s:%s", domain, t.ts, tostring(t.key), tostring(t.ns)) end
    return out
  end
  function m.count()
    local n = 0
    for _ in pairs(m.live) do n = n + 1 end
    return n
  end
  return m
end

describe("tide.timers order #unit", function()
  it("fires many random timers in (timestamp, registration) order, one per (key, ns, ts)", function()
    local rnd = lcg(42)
    local svc, fired = recorder()
    local m = model()
    for _ = 1, 5000 do
      local ts = rnd(2000) - 500 -- negative timestamps too
      local key = "k" .. rnd(40)
      local ns = rnd(4) == 0 and ("w" .. rnd(3)) or false
      svc:register("event", ts, key, ns, key)
      m.register(ts, key, ns)
    end
    assert.are.equal(m.count(), svc:count("event"))
    local expected = {}
    for _, wm in ipairs { -600, -1, 0, 733, 1499, 1499, 5000 } do
      for _, l in ipairs(m.fire("event", wm)) do expected[#expected + 1] = l end
      svc:advance_watermark(wm)
      assert.are.same(expected, fired)
    end
    assert.are.equal(0, svc:count("event"))
    assert.is_true(#fired > 1000)
  end)

  it("breaks ties in registration order, across keys and namespaces", function()
    local svc, fired = recorder()
    svc:register("event", 10, "c", false)
    svc:register("event", 5, "z", false)
    svc:register("event", 10, "a", false)
    svc:register("event", 10, "b", "w1")
    svc:register("event", 10, "c", false) -- a duplicate keeps its first place
    svc:register("event", 10, "b", false)
    svc:register("event", 10, 7, false)
    svc:advance_watermark(10)
    assert.are.same({ "event:5:z:false", "event:10:c:false", "event:10:a:false", "event:10:b:w1",
      "event:10:b:false", "event:10:7:false" }, fired)
  end)

  it("keeps one timer per (key, namespace, timestamp), namespaces apart", function()
    local svc, fired = recorder()
    svc:register("event", 3, "k", false)
    svc:register("event", 3, "k", false)
    svc:register("event", 3, "k", "ns")
    svc:register("event", 3, "k", "ns")
    svc:register("processing", 3, "k", false) -- another domain: another timer
    assert.are.equal(2, svc:count("event"))
    assert.are.equal(1, svc:count("processing"))
    svc:advance_watermark(3)
    assert.are.same({ "event:3:k:false", "event:3:k:ns" }, fired)
  end)

  it("treats a nil namespace as false (no namespace), in register and delete", function()
    local svc, fired = recorder()
    svc:register("event", 3, "k")
    svc:register("event", 3, "k", false)
    svc:register("event", 4, "k", false)
    svc:register("event", 5, "k", nil)
    assert.are.equal(3, svc:count("event"))
    svc:delete("event", 4, "k")
    svc:advance_watermark(10)
    assert.are.same({ "event:3:k:false", "event:5:k:false" }, fired)
  end)

  it("fires nothing above the limit and keeps it for later", function()
    local svc, fired = recorder()
    for _, ts in ipairs { 30, 10, 20 } do svc:register("event", ts, "k", false) end
    svc:advance_watermark(9)
    assert.are.same({}, fired)
    svc:advance_watermark(19)
    assert.are.same({ "event:10:k:false" }, fired)
    assert.are.equal(19, svc.watermark)
    svc:advance_watermark(compat.MAX_INT)
    assert.are.same({ "event:10:k:false", "event:20:k:false", "event:30:k:false" }, fired)
  end)

  it("processing time: fires <= now in order and reports the next deadline", function()
    local svc, fired = recorder()
    assert.is_nil(svc:next_processing_time())
    svc:register("processing", 500, "a", false)
    svc:register("processing", 200, "b", false)
    svc:register("event", 100, "c", false)
    assert.are.equal(200, svc:next_processing_time())
    svc:advance_processing_time(199)
    assert.are.same({}, fired)
    svc:advance_processing_time(499)
    assert.are.same({ "processing:200:b:false" }, fired)
    assert.are.equal(500, svc:next_processing_time())
    svc:delete("processing", 500, "a", false)
    assert.is_nil(svc:next_processing_time())
    svc:advance_processing_time(10000)
    assert.are.same({ "processing:200:b:false" }, fired) -- event timers untouched
    svc:advance_watermark(100)
    assert.are.same({ "processing:200:b:false", "event:100:c:false" }, fired)
  end)

  it("passes the raw key to on_fire", function()
    local raws = {}
    local svc = timers.new(function(_, _, key, _, raw) raws[#raws + 1] = { key, raw } end)
    local tkey = { "x", 1 }
    svc:register("event", 1, "normalized", false, tkey)
    svc:advance_watermark(1)
    assert.are.equal("normalized", raws[1][1])
    assert.are.equal(tkey, raws[1][2])
  end)

  it("fires timers registered by on_fire in the same advance when due", function()
    local svc, fired = recorder(function(s, domain, ts, key)
      if ts == 10 then
        s:register(domain, 12, key, false) -- due: fires in this advance
        s:register(domain, 8, key, false)  -- already passed: fires in this advance
        s:register(domain, 50, key, false) -- not due
      end
    end)
    svc:register("event", 10, "k", false)
    svc:register("event", 11, "j", false)
    svc:advance_watermark(20)
    assert.are.same({ "event:10:k:false", "event:8:k:false", "event:11:j:false", "event:12:k:false" }, fired)
    assert.are.equal(1, svc:count("event"))
  end)
end)

describe("tide.timers delete #unit", function()
  it("deletes exactly the timer named, and ignores missing ones", function()
    local svc, fired = recorder()
    svc:register("event", 10, "a", false)
    svc:register("event", 10, "b", false)
    svc:register("event", 10, "a", "ns")
    svc:register("event", 20, "a", false)
    svc:delete("event", 10, "a", false)
    svc:delete("event", 10, "zz", false)
    svc:delete("event", 11, "a", false)
    svc:delete("processing", 20, "a", false)
    assert.are.equal(3, svc:count("event"))
    svc:advance_watermark(100)
    assert.are.same({ "event:10:b:false", "event:10:a:ns", "event:20:a:false" }, fired)
  end)

  it("deletes the heap's top and timers deep in it (many random deletes)", function()
    local rnd = lcg(7)
    local svc, fired = recorder()
    local m = model()
    local regs = {}
    for _ = 1, 3000 do
      local ts, key = rnd(1000), "k" .. rnd(25)
      svc:register("event", ts, key, false)
      m.register(ts, key, false)
      regs[#regs + 1] = { ts, key }
    end
    -- delete about a third of them, plus the current minimum a few times
    for i = 1, #regs, 3 do
      svc:delete("event", regs[i][1], regs[i][2], false)
      m.delete(regs[i][1], regs[i][2], false)
    end
    assert.are.equal(m.count(), svc:count("event"))
    local expected = {}
    for _, wm in ipairs { 100, 400, 999 } do
      for _, l in ipairs(m.fire("event", wm)) do expected[#expected + 1] = l end
      svc:advance_watermark(wm)
      assert.are.same(expected, fired)
    end
  end)

  it("a timer deleted and registered again fires once, in the order of its new registration", function()
    local svc, fired = recorder()
    svc:register("event", 10, "a", false)
    svc:register("event", 10, "b", false)
    svc:delete("event", 10, "a", false)
    svc:register("event", 10, "a", false)
    assert.are.equal(2, svc:count("event"))
    svc:advance_watermark(10)
    assert.are.same({ "event:10:b:false", "event:10:a:false" }, fired)
  end)

  it("a timer deleted and registered again is in a snapshot once", function()
    local svc = recorder()
    svc:register("event", 10, "a", false)
    svc:delete("event", 10, "a", false)
    svc:register("event", 10, "a", false)
    assert.are.equal(1, #svc:snapshot().event)
  end)

  it("a timer deleted from inside on_fire does not fire", function()
    local svc, fired = recorder(function(s, domain, ts)
      if ts == 1 then s:delete(domain, 2, "b", false) end
    end)
    svc:register("event", 2, "b", false)
    svc:register("event", 1, "a", false)
    svc:register("event", 2, "c", false)
    svc:advance_watermark(5)
    assert.are.same({ "event:1:a:false", "event:2:c:false" }, fired)
  end)
end)

describe("tide.timers snapshot and restore #unit", function()
  it("round-trips through snapshot, the codec and restore: same timers, same firing order", function()
    local rnd = lcg(2024)
    local svc, fired = recorder()
    local regs = {}
    for _ = 1, 800 do
      local domain = rnd(3) == 0 and "processing" or "event"
      local ts, key = rnd(300), (rnd(2) == 0 and ("k" .. rnd(20)) or rnd(20))
      local ns = rnd(5) == 0 and "w" or false
      svc:register(domain, ts, key, ns, { raw = key })
      regs[#regs + 1] = { domain, ts, key, ns }
    end
    for i = 1, #regs, 6 do svc:delete(compat.unpack(regs[i])) end
    svc:advance_watermark(50) -- some fired before the snapshot
    svc:advance_processing_time(20)
    local snap = svc:snapshot()
    -- plain data in firing order: {ts, key, ns, raw}
    for _, domain in ipairs { "event", "processing" } do
      assert.are.equal(svc:count(domain), #snap[domain])
      for i = 2, #snap[domain] do assert.is_true(snap[domain][i - 1][1] <= snap[domain][i][1]) end
    end
    local data = core.decode(core.encode(snap))

    local restored, rfired = recorder()
    restored:restore(data)
    assert.are.same(snap, restored:snapshot())
    assert.are.equal(svc:count("event"), restored:count("event"))
    assert.are.equal(svc:count("processing"), restored:count("processing"))

    local before = #fired
    svc:advance_watermark(200)
    svc:advance_processing_time(1000)
    svc:advance_watermark(1000)
    restored:advance_watermark(200)
    restored:advance_processing_time(1000)
    restored:advance_watermark(1000)
    assert.are.same({ compat.unpack(fired, before + 1) }, rfired)
    assert.is_true(#rfired > 100)
  end)

  it("restores raw keys and namespaces", function()
    local svc = timers.new(function() end)
    svc:register("event", 5, "enc", "ns1", { "t", 1 })
    local raws = {}
    local r = timers.new(function(domain, ts, key, ns, raw) raws[#raws + 1] = { domain, ts, key, ns, raw } end)
    r:restore(core.decode(core.encode(svc:snapshot())))
    r:advance_watermark(5)
    assert.are.same({ { "event", 5, "enc", "ns1", { "t", 1 } } }, raws)
  end)

  it("does not snapshot fired or deleted timers", function()
    local svc = recorder()
    svc:register("event", 1, "a", false)
    svc:register("event", 2, "a", false)
    svc:register("event", 3, "a", false)
    svc:register("processing", 4, "a", false)
    svc:delete("event", 3, "a", false)
    svc:advance_watermark(1)
    local snap = svc:snapshot()
    assert.are.same({ { 2, "a", false } }, snap.event)
    assert.are.same({ { 4, "a", false } }, snap.processing)
  end)

  it("restore adds to the timers already there, without duplicates", function()
    local a = recorder()
    a:register("event", 10, "x", false)
    a:register("event", 20, "y", false)
    local b, fired = recorder()
    b:register("event", 10, "x", false)
    b:register("event", 15, "z", false)
    b:restore(a:snapshot())
    assert.are.equal(3, b:count("event"))
    b:advance_watermark(100)
    assert.are.same({ "event:10:x:false", "event:15:z:false", "event:20:y:false" }, fired)
  end)
end)
