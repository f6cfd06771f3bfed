-- The job of tests/e2e/test_rocksdb.sh: a streaming word count with a
-- running sum per word (keyed state) into exactly-once part files,
-- checkpointed often, so that many incremental RocksDB checkpoints are
-- taken, and the job can be killed and resumed.
--   tide run tests/e2e/rocksdb_job.lua [--state-backend B] [--resume] -- \
--       INPUT OUT CKDIR RATE [OPTION=VALUE...]
-- Options:
--   interval=T     checkpoint interval (default 50ms)
--   retained=N     completed checkpoints kept (default 2)
--   backend=B      env{state_backend = B} (the command line's wins)
--   state_dir=D    env{state_dir = D}
--   incremental=false  env{rocksdb = {incremental = false}}: full checkpoints
-- Output rows: "word,n" for the n-th occurrence of word.
local tide = require "tide"
local compat = require "tide.compat"

local input, out, ckdir, rate = arg[1], arg[2], arg[3], arg[4]
local opt = {}
for i = 5, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  assert(k, "OPTION=VALUE expected, not " .. arg[i])
  opt[k] = v
end

local env = tide.env{
  checkpoint = { dir = ckdir, interval = opt.interval or "50ms",
    retained = compat.tointeger(tonumber(opt.retained or "2")) },
  restart = { strategy = "none" },
  state_backend = opt.backend,
  state_dir = opt.state_dir,
  rocksdb = opt.incremental and { incremental = opt.incremental ~= "false" } or nil,
}
env:read_text(input, { rate_limit = compat.tointeger(tonumber(rate)) })
   :flat_map(function(line, o)
     for w in line:lower():gmatch("%a+") do o:collect(w) end
   end)
   :map(function(w) return { word = w, n = 1 } end)
   :key_by("word")
   :sum("n"):uid("counts")
   :map(function(r) return r.word .. "," .. r.n end)
   :write_text(out):uid("out")
env:execute("rocks")
