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

local compat = require "tide.compat"
local util = require "tide.util"
local MAXWM, MIN = compat.MAX_INT, compat.MIN_INT

local function fanout(list)
  if #list == 0 then return function() end end
  if #list == 1 then return list[1] end
  return function(...)
    for i = 1, #list do list[i](...) end
  end
end

-- An operator with several inputs fed inside a chain (the test harness:
-- in a job it heads its task, and the task's input valve merges the
-- watermarks of all its channels): its watermark is the minimum over its
-- inputs, forwarded when it advances (Flink's
-- AbstractStreamOperator#processWatermark1/2), and a two-input operator's
-- push learns the input j its records came from.
local function multi_input_wiring(cop, cnode, j, valves)
  local v = valves[cnode.id]
  if not v then
    v = { out = MIN }
    for i = 1, #cnode.inputs do v[i] = MIN end
    valves[cnode.id] = v
  end
  local push, watermark = cop.push, cop.watermark
  local wired_push = push
  if cnode.two_input then wired_push = function(b, ts, n) return push(b, ts, n, j) end end
  return wired_push, function(wm)
    v[j] = wm
    local m = wm
    for i = 1, #v do
      if v[i] < m then m = v[i] end
    end
    if m > v.out then
      v.out = m
      watermark(m)
    end
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
  local valves = {} -- per node with several inputs: its inputs' watermarks
  local fn_uses = {}
  for _, id in ipairs(ids) do
    local f = env.nodes[id].fn
    if f ~= nil then fn_uses[f] = (fn_uses[f] or 0) + 1 end
  end
  for i = #ids, 1, -1 do
    local node = env.nodes[ids[i]]
    local main, wms, statuses, side_pushes, targets = {}, {}, {}, {}, {}
    local retained = false -- a consumer of the main output keeps records
    -- target: {push =, op =, node =} (a consumer in the chain) or {push =,
    -- remote =} (an exchange), for operators that wire their output
    -- themselves (C modules, lua/tide/modules.lua)
    local function add(tag, push, wm, st, target, keeps)
      if tag == nil then
        main[#main + 1] = push
        targets[#targets + 1] = target
        if keeps ~= false then retained = true end
      else
        side_pushes[tag] = side_pushes[tag] or {}
        table.insert(side_pushes[tag], push)
      end
      wms[#wms + 1] = wm
      statuses[#statuses + 1] = st
    end
    for _, c in ipairs(local_consumers(node)) do
      local cop = built[c]
      for j, inp in ipairs(env.nodes[c].inputs) do
        if inp.node == node.id then
          local push, wm = cop.push, cop.watermark
          if #env.nodes[c].inputs > 1 then push, wm = multi_input_wiring(cop, env.nodes[c], j, valves) end
          add(inp.tag, push, wm, cop.status, { push = push, op = cop, node = env.nodes[c] }, cop.retains)
        end
      end
    end
    for _, r in ipairs(remote_outputs(node)) do
      add(r.tag, r.push, r.watermark, r.status, { push = r.push, remote = r }, r.retains)
    end
    -- out.reusable: no consumer of the main output keeps a record after its
    -- push returned (sinks that write at once, network outputs that encode
    -- at once), so the operator may reuse the records it emitted, as
    -- Flink's object reuse does where it is safe
    local out = { push = fanout(main), watermark = fanout(wms), status = fanout(statuses), targets = targets,
      reusable = #main > 0 and not retained }
    function out.side(tag)
      local list = side_pushes[tag]
      if list then return fanout(list) end
      if unconsumed_side then return unconsumed_side(node, tag) end
      return function() end
    end
    -- a map whose function no other operator of the chain has may be
    -- fused into its consumer (ops.map): its op then says which node each
    -- of its functions belongs to
    out.fusable = node.fn ~= nil and fn_uses[node.fn] == 1
    local op = ops[node.kind](node, out, rt)
    op.watermark = op.watermark or out.watermark
    op.status = op.status or out.status
    built[node.id] = op
    for f, owner in pairs(op.owners or {}) do op_of_fn[f] = owner end
    for _, f in pairs(op) do
      if type(f) == "function" and not op_of_fn[f] then op_of_fn[f] = node end
    end
  end
  return built, op_of_fn
end

-- Tide's own Lua files: lua/tide.lua and lua/tide/*.lua
local LIB_SOURCE = debug.getinfo(1, "S").source:gsub("tide/runtime%.lua$", "")

-- Whether an error was raised in the user's code: the innermost Lua
-- function on the stack (above the handler) is not one of Tide's files.
local function raised_in_user_code()
  for level = 3, 200 do
    local info = debug.getinfo(level, "S")
    if not info then break end
    if info.what ~= "C" then
      local src = info.source
      return not (src:sub(1, #LIB_SOURCE) == LIB_SOURCE and
        (src:sub(#LIB_SOURCE + 1, #LIB_SOURCE + 5) == "tide/" or src:sub(#LIB_SOURCE + 1) == "tide.lua"))
    end
  end
  return false
end

--- An error handler for xpcall that names the operator whose code raised
-- (the innermost operator function on the stack). A traceback follows only
-- errors raised in user code; an operational error (I/O, a bad record
-- reported by Tide itself) is one line.
function M.handler(op_of_fn, where)
  return function(err)
    if type(err) == "userdata" then return err end
    if getmetatable(err) == operators.Failure then -- bad input: no traceback
      return string.format("%s failed%s: %s", describe(err.node), where or "", err.message)
    end
    local node
    for level = 2, 200 do
      local info = debug.getinfo(level, "f")
      if not info then break end
      node = op_of_fn[info.func]
      if node then break end
    end
    local msg = string.format("%s failed%s: %s", node and describe(node) or "task", where or "", tostring(err))
    if not raised_in_user_code() then return msg end
    return msg .. "\n" .. debug.traceback("", 2):gsub("^\n", "")
  end
end

-- An output over a network edge: core.emit with keys for hash edges.
local function remote_output(edge, env, rt)
  local id = edge.id
  local r = {
    tag = edge.tag, edge = edge,
    watermark = function(wm) emit_event(id, "watermark", wm) end,
    status = function(s) emit_event(id, s) end,
    retains = false, -- records are encoded at once
  }
  if edge.combine then
    -- batch mode: pre-aggregate for the aggregate across the exchange
    r.combiner = operators.combiner(env.nodes[edge.to_node], rt,
      function(o, n, keys) emit(id, o, n, keys) end)
    r.push = r.combiner.push
    r.retains = true -- the partials keep first records
  elseif edge.partition == "hash" then
    local keyf, keys = edge.key, {}
    local to = env.nodes[edge.to_node]
    local function by_function(b, ts, n)
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
    local field = edge.key_field
    if field == nil then
      r.push = by_function
    else
      -- keyed by a field: core.emit reads each record's key itself; from
      -- a record that is not a table or has a nil key on, the batch goes
      -- through the key function (which raises for the nil key). With
      -- edge.project (the receiver reads the key alone: build_plan's
      -- reads_key_only) it sends {[field] = key} for each record.
      local rest, rest_ts = {}, {}
      local project = edge.project == true
      r.push = function(b, ts, n)
        local stop = emit(id, b, n, field, ts, project)
        if stop == nil then return end
        local m = 0
        for i = stop, n do
          m = m + 1
          rest[m] = b[i]
          if ts then rest_ts[m] = ts[i] end
        end
        by_function(rest, ts and rest_ts, m)
        for i = 1, m do rest[i] = nil end
      end
    end
  elseif edge.pre_aggregate then
    -- into a window_all: one partial per window and batch (as Flink SQL's
    -- local/global window aggregation)
    r.push = operators.window_all_combiner(edge.pre_aggregate,
      function(b, ts, n) emit(id, b, n, nil, ts) end)
  else
    r.push = function(b, ts, n) emit(id, b, n, nil, ts) end
  end
  return r
end

-- Restored state of a subtask: reads the state file of every operator of
-- the chain from the checkpoint (or savepoint) directory; all(uid) lazily
-- gives every old subtask's snapshot of an operator (for operator-state
-- redistribution and, at another parallelism, keyed state by key-group
-- range), nil for an operator the checkpoint does not have (a new operator
-- of a job restored from a savepoint: it starts empty); its field n is the
-- operator's old parallelism. Returns the states (by node id; nil for an
-- operator whose old parallelism had no subtask of this index), all,
-- whether the subtask had finished, whether it has in-flight data, and per
-- node id whether the operator runs at another parallelism than in the
-- checkpoint (rescaled: the planning VM checked the max parallelism
-- matches and there is no in-flight data, checkpoint.rescale_refusal and
-- checkpoint.savepoint_refusal).
local function restored_state(env, task, ctx, ckpt)
  local dir = ctx.restore_dir
  local meta = assert(ckpt.read_metadata(dir))
  -- per operator uid: its old parallelism and its old task's first global
  -- subtask (operators may have been chained differently)
  local old_of, first = {}, 0
  for _, info in ipairs(meta.job.tasks) do
    for _, uid in ipairs(info.uids) do old_of[uid] = { p = info.parallelism, first = first } end
    first = first + info.parallelism
  end
  local head = old_of[env.nodes[task.head].uid]
  local old_p = head and head.p or ctx.parallelism
  -- a new head operator (a job restored from a savepoint) has not finished
  local finished, inflight = false, false
  if head and old_p == ctx.parallelism then
    local flags = meta.subtasks[head.first + ctx.subtask + 1] or 0
    finished, inflight = compat.band(flags, 1) == 1, compat.band(flags, 2) == 2
  elseif head then
    -- finished only when every old subtask had (a final checkpoint)
    finished = true
    for i = 1, old_p do
      if compat.band(meta.subtasks[head.first + i] or 0, 1) == 0 then finished = false end
    end
  end
  local function read(uid, s)
    local v, err = core.read_state(dir .. "/" .. ckpt.state_file(uid, s))
    if v == nil then error("cannot restore " .. dir .. ": " .. tostring(err), 0) end
    return v
  end
  -- own: this subtask's old snapshot of each uid, read once (all() hands
  -- it out again rather than decoding the file twice)
  local states, rescaled, own = {}, {}, {}
  for _, id in ipairs(task.nodes) do
    local uid = env.nodes[id].uid
    local o = old_of[uid]
    if o then
      if ctx.subtask < o.p then
        states[id] = read(uid, ctx.subtask)
        own[uid] = states[id]
      end
      rescaled[id] = o.p ~= ctx.parallelism
    end
  end
  -- (one lazy list per uid: the restore and the sizing of state tables
  -- share the snapshots read)
  local all_of = {}
  local function all(uid)
    if not old_of[uid] then return nil end
    if all_of[uid] then return all_of[uid] end
    local n = old_of[uid].p
    -- n: the old parallelism (LuaJIT ignores __len on tables)
    all_of[uid] = setmetatable({ n = n }, {
      __index = function(t, i)
        if compat.math_type(i) ~= "integer" or i < 1 or i > n then return nil end
        local v = i - 1 == ctx.subtask and own[uid] or read(uid, i - 1)
        rawset(t, i, v)
        return v
      end,
      __len = function() return n end,
    })
    return all_of[uid]
  end
  return states, all, finished, inflight, rescaled
end

--- Run subtask ctx.subtask of task ctx.task of the plan, to its end.
--
-- Checkpoints (core/checkpoint.h): a source asks core.tick() between
-- batches whether to inject a barrier; a task learns from core.poll that
-- its barriers are aligned. Either way the subtask pre-commits its sinks
-- (prepare_snapshot), then core.snapshot forks: the child writes every
-- operator's snapshot() while this thread goes on, and the barrier is
-- forwarded. At the end of input the subtask reports its final state and
-- waits until the final checkpoint completes, committing its sinks on each
-- completion it sees.
function M.run(env, plan, ctx)
  local task = plan.tasks[ctx.task]
  local nodes = env.nodes
  local ckpt = require "tide.checkpoint"
  for id, e in ipairs(plan.edges) do e.id = id end
  local rt = {
    subtask = ctx.subtask, parallelism = ctx.parallelism, job_id = ctx.job_id, job_name = ctx.name,
    max_parallelism = plan.max_parallelism,
    batch = env.runtime_mode == "batch", now = core.now_ms,
    warn = function(line)
      core.log("warn", "runtime", string.format("%d/%d of task %d", ctx.subtask + 1, ctx.parallelism, ctx.task), line)
      core.note(line)
    end,
    -- runs whose files completed checkpoints of this job may reference
    kept_runs = function()
      local keep = {}
      if env.checkpoint then
        local job_dir = ckpt.job_dir(env.checkpoint.dir, ctx.name)
        for _, id in ipairs(ckpt.list(job_dir)) do
          local meta = ckpt.read_metadata(job_dir .. "/chk-" .. id)
          if meta and meta.job.lineage then keep[meta.job.lineage] = true end
        end
      end
      return keep
    end,
  }
  -- keyed state: the backend of every keyed operator of this subtask
  local state = require "tide.state"
  local job_dir = env.checkpoint and ckpt.job_dir(env.checkpoint.dir, ctx.name)
  local state_cfg = { backend = env.state_backend, rocksdb = env.rocksdb,
    dir = string.format("%s/tide-%s-%d.%d-%d", env.state_dir, util.safe_name(ctx.name), ctx.task, ctx.subtask,
      core.monotonic_us()),
    shared_dir = job_dir and job_dir .. "/shared",
    restore_shared = ctx.restore_dir and ctx.restore_dir .. "/../shared" }
  state.configure(state_cfg)
  -- after a batch, a watermark or a timer round: a RocksDB backend writes
  -- back once enough keys are in its cache (state.flush(true)); at the end
  -- of input, everything (flush_state(true))
  local function flush_state(hard) state.flush(not hard) end
  -- a restore reads the old snapshots before the operators are built, so
  -- that keyed operators make their state tables with room for what they
  -- restore (state.operator_backend)
  local restore_t0, restore_cpu0, pre_read = core.monotonic_us(), os.clock(), nil
  if ctx.restore_dir then
    pre_read = compat.pack(restored_state(env, task, ctx, ckpt))
    -- (a rescaled operator's: every old subtask's, clipped to its key groups)
    local own_of = {}
    for _, id in ipairs(task.nodes) do
      if not pre_read[5][id] then own_of[nodes[id].uid] = pre_read[1][id] end
    end
    rt.restored_groups = function(uid, first, last)
      if own_of[uid] then return state.restored_groups({ own_of[uid] }, first, last) end
      local olds = pre_read[2](uid)
      if not olds then return nil end
      local list = {}
      for i = 1, olds.n do list[i] = olds[i] or false end
      return state.restored_groups(list, first, last)
    end
  end
  local combiners = {} -- node id -> {edge id -> combiner}
  local built, op_of_fn = M.build(env, task.nodes, rt,
    function(node) return node.chained end,
    function(node)
      local list = {}
      for _, e in ipairs(node.net_out) do
        local r = remote_output(plan.edges[e], env, rt)
        if r.combiner then
          combiners[node.id] = combiners[node.id] or {}
          combiners[node.id][e] = r.combiner
        end
        list[#list + 1] = r
      end
      return list
    end)
  for _, byedge in pairs(combiners) do
    for e, c in pairs(byedge) do op_of_fn[c.push] = nodes[plan.edges[e].to_node] end
  end
  local head = built[task.head]
  local timed, committers = {}, {}
  for _, id in ipairs(task.nodes) do
    if built[id].next_timer then timed[#timed + 1] = built[id] end
    if built[id].notify_checkpoint_complete then committers[#committers + 1] = built[id] end
  end
  -- late records the task's window operators dropped (Flink's
  -- numLateRecordsDropped): summed once per batch, handed to the core
  -- only when the sum changed
  local droppers, dropped_sum = {}, 0
  for _, id in ipairs(task.nodes) do
    if built[id].dropped then droppers[#droppers + 1] = built[id].dropped end
  end
  if #droppers > 0 then
    local batch_flush, set_dropped = flush_state, core.set_late_dropped
    flush_state = function(hard)
      batch_flush(hard)
      local sum = 0
      for i = 1, #droppers do sum = sum + droppers[i]() end
      if sum ~= dropped_sum then
        dropped_sum = sum
        set_dropped(sum)
      end
    end
  end
  local now = rt.now
  local is_source = nodes[task.head].kind == "source"
  local read, source_pos
  local restored, finished_before = nil, false

  -- a node's state file holds its operator's snapshot, wrapped with the
  -- source position (the head of a source task) and its combiners' partials
  local function wrapped(id) return (id == task.head and is_source) or combiners[id] ~= nil end
  -- opts, passed to every operator's snapshot(opts) and on to its keyed
  -- backend's snapshot(opts): {savepoint = true} for a savepoint, which a
  -- backend writes whole and canonical (a checkpoint may be incremental);
  -- {syncs = {}} for a checkpoint without fork (a sink appends what the
  -- snapshot's thread must fsync: filesink's sync_paths); nil for other
  -- checkpoints and final states
  local function collect(opts)
    local files = {}
    for _, id in ipairs(task.nodes) do
      local op = built[id]
      -- the shared files (RocksDB) the operator's snapshot references
      local refs = {}
      state_cfg.refs = refs
      local snap = op.snapshot and op.snapshot(opts)
      state_cfg.refs = nil
      if #refs > 0 then files[ckpt.state_file(nodes[id].uid, ctx.subtask) .. ".shared"] = refs end
      if wrapped(id) then
        local comb
        for e, c in pairs(combiners[id] or {}) do
          comb = comb or {}
          comb[e] = c.snapshot()
        end
        snap = { op = snap, source = id == task.head and source_pos and source_pos.snapshot() or nil,
          combine = comb }
      end
      if snap == nil then snap = false end
      files[ckpt.state_file(nodes[id].uid, ctx.subtask)] = snap
    end
    return files
  end

  -- checkpoints without fork (state.snapshots_in_thread) unless an
  -- operator's or the source's snapshot must run in the forked child
  -- (snapshot_forks: it syncs files, or holds state of its own that may be
  -- large)
  local in_thread = state.snapshots_in_thread()
  for _, id in ipairs(task.nodes) do
    if built[id].snapshot_forks then in_thread = false end
  end

  -- the snapshot of checkpoint (or savepoint) id at this point of the input
  local clock = core.monotonic_us
  -- Stop with a savepoint (Flink's stop-with-savepoint, FLIP-34): a source
  -- asked for a "stop" savepoint injects its barrier, waits until the
  -- savepoint completed and ends without the final watermark (stop_mode
  -- "stop"; if the savepoint failed it reads on); asked for a "drain" one
  -- it injects nothing and ends with the MAX watermark, every operator
  -- finishing, so the savepoint holds the finished job's final states
  -- (stop_mode "drain"). A task that snapshot a stop savepoint (stop_cut)
  -- fires no more timers: nothing may be emitted after the cut.
  local stop_mode, stop_cut
  local savepoint_opts = { savepoint = true }
  local function checkpoint(id)
    -- a barrier of a checkpoint the coordinator gave up is passed on
    if not core.checkpoint_pending(id) then return core.forward_barrier(id) end
    local kind, stop = core.checkpoint_kind(id)
    if stop == "drain" and is_source then
      stop_mode = "drain"
      return
    end
    local t0 = clock()
    if source_pos and source_pos.prepare_snapshot then source_pos.prepare_snapshot(id) end
    for _, nid in ipairs(task.nodes) do
      local f = built[nid].prepare_snapshot
      if f then f(id) end
    end
    -- keyed state's synchronous part (RocksDB: a checkpoint of the
    -- instance, or for a savepoint the canonical snapshot, read here)
    state.prepare_snapshot(id, kind == "savepoint")
    local ok, err
    if in_thread and kind ~= "savepoint" and not (source_pos and source_pos.snapshot_forks) then
      -- without fork: the state files encoded here, the RocksDB uploads
      -- and the writing left to the subtask's snapshot thread
      local uploads, syncs = {}, {}
      state_cfg.uploads = uploads
      local collected, files = pcall(collect, { syncs = syncs })
      state_cfg.uploads = nil
      if type(files) == "userdata" then error(files, 0) end -- cancelled
      if collected then
        ok, err = core.snapshot_async(id, files, uploads, syncs, t0)
      else
        ok, err = core.snapshot_failed(id, tostring(files), t0)
      end
    else
      ok, err = core.snapshot(id, kind == "savepoint" and function() return collect(savepoint_opts) end
        or collect, t0)
    end
    state.snapshot_started()
    if not ok then
      core.log("error", "checkpoint", string.format("%d/%d of task %d", ctx.subtask + 1, ctx.parallelism, ctx.task), err)
    end
    if stop == "stop" then
      stop_cut = true
      if is_source and ok and core.await_checkpoint(id) then stop_mode = "stop" end
    end
  end

  local seen = 0 -- the newest completed checkpoint the committers were told of
  local function notify(id, final)
    if id > seen or final then
      for i = 1, #committers do committers[i].notify_checkpoint_complete(id, final) end
      seen = id
    end
  end
  local completed = core.checkpoint_completed
  local function check_completed()
    if #committers == 0 then return end
    local id = completed()
    if id > seen then notify(id, false) end
  end

  -- processing time: fire what is due; return the next deadline (or nil)
  local function fire_due()
    if #timed == 0 then return nil end
    if stop_cut and core.stopping() == "stop" then return nil end
    local t = now()
    local deadline
    for i = 1, #timed do
      local op = timed[i]
      local d = op.next_timer()
      if d and d <= t then
        op.processing_time(t)
        flush_state()
        d = op.next_timer()
      end
      if d and (not deadline or d < deadline) then deadline = d end
    end
    return deadline
  end

  local function restore()
    local t0 = restore_t0
    if is_source then
      read, source_pos = operators.open_source(nodes[task.head], rt)
      op_of_fn[read] = nodes[task.head]
      -- a source that commits its positions somewhere (Kafka's offsets)
      if source_pos.notify_checkpoint_complete then committers[#committers + 1] = source_pos end
    end
    if ctx.restore_dir then
      local states, all, finished, inflight, rescaled_of = compat.unpack(pre_read, 1, 5)
      pre_read = nil
      restored, finished_before = states, finished
      for _, id in ipairs(task.nodes) do
        local s = states[id]
        local olds = all(nodes[id].uid)
        local rescaled = rescaled_of[id]
        -- olds nil: an operator the savepoint does not have starts empty
        if olds and wrapped(id) then
          if rescaled then
            -- old subtask i's source splits and combiner partials go to new
            -- subtask i mod p (the records they stand for are read or sent
            -- once, by someone)
            local mine = {}
            for i = ctx.subtask + 1, olds.n, ctx.parallelism do mine[#mine + 1] = olds[i] end
            if is_source and id == task.head then
              local list = {}
              for _, o in ipairs(mine) do list[#list + 1] = o.source end
              source_pos.restore_splits(list)
            end
            for _, o in ipairs(mine) do
              for e, cs in pairs(o.combine or {}) do combiners[id][e].restore(cs) end
            end
          else
            if s.source then source_pos.restore(s.source) end
            for e, cs in pairs(s.combine or {}) do combiners[id][e].restore(cs) end
          end
          if s then s = s.op end
          -- the old subtasks' operator snapshots, unwrapped
          local inner = olds
          olds = setmetatable({ n = inner.n }, { __index = function(t, i)
            local v = inner[i]
            if v == nil then return nil end
            v = v and v.op or false
            rawset(t, i, v)
            return v
          end, __len = function() return inner.n end })
        end
        local op = built[id]
        if olds and op.restore and (s or rescaled) then op.restore(s or nil, olds) end
      end
      if inflight and not finished then
        local ok, err = core.replay_inflight(ctx.restore_dir .. "/" .. ckpt.inflight_file(ctx.task, ctx.subtask))
        if not ok then error("cannot restore in-flight data: " .. tostring(err), 0) end
      end
    end
    state.open()
    for _, id in ipairs(task.nodes) do
      local f = built[id].open
      if f then f() end
    end
    if ctx.restore_dir and os.getenv("TIDE_CHECKPOINT_STATS") then
      -- (process CPU time beside it: the machines that run benchmarks are
      -- shared)
      core.log("info", "restore", string.format("%d/%d of task %d", ctx.subtask + 1, ctx.parallelism, ctx.task),
        string.format("subtask %d/%d of task %d restored in %.1f ms (process CPU %.0f ms)",
          ctx.subtask + 1, ctx.parallelism, ctx.task, (clock() - t0) / 1000, (os.clock() - restore_cpu0) * 1000))
    end
  end

  local function loop()
    restore()
    local buf = {}
    local push = head.push
    if finished_before then
      -- finished in the restored checkpoint: nothing left to do but end
      if not is_source then
        local tsbuf = {}
        while core.poll(buf, tsbuf) ~= nil do end
      end
      core.finish()
      core.finished(function()
        local files = {}
        for _, id in ipairs(task.nodes) do
          local r = restored[id]
          files[ckpt.state_file(nodes[id].uid, ctx.subtask)] = r == nil and false or r
        end
        return files
      end)
    else
      if is_source then
        local tick = core.tick
        -- rate_limit (records/s, for the whole source): this subtask's share,
        -- in batches of about 1/20 s, each released no earlier than the rate
        -- allows (as Flink's RateLimiterStrategy.perSecond)
        local src = nodes[task.head]
        local rate = src.source.rate_limit and src.source.rate_limit / source_pos.readers
        local max = rate and math.max(1, math.min(operators.BATCH, math.floor(rate / 20))) or nil
        local start, sent, sleep = now(), 0, core.sleep_ms
        local source_emit = source_pos.emit
        while true do
          if rate then
            -- wait before reading: a checkpoint taken while waiting must
            -- not count records read but not yet pushed
            local due = start + sent * 1000 / rate
            -- what this source sent goes out before it sleeps, not at the
            -- buffer timeout
            if now() < due then core.flush() end
            while now() < due and not stop_mode do
              sleep(math.min(100, math.ceil(due - now())), true) -- idle (metrics)
              local id = tick()
              while id and not stop_mode do
                checkpoint(id)
                id = not stop_mode and tick()
              end
            end
            if stop_mode then break end
          end
          -- pushed: a C module source ran the batch through its chain
          -- already (0 records and pushed: nothing right now)
          -- ts: the records' timestamps (a source giving event time);
          -- emit(head): the source's own watermarks and idleness, after
          -- the records (Kafka's per-partition watermarks)
          local n, pushed, ts = read(buf, max)
          if n == 0 and not pushed then break end
          sent = sent + n
          if not pushed then push(buf, ts, n) end
          if source_emit then source_emit(head) end
          flush_state()
          -- tick returns once the outputs can take the next batch, or
          -- with a checkpoint to take first (FLIP-76: a source blocked
          -- for credit must still inject barriers); it counts the batch's
          -- records (the source's records read)
          local id = tick(n)
          while id and not stop_mode do
            checkpoint(id)
            id = not stop_mode and tick()
          end
          if stop_mode then break end
          fire_due()
          check_completed()
        end
        -- a bounded source ends with the final watermark (Flink's
        -- MAX_WATERMARK), and so does a drained one; a stopped one does not
        if stop_mode ~= "stop" then head.watermark(MAXWM) end
        flush_state()
      else
        -- a C module operator at the head polls the exchange in C; a head
        -- that borrows its input (keeps no reference to a record and
        -- changes none: op.borrow() says it will) gets records decoded into
        -- the tables of the previous batch (object reuse, see core.poll)
        -- a two-input head learns the input (1 or 2) of each batch from
        -- the edge it came over
        local input_of = {}
        if nodes[task.head].two_input then
          local j = 0
          for eid, e in ipairs(plan.edges) do
            if e.to_node == task.head then
              j = j + 1
              input_of[eid] = j
            end
          end
        end
        local poll, tsbuf = head.poll or core.poll, {}
        local reuse = not head.poll and head.borrow ~= nil and head.borrow() == true
        local watermark, status = head.watermark, head.status
        -- sinks learn of completed checkpoints even when no input comes
        local idle_wait = #committers > 0 and 100 or nil
        while true do
          local deadline = fire_due()
          local timeout = deadline and math.max(0, deadline - now()) or nil
          if idle_wait and (not timeout or timeout > idle_wait) then timeout = idle_wait end
          local n, edge, event, value, has_ts = poll(buf, tsbuf, timeout, reuse)
          if n == nil then break end
          if n > 0 then push(buf, has_ts and tsbuf or nil, n, input_of[edge]) end
          if event == "watermark" then
            watermark(value)
          elseif event == "barrier" then
            checkpoint(value)
          elseif event then
            status(event)
          end
          flush_state()
          check_completed()
        end
      end
      -- end of input: pending processing-time timers are dropped, as Flink
      -- quiesces its timer service. Stopped with a savepoint (not drained),
      -- the operators are not finished (their final output would come
      -- after the cut); sinks still close what they write
      local suspended = stop_cut and core.stopping() == "stop"
      for _, id in ipairs(task.nodes) do
        local op = built[id]
        if op.finish and (not suspended or op.notify_checkpoint_complete) then op.finish() end
        if not suspended then
          for _, c in pairs(combiners[id] or {}) do c.finish() end
        end
      end
      flush_state(true)
      core.finish()
      -- drained for a savepoint: the final states are the savepoint's, so
      -- canonical (a RocksDB backend's, self-contained)
      core.finished(function() return collect(core.stopping() == "drain" and savepoint_opts or nil) end)
    end
    -- commit on every completed checkpoint until the final one
    while true do
      local id, final = core.wait_checkpoint(seen)
      notify(id, final)
      if final then break end
    end
  end

  local ok, err = xpcall(loop, M.handler(op_of_fn,
    string.format(" in subtask %d/%d", ctx.subtask + 1, ctx.parallelism)))
  -- a snapshot process or thread may still read and write the state's
  -- working directories that close removes (at the end too: one of a
  -- checkpoint the final one subsumed)
  core.abort_snapshots()
  state.close()
  if not ok then
    if type(err) == "userdata" then error(err, 0) end
    core.fail(err)
  end
end

return M
