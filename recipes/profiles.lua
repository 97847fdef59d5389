-- profiles: an imperative recipe (it returns nothing) driving the primitives directly.
--
-- Leases one box, syncs, builds `recipes/tiny-crate` in several profiles at once with
-- `leasebox.parallel`, compares the binaries' outputs (they must agree), fetches the
-- comparison, and fails with the first failing build's exit code.
--
-- Try: leasebox run profiles -- profiles=debug,release
local lb = require("leasebox")

local profiles = {}
for name in (lb.args.profiles or "debug,release"):gmatch("[^,]+") do
  profiles[#profiles + 1] = name
end

local box = lb.warmup { image = "rust:1.88", cpu = 2000, memory_mb = 2048, timeout = "20m" }
local sent = box:sync { ".", exclude = { "target/" } }
lb.log(("synced %d files to %s"):format(sent.files, box.id))

local crate = "recipes/tiny-crate"

-- One function per profile; leasebox.parallel runs them concurrently and returns their
-- results in order.
local builds = {}
for i, profile in ipairs(profiles) do
  builds[i] = function()
    local flags = profile == "release" and "--release" or ""
    local target = "target/profile-" .. profile
    local dir = profile == "release" and "release" or "debug"
    return box:exec {
      "sh", "-c",
      ("cargo build --offline --locked -q %s && ./%s/%s/tiny src/lib.rs"):format(flags, target, dir),
      cwd = crate, env = { CARGO_TARGET_DIR = target }, capture = true,
    }
  end
end
local results = { lb.parallel(builds) }

local first_output, failed
for i, r in ipairs(results) do
  lb.log(("%-8s exit %d in %d ms"):format(profiles[i], r.code, r.ms))
  if r.code ~= 0 then
    lb.log(r.stderr)
    failed = failed or r
  elseif first_output == nil then
    first_output = r.stdout
  elseif r.stdout ~= first_output then
    lb.fail(("profile %s printed %q, expected %q"):format(profiles[i], r.stdout, first_output), 1)
  end
end
if failed then
  lb.fail("a build failed", failed.code)
end

box:exec { "sh", "-c", "mkdir -p out && cat > out/profiles.txt", cwd = crate,
  stdin = table.concat(profiles, ",") .. ": " .. first_output }
box:fetch(crate .. "/out/profiles.txt")
box:cleanup()
