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
ffi.cdef("void *memmove(void *dst, const void *src, size_t n);")

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
--
-- For the JIT: the helpers that encode or decode one item have no loop
-- (a function holding a loop, called from the loop over a batch, makes
-- LuaJIT start traces it cannot finish: "NYI: return to lower frame").
-- The loops over a record's fields and over a batch's records sit in the
-- same function (encode_record, decode_record and the batch loops below);
-- only nested containers recurse.

local conv = ffi.new("union { double d; uint64_t u; uint8_t b[8]; int64_t i; }")
local B0, B1, B2, B3, B4, B5, B6, B7 = 7, 6, 5, 4, 3, 2, 1, 0 -- conv.b index of byte k, MSB first
if ffi.abi("be") then B0, B1, B2, B3, B4, B5, B6, B7 = 0, 1, 2, 3, 4, 5, 6, 7 end
local band, rshift = bit.band, bit.rshift

-- v (0 <= v < 2^32) as 2 or 4 big-endian bytes at p[i]
local function put2(p, i, v)
  p[i] = rshift(v, 8)
  p[i + 1] = band(v, 0xff)
end

local function put4(p, i, v)
  local hi = floor(v / 65536)
  put2(p, i, hi)
  put2(p, i + 2, v - hi * 65536)
end

-- the 8 bytes of conv, most significant first, at p[i]
local function put_conv(p, i)
  local c = conv.b
  p[i], p[i + 1], p[i + 2], p[i + 3] = c[B0], c[B1], c[B2], c[B3]
  p[i + 4], p[i + 5], p[i + 6], p[i + 7] = c[B4], c[B5], c[B6], c[B7]
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
      p[len] = 0xcd; put2(p, len + 1, v); b.len = len + 3
    elseif v < TWO32 then
      p[len] = 0xce; put4(p, len + 1, v); b.len = len + 5
    elseif v < TWO53 then
      local hi = floor(v / TWO32)
      p[len] = 0xcf; put4(p, len + 1, hi); put4(p, len + 5, v - hi * TWO32); b.len = len + 9
    else -- the +2^63 sentinel: INT64_MAX
      p[len] = 0xcf
      conv.i = INT64_MAX
      put_conv(p, len + 1)
      b.len = len + 9
    end
  elseif v >= -32 then
    p[len] = 0x100 + v
    b.len = len + 1
  elseif v >= -128 then
    p[len] = 0xd0; p[len + 1] = 0x100 + v; b.len = len + 2
  elseif v >= -32768 then
    p[len] = 0xd1; put2(p, len + 1, 0x10000 + v); b.len = len + 3
  elseif v >= -2147483648 then
    p[len] = 0xd2; put4(p, len + 1, TWO32 + v); b.len = len + 5
  else
    p[len] = 0xd3
    conv.i = v <= -TWO63 and INT64_MIN or v
    put_conv(p, len + 1)
    b.len = len + 9
  end
end

local function put_float(b, v, canonical)
  b:grow(9)
  local p, len = b.p, b.len
  p[len] = 0xcb
  if canonical and v ~= v then
    conv.u = QNAN -- one NaN
  else
    conv.d = v
  end
  put_conv(p, len + 1)
  b.len = len + 9
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
    p[len] = c16; put2(p, len + 1, n); b.len = len + 3
  else
    p[len] = c32; put4(p, len + 1, n); b.len = len + 5
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

local encode_value -- any value (recursive)

-- a value that is not a table, or a table through encode_value: no loop
local function encode_item(b, v, canonical, depth)
  local tv = type(v)
  if tv == "string" then
    put_str(b, v)
  elseif tv == "number" then
    if v == floor(v) and ((v < TWO53 and v > -TWO53) or v == TWO63 or v == -TWO63) then
      put_int(b, v)
    elseif canonical and v == floor(v) and v > -TWO63 and v < TWO63 then
      put_int(b, v) -- an integral float in int64 range, as a key
    else
      put_float(b, v, canonical)
    end
  elseif tv == "table" then
    encode_value(b, v, canonical, depth)
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

local scratch -- canonical map entries are encoded here one by one

-- canonical map entries {key bytes, value bytes}: by key bytes, then value
-- bytes (LuaJIT compares strings bytewise)
local function entry_before(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  return x[2] < y[2]
end

local function encode_map_canonical(b, t, depth)
  local ents, n = {}, 0
  for k, v in pairs(t) do
    local s = scratch
    s.len = 0
    encode_item(s, k, true, depth)
    local kb = ffi_string(s.p, s.len)
    s.len = 0
    encode_item(s, v, true, depth)
    n = n + 1
    ents[n] = { kb, ffi_string(s.p, s.len) }
  end
  if n == 0 then
    put_header(b, 0, 0x90, 16) -- the empty table is an empty array
    return
  end
  sort(ents, entry_before)
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

-- Append list[1..n] to b (depth: the tables they are nested in), and b's
-- length after each to ends[0..n-1] (ends may be nil). A table is an
-- array when its keys are exactly 1..n, else a map (canonical: sorted),
-- {} an empty array. The loops over a table's entries are here, in the
-- loop over the list, for the JIT (see above); nested tables recurse
-- through encode_value.
local function encode_batch(b, list, n, canonical, ends, depth)
  for r = 1, n do
    local t = list[r]
    if type(t) ~= "table" then
      encode_item(b, t, canonical, depth)
    else
      if depth >= MAX_DEPTH then error("table nesting too deep (or a cycle)", 0) end
      local d = depth + 1
      local len = #t
      local array = len > 0 and len < TWO32
      if array then
        local count = 0
        for k in pairs(t) do
          if type(k) ~= "number" or k < 1 or k > len or k ~= floor(k) then
            array = false
            break
          end
          count = count + 1
        end
        array = array and count == len
      end
      if array then
        put_header(b, len, 0x90, 16, nil, 0xdc, 0xdd)
        for i = 1, len do encode_item(b, t[i], canonical, d) end
      elseif canonical then
        encode_map_canonical(b, t, d)
      else
        -- one pass: a one-byte header, the entries counted as they are
        -- written, the header widened afterwards for 16 entries or more (as
        -- the C codec does)
        b:grow(1)
        local h = b.len
        b.len = h + 1
        local m = 0
        for k, v in pairs(t) do
          encode_item(b, k, false, d)
          encode_item(b, v, false, d)
          m = m + 1
        end
        if m == 0 then
          b.p[h] = 0x90 -- the empty table is an empty array
        elseif m < 16 then
          b.p[h] = 0x80 + m
        else
          local w = m < 65536 and 3 or 5
          b:grow(w - 1)
          ffi.C.memmove(b.p + h + w, b.p + h + 1, b.len - h - 1)
          b.p[h] = w == 3 and 0xde or 0xdf
          if w == 3 then put2(b.p, h + 1, m) else put4(b.p, h + 1, m) end
          b.len = b.len + w - 1
        end
      end
    end
    if ends then ends[r - 1] = b.len end
  end
end

-- one value (a nested table: a list of one, a new one per level)
encode_value = function(b, v, canonical, depth)
  encode_batch(b, { v }, 1, canonical, nil, depth)
end

--- Append the MessagePack encoding of v to buffer b (canonical: for key
-- bytes). Raises the C codec's messages for what cannot be encoded.
function M.encode_into(b, v, canonical)
  encode_value(b, v, canonical, 0)
end

M.new_buf = new_buf
--- encode_batch(b, list, n, canonical, ends, depth): append list[1..n]'s
-- encodings to buffer b, ends[i-1] (a uint32_t array, or nil) receiving
-- where record i ends; what core.emit runs, under one pcall per batch.
M.encode_batch = encode_batch
scratch = new_buf(4096)

-- ---- decoding ----------------------------------------------------------------

local CORRUPT = {} -- raised inside the decoder; turned into messages outside

local function be2(p, i) return p[i] * 256 + p[i + 1] end
local function be4(p, i) return ((p[i] * 256 + p[i + 1]) * 256 + p[i + 2]) * 256 + p[i + 3] end

local function get_conv(p, i)
  local c = conv.b
  c[B0], c[B1], c[B2], c[B3] = p[i], p[i + 1], p[i + 2], p[i + 3]
  c[B4], c[B5], c[B6], c[B7] = p[i + 4], p[i + 5], p[i + 6], p[i + 7]
end

local f32 = ffi.new("union { float f; uint32_t u; }")

-- Short strings (1 to 6 bytes: record keys, enum-like values) decoded
-- lately, in a direct-mapped cache: a string found in its slot is returned
-- instead of being hashed and interned again by ffi.string. A string's
-- slot key is a number made of its length and bytes (exact below 2^51), so
-- a match is an equal string. No loop (see the note on encoding).
local tnew = require "table.new"
local bxor, tobit = bit.bxor, bit.tobit
local SC_SLOTS = 1024
local sc_key, sc_str = tnew(SC_SLOTS, 0), tnew(SC_SLOTS, 0)
for i = 1, SC_SLOTS do
  sc_key[i], sc_str[i] = -1, ""
end

local function short_string(p, pos, n)
  local k = n * 256 + p[pos]
  if n >= 2 then
    k = k * 256 + p[pos + 1]
    if n >= 3 then
      k = k * 256 + p[pos + 2]
      if n >= 4 then
        k = k * 256 + p[pos + 3]
        if n >= 5 then
          k = k * 256 + p[pos + 4]
          if n >= 6 then k = k * 256 + p[pos + 5] end
        end
      end
    end
  end
  local x = tobit(k)
  local slot = band(bxor(x, rshift(x, 9), rshift(x, 19)), SC_SLOTS - 1) + 1
  if sc_key[slot] == k then return sc_str[slot] end
  local s = ffi_string(p + pos, n)
  sc_key[slot], sc_str[slot] = k, s
  return s
end

-- A scalar at p[pos] (first byte c): value, next position; or false when
-- it is a container (decode_value reads those); raises CORRUPT. No loop.
local function decode_scalar(p, pos, lim, c)
  pos = pos + 1
  if c < 0x80 then return c, pos end
  if c >= 0xe0 then return c - 0x100, pos end
  if c >= 0xa0 and c <= 0xbf then
    local n = c - 0xa0
    if pos + n > lim then error(CORRUPT) end
    if n >= 1 and n <= 6 then return short_string(p, pos, n), pos + n end
    return ffi_string(p + pos, n), pos + n
  end
  if c <= 0x9f or (c >= 0xdc and c <= 0xdf) then return false end
  if c == 0xc0 then return nil, pos end
  if c == 0xc2 then return false, pos end
  if c == 0xc3 then return true, pos end
  if c == 0xcc then
    if pos + 1 > lim then error(CORRUPT) end
    return p[pos], pos + 1
  end
  if c == 0xcd then
    if pos + 2 > lim then error(CORRUPT) end
    return be2(p, pos), pos + 2
  end
  if c == 0xce then
    if pos + 4 > lim then error(CORRUPT) end
    return be4(p, pos), pos + 4
  end
  if c == 0xcf then
    if pos + 8 > lim then error(CORRUPT) end
    return be4(p, pos) * TWO32 + be4(p, pos + 4), pos + 8
  end
  if c == 0xd0 then
    if pos + 1 > lim then error(CORRUPT) end
    local u = p[pos]
    return u >= 0x80 and u - 0x100 or u, pos + 1
  end
  if c == 0xd1 then
    if pos + 2 > lim then error(CORRUPT) end
    local u = be2(p, pos)
    return u >= 0x8000 and u - 0x10000 or u, pos + 2
  end
  if c == 0xd2 then
    if pos + 4 > lim then error(CORRUPT) end
    local u = be4(p, pos)
    return u >= 0x80000000 and u - TWO32 or u, pos + 4
  end
  if c == 0xd3 then
    if pos + 8 > lim then error(CORRUPT) end
    local hi = be4(p, pos)
    if hi >= 0x80000000 then hi = hi - TWO32 end
    return hi * TWO32 + be4(p, pos + 4), pos + 8
  end
  if c == 0xca then
    if pos + 4 > lim then error(CORRUPT) end
    f32.u = be4(p, pos)
    return tonumber(f32.f), pos + 4
  end
  if c == 0xcb then
    if pos + 8 > lim then error(CORRUPT) end
    get_conv(p, pos)
    return tonumber(conv.d), pos + 8
  end
  local n
  if c == 0xd9 or c == 0xc4 then
    if pos + 1 > lim then error(CORRUPT) end
    n, pos = p[pos], pos + 1
  elseif c == 0xda or c == 0xc5 then
    if pos + 2 > lim then error(CORRUPT) end
    n, pos = be2(p, pos), pos + 2
  elseif c == 0xdb or c == 0xc6 then
    if pos + 4 > lim then error(CORRUPT) end
    n, pos = be4(p, pos), pos + 4
  else
    error(CORRUPT) -- ext types, 0xc1
  end
  if pos + n > lim then error(CORRUPT) end
  return ffi_string(p + pos, n), pos + n
end

-- decode from p[pos .. lim); returns value, next position. Containers'
-- scalar items are read in this function's loops (flat records need no
-- recursion); nested ones recurse.
local function decode_value(p, pos, lim, depth)
  if pos >= lim then error(CORRUPT) end
  local c = p[pos]
  local v, nxt = decode_scalar(p, pos, lim, c)
  if v ~= false or nxt then return v, nxt end
  local n, map
  if c <= 0x8f then
    n, map, pos = c - 0x80, true, pos + 1
  elseif c <= 0x9f then
    n, map, pos = c - 0x90, false, pos + 1
  else
    local w = (c == 0xdc or c == 0xde) and 2 or 4
    if pos + 1 + w > lim then error(CORRUPT) end
    n = w == 2 and be2(p, pos + 1) or be4(p, pos + 1)
    map, pos = c >= 0xde, pos + 1 + w
  end
  if depth >= MAX_DEPTH or n > (map and (lim - pos) / 2 or lim - pos) then error(CORRUPT) end
  local t = map and tnew(0, n) or tnew(n, 0)
  if map then
    for _ = 1, n do
      if pos >= lim then error(CORRUPT) end
      local k
      k, nxt = decode_scalar(p, pos, lim, p[pos])
      if k == false and not nxt then k, nxt = decode_value(p, pos, lim, depth + 1) end
      if k == nil or k ~= k then error(CORRUPT) end
      pos = nxt
      if pos >= lim then error(CORRUPT) end
      v, nxt = decode_scalar(p, pos, lim, p[pos])
      if v == false and not nxt then v, nxt = decode_value(p, pos, lim, depth + 1) end
      pos = nxt
      t[k] = v
    end
  else
    for i = 1, n do
      if pos >= lim then error(CORRUPT) end
      v, nxt = decode_scalar(p, pos, lim, p[pos])
      if v == false and not nxt then v, nxt = decode_value(p, pos, lim, depth + 1) end
      pos = nxt
      t[i] = v
    end
  end
  return t, pos
end

-- Object reuse (decode_batch's reuse): per place i of out, the table
-- decoded there last (false when none) and its keys in the order they
-- came ({n = count, k1, k2, ...}; n = -1 when a key was a container).
local reuse_tab, reuse_keys = {}, {}

-- Decode records i = 0 .. n-1, each exactly p[off[i] .. stop[i]), into
-- out[1..n] (the loops over a record's items are here, in the loop over
-- the records, for the JIT; nested containers recurse). Raises CORRUPT.
-- With reuse (the consumer borrows the records: it keeps none and changes
-- none), a map whose keys come as those of the table decoded at the same
-- place of out in the previous call is decoded into that table, as the
-- Lua 5.4 host's core.poll does: its keys are compared while it is
-- filled, and at the first that differs the record is decoded again from
-- its start into a new table.
local function decode_batch(p, off, stop, n, out, reuse)
  for r = 0, n - 1 do
    local pos, lim = off[r], stop[r]
    if pos >= lim then error(CORRUPT) end
    local c = p[pos]
    local v, nxt = decode_scalar(p, pos, lim, c)
    local mapped = false -- the map decoded here (reuse)
    if v == false and not nxt then
      local cnt, map
      if c <= 0x8f then
        cnt, map, pos = c - 0x80, true, pos + 1
      elseif c <= 0x9f then
        cnt, map, pos = c - 0x90, false, pos + 1
      else
        local w = (c == 0xdc or c == 0xde) and 2 or 4
        if pos + 1 + w > lim then error(CORRUPT) end
        cnt = w == 2 and be2(p, pos + 1) or be4(p, pos + 1)
        map, pos = c >= 0xde, pos + 1 + w
      end
      if cnt > (map and (lim - pos) / 2 or lim - pos) then error(CORRUPT) end
      if map then
        local keys = reuse and reuse_keys[r + 1]
        if reuse and not keys then
          keys = { n = -1 }
          reuse_keys[r + 1] = keys
        end
        local old = reuse and out[r + 1]
        local refill = old and old == reuse_tab[r + 1] and keys.n == cnt
        v = refill and old or tnew(0, cnt)
        local start, j, plain = pos, 0, true
        while j < cnt do
          j = j + 1
          if pos >= lim then error(CORRUPT) end
          local k, x
          k, nxt = decode_scalar(p, pos, lim, p[pos])
          if k == false and not nxt then
            k, nxt = decode_value(p, pos, lim, 1)
            plain = false
          end
          if k == nil or k ~= k then error(CORRUPT) end
          if refill and (k ~= keys[j] or not plain) then
            -- another shape: this record into a new table, its keys kept
            refill, v, pos, j, plain = false, tnew(0, cnt), start, 0, true
          else
            if keys and not refill then keys[j] = k end
            pos = nxt
            if pos >= lim then error(CORRUPT) end
            x, nxt = decode_scalar(p, pos, lim, p[pos])
            if x == false and not nxt then x, nxt = decode_value(p, pos, lim, 1) end
            pos = nxt
            v[k] = x
          end
        end
        if keys and not refill then keys.n = plain and cnt or -1 end
        mapped = v
      else
        v = tnew(cnt, 0)
        for i = 1, cnt do
          if pos >= lim then error(CORRUPT) end
          local x
          x, nxt = decode_scalar(p, pos, lim, p[pos])
          if x == false and not nxt then x, nxt = decode_value(p, pos, lim, 1) end
          pos = nxt
          v[i] = x
        end
      end
      nxt = pos
    end
    if nxt ~= lim then error(CORRUPT) end
    out[r + 1] = v
    if reuse then reuse_tab[r + 1] = mapped end
  end
end

--- decode_batch(p, off, stop, n, out [, reuse]): decode records p[off[i] ..
-- stop[i]) for i = 0 .. n-1 into out[1..n] (reuse: into the tables out
-- holds from the previous call where the keys are the same, see above);
-- what core.poll runs, under one pcall per batch (raises a private value
-- for malformed input).
M.decode_batch = decode_batch

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
  function core.poll(buf, tsbuf, timeout, reuse)
    local t = the_task()
    local r = C.td_task_poll(t, timeout or -1, batch)
    if r < 0 then fail(r) end
    if r == 0 then return nil end
    if r == 2 then return 0 end
    local b = batch[0]
    local n, data, off, stop = b.n, ffi.cast(u8p, b.data), b.off, b.stop
    local has_ts, ts = b.has_ts ~= 0, b.ts
    if not pcall(decode_batch, data, off, stop, n, buf, reuse) then error("corrupt exchange buffer", 0) end
    for i = 0, n - 1 do
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

  -- core.emit(edge, buf, n [, keys [, ts [, project]]]); keys: the keys,
  -- or the records' key field (returns the index of the first record that
  -- is not a table or has a nil key: it and the rest are not sent); with a
  -- field and project true, {[field] = key} is sent for each record (as
  -- the Lua 5.4 host's core.emit)
  local recs, keybuf = new_buf(65536), new_buf(4096)
  local ends, kends, tsarr, cap = nil, nil, nil, 0
  local MAXTS, MINTS, NO_TS = INT64_MAX, INT64_MIN, INT64_MIN
  local field_keys = {}
  local projected = {} -- field -> the one-entry tables sent, one per batch slot
  function core.emit(edge, buf, n, keys, ts, project)
    local t = the_task()
    local stop
    if keys ~= nil and type(keys) ~= "table" then
      local field = keys
      keys = field_keys
      for i = 1, n do
        local v, k = buf[i], nil
        if type(v) == "table" then k = v[field] end
        if k == nil then
          stop = i
          n = i - 1
          break
        end
        keys[i] = k
      end
      if project then
        local p = projected[field]
        if p == nil then
          p = {}
          projected[field] = p
        end
        for i = 1, n do
          local r = p[i]
          if r == nil then
            r = {}
            p[i] = r
          end
          r[field] = keys[i]
        end
        buf = p
      end
    end
    if n > cap then
      cap = n < 1024 and 1024 or n
      ends, kends, tsarr = ffi.new("uint32_t[?]", cap), ffi.new("uint32_t[?]", cap), ffi.new("int64_t[?]", cap)
    end
    recs.len, keybuf.len = 0, 0
    local ok, err = pcall(encode_batch, recs, buf, n, false, ends, 0)
    if not ok then error("cannot send a record: " .. tostring(err), 0) end
    if keys then
      ok, err = pcall(encode_batch, keybuf, keys, n, true, kends, 0)
      if not ok then error("cannot hash a key: " .. tostring(err), 0) end
    end
    for i = 1, ts and n or 0 do
      local v = ts[i]
      if v == nil then
        tsarr[i - 1] = NO_TS
      elseif type(v) ~= "number" or v ~= floor(v)
          or ((v >= TWO53 or v <= -TWO53) and v ~= TWO63 and v ~= -TWO63) then
        error("a record's timestamp is not an integer (ms)", 0)
      elseif v == TWO63 then
        tsarr[i - 1] = MAXTS
      elseif v == -TWO63 then
        tsarr[i - 1] = MINTS
      else
        tsarr[i - 1] = v
      end
    end
    local rc = C.td_task_emit_batch(t, edge - 1, ffi.cast("const char *", recs.p), ends, n,
      ts and tsarr or nil, keys and ffi.cast("const char *", keybuf.p) or nil, keys and kends or nil)
    if rc ~= 0 then fail(rc) end
    return stop
  end

  -- core.check_numbers(b, n [, field]) -> nothing | index, value: as the
  -- C function (host_lua54.c), in Lua. Compiled, the loop costs a few
  -- instructions per record; the C one makes four C API calls per record,
  -- about 250 instructions a record on LuaJIT (a tenth of the streaming
  -- word count's)
  function core.check_numbers(b, n, field)
    if field == nil then
      for i = 1, n do
        local v = b[i]
        if type(v) ~= "number" then return i, v end
      end
      return
    end
    for i = 1, n do
      local r = b[i]
      if type(r) ~= "table" then return i, nil end
      local v = r[field]
      if type(v) ~= "number" then return i, v end
    end
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
    if not ok or nxt ~= #s then error("malformed encoded value", 2) end
    return v
  end
  return core
end

M.C = C
return M
