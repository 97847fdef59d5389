//! Running a recipe file: build the sandboxed VM, load the file, and either let it run as an
//! imperative script (it returns nothing) or run the declarative plan it returns
//! (`require("leasebox").recipe{…}`): lease, sync, steps, artifacts, release.
//!
//! Step rules (DESIGN §9): a failing step stops the steps after it unless it has
//! `continue_on_failure` (the run still fails with the first failure's code); in a parallel
//! group every sibling finishes and the first failure in declaration order decides; artifacts
//! are fetched even after a failure (not after Ctrl-C); every lease the run acquired is released
//! at the end unless kept, also after an error or Ctrl-C.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mlua::{Lua, Table, Value};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::args::RecipeArgs;
use super::bindings::{
    self, HostContext, LuaLease, RECIPE_MARKER, call_step, lease_userdata, result_table,
};
use super::engine::LeaseProvider;
use super::error::HostError;
use super::last::{FailedStep, Retry};
use super::loader;
use super::plan::{Action, Plan, Step, SyncSpec};
use super::repl::{FailureRepl, Loaded, RecipeSource, ReplOnFailure, after_failure};
use super::sandbox::{SandboxOptions, new_vm};
use crate::config::Config;
use crate::error::{ErrorKind, HasKind};
use crate::events::plural;
use crate::events::{self, Event, Events};
use crate::session::{Command, ExecOutcome, SyncOptions};

/// Everything a recipe run needs besides the lease provider.
#[derive(Debug, Clone)]
pub struct RecipeRun {
    /// The recipe file (found with [`find_recipe`](super::find_recipe)).
    pub path: PathBuf,
    /// The repository root: what `require` and `sync` may reach.
    pub repo_root: PathBuf,
    /// Where fetched artifacts land (the current directory).
    pub fetch_root: PathBuf,
    /// The arguments after `--`, as given.
    pub args: Vec<String>,
    /// What the sandbox lets the recipe see.
    pub sandbox: SandboxOptions,
    /// Keep every lease when the run ends (`--keep`).
    pub keep: bool,
    /// Every sync replaces the whole workdir (`--sync-clean`).
    pub sync_clean: bool,
    /// The run's config (every layer but the recipe's): each `warmup{}` / `recipe{}` lease is
    /// this config with the recipe's options ([`Config::with_recipe`]).
    pub config: Config,
    /// The paths whose change started this rerun of `leasebox watch` (`ctx.changed`,
    /// `lb.changed()`, a step's `when`); `None` on a first run, which runs everything.
    pub changed: Option<Vec<String>>,
    /// Instead of the recipe file, one command (`leasebox watch -- CMD…`): lease, sync, run
    /// it as the step `command`.
    pub command: Option<CommandRecipe>,
    /// Where the run leaves the recipe's `watch = { on_busy = … }` as soon as the recipe is
    /// read (`leasebox watch` needs it while the first run still goes).
    pub on_busy_seen: Option<Arc<Mutex<Option<String>>>>,
    /// Where the run's steps are reported (and its `==>` lines said); the leases report to the
    /// same events through their lifecycle.
    pub events: Events,
    /// Open the REPL after a failed step (`run --repl-on-failure`, on a terminal).
    pub repl_on_failure: Option<ReplOnFailure>,
}

/// The one-command recipe of `leasebox watch -- CMD…`.
#[derive(Debug, Clone)]
pub struct CommandRecipe {
    /// The argv, run without a shell.
    pub argv: Vec<String>,
    /// Its environment (`--pass-env`).
    pub env: Vec<(String, String)>,
    /// Where it runs, relative to the workdir (where the user stands in the repository).
    pub cwd: Option<String>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StepStatus {
    /// Exit code 0.
    Passed,
    /// A non-zero exit code.
    Failed {
        /// The code.
        code: i32,
    },
    /// The step raised an error (a Lua error, a transport failure, a timeout…).
    Errored {
        /// The error kind.
        error_kind: ErrorKind,
    },
    /// Not run: an earlier step failed, or the run was cancelled.
    Skipped,
}

/// One step of a declarative recipe, as it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// The step name.
    pub name: String,
    /// How it ended.
    #[serde(flatten)]
    pub status: StepStatus,
    /// Wall time in milliseconds (0 when skipped).
    pub ms: u64,
    /// When it started (when it was skipped, for a skipped step).
    #[serde(skip)]
    pub started: Option<Instant>,
    /// Its lane: 0, or its place (0, 1, …) in the parallel group it ran in.
    pub lane: u32,
    /// The parallel group it ran in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// What a recipe run did: its error (if any), the steps, and the phase timings for
/// `--timing-json` (`lease`, `sync`, `step:NAME`, `fetch`, `release`, `total`).
#[derive(Debug, Default)]
pub struct RecipeReport {
    /// Why the run failed; `None` on success.
    pub error: Option<HostError>,
    /// The steps of a declarative recipe, in order (empty for an imperative script).
    pub steps: Vec<StepReport>,
    /// Phase name and milliseconds, in the order they ended.
    pub phases: Vec<(String, u64)>,
    /// The recipe's `watch = { on_busy = … }` (`queue` or `restart`), if it says.
    pub on_busy: Option<String>,
    /// The excludes of the run's first sync (what `leasebox watch` filters its events by).
    pub sync_excludes: Option<Vec<String>>,
}

impl RecipeReport {
    /// The process exit code: 0, a failed step's own code, or the error kind's code.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        self.error.as_ref().map_or(0, HostError::exit_code)
    }
}

/// Run a recipe file to the end and report. Never panics on recipe errors; every lease the
/// run acquired is released before this returns (unless kept).
pub async fn run_recipe(
    run: &RecipeRun,
    provider: Arc<dyn LeaseProvider>,
    cancel: &CancellationToken,
) -> RecipeReport {
    let started = Instant::now();
    let ctx = Arc::new(HostContext {
        provider,
        cancel: cancel.clone(),
        repo_root: run.repo_root.clone(),
        fetch_root: run.fetch_root.clone(),
        keep_all: run.keep,
        sync_clean: run.sync_clean,
        config: run.config.clone(),
        leases: Arc::default(),
        events: run.events.clone(),
        record: run.repl_on_failure.is_some(),
        last_failed: Arc::new(Mutex::new(None)),
        changed: run.changed.clone(),
        synced_excludes: Arc::default(),
        recipe: run
            .path
            .strip_prefix(&run.repo_root)
            .unwrap_or(&run.path)
            .to_string_lossy()
            .into_owned(),
    });
    let state = RunState {
        events: run.events.clone(),
        ..RunState::default()
    };
    let result = execute(run, &ctx, &state).await;
    let release_started = Instant::now();
    let released = ctx.release_all().await;
    state.phase("release", release_started);
    let mut error = match (result, released) {
        (Err(err), _) | (Ok(()), Err(err)) => Some(err),
        (Ok(()), Ok(())) => None,
    };
    if cancel.is_cancelled()
        && error
            .as_ref()
            .is_none_or(|e| e.kind() != ErrorKind::Cancelled)
    {
        error = Some(HostError::Cancelled);
    }
    state.phase("total", started);
    let sync_excludes = ctx
        .synced_excludes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    RecipeReport {
        error,
        steps: state.steps.into_inner().unwrap_or_default(),
        phases: state.phases.into_inner().unwrap_or_default(),
        on_busy: state
            .on_busy
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        sync_excludes,
    }
}

/// The step reports and phase timings of a run (also of the REPL's `:run` and `:retry`).
#[derive(Default)]
pub(crate) struct RunState {
    steps: Mutex<Vec<StepReport>>,
    phases: Mutex<Vec<(String, u64)>>,
    on_busy: Mutex<Option<String>>,
    events: Events,
}

impl RunState {
    pub(crate) fn phase(&self, name: &str, started: Instant) {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.phases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name.to_owned(), ms));
    }

    fn step(&self, name: &str, status: StepStatus, ms: u64, at: Instant, place: Place<'_>) {
        let (status_name, code, error_kind) = match &status {
            StepStatus::Passed => ("passed", Some(0), None),
            StepStatus::Failed { code } => ("failed", Some(*code), None),
            StepStatus::Errored { error_kind } => ("errored", None, Some(error_kind.as_str())),
            StepStatus::Skipped => ("skipped", None, None),
        };
        self.events.emit(Event::StepEnd(events::StepEnd {
            name: name.to_owned(),
            status: status_name.to_owned(),
            code,
            error_kind: error_kind.map(str::to_owned),
            ms,
            group: place.map(|(group, _)| group.to_owned()),
            lane: place.map_or(0, |(_, lane)| lane),
            shard: None,
        }));
        self.steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(StepReport {
                name: name.to_owned(),
                status,
                ms,
                started: Some(at),
                lane: place.map_or(0, |(_, lane)| lane),
                group: place.map(|(group, _)| group.to_owned()),
            });
    }
}

/// A sandboxed VM for `ctx`: the libraries, the guards, the primitives (`args` from `args`) and
/// `require` over `repo_root`. Returns the VM and the primitives table.
pub(crate) fn prepare_vm(
    sandbox: &SandboxOptions,
    ctx: &Arc<HostContext>,
    args: &[String],
    repo_root: &std::path::Path,
) -> Result<(Lua, Table), HostError> {
    let from_lua = |err: mlua::Error| HostError::from_lua(&err, sandbox.memory_limit);
    let lua = new_vm(sandbox, &ctx.cancel).map_err(from_lua)?;
    lua.set_app_data(Arc::clone(ctx));
    let args = RecipeArgs::parse(args);
    let primitives = bindings::register(&lua, &args).map_err(from_lua)?;
    loader::install(&lua, repo_root, primitives.clone()).map_err(from_lua)?;
    Ok((lua, primitives))
}

async fn execute(
    run: &RecipeRun,
    ctx: &Arc<HostContext>,
    state: &RunState,
) -> Result<(), HostError> {
    let limit = run.sandbox.memory_limit;
    let from_lua = |err: mlua::Error| HostError::from_lua(&err, limit);
    let (lua, primitives) = prepare_vm(&run.sandbox, ctx, &run.args, &run.repo_root)?;
    if let Some(command) = &run.command {
        let plan = command_plan(&ctx.config, command)?;
        let runner = Runner {
            lua: &lua,
            ctx,
            state,
            plan: &plan,
            args: primitives.get("args").map_err(from_lua)?,
            results: lua.create_table().map_err(from_lua)?,
            limit,
        };
        return runner.run().await;
    }
    let source = std::fs::read_to_string(&run.path).map_err(|source| HostError::Read {
        path: run.path.display().to_string(),
        source: Arc::new(source),
    })?;
    let chunk = loader::chunk_name(&run.repo_root, &run.path);
    let function = loader::compile(&lua, &chunk, &source).map_err(from_lua)?;
    let recipe_source = || RecipeSource {
        path: run.path.clone(),
        repo_root: run.repo_root.clone(),
    };
    let value = match function.call_async::<Value>(()).await {
        Ok(value) => value,
        Err(err) => {
            let err = from_lua(err);
            return match &run.repl_on_failure {
                Some(hooks) if opens_repl(&err, ctx) => {
                    let lease = match ctx.last_failure().map(|f| f.retry) {
                        Some(Retry::Exec { lease, .. }) => Some(*lease),
                        _ => None,
                    };
                    after_failure(FailureRepl {
                        lua: &lua,
                        ctx,
                        state,
                        primitives,
                        results: lua.create_table().map_err(from_lua)?,
                        recipe: recipe_source(),
                        loaded: Loaded::Imperative(function),
                        lease,
                        failure: err,
                        hooks,
                        limit,
                    })
                    .await
                }
                _ => Err(err),
            };
        }
    };
    match value {
        Value::Nil => Ok(()),
        Value::Table(table) if is_shard_results(&lua, &table) => Ok(()),
        Value::Table(table) if is_recipe(&lua, &table) => {
            let plan = Plan::from_table(&table).map_err(|err| HostError::Runtime {
                message: format!("{chunk}: invalid recipe: {err}"),
            })?;
            state
                .on_busy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone_from(&plan.on_busy);
            if let Some(seen) = &run.on_busy_seen {
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone_from(&plan.on_busy);
            }
            let runner = Runner {
                lua: &lua,
                ctx,
                state,
                plan: &plan,
                args: primitives.get("args").map_err(from_lua)?,
                results: lua.create_table().map_err(from_lua)?,
                limit,
            };
            let Some(hooks) = &run.repl_on_failure else {
                return runner.run().await;
            };
            let lease = runner.prepare(None).await?;
            let mut failure = runner.steps_from(&lease, 0).await;
            if let Some(err) = failure.take_if(|err| opens_repl(err, ctx)) {
                lua.globals().raw_set("recipe", &table).map_err(from_lua)?;
                let verdict = after_failure(FailureRepl {
                    lua: &lua,
                    ctx,
                    state,
                    primitives: primitives.clone(),
                    results: runner.results.clone(),
                    recipe: recipe_source(),
                    loaded: Loaded::Declarative(Box::new(plan.clone())),
                    lease: Some(lease.clone()),
                    failure: err,
                    hooks,
                    limit,
                })
                .await;
                failure = verdict.err();
            }
            runner.artifacts(&lease, failure).await
        }
        other => Err(HostError::Runtime {
            message: format!(
                "{chunk}: a recipe file must return `require(\"leasebox\").recipe{{…}}` (a \
                 declarative recipe) or nothing (an imperative script); it returned {}",
                describe_value(&other)
            ),
        }),
    }
}

/// The plan of `leasebox watch -- CMD…`: the config's lease, a sync, the one step `command`.
fn command_plan(config: &Config, command: &CommandRecipe) -> Result<Plan, HostError> {
    let lease = super::lease::resolve(config, None, None, "watch")?;
    Ok(Plan {
        lease,
        sync: Some(SyncSpec::default()),
        steps: vec![Step {
            name: "command".to_owned(),
            action: Action::Argv(command.argv.clone()),
            env: command.env.clone(),
            timeout: None,
            capture: false,
            continue_on_failure: false,
            cwd: command.cwd.clone(),
            when: None,
        }],
        artifacts: Vec::new(),
        env: Vec::new(),
        timeout: None,
        on_busy: None,
    })
}

/// Whether a failure opens the REPL under `--repl-on-failure`: a failed step or command (or
/// `lb.fail`), or an error raised after a command failed; never Ctrl-C.
fn opens_repl(err: &HostError, ctx: &HostContext) -> bool {
    match err.kind() {
        ErrorKind::Cancelled => false,
        ErrorKind::CommandFailed => true,
        _ => ctx.last_failure().is_some() || matches!(err, HostError::InStep { .. }),
    }
}

pub(crate) fn describe_value(value: &Value) -> String {
    match value {
        Value::Table(_) => "a table that was not made by `recipe{}`".to_owned(),
        Value::String(s) => format!("the string {:?}", s.to_string_lossy()),
        Value::Integer(i) => format!("the number {i}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        other => format!("a {}", other.type_name()),
    }
}

/// Whether `table` is what `shard{}` returned (the sharded run already ran).
pub(crate) fn is_shard_results(lua: &Lua, table: &Table) -> bool {
    match (
        lua.named_registry_value::<Table>(super::bindings::SHARD_MARKER),
        table.metatable(),
    ) {
        (Ok(marker), Some(mt)) => marker == mt,
        _ => false,
    }
}

pub(crate) fn is_recipe(lua: &Lua, table: &Table) -> bool {
    let Ok(marker) = lua.named_registry_value::<Table>(RECIPE_MARKER) else {
        return false;
    };
    table.metatable().is_some_and(|mt| mt == marker)
}

/// Runs a declarative plan: lease (or the box it is given), sync, steps, artifacts. The REPL
/// builds one for `:run` and `:retry` (with its own per-call context).
pub(crate) struct Runner<'a> {
    pub lua: &'a Lua,
    pub ctx: &'a Arc<HostContext>,
    pub state: &'a RunState,
    pub plan: &'a Plan,
    pub args: Table,
    pub results: Table,
    pub limit: usize,
}

/// Where a step ran: `None` on its own, else its parallel group's name and its lane in it.
type Place<'a> = Option<(&'a str, u32)>;

/// What a step (or a parallel group) ended with, and whether the run goes on after it fails.
struct StepEnd {
    result: Result<(), HostError>,
    continue_on_failure: bool,
}

impl Runner<'_> {
    async fn run(&self) -> Result<(), HostError> {
        let lease = self.prepare(None).await?;
        let failure = self.steps_from(&lease, 0).await;
        self.artifacts(&lease, failure).await
    }

    /// Lease (unless `preset` is the box to use) and sync.
    pub(crate) async fn prepare(&self, preset: Option<LuaLease>) -> Result<LuaLease, HostError> {
        let lease = match preset {
            Some(lease) => lease,
            None => {
                let started = Instant::now();
                let lease = bindings::warmup(self.ctx, self.plan.lease.clone(), "").await?;
                self.state.phase("lease", started);
                lease
            }
        };
        if let Some(extra) = &self.plan.sync {
            let started = Instant::now();
            let mut excludes = lease.options.sync_exclude.clone();
            excludes.extend(extra.exclude.iter().cloned());
            let options = SyncOptions {
                root: self.ctx.repo_root.clone(),
                excludes,
                clean: extra.clean || self.ctx.sync_clean,
                on_mismatch: extra.on_mismatch,
                ..SyncOptions::default()
            };
            let summary = lease.sync(self.ctx, &options, "").await?;
            self.state.phase("sync", started);
            self.ctx.events.say(&format!(
                "==> synced {} ({}){}{} in {} ms",
                plural(summary.files, "file"),
                plural(summary.bytes, "byte"),
                if summary.deleted > 0 {
                    format!(", deleted {}", summary.deleted)
                } else {
                    String::new()
                },
                if summary.incremental {
                    ", incremental"
                } else {
                    ""
                },
                summary.ms
            ));
        }
        Ok(lease)
    }

    /// Fetch the artifacts (also after a failure, not after Ctrl-C or once the lease is gone);
    /// the run's verdict is `failure`, or the fetch's error.
    pub(crate) async fn artifacts(
        &self,
        lease: &LuaLease,
        mut failure: Option<HostError>,
    ) -> Result<(), HostError> {
        if !self.plan.artifacts.is_empty()
            && !self.ctx.cancel.is_cancelled()
            && !lease.released.load(std::sync::atomic::Ordering::SeqCst)
        {
            let started = Instant::now();
            match lease
                .inner
                .fetch(&self.plan.artifacts, &self.ctx.fetch_root, &self.ctx.cancel)
                .await
            {
                Ok(summary) => self.ctx.events.say(&format!(
                    "==> fetched {} ({}, {})",
                    self.plan.artifacts.join(", "),
                    plural(summary.files, "file"),
                    plural(summary.bytes, "byte")
                )),
                Err(source) => {
                    let err = HostError::Engine {
                        context: format!("fetch {}", self.plan.artifacts.join(", ")),
                        source,
                    };
                    if failure.is_none() {
                        failure = Some(err);
                    } else {
                        eprintln!("leasebox: {err}");
                    }
                }
            }
            self.state.phase("fetch", started);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Run the top-level steps from index `start`; the first failure (which also becomes the
    /// context's last failed step when recording).
    pub(crate) async fn steps_from(&self, lease: &LuaLease, start: usize) -> Option<HostError> {
        let mut first_failure = None;
        let mut stopped = false;
        for step in self.plan.steps.iter().skip(start) {
            if stopped || self.ctx.cancel.is_cancelled() {
                self.skip(
                    step,
                    if stopped {
                        "an earlier step failed"
                    } else {
                        "cancelled"
                    },
                );
                continue;
            }
            if let Some(why) = self.not_wanted(step) {
                self.skip(step, &why);
                continue;
            }
            let (end, failed) = self.run_entry(step, lease).await;
            if let Err(err) = end.result {
                if !end.continue_on_failure || err.kind() == ErrorKind::Cancelled {
                    stopped = true;
                }
                if first_failure.is_none()
                    && let Some(failed) = failed
                {
                    self.ctx.record_failure(failed);
                }
                first_failure.get_or_insert(err);
            }
        }
        first_failure
    }

    /// Why a step does not run on this rerun: its `when` globs match none of the changed
    /// paths. A first run (no change list) runs every step.
    fn not_wanted(&self, step: &Step) -> Option<String> {
        let when = step.when.as_ref()?;
        let changed = self.ctx.changed.as_ref()?;
        if changed.iter().any(|path| when.matches(path)) {
            return None;
        }
        Some(format!(
            "no changed path matches its `when` {}",
            when.describe()
        ))
    }

    /// `:retry`: rerun the steps named (a top-level step, or members of one parallel group),
    /// and, when they pass, the steps after them. `Err` when no such step is in the plan.
    pub(crate) async fn retry(
        &self,
        lease: &LuaLease,
        names: &[String],
    ) -> Result<Option<HostError>, String> {
        let Some((index, members)) = self.find(names) else {
            return Err(format!(
                "the recipe has no step `{}` any more (after `:reload`?); `:run` runs it all",
                names.join("`, `")
            ));
        };
        let step = &self.plan.steps[index];
        let (end, failed) = match members {
            None => self.run_entry(step, lease).await,
            Some(members) => {
                let group = Step {
                    action: Action::Parallel(members),
                    ..step.clone()
                };
                self.run_entry(&group, lease).await
            }
        };
        if let Err(err) = end.result {
            if let Some(failed) = failed {
                self.ctx.record_failure(failed);
            }
            if end.continue_on_failure && err.kind() != ErrorKind::Cancelled {
                let later = self.steps_from(lease, index + 1).await;
                return Ok(Some(later.unwrap_or(err)));
            }
            for later in self.plan.steps.iter().skip(index + 1) {
                self.skip(later, "an earlier step failed");
            }
            return Ok(Some(err));
        }
        Ok(self.steps_from(lease, index + 1).await)
    }

    /// The top-level index of the step named `names[0]`, and for a group member the group's
    /// members among `names`.
    fn find(&self, names: &[String]) -> Option<(usize, Option<Vec<Step>>)> {
        let first = names.first()?;
        self.plan
            .steps
            .iter()
            .enumerate()
            .find_map(|(index, step)| match &step.action {
                Action::Parallel(members) => members.iter().any(|m| &m.name == first).then(|| {
                    let chosen = members
                        .iter()
                        .filter(|m| names.contains(&m.name))
                        .cloned()
                        .collect();
                    (index, Some(chosen))
                }),
                _ => (&step.name == first).then_some((index, None)),
            })
    }

    /// Run one top-level entry (a step or a group); on failure also the failed-step record.
    async fn run_entry(&self, step: &Step, lease: &LuaLease) -> (StepEnd, Option<FailedStep>) {
        match &step.action {
            Action::Parallel(members) => self.run_group(step, members, lease).await,
            _ => {
                let (result, failed) = self.run_single(step, lease, None).await;
                (
                    StepEnd {
                        result,
                        continue_on_failure: step.continue_on_failure,
                    },
                    failed,
                )
            }
        }
    }

    fn skip(&self, step: &Step, why: &str) {
        self.ctx
            .events
            .say(&format!("==> {}: skipped ({why})", step.name));
        let now = Instant::now();
        match &step.action {
            Action::Parallel(members) => {
                for (lane, member) in (0u32..).zip(members) {
                    let place = Some((step.name.as_str(), lane));
                    self.state
                        .step(&member.name, StepStatus::Skipped, 0, now, place);
                }
            }
            _ => self
                .state
                .step(&step.name, StepStatus::Skipped, 0, now, None),
        }
    }

    async fn run_group(
        &self,
        group: &Step,
        members: &[Step],
        lease: &LuaLease,
    ) -> (StepEnd, Option<FailedStep>) {
        self.ctx.events.say(&format!(
            "==> {}: {} in parallel",
            group.name,
            group.describe()
        ));
        let results = futures::future::join_all((0u32..).zip(members).map(|(lane, member)| {
            let place = Some((group.name.as_str(), lane));
            async move {
                if let Some(why) = self.not_wanted(member) {
                    self.ctx
                        .events
                        .say(&format!("==> [{}] skipped ({why})", member.name));
                    self.state
                        .step(&member.name, StepStatus::Skipped, 0, Instant::now(), place);
                    return (Ok(()), None);
                }
                self.run_single(member, lease, place).await
            }
        }))
        .await;
        let mut continue_on_failure = true;
        let mut first = None;
        let mut record: Option<FailedStep> = None;
        let mut failed_names = Vec::new();
        for (member, (result, failed)) in members.iter().zip(results) {
            if let Err(err) = result {
                continue_on_failure &= member.continue_on_failure || group.continue_on_failure;
                first.get_or_insert(err);
                failed_names.push(member.name.clone());
                if record.is_none() {
                    record = failed;
                }
            }
        }
        if let Some(record) = &mut record {
            record.retry = Retry::Steps(failed_names);
        }
        (
            StepEnd {
                result: first.map_or(Ok(()), Err),
                continue_on_failure,
            },
            record,
        )
    }

    async fn run_single(
        &self,
        step: &Step,
        lease: &LuaLease,
        place: Place<'_>,
    ) -> (Result<(), HostError>, Option<FailedStep>) {
        let started = Instant::now();
        let in_parallel = place.is_some();
        let prefix = in_parallel.then(|| step.name.clone());
        if in_parallel {
            self.ctx
                .events
                .say(&format!("==> [{}] {}", step.name, step.describe()));
        } else {
            self.ctx
                .events
                .say(&format!("==> {}: {}", step.name, step.describe()));
        }
        self.ctx.events.emit(Event::StepStart {
            name: step.name.clone(),
            group: place.map(|(group, _)| group.to_owned()),
            lane: place.map_or(0, |(_, lane)| lane),
            shard: None,
        });
        let mut env = self.plan.env.clone();
        for (key, value) in &step.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        let result = match &step.action {
            Action::Shell(script) => {
                let argv = vec!["sh".to_owned(), "-c".to_owned(), script.clone()];
                self.exec_step(step, lease, argv, env, prefix).await
            }
            Action::Argv(argv) => self.exec_step(step, lease, argv.clone(), env, prefix).await,
            Action::Function(function) => {
                let call = async {
                    let box_ud = lease_userdata(self.lua, lease.with_prefix(prefix))?;
                    let ctx = self.lua.create_table()?;
                    ctx.raw_set("step", step.name.as_str())?;
                    if let Some(changed) = &self.ctx.changed {
                        ctx.raw_set(
                            "changed",
                            self.lua
                                .create_sequence_from(changed.iter().map(String::as_str))?,
                        )?;
                    }
                    ctx.raw_set("args", &self.args)?;
                    ctx.raw_set("results", &self.results)?;
                    ctx.raw_set(
                        "env",
                        self.lua
                            .create_table_from(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))?,
                    )?;
                    call_step(function, box_ud, ctx).await
                };
                call.await
                    .map(|value| ExecOutcome {
                        code: code_of(&value),
                        ..ExecOutcome::default()
                    })
                    .map_err(|err| HostError::from_lua(&err, self.limit))
            }
            Action::Parallel(_) => {
                unreachable!("parallel groups do not nest (checked by recipe{{}})")
            }
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.state.phase(&format!("step:{}", step.name), started);
        let record = |code: i32, outcome: Option<ExecOutcome>, error: Option<String>| {
            let outcome = outcome.unwrap_or_default();
            FailedStep {
                step: step.name.clone(),
                at: None,
                code,
                stdout: outcome.stdout,
                stderr: outcome.stderr,
                ms,
                error,
                retry: Retry::Steps(vec![step.name.clone()]),
            }
        };
        match result {
            Ok(outcome) if outcome.code == 0 => {
                self.state
                    .step(&step.name, StepStatus::Passed, ms, started, place);
                (Ok(()), None)
            }
            Ok(outcome) => {
                let code = outcome.code;
                self.ctx.events.say(&format!(
                    "==> {}: failed with exit code {code} ({ms} ms)",
                    step.name
                ));
                self.state
                    .step(&step.name, StepStatus::Failed { code }, ms, started, place);
                (
                    Err(HostError::StepFailed {
                        step: step.name.clone(),
                        code,
                    }),
                    Some(record(code, Some(outcome), None)),
                )
            }
            Err(err) => {
                self.ctx
                    .events
                    .say(&format!("==> {}: error ({ms} ms)", step.name));
                self.state.step(
                    &step.name,
                    StepStatus::Errored {
                        error_kind: err.kind(),
                    },
                    ms,
                    started,
                    place,
                );
                let failed = record(err.exit_code(), None, Some(err.to_string()));
                (
                    Err(HostError::InStep {
                        step: step.name.clone(),
                        source: Box::new(err),
                    }),
                    Some(failed),
                )
            }
        }
    }

    async fn exec_step(
        &self,
        step: &Step,
        lease: &LuaLease,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        prefix: Option<String>,
    ) -> Result<ExecOutcome, HostError> {
        let command = Command {
            argv,
            env,
            cwd: step.cwd.clone(),
            timeout: step.timeout.or(self.plan.timeout),
            capture: step.capture,
            stdin: None,
        };
        let result = lease.exec(command, prefix, &self.ctx.cancel, "").await?;
        // The step's result shows output only when the step asked to capture it.
        let shown = if step.capture {
            result.clone()
        } else {
            ExecOutcome {
                stdout: None,
                stderr: None,
                ..result.clone()
            }
        };
        let table =
            result_table(self.lua, &shown).map_err(|err| HostError::from_lua(&err, self.limit))?;
        self.results
            .raw_set(step.name.as_str(), table)
            .map_err(|err| HostError::from_lua(&err, self.limit))?;
        Ok(result)
    }
}

/// What a step function's return value means: nothing or `true` passes, `false` fails with 1,
/// a number is an exit code, a table with a `code` (an exec result) passes that code on.
fn code_of(value: &Value) -> i32 {
    let clamp = |code: i64| i32::try_from(code.clamp(0, 255)).unwrap_or(1);
    match value {
        Value::Boolean(false) => 1,
        Value::Integer(code) => clamp(*code),
        #[expect(clippy::cast_possible_truncation, reason = "clamped to 0–255")]
        Value::Number(code) => clamp(*code as i64),
        Value::Table(table) => match table.raw_get::<Value>("code") {
            Ok(Value::Integer(code)) => clamp(code),
            _ => 0,
        },
        _ => 0,
    }
}
