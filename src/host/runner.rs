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
use super::loader;
use super::plan::{Action, Plan, Step};
use super::sandbox::{SandboxOptions, new_vm};
use crate::config::Config;
use crate::error::{ErrorKind, HasKind};
use crate::session::{Command, SyncOptions};

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
        leases: Mutex::default(),
    });
    let state = RunState::default();
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
    RecipeReport {
        error,
        steps: state.steps.into_inner().unwrap_or_default(),
        phases: state.phases.into_inner().unwrap_or_default(),
    }
}

#[derive(Default)]
struct RunState {
    steps: Mutex<Vec<StepReport>>,
    phases: Mutex<Vec<(String, u64)>>,
}

impl RunState {
    fn phase(&self, name: &str, started: Instant) {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.phases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name.to_owned(), ms));
    }

    fn step(&self, name: &str, status: StepStatus, ms: u64, at: Instant, place: Place<'_>) {
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

async fn execute(
    run: &RecipeRun,
    ctx: &Arc<HostContext>,
    state: &RunState,
) -> Result<(), HostError> {
    let limit = run.sandbox.memory_limit;
    let from_lua = |err: mlua::Error| HostError::from_lua(&err, limit);
    let lua = new_vm(&run.sandbox, &ctx.cancel).map_err(from_lua)?;
    lua.set_app_data(Arc::clone(ctx));
    let args = RecipeArgs::parse(&run.args);
    let primitives = bindings::register(&lua, &args).map_err(from_lua)?;
    loader::install(&lua, &run.repo_root, primitives.clone()).map_err(from_lua)?;
    let source = std::fs::read_to_string(&run.path).map_err(|source| HostError::Read {
        path: run.path.display().to_string(),
        source: Arc::new(source),
    })?;
    let chunk = loader::chunk_name(&run.repo_root, &run.path);
    let function = loader::compile(&lua, &chunk, &source).map_err(from_lua)?;
    let value = function.call_async::<Value>(()).await.map_err(from_lua)?;
    match value {
        Value::Nil => Ok(()),
        Value::Table(table) if is_recipe(&lua, &table) => {
            let plan = Plan::from_table(&table).map_err(|err| HostError::Runtime {
                message: format!("{chunk}: invalid recipe: {err}"),
            })?;
            let runner = Runner {
                lua: &lua,
                ctx,
                state,
                plan: &plan,
                args: primitives.get("args").map_err(from_lua)?,
                results: lua.create_table().map_err(from_lua)?,
                limit,
            };
            runner.run().await
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

fn describe_value(value: &Value) -> String {
    match value {
        Value::Table(_) => "a table that was not made by `recipe{}`".to_owned(),
        Value::String(s) => format!("the string {:?}", s.to_string_lossy()),
        Value::Integer(i) => format!("the number {i}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        other => format!("a {}", other.type_name()),
    }
}

fn is_recipe(lua: &Lua, table: &Table) -> bool {
    let Ok(marker) = lua.named_registry_value::<Table>(RECIPE_MARKER) else {
        return false;
    };
    table.metatable().is_some_and(|mt| mt == marker)
}

struct Runner<'a> {
    lua: &'a Lua,
    ctx: &'a Arc<HostContext>,
    state: &'a RunState,
    plan: &'a Plan,
    args: Table,
    results: Table,
    limit: usize,
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
        let started = Instant::now();
        let lease = bindings::warmup(self.ctx, self.plan.lease.clone(), "").await?;
        self.state.phase("lease", started);
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
            let summary = lease
                .inner
                .sync(&options, &self.ctx.cancel)
                .await
                .map_err(|source| HostError::Engine {
                    context: "sync".to_owned(),
                    source,
                })?;
            self.state.phase("sync", started);
            eprintln!(
                "==> synced {} files ({} bytes){}{} in {} ms",
                summary.files,
                summary.bytes,
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
            );
        }
        let mut failure = self.run_steps(&lease).await;
        if !self.plan.artifacts.is_empty() && !self.ctx.cancel.is_cancelled() {
            let started = Instant::now();
            match lease
                .inner
                .fetch(&self.plan.artifacts, &self.ctx.fetch_root, &self.ctx.cancel)
                .await
            {
                Ok(summary) => eprintln!(
                    "==> fetched {} ({} files, {} bytes)",
                    self.plan.artifacts.join(", "),
                    summary.files,
                    summary.bytes
                ),
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

    async fn run_steps(&self, lease: &LuaLease) -> Option<HostError> {
        let mut first_failure = None;
        let mut stopped = false;
        for step in &self.plan.steps {
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
            let end = match &step.action {
                Action::Parallel(members) => self.run_group(step, members, lease).await,
                _ => {
                    let result = self.run_single(step, lease, None).await;
                    StepEnd {
                        result,
                        continue_on_failure: step.continue_on_failure,
                    }
                }
            };
            if let Err(err) = end.result {
                if !end.continue_on_failure || err.kind() == ErrorKind::Cancelled {
                    stopped = true;
                }
                first_failure.get_or_insert(err);
            }
        }
        first_failure
    }

    fn skip(&self, step: &Step, why: &str) {
        eprintln!("==> {}: skipped ({why})", step.name);
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

    async fn run_group(&self, group: &Step, members: &[Step], lease: &LuaLease) -> StepEnd {
        eprintln!("==> {}: {} in parallel", group.name, group.describe());
        let results = futures::future::join_all(
            (0u32..)
                .zip(members)
                .map(|(lane, member)| self.run_single(member, lease, Some((&group.name, lane)))),
        )
        .await;
        let mut continue_on_failure = true;
        let mut first = None;
        for (member, result) in members.iter().zip(results) {
            if let Err(err) = result {
                continue_on_failure &= member.continue_on_failure || group.continue_on_failure;
                first.get_or_insert(err);
            }
        }
        StepEnd {
            result: first.map_or(Ok(()), Err),
            continue_on_failure,
        }
    }

    async fn run_single(
        &self,
        step: &Step,
        lease: &LuaLease,
        place: Place<'_>,
    ) -> Result<(), HostError> {
        let started = Instant::now();
        let in_parallel = place.is_some();
        let prefix = in_parallel.then(|| step.name.clone());
        if in_parallel {
            eprintln!("==> [{}] {}", step.name, step.describe());
        } else {
            eprintln!("==> {}: {}", step.name, step.describe());
        }
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
                    .map(|value| code_of(&value))
                    .map_err(|err| HostError::from_lua(&err, self.limit))
            }
            Action::Parallel(_) => {
                unreachable!("parallel groups do not nest (checked by recipe{{}})")
            }
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.state.phase(&format!("step:{}", step.name), started);
        match result {
            Ok(0) => {
                self.state
                    .step(&step.name, StepStatus::Passed, ms, started, place);
                Ok(())
            }
            Ok(code) => {
                eprintln!("==> {}: failed with exit code {code} ({ms} ms)", step.name);
                self.state
                    .step(&step.name, StepStatus::Failed { code }, ms, started, place);
                Err(HostError::StepFailed {
                    step: step.name.clone(),
                    code,
                })
            }
            Err(err) => {
                eprintln!("==> {}: error ({ms} ms)", step.name);
                self.state.step(
                    &step.name,
                    StepStatus::Errored {
                        error_kind: err.kind(),
                    },
                    ms,
                    started,
                    place,
                );
                Err(HostError::InStep {
                    step: step.name.clone(),
                    source: Box::new(err),
                })
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
    ) -> Result<i32, HostError> {
        let command = Command {
            argv,
            env,
            cwd: step.cwd.clone(),
            timeout: step.timeout.or(self.plan.timeout),
            capture: step.capture,
            stdin: None,
        };
        let result = lease.exec(command, prefix, &self.ctx.cancel, "").await?;
        let table =
            result_table(self.lua, &result).map_err(|err| HostError::from_lua(&err, self.limit))?;
        self.results
            .raw_set(step.name.as_str(), table)
            .map_err(|err| HostError::from_lua(&err, self.limit))?;
        Ok(result.code)
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
