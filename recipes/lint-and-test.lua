-- lint-and-test: format check, clippy and the tests of `recipes/tiny-crate`, side by side on
-- one box. Output lines are prefixed with the step name; every check runs to the end and the
-- first failing one (in the order below) gives the exit code.
local lb = require("leasebox")

local crate = "recipes/tiny-crate"

return lb.recipe {
  description = "parallel lint and test of a Rust crate",
  lease = { image = "rust:1.88", cpu = 4000, memory_mb = 4096 },
  sync = { exclude = { "target/" } },
  timeout = "20m",
  steps = {
    { parallel = {
      { "fmt", { "cargo", "fmt", "--check" }, cwd = crate },
      -- Separate target dirs so the two builds do not wait on each other's lock.
      { "clippy", { "cargo", "clippy", "--offline", "--locked", "--all-targets", "--", "-D", "warnings" },
        cwd = crate, env = { CARGO_TARGET_DIR = "target/clippy" } },
      { "test", { "cargo", "test", "--offline", "--locked" },
        cwd = crate, env = { CARGO_TARGET_DIR = "target/test" } },
    } },
    { "summary", function(box, ctx)
      for _, name in ipairs { "fmt", "clippy", "test" } do
        local r = ctx.results[name]
        lb.log(("%-7s exit %d in %d ms"):format(name, r.code, r.ms))
      end
    end },
  },
}
