-- tide.compat, and the parts of the library that need no tide.core
-- (tide.util, tide.timers, tide.window and the loops it generates), on
-- Lua 5.4 and on LuaJIT (`busted --run=luajit tests/lua/compat_spec.lua`).
-- Expected values come from the definitions (floor division, 32-bit
-- unsigned bit operations, docs/LUAJIT.md), not from the code under test;
-- where the two VMs differ by design, both answers are written out.
local compat = require "tide.compat"

local JIT = compat.luajit
local math_type = compat.math_type

describe("tide.compat #unit #portable", function()
  it("knows which VM it runs on", function()
    assert.are.equal(rawget(_G, "jit") ~= nil, compat.luajit)
    -- tests/run.sh says which VM it meant to start
    local want = os.getenv("TIDE_EXPECT_VM")
    if want then assert.are.equal(want == "luajit", compat.luajit, "expected to run under " .. want) end
    assert.are.equal(JIT and "Lua 5.1" or "Lua 5.4", _VERSION)
  end)

  it("divides integers rounding down (floor division, as //)", function()
    local cases = {
      { 7, 2, 3 }, { -7, 2, -4 }, { 7, -2, -4 }, { -7, -2, 3 },
      { 6, 3, 2 }, { -6, 3, -2 }, { 0, 5, 0 }, { 1, 1000, 0 }, { -1, 1000, -1 },
      { 1700000000123, 1000, 1700000000 }, { 2 ^ 53 - 1, 2, 2 ^ 52 - 1 },
    }
    for _, c in ipairs(cases) do
      local q = compat.idiv(c[1], c[2])
      assert.are.equal(c[3], q, string.format("idiv(%.17g, %.17g)", c[1], c[2]))
      -- integers stay integers on Lua 5.4
      if not JIT and math_type(c[1]) == "integer" then assert.are.equal("integer", math_type(q)) end
    end
    assert.are.equal(3, compat.idiv(7.5, 2))
  end)

  it("does bit operations on 32 bits with results in [0, 2^32)", function()
    local band, bor, bxor, bnot = compat.band, compat.bor, compat.bxor, compat.bnot
    local lshift, rshift = compat.lshift, compat.rshift
    assert.are.equal(1, band(3, 5))
    assert.are.equal(7, bor(3, 5))
    assert.are.equal(6, bxor(3, 5))
    assert.are.equal(255, band(-1, 0xFF))
    assert.are.equal(0x80000001, bor(0x80000000, 1))
    assert.are.equal(0xFFFFFFFF, bnot(0))
    assert.are.equal(0xFFFFFFFA, bnot(5))
    assert.are.equal(0, band(2 ^ 32, 0xFFFFFFFF))  -- arguments modulo 2^32
    assert.are.equal(5, band(2 ^ 40 + 5, 0xFF))
    assert.are.equal(1024, lshift(1, 10))
    assert.are.equal(0x80000000, lshift(1, 31))
    assert.are.equal(1, lshift(1, 32))            -- shift counts modulo 32
    assert.are.equal(0, lshift(0x80000000, 1))
    assert.are.equal(0xF, rshift(-1, 28))         -- logical: no sign bits
    assert.are.equal(0x40000000, rshift(0x80000000, 1))
    assert.are.equal(2, rshift(8, 2))
  end)

  it("tells integers from floats", function()
    assert.are.equal("integer", math_type(3))
    assert.are.equal("integer", math_type(-3))
    assert.are.equal("integer", math_type(0))
    assert.are.equal("integer", math_type(9007199254740991))   -- 2^53 - 1
    assert.are.equal("float", math_type(3.5))
    assert.are.equal("float", math_type(2 ^ 53))   -- a float on 5.4; beyond 2^53 on LuaJIT
    assert.are.equal("float", math_type(-2 ^ 53))
    assert.are.equal("float", math_type(1 / 0))
    assert.are.equal("float", math_type(0 / 0))
    assert.is_nil(math_type("3"))
    assert.is_nil(math_type(nil))
    assert.is_nil(math_type({}))
    -- where the VMs differ: LuaJIT has no float 3.0 apart from 3
    assert.are.equal(JIT and "integer" or "float", math_type(3.0))
    assert.are.equal(JIT and "integer" or "float", math_type(2 ^ 53 - 1))
  end)

  it("converts to integers as math.tointeger", function()
    local toint = compat.tointeger
    assert.are.equal(3, toint(3))
    assert.are.equal(3, toint(3.0))
    assert.are.equal("integer", math_type(toint(3.0)))
    assert.are.equal(8, toint("8"))
    assert.is_nil(toint(3.5))
    assert.is_nil(toint("x"))
    assert.is_nil(toint(0 / 0))
    assert.is_nil(toint(1 / 0))
    assert.is_nil(toint({}))
    -- 5.4 has 64-bit integers; LuaJIT's stop at 2^53
    if JIT then assert.is_nil(toint(2 ^ 53)) else assert.are.equal(9007199254740992, toint(2 ^ 53)) end
  end)

  it("has +inf and -inf timestamps beyond every real one", function()
    local MAX, MIN = compat.MAX_INT, compat.MIN_INT
    if JIT then
      assert.are.equal(2 ^ 63, MAX)
      assert.are.equal(-2 ^ 63, MIN)
    else
      assert.are.equal(math.maxinteger, MAX)
      assert.are.equal(math.mininteger, MIN)
      assert.are.equal("integer", math_type(MAX))
    end
    for _, t in ipairs { 0, 1, -1, 1700000000000, 253402300799999, 2 ^ 53, -2 ^ 53, 9007199254740991 } do
      assert.is_true(MIN < t and t < MAX, tostring(t))
    end
    -- the arithmetic the runtime does with them stays on the right side
    assert.is_true(MIN + 1000 + 1 < 0)
    assert.is_true(MAX - 1 > 2 ^ 62)
    assert.is_true(compat.is_integer(MAX) and compat.is_integer(MIN) and compat.is_integer(5))
    assert.is_false(compat.is_integer(2.5) or compat.is_integer("5") or compat.is_integer(nil))
  end)

  it("packs and unpacks", function()
    local t = compat.pack(1, nil, 3)
    assert.are.equal(3, t.n)
    assert.are.same({ 1, nil, 3, n = 3 }, t)
    local a, b, c = compat.unpack({ "a", "b", "c" })
    assert.are.same({ "a", "b", "c" }, { a, b, c })
    assert.are.same({ "b", "c" }, { compat.unpack({ "a", "b", "c" }, 2, 3) })
  end)
end)

describe("tide.util on both VMs #unit #portable", function()
  local util = require "tide.util"

  it("formats numbers as docs/LUAJIT.md says", function()
    local fmt = util.format
    assert.are.equal("5", fmt(5))
    assert.are.equal("-42", fmt(-42))
    assert.are.equal("1700000000123", fmt(1700000000123))
    assert.are.equal("9007199254740991", fmt(9007199254740991))
    assert.are.equal("0.1", fmt(0.1))
    assert.are.equal("2.5", fmt(2.5))
    assert.are.equal("9007199254740992.0", fmt(2 ^ 53))
    assert.are.equal("1e+100", fmt(1e100))
    assert.are.equal("{1, 2.5, \"x\"}", fmt({ 1, 2.5, "x" }))
    assert.are.equal("{[1]=1, x=\"y\"}", fmt({ 1, x = "y" }))
    -- integral floats: "5.0" on Lua 5.4, "5" on LuaJIT (the same number)
    assert.are.equal(JIT and "5" or "5.0", fmt(5.0))
    assert.are.equal(JIT and "1000000000000000" or "1e+15", fmt(1e15))
    -- the extremes: integers on 5.4, doubles beyond 2^53 on LuaJIT
    assert.are.equal(JIT and "9.223372036854776e+18" or "9223372036854775807", fmt(compat.MAX_INT))
    assert.are.equal("5", util.csv_field(5, ","))
    assert.are.equal(JIT and "5" or "5.0", util.csv_field(5.0, ","))
  end)

  it("parses durations into integer milliseconds", function()
    assert.are.equal(1500, util.duration("1.5s"))
    assert.are.equal(86400000, util.duration("1d"))
    assert.are.equal(250, util.duration(250.0))
    assert.are.equal("integer", math_type(util.duration("10s")))
    assert.has_error(function() util.duration(2.5) end)
  end)
end)

describe("tide.timers on both VMs #unit #portable", function()
  local timers = require "tide.timers"

  it("fires timers in timestamp order, ties in registration order", function()
    local fired = {}
    local t = timers.new(function(domain, ts, key) fired[#fired + 1] = ts .. key end)
    local seq = {}
    for i = 1, 200 do
      local ts = (i * 7919) % 101
      seq[#seq + 1] = { ts, i }
      t:register("event", ts, "k" .. i, false)
    end
    table.sort(seq, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    t:advance_watermark(compat.MAX_INT)
    assert.are.equal(#seq, #fired)
    for i, e in ipairs(seq) do assert.are.equal(e[1] .. "k" .. e[2], fired[i]) end
    assert.are.equal(compat.MAX_INT, t.watermark)
  end)
end)

-- The window operator with a fake out and rt, as tests/lua/window_spec.lua
-- drives it; every path compiles its loops with load(), so this runs the
-- generated code on the VM at hand.
describe("tide.window's generated loops on both VMs #unit #portable", function()
  local window = require "tide.window"
  local util = require "tide.util"
  local W = window.windows

  -- node for stream:key_by(key):window(assigner):<fn_kind>(field)
  local function run(assigner, fn_kind, key, field, elements, wms, opts)
    opts = opts or {}
    local keyf = type(key) == "function" and key or function(v) return v[key] end
    local node = { assigner = assigner, fn_kind = fn_kind, field = field, keyed = true, fn = opts.fn,
      force_general = opts.general, inputs = { { key = keyf, key_field = type(key) ~= "function" and key or nil } } }
    local out = {}
    local op = window.operator(node, {
      push = function(b, ts, n) for i = 1, n do out[#out + 1] = util.format(b[i]) .. "@" .. ts[i] end end,
      watermark = function() end,
    }, { subtask = 0, parallelism = 1, now = function() return 0 end })
    local b, ts = {}, {}
    for i, e in ipairs(elements) do b[i], ts[i] = e[1], e[2] end
    op.push(b, ts, #b)
    for _, w in ipairs(wms) do op.watermark(w) end
    table.sort(out)
    return out, op.path
  end
  local function sorted(t)
    table.sort(t)
    return t
  end

  local E = {
    { { k = "a", n = 1 }, 1 }, { { k = "a", n = 2 }, 5 }, { { k = "b", n = 3 }, 7 },
    { { k = "a", n = 4 }, 12 }, { { k = "b", n = 10 }, 1700000000001 },
  }

  it("tumbling sum (aligned path, one slice per window)", function()
    local out, path = run(W.tumbling(10), "sum", "k", "n", E, { 9, compat.MAX_INT })
    assert.are.equal("aligned", path)
    assert.are.same(sorted { "{k=\"a\", n=3}@9", "{k=\"b\", n=3}@9", "{k=\"a\", n=4}@19",
      "{k=\"b\", n=10}@1700000000009" }, out)
  end)

  it("sliding count (aligned path, several slices per window)", function()
    local out, path = run(W.sliding(10, 5), "count", "k", nil, E, { compat.MAX_INT })
    assert.are.equal("aligned", path)
    -- a@1 in [-5, 5) and [0, 10); a@5 in [0, 10) and [5, 15); a@12 in
    -- [5, 15) and [10, 20); b likewise
    assert.are.same(sorted {
      "{count=1, key=\"a\"}@4", "{count=2, key=\"a\"}@9", "{count=2, key=\"a\"}@14", "{count=1, key=\"a\"}@19",
      "{count=1, key=\"b\"}@9", "{count=1, key=\"b\"}@14", "{count=1, key=\"b\"}@1700000000004",
      "{count=1, key=\"b\"}@1700000000009" }, out)
  end)

  it("integer field indices: key_by(1), sum(2)", function()
    local recs = { { { "a", 1 }, 1 }, { { "a", 2 }, 3 }, { { "b", 5 }, 4 } }
    local out = run(W.tumbling(10), "sum", 1, 2, recs, { compat.MAX_INT })
    assert.are.same(sorted { "{\"a\", 3}@9", "{\"b\", 5}@9" }, out)
  end)

  it("session count (session path)", function()
    local recs = { { { k = "a" }, 1 }, { { k = "a" }, 4 }, { { k = "a" }, 20 }, { { k = "b" }, 100 },
      { { k = "a" }, 1700000000000 }, { { k = "a" }, 1700000000003 } }
    local out, path = run(W.session(5), "count", "k", nil, recs, { 50, compat.MAX_INT })
    assert.are.equal("session", path)
    -- a: [1, 9) merged from 1 and 4, [20, 25), [T, T + 8); b: [100, 105)
    assert.are.same(sorted { "{count=2, key=\"a\"}@8", "{count=1, key=\"a\"}@24", "{count=1, key=\"b\"}@104",
      "{count=2, key=\"a\"}@1700000000007" }, out)
  end)

  it("the general operator agrees, with 13-digit timestamps in window ids", function()
    for _, a in ipairs { W.tumbling(10), W.sliding(10, 5) } do
      local fast = run(a, "count", "k", nil, E, { 9, compat.MAX_INT })
      local general, path = run(a, "count", "k", nil, E, { 9, compat.MAX_INT }, { general = true })
      assert.are.equal("general", path)
      assert.are.same(fast, general)
    end
    local sess = { { { k = "a" }, 1700000000000 }, { { k = "a" }, 1700000000003 }, { { k = "a" }, 1 } }
    local general = run(W.session(5), "count", "k", nil, sess, { compat.MAX_INT }, { general = true })
    assert.are.same(sorted { "{count=1, key=\"a\"}@5", "{count=2, key=\"a\"}@1700000000007" }, general)
  end)
end)
