---@meta leasebox
-- Type annotations of the leasebox recipe API for the Lua language server (LuaLS).
-- Point your editor at this directory (`"workspace.library": ["<leasebox>/stdlib"]` in
-- `.luarc.json`) and `require("leasebox")` completes. This file is never executed.

---@class leasebox.ExecResult
---@field code integer    exit code of the command (signals as 128+n)
---@field ok boolean      `code == 0`
---@field ms integer      wall time in milliseconds
---@field stdout? string  captured stdout (only with `capture = true`)
---@field stderr? string  captured stderr (only with `capture = true`)

---@class leasebox.Transfer
---@field files integer   files sent or received
---@field bytes integer   bytes of content
---@field deleted? integer files deleted on the box (sync only): ones an earlier sync sent that are gone locally
---@field incremental? boolean only what changed was sent (sync only; false for a first or clean sync)
---@field ms integer      wall time in milliseconds

---@class leasebox.ExecOptions
---@field [integer] string          the program and its arguments (argv, no shell)
---@field env? table<string, string|number|boolean> environment set for the command
---@field timeout? string|number    "20m", "90s", "1h 30m" or seconds; a timeout exits 124
---@field capture? boolean          capture stdout/stderr into the result instead of streaming
---@field cwd? string               working directory, relative to the workdir
---@field stdin? string             bytes given to the command's stdin

---@class leasebox.ShellOptions
---@field [integer] string          the program and its arguments (default: the box's $SHELL, else /bin/sh)
---@field env? table<string, string|number|boolean> environment set for the shell
---@field cwd? string               where to start, relative to the workdir (when it exists)

---@class leasebox.ShellResult
---@field code integer    exit code of the shell (signals as 128+n)
---@field ok boolean      `code == 0`
---@field ms integer      wall time in milliseconds

---@class leasebox.SyncOptions
---@field [1]? string               directory to send, relative to the repository root (default ".")
---@field exclude? string[]         extra excludes (gitignore syntax)
---@field clean? boolean            replace the whole workdir (what the box created goes too); default: send only what changed
---@field on_mismatch? "reconcile"|"fail"  the box's sync revision is not the one this client last wrote: compare with the box's manifest and send what differs (default), or stop (exit 78)

---@class leasebox.Lease
---@field id string                 the lease id (`lbx_…`; a group's box: the group's id)
---@field workdir string            the absolute workdir inside the box
---@field index integer             a group's box: its number, 1..N (1 for a lease of one box)
---@field node? string              the name of the node the box runs on (`local` on the local backend), when known
local Lease = {}

--- Run a command in the box. A string runs under `sh -c`; a table is an argv plus options.
--- A non-zero exit is a result (`r.code`), not an error; a timeout, a lost connection or
--- Ctrl-C raise errors that keep their kind.
---@param command string|leasebox.ExecOptions
---@return leasebox.ExecResult
function Lease:exec(command) end

--- Send the repository (tracked and unignored files) into the workdir. A re-sync sends only new
--- and changed files and deletes only what an earlier sync sent that is gone locally; what the
--- box made there stays. `clean = true` replaces the workdir's whole tree instead.
---@param options? leasebox.SyncOptions
---@return leasebox.Transfer
function Lease:sync(options) end

--- Fetch paths (relative to the workdir) back into `dest` (relative to the current
--- directory, default "."), at the same relative paths.
---@param paths string|string[]
---@param dest? string
---@return leasebox.Transfer
function Lease:fetch(paths, dest) end

--- An interactive terminal in the box, with this terminal attached in raw mode until the
--- shell exits (Ctrl-C goes to the box; window changes follow). Needs a terminal on stdin.
--- Nothing (the box's `$SHELL`), a string (run under `sh -c`) or an argv with options.
--- Not recorded: a lost connection ends it with an error of kind `transport_lost`.
---@param command? string|leasebox.ShellOptions
---@return leasebox.ShellResult
function Lease:shell(command) end

--- Release the lease now (purge the box, drop the claim). Also done when the recipe ends,
--- unless the lease is kept.
function Lease:cleanup() end

--- A shard group: one lease of N boxes (`leasebox.warmup{ count = N }`), one Nomad job whose
--- task group has count N (N directories on the local backend). `group[i]` is box i (a
--- `leasebox.Lease`: exec, sync, fetch, shell on that box; its own `cleanup` is refused, the
--- group is released whole), `#group` is N.
---@class leasebox.Group
---@field id string                 the group's lease id (`lbx_…`)
---@field count integer             N, the number of boxes
---@field [integer] leasebox.Lease  box i, 1..N
---@operator len: integer
local Group = {}

--- Sync the repository to every box: the file set decided and every file read and hashed once,
--- the one archive streamed to all boxes at once (a re-sync of a kept group: each box for
--- itself, incrementally). Returns one transfer summary a box, in box order.
---@param options? leasebox.SyncOptions
---@return leasebox.Transfer[]
function Group:sync(options) end

--- Release the whole group now (purge its job, drop the claim). Also done when the recipe
--- ends, unless the group is kept.
function Group:cleanup() end

--- What a shard's function is given besides its box.
---@class leasebox.Shard
---@field index integer             this shard's number, 1..count (also `LEASEBOX_SHARD_INDEX` in its box)
---@field count integer             the number of shards (also `LEASEBOX_SHARD_COUNT` in its box)
---@field items string[]            this shard's items (`items`/`items_from`, balanced by earlier runs' durations); empty without items
---@field node? string              the name of the node the shard's box runs on, when known
local Shard = {}

--- Run `fn(item)` for each of this shard's items in order, one by one, each timed on its own
--- (the measured times balance the next split, instead of the shard's wall time shared out).
--- Every item runs; the first failing item's result (a non-zero `code`, or `false`) is
--- returned, else `{ code = 0, ok = true }`. Return it from the shard's `run`.
---@param fn fun(item: string): (integer|boolean|leasebox.ExecResult|nil)
---@return leasebox.ExecResult|{ code: integer, ok: boolean }
function Shard.each(fn) end

--- One shard's line of the verdict.
---@class leasebox.ShardResult
---@field index integer
---@field count integer
---@field status "passed"|"failed"|"errored"|"cancelled"
---@field ok boolean                `status == "passed"`
---@field code? integer             the shard's exit code
---@field error_kind? string        what kind of failure (`command_failed`, `transport_lost`, …)
---@field message? string
---@field ms integer                the shard's wall time in milliseconds
---@field node? string              the node its box ran on

---@class leasebox.ShardSpec
---@field count integer             how many boxes (shards), 1 or more; `max_leases` counts them
---@field name? string              the sharded step's name (default "shards"; keys the recorded durations)
---@field lease? leasebox.LeaseOptions  the boxes' options (each box gets all of them)
---@field sync? boolean|leasebox.SyncOptions  `false` skips the sync
---@field run? fun(box: leasebox.Lease, shard: leasebox.Shard): (integer|boolean|leasebox.ExecResult|nil)  each shard's work (or `steps`)
---@field steps? (leasebox.Step|string|function)[]  steps run in each box, as in `recipe{}` (or `run`)
---@field items? string[]           items split over the shards (`shard.items`)
---@field items_from? string        a shell command run once in box 1 (never locally), one item a line
---@field fail_fast? boolean        stop the other shards as soon as one fails
---@field distinct_hosts? boolean   at most one box a node (else spread over the nodes)
---@field artifacts? string|string[] fetched from every box to `out/shard-K/…`, also after a failure
---@field junit? string|string[]    JUnit XML files of every box, merged into `out/junit.xml`
---@field env? table<string, string|number|boolean> environment of every step (and of `items_from`)
---@field timeout? string|number    default timeout of every step

--- The repository's own config keys (resolved by the config, above `.leasebox.toml`, below
--- flags; anything else is refused) plus the host's `keep` and `timeout`.
---@class leasebox.LeaseOptions
---@field image? string             container image, `nomad.image` (image drivers only)
---@field cpu? integer              CPU in MHz, `nomad.cpu` (up to your `max_cpu`)
---@field memory_mb? integer        memory in MB, `nomad.memory_mb` (up to your `max_memory_mb`)
---@field disk_mb? integer          disk in MB, `nomad.disk_mb` (up to your `max_disk_mb`)
---@field exclude? string[]         `sync.exclude` of this lease (replaces the config's list)
---@field exec_timeout? string|number default timeout of every exec
---@field timeout? string|number    another name for `exec_timeout`
---@field keep? boolean             keep the lease when the recipe ends
---@field count? integer            a shard group of this many boxes: `warmup` returns a `leasebox.Group`
---@field distinct_hosts? boolean   a group: at most one box a node

--- The options of a shard group: the lease's, and `count`.
---@class leasebox.GroupOptions: leasebox.LeaseOptions
---@field count integer             how many boxes (1 or more; `max_leases` counts them)

---@alias leasebox.StepCommand string|string[]|fun(box: leasebox.Lease, ctx: leasebox.StepContext): (integer|boolean|leasebox.ExecResult|nil)

---@class leasebox.Step
---@field [1]? string               the step name
---@field [2]? leasebox.StepCommand the command (or use `run`)
---@field name? string
---@field run? leasebox.StepCommand
---@field env? table<string, string|number|boolean>
---@field timeout? string|number
---@field capture? boolean
---@field continue_on_failure? boolean  later steps still run if this one fails (the run still fails)
---@field cwd? string
---@field parallel? (leasebox.Step|string|function)[]  a group of steps run concurrently
---@field when? string|string[]  under `leasebox watch`: run on a rerun only when a changed path matches one of these gitignore-style globs

---@class leasebox.StepContext
---@field step string               this step's name
---@field args table                `leasebox.args`
---@field results table<string, leasebox.ExecResult>  results of the command steps so far, by name
---@field env table<string, string> the environment of this step
---@field changed? string[]         under `leasebox watch`: the changed paths of this rerun (nil on a first run)

---@class leasebox.RecipeSpec
---@field name? string
---@field description? string
---@field lease? leasebox.LeaseOptions
---@field sync? boolean|{ exclude?: string[], clean?: boolean, on_mismatch?: "reconcile"|"fail" }  `false` skips the sync
---@field steps (leasebox.Step|string|function)[]
---@field artifacts? string|string[] paths fetched after the steps, even after a failure
---@field env? table<string, string|number|boolean> environment of every step
---@field timeout? string|number    default timeout of every step
---@field keep? boolean             keep the lease when the recipe ends
---@field watch? { on_busy?: "queue"|"restart" }  what a change during a run does under `leasebox watch`

---@class leasebox.Recipe
---@class leasebox
---@field args table<integer|string, string>  arguments after `--`: `key=value` pairs as fields, the rest as 1..n
---@field version string            the leasebox version
local leasebox = {}

--- Lease a box (or reuse the one given with `--lease`) with the repository's own keys. With
--- `count = N`, a shard group of N boxes (a kept group given with `--lease` must hold N).
---@param options? leasebox.LeaseOptions
---@return leasebox.Lease
---@overload fun(options: leasebox.GroupOptions): leasebox.Group
function leasebox.warmup(options) end

--- Run functions as concurrent async calls and wait for all of them; returns their first
--- results in order. An error in one is re-raised after all finish (the first in order).
---@param functions function[]
---@return any ...
function leasebox.parallel(functions) end

--- Under `leasebox watch`, the paths whose change started this rerun (sorted, relative to the
--- repository root); nil on the first run, after Enter, and under `leasebox run`.
---@return string[]|nil
function leasebox.changed() end

--- Print a line to stderr (values joined by spaces).
---@param ... any
function leasebox.log(...) end

--- Stop the recipe with a message and an exit code (1–255, default 1).
---@param message? string
---@param code? integer
function leasebox.fail(message, code) end

--- Release expired, missing and orphaned leases of this repository.
---@param options? { dry_run?: boolean }
---@return string[] lines one per lease acted on
function leasebox.cleanup(options) end

--- Describe a declarative recipe; return it from the recipe file and the host runs it.
---@param spec leasebox.RecipeSpec
---@return leasebox.Recipe
function leasebox.recipe(spec) end

--- Fan a suite out over the N boxes of one shard group and give one verdict: lease the group,
--- sync once, split the items, run every shard at once (output prefixed `[k/N]`), fetch
--- artifacts per shard, merge JUnit files. A failing shard fails the recipe with the first
--- failing shard's code, in shard order (see docs/sharding.md).
---@param spec leasebox.ShardSpec
---@return leasebox.ShardResult[]
function leasebox.shard(spec) end

return leasebox
