-- The `leasebox` module: the host primitives (Rust) plus the declarative `recipe{}` (Lua).
-- Embedded in the binary; `require("leasebox")` always loads this file, never a repository's.
-- Editors complete it from `stdlib/leasebox.d.lua`.
local host = ...

local M = {}
for name, value in pairs(host) do
  if type(name) == "string" and name:sub(1, 1) ~= "_" then
    M[name] = value
  end
end

local recipe = require("leasebox.recipe")
local shard = require("leasebox.shard")

-- Describe a recipe; the host runs the description when the recipe file returns it. Wrapped
-- by the host so that a validation error points at the recipe's line, also through the tail
-- call of `return lb.recipe { ... }`.
M.recipe = host._at_caller(recipe.new, "recipe{}")

-- Fan a suite out over N boxes of one shard group and give one verdict (see docs/sharding.md).
M.shard = host._at_caller_async(shard.run, "shard{}")

return M
