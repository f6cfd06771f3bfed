-- tide.state: state schema evolution (issue 11). A state declared with
-- {version = n, migrate = f} whose restored values are of an older version
-- has them migrated at its declaration, once, as Flink migrates restored
-- state when a new serializer is registered for it: per value of value,
-- reducing and aggregating state, per element of list state, per value of
-- map state. Every case runs on both backends and across them (heap
-- snapshots, RocksDB's native incremental snapshots and its canonical
-- savepoint form, each restored on heap and on rocksdb). Expected values
-- are worked out by hand from the records below.
local state = require "tide.state"
local core = require "tide.core"

local TMP = os.getenv("TMPDIR") or "/tmp"
local SHARED = TMP .. "/tide-schema-spec-shared"
local OWNER = "operator 'u' (process, defined at job.lua:1)"
local runs, snaps = 0, 0
local open = {}

-- a backend of kind ("heap" | "rocksdb") for subtask i of p; every one
-- can restore the RocksDB snapshots of this spec (one shared directory)
local function backend(kind, p, i, clock)
  runs = runs + 1
  assert(core.mkdir_p(SHARED))
  state.configure { backend = kind, shared_dir = SHARED, restore_shared = SHARED,
    dir = string.format("%s/tide-schema-spec-%d-%d", TMP, runs, core.monotonic_us()) }
  local b = state.backend(128, p or 1, i or 0, clock or function() return 0 end)
  state.configure(nil)
  open[#open + 1] = b
  return b
end

-- backend b's snapshot, encoded and decoded as a checkpoint's is: native
-- (a RocksDB backend's incremental checkpoint) or canonical (the heap
-- format: a heap backend's snapshots, every savepoint)
local function snapshot(b, native)
  local snap
  if native and b.incremental then
    snaps = snaps + 1
    b:prepare_snapshot(snaps)
    snap = b:snapshot()
    assert.are.equal("rocksdb", snap.backend)
  else
    snap = b:canonical_snapshot()
  end
  return core.decode(core.encode(snap))
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function contains(s, part)
  assert.truthy(s:find(part, 1, true), "\n" .. s .. "\n does not contain\n" .. part)
end

-- the error of declaring st:<kind>(...) from a Lua function, as a job
-- does; it must name the declaring line (this file's, below) as every
-- declaration error does
local declaring_line
local function declare_error(st, kind, ...)
  local err = error_of(function(...)
    declaring_line = debug.getinfo(1, "l").currentline + 1
    local h = st[kind](st, ...)
    return h
  end, ...)
  contains(err, "state_schema_spec.lua:" .. declaring_line .. ": ")
  return err
end

local SUM = { create = function() return 0 end, add = function(a, x) return a + x end,
  result = function(a) return a end }

-- version 1 of a process function's logic: per record {key, x}, a count
-- (value), the xs (list), "x<x>" -> x (map), the sum of the xs (reducing)
-- and a sum accumulator (aggregating)
local RECORDS = { { "a", 1 }, { "b", 10 }, { "a", 2 }, { { 1, 2 }, 5 }, { "a", 3 } }
local function run_v1(b, records)
  local cur = {}
  local st = state.new(cur, b, OWNER)
  local n, l, m = st:value("n"), st:list("l"), st:map("m")
  local r, g = st:reducing("r", function(a, x) return a + x end), st:aggregating("g", SUM)
  for _, rec in ipairs(records or RECORDS) do
    local x = rec[2]
    cur.key = b:key(rec[1])
    n:update((n:value() or 0) + 1)
    l:add(x)
    m:put("x" .. x, x)
    r:add(x)
    g:add(x)
  end
  b:flush()
end

-- version 2's declarations: every value in a new shape; calls[name] counts
-- migrate's calls, and each records the old version it was given
local AVG = { create = function() return { sum = 0, n = 0 } end,
  add = function(a, x) return { sum = a.sum + x, n = a.n + 1 } end,
  result = function(a) return a.sum .. "/" .. a.n end }
local function declare_v2(b, calls)
  local cur = {}
  local st = state.new(cur, b, OWNER)
  local function counted(name, f)
    return function(v, old)
      calls[name] = (calls[name] or 0) + 1
      calls.olds = calls.olds or {}
      calls.olds[old] = true
      return f(v, old)
    end
  end
  return cur, {
    n = st:value("n", { version = 2, migrate = counted("n", function(v, old) return { count = v, from = old } end) }),
    l = st:list("l", { version = 2, migrate = counted("l", function(v) return { v = v } end) }),
    m = st:map("m", { version = 3, migrate = counted("m", function(v, old) return v .. "@" .. old end) }),
    r = st:reducing("r", function(a, x) return { sum = a.sum + x.sum } end,
      { version = 2, migrate = counted("r", function(v) return { sum = v } end) }),
    g = st:aggregating("g", AVG, { version = 2, migrate = counted("g", function(v) return { sum = v, n = 0 } end) }),
  }
end

-- the paths of restored state: a source (heap snapshots, RocksDB's native
-- ones, RocksDB's canonical form) and the backend restoring it
local HEAP, NATIVE, CANONICAL = { "heap", false }, { "rocksdb", true }, { "rocksdb", false }
local ALL = { { HEAP, "heap" }, { HEAP, "rocksdb" }, { NATIVE, "rocksdb" }, { NATIVE, "heap" },
  { CANONICAL, "heap" }, { CANONICAL, "rocksdb" } }
-- fewer where the path matters less: each backend restoring each one's
local SOME = { ALL[1], ALL[2], ALL[3], ALL[4] }

-- fn(src, to, what) for each path of list, what naming it
local function each(list, fn)
  for _, p in ipairs(list) do
    local src, to = p[1], p[2]
    fn(src, to, string.format("%s%s -> %s", src[1], src == NATIVE and " (native)" or
      (src == CANONICAL and " (canonical)" or ""), to))
  end
end

-- a backend of kind `to` restored from version 1's state (run_v1), its
-- snapshot taken as src says
local function restored_v1(src, to, clock)
  local old = backend(src[1])
  run_v1(old)
  local b = backend(to, 1, 0, clock)
  b:restore({ snapshot(old, src[2]) })
  return b
end

describe("tide.state schema evolution #unit", function()
  after_each(function()
    for _, b in ipairs(open) do b:close() end
    open = {}
  end)

  it("migrates every restored value of each kind at declaration, once, on both backends and across them", function()
    each(ALL, function(src, to, what)
      local b = restored_v1(src, to)
      local calls = {}
      local cur, h = declare_v2(b, calls)
      -- at declaration, before any read: one call per value, per list
      -- element, per map value
      assert.are.same({ n = 3, l = 5, m = 5, r = 3, g = 3, olds = { [1] = true } }, calls, what)
      local function at(k) cur.key = b:key(k) end
      at("a")
      assert.are.same({ count = 3, from = 1 }, h.n:value(), what)
      assert.are.same({ { v = 1 }, { v = 2 }, { v = 3 } }, h.l:get(), what)
      assert.are.same({ "1@1", "2@1", "3@1" }, { h.m:get("x1"), h.m:get("x2"), h.m:get("x3") }, what)
      assert.are.same({ sum = 6 }, h.r:get(), what)
      assert.are.equal("6/0", h.g:get(), what)
      at("b")
      assert.are.same({ count = 1, from = 1 }, h.n:value(), what)
      assert.are.same({ { v = 10 } }, h.l:get(), what)
      assert.are.equal("10@1", h.m:get("x10"), what)
      at({ 1, 2 })
      assert.are.same({ count = 1, from = 1 }, h.n:value(), what)
      assert.are.same({ sum = 5 }, h.r:get(), what)
      -- the new logic goes on with the new shapes
      at("a")
      h.l:add({ v = 4 })
      h.r:add({ sum = 4 })
      h.g:add(4)
      assert.are.same({ { v = 1 }, { v = 2 }, { v = 3 }, { v = 4 } }, h.l:get(), what)
      assert.are.same({ sum = 10 }, h.r:get(), what)
      assert.are.equal("10/1", h.g:get(), what)
      b:flush()
      -- declared again (another options table, as a declaration in
      -- on_record makes): nothing more is migrated
      declare_v2(b, calls)
      assert.are.same({ n = 3, l = 5, m = 5, r = 3, g = 3, olds = { [1] = true } }, calls, what)
      -- snapshots (a RocksDB backend's native and canonical ones) record
      -- the versions: restored with the same declarations, nothing is
      -- migrated again
      for _, native in ipairs(to == "rocksdb" and { true, false } or { false }) do
        local snap = snapshot(b, native)
        if snap.backend ~= "rocksdb" then
          assert.are.equal(2, snap.states.n.version, what)
          assert.are.equal(3, snap.states.m.version, what)
        end
        local b2 = backend(to)
        b2:restore({ snap })
        local calls2 = {}
        local cur2, h2 = declare_v2(b2, calls2)
        assert.are.same({}, calls2, what)
        cur2.key = b2:key("a")
        assert.are.same({ count = 3, from = 1 }, h2.n:value(), what)
        assert.are.same({ { v = 1 }, { v = 2 }, { v = 3 }, { v = 4 } }, h2.l:get(), what)
        assert.are.equal("3@1", h2.m:get("x3"), what)
        assert.are.equal("10/1", h2.g:get(), what)
      end
    end)
  end)

  it("records no version for version 1 (absent = 1), and a declared version in snapshots of new state", function()
    for _, to in ipairs { "heap", "rocksdb" } do
      local b = backend(to)
      run_v1(b)
      local snap = snapshot(b, false)
      assert.is_nil(snap.states.n.version)
      assert.is_nil(snap.states.n.group_versions)
      local b2 = backend(to)
      local cur = {}
      local st = state.new(cur, b2, OWNER)
      cur.key = "a"
      st:value("n", { version = 4, migrate = function() error("not called") end }):update({ count = 1 })
      b2:flush()
      assert.are.equal(4, snapshot(b2, false).states.n.version, to)
    end
  end)

  it("migrates TTL state's values and keeps their timestamps", function()
    each(ALL, function(src, to, what)
      local now = 1000
      local clock = function() return now end
      local ttl = { time = 100 }
      local old = backend(src[1], 1, 0, clock)
      local cur = {}
      local st = state.new(cur, old, OWNER)
      local v, l, m = st:value("v", { ttl = ttl }), st:list("l", { ttl = ttl }), st:map("m", { ttl = ttl })
      cur.key = "a"
      v:update(1)
      l:add(1)
      m:put("x", 1)
      now = 1050
      l:add(2)
      m:put("y", 2)
      old:flush()
      local b = backend(to, 1, 0, clock)
      b:restore({ snapshot(old, src[2]) })
      cur = {}
      st = state.new(cur, b, OWNER)
      local function twice(x) return x * 2 end
      v = st:value("v", { ttl = ttl, version = 2, migrate = twice })
      l = st:list("l", { ttl = ttl, version = 2, migrate = twice })
      m = st:map("m", { ttl = ttl, version = 2, migrate = twice })
      cur.key = "a"
      now = 1099 -- what was written at 1000 expires at 1100
      assert.are.equal(2, v:value(), what)
      assert.are.same({ 2, 4 }, l:get(), what)
      assert.are.same({ 2, 4 }, { m:get("x"), m:get("y") }, what)
      now = 1100
      assert.is_nil(v:value(), what)
      assert.are.same({ 4 }, l:get(), what)
      assert.are.same({ false, 4 }, { m:contains("x"), m:get("y") }, what)
    end)
  end)

  it("migrates only the key groups restored in an older version after a rescaling", function()
    -- version 1 at parallelism 2; then version 2 at parallelism 2, whose
    -- subtask 1 never declares the state (it keeps version 1 values);
    -- then parallelism 1: only subtask 1's old keys are migrated
    each(SOME, function(src, to, what)
      local owner = {}
      local s1 = {}
      for i = 0, 1 do
        local b = backend(src[1], 2, i)
        local recs = {}
        for k = 1, 40 do
          if b:owns(k) then
            recs[#recs + 1] = { k, k }
            owner[k] = i
          end
        end
        run_v1(b, recs)
        s1[i + 1] = snapshot(b, src[2])
      end
      local s2 = {}
      local migrated = 0
      for i = 0, 1 do
        local b = backend(src[1], 2, i)
        b:restore({ s1[i + 1] })
        if i == 0 then
          state.new({}, b, OWNER):value("n", { version = 2, migrate = function(v)
            migrated = migrated + 1
            return { count = v }
          end })
        end
        s2[i + 1] = snapshot(b, src[2])
      end
      local in0 = 0
      for k = 1, 40 do
        if owner[k] == 0 then in0 = in0 + 1 end
      end
      assert.are.equal(in0, migrated, what)
      assert.truthy(in0 > 0 and in0 < 40, what)
      -- once restored at parallelism 1 and snapshotted without a
      -- declaration (the versions per key group are kept), then declared
      local mid = backend(to)
      mid:restore(s2)
      local s3 = snapshot(mid, false)
      assert.are.equal(2, s3.states.n.version, what)
      assert.truthy(s3.states.n.group_versions, what)
      for _, snaps3 in ipairs { s2, { s3 } } do
        local b = backend(to)
        b:restore(snaps3)
        local seen = {}
        local cur = {}
        local n = state.new(cur, b, OWNER):value("n", { version = 2, migrate = function(v, old)
          seen[#seen + 1] = v
          assert.are.equal(1, old)
          return { count = v }
        end })
        assert.are.equal(40 - in0, #seen, what)
        for k = 1, 40 do
          cur.key = k
          assert.are.same({ count = 1 }, n:value(), what .. " key " .. k)
        end
      end
    end)
  end)

  it("refuses a version going down and an older version without migrate, naming state, operator, versions and caller", function()
    local names = { value = "n", list = "l", map = "m", reducing = "r", aggregating = "g" }
    each(SOME, function(src, to, what)
      local mid = restored_v1(src, src[1])
      declare_v2(mid, {})
      local v2snap = snapshot(mid, src[2])
      local cases = {
        { true, "value", {}, "state 'n' of " .. OWNER .. " was restored with version 2, newer than version 1 " ..
          "it is declared with: a state's version cannot go down" },
        { true, "map", { version = 2 }, "state 'm' of " .. OWNER .. " was restored with version 3, newer than " ..
          "version 2 it is declared with" },
        { false, "list", { version = 2 }, "state 'l' of " .. OWNER .. " was restored with version 1 and is " ..
          "declared with version 2 without a migrate function (migrate = function(old_value, old_version) " ..
          "return new_value end)" },
        { true, "reducing", { version = 3 }, "state 'r' of " .. OWNER .. " was restored with version 2 and is " ..
          "declared with version 3 without a migrate function" },
        { false, "aggregating", { version = 2 }, "state 'g' of " .. OWNER .. " was restored with version 1" },
      }
      for _, c in ipairs(cases) do
        local b
        if c[1] then
          b = backend(to)
          b:restore({ v2snap })
        else
          b = restored_v1(src, to)
        end
        local st = state.new({}, b, OWNER)
        local kind, name = c[2], names[c[2]]
        local err
        if kind == "reducing" then
          err = declare_error(st, kind, name, function(a) return a end, c[3])
        elseif kind == "aggregating" then
          err = declare_error(st, kind, name, SUM, c[3])
        else
          err = declare_error(st, kind, name, c[3])
        end
        contains(err, c[4])
      end
    end)
  end)

  it("fails naming state, operator and key when migrate raises or returns nil, and changes nothing", function()
    each(SOME, function(src, to, what)
      local b = restored_v1(src, to)
      local cur = {}
      local st = state.new(cur, b, OWNER)
      local err = declare_error(st, "value", "n", { version = 2, migrate = function(v)
        if v == 1 then error("no count of 1") end
        return { count = v, bad = true }
      end })
      -- "b" and {1, 2} have a count of 1: whichever comes first is named
      local ok = err:find("migrating state 'n' of " .. OWNER .. " from version 1 to 2 failed at key \"b\": ", 1, true)
        or err:find("migrating state 'n' of " .. OWNER .. " from version 1 to 2 failed at key {1, 2}: ", 1, true)
      assert.truthy(ok, what .. ": " .. err)
      contains(err, "no count of 1")
      err = declare_error(st, "list", "l", { version = 2, migrate = function(v) if v ~= 3 then return v * 100 end end })
      contains(err, "migrating state 'l' of " .. OWNER .. " from version 1 to 2 failed at key \"a\": migrate returned nil")
      -- nothing was changed (on RocksDB the failed migration's writes
      -- are dropped, not committed with the next write-back): a good
      -- migrate sees every version 1 value
      cur.key = "z"
      st:value("other"):update(1)
      b:flush()
      local n = st:value("n", { version = 2, migrate = function(v) return { count = v } end })
      local l = st:list("l", { version = 2, migrate = function(v) return -v end })
      cur.key = "a"
      assert.are.same({ count = 3 }, n:value(), what)
      assert.are.same({ -1, -2, -3 }, l:get(), what)
      cur.key = "b"
      assert.are.same({ count = 1 }, n:value(), what)
      assert.are.same({ -10 }, l:get(), what)
      cur.key = b:key({ 1, 2 })
      assert.are.same({ count = 1 }, n:value(), what)
      assert.are.same({ -5 }, l:get(), what)
    end)
  end)

  it("refuses bad versions and migrate values", function()
    local st = state.new({}, backend("heap"), OWNER)
    local f = function(v) return v end
    for _, c in ipairs {
      { { version = 0 }, "bad argument to 'value' (version: a positive integer expected, got 0)" },
      { { version = -2 }, "version: a positive integer expected, got -2" },
      { { version = 1.5 }, "version: a positive integer expected, got 1.5" },
      { { version = "2" }, "version: a positive integer expected, got string" },
      { { version = 2 ^ 40 }, "version: a positive integer expected" },
      { { version = 2, migrate = "f" }, "migrate: a function(old_value, old_version) expected, got string" },
      { { migrate = f }, "migrate: needs a version above 1" },
      { { version = 1, migrate = f }, "migrate: needs a version above 1" },
      { { versoin = 2 }, "unknown option 'versoin'" },
    } do
      contains(declare_error(st, "value", "x", c[1]), c[2])
    end
    contains(declare_error(st, "list", "x", { version = 0 }), "bad argument to 'list' (version:")
    contains(declare_error(st, "map", "x", { version = 2, migrate = 1 }), "bad argument to 'map' (migrate:")
    contains(declare_error(st, "reducing", "x", f, { version = true }), "bad argument to 'reducing' (version:")
    contains(declare_error(st, "aggregating", "x", SUM, { migrate = f }), "bad argument to 'aggregating' (migrate:")
  end)
end)
