-- tide.timers_rocksdb: timers stored in the operator's RocksDB instance
-- (Flink's RocksDB timer service), against independent oracles: a plain
-- model of the live timers (one per key, namespace and timestamp, fired in
-- (timestamp, registration) order) and, for restores, the order the heap
-- service gives by definition (old subtasks' timers in subtask order, each
-- in its own order). Many more timers than the caches hold, write-backs
-- between batches as the runtime does them, checkpoints (the instance's
-- files) and savepoints (canonical lists), restores across services and
-- at other parallelisms.
-- Every backend and harness here names its state backend (but one harness
-- refused for its arguments before any backend), so tests/run.sh leaves
-- this file out of its second busted run (TIDE_TEST_STATE_BACKEND=rocksdb),
-- which would repeat it exactly: a harness here that takes the suite's
-- backend would need the file back in that run.
local state = require "tide.state"
local timers = require "tide.timers"
local core = require "tide.core"
local compat = require "tide.compat"
local model_lib = dofile("tests/lua/timer_model.lua")
local lcg, model, line, same_list = model_lib.lcg, model_lib.model, model_lib.line, model_lib.same_list

local TMP = os.getenv("TMPDIR") or "/tmp"
local SHARED = TMP .. "/tide-harness-shared"
local MAXP = 128
local runs, snapshot_ids = 0, 0
local backends = {}

teardown(function()
  for _, b in ipairs(backends) do b:close() end
end)

-- An operator's keyed part: a backend of `kind` for subtask i of p and a
-- timer service over it recording what fires. opts: cache (timers cached
-- per key group), timer_service ("heap" to keep timers in memory on
-- rocksdb), on_fire(node, domain, ts, key, ns) called after recording.
local function node(kind, opts)
  opts = opts or {}
  runs = runs + 1
  assert(core.mkdir_p(SHARED))
  state.configure { backend = kind, dir = string.format("%s/tide-timers-rocksdb-%d-%d", TMP, runs, core.monotonic_us()),
    shared_dir = SHARED, restore_shared = SHARED,
    rocksdb = { timer_cache = opts.cache, timer_service = opts.timer_service } }
  local b = state.backend(MAXP, opts.p or 1, opts.i or 0)
  state.configure(nil)
  backends[#backends + 1] = b
  local n = { b = b, fired = {}, kind = kind }
  n.svc = timers.new(function(domain, ts, key, ns)
    n.fired[#n.fired + 1] = line(domain, ts, key, ns)
    if opts.on_fire then opts.on_fire(n, domain, ts, key, ns) end
  end, b)
  function n.register(domain, ts, k, ns) n.svc:register(domain, ts, b:key(k), ns, k) end
  function n.delete(domain, ts, k, ns) n.svc:delete(domain, ts, b:key(k), ns) end
  function n.flush() b:flush() end
  -- the operator's snapshot as the runtime takes it (checkpoint, or
  -- savepoint: canonical), through the codec
  function n.snapshot(savepoint)
    snapshot_ids = snapshot_ids + 1
    b:prepare_snapshot(snapshot_ids, savepoint)
    local o = savepoint and { savepoint = true } or nil
    return core.decode(core.encode({ keyed = b:snapshot(o), timers = n.svc:snapshot(o) }))
  end
  -- restore from old subtasks' snapshots, in subtask order
  function n.restore(snaps)
    for _, s in ipairs(snaps) do
      b:restore({ s.keyed })
      n.svc:restore(s.timers, b, s.keyed)
    end
  end
  function n.take()
    local f = n.fired
    n.fired = {}
    return f
  end
  return n
end

-- timers cached in memory by service svc, and entries of its known map
local function cached(svc)
  local c, k = 0, 0
  for _, domain in ipairs { "event", "processing" } do
    for _, K in pairs(svc[domain].kgs) do c = c + #K.cache end
    for _, by_ns in pairs(svc[domain].known) do
      for _, by_ts in pairs(by_ns) do
        for _ in pairs(by_ts) do k = k + 1 end
      end
    end
  end
  return c, k
end

describe("tide.timers_rocksdb #unit", function()
  it("is the timer service of a RocksDB backend, unless timer_service is heap", function()
    local r = node("rocksdb")
    assert.are.equal(r.b, r.svc.backend)
    assert.are.equal(r.svc, r.b.attached)
    local h = node("rocksdb", { timer_service = "heap" })
    assert.is_nil(h.svc.backend)
    assert.is_nil(h.b.attached)
    assert.is_nil(node("heap").svc.backend)
  end)

  it("fires 200K timers over 10K keys in exact order, far more than the caches hold", function()
    local rnd = lcg(99)
    local n = node("rocksdb")
    local m = model()
    -- in batches of 1000 registrations, written back after each; about
    -- 1 in 8 a duplicate of an earlier one, 1 in 20 followed by a delete
    local regs = {}
    for batch = 1, 200 do
      for _ = 1, 1000 do
        local ts, key, ns
        if #regs > 0 and rnd(8) == 0 then
          local r = regs[rnd(#regs) + 1]
          ts, key, ns = r[1], r[2], r[3]
        else
          ts, key = rnd(50000), rnd(10000)
          if rnd(3) == 0 then key = "k" .. key end
          ns = rnd(4) == 0 and ("w" .. rnd(3)) or false
          regs[#regs + 1] = { ts, key, ns }
        end
        n.register("event", ts, key, ns)
        m.register("event", ts, key, ns)
        if rnd(20) == 0 then
          local r = regs[rnd(#regs) + 1]
          n.delete("event", r[1], r[2], r[3])
          m.delete("event", r[1], r[2], r[3])
        end
      end
      n.flush()
      if batch % 50 == 0 then
        -- memory: at most `cache` timers per key group, and as many
        -- others known (remembered as stored), nothing else once written
        -- back
        local c, k = cached(n.svc)
        assert.is_true(c <= MAXP * 128, "cached " .. c)
        assert.are.equal(MAXP * 128, n.svc.remembered)
        assert.is_true(k >= c and k <= c + n.svc.remembered, "known " .. k .. ", cached " .. c)
      end
    end
    assert.is_true(m.count("event") > 150000)
    assert.are.equal(m.count("event"), n.svc:count("event"))
    local expected = {}
    for _, wm in ipairs { -1, 0, 7, 12345, 12345, 30000, 49999 } do
      for _, l in ipairs(m.fire("event", wm)) do expected[#expected + 1] = l end
      n.svc:advance_watermark(wm)
      n.flush()
      assert.are.equal(#expected, #n.fired)
    end
    same_list(expected, n.fired)
    assert.are.equal(0, n.svc:count("event"))
  end)

  it("deletes, duplicates and timers registered while firing, with small caches, against the model", function()
    for _, cache in ipairs { 1, 3, 128 } do
      local rnd = lcg(cache + 5)
      -- what a fired timer does, drawn from its own generator (one for the
      -- service, one for the model: the same draws if they fire in the
      -- same order): register a follow-up (sometimes due already: it fires
      -- in the same advance) and delete another timer, as process
      -- functions do
      local function reaction(gen, domain, ts, key, ns)
        local acts = {}
        if gen(3) == 0 then acts[#acts + 1] = { "register", domain, ts + gen(40) - 10, key, ns } end
        if gen(4) == 0 then acts[#acts + 1] = { "delete", domain, gen(600), gen(30), false } end
        return acts
      end
      local m = model()
      local mgen, ngen = lcg(77), lcg(77)
      -- the model fires one timer at a time: the least (ts, seq) due
      function m.advance(domain, limit)
        local out = {}
        while true do
          local best, bk
          for k, t in pairs(m.live) do
            if t.domain == domain and t.ts <= limit and (best == nil or t.ts < best.ts
              or (t.ts == best.ts and t.seq < best.seq)) then
              best, bk = t, k
            end
          end
          if not best then return out end
          m.live[bk] = nil
          out[#out + 1] = line(domain, best.ts, best.key, best.ns)
          for _, a in ipairs(reaction(mgen, domain, best.ts, best.key, best.ns)) do
            m[a[1]](a[2], a[3], a[4], a[5])
          end
        end
      end
      local n
      n = node("rocksdb", { cache = cache, on_fire = function(_, domain, ts, key, ns)
        for _, a in ipairs(reaction(ngen, domain, ts, key, ns)) do n[a[1]](a[2], a[3], a[4], a[5]) end
      end })
      local limit, expected = { event = -1, processing = -1 }, {}
      for step = 1, 3000 do
        local domain = rnd(4) == 0 and "processing" or "event"
        local c = rnd(10)
        local ts, key, ns = limit[domain] + rnd(80) - 5, rnd(30), rnd(5) == 0 and "w" or false
        if c < 6 then
          n.register(domain, ts, key, ns)
          m.register(domain, ts, key, ns)
        elseif c < 9 then
          n.delete(domain, ts, key, ns)
          m.delete(domain, ts, key, ns)
        else
          limit[domain] = limit[domain] + rnd(30)
          if domain == "event" then n.svc:advance_watermark(limit[domain])
          else n.svc:advance_processing_time(limit[domain]) end
          for _, l in ipairs(m.advance(domain, limit[domain])) do expected[#expected + 1] = l end
          same_list(expected, n.fired, "cache " .. cache .. ", step " .. step)
        end
        if rnd(7) == 0 then n.flush() end
        if step % 500 == 0 then
          assert.are.equal(m.count("event"), n.svc:count("event"))
          assert.are.equal(m.count("processing"), n.svc:count("processing"))
        end
      end
      assert.is_true(#expected > 1000)
    end
  end)

  it("fires in the heap service's order: the same operations, the same output", function()
    for _, cache in ipairs { 2, 128 } do
      local rnd = lcg(17 + cache)
      local ops = {}
      for _ = 1, 6000 do
        local c = rnd(12)
        if c < 8 then ops[#ops + 1] = { "register", rnd(2) == 0 and "event" or "processing", rnd(400), rnd(50),
          rnd(3) == 0 and "w" or false }
        elseif c < 11 then ops[#ops + 1] = { "delete", "event", rnd(400), rnd(50), false }
        else ops[#ops + 1] = { "advance", rnd(400) } end
      end
      local outs = {}
      for _, kind in ipairs { "heap", "rocksdb" } do
        local follow = lcg(3)
        local n
        n = node(kind, { cache = cache, on_fire = function(_, domain, ts, key)
          if follow(2) == 0 then n.register(domain, ts + follow(20), key, "f") end
          if follow(3) == 0 then n.delete(domain, ts + 5, key, false) end
        end })
        local wm = -1
        for i, o in ipairs(ops) do
          if o[1] == "register" then n.register(o[2], o[3], o[4], o[5])
          elseif o[1] == "delete" then n.delete(o[2], o[3], o[4], o[5])
          elseif o[2] > wm then
            wm = o[2]
            n.svc:advance_watermark(wm)
            n.svc:advance_processing_time(wm)
          end
          if i % 97 == 0 then n.flush() end
        end
        n.svc:advance_watermark(compat.MAX_INT)
        n.svc:advance_processing_time(compat.MAX_INT)
        outs[kind] = n.take()
      end
      assert.is_true(#outs.heap > 2000)
      same_list(outs.heap, outs.rocksdb)
    end
  end)
end)

describe("tide.timers_rocksdb options #unit", function()
  local tide = require "tide"
  local testing = require "tide.testing"

  it("env{rocksdb = {timer_service =, timer_cache =}} checks them", function()
    local e = tide.env { rocksdb = { timer_service = "heap", timer_cache = 64 } }
    assert.are.same({ timer_service = "heap", timer_cache = 64 }, e.rocksdb)
    assert.are.same({ timer_service = "rocksdb" }, tide.env { rocksdb = { timer_service = "rocksdb" } }.rocksdb)
    local ok, err = pcall(tide.env, { rocksdb = { timer_service = "memory" } })
    assert.is_false(ok)
    assert.matches("bad rocksdb option timer_service 'memory' (expected 'rocksdb' or 'heap')", err, 1, true)
    ok, err = pcall(tide.env, { rocksdb = { timer_cache = 0 } })
    assert.is_false(ok)
    assert.matches("positive integer expected, got 0", err, 1, true)
  end)

  it("refuses a state that would share the timers' column family", function()
    local n = node("rocksdb")
    assert.has_error(function() n.b:state("_timer_state", "value") end,
      "state names '(the timers' _timer_state)' and '_timer_state' have the same RocksDB column family id; rename one")
  end)

  it("a job's process function keeps its timers where the options say", function()
    local function build(st)
      return st:key_by("k"):process {
        on_record = function(r, ctx) ctx.timers:register_event_time(r.t) end,
        on_timer = function(t, ctx, out) out:collect(ctx.key .. "@" .. t) end,
      }
    end
    for _, case in ipairs {
      { rocksdb = nil, stored = true, cache = 128 },
      { rocksdb = { timer_cache = 5 }, stored = true, cache = 5 },
      { rocksdb = { timer_service = "heap" }, stored = false },
    } do
      local h = testing.harness(build, { state_backend = "rocksdb", rocksdb = case.rocksdb })
      local svc = h.state_cfg.backends[1].attached
      assert.are.equal(case.stored, svc ~= nil)
      if svc then assert.are.equal(case.cache, svc.cache) end
      for i = 1, 30 do h:process({ k = "k" .. i % 7, t = i % 10 }, 1) end
      h:watermark(100)
      local got = {}
      for _, o in ipairs(h:output()) do
        if o.value then got[#got + 1] = o.value end
      end
      -- records i = 1..30: key i % 7, timer i % 10, all 30 distinct; by
      -- timestamp, ties in registration order: t = 0 from i = 10, 20, 30
      -- (keys 3, 6, 2), t = 1 from i = 1, 11, 21 (1, 4, 0), t = 2 from 2 ...
      assert.are.same({ "k3@0", "k6@0", "k2@0", "k1@1", "k4@1", "k0@1", "k2@2" }, { compat.unpack(got, 1, 7) })
      assert.are.equal(30, #got)
      h:dispose()
    end
    assert.has_error(function() testing.harness(build, { rocksdb = { timer_service = "x" } }) end,
      "bad argument #2 to 'harness' (rocksdb: {timer_service = 'rocksdb' | 'heap', timer_cache = n} expected)")
  end)
end)

describe("tide.timers_rocksdb snapshots #unit", function()
  -- timers of keys 1..200 at timestamps with many ties; ns in two kinds
  local function load(n, m, rnd, count)
    for _ = 1, count do
      local domain = rnd(5) == 0 and "processing" or "event"
      local ts, key = rnd(60) * 10, rnd(200)
      local ns = rnd(3) == 0 and "w" or false
      n.register(domain, ts, key, ns)
      if m then m.register(domain, ts, key, ns) end
      if rnd(25) == 0 then n.flush() end
    end
    n.flush()
  end
  local function fire_all(n, m)
    local expected = {}
    for _, wm in ipairs { 99, 300, 600 } do
      for _, domain in ipairs { "event", "processing" } do
        if m then
          for _, l in ipairs(m.fire(domain, wm)) do expected[#expected + 1] = l end
        end
        if domain == "event" then n.svc:advance_watermark(wm) else n.svc:advance_processing_time(wm) end
        n.flush()
      end
    end
    return expected
  end

  it("restores a checkpoint (the instance's files) on rocksdb and fires as an uninterrupted run", function()
    local rnd = lcg(11)
    local a, m = node("rocksdb", { cache = 4 }), model()
    load(a, m, rnd, 3000)
    a.svc:advance_watermark(150)
    a.svc:advance_processing_time(150)
    a.flush()
    local expected_before = {}
    for _, l in ipairs(m.fire("event", 150)) do expected_before[#expected_before + 1] = l end
    for _, l in ipairs(m.fire("processing", 150)) do expected_before[#expected_before + 1] = l end
    assert.are.same(expected_before, a.take())
    local snap = a.snapshot()
    assert.are.equal("rocksdb", snap.timers.store)
    assert.is_nil(snap.timers.event[1]) -- no list: the timers are in the files
    -- the original goes on; registrations after the snapshot must come
    -- after the restored ties in both
    local b = node("rocksdb", { cache = 4 })
    b.restore({ snap })
    for _, n in ipairs { a, b } do
      n.register("event", 300, 7, false)
      n.register("event", 300, 7, false)
      n.register("event", 300, 999, false)
      n.delete("event", 300, 3, false)
    end
    m.register("event", 300, 7, false)
    m.register("event", 300, 999, false)
    m.delete("event", 300, 3, false)
    local expected = fire_all(a, m)
    same_list(expected, a.take())
    fire_all(b)
    same_list(expected, b.take())
    assert.is_true(#expected > 1500)
  end)

  it("crosses services: heap snapshots restore on rocksdb, rocksdb checkpoints and savepoints on heap", function()
    for _, case in ipairs {
      { from = "heap", to = "rocksdb" },
      { from = "rocksdb", to = "heap" },
      { from = "rocksdb", to = "heap", savepoint = true },
      { from = "rocksdb", to = "rocksdb", savepoint = true },
      { from = "rocksdb", to = "rocksdb", to_service = "heap" }, -- timer_service changed to heap
      { from = "rocksdb", from_service = "heap", to = "rocksdb" }, -- and back
    } do
      local rnd = lcg(5)
      local a, m = node(case.from, { timer_service = case.from_service, cache = 3 }), model()
      load(a, m, rnd, 1500)
      local snap = a.snapshot(case.savepoint)
      local b = node(case.to, { timer_service = case.to_service, cache = 3 })
      b.restore({ snap })
      local expected = fire_all(b, m)
      same_list(expected, b.take(), case.from .. " -> " .. case.to)
      assert.is_true(#expected > 800)
    end
  end)

  it("drops stale stored timers when a checkpoint's timers were kept on the heap", function()
    -- rocksdb timers -> checkpoint -> timer_service heap (the stored
    -- timers stay in the instance) -> fire some -> checkpoint -> rocksdb
    -- timers again: only what the heap service had may fire
    local rnd = lcg(8)
    local a = node("rocksdb", { cache = 3 })
    load(a, nil, rnd, 500)
    local h = node("rocksdb", { timer_service = "heap" })
    h.restore({ a.snapshot() })
    h.svc:advance_watermark(300)
    h.take()
    h.register("event", 301, "new", false)
    local snap = h.snapshot()
    local r = node("rocksdb", { cache = 3 })
    r.restore({ snap })
    local twin = node("rocksdb", { timer_service = "heap" })
    twin.restore({ snap })
    r.svc:advance_watermark(compat.MAX_INT)
    twin.svc:advance_watermark(compat.MAX_INT)
    local got = r.take()
    same_list(twin.take(), got)
    for _, l in ipairs(got) do assert.is_true(tonumber(l:match(":(%-?%d+):")) > 300, l) end
    assert.is_true(#got > 100)
  end)
end)

describe("tide.timers_rocksdb at another parallelism #unit", function()
  local function owner(k, p) return math.floor(core.key_group(k, MAXP) * p / MAXP) end

  -- old subtasks of parallelism 2, each with the timers of its keys (many
  -- ties across subtasks); the oracle's list of (old subtask, order) per
  -- timer, by definition of the heap service's restore
  local function olds(kind)
    local rnd = lcg(31)
    local ns, seqs = {}, {}
    for i = 0, 1 do
      ns[i] = node(kind, { p = 2, i = i, cache = 3 })
      seqs[i] = model()
    end
    for _ = 1, 4000 do
      local k = rnd(300)
      if rnd(4) == 0 then k = "s" .. k end
      local i = owner(k, 2)
      local ts = rnd(30) * 100
      ns[i].register("event", ts, k, false)
      seqs[i].register("event", ts, k, false)
      if rnd(10) == 0 then ns[i].flush() end
    end
    -- some fired before the snapshot
    for i = 0, 1 do
      ns[i].svc:advance_watermark(500)
      seqs[i].fire("event", 500)
    end
    local snaps = { ns[0].snapshot(), ns[1].snapshot() }
    return snaps, seqs
  end

  -- what new subtask j of p fires: the old subtasks' live timers of its
  -- keys, by timestamp, then old subtask, then registration order
  local function oracle(seqs, p, j)
    local all = {}
    for i = 0, 1 do
      for _, t in pairs(seqs[i].live) do
        if owner(t.key, p) == j then all[#all + 1] = { t = t, i = i } end
      end
    end
    table.sort(all, function(a, b)
      if a.t.ts ~= b.t.ts then return a.t.ts < b.t.ts end
      if a.i ~= b.i then return a.i < b.i end
      return a.t.seq < b.t.seq
    end)
    local out = {}
    for x, e in ipairs(all) do out[x] = line("event", e.t.ts, e.t.key, e.t.ns) end
    return out
  end

  it("restores by key-group range, ties in the heap service's order (2 -> 1, 3; both services)", function()
    for _, from in ipairs { "rocksdb", "heap" } do
      local snaps, seqs = olds(from)
      for _, p in ipairs { 1, 3 } do
        for _, to in ipairs { "rocksdb", "heap" } do
          local total = 0
          for j = 0, p - 1 do
            local n = node(to, { p = p, i = j, cache = 3 })
            n.restore(snaps)
            -- a registration after the restore fires after the restored ties
            local k
            for x = 1, 1000 do
              if owner(x, p) == j then
                k = x
                break
              end
            end
            n.register("event", 2000, k, "late")
            n.svc:advance_watermark(compat.MAX_INT)
            local expected = oracle(seqs, p, j)
            local at
            for x, l in ipairs(expected) do
              if tonumber(l:match(":(%-?%d+):")) > 2000 then
                at = x
                break
              end
            end
            table.insert(expected, at or #expected + 1, line("event", 2000, k, "late"))
            same_list(expected, n.take(), from .. " -> " .. to .. " at p=" .. p .. ", subtask " .. j)
            total = total + #expected
          end
          assert.is_true(total > 2000)
        end
      end
    end
  end)
end)
