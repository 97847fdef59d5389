-- shard-tests: this repository's own `cargo test` over 4 boxes, with one verdict.
--
-- The items are the crate's top-level modules (`lib:host`, `lib:session`, …, the unit tests) and
-- the integration test binary's modules (`it:shard`, `it:cli_run`, …), listed in box 1 from the
-- synced tree (nothing is built to list them). Every box builds the tests once, into its own
-- `CARGO_TARGET_DIR` beside the workdir (outside the synced tree, so a kept group's next run
-- stays warm), then runs its items one command each, timed on their own (`shard.each`): those
-- times balance the next split. An item runs exactly the tests under its module (the names
-- come from the test binary's `--list`, run with `--exact`), so no test runs twice. Doc tests
-- are not run.
--
-- Try: leasebox run shard-tests
--      leasebox run shard-tests -- lib=only            (the unit tests only: a lighter build)
--      leasebox run shard-tests -- count=2 target_dir=/path/to/a/warm/target shared=/path/to/shared
--
-- `target_dir` gives every box the same target directory instead (on the local backend, where
-- the boxes share this machine, a warm one saves each box a cold build of the dependencies;
-- cargo's lock makes the boxes build one after another, then test at once). Give it a copy,
-- never the target directory of the checkout you work in: the first box's test binaries
-- (pointing into its workdir) would replace that checkout's.
--
-- Some tests read the recorded Nomad 1.1.2 transcripts from `shared/` beside the repository,
-- which a sync does not send. On the local backend, `shared=/path/to/shared` links it beside
-- each box's workdir; on Nomad, bake it into the image at the workdir's parent.
local lb = require("leasebox")

local lib_only = lb.args.lib == "only"
if lb.args.lib ~= nil and not lib_only then
  lb.fail(("lib must be `only`, not `%s`"):format(lb.args.lib), 2)
end
local count = tonumber(lb.args.count or "4")
if count == nil or count < 1 or math.type(count) ~= "integer" then
  lb.fail(("count must be a whole number of boxes, not `%s`"):format(lb.args.count), 2)
end
local target_dir = lb.args.target_dir
local shared = lb.args.shared
if shared ~= nil and shared:sub(1, 1) ~= "/" then
  lb.fail(("shared must be an absolute path (the boxes resolve it, not this machine), not `%s`"):format(shared), 2)
end

local function quoted(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- One item a line: `lib:MODULE` for each top-level module of src/ with unit tests in reach,
-- `it:MODULE` for each module of the integration test binary.
local list = [[
for f in src/*; do
  [ -e "$f" ] || continue
  n=${f#src/}; n=${n%.rs}
  case $n in lib|main|*.*) ;; *) echo "lib:$n";; esac
done | sort -u
]]
if not lib_only then
  list = list .. [[
for f in tests/integration/*; do
  [ -e "$f" ] || continue
  n=${f#tests/integration/}; n=${n%.rs}
  case $n in main|*.*) ;; *) echo "it:$n";; esac
done | sort -u
]]
end

-- The shell that every command of a box runs under: its target directory, then the command.
local function in_box(script)
  local target = target_dir and quoted(target_dir) or '"$(cd .. && pwd)/cargo-target"'
  return { "sh", "-c", "CARGO_TARGET_DIR=" .. target .. "; export CARGO_TARGET_DIR; " .. script }
end

local link_shared = shared and ("ln -sfn " .. quoted(shared) .. " ../shared && ") or ""

local build_flags = lib_only and "--lib" or "--lib --test integration"

return lb.shard {
  count = count,
  name = lib_only and "unit-tests" or "tests",
  lease = { image = "rust:1.88", cpu = 2000, memory_mb = 4096, timeout = "60m" },
  sync = { exclude = { "target/", "fuzz/target/", "recipes/tiny-crate/target/" } },
  items_from = list,
  run = function(box, shard)
    if #shard.items == 0 then
      return true
    end
    local built = box:exec(in_box(link_shared .. "cargo test --locked --no-run " .. build_flags))
    if built.code ~= 0 then
      return built
    end
    return shard.each(function(item)
      local kind, module = item:match("^(%a+):(.+)$")
      local target = kind == "lib" and "--lib" or "--test integration"
      -- The item's tests by exact name: every test whose path starts with `MODULE::`.
      local script = ([[
names=$(cargo test --locked -q %s -- --list --format terse 2>/dev/null | sed -n 's/^\(%s::.*\): test$/\1/p')
if [ -z "$names" ]; then echo "no tests under %s"; exit 0; fi
set -f
exec cargo test --locked -q %s -- --exact $names
]]):format(target, module, item, target)
      return box:exec(in_box(script))
    end)
  end,
}
