//! The events of a run, as they appear in the `--events` stream: one JSON object a line, each
//! with `schema`, `ts`, `run_id`, `seq` and `event` (the kind), then the kind's own fields.
//! Absent values are `null`, never missing, so every kind has a fixed set of keys.

use serde::Serialize;

/// The `schema` of every record this leasebox writes. Adding a kind or a field keeps the
/// version; renaming or removing one, or changing a field's meaning, bumps it.
pub const EVENTS_SCHEMA_VERSION: u32 = 1;

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run began: a recipe, or one command (`run -- CMD`).
    RunStart {
        /// The recipe as given (`hello`, `recipes/ci.lua`), for a recipe run.
        recipe: Option<String>,
        /// The command's argv, for `run -- CMD` (and `watch -- CMD`).
        command: Option<Vec<String>>,
        /// For a run of `leasebox watch`: which run it is and what started it.
        watch: Option<WatchRun>,
    },
    /// The run ended.
    RunEnd {
        /// Whether it passed (exit code 0).
        passed: bool,
        /// The process exit code.
        exit_code: i32,
        /// `null` on success, else an `error_kind` of `docs/exit-codes.md`.
        error_kind: Option<String>,
        /// The run's wall time.
        ms: u64,
        /// For a run of `leasebox watch`: which run it was, and whether a change stopped it
        /// (`on_busy = restart`).
        watch: Option<WatchRunEnd>,
    },
    /// `leasebox watch` stopped watching (`q`, Ctrl-C, or an error), after its leases were
    /// released or kept: the last record of the stream, under the last run's id.
    WatchEnd {
        /// Runs started.
        runs: u32,
        /// Runs that passed.
        passed: u32,
        /// Runs that failed (not counting those stopped for a restart).
        failed: u32,
        /// Runs stopped by a change (`on_busy = restart`).
        restarted: u32,
        /// The exit code of `leasebox watch`.
        exit_code: i32,
        /// `null` when it ended with `q`, else an `error_kind` (`cancelled` for Ctrl-C).
        error_kind: Option<String>,
        /// How long it watched.
        ms: u64,
    },
    /// A new lease was asked of the backend.
    LeaseRequested {
        /// The lease id, chosen before anything exists.
        lease_id: String,
        /// `local` or `nomad`.
        backend: String,
    },
    /// What the backend saw while the lease waited: the evaluation's status, a placement failure
    /// with the reason the cluster gave, or the allocation's state.
    LeaseWaiting {
        /// The lease id.
        lease_id: String,
        /// `registered`, `evaluation`, `placement_failed` or `allocation`.
        stage: String,
        /// The status as the backend reports it (`pending`, `complete`, `running`, …).
        status: String,
        /// Why, for a placement failure.
        reason: Option<String>,
        /// The backend's job (Nomad job id), once known.
        job: Option<String>,
        /// The evaluation or allocation id the status belongs to.
        id: Option<String>,
        /// The node, once placed.
        node: Option<String>,
        /// Since the lease was requested.
        elapsed_ms: u64,
    },
    /// The lease's box was placed on a node (Nomad: its allocation got one).
    LeasePlaced {
        /// The lease id.
        lease_id: String,
        /// The backend's job (Nomad job id).
        job: Option<String>,
        /// The allocation.
        allocation: Option<String>,
        /// The node.
        node: Option<String>,
    },
    /// The lease is ready: its box accepts commands (new, or a kept lease reused).
    LeaseReady {
        /// The lease id.
        lease_id: String,
        /// `local` or `nomad`.
        backend: String,
        /// The backend's job (Nomad job id).
        job: Option<String>,
        /// The allocation.
        allocation: Option<String>,
        /// The node.
        node: Option<String>,
        /// The workdir in the box.
        workdir: String,
        /// Whether it is a kept lease attached with `--lease ID`.
        reused: bool,
        /// From the request to ready (0 for a reused lease).
        ms: u64,
    },
    /// The lease was released: its box is gone and its claim dropped.
    LeaseReleased {
        /// The lease id.
        lease_id: String,
        /// How long the release took.
        ms: u64,
    },
    /// The run ended and left the lease in place (`--keep`, `--keep-on-failure`, a reused
    /// lease, or a failed release).
    LeaseKept {
        /// The lease id.
        lease_id: String,
        /// Why: `kept` (asked to), `reused` (a kept lease the run only borrowed) or
        /// `release_failed`.
        reason: String,
    },
    /// A sync began; what it sends is decided.
    SyncStart {
        /// The lease id.
        lease_id: String,
        /// Files and links it sends (the whole file set for a first or clean sync, else the
        /// new and changed ones).
        files: u64,
        /// Bytes of file content it sends.
        bytes: u64,
    },
    /// A sync ended.
    SyncEnd {
        /// The lease id.
        lease_id: String,
        /// Files and links sent.
        files: u64,
        /// Bytes of file content sent.
        bytes: u64,
        /// Files and links deleted in the box (ones an earlier sync sent that are gone or now
        /// excluded locally).
        deleted: u64,
        /// Whether only what changed was sent (`false`: the whole file set, a first or clean
        /// sync).
        incremental: bool,
        /// Wall time.
        ms: u64,
        /// `null` when it succeeded, else the `error_kind`.
        error_kind: Option<String>,
    },
    /// A step began.
    StepStart {
        /// The step's name (`command` for `run -- CMD`).
        name: String,
        /// The parallel group it runs in.
        group: Option<String>,
        /// Its lane: 0, or its place in its parallel group.
        lane: u32,
        /// Its shard, in a sharded run.
        shard: Option<u32>,
    },
    /// A step ended.
    StepEnd(StepEnd),
    /// A fetch began.
    FetchStart {
        /// The lease id.
        lease_id: String,
        /// The paths asked for, relative to the workdir.
        paths: Vec<String>,
    },
    /// A fetch ended.
    FetchEnd {
        /// The lease id.
        lease_id: String,
        /// The paths asked for.
        paths: Vec<String>,
        /// Files, directories and links written.
        files: u64,
        /// Bytes of file content written.
        bytes: u64,
        /// Wall time.
        ms: u64,
        /// `null` when it succeeded, else the `error_kind`.
        error_kind: Option<String>,
    },
    /// A shard of a sharded run ended (`leasebox.shard{}`, `run --shards N`): a row of the
    /// shard table.
    ShardEnd {
        /// The sharded step's name (`shards` unless the recipe names it).
        name: String,
        /// The shard, 1..=count.
        shard: u32,
        /// How many shards.
        count: u32,
        /// How many items it ran, in an item split.
        items: Option<u64>,
        /// `passed`, `failed`, `errored` or `cancelled` (stopped by `fail_fast`, or Ctrl-C).
        status: String,
        /// Its exit code, when it ran to an end.
        code: Option<i32>,
        /// Wall time.
        ms: u64,
        /// The node its box ran on.
        node: Option<String>,
    },
    /// Something the user should know that does not stop the run.
    Warning {
        /// The warning, as printed.
        message: String,
    },
}

/// The place of a run in `leasebox watch` (in its `run_start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchRun {
    /// 1 for the first run, then 2, 3, …
    pub number: u32,
    /// What started it: `start` (the first run), `change` (files of the sync set changed),
    /// `key` (Enter) or `rescan` (the system dropped file events: anything may have changed).
    pub trigger: String,
    /// The changed paths (repository-relative, `/`-separated, sorted; the first
    /// [`WATCH_CHANGED_LIMIT`]), as the recipe sees them; `null` when the run reruns everything
    /// (`start`, `key`, `rescan`).
    pub changed: Option<Vec<String>>,
    /// How many paths changed (also beyond the list's limit).
    pub changed_count: u64,
}

/// How many changed paths a `run_start` lists at most (a branch switch changes thousands).
pub const WATCH_CHANGED_LIMIT: usize = 100;

/// The end of a run of `leasebox watch` (in its `run_end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchRunEnd {
    /// The run's number.
    pub number: u32,
    /// Whether a change stopped it so it could start again (`on_busy = restart`).
    pub restarted: bool,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepEnd {
    /// The step's name.
    pub name: String,
    /// `passed`, `failed` (a non-zero exit code), `errored` (a Lua error, a lost connection,
    /// a timeout) or `skipped`.
    pub status: String,
    /// The exit code, when the step ran a command to its end.
    pub code: Option<i32>,
    /// The error kind, for `errored`.
    pub error_kind: Option<String>,
    /// Wall time (0 when skipped).
    pub ms: u64,
    /// The parallel group it ran in.
    pub group: Option<String>,
    /// Its lane.
    pub lane: u32,
    /// Its shard, in a sharded run.
    pub shard: Option<u32>,
}

/// An [`Event`] as written: stamped with the schema version, the time, the run and its place in
/// the run's sequence.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// [`EVENTS_SCHEMA_VERSION`].
    pub schema: u32,
    /// RFC 3339 UTC time with milliseconds.
    pub ts: String,
    /// The run this belongs to (`run_` and 12 hex digits).
    pub run_id: String,
    /// 0, 1, 2, … within the run.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Progress within a phase, for the terminal only (never in the stream): bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Bytes of the sync archive sent so far.
    Synced {
        /// Bytes sent.
        bytes: u64,
    },
    /// What a fetch has written so far.
    Fetched {
        /// Entries written.
        files: u64,
        /// Bytes of the archive received.
        bytes: u64,
    },
}
