--- tide: the DataStream API.
--
-- A job script builds a dataflow graph with an environment and streams,
-- then runs it with env:execute(). The same script runs once in a planning
-- VM, which builds the graph and hands it to the C core, and once in each
-- subtask's VM, where the same builder calls give the runtime its operator
-- functions (so graph construction must be deterministic).
--
--   local tide = require "tide"
--   local env = tide.env{ parallelism = 2 }
--   env:read_text(arg[1])
--      :flat_map(function(line, out) for w in line:gmatch("%S+") do out:collect(w) end end)
--      :map(function(w) return { word = w, n = 1 } end)
--      :key_by("word"):sum("n")
--      :write_csv(arg[2], { columns = { "word", "n" } })
--   env:execute("wordcount")
--
-- Names and semantics mirror Flink's DataStream API (snake_case).
local core = require "tide.core"
local util = require "tide.util"
local math_type = require("tide.compat").math_type

local VERSION = "0.1.0"
if core.version ~= VERSION then
  error(string.format("tide: Lua module %s does not match the core %s", VERSION, core.version))
end

local tide = { _VERSION = VERSION, duration = util.duration, format = util.format }

--- The names in a directory, sorted, without "." and ".." (no shell is
-- involved, whatever the path holds).
-- @param path string
-- @return array of names, or nil and a message (as io.open)
function tide.list_dir(path)
  if type(path) ~= "string" then
    error("bad argument #1 to 'list_dir' (string expected, got " .. type(path) .. ")", 2)
  end
  local names, err = core.list_dir(path)
  if not names then return nil, err end
  table.sort(names)
  return names
end

--- Load a C module (a shared object built against tide.h; docs/MODULES.md):
-- returns its table, with one field per operator it registers (m.<name>),
-- plus name, version, path and abi. Raises, naming the path, when the file
-- does not exist, is not a Tide module, was built for another ABI major
-- (or a newer minor), or its init fails.
function tide.load_module(path)
  return require("tide.modules").load(path, 2)
end

-- tide.windows, tide.triggers and tide.evictors live in tide.window
setmetatable(tide, { __index = function(_, k)
  if k == "windows" or k == "triggers" or k == "evictors" then return require("tide.window")[k] end
end })

local DataStream = {}
DataStream.__index = DataStream
local KeyedStream = setmetatable({}, { __index = DataStream })
KeyedStream.__index = KeyedStream
local Env = {}
local Strategy -- watermark strategies (tide.watermarks, below)
Env.__index = Env

local executions = 0 -- env:execute() calls so far in this VM

-- "file:line" of the user's call that defined an operator: the first
-- frame outside this module (levels are unreliable across tail calls).
local THIS_SOURCE = debug.getinfo(1, "S").source
local THIS_DIR = THIS_SOURCE:gsub("%.lua$", "/")
local function call_site()
  for level = 2, 50 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    local src = info.source
    if src ~= THIS_SOURCE and src:sub(1, #THIS_DIR) ~= THIS_DIR and info.what ~= "C" then
      return string.format("%s:%d", info.short_src, info.currentline or 0)
    end
  end
  return "?"
end

-- for modules that extend the API (tide.join)
tide._call_site = call_site

local function check_fn(v, n, fname, what)
  if type(v) ~= "function" then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname,
      what or "function", type(v)), 3)
  end
  return v
end

local function check_positive_int(v, n, fname)
  if math_type(v) ~= "integer" or v < 1 then
    error(string.format("bad argument #%d to '%s' (positive integer expected, got %s)",
      n, fname, tostring(v)), 3)
  end
  return v
end

local function field_getter(f, fname)
  local tf = type(f)
  if tf == "function" then return f end
  if tf == "string" or math_type(f) == "integer" then
    return function(v) return v[f] end
  end
  error(string.format("bad argument #1 to '%s' (field name, index or function expected, got %s)",
    fname, tf), 3)
end

--- Create an execution environment (Flink's StreamExecutionEnvironment).
-- @param cfg table, all optional:
--   parallelism (integer >= 1): default parallelism of operators; default
--     the CLI's --parallelism (1)
--   max_parallelism (integer): key groups; default the CLI's
--     --max-parallelism or Flink's rule (1.5 x parallelism, power of two,
--     128..32768)
--   runtime_mode ("streaming" | "batch"): as Flink's RuntimeExecutionMode;
--     in "batch", keyed reduce/sum/min/max emit only their final result per
--     key at the end of input (all sources must be bounded)
--   chaining (boolean, default true): false runs every operator as its
--     own task (Flink's disableOperatorChaining)
--   auto_watermark_interval (duration, default "200ms"): how often periodic
--     watermark generators emit (Flink's pipeline.auto-watermark-interval);
--     0 disables periodic emission
--   buffer_timeout (duration, default "100ms"): partly filled exchange
--     buffers are sent at least this often (Flink's setBufferTimeout; 0
--     sends after every batch, for the lowest latency); the command line's
--     --buffer-timeout wins
--   name (string): the default job name
--   metrics (boolean, default true): false switches the busy / idle /
--     backpressured time and the byte counts off, as `tide run
--     --no-metrics` (docs/METRICS.md)
--   state_backend ("heap" | "rocksdb", default "heap"): where keyed state
--     lives (Flink's HashMapStateBackend / EmbeddedRocksDBStateBackend);
--     the command line's --state-backend wins
--   state_dir (string, default $TMPDIR or /tmp): the base directory of the
--     RocksDB working directories (one per operator and subtask, removed
--     at exit); the command line's --state-dir wins
--   rocksdb (table): block_cache (size, default "256MB": one LRU cache for
--     the whole process), write_buffer (size of a memtable, default
--     "64MB"), max_write_buffers (memtables per state, default 2); sizes
--     in bytes or strings like "64MB"; incremental (boolean, default
--     true): checkpoints upload only the SST files no retained checkpoint
--     has (Flink's incremental checkpoints); false: every checkpoint is
--     full and self-contained, every key written in the canonical format
--     savepoints use (Flink's full snapshots of RocksDB), read at the
--     barrier, so the task's pause grows with the state; timer_service
--     ("rocksdb" | "heap", default "rocksdb": where the timers of keyed
--     operators live with this backend, Flink's
--     state.backend.rocksdb.timer-service.factory), timer_cache (timers
--     cached in memory per key group and time domain, default 128,
--     Flink's ...timer-service.cache-size)
-- @return Env
function tide.env(cfg)
  cfg = cfg or {}
  if type(cfg) ~= "table" then
    error("bad argument #1 to 'env' (table expected, got " .. type(cfg) .. ")", 2)
  end
  local d = core.defaults()
  local env = setmetatable({
    nodes = {},
    parallelism = d.parallelism,
    max_parallelism = d.max_parallelism,
    runtime_mode = "streaming",
    chaining = true,
    name = "job",
  }, Env)
  if cfg.parallelism ~= nil then env.parallelism = check_positive_int(cfg.parallelism, 1, "env") end
  if cfg.max_parallelism ~= nil then
    env.max_parallelism = check_positive_int(cfg.max_parallelism, 1, "env")
  end
  if cfg.runtime_mode ~= nil then
    if cfg.runtime_mode ~= "streaming" and cfg.runtime_mode ~= "batch" then
      error("bad runtime_mode '" .. tostring(cfg.runtime_mode) .. "' (expected 'streaming' or 'batch')", 2)
    end
    env.runtime_mode = cfg.runtime_mode
  end
  if cfg.chaining ~= nil then env.chaining = not not cfg.chaining end
  if cfg.metrics ~= nil then
    if type(cfg.metrics) ~= "boolean" then
      error("bad env option 'metrics': true or false expected, got " .. type(cfg.metrics), 2)
    end
    env.metrics = cfg.metrics
  end
  env.auto_watermark_interval = util.duration(cfg.auto_watermark_interval or 200, "auto_watermark_interval", 2)
  -- the command line's --buffer-timeout wins over the script's
  env.buffer_timeout = util.duration(d.buffer_timeout or cfg.buffer_timeout or 100, "buffer_timeout", 2)
  if cfg.name ~= nil then env.name = tostring(cfg.name) end
  env.state_backend = d.state_backend or cfg.state_backend or "heap"
  if env.state_backend ~= "heap" and env.state_backend ~= "rocksdb" then
    error("bad state_backend '" .. tostring(env.state_backend) .. "' (expected 'heap' or 'rocksdb')", 2)
  end
  env.state_dir = d.state_dir or cfg.state_dir or os.getenv("TMPDIR") or "/tmp"
  if type(env.state_dir) ~= "string" or env.state_dir == "" then
    error("bad state_dir: a directory path expected", 2)
  end
  local rcfg = cfg.rocksdb or {}
  if type(rcfg) ~= "table" then error("bad env option 'rocksdb': table expected, got " .. type(rcfg), 2) end
  env.rocksdb = {}
  for _, k in ipairs(util.sorted_keys(rcfg)) do
    if k ~= "block_cache" and k ~= "write_buffer" and k ~= "max_write_buffers" and k ~= "incremental"
      and k ~= "timer_service" and k ~= "timer_cache" then
      error("unknown rocksdb option '" .. tostring(k) .. "'", 2)
    end
    if k == "incremental" then
      if type(rcfg[k]) ~= "boolean" then error("bad rocksdb.incremental: true or false expected", 2) end
      env.rocksdb[k] = rcfg[k]
    elseif k == "timer_service" then
      if rcfg[k] ~= "rocksdb" and rcfg[k] ~= "heap" then
        error("bad rocksdb option timer_service '" .. tostring(rcfg[k]) .. "' (expected 'rocksdb' or 'heap')", 2)
      end
      env.rocksdb[k] = rcfg[k]
    elseif k == "max_write_buffers" or k == "timer_cache" then
      env.rocksdb[k] = check_positive_int(rcfg[k], 1, "env")
    else
      env.rocksdb[k] = util.bytes(rcfg[k], "rocksdb." .. k, 2)
    end
  end
  local ckpt = require "tide.checkpoint"
  local ok, c = pcall(ckpt.config, cfg.checkpoint,
    { dir = d.checkpoint_dir, interval = d.checkpoint_interval })
  if not ok then error(c, 2) end
  env.checkpoint = c
  local ok2, r = pcall(ckpt.restart_strategy, cfg.restart, c ~= nil)
  if not ok2 then error(r, 2) end
  env.restart_cfg = cfg.restart
  return env
end

-- Add a node; inputs are {stream, ...}. Returns the new DataStream.
local function add_node(env, kind, inputs, props, level)
  local id = #env.nodes + 1
  local node = props or {}
  node.id = id
  node.kind = kind
  node.site = call_site()
  node.inputs = {}
  for i, s in ipairs(inputs) do
    if s.env ~= env then error("cannot combine streams of different environments", level + 1) end
    node.inputs[i] = { node = s.id, partition = s.partition, key = s.key, key_field = s.key_field,
      key_site = s.key_site, tag = s.tag }
  end
  env.nodes[id] = node
  return setmetatable({ env = env, id = id }, DataStream)
end

--- Add an operator node to the graph (for modules that extend the API,
-- such as tide.window): kind names the runtime operator, inputs are
-- streams, props become the node's fields. Returns the new DataStream.
function Env:_add_node(kind, inputs, props)
  return add_node(self, kind, inputs, props, 2)
end

-- ---- sources ------------------------------------------------------------

-- rate_limit: nil or a positive number of records per second
local function check_rate(r, fname)
  if r ~= nil and (type(r) ~= "number" or r <= 0 or r ~= r) then
    error(string.format("%s: rate_limit must be a positive number of records per second, not %s",
      fname, tostring(r)), 3)
  end
  return r
end

local function check_readable(path, fname)
  if type(path) ~= "string" then
    error(string.format("bad argument #1 to '%s' (path expected, got %s)", fname, type(path)), 3)
  end
  local f, err = io.open(path, "rb")
  if not f then error(fname .. ": cannot open '" .. path .. "': " .. (err:match(": (.*)$") or err), 3) end
  local ok, rerr, code = f:read(0)
  f:close()
  if ok == nil and code then
    error(fname .. ": cannot read '" .. path .. "': " .. tostring(rerr):gsub("^.-: ", ""), 3)
  end
end

-- opts of a source that parses records (read_csv, read_json): the table
-- (or {}) and its on_error, "fail" (default) or "skip"
local function source_opts(opts, fname)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #2 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
  local on_error = opts.on_error or "fail"
  if on_error ~= "fail" and on_error ~= "skip" then
    error(fname .. ": on_error must be 'fail' or 'skip', not '" .. tostring(on_error) .. "'", 3)
  end
  return opts, on_error
end

--- A bounded source of the lines of a text file (Flink's FileSource with a
-- text line format). A ".gz" file is decompressed transparently. A plain
-- file is split into byte ranges read by the source's subtasks in
-- parallel; a gzip file is read by subtask 0.
--
-- With opts.monitor, path is a directory read continuously (Flink's
-- FileSource.monitorContinuously): every `monitor` (a duration, e.g.
-- "1s") the directory is listed and each new file is read once, in name
-- order, by subtask 0; names starting with "." or "_" are skipped (write a
-- file under such a name, then rename it in). The files done and the
-- current file's offset are in each checkpoint: a restore skips what was
-- read. The source never ends: `tide stop`, `tide cancel` or a signal
-- stops the job. opts.format = "json" decodes each line as read_json does
-- (opts.on_error "fail" | "skip" as there).
-- @param path string: a file, or with monitor a directory
-- @param opts table, optional: rate_limit (records/s for the whole
--   source), monitor (duration), format ("text" | "json"), on_error
-- @return DataStream of strings (lines without their line end), or of
--   decoded values with format = "json"
function Env:read_text(path, opts)
  opts = opts or {}
  if opts.monitor ~= nil then
    if type(path) ~= "string" or not core.list_dir(path) then
      error("read_text: monitor needs a readable directory, not '" .. tostring(path) .. "'", 2)
    end
    local format = opts.format or "text"
    if format ~= "text" and format ~= "json" then
      error("read_text: format must be 'text' or 'json', not '" .. tostring(format) .. "'", 2)
    end
    local on_error
    opts, on_error = source_opts(opts, "read_text")
    return add_node(self, "source", {}, { source = { type = "monitor", path = path, format = format,
      monitor = util.duration(opts.monitor, "monitor", 2), skip_errors = on_error == "skip",
      rate_limit = check_rate(opts.rate_limit, "read_text") }, name = "read_text" }, 2)
  end
  check_readable(path, "read_text")
  return add_node(self, "source", {}, { source = { type = "text", path = path,
    rate_limit = check_rate(opts.rate_limit, "read_text") }, name = "read_text" }, 2)
end

local CSV_TYPES = { string = true, int = true, integer = true, float = true, number = true,
  bool = true, boolean = true }

--- A bounded source of the rows of a CSV file (RFC 4180 quoting; ".gz"
-- decompressed transparently; read by subtask 0, since quoted fields may
-- span lines).
-- @param path string
-- @param opts table, optional:
--   header (boolean, default true): the first row names the columns
--   columns (array of strings): column names (required order when there is
--     no header; overrides the header's names otherwise)
--   types ({column = "string"|"int"|"float"|"number"|"bool"}): typed
--     columns; others are strings; an empty field of a typed column is nil
--   delimiter (one-character string, default ",")
--   on_error ("fail" | "skip", default "fail"): a row with the wrong number
--     of fields, a bad value or a quoting error fails the job naming the
--     file and the line the row starts on ("data.csv:17: ..."), or is
--     counted and skipped; a source that skipped rows prints one warning
--     line per subtask at the end of its input, with the count and the
--     first bad row's "file:line: reason" (the count is of the whole file,
--     once, across restores). A quoted field that runs to the end of the
--     file (an unterminated quote), or whose closing quote is followed by
--     anything but a delimiter or line end, makes its row bad and reading
--     resumes at the line after the one the quote opened on, so a stray
--     quote does not swallow the good rows after it
--   rate_limit (records/s for the whole source, optional)
-- @return DataStream of tables keyed by column name (arrays without names)
function Env:read_csv(path, opts)
  check_readable(path, "read_csv")
  local on_error
  opts, on_error = source_opts(opts, "read_csv")
  local types = opts.types or {}
  for _, col in ipairs(util.sorted_keys(types)) do -- the same first error on every VM
    local ty = types[col]
    if not CSV_TYPES[ty] then
      error(string.format("read_csv: column '%s' has unknown type '%s' (expected string, int, float, number or bool)",
        tostring(col), tostring(ty)), 2)
    end
  end
  local copts = {
    header = opts.header == nil and true or not not opts.header,
    columns = opts.columns, types = opts.types, delimiter = opts.delimiter,
    skip_errors = on_error == "skip",
  }
  return add_node(self, "source", {}, { source = { type = "csv", path = path, opts = copts,
    rate_limit = check_rate(opts.rate_limit, "read_csv") }, name = "read_csv" }, 2)
end

--- A bounded source of the values of a JSON lines file (one JSON value a
-- line, as Flink's JsonLinesInputFormat / the json format of its
-- FileSource), read by subtask 0; ".gz" decompressed transparently; blank
-- lines are skipped. Objects become tables keyed by name, arrays tables
-- 1..n, null nil; integers are Lua integers (on LuaJIT, beyond 2^53 their
-- digits as a string: docs/LUAJIT.md); a top-level null is a bad line.
-- @param path string
-- @param opts table, optional:
--   on_error ("fail" | "skip", default "fail"): a bad line fails the job
--     naming "file:line: reason", or is counted and skipped (one warning
--     at the end of the input: the count and the first bad line)
--   rate_limit (records/s, optional)
-- @return DataStream of Lua values (tables for objects)
function Env:read_json(path, opts)
  check_readable(path, "read_json")
  local on_error
  opts, on_error = source_opts(opts, "read_json")
  return add_node(self, "source", {}, { source = { type = "json", path = path, skip_errors = on_error == "skip",
    rate_limit = check_rate(opts.rate_limit, "read_json") }, name = "read_json" }, 2)
end

-- host (a non-empty string) and port (an integer 1..65535) of a socket
-- connector, or an error at the script's line
local function check_address(host, port, fname)
  if type(host) ~= "string" or host == "" then
    error("bad argument #1 to '" .. fname .. "' (host expected, got " .. type(host) .. ")", 3)
  end
  if math_type(port) ~= "integer" or port < 1 or port > 65535 then
    error(fname .. ": port must be an integer 1..65535, not " .. tostring(port), 3)
  end
end

--- An unbounded source of the text a TCP server sends, split at a
-- delimiter (Flink's socketTextStream): the source (parallelism 1)
-- connects to host:port and ends when the server closes the connection.
-- Not replayable: a restore from a checkpoint reconnects and reads on from
-- what the server sends then, so records received between the checkpoint
-- and the failure are lost: at most once across a restore.
-- @param host string: a name or address
-- @param port integer 1..65535
-- @param opts table, optional: delimiter (string, default "\n"), format
--   ("text" | "json": each piece decoded as read_json's lines, errors
--   named host:port:n), on_error (with json), rate_limit
-- @return DataStream of strings (or decoded values with format = "json")
function Env:socket_text_stream(host, port, opts)
  check_address(host, port, "socket_text_stream")
  local on_error
  opts, on_error = source_opts(opts, "socket_text_stream")
  local delim = opts.delimiter or "\n"
  if type(delim) ~= "string" or delim == "" then
    error("socket_text_stream: delimiter must be a non-empty string", 2)
  end
  local format = opts.format or "text"
  if format ~= "text" and format ~= "json" then
    error("socket_text_stream: format must be 'text' or 'json', not '" .. tostring(format) .. "'", 2)
  end
  return add_node(self, "source", {}, { source = { type = "socket", host = host, port = port,
    delimiter = delim, format = format, skip_errors = on_error == "skip",
    rate_limit = check_rate(opts.rate_limit, "socket_text_stream") }, name = "socket_text_stream",
    parallelism = 1 }, 2)
end

--- A bounded source of the values of a Lua array, in order (Flink's
-- fromCollection: not parallel, its parallelism is 1).
-- @param t array of records (no nil holes)
-- @param opts table, optional: rate_limit (records/s)
-- @return DataStream
function Env:from_list(t, opts)
  if type(t) ~= "table" then
    error("bad argument #1 to 'from_list' (table expected, got " .. type(t) .. ")", 2)
  end
  opts = opts or {}
  local s = add_node(self, "source", {}, { source = { type = "list", list = t,
    rate_limit = check_rate(opts.rate_limit, "from_list") }, name = "from_list", parallelism = 1,
    non_parallel = true }, 2)
  return s
end

--- A source of generated records (Flink's DataGeneratorSource): fn(i) is
-- called for i = 1 .. count and its result emitted. Subtask k (0-based) of
-- p takes i = k + 1, k + 1 + p, k + 1 + 2p, ... (so event times derived
-- from i advance together on every subtask).
-- @param fn function(i) -> record (non-nil)
-- @param count integer >= 0, or nil for an unbounded source
-- @param opts table, optional: parallelism (integer), rate_limit
--   (records/s for the whole source, shared by its subtasks)
-- @return DataStream
function Env:generate(fn, count, opts)
  check_fn(fn, 1, "generate")
  if count ~= nil and (math_type(count) ~= "integer" or count < 0) then
    error("bad argument #2 to 'generate' (non-negative integer or nil expected, got " .. tostring(count) .. ")", 2)
  end
  opts = opts or {}
  local s = add_node(self, "source", {}, { source = { type = "generate", fn = fn, count = count,
    rate_limit = check_rate(opts.rate_limit, "generate") }, name = "generate" }, 2)
  if opts.parallelism then s:set_parallelism(opts.parallelism) end
  return s
end

--- A C module source (tide.load_module; docs/MODULES.md), Flink's
-- addSource: op is m.<source>, config plain Lua data handed to the module
-- encoded (MessagePack); config.rate_limit (records/s for the whole
-- source) is honoured as the other sources' rate_limit.
-- @return DataStream
function Env:add_source(op, config)
  return require("tide.modules").add_source(self, op, config, 2)
end

-- ---- Kafka (lua/tide/kafka.lua; docs/CONNECTORS.md) -----------------------

-- the options read_kafka and write_kafka share; errors at the caller's
-- caller (level 3)
local function kafka_common(opts, fname)
  if type(opts) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table of options expected, got %s)", fname, type(opts)), 3)
  end
  if type(opts.bootstrap_servers) ~= "string" or opts.bootstrap_servers == "" then
    error(fname .. ": bootstrap_servers must be a string 'host:port[,host:port...]'", 3)
  end
  if opts.properties ~= nil then
    if type(opts.properties) ~= "table" then error(fname .. ": properties must be a table of librdkafka properties", 3) end
    for k, v in pairs(opts.properties) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean") then
        error(string.format("%s: properties: '%s' must be a string name with a string, number or boolean value",
          fname, tostring(k)), 3)
      end
    end
  end
  local timeout = util.duration(opts.timeout or "10s", fname .. " timeout", 3)
  if timeout <= 0 or timeout > 3600000 then error(fname .. ": timeout must be between 1 ms and 1 h", 3) end
  return { bootstrap_servers = opts.bootstrap_servers, properties = opts.properties, timeout = timeout }
end

local function check_topic(t, fname, what)
  if type(t) ~= "string" or t == "" or not t:find("^[%w%._%-]+$") then
    error(string.format("%s: %s must be a topic name (letters, digits, '.', '_', '-'), got %s", fname, what,
      type(t) == "string" and "'" .. t .. "'" or tostring(t)), 3)
  end
  return t
end

--- A source of the records of Kafka topics (Flink's KafkaSource): topic
-- partitions are its splits, assigned to subtasks deterministically; the
-- offsets are its position in checkpoints (restored exactly, also at
-- another parallelism); offsets are committed to group_id when a
-- checkpoint completes (for monitoring). See docs/CONNECTORS.md.
-- @param opts table:
--   bootstrap_servers (string, required): "host:port,..."
--   topics (array of topic names) or topic_pattern (a Lua pattern matched
--     against whole topic names at the first start)
--   group_id (string, optional): the consumer group offsets are committed
--     to (needed by starting_offsets = "committed")
--   starting_offsets: "earliest" (default) | "latest" | "committed" (the
--     group's, else earliest) | {timestamp = ms} (the first record at or
--     after ms, else the end)
--   stopping_offsets: nil (unbounded) | "latest" (the end offsets at the
--     first start: the source is bounded, Flink's setBounded)
--   format: "text" (default: each record's value as a string) | "raw"
--     (a table {topic, partition, offset, timestamp, key, value})
--   watermarks: a strategy from tide.watermarks: records carry their
--     Kafka timestamp as event time and watermarks are generated per
--     partition (the min over partitions that are neither idle nor ended)
--   properties (table): librdkafka consumer properties
--   timeout (duration, default "10s"): for metadata and offset requests
--   rate_limit (records/s for the whole source)
-- @return DataStream
function Env:read_kafka(opts)
  local cfg = kafka_common(opts, "read_kafka")
  cfg.type = "kafka"
  if (opts.topics == nil) == (opts.topic_pattern == nil) then
    error("read_kafka: give either topics = {...} or topic_pattern = '...'", 2)
  end
  if opts.topics ~= nil then
    if type(opts.topics) ~= "table" or #opts.topics == 0 then
      error("read_kafka: topics must be a non-empty array of topic names", 2)
    end
    cfg.topics = {}
    for i, t in ipairs(opts.topics) do cfg.topics[i] = check_topic(t, "read_kafka", "topics[" .. i .. "]") end
    table.sort(cfg.topics)
  else
    if type(opts.topic_pattern) ~= "string" or not pcall(string.find, "", opts.topic_pattern) then
      error("read_kafka: topic_pattern must be a valid Lua pattern", 2)
    end
    cfg.topic_pattern = opts.topic_pattern
  end
  if opts.group_id ~= nil and (type(opts.group_id) ~= "string" or opts.group_id == "") then
    error("read_kafka: group_id must be a non-empty string", 2)
  end
  cfg.group_id = opts.group_id
  local so = opts.starting_offsets or "earliest"
  if so == "committed" and not cfg.group_id then
    error("read_kafka: starting_offsets = 'committed' needs group_id", 2)
  end
  if type(so) == "table" then
    if math_type(so.timestamp) ~= "integer" or so.timestamp < 0 then
      error("read_kafka: starting_offsets = {timestamp = ms} needs an integer timestamp >= 0", 2)
    end
    so = { timestamp = so.timestamp }
  elseif so ~= "earliest" and so ~= "latest" and so ~= "committed" then
    error("read_kafka: starting_offsets must be 'earliest', 'latest', 'committed' or {timestamp = ms}, not " ..
      tostring(so), 2)
  end
  cfg.starting_offsets = so
  if opts.stopping_offsets ~= nil and opts.stopping_offsets ~= "latest" then
    error("read_kafka: stopping_offsets must be 'latest' or nil (unbounded), not " .. tostring(opts.stopping_offsets), 2)
  end
  cfg.stopping_offsets = opts.stopping_offsets
  cfg.format = opts.format or "text"
  if cfg.format ~= "text" and cfg.format ~= "raw" then
    error("read_kafka: format must be 'text' or 'raw', not " .. tostring(cfg.format), 2)
  end
  if opts.watermarks ~= nil then
    if getmetatable(opts.watermarks) ~= Strategy then
      error("read_kafka: watermarks must be a strategy from tide.watermarks", 2)
    end
    cfg.watermarks = { bound = opts.watermarks.bound, idleness = opts.watermarks.idleness }
  end
  cfg.rate_limit = check_rate(opts.rate_limit, "read_kafka")
  return add_node(self, "source", {}, { source = cfg, name = "read_kafka" }, 2)
end

-- ---- transformations ----------------------------------------------------

--- Apply fn to every record (Flink's map). fn(value) -> new value (non-nil).
function DataStream:map(fn)
  check_fn(fn, 1, "map")
  return add_node(self.env, "map", { self }, { fn = fn, name = "map" }, 2)
end

--- Keep the records for which fn(value) is true (Flink's filter).
function DataStream:filter(fn)
  check_fn(fn, 1, "filter")
  return add_node(self.env, "filter", { self }, { fn = fn, name = "filter" }, 2)
end

--- fn(value, out) emits zero or more records with out:collect(v) (Flink's
-- flatMap with a Collector).
function DataStream:flat_map(fn)
  check_fn(fn, 1, "flat_map")
  return add_node(self.env, "flat_map", { self }, { fn = fn, name = "flat_map" }, 2)
end

--- A stateful process function (Flink's ProcessFunction; on a keyed stream,
-- KeyedProcessFunction).
-- @param spec table: on_record = function(value, ctx, out) (required);
--   open = function(ctx) and close = function(ctx) (optional, called once
--   per subtask before the first and after the last record);
--   on_timer = function(ts, ctx, out) (keyed streams: a timer fired).
--   ctx.timers (keyed streams): register_event_time(ts),
--   register_processing_time(ts), delete_event_time(ts),
--   delete_processing_time(ts), current_watermark(),
--   current_processing_time(); ctx.timestamp, ctx.time_domain (in
--   on_timer: "event" or "processing"); ctx:output(tag, v) sends v to the
--   side output tag (see side_output).
--   ctx has: key (keyed streams), state (keyed state: ctx.state:value(name),
--   :list(name), :map(name), :reducing(name, fn), :aggregating(name, agg)),
--   subtask (0-based), parallelism. out:collect(v) emits.
function DataStream:process(spec)
  if type(spec) == "function" then spec = { on_record = spec } end
  if type(spec) ~= "table" then
    error("bad argument #1 to 'process' (table expected, got " .. type(spec) .. ")", 2)
  end
  check_fn(spec.on_record, 1, "process", "on_record function")
  for _, hook in ipairs { "open", "close", "on_timer" } do
    if spec[hook] ~= nil then check_fn(spec[hook], 1, "process", hook .. " function") end
  end
  return add_node(self.env, "process", { self }, { spec = spec, name = "process", keyed = self.key ~= nil }, 2)
end

-- ---- two inputs (Flink's ConnectedStreams) ---------------------------------

local ConnectedStreams = {}
ConnectedStreams.__index = ConnectedStreams
-- a BroadcastStream only connects (Flink's BroadcastStream has no other
-- operation): any other method raises, naming what to do
local BroadcastStream = {}
BroadcastStream.__index = function(_, k)
  return function()
    error("'" .. tostring(k) .. "' on a broadcast stream with state descriptors: such a stream can only be " ..
      "connected (stream:connect(b) or keyed:connect(b), then process{on_record =, on_broadcast =})", 2)
  end
end
local BroadcastConnectedStream = {}
BroadcastConnectedStream.__index = BroadcastConnectedStream

local function is_stream(s)
  local mt = getmetatable(s)
  return mt == DataStream or mt == KeyedStream
end

--- Connect this stream with another (Flink's DataStream.connect): the two
-- keep their types; a two-input operator (process, map, flat_map) sees
-- which input each record came over. With a BroadcastStream
-- (stream:broadcast(desc)), a broadcast-connected stream instead.
-- @param other DataStream, KeyedStream or BroadcastStream
-- @return ConnectedStreams (or BroadcastConnectedStream)
function DataStream:connect(other)
  if getmetatable(other) == BroadcastStream then
    if other.env ~= self.env then error("cannot combine streams of different environments", 2) end
    return setmetatable({ env = self.env, first = self, second = other, site = call_site() },
      BroadcastConnectedStream)
  end
  if not is_stream(other) then
    error("bad argument #1 to 'connect' (stream expected, got " .. type(other) .. ")", 2)
  end
  return setmetatable({ env = self.env, first = self, second = other, site = call_site() }, ConnectedStreams)
end

--- Key both inputs (Flink's ConnectedStreams.keyBy(key1, key2)): records
-- of input 1 by key1, of input 2 by key2 (field names, indexes or
-- functions, as key_by's). Equal keys of either input meet in one subtask.
function ConnectedStreams:key_by(key1, key2)
  if key2 == nil then error("bad argument #2 to 'key_by' (a key for the second input expected)", 2) end
  local a, b = self.first:key_by(key1), self.second:key_by(key2)
  return setmetatable({ env = self.env, first = a, second = b, site = self.site }, ConnectedStreams)
end

-- "keyed" when both inputs are keyed, "mixed" when only one is
local function connected_keying(self)
  local k1, k2 = self.first.key ~= nil, self.second.key ~= nil
  if k1 and k2 then return true, nil end
  if k1 or k2 then
    return false, string.format("connect at %s joins a keyed and a non-keyed stream (key both inputs, " ..
      "or neither)", self.site)
  end
  return false, nil
end

-- the two-input process node of connected streams, for the caller's caller
local function co_node(self, spec, name)
  local keyed, mixed = connected_keying(self)
  return add_node(self.env, "co_process", { self.first, self.second }, { spec = spec, name = name,
    keyed = keyed, mixed_keying = mixed, two_input = true, connect_site = self.site }, 3)
end

-- spec's hooks: the required ones functions, the optional ones functions
-- or nil; errors name the line that called the caller (process)
local function check_hooks(spec, fname, required, optional)
  local function bad(hook)
    error(string.format("bad argument #1 to '%s' (%s function expected, got %s)", fname, hook,
      type(spec[hook])), 4)
  end
  for _, hook in ipairs(required) do
    if type(spec[hook]) ~= "function" then bad(hook) end
  end
  for _, hook in ipairs(optional) do
    if spec[hook] ~= nil and type(spec[hook]) ~= "function" then bad(hook) end
  end
end

--- A two-input process function (Flink's CoProcessFunction; with both
-- inputs keyed, KeyedCoProcessFunction).
-- @param spec table: on_record1 = function(value, ctx, out) and
--   on_record2 = function(value, ctx, out) (required): a record of input 1
--   or 2; open(ctx), close(ctx), on_timer(ts, ctx, out) as process's. The
--   ctx is process's: on keyed inputs ctx.key, keyed state (ctx.state)
--   and timers (ctx.timers) shared by both inputs, the key being the one
--   of the record's own input's key function; ctx.timestamp, ctx:output
--   (tag, v), ctx.operator_state. The input watermark is the minimum of
--   both inputs' (Flink's processWatermark1/2). Keyed state or timers on a
--   connect of a keyed and a non-keyed stream raise, naming the connect.
-- @return DataStream
function ConnectedStreams:process(spec)
  if type(spec) ~= "table" then
    error("bad argument #1 to 'process' (table expected, got " .. type(spec) .. ")", 2)
  end
  check_hooks(spec, "process", { "on_record1", "on_record2" }, { "open", "close", "on_timer" })
  return co_node(self, spec, "co_process")
end

--- Map each input with its own function (Flink's CoMapFunction): fn1(v)
-- for records of input 1, fn2(v) for input 2; each returns the new value.
function ConnectedStreams:map(fn1, fn2)
  check_fn(fn1, 1, "map")
  check_fn(fn2, 2, "map")
  local function wrap(f)
    return function(v, _, out) out:collect(f(v)) end
  end
  return co_node(self, { on_record1 = wrap(fn1), on_record2 = wrap(fn2) }, "co_map")
end

--- flat_map each input with its own function (Flink's CoFlatMapFunction):
-- fn1(v, out) and fn2(v, out) emit with out:collect(v).
function ConnectedStreams:flat_map(fn1, fn2)
  check_fn(fn1, 1, "flat_map")
  check_fn(fn2, 2, "flat_map")
  return co_node(self, { on_record1 = function(v, _, out) fn1(v, out) end,
    on_record2 = function(v, _, out) fn2(v, out) end }, "co_flat_map")
end

--- A broadcast process function over a (keyed) stream connected with a
-- BroadcastStream (Flink's KeyedBroadcastProcessFunction, or on a
-- non-keyed stream BroadcastProcessFunction).
-- @param spec table: on_record = function(value, ctx, out) (required): a
--   record of the (keyed) stream, ctx:broadcast_state(name) read-only
--   (get(k), contains(k), entries() in key order; writing raises);
--   on_broadcast = function(value, ctx, out) (required): a record of the
--   broadcast stream, every subtask sees each one, ctx:broadcast_state(name)
--   read-write (put(k, v), remove(k), clear() too; keys are strings,
--   numbers or booleans), and on a keyed stream
--   ctx:apply_to_keyed_state(state_name, fn(key, state)) runs fn for every
--   key that has state_name in this subtask, with ctx.state on that key;
--   open, close, on_timer (keyed) as process's. The names are those of the
--   descriptors given to broadcast(). Broadcast state is the operator
--   state's broadcast state of that name (ctx.operator_state
--   :get_broadcast_state(name) is the same map): snapshotted with every
--   checkpoint, and restored at another parallelism new subtask i takes old
--   subtask (i mod old parallelism)'s copy, as Flink redistributes
--   broadcast state.
-- @return DataStream
function BroadcastConnectedStream:process(spec)
  if type(spec) ~= "table" then
    error("bad argument #1 to 'process' (table expected, got " .. type(spec) .. ")", 2)
  end
  check_hooks(spec, "process", { "on_record", "on_broadcast" }, { "open", "close", "on_timer" })
  local first, b = self.first, self.second
  local bcast = { env = b.env, id = b.id, partition = "broadcast" }
  return add_node(self.env, "co_process", { first, bcast }, { spec = spec, name = "broadcast_process",
    keyed = first.key ~= nil, two_input = true, broadcast = b.descriptors, connect_site = self.site }, 2)
end

--- A descriptor of a map-shaped broadcast state (Flink's
-- MapStateDescriptor), for stream:broadcast(desc).
-- @param name string, non-empty
function tide.map_state_descriptor(name)
  if type(name) ~= "string" or name == "" then
    error("bad argument #1 to 'map_state_descriptor' (non-empty string expected)", 2)
  end
  return { state_descriptor = "map", name = name }
end

--- Apply a C module operator (Flink's transform): op is m.<map>,
-- m.<flat_map>, m.<filter>, or m.<process> (a keyed process: on a
-- KeyedStream only); config plain Lua data handed to the module encoded
-- (MessagePack). A keyed process keyed by a field name or index takes its
-- keys in C; by a key function, through Lua.
-- @return DataStream
function DataStream:transform(op, config)
  return require("tide.modules").transform(self, op, config, 2)
end

--- Partition by key (Flink's keyBy): records with equal keys go to the same
-- subtask, through key groups. key: a field name or index of the records,
-- or function(value) -> key. Keys are strings, numbers, booleans or tables
-- (compared by value); nil is an error.
-- @return KeyedStream
function DataStream:key_by(key)
  local f = field_getter(key, "key_by")
  local key_field = (type(key) == "string" or math_type(key) == "integer") and key or nil
  return setmetatable({ env = self.env, id = self.id, partition = "hash", key = f, key_field = key_field,
    key_site = call_site(), key_desc = type(key) == "function" and "key function" or ("field " .. tostring(key)) },
    KeyedStream)
end

--- Merge this stream with others of the same type (Flink's union).
function DataStream:union(...)
  local inputs = { self, ... }
  if #inputs < 2 then error("bad argument #1 to 'union' (stream expected)", 2) end
  for i = 2, #inputs do
    if getmetatable(inputs[i]) ~= DataStream and getmetatable(inputs[i]) ~= KeyedStream then
      error("bad argument #" .. (i - 1) .. " to 'union' (stream expected)", 2)
    end
  end
  local plain = {}
  for i, s in ipairs(inputs) do plain[i] = { env = s.env, id = s.id, partition = s.partition } end
  return add_node(self.env, "union", plain, { name = "union" }, 2)
end

local function repartition(self, how)
  return setmetatable({ env = self.env, id = self.id, partition = how }, DataStream)
end

--- Distribute records round-robin over the next operator's subtasks.
function DataStream:rebalance() return repartition(self, "rebalance") end

--- Send every record to every subtask of the next operator. With state
-- descriptors (tide.map_state_descriptor), a BroadcastStream for
-- keyed:connect(b) / stream:connect(b) with broadcast state (Flink's
-- broadcast(MapStateDescriptor...)).
function DataStream:broadcast(...)
  local descs = { ... }
  if #descs == 0 then return repartition(self, "broadcast") end
  local names = {}
  for i, d in ipairs(descs) do
    if type(d) ~= "table" or d.state_descriptor ~= "map" then
      error("bad argument #" .. i .. " to 'broadcast' (state descriptor from tide.map_state_descriptor expected)", 2)
    end
    names[i] = d.name
  end
  return setmetatable({ env = self.env, id = self.id, descriptors = names }, BroadcastStream)
end

--- Set the parallelism of the operator that produced this stream.
function DataStream:set_parallelism(n)
  check_positive_int(n, 1, "set_parallelism")
  local node = self.env.nodes[self.id]
  if node.non_parallel and n > 1 then
    error(string.format("%s is not a parallel operator: its parallelism must be 1", node.name), 2)
  end
  node.parallelism = n
  return self
end

--- Set the operator's stable unique id (used for its state).
function DataStream:uid(s)
  if type(s) ~= "string" or s == "" then error("bad argument #1 to 'uid' (non-empty string expected)", 2) end
  for _, n in ipairs(self.env.nodes) do
    if n.uid == s and n.id ~= self.id then error("uid '" .. s .. "' is used twice", 2) end
  end
  self.env.nodes[self.id].uid = s
  return self
end

--- Set the operator's display name (used in messages).
function DataStream:name(s)
  if type(s) ~= "string" then error("bad argument #1 to 'name' (string expected)", 2) end
  self.env.nodes[self.id].name = s
  return self
end

-- ---- event time -----------------------------------------------------------

Strategy = {}
Strategy.__index = Strategy

--- Mark the stream idle after d of processing time without records, so
-- downstream watermarks do not wait for it (Flink's withIdleness).
function Strategy:with_idleness(d)
  local c = setmetatable({}, Strategy)
  for k, v in pairs(self) do c[k] = v end
  c.idleness = util.duration(d, "idleness", 2)
  if c.idleness <= 0 then error("bad argument #1 to 'with_idleness' (positive duration expected)", 2) end
  return c
end

tide.watermarks = {}

--- Watermarks for records out of order by at most max_out_of_orderness
-- (Flink's forBoundedOutOfOrderness): watermark = max timestamp seen -
-- bound - 1. opts.per_record: emit after every record that advances it (the
-- record first), instead of every auto_watermark_interval.
function tide.watermarks.bounded(max_out_of_orderness, opts)
  local bound = util.duration(max_out_of_orderness, "max_out_of_orderness", 2)
  opts = opts or {}
  return setmetatable({ bound = bound, per_record = not not opts.per_record }, Strategy)
end

--- Watermarks for ascending timestamps (Flink's forMonotonousTimestamps):
-- watermark = max timestamp seen - 1.
function tide.watermarks.monotonous(opts)
  opts = opts or {}
  return setmetatable({ bound = 0, per_record = not not opts.per_record }, Strategy)
end

--- Give records event timestamps and generate watermarks (Flink's
-- assignTimestampsAndWatermarks).
-- @param fn function(value, previous_ts) -> timestamp (integer ms)
-- @param strategy from tide.watermarks
function DataStream:assign_timestamps(fn, strategy)
  check_fn(fn, 1, "assign_timestamps")
  if getmetatable(strategy) ~= Strategy then
    error("bad argument #2 to 'assign_timestamps' (watermark strategy from tide.watermarks expected)", 2)
  end
  return add_node(self.env, "assign_timestamps", { self }, { fn = fn, strategy = strategy,
    interval = not strategy.per_record and self.env.auto_watermark_interval or nil,
    name = "assign_timestamps" }, 2)
end

--- The side output `tag` (a string) of the operator that produced this
-- stream: what its process function sent with ctx:output(tag, v), or what
-- a window operator sent to side_output_late(tag) (Flink's getSideOutput).
function DataStream:side_output(tag)
  if type(tag) ~= "string" or tag == "" then
    error("bad argument #1 to 'side_output' (non-empty string tag expected)", 2)
  end
  local src = { env = self.env, id = self.id, tag = tag }
  return add_node(self.env, "side_output", { src }, { name = "side_output:" .. tag, tag = tag }, 2)
end

-- ---- keyed aggregations -------------------------------------------------

local function keyed_node(self, kind, props)
  props.keyed = true
  return add_node(self.env, kind, { self }, props, 3)
end

--- Rolling reduce per key (Flink's KeyedStream.reduce): fn(acc, value) ->
-- new acc; the first record of a key is its initial acc. Emits the new acc
-- for every record (streaming) or the final acc per key (batch mode).
function KeyedStream:reduce(fn)
  check_fn(fn, 1, "reduce")
  return keyed_node(self, "reduce", { fn = fn, name = "reduce" })
end

local function aggregation(self, agg, field)
  if field ~= nil and type(field) ~= "string" and math_type(field) ~= "integer" then
    error(string.format("bad argument #1 to '%s' (field name or index expected, got %s)", agg, type(field)), 3)
  end
  return keyed_node(self, "aggregate", { agg = agg, field = field, name = agg })
end

--- Rolling sum of a numeric field per key (Flink's sum(field)): emits the
-- key's first record with the field replaced by the running sum. With no
-- field, records are numbers and the sum itself is emitted.
function KeyedStream:sum(field) return aggregation(self, "sum", field) end

--- Rolling minimum of a field per key (Flink's min: the other fields come
-- from the key's first record).
function KeyedStream:min(field) return aggregation(self, "min", field) end

--- Rolling maximum of a field per key (Flink's max).
function KeyedStream:max(field) return aggregation(self, "max", field) end

--- Rolling count of records per key: emits {key = k, count = n} (n an
-- integer) for every record, or once per key at the end in batch mode.
-- Not in Flink's KeyedStream (whose users map to (key, 1) and sum); it
-- saves building a table per record, the main cost of a Lua word count.
function KeyedStream:count()
  return keyed_node(self, "aggregate", { agg = "count", name = "count" })
end

-- ---- joins (lua/tide/join.lua) -------------------------------------------

--- Join this keyed stream with another keyed stream by time intervals
-- (Flink's KeyedStream.intervalJoin): :between(lower, upper), optionally
-- :lower_bound_exclusive(), :upper_bound_exclusive(),
-- :side_output_left_late_data(tag), :side_output_right_late_data(tag),
-- then :process(fn(left, right, ctx, out)). See lua/tide/join.lua.
function DataStream:interval_join(other)
  return require("tide.join").interval_join(self, other, 2)
end

--- Window join (Flink's DataStream.join): a:join(b):where(key1)
-- :equal_to(key2):window(assigner):apply(fn(left, right [, out]) -> v).
function DataStream:join(other)
  return require("tide.join").joined(self, other, true, 2)
end

--- Window co-group (Flink's DataStream.coGroup): a:co_group(b)
-- :where(key1):equal_to(key2):window(assigner):apply(fn(lefts, rights, out)).
function DataStream:co_group(other)
  return require("tide.join").joined(self, other, false, 2)
end

-- ---- windows (lua/tide/window.lua) -------------------------------------

--- Window a keyed stream (Flink's KeyedStream.window).
-- @param assigner from tide.windows (tumbling, sliding, session, global)
-- @return WindowedStream
function KeyedStream:window(assigner)
  return require("tide.window").windowed(self, assigner, { keyed = true })
end

--- Count windows of n records per key, sliding by slide records if given
-- (Flink's countWindow: a global window with a count trigger, and a count
-- evictor when sliding).
function KeyedStream:count_window(n, slide)
  return require("tide.window").count_windowed(self, n, slide)
end

--- Window a non-keyed stream (Flink's windowAll): one window operator with
-- parallelism 1 sees every record.
function DataStream:window_all(assigner)
  return require("tide.window").windowed(self, assigner, { keyed = false })
end

-- ---- sinks --------------------------------------------------------------

local function sink(self, props)
  add_node(self.env, "sink", { self }, props, 3)
  return setmetatable({ env = self.env, id = #self.env.nodes }, DataStream)
end

--- Print every record to stdout, one per line (Flink's print(): with
-- parallelism > 1 each line starts with "<subtask+1>> ").
function DataStream:print()
  return sink(self, { sink = { type = "print" }, name = "print" })
end

--- Send records to a C module sink (Flink's addSink): op is m.<sink>,
-- config plain Lua data handed to the module encoded. The sink pre-commits
-- at each checkpoint's barrier and commits when it completes (two-phase
-- commit), so a module sink can be exactly once.
function DataStream:add_sink(op, config)
  return require("tide.modules").add_sink(self, op, config, 2)
end

--- Drop every record (Flink's DiscardingSink).
function DataStream:discard()
  return sink(self, { sink = { type = "discard" }, name = "discard" })
end

local function check_dir(dir, fname)
  if type(dir) ~= "string" or dir == "" then
    error(string.format("bad argument #1 to '%s' (directory expected, got %s)", fname, type(dir)), 3)
  end
  local ok, err = core.mkdir_p(dir)
  if not ok then error(fname .. ": " .. err, 3) end
end

--- Write records as text lines into part files in dir (Flink's FileSink
-- with a row format), exactly once: each subtask writes
-- ".part-<job>-<subtask>-<n>.inprogress" files; at a checkpoint's barrier
-- the file is closed and pending; it is committed as
-- "part-<job>-<subtask>-<n>" when that checkpoint completes, and at the end
-- of a bounded job once every subtask finished. Files starting with "." or
-- "_" are not committed output. A failed or killed run commits nothing
-- after its last completed checkpoint; recovery cleans up after it.
-- @param dir string: created if missing
-- @param opts table, optional: rolling policy (Flink's
--   DefaultRollingPolicy): rolling_size (bytes, default 128 MiB),
--   rollover_interval (duration: roll a file this old), inactivity_interval
--   (duration: roll a file not written to for this long)
function DataStream:write_text(dir, opts)
  check_dir(dir, "write_text")
  opts = opts or {}
  return sink(self, { sink = { type = "text", dir = dir, rolling_size = opts.rolling_size,
    rollover_interval = opts.rollover_interval and util.duration(opts.rollover_interval, "rollover_interval", 2),
    inactivity_interval = opts.inactivity_interval and util.duration(opts.inactivity_interval, "inactivity_interval", 2) },
    name = "write_text" })
end

--- Write records as CSV rows (RFC 4180 quoting) into part files in dir,
-- committed as write_text's are.
-- @param dir string
-- @param opts table, optional: columns (array of field names: the column
--   order for table records; default: array records in order, map records
--   by sorted field names), header (boolean, default false: write the
--   column names first in each part file), delimiter (default ","),
--   rolling_size, rollover_interval, inactivity_interval (as write_text)
function DataStream:write_csv(dir, opts)
  opts = opts or {}
  if opts.header and not opts.columns then
    error("write_csv: header = true needs columns", 2)
  end
  check_dir(dir, "write_csv")
  return sink(self, { sink = { type = "csv", dir = dir, columns = opts.columns, header = opts.header,
    delimiter = opts.delimiter or ",", rolling_size = opts.rolling_size,
    rollover_interval = opts.rollover_interval and util.duration(opts.rollover_interval, "rollover_interval", 2),
    inactivity_interval = opts.inactivity_interval and util.duration(opts.inactivity_interval, "inactivity_interval", 2) },
    name = "write_csv" })
end

local GUARANTEES = { none = true, at_least_once = true, exactly_once = true }

--- Write records to a Kafka topic (Flink's KafkaSink). Each record's value
-- is the record itself when a string, else tide.format(record).
-- @param opts table:
--   bootstrap_servers (string, required), topic (string, required)
--   key: a function(record) -> key, or a field name; nil: no key (the key
--     picks the partition, librdkafka's default partitioner)
--   delivery_guarantee: "at_least_once" (default: the idempotent
--     producer, flushed at every checkpoint barrier) | "exactly_once"
--     (a Kafka transaction per checkpoint per subtask, written and
--     committed when the checkpoint completes; needs
--     transactional_id_prefix) | "none"
--   transactional_id_prefix (string): transactional ids are
--     "<prefix>-<subtask>"; unique per job writing to the cluster
--   properties (table): librdkafka producer properties
--   timeout (duration, default "10s"): flush and transaction requests
function DataStream:write_kafka(opts)
  local cfg = kafka_common(opts, "write_kafka")
  cfg.type = "kafka"
  cfg.topic = check_topic(opts.topic, "write_kafka", "topic")
  if opts.key ~= nil and type(opts.key) ~= "function" and type(opts.key) ~= "string" and math_type(opts.key) ~= "integer" then
    error("write_kafka: key must be a function(record) or a field name", 2)
  end
  cfg.key = opts.key
  cfg.delivery_guarantee = opts.delivery_guarantee or "at_least_once"
  if not GUARANTEES[cfg.delivery_guarantee] then
    error("write_kafka: delivery_guarantee must be 'at_least_once', 'exactly_once' or 'none', not " ..
      tostring(cfg.delivery_guarantee), 2)
  end
  if cfg.delivery_guarantee == "exactly_once" then
    local p = opts.transactional_id_prefix
    if type(p) ~= "string" or p == "" then
      error("write_kafka: delivery_guarantee = 'exactly_once' needs transactional_id_prefix (a string)", 2)
    end
    cfg.transactional_id_prefix = p
  end
  return sink(self, { sink = cfg, name = "write_kafka" })
end

--- Write records as rows of a PostgreSQL table through libpq (Flink's
-- JdbcSink; exactly once as its JdbcXaSinkFunction). See
-- docs/CONNECTORS.md ("PostgreSQL"). opts:
--   conninfo (string): libpq's connection string ("host=... dbname=...
--     user=...") or a postgresql:// URI
--   table (string): the table ("schema.table" allowed); it must exist
--   columns (array of strings): the columns written, each from the record
--     field of the same name (records are tables; nil is NULL; a table
--     value is written as JSON)
--   mode: "append" (default: INSERT) | "upsert" (INSERT ... ON CONFLICT
--     (key) DO UPDATE: the table needs a unique index on key)
--   key (array of strings, upsert): the conflict columns, among columns
--   delivery_guarantee: "at_least_once" (default: a transaction committed
--     at every checkpoint) | "exactly_once" (a transaction per checkpoint
--     interval, prepared at the barrier with PREPARE TRANSACTION and
--     committed when the checkpoint completes; the server needs
--     max_prepared_transactions > 0)
--   batch_size (integer, default 500): rows per INSERT statement
-- Errors (a bad option) are raised at the caller; a connection or SQL
-- error when the job runs fails the job, naming the operator.
function DataStream:write_postgres(opts)
  local function bad(msg) error("write_postgres: " .. msg, 3) end
  if type(opts) ~= "table" then bad("a table of options expected") end
  local cfg = { type = "postgres" }
  if type(opts.conninfo) ~= "string" then bad("conninfo (a libpq connection string) expected") end
  if type(opts.table) ~= "string" or opts.table == "" then bad("table (a table name) expected") end
  cfg.conninfo, cfg.table = opts.conninfo, opts.table
  if type(opts.columns) ~= "table" or #opts.columns == 0 then bad("columns (an array of column names) expected") end
  local index = {}
  cfg.columns = {}
  for i, c in ipairs(opts.columns) do
    if type(c) ~= "string" or c == "" then bad("columns[" .. i .. "] is not a column name") end
    if index[c] then bad("column '" .. c .. "' is listed twice") end
    index[c] = i
    cfg.columns[i] = c
  end
  cfg.mode = opts.mode or "append"
  if cfg.mode ~= "append" and cfg.mode ~= "upsert" then
    bad("mode must be 'append' or 'upsert', not " .. tostring(cfg.mode))
  end
  if cfg.mode == "upsert" then
    if type(opts.key) ~= "table" or #opts.key == 0 then bad("mode = 'upsert' needs key (an array of columns)") end
    cfg.key, cfg.key_index = {}, {}
    for i, c in ipairs(opts.key) do
      if not index[c] then bad("key column '" .. tostring(c) .. "' is not one of the columns") end
      cfg.key[i], cfg.key_index[i] = c, index[c]
    end
  elseif opts.key ~= nil then
    bad("key is for mode = 'upsert'")
  end
  cfg.delivery_guarantee = opts.delivery_guarantee or "at_least_once"
  if cfg.delivery_guarantee ~= "at_least_once" and cfg.delivery_guarantee ~= "exactly_once" then
    bad("delivery_guarantee must be 'at_least_once' or 'exactly_once', not " .. tostring(cfg.delivery_guarantee))
  end
  local bs = opts.batch_size or 500
  if math_type(bs) ~= "integer" or bs < 1 or bs * #cfg.columns > 65535 then
    bad("batch_size must be an integer from 1 to " .. math.floor(65535 / #cfg.columns) ..
      " (65535 parameters a statement)")
  end
  cfg.batch_size = bs
  for k in pairs(opts) do
    if not ({ conninfo = 1, table = 1, columns = 1, mode = 1, key = 1, delivery_guarantee = 1, batch_size = 1 })[k] then
      bad("unknown option '" .. tostring(k) .. "'")
    end
  end
  return sink(self, { sink = cfg, name = "write_postgres" })
end

--- Write records as JSON lines (one compact JSON value a line, object
-- names sorted) into part files in dir, committed exactly once as
-- write_text's are. Tables with keys exactly 1..n are arrays, other tables
-- objects; Lua integers are JSON integers. A record JSON cannot hold (a
-- function, NaN, a string that is not UTF-8, a cycle) fails the job.
-- @param dir string
-- @param opts table, optional: rolling_size, rollover_interval,
--   inactivity_interval (as write_text)
function DataStream:write_json(dir, opts)
  opts = opts or {}
  check_dir(dir, "write_json")
  return sink(self, { sink = { type = "json", dir = dir, rolling_size = opts.rolling_size,
    rollover_interval = opts.rollover_interval and util.duration(opts.rollover_interval, "rollover_interval", 2),
    inactivity_interval = opts.inactivity_interval and util.duration(opts.inactivity_interval, "inactivity_interval", 2) },
    name = "write_json" })
end

--- Send each record as a line (tide.format) to a TCP server (Flink's
-- SocketClientSink). The sink's subtasks each connect when the job
-- starts; a failed connection or write fails the job. Not transactional:
-- lines sent after the last checkpoint are not taken back, and a restore
-- replays them (at least once with a replayable source; with
-- socket_text_stream upstream, at most once).
-- @param host string
-- @param port integer 1..65535
function DataStream:write_socket(host, port)
  check_address(host, port, "write_socket")
  return sink(self, { sink = { type = "socket", host = host, port = port }, name = "write_socket" })
end

-- ---- planning -----------------------------------------------------------

local function random_id()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(4) or tostring(os.time())
  if f then f:close() end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)):sub(1, 8)
end

-- Resolve parallelism, partitioners and chains; returns the plan: tasks
-- (chains), their network edges, and a fingerprint of the graph.
-- built-in aggregations that run in two phases across an exchange in batch
-- mode (count, sum, min, max: associative, and emitted only at the end)
local TWO_PHASE = { count = true, sum = true, min = true, max = true }

-- The local pre-aggregation an edge into node n may do (operators.lua's
-- window_all_combiner), or nil: n is a window_all (not keyed) with an
-- event-time tumbling assigner and a built-in sum, min or max, the default
-- trigger, no evictor, no allowed lateness and no late side output (so
-- that a partial is late, and fires, exactly when its records would).
local function local_window_aggregation(n)
  if n.kind ~= "window" or n.keyed or #n.inputs ~= 1 then return nil end
  local kind, A = n.fn_kind, n.assigner
  if kind ~= "sum" and kind ~= "min" and kind ~= "max" then return nil end
  if A.kind ~= "tumbling" or not A.event_time or n.trigger ~= nil or n.evictor ~= nil
    or n.late_tag ~= nil or n.process_fn ~= nil or (n.allowed_lateness or 0) ~= 0 then
    return nil
  end
  return { size = A.size, offset = A.offset or 0, agg = kind, field = n.field }
end

-- Whether node n, fed by a hash edge keyed by a field, reads nothing of its
-- records but that field: the keyed count() ({key =, count =}) and a
-- window's count() ({key =, count =} per window) with the default trigger,
-- no evictor and no late side output (a trigger's on_element, an evictor
-- and the side output get the records themselves). The sender then
-- projects each record to {[field] = key} (see the edges' project below):
-- what crosses the exchange is the key alone, as Flink SQL prunes the
-- columns a query does not read.
local function reads_key_only(n)
  if #n.inputs ~= 1 then return false end
  if n.kind == "aggregate" then return n.agg == "count" end
  return n.kind == "window" and n.fn_kind == "count" and n.keyed == true and n.trigger == nil
    and n.evictor == nil and n.late_tag == nil and n.process_fn == nil
end

local function build_plan(env, name)
  local nodes = env.nodes
  if #nodes == 0 then error("the job has no operators", 3) end
  local maxp = env.max_parallelism
  if maxp == 0 then
    local p = env.parallelism
    for _, n in ipairs(nodes) do p = math.max(p, n.parallelism or 0) end
    maxp = core.default_max_parallelism(p)
  end
  local has_sink = false
  for _, n in ipairs(nodes) do
    n.p = n.parallelism or env.parallelism
    if n.non_parallel then n.p = 1 end
    if n.keyed and n.p > maxp then
      error(string.format("operator %s (%s) has parallelism %d above max parallelism %d", n.name, n.site, n.p, maxp), 3)
    end
    if not n.uid then n.uid, n.uid_derived = n.kind .. "-" .. n.id, true end
    n.chained, n.net_out = {}, {}
    if n.kind == "sink" then has_sink = true end
    if env.runtime_mode == "batch" and n.kind == "source" and n.source.type == "generate"
      and n.source.count == nil then
      error("runtime_mode 'batch' needs bounded sources: generate at " .. n.site .. " has no count", 3)
    end
    if env.runtime_mode == "batch" and n.kind == "source" and n.source.type == "monitor" then
      error("runtime_mode 'batch' needs bounded sources: read_text with monitor at " .. n.site .. " never ends", 3)
    end
  end
  if not has_sink then error("the job has no sink (print, write_text, write_csv, write_json, write_socket, discard)", 3) end
  local tasks, edges, fp, shape = {}, {}, {}, {}
  for _, n in ipairs(nodes) do
    for _, inp in ipairs(n.inputs) do
      local up = nodes[inp.node]
      local part = inp.partition
      if part == nil then part = (up.p == n.p) and "forward" or "rebalance" end
      if part == "forward" and up.p ~= n.p then
        error(string.format("forward edge between parallelism %d and %d", up.p, n.p), 3)
      end
      inp.resolved = part
    end
    local inp = n.inputs[1]
    local up = inp and nodes[inp.node]
    if env.chaining and #n.inputs == 1 and up.p == n.p and (inp.resolved == "forward" or n.p == 1) then
      n.task = up.task
      up.chained[#up.chained + 1] = n.id
      local t = tasks[n.task]
      t.nodes[#t.nodes + 1] = n.id
    else
      tasks[#tasks + 1] = { parallelism = n.p, nodes = { n.id }, head = n.id }
      n.task = #tasks
      -- batch mode: a built-in keyed aggregation across an exchange runs in
      -- two phases (operators.lua, MERGE): the sender pre-aggregates
      n.merge_partials = env.runtime_mode == "batch" and n.kind == "aggregate" and TWO_PHASE[n.agg]
        and #n.inputs == 1 and n.inputs[1].resolved == "hash" and n.inputs[1].tag == nil or nil
      for _, i in ipairs(n.inputs) do
        local from = nodes[i.node]
        edges[#edges + 1] = { from = from.task, to = n.task, partition = i.resolved,
          from_node = from.id, to_node = n.id, key = i.key, key_field = i.key_field, key_site = i.key_site,
          tag = i.tag, combine = n.merge_partials,
          project = i.resolved == "hash" and i.key_field ~= nil and i.tag == nil and not n.merge_partials
            and reads_key_only(n) or nil,
          pre_aggregate = i.resolved ~= "hash" and i.resolved ~= "broadcast" and i.tag == nil
            and local_window_aggregation(n) or nil }
        from.net_out[#from.net_out + 1] = #edges
      end
    end
    local ins = {}
    for i, x in ipairs(n.inputs) do ins[i] = x.node .. ":" .. x.resolved .. (x.tag and (":" .. x.tag) or "") end
    fp[#fp + 1] = string.format("%d:%s:%s:%d:%s", n.id, n.kind, n.uid, n.p, table.concat(ins, ","))
    -- the graph without parallelism (and the partitioning and chaining it
    -- implies): what a checkpoint restored at another parallelism must match
    local sins = {}
    for i, x in ipairs(n.inputs) do sins[i] = x.node .. (x.key and ":keyed" or "") .. (x.tag and (":" .. x.tag) or "") end
    shape[#shape + 1] = string.format("%d:%s:%s:%s", n.id, n.kind, n.uid, table.concat(sins, ","))
  end
  -- per task its operators, for the control endpoint's job graph
  for _, t in ipairs(tasks) do
    t.ops = {}
    for j, id in ipairs(t.nodes) do
      local n = nodes[id]
      t.ops[j] = { uid = n.uid, name = n.name or n.kind, kind = n.kind }
    end
  end
  local args = {}
  for i = 0, #(arg or {}) do args[i] = arg[i] end
  if not args[0] then error("cannot find the job script's path (arg[0])", 3) end
  return {
    name = name, script = args[0], args = args, path = package.path, cpath = package.cpath,
    fingerprint = table.concat(fp, ";"), shape = table.concat(shape, ";"), default_parallelism = env.parallelism,
    max_parallelism = maxp, tasks = tasks, edges = edges, buffer_timeout = env.buffer_timeout,
    files = require("tide.ship").files(),
  }
end

local JobFailure = {
  __tostring = function(e) return "job '" .. e.job .. "' failed: " .. e.message end,
}

-- An error the command line reports with exit status exit_code (2: usage).
local UsageError = { __tostring = function(e) return e.message end }

-- The committed part files of job `name` in the directories of the job's
-- file sinks (names "part-<job name>-<id>-<subtask>-<n>"), at most 3 named
-- per directory: {{dir =, files = {...}, count = n}, ...}.
local function committed_output(env, name)
  local filesink = require "tide.filesink"
  local found = {}
  for _, n in ipairs(env.nodes) do
    local dir = n.kind == "sink" and n.sink.dir
    if dir then
      local files = filesink.committed_of_job(dir, name)
      if #files > 0 then found[#found + 1] = { dir = dir, files = files, uid = n.uid, op = n.name } end
    end
  end
  return found
end

local function usage_error(message, code)
  return setmetatable({ exit_code = code or 2, message = message }, UsageError)
end

-- "none yet" or "all corrupt": the error for a job with no checkpoint to
-- restore. corrupt lists the completed checkpoints found corrupt.
local function no_checkpoint_error(job_dir, corrupt)
  if #corrupt == 0 then
    return usage_error("no completed checkpoint to resume from in " .. job_dir)
  end
  return usage_error(string.format("every completed checkpoint in %s is corrupt, so the job cannot resume; " ..
    "starting it afresh would commit its output a second time beside what it already committed " ..
    "(repair or restore the checkpoint directory, or remove the job's output and checkpoints to start over):\n  %s",
    job_dir, table.concat(corrupt, "\n  ")), 3)
end

--- Run the job and wait until it ends (Flink's execute): every bounded
-- source read to its end, every record through, every sink committed.
-- @param name string, optional: the job name
-- @return table {job_name = string, job_id = string (the id in the names
--   of the part files this run committed: part-<job name>-<job_id>-...;
--   a resumed run keeps the id of the run it resumes), part_prefix =
--   string (what the names of those part files start with), runtime_ms =
--   integer, restarts = integer, notes = {line, ...} (what the exit
--   summary reported: part files recovery took back and rewrote, ...)}
-- Raises an error object (tostring gives "job 'NAME' failed: ...", with
-- fields job and message) when a subtask fails: a UDF error names the
-- operator, its uid, the place it was defined and the error's file:line.
-- Refuses (exit status 2) to start afresh into an output directory that
-- holds committed part files of the same job name, unless the command
-- line says --allow-existing-output; with --resume, refuses with exit
-- status 2 when no checkpoint was ever completed and 3 when every
-- completed checkpoint is corrupt.
function Env:execute(name)
  name = name or self.name
  executions = executions + 1
  local plan = build_plan(self, name)
  plan.job_index = executions
  if core.discovering() then core.done() end -- plan.files is all tide run --detached wanted
  local ctx = core.context()
  if ctx then
    if ctx.job_index ~= executions then return { job_name = name, runtime_ms = 0 } end
    if ctx.fingerprint ~= plan.fingerprint then
      error("the job graph built in a task VM differs from the planning VM's " ..
        "(graph construction must be deterministic)", 2)
    end
    core.begin()
    require("tide.runtime").run(self, plan, ctx)
    core.done() -- ends the script in this task VM
  end
  local ckpt = require "tide.checkpoint"
  local cc = self.checkpoint
  local job_dir = cc and ckpt.job_dir(cc.dir, name)
  local defaults = core.defaults()
  local function warn(msg) core.log("warn", "run", nil, msg) end
  local restore, savepoint
  if cc then
    -- one job at a time per checkpoint directory (a lock held until the
    -- process ends)
    local okd, derr = core.mkdir_p(job_dir)
    if not okd then error(usage_error(derr), 2) end
    local okl, lerr = core.lock_dir(job_dir)
    if not okl then error(usage_error(lerr), 2) end
  end
  if defaults.from_savepoint then
    if defaults.resume then error(usage_error("--resume and --from-savepoint exclude each other"), 2) end
    local err
    savepoint, err = ckpt.open_savepoint(defaults.from_savepoint)
    if not savepoint then error(usage_error(err), 2) end
    local why = ckpt.savepoint_refusal(savepoint, plan, self, defaults.allow_non_restored_state, warn)
    if why then error(usage_error(why), 2) end
    -- as Flink warns: a uid derived from the position changes with the graph
    for _, n in ipairs(self.nodes) do
      if n.uid_derived then
        warn(string.format("%s (%s) has no uid: its state is matched by the uid '%s' derived from its " ..
          "position, which changes when operators are added or removed; give it one with :uid(...)",
          n.name or n.kind, n.site or "?", n.uid))
      end
    end
    core.log("info", "restore", nil, string.format("restoring job '%s' from savepoint %s (taken of job '%s', checkpoint %d)",
      name, savepoint.dir, savepoint.job_name or "?", savepoint.id))
    restore = savepoint
  elseif defaults.resume then
    if not cc then
      error(usage_error("--resume needs a checkpoint directory (--checkpoint-dir or env{checkpoint = {dir = ...}})"), 2)
    end
    local corrupt
    restore, corrupt = ckpt.find_latest(job_dir, warn, name)
    if not restore then error(no_checkpoint_error(job_dir, corrupt), 2) end
    core.log("info", "restore", nil, string.format("resuming job '%s' from checkpoint %d (%s)", name, restore.id, restore.dir))
    local h = restore.job.script_hash
    if h and h ~= core.script_hash(plan.script) then
      core.log("info", "restore", nil, string.format("note: %s is not the script checkpoint %d was taken with " ..
        "(script hash %s then, %s now): the job resumes with the new logic", plan.script, restore.id, h,
        core.script_hash(plan.script)))
    end
  elseif not defaults.allow_existing_output then
    local found = committed_output(self, name)
    if #found > 0 then
      local f = found[1]
      error(usage_error(string.format("%s (uid '%s'): %s already holds committed output of job '%s' (%s%s); " ..
        "starting the job afresh would write a second copy beside it. Resume the run that wrote it " ..
        "(--resume), remove those files, or pass --allow-existing-output to add a new set of part files",
        f.op, f.uid, f.dir, name, table.concat(f.files, ", ", 1, math.min(3, #f.files)),
        #f.files > 3 and string.format(" and %d more", #f.files - 3) or "")), 2)
    end
  end
  -- the id in the part files' names: a resumed job keeps its run's (so
  -- does a job restored from a savepoint: recovery commits the part files
  -- the savepoint had pending, under their names)
  plan.job_id = restore and restore.job.lineage or random_id()
  plan.run_id = defaults.run_id
  plan.savepoint_dir = cc and cc.dir
  local restart = ckpt.restart_strategy(self.restart_cfg, cc ~= nil)
  if self.metrics == false then core.disable_metrics() end
  local t0 = core.now_ms()
  local notes, restarts = {}, 0
  local counts -- the last attempt's records per task (core.execute)
  local function summary(how)
    if #notes == 0 and restarts == 0 and not defaults.summary then return end
    core.log("info", "run", nil, string.format("summary of job '%s': %s after %d ms, %d restart%s", name, how,
      core.now_ms() - t0, restarts, restarts == 1 and "" or "s"))
    for _, line in ipairs(notes) do core.log("info", "run", nil, "  " .. line) end
    if not (defaults.summary and counts) then return end
    for t, c in ipairs(counts) do
      local names = {}
      for _, id in ipairs(plan.tasks[t] and plan.tasks[t].nodes or {}) do
        names[#names + 1] = self.nodes[id].name or self.nodes[id].kind
      end
      core.log("info", "run", nil, string.format("  task %d (%s): %d records read, %d in, %d out", t,
        table.concat(names, " -> "), c.read, c.records_in, c.records_out))
    end
    core.log("info", "run", nil, string.format("  checkpoints completed: %d", counts.checkpoints))
  end
  local run_first -- the first checkpoint id of this run
  while true do
    if restore and restore ~= savepoint and (restore.job.fingerprint ~= plan.fingerprint or
        (restore.job.max_parallelism and restore.job.max_parallelism ~= plan.max_parallelism)) then
      -- the same graph at another parallelism: rescaling (keyed state by
      -- key-group range, operator state and source splits redistributed)
      local why = ckpt.rescale_refusal(restore, plan, self)
      if why then error(usage_error(why), 2) end
    end
    if cc then
      local ids = ckpt.list(job_dir)
      -- ids go on after the checkpoints in the directory and after the
      -- restored savepoint's (savepoints share the id sequence: a live
      -- reload's cut is the newest id of its job)
      local last = math.max(ids[1] or 0, restore and restore.id or 0)
      run_first = run_first or last + 1
      plan.checkpoint = { dir = job_dir, interval = cc.interval, timeout = cc.timeout, min_pause = cc.min_pause,
        max_concurrent = cc.max_concurrent, retained = cc.retained, mode = cc.mode, unaligned = cc.unaligned,
        tolerable_failed = cc.tolerable_failed_checkpoints, first_id = last + 1,
        job_info = ckpt.job_info(self, plan, name), expected = ckpt.expected_files(self, plan) }
    end
    plan.restore_dir = restore and restore.dir or nil
    local ok, err, run_notes, stopped_at, for_reload, run_counts = core.execute(plan)
    counts = run_counts
    table.move(run_notes, 1, #run_notes, #notes + 1, notes)
    if ok and for_reload then
      -- tide reload: the job stopped at its cut; this VM ends here and the
      -- process runs the new logic from the cut (core/reload.h)
      core.log("info", "run", nil, string.format("job '%s' stopped at savepoint %s for a live reload", name,
        stopped_at))
      summary("stopped for a reload")
      core.reload_swap(stopped_at)
    end
    if ok then
      if stopped_at then
        core.log("info", "run", nil, string.format("job '%s' stopped with savepoint %s", name, stopped_at))
      end
      break
    end
    local sig = core.cancel_signal()
    local cancelled_by = sig and ("cancelled by " .. (sig == 2 and "SIGINT" or "SIGTERM")) or core.cancel_reason()
    if cancelled_by then
      -- SIGINT/SIGTERM or tide cancel: no restart; what the run was
      -- writing goes, what checkpoints completed stays
      local removed = {}
      for _, n in ipairs(self.nodes) do
        local dir = n.kind == "sink" and n.sink.dir
        if dir then
          for _, f in ipairs(require("tide.filesink").remove_in_progress(dir, name, plan.job_id)) do
            removed[#removed + 1] = f
          end
        end
      end
      summary(cancelled_by)
      error(usage_error(string.format("job '%s' %s: %d in-progress part file%s removed; %s", name,
        cancelled_by, #removed, #removed == 1 and "" or "s",
        cc and ("completed checkpoints kept in " .. job_dir .. " (--resume continues from the latest)")
        or "no checkpoints were configured"), sig and 128 + sig or 1), 2)
    end
    -- a live reload's new logic that fails before it is healthy is not
    -- restarted: the old logic runs again from the cut
    if core.reload_claim_failure(string.format("job '%s' failed before it was healthy: %s", name, err)) then
      summary("failed")
      error(setmetatable({ job = name, message = err }, JobFailure), 2)
    end
    local delay = restart:on_failure(core.now_ms())
    if not delay then
      summary("failed")
      error(setmetatable({ job = name, message = err }, JobFailure), 2)
    end
    restarts = restarts + 1
    core.log("error", "run", nil, string.format("job '%s' failed; restarting in %d ms: %s", name, delay, err))
    core.set_restarting()
    core.sleep_ms(delay)
    if cc then
      local corrupt
      restore, corrupt = ckpt.find_latest(job_dir, warn, name)
      -- restored from a savepoint: only this run's checkpoints are newer
      if savepoint and (not restore or restore.id < run_first) then restore, corrupt = savepoint, {} end
      if not restore and #corrupt > 0 then
        summary("failed")
        error(no_checkpoint_error(job_dir, corrupt), 2)
      end
    end
    if restore then
      core.log("info", "restore", nil, string.format("restoring checkpoint %d (%s)", restore.id, restore.dir))
    end
  end
  summary("finished")
  return { job_name = name, job_id = plan.job_id, runtime_ms = core.now_ms() - t0, restarts = restarts,
    notes = notes, part_prefix = "part-" .. util.safe_name(name) .. "-" .. plan.job_id .. "-" }
end

tide.DataStream, tide.KeyedStream, tide.Env = DataStream, KeyedStream, Env
tide.ConnectedStreams, tide.BroadcastStream = ConnectedStreams, BroadcastStream
return tide
