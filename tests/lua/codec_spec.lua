-- tide.core values: the MessagePack record codec and key groups, through
-- the C module (build/lua/tide/core.so). Expected bytes come from the
-- MessagePack specification; key group arithmetic from Flink's
-- KeyGroupRangeAssignment. On LuaJIT every number is a double: integral
-- values below 2^53 are integers and the +-2^63 sentinels are
-- INT64_MAX/INT64_MIN (docs/LUAJIT.md); where the VMs differ by design,
-- each VM's documented answer is asserted.
local core = require "tide.core"
local compat = require "tide.compat"
local JIT, math_type, idiv = compat.luajit, compat.math_type, compat.idiv
local MAX_INT, MIN_INT = compat.MAX_INT, compat.MIN_INT
local encode, decode = core.encode, core.decode

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function roundtrip(v) return decode(encode(v)) end

describe("tide.core.encode/decode #unit", function()
  it("writes scalars as the MessagePack specification says", function()
    local cases = {
      { nil, "c0" }, { false, "c2" }, { true, "c3" },
      { 0, "00" }, { 1, "01" }, { 127, "7f" }, { -1, "ff" }, { -32, "e0" },
      { "a", "a161" }, { "", "a0" },
      -- IEEE 754 binary64, big-endian: 1.5 = 0x3ff8 0000 0000 0000
      { 1.5, "cb3ff8000000000000" }, { -0.25, "cbbfd0000000000000" },
      -- 2.0 is a float on Lua 5.4 (0x4000...), the integer 2 on LuaJIT
      { 2.0, JIT and "02" or "cb4000000000000000" },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], hex(encode(c[1])), tostring(c[1]))
    end
  end)

  it("writes integers in the smallest MessagePack form that holds them", function()
    -- positive values may use uint or int forms; both are valid MessagePack,
    -- so only the value and the length are checked for those
    local lengths = {
      [128] = 2, [255] = 2, [256] = 3, [65535] = 3, [65536] = 5,
      [4294967295] = 5, [4294967296] = 9, [-33] = 2, [-128] = 2, [-129] = 3,
      [-32768] = 3, [-32769] = 5, [-2147483648] = 5, [-2147483649] = 9,
    }
    for v, len in pairs(lengths) do
      assert.are.equal(len, #encode(v), tostring(v))
    end
    -- the -inf sentinel is INT64_MIN on both VMs (-2^63 clamped on LuaJIT),
    -- and +inf INT64_MAX
    assert.are.equal("d38000000000000000", hex(encode(MIN_INT)))
    assert.are.equal(9, #encode(MAX_INT))
    assert.are.equal(MAX_INT, decode("\xd3\x7f\xff\xff\xff\xff\xff\xff\xff"))
    assert.are.equal(MIN_INT, decode("\xd3\x80\0\0\0\0\0\0\0"))
  end)

  it("writes arrays and maps as MessagePack arrays and maps", function()
    assert.are.equal("92" .. "01" .. "02", hex(encode { 1, 2 }))
    assert.are.equal("90", hex(encode {}))
    assert.are.equal("81" .. "a161" .. "01", hex(encode { a = 1 }))
  end)

  it("keeps integers integers and floats floats", function()
    local ints = { 0, 1, -1, 127, 128, 255, 256, 65535, 65536, -33, -129, -32769,
      4294967295, 4294967296, 9007199254740991, -9007199254740991 }
    if not JIT then -- 64-bit integers beyond 2^53: Lua 5.4 only
      local big = compat.tointeger(2 ^ 53)
      for _, v in ipairs { big, big + 1, MAX_INT, MIN_INT } do ints[#ints + 1] = v end
    end
    for _, v in ipairs(ints) do
      local got = roundtrip(v)
      assert.are.equal(v, got)
      assert.are.equal("integer", math_type(got), tostring(v))
    end
    -- the sentinels come back as themselves on both VMs
    for _, v in ipairs { MAX_INT, MIN_INT } do
      assert.are.equal(v, roundtrip(v))
      assert.is_true(compat.is_integer(roundtrip(v)))
    end
    local floats = { 1.5, 1e300, 5e-324, math.huge, -math.huge, 0.1, -2.5, 2 ^ 53 }
    -- integral floats: floats on Lua 5.4; the integers they equal on LuaJIT
    local integral = { 0.0, -0.0, 2.0, -3.0, 2.0 ^ 52 }
    for _, v in ipairs(integral) do
      if JIT then ints[#ints + 1] = v else floats[#floats + 1] = v end
    end
    for _, v in ipairs(floats) do
      local got = roundtrip(v)
      assert.are.equal(v, got)
      assert.are.equal("float", math_type(got), tostring(v))
    end
    for _, v in ipairs(integral) do
      assert.are.equal(JIT and "integer" or "float", math_type(roundtrip(v)), tostring(v))
    end
    -- the sign of zero survives on Lua 5.4; on LuaJIT -0.0 is the integer 0
    assert.are.equal(JIT and 1 / 0 or 1 / -0.0, 1 / roundtrip(-0.0))
    local nan = roundtrip(0 / 0)
    assert.are_not.equal(nan, nan)
  end)

  it("keeps strings byte for byte, NULs included, at every length form", function()
    local s = "a\0b\0\255\n"
    assert.are.equal(s, roundtrip(s))
    for _, n in ipairs { 0, 31, 32, 255, 256, 65535, 65536 } do
      local long = string.rep("x\0", idiv(n, 2)) .. string.rep("y", n % 2)
      local got = roundtrip(long)
      assert.are.equal(n, #got)
      assert.are.equal(long, got)
    end
  end)

  it("keeps a map's short string keys and values and its integers, at every length", function()
    -- a record's usual fields: short strings and integers are written
    -- inline; each length from 0 to 40 bytes, distinct bytes at both ends
    for n = 0, 40 do
      local str = n == 0 and "" or ("<" .. ("abcdefgh"):rep(5):sub(1, math.max(n - 2, 0)) .. ">"):sub(-n)
      assert.are.equal(n, #str)
      local key = str ~= "" and str or "empty"
      local rec = { [key] = str, n = n, neg = -n * 1000003, big = math.floor(n * 2 ^ 40) }
      local got = decode(encode(rec))
      assert.are.same(rec, got)
      assert.are.equal(str, got[key])
      assert.are.equal(math_type(rec.big), math_type(got.big))
    end
  end)

  it("keeps booleans and nested tables", function()
    assert.are.equal(true, roundtrip(true))
    assert.are.equal(false, roundtrip(false))
    local v = { name = "x", tags = { "a", "b" }, pos = { x = 1, y = 2.5 }, ok = false,
      deep = { { { { 1, { k = "v" } } } } } }
    local got = roundtrip(v)
    assert.are.same(v, got)
    assert.are.equal("integer", math_type(got.pos.x))
    assert.are.equal("float", math_type(got.pos.y))
  end)

  it("tells arrays from maps", function()
    assert.are.same({ 1, 2, 3 }, roundtrip { 1, 2, 3 })
    -- a hole makes a map: keys 1 and 3 stay where they were
    local holes = roundtrip { [1] = "a", [3] = "c" }
    assert.are.same({ [1] = "a", [3] = "c" }, holes)
    assert.is_nil(holes[2])
    -- an array part and a hash part make a map
    assert.are.same({ 1, 2, x = 3 }, roundtrip { 1, 2, x = 3 })
    -- keys of every type survive
    local keys = { [1.5] = "f", [true] = "t", [-7] = "neg", s = "str" }
    assert.are.same(keys, roundtrip(keys))
    -- the empty table decodes as an empty table
    assert.are.same({}, roundtrip {})
  end)

  it("writes the same map the same way in canonical mode, whatever its build order", function()
    local up, down, churn = {}, {}, {}
    for i = 1, 200 do up["k" .. i] = i end
    for i = 200, 1, -1 do down["k" .. i] = i end
    for i = 1, 1000 do churn["tmp" .. i] = i end -- grow, then delete
    for i = 1, 1000 do churn["tmp" .. i] = nil end
    for i = 1, 200, 2 do churn["k" .. i] = i end
    for i = 2, 200, 2 do churn["k" .. i] = i end
    local e = encode(up, true)
    assert.are.equal(e, encode(down, true))
    assert.are.equal(e, encode(churn, true))
    assert.are.same(up, decode(e))
  end)

  it("sorts canonical map entries by their encoded keys", function()
    -- keys "a" (a1 61), "b" (a1 62), 1 (01): byte order puts 1 first
    assert.are.equal("83" .. "01" .. "c3" .. "a161" .. "02" .. "a162" .. "01",
      hex(encode({ b = 1, a = 2, [1] = true }, true)))
  end)

  it("writes one canonical form for maps whose table keys encode alike", function()
    -- {[{}] = 115, [{}] = 100, [101] = 115, [100] = 100}: two distinct
    -- empty tables as keys; entries by key bytes, then by value bytes
    -- (expected bytes computed by hand)
    local input = "\x85\x65\x73\x90\x73\x90\x64\x64\x64\x64\x64"
    local pad = {}
    for i = 1, 300 do
      pad[i] = {} -- moves where the next tables land
      assert.are.equal("8464646573906490" .. "73", hex(encode(decode(input), true)))
    end
    local ab, ba = {}, {}
    ab[{ 1 }] = "a"
    ab[{ 1 }] = "b"
    ba[{ 1 }] = "b"
    ba[{ 1 }] = "a"
    assert.are.equal("82" .. "9101a161" .. "9101a162", hex(encode(ab, true)))
    assert.are.equal(encode(ab, true), encode(ba, true))
    assert.are.equal(core.key_group({ [{}] = 1, [{}] = 2 }, 128), core.key_group({ [{}] = 2, [{}] = 1 }, 128))
  end)

  it("writes every NaN as one canonical NaN", function()
    assert.are.equal("91cb7ff8000000000000", hex(encode({ 0 / 0 }, true)))
    assert.are.equal("91cb7ff8000000000000", hex(encode({ -(0 / 0) }, true)))
    assert.are.equal(core.key_group({ 0 / 0 }, 128), core.key_group({ -(0 / 0) }, 128))
  end)

  it("writes integral floats as integers in canonical mode only", function()
    assert.are.equal(encode(3), encode(3.0, true))
    assert.are.equal(encode { k = 3 }, encode({ k = 3.0 }, true))
    -- outside canonical mode 3.0 stays a float on Lua 5.4; on LuaJIT it
    -- is the integer 3
    if JIT then
      assert.are.equal(encode(3), encode(3.0))
    else
      assert.are_not.equal(encode(3), encode(3.0))
    end
    assert.are.equal(encode(2.5), encode(2.5, true))
  end)

  it("refuses values it cannot encode", function()
    local err = error_of(encode, print)
    assert.truthy(err:find("cannot encode a function value", 1, true), err)
    err = error_of(encode, { 1, { f = function() end } })
    assert.truthy(err:find("function", 1, true), err)
    assert.truthy(error_of(encode, coroutine.create(print)):find("thread", 1, true))
    local cycle = {}
    cycle.self = cycle
    error_of(encode, cycle)
  end)

  it("accepts nesting to 64 levels and refuses deeper", function()
    local function nest(depth)
      local v = 1
      for _ = 1, depth do v = { v } end
      return v
    end
    local got = roundtrip(nest(60))
    for _ = 1, 60 do got = got[1] end
    assert.are.equal(1, got)
    error_of(encode, nest(200))
  end)

  it("refuses malformed input", function()
    for _, bad in ipairs { "", "\xc1", "\xcd\x01", "\x92\x01", encode(1) .. encode(2), "\xa5abc" } do
      local err = error_of(decode, bad)
      assert.truthy(err:find("malformed", 1, true), hex(bad) .. ": " .. err)
    end
  end)
end)

describe("tide.core key groups #unit", function()
  it("puts keys in 0 .. max_parallelism-1", function()
    local keys = { 0, 1, -1, 3, 3.5, "", "a", "hello", true, false, { 1, 2 }, { a = 1 },
      MAX_INT, MIN_INT }
    for i = 1, 500 do keys[#keys + 1] = "key" .. i end
    for _, maxp in ipairs { 1, 2, 128, 1000, 32768 } do
      for _, k in ipairs(keys) do
        local kg = core.key_group(k, maxp)
        assert.are.equal("integer", math_type(kg))
        assert.is_true(kg >= 0 and kg < maxp, tostring(k) .. " -> " .. kg .. " of " .. maxp)
      end
    end
  end)

  it("spreads keys over the key groups", function()
    local used, n = {}, 0
    for i = 1, 2000 do
      local kg = core.key_group("user-" .. i, 128)
      if not used[kg] then
        used[kg] = true
        n = n + 1
      end
    end
    assert.is_true(n >= 120, n .. " key groups used of 128")
  end)

  it("gives equal keys the same key group", function()
    assert.are.equal(core.key_group(3, 128), core.key_group(3.0, 128))
    assert.are.equal(core.key_group(-12, 32768), core.key_group(-12.0, 32768))
    local a, b = { x = 1, y = "z" }, {}
    b.y = "z"
    b.x = 1.0
    assert.are.equal(core.key_group(a, 128), core.key_group(b, 128))
    assert.are.equal(core.key_group("k", 128), core.key_group("k", 128))
  end)

  it("refuses a bad max parallelism and unencodable keys", function()
    error_of(core.key_group, "k", 0)
    error_of(core.key_group, "k", 32769)
    error_of(core.key_group, print, 128)
  end)

  it("computes Flink's default max parallelism", function()
    -- roundUpToPowerOfTwo(p + p / 2), within 128 .. 32768
    local cases = { [1] = 128, [2] = 128, [85] = 128, [86] = 256, [100] = 256,
      [171] = 256, [172] = 512, [1000] = 2048, [20000] = 32768, [32768] = 32768 }
    for p, want in pairs(cases) do
      assert.are.equal(want, core.default_max_parallelism(p), "p = " .. p)
    end
  end)

  it("assigns key group kg to subtask floor(kg * p / maxp)", function()
    local count = { [0] = 0, 0, 0 }
    for kg = 0, 127 do
      local s = core.subtask_of_key_group(kg, 3, 128)
      assert.are.equal(math.floor(kg * 3 / 128), s, "kg " .. kg)
      count[s] = count[s] + 1
    end
    -- contiguous ranges of 43, 43 and 42 key groups
    assert.are.same({ [0] = 43, 43, 42 }, count)
    assert.are.equal(0, core.subtask_of_key_group(0, 3, 128))
    assert.are.equal(2, core.subtask_of_key_group(127, 3, 128))
    assert.are.equal(99, core.subtask_of_key_group(32767, 100, 32768))
  end)
end)
