--- tide.util: durations, argument checks and value formatting shared by
-- the builder (tide.lua) and the runtime (tide/runtime.lua).
local compat = require "tide.compat"

local M = {}

local math_type, tointeger, floor, format = compat.math_type, compat.tointeger, math.floor, string.format

-- The digits of an integer: tostring on Lua 5.4; LuaJIT's tostring keeps
-- 14 significant digits (1e+15), so "%d" there (exact below 2^53)
local int_str = tostring
if compat.luajit then int_str = function(v) return format("%d", v) end end

local UNITS = { ms = 1, s = 1000, m = 60000, h = 3600000, d = 86400000 }

--- Parse a duration into integer milliseconds.
-- @param v number (ms) or string such as "500ms", "10s", "5m", "1h", "1d"
-- @param what string naming the argument, for the error message
-- @return integer milliseconds (>= 0)
-- Raises "bad <what>: ..." for anything else (negative, unknown unit).
function M.duration(v, what, level)
  local ms
  if math_type(v) == "integer" then
    ms = v
  elseif type(v) == "number" and v == floor(v) then
    ms = tointeger(v)
  elseif type(v) == "string" then
    local num, unit = v:match("^%s*(%d+%.?%d*)%s*(%a+)%s*$")
    if num and UNITS[unit] then
      ms = tointeger(floor(tonumber(num) * UNITS[unit] + 0.5))
    end
  end
  if not ms or ms < 0 then
    error(string.format("bad %s: expected a duration (ms, or a string like '500ms', '10s', '5m', '1h', '1d'), got %s",
      what or "duration", type(v) == "string" and ("'" .. v .. "'") or tostring(v)), (level or 1) + 1)
  end
  return ms
end

local SIZE_UNITS = { B = 1, KB = 1024, MB = 1024 ^ 2, GB = 1024 ^ 3, TB = 1024 ^ 4 }

--- A memory size in bytes: a whole number of bytes, or a string "64MB",
-- "1.5GB", "512KB" (units B, KB, MB, GB, TB, powers of 1024, as Flink's
-- MemorySize; case-insensitive).
-- @raise naming `what` when v is not a size (level as error's)
function M.bytes(v, what, level)
  local n
  if math_type(v) == "integer" then
    n = v
  elseif type(v) == "string" then
    local num, unit = v:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
    local mult = num and SIZE_UNITS[unit == "" and "B" or unit:upper()]
    if mult then n = tointeger(floor(tonumber(num) * mult + 0.5)) end
  end
  if not n or n < 0 then
    error(string.format("bad %s: expected a size (bytes, or a string like '64MB', '1GB'), got %s",
      what or "size", type(v) == "string" and ("'" .. v .. "'") or tostring(v)), (level or 1) + 1)
  end
  return n
end

--- A job name as it appears in file and directory names (checkpoint
-- directories, part files): characters other than letters, digits, '.',
-- '_' and '-' become '_'; an empty name or one of only dots becomes "job".
function M.safe_name(job)
  local name = tostring(job):gsub("[^%w%._%-]", "_")
  if name == "" or name:match("^%.+$") then name = "job" end
  return name
end

--- Format a float so that it reads back as the same number, shortest first.
local function fmt_float(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  for p = 15, 17 do
    local s = string.format("%." .. p .. "g", v)
    if tonumber(s) == v then
      if not s:find("[%.eEn]") then s = s .. ".0" end
      return s
    end
  end
end
M.fmt_float = fmt_float

local fmt_value

local function fmt_key(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. fmt_value(k, true) .. "]"
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

--- Render a record as text: strings as they are (quoted inside tables),
-- numbers (integers without a decimal point, floats that read back
-- exactly, with ".0" when integral), booleans, nil, and tables as {1, 2}
-- or {a=1, b="x"} with keys in sorted order, so output does not depend on
-- hash order. Integer or float is compat.math_type's: under LuaJIT 5.0 is
-- the integer 5 and prints "5" (Lua 5.4: "5.0").
function fmt_value(v, nested)
  local t = type(v)
  if t == "string" then
    if not nested then return v end
    return (string.format("%q", v):gsub("\\\n", "\\n"))
  elseif t == "number" then
    if math_type(v) == "integer" then return int_str(v) end
    return fmt_float(v)
  elseif t == "table" then
    local n = #v
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    local parts = {}
    if count == n then
      for i = 1, n do parts[i] = fmt_value(v[i], true) end
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys, key_order)
      for i, k in ipairs(keys) do parts[i] = fmt_key(k) .. "=" .. fmt_value(v[k], true) end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  else
    return tostring(v)
  end
end
M.format = fmt_value

--- One CSV field per RFC 4180: quoted when it holds the delimiter, a quote,
-- CR or LF; quotes doubled.
function M.csv_field(v, delim)
  local t = type(v)
  local s
  if t == "string" then
    s = v
  elseif t == "number" then
    s = math_type(v) == "integer" and int_str(v) or fmt_float(v)
  elseif t == "boolean" then
    s = tostring(v)
  elseif v == nil then
    return ""
  else
    error("write_csv: cannot write a " .. t .. " value in a CSV field", 0)
  end
  if s:find('[\r\n"]', 1) or s:find(delim, 1, true) then
    s = '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

--- Sorted keys of a table (used for CSV columns of map records).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, key_order)
  return keys
end

return M
