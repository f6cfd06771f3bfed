-- tide.checkpoint: configuration (Flink's CheckpointConfig defaults and
-- checks), file naming, and restart strategies (Flink's fixed-delay and
-- failure-rate), with hand-computed expectations.
local ckpt = require "tide.checkpoint"

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("tide.checkpoint #unit", function()
  describe("config", function()
    it("is nil without a directory (no checkpoints)", function()
      assert.is_nil(ckpt.config(nil))
      assert.is_nil(ckpt.config({ mode = "exactly_once" }))
    end)

    it("fills Flink's defaults and converts durations to ms", function()
      local c = ckpt.config({ dir = "d", interval = "1s" })
      assert.are.same({ dir = "d", interval = 1000, timeout = 600000, min_pause = 0, max_concurrent = 1,
        retained = 1, mode = "exactly_once", unaligned = false, tolerable_failed_checkpoints = 0 }, c)
    end)

    it("checks tolerable_failed_checkpoints", function()
      assert.are.equal(3, ckpt.config({ dir = "d", tolerable_failed_checkpoints = 3 }).tolerable_failed_checkpoints)
      assert.has_error(function() ckpt.config({ dir = "d", tolerable_failed_checkpoints = -1 }) end,
        "bad checkpoint.tolerable_failed_checkpoints: expected a non-negative integer, got -1")
      assert.has_error(function() ckpt.config({ dir = "d", tolerable_failed_checkpoints = "x" }) end,
        "bad checkpoint.tolerable_failed_checkpoints: expected a non-negative integer, got x")
    end)

    it("lets the command line win over the script", function()
      local c = ckpt.config({ dir = "a", interval = "5s", retained = 3 }, { dir = "b", interval = "200ms" })
      assert.are.equal("b", c.dir)
      assert.are.equal(200, c.interval)
      assert.are.equal(3, c.retained)
      c = ckpt.config(nil, { dir = "x" })
      assert.are.equal("x", c.dir)
      assert.are.equal(0, c.interval) -- no periodic checkpoints, final commit only
    end)

    it("rejects unknown keys and bad values", function()
      assert.matches("unknown checkpoint option 'intervall'", err_of(ckpt.config, { dir = "d", intervall = 1 }))
      -- several: the first by name, whatever the table's order (on every VM)
      assert.matches("unknown checkpoint option 'intervall'",
        err_of(ckpt.config, { dir = "d", zz = 1, intervall = 1, yy = 2, x = 3 }))
      assert.matches("checkpoint.interval is set but there is no checkpoint directory",
        err_of(ckpt.config, { interval = "1s" }))
      assert.matches("bad checkpoint.mode", err_of(ckpt.config, { dir = "d", mode = "twice" }))
      assert.matches("bad checkpoint.retained", err_of(ckpt.config, { dir = "d", retained = 0 }))
      assert.matches("bad checkpoint.max_concurrent", err_of(ckpt.config, { dir = "d", max_concurrent = 1.5 }))
      assert.matches("bad checkpoint.timeout", err_of(ckpt.config, { dir = "d", timeout = 0 }))
      assert.matches("unaligned needs mode 'exactly_once'",
        err_of(ckpt.config, { dir = "d", unaligned = true, mode = "at_least_once" }))
      assert.matches("bad checkpoint.interval", err_of(ckpt.config, { dir = "d", interval = "soon" }))
    end)
  end)

  describe("file names", function()
    it("names a job's directory after the job, keeping it one path component", function()
      assert.are.equal("ck/commits_daily", ckpt.job_dir("ck", "commits_daily"))
      assert.are.equal("ck/my_job__1_", ckpt.job_dir("ck", "my job/(1)"))
      assert.are.equal("ck/job", ckpt.job_dir("ck", ".."))
    end)

    it("names state files <uid>-<subtask>.state, escaping what a file name cannot hold", function()
      assert.are.equal("daily-0.state", ckpt.state_file("daily", 0))
      assert.are.equal("a%2Fb-3.state", ckpt.state_file("a/b", 3))
      assert.are.equal("100%25-1.state", ckpt.state_file("100%", 1))
      assert.are.equal("%2Ehidden-0.state", ckpt.state_file(".hidden", 0))
      assert.are.equal("inflight-2-1.state", ckpt.inflight_file(2, 1))
    end)
  end)

  describe("restart strategies", function()
    it("none never restarts", function()
      local r = ckpt.restart_strategy({ strategy = "none" }, true)
      assert.is_nil(r:on_failure(0))
    end)

    it("defaults to none without checkpoints and 3 attempts 1 s apart with them", function()
      assert.is_nil(ckpt.restart_strategy(nil, false):on_failure(0))
      local r = ckpt.restart_strategy(nil, true)
      assert.are.same({ 1000, 1000, 1000 }, { r:on_failure(0), r:on_failure(1), r:on_failure(2) })
      assert.is_nil(r:on_failure(3))
    end)

    it("fixed_delay allows `attempts` restarts after `delay`", function()
      local r = ckpt.restart_strategy({ strategy = "fixed_delay", attempts = 2, delay = "250ms" })
      assert.are.equal(250, r:on_failure(0))
      assert.are.equal(250, r:on_failure(10))
      assert.is_nil(r:on_failure(20))
    end)

    it("failure_rate gives up when more than max_failures fall within interval", function()
      local r = ckpt.restart_strategy({ strategy = "failure_rate", max_failures = 2, interval = "10s", delay = 5 })
      assert.are.equal(5, r:on_failure(0))      -- failures in (−10s, 0]: 1
      assert.are.equal(5, r:on_failure(4000))   -- 2
      assert.are.equal(5, r:on_failure(10001))  -- the one at 0 left the window: 2
      assert.is_nil(r:on_failure(12000))        -- 4000, 10001, 12000: 3 > 2
    end)

    it("rejects unknown strategies and options", function()
      assert.matches("bad restart.strategy", err_of(ckpt.restart_strategy, { strategy = "always" }))
      assert.matches("unknown option 'attempts' for restart strategy failure_rate",
        err_of(ckpt.restart_strategy, { strategy = "failure_rate", attempts = 3 }))
      assert.matches("unknown option 'attempts' for restart strategy failure_rate",
        err_of(ckpt.restart_strategy, { strategy = "failure_rate", zz = 1, attempts = 3, yy = 2, x = 0 }))
      assert.matches("bad restart.attempts", err_of(ckpt.restart_strategy, { strategy = "fixed_delay", attempts = -1 }))
    end)
  end)
end)
