--- tide.checkpoint: checkpoint configuration, the layout of a checkpoint
-- directory, and finding the checkpoint to restore (DESIGN.md, "file
-- formats"):
--
--   <checkpoint-dir>/<job>/chk-<n>/_metadata          written last, atomically
--   <checkpoint-dir>/<job>/chk-<n>/<uid>-<subtask>.state
--   <checkpoint-dir>/<job>/chk-<n>/inflight-<task>-<subtask>.state  (unaligned)
--   <checkpoint-dir>/<job>/finished/                  final states (FLIP-147)
--
-- The coordinator that writes them is core/checkpoint.c; a subtask's part is
-- in tide.runtime.
local core = require "tide.core"
local util = require "tide.util"
local compat = require "tide.compat"

local M = {}

local math_type = compat.math_type

-- Flink's defaults: checkpoint timeout 10 min, no pause, one at a time,
-- one retained checkpoint, exactly-once with aligned barriers.
local DEFAULTS = { timeout = 600000, min_pause = 0, max_concurrent = 1, retained = 1,
  mode = "exactly_once", unaligned = false, tolerable_failed_checkpoints = 0 }

local KNOWN = { dir = true, interval = true, timeout = true, min_pause = true, max_concurrent = true,
  mode = true, unaligned = true, retained = true, tolerable_failed_checkpoints = true }

local function positive_int(v, what)
  if math_type(v) ~= "integer" or v < 1 then
    error(string.format("bad checkpoint.%s: expected a positive integer, got %s", what, tostring(v)), 0)
  end
  return v
end

--- Normalize a checkpoint configuration, as Flink's CheckpointConfig.
-- @param cfg table or nil: dir (string), interval (duration; nil or 0: no
--   periodic checkpoints), timeout (duration, default 10 min), min_pause
--   (duration, 0), max_concurrent (integer, 1), mode ("exactly_once" |
--   "at_least_once"), unaligned (boolean; exactly-once only), retained
--   (integer, 1), tolerable_failed_checkpoints (integer, 0: consecutive
--   checkpoint failures (I/O errors, timeouts; not declines) tolerated
--   before the job fails over, as Flink's tolerable-failed-checkpoints)
-- @param cli table or nil: {dir =, interval =} from the command line,
--   which win over the script's values
-- @return the normalized table (durations in ms), or nil when no
--   directory is configured (no checkpoints)
-- @raise on unknown keys and bad values
function M.config(cfg, cli)
  if cfg ~= nil and type(cfg) ~= "table" then
    error("bad env option 'checkpoint': table expected, got " .. type(cfg), 0)
  end
  local c = {}
  for _, k in ipairs(util.sorted_keys(cfg or {})) do -- the same first error on every VM
    if not KNOWN[k] then error("unknown checkpoint option '" .. tostring(k) .. "'", 0) end
    c[k] = cfg[k]
  end
  cli = cli or {}
  if cli.dir then c.dir = cli.dir end
  if cli.interval then c.interval = cli.interval end
  for k, v in pairs(DEFAULTS) do
    if c[k] == nil then c[k] = v end
  end
  if c.dir == nil then
    if cfg and cfg.interval then
      error("checkpoint.interval is set but there is no checkpoint directory " ..
        "(env{checkpoint = {dir = ...}} or --checkpoint-dir)", 0)
    end
    return nil
  end
  if type(c.dir) ~= "string" or c.dir == "" then error("bad checkpoint.dir: a directory path expected", 0) end
  c.interval = c.interval and util.duration(c.interval, "checkpoint.interval") or 0
  c.timeout = util.duration(c.timeout, "checkpoint.timeout")
  if c.timeout <= 0 then error("bad checkpoint.timeout: must be positive", 0) end
  c.min_pause = util.duration(c.min_pause, "checkpoint.min_pause")
  positive_int(c.max_concurrent, "max_concurrent")
  positive_int(c.retained, "retained")
  local tol = c.tolerable_failed_checkpoints
  if math_type(tol) ~= "integer" or tol < 0 then
    error("bad checkpoint.tolerable_failed_checkpoints: expected a non-negative integer, got " .. tostring(tol), 0)
  end
  if c.mode ~= "exactly_once" and c.mode ~= "at_least_once" then
    error("bad checkpoint.mode: 'exactly_once' or 'at_least_once' expected, got " .. tostring(c.mode), 0)
  end
  if type(c.unaligned) ~= "boolean" then error("bad checkpoint.unaligned: boolean expected", 0) end
  if c.unaligned and c.mode ~= "exactly_once" then
    error("checkpoint.unaligned needs mode 'exactly_once' (as in Flink)", 0)
  end
  return c
end

--- The directory of a job's checkpoints: <dir>/<job name>, with
-- characters other than letters, digits, '.', '_' and '-' replaced by '_'.
function M.job_dir(dir, job_name)
  return dir .. "/" .. util.safe_name(job_name)
end

--- The state file of operator uid in subtask s (0-based): "<uid>-<s>.state"
-- with '/', '%' and a leading '.' percent-encoded.
function M.state_file(uid, s)
  local name = uid:gsub("[%%/]", function(ch) return string.format("%%%02X", ch:byte()) end)
  name = name:gsub("^%.", "%%2E")
  return string.format("%s-%d.state", name, s)
end

--- The in-flight data file of subtask s of task t (1-based task).
function M.inflight_file(t, s) return string.format("inflight-%d-%d.state", t, s) end

--- The job description stored in every _metadata: fingerprint, job name,
-- lineage (the id in the names of the job's part files, kept across
-- resumes), the hash of the script text the job runs (script_hash: the
-- text read once at submission), and per task its parallelism and
-- operator uids (MessagePack).
function M.job_info(env, plan, name)
  local tasks = {}
  for i, t in ipairs(plan.tasks) do
    local uids = {}
    for j, id in ipairs(t.nodes) do uids[j] = env.nodes[id].uid end
    tasks[i] = { parallelism = t.parallelism, uids = uids }
  end
  return core.encode({ version = 1, job = name, fingerprint = plan.fingerprint, lineage = plan.job_id,
    script_hash = core.script_hash(plan.script), shape = plan.shape, max_parallelism = plan.max_parallelism,
    tasks = tasks })
end

-- Why a C module operator of env that runs at another parallelism than in
-- job (the _metadata's job info of checkpoint or savepoint directory dir)
-- cannot be restored there (tide.modules.rescale_refusal: state of the
-- module's own cannot be split by key group), and its old parallelism; nil
-- when every one can.
local function module_refusal(dir, job, env)
  local old_p = {}
  for _, t in ipairs(job.tasks or {}) do
    for _, uid in ipairs(t.uids) do old_p[uid] = t.parallelism end
  end
  for _, n in ipairs(env and env.nodes or {}) do
    local mod = n.kind == "module" or (n.source and n.source.type == "module") or
      (n.sink and n.sink.type == "module")
    local p = old_p[n.uid]
    if mod and p and p ~= n.p then
      local why = require("tide.modules").rescale_refusal(n, p, function(s)
        return core.read_state(dir .. "/" .. M.state_file(n.uid, s))
      end)
      if why then return why, p end
    end
  end
  return nil
end

--- Why checkpoint `restore` ({dir =, job =, subtasks =} from find_latest)
-- cannot be restored by `plan`, whose graph fingerprint differs from the
-- checkpoint's; nil when it is the same graph at another parallelism and
-- can be rescaled: the same operators, uids and edges (the shape), the
-- same max parallelism (the number of key groups), no in-flight data of
-- unaligned checkpoints (as Flink before 1.13, which could not rescale
-- those), no C module operator whose old subtasks wrote state of the
-- module's own (env: the job's environment; keyed state and timers of C
-- keyed processes are redistributed by key group).
function M.rescale_refusal(restore, plan, env)
  local job = restore.job
  if job.shape ~= plan.shape then
    return string.format("checkpoint %s was taken by a different job graph (operators, uids or edges " ..
      "changed); cannot restore it", restore.dir)
  end
  if job.max_parallelism ~= plan.max_parallelism then
    return string.format("checkpoint %s was taken with max parallelism %s and the job now has %d: the number " ..
      "of key groups cannot change; resume with --max-parallelism %s", restore.dir, tostring(job.max_parallelism),
      plan.max_parallelism, tostring(job.max_parallelism))
  end
  for _, flags in ipairs(restore.subtasks or {}) do
    if flags % 4 >= 2 then
      return string.format("checkpoint %s holds in-flight data of an unaligned checkpoint, which cannot be " ..
        "restored at another parallelism; resume at the parallelism it was taken with", restore.dir)
    end
  end
  local why, old_p = module_refusal(restore.dir, job, env)
  if why then
    return string.format("checkpoint %s cannot be restored at another parallelism: %s; resume at the " ..
      "parallelism it was taken with (%d)", restore.dir, why, old_p)
  end
  return nil
end

--- Open a savepoint (or a retained checkpoint) for tide run
-- --from-savepoint: the directory is checked as recovery checks a
-- checkpoint (tide verify): _metadata and every file it lists, with the
-- job name _metadata records (a savepoint restores into a job of another
-- name). Relocatable: nothing in it names its own location.
-- @return metadata (see read_metadata) or nil, message naming the
--   directory and the faulty file
function M.open_savepoint(path)
  path = path:gsub("(.)/+$", "%1")
  local meta, err, code = core.verify_checkpoint(path, nil)
  if meta then return meta end
  if code == "ENOENT" then
    return nil, string.format("cannot restore %s: not a savepoint (no %s/_metadata)", path, path)
  end
  return nil, string.format("cannot restore savepoint %s: %s", path, err)
end

--- Why a savepoint cannot be restored by plan (Flink's restore rules:
-- state maps to operators by uid), or nil. Refused: another max
-- parallelism (the number of key groups); a uid with state in the
-- savepoint that the new job lacks, unless allow_non_restored (then that
-- state is dropped, with a warning through warn); a C module operator at
-- another parallelism whose old subtasks wrote state of the module's own
-- (as rescale_refusal). Operators of the new job absent from the savepoint
-- start empty; another parallelism rescales.
function M.savepoint_refusal(sp, plan, env, allow_non_restored, warn)
  local job = sp.job
  if job.max_parallelism and job.max_parallelism ~= plan.max_parallelism then
    return string.format("savepoint %s was taken with max parallelism %s and the job now has %d: the number " ..
      "of key groups cannot change; run with --max-parallelism %s", sp.dir, tostring(job.max_parallelism),
      plan.max_parallelism, tostring(job.max_parallelism))
  end
  local new = {}
  for _, n in ipairs(env.nodes) do new[n.uid] = n end
  local dropped = {}
  for _, t in ipairs(job.tasks) do
    for _, uid in ipairs(t.uids) do
      local n = new[uid]
      if not n then
        -- state of an operator the new job lacks: any subtask's file with data
        local has_state = false
        for s = 0, t.parallelism - 1 do
          local v = core.read_state(sp.dir .. "/" .. M.state_file(uid, s))
          if v then has_state = true end
        end
        if has_state then dropped[#dropped + 1] = uid end
      end
    end
  end
  local why, old_p = module_refusal(sp.dir, job, env)
  if why then
    return string.format("savepoint %s cannot be restored at another parallelism: %s; restore it at the " ..
      "parallelism it was taken with (%d)", sp.dir, why, old_p)
  end
  if #dropped > 0 then
    table.sort(dropped)
    local list = "'" .. table.concat(dropped, "', '") .. "'"
    if not allow_non_restored then
      return string.format("savepoint %s holds state of operator%s %s, which the job no longer has (no operator " ..
        "with that uid); restoring would lose it. Give the operator back its uid, or pass " ..
        "--allow-non-restored-state to drop that state", sp.dir, #dropped == 1 and "" or "s", list)
    end
    if warn then
      warn(string.format("--allow-non-restored-state: the state of %s in savepoint %s is not restored", list, sp.dir))
    end
  end
  return nil
end

--- The state files each subtask's snapshot writes, per subtask in job
-- order (task by task), each a "\n"-separated list: one file per operator
-- of the subtask's chain (the coordinator aborts a checkpoint missing one).
function M.expected_files(env, plan)
  local out = {}
  for _, t in ipairs(plan.tasks) do
    for s = 0, t.parallelism - 1 do
      local names = {}
      for j, id in ipairs(t.nodes) do names[j] = M.state_file(env.nodes[id].uid, s) end
      out[#out + 1] = table.concat(names, "\n")
    end
  end
  return out
end

--- Read and check a checkpoint's _metadata (not the files it lists).
-- @return {id =, time =, final =, subtasks = {flags...}, job = decoded
--   job info, job_name =, dir =, files = {{name =, subtask =, size =,
--   crc =}...}} or nil, message
function M.read_metadata(chk)
  return core.read_metadata(chk)
end

--- The checkpoint ids in a job's checkpoint directory, newest first.
function M.list(job_dir)
  local names = core.list_dir(job_dir)
  local ids = {}
  for _, n in ipairs(names or {}) do
    local id = n:match("^chk%-(%d+)$")
    if id then ids[#ids + 1] = compat.tointeger(tonumber(id)) end
  end
  table.sort(ids, function(a, b) return a > b end)
  return ids
end

--- The newest sound checkpoint of a job, as the core chooses it
-- (core.find_latest, state/metadata.h's td_meta_latest, which `tide
-- verify` shares). A checkpoint is sound when it passes the checks of
-- td_meta_verify: a
-- sound _metadata of this job, and every file it lists present, sound, of
-- the recorded size and CRC32C, and written for this checkpoint and job.
-- A directory without _metadata is an incomplete checkpoint and skipped
-- silently; a completed but corrupt one is skipped with a warning through
-- warn(message), falling back to an older one.
-- @param job_name the job the checkpoints must belong to (nil: any)
-- @return metadata (see read_metadata), or nil and a list of the
--   completed checkpoints found corrupt ({} when none was ever completed:
--   "none yet" and "all corrupt" are different situations)
function M.find_latest(job_dir, warn, job_name)
  local meta, corrupt = core.find_latest(job_dir, job_name)
  if warn then
    for _, c in ipairs(corrupt) do
      warn((c:gsub("^(checkpoint %d+): ", "%1 is corrupt, falling back to an older one: ", 1)))
    end
  end
  return meta, corrupt
end

--- A restart strategy (Flink's RestartStrategies), consulted after each
-- failure of the job:
--   { strategy = "none" }
--   { strategy = "fixed_delay", attempts = n, delay = d }
--       at most n restarts, each after d (Flink's fixed-delay)
--   { strategy = "failure_rate", max_failures = n, interval = d1, delay = d2 }
--       restart after d2 unless more than n failures fell within the last
--       d1 (Flink's failure-rate)
-- Default: "none" without checkpoints; with checkpoints fixed_delay with 3
-- attempts and a 1 s delay (Flink retries forever there; a job that fails
-- on every attempt should end with its error, not loop).
-- @return the core's strategy (core/restart.h) with :on_failure(now_ms)
--   -> delay in ms, or nil to give up
function M.restart_strategy(cfg, checkpointing)
  if cfg ~= nil and type(cfg) ~= "table" then
    error("bad env option 'restart': table expected, got " .. type(cfg), 0)
  end
  cfg = cfg or (checkpointing and { strategy = "fixed_delay", attempts = 3, delay = 1000 } or { strategy = "none" })
  local kind = cfg.strategy
  local allowed = { none = { strategy = true },
    fixed_delay = { strategy = true, attempts = true, delay = true },
    failure_rate = { strategy = true, max_failures = true, interval = true, delay = true } }
  if not allowed[kind] then
    error("bad restart.strategy: 'none', 'fixed_delay' or 'failure_rate' expected, got " .. tostring(kind), 0)
  end
  for _, k in ipairs(util.sorted_keys(cfg)) do
    if not allowed[kind][k] then error("unknown option '" .. tostring(k) .. "' for restart strategy " .. kind, 0) end
  end
  if kind == "none" then return core.restart_strategy{ kind = "none" } end
  local delay = util.duration(cfg.delay or 1000, "restart.delay")
  if kind == "fixed_delay" then
    local attempts = cfg.attempts or 1
    if math_type(attempts) ~= "integer" or attempts < 0 then
      error("bad restart.attempts: a non-negative integer expected", 0)
    end
    return core.restart_strategy{ kind = kind, attempts = attempts, delay = delay }
  end
  local max = cfg.max_failures or 1
  if math_type(max) ~= "integer" or max < 1 then error("bad restart.max_failures: a positive integer expected", 0) end
  local interval = util.duration(cfg.interval or 60000, "restart.interval")
  return core.restart_strategy{ kind = kind, max_failures = max, interval = interval, delay = delay }
end

return M
