--- tide.postgres: the PostgreSQL sink (stream:write_postgres, lua/tide.lua),
-- over libpq (core.pg_connect, core/postgres_lua.c). See docs/CONNECTORS.md.
--
-- Rows go to the table in multi-row INSERT statements of up to batch_size
-- rows ("upsert": INSERT ... ON CONFLICT (key) DO UPDATE), inside one
-- transaction per subtask and checkpoint interval. The guarantees, as
-- Flink's JdbcSink (at least once) and JdbcXaSinkFunction (exactly once):
--   "at_least_once": the transaction is committed at every checkpoint
--     barrier (and at the end): rows after the restored checkpoint are
--     written again after a failure;
--   "exactly_once": two-phase commit. At the barrier the transaction is
--     prepared (PREPARE TRANSACTION '<name>', the name made of the job id,
--     the operator uid, the subtask and the checkpoint id) and its name
--     goes into the subtask's snapshot; when the checkpoint completes it is
--     committed (COMMIT PREPARED). On recovery the prepared transactions
--     the restored checkpoint lists are committed (one already committed
--     is gone, and skipped) and every other prepared transaction of this
--     job, operator and subtask is rolled back: its rows are written again.
--     The name ends with a tag of the job's name: prepared transactions of
--     this job's name and operator under another job id (left by an
--     attempt killed before its first checkpoint completed, which the next
--     run, a fresh start, does not restore) are rolled back before the
--     first row is written, as Flink's XA sink rolls back what it recovers
--     when it starts without state; in upsert mode their row locks would
--     otherwise block the job forever.
--     In upsert mode a prepared transaction holds its rows' locks until
--     it commits, so the rows of an interval that ends while an earlier
--     one is still prepared are not sent then: they are kept in the
--     snapshot and written, in a transaction of their own, once their
--     checkpoint completes (written again after a failure, which an upsert
--     makes harmless).
local core = require "tide.core"
local compat = require "tide.compat"

local M = {}

-- the checkpoint id of the pre-commit at the end of the input
local FINAL = 4503599627370496
-- the longest transaction name PostgreSQL takes (GIDSIZE - 1)
local MAX_GID = 199

--- A quoted SQL identifier; "schema.table" is quoted part by part.
function M.quote_ident(name)
  local parts = {}
  for part in (name .. "."):gmatch("([^.]*)%.") do parts[#parts + 1] = '"' .. part:gsub('"', '""') .. '"' end
  return table.concat(parts, ".")
end

local function quote_literal(s) return "'" .. s:gsub("'", "''") .. "'" end

--- The INSERT statement of n rows of cfg's columns ($1, $2, ... in row
-- order), with the upsert's ON CONFLICT clause in mode "upsert".
function M.insert_sql(cfg, n)
  local cols, k = {}, #cfg.columns
  for i, c in ipairs(cfg.columns) do cols[i] = M.quote_ident(c) end
  local rows, p = {}, 0
  for r = 1, n do
    local vals = {}
    for j = 1, k do
      p = p + 1
      vals[j] = "$" .. p
    end
    rows[r] = "(" .. table.concat(vals, ",") .. ")"
  end
  local sql = "INSERT INTO " .. M.quote_ident(cfg.table) .. " (" .. table.concat(cols, ",") .. ") VALUES " ..
    table.concat(rows, ",")
  if cfg.mode == "upsert" then
    local is_key, keys, sets = {}, {}, {}
    for i, c in ipairs(cfg.key) do
      is_key[c] = true
      keys[i] = M.quote_ident(c)
    end
    for _, c in ipairs(cfg.columns) do
      if not is_key[c] then sets[#sets + 1] = M.quote_ident(c) .. "=EXCLUDED." .. M.quote_ident(c) end
    end
    sql = sql .. " ON CONFLICT (" .. table.concat(keys, ",") .. ") " ..
      (#sets > 0 and "DO UPDATE SET " .. table.concat(sets, ",") or "DO NOTHING")
  end
  return sql
end

--- The text PostgreSQL reads for a Lua value of a record (false for SQL
-- NULL): strings as they are, integers in decimal (LuaJIT's 64-bit
-- integers, which cross as int64 cdata, too), floats with 17 digits,
-- booleans as true/false, tables as JSON (for json and jsonb columns).
-- Returns nil, message for a value that has none.
function M.text(v)
  local t = type(v)
  if t == "string" then return v end
  if v == nil then return false end
  if t == "number" then
    if compat.math_type(v) == "integer" then return string.format("%d", v) end
    if v ~= v then return "NaN" end
    if v == math.huge then return "Infinity" end
    if v == -math.huge then return "-Infinity" end
    return string.format("%.17g", v)
  end
  if t == "boolean" then return v and "true" or "false" end
  if t == "table" then
    local ok, s = pcall(core.json_encode, v)
    if ok then return s end
    return nil, "a table that is not JSON: " .. tostring(s)
  end
  if t == "cdata" then
    local s = tostring(v):gsub("U?LL$", "")
    if s:match("^%-?%d+$") then return s end
  end
  return nil, "a " .. t .. " has no PostgreSQL value"
end

--- The tag of job name `name` in the sink's transaction names: 8 hex
-- digits of a polynomial hash of its bytes (the same under Lua 5.4 and
-- LuaJIT).
function M.name_tag(name)
  local h = 0
  for i = 1, #name do h = (h * 31 + name:byte(i)) % 4294967296 end
  return string.format("%08x", h)
end

--- The sink's push function and its committer (tide.operators' sink
-- contract: finish, prepare_snapshot, snapshot, restore,
-- notify_checkpoint_complete); see the top of the file.
-- @param node the sink's plan node (node.sink: write_postgres' config)
-- @param rt the runtime ({subtask, parallelism, job_id})
-- @param fail f(message): fails the job, naming the operator
function M.sink(node, rt, fail)
  local cfg = node.sink
  local eos = cfg.delivery_guarantee == "exactly_once"
  local upsert = cfg.mode == "upsert"
  local ncols, columns = #cfg.columns, cfg.columns
  local batch = cfg.batch_size
  local function gid_prefix(i) return string.format("tide:%s:%s:%d:", rt.job_id, node.uid, i) end
  local tag = M.name_tag(rt.job_name or "")
  -- ":<checkpoint id>:<tag>": at most 1 + 16 + 1 + 8 bytes
  if eos and #gid_prefix(rt.parallelism + 1000) + 26 > MAX_GID then
    fail(string.format("write_postgres: the operator uid '%s' is too long for a PostgreSQL transaction name " ..
      "(at most %d bytes in all)", node.uid, MAX_GID))
  end

  local function connect()
    local c, err = core.pg_connect(cfg.conninfo)
    if not c then fail("write_postgres: cannot connect to PostgreSQL: " .. err) end
    return c
  end
  -- conn writes the rows; ctl, a second connection, commits and rolls
  -- back prepared transactions (COMMIT PREPARED cannot run inside the
  -- transaction that conn has open by then)
  local conn, ctl = connect(), nil
  local function control()
    ctl = ctl or connect()
    return ctl
  end
  local function exec(sql, params, what, c)
    local rows, e, state = (c or conn):exec(sql, params)
    if not rows then fail(string.format("write_postgres: %s failed: %s%s", what, e,
      state ~= "" and " (SQLSTATE " .. state .. ")" or "")) end
    return rows
  end
  -- the table and its columns, and prepared transactions for exactly-once
  local cols = {}
  for i, c in ipairs(columns) do cols[i] = M.quote_ident(c) end
  exec("SELECT " .. table.concat(cols, ",") .. " FROM " .. M.quote_ident(cfg.table) .. " LIMIT 0", nil,
    "checking table '" .. cfg.table .. "'")
  if eos then
    local max = exec("SHOW max_prepared_transactions", nil, "reading max_prepared_transactions")
    if tonumber(max[1][1]) == 0 then
      fail("write_postgres: delivery_guarantee = 'exactly_once' commits through PREPARE TRANSACTION, and " ..
        "max_prepared_transactions is 0 on the server: set max_prepared_transactions in postgresql.conf " ..
        "(at least the sink's parallelism; e.g. 2 x it) and restart the server, or use 'at_least_once'")
    end
  end

  local sql_of = {}
  local function insert_sql(n)
    local s = sql_of[n]
    if not s then
      s = M.insert_sql(cfg, n)
      sql_of[n] = s
    end
    return s
  end

  local in_txn = false
  -- rows of text values, flat: row r's column j at (r - 1) * ncols + j
  local buf, nbuf = {}, 0
  local pending = {} -- exactly_once: {id =, gid =} prepared, or {id =, rows =, n =} kept, in id order

  -- exactly_once: roll back the prepared transactions of this job's name
  -- and operator under another job id, those of old subtasks i with i mod
  -- parallelism = this subtask (once, before the first row is written)
  local cleaned = not eos
  local function roll_back_other_runs()
    cleaned = true
    local rows = exec("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tide:%'", nil, "reading pg_prepared_xacts")
    for _, row in ipairs(rows) do
      local g = row[1]
      local job, uid, i, t = g:match("^tide:([^:]+):(.*):(%d+):%d+:(%x+)$")
      if job and job ~= rt.job_id and uid == node.uid and t == tag and tonumber(i) % rt.parallelism == rt.subtask then
        exec("ROLLBACK PREPARED " .. quote_literal(g), nil, "ROLLBACK PREPARED", control())
      end
    end
  end

  -- write rows[1 .. n * ncols] in the open transaction (one is begun)
  local function write(rows, n)
    if n == 0 then return end
    if not cleaned then roll_back_other_runs() end
    if not in_txn then
      exec("BEGIN", nil, "BEGIN")
      in_txn = true
    end
    local first = 1
    if upsert then
      -- one statement cannot update a row twice: the last row of a key wins
      local last, keyed = {}, {}
      for r = 1, n do
        local parts = {}
        for i, c in ipairs(cfg.key_index) do parts[i] = rows[(r - 1) * ncols + c] or "\1" end
        keyed[r] = table.concat(parts, "\0")
        last[keyed[r]] = r
      end
      local out, m = {}, 0
      for r = 1, n do
        if last[keyed[r]] == r then
          local base = (r - 1) * ncols
          for j = 1, ncols do out[m * ncols + j] = rows[base + j] end
          m = m + 1
        end
      end
      rows, n = out, m
    end
    while first <= n do
      local m = math.min(batch, n - first + 1)
      local params = { n = m * ncols }
      local base = (first - 1) * ncols
      for i = 1, m * ncols do params[i] = rows[base + i] end
      exec(insert_sql(m), params, "INSERT into '" .. cfg.table .. "'")
      first = first + m
    end
  end

  -- held: upsert rows are not sent while an earlier interval is prepared
  local function held() return upsert and eos and #pending > 0 end

  local function send()
    write(buf, nbuf)
    buf, nbuf = {}, 0
  end

  local function push(b, _, n)
    for i = 1, n do
      local v = b[i]
      if type(v) ~= "table" then
        fail(string.format("write_postgres: a record must be a table with the fields %s, not a %s",
          table.concat(columns, ", "), type(v)))
      end
      local base = nbuf * ncols
      for j = 1, ncols do
        local t, why = M.text(v[columns[j]])
        if t == nil then fail(string.format("write_postgres: field '%s': %s", columns[j], why)) end
        buf[base + j] = t
      end
      nbuf = nbuf + 1
    end
    if nbuf >= batch and not held() then send() end
  end

  local function commit_open()
    if in_txn then
      exec("COMMIT", nil, "COMMIT")
      in_txn = false
    end
  end

  -- the pre-commit of checkpoint id
  local function precommit(id)
    if not cleaned then roll_back_other_runs() end
    if not eos then
      send()
      commit_open()
      return
    end
    if held() then
      if nbuf > 0 then pending[#pending + 1] = { id = id, rows = buf, n = nbuf } end
      buf, nbuf = {}, 0
      return
    end
    send()
    if in_txn then
      local gid = gid_prefix(rt.subtask) .. string.format("%d:%s", id, tag)
      exec("PREPARE TRANSACTION " .. quote_literal(gid), nil, "PREPARE TRANSACTION")
      in_txn = false
      pending[#pending + 1] = { id = id, gid = gid }
    end
  end

  -- commit gid; missing: whether a missing one is fine (recovery: it was
  -- committed before the failure)
  local function commit_prepared(gid, missing)
    local rows, e, state = control():exec("COMMIT PREPARED " .. quote_literal(gid))
    if not rows and not (missing and state == "42704") then
      fail(string.format("write_postgres: COMMIT PREPARED '%s' failed: %s (SQLSTATE %s)", gid, e, state))
    end
  end

  -- commit the entries of list up to checkpoint id (in order); the rest
  local function commit_through(list, id, recovering)
    local rest = {}
    for _, e in ipairs(list) do
      if e.id <= id then
        if e.gid then
          commit_prepared(e.gid, recovering)
        else
          write(e.rows, e.n)
          commit_open()
        end
      else
        rest[#rest + 1] = e
      end
    end
    return rest
  end

  -- recovery of old subtask i: its restored pre-commits committed, every
  -- other prepared transaction of it rolled back
  local prepared_now
  local function recover(i, list)
    commit_through(list or {}, FINAL, true)
    local prefix = gid_prefix(i)
    for _, row in ipairs(prepared_now) do
      local g = row[1]
      if g:sub(1, #prefix) == prefix then
        local keep = false
        for _, e in ipairs(list or {}) do
          if e.gid == g then keep = true end
        end
        if not keep then exec("ROLLBACK PREPARED " .. quote_literal(g), nil, "ROLLBACK PREPARED", control()) end
      end
    end
  end

  return push, {
    finish = function() precommit(FINAL) end,
    prepare_snapshot = function(id) precommit(id) end,
    snapshot = function() return eos and { pending = pending } or nil end,
    restore = function(s, all)
      if not eos then return end
      -- other runs' first: the rows written below must not wait for their locks
      roll_back_other_runs()
      prepared_now = exec("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE " ..
        quote_literal("tide:" .. rt.job_id .. ":%"), nil, "reading pg_prepared_xacts")
      recover(rt.subtask, s and s.pending)
      local n = all and (all.n or #all) or 0
      for i = rt.parallelism + rt.subtask, n - 1, rt.parallelism do
        local o = all[i + 1]
        recover(i, o and o.pending)
      end
      if rt.subtask == 0 then
        -- subtasks of an attempt at a higher parallelism than both
        local base = string.format("tide:%s:%s:", rt.job_id, node.uid)
        for _, row in ipairs(prepared_now) do
          local g = row[1]
          local i = g:sub(1, #base) == base and tonumber(g:sub(#base + 1):match("^(%d+):"))
          if i and i >= math.max(n, rt.parallelism) then
            exec("ROLLBACK PREPARED " .. quote_literal(g), nil, "ROLLBACK PREPARED", control())
          end
        end
      end
      prepared_now = nil
    end,
    notify_checkpoint_complete = function(id, final)
      if not eos then return end
      -- fault injection for tests/e2e/test_postgres.sh: a crash after the
      -- checkpoint completed and before its transaction is committed
      if #pending > 0 and os.getenv("TIDE_TEST_PG_CRASH_BEFORE_COMMIT") then os.execute("kill -KILL $PPID") end
      pending = commit_through(pending, final and FINAL or id, false)
      -- rows held back while an interval was prepared go out now
      if nbuf >= batch and not held() then send() end
    end,
  }
end

return M
