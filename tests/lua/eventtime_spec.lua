-- tide.timers: the timer service of keyed operators (Flink's
-- InternalTimerService), driven directly: at most one timer per (key,
-- namespace, timestamp), fired in timestamp order with ties in registration
-- order when the watermark / the processing-time clock reaches them,
-- deletes, and snapshot/restore. Expectations come from a plain reference
-- model (a list sorted by (timestamp, registration order)).
--
-- Every case runs on each implementation: the heap service, and the
-- RocksDB service (tide.timers_rocksdb) with Flink's default cache of 128
-- timers per key group and with a cache of 2 (most timers only in
-- RocksDB: caches refilled, timers pushed out of them, existence asked of
-- the index), the backend writing back after every call or only when the
-- case asks for a snapshot.
local timers = require "tide.timers"
local core = require "tide.core"
local compat = require "tide.compat"
local state = require "tide.state"
local oracle = dofile("tests/lua/timer_model.lua")
local lcg, model = oracle.lcg, oracle.model

local TMP = os.getenv("TMPDIR") or "/tmp"
local runs = 0
local disposers = {}

-- the implementations: make(on_fire) -> service
local VARIANTS = {
  { name = "heap" },
  { name = "rocksdb", rocksdb = { timer_cache = 128 } },
  { name = "rocksdb, cache 2, write-back after every call", rocksdb = { timer_cache = 2 }, eager = true },
}

-- A RocksDB backend of this spec (for subtask i of p), its configuration
-- in the layer's (shared directory: the harnesses').
local function rocks_backend(rocksdb, p, i)
  runs = runs + 1
  local shared = TMP .. "/tide-harness-shared"
  assert(core.mkdir_p(shared))
  state.configure { backend = "rocksdb", dir = string.format("%s/tide-timers-spec-%d-%d", TMP, runs, core.monotonic_us()),
    shared_dir = shared, restore_shared = shared, rocksdb = rocksdb }
  local b = state.backend(128, p or 1, i or 0)
  state.configure(nil)
  disposers[#disposers + 1] = b
  return b
end

-- A service of variant V; with `eager`, every call is followed by the
-- backend's write-back (the runtime does it after every batch, watermark
-- and timer round).
local function make(V, on_fire, b)
  if not V.rocksdb then return timers.new(on_fire) end
  b = b or rocks_backend(V.rocksdb)
  local svc = timers.new(on_fire, b)
  assert.are.equal(b, svc.backend) -- the RocksDB service, not the heap's
  svc.test_backend = b
  if V.eager then
    local proxy = setmetatable({}, {
      __index = function(_, k)
        local v = svc[k]
        if type(v) ~= "function" then return v end
        return function(_, ...)
          local r = { v(svc, ...) }
          b:flush()
          return compat.unpack(r)
        end
      end,
      __newindex = function(_, k, v) svc[k] = v end,
    })
    return proxy
  end
  return svc
end

-- The service's timers as the heap service's snapshot lists them (a
-- RocksDB service's savepoint form).
local function listed(svc)
  if svc.test_backend then return svc:snapshot({ savepoint = true }) end
  return svc:snapshot()
end

teardown(function()
  for _, b in ipairs(disposers) do b:close() end
end)

for _, V in ipairs(VARIANTS) do

-- A service that records what fires as "domain:ts:key:ns".
local function recorder(extra)
  local fired = {}
  local svc
  svc = make(V, function(domain, ts, key, ns, raw)
    fired[#fired + 1] = string.format("%s:%d:%s:%s", domain, ts, tostring(key), tostring(ns))
    if extra then extra(svc, domain, ts, key, ns, raw) end
  end)
  return svc, fired
end

describe("tide.timers order (" .. V.name .. ") #unit", function()
  it("fires many random timers in (timestamp, registration) order, one per (key, ns, ts)", function()
    local rnd = lcg(42)
    local svc, fired = recorder()
    local m = model()
    for _ = 1, 5000 do
      local ts = rnd(2000) - 500 -- negative timestamps too
      local key = "k" .. rnd(40)
      local ns = rnd(4) == 0 and ("w" .. rnd(3)) or false
      svc:register("event", ts, key, ns, key)
      m.register("event", ts, key, ns)
    end
    assert.are.equal(m.count("event"), svc:count("event"))
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
    local svc = make(V, function(_, _, key, _, raw) raws[#raws + 1] = { key, raw } end)
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

describe("tide.timers delete (" .. V.name .. ") #unit", function()
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
      m.register("event", ts, key, false)
      regs[#regs + 1] = { ts, key }
    end
    -- delete about a third of them, plus the current minimum a few times
    for i = 1, #regs, 3 do
      svc:delete("event", regs[i][1], regs[i][2], false)
      m.delete("event", regs[i][1], regs[i][2], false)
    end
    assert.are.equal(m.count("event"), svc:count("event"))
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
    assert.are.equal(1, #listed(svc).event)
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

describe("tide.timers snapshot and restore (" .. V.name .. ") #unit", function()
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
    local snap = listed(svc)
    -- plain data in firing order: {ts, key, ns, raw}
    for _, domain in ipairs { "event", "processing" } do
      assert.are.equal(svc:count(domain), #snap[domain])
      for i = 2, #snap[domain] do assert.is_true(snap[domain][i - 1][1] <= snap[domain][i][1]) end
    end
    local data = core.decode(core.encode(snap))

    local restored, rfired = recorder()
    restored:restore(data)
    assert.are.same(snap, listed(restored))
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

  it("restores keys, raw keys and namespaces", function()
    -- the raw key is the key as the user sees it (a copy of a table key)
    -- or none (a window without key_by)
    local svc = make(V, function() end)
    local tkey = { "t", 1 }
    svc:register("event", 5, tkey, "ns1", { "t", 1 })
    svc:register("event", 6, 7, { 1, 2 }, nil)
    local raws = {}
    local r = make(V, function(domain, ts, key, ns, raw) raws[#raws + 1] = { domain, ts, key, ns, raw or "none" } end)
    r:restore(core.decode(core.encode(listed(svc))))
    r:advance_watermark(6)
    assert.are.same({ { "event", 5, { "t", 1 }, "ns1", { "t", 1 } }, { "event", 6, 7, { 1, 2 }, "none" } }, raws)
  end)

  it("does not snapshot fired or deleted timers", function()
    local svc = recorder()
    svc:register("event", 1, "a", false)
    svc:register("event", 2, "a", false)
    svc:register("event", 3, "a", false)
    svc:register("processing", 4, "a", false)
    svc:delete("event", 3, "a", false)
    svc:advance_watermark(1)
    local snap = listed(svc)
    assert.are.same({ { 2, "a", false, nil } }, snap.event)
    assert.are.same({ { 4, "a", false } }, snap.processing)
  end)

  it("restore adds to the timers already there, without duplicates", function()
    local a = recorder()
    a:register("event", 10, "x", false)
    a:register("event", 20, "y", false)
    local b, fired = recorder()
    b:register("event", 10, "x", false)
    b:register("event", 15, "z", false)
    b:restore(listed(a))
    assert.are.equal(3, b:count("event"))
    b:advance_watermark(100)
    assert.are.same({ "event:10:x:false", "event:15:z:false", "event:20:y:false" }, fired)
  end)
end)

end -- VARIANTS
