--- tide.runtime: runs one subtask of a task (a chain of operators) in a
-- subtask's VM.
--
-- Records move through a chain a batch at a time: every operator is a
-- push(buf, n) function that processes buf[1..n] and passes its own output
-- array on to the next operators, so a chain of map, filter and flat_map
-- costs a few Lua calls per record and no serialization. Batches come from
-- the source reader or from core.poll (one decoded exchange buffer) and
-- leave through core.emit (one call per batch per output edge).
local core = require "tide.core"
local util = require "tide.util"
local state = require "tide.state"

local emit, encode = core.emit, core.encode
local M = {}

local BATCH = 1024            -- records per source read
local FLUSH_AT = 4096         -- collector size that forces a push downstream
local ROLLING_SIZE = 128 * 1024 * 1024

local function describe(node)
  return string.format("operator '%s' (%s, defined at %s)", node.uid, node.name, node.site)
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

-- A collector whose collect() appends to a buffer and pushes it downstream
-- once it holds FLUSH_AT records; flush() pushes the rest.
local function collector(nxt)
  local buf, n = {}, 0
  local out = {}
  function out.collect(_, v)
    if v == nil then error("collect: a record cannot be nil", 2) end
    n = n + 1
    buf[n] = v
    if n >= FLUSH_AT then
      local m = n
      n = 0
      nxt(buf, m)
    end
  end
  local function flush()
    if n > 0 then
      local m = n
      n = 0
      nxt(buf, m)
    end
  end
  return out, flush
end

local function fanout(outs)
  if #outs == 0 then return function() end end
  if #outs == 1 then return outs[1] end
  return function(b, n)
    for i = 1, #outs do outs[i](b, n) end
  end
end

-- ---- operators: each returns push, finish (optional) -------------------

local ops = {}

function ops.map(node, nxt)
  local f, o = node.fn, {}
  return function(b, n)
    for i = 1, n do
      local v = f(b[i])
      if v == nil then error("map: the function returned nil (records cannot be nil)", 0) end
      o[i] = v
    end
    nxt(o, n)
  end
end

function ops.filter(node, nxt)
  local f, o = node.fn, {}
  return function(b, n)
    local m = 0
    for i = 1, n do
      local v = b[i]
      if f(v) then
        m = m + 1
        o[m] = v
      end
    end
    if m > 0 then nxt(o, m) end
  end
end

function ops.flat_map(node, nxt)
  local f = node.fn
  local out, flush = collector(nxt)
  return function(b, n)
    for i = 1, n do f(b[i], out) end
    flush()
  end
end

function ops.union(_, nxt) return nxt end

function ops.source(_, nxt) return nxt end

local function key_fn(node)
  return node.inputs[1].key
end

function ops.process(node, nxt, ctx, env)
  local spec = node.spec
  local on_record = spec.on_record
  local out, flush = collector(nxt)
  local pctx = { subtask = ctx.subtask, parallelism = ctx.parallelism, state = state.unkeyed }
  local push
  if node.keyed then
    local cur = {}
    local keyf = key_fn(node)
    pctx.state = state.new(cur)
    push = function(b, n)
      for i = 1, n do
        local v = b[i]
        local k = keyf(v)
        cur.key = norm_key(k, node)
        pctx.key = k
        on_record(v, pctx, out)
      end
      flush()
    end
  else
    push = function(b, n)
      for i = 1, n do on_record(b[i], pctx, out) end
      flush()
    end
  end
  local finish
  if spec.close then
    finish = function()
      pctx.key = nil
      spec.close(pctx)
      flush()
    end
  end
  if spec.open then spec.open(pctx) end
  return push, finish
end

-- Emit the entries of a key -> value table downstream in batches.
local function emit_table(t, nxt, convert)
  local o, m = {}, 0
  for _, v in pairs(t) do
    m = m + 1
    o[m] = convert and convert(v) or v
    if m == BATCH then
      nxt(o, m)
      m = 0
    end
  end
  if m > 0 then nxt(o, m) end
end

-- Keyed rolling aggregations run a loop generated for their shape (key
-- by field or by function, aggregate, field or whole record, streaming or
-- batch), so the per-record path has no calls beyond the user's own.
local AGG_TEMPLATE = [[
local keyf, kfield, field, fn, vals, firsts, nxt, encode, fail, result = ...
local o = {}
return function(b, n)
  local m = 0
  for i = 1, n do
    local v = b[i]
    local k = $KEY
    local x = $VALUE
    $CHECK
    local a = vals[k]
    if a == nil then
      -- a miss: the key may be nil (an error) or a table (compared by
      -- value, through its canonical encoding); hits need no check
      if k == nil then fail("key") elseif type(k) == "table" then
        k = encode(k, true)
        a = vals[k]
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

local function aggregation_loop(node, nxt, env, agg, st)
  local inp = node.inputs[1]
  local field = node.field
  local batch = env.runtime_mode == "batch"
  local vals, firsts = st:table(agg), st:table(agg .. ".first")
  local with_first = agg ~= "reduce" and field ~= nil
  local keys = agg == "count" and st:table("count.key") or nil
  local function result(k)
    if keys then return { key = keys[k], count = vals[k] } end
    if not with_first then return vals[k] end
    local c = {}
    for f, v in pairs(firsts[k]) do c[f] = v end
    c[field] = vals[k]
    return c
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
  local check = ""
  if agg == "sum" then
    check = "if type(x) ~= 'number' then fail('value', x) end"
  elseif agg ~= "reduce" then
    check = "if x == nil then fail('value', x) end"
  end
  local src = AGG_TEMPLATE
    :gsub("%$KEY", inp.key_field ~= nil and "v[kfield]" or "keyf(v)")
    :gsub("%$VALUE", agg == "count" and "1" or (agg == "reduce" or field == nil) and "v" or "v[field]")
    :gsub("%$CHECK", check)
    :gsub("%$FIRST", with_first and "firsts[k] = v" or keys and "firsts[k] = $KEY" or "")
    :gsub("%$KEY", inp.key_field ~= nil and "v[kfield]" or "keyf(v)")
    :gsub("%$COMBINE", COMBINE[agg])
    :gsub("%$EMIT", batch and "" or "m = m + 1; o[m] = result(k)")
    :gsub("%$AFTER", batch and "" or "nxt(o, m)")
  local push = assert(load(src, "=[tide " .. agg .. "]", "t"))(inp.key, inp.key_field, field, node.fn,
    vals, keys or firsts, nxt, encode, fail, result)
  local finish
  if batch then
    finish = function()
      local o, m = {}, 0
      for k in pairs(vals) do
        m = m + 1
        o[m] = result(k)
        if m == BATCH then
          nxt(o, m)
          m = 0
        end
      end
      if m > 0 then nxt(o, m) end
    end
  end
  return push, finish
end

function ops.reduce(node, nxt, ctx, env)
  return aggregation_loop(node, nxt, env, "reduce", state.new({}))
end

-- sum/min/max(field): Flink's aggregations keep the key's first record and
-- replace the field by the aggregate; with no field, records are numbers.
function ops.aggregate(node, nxt, ctx, env)
  return aggregation_loop(node, nxt, env, node.agg, state.new({}))
end

-- ---- sinks --------------------------------------------------------------

-- A part-file writer for one subtask: in-progress files are hidden
-- (".part-...inprogress") and renamed to "part-<job>-<subtask>-<n>" when
-- committed: when the job ends, or when a file reaches its rolling size.
local function part_writer(dir, ctx, rolling_size, header)
  local counter, fh, size = 0, nil, 0
  local base = string.format("part-%s-%d-", ctx.job_id, ctx.subtask)
  local tmp, final
  local w = {}
  local function open()
    final = dir .. "/" .. base .. counter
    tmp = dir .. "/." .. base .. counter .. ".inprogress"
    local err
    fh, err = io.open(tmp, "wb")
    if not fh then error("cannot open part file: " .. err, 0) end
    fh:setvbuf("full", 1 << 20)
    size = 0
    if header then
      fh:write(header)
      size = #header
    end
  end
  local function commit()
    local ok, err = fh:close()
    if not ok then error("cannot write part file '" .. tmp .. "': " .. tostring(err), 0) end
    fh = nil
    ok, err = os.rename(tmp, final)
    if not ok then error("cannot commit part file: " .. tostring(err), 0) end
    counter = counter + 1
  end
  local function write(s)
    local ok, err = fh:write(s)
    if not ok then error("cannot write part file '" .. tmp .. "': " .. tostring(err), 0) end
    size = size + #s
  end
  -- Write lines[1..n], each followed by "\n". As Flink's DefaultRollingPolicy,
  -- a part file is rolled before a record once it holds rolling_size bytes.
  function w.write_lines(lines, n)
    if not fh then open() end
    lines[n + 1] = ""
    local s = table.concat(lines, "\n", 1, n + 1)
    if size + #s < rolling_size then return write(s) end
    for i = 1, n do
      if size >= rolling_size then
        commit()
        open()
      end
      write(lines[i] .. "\n")
    end
  end
  function w.finish()
    if fh then commit() end
  end
  return w
end

local sinks = {}

function sinks.discard() return function() end end

function sinks.print(node, ctx)
  local write = core.write_stdout
  local fmt = util.format
  local prefix = ctx.parallelism > 1 and (ctx.subtask + 1) .. "> " or ""
  local lines = {}
  return function(b, n)
    for i = 1, n do lines[i] = prefix .. fmt(b[i]) end
    write(table.concat(lines, "\n", 1, n) .. "\n")
  end
end

function sinks.text(node, ctx)
  local cfg = node.sink
  local w = part_writer(cfg.dir, ctx, cfg.rolling_size or ROLLING_SIZE)
  local fmt = util.format
  local lines = {}
  return function(b, n)
    for i = 1, n do lines[i] = fmt(b[i]) end
    w.write_lines(lines, n)
  end, w.finish
end

function sinks.csv(node, ctx)
  local cfg = node.sink
  local delim, columns = cfg.delimiter, cfg.columns
  local field = util.csv_field
  local header
  if cfg.header then
    local h = {}
    for i, c in ipairs(columns) do h[i] = field(tostring(c), delim) end
    header = table.concat(h, delim) .. "\n"
  end
  local w = part_writer(cfg.dir, ctx, cfg.rolling_size or ROLLING_SIZE, header)
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
  return function(b, n)
    for i = 1, n do lines[i] = row(b[i]) end
    w.write_lines(lines, n)
  end, w.finish
end

function ops.sink(node, nxt, ctx)
  return sinks[node.sink.type](node, ctx)
end

-- ---- sources ------------------------------------------------------------

-- Returns read(buf) -> n (0 at the end) for this subtask's split.
local function open_source(node, ctx)
  local src = node.source
  local split, n_splits = ctx.subtask, ctx.parallelism
  if src.type == "text" or src.type == "csv" then
    local r, err
    if src.type == "text" then
      r, err = core.open_text(src.path, split, n_splits)
    else
      r, err = core.open_csv(src.path, src.opts, split, n_splits)
    end
    if not r then error(node.name .. ": " .. err, 0) end
    return function(buf) return r:read(buf, BATCH) end
  elseif src.type == "list" then
    local list, pos = src.list, 0
    if split ~= 0 then return function() return 0 end end
    return function(buf)
      local n = 0
      while n < BATCH and pos < #list do
        pos = pos + 1
        n = n + 1
        buf[n] = list[pos]
      end
      return n
    end
  elseif src.type == "generate" then
    local fn, count = src.fn, src.count
    local seq, last, step
    if count then
      seq, last, step = count * split // n_splits + 1, count * (split + 1) // n_splits, 1
    else
      seq, last, step = split + 1, math.maxinteger, n_splits
    end
    return function(buf)
      local n = 0
      while n < BATCH and seq <= last do
        local v = fn(seq)
        if v == nil then error("generate: the function returned nil for " .. seq, 0) end
        n = n + 1
        buf[n] = v
        seq = seq + step
      end
      return n
    end
  end
  error("unknown source type " .. tostring(src.type))
end

-- ---- the task loop ------------------------------------------------------

-- An output over a network edge: core.emit with the keys for hash edges.
local function make_emitter(edge, env)
  local id = edge.id
  if edge.partition == "hash" then
    local keyf, keys = edge.key, {}
    local to = env.nodes[edge.to_node]
    return function(b, n)
      for i = 1, n do
        local k = keyf(b[i])
        if k == nil then
          error("key_by: the key of a record is nil (key_by at " .. edge.key_site .. ", feeding " ..
            describe(to) .. ")", 0)
        end
        keys[i] = k
      end
      emit(id, b, n, keys)
    end
  end
  return function(b, n) emit(id, b, n) end
end

--- Run subtask ctx.subtask of task ctx.task of the plan, to its end.
function M.run(env, plan, ctx)
  local task = plan.tasks[ctx.task]
  local nodes = env.nodes
  for id, e in ipairs(plan.edges) do e.id = id end
  local push_of, finish_of, op_of_fn = {}, {}, {}
  for i = #task.nodes, 1, -1 do
    local node = nodes[task.nodes[i]]
    local outs = {}
    for _, c in ipairs(node.chained) do outs[#outs + 1] = push_of[c] end
    for _, e in ipairs(node.net_out) do outs[#outs + 1] = make_emitter(plan.edges[e], env) end
    local push, finish = ops[node.kind](node, fanout(outs), ctx, env)
    push_of[node.id], finish_of[node.id] = push, finish
    -- sources and unions pass their batches straight on: their push is the
    -- next operator's, which keeps its own name
    if not op_of_fn[push] then op_of_fn[push] = node end
    if finish then op_of_fn[finish] = node end
  end
  local head = nodes[task.head]

  local function loop()
    local push, buf = push_of[head.id], {}
    if head.kind == "source" then
      local read = open_source(head, ctx)
      op_of_fn[read] = head
      local tick = core.tick
      while true do
        local n = read(buf)
        if n == 0 then break end
        push(buf, n)
        tick()
      end
    else
      local poll = core.poll
      while true do
        local n = poll(buf)
        if not n then break end
        push(buf, n)
      end
    end
    for _, id in ipairs(task.nodes) do
      if finish_of[id] then finish_of[id]() end
    end
    core.finish()
  end

  local function handler(err)
    if type(err) == "userdata" then return err end
    local node
    for level = 2, 200 do
      local info = debug.getinfo(level, "f")
      if not info then break end
      node = op_of_fn[info.func]
      if node then break end
    end
    local where = node and describe(node) or string.format("task %d", ctx.task)
    return string.format("%s failed in subtask %d/%d: %s\n%s", where, ctx.subtask + 1, ctx.parallelism,
      tostring(err), debug.traceback("", 2):gsub("^\n", ""))
  end

  local ok, err = xpcall(loop, handler)
  if not ok then
    if type(err) == "userdata" then error(err, 0) end
    core.fail(err)
  end
end

return M
