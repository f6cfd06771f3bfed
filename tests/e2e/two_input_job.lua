-- The job of tests/e2e/test_two_input.sh: two-input operators over the git
-- commits, checkpointed into exactly-once part files so that it can be
-- killed and resumed (at another parallelism too).
--   tide run tests/e2e/two_input_job.lua -p P [--resume] -- MODE CSV OUT CKDIR RATE [unaligned]
-- (unaligned: unaligned checkpoints, whose in-flight data holds buffers of
-- both inputs of the two-input operator)
-- MODE:
--   broadcast  commits keyed by author, connected with a broadcast stream
--              of 16 rules (a label per first hex digit of the author id,
--              arriving slowly): a commit whose rule has not come yet waits
--              in keyed list state, and the rule's arrival flushes every
--              waiting commit through apply_to_keyed_state; each commit is
--              emitted once as "commit,author,n,label" (n: the author's
--              running count, in keyed state)
--   interval   an interval join on author of every commit with the commits
--              changing >= 5 files, authored within [-1h, +1h]:
--              "commit,big_commit"
--   window     a window join on author per day (tumbling 1 d) of merges
--              (0 files) with commits changing >= 20 files: "J,day,merge,big",
--              and a co-group of the same: "G,day,author,#merges,#big"
-- The CSV must be sorted by author time (the test sorts it), so that with
-- monotonous watermarks no record is late and the output is the oracle's
-- whatever the timing.
local tide = require "tide"
local compat = require "tide.compat"

local mode, csv, outdir, ckdir, rate = arg[1], arg[2], arg[3], arg[4], compat.tointeger(tonumber(arg[5]))
local env = tide.env{ checkpoint = { dir = ckdir, interval = "100ms", unaligned = arg[6] == "unaligned" },
  restart = { strategy = "none" } }
local commits = env:read_csv(csv, { types = { author_time_ms = "int", files_changed = "int" }, rate_limit = rate })
  :uid("commits")
  :assign_timestamps(function(r) return r.author_time_ms end, tide.watermarks.monotonous()):uid("ts")

local result
if mode == "broadcast" then
  local labels = {}
  for i, d in ipairs { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f" } do
    labels[#labels + 1] = { digit = d, label = "L" .. (i * 7 % 16) }
  end
  -- the rules arrive over about a second and a half, among the commits
  local rules = env:from_list(labels, { rate_limit = 10 }):uid("rules")
  local function emit(c, ctx, out, label)
    local n = ctx.state:value("n")
    n:update((n:value() or 0) + 1)
    out:collect(c.commit .. "," .. c.author .. "," .. n:value() .. "," .. label)
  end
  result = commits:key_by("author"):connect(rules:broadcast(tide.map_state_descriptor("rules"))):process{
    on_record = function(c, ctx, out)
      local label = ctx:broadcast_state("rules"):get(c.author:sub(1, 1))
      if label then
        emit(c, ctx, out, label)
      else
        ctx.state:list("waiting"):add(c)
      end
    end,
    on_broadcast = function(r, ctx, out)
      ctx:broadcast_state("rules"):put(r.digit, r.label)
      ctx:apply_to_keyed_state("waiting", function(author, st)
        if author:sub(1, 1) == r.digit then
          local w = st:list("waiting")
          for _, c in ipairs(w:get()) do emit(c, ctx, out, r.label) end
          w:clear()
        end
      end)
    end,
  }:uid("enrich")
elseif mode == "interval" then
  local big = commits:filter(function(r) return r.files_changed >= 5 end):uid("big")
  result = commits:key_by("author"):interval_join(big:key_by("author")):between("-1h", "1h")
    :process(function(l, r, ctx, out) out:collect(l.commit .. "," .. r.commit) end):uid("ij")
elseif mode == "window" then
  local merges = commits:filter(function(r) return r.files_changed == 0 end):uid("merges")
  local big = commits:filter(function(r) return r.files_changed >= 20 end):uid("big")
  local day = tide.windows.tumbling("1d")
  local joined = merges:join(big):where("author"):equal_to("author"):window(day)
    :apply(function(m, b)
      return "J," .. math.floor(m.author_time_ms / 86400000) .. "," .. m.commit .. "," .. b.commit
    end):uid("join")
  local grouped = merges:co_group(big):where("author"):equal_to("author"):window(day)
    :apply(function(ms, bs, o)
      local c = ms[1] or bs[1]
      o:collect("G," .. math.floor(c.author_time_ms / 86400000) .. "," .. c.author .. "," .. #ms .. "," .. #bs)
    end):uid("cogroup")
  result = joined:union(grouped)
else
  error("unknown mode " .. tostring(mode))
end
result:write_text(outdir):uid("sink")
env:execute("two_input_" .. mode)
