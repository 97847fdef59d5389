-- `shard{}`: fan a suite out over the N boxes of one shard group and give one verdict. Built
-- on the host primitives: `warmup{ count = N }` (one lease, N boxes), `group:sync{}` (the file
-- set read and hashed once, the archive streamed to every box), `_split` (items balanced by
-- the durations of earlier runs), `_shard_run` (every shard at once, output prefixed `[k/N]`,
-- `LEASEBOX_SHARD_INDEX`/`LEASEBOX_SHARD_COUNT` in every box, `fail_fast`), per-shard fetches
-- and `_junit_merge`.
local host = ...
local lb = host
local recipe = require("leasebox.recipe")

local M = {}

local function fail(message)
  error(message, 0)
end

local SHARD_KEYS = {
  name = "string",
  count = "number",
  lease = "table",
  sync = "table|boolean",
  run = "function",
  steps = "table",
  items = "table",
  items_from = "string",
  fail_fast = "boolean",
  distinct_hosts = "boolean",
  artifacts = "table|string",
  junit = "table|string",
  env = "table",
  timeout = "string|number",
}
local SHARD_KEY_LIST =
  "name, count, lease, sync, run, steps, items, items_from, fail_fast, distinct_hosts, artifacts, junit, env, timeout"

-- The exit code a step or item function's result stands for.
local function code_of(result)
  if type(result) == "table" and type(result.code) == "number" then
    return result.code
  elseif result == false then
    return 1
  end
  return 0
end

-- Run normalised steps in order on one box; the first failing step (unless it may fail) ends
-- the shard with its code.
local function run_steps(steps, box, shard, env, timeout)
  local function one(step)
    local merged = {}
    for k, v in pairs(env) do merged[k] = v end
    for k, v in pairs(step.env or {}) do merged[k] = v end
    if step.kind == "fn" then
      return step.command(box, shard)
    end
    local spec
    if step.kind == "sh" then
      spec = { "sh", "-c", step.command }
    else
      spec = {}
      for i, a in ipairs(step.command) do spec[i] = a end
    end
    spec.env = merged
    spec.timeout = step.timeout or timeout
    spec.cwd = step.cwd
    return box:exec(spec)
  end
  for _, step in ipairs(steps) do
    local code
    if step.kind == "parallel" then
      local fns = {}
      for i, child in ipairs(step.steps) do
        fns[i] = function() return one(child) end
      end
      local results = { lb.parallel(fns) }
      code = 0
      for i, child in ipairs(step.steps) do
        local c = code_of(results[i])
        if c ~= 0 and not child.continue_on_failure and code == 0 then
          code = c
        end
      end
    else
      code = code_of(one(step))
      if step.continue_on_failure then
        code = 0
      end
    end
    if code ~= 0 then
      return { code = code, ok = false, step = step.name }
    end
  end
  return { code = 0, ok = true }
end

local function lines_of(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local item = line:match("^%s*(.-)%s*$")
    if item ~= "" then
      out[#out + 1] = item
    end
  end
  return out
end

--- Validate a shard description, then run it: lease the group, sync once, split the items,
--- run every shard, fetch artifacts and JUnit files per shard, give one verdict.
function M.run(spec)
  recipe.check_type("the shard description", spec, "table")
  recipe.check_keys("shard", spec, SHARD_KEYS, SHARD_KEY_LIST)
  for key, expected in pairs(SHARD_KEYS) do
    if spec[key] ~= nil then
      recipe.check_type(key, spec[key], expected)
    end
  end
  local count = spec.count
  if count == nil or math.type(count) ~= "integer" or count < 1 then
    fail("`count` must be a whole number of shards, 1 or more")
  end
  if (spec.run == nil) == (spec.steps == nil) then
    fail("give `run = function(box, shard) … end` or `steps = { … }`, one of them")
  end
  if spec.items ~= nil and spec.items_from ~= nil then
    fail("give `items` or `items_from`, not both")
  end
  local name = spec.name or "shards"
  local env = recipe.env_table("env", spec.env)
  local timeout = recipe.duration("timeout", spec.timeout)
  local steps
  if spec.steps ~= nil then
    steps = {}
    for i, child in ipairs(spec.steps) do
      steps[i] = recipe.step(("steps[%d]"):format(i), child, i, false)
    end
    if #steps == 0 then
      fail("`steps` is empty")
    end
  end
  local items
  if spec.items ~= nil then
    items = recipe.string_list("items", spec.items)
  end
  local artifacts = recipe.string_list("artifacts", spec.artifacts)
  local junit = recipe.string_list("junit", spec.junit)

  local lease = {}
  for k, v in pairs(spec.lease or {}) do lease[k] = v end
  if lease.count ~= nil and lease.count ~= count then
    fail("`lease.count` differs from `count`; give `count` only")
  end
  lease.count = count
  if spec.distinct_hosts ~= nil then
    lease.distinct_hosts = spec.distinct_hosts
  end
  local group = lb.warmup(lease)
  if spec.sync ~= false then
    group:sync(type(spec.sync) == "table" and spec.sync or nil)
  end
  if spec.items_from ~= nil then
    -- Run once, in the first box, under verified exec; never on this machine.
    local listed = group[1]:exec { "sh", "-c", spec.items_from, capture = true, env = env }
    if listed.code ~= 0 then
      lb.fail(("items_from `%s` exited with code %d in box 1"):format(spec.items_from, listed.code), listed.code)
    end
    items = lines_of(listed.stdout)
  end
  local split = items and host._split(items, count, name) or nil
  local user_run = spec.run or function(box, shard)
    return run_steps(steps, box, shard, env, timeout)
  end
  -- `shard.each(fn)`: `fn(item)` for each of the shard's items in order, each timed on its
  -- own; every item runs, and the first failing item's result is the shard's.
  local timed = {}
  local function run(box, shard)
    shard.each = function(fn)
      if type(fn) ~= "function" then
        fail("`shard.each` takes a function(item)")
      end
      local times = timed[shard.index] or {}
      timed[shard.index] = times
      local failed
      for _, item in ipairs(shard.items) do
        local started = host._now_ms()
        local result = fn(item)
        local c = code_of(result)
        if c == 0 then
          times[#times + 1] = { item = item, ms = host._now_ms() - started }
        elseif failed == nil then
          failed = type(result) == "table" and result or { code = c, ok = false }
        end
      end
      return failed or { code = 0, ok = true }
    end
    return user_run(box, shard)
  end
  local results = host._shard_run(group, run, { name = name, fail_fast = spec.fail_fast or false, items = split })
  if split then
    -- Items timed one by one (`shard.each`) are recorded as measured, whatever the shard's
    -- verdict (a failed item is not recorded); otherwise a passed shard's wall time is shared
    -- over its items.
    local rows = {}
    for k = 1, count do
      if timed[k] then
        rows[#rows + 1] = { timed = timed[k] }
      elseif results[k].status == "passed" then
        rows[#rows + 1] = { items = split[k], ms = results[k].ms }
      end
    end
    host._record_durations(name, rows)
  end
  -- Artifacts land per shard: `out/shard-K/<path>`, also after a failed shard.
  local reports = {}
  for k = 1, count do
    local dest = ("out/shard-%d"):format(k)
    for _, path in ipairs(artifacts) do
      local ok, err = pcall(group[k].fetch, group[k], path, dest)
      if not ok then
        lb.log(("shard %d/%d: artifact `%s` not fetched: %s"):format(k, count, path, tostring(err)))
      end
    end
    for _, path in ipairs(junit) do
      local ok = pcall(group[k].fetch, group[k], path, dest)
      if ok then
        reports[#reports + 1] = { shard = k, path = dest .. "/" .. path }
      else
        lb.log(("shard %d/%d: JUnit file `%s` not found"):format(k, count, path))
      end
    end
  end
  if #junit > 0 then
    results.junit = host._junit_merge(reports, "out/junit.xml")
  end
  for k = 1, count do
    local r = results[k]
    if r.status == "failed" or r.status == "errored" then
      local code = r.code
      if code == nil or code == 0 then code = 1 end
      lb.fail(("shard %d/%d %s (exit code %d)"):format(k, count, r.status, code), code)
    end
  end
  return setmetatable(results, host._shard_mt)
end

return M
