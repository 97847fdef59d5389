-- rust-crate: build, test and run the dependency-free crate in `recipes/tiny-crate` on a box,
-- offline, and fetch the release binary's output.
--
-- Try: leasebox run rust-crate -- profile=debug
local lb = require("leasebox")

local profile = lb.args.profile or "release"
if profile ~= "release" and profile ~= "debug" then
  lb.fail(("profile must be `release` or `debug`, not `%s`"):format(profile), 2)
end
local flags = profile == "release" and { "--release" } or {}

local function cargo(...)
  local argv = { "cargo", ... }
  argv[#argv + 1] = "--offline"
  argv[#argv + 1] = "--locked"
  for _, flag in ipairs(flags) do
    argv[#argv + 1] = flag
  end
  return argv
end

return lb.recipe {
  description = "build and test a tiny Rust crate, offline",
  lease = { image = "rust:1.88", cpu = 2000, memory_mb = 2048 },
  sync = { exclude = { "target/", "recipes/tiny-crate/target/" } },
  timeout = "20m",
  steps = {
    { "versions", "cargo --version && rustc --version" },
    { "build", cargo("build"), cwd = "recipes/tiny-crate" },
    { "test", cargo("test"), cwd = "recipes/tiny-crate", env = { RUST_BACKTRACE = "1" } },
    { "run", function(box)
      local r = box:exec {
        "sh", "-c", "mkdir -p out && ./target/" .. profile .. "/tiny src/lib.rs | tee out/tiny.txt",
        cwd = "recipes/tiny-crate", capture = true,
      }
      if r.code ~= 0 then
        return r
      end
      if not r.stdout:find("words, longest:", 1, true) then
        lb.fail("unexpected output from tiny: " .. r.stdout)
      end
      lb.log(r.stdout)
    end },
  },
  artifacts = { "recipes/tiny-crate/out/tiny.txt" },
}
