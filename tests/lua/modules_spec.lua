-- C modules in the test harness (tide.testing): module operators run with
-- Lua operators around them, records crossing the C/Lua boundary both
-- ways; a keyed process's state and event-time timers, across a snapshot
-- and restore; and the Lua API's argument errors. The modules are built by
-- make modules into $BUILD/modules (tests/run.sh exports BUILD).
local tide = require "tide"
local testing = require "tide.testing"

local MODS = (os.getenv("BUILD") or "build") .. "/modules/"

local function values(h)
  local out = {}
  for _, e in ipairs(h:output()) do
    if e.watermark == nil then out[#out + 1] = e.value end
  end
  return out
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("C modules #unit", function()
  local kit = tide.load_module(MODS .. "streamkit.so")

  it("loads a module: its name, version, ABI and operators", function()
    assert.are.equal("streamkit", kit.name)
    assert.are.equal("1.0", kit.version)
    assert.are.equal("1.1", kit.abi)
    assert.are.equal("map", kit.csv.kind)
    assert.are.equal("process", kit.window_count.kind)
    assert.are.equal(4096, kit.words.max_fanout)
    assert.are.equal(kit, tide.load_module(MODS .. "streamkit.so"))
  end)

  it("runs map, filter and flat_map between Lua operators", function()
    local h = testing.harness(function(s)
      return s:transform(kit.affine, { mul = 3, add = 1 })
        :map(function(x) return x * 2 end)
        :transform(kit.modulo, { divisor = 4 })
        :map(function(x) return "n" .. x end)
        :transform(kit.words)
    end)
    for i = 1, 6 do h:process(i, 100 + i) end
    assert.are.same({ "n8", "n20", "n32" }, values(h))
    local out = h:output()
    assert.are.equal(101, out[1].ts) -- timestamps go through C
  end)

  it("runs a keyed process with state and event-time timers, across a snapshot", function()
    local function build(s)
      return s:key_by("author"):transform(kit.window_count, { size = 10, sum = { "n" } }):uid("count")
    end
    local h = testing.harness(build)
    h:process({ author = "a", n = 1 }, 1)
    h:process({ author = "b", n = 2 }, 2)
    h:process({ author = "a", n = 3 }, 12)
    local snap = h:snapshot()
    h:watermark(9)
    assert.are.same({ { key = "a", window_start = 0, count = 1, n = 1 },
      { key = "b", window_start = 0, count = 1, n = 2 } }, values(h))
    -- restored: the same windows and timers as at the snapshot
    local r = testing.harness(build, { restore = snap })
    r:process({ author = "a", n = 4 }, 15)
    r:finish()
    local got = values(r)
    table.sort(got, function(x, y) return x.window_start .. x.key < y.window_start .. y.key end)
    assert.are.same({ { key = "a", window_start = 0, count = 1, n = 1 },
      { key = "b", window_start = 0, count = 1, n = 2 },
      { key = "a", window_start = 10, count = 2, n = 7 } }, got)
  end)

  it("rescales a keyed process's state and timers by key-group range", function()
    local core = require "tide.core"
    local function build(s)
      return s:key_by("author"):transform(kit.window_count, { size = 10, sum = { "n" } }):uid("count")
    end
    -- records of 12 authors in windows [0, 10) and [10, 20), each to the
    -- subtask of p that holds its key group (as the exchange routes them)
    local function owner(author, p) return math.floor(core.key_group(author, 128) * p / 128) end
    local records = {}
    for i = 1, 48 do records[i] = { author = "a" .. (i % 12), n = i, ts = i < 30 and 5 or 15 } end
    local function sorted(list)
      table.sort(list, function(x, y) return string.format("%s/%d", x.key, x.window_start) <
        string.format("%s/%d", y.key, y.window_start) end)
      return list
    end
    -- unbroken at parallelism 1
    local one = testing.harness(build)
    for _, r in ipairs(records) do one:process(r, r.ts) end
    one:finish()
    local want = sorted(values(one))
    assert.are.equal(24, #want)
    -- at parallelism 2 the first 30 records (window [0, 10) of every
    -- author and its timer, a part of [10, 20)), then snapshots
    local snaps = {}
    for s = 0, 1 do
      local h = testing.harness(build, { subtask = s, parallelism = 2 })
      for i = 1, 30 do
        local r = records[i]
        if owner(r.author, 2) == s then h:process(r, r.ts) end
      end
      assert.are.same({}, values(h)) -- nothing fired yet
      snaps[s + 1] = h:snapshot()
    end
    -- restored at 1, 3 and 4: every window exactly once
    for _, p in ipairs({ 1, 3, 4 }) do
      local got = {}
      for s = 0, p - 1 do
        local h = testing.harness(build, { subtask = s, parallelism = p, restore = snaps })
        for i = 31, #records do
          local r = records[i]
          if owner(r.author, p) == s then h:process(r, r.ts) end
        end
        h:finish()
        for _, v in ipairs(values(h)) do got[#got + 1] = v end
      end
      assert.are.same(want, sorted(got), "restored at parallelism " .. p)
    end
    -- a map without state restores at any parallelism
    local function map(s) return s:transform(kit.affine, { mul = 2, add = 0 }):uid("affine") end
    local m = testing.harness(map)
    m:process(1)
    local r = testing.harness(map, { subtask = 2, parallelism = 3, restore = { m:snapshot() } })
    r:process(5)
    assert.are.same({ 10 }, values(r))
  end)

  it("takes a keyed process's keys from a Lua key function", function()
    local h = testing.harness(function(s)
      return s:key_by(function(v) return v.who end):transform(kit.window_count, {})
    end)
    h:process({ who = "x" })
    h:process({ who = "x" })
    h:finish()
    assert.are.same({ { key = "x", count = 2 } }, values(h))
  end)

  it("reports a module's error with the operator's uid and the module's message", function()
    local tm = tide.load_module(MODS .. "testmod.so")
    local h = testing.harness(function(s) return s:transform(tm.fail_process, { after = 2 }):uid("picky") end)
    h:process(1)
    local err = error_of(h.process, h, 2)
    assert.is_truthy(err:find("operator 'picky' (testmod.fail_process", 1, true))
    assert.is_truthy(err:find("module 'testmod' operator 'fail_process' (uid 'picky'): record 2 is not to my liking",
      1, true))
  end)

  it("refuses what is not a module, and operators of the wrong kind", function()
    assert.is_truthy(error_of(tide.load_module, MODS .. "nothing.so"):find("cannot load module", 1, true))
    assert.is_truthy(error_of(tide.load_module, MODS .. "notmod.so"):find("is not a Tide module", 1, true))
    assert.is_truthy(error_of(tide.load_module, MODS .. "badabi.so"):find("built for Tide ABI 99.0", 1, true))
    assert.is_truthy(error_of(tide.load_module, 42):find("bad argument #1 to 'load_module'", 1, true))
    local env = tide.env()
    local s = env:from_list({ 1 })
    assert.is_truthy(error_of(s.transform, s, kit.seq):find("is a source operator", 1, true))
    assert.is_truthy(error_of(s.transform, s, kit.window_count):find("needs a keyed stream", 1, true))
    assert.is_truthy(error_of(s.transform, s, "csv"):find("module operator expected, got string", 1, true))
    assert.is_truthy(error_of(env.add_source, env, kit.csv):find("add_source takes source", 1, true))
    assert.is_truthy(error_of(s.add_sink, s, kit.csv):find("add_sink takes sink", 1, true))
    assert.is_truthy(error_of(env.add_source, env, kit.seq, { rate_limit = -1 }):find("rate_limit", 1, true))
  end)
end)
