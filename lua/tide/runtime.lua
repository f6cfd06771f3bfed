--- tide.runtime: runs one subtask of a task (a chain of operators) in a
-- subtask's VM.
--
-- Records move through a chain a batch at a time: every operator
-- (lua/tide/operators.lua) has push(buf, ts, n) processing buf[1..n] with
-- timestamps ts[1..n] and passing its own output arrays on, so a chain of
-- map, filter and flat_map costs a few Lua calls per record and no
-- serialization. Watermarks and watermark status follow the records through
-- the same chain. Batches come from the source reader or from core.poll
-- (one decoded exchange buffer) and leave through core.emit (one call per
-- batch per output edge).
local core = require "tide.core"
local operators = require "tide.operators"

local emit, emit_event = core.emit, core.emit_event
local ops, describe = operators.ops, operators.describe
local M = {}

local MAXWM = math.maxinteger

local function fanout(list)
  if #list == 0 then return function() end end
  if #list == 1 then return list[1] end
  return function(...)
    for i = 1, #list do list[i](...) end
  end
end

--- Build the operators of a chain.
-- @param env the job's environment (nodes)
-- @param ids node ids of the chain, in creation (topological) order
-- @param rt the runtime context given to every operator
-- @param local_consumers function(node) -> ids of nodes in this chain fed
--   by node (their inputs[1].tag tells main output or side output)
-- @param remote_outputs function(node) -> list of {tag=, push=, watermark=,
--   status=} for outputs that leave the chain
-- @param unconsumed_side optional function(node, tag) -> push for side
--   outputs nothing consumes (the harness captures them)
-- @return ops by node id, and a table mapping every operator function to
--   its node (to name the operator in errors)
function M.build(env, ids, rt, local_consumers, remote_outputs, unconsumed_side)
  local built, op_of_fn = {}, {}
  for i = #ids, 1, -1 do
    local node = env.nodes[ids[i]]
    local main, wms, statuses, side_pushes = {}, {}, {}, {}
    local function add(tag, push, wm, st)
      if tag == nil then
        main[#main + 1] = push
      else
        side_pushes[tag] = side_pushes[tag] or {}
        table.insert(side_pushes[tag], push)
      end
      wms[#wms + 1] = wm
      statuses[#statuses + 1] = st
    end
    for _, c in ipairs(local_consumers(node)) do
      local cop = built[c]
      for _, inp in ipairs(env.nodes[c].inputs) do
        if inp.node == node.id then add(inp.tag, cop.push, cop.watermark, cop.status) end
      end
    end
    for _, r in ipairs(remote_outputs(node)) do add(r.tag, r.push, r.watermark, r.status) end
    local out = { push = fanout(main), watermark = fanout(wms), status = fanout(statuses) }
    function out.side(tag)
      local list = side_pushes[tag]
      if list then return fanout(list) end
      if unconsumed_side then return unconsumed_side(node, tag) end
      return function() end
    end
    local op = ops[node.kind](node, out, rt)
    op.watermark = op.watermark or out.watermark
    op.status = op.status or out.status
    built[node.id] = op
    for _, f in pairs(op) do
      if type(f) == "function" and not op_of_fn[f] then op_of_fn[f] = node end
    end
  end
  return built, op_of_fn
end

--- An error handler for xpcall that names the operator whose code raised
-- (the innermost operator function on the stack).
function M.handler(op_of_fn, where)
  return function(err)
    if type(err) == "userdata" then return err end
    local node
    for level = 2, 200 do
      local info = debug.getinfo(level, "f")
      if not info then break end
      node = op_of_fn[info.func]
      if node then break end
    end
    return string.format("%s failed%s: %s\n%s", node and describe(node) or "task", where or "",
      tostring(err), debug.traceback("", 2):gsub("^\n", ""))
  end
end

-- An output over a network edge: core.emit with keys for hash edges.
local function remote_output(edge, env)
  local id = edge.id
  local r = {
    tag = edge.tag,
    watermark = function(wm) emit_event(id, "watermark", wm) end,
    status = function(s) emit_event(id, s) end,
  }
  if edge.partition == "hash" then
    local keyf, keys = edge.key, {}
    local to = env.nodes[edge.to_node]
    r.push = function(b, ts, n)
      for i = 1, n do
        local k = keyf(b[i])
        if k == nil then
          error("key_by: the key of a record is nil (key_by at " .. edge.key_site .. ", feeding " ..
            describe(to) .. ")", 0)
        end
        keys[i] = k
      end
      emit(id, b, n, keys, ts)
    end
  else
    r.push = function(b, ts, n) emit(id, b, n, nil, ts) end
  end
  return r
end

--- Run subtask ctx.subtask of task ctx.task of the plan, to its end.
function M.run(env, plan, ctx)
  local task = plan.tasks[ctx.task]
  local nodes = env.nodes
  for id, e in ipairs(plan.edges) do e.id = id end
  local rt = {
    subtask = ctx.subtask, parallelism = ctx.parallelism, job_id = ctx.job_id,
    batch = env.runtime_mode == "batch", now = core.now_ms,
  }
  local built, op_of_fn = M.build(env, task.nodes, rt,
    function(node) return node.chained end,
    function(node)
      local list = {}
      for _, e in ipairs(node.net_out) do list[#list + 1] = remote_output(plan.edges[e], env) end
      return list
    end)
  local head = built[task.head]
  local timed = {}
  for _, id in ipairs(task.nodes) do
    if built[id].next_timer then timed[#timed + 1] = built[id] end
  end
  local now = rt.now

  -- processing time: fire what is due; return the next deadline (or nil)
  local function fire_due()
    if #timed == 0 then return nil end
    local t = now()
    local deadline
    for i = 1, #timed do
      local op = timed[i]
      local d = op.next_timer()
      if d and d <= t then
        op.processing_time(t)
        d = op.next_timer()
      end
      if d and (not deadline or d < deadline) then deadline = d end
    end
    return deadline
  end

  local function loop()
    local buf = {}
    local push = head.push
    if nodes[task.head].kind == "source" then
      local src = nodes[task.head]
      local read = operators.open_source(src, rt)
      op_of_fn[read] = src
      local tick = core.tick
      -- rate_limit (records/s, for the whole source): this subtask's share,
      -- in batches of about 1/20 s, each released no earlier than the rate
      -- allows (as Flink's RateLimiterStrategy.perSecond)
      local rate = src.source.rate_limit and src.source.rate_limit / ctx.parallelism
      local max = rate and math.max(1, math.min(operators.BATCH, math.floor(rate / 20))) or nil
      local start, sent, sleep = now(), 0, core.sleep_ms
      while true do
        local n = read(buf, max)
        if n == 0 then break end
        if rate then
          local due = start + sent * 1000 / rate
          while now() < due do
            sleep(math.min(100, math.ceil(due - now())))
            tick()
          end
          sent = sent + n
        end
        push(buf, nil, n)
        tick()
        fire_due()
      end
      -- a bounded source ends with the final watermark (Flink's MAX_WATERMARK)
      head.watermark(MAXWM)
    else
      local poll, tsbuf = core.poll, {}
      local watermark, status = head.watermark, head.status
      while true do
        local deadline = fire_due()
        local timeout = deadline and math.max(0, deadline - now()) or nil
        local n, _, event, value, has_ts = poll(buf, tsbuf, timeout)
        if n == nil then break end
        if n > 0 then push(buf, has_ts and tsbuf or nil, n) end
        if event == "watermark" then
          watermark(value)
        elseif event then
          status(event)
        end
      end
    end
    -- end of input: pending processing-time timers are dropped, as Flink
    -- quiesces its timer service
    for _, id in ipairs(task.nodes) do
      local f = built[id].finish
      if f then f() end
    end
    core.finish()
  end

  local ok, err = xpcall(loop, M.handler(op_of_fn,
    string.format(" in subtask %d/%d", ctx.subtask + 1, ctx.parallelism)))
  if not ok then
    if type(err) == "userdata" then error(err, 0) end
    core.fail(err)
  end
end

return M
