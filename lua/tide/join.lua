--- tide.join: joins of two streams, built on the two-input process
-- operator and the window operator.
--
--   left:key_by("k"):interval_join(right:key_by("k")):between(-5, 5):process(fn)
--     Flink's IntervalJoinOperator: pairs whose timestamps satisfy
--     left.ts + lower <= right.ts <= left.ts + upper, buffered in keyed map
--     state until the watermark passes them.
--   a:join(b):where(f):equal_to(g):window(assigner):apply(fn)
--   a:co_group(b):where(f):equal_to(g):window(assigner):apply(fn)
--     Flink's JoinedStreams / CoGroupedStreams: both inputs tagged with
--     their side and key, keyed and read by one node of the normal window
--     operator (a union, as Flink's), so every assigner, trigger, evictor
--     and allowed_lateness applies.
local util = require "tide.util"
local compat = require "tide.compat"
local math_type, MIN_INT = compat.math_type, compat.MIN_INT

local M = {}

-- "file:line" of the user's call (the first frame outside Tide's files)
local function call_site() return require("tide")._call_site() end

local function bad(n, fname, what, level)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, what), level + 1)
end

-- ---- interval join ----------------------------------------------------------

local IntervalJoin = {}
IntervalJoin.__index = IntervalJoin
local IntervalJoined = {}
IntervalJoined.__index = IntervalJoined

--- left:interval_join(right) (both KeyedStreams; lua/tide.lua's
-- KeyedStream:interval_join calls this).
function M.interval_join(left, right, level)
  local site = call_site()
  local tide = require "tide"
  if getmetatable(left) ~= tide.KeyedStream then
    error("interval_join at " .. site .. ": the left stream is not keyed (interval joins need key_by on both)",
      level + 1)
  end
  if getmetatable(right) ~= tide.KeyedStream then
    error("interval_join at " .. site .. ": the right stream is not keyed (interval joins need key_by on both)",
      level + 1)
  end
  return setmetatable({ left = left, right = right, site = site }, IntervalJoin)
end

--- The interval (Flink's IntervalJoin.between): right records join a left
-- record when left.ts + lower <= right.ts <= left.ts + upper. Durations
-- (ms or "5s"), negative allowed; lower <= upper.
-- @return IntervalJoined
function IntervalJoin:between(lower, upper)
  local function ms(v, n)
    if math_type(v) == "integer" then return v end
    if type(v) == "string" then
      local neg = v:sub(1, 1) == "-"
      local d = util.duration(neg and v:sub(2) or v, "between", 3)
      return neg and -d or d
    end
    bad(n, "between", "duration expected, got " .. tostring(v), 3)
  end
  local lo, hi = ms(lower, 1), ms(upper, 2)
  if lo > hi then
    error(string.format("between: lower bound %d is above upper bound %d (interval_join at %s)", lo, hi,
      self.site), 2)
  end
  return setmetatable({ left = self.left, right = self.right, site = self.site, lower = lo, upper = hi,
    lower_inclusive = true, upper_inclusive = true }, IntervalJoined)
end

--- Refused: an interval join needs between(lower, upper) first.
function IntervalJoin:process()
  error("interval_join at " .. self.site .. ": process needs between(lower, upper) first", 2)
end

--- Exclude the lower bound (Flink's lowerBoundExclusive).
function IntervalJoined:lower_bound_exclusive()
  self.lower_inclusive = false
  return self
end

--- Exclude the upper bound (Flink's upperBoundExclusive).
function IntervalJoined:upper_bound_exclusive()
  self.upper_inclusive = false
  return self
end

--- Send left records that arrive late (timestamp below the watermark) to
-- side output tag instead of dropping them (Flink's sideOutputLeftLateData).
function IntervalJoined:side_output_left_late_data(tag)
  if type(tag) ~= "string" or tag == "" then bad(1, "side_output_left_late_data", "non-empty string tag expected", 2) end
  self.left_late = tag
  return self
end

--- As side_output_left_late_data, for right records.
function IntervalJoined:side_output_right_late_data(tag)
  if type(tag) ~= "string" or tag == "" then bad(1, "side_output_right_late_data", "non-empty string tag expected", 2) end
  self.right_late = tag
  return self
end

-- The timestamps of a buffer (map state ts -> {values}) in [lo, hi],
-- ascending (only the matches are sorted: the buffer is scanned whole, as
-- Flink's IntervalJoinOperator iterates the other side's buffer).
local function timestamps_in(buffer, lo, hi)
  local list = {}
  for t in buffer:keys() do
    if t >= lo and t <= hi then list[#list + 1] = t end
  end
  table.sort(list)
  return list
end

--- The join function (Flink's ProcessJoinFunction): fn(left, right, ctx,
-- out) for every pair, out:collect(v) emits with the pair's larger
-- timestamp; ctx.left_timestamp, ctx.right_timestamp, ctx.timestamp, ctx.key,
-- ctx:output(tag, v). As Flink's IntervalJoinOperator: each record is
-- buffered in keyed map state (by timestamp) and joined with the other
-- side's buffer; a record below the current watermark is late (dropped, or
-- sent to the late side output); an event-time timer per record removes
-- it once no future record of the other side can join it. Records need
-- timestamps (assign_timestamps); one without fails the job naming the
-- operator.
-- @return DataStream
function IntervalJoined:process(fn)
  if type(fn) ~= "function" then bad(1, "process", "function expected, got " .. type(fn), 2) end
  local lower = self.lower + (self.lower_inclusive and 0 or 1)
  local upper = self.upper - (self.upper_inclusive and 0 or 1)
  if lower > upper then
    error(string.format("interval_join at %s: the interval [%d, %d] with its exclusive bounds is empty",
      self.site, self.lower, self.upper), 2)
  end
  local left_late, right_late = self.left_late, self.right_late
  local jctx = {}
  local pctx -- the process function's ctx
  function jctx.output(_, tag, v) pctx:output(tag, v) end
  local function emit(l, lts, r, rts, out)
    local t = lts > rts and lts or rts
    pctx:_set_timestamp(t)
    jctx.left_timestamp, jctx.right_timestamp, jctx.timestamp, jctx.key = lts, rts, t, pctx.key
    fn(l, r, jctx, out)
  end
  -- Flink's processElement: buffer, join with the other side, register
  -- the cleanup timer
  local function element(v, ctx, out, is_left)
    pctx = ctx
    local ts = ctx.timestamp
    local side = is_left and "left" or "right"
    if ts == nil then
      error("interval_join: a record of the " .. side .. " input has no timestamp (interval joins need " ..
        "event time: assign_timestamps)", 0)
    end
    local wm = ctx.timers:current_watermark()
    if wm ~= MIN_INT and ts < wm then
      local tag = is_left and left_late or right_late
      if tag then ctx:output(tag, v) end
      return
    end
    local ours = ctx.state:map(is_left and "interval_join_left" or "interval_join_right")
    local other = ctx.state:map(is_left and "interval_join_right" or "interval_join_left")
    local list = ours:get(ts) or {}
    list[#list + 1] = v
    ours:put(ts, list)
    local rlo, rhi = lower, upper
    if not is_left then rlo, rhi = -upper, -lower end
    for _, t in ipairs(timestamps_in(other, ts + rlo, ts + rhi)) do
      for _, o in ipairs(other:get(t)) do
        if is_left then emit(v, ts, o, t, out) else emit(o, t, v, ts, out) end
      end
    end
    ctx:_set_timestamp(ts)
    ctx.timers:register_event_time(rhi > 0 and ts + rhi or ts)
  end
  -- Flink's onEventTime: a timer at T is the cleanup time of left records
  -- at (upper <= 0 and T or T - upper) and right records at (lower <= 0
  -- and T + lower or T); one timer serves both, since a buffered bucket's
  -- own timer is at T whenever that bucket exists
  local function on_timer(t, ctx)
    ctx.state:map("interval_join_left"):remove(upper <= 0 and t or t - upper)
    ctx.state:map("interval_join_right"):remove(lower <= 0 and t + lower or t)
  end
  local tide = require "tide"
  local s = tide.DataStream.connect(self.left, self.right)
  local out = s:process{
    on_record1 = function(v, ctx, o) element(v, ctx, o, true) end,
    on_record2 = function(v, ctx, o) element(v, ctx, o, false) end,
    on_timer = on_timer,
  }
  local node = out.env.nodes[out.id]
  node.name, node.site = "interval_join", self.site
  node.interval = { lower = lower, upper = upper }
  return out
end

-- ---- window joins and co-groups -------------------------------------------

local Joined = {}
Joined.__index = Joined

--- a:join(b) (join = true) or a:co_group(b): Flink's JoinedStreams /
-- CoGroupedStreams.
function M.joined(a, b, join, level)
  local tide = require "tide"
  local fname = join and "join" or "co_group"
  if getmetatable(b) ~= tide.DataStream and getmetatable(b) ~= tide.KeyedStream then
    error("bad argument #1 to '" .. fname .. "' (stream expected, got " .. type(b) .. ")", level + 1)
  end
  return setmetatable({ a = a, b = b, join = join, fname = fname, site = call_site() }, Joined)
end

local function key_fn(k, fname)
  if type(k) == "function" then return k end
  if type(k) == "string" or math_type(k) == "integer" then return function(v) return v[k] end end
  bad(1, fname, "field name, index or function expected, got " .. type(k), 3)
end

--- The key of the first input's records (Flink's where).
function Joined:where(key)
  self.key1 = key_fn(key, "where")
  return self
end

--- The key of the second input's records (Flink's equalTo).
function Joined:equal_to(key)
  if not self.key1 then error(self.fname .. " at " .. self.site .. ": equal_to before where", 2) end
  self.key2 = key_fn(key, "equal_to")
  return self
end

--- Refused: a window join or co-group needs where, equal_to and window
-- before apply.
function Joined:apply()
  error(self.fname .. " at " .. self.site .. ": apply needs where(key), equal_to(key) and window(assigner) first", 2)
end

--- Window both inputs (Flink's JoinedStreams.where().equalTo().window()):
-- returns a WindowedStream (trigger, evictor, allowed_lateness,
-- side_output_late as windows'), whose apply(fn) joins: for a join,
-- fn(left, right [, out]) for every pair of a key's window (left records
-- in arrival order, then right ones), emitting its return value (if not
-- nil) and what it collects; for a co_group, fn(lefts, rights, out) once
-- per key and window, with the arrays of both inputs' records (one may be
-- empty). Output timestamps are the window's max_timestamp.
function Joined:window(assigner)
  if not self.key1 or not self.key2 then
    error(self.fname .. " at " .. self.site .. ": window needs where(key) and equal_to(key) first", 2)
  end
  local k1, k2, site = self.key1, self.key2, self.site
  local function tagger(i, keyf)
    return function(v)
      local k = keyf(v)
      if k == nil then
        error(string.format("%s at %s: the key of a record of input %d is nil", self.fname, site, i), 0)
      end
      return { k = k, i = i, v = v }
    end
  end
  -- a tagging map runs at its input's parallelism when that is fixed (a
  -- non-parallel source, or one set with set_parallelism), so it chains
  -- and keeps the input's order up to the exchange
  local function tagged(s, i, keyf)
    local t = s:map(tagger(i, keyf)):name(self.fname .. "_tag_" .. i)
    local up = s.env.nodes[s.id]
    local p = up.non_parallel and 1 or up.parallelism
    if p and s.partition == nil then t:set_parallelism(p) end
    return t
  end
  -- the window node reads both tagged streams, keyed alike (no union node:
  -- each input keeps its order up to the window)
  local ws = require("tide.window").windowed(tagged(self.a, 1, k1):key_by("k"), assigner, { keyed = true })
  ws.more_inputs = { tagged(self.b, 2, k2):key_by("k") }
  local join = self.join
  local window = require "tide.window"
  -- the window's element arrays split by input
  local function split(elements)
    local l, r = {}, {}
    for _, e in ipairs(elements) do
      if e.i == 1 then l[#l + 1] = e.v else r[#r + 1] = e.v end
    end
    return l, r
  end
  local fname = self.fname
  ws.apply = function(w, fn)
    if type(fn) ~= "function" then bad(1, "apply", "function expected, got " .. type(fn), 2) end
    local f
    if join then
      f = function(_, _, elements, out)
        local l, r = split(elements)
        for i = 1, #l do
          for j = 1, #r do
            local v = fn(l[i], r[j], out)
            if v ~= nil then out:collect(v) end
          end
        end
      end
    else
      f = function(_, _, elements, out)
        local l, r = split(elements)
        fn(l, r, out)
      end
    end
    local s = window.WindowedStream.process(w, f)
    local node = s.env.nodes[s.id]
    node.name, node.site = fname, site
    return s
  end
  ws.process = ws.apply
  return ws
end

return M
