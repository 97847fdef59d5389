-- `recipe{}`: validate a recipe description and normalise it into the inert plan the host
-- runs (lease, sync, steps, artifacts, release). Errors are raised without a position; the
-- caller (`leasebox.recipe`) re-raises them at the recipe's line.
local host = ...

local M = {}

local function fail(message)
  error(message, 0)
end


local function check_type(where, value, expected)
  local actual = type(value)
  for alternative in expected:gmatch("[^|]+") do
    if actual == alternative then
      return
    end
  end
  fail(("%s must be a %s, got a %s"):format(where, expected:gsub("|", " or "), actual))
end

local function check_keys(where, spec, allowed, list)
  for key in pairs(spec) do
    if type(key) == "number" then
      if not allowed[1] or key > #spec or key < 1 or math.type(key) ~= "integer" then
        fail(("%s: unexpected positional value [%s]"):format(where, tostring(key)))
      end
    elseif allowed[key] == nil then
      fail(("%s: unknown key `%s` (allowed: %s)"):format(where, tostring(key), list))
    end
  end
end

local function duration(where, value)
  if value == nil then
    return nil
  end
  check_type(where, value, "string|number")
  local seconds, err = host._duration(value)
  if not seconds then
    fail(("%s: %s"):format(where, err))
  end
  return seconds
end

local function string_list(where, value)
  if value == nil then
    return {}
  end
  if type(value) == "string" then
    return { value }
  end
  check_type(where, value, "table")
  local out = {}
  for key, item in pairs(value) do
    if type(key) ~= "number" then
      fail(("%s must be a list of strings, found key `%s`"):format(where, tostring(key)))
    end
    check_type(("%s[%d]"):format(where, key), item, "string")
    out[key] = item
  end
  return out
end

local function env_table(where, value)
  if value == nil then
    return {}
  end
  check_type(where, value, "table")
  local out = {}
  for key, item in pairs(value) do
    if type(key) ~= "string" or not key:match("^[A-Za-z_][A-Za-z0-9_]*$") then
      fail(("%s: `%s` is not an environment variable name"):format(where, tostring(key)))
    end
    check_type(("%s.%s"):format(where, key), item, "string|number|boolean")
    out[key] = tostring(item)
  end
  return out
end

local STEP_KEYS = {
  true, -- positional: name, command
  name = "string",
  run = "string|table|function",
  env = "table",
  timeout = "string|number",
  capture = "boolean",
  continue_on_failure = "boolean",
  cwd = "string",
  parallel = "table",
}
local STEP_KEY_LIST = "name, run, env, timeout, capture, continue_on_failure, cwd, parallel"

local step -- forward

local function command_kind(where, command)
  local kind = type(command)
  if kind == "string" then
    return "sh"
  elseif kind == "function" then
    return "fn"
  elseif kind == "table" then
    if #command == 0 then
      fail(where .. ": an argv table needs at least the program")
    end
    for key, item in pairs(command) do
      if type(key) ~= "number" then
        fail(("%s: an argv table holds strings only, found key `%s`"):format(where, tostring(key)))
      end
      if type(item) ~= "string" and type(item) ~= "number" then
        fail(("%s: argv[%d] must be a string, got a %s"):format(where, key, type(item)))
      end
    end
    local argv = {}
    for i, item in ipairs(command) do
      argv[i] = tostring(item)
    end
    return "argv", argv
  end
  fail(("%s: a step runs a string (under `sh -c`), an argv table or a function, got a %s"):format(where, kind))
end

step = function(where, spec, index, in_parallel)
  if type(spec) == "string" then
    return { name = spec, kind = "sh", command = spec, env = {}, capture = false, continue_on_failure = false }
  elseif type(spec) == "function" then
    return { name = ("step %d"):format(index), kind = "fn", command = spec, env = {}, capture = false, continue_on_failure = false }
  end
  check_type(where, spec, "table")
  check_keys(where, spec, STEP_KEYS, STEP_KEY_LIST)
  for key, expected in pairs(STEP_KEYS) do
    if type(key) == "string" and spec[key] ~= nil then
      check_type(("%s.%s"):format(where, key), spec[key], expected)
    end
  end
  local name = spec.name or spec[1]
  local command = spec.run
  if spec[2] ~= nil then
    if command ~= nil then
      fail(where .. ": give the command either positionally or as `run`, not both")
    end
    command = spec[2]
  end
  if #spec > 2 then
    fail(where .. ": a step is { \"name\", command, options... }; use an argv table for arguments")
  end
  if name ~= nil then
    check_type(where .. " name", name, "string")
    if name == "" then
      fail(where .. ": a step name cannot be empty")
    end
  end
  local out = {
    env = env_table(where .. ".env", spec.env),
    timeout = duration(where .. ".timeout", spec.timeout),
    capture = spec.capture or false,
    continue_on_failure = spec.continue_on_failure or false,
    cwd = spec.cwd,
  }
  if spec.parallel ~= nil then
    if in_parallel then
      fail(where .. ": parallel groups do not nest")
    end
    if command ~= nil then
      fail(where .. ": a parallel group has no command of its own")
    end
    out.kind = "parallel"
    out.name = name or ("parallel %d"):format(index)
    out.steps = {}
    for i, child in ipairs(spec.parallel) do
      out.steps[i] = step(("%s.parallel[%d]"):format(where, i), child, i, true)
    end
    if #out.steps == 0 then
      fail(where .. ": an empty parallel group")
    end
    return out
  end
  if command == nil then
    fail(where .. ": a step needs a command (a string, an argv table or a function)")
  end
  local kind, argv = command_kind(where, command)
  out.kind = kind
  out.command = argv or command
  out.name = name or (kind == "sh" and command) or (kind == "argv" and table.concat(argv, " ")) or ("step %d"):format(index)
  return out
end

local RECIPE_KEYS = {
  name = "string",
  description = "string",
  lease = "table",
  sync = "table|boolean",
  steps = "table",
  artifacts = "table|string",
  env = "table",
  timeout = "string|number",
  keep = "boolean",
}
local RECIPE_KEY_LIST = "name, description, lease, sync, steps, artifacts, env, timeout, keep"
local SYNC_KEYS = { exclude = "table|string" }

--- Validate and normalise one step (also used by `shard{ steps = … }`).
M.step = step
M.duration = duration
M.string_list = string_list
M.env_table = env_table
M.check_keys = check_keys
M.check_type = check_type

--- Validate and normalise a recipe description.
function M.new(spec)
  check_type("the recipe", spec, "table")
  check_keys("recipe", spec, RECIPE_KEYS, RECIPE_KEY_LIST)
  for key, expected in pairs(RECIPE_KEYS) do
    if spec[key] ~= nil then
      check_type(key, spec[key], expected)
    end
  end
  if spec.steps == nil then
    fail("a recipe needs `steps` (a list of steps)")
  end
  -- The host resolves the lease options against the config now (own keys only, up to the
  -- user's limits), so a refusal points at this `recipe{}` call.
  local lease = host._lease(spec.lease or {})
  local sync = spec.sync
  if sync == nil or sync == true then
    sync = { exclude = {} }
  elseif sync ~= false then
    check_keys("sync", sync, SYNC_KEYS, "exclude")
    sync = { exclude = string_list("sync.exclude", sync.exclude) }
  end
  local steps, names = {}, {}
  for key in pairs(spec.steps) do
    if type(key) ~= "number" then
      fail(("steps must be a list, found key `%s`"):format(tostring(key)))
    end
  end
  local function claim(name, where)
    if names[name] then
      fail(("%s: two steps are named `%s`"):format(where, name))
    end
    names[name] = true
  end
  for i, child in ipairs(spec.steps) do
    local where = ("steps[%d]"):format(i)
    local normal = step(where, child, i, false)
    claim(normal.name, where)
    for j, member in ipairs(normal.steps or {}) do
      claim(member.name, ("%s.parallel[%d]"):format(where, j))
    end
    steps[i] = normal
  end
  local plan = {
    name = spec.name,
    description = spec.description,
    lease = lease,
    sync = sync,
    steps = steps,
    artifacts = string_list("artifacts", spec.artifacts),
    env = env_table("env", spec.env),
    timeout = duration("timeout", spec.timeout),
    keep = spec.keep or false,
  }
  return setmetatable(plan, host._recipe_mt)
end


return M
