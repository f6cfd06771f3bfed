-- tide.compat on Lua 5.4 and on LuaJIT (`busted --lua=luajit
-- tests/lua/compat_spec.lua`). Expected
-- values come from the definitions (floor division, 32-bit unsigned bit
-- operations, docs/LUAJIT.md), not from the code under test; where the
-- two VMs differ by design, both answers are written out.
local compat = require "tide.compat"

-- no tide.core for LuaJIT yet: never let LuaJIT load the Lua 5.4 module
if compat.luajit then
  package.preload["tide.core"] = function() error("tide.core: no LuaJIT host yet", 0) end
end

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
