//! The plan of a declarative recipe: the normalised table `recipe{}` (stdlib) returns, read
//! into Rust types the runner executes. The stdlib has already validated the shapes; this only
//! converts (and reports, as a recipe error, anything that slipped through). The lease is
//! already resolved: `recipe{}` hands its `lease` table to the config (see `lease`).

use std::time::Duration;

use mlua::{AnyUserData, Function, Table, Value};

use super::decode::env_pairs;
use super::engine::LeaseOptions;
use super::lease::PlannedLease;
use crate::session::OnMismatch;

/// What a step runs.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// A script under `sh -c`.
    Shell(String),
    /// An argv, no shell.
    Argv(Vec<String>),
    /// A Lua function `function(box, ctx)`.
    Function(Function),
    /// A group of steps running concurrently.
    Parallel(Vec<Step>),
}

/// One step.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub name: String,
    pub action: Action,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub capture: bool,
    pub continue_on_failure: bool,
    pub cwd: Option<String>,
    /// Under `leasebox watch`, run only when a changed path matches (`when = { … }`).
    pub when: Option<WhenGlobs>,
}

/// A step's `when = { "src/**", "Cargo.toml" }`: gitignore-style globs, relative to the
/// repository root (a pattern without a slash matches at any depth, `!` negates).
#[derive(Debug, Clone)]
pub(crate) struct WhenGlobs {
    patterns: Vec<String>,
    matcher: ignore::gitignore::Gitignore,
}

impl WhenGlobs {
    /// The globs, each checked now so a bad one fails at the recipe.
    pub(crate) fn new(patterns: Vec<String>) -> Result<WhenGlobs, String> {
        let mut builder = ignore::gitignore::GitignoreBuilder::new("");
        for pattern in &patterns {
            builder
                .add_line(None, pattern)
                .map_err(|e| format!("`when`: invalid glob `{pattern}`: {e}"))?;
        }
        let matcher = builder
            .build()
            .map_err(|e| format!("`when`: invalid globs: {e}"))?;
        Ok(WhenGlobs { patterns, matcher })
    }

    /// Whether the changed `path` (relative, `/` separators) matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        self.matcher
            .matched_path_or_any_parents(path, false)
            .is_ignore()
    }

    /// The globs, for the line that says why a step was skipped.
    pub(crate) fn describe(&self) -> String {
        format!("{{ {} }}", self.patterns.join(", "))
    }
}

/// A declarative recipe's `sync = { exclude = …, clean = …, on_mismatch = … }`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncSpec {
    pub exclude: Vec<String>,
    pub clean: bool,
    pub on_mismatch: OnMismatch,
}

/// A whole declarative recipe.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub lease: LeaseOptions,
    /// `None` when the recipe says `sync = false`; else its extra excludes and options.
    pub sync: Option<SyncSpec>,
    pub steps: Vec<Step>,
    pub artifacts: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// `watch = { on_busy = "queue" | "restart" }`.
    pub on_busy: Option<String>,
}

fn seconds(value: Option<f64>) -> Option<Duration> {
    value.map(Duration::from_secs_f64)
}

fn strings(table: &Table) -> mlua::Result<Vec<String>> {
    table.sequence_values::<String>().collect()
}

impl Plan {
    pub(crate) fn from_table(table: &Table) -> mlua::Result<Plan> {
        // Resolved against the config by `recipe{}` (so its errors point at the recipe line).
        let lease: AnyUserData = table.get("lease")?;
        let mut lease = lease.borrow::<PlannedLease>()?.0.clone();
        let keep: bool = table.get("keep")?;
        lease.keep |= keep;
        let sync = match table.get::<Value>("sync")? {
            Value::Table(sync) => Some(SyncSpec {
                exclude: strings(&sync.get("exclude")?)?,
                clean: sync.get::<Option<bool>>("clean")?.unwrap_or(false),
                on_mismatch: match sync.get::<Value>("on_mismatch")? {
                    Value::Nil => OnMismatch::default(),
                    value => super::decode::on_mismatch_value(&value)
                        .map_err(|m| mlua::Error::runtime(format!("recipe `sync`: {m}")))?,
                },
            }),
            _ => None,
        };
        let env = env_pairs(&table.get("env")?).map_err(mlua::Error::runtime)?;
        let steps = table
            .get::<Table>("steps")?
            .sequence_values::<Table>()
            .map(|step| Step::from_table(&step?))
            .collect::<mlua::Result<_>>()?;
        let on_busy = match table.get::<Value>("watch")? {
            Value::Table(watch) => watch.get::<Option<String>>("on_busy")?,
            _ => None,
        };
        let artifacts = strings(&table.get("artifacts")?)?;
        // Refused before anything is leased: an artifact must stay inside the workdir.
        for artifact in &artifacts {
            crate::session::fetch::check_fetch_path(artifact)
                .map_err(|e| mlua::Error::runtime(format!("recipe `artifacts`: {e}")))?;
        }
        Ok(Plan {
            on_busy,
            sync,
            steps,
            artifacts,
            env,
            timeout: seconds(table.get("timeout")?),
            lease,
        })
    }
}

impl Step {
    fn from_table(table: &Table) -> mlua::Result<Step> {
        let kind: String = table.get("kind")?;
        let action = match kind.as_str() {
            "sh" => Action::Shell(table.get("command")?),
            "argv" => Action::Argv(strings(&table.get("command")?)?),
            "fn" => Action::Function(table.get("command")?),
            "parallel" => Action::Parallel(
                table
                    .get::<Table>("steps")?
                    .sequence_values::<Table>()
                    .map(|step| Step::from_table(&step?))
                    .collect::<mlua::Result<_>>()?,
            ),
            other => return Err(mlua::Error::runtime(format!("unknown step kind `{other}`"))),
        };
        Ok(Step {
            name: table.get("name")?,
            action,
            env: env_pairs(&table.get("env")?).map_err(mlua::Error::runtime)?,
            timeout: seconds(table.get("timeout")?),
            capture: table.get("capture")?,
            continue_on_failure: table.get("continue_on_failure")?,
            cwd: table.get("cwd")?,
            when: match table.get::<Option<Table>>("when")? {
                Some(globs) => {
                    Some(WhenGlobs::new(strings(&globs)?).map_err(mlua::Error::runtime)?)
                }
                None => None,
            },
        })
    }

    /// What the step runs, for the banner line.
    pub(crate) fn describe(&self) -> String {
        match &self.action {
            Action::Shell(script) => script.clone(),
            Action::Argv(argv) => argv.join(" "),
            Action::Function(_) => "(function)".to_owned(),
            Action::Parallel(steps) => steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}
