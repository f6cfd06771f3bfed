--- tide.ffi: the LuaJIT host's record path, over Tide's C ABI (core/tide.h)
-- through LuaJIT's FFI.
--
-- On LuaJIT, tide.core's poll, emit, encode and decode are these functions
-- (install() replaces the C API ones when tide.core is opened): records
-- reach Lua by pulling a batch of record views with one FFI call
-- (td_task_poll) and decoding the MessagePack here, in Lua the JIT
-- compiles, and leave by encoding a batch into one buffer handed over with
-- one FFI call (td_task_emit_batch). No C function calls back into Lua.
--
-- The MessagePack rules are those of the C codec (core/codec.h), with
-- LuaJIT's numbers (docs/LUAJIT.md): a number is an integer when integral
-- and below 2^53 in magnitude (tide.compat.math_type), written as a
-- MessagePack int; the sentinels +-2^63 (compat.MAX_INT / MIN_INT) as
-- INT64_MAX / INT64_MIN; other numbers as float64 (canonical encoding, for
-- keys, writes integral floats in int64 range as ints, and one NaN). An
-- int read back beyond 2^53 becomes the nearest double. A table whose keys
-- are exactly 1..n (n >= 1) is an array, any other a map (the empty table
-- an empty array); canonical maps are sorted by encoded key bytes, then
-- value bytes. The error messages are the C codec's.
local ffi = require "ffi"
local bit = require "bit"

ffi.cdef(require "tide.cdef")

local M = {}

-- the core's symbols: in tide-luajit (linked with -rdynamic) ffi.C has
-- them; under a plain luajit, the tide.core library does
local C = ffi.C
if not pcall(function() return C.tide_abi_version end) then
  C = ffi.load(assert(package.searchpath("tide.core", package.cpath), "tide.ffi: tide.core not found"))
end

local ABI_MAJOR = 1
local abi = C.tide_abi_version()
if bit.rshift(abi, 16) ~= ABI_MAJOR then
  error(string.format("tide.ffi: the core's ABI %d.%d is not %d.x", bit.rshift(abi, 16), bit.band(abi, 0xffff),
    ABI_MAJOR), 0)
end

local floor, type, sort = math.floor, type, table.sort
local pairs, tostring, error = pairs, tostring, error
local ffi_string, ffi_copy = ffi.string, ffi.copy
local TWO32, TWO53, TWO63 = 2 ^ 32, 2 ^ 53, 2 ^ 63
local I64, U64 = ffi.typeof("int64_t"), ffi.typeof("uint64_t")
local INT64_MAX = I64(0x7fffffff) * 0x100000000 + 0xffffffff
local INT64_MIN = -INT64_MAX - 1
local QNAN = U64(0x7ff80000) * 0x100000000 -- the canonical NaN's bits
local MAX_DEPTH = 64

-- ---- a growable byte buffer ----------------------------------------------

local u8p = ffi.typeof("uint8_t *")

local Buf = {}
Buf.__index = Buf

local function new_buf(cap)
  cap = cap or 65536
  return setmetatable({ p = ffi.new("uint8_t[?]", cap), cap = cap, len = 0 }, Buf)
end

function Buf:grow(extra)
  local need = self.len + extra
  if need <= self.cap then return end
  local cap = self.cap * 2
  while cap < need do cap = cap * 2 end
  local p = ffi.new("uint8_t[?]", cap)
  ffi_copy(p, self.p, self.len)
  self.p, self.cap = p, cap
end

-- ---- encoding --------------------------------------------------------------

local conv = ffi.new("union { double d; uint64_t u; uint8_t b[8]; int64_t i; }")
local big_endian = ffi.abi("be")

local function put_be(b, v, n) -- v: a non-negative integer < 2^53, n bytes
  local p, len = b.p, b.len
  for k = n - 1, 0, -1 do
    local q = floor(v / 256)
    p[len + k] = v - q * 256
    v = q
  end
  b.len = len + n
end

-- the 8 bytes of conv, most significant first
local function put_conv(b)
  local p, len = b.p, b.len
  for k = 0, 7 do p[len + k] = conv.b[big_endian and k or 7 - k] end
  b.len = len + 8
end

local function put_int(b, v)
  b:grow(9)
  local p, len = b.p, b.len
  if v >= 0 then
    if v < 128 then
      p[len] = v
      b.len = len + 1
    elseif v < 256 then
      p[len] = 0xcc; p[len + 1] = v; b.len = len + 2
    elseif v < 65536 then
      p[len] = 0xcd; b.len = len + 1; put_be(b, v, 2)
    elseif v < TWO32 then
      p[len] = 0xce; b.len = len + 1; put_be(b, v, 4)
    elseif v < TWO53 then
      p[len] = 0xcf; b.len = len + 1; put_be(b, v, 8)
    else -- the +2^63 sentinel: INT64_MAX
      p[len] = 0xcf; b.len = len + 1
      conv.i = INT64_MAX
      put_conv(b)
    end
  elseif v >= -32 then
    p[len] = 0x100 + v
    b.len = len + 1
  elseif v >= -128 then
    p[len] = 0xd0; p[len + 1] = 0x100 + v; b.len = len + 2
  elseif v >= -32768 then
    p[len] = 0xd1; b.len = len + 1; put_be(b, 0x10000 + v, 2)
  elseif v >= -2147483648 then
    p[len] = 0xd2; b.len = len + 1; put_be(b, TWO32 + v, 4)
  else
    p[len] = 0xd3; b.len = len + 1
    conv.i = v <= -TWO63 and INT64_MIN or v
    put_conv(b)
  end
end

local function put_float(b, v, canonical)
  b:grow(9)
  b.p[b.len] = 0xcb
  b.len = b.len + 1
  if canonical and v ~= v then
    conv.u = QNAN -- one NaN
  else
    conv.d = v
  end
  put_conv(b)
end

local function put_header(b, n, fix, fixmax, c8, c16, c32)
  b:grow(5)
  local p, len = b.p, b.len
  if n < fixmax then
    p[len] = fix + n
    b.len = len + 1
  elseif c8 and n < 256 then
    p[len] = c8; p[len + 1] = n; b.len = len + 2
  elseif n < 65536 then
    p[len] = c16; b.len = len + 1; put_be(b, n, 2)
  else
    p[len] = c32; b.len = len + 1; put_be(b, n, 4)
  end
end

local function put_str(b, s)
  local n = #s
  if n >= TWO32 then error("cannot encode a string longer than 4 GiB", 0) end
  put_header(b, n, 0xa0, 32, 0xd9, 0xda, 0xdb)
  b:grow(n)
  ffi_copy(b.p + b.len, s, n)
  b.len = b.len + n
end

local encode_value

-- the keys of t are exactly 1..n
local function is_array(t, n)
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then return false end
    count = count + 1
    if count > n then return false end
  end
  return count == n
end

local scratch -- canonical map entries are encoded here one by one

local function encode_map(b, t, canonical, depth)
  if not canonical then
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    if n == 0 then
      put_header(b, 0, 0x90, 16) -- the empty table is an empty array
      return
    end
    put_header(b, n, 0x80, 16, nil, 0xde, 0xdf)
    for k, v in pairs(t) do
      encode_value(b, k, false, depth)
      encode_value(b, v, false, depth)
    end
    return
  end
  local ents, n = {}, 0
  for k, v in pairs(t) do
    local s = scratch
    s.len = 0
    encode_value(s, k, true, depth)
    local kb = ffi_string(s.p, s.len)
    s.len = 0
    encode_value(s, v, true, depth)
    n = n + 1
    ents[n] = { kb, ffi_string(s.p, s.len) }
  end
  if n == 0 then
    put_header(b, 0, 0x90, 16)
    return
  end
  sort(ents, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end)
  put_header(b, n, 0x80, 16, nil, 0xde, 0xdf)
  for i = 1, n do
    local e = ents[i]
    local kb, vb = e[1], e[2]
    b:grow(#kb + #vb)
    ffi_copy(b.p + b.len, kb, #kb)
    ffi_copy(b.p + b.len + #kb, vb, #vb)
    b.len = b.len + #kb + #vb
  end
end

encode_value = function(b, v, canonical, depth)
  local tv = type(v)
  if tv == "string" then
    put_str(b, v)
  elseif tv == "number" then
    if v == floor(v) and ((v < TWO53 and v > -TWO53) or v >= TWO63 or v <= -TWO63) then
      put_int(b, v)
    elseif canonical and v == floor(v) and v > -TWO63 and v < TWO63 then
      put_int(b, v) -- an integral float in int64 range, as a key
    else
      put_float(b, v, canonical)
    end
  elseif tv == "table" then
    if depth >= MAX_DEPTH then error("table nesting too deep (or a cycle)", 0) end
    depth = depth + 1
    local n = #v
    if n > 0 and n < TWO32 and is_array(v, n) then
      put_header(b, n, 0x90, 16, nil, 0xdc, 0xdd)
      for i = 1, n do encode_value(b, v[i], canonical, depth) end
    else
      encode_map(b, v, canonical, depth)
    end
  elseif tv == "boolean" then
    b:grow(1)
    b.p[b.len] = v and 0xc3 or 0xc2
    b.len = b.len + 1
  elseif v == nil then
    b:grow(1)
    b.p[b.len] = 0xc0
    b.len = b.len + 1
  else
    error("cannot encode a " .. tv .. " value", 0)
  end
end

--- Append the MessagePack encoding of v to buffer b (canonical: for key
-- bytes). Raises the C codec's messages for what cannot be encoded.
function M.encode_into(b, v, canonical)
  encode_value(b, v, canonical, 0)
end

M.new_buf = new_buf
scratch = new_buf(4096)

-- ---- decoding ----------------------------------------------------------------

local CORRUPT = {} -- raised inside the decoder; turned into messages outside

local function be(p, pos, n)
  local v = 0
  for k = 0, n - 1 do v = v * 256 + p[pos + k] end
  return v
end

local function get_conv(p, pos)
  for k = 0, 7 do conv.b[big_endian and k or 7 - k] = p[pos + k] end
end

local decode_value

local function decode_array(p, pos, lim, n, depth)
  if n > lim - pos or depth >= MAX_DEPTH then error(CORRUPT) end
  local t = {}
  for i = 1, n do
    t[i], pos = decode_value(p, pos, lim, depth + 1)
  end
  return t, pos
end

local function decode_map(p, pos, lim, n, depth)
  if n > (lim - pos) / 2 or depth >= MAX_DEPTH then error(CORRUPT) end
  local t = {}
  for _ = 1, n do
    local k, v
    k, pos = decode_value(p, pos, lim, depth + 1)
    if k == nil or k ~= k then error(CORRUPT) end
    v, pos = decode_value(p, pos, lim, depth + 1)
    t[k] = v
  end
  return t, pos
end

local f32 = ffi.new("union { float f; uint32_t u; }")

-- decode from p[pos .. lim); returns value, next position
decode_value = function(p, pos, lim, depth)
  if pos >= lim then error(CORRUPT) end
  local c = p[pos]
  pos = pos + 1
  if c < 0x80 then return c, pos end
  if c >= 0xe0 then return c - 0x100, pos end
  if c >= 0xa0 and c <= 0xbf then
    local n = c - 0xa0
    if pos + n > lim then error(CORRUPT) end
    return ffi_string(p + pos, n), pos + n
  end
  if c >= 0x90 and c <= 0x9f then return decode_array(p, pos, lim, c - 0x90, depth) end
  if c >= 0x80 and c <= 0x8f then return decode_map(p, pos, lim, c - 0x80, depth) end
  if c == 0xc0 then return nil, pos end
  if c == 0xc2 then return false, pos end
  if c == 0xc3 then return true, pos end
  if c >= 0xcc and c <= 0xcf then
    local w = c == 0xcc and 1 or c == 0xcd and 2 or c == 0xce and 4 or 8
    if pos + w > lim then error(CORRUPT) end
    if w < 8 then return be(p, pos, w), pos + w end
    return be(p, pos, 4) * TWO32 + be(p, pos + 4, 4), pos + 8
  end
  if c >= 0xd0 and c <= 0xd3 then
    local w = c == 0xd0 and 1 or c == 0xd1 and 2 or c == 0xd2 and 4 or 8
    if pos + w > lim then error(CORRUPT) end
    local u
    if w < 8 then
      u = be(p, pos, w)
      local half = 2 ^ (8 * w - 1)
      if u >= half then u = u - 2 * half end
    else
      local hi = be(p, pos, 4)
      if hi >= 0x80000000 then hi = hi - TWO32 end
      u = hi * TWO32 + be(p, pos + 4, 4)
    end
    return u, pos + w
  end
  if c == 0xca then
    if pos + 4 > lim then error(CORRUPT) end
    f32.u = be(p, pos, 4)
    return tonumber(f32.f), pos + 4
  end
  if c == 0xcb then
    if pos + 8 > lim then error(CORRUPT) end
    get_conv(p, pos)
    return tonumber(conv.d), pos + 8
  end
  if c == 0xd9 or c == 0xda or c == 0xdb or c == 0xc4 or c == 0xc5 or c == 0xc6 then
    local w = (c == 0xd9 or c == 0xc4) and 1 or (c == 0xda or c == 0xc5) and 2 or 4
    if pos + w > lim then error(CORRUPT) end
    local n = be(p, pos, w)
    pos = pos + w
    if pos + n > lim then error(CORRUPT) end
    return ffi_string(p + pos, n), pos + n
  end
  if c == 0xdc or c == 0xdd or c == 0xde or c == 0xdf then
    local w = (c == 0xdc or c == 0xde) and 2 or 4
    if pos + w > lim then error(CORRUPT) end
    local n = be(p, pos, w)
    if c <= 0xdd then return decode_array(p, pos + w, lim, n, depth) end
    return decode_map(p, pos + w, lim, n, depth)
  end
  error(CORRUPT) -- ext types, 0xc1
end

--- Decode one value from p[pos .. lim) (p: a uint8_t pointer): value and
-- the position after it; raises "corrupt" for malformed input.
function M.decode_at(p, pos, lim)
  local ok, v, nxt = pcall(decode_value, p, pos, lim, 0)
  if not ok then
    if v == CORRUPT then error("corrupt", 0) end
    error(v, 0)
  end
  return v, nxt
end

-- ---- tide.core on LuaJIT -----------------------------------------------------

--- Replace tide.core's record path with the FFI one (the LuaJIT host calls
-- this when it opens tide.core). core.task_handle() gives the subtask's
-- engine as a light userdata; core.errors the error codes.
function M.install(core)
  local ECANCELED = core.errors.ECANCELED
  local CANCELLED = core.CANCELLED
  local task -- this subtask's td_task_t *, once a task runs here

  local function the_task()
    if not task then task = ffi.cast("td_task_t *", core.task_handle()) end
    return task
  end

  local function fail(rc)
    if rc == ECANCELED then error(CANCELLED, 0) end
    error(ffi_string(C.td_task_error(task)), 0)
  end

  -- core.poll(buf, ts [, timeout_ms]) -> n, edge, event, value, has_ts
  -- (as the C API version: host_lua54.c)
  local batch = ffi.new("td_batch_t[1]")
  local EVENTS = { "watermark", "idle", "active", "barrier" }
  local ts_hi = 0
  function core.poll(buf, tsbuf, timeout)
    local t = the_task()
    local r = C.td_task_poll(t, timeout or -1, batch)
    if r < 0 then fail(r) end
    if r == 0 then return nil end
    if r == 2 then return 0 end
    local b = batch[0]
    local n, data, off, stop = b.n, ffi.cast(u8p, b.data), b.off, b.stop
    local has_ts, ts = b.has_ts ~= 0, b.ts
    for i = 0, n - 1 do
      local ok, v, nxt = pcall(decode_value, data, off[i], stop[i], 0)
      if not ok or nxt ~= stop[i] then error("corrupt exchange buffer", 0) end
      buf[i + 1] = v
      if has_ts and ts[i] ~= INT64_MIN then
        tsbuf[i + 1] = tonumber(ts[i])
        if i + 1 > ts_hi then ts_hi = i + 1 end
      elseif i + 1 <= ts_hi then
        tsbuf[i + 1] = nil
      end
    end
    local ev, value = b.event, nil
    if ev == 1 or ev == 4 then value = tonumber(b.value) end
    return n, b.edge >= 0 and b.edge + 1 or nil, EVENTS[ev], value, has_ts
  end

  -- core.emit(edge, buf, n [, keys [, ts]])
  local recs, keybuf = new_buf(65536), new_buf(4096)
  local ends, kends, tsarr, cap = nil, nil, nil, 0
  local MAXTS, MINTS, NO_TS = INT64_MAX, INT64_MIN, INT64_MIN
  function core.emit(edge, buf, n, keys, ts)
    local t = the_task()
    if n > cap then
      cap = n < 1024 and 1024 or n
      ends, kends, tsarr = ffi.new("uint32_t[?]", cap), ffi.new("uint32_t[?]", cap), ffi.new("int64_t[?]", cap)
    end
    recs.len, keybuf.len = 0, 0
    for i = 1, n do
      local ok, err = pcall(encode_value, recs, buf[i], false, 0)
      if not ok then error("cannot send a record: " .. tostring(err), 0) end
      ends[i - 1] = recs.len
      if keys then
        ok, err = pcall(encode_value, keybuf, keys[i], true, 0)
        if not ok then error("cannot hash a key: " .. tostring(err), 0) end
        kends[i - 1] = keybuf.len
      end
      if ts then
        local v = ts[i]
        if v == nil then
          tsarr[i - 1] = NO_TS
        elseif type(v) ~= "number" or v ~= floor(v) then
          error("a record's timestamp is not an integer (ms)", 0)
        elseif v >= TWO63 then
          tsarr[i - 1] = MAXTS
        elseif v <= -TWO63 then
          tsarr[i - 1] = MINTS
        else
          tsarr[i - 1] = v
        end
      end
    end
    local rc = C.td_task_emit_batch(t, edge - 1, ffi.cast("const char *", recs.p), ends, n,
      ts and tsarr or nil, keys and ffi.cast("const char *", keybuf.p) or nil, keys and kends or nil)
    if rc ~= 0 then fail(rc) end
  end

  -- core.encode(v [, canonical]) -> bytes; core.decode(s) -> v
  local enc = new_buf(4096)
  function core.encode(v, canonical)
    enc.len = 0
    encode_value(enc, v, canonical and true or false, 0)
    return ffi_string(enc.p, enc.len)
  end
  function core.decode(s)
    if type(s) ~= "string" then
      error("bad argument #1 to 'decode' (string expected, got " .. (s == nil and "no value" or type(s)) .. ")", 2)
    end
    local p = ffi.cast(u8p, s)
    local ok, v, nxt = pcall(decode_value, p, 0, #s, 0)
    if not ok or nxt ~= #s then error("decode: not a single MessagePack value", 2) end
    return v
  end
  return core
end

M.C = C
return M
