-- Loaded with dofile by the specs that drive tide.testing's harnesses:
-- the harness output as compact strings and error assertions.
local compat = require "tide.compat"
local util = require "tide.util"
local MAXWM = compat.MAX_INT -- +inf: math.maxinteger on Lua 5.4, 2^63 on LuaJIT

local M = {}

-- The harness output as compact strings: "value@ts" for records ("value@-"
-- when the record has no timestamp) and "W<t>" for watermarks ("W+inf" for
-- the final one).
function M.show(list)
  local out = {}
  for i, e in ipairs(list) do
    if e.watermark ~= nil then
      out[i] = e.watermark == MAXWM and "W+inf" or ("W" .. util.format(e.watermark))
    else
      out[i] = tostring(e.value) .. "@" .. (e.ts == nil and "-" or util.format(e.ts))
    end
  end
  return out
end

function M.output(h) return M.show(h:output()) end

-- The message of the error fn(...) raises (asserting it raises).
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error", 2) end
  return tostring(err)
end

function M.contains(s, sub)
  if not s:find(sub, 1, true) then error("'" .. s .. "' does not contain '" .. sub .. "'", 2) end
end

return M
