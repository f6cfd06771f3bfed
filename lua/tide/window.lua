--- tide.window: Flink's window API and window operator.
--
--   stream:key_by("user")
--     :window(tide.windows.tumbling("10s"))
--     :allowed_lateness("1m"):side_output_late("late")
--     :sum("amount")
--
-- Semantics are Flink's (WindowOperator, EvictingWindowOperator,
-- MergingWindowSet, the assigners, triggers and evictors of
-- org.apache.flink.streaming.api.windowing), rewritten for Lua:
--
-- * an element is assigned to windows; a window that is late
--   (event time, max_timestamp + allowed_lateness <= watermark) is skipped;
--   an element all of whose windows are late, and that is itself late
--   (timestamp + allowed_lateness <= watermark), goes to the late side
--   output or is dropped (Flink's isSkippedElement / isElementLate);
-- * per (key, window) a trigger decides: continue, fire, purge,
--   fire_and_purge; a fire emits the window's contents through the window
--   function with timestamp window.max_timestamp;
-- * a cleanup timer at max_timestamp + allowed_lateness (event time) or at
--   max_timestamp (processing time) drops the window's state and calls the
--   trigger's clear; none is set for the global window (its
--   max_timestamp is compat.MAX_INT);
-- * session windows merge as Flink's MergingWindowSet: the state of a
--   merged window stays in one of the merged windows' state windows, the
--   trigger's on_merge is called with the merged window, merged windows'
--   triggers are cleared and their cleanup timers deleted.
--
-- The operator (M.operator) has three implementations: the general window
-- operator (any assigner, trigger, evictor, function), and two fast paths
-- for the common cases that give the same output: event-time tumbling and
-- sliding windows with the default trigger, no evictor and an incremental
-- function (per-slice accumulators shared by overlapping windows), and
-- event-time session windows with the default trigger, no allowed lateness
-- and no evictor. Every implementation keeps its keys in the keyed-state
-- layer (tide.state) and writes one snapshot format ("keyed state and
-- snapshots" below), so each restores the others' snapshots, also at
-- another parallelism.
--
-- Where this differs from Flink, on purpose:
-- * the operator's watermark is part of its snapshot and comes back with
--   it (Flink restarts from Long.MIN_VALUE, which lets elements that were
--   late before a failure into windows that had fired, and makes replays
--   differ from the first run);
-- * continuous_event_time stops re-arming a window that never ends (the
--   global window) at the final watermark, where Flink would loop forever;
-- * when windows merge, the earliest merged window's state window keeps the
--   state (Flink: any of them), so a process function sees the elements of
--   earlier windows first; an element whose window equals an in-flight
--   merged window joins it (Flink's MergingWindowSet would replace that
--   window's state window; possible with dynamic gaps only);
-- * trigger state that a trigger leaves behind is dropped with its window
--   at cleanup, and reducing trigger state is merged automatically when
--   windows merge (before on_merge), as Flink's built-in triggers do with
--   mergePartitionedState;
-- * results that stay in the window state after a firing (a reduce's
--   accumulator, with allowed lateness or a trigger that does not purge)
--   are emitted as copies, so later elements cannot change what was emitted;
-- * sliding windows on the fast path combine per-slice partial results:
--   exact for count, min, max and integer sums; a reduce or an aggregate's
--   merge must be associative (as for Flink's sliced Table API windows), and
--   a sum of floats may differ from Flink's element-by-element sum in the
--   last bits.
local util = require "tide.util"
local timers = require "tide.timers"
local state = require "tide.state"
local compat = require "tide.compat"
local has_core, core = pcall(require, "tide.core")

local M = {}

local MAXINT, MININT = compat.MAX_INT, compat.MIN_INT
local math_type, tointeger = compat.math_type, compat.tointeger
local fmod = math.fmod
local type, pairs, ipairs, error, setmetatable, getmetatable =
  type, pairs, ipairs, error, setmetatable, getmetatable

-- ---- helpers -------------------------------------------------------------

local function show(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  return tostring(v)
end

local function argerr(n, fname, msg, level)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), (level or 2) + 1)
end

-- A duration in ms: an integer or a string such as "10s" (tide.util);
-- a leading "-" is allowed when negative is true (offsets).
local function duration(v, n, fname, what, negative, level)
  local ms
  if math_type(v) == "integer" then
    ms = v
  elseif type(v) == "number" and v == math.floor(v) and v == v and v > -2^63 and v < 2^63 then
    ms = tointeger(v) -- nil on LuaJIT beyond 2^53
  elseif type(v) == "string" then
    local neg, rest = v:match("^%s*(%-?)(.*)$")
    local ok, d = pcall(util.duration, rest)
    if ok then ms = neg == "-" and -d or d end
  end
  if ms == nil or (ms < 0 and not negative) then
    argerr(n, fname, string.format("%s expected, got %s", what, show(v)), (level or 2) + 1)
  end
  return ms
end

--- Flink's TimeWindow.getWindowStartWithOffset, with Java's remainder
-- (math.fmod on integers truncates toward zero as Java's % does).
function M.window_start(timestamp, offset, size)
  local remainder = fmod(timestamp - offset, size)
  if remainder < 0 then return timestamp - (remainder + size) end
  return timestamp - remainder
end
local window_start = M.window_start
-- The fast paths use t - (t - offset) % size: Lua's floored % gives the
-- same start (the remainder, made non-negative by adding size).

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  return c
end
M._deep_copy = deep_copy

local window_id -- nil: start .. ":" .. stop
if compat.luajit then window_id = function(s, e) return string.format("%d:%d", s, e) end end

local function shallow_copy(t)
  local c = {}
  for k, x in pairs(t) do c[k] = x end
  return c
end

--- The global window (Flink's GlobalWindow): max_timestamp is
-- compat.MAX_INT, so it never has a cleanup timer.
M.GLOBAL_WINDOW = { start = MININT, stop = MAXINT, max_timestamp = MAXINT, global = true }

-- ---- assigners (tide.windows) ---------------------------------------------

local Assigner = {}
Assigner.__index = Assigner

local function time_opt(opts, n, fname)
  if opts == nil then return "event" end
  if type(opts) ~= "table" then argerr(n, fname, "table of options expected, got " .. type(opts), 3) end
  local t = opts.time
  if t == nil then return "event" end
  if t ~= "event" and t ~= "processing" then
    argerr(n, fname, "option time must be 'event' or 'processing', got " .. show(t), 3)
  end
  return t
end

local windows = {}

--- Tumbling windows of a fixed size (Flink's TumblingEventTimeWindows /
-- TumblingProcessingTimeWindows).
-- @param size duration > 0
-- @param opts optional: offset (duration, |offset| < size, may be
--   negative), time ("event" default, or "processing")
function windows.tumbling(size, opts)
  local s = duration(size, 1, "tumbling", "positive duration")
  if s <= 0 then argerr(1, "tumbling", "positive duration expected, got " .. show(size)) end
  local time = time_opt(opts, 2, "tumbling")
  local off = 0
  if opts and opts.offset ~= nil then off = duration(opts.offset, 2, "tumbling", "duration for offset", true) end
  if math.abs(off) >= s then
    argerr(2, "tumbling", string.format("offset must satisfy abs(offset) < size, got offset %d and size %d", off, s))
  end
  return setmetatable({ kind = "tumbling", time = time, size = s, slide = s, offset = off,
    event_time = time == "event", merging = false }, Assigner)
end

--- Sliding windows (Flink's SlidingEventTimeWindows /
-- SlidingProcessingTimeWindows): windows of size starting every slide.
-- @param opts optional: offset (|offset| < slide), time
function windows.sliding(size, slide, opts)
  local s = duration(size, 1, "sliding", "positive duration")
  if s <= 0 then argerr(1, "sliding", "positive duration expected, got " .. show(size)) end
  local sl = duration(slide, 2, "sliding", "positive duration")
  if sl <= 0 then argerr(2, "sliding", "positive duration expected, got " .. show(slide)) end
  local time = time_opt(opts, 3, "sliding")
  local off = 0
  if opts and opts.offset ~= nil then off = duration(opts.offset, 3, "sliding", "duration for offset", true) end
  if math.abs(off) >= sl then
    argerr(3, "sliding", string.format("offset must satisfy abs(offset) < slide, got offset %d and slide %d", off, sl))
  end
  return setmetatable({ kind = "sliding", time = time, size = s, slide = sl, offset = off,
    event_time = time == "event", merging = false }, Assigner)
end

--- Session windows (Flink's EventTimeSessionWindows,
-- ProcessingTimeSessionWindows and their Dynamic variants): an element
-- opens [t, t + gap); overlapping (or touching) windows merge.
-- @param gap duration > 0, or function(element) -> duration > 0
-- @param opts optional: time
function windows.session(gap, opts)
  local time = time_opt(opts, 2, "session")
  local g, gap_fn
  if type(gap) == "function" then
    gap_fn = gap
  else
    g = duration(gap, 1, "session", "positive duration or function")
    if g <= 0 then argerr(1, "session", "positive duration or function expected, got " .. show(gap)) end
  end
  return setmetatable({ kind = "session", time = time, gap = g, gap_fn = gap_fn,
    event_time = time == "event", merging = true }, Assigner)
end

--- One global window for all elements of a key (Flink's GlobalWindows):
-- its default trigger never fires; set one with :trigger().
function windows.global()
  return setmetatable({ kind = "global", time = "none", event_time = false, merging = false }, Assigner)
end

M.windows = windows

-- The dynamic gap of an element (Flink: "Dynamic session time gap must
-- satisfy 0 < gap").
local function dynamic_gap(fn, v)
  local g = fn(v)
  if math_type(g) ~= "integer" then
    if type(g) == "string" or type(g) == "number" then
      local ok, d = pcall(util.duration, g)
      g = ok and d or nil
    else
      g = nil
    end
    if g == nil then error("session: the gap function must return a duration", 0) end
  end
  if g <= 0 then error("session: dynamic session time gap must satisfy 0 < gap, got " .. tostring(g), 0) end
  return g
end

-- ---- triggers (tide.triggers) -----------------------------------------------

local Trigger = {}
Trigger.__index = Trigger

local function continue_fn() return "continue" end
local function noop() end

local triggers = {}

-- EventTimeTrigger's on_element (the general window operator runs it in
-- line when a trigger has it)
local function event_time_on_element(_, _, w, ctx)
  if w.max_timestamp <= ctx:current_watermark() then
    return "fire" -- the watermark is past the window: a late firing
  end
  ctx:register_event_time_timer(w.max_timestamp)
  return "continue"
end

-- Flink's EventTimeTrigger.
function triggers.event_time()
  return setmetatable({
    kind = "event_time", can_merge = true,
    on_element = event_time_on_element,
    on_event_time = function(time, w) return time == w.max_timestamp and "fire" or "continue" end,
    on_processing_time = continue_fn,
    on_merge = function(w, ctx)
      if w.max_timestamp > ctx:current_watermark() then ctx:register_event_time_timer(w.max_timestamp) end
    end,
    clear = function(w, ctx) ctx:delete_event_time_timer(w.max_timestamp) end,
  }, Trigger)
end

-- Flink's ProcessingTimeTrigger.
function triggers.processing_time()
  return setmetatable({
    kind = "processing_time", can_merge = true,
    on_element = function(_, _, w, ctx)
      ctx:register_processing_time_timer(w.max_timestamp)
      return "continue"
    end,
    on_event_time = continue_fn,
    on_processing_time = function() return "fire" end,
    on_merge = function(w, ctx)
      if w.max_timestamp > ctx:current_processing_time() then
        ctx:register_processing_time_timer(w.max_timestamp)
      end
    end,
    clear = function(w, ctx) ctx:delete_processing_time_timer(w.max_timestamp) end,
  }, Trigger)
end

local function add_int(a, b) return a + b end
local function min_int(a, b) return a < b and a or b end

-- Flink's CountTrigger: fires when the window holds n elements since the
-- last firing (a reducing state "count", merged when windows merge).
function triggers.count(n)
  if math_type(n) ~= "integer" or n < 1 then
    argerr(1, "count", "positive integer expected, got " .. show(n))
  end
  return setmetatable({
    kind = "count", can_merge = true, max_count = n,
    on_element = function(_, _, _, ctx)
      local c = ctx.state:reducing("count", add_int)
      c:add(1)
      if c:get() >= n then
        c:clear()
        return "fire"
      end
      return "continue"
    end,
    on_event_time = continue_fn,
    on_processing_time = continue_fn,
    on_merge = function(_, ctx) ctx.state:reducing("count", add_int) end,
    clear = function(_, ctx) ctx.state:reducing("count", add_int):clear() end,
  }, Trigger)
end

local function check_interval(interval, fname)
  local ms = duration(interval, 1, fname, "positive duration", false, 3)
  if ms <= 0 then argerr(1, fname, "positive duration expected, got " .. show(interval), 3) end
  return ms
end

-- Flink's ContinuousEventTimeTrigger (with FLINK-20443: the next firing is
-- never after the window's end).
function triggers.continuous_event_time(interval)
  local iv = check_interval(interval, "continuous_event_time")
  local function register_next(time, w, ctx, st)
    -- At the end of input (watermark compat.MAX_INT) a window that never
    -- ends (the global window) would be re-armed forever, as in Flink; the
    -- firing at hand is its last.
    if w.max_timestamp == MAXINT and ctx:current_watermark() == MAXINT then return end
    local nxt = time + iv
    if w.max_timestamp < nxt then nxt = w.max_timestamp end
    st:add(nxt)
    ctx:register_event_time_timer(nxt)
  end
  return setmetatable({
    kind = "continuous_event_time", can_merge = true, interval = iv,
    on_element = function(_, ts, w, ctx)
      if w.max_timestamp <= ctx:current_watermark() then return "fire" end
      ctx:register_event_time_timer(w.max_timestamp)
      local st = ctx.state:reducing("fire-time", min_int)
      if st:get() == nil then register_next(ts - fmod(ts, iv), w, ctx, st) end
      return "continue"
    end,
    on_event_time = function(time, w, ctx)
      if time == w.max_timestamp then return "fire" end
      local st = ctx.state:reducing("fire-time", min_int)
      local f = st:get()
      if f ~= nil and f == time then
        st:clear()
        register_next(time, w, ctx, st)
        return "fire"
      end
      return "continue"
    end,
    on_processing_time = continue_fn,
    on_merge = function(_, ctx)
      local f = ctx.state:reducing("fire-time", min_int):get()
      if f ~= nil then ctx:register_event_time_timer(f) end
    end,
    clear = function(_, ctx)
      local st = ctx.state:reducing("fire-time", min_int)
      local f = st:get()
      if f ~= nil then
        ctx:delete_event_time_timer(f)
        st:clear()
      end
    end,
  }, Trigger)
end

-- Flink's ContinuousProcessingTimeTrigger (with FLINK-20443).
function triggers.continuous_processing_time(interval)
  local iv = check_interval(interval, "continuous_processing_time")
  local function register_next(time, w, ctx, st)
    local nxt = time + iv
    if w.max_timestamp < nxt then nxt = w.max_timestamp end
    st:add(nxt)
    ctx:register_processing_time_timer(nxt)
  end
  return setmetatable({
    kind = "continuous_processing_time", can_merge = true, interval = iv,
    on_element = function(_, _, w, ctx)
      local st = ctx.state:reducing("fire-time", min_int)
      local now = ctx:current_processing_time()
      if st:get() == nil then register_next(now - fmod(now, iv), w, ctx, st) end
      return "continue"
    end,
    on_event_time = continue_fn,
    on_processing_time = function(time, w, ctx)
      local st = ctx.state:reducing("fire-time", min_int)
      if st:get() == time then
        st:clear()
        register_next(time, w, ctx, st)
        return "fire"
      end
      return "continue"
    end,
    on_merge = function(_, ctx)
      local f = ctx.state:reducing("fire-time", min_int):get()
      if f ~= nil then ctx:register_processing_time_timer(f) end
    end,
    clear = function(_, ctx)
      local st = ctx.state:reducing("fire-time", min_int)
      local f = st:get()
      if f ~= nil then
        ctx:delete_processing_time_timer(f)
        st:clear()
      end
    end,
  }, Trigger)
end

-- Fires once, when the final watermark (compat.MAX_INT, end of input)
-- arrives (Flink's GlobalWindows.createWithEndOfStreamTrigger).
function triggers.end_of_stream()
  return setmetatable({
    kind = "end_of_stream", can_merge = true,
    on_element = function(_, _, _, ctx)
      ctx:register_event_time_timer(MAXINT)
      return "continue"
    end,
    on_event_time = function(time) return time == MAXINT and "fire" or "continue" end,
    on_processing_time = continue_fn,
    on_merge = function(_, ctx) ctx:register_event_time_timer(MAXINT) end,
    clear = function(_, ctx) ctx:delete_event_time_timer(MAXINT) end,
  }, Trigger)
end

-- The default trigger of the global window (Flink's NeverTrigger).
local function never_trigger()
  return setmetatable({ kind = "never", can_merge = true, on_element = continue_fn,
    on_event_time = continue_fn, on_processing_time = continue_fn, on_merge = noop, clear = noop }, Trigger)
end

local RESULTS = { continue = "continue", fire = "fire", purge = "purge", fire_and_purge = "fire_and_purge" }
local FIRE = { fire = true, fire_and_purge = true }
local PURGE = { purge = true, fire_and_purge = true }

-- A trigger from a built-in or a table of Lua functions (Flink's Trigger):
--   on_element(element, timestamp, window, ctx) -> result (required)
--   on_event_time(time, window, ctx) -> result      (default "continue")
--   on_processing_time(time, window, ctx) -> result (default "continue")
--   on_merge(window, ctx)  (optional: makes the trigger usable with session
--                           windows; reducing state is already merged)
--   clear(window, ctx)     (optional: delete the window's timers and state)
-- where result is "continue" (or nil), "fire", "purge" or "fire_and_purge",
-- and ctx (bound to the current key and window) has
--   ctx:register_event_time_timer(t), ctx:register_processing_time_timer(t),
--   ctx:delete_event_time_timer(t), ctx:delete_processing_time_timer(t),
--   ctx:current_watermark(), ctx:current_processing_time(), ctx.key,
--   ctx.window, and per-key, per-window state: ctx.state:value(name)
--   (value(), update(v), clear()) and ctx.state:reducing(name, fn) (get(),
--   add(v), clear()).
local function as_trigger(t, n, fname)
  if getmetatable(t) == Trigger then return t end
  if type(t) ~= "table" or type(t.on_element) ~= "function" then
    argerr(n, fname, "trigger expected (a tide.triggers value or a table with an on_element function), got "
      .. type(t), 3)
  end
  for _, f in ipairs { "on_event_time", "on_processing_time", "on_merge", "clear" } do
    if t[f] ~= nil and type(t[f]) ~= "function" then
      argerr(n, fname, string.format("trigger field %s must be a function, got %s", f, type(t[f])), 3)
    end
  end
  return setmetatable({ kind = "custom", can_merge = t.on_merge ~= nil, on_element = t.on_element,
    on_event_time = t.on_event_time or continue_fn, on_processing_time = t.on_processing_time or continue_fn,
    on_merge = t.on_merge, clear = t.clear or noop }, Trigger)
end

-- Flink's PurgingTrigger: a fire of the nested trigger becomes
-- fire_and_purge.
function triggers.purging(t)
  t = as_trigger(t, 1, "purging")
  local function purging(r)
    if FIRE[r] then return "fire_and_purge" end
    return r
  end
  return setmetatable({
    kind = "purging", nested = t, can_merge = t.can_merge,
    on_element = function(v, ts, w, ctx) return purging(t.on_element(v, ts, w, ctx)) end,
    on_event_time = function(time, w, ctx) return purging(t.on_event_time(time, w, ctx)) end,
    on_processing_time = function(time, w, ctx) return purging(t.on_processing_time(time, w, ctx)) end,
    on_merge = t.on_merge and function(w, ctx) return t.on_merge(w, ctx) end or nil,
    clear = function(w, ctx) return t.clear(w, ctx) end,
  }, Trigger)
end

M.triggers = triggers

-- ---- evictors (tide.evictors) ----------------------------------------------

local Evictor = {}
Evictor.__index = Evictor

local function after_opt(opts, fname)
  if opts == nil then return false end
  if type(opts) ~= "table" then argerr(2, fname, "table of options expected, got " .. type(opts), 3) end
  return not not opts.after
end

local evictors = {}

-- Flink's CountEvictor: keeps the last n elements (before the window
-- function runs, or after it with {after = true}).
function evictors.count(n, opts)
  if math_type(n) ~= "integer" or n < 0 then
    argerr(1, "count", "non-negative integer expected, got " .. show(n))
  end
  return setmetatable({
    kind = "count", max_count = n, after = after_opt(opts, "count"),
    evict = function(list)
      local size = #list
      if size <= n then return list end
      local kept, drop = {}, size - n
      for i = drop + 1, size do kept[i - drop] = list[i] end
      return kept
    end,
  }, Evictor)
end

-- Flink's TimeEvictor: keeps the elements whose timestamp is greater than
-- the largest timestamp in the window minus d (none evicted when the
-- elements have no timestamps).
function evictors.time(d, opts)
  local ms = duration(d, 1, "time", "duration")
  return setmetatable({
    kind = "time", window_size = ms, after = after_opt(opts, "time"),
    evict = function(list)
      local size = #list
      if size == 0 or list[1][2] == nil then return list end
      local max = MININT
      for i = 1, size do
        local t = list[i][2]
        if t ~= nil and t > max then max = t end
      end
      local cutoff = max - ms
      local kept, m = {}, 0
      for i = 1, size do
        local e = list[i]
        if not (e[2] ~= nil and e[2] <= cutoff) then
          m = m + 1
          kept[m] = e
        end
      end
      return kept
    end,
  }, Evictor)
end

M.evictors = evictors

-- ---- WindowedStream -----------------------------------------------------------

local WindowedStream = {}
WindowedStream.__index = WindowedStream
M.WindowedStream = WindowedStream

--- A windowed stream (Flink's WindowedStream / AllWindowedStream).
-- @param stream KeyedStream (keyed = true) or DataStream
-- @param assigner from tide.windows
-- @param opts {keyed = bool}
function M.windowed(stream, assigner, opts)
  local keyed = opts and opts.keyed
  local fname = keyed and "window" or "window_all"
  if getmetatable(assigner) ~= Assigner then
    argerr(1, fname, "window assigner expected (tide.windows.tumbling, sliding, session or global), got "
      .. type(assigner))
  end
  return setmetatable({ stream = stream, assigner = assigner, keyed = not not keyed, lateness = 0 },
    WindowedStream)
end

--- Count windows (Flink's countWindow): the global window with
-- purging(count(n)), or for sliding count windows count(slide) and a
-- count evictor keeping n elements.
function M.count_windowed(stream, n, slide)
  if math_type(n) ~= "integer" or n < 1 then
    argerr(1, "count_window", "positive integer expected, got " .. show(n))
  end
  if slide ~= nil and (math_type(slide) ~= "integer" or slide < 1) then
    argerr(2, "count_window", "positive integer expected, got " .. show(slide))
  end
  local ws = M.windowed(stream, windows.global(), { keyed = true })
  if slide == nil then
    ws._trigger = triggers.purging(triggers.count(n))
  else
    ws._evictor = evictors.count(n)
    ws._trigger = triggers.count(slide)
  end
  return ws
end

--- Set the trigger (Flink's WindowedStream.trigger).
function WindowedStream:trigger(t)
  t = as_trigger(t, 1, "trigger")
  if self.assigner.merging and not t.can_merge then
    error("trigger: a merging window assigner (session windows) cannot be used with a trigger that does "
      .. "not support merging (a custom trigger needs on_merge)", 2)
  end
  self._trigger = t
  return self
end

--- Set the evictor (Flink's WindowedStream.evictor).
function WindowedStream:evictor(e)
  if getmetatable(e) ~= Evictor then
    argerr(1, "evictor", "evictor expected (tide.evictors.count or time), got " .. type(e))
  end
  self._evictor = e
  return self
end

--- Keep windows' state for d after their end, firing again for late
-- elements (Flink's allowedLateness; event time only).
function WindowedStream:allowed_lateness(d)
  self.lateness = duration(d, 1, "allowed_lateness", "non-negative duration")
  return self
end

--- Send late elements (dropped otherwise) to the side output tag.
function WindowedStream:side_output_late(tag)
  if type(tag) ~= "string" or tag == "" then
    argerr(1, "side_output_late", "non-empty string tag expected, got " .. type(tag))
  end
  self.late_tag = tag
  return self
end

local function check_fn(f, n, fname, what)
  if type(f) ~= "function" then
    argerr(n, fname, (what or "function") .. " expected, got " .. type(f), 3)
  end
end

local function finish(self, props, fname)
  local a = self.assigner
  props.assigner = a
  props.trigger = self._trigger
  props.evictor = self._evictor
  props.allowed_lateness = self.lateness
  props.late_tag = self.late_tag
  props.keyed = self.keyed
  props.name = "window"
  if not self.keyed then props.non_parallel = true end
  if a.merging and props.fn_kind == "aggregate" and type(props.agg.merge) ~= "function" then
    error(fname .. ": session windows merge, so the aggregate needs a merge function", 3)
  end
  -- more inputs keyed alike (a window join's or co-group's tagged inputs,
  -- lua/tide/join.lua): the node reads every one of them
  local inputs = { self.stream }
  for i, s in ipairs(self.more_inputs or {}) do inputs[i + 1] = s end
  return self.stream.env:_add_node("window", inputs, props)
end

--- Incremental reduce per window: fn(acc, value) -> acc (Flink's
-- reduce(ReduceFunction [, ProcessWindowFunction])). With process_fn,
-- process_fn(key, window, {result}, out) emits instead.
function WindowedStream:reduce(fn, process_fn)
  check_fn(fn, 1, "reduce")
  if process_fn ~= nil then check_fn(process_fn, 2, "reduce") end
  return finish(self, { fn_kind = "reduce", fn = fn, process_fn = process_fn }, "reduce")
end

--- Incremental aggregate per window (Flink's AggregateFunction):
-- agg = {create = fn() -> acc, add = fn(acc, v) -> acc, result = fn(acc)
-- -> out, merge = fn(a, b) -> acc (needed by session windows)}.
function WindowedStream:aggregate(agg, process_fn)
  if type(agg) ~= "table" or type(agg.create) ~= "function" or type(agg.add) ~= "function"
    or type(agg.result) ~= "function" then
    argerr(1, "aggregate", "table with create, add and result functions expected")
  end
  if agg.merge ~= nil and type(agg.merge) ~= "function" then
    argerr(1, "aggregate", "merge must be a function")
  end
  if process_fn ~= nil then check_fn(process_fn, 2, "aggregate") end
  return finish(self, { fn_kind = "aggregate", agg = agg, process_fn = process_fn }, "aggregate")
end

local function field_agg(self, kind, field)
  if field ~= nil and type(field) ~= "string" and math_type(field) ~= "integer" then
    argerr(1, kind, "field name or index expected, got " .. type(field), 2)
  end
  return finish(self, { fn_kind = kind, field = field }, kind)
end

--- Sum of a numeric field per window; the other fields come from the
-- window's first element (Flink's sum). No field: records are numbers.
function WindowedStream:sum(field) return field_agg(self, "sum", field) end

--- Minimum of a field per window (Flink's min: other fields from the
-- window's first element).
function WindowedStream:min(field) return field_agg(self, "min", field) end

--- Maximum of a field per window (Flink's max).
function WindowedStream:max(field) return field_agg(self, "max", field) end

--- Number of elements per window: {key = k, count = n} (keyed) or
-- {count = n} (window_all).
function WindowedStream:count()
  return finish(self, { fn_kind = "count" }, "count")
end

--- A window function over all elements (Flink's ProcessWindowFunction):
-- fn(key, window, elements, out); out:collect(v) emits.
function WindowedStream:process(fn)
  check_fn(fn, 1, "process")
  return finish(self, { fn_kind = "process", fn = fn }, "process")
end

WindowedStream.apply = WindowedStream.process

-- ---- the operator: shared parts ----------------------------------------------

local BATCH = 1024

local function no_timestamp()
  error("window: a record has no timestamp; event-time windows need assign_timestamps", 0)
end

-- Main output: records and their timestamps, pushed downstream in batches
-- (flushed at the end of every push, watermark and timer call). The fast
-- paths' generated loops write b, t and n directly.
local function emitter(out)
  local push = out.push
  local E = { b = {}, t = {}, n = 0 }
  local function flush()
    local m = E.n
    if m > 0 then
      E.n = 0
      push(E.b, E.t, m)
    end
  end
  function E.emit(v, t)
    local n = E.n + 1
    E.b[n], E.t[n] = v, t
    E.n = n
    if n >= BATCH then flush() end
  end
  E.flush = flush
  return E
end

-- Late elements: to the side output tag, or dropped and counted (Flink's
-- numLateRecordsDropped).
local function late_sink(out, tag)
  local side = tag and out.side and out.side(tag)
  local lb, lt, ln = {}, {}, 0
  local S = { dropped = 0 }
  function S.flush()
    if ln > 0 then
      local m = ln
      ln = 0
      side(lb, lt, m)
    end
  end
  function S.add(v, t)
    if side then
      ln = ln + 1
      lb[ln], lt[ln] = v, t
      if ln >= BATCH then S.flush() end
    else
      S.dropped = S.dropped + 1
    end
  end
  return S
end

-- The out of window functions: out:collect(v) (or out.collect(v)) emits v
-- with the timestamp of the window being fired.
local function collector(emit)
  local c = { ts = 0 }
  function c.collect(a, b)
    local v = b
    if a ~= c then v = a end
    if v == nil then error("collect: a record cannot be nil", 2) end
    emit(v, c.ts)
  end
  return c
end

-- ---- keyed state and snapshots (docs/STATE.md, "Window operators") ----------
--
-- Every implementation keeps its keys as the layer's keys (one tide.state
-- backend per operator subtask) and writes one snapshot format:
--   {window = FORMAT, watermark =, keyed = backend:snapshot(), timers =}
-- with the states
--   CONTENTS  namespaced (key -> {window id -> contents}): the general
--             operator's representation of a window's contents (an
--             incremental function's accumulator, {accumulator, first
--             element} for sum/min/max of a field, the list of elements for
--             process, {element, timestamp} pairs with an evictor), per
--             WINDOW, never per slice;
--   MERGING   (merging assigners) key -> {window id -> state window id}, the
--             in-flight windows of Flink's MergingWindowSet;
--   TRIGGER .. name  namespaced: the trigger's state `name`;
-- and timers as Flink's timer service holds them (tide.timers snapshot:
-- (time, key, window id)): the trigger's and the cleanup timers per (key,
-- window). Window ids are "start:stop" (or "global"). The fast paths write
-- what the general operator with the default trigger would hold, and
-- rebuild their own timers from the contents on restore, so any
-- implementation restores any other's snapshot.
local FORMAT = 1
local CONTENTS, MERGING, TRIGGER = "window-contents", "window-merging", "window-trigger/"

-- The layer kind of the window contents (the same for every
-- implementation of one window function).
local function contents_kind(P)
  if P.evictor or P.fn_kind == "process" then return "list" end
  if P.fn_kind == "reduce" then return "reducing" end
  return "aggregating"
end

local function new_backend(rt, P)
  return state.operator_backend(rt, P.uid)
end

-- "start:stop" (LuaJIT turns numbers into strings with 14 significant
-- digits, so there "%d:%d")
local function wid_of(s, e)
  if compat.luajit then return string.format("%d:%d", s, e) end
  return s .. ":" .. e
end

-- start, stop of a window id (nil for the global window)
local function bounds_of(id)
  local a, b = id:match("^(.-):(.*)$")
  if a == nil then return nil end
  return tointeger(a) or tonumber(a), tointeger(b) or tonumber(b)
end

-- The old snapshots to restore from (tide.state.keyed_sources) and the
-- watermark to restart with: the old subtask's, or after rescaling the
-- minimum over the old subtasks (each had its own).
local function window_sources(data, all, rt)
  local olds = state.keyed_sources(data, all, rt.parallelism)
  local wm
  for _, o in ipairs(olds) do
    if type(o) ~= "table" or o.window ~= FORMAT then
      error("window: cannot restore this operator from a snapshot that is not a window operator's "
        .. "(or of another format version)", 0)
    end
    local w = o.watermark or MININT
    if wm == nil or w < wm then wm = w end
  end
  return olds, wm or MININT
end

-- A copy of a layer key for results (the layer's interned table keys are
-- shared and must not reach user code).
local function raw_of(k)
  if type(k) == "table" then return deep_copy(k) end
  return nil
end

-- The snapshot of a fast path: contents per (key, window) in ct (filled by
-- the caller through put), timers derived as the general operator with the
-- default event-time trigger holds them: at max_timestamp while the
-- watermark is before it, and the cleanup timer at cleanup (when later).
-- opts: the runtime's snapshot options ({savepoint = true}), for the backend.
local function fast_snapshot(rt, P, wm, merging, opts)
  local b = new_backend(rt, P)
  local ct = b:state(CONTENTS, contents_kind(P), { namespaced = true }).t
  local mt = merging and b:state(MERGING, "map").t
  local ev = {}
  local snap = { window = FORMAT, watermark = wm, timers = { event = ev, processing = {} } }
  local function sub(t, k)
    local x = t[k]
    if x == nil then
      x = {}
      t[k] = x
    end
    return x
  end
  -- the timers by timestamp (a window's keys share its timers' timestamps:
  -- ordering the few timestamps, not every timer, puts them in time order)
  local at, times = {}, {}
  local function timer(t, e)
    local l = at[t]
    if l == nil then
      l = {}
      at[t] = l
      times[#times + 1] = t
    end
    l[#l + 1] = e
  end
  local ids = {} -- start -> stop -> window id
  local function put(k, raw, start, stop, v, cleanup)
    local by = ids[start]
    if by == nil then
      by = {}
      ids[start] = by
    end
    local id = by[stop]
    if id == nil then
      id = wid_of(start, stop)
      by[stop] = id
    end
    sub(ct, k)[id] = v
    if mt then sub(mt, k)[id] = id end
    if raw == nil then raw = raw_of(k) or k end
    local max = stop - 1
    if max > wm then timer(max, { max, k, id, raw }) end
    if cleanup ~= max and cleanup ~= MAXINT then timer(cleanup, { cleanup, k, id, raw }) end
  end
  local function done()
    table.sort(times)
    local n = 0
    for _, t in ipairs(times) do
      local l = at[t]
      for i = 1, #l do ev[n + i] = l[i] end
      n = n + #l
    end
    snap.keyed = b:snapshot(opts)
    return snap
  end
  return put, done
end

-- The restored contents of a fast path: a backend holding the old
-- subtasks' states of this subtask's key groups (its keys are its own:
-- the caller takes the operator's, B:key); the watermark.
local function fast_restore(rt, P, data, all)
  local olds, wm = window_sources(data, all, rt)
  local b = new_backend(rt, P)
  b:state(CONTENTS, contents_kind(P), { namespaced = true })
  for _, o in ipairs(olds) do b:restore({ o.keyed }) end
  return b, wm
end

local function value_error(kind, field, x)
  if field == nil then
    error(string.format("%s: the record is not a number (got %s)", kind, type(x)), 0)
  end
  error(string.format("%s: field '%s' is not a number (got %s)", kind, tostring(field), type(x)), 0)
end

local function nil_error(kind, field)
  if field == nil then error(kind .. ": the record is nil", 0) end
  error(string.format("%s: field '%s' is nil", kind, tostring(field)), 0)
end

local function reduce_nil() error("reduce: the function returned nil", 0) end
local function add_nil() error("aggregate: add returned nil", 0) end
local function result_nil() error("aggregate: the result function returned nil", 0) end

-- The window function of the general operator as an incremental
-- aggregation: init(v) -> acc, add(acc, v) -> acc, merge(a, b) -> acc,
-- result(acc, key) -> record; empty() -> acc for functions that emit on
-- empty input (aggregate, count). sum/min/max with a field keep {value,
-- first element} (Flink's aggregators keep the window's first element and
-- replace the field).
local function base_kind(P)
  local kind, field, keyed = P.fn_kind, P.field, P.keyed
  if kind == "sum" or kind == "min" or kind == "max" then
    local get
    if field == nil then get = function(v) return v end else get = function(v) return v[field] end end
    local check
    if kind == "sum" then
      check = function(x) if type(x) ~= "number" then value_error(kind, field, x) end return x end
    else
      check = function(x) if x == nil then nil_error(kind, field) end return x end
    end
    local pick
    if kind == "sum" then pick = function(a, x) return a + x end
    elseif kind == "min" then pick = function(a, x) if x < a then return x end return a end
    else pick = function(a, x) if x > a then return x end return a end end
    if field == nil then
      return {
        init = function(v) return check(get(v)) end,
        add = function(a, v) return pick(a, check(get(v))) end,
        merge = pick,
        result = function(a) return a end,
      }
    end
    return {
      init = function(v) return { check(get(v)), v } end,
      add = function(a, v)
        a[1] = pick(a[1], check(get(v)))
        return a
      end,
      merge = function(a, b)
        a[1] = pick(a[1], b[1])
        return a
      end,
      result = function(a)
        local c = shallow_copy(a[2])
        c[field] = a[1]
        return c
      end,
    }
  elseif kind == "count" then
    return {
      init = function() return 1 end,
      add = function(a) return a + 1 end,
      merge = function(a, b) return a + b end,
      result = function(a, key)
        if keyed then return { key = key, count = a } end
        return { count = a }
      end,
      empty = function() return 0 end,
    }
  elseif kind == "reduce" then
    local fn = P.fn
    local function red(a, v)
      local r = fn(a, v)
      if r == nil then reduce_nil() end
      return r
    end
    return { init = function(v) return v end, add = red, merge = red, result = function(a) return a end }
  elseif kind == "aggregate" then
    local agg = P.agg
    local create, add, merge, result = agg.create, agg.add, agg.merge, agg.result
    local function addc(a, v)
      local r = add(a, v)
      if r == nil then add_nil() end
      return r
    end
    return {
      init = function(v) return addc(create(), v) end,
      add = addc,
      merge = function(a, b)
        if not merge then error("aggregate: merging windows need the aggregate's merge function", 0) end
        return merge(a, b)
      end,
      result = function(a)
        local r = result(a)
        if r == nil then result_nil() end
        return r
      end,
      empty = function() return create() end,
    }
  end
  return nil -- process: no incremental function
end

-- ---- the general window operator ---------------------------------------------

local function general_op(node, out, rt, P)
  local A, trig, ev, L = P.assigner, P.trigger, P.evictor, P.lateness
  local event_time, merging, keyed = A.event_time, A.merging, P.keyed
  local keyf, fn_kind, process_fn = P.keyf, P.fn_kind, P.process_fn
  local base = base_kind(P)
  local E = emitter(out)
  local emit = E.emit
  local late = late_sink(out, P.late_tag)
  local col = collector(emit)
  local GLOBAL = M.GLOBAL_WINDOW

  -- keyed state in the layer (see "keyed state and snapshots"): contents
  -- C[key][state window id]; merging window sets MW[key][window id] =
  -- state window id; trigger state TS[name][key][window id], of kind
  -- TK[name]; keys are the layer's (B:key)
  local B = new_backend(rt, P)
  local C = B:state(CONTENTS, contents_kind(P), { namespaced = true }).t
  local MW = merging and B:state(MERGING, "map").t or {}
  local TS, TK, RF = {}, {}, {}
  local tm
  local proc_now, finished = nil, false
  local function now()
    if proc_now then return proc_now end
    return rt.now()
  end

  -- the window function's storage: incremental, a list of values
  -- (process), or a list of {value, timestamp} (evictor)
  local s_init, s_add, s_merge
  if ev then
    s_init = function(v, t) return { { v, t } } end
    s_add = function(a, v, t)
      a[#a + 1] = { v, t }
      return a
    end
  elseif fn_kind == "process" then
    s_init = function(v) return { v } end
    s_add = function(a, v)
      a[#a + 1] = v
      return a
    end
  else
    s_init, s_add, s_merge = base.init, base.add, base.merge
  end
  if not s_merge then
    s_merge = function(a, b)
      local n = #a
      for i = 1, #b do a[n + i] = b[i] end
      return a
    end
  end

  -- windows, interned by id ("start:stop", or "global"); LuaJIT turns
  -- numbers into strings with 14 significant digits, so there "%d:%d"
  local WIN = setmetatable({}, { __mode = "v" })
  local IDS = setmetatable({}, { __mode = "k" })
  WIN.global, IDS[GLOBAL] = GLOBAL, "global"
  local function make_window(s, e)
    local id = window_id and window_id(s, e) or s .. ":" .. e
    local w = WIN[id]
    if w == nil then
      w = { start = s, stop = e, max_timestamp = e - 1 }
      WIN[id], IDS[w] = w, id
    end
    return w
  end
  -- the windows of a fixed-size assigner by start: no id made per element
  local BYSTART = setmetatable({}, { __mode = "v" })
  local function window_at(s, size)
    local w = BYSTART[s]
    if w == nil then
      w = make_window(s, s + size)
      BYSTART[s] = w
    end
    return w
  end
  local function win_of(id)
    local w = WIN[id]
    if w then return w end
    local a, b = id:match("^(.-):(.*)$")
    return make_window(tointeger(a) or tonumber(a), tointeger(b) or tonumber(b))
  end

  local function cleanup_time(w)
    local m = w.max_timestamp
    if event_time then
      local c = m + L
      if c >= m then return c end
      return MAXINT
    end
    return m
  end
  local function is_late(w)
    return event_time and cleanup_time(w) <= tm.watermark
  end

  -- ---- the trigger context
  local cur_nk, cur_raw, cur_wid
  local ctx = {}
  local function set_key(nk, raw)
    cur_nk, cur_raw = nk, raw
    ctx.key = raw
  end
  local function set_window(w, wid)
    cur_wid = wid
    ctx.window = w
  end
  local function arg1(a, b)
    local t = b
    if a ~= ctx then t = a end
    if type(t) ~= "number" then error("trigger context: timer timestamp expected, got " .. type(t), 3) end
    return t
  end
  -- the last timer the trigger registered for the current key and window
  -- in the cleanup timers' domain (the element path's register_cleanup
  -- need not register it again: the default event-time trigger's timer
  -- is the cleanup timer when there is no allowed lateness)
  local just_registered
  local cleanup_domain = event_time and "event" or "processing"
  local function register(domain, t)
    tm:register(domain, t, cur_nk, cur_wid, cur_raw)
    if domain == cleanup_domain then just_registered = t end
  end
  local function delete(domain, t)
    tm:delete(domain, t, cur_nk, cur_wid)
    if domain == cleanup_domain then just_registered = nil end
  end
  function ctx.register_event_time_timer(a, b) register("event", arg1(a, b)) end
  function ctx.register_processing_time_timer(a, b) register("processing", arg1(a, b)) end
  function ctx.delete_event_time_timer(a, b) delete("event", arg1(a, b)) end
  function ctx.delete_processing_time_timer(a, b) delete("processing", arg1(a, b)) end
  function ctx.current_watermark() return tm.watermark end
  function ctx.current_processing_time() return now() end

  -- per-key, per-window trigger state
  local function ts_get(name)
    local t = TS[name]
    local kt = t and t[cur_nk]
    if kt == nil then return nil end
    return kt[cur_wid]
  end
  local function ts_set(name, v)
    local t = TS[name]
    if not t then
      if v == nil then return end
      t = B:state(TRIGGER .. name, TK[name], { namespaced = true }).t
      TS[name] = t
    end
    local kt = t[cur_nk]
    if v == nil then
      if kt then
        kt[cur_wid] = nil
        if next(kt) == nil then t[cur_nk] = nil end
      end
      return
    end
    if not kt then
      kt = {}
      t[cur_nk] = kt
    end
    kt[cur_wid] = v
  end
  local function drop_tstate(nk, wid)
    for _, t in pairs(TS) do
      local kt = t[nk]
      if kt then
        kt[wid] = nil
        if next(kt) == nil then t[nk] = nil end
      end
    end
  end
  -- merge reducing state `name` of the source windows into the target
  -- (Flink's mergePartitionedState: sources folded, then into the target)
  local function merge_tstate(name, fn, target, sources)
    local t = TS[name]
    local kt = t and t[cur_nk]
    if not kt then return end
    local merged
    for _, s in ipairs(sources) do
      if s ~= target then
        local v = kt[s]
        if v ~= nil then
          kt[s] = nil
          if merged == nil then merged = v else merged = fn(merged, v) end
        end
      end
    end
    if merged ~= nil then
      local tv = kt[target]
      if tv == nil then kt[target] = merged else kt[target] = fn(tv, merged) end
    end
    if next(kt) == nil then t[cur_nk] = nil end
  end
  local merge_sources, merged_names = nil, {}
  local handles = {}
  local store = {}
  local function kind_check(name, kind)
    if type(name) ~= "string" then
      error("bad argument #1 to '" .. kind .. "' (state name expected, got " .. type(name) .. ")", 3)
    end
    local have = TK[name]
    if have and have ~= kind then
      error(string.format("state '%s' is already registered as %s state, not %s state", name, have, kind), 3)
    end
    TK[name] = kind
  end
  function store.value(a, b)
    local name = b
    if a ~= store then name = a end
    kind_check(name, "value")
    local h = handles[name]
    if not h then
      h = {
        value = function() return ts_get(name) end,
        update = function(_, v) ts_set(name, v) end,
        clear = function() ts_set(name, nil) end,
      }
      handles[name] = h
    end
    return h
  end
  function store.reducing(a, b, c)
    local name, fn = b, c
    if a ~= store then name, fn = a, b end
    kind_check(name, "reducing")
    if RF[name] == nil then
      if type(fn) ~= "function" then error("bad argument #2 to 'reducing' (function expected)", 2) end
      RF[name] = fn
    end
    if merge_sources and not merged_names[name] then
      merged_names[name] = true
      merge_tstate(name, RF[name], cur_wid, merge_sources)
    end
    local h = handles[name]
    if not h then
      h = {
        get = function() return ts_get(name) end,
        add = function(_, v)
          if v == nil then error("add: nil cannot be added to state", 2) end
          local acc = ts_get(name)
          if acc == nil then
            acc = v
          else
            acc = RF[name](acc, v)
            if acc == nil then error("reducing state '" .. name .. "': the reduce function returned nil", 2) end
          end
          ts_set(name, acc)
        end,
        clear = function() ts_set(name, nil) end,
      }
      handles[name] = h
    end
    return h
  end
  ctx.state = store

  local function result_of(r, what)
    if r == nil then return "continue" end
    local x = RESULTS[r]
    if x == nil then
      error(string.format("trigger: %s returned %s (expected 'continue', 'fire', 'purge' or 'fire_and_purge')",
        what, show(r)), 0)
    end
    return x
  end

  -- ---- window contents
  local function get_c(nk, swid)
    local ck = C[nk]
    return ck and ck[swid]
  end
  local function clear_c(nk, swid)
    local ck = C[nk]
    if ck then
      ck[swid] = nil
      if next(ck) == nil then C[nk] = nil end
    end
  end
  local function add_c(nk, swid, v, t)
    local ck = C[nk]
    if not ck then
      ck = {}
      C[nk] = ck
    end
    local a = ck[swid]
    if a == nil then a = s_init(v, t) else a = s_add(a, v, t) end
    ck[swid] = a
  end
  local function merge_c(nk, target, sources)
    local ck = C[nk]
    if not ck then return end
    local merged
    for _, s in ipairs(sources) do
      local v = ck[s]
      if v ~= nil then
        ck[s] = nil
        if merged == nil then merged = v else merged = s_merge(merged, v) end
      end
    end
    if merged ~= nil then
      local tv = ck[target]
      if tv == nil then ck[target] = merged else ck[target] = s_merge(tv, merged) end
    end
  end

  -- ---- firing
  -- a reduce's result is its accumulator, which stays in the window's
  -- state (and may be updated in place by later elements): emit a copy
  local copy_result = fn_kind == "reduce" or fn_kind == "aggregate"
  local function deliver(key, w, r)
    if copy_result then r = deep_copy(r) end
    if process_fn then
      col.ts = w.max_timestamp
      process_fn(key, w, { r }, col)
    else
      emit(r, w.max_timestamp)
    end
  end
  local function fold(vals, key)
    local n = #vals
    local a
    if base.empty then
      a = base.empty()
      for i = 1, n do a = base.add(a, vals[i]) end
    else
      if n == 0 then return nil end
      a = base.init(vals[1])
      for i = 2, n do a = base.add(a, vals[i]) end
    end
    return base.result(a, key)
  end
  local function emit_window(nk, key, w, c, swid)
    col.ts = w.max_timestamp
    if ev then
      -- Flink's EvictingWindowOperator: evict before, apply, evict after,
      -- and keep what remains
      local list = c
      if not ev.after then list = ev.evict(list) end
      local vals = {}
      for i = 1, #list do vals[i] = list[i][1] end
      if fn_kind == "process" then
        P.fn(key, w, vals, col)
      else
        local r = fold(vals, key)
        if r ~= nil then deliver(key, w, r) end
      end
      if ev.after then list = ev.evict(list) end
      if #list > 0 then
        local ck = C[nk]
        if ck then ck[swid] = list end
      else
        clear_c(nk, swid)
      end
    elseif fn_kind == "process" then
      P.fn(key, w, table.move(c, 1, #c, 1, {}), col)
    else
      deliver(key, w, base.result(c, key))
    end
  end

  -- ---- timers
  local function register_cleanup(w)
    local c = cleanup_time(w)
    if c == MAXINT then return end -- no cleanup timer for the end of time
    tm:register(cleanup_domain, c, cur_nk, cur_wid, cur_raw)
  end
  local function delete_cleanup(w)
    local c = cleanup_time(w)
    if c == MAXINT then return end
    tm:delete(cleanup_domain, c, cur_nk, cur_wid)
  end

  local function retire(nk, wid)
    local m = MW[nk]
    if not m or m[wid] == nil then
      error("window: window " .. wid .. " is not in the in-flight window set", 0)
    end
    m[wid] = nil
    if next(m) == nil then MW[nk] = nil end
  end

  local function clear_all(nk, w, wid, swid)
    clear_c(nk, swid)
    trig.clear(w, ctx)
    drop_tstate(nk, wid)
    if merging then retire(nk, wid) end
  end

  local function on_timer(domain, t, nk, wid, raw)
    set_key(nk, raw)
    local w = win_of(wid)
    set_window(w, wid)
    local swid = wid
    if merging then
      local m = MW[nk]
      swid = m and m[wid]
      if swid == nil then return end -- a timer of a window that is gone
    end
    local r
    if domain == "event" then
      r = result_of(trig.on_event_time(t, w, ctx), "on_event_time")
    else
      r = result_of(trig.on_processing_time(t, w, ctx), "on_processing_time")
    end
    if FIRE[r] then
      local c = get_c(nk, swid)
      if c ~= nil then
        local key = nil
        if keyed then key = raw end
        emit_window(nk, key, w, c, swid)
      end
    end
    if PURGE[r] then clear_c(nk, swid) end
    if event_time == (domain == "event") and t == cleanup_time(w) then
      clear_all(nk, w, wid, swid)
    end
  end
  tm = timers.new(on_timer, B)

  -- ---- merging (Flink's MergingWindowSet.addWindow and the operator's
  -- merge function)
  local function by_start(a, b)
    if a.start ~= b.start then return a.start < b.start end
    return a.stop < b.stop
  end
  local function merge_windows(nk, mr, merged, target, msw)
    local mrid = IDS[mr]
    if event_time and mr.max_timestamp + L <= tm.watermark then
      error(string.format("window: the end timestamp of an event-time window cannot become earlier than the "
        .. "current watermark by merging (watermark %d, window [%d, %d))", tm.watermark, mr.start, mr.stop), 0)
    elseif not event_time and mr.max_timestamp <= now() then
      error(string.format("window: the end timestamp of a processing-time window cannot become earlier than "
        .. "the current processing time by merging (time %d, window [%d, %d))", now(), mr.start, mr.stop), 0)
    end
    set_window(mr, mrid)
    local ids = {}
    for i, m in ipairs(merged) do ids[i] = IDS[m] end
    for name, fn in pairs(RF) do merge_tstate(name, fn, mrid, ids) end
    merge_sources, merged_names = ids, {}
    for name in pairs(RF) do merged_names[name] = true end
    if trig.on_merge then trig.on_merge(mr, ctx) end
    merge_sources = nil
    for i, m in ipairs(merged) do
      set_window(m, ids[i])
      trig.clear(m, ctx)
      delete_cleanup(m)
      if ids[i] ~= mrid then drop_tstate(nk, ids[i]) end
    end
    merge_c(nk, target, msw)
  end

  local function add_window(nk, w)
    local map = MW[nk]
    if not map then
      map = {}
      MW[nk] = map
    end
    local wid = IDS[w]
    local list = {}
    for id in pairs(map) do list[#list + 1] = win_of(id) end
    if map[wid] == nil then list[#list + 1] = w end
    table.sort(list, by_start)
    -- TimeWindow.mergeWindows: sorted by start, overlapping (or touching)
    -- windows merge; groups of more than one window are merge results
    local groups, cs, ce, cur = {}, nil, nil, nil
    for _, c in ipairs(list) do
      if cur and c.start <= ce and c.stop >= cs then
        if c.stop > ce then ce = c.stop end
        cur[#cur + 1] = c
      else
        if cur and #cur > 1 then groups[#groups + 1] = { cs, ce, cur } end
        cs, ce, cur = c.start, c.stop, { c }
      end
    end
    if cur and #cur > 1 then groups[#groups + 1] = { cs, ce, cur } end
    local result, new_merged = w, false
    for _, gr in ipairs(groups) do
      local mr = make_window(gr[1], gr[2])
      local mrid = IDS[mr]
      local merged = {}
      for _, m in ipairs(gr[3]) do
        if m == w then
          result, new_merged = mr, true
        else
          merged[#merged + 1] = m
        end
      end
      if #merged > 0 then
        -- the state window of the earliest merged window keeps the state
        local target = map[IDS[merged[1]]]
        local msw = {}
        for _, m in ipairs(merged) do
          local id = IDS[m]
          local r = map[id]
          if r ~= nil then
            map[id] = nil
            if r ~= target then msw[#msw + 1] = r end
          end
        end
        map[mrid] = target
        if not (#merged == 1 and merged[1] == mr) then merge_windows(nk, mr, merged, target, msw) end
      end
    end
    if #groups == 0 or (result == w and not new_merged) then
      if map[wid] == nil then map[wid] = wid end
    end
    return result
  end

  -- ---- assigners
  local scratch = {}
  local assign
  if A.kind == "global" then
    assign = function()
      scratch[1] = GLOBAL
      return 1
    end
  elseif A.kind == "tumbling" then
    local size, off = A.size, fmod(A.offset, A.size)
    assign = function(_, t)
      if not event_time then t = now() end
      scratch[1] = window_at(window_start(t, off, size), size)
      return 1
    end
  elseif A.kind == "sliding" then
    local size, slide, off = A.size, A.slide, A.offset
    assign = function(_, t)
      if not event_time then t = now() end
      local n, low = 0, t - size
      local s = window_start(t, off, slide)
      while s > low do
        n = n + 1
        scratch[n] = window_at(s, size)
        s = s - slide
      end
      return n
    end
  else -- session
    local gap, gap_fn = A.gap, A.gap_fn
    assign = function(v, t)
      if not event_time then t = now() end
      local g = gap or dynamic_gap(gap_fn, v)
      scratch[1] = make_window(t, t + g)
      return 1
    end
  end

  local inline_trigger = P.event_time_trigger
  -- an element's key as given, and the layer's (0 for window_all)
  local function key_of(v)
    if not keyed then return nil, 0 end
    local raw = keyf(v)
    if raw == nil then error("key_by: the key of a record is nil", 0) end
    return raw, B:key(raw)
  end

  local function process_element(v, t)
    local raw, nk = key_of(v)
    local n = assign(v, t)
    set_key(nk, raw)
    local skipped = true
    for i = 1, n do
      local w = scratch[i]
      local swid, aid
      if merging then
        w = add_window(nk, w)
        aid = IDS[w]
        if is_late(w) then
          retire(nk, aid)
        else
          swid = MW[nk][aid]
        end
      elseif not is_late(w) then
        aid = IDS[w]
        swid = aid
      end
      if swid ~= nil then
        skipped = false
        add_c(nk, swid, v, t)
        set_key(nk, raw)
        set_window(w, aid)
        local r
        if inline_trigger then
          -- triggers.event_time's on_element
          local m = w.max_timestamp
          if m <= tm.watermark then
            r = "fire"
            just_registered = nil
          else
            tm:register("event", m, nk, aid, raw)
            r = "continue"
            just_registered = m
          end
        else
          just_registered = nil
          r = result_of(trig.on_element(v, t, w, ctx), "on_element")
        end
        local go = true
        if FIRE[r] then
          local c = get_c(nk, swid)
          if c == nil then go = false else emit_window(nk, raw, w, c, swid) end
        end
        if go then
          if PURGE[r] then clear_c(nk, swid) end
          if just_registered ~= cleanup_time(w) then register_cleanup(w) end
        end
      end
    end
    if skipped and event_time and t + L <= tm.watermark then late.add(v, t) end
  end
  -- process_element where nothing can fire on an element: windows that do
  -- not merge, Flink's EventTimeTrigger, no allowed lateness. A window is
  -- late when the watermark has reached its max_timestamp (its cleanup
  -- time), else the element goes into its contents and the trigger's timer
  -- at max_timestamp (also the cleanup timer) is registered.
  if not merging and inline_trigger and L == 0 then
    process_element = function(v, t)
      local raw, nk = key_of(v)
      local n = assign(v, t)
      local wm = tm.watermark
      local ck
      local skipped = true
      for i = 1, n do
        local w = scratch[i]
        local m = w.max_timestamp
        if m > wm then
          skipped = false
          local aid = IDS[w]
          if ck == nil then
            ck = C[nk]
            if not ck then
              ck = {}
              C[nk] = ck
            end
          end
          local a = ck[aid]
          if a == nil then a = s_init(v, t) else a = s_add(a, v, t) end
          ck[aid] = a
          tm:register("event", m, nk, aid, raw)
        end
      end
      if skipped and t <= wm then late.add(v, t) end
    end
  end

  local op = {}
  function op.push(b, ts, n)
    if event_time and ts == nil then no_timestamp() end
    for i = 1, n do
      local t = ts and ts[i]
      if event_time and (t == nil or t == MININT) then no_timestamp() end
      process_element(b[i], t)
    end
    E.flush()
    late.flush()
  end
  function op.watermark(wm)
    if wm > tm.watermark then tm:advance_watermark(wm) end
    E.flush()
    out.watermark(wm)
  end
  function op.processing_time(t)
    if finished then return end
    proc_now = t
    tm:advance_processing_time(t)
    proc_now = nil
    E.flush()
  end
  function op.next_timer()
    if finished then return nil end
    return tm:next_processing_time()
  end
  function op.finish()
    finished = true -- pending processing-time timers are dropped
    E.flush()
    late.flush()
  end
  function op.dropped() return late.dropped end
  function op.snapshot(opts)
    return { window = FORMAT, watermark = tm.watermark, keyed = B:snapshot(opts), timers = tm:snapshot(opts) }
  end
  --- Restore from a window snapshot of any implementation (data: this
  -- subtask's; all: every old subtask's, for rescaling).
  function op.restore(data, all)
    local olds, wm = window_sources(data, all, rt)
    tm = timers.new(on_timer, B)
    for _, o in ipairs(olds) do
      B:restore({ o.keyed })
      tm:restore(o.timers or {}, B, o.keyed)
    end
    tm.watermark = wm
    if merging then MW = B:state(MERGING, "map").t end
    for name, st in pairs(B.states) do
      if name:sub(1, #TRIGGER) == TRIGGER then
        local tn = name:sub(#TRIGGER + 1)
        TS[tn], TK[tn] = st.t, st.kind
      end
    end
  end
  op.path = "general"
  return op
end

-- ---- fast paths: shared result construction ---------------------------------

-- result_out(k, acc, first, raw, start, stop) emits the window result of
-- one key from a fast path's accumulator.
local function fast_result(P, emit, col)
  local kind, field, keyed, process_fn = P.fn_kind, P.field, P.keyed, P.process_fn
  local needs_first = field ~= nil and (kind == "sum" or kind == "min" or kind == "max")
  local agg_result = P.agg and P.agg.result
  local keep_state = P.lateness > 0
  local fn = P.fn
  return function(k, a, first, raw, start, stop)
    local key
    if keyed then
      key = raw
      if key == nil then key = k end
    end
    local r
    if kind == "count" then
      if keyed then r = { key = key, count = a } else r = { count = a } end
    elseif needs_first then
      r = {}
      for f, y in next, first do r[f] = y end
      r[field] = a
    elseif kind == "aggregate" then
      r = agg_result(a)
      if r == nil then result_nil() end
      if keep_state then r = deep_copy(r) end
    elseif kind == "process" then
      col.ts = stop - 1
      if keep_state then a = table.move(a, 1, #a, 1, {}) end
      fn(key, { start = start, stop = stop, max_timestamp = stop - 1 }, a, col)
      return
    elseif keep_state then
      r = deep_copy(a) -- the accumulator stays in state for late elements
    else
      r = a
    end
    if process_fn then
      col.ts = stop - 1
      process_fn(key, { start = start, stop = stop, max_timestamp = stop - 1 }, { r }, col)
    else
      emit(r, stop - 1)
    end
  end
end

local function fast_fail(P)
  local kind, field = P.fn_kind, P.field
  return function(what, x)
    if what == "nots" then no_timestamp()
    elseif what == "key" then
      error("key_by: the key of a record is nil", 0)
    elseif what == "num" then value_error(kind, field, x)
    elseif what == "nil" then nil_error(kind, field)
    elseif what == "reduce" then reduce_nil()
    else add_nil() end
  end
end

-- math.mininteger as a constant (folded by the compiler), so comparing
-- with it is one EQK instruction instead of an EQ with an upvalue; LuaJIT
-- reads the same text as the double -2^63, its compat.MIN_INT
local GEN_DEFAULTS = { MININT = "(-9223372036854775807 - 1)" }

local function gen(template, subst, name, ...)
  local src = template:gsub("%$(%u+)", function(k)
    local r = subst[k]
    if r == nil then r = GEN_DEFAULTS[k] end
    if r == nil then error("window: template field " .. k .. " missing") end
    return r
  end)
  return assert(load(src, "=[tide window " .. name .. "]", "t"))(...)
end

-- v[name] with a string or integer field name written into the generated
-- code as a constant (one GETFIELD or GETI instead of loading an upvalue and
-- a generic GETTABLE); other names stay in the upvalue
local function field_expr(f, upvalue)
  if type(f) == "string" then return string.format("v[%q]", f) end
  -- "%d": LuaJIT's %q quotes a number as a string
  if math_type(f) == "integer" then return string.format("v[%d]", f) end
  return "v[" .. upvalue .. "]"
end

local function key_expr(P)
  if not P.keyed then return "0" end
  if P.key_field ~= nil then return field_expr(P.key_field, "kfield") end
  return "keyf(v)"
end

local function val_subst(P)
  local kind, field = P.fn_kind, P.field
  if kind == "sum" or kind == "min" or kind == "max" then
    return field ~= nil and field_expr(field, "vfield") or "v",
      kind == "sum" and "if type(x) ~= 'number' then fail('num', x) end" or "if x == nil then fail('nil') end"
  end
  return "nil", ""
end

-- ---- fast path: event-time tumbling and sliding windows ---------------------
--
-- Windows are cut into slices of gcd(size, slide): an element updates the
-- accumulator of its key in its slice; a window fires (when the watermark
-- passes its max_timestamp) by combining its size/gcd slices per key. A
-- slice lives until the cleanup time of the last window containing it.
-- Late elements (within the allowed lateness) update their slice and fire
-- the already fired windows of their key at once, as Flink's EventTimeTrigger
-- does.

local ALIGNED_LOOP = [[
local S, slice_for, late_fire, skip, keyf, kfield, vfield, fn, agg_add, agg_create, norm, fail = ...
local type, next = type, next
return function(b, ts, n)
  if ts == nil then fail("nots") end
  local G, OFF = S.g, S.off
  local seq = S.seq
  local cur, A, F, Q, R, V, mode, LL
  -- the slice before cur: out-of-order elements near a slice boundary
  -- alternate between two slices
  local cur2, A2, F2, Q2, R2, V2, mode2, LL2
  for i = 1, n do
    local v = b[i]
    local t = ts[i]
    if t == nil or t == $MININT then fail("nots") end
    local s = t - (t - OFF) % G
    if s ~= cur then
      if s == cur2 then
        cur, A, F, Q, R, V, mode, LL, cur2, A2, F2, Q2, R2, V2, mode2, LL2 =
          cur2, A2, F2, Q2, R2, V2, mode2, LL2, cur, A, F, Q, R, V, mode, LL
      else
        cur2, A2, F2, Q2, R2, V2, mode2, LL2 = cur, A, F, Q, R, V, mode, LL
        cur = s
        A, F, Q, R, V, mode, LL = slice_for(s)
      end
    end
    if mode == 0 then
      $BODY
    elseif mode == 1 then
      skip(v, t)
    else
      $BODY
      late_fire(k, LL)
    end
  end
  S.seq = seq
end
]]

-- The body of ALIGNED_LOOP for an element that is not skipped: the common
-- case (a key already in the slice) takes one test.
local ALIGNED_BODY = [[
      local k = $KEY
      local x = $VAL
      $CHECK
      local a = A[k]
      if a ~= nil then
        $COMBINE
      else
        if k == nil then fail("key") elseif type(k) == "table" then
          local raw = k
          k = norm(k)
          R[k] = raw
          a = A[k]
        end
        if a == nil then
          $INIT
        else
          $COMBINE
        end
      end]]

-- The end of a firing: every (key, accumulator) of the table named src
-- becomes a result (built by $BUILD into r) with timestamp max, straight
-- into the output buffer.
local function emit_all(src)
  return [[
  local ob, ot, on = E.b, E.t, E.n
  for k, a in next, ]] .. src .. [[ do
    $BUILD
    on = on + 1
    ob[on], ot[on] = r, max
    if on >= BATCH then
      E.n = on
      E.flush()
      on = 0
    end
  end
  E.n = on
end
]]
end

-- Firing a window of one slice (tumbling).
local FIRE_ONE = [[
local E, BATCH, field, agg_result, fail, copy = ...
local next = next
return function(A, F, R, V, max)
]] .. emit_all("A")

-- Firing a window of several slices (sliding): combine per key, emit.
local FIRE_MANY = [[
local E, BATCH, field, agg_result, fail, comb, start_copy, per, g, slices, wslices = ...
local next = next
return function(ws, max)
  local racc, R = {}, {}
  $FDECL
  for j = -1, per - 1 do
    local sl
    if j < 0 then sl = wslices[ws] else sl = slices[ws + j * g] end
    if sl then
      local SA, SF, SQ, SV = sl.A, sl.F, sl.Q, sl.V
      for k, a in next, SA do
        local x = racc[k]
        if x == nil then
          racc[k] = $START
          $FINIT
        else
          racc[k] = $COMB
          $FCOMB
        end
      end
      for k, r in next, sl.R do R[k] = r end
    end
  end
]] .. emit_all("racc")

local function build_expr(P, per)
  local kind, field = P.fn_kind, P.field
  -- with allowed lateness a single slice's accumulator outlives the firing
  local keep = P.lateness > 0 and per == 1
  if keep and kind == "reduce" then return "local r = copy(a)" end
  if keep and kind == "aggregate" then return "local r = agg_result(a); if r == nil then fail() end; r = copy(r)" end
  if kind == "count" then
    if P.keyed then return "local r = { key = R[k] or k, count = a }" end
    return "local r = { count = a }"
  elseif field ~= nil and (kind == "sum" or kind == "min" or kind == "max") then
    -- the first element, from its slice's V (see aligned_op), with the
    -- field replaced; the constructor's nil fields presize the copy's hash
    -- part (4 slots), so copying a small record does not rehash as it grows
    return (per > 1 and "local V = FV[k]; " or "")
      .. "local r = { _1 = nil, _2 = nil, _3 = nil, _4 = nil }; local j0 = F[k]"
      .. "; for j = j0 + 1, V[j0], 2 do r[V[j]] = V[j + 1] end; r[field] = a"
  elseif kind == "aggregate" then
    return "local r = agg_result(a); if r == nil then fail() end"
  end
  return "local r = a"
end

local function aligned_op(node, out, rt, P)
  local A = P.assigner
  local size, slide, off, L = A.size, A.slide, A.offset, P.lateness
  local kind, field = P.fn_kind, P.field
  local g = gcd(size, slide)
  local per = compat.idiv(size, g) -- slices per window
  local needs_first = field ~= nil and (kind == "sum" or kind == "min" or kind == "max")
  local needs_q = needs_first and per > 1
  local E = emitter(out)
  local late = late_sink(out, P.late_tag)
  local col = collector(E.emit)
  local result_out = fast_result(P, E.emit, col)
  local generic = P.process_fn ~= nil or kind == "process"
  local fn, agg = P.fn, P.agg
  local S = { g = g, off = off, seq = 0 }
  -- slice start -> {A = key -> acc, F = key -> first, V = values, Q = key -> seq, R = key -> raw key}.
  -- The first element of a key in a slice (kept for sum, min and max of a
  -- field: their result is that element with the field replaced) is kept
  -- as a copy of its fields in the slice's array V, not as the element:
  -- F[k] = j, V[j] = the index of its last value, V[j + 1 .. V[j]] = field,
  -- value, field, value ...; V.n = the last index used. Keeping every
  -- key's first element alive until its window fires (10% of the elements
  -- in the benchmark) made the collector traverse them at every cycle and
  -- fragmented the heap: 0.4-0.8 s of 4.5 s for 10M elements.
  local slices = {}
  -- window start -> the accumulators of a restored window, in a slice's
  -- shape, combined into that window only (sliding windows: a restored
  -- tumbling window is a slice)
  local wslices = {}
  local tm
  -- keys: the layer's (see "keyed state and snapshots")
  local B = new_backend(rt, P)
  local function bkey(k) return B:key(k) end

  local function cleanup_of(max)
    local c = max + L
    if c < max then return MAXINT end
    return c
  end

  -- slice views of the current push (the watermark does not move during a
  -- push): {A, F, Q, R, V, mode, late windows}; mode 1: no window containing
  -- the slice is still open (its elements are skipped); 2: some have fired
  -- already (late firing for each element); else 0
  local views = {}
  local SKIP = { nil, nil, nil, nil, nil, 1 }
  local function slice_for(s)
    local vw = views[s]
    if vw == nil then
      local wm = tm.watermark
      local ws = s - (s - off) % slide -- the last window containing s
      if ws + size <= s or cleanup_of(ws + size - 1) <= wm then
        vw = SKIP
      else
        local sl = slices[s]
        local created = false
        if sl == nil then
          sl = { A = {}, R = {}, F = needs_first and {} or nil, V = needs_first and { n = 0 } or nil,
            Q = needs_q and {} or nil }
          slices[s] = sl
          created = true
        end
        local lates
        local low = s - size
        while ws > low do
          local max = ws + size - 1
          if cleanup_of(max) <= wm then break end
          if max <= wm then
            lates = lates or {}
            lates[#lates + 1] = ws
          elseif created then
            tm:register("event", max, false, false, nil)
          end
          ws = ws - slide
        end
        vw = { sl.A, sl.F, sl.Q, sl.R, sl.V, lates and 2 or 0, lates }
      end
      views[s] = vw
    end
    return vw[1], vw[2], vw[3], vw[4], vw[5], vw[6], vw[7]
  end

  local function skip(v, t)
    if t + L <= tm.watermark then late.add(v, t) end
  end

  -- combining slice accumulators (the slices' own values are never handed
  -- to user functions, which may modify their arguments)
  local comb, start_copy = nil, function(a) return a end
  if kind == "count" or kind == "sum" then
    comb = function(x, y) return x + y end
  elseif kind == "min" then
    comb = function(x, y) if y < x then return y end return x end
  elseif kind == "max" then
    comb = function(x, y) if y > x then return y end return x end
  elseif kind == "reduce" then
    start_copy = deep_copy
    comb = function(x, y)
      local r = fn(x, deep_copy(y))
      if r == nil then reduce_nil() end
      return r
    end
  elseif kind == "aggregate" then
    start_copy = deep_copy
    local merge = agg.merge
    comb = function(x, y)
      local r = merge(x, deep_copy(y))
      if r == nil then error("aggregate: merge returned nil", 0) end
      return r
    end
  end

  -- the first element of key k in slice sl, rebuilt from sl.V
  local function first_of(sl, k)
    if not needs_first then return nil end
    local V, j0 = sl.V, sl.F[k]
    local r = {}
    for j = j0 + 1, V[j0], 2 do r[V[j]] = V[j + 1] end
    return r
  end

  local function key_result(ws, k)
    local acc, fsl, q, raw
    for j = -1, per - 1 do
      local sl
      if j < 0 then sl = wslices[ws] else sl = slices[ws + j * g] end
      if sl then
        local a = sl.A[k]
        if a ~= nil then
          if acc == nil then
            acc = start_copy(a)
            if needs_first then fsl, q = sl, needs_q and sl.Q[k] end
          else
            acc = comb(acc, a)
            if needs_first and sl.Q[k] < q then fsl, q = sl, sl.Q[k] end
          end
          if raw == nil then raw = sl.R[k] end
        end
      end
    end
    return acc, fsl and first_of(fsl, k), raw
  end

  -- the set of keys with elements in window ws
  local function window_keys(ws)
    local keys = {}
    for j = -1, per - 1 do
      local sl
      if j < 0 then sl = wslices[ws] else sl = slices[ws + j * g] end
      if sl then for k in pairs(sl.A) do keys[k] = true end end
    end
    return keys
  end

  local function late_fire(k, lates)
    for i = 1, #lates do
      local ws = lates[i]
      if per == 1 then
        local sl = slices[ws]
        result_out(k, sl.A[k], first_of(sl, k), sl.R[k], ws, ws + size)
      else
        local acc, first, raw = key_result(ws, k)
        result_out(k, acc, first, raw, ws, ws + size)
      end
    end
  end

  local fire_window
  local build = build_expr(P, per)
  local agg_result = agg and agg.result
  if generic then
    fire_window = function(ws)
      if per == 1 then
        local sl = slices[ws]
        if not sl then return end
        local R = sl.R
        for k, a in pairs(sl.A) do result_out(k, a, first_of(sl, k), R[k], ws, ws + size) end
        return
      end
      local keys = window_keys(ws)
      for k in pairs(keys) do
        local acc, first, raw = key_result(ws, k)
        result_out(k, acc, first, raw, ws, ws + size)
      end
    end
  elseif per == 1 then
    local fire1 = gen(FIRE_ONE, { BUILD = build }, "fire " .. kind, E, BATCH, field, agg_result, result_nil,
      deep_copy)
    fire_window = function(ws)
      local sl = slices[ws]
      if sl then fire1(sl.A, sl.F, sl.R, sl.V, ws + size - 1) end
    end
  else
    local COMB = ({ count = "x + a", sum = "x + a", min = "a < x and a or x", max = "a > x and a or x" })[kind]
      or "comb(x, a)"
    local fire_many = gen(FIRE_MANY, {
      BUILD = build, COMB = COMB,
      START = (kind == "reduce" or kind == "aggregate") and "start_copy(a)" or "a",
      FDECL = needs_first and "local F, FV, rq = {}, {}, {}" or "",
      FINIT = needs_first and "F[k], FV[k], rq[k] = SF[k], SV, SQ[k]" or "",
      FCOMB = needs_first and "local q = SQ[k]; if q < rq[k] then F[k], FV[k], rq[k] = SF[k], SV, q end" or "",
    }, "fire " .. kind, E, BATCH, field, agg_result, result_nil, comb, start_copy, per, g, slices, wslices)
    fire_window = function(ws) fire_many(ws, ws + size - 1) end
  end

  local function on_timer(_, t)
    fire_window(t - size + 1)
  end
  tm = timers.new(on_timer)

  local VAL, CHECK = val_subst(P)
  local INIT, COMBINE
  if kind == "sum" or kind == "min" or kind == "max" then
    INIT = "A[k] = x"
    if needs_first then
      -- copy the element's fields to V (V[j0] first, so V grows as an array)
      -- (all but the field itself, which the result replaces)
      INIT = INIT .. "; local j0 = V.n + 1; V[j0] = j0; local j = j0"
        .. "; for f, y in next, v do if f ~= " .. (type(field) == "string" and string.format("%q", field) or "vfield")
        .. " then V[j + 1] = f; V[j + 2] = y; j = j + 2 end end"
        .. "; V[j0] = j; V.n = j; F[k] = j0"
    end
    if needs_q then INIT = INIT .. "; seq = seq + 1; Q[k] = seq" end
    COMBINE = ({ sum = "A[k] = a + x", min = "if x < a then A[k] = x end",
      max = "if x > a then A[k] = x end" })[kind]
  elseif kind == "count" then
    INIT, COMBINE = "A[k] = 1", "A[k] = a + 1"
  elseif kind == "reduce" then
    INIT, COMBINE = "A[k] = v", "a = fn(a, v); if a == nil then fail('reduce') end; A[k] = a"
  elseif kind == "aggregate" then
    INIT = "a = agg_add(agg_create(), v); if a == nil then fail('agg') end; A[k] = a"
    COMBINE = "a = agg_add(a, v); if a == nil then fail('agg') end; A[k] = a"
  else -- process (tumbling only)
    INIT, COMBINE = "A[k] = { v }", "a[#a + 1] = v"
  end
  -- one substitution pass, so that "$" in a field name stays as it is
  local template = ALIGNED_LOOP:gsub("%$BODY", function() return ALIGNED_BODY end)
  -- sum checks its field's type once per batch, in C (core.check_numbers),
  -- instead of a type() per element
  local batch_check = kind == "sum" and has_core and core.check_numbers
  if batch_check then CHECK = "" end
  local fail = fast_fail(P)
  local loop = gen(template, { KEY = key_expr(P), VAL = VAL, CHECK = CHECK, INIT = INIT, COMBINE = COMBINE },
    "aligned " .. kind, S, slice_for, late_fire, skip, P.keyf, P.key_field, field, fn,
    agg and agg.add, agg and agg.create, bkey, fail)

  -- count, sum, min and max keep no element (a first element's fields are
  -- copied to V) and change none: the operator can borrow its input
  -- (op.borrow: object reuse on the exchange, see core.poll) unless late
  -- elements go to a side output (which gets the elements themselves) or
  -- the key is a function's (which may return the element)
  local borrows = not generic and (kind == "count" or kind == "sum" or kind == "min" or kind == "max")
    and P.late_tag == nil and (not P.keyed or P.key_field ~= nil)
  local op = { path = "aligned", borrow = borrows and function() return true end or nil }
  function op.push(b, ts, n)
    if batch_check then
      local bad, x = batch_check(b, n, field)
      if bad then fail("num", x) end
    end
    views = {}
    loop(b, ts, n)
    E.flush()
    late.flush()
  end
  function op.watermark(wm)
    if wm > tm.watermark then
      tm:advance_watermark(wm)
      -- drop the slices whose last window is cleaned up
      for s in pairs(slices) do
        local ws = s - (s - off) % slide
        if ws + size <= s or cleanup_of(ws + size - 1) <= wm then slices[s] = nil end
      end
      for ws in pairs(wslices) do
        if cleanup_of(ws + size - 1) <= wm then wslices[ws] = nil end
      end
    end
    E.flush()
    out.watermark(wm)
  end
  function op.processing_time() end
  function op.next_timer() return nil end
  function op.finish()
    E.flush()
    late.flush()
  end
  function op.dropped() return late.dropped end
  -- The snapshot holds every live window (not yet cleaned up) per key: its
  -- slices' accumulators combined (key_result), as the general operator
  -- holds it.
  function op.snapshot(opts)
    local wm = tm.watermark
    local put, finish_snap = fast_snapshot(rt, P, wm, false, opts)
    local wins = {}
    for s in pairs(slices) do
      local ws = s - (s - off) % slide
      while ws > s - size do
        if cleanup_of(ws + size - 1) > wm then wins[ws] = true end
        ws = ws - slide
      end
    end
    for ws in pairs(wslices) do wins[ws] = true end
    for ws in pairs(wins) do
      local keys = window_keys(ws)
      local max = ws + size - 1
      for k in pairs(keys) do
        local acc, first, raw = key_result(ws, k)
        if needs_first then acc = { acc, first } end
        put(k, raw, ws, ws + size, acc, cleanup_of(max))
      end
    end
    return finish_snap()
  end
  --- Restore from a window snapshot of any implementation (data: this
  -- subtask's; all: every old subtask's, for rescaling): each window's
  -- contents become its accumulators again (a slice for tumbling windows).
  function op.restore(data, all)
    local b, wm = fast_restore(rt, P, data, all)
    for s in pairs(slices) do slices[s] = nil end
    for s in pairs(wslices) do wslices[s] = nil end
    S.seq = 0
    views = {}
    tm = timers.new(on_timer)
    tm.watermark = wm
    for bk, ws_map in pairs(b.states[CONTENTS].t) do
      local k, raw = B:key(bk), raw_of(bk)
      for id, v in pairs(ws_map) do
        local ws, we = bounds_of(id)
        if ws == nil or we - ws ~= size or (ws - off) % slide ~= 0 then
          error(string.format("window: cannot restore window %s into windows of size %d every %d (offset %d)",
            id, size, slide, off), 0)
        end
        local max = we - 1
        if cleanup_of(max) > wm then
          local set = per == 1 and slices or wslices
          local sl = set[ws]
          if sl == nil then
            sl = { A = {}, R = {}, F = needs_first and {} or nil, V = needs_first and { n = 0 } or nil,
              Q = needs_q and {} or nil }
            set[ws] = sl
          end
          if needs_first then
            -- the first element's fields go to V, as the loop's INIT writes them
            local V = sl.V
            local j0 = V.n + 1
            local j = j0
            for f, y in pairs(v[2]) do
              if f ~= field then
                V[j + 1], V[j + 2] = f, y
                j = j + 2
              end
            end
            V[j0], V.n, sl.F[k] = j, j, j0
            if needs_q then sl.Q[k] = 0 end -- before every element after the restore
            v = v[1]
          end
          sl.A[k], sl.R[k] = v, raw
          if max > wm then tm:register("event", max, false, false, nil) end
        end
      end
    end
  end
  return op
end

-- ---- fast path: event-time session windows ----------------------------------
--
-- Per key, the in-flight sessions sorted by start (mostly one), each
-- {start, stop, acc, first, raw, k}: an element whose window [t, t + gap)
-- overlaps the key's only session extends it in line; anything else (new
-- sessions, merges of several, late elements) takes slow(). Without
-- allowed lateness a session fires and is dropped when the watermark
-- reaches its max_timestamp, exactly when Flink's EventTimeTrigger fires
-- and its cleanup timer clears the window.
--
-- Sessions are filed in buckets of BUCKET ms (named by their first ms) by
-- a timestamp t <= their max_timestamp (when filed); each bucket has one
-- event-time timer at or before its earliest entry. When it fires, the
-- bucket's sessions that grew past the bucket are filed again under their
-- new end, the due ones fire in max_timestamp order, and the rest wait for
-- a timer at the earliest of them. So a session costs no timer of its own
-- (the timer heap is the expensive part), and sessions still fire in
-- timestamp order.

local SESSION_LOOP = [[
local S, slow, keyf, kfield, vfield, fn, agg_add, gapf, fail = ...
local type = type
return function(b, ts, n)
  if ts == nil then fail("nots") end
  local SS, GAP = S.SS, S.gap
  for i = 1, n do
    local v = b[i]
    local t = ts[i]
    if t == nil or t == $MININT then fail("nots") end
    local k = $KEY
    local x = $VAL
    $CHECK
    local e = t + $GAP
    local s = SS[k]
    -- the window overlaps the key's latest session and no earlier one
    if s ~= nil and t <= s.stop and e >= s.start and (s.prev == nil or t > s.prev.stop) then
      if e > s.stop then s.stop = e end
      if t < s.start then s.start = t end
      local a = s.acc
      $COMBINE
    else
      slow(k, v, t, x, e)
    end
  end
end
]]

local BUCKET = 32

local function session_op(node, out, rt, P)
  local A = P.assigner
  local kind, field = P.fn_kind, P.field
  local needs_first = field ~= nil and (kind == "sum" or kind == "min" or kind == "max")
  local E = emitter(out)
  local late = late_sink(out, P.late_tag)
  local col = collector(E.emit)
  local result_out = fast_result(P, E.emit, col)
  local fn, agg = P.fn, P.agg
  -- keys: the layer's (see "keyed state and snapshots")
  local B = new_backend(rt, P)
  -- SS: key -> its latest session; sessions of a key form a list by start
  -- (s.prev: the one before, s.nxt: the one after)
  local S = { SS = {}, gap = A.gap }
  -- bucket start -> array of sessions; bucket start -> its pending timer
  local buckets, btimer = {}, {}
  local tm

  local init, add, merge
  if kind == "sum" or kind == "min" or kind == "max" then
    init = function(_, x) return x end
    if kind == "sum" then
      add = function(a, _, x) return a + x end
      merge = function(a, b) return a + b end
    elseif kind == "min" then
      add = function(a, _, x) if x < a then return x end return a end
      merge = function(a, b) if b < a then return b end return a end
    else
      add = function(a, _, x) if x > a then return x end return a end
      merge = function(a, b) if b > a then return b end return a end
    end
  elseif kind == "count" then
    init = function() return 1 end
    add = function(a) return a + 1 end
    merge = function(a, b) return a + b end
  elseif kind == "reduce" then
    init = function(v) return v end
    add = function(a, v)
      local r = fn(a, v)
      if r == nil then reduce_nil() end
      return r
    end
    merge = function(a, b) return add(a, b) end
  elseif kind == "aggregate" then
    local aadd, amerge = agg.add, agg.merge
    add = function(a, v)
      local r = aadd(a, v)
      if r == nil then add_nil() end
      return r
    end
    init = function(v) return add(agg.create(), v) end
    merge = function(a, b)
      local r = amerge(a, b)
      if r == nil then error("aggregate: merge returned nil", 0) end
      return r
    end
  else -- process
    init = function(v) return { v } end
    add = function(a, v)
      a[#a + 1] = v
      return a
    end
    merge = function(a, b)
      local n = #a
      for i = 1, #b do a[n + i] = b[i] end
      return a
    end
  end

  local fail = fast_fail(P)

  -- file session s under timestamp t (<= its max_timestamp)
  local function file(s, t)
    local base = t - t % BUCKET -- the bucket's start
    local l = buckets[base]
    if l == nil then
      buckets[base] = { s }
    else
      l[#l + 1] = s
    end
    local bt = btimer[base]
    if bt == nil or t < bt then
      btimer[base] = t
      tm:register("event", t, false, base, nil)
    end
  end

  local function unlink(s)
    local p, q = s.prev, s.nxt
    if q then q.prev = p else S.SS[s.k] = p end
    if p then p.nxt = q end
    s.prev, s.nxt = nil, nil
  end

  local function slow(k, v, t, x, e)
    if k == nil then fail("key") end
    local raw
    if type(k) == "table" then
      raw = k
      k = B:key(k)
    end
    local SS = S.SS
    -- the sessions overlapping [t, e) are consecutive: from the latest
    -- one down, skip those after the window, collect the overlapping ones
    local s = SS[k]
    while s ~= nil and s.start > e do s = s.prev end
    local hi, lo = nil, nil -- latest and earliest overlapping session
    while s ~= nil and t <= s.stop and e >= s.start do
      if hi == nil then hi = s end
      lo = s
      s = s.prev
    end
    if lo == nil then
      local max = e - 1
      if max <= tm.watermark then
        -- a late window that merges with nothing: the element is skipped
        if t <= tm.watermark then late.add(v, t) end
        return
      end
      local n = { start = t, stop = e, acc = init(v, x), first = needs_first and v or nil, raw = raw, k = k }
      -- s is the latest session before the new one (or nil)
      local after = s and s.nxt
      if s == nil then
        -- no session before: the new one goes first
        local f = SS[k]
        if f == nil then
          SS[k] = n
        else
          while f.prev ~= nil do f = f.prev end
          f.prev, n.nxt = n, f
        end
      else
        n.prev, n.nxt = s, after
        s.nxt = n
        if after then after.prev = n else SS[k] = n end
      end
      file(n, max)
      return
    end
    -- merge the overlapping sessions into the earliest (its state window)
    local tg = lo
    if t < tg.start then tg.start = t end
    if e > tg.stop then tg.stop = e end
    local o, after = tg.nxt, hi.nxt
    while o ~= nil and o ~= after do
      local nx = o.nxt
      tg.acc = merge(tg.acc, o.acc)
      if o.stop > tg.stop then tg.stop = o.stop end
      o.dead = true
      unlink(o)
      o = nx
    end
    tg.acc = add(tg.acc, v, x)
  end

  local function fire(s)
    unlink(s)
    result_out(s.k, s.acc, s.first, s.raw, s.start, s.stop)
  end

  local slots, nslot = {}, {} -- due sessions by max_timestamp - bucket start
  local function on_timer(_, t, _, base)
    if btimer[base] ~= t then return end -- superseded by an earlier timer of the bucket
    local l = buckets[base]
    buckets[base], btimer[base] = nil, nil
    if l == nil then return end
    local wm = tm.watermark
    local stop_at = base + BUCKET
    local keep, kmin, due = nil, nil, false
    for i = 1, #l do
      local s = l[i]
      if not s.dead then
        local max = s.stop - 1
        if max >= stop_at then
          file(s, max) -- grew past this bucket
        elseif max <= wm then
          local d = max - base + 1
          local c = (nslot[d] or 0) + 1
          nslot[d] = c
          local sl = slots[d]
          if sl == nil then
            sl = {}
            slots[d] = sl
          end
          sl[c] = s
          due = true
        else
          keep = keep or {}
          keep[#keep + 1] = s
          if kmin == nil or max < kmin then kmin = max end
        end
      end
    end
    if keep then
      buckets[base], btimer[base] = keep, kmin
      tm:register("event", kmin, false, base, nil)
    end
    if due then
      for d = 1, BUCKET do
        local c = nslot[d]
        if c then
          local sl = slots[d]
          nslot[d] = nil
          for i = 1, c do
            local s = sl[i]
            sl[i] = nil
            fire(s)
          end
        end
      end
    end
  end
  tm = timers.new(on_timer)

  local VAL, CHECK = val_subst(P)
  local COMBINE = ({
    sum = "s.acc = a + x", min = "if x < a then s.acc = x end", max = "if x > a then s.acc = x end",
    count = "s.acc = a + 1", reduce = "a = fn(a, v); if a == nil then fail('reduce') end; s.acc = a",
    aggregate = "a = agg_add(a, v); if a == nil then fail('agg') end; s.acc = a", process = "a[#a + 1] = v",
  })[kind]
  local gap_fn = A.gap_fn
  local gapf = gap_fn and function(v) return dynamic_gap(gap_fn, v) end
  local loop = gen(SESSION_LOOP, { KEY = key_expr(P), VAL = VAL, CHECK = CHECK, COMBINE = COMBINE,
    GAP = gap_fn and "gapf(v)" or "GAP" }, "session " .. kind, S, slow, P.keyf, P.key_field, field, fn,
    agg and agg.add, gapf, fail)

  local op = { path = "session" }
  function op.push(b, ts, n)
    loop(b, ts, n)
    E.flush()
    late.flush()
  end
  function op.watermark(wm)
    if wm > tm.watermark then tm:advance_watermark(wm) end
    E.flush()
    out.watermark(wm)
  end
  function op.processing_time() end
  function op.next_timer() return nil end
  function op.finish()
    E.flush()
    late.flush()
  end
  function op.dropped() return late.dropped end
  -- The snapshot holds the sessions as the general operator holds them:
  -- each session is a window of the merging window set, its own state
  -- window; their timers follow from their ends.
  function op.snapshot(opts)
    local wm = tm.watermark
    local put, finish_snap = fast_snapshot(rt, P, wm, true, opts)
    for k, s in pairs(S.SS) do
      while s ~= nil do
        local acc = s.acc
        if needs_first then acc = { acc, s.first } end
        put(k, s.raw, s.start, s.stop, acc, s.stop - 1)
        s = s.prev
      end
    end
    return finish_snap()
  end
  --- Restore from a window snapshot of any implementation (data: this
  -- subtask's; all: every old subtask's, for rescaling): each in-flight
  -- window of a key with contents becomes a session (windows that already
  -- fired, kept by the general operator for allowed lateness, are done).
  function op.restore(data, all)
    local b, wm = fast_restore(rt, P, data, all)
    local SS = {}
    S.SS, buckets, btimer = SS, {}, {}
    tm = timers.new(on_timer)
    tm.watermark = wm
    local ct, ms = b.states[CONTENTS].t, b.states[MERGING]
    for bk, m in pairs(ms and ms.t or {}) do
      local c, list, k = ct[bk], {}, B:key(bk)
      for id, sid in pairs(m) do
        local v = c and c[sid]
        local start, stop = bounds_of(id)
        if v ~= nil and start ~= nil and stop - 1 > wm then
          local first
          if needs_first then v, first = v[1], v[2] end
          list[#list + 1] = { start = start, stop = stop, acc = v, first = first, raw = raw_of(bk), k = k }
        end
      end
      table.sort(list, function(x, y) return x.start < y.start end)
      local prev
      for _, s in ipairs(list) do
        s.prev = prev
        if prev then prev.nxt = s end
        prev = s
        file(s, s.stop - 1)
      end
      SS[k] = prev
    end
  end
  return op
end

-- ---- the operator -------------------------------------------------------------

local INCREMENTAL = { sum = true, min = true, max = true, count = true, reduce = true, aggregate = true }

--- The window operator of a "window" node (called by the runtime).
-- @param node the graph node (props of WindowedStream's terminal call)
-- @param out {push(b, ts, n), watermark(wm), side(tag) -> fn(b, ts, n)}
-- @param rt {subtask, parallelism, max_parallelism, now() -> ms}
-- @return op {push, watermark, processing_time, next_timer, finish,
--   snapshot, restore}
function M.operator(node, out, rt)
  local A = node.assigner
  if getmetatable(A) ~= Assigner then error("window: the node has no window assigner", 0) end
  local keyed = not not node.keyed
  local inp = node.inputs and node.inputs[1]
  local P = {
    assigner = A, evictor = node.evictor, lateness = node.allowed_lateness or 0, late_tag = node.late_tag,
    keyed = keyed, fn_kind = node.fn_kind, fn = node.fn, agg = node.agg, field = node.field,
    process_fn = node.process_fn, uid = node.uid,
  }
  if keyed then
    P.keyf = inp and inp.key
    P.key_field = inp and inp.key_field
    if type(P.keyf) ~= "function" then error("window: a keyed window needs the key function of its input", 0) end
  end
  local trig = node.trigger
  local default_trigger = trig == nil or (trig.kind == "event_time" and A.event_time)
  if trig == nil then
    if A.kind == "global" then trig = never_trigger()
    elseif A.event_time then trig = triggers.event_time()
    else trig = triggers.processing_time() end
  end
  P.trigger = trig
  -- Flink's EventTimeTrigger on event-time windows: the general operator
  -- runs its on_element in line
  P.event_time_trigger = A.event_time and trig.on_element == event_time_on_element
  local kind = P.fn_kind
  -- the fast paths keep their live state in their own tables: with the
  -- RocksDB backend the general operator keeps it in RocksDB
  if not node.force_general and default_trigger and not P.evictor and A.event_time
    and state.kind() ~= "rocksdb" then
    if A.kind == "tumbling" or A.kind == "sliding" then
      local sliced = A.size ~= A.slide
      if INCREMENTAL[kind] and not (sliced and kind == "aggregate" and not P.agg.merge)
        or (kind == "process" and not sliced) then
        return aligned_op(node, out, rt, P)
      end
    elseif A.kind == "session" and P.lateness == 0 and (INCREMENTAL[kind] or kind == "process") then
      return session_op(node, out, rt, P)
    end
  end
  return general_op(node, out, rt, P)
end

-- Wire the API into the tide module when it is loaded.
do
  local tide = package.loaded.tide
  if type(tide) == "table" then
    tide.windows, tide.triggers, tide.evictors = windows, triggers, evictors
  end
end

return M
