--- tide.operators: the operators of a chain, as the runtime and the test
-- harness build them.
--
-- Contract: ops[kind](node, out, rt) -> op, where
--   node  the graph node (lua/tide.lua): kind, uid, name, site, inputs
--         (inputs[1].key / .key_field for keyed operators) and its props;
--   out   push(b, ts, n) sends records b[1..n] with timestamps ts[1..n]
--         (ts nil: none) downstream; watermark(wm) and status(s) forward
--         events; side(tag) -> push function of a side output;
--   rt    subtask, parallelism, job_id (the run lineage's id), job_name,
--         warn(line) (a warning for stderr and the exit summary),
--         kept_runs() -> set of run ids whose files checkpoints may
--         reference (nil: none to clean), batch (runtime mode), now() ->
--         processing time (ms), norm_key(k, node);
-- and op has push(b, ts, n), and optionally watermark(wm) (fire what is
-- due, then forward), processing_time(now), next_timer(), finish(),
-- snapshot() -> plain data, restore(data, all). Snapshots are encoded at
-- once (by the checkpoint's child, or the test harness), so snapshot() may
-- return the operator's live tables, and restore's data is freshly decoded
-- and may be kept as it is. An operator owns the arrays it passes
-- downstream and never keeps the ones it receives.
local core = require "tide.core"
local util = require "tide.util"
local state = require "tide.state"
local timers = require "tide.timers"
local filesink = require "tide.filesink"
local compat = require "tide.compat"

local encode = core.encode
local idiv, MAX_INT, MIN_INT = compat.idiv, compat.MAX_INT, compat.MIN_INT
local M = {}
local ops = {}
M.ops = ops

local BATCH = 1024            -- records per batch emitted by an operator
local FLUSH_AT = 4096         -- collector size that forces a push downstream
M.BATCH = BATCH

local function describe(node)
  return string.format("operator '%s' (%s, defined at %s)", node.uid, node.name, node.site)
end
M.describe = describe

--- An operational failure of an operator (a file that cannot be opened or
-- read, a malformed input row): the runtime's error handler reports it as
-- "<describe(node)> failed in subtask i/n: message", with no traceback,
-- since the fault is in the input, not in code.
M.Failure = { __tostring = function(e) return describe(e.node) .. " failed: " .. e.message end }
local function input_failure(node, message)
  error(setmetatable({ node = node, message = message }, M.Failure), 0)
end

--- Warnings of operators go here (one line each; tests replace it).
function M.warn(message)
  core.log("warn", "operator", nil, message)
end

-- Keys: tables are compared by value, so they are replaced by their
-- canonical encoding for state lookups; other keys are used as they are.
local function norm_key(k, node)
  if k == nil then
    error("key_by: the key of a record is nil (" .. describe(node) .. ")", 0)
  end
  if type(k) == "table" then return encode(k, true) end
  return k
end
M.norm_key = norm_key

-- A collector: out:collect(v) appends v with the current timestamp (set
-- with set_ts) and pushes downstream once FLUSH_AT records wait; flush()
-- pushes the rest.
local function collector(push)
  local buf, tsb, n, cur_ts, any_ts = {}, {}, 0, nil, false
  local out = {}
  local plain
  local function flush()
    if n > 0 then
      local m = n
      n = 0
      push(buf, any_ts and tsb or nil, m)
      any_ts = false
      if cur_ts == nil then out.collect = plain end
    end
  end
  -- while no record waiting has a timestamp, the timestamps are not kept
  plain = function(_, v)
    if v == nil then error("collect: a record cannot be nil", 2) end
    n = n + 1
    buf[n] = v
    if n >= FLUSH_AT then flush() end
  end
  local function stamped(_, v)
    if v == nil then error("collect: a record cannot be nil", 2) end
    n = n + 1
    buf[n] = v
    tsb[n] = cur_ts
    if cur_ts ~= nil then any_ts = true end
    if n >= FLUSH_AT then flush() end
  end
  out.collect = plain
  local function set_ts(t)
    cur_ts = t
    out.collect = (t == nil and not any_ts) and plain or stamped
  end
  return out, flush, set_ts
end
M.collector = collector

-- ---- stateless ----------------------------------------------------------

local FUSE_AFTER = 4 -- batches a fused map goes through unfused first

function ops.map(node, out)
  local f, o, nxt = node.fn, {}, out.push
  local function map_nil() error("map: the function returned nil (records cannot be nil)", 0) end
  local function push(b, ts, n)
    for i = 1, n do
      local v = f(b[i])
      if v == nil then map_nil() end
      o[i] = v
    end
    nxt(o, ts, n)
  end
  local target = out.fusable and #out.targets == 1 and out.targets[1]
  if not (target and target.op and target.op.fuse_map and #target.node.inputs == 1) then return { push = push } end
  -- fused into its only consumer, a keyed aggregate (aggregation_loop's
  -- fuse_map). The first FUSE_AFTER batches go through unfused: LuaJIT
  -- compiles the fused loop along the path it takes when the loop gets
  -- hot, and by then most records' keys have state (the path where the
  -- record need not be built), where the first batch is mostly first
  -- records of their keys
  local fused = target.op.fuse_map(f, map_nil)
  local warm = FUSE_AFTER
  local function fused_push(b, ts, n)
    if warm > 0 then
      warm = warm - 1
      return push(b, ts, n)
    end
    return fused(b, ts, n)
  end
  -- errors name the map when its function or map_nil raised, the
  -- aggregate otherwise (runtime.handler: the innermost operator function)
  return { push = fused_push, owners = { [fused] = target.node, [f] = node, [map_nil] = node } }
end

function ops.filter(node, out)
  local f, o, ot, nxt = node.fn, {}, {}, out.push
  return { push = function(b, ts, n)
    local m = 0
    if ts then
      for i = 1, n do
        local v = b[i]
        if f(v) then
          m = m + 1
          o[m] = v
          ot[m] = ts[i]
        end
      end
      if m > 0 then nxt(o, ot, m) end
    else
      for i = 1, n do
        local v = b[i]
        if f(v) then
          m = m + 1
          o[m] = v
        end
      end
      if m > 0 then nxt(o, nil, m) end
    end
  end }
end

function ops.flat_map(node, out)
  local f = node.fn
  local col, flush, set_ts = collector(out.push)
  return { push = function(b, ts, n)
    if ts then
      for i = 1, n do
        set_ts(ts[i])
        f(b[i], col)
      end
      set_ts(nil)
    else
      for i = 1, n do f(b[i], col) end
    end
    flush()
  end }
end

-- Sources, unions and side-output selections pass batches straight on.
local function pass(_, out) return { push = out.push } end
ops.union, ops.side_output = pass, pass
function ops.source(node, out, rt)
  if node.source.type == "module" then return require("tide.modules").source_op(node, out, rt) end
  return pass(node, out)
end

-- ---- timestamps and watermarks ------------------------------------------

-- assign_timestamps(fn, strategy): Flink's TimestampsAndWatermarksOperator
-- with a bounded-out-of-orderness generator (watermark = max timestamp -
-- bound - 1), emitted after every record that advances it (per_record, a
-- punctuated generator: the record first, then the watermark) or every
-- auto_watermark_interval of processing time (periodic); with idleness,
-- the output is marked idle after that long without records. Watermarks
-- from upstream are not forwarded, except the final one at end of input.
function ops.assign_timestamps(node, out, rt)
  local fn, strat = node.fn, node.strategy
  local bound, per_record, idleness = strat.bound, strat.per_record, strat.idleness
  local interval = node.interval
  local push_out, wm_out = out.push, out.watermark
  local max_ts = MIN_INT + bound + 1
  local last_wm = MIN_INT
  local o, ot, ot2 = {}, {}, {}
  local next_emit = interval and interval > 0 and (rt.now() + interval) or nil
  local last_record_time = rt.now()
  local idle = false
  local check = core.check_timestamps
  local function bad_timestamp(i)
    local t = ot[i]
    error(string.format("assign_timestamps: the timestamp function returned %s for a record (integer ms expected)",
      t == nil and "nil" or (type(t) .. " " .. tostring(t))), 0)
  end
  local function advance()
    local wm = max_ts - bound - 1
    if wm > last_wm then
      last_wm = wm
      wm_out(wm)
    end
  end
  -- records start..i of the batch, with their timestamps
  local function push_range(b, start, i)
    if start == 1 then return push_out(b, ot, i) end
    table.move(b, start, i, 1, o)
    table.move(ot, start, i, 1, ot2)
    push_out(o, ot2, i - start + 1)
  end
  local op = {}
  function op.push(b, ts, n)
    if idle then
      idle = false
      out.status("active")
    end
    if idleness then last_record_time = rt.now() end
    if ts then
      for i = 1, n do ot[i] = fn(b[i], ts[i]) end
    else
      for i = 1, n do ot[i] = fn(b[i]) end
    end
    local batch_max, bad = check(ot, n)
    if not batch_max then bad_timestamp(bad) end
    if not per_record then
      if batch_max > max_ts then max_ts = batch_max end
      return push_out(b, ot, n)
    end
    -- per record: the record first, then the watermark it advances
    local start = 1
    for i = 1, n do
      local t = ot[i]
      if t > max_ts then
        max_ts = t
        if t - bound - 1 > last_wm then
          push_range(b, start, i)
          start = i + 1
          advance()
        end
      end
    end
    if start <= n then push_range(b, start, n) end
  end
  function op.watermark(wm)
    if wm == MAX_INT then
      last_wm = wm
      wm_out(wm)
    end
  end
  if next_emit or idleness then
    function op.next_timer()
      local t = next_emit
      if idleness and not idle then
        local it = last_record_time + idleness
        if not t or it < t then t = it end
      end
      return t
    end
    function op.processing_time(now)
      if next_emit and now >= next_emit then
        advance()
        next_emit = now + interval
      end
      if idleness and not idle and now >= last_record_time + idleness then
        idle = true
        out.status("idle")
      end
    end
  end
  function op.snapshot() return { max_ts = max_ts, last_wm = last_wm } end
  -- restored at another parallelism a subtask with no old snapshot of its
  -- own starts afresh, as Flink's watermark generators always do
  function op.restore(s) if s then max_ts, last_wm = s.max_ts, s.last_wm end end
  return op
end

-- ---- process functions ---------------------------------------------------

local NO_TIMERS = setmetatable({
  current_watermark = function() return MIN_INT end,
}, {
  __index = function(_, k)
    return function()
      error("timers ('" .. tostring(k) .. "') are only available on a keyed stream (use key_by)", 2)
    end
  end,
})

local operator_state = require "tide.operator_state"

local function keyed_sources(s, all, rt) return state.keyed_sources(s, all, rt.parallelism) end

-- A guard standing in for ctx.state or ctx.timers where they cannot be
-- used: every access raises message.
local function refusing(message)
  return setmetatable({}, { __index = function()
    return function() error(message, 2) end
  end })
end

-- Broadcast state of a (keyed) broadcast process function (Flink's
-- BroadcastState): the operator state's broadcast state of each
-- descriptor name (lua/tide/operator_state.lua: snapshotted with it, and
-- on restore at another parallelism new subtask i takes old subtask (i mod
-- old parallelism)'s copy, as Flink redistributes broadcast state).
-- view(name) is the read-write handle in on_broadcast (set_writable(true))
-- and a read-only one (get, contains, entries) in on_record.
local function broadcast_state(names, store, owner)
  local declared, writable = {}, false
  for _, name in ipairs(names) do declared[name] = true end
  local ro = {}
  local bs = {}
  function bs.view(name)
    if not declared[name] then
      error(string.format("no broadcast state '%s': broadcast() declared %s (%s)", tostring(name),
        table.concat(names, ", "), owner), 3)
    end
    local h = store:get_broadcast_state(name)
    if writable then return h end
    local r = ro[name]
    if not r or r.h ~= h then
      local function refuse(what)
        return function()
          error(string.format("broadcast state '%s' is read-only in on_record (%s in on_broadcast only; %s)",
            name, what, owner), 2)
        end
      end
      r = { h = h, get = function(_, k) return h:get(k) end, contains = function(_, k) return h:contains(k) end,
        entries = function() return h:entries() end, put = refuse("put"), remove = refuse("remove"),
        clear = refuse("clear") }
      ro[name] = r
    end
    return r
  end
  function bs.set_writable(w) writable = w end
  return bs
end

-- Flink's ProcessFunction / KeyedProcessFunction: on_record(value, ctx,
-- out) per record, on_timer(ts, ctx, out) per due timer (keyed streams),
-- ctx:output(tag, v) for side outputs. Records collected in on_record take
-- the input's timestamp; in on_timer, the timer's for event time and none
-- for processing time. ctx.operator_state is the subtask's operator state
-- (lua/tide/operator_state.lua, Flink's OperatorStateStore), keyed or not.
-- spec.open(ctx) runs once, after restore (ctx.is_restored tells whether
-- there was one, as Flink's FunctionInitializationContext.isRestored) and
-- before the first record, timer or watermark: op.open() when the runtime
-- calls it, else at the first of those.
--
-- snapshot() -> {operator_state =} and, keyed, {state =, timers =};
-- restore(s, all): keyed state and timers from s (this subtask's own
-- snapshot; nil after rescaling up: none), operator state redistributed
-- from all (every old subtask's snapshot, in subtask order) to
-- rt.subtask of rt.parallelism, or from s alone when all is nil.
--
-- With two inputs (node.two_input: connect, broadcast connect, interval
-- join) push(b, ts, n, input) takes the input (1 or 2), which picks
-- spec.on_record1/2 (or on_record/on_broadcast) and the input's key
-- function; state, timers and snapshots are shared by both inputs.
function ops.process(node, out, rt)
  local spec = node.spec
  local on_record, on_timer = spec.on_record, spec.on_timer
  -- two inputs (co_process): push's fourth argument, the input (1 or 2),
  -- picks the function and the key function
  local on_records, keyfs
  if node.two_input then
    on_records = node.broadcast and { spec.on_record, spec.on_broadcast } or { spec.on_record1, spec.on_record2 }
    keyfs = { node.inputs[1].key, node.inputs[2].key }
  end
  local col, flush, set_ts = collector(out.push)
  local sides = {}
  local function side_flush()
    for _, s in pairs(sides) do s.flush() end
  end
  local ctx = { subtask = rt.subtask, parallelism = rt.parallelism, state = state.unkeyed, timers = NO_TIMERS,
    operator_state = operator_state.new(describe(node)), is_restored = false }
  local function restore_operator_state(s, all)
    ctx.is_restored = true
    local olds
    if all then
      -- all[i] is false or a table up to the old parallelism (no #all:
      -- LuaJIT ignores the runtime's __len)
      olds = {}
      local i = 1
      while all[i] ~= nil do
        olds[i] = all[i] and all[i].operator_state or false
        i = i + 1
      end
    end
    ctx.operator_state:restore(s and s.operator_state, olds, rt.subtask, rt.parallelism)
  end
  -- the timestamp of what on_record collects next (for operators built on
  -- process, such as the interval join: its output's timestamp is the
  -- larger of the pair's)
  function ctx._set_timestamp(_, t)
    ctx.timestamp = t
    set_ts(t)
  end
  function ctx.output(_, tag, v)
    local s = sides[tag]
    if not s then
      local c, f, st = collector(out.side(tag))
      s = { c = c, flush = f, set_ts = st }
      sides[tag] = s
    end
    s.set_ts(ctx.timestamp)
    s.c:collect(v)
  end
  local op = {}
  local watermark = MIN_INT
  if not node.keyed then
    ctx.timers = setmetatable({
      current_watermark = function() return watermark end,
      current_processing_time = function() return rt.now() end,
    }, getmetatable(NO_TIMERS))
  end
  if node.mixed_keying then
    ctx.state = refusing("keyed state needs both inputs keyed: " .. node.mixed_keying .. "; " .. describe(node))
    ctx.timers = setmetatable({
      current_watermark = function() return watermark end,
      current_processing_time = function() return rt.now() end,
    }, { __index = function()
      return function()
        error("timers need both inputs keyed: " .. node.mixed_keying .. "; " .. describe(node), 2)
      end
    end })
  end
  -- f(value, ctx, out) for records b[1..n], ctx.timestamp from ts
  local function each_record(f, b, ts, n)
    for i = 1, n do
      local t = ts and ts[i]
      ctx.timestamp = t
      set_ts(t)
      f(b[i], ctx, col)
    end
  end
  local bstate
  if node.broadcast then
    bstate = broadcast_state(node.broadcast, ctx.operator_state, describe(node))
    function ctx.broadcast_state(_, name) return bstate.view(name) end
  end
  if node.keyed then
    local cur = {}
    local keyf = node.inputs[1].key
    local backend = state.operator_backend(rt, node.uid, rt.now)
    ctx.state = state.new(cur, backend, describe(node))
    local service = timers.new(function(domain, t, k, _, raw)
      cur.key = k
      ctx.key = raw
      ctx.timestamp = domain == "event" and t or nil
      ctx.time_domain = domain
      set_ts(ctx.timestamp)
      if on_timer then on_timer(t, ctx, col) end
    end, backend)
    ctx.timers = {
      register_event_time = function(_, t) service:register("event", t, cur.key, false, ctx.key) end,
      register_processing_time = function(_, t) service:register("processing", t, cur.key, false, ctx.key) end,
      delete_event_time = function(_, t) service:delete("event", t, cur.key, false) end,
      delete_processing_time = function(_, t) service:delete("processing", t, cur.key, false) end,
      current_watermark = function() return watermark end,
      current_processing_time = function() return rt.now() end,
    }
    local keyed_state, keyed_timers = ctx.state, ctx.timers
    -- key_by(field): the field read here, not through keyf (a call per
    -- record)
    local kf = node.inputs[1].key_field
    local kfs = node.two_input and { node.inputs[1].key_field, node.inputs[2].key_field }
    local function push_keyed(b, ts, n, input)
      if input then on_record, keyf, kf = on_records[input], keyfs[input], kfs[input] end
      ctx.time_domain = nil
      if not ts then
        ctx.timestamp = nil
        set_ts(nil)
      end
      for i = 1, n do
        local v = b[i]
        local k
        if kf ~= nil then k = v[kf] else k = keyf(v) end
        if k == nil then norm_key(k, node) end
        if type(k) == "table" then cur.key = backend:key(k) else cur.key = k end
        ctx.key = k
        if ts then
          local t = ts[i]
          ctx.timestamp = t
          set_ts(t)
        end
        on_record(v, ctx, col)
      end
      flush()
      side_flush()
    end
    op.push = push_keyed
    if node.broadcast then
      -- Flink's KeyedBroadcastProcessFunction: on_broadcast has no current
      -- key; it reaches keyed state through apply_to_keyed_state
      local no_key = "on_broadcast has no current key: use ctx:apply_to_keyed_state(name, fn) (" ..
        describe(node) .. ")"
      local bstate_of_key, btimers = refusing("keyed state " .. no_key), refusing("timers: " .. no_key)
      function ctx.apply_to_keyed_state(_, name, fn)
        if type(name) ~= "string" then error("bad argument #1 to 'apply_to_keyed_state' (state name expected)", 2) end
        if type(fn) ~= "function" then error("bad argument #2 to 'apply_to_keyed_state' (function expected)", 2) end
        ctx.state = keyed_state
        local ok, err = pcall(backend.each_key, backend, name, function(k)
          cur.key, ctx.key = k, k
          fn(k, keyed_state)
        end)
        cur.key, ctx.key, ctx.state = nil, nil, bstate_of_key
        if not ok then error(err, 0) end
      end
      function op.push(b, ts, n, input)
        if input ~= 2 then
          bstate.set_writable(false)
          return push_keyed(b, ts, n, 1)
        end
        bstate.set_writable(true)
        cur.key, ctx.key, ctx.state, ctx.timers = nil, nil, bstate_of_key, btimers
        ctx.time_domain = nil
        each_record(on_records[2], b, ts, n)
        ctx.state, ctx.timers = keyed_state, keyed_timers
        bstate.set_writable(false)
        flush()
        side_flush()
      end
    end
    function op.watermark(wm)
      watermark = wm
      service:advance_watermark(wm)
      ctx.time_domain = nil
      flush()
      side_flush()
      out.watermark(wm)
    end
    function op.processing_time(now)
      service:advance_processing_time(now)
      ctx.time_domain = nil
      flush()
      side_flush()
    end
    function op.next_timer() return service:next_processing_time() end
    function op.snapshot(opts)
      return { keyed = backend:snapshot(opts), timers = service:snapshot(opts), operator_state = ctx.operator_state:snapshot() }
    end
    function op.restore(s, all)
      for _, o in ipairs(keyed_sources(s, all, rt)) do
        backend:restore({ o.keyed })
        service:restore(o.timers or {}, backend, o.keyed)
      end
      restore_operator_state(s, all)
    end
  else
    function op.push(b, ts, n, input)
      if input then
        on_record = on_records[input]
        if bstate then bstate.set_writable(input == 2) end
      end
      each_record(on_record, b, ts, n)
      if bstate then bstate.set_writable(false) end
      flush()
      side_flush()
    end
    function op.watermark(wm)
      watermark = wm
      out.watermark(wm)
    end
    function op.snapshot() return { operator_state = ctx.operator_state:snapshot() } end
    op.restore = restore_operator_state
  end
  if spec.close then
    function op.finish()
      ctx.key, ctx.timestamp = nil, nil
      set_ts(nil)
      spec.close(ctx)
      flush()
      side_flush()
    end
  end
  if spec.open then
    local opened = false
    function op.open()
      if opened then return end
      opened = true
      ctx.key, ctx.timestamp, ctx.time_domain = nil, nil, nil
      set_ts(nil)
      spec.open(ctx)
      flush()
      side_flush()
    end
    for _, f in ipairs { "push", "watermark", "processing_time", "finish" } do
      local inner = op[f]
      if inner then
        op[f] = function(...)
          if not opened then op.open() end
          return inner(...)
        end
      end
    end
  end
  return op
end

-- Flink's CoProcessFunction / KeyedCoProcessFunction / (Keyed)
-- BroadcastProcessFunction: the process operator with two inputs
-- (node.two_input; push's fourth argument says which).
ops.co_process = ops.process

-- ---- keyed rolling aggregations ---------------------------------------------

local AGG_TEMPLATE = [[
local keyf, kfield, field, fn, vals, firsts, nxt, intern, fail, result, raws, check_numbers, spec = ...
local shape_of, slots, slot_shape, SH, reslot, shape_for, copy, KS, pre, ffail =
  spec.shape_of, spec.slots, spec.slot_shape, spec.SH, spec.reslot, spec.shape_for, spec.copy, spec.KS,
  spec.pre, spec.ffail
local type, next, rawget = type, next, rawget
local o = {}
return function(b, ts, n)
  local m = 0
  $BATCHCHECK
  for i = 1, n do
    local v = $ITEM
    local k = $KEY
    local x = $VALUE
    $CHECK
    local a = vals[k]
    if a == nil then
      -- a miss: the key may be nil (an error) or a table (compared by
      -- value: the state layer's interned copy); hits need no check
      if k == nil then $KEYFAIL elseif type(k) == "table" then
        local kr = k
        k = intern(k)
        a = vals[k]
        $RAWSAVE
      end
    end
    if a == nil then
      vals[k] = x
      $FIRST
    else
      $COMBINE
    end
    $EMIT
  end
  $AFTER
end
]]

local COMBINE = {
  sum = "vals[k] = a + x",
  min = "if x < a then vals[k] = x end",
  max = "if x > a then vals[k] = x end",
  reduce = "a = fn(a, x); if a == nil then fail('reduce') end; vals[k] = a",
  count = "vals[k] = a + 1",
}

-- Two-phase aggregation in batch mode (as Flink SQL's local-global
-- aggregation, table.optimizer.agg-phase-strategy TWO_PHASE): a keyed
-- count/sum/min/max behind a hash exchange emits nothing before the end of
-- input, so the sending side pre-aggregates per key (mode "combine") and
-- sends one partial per key at the end, {key, accumulator, first} (first:
-- the raw key for count, the key's first record for sum/min/max of a
-- field), and the aggregate merges partials (mode "merge"). The results are
-- those of aggregating the records themselves; the exchange carries one
-- record per key and sending subtask instead of every record.
local MERGE = {
  sum = "vals[k] = a + x",
  count = "vals[k] = a + x",
  min = "if x < a then vals[k] = x end",
  max = "if x > a then vals[k] = x end",
}

-- A copy of record first with field set to s (the output of a keyed or
-- windowed sum/min/max: the first record with the aggregate).
local function with_field(first, field, s)
  -- the nil fields presize the copy's hash part: no rehash while it grows
  local c = { _1 = nil, _2 = nil, _3 = nil, _4 = nil }
  for f, v in next, first do c[f] = v end
  c[field] = s
  return c
end

local function aggregation_loop(node, out, rt, agg, st, mode)
  local nxt = out.push
  local inp = node.inputs[1]
  local field = node.field
  local batch = rt.batch or mode == "combine"
  local vals, firsts = st:state(agg, "value").t, st:state(agg .. ".first", "value").t
  local with_first = agg ~= "reduce" and field ~= nil
  -- count's output holds the key as given: for a table key, the record's
  -- own (k is the state layer's interned copy); any other key is k itself
  -- and is not stored again (one state per key, not two: half the reads
  -- and writes on RocksDB)
  local keys = agg == "count" and st:state("count.key", "value").t or nil
  local function key_of(k)
    if type(k) == "table" then
      local r = keys[k]
      if r ~= nil then return r end
    end
    return k
  end
  local raws = mode == "combine" and {} or nil
  -- A first record that holds the key field (a string) and the aggregated
  -- field and nothing else, as {word = w, n = 1} behind
  -- key_by("word"):sum("n"), is not kept: the key has no entry in the
  -- first-record state (a key with an aggregate and no first record), and
  -- the output is {[key field] = k, [field] = aggregate}, the same record
  -- (a string key is the record's own value; a number key's record is
  -- kept, since 1 and 1.0 are one key). No table and no entry per key: a
  -- word count's live heap is about half as big, the collector's work
  -- with it too (LuaJIT's collector marks the whole heap every cycle),
  -- and the lookup of a key's first record finds an empty table.
  local kfield = inp.key_field
  local compact = with_first and mode == nil and type(field) == "string" and type(kfield) == "string"
    and kfield ~= field
  -- The loop can borrow its input (op.borrow(): it keeps no record and
  -- changes none, so the exchange may decode the next batch into the same
  -- tables) when its key is a field (a value inside the record, never the
  -- record): it then keeps a key's first record as a copy. Reduce hands
  -- records to the user's function, which may keep them.
  local borrows = mode == nil and agg ~= "reduce" and inp.key_field ~= nil
  local borrowed = false
  local function copy(v)
    if not borrowed or type(v) ~= "table" then return v end
    local c = {}
    for f, x in next, v do c[f] = x end
    return c
  end
  -- The output of a key: its first record with the field replaced by the
  -- aggregate. Records of one shape (the same field names, all of them
  -- identifiers) share generated code that builds the copy in one
  -- presized constructor, {a = f.a, [field] = s}; others are copied field
  -- by field. When no consumer keeps the records it is given
  -- (out.reusable: a sink, a network output), the outputs are not new
  -- tables but one per slot of the output batch, refilled for every batch.
  local reuse = out.reusable and not batch
  local shape_of = {} -- key -> the {copy =, fill =} functions of its first record's shape
  local shapes = {}   -- field names, sorted and joined -> {copy =, fill =}
  local generic = {
    copy = function(first, s) return with_field(first, field, s) end,
    fill = function(t, first, s)
      for f, v in next, first do t[f] = v end
      t[field] = s
      return t
    end,
  }
  local function shape(first)
    if type(field) ~= "string" then return generic end
    local names = {}
    for f in next, first do
      if type(f) ~= "string" or not f:match("^[%a_][%w_]*$") or #names == 32 then return generic end
      if f ~= field then names[#names + 1] = f end
    end
    table.sort(names)
    local sig = table.concat(names, ",")
    local sh = shapes[sig]
    if not sh then
      local parts, sets = {}, {}
      for i, f in ipairs(names) do
        parts[i] = f .. " = f." .. f
        sets[i] = "t." .. f .. " = f." .. f
      end
      parts[#parts + 1] = "[field] = s"
      sh = assert(load("local field = ...; return { copy = function(f, s) return { " .. table.concat(parts, ", ") ..
        " } end, fill = function(t, f, s) " .. table.concat(sets, "; ") .. (#sets > 0 and "; " or "") ..
        "t[field] = s; return t end }", "=[tide " .. agg .. " copy]", "t"))(field)
      sh.names = names
      shapes[sig] = sh
    end
    return sh
  end
  local slots, slot_shape = {}, {} -- reuse: the output table of each slot, and the shape it holds
  local key_shape = {} -- the slot shape of a compact first's output
  local specialize -- set below: inline the first shape seen into the loop
  local function shape_for(k)
    local sh = shape(firsts[k])
    shape_of[k] = sh
    if specialize then specialize(sh) end
    return sh
  end
  -- the slot m's table, emptied for shape sh
  local function reslot(m, sh)
    local t = slots[m]
    if not t then
      t = {}
      slots[m] = t
    end
    for f in next, t do t[f] = nil end
    slot_shape[m] = sh
    return t
  end
  local function result(k, m)
    if keys then
      if not reuse then return { key = key_of(k), count = vals[k] } end
      local t = slots[m]
      if not t then
        t = {}
        slots[m] = t
      end
      t.key, t.count = key_of(k), vals[k]
      return t
    end
    if not with_first then return vals[k] end
    local first = firsts[k]
    if first == nil then
      if not reuse then return { [kfield] = k, [field] = vals[k] } end
      local t = slots[m]
      if not t or slot_shape[m] ~= key_shape then t = reslot(m, key_shape) end
      t[kfield], t[field] = k, vals[k]
      return t
    end
    local sh = shape_of[k] or shape_for(k)
    if not reuse then return sh.copy(first, vals[k]) end
    local t = slots[m]
    if not t or slot_shape[m] ~= sh or sh == generic then t = reslot(m, sh) end
    return sh.fill(t, first, vals[k])
  end
  local function fail(what, x)
    if what == "key" then
      error("key_by: the key of a record is nil (" .. describe(node) .. ")", 0)
    elseif what == "reduce" then
      error("reduce: the function returned nil", 0)
    elseif field == nil then
      error(string.format("%s: the record is not a number (got %s)", agg, type(x)), 0)
    else
      error(string.format("%s: field '%s' is not a number (got %s)", agg, tostring(field), type(x)), 0)
    end
  end
  -- sum: the values are numbers, checked once per batch in C (a type()
  -- call per record costs about as much as the rest of the loop)
  local check, batch_check = "", ""
  if agg == "sum" then
    batch_check = "local bad, bv = check_numbers(b, n" .. (field ~= nil and ", field" or "") ..
      ") if bad then fail('value', bv) end"
  elseif agg ~= "reduce" then
    check = "if x == nil then fail('value', x) end"
  end
  if mode == "combine" then
    -- a partial: {normalized key, accumulator, first}; routed by raw key
    local f = keys or firsts
    result = function(k)
      local first = f[k]
      if first == nil then first = raws[k] end
      return { k, vals[k], first }
    end
  end
  -- a field as an index into v: a constant (faster than an upvalue)
  local function index(f)
    if type(f) == "string" then return string.format("v[%q]", f) end
    return string.format("v[%d]", f)
  end
  local kexpr = inp.key_field ~= nil and index(inp.key_field) or "keyf(v)"
  -- the emission: with reuse and a known shape SH, the copy of the first
  -- record into the slot's table is inlined (no call per record)
  local function emit_code(sh)
    if batch then return "" end
    if not (reuse and (sh or compact)) then return "m = m + 1; o[m] = result(k, m)" end
    local body = "o[m] = result(k, m)"
    if sh then
      local sets = {}
      for i, f in ipairs(sh.names) do sets[i] = string.format("t[%q] = f[%q]", f, f) end
      sets[#sets + 1] = string.format("t[%q] = vals[k]", field)
      body = [[
      local sh = shape_of[k]
      if sh == nil then sh = shape_for(k) end
      if sh == SH then
        local t = slots[m]
        if t == nil or slot_shape[m] ~= SH then t = reslot(m, SH) end
        local f = firsts[k]
        ]] .. table.concat(sets, "; ") .. [[

        o[m] = t
      else
        o[m] = result(k, m)
      end]]
    end
    if not compact then return "m = m + 1\n" .. body end
    -- a compact first (see above): the output is built from the key
    return string.format([[
    m = m + 1
    if firsts[k] == nil then
      local t = slots[m]
      if t == nil or slot_shape[m] ~= KS then t = reslot(m, KS) end
      t[%q] = k; t[%q] = vals[k]
      o[m] = t
    else
      ]], kfield, field) .. body .. [[

    end]]
  end
  -- a key's first record: kept (a copy when borrowed), unless compact
  local first_code = keys and "if type(k) == 'table' then firsts[k] = $KEY end" or ""
  if with_first then
    first_code = borrows and "firsts[k] = copy(v)" or "firsts[k] = v"
    if compact then
      first_code = "if not (type(k) == 'string' and rawget(v, kfield) == k and rawget(v, field) ~= nil and " ..
        "next(v, (next(v, (next(v))))) == nil) then " .. first_code .. " end"
    end
  end
  -- gen(sh, fz): the loop; fz: with a map fused in (fuse_map below)
  local fused, ffail, fused_item, fused_check
  local function gen(sh, fz)
  local src = AGG_TEMPLATE
    :gsub("%$ITEM", fz and fused_item or "b[i]")
    :gsub("%$KEYFAIL", fz and "ffail('key', b, n, i, v)" or "fail('key')")
    :gsub("%$RAWSAVE", raws and "if a == nil then raws[k] = kr end" or "")
    :gsub("%$KEY", function() return kexpr end)
    :gsub("%$VALUE", agg == "count" and "1" or (agg == "reduce" or field == nil) and "v" or index(field))
    :gsub("%$CHECK", fz and fused_check or check)
    :gsub("%$BATCHCHECK", fz and "" or batch_check)
    :gsub("%$FIRST", first_code)
    :gsub("%$KEY", function() return kexpr end)
    :gsub("%$COMBINE", COMBINE[agg])
    :gsub("%$EMIT", function() return emit_code(sh) end)
    :gsub("%$AFTER", batch and "" or "nxt(o, ts, m)")
  return assert(load(src, "=[tide " .. agg .. "]", "t"))(inp.key, inp.key_field, field, node.fn,
    vals, keys or firsts, nxt, function(k) return st:key(k) end, fail, result, raws, core.check_numbers,
    { shape_of = shape_of, slots = slots, slot_shape = slot_shape, SH = sh, reslot = reslot,
      shape_for = shape_for, copy = copy, KS = key_shape, pre = fz and fz.pre, ffail = ffail })
  end
  local push = gen(nil)
  local current -- the shape the loops are specialized for (nil: none)
  local fused_impl -- the fused loop, once fuse_map made one
  if reuse and with_first and type(field) == "string" and mode == nil then
    -- monomorphic: the loop is generated again, once, for the first shape
    -- of record seen (other shapes take the general path)
    local impl = push
    -- (not a tail call: this function names the operator in an error
    -- raised by the loop, see runtime.handler)
    push = function(b, ts, n) impl(b, ts, n) end
    specialize = function(sh)
      specialize = nil
      if sh ~= generic then
        current = sh
        impl = gen(sh)
        if fused then fused_impl = gen(sh, fused) end
      end
    end
  end
  local fuse_map
  if mode == nil and agg ~= "reduce" and compat.luajit then
    -- A map chained into this aggregate as its only consumer is fused into
    -- the loop (ops.map; LuaJIT only): fuse_map(pre, map_nil) returns a
    -- push over the map's input that calls pre (the map's function) on
    -- each record and aggregates the result; map_nil raises the map's
    -- error for a nil. Compiled, a record that does not outlive its
    -- iteration, as {word = w, n = 1} into a sum, is then not allocated
    -- (LuaJIT's allocation sinking). On Lua 5.4 the record is built either
    -- way, and sum's batch check in C costs less than a type() per record.
    --
    -- A fused loop fails as the map and the aggregate apart would: the map
    -- ran over the whole batch before the aggregate saw any of it, so a
    -- map error anywhere in the batch comes first, then sum's check of the
    -- batch, then the loop's own error. ffail(what, b, n, i, v, x) at
    -- record i, mapped to v: what is "map" (v is nil), "key" (its key is
    -- nil) or "value" (x is not a number; nil for min and max).
    ffail = function(what, b, n, i, v, x)
      if what == "map" then fused.map_nil() end
      local rest = { v }
      for j = i + 1, n do
        local w = fused.pre(b[j])
        if w == nil then fused.map_nil() end
        rest[j - i + 1] = w
      end
      if agg == "sum" then
        local bad, bv = core.check_numbers(rest, #rest, field)
        if bad then fail("value", bv) end
      end
      if what == "key" then fail("key") end
      fail("value", x)
    end
    -- sum's check, per record: a record that is not a table has no field
    fused_item = "pre(b[i]) if v == nil then ffail('map', b, n, i) end" ..
      (agg == "sum" and field ~= nil and " if type(v) ~= 'table' then ffail('value', b, n, i, v, nil) end" or "")
    fused_check = agg == "sum" and "if type(x) ~= 'number' then ffail('value', b, n, i, v, x) end"
      or agg ~= "count" and "if x == nil then ffail('value', b, n, i, v, x) end" or ""
    fuse_map = function(pre, map_nil)
      fused = { pre = pre, map_nil = map_nil }
      fused_impl = gen(current, fused)
      return function(b, ts, n) fused_impl(b, ts, n) end -- (not a tail call, as push)
    end
  end
  if mode == "merge" then
    local f = keys or firsts
    local merge = assert(load([[
      local vals, f, intern = ...
      local type = type
      return function(b, _, n)
        for i = 1, n do
          local p = b[i]
          local k, x = p[1], p[2]
          -- a table key arrives as a new table: the state layer's copy
          if type(k) == "table" then k = intern(k) end
          local a = vals[k]
          if a == nil then
            vals[k] = x
            -- (count: the key as given, sent for table keys only)
            if p[3] ~= nil then f[k] = p[3] end
          else
            ]] .. MERGE[agg] .. [[

          end
        end
      end]], "=[tide " .. agg .. " merge]", "t"))
    push = merge(vals, f, function(k) return st:key(k) end)
  end
  local finish
  if batch then
    finish = function()
      local o, m = {}, 0
      st:each_key(agg, function(k)
        m = m + 1
        o[m] = result(k)
        if m == BATCH then
          nxt(o, nil, m)
          m = 0
        end
      end)
      if m > 0 then nxt(o, nil, m) end
    end
  end
  return { push = push, finish = finish, fuse_map = fuse_map,
    borrow = borrows and function()
      borrowed = true
      return true
    end or nil,
    snapshot = function(opts) return { keyed = st:snapshot(opts), raws = raws } end,
    restore = function(s, all)
      -- the combiner's partials (mode "combine") belong to its subtask,
      -- whatever their key groups
      for _, o in ipairs(mode == "combine" and { s } or keyed_sources(s, all, rt)) do
        st:restore({ o.keyed })
        for k, v in pairs(o.raws or {}) do raws[st:key(k)] = v end
      end
    end }
end

--- Local pre-aggregation for a window_all (as Flink SQL's local/global
-- window aggregation): spec = {size =, offset =, agg = "sum"|"min"|"max",
-- field =} of an event-time tumbling window_all (tide.lua's
-- local_window_aggregation says when it applies). Returns push(b, ts, n)
-- that sends, per tumbling window among a batch's records, one partial
-- through send(records, ts, m): the window's first record in the batch
-- with the field replaced by the batch's sum, min or max (the number
-- itself when field is nil), stamped with that record's timestamp. The
-- window_all then combines partials as it would the records: the same
-- result (first record, aggregate of all), with one record crossing per
-- window and batch. A batch with a record that has no timestamp or no
-- number to aggregate goes as it is (the window raises its error).
function M.window_all_combiner(spec, send)
  local size, off, agg, field = spec.size, spec.offset, spec.agg, spec.field
  local slot = {}                          -- window start -> partial index
  local firsts, accs, stamps = {}, {}, {} -- per partial
  local out = {}
  local function forget(m)
    for w in pairs(slot) do slot[w] = nil end
    for j = 1, m do firsts[j] = nil end
  end
  return function(b, ts, n)
    if ts == nil then return send(b, ts, n) end
    local m = 0
    for i = 1, n do
      local t, v = ts[i], b[i]
      local x = v
      if field ~= nil then x = type(v) == "table" and v[field] or nil end
      if type(t) ~= "number" or type(x) ~= "number" then
        forget(m)
        return send(b, ts, n)
      end
      local w = t - (t - off) % size
      local j = slot[w]
      if j == nil then
        m = m + 1
        slot[w], firsts[m], accs[m], stamps[m] = m, v, x, t
      elseif agg == "sum" then
        accs[j] = accs[j] + x
      elseif agg == "min" then
        if x < accs[j] then accs[j] = x end
      elseif x > accs[j] then
        accs[j] = x
      end
    end
    for j = 1, m do
      out[j] = field == nil and accs[j] or with_field(firsts[j], field, accs[j])
    end
    forget(m)
    send(out, stamps, m)
    for j = 1, m do out[j] = nil end
  end
end

--- The sending half of a two-phase batch aggregation (see MERGE above):
-- pre-aggregates the records pushed into it per key, like node's
-- aggregate, and at finish() hands the partials to emit(o, n, keys) with
-- the raw keys to route them by.
function M.combiner(node, rt, emit)
  local keyed, keyf = {}, node.inputs[1].key
  local count, field = node.agg == "count", node.field
  local out = { push = function(o, _, n)
    for i = 1, n do
      local p = o[i]
      local raw
      if field ~= nil and not count then
        raw = keyf(p[3])     -- the key of the first record
      else
        raw = p[3]           -- a table key as given, else the key itself
        if raw == nil then raw = p[1] end
      end
      keyed[i] = raw
    end
    emit(o, n, keyed)
  end }
  -- the partials of any key group (they are routed after): the whole range
  return aggregation_loop(node, out, rt, node.agg, state.heap_backend(rt.max_parallelism), "combine")
end

function ops.reduce(node, out, rt)
  return aggregation_loop(node, out, rt, "reduce", state.operator_backend(rt, node.uid))
end

-- sum/min/max(field): Flink's aggregations keep the key's first record and
-- replace the field by the aggregate; with no field, records are numbers.
-- count(): records per key, emitted as {key = k, count = n}.
function ops.aggregate(node, out, rt)
  return aggregation_loop(node, out, rt, node.agg, state.operator_backend(rt, node.uid),
    node.merge_partials and "merge" or nil)
end

-- ---- sinks ---------------------------------------------------------------

-- A sink's part files (lua/tide/filesink.lua), exactly once by two-phase
-- commit (Flink's FileSink): hidden while written; at a checkpoint's
-- barrier the in-progress file is closed and pre-committed; files are
-- committed as "part-<job>-<subtask>-<n>" when that checkpoint completes.
-- At the end of input everything left is pre-committed under the final
-- checkpoint, which completes once every subtask of the job has finished,
-- so a bounded job commits all its output before it exits and a failure
-- before that commits none of the unfinished attempt. Rolled at
-- rolling_size bytes (nil: filesink's default, 128 MiB, as Flink's
-- DefaultRollingPolicy).
local FINAL = MAX_INT -- the final checkpoint's pre-commit id

local function part_writer(node, rt, header)
  local sink_cfg = node.sink
  local cfg = { dir = sink_cfg.dir, prefix = filesink.part_prefix(rt.job_name, rt.job_id, rt.subtask),
    rolling_size = sink_cfg.rolling_size, rollover_interval = sink_cfg.rollover_interval,
    inactivity_interval = sink_cfg.inactivity_interval, header = header, now = rt.now, defer_sync = true }
  -- subtask 0 removes what killed runs of the job left unreferenced
  if rt.subtask == 0 and rt.kept_runs then
    cfg.job = rt.job_name
    cfg.keep = rt.kept_runs()
  end
  local where = string.format("%s (uid '%s') in subtask %d/%d", node.name, node.uid, rt.subtask + 1,
    rt.parallelism)
  local function recover(restored_id)
    local r = filesink.recover(cfg)
    cfg.job = nil -- once per run
    if #r.orphans > 0 then
      rt.warn(string.format("%s: removed %d in-progress part files of earlier runs that no checkpoint " ..
        "references: %s", where, #r.orphans, table.concat(r.orphans, ", ")))
    end
    if #r.taken_back > 0 then
      -- falling back past a newer checkpoint: what it committed is redone
      local n = #r.taken_back
      rt.warn(string.format("%s: recovery from checkpoint %s took back %d committed part file%s that a " ..
        "newer checkpoint had committed, to rewrite %s under the same name%s from the replayed records " ..
        "(a reader that consumed %s must discard what it read): %s", where, tostring(restored_id), n,
        n == 1 and "" or "s", n == 1 and "it" or "them", n == 1 and "" or "s", n == 1 and "it" or "them",
        table.concat(r.taken_back, ", ")))
    end
    return r
  end
  local w, last
  -- time-based rolling is checked every half of the shorter interval (Flink
  -- checks every bucket-check-interval)
  local ri, ii = sink_cfg.rollover_interval, sink_cfg.inactivity_interval
  local check = (ri or ii) and math.max(10, idiv(math.min(ri or ii, ii or ri), 2))
  local next_check = check and rt.now() + check
  -- created on first use, or by restore: recovering with no state removes
  -- what a failed attempt of this job left (same prefix)
  local function writer()
    if not w then w = recover() end
    return w
  end
  return {
    write_lines = function(lines, n) writer():write_lines(lines, n) end,
    finish = function() last = writer():pre_commit(FINAL) end,
    prepare_snapshot = function(id) last = writer():pre_commit(id) end,
    -- in the snapshot's child process: the pending files become durable
    -- there, off the task thread, before the checkpoint can complete; in
    -- a snapshot without fork (opts.syncs) the snapshot's thread does it
    snapshot = function(opts)
      if w and opts and opts.syncs then w:sync_paths(opts.syncs)
      elseif w then w:sync() end
      return { sink = last }
    end,
    -- s: this subtask's old state (nil when restored at a higher
    -- parallelism than the checkpoint's); all: every old subtask's. At
    -- another parallelism, old subtask i's files are recovered by new
    -- subtask i mod p: what its checkpoint had pending is committed, what
    -- came after removed, under its old part-file names
    restore = function(s, all)
      cfg.state = s and s.sink
      w = recover(s and s.sink and s.sink.checkpoint)
      cfg.state = nil
      local n = all and (all.n or #all) or 0
      if n > rt.parallelism then
        for i = rt.parallelism + rt.subtask, n - 1, rt.parallelism do
          local o = all[i + 1]
          local ocfg = {}
          for k, v in pairs(cfg) do ocfg[k] = v end
          ocfg.prefix, ocfg.state, ocfg.job = filesink.part_prefix(rt.job_name, rt.job_id, i), o and o.sink, nil
          filesink.recover(ocfg):dispose()
        end
      end
    end,
    notify_checkpoint_complete = function(id, final) writer():commit(final and FINAL or id) end,
    next_timer = check and function() return next_check end,
    processing_time = check and function(now)
      if w then w:on_processing_time(now) end
      next_check = now + check
    end,
  }
end

local sinks = {}

function sinks.discard() return function() end end

function sinks.print(node, rt)
  local write = core.write_stdout
  local fmt = util.format
  local prefix = rt.parallelism > 1 and (rt.subtask + 1) .. "> " or ""
  local lines = {}
  return function(b, _, n)
    for i = 1, n do lines[i] = prefix .. fmt(b[i]) end
    write(table.concat(lines, "\n", 1, n) .. "\n")
  end
end

function sinks.text(node, rt)
  local w = part_writer(node, rt)
  local fmt = util.format
  local lines = {}
  return function(b, _, n)
    for i = 1, n do lines[i] = fmt(b[i]) end
    w.write_lines(lines, n)
  end, w
end

function sinks.csv(node, rt)
  local cfg = node.sink
  local delim, columns = cfg.delimiter, cfg.columns
  local field = util.csv_field
  local header
  if cfg.header then
    local h = {}
    for i, c in ipairs(columns) do h[i] = field(tostring(c), delim) end
    header = table.concat(h, delim) .. "\n"
  end
  local w = part_writer(node, rt, header)
  local lines, fields = {}, {}
  local function row(v)
    if type(v) ~= "table" then return field(v, delim) end
    local cols = columns
    if not cols then
      local n = #v
      local count = 0
      for _ in pairs(v) do count = count + 1 end
      if count == n then
        for i = 1, n do fields[i] = field(v[i], delim) end
        return table.concat(fields, delim, 1, n)
      end
      cols = util.sorted_keys(v)
    end
    for i = 1, #cols do fields[i] = field(v[cols[i]], delim) end
    return table.concat(fields, delim, 1, #cols)
  end
  return function(b, _, n)
    for i = 1, n do lines[i] = row(b[i]) end
    w.write_lines(lines, n)
  end, w
end

function sinks.kafka(node, rt)
  return require("tide.kafka").sink(node, rt, function(m) input_failure(node, m) end)
end

function sinks.postgres(node, rt)
  return require("tide.postgres").sink(node, rt, function(m) input_failure(node, m) end)
end

function sinks.json(node, rt)
  local w = part_writer(node, rt)
  local json_encode = core.json_encode
  local lines = {}
  return function(b, _, n)
    for i = 1, n do
      local text, err = json_encode(b[i])
      if not text then error(node.name .. ": " .. err, 0) end
      lines[i] = text
    end
    w.write_lines(lines, n)
  end, w
end

-- write_socket (Flink's SocketClientSink): each record as a line, sent
-- at once; at most once (nothing is replayed into the socket)
function sinks.socket(node, rt)
  local cfg = node.sink
  local sock, err = core.socket_connect(cfg.host, cfg.port)
  if not sock then error(node.name .. ": " .. err, 0) end
  local fmt = util.format
  local lines = {}
  return function(b, _, n)
    for i = 1, n do lines[i] = fmt(b[i]) end
    local ok, werr = sock:write(table.concat(lines, "\n", 1, n) .. "\n")
    if not ok then error(node.name .. " " .. cfg.host .. ":" .. cfg.port .. ": " .. werr, 0) end
  end
end

-- Sinks write, print or drop each record at once: they keep none
-- (runtime.build: the operator before them may reuse its records).
function ops.sink(node, out, rt)
  if node.sink.type == "module" then return require("tide.modules").op(node, out, rt) end
  local push, w = sinks[node.sink.type](node, rt)
  if not w then return { push = push, retains = false } end
  return { push = push, retains = false, finish = w.finish, prepare_snapshot = w.prepare_snapshot, snapshot = w.snapshot,
    restore = w.restore, notify_checkpoint_complete = w.notify_checkpoint_complete,
    next_timer = w.next_timer, processing_time = w.processing_time }
end

function ops.window(node, out, rt)
  return require("tide.window").operator(node, out, rt)
end

-- ---- sources ------------------------------------------------------------

-- Decoding JSON lines into records (read_json, the monitored source's
-- format = "json"): dec.decode(text, path, line, buf, n) -> n appends the
-- line's value to buf[1..n] (a blank line adds nothing); a bad line fails
-- the job as "path:line: reason", or under skip is counted (dec.skipped,
-- dec.first_bad: both belong in the source's position); dec.report(what)
-- warns once about the skipped lines.
local function json_lines(node, skip)
  local decode, find = core.json_decode, string.find
  local dec = { skipped = 0 }
  function dec.decode(text, path, line, buf, n)
    if not find(text, "%S") then return n end
    local v, derr = decode(text)
    if v ~= nil then
      buf[n + 1] = v
      return n + 1
    end
    local where = string.format("%s:%d: %s", path, line, derr)
    if not skip then input_failure(node, node.name .. ": " .. where) end
    dec.skipped = dec.skipped + 1
    dec.first_bad = dec.first_bad or where
    return n
  end
  function dec.report(what)
    local k = dec.skipped
    if k == 0 then return end
    M.warn(string.format("%s (uid '%s'): skipped %d bad line%s of %s, first at %s",
      node.name, node.uid, k, k == 1 and "" or "s", what, dec.first_bad))
  end
  return dec
end

-- The continuous file source (env:read_text(dir, {monitor =}), Flink's
-- FileSource.monitorContinuously): subtask 0 lists dir every `monitor` ms
-- and reads each new file (names starting with "." or "_" are not
-- files yet: write them under such a name and rename them in) once, in
-- name order, line by line (format "json": decoded as read_json's). Its
-- position: the names of the files done, the current file and its offset
-- (and line); a restore skips the files done and seeks into the current
-- one. It never ends: `tide stop`, `tide cancel` or a signal stops it.
-- When there is nothing to read it returns (0, true) after a short wait,
-- so that checkpoints and timers go on.
local function monitor_split(node, rt, split)
  local src = node.source
  local idle = { readers = 1, snapshot = function() return {} end, restore = function() end }
  if split ~= 0 then
    return function() core.sleep_ms(100) return 0, true end, idle
  end
  local dir, every = src.path, src.monitor
  local done, queue = {}, {}
  local cur, r, line = nil, nil, 0
  local next_scan = 0
  local dec = src.format == "json" and json_lines(node, src.skip_errors)
  local lines = {}
  local function open(name)
    local err
    r, err = core.open_text(dir .. "/" .. name, 0, 1)
    if not r then input_failure(node, node.name .. ": " .. err) end
    cur, line = name, 0
  end
  local function scan()
    local names, err = core.list_dir(dir)
    if not names then input_failure(node, node.name .. ": cannot list '" .. dir .. "': " .. tostring(err)) end
    table.sort(names)
    queue = {}
    for _, name in ipairs(names) do
      local c = name:sub(1, 1)
      if c ~= "." and c ~= "_" and not done[name] and name ~= cur then queue[#queue + 1] = name end
    end
  end
  return function(buf, max)
    max = max or BATCH
    while true do
      if not r then
        if #queue == 0 then
          local now = core.now_ms()
          if now >= next_scan then
            scan()
            next_scan = now + every
          end
          if #queue == 0 then
            core.sleep_ms(math.max(1, math.min(50, next_scan - core.now_ms())))
            return 0, true
          end
        end
        open(table.remove(queue, 1))
      end
      local got, rerr = r:read(lines, max)
      if not got then input_failure(node, rerr) end
      if got == 0 then
        r:close()
        r, done[cur], cur = nil, true, nil
      elseif dec then
        local n = 0
        for i = 1, got do
          line = line + 1
          n = dec.decode(lines[i], dir .. "/" .. cur, line, buf, n)
        end
        if n > 0 then return n end
      else
        for i = 1, got do buf[i] = lines[i] end
        line = line + got
        return got
      end
    end
  end, {
    readers = 1,
    close = function() if r then r:close() end end,
    snapshot = function()
      local names = {}
      for name in pairs(done) do names[#names + 1] = name end
      table.sort(names)
      return { done = names, current = cur, position = r and r:position(), line = line,
        skipped = dec and dec.skipped, first_bad = dec and dec.first_bad }
    end,
    restore = function(s)
      done = {}
      for _, name in ipairs(s.done or {}) do done[name] = true end
      if r then r:close() end
      r, cur, queue, next_scan = nil, nil, {}, 0
      if s.current then
        open(s.current)
        r:seek(s.position)
        line = s.line
      end
      if dec then dec.skipped, dec.first_bad = s.skipped or 0, s.first_bad end
    end,
  }
end

-- The socket source (env:socket_text_stream, Flink's
-- SocketTextStreamFunction): subtask 0 connects to host:port and splits
-- what it receives at the delimiter (format "json": each piece decoded as
-- read_json's lines); the source ends when the peer closes the connection
-- (the text after the last delimiter is a record too, when not empty).
-- Not replayable: its position is empty, a restore reconnects and reads
-- what the server sends from then on (at most once).
local function socket_split(node, split)
  local src = node.source
  local none = { readers = 1, snapshot = function() return {} end, restore = function() end }
  if split ~= 0 then return function() return 0 end, none end
  local sock, err = core.socket_connect(src.host, src.port)
  if not sock then input_failure(node, node.name .. ": " .. err) end
  local delim, find, sub = src.delimiter, string.find, string.sub
  local dec = src.format == "json" and json_lines(node, src.skip_errors)
  local where = src.host .. ":" .. src.port
  local pending, line, closed = "", 0, false
  local function add(piece, buf, n)
    line = line + 1
    if dec then return dec.decode(piece, where, line, buf, n) end
    buf[n + 1] = piece
    return n + 1
  end
  none.close = function() sock:close() end
  return function(buf, max)
    if closed then return 0 end
    max = max or BATCH
    local data, rerr = sock:read(50)
    if data == nil and rerr then input_failure(node, node.name .. " " .. where .. ": " .. rerr) end
    local n, pos = 0, 1
    if data == nil then
      closed = true
      if pending ~= "" then n = add(pending, buf, n) end
      pending = ""
      if dec then dec.report(where) end
      sock:close()
      return n
    end
    pending = pending .. data
    while n < max do
      local a, b = find(pending, delim, pos, true)
      if not a then break end
      n = add(sub(pending, pos, a - 1), buf, n)
      pos = b + 1
    end
    pending = sub(pending, pos)
    -- (0, true): nothing right now, the source goes on
    return n, n == 0 or nil
  end, none
end

-- Returns read(buf [, max]) -> n (0 at the end) for this subtask's split:
-- up to max (default BATCH) records into buf[1..n]; and the source's
-- position for checkpoints: {snapshot = f() -> data, restore = f(data)}.
-- Positions (Flink's source split states): byte offsets of files
-- (td_reader_pos_t), the index into a list, the generator's next sequence
-- number. A position is taken between batches: the records read so far
-- were all pushed downstream. The table's `readers` is how many subtasks
-- of the source read records (a CSV, a .gz file and a list are read by
-- subtask 0 alone), so that a rate limit can be shared among them.
--
-- A CSV source under on_error = "skip" warns once at the end of its input
-- when it skipped rows (M.warn): how many, and the message of the first
-- one. The count is the reader's (td_reader_skipped: every bad row of the
-- file once, across restores, as the position carries it); the first
-- message goes into the snapshot next to the position, since a restored
-- reader only knows the messages of rows it skipped itself.
local function open_split(node, rt, split, n_splits)
  local src = node.source
  if src.type == "text" or src.type == "csv" then
    local r, err
    if src.type == "text" then
      r, err = core.open_text(src.path, split, n_splits)
    else
      r, err = core.open_csv(src.path, src.opts, split, n_splits)
    end
    if not r then input_failure(node, node.name .. ": " .. err) end
    local first_bad, skipped_before, ended = nil, 0, false
    local function report()
      local n = r:skipped()
      if n == 0 then return end
      local first = first_bad or r:first_skipped()
      M.warn(string.format("%s (uid '%s', subtask %d/%d): skipped %d bad row%s of %s%s, first %s",
        node.name, node.uid, split + 1, n_splits, n, n == 1 and "" or "s", src.path,
        skipped_before > 0 and string.format(" (%d before the restored checkpoint)", skipped_before) or "",
        first and "at " .. first or "before the restored checkpoint"))
    end
    return function(buf, max)
      local n, rerr = r:read(buf, max or BATCH)
      if not n then input_failure(node, rerr) end
      if n == 0 and not ended then
        ended = true
        report()
      end
      return n
    end, {
      readers = r:whole() and 1 or n_splits,
      close = function() r:close() end,
      snapshot = function() return { position = r:position(), first_bad = first_bad or r:first_skipped() } end,
      restore = function(s)
        r:seek(s.position)
        first_bad, skipped_before = s.first_bad, s.position.skipped or 0
      end,
    }
  elseif src.type == "json" then
    -- JSON lines: one value per line, decoded by core.json_decode; read by
    -- subtask 0 so that each bad line is named by its line number (the
    -- count of lines read is in the position next to the reader's)
    if split ~= 0 then
      return function() return 0 end, { readers = 1, snapshot = function() return {} end, restore = function() end }
    end
    local r, err = core.open_text(src.path, 0, 1)
    if not r then input_failure(node, node.name .. ": " .. err) end
    local dec = json_lines(node, src.skip_errors)
    local line, ended = 0, false
    local lines = {}
    return function(buf, max)
      local n = 0
      max = max or BATCH
      while n == 0 do
        local got, rerr = r:read(lines, max)
        if not got then input_failure(node, rerr) end
        if got == 0 then
          if not ended then dec.report(src.path) end
          ended = true
          return 0
        end
        for i = 1, got do
          line = line + 1
          n = dec.decode(lines[i], src.path, line, buf, n)
        end
      end
      return n
    end, {
      readers = 1,
      close = function() r:close() end,
      snapshot = function() return { position = r:position(), line = line, skipped = dec.skipped, first_bad = dec.first_bad } end,
      restore = function(s)
        r:seek(s.position)
        line, dec.skipped, dec.first_bad = s.line, s.skipped, s.first_bad
      end,
    }
  elseif src.type == "socket" then
    return socket_split(node, split)
  elseif src.type == "monitor" then
    return monitor_split(node, rt, split)
  elseif src.type == "list" then
    local list, pos = src.list, 0
    if split ~= 0 then
      return function() return 0 end, { readers = 1, snapshot = function() return {} end, restore = function() end }
    end
    return function(buf, max)
      local n = 0
      max = max or BATCH
      while n < max and pos < #list do
        pos = pos + 1
        n = n + 1
        buf[n] = list[pos]
      end
      return n
    end, {
      readers = 1,
      snapshot = function() return { index = pos } end,
      restore = function(s) pos = s.index end,
    }
  elseif src.type == "generate" then
    -- split k of n takes the sequence numbers k+1, k+1+n, k+1+2n, ...,
    -- bounded or not: the subtasks go through the sequence side by side,
    -- so event times derived from it advance together on every subtask
    -- (as Nexmark's parallel generators share event numbers) and the
    -- watermark downstream, their minimum, does not hold back one
    -- subtask's windows until the other has read its whole range
    local fn, count = src.fn, src.count
    local seq, last, step = split + 1, count or MAX_INT, n_splits
    return function(buf, max)
      local n = 0
      max = max or BATCH
      while n < max and seq <= last do
        local v = fn(seq)
        if v == nil then error("generate: the function returned nil for " .. seq, 0) end
        n = n + 1
        buf[n] = v
        seq = seq + step
      end
      return n
    end, {
      readers = n_splits,
      snapshot = function() return { seq = seq, step = step } end,
      restore = function(s)
        seq = s.seq
        if count and s.step == nil and n_splits > 1 then
          -- a position written when bounded splits were contiguous ranges
          -- (count * k / n + 1 .. count * (k + 1) / n): the rest of it
          last, step = idiv(count * (split + 1), n_splits), 1
        end
      end,
    }
  end
  error("unknown source type " .. tostring(src.type))
end

--- The reader of a source subtask and its position, as above. A subtask
-- reads its split (split = subtask, n_splits = parallelism) or, restored at
-- another parallelism, the old splits it was given (restore_splits: old
-- subtask i's go to new subtask i mod p), each from its restored position
-- to its end, one after the other, as Flink's source readers take several
-- splits. The position is {splits = {{index =, count =, state =}...}}.
function M.open_source(node, rt)
  if node.source.type == "kafka" then
    return require("tide.kafka").open_source(node, rt, function(m) input_failure(node, m) end)
  end
  if node.source.type == "module" then
    -- (at another parallelism only a position that is empty restores:
    -- tide.modules.rescale_refusal)
    return require("tide.modules").open_source(node, rt)
  end
  local read, pos = open_split(node, rt, rt.subtask, rt.parallelism)
  local splits = { { index = rt.subtask, count = rt.parallelism, read = read, pos = pos } }
  local cur = 1
  local function multi(buf, max)
    while true do
      local sp = splits[cur]
      if not sp then return 0 end
      local n, x = sp.read(buf, max)
      if n > 0 or cur == #splits then return n, x end
      cur = cur + 1
    end
  end
  local position = { readers = pos.readers }
  function position.snapshot()
    local list = {}
    for i, sp in ipairs(splits) do list[i] = { index = sp.index, count = sp.count, state = sp.pos.snapshot() } end
    return { splits = list }
  end
  -- old positions (each a snapshot() of an old subtask): every split in
  -- them, opened and positioned, in split order
  function position.restore_splits(olds)
    local list = {}
    for _, o in ipairs(olds) do
      for _, sp in ipairs(o.splits or {}) do list[#list + 1] = sp end
    end
    table.sort(list, function(a, b) return a.index < b.index end)
    -- a split already open (this subtask's own) is positioned, not reopened
    local open = {}
    for _, sp in ipairs(splits) do open[sp.index .. "/" .. sp.count] = sp end
    splits, cur = {}, 1
    for i, sp in ipairs(list) do
      local id = sp.index .. "/" .. sp.count
      local o = open[id]
      open[id] = nil
      if not o then
        local r, p = open_split(node, rt, sp.index, sp.count)
        o = { index = sp.index, count = sp.count, read = r, pos = p }
      end
      o.pos.restore(sp.state)
      splits[i] = o
    end
    for _, o in pairs(open) do
      if o.pos.close then o.pos.close() end
    end
  end
  function position.restore(s)
    -- a position written before sources had splits: this subtask's split's
    if s.splits == nil then s = { splits = { { index = rt.subtask, count = rt.parallelism, state = s } } } end
    position.restore_splits({ s })
  end
  return multi, position
end

return M
