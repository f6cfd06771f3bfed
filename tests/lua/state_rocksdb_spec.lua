-- tide.state on the RocksDB backend, against the heap backend as the oracle
-- (whose own specs check it against Flink's semantics): the same random
-- operations on value, list, map, reducing and aggregating state and on
-- namespaced state, over random keys (scalars and tables), with the
-- write-back at random points (the end of a batch), snapshots restored at
-- the same and at another parallelism, and snapshots crossing backends.
-- Every read must give the heap backend's answer.
local state = require "tide.state"
local core = require "tide.core"

local TMP = os.getenv("TMPDIR") or "/tmp"
local runs = 0

-- a state configuration for RocksDB backends of this spec
local function rocks_cfg()
  runs = runs + 1
  local shared = TMP .. "/tide-harness-shared"
  assert(core.mkdir_p(shared))
  return { backend = "rocksdb", dir = string.format("%s/tide-spec-%d-%d", TMP, runs, core.monotonic_us()),
    shared_dir = shared, restore_shared = shared }
end

-- a backend of kind ("heap" | "rocksdb") for subtask i of p
local function backend(kind, cfg, p, i)
  -- a heap backend restores rocksdb snapshots from the same shared directory
  state.configure(cfg and { backend = kind, dir = cfg.dir, shared_dir = cfg.shared_dir,
    restore_shared = cfg.restore_shared } or nil)
  local b = state.backend(128, p or 1, i or 0, function() return 0 end)
  state.configure(nil)
  return b
end

-- a snapshot in the heap format as a sorted list of "state kg key value"
-- lines (canonical encodings): equal whatever the order of entries
local function entries(snap)
  snap = core.decode(core.encode(snap))
  local out = {}
  for name, st in pairs(snap.states) do
    for kg, g in pairs(st.groups) do
      for j = 1, #g, 2 do
        out[#out + 1] = table.concat({ name, st.kind, tostring(st.namespaced), kg,
          core.encode(g[j], true), core.encode(g[j + 1], true) }, " ")
      end
    end
  end
  table.sort(out)
  return out
end

local SUM = { create = function() return 0 end, add = function(v, a) return a + v end,
  result = function(a) return a end }

-- the handles of one process function over backend b
local function handles(b)
  local cur = {}
  local st = state.new(cur, b)
  return {
    cur = cur, b = b,
    value = st:value("v"), list = st:list("l"), map = st:map("m"),
    reducing = st:reducing("r", function(a, x) return a + x end), aggregating = st:aggregating("a", SUM),
    ns = b:state("ns", "value", { namespaced = true }).t,
  }
end

local KEYS = { "a", "b", 1, 2, 3.5, true, { 1, 2 }, { x = "y" } }

-- one random operation on h (rng draws the same for both sides); returns
-- what it read, as a comparable string
local function op(h, rng, k)
  k = k or KEYS[rng(#KEYS)]
  h.cur.key = h.b:key(k)
  local c = rng(14)
  local x = rng(100)
  if c == 1 then h.value:update(x)
  elseif c == 2 then h.value:clear()
  elseif c == 3 then return tostring(h.value:value())
  elseif c == 4 then h.list:add(x)
  elseif c == 5 then h.list:update({ x, x + 1 })
  elseif c == 6 then return table.concat(h.list:get() or {}, ",")
  elseif c == 7 then h.map:put("k" .. rng(4), x)
  elseif c == 8 then h.map:remove("k" .. rng(4))
  elseif c == 9 then
    local out = {}
    for mk, mv in h.map:entries() do out[#out + 1] = mk .. "=" .. mv end
    table.sort(out)
    return table.concat(out, ",")
  elseif c == 10 then h.reducing:add(x); return tostring(h.reducing:get())
  elseif c == 11 then h.aggregating:add(x); return tostring(h.aggregating:get())
  elseif c == 12 then
    local t = h.ns
    local key = h.cur.key
    local m = t[key]
    if not m then
      m = {}
      t[key] = m
    end
    m["w" .. rng(3)] = x
  elseif c == 13 then
    local m = h.ns[h.cur.key]
    if m then
      m["w" .. rng(3)] = nil
      if next(m) == nil then h.ns[h.cur.key] = nil end
    end
  else
    local m = h.ns[h.cur.key]
    local out = {}
    for w, v in pairs(m or {}) do out[#out + 1] = w .. "=" .. v end
    table.sort(out)
    return table.concat(out, ",")
  end
  return nil
end

local function seeded(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return math.floor(s / 65536) % n + 1 -- the high bits: the low ones cycle fast
  end
end

describe("tide.state on rocksdb, against the heap backend #unit", function()
  it("answers every read as the heap backend does, across write-backs", function()
    for seed = 1, 4 do
      local cfg = rocks_cfg()
      local heap, rocks = handles(backend("heap")), handles(backend("rocksdb", cfg))
      local r1, r2 = seeded(seed), seeded(seed)
      for step = 1, 1500 do
        local a, b = op(heap, r1), op(rocks, r2)
        assert.are.equal(a, b, "seed " .. seed .. " step " .. step)
        if r1(7) == 1 then r2(7); rocks.b:flush() else r2(7) end
      end
      rocks.b:close()
    end
  end)

  it("restores its snapshots on rocksdb and heap, at the same and at other parallelisms", function()
    local cfg = rocks_cfg()
    local heap, rocks = handles(backend("heap")), handles(backend("rocksdb", cfg))
    local r1, r2 = seeded(11), seeded(11)
    for _ = 1, 800 do
      op(heap, r1)
      op(rocks, r2)
    end
    rocks.b:prepare_snapshot(1)
    local snap = core.decode(core.encode(rocks.b:snapshot()))
    local hsnap = core.decode(core.encode(heap.b:snapshot()))
    assert.are.equal("rocksdb", snap.backend)
    -- the canonical form of the RocksDB backend's state is the heap's
    assert.are.same(entries(hsnap), entries(rocks.b:canonical_snapshot()))
    -- a savepoint's snapshot: the canonical form, read at the barrier
    rocks.b:prepare_snapshot(2, true)
    local sp = rocks.b:snapshot({ savepoint = true })
    assert.is_nil(sp.backend)
    assert.are.same(entries(hsnap), entries(sp))
    rocks.b:close()
    for _, p in ipairs { 1, 3 } do
      for i = 0, p - 1 do
        for _, kind in ipairs { "rocksdb", "heap" } do
          -- restored from the rocksdb snapshot, then both go on alike
          local restored = handles(backend(kind, rocks_cfg(), p, i))
          restored.b:restore({ core.decode(core.encode(snap)) })
          local oracle = handles(backend("heap", nil, p, i))
          -- (a fresh copy: the heap backend takes the snapshot's tables)
          oracle.b:restore({ core.decode(core.encode(hsnap)) })
          -- what was restored is the oracle's state, in its canonical form
          assert.are.same(entries(oracle.b:snapshot()), entries(restored.b:canonical_snapshot()),
            kind .. " p" .. p .. " subtask " .. i)
          local a1, a2 = seeded(5 + i), seeded(5 + i)
          for step = 1, 400 do
            local k = KEYS[a1(#KEYS)]
            a2(#KEYS)
            if oracle.b:owns(oracle.b:key(k)) then
              -- only keys of this subtask's key groups reach it
              local x, y = op(oracle, a1, k), op(restored, a2, k)
              assert.are.equal(x, y, kind .. " p" .. p .. " subtask " .. i .. " step " .. step)
            end
            if step % 50 == 0 then restored.b:flush() end
          end
          restored.b:close()
        end
      end
    end
  end)

  it("restores a heap snapshot on rocksdb", function()
    local heap = handles(backend("heap"))
    local r = seeded(3)
    for _ = 1, 600 do op(heap, r) end
    local hsnap = core.decode(core.encode(heap.b:snapshot()))
    local rocks = handles(backend("rocksdb", rocks_cfg()))
    rocks.b:restore({ hsnap })
    assert.are.same(entries(hsnap), entries(rocks.b:canonical_snapshot()))
    rocks.b:close()
  end)

  it("drops expired TTL state in compactions (Flink's TTL compaction filter)", function()
    local now = 1000
    state.configure(rocks_cfg())
    local b = state.backend(128, 1, 0, function() return now end)
    state.configure(nil)
    local cur = {}
    local st = state.new(cur, b)
    local ttl = { ttl = { time = 100 } }
    local v, l, m = st:value("v", ttl), st:list("l", ttl), st:map("m", ttl)
    for _, k in ipairs { "old", "young" } do
      cur.key = k
      v:update(k)
      l:add(k .. 1)
      m:put("x", k)
      b:flush()
      now = now + 60 -- "old" is written at 1000, "young" at 1060
    end
    cur.key = "young"
    l:add("young2") -- at 1120
    b:flush()
    now = 1130 -- "old" (1000 + 100) expired, the rest is alive
    cur.key = "other"
    v:update(1) -- a write: the filter's clock is the task's
    b:flush()
    local db = b:db()
    db:compact()
    -- the raw entries, past the layer's own expiry on access
    local sv, sl, sm = b.states.v.id, b.states.l.id, b.states.m.id
    assert.is_nil(db:get(sv, "old"))
    assert.are.same({ "young", 1060 }, db:get(sv, "young"))
    assert.is_nil(db:get(sl, "old"))
    assert.are.same({ { "young1", 1060 }, { "young2", 1120 } }, db:get(sl, "young"))
    assert.is_nil(db:get_ns(sm, "old"))
    assert.are.same({ x = { "young", 1060 } }, db:get_ns(sm, "young"))
    -- one list element of two expires: the entry is rewritten without it
    now = 1200
    cur.key = "other"
    v:update(2)
    b:flush()
    db:compact()
    assert.are.same({ { "young2", 1120 } }, db:get(sl, "young"))
    assert.is_nil(db:get(sv, "young"))
    b:close()
  end)

  it("writes back at the end of a batch only once FLUSH_KEYS keys are cached or timers changed", function()
    local FLUSH_KEYS = require("tide.state_rocksdb").FLUSH_KEYS
    local b = backend("rocksdb", rocks_cfg())
    local cur = {}
    local v = state.new(cur, b):value("v")
    local id = b.states.v.id
    for i = 1, 100 do
      cur.key = i
      v:update((v:value() or 0) + i)
    end
    b:flush(true)
    local db = b:db()
    assert.is_nil(db:get(id, 7)) -- not written yet
    cur.key = 7
    assert.are.equal(7, v:value()) -- the cache answers
    v:update(70)
    b:flush()                   -- a full flush writes every key
    assert.are.equal(70, db:get(id, 7))
    assert.are.equal(100, db:get(id, 100))
    -- FLUSH_KEYS distinct keys: the end of a batch writes back
    for i = 1, FLUSH_KEYS - 1 do
      cur.key = 1000 + i
      v:update(i)
    end
    b:flush(true)
    assert.is_nil(db:get(id, 1000 + FLUSH_KEYS - 1))
    cur.key = 1
    v:update(-1)
    b:flush(true)
    assert.are.equal(FLUSH_KEYS - 1, db:get(id, 1000 + FLUSH_KEYS - 1))
    assert.are.equal(-1, db:get(id, 1))
    -- a timer registered: its write batch carries the state's changes too
    local timers = require("tide.timers").new(function() end, b)
    cur.key = 2
    v:update(-2)
    timers:register("event", 50, b:key(2), false, 2)
    b:flush(true)
    assert.are.equal(-2, db:get(id, 2))
    b:close()
  end)

  it("writes back at the end of a batch once the entries read reach FLUSH_BYTES", function()
    local M = require "tide.state_rocksdb"
    local saved = M.FLUSH_BYTES
    M.FLUSH_BYTES = 1000
    local b = backend("rocksdb", rocks_cfg())
    local cur = {}
    local v = state.new(cur, b):value("v")
    local id = b.states.v.id
    cur.key = "big"
    v:update(("x"):rep(600))
    b:flush()
    local db = b:db()
    db:read_bytes(true)
    cur.key = "big"
    assert.are.equal(600, #v:value()) -- about 600 bytes read
    cur.key = "small"
    v:update(1)
    b:flush(true)
    assert.is_nil(db:get(id, "small")) -- under 1000 bytes: kept
    assert.is_true(db:read_bytes() >= 600)
    cur.key = "big2"
    v:update(("y"):rep(600))
    b:flush()
    db:read_bytes(true)
    for _, k in ipairs { "big", "big2" } do
      cur.key = k
      assert.are.equal(600, #v:value())
    end
    b:flush(true) -- 1200 bytes read: written back, the count zeroed
    assert.are.equal(0, db:read_bytes())
    assert.are.equal(1, db:get(id, "small"))
    M.FLUSH_BYTES = saved
    b:close()
  end)

  it("names the path when the instance cannot be opened", function()
    local cfg = rocks_cfg()
    cfg.dir = "/proc/tide-cannot-be-here/x"
    local b = backend("rocksdb", cfg)
    local ok, err = pcall(b.db, b)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("/proc/tide-cannot-be-here/x", 1, true), tostring(err))
  end)
end)
