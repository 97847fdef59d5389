-- hello: the first recipe to run (`leasebox run recipes/hello.lua`).
--
-- Leases a box (a scratch directory when no Nomad cluster is configured), syncs this
-- repository into it, reads a synced file, runs two steps side by side, and fetches a small
-- report back to `target/hello/report.txt`.
--
-- Try: leasebox run hello -- greeting=bonjour
local lb = require("leasebox")

return lb.recipe {
  description = "sync the repository, run a few steps, fetch a report",
  lease = { image = "ubuntu:24.04", cpu = 500, memory_mb = 256 },
  sync = { exclude = { "target/" } },
  env = { GREETING = lb.args.greeting or "hello" },
  timeout = "5m",
  steps = {
    { "where", "echo \"running in $(pwd) on $(uname -sn)\"" },
    -- Reads a file that only exists in the box because the sync sent it.
    { "read", "mkdir -p target/hello && wc -l < recipes/hello.lua > target/hello/lines.txt" },
    { parallel = {
      { "count", "find . -type f -not -path './target/*' | wc -l > target/hello/files.txt" },
      { "greet", { "sh", "-c", "echo \"$GREETING from the box\" | tee target/hello/greeting.txt" } },
    } },
    { "report", function(box, ctx)
      local lines = box:exec { "cat", "target/hello/lines.txt", capture = true }
      local files = box:exec { "cat", "target/hello/files.txt", capture = true }
      local report = ("recipes/hello.lua has %d lines; %d files were synced; %s said: %s")
        :format(tonumber(lines.stdout), tonumber(files.stdout), ctx.results.greet and "greet" or "?",
          ctx.env.GREETING)
      lb.log(report)
      box:exec { "sh", "-c", "cat > target/hello/report.txt", stdin = report .. "\n" }
    end },
  },
  artifacts = { "target/hello/report.txt" },
}
