-- tide.postgres: the PostgreSQL sink's protocol, driven the way the
-- runtime drives a sink (push, prepare_snapshot at the barrier, snapshot,
-- notify_checkpoint_complete, restore) against a fake connection that
-- records the statements; the expected statements are written by hand
-- from the two-phase commit of docs/CONNECTORS.md ("PostgreSQL").
local core = require "tide.core"
local pg = require "tide.postgres"

-- a fake core.pg_connect: every connection appends "<conn>: <sql>" to
-- log; SELECT gid FROM pg_prepared_xacts answers `prepared`
local function fake(log, prepared)
  local n = 0
  return function()
    n = n + 1
    local id = n
    return {
      exec = function(_, sql, params)
        local line = id .. ": " .. sql
        if params then
          local vs = {}
          for i = 1, params.n do vs[i] = tostring(params[i]) end
          line = line .. " [" .. table.concat(vs, ",") .. "]"
        end
        log[#log + 1] = line
        if sql:find("pg_prepared_xacts", 1, true) then
          local rows = {}
          for i, g in ipairs(prepared) do rows[i] = { g } end
          return rows
        end
        if sql == "SHOW max_prepared_transactions" then return { { "10" } } end
        return {}
      end,
      close = function() end,
    }
  end
end

local function node(mode)
  return { uid = "pg", sink = { conninfo = "", table = "t", columns = { "k", "v" }, mode = mode,
    key = mode == "upsert" and { "k" } or nil, key_index = mode == "upsert" and { 1 } or nil,
    delivery_guarantee = "exactly_once", batch_size = 10 } }
end

local real_connect = core.pg_connect

-- the sink of mode (its connections fake until the test ends)
local function sink(mode, prepared, subtask, parallelism)
  local log = {}
  core.pg_connect = fake(log, prepared or {})
  local push, c = pg.sink(node(mode), { subtask = subtask or 0, parallelism = parallelism or 1, job_id = "J",
    job_name = "wc" },
    function(m) error(m, 0) end)
  -- the start-up checks are not what these tests are about
  for i = #log, 1, -1 do table.remove(log, i) end
  return push, c, log
end

-- the job name's tag in transaction names: "wc" -> 119 * 31 + 99 = 3788
local TAG = "00000ecc"
local FOREIGN = "1: SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tide:%'"

local function rows(...)
  local b = { ... }
  return b, nil, #b
end

describe("tide.postgres exactly-once sink #unit", function()
  after_each(function() core.pg_connect = real_connect end)

  it("prepares each interval's transaction at the barrier and commits it from the second connection", function()
    local push, c, log = sink("append")
    push(rows({ k = "a", v = 1 }, { k = "b", v = 2 }))
    c.prepare_snapshot(1)
    push(rows({ k = "c", v = 3 }))
    assert.are.same({ pending = { { id = 1, gid = "tide:J:pg:0:1:" .. TAG } } }, c.snapshot())
    c.notify_checkpoint_complete(1)
    c.prepare_snapshot(2)
    c.prepare_snapshot(3) -- nothing written since: no transaction
    c.notify_checkpoint_complete(3)
    assert.are.same({
      FOREIGN, -- before the first write: other runs' (none here)
      '1: BEGIN',
      '1: INSERT INTO "t" ("k","v") VALUES ($1,$2),($3,$4) [a,1,b,2]',
      "1: PREPARE TRANSACTION 'tide:J:pg:0:1:00000ecc'",
      "2: COMMIT PREPARED 'tide:J:pg:0:1:00000ecc'",
      -- (fewer rows than batch_size wait for the barrier)
      '1: BEGIN',
      '1: INSERT INTO "t" ("k","v") VALUES ($1,$2) [c,3]',
      "1: PREPARE TRANSACTION 'tide:J:pg:0:2:00000ecc'",
      "2: COMMIT PREPARED 'tide:J:pg:0:2:00000ecc'",
    }, log)
  end)

  it("upsert: keeps an interval's rows in the snapshot while an earlier one is prepared, last row of a key wins", function()
    local push, c, log = sink("upsert")
    push(rows({ k = "a", v = 1 }))
    c.prepare_snapshot(1)
    push(rows({ k = "a", v = 2 }, { k = "b", v = 3 }, { k = "a", v = 4 }))
    c.prepare_snapshot(2) -- 1 is still prepared: these rows would wait for its lock on "a"
    local snap = c.snapshot()
    assert.are.equal(2, #snap.pending)
    assert.are.same({ id = 2, n = 3, rows = { "a", "2", "b", "3", "a", "4" } }, snap.pending[2])
    c.notify_checkpoint_complete(1)
    c.notify_checkpoint_complete(2)
    local up = ' ON CONFLICT ("k") DO UPDATE SET "v"=EXCLUDED."v"'
    assert.are.same({
      FOREIGN,
      '1: BEGIN',
      '1: INSERT INTO "t" ("k","v") VALUES ($1,$2)' .. up .. ' [a,1]',
      "1: PREPARE TRANSACTION 'tide:J:pg:0:1:00000ecc'",
      "2: COMMIT PREPARED 'tide:J:pg:0:1:00000ecc'",
      '1: BEGIN',
      '1: INSERT INTO "t" ("k","v") VALUES ($1,$2),($3,$4)' .. up .. ' [b,3,a,4]',
      '1: COMMIT',
    }, log)
    assert.are.same({ pending = {} }, c.snapshot())
  end)

  it("recovers: commits what the restored checkpoint prepared, writes its kept rows, rolls back the rest of its own", function()
    local prepared = { "tide:J:pg:0:4", "tide:J:pg:0:5", "tide:J:pg:1:5", "tide:J:other:0:5", "tide:J:pg:2:7",
      -- another run of the job (job id K, tagged with its name): old
      -- subtask 2 is this one's (2 mod 2), 1 is not; another operator's,
      -- another job's (other tag) stay
      "tide:K:pg:1:3:" .. TAG, "tide:K:pg:2:3:" .. TAG, "tide:K:other:0:3:" .. TAG, "tide:K:pg:0:3:0000abcd" }
    local _, c, log = sink("upsert", prepared, 0, 2)
    local olds = { n = 3, [3] = { pending = { { id = 4, gid = "tide:J:pg:2:4" } } } }
    c.restore({ pending = { { id = 4, gid = "tide:J:pg:0:4" }, { id = 5, rows = { "x", "9" }, n = 1 } } }, olds)
    assert.are.same({
      FOREIGN, -- other runs' first: the rows written below must not wait for their locks
      "2: ROLLBACK PREPARED 'tide:K:pg:2:3:00000ecc'",
      "1: SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tide:J:%'",
      "2: COMMIT PREPARED 'tide:J:pg:0:4'",
      '1: BEGIN',
      '1: INSERT INTO "t" ("k","v") VALUES ($1,$2) ON CONFLICT ("k") DO UPDATE SET "v"=EXCLUDED."v" [x,9]',
      '1: COMMIT',
      "2: ROLLBACK PREPARED 'tide:J:pg:0:5'", -- after the restored checkpoint: written again
      -- old subtask 2 goes to new subtask 0 (2 mod 2): its pre-commit
      -- (gone: committed before the failure) and its later one
      "2: COMMIT PREPARED 'tide:J:pg:2:4'",
      "2: ROLLBACK PREPARED 'tide:J:pg:2:7'",
    }, log)
  end)

  it("turns values into PostgreSQL's text", function()
    assert.are.equal("12", pg.text(12))
    assert.are.equal("-9007199254740991", pg.text(-9007199254740991))
    if rawget(_G, "jit") then
      -- LuaJIT: 64-bit integers beyond 2^53 cross as int64 cdata (docs/LUAJIT.md)
      local ffi = require "ffi"
      assert.are.equal("-9007199254740993", pg.text(ffi.new("int64_t", -9007199254740992) - 1))
    end
    assert.are.equal("0.10000000000000001", pg.text(0.1))
    assert.are.equal("NaN", pg.text(0 / 0))
    assert.are.equal("-Infinity", pg.text(-math.huge))
    assert.are.equal("true", pg.text(true))
    assert.is_false(pg.text(nil))
    assert.are.equal('{"a":[1,2]}', pg.text({ a = { 1, 2 } }))
    local v, err = pg.text(print)
    assert.is_nil(v)
    assert.truthy(err:find("function", 1, true))
    assert.are.equal('"s"."t""x"', pg.quote_ident('s.t"x'))
  end)
end)
