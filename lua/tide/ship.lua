--- tide.ship: the files a job script names, for cluster mode
-- (docs/CLUSTER.md, "Files the job ships").
--
-- In the planning VM, the Lua modules the script requires (found on
-- package.path; the tide library itself excepted) and the C modules it
-- loads (tide.load_module) are recorded while it builds the graph (and in
-- `tide run --detached`'s client, which runs the script up to its first
-- env:execute() to learn them, then sends them with the script). The job
-- master ships them to the task managers, named by content, as Flink ships
-- a job's jar and its dependencies. In a task manager's subtask VM the
-- same require and load_module calls then resolve to the shipped copies,
-- whatever the task manager's file system holds; error messages still
-- name the file as the script's host knew it.
--
-- Both VMs run this file: it uses the common subset of Lua 5.1 and 5.4.
local M = {}

local recorded -- planning: { {kind =, name =, path =, origin =}, ... } in load order
local seen     -- planning: kind .. "\0" .. name -> true
local shipped  -- a subtask VM: { lua = {name -> file}, module = {name -> file} }

local function is_library(name)
  return name == "tide" or name:sub(1, 5) == "tide."
end

local function record(kind, name, path, origin)
  if not recorded then return end
  local k = kind .. "\0" .. name
  if seen[k] then return end
  seen[k] = true
  recorded[#recorded + 1] = { kind = kind, name = name, path = path, origin = origin or path }
end

-- Load file as a chunk named after origin (error messages give origin:line).
local function load_as(file, origin)
  local f, err = io.open(file, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return load(text, "@" .. origin)
end

-- The searcher placed before the standard Lua file searcher.
local function searcher(name)
  if type(name) ~= "string" or is_library(name) then return nil end
  local s = shipped and shipped.lua[name]
  if s then
    local chunk, err = load_as(s.file, s.origin)
    if not chunk then error(string.format("error loading module '%s' from file '%s':\n\t%s", name, s.origin, err), 2) end
    record("lua", name, s.file, s.origin)
    return chunk, s.origin
  end
  if not recorded then return nil end -- not shipped: the standard searchers look
  local path = package.searchpath(name, package.path)
  if not path then return nil end
  record("lua", name, path)
  local chunk, err = loadfile(path)
  if not chunk then error(string.format("error loading module '%s' from file '%s':\n\t%s", name, path, err), 2) end
  return chunk, path
end

--- Install the searcher in this VM (before the script runs).
-- @param files nil, or the shipped files require and load_module resolve
--   to: an array of {kind = "lua"|"module", name = module name or the
--   path as the script gave it, file = the shipped copy, origin = the
--   path on the host the script was submitted from}
-- @param record_them true in a planning VM: record what the script loads
--   (shipped or found), for M.files
function M.install(files, record_them)
  if files then
    shipped = { lua = {}, module = {} }
    for _, f in ipairs(files) do shipped[f.kind][f.name] = f end
  end
  if record_them then recorded, seen = {}, {} end
  local searchers = rawget(package, "searchers") or rawget(package, "loaders") -- 5.4 / 5.1
  table.insert(searchers, 2, searcher)
end

--- The file tide.load_module(path) opens: the shipped copy in a task
-- manager's VM, else path itself (recorded in the planning VM).
-- @param path string, as the script gave it
-- @return string
function M.module_file(path)
  local s = shipped and shipped.module[path]
  if s then
    record("module", path, s.file, s.origin)
    return s.file
  end
  record("module", path, path)
  return path
end

--- What the planning VM recorded so far: an array of {kind, name, path,
-- origin} (empty outside a planning VM).
function M.files()
  local out = {}
  for i, f in ipairs(recorded or {}) do
    out[i] = { kind = f.kind, name = f.name, path = f.path, origin = f.origin }
  end
  return out
end

return M
