-- Under LuaJIT, the hot paths of the operators run compiled: batches
-- pushed through map/filter, flat_map, key_by + sum, and event-time windows
-- (with watermarks firing them), and the FFI record codec of the LuaJIT
-- host (lua/tide/ffi.lua: what core.poll and core.emit run per record),
-- hit nothing the JIT cannot compile inside Tide's files: no trace abort
-- for an NYI (not yet implemented) construct in jit.attach's "trace"
-- events, once the operators are built (setup code runs once and is not
-- a hot path). Other aborts ("leaving loop in root trace", "inner loop in
-- root trace", "loop unroll limit reached") are how LuaJIT forms traces
-- around loops and end in compiled traces. User functions here use
-- nothing LuaJIT cannot compile, so an NYI would be Tide's. On Lua 5.4
-- there is no JIT: the spec is skipped.
local luajit = require("tide.compat").luajit

local HOT = { "tide/operators.lua", "tide/runtime.lua", "tide/window.lua", "tide/ffi.lua",
  "tide/state.lua", "tide/timers.lua", "tide/util.lua", "[tide" }

local function is_hot(loc)
  for _, f in ipairs(HOT) do
    if loc:find(f, 1, true) then return true end
  end
  return false
end

-- run fn twice, the second time with trace events recorded: the NYI
-- aborts in Tide's hot files once the JIT has seen the code (LuaJIT may
-- abort a few traces while it finds where to start them: a loop in an
-- inner call of a recursive decoder, say; it then starts them elsewhere)
local function aborts_in(fn)
  fn()
  local jutil, vmdef = require "jit.util", require "jit.vmdef"
  local found = {}
  local function on_trace(what, _, func, pc, otr, oex)
    if what ~= "abort" then return end
    local fi = jutil.funcinfo(func, pc)
    local loc = (fi.source or "?") .. ":" .. tostring(fi.currentline)
    local msg = vmdef.traceerr[otr]
    if type(msg) == "string" and oex then msg = msg:format(oex) end
    if is_hot(loc) and tostring(msg):find("NYI", 1, true) then
      if tostring(msg):find("bytecode", 1, true) then
        msg = msg .. " (" .. vmdef.bcnames:sub(oex * 6 + 1, oex * 6 + 6):gsub(" ", "") .. ")"
      end
      found[#found + 1] = loc .. ": " .. tostring(msg)
    end
  end
  jit.attach(on_trace, "trace")
  local ok, err = pcall(fn)
  jit.attach(on_trace)
  assert(ok, err)
  return found
end

-- the aborts while batches go through the operators build() returns
local function drive(build, with_watermarks)
  local tide = require "tide"
  local testing = require "tide.testing"
  local h = testing.harness(function(s) return build(s, tide) end)
  local buf, ts = {}, {}
  return aborts_in(function()
    for b = 1, 200 do
      for i = 1, 1024 do
        buf[i] = b * 1024 + i
        ts[i] = b * 1000 + i
      end
      h.head.push(buf, ts, 1024)
      if with_watermarks then h.head.watermark(b * 1000) end
      if b % 8 == 0 then h:clear_output() end
    end
  end)
end

describe("tide under LuaJIT #unit", function()
  if not luajit then
    pending("the JIT checks run under LuaJIT only (make test runs this spec there too)")
    return
  end

  it("compiles map and filter", function()
    assert.are.same({}, drive(function(s)
      return s:map(function(x) return x + 1 end):filter(function(x) return x % 2 == 0 end)
    end))
  end)

  it("compiles flat_map", function()
    assert.are.same({}, drive(function(s)
      return s:flat_map(function(x, out) out:collect(x); out:collect(-x) end)
    end))
  end)

  it("compiles key_by and the rolling sum", function()
    assert.are.same({}, drive(function(s)
      return s:map(function(x) return { k = "k" .. (x % 64), n = x } end):key_by("k"):sum("n")
    end))
  end)

  it("compiles event-time windows, firing on watermarks", function()
    assert.are.same({}, drive(function(s, tide)
      return s:map(function(x) return { k = "k" .. (x % 64), n = 1 } end)
        :key_by("k"):window(tide.windows.tumbling(500)):sum("n")
    end, true))
  end)

  it("compiles the FFI record codec (core.emit's encoding, core.poll's decoding)", function()
    -- batches as core.emit and core.poll handle them: one pcall per batch
    -- around encode_batch (records, then canonical keys) and decode_batch
    local ffi, tffi = require "ffi", require "tide.ffi"
    local N = 256
    local recs, keys, out = {}, {}, {}
    local b, kb = tffi.new_buf(), tffi.new_buf()
    local ends, kends = ffi.new("uint32_t[?]", N), ffi.new("uint32_t[?]", N)
    local off, stop = ffi.new("uint32_t[?]", N), ffi.new("uint32_t[?]", N)
    assert.are.same({}, aborts_in(function()
      for batch = 1, 100 do
        for i = 1, N do
          recs[i] = { id = batch * N + i, name = "rec", tags = { "a", "b" }, x = 1.5 }
          keys[i] = "key" .. (i % 10)
        end
        b.len, kb.len = 0, 0
        assert(pcall(tffi.encode_batch, b, recs, N, false, ends, 0))
        assert(pcall(tffi.encode_batch, kb, keys, N, true, kends, 0))
        for i = 0, N - 1 do
          off[i] = i == 0 and 0 or ends[i - 1]
          stop[i] = ends[i]
        end
        assert(pcall(tffi.decode_batch, ffi.cast("const uint8_t *", b.p), off, stop, N, out))
        assert(out[N].id == batch * N + N and out[N].tags[2] == "b")
        -- and into the tables of the batch before (object reuse)
        assert(pcall(tffi.decode_batch, ffi.cast("const uint8_t *", b.p), off, stop, N, out, true))
        assert(out[N].id == batch * N + N and out[N].tags[2] == "b")
      end
    end))
  end)

  describe("decode_batch with reuse (a consumer that borrows its records)", function()
    local ffi, tffi = require "ffi", require "tide.ffi"
    -- decode the records recs[1..n] into out as core.poll does
    local function decode(recs, out, reuse)
      local n = #recs
      local b = tffi.new_buf()
      local ends = ffi.new("uint32_t[?]", n)
      local off, stop = ffi.new("uint32_t[?]", n), ffi.new("uint32_t[?]", n)
      assert(pcall(tffi.encode_batch, b, recs, n, false, ends, 0))
      for i = 0, n - 1 do
        off[i] = i == 0 and 0 or ends[i - 1]
        stop[i] = ends[i]
      end
      assert(pcall(tffi.decode_batch, ffi.cast("const uint8_t *", b.p), off, stop, n, out, reuse))
    end
    local function sorted_pairs(t)
      local l = {}
      for k, v in pairs(t) do l[#l + 1] = tostring(k) .. "=" .. tostring(v) end
      table.sort(l)
      return table.concat(l, " ")
    end

    it("refills the table of the same place when the keys come alike", function()
      local out = {}
      decode({ { w = "a", n = 1 }, { w = "b", n = 2 } }, out, true)
      local t1, t2 = out[1], out[2]
      decode({ { w = "c", n = 3 }, { w = "d", n = 4 } }, out, true)
      assert.are.equal(t1, out[1])
      assert.are.equal(t2, out[2])
      assert.are.equal("n=3 w=c", sorted_pairs(out[1]))
      assert.are.equal("n=4 w=d", sorted_pairs(out[2]))
    end)

    it("takes a new table for other keys, and leaves no key of the old one", function()
      local out = {}
      decode({ { w = "a", n = 1 } }, out, true)
      local t1 = out[1]
      decode({ { w = "b", m = 2 } }, out, true) -- a key differs
      assert.are_not.equal(t1, out[1])
      assert.are.equal("m=2 w=b", sorted_pairs(out[1]))
      local t2 = out[1]
      decode({ { w = "c" } }, out, true) -- fewer keys
      assert.are_not.equal(t2, out[1])
      assert.are.equal("w=c", sorted_pairs(out[1]))
      decode({ { 5, 6 } }, out, true) -- an array at the same place
      assert.are.equal("1=5 2=6", sorted_pairs(out[1]))
      decode({ { w = "d" } }, out, true) -- a map again: not into the array
      assert.are.equal("w=d", sorted_pairs(out[1]))
    end)

    it("does not refill a table another one replaced at that place", function()
      local out = {}
      decode({ { w = "a", n = 1 } }, out, true)
      local mine = { w = "kept", n = 0 }
      out[1] = mine
      decode({ { w = "b", n = 2 } }, out, true)
      assert.are_not.equal(mine, out[1])
      assert.are.equal("n=0 w=kept", sorted_pairs(mine))
      assert.are.equal("n=2 w=b", sorted_pairs(out[1]))
    end)

    it("makes new tables without reuse", function()
      local out = {}
      decode({ { w = "a", n = 1 } }, out, true)
      local t1 = out[1]
      decode({ { w = "b", n = 2 } }, out, false)
      assert.are_not.equal(t1, out[1])
      assert.are.equal("n=1 w=a", sorted_pairs(t1))
    end)
  end)
end)
