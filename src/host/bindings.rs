//! The host primitives as Lua sees them: the `leasebox` table (`warmup`, `parallel`, `args`,
//! `log`, `fail`, `cleanup`) and the `lease` userdata (`exec`, `sync`, `fetch`, `shell`,
//! `cleanup`).
//!
//! Every primitive that waits is an async Rust function; `leasebox.parallel` joins Lua
//! functions as concurrent async calls. Host state (the lease provider, the cancellation
//! token, the leases this run holds) is reached through the VM's app data
//! ([`HostContext`]). Engine errors are raised as [`HostError::Engine`] with the recipe line
//! that caused them, and keep their kind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mlua::{
    AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value,
};
use tokio_util::sync::CancellationToken;

use super::args::RecipeArgs;
use super::decode::{self, box_paths, duration, local_dest};
use super::engine::{LeaseOptions, LeaseProvider, LeasedBox, TransferSummary};
use super::error::{HostError, raise};
use super::last::FailedStep;
use super::lease::{self, PlannedLease};
use super::sandbox::{caller_frame, caller_location};
use crate::config::Config;
use crate::session::{Command, ExecOutcome, SyncOptions};

/// The host state of one recipe run, stored in the VM's app data.
pub(crate) struct HostContext {
    /// Where boxes come from.
    pub provider: Arc<dyn LeaseProvider>,
    /// Cancelled on Ctrl-C.
    pub cancel: CancellationToken,
    /// The repository root (what `sync` sends).
    pub repo_root: PathBuf,
    /// Where fetched files land (the current directory).
    pub fetch_root: PathBuf,
    /// Keep every lease when the run ends (`--keep`).
    pub keep_all: bool,
    /// Every sync replaces the whole workdir (`--sync-clean`).
    pub sync_clean: bool,
    /// The run's config, which resolves every lease's options ([`Config::with_recipe`]).
    pub config: Config,
    /// The leases this run acquired, released at the end unless kept (shared by the per-call
    /// contexts of the REPL, [`HostContext::with_cancel`]).
    pub leases: Arc<Mutex<Vec<LuaLease>>>,
    /// Record failed steps for the REPL (`last`, `:retry`), and keep a copy of streamed output
    /// for them (the REPL and `run --repl-on-failure`).
    pub record: bool,
    /// The last failed step, when `record` is on.
    pub last_failed: Arc<Mutex<Option<FailedStep>>>,
    /// The run's events (steps, `==>` lines).
    pub events: crate::events::Events,
    /// The paths whose change started this rerun of `leasebox watch`; `None` on a first run.
    pub changed: Option<Vec<String>>,
    /// The excludes of the run's first sync (the watch filters its events by them).
    pub synced_excludes: Arc<Mutex<Option<Vec<String>>>>,
    /// The recipe's path in the repository (`repl` in the REPL): the key of its shard history.
    pub recipe: String,
}

impl HostContext {
    pub(crate) fn from_lua(lua: &Lua) -> mlua::Result<Arc<HostContext>> {
        lua.app_data_ref::<Arc<HostContext>>()
            .map(|ctx| Arc::clone(&ctx))
            .ok_or_else(|| mlua::Error::runtime("the recipe host is not installed"))
    }

    /// The same host state with another cancellation token: the REPL gives every call its own,
    /// so Ctrl-C stops that call and the prompt goes on.
    pub(crate) fn with_cancel(&self, cancel: CancellationToken) -> HostContext {
        HostContext {
            provider: Arc::clone(&self.provider),
            cancel,
            repo_root: self.repo_root.clone(),
            fetch_root: self.fetch_root.clone(),
            keep_all: self.keep_all,
            sync_clean: self.sync_clean,
            config: self.config.clone(),
            leases: Arc::clone(&self.leases),
            record: self.record,
            last_failed: Arc::clone(&self.last_failed),
            events: self.events.clone(),
            changed: self.changed.clone(),
            synced_excludes: Arc::clone(&self.synced_excludes),
            recipe: self.recipe.clone(),
        }
    }

    /// Remember a failed step (when recording).
    pub(crate) fn record_failure(&self, failed: FailedStep) {
        if self.record {
            *self
                .last_failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failed);
        }
    }

    /// The last failed step, if any.
    pub(crate) fn last_failure(&self) -> Option<FailedStep> {
        self.last_failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forget the last failed step (it passed on `:retry`).
    pub(crate) fn clear_failure(&self) {
        *self
            .last_failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Keep `lease` when the run (or the REPL) ends: its claim says so too.
    pub(crate) async fn keep_lease(&self, lease: &LuaLease) -> Result<(), HostError> {
        let id = lease.inner.id();
        lease
            .inner
            .mark_kept()
            .await
            .map_err(|source| HostError::Engine {
                context: format!("keep lease {id}"),
                source,
            })?;
        for tracked in self
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter_mut()
        {
            if tracked.inner.id() == id {
                tracked.keep = true;
            }
        }
        Ok(())
    }

    /// The leases acquired so far and not released, in order.
    pub(crate) fn live_leases(&self) -> Vec<LuaLease> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|l| !l.released.load(Ordering::SeqCst))
            .cloned()
            .collect()
    }

    pub(crate) fn track(&self, lease: &LuaLease) {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(lease.clone());
    }

    /// Release every lease not kept and not yet released; the first failure is returned.
    pub(crate) async fn release_all(&self) -> Result<(), HostError> {
        let leases: Vec<LuaLease> = self
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut first = None;
        for lease in leases {
            if lease.inner.held_by_watch() {
                continue;
            }
            if lease.keep || self.keep_all {
                if !lease.released.load(Ordering::SeqCst) {
                    let id = lease.inner.id();
                    self.events.say(&format!(
                        "==> kept lease {id}: reuse it with `--lease {id}`, release it with \
                         `leasebox stop {id}`"
                    ));
                }
                continue;
            }
            if let Err(err) = lease.release_now().await {
                eprintln!("leasebox: {err}");
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A leased box as a Lua userdata.
#[derive(Clone)]
pub(crate) struct LuaLease {
    pub inner: Arc<dyn LeasedBox>,
    pub options: Arc<LeaseOptions>,
    pub keep: bool,
    pub released: Arc<AtomicBool>,
    /// Output prefix for the commands of a step running in a parallel group.
    pub prefix: Option<String>,
    /// Keep a copy of streamed output in the result (while failures are recorded).
    pub tee: bool,
    /// The box's number in its group (1 for a lease of one box).
    pub index: u32,
    /// The shard this box runs (index, count): every exec gets `LEASEBOX_SHARD_INDEX` and
    /// `LEASEBOX_SHARD_COUNT`.
    pub shard: Option<(u32, u32)>,
    /// A token of its own (a shard's: `fail_fast` cancels it), instead of the run's.
    pub cancel: Option<CancellationToken>,
    /// The group lease this box belongs to (a box of a group is not released alone).
    pub member_of: Option<String>,
}

impl LuaLease {
    pub(crate) fn new(inner: Arc<dyn LeasedBox>, options: LeaseOptions) -> Self {
        LuaLease {
            keep: options.keep || inner.reused(),
            inner,
            options: Arc::new(options),
            released: Arc::default(),
            prefix: None,
            tee: false,
            index: 1,
            shard: None,
            cancel: None,
            member_of: None,
        }
    }

    /// The token this box's operations honour: its own (a shard's), else the run's.
    pub(crate) fn cancel_token(&self, ctx: &HostContext) -> CancellationToken {
        self.cancel.clone().unwrap_or_else(|| ctx.cancel.clone())
    }

    /// The same lease, with output lines prefixed by `prefix`.
    pub(crate) fn with_prefix(&self, prefix: Option<String>) -> Self {
        LuaLease {
            prefix,
            ..self.clone()
        }
    }

    fn check_live(&self, location: &str) -> mlua::Result<()> {
        if self.released.load(Ordering::SeqCst) {
            return Err(mlua::Error::RuntimeError(format!(
                "{location}lease {} was cleaned up and cannot be used any more",
                self.inner.id()
            )));
        }
        Ok(())
    }

    /// Run a command, with the lease's default timeout; its output lines are prefixed with
    /// `prefix`, else with the lease's own prefix.
    pub(crate) async fn exec(
        &self,
        mut command: Command,
        prefix: Option<String>,
        cancel: &CancellationToken,
        location: &str,
    ) -> Result<ExecOutcome, HostError> {
        if self.options.exec_timeout_forced || command.timeout.is_none() {
            command.timeout = self.options.exec_timeout;
        }
        if let Some((index, count)) = self.shard {
            for (name, value) in [
                ("LEASEBOX_SHARD_INDEX", index.to_string()),
                ("LEASEBOX_SHARD_COUNT", count.to_string()),
            ] {
                if !command.env.iter().any(|(k, _)| k == name) {
                    command.env.push((name.to_owned(), value));
                }
            }
        }
        let prefix = prefix.or_else(|| self.prefix.clone());
        let outcome = if self.tee {
            self.inner
                .exec_teed(&command, prefix.as_deref(), cancel)
                .await
        } else {
            self.inner.exec(&command, prefix.as_deref(), cancel).await
        };
        outcome.map_err(|source| HostError::Engine {
            context: format!("{location}exec `{}`", command.argv.join(" ")),
            source,
        })
    }

    /// Sync the repository into the box: the one place a recipe's sync (declarative or
    /// `box:sync{}`) reaches the engine, so the change hint of `leasebox watch` has one way in.
    pub(crate) async fn sync(
        &self,
        ctx: &HostContext,
        options: &SyncOptions,
        location: &str,
    ) -> Result<TransferSummary, HostError> {
        ctx.synced_excludes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(|| options.excludes.clone());
        // A rerun's changed paths are the incremental sync's hint: they are re-read whatever
        // their stat says; everything else is still checked against the index.
        let mut options = options.clone();
        if options.changed.is_none() {
            options.changed = changed_hint(ctx.changed.as_deref(), &ctx.repo_root, &options.root);
        }
        self.inner
            .sync(&options, &self.cancel_token(ctx))
            .await
            .map_err(|source| HostError::Engine {
                context: format!("{location}sync"),
                source,
            })
    }

    pub(crate) async fn release_now(&self) -> Result<(), HostError> {
        if let Some(group) = &self.member_of {
            return Err(HostError::Sandbox {
                message: format!(
                    "box {} belongs to the group lease {group}, which is released whole: call `cleanup()` on the group",
                    self.index
                ),
            });
        }
        if self.released.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Release also after Ctrl-C: a fresh token (a second Ctrl-C ends the process).
        self.inner
            .release(&CancellationToken::new())
            .await
            .map_err(|source| HostError::Engine {
                context: format!("release lease {}", self.inner.id()),
                source,
            })
    }
}

/// The methods of the `lease` userdata (`box:…`), for the REPL's completion and `:help`. Keep
/// it in step with `add_methods` below (a unit test checks it): `shell` joins it with the
/// interactive shell (`box:shell()`).
pub(crate) const LEASE_METHODS: &[&str] = &["exec", "sync", "fetch", "cleanup"];

/// The fields of the `lease` userdata (`box.id`, `box.workdir`).
pub(crate) const LEASE_FIELDS: &[&str] = &["id", "workdir", "index", "node"];

impl UserData for LuaLease {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.inner.id()));
        fields.add_field_method_get("workdir", |_, this| Ok(this.inner.workdir()));
        fields.add_field_method_get("index", |_, this| Ok(this.index));
        fields.add_field_method_get("node", |_, this| Ok(this.inner.node()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| {
            Ok(format!("lease {}", this.inner.id()))
        });
        methods.add_async_method("exec", |lua, this, spec: Value| {
            let location = caller_location(&lua);
            async move {
                this.check_live(&location)?;
                let command =
                    decode::command(&spec).map_err(|m| recipe_error(&location, "exec", &m))?;
                let ctx = HostContext::from_lua(&lua)?;
                let record = ctx.record.then(|| command.clone());
                let asked = command.capture;
                let result = this
                    .exec(command, None, &this.cancel_token(&ctx), &location)
                    .await
                    .map_err(raise)?;
                if let Some(command) = record
                    && result.code != 0
                {
                    ctx.record_failure(FailedStep::exec(&this, &command, &result, &location));
                }
                // Output is in the result only when asked for, not the copy kept for `last`.
                let shown = if asked {
                    result
                } else {
                    ExecOutcome {
                        stdout: None,
                        stderr: None,
                        ..result
                    }
                };
                result_table(&lua, &shown)
            }
        });
        methods.add_async_method("sync", |lua, this, spec: Option<Table>| {
            let location = caller_location(&lua);
            async move {
                this.check_live(&location)?;
                let ctx = HostContext::from_lua(&lua)?;
                let mut options =
                    decode::sync_options(&ctx.repo_root, &this.options, spec.as_ref())
                        .map_err(|m| recipe_error(&location, "sync", &m))?;
                options.clean |= ctx.sync_clean;
                let summary = this.sync(&ctx, &options, &location).await.map_err(raise)?;
                let result = lua.create_table_from([
                    ("files", summary.files),
                    ("bytes", summary.bytes),
                    ("deleted", summary.deleted),
                    ("ms", summary.ms),
                ])?;
                result.raw_set("incremental", summary.incremental)?;
                Ok(result)
            }
        });
        methods.add_async_method(
            "fetch",
            |lua, this, (paths, dest): (Value, Option<String>)| {
                let location = caller_location(&lua);
                async move {
                    this.check_live(&location)?;
                    let ctx = HostContext::from_lua(&lua)?;
                    let paths =
                        box_paths(&paths).map_err(|m| recipe_error(&location, "fetch", &m))?;
                    let dest = local_dest(&ctx.fetch_root, dest.as_deref().unwrap_or("."))
                        .map_err(|m| recipe_error(&location, "fetch", &m))?;
                    let summary = this
                        .inner
                        .fetch(&paths, &dest, &this.cancel_token(&ctx))
                        .await
                        .map_err(|source| {
                            raise(HostError::Engine {
                                context: format!("{location}fetch {}", paths.join(", ")),
                                source,
                            })
                        })?;
                    lua.create_table_from([
                        ("files", summary.files),
                        ("bytes", summary.bytes),
                        ("ms", summary.ms),
                    ])
                }
            },
        );
        methods.add_async_method("shell", |lua, this, spec: Value| {
            let location = caller_location(&lua);
            async move {
                this.check_live(&location)?;
                let request = decode::shell_request(&spec)
                    .map_err(|m| recipe_error(&location, "shell", &m))?;
                let ctx = HostContext::from_lua(&lua)?;
                let outcome = this
                    .inner
                    .shell(&request, &ctx.cancel)
                    .await
                    .map_err(|source| {
                        raise(HostError::Engine {
                            context: format!("{location}shell"),
                            source,
                        })
                    })?;
                let table = lua.create_table()?;
                table.raw_set("code", outcome.code)?;
                table.raw_set("ok", outcome.code == 0)?;
                table.raw_set("ms", outcome.ms)?;
                Ok(table)
            }
        });
        methods.add_async_method("cleanup", |_, this, ()| async move {
            this.release_now().await.map_err(raise)
        });
    }
}

/// A recipe error (sandbox class: the recipe asked for something the API does not offer) at
/// the recipe's line.
fn recipe_error(location: &str, what: &str, message: &str) -> mlua::Error {
    raise(HostError::Sandbox {
        message: format!("{location}{what}: {message}"),
    })
}

/// Build the `leasebox` primitives table: what `require("leasebox")` exposes, plus the
/// private helpers the stdlib uses (names starting with `_`).
pub(crate) fn register(lua: &Lua, args: &RecipeArgs) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("args", args.to_table(lua)?)?;
    table.raw_set("version", env!("CARGO_PKG_VERSION"))?;
    table.raw_set(
        "log",
        lua.create_function(|_, values: MultiValue| {
            let text: Vec<String> = values
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_owned()))
                .collect();
            eprintln!("--> {}", text.join(" "));
            Ok(())
        })?,
    )?;
    table.raw_set(
        "fail",
        lua.create_function(
            |lua, (message, code): (Value, Option<i64>)| -> mlua::Result<()> {
                let location = caller_location(lua);
                let code = code.unwrap_or(1);
                let Ok(code) = i32::try_from(code) else {
                    return Err(recipe_error(
                        &location,
                        "fail",
                        "the exit code must be 1–255",
                    ));
                };
                if !(1..=255).contains(&code) {
                    return Err(recipe_error(
                        &location,
                        "fail",
                        "the exit code must be 1–255",
                    ));
                }
                let message = match message {
                    Value::Nil => "the recipe failed".to_owned(),
                    other => other.to_string()?,
                };
                Err(raise(HostError::Failed { message, code }))
            },
        )?,
    )?;
    table.raw_set("parallel", lua.create_async_function(parallel)?)?;
    table.raw_set(
        "changed",
        lua.create_function(|lua, ()| {
            let ctx = HostContext::from_lua(lua)?;
            match &ctx.changed {
                Some(paths) => Ok(Value::Table(
                    lua.create_sequence_from(paths.iter().map(String::as_str))?,
                )),
                None => Ok(Value::Nil),
            }
        })?,
    )?;
    table.raw_set(
        "_shard_run",
        lua.create_async_function(super::group::shard_run)?,
    )?;
    table.raw_set("_split", lua.create_function(super::group::split_items)?)?;
    table.raw_set(
        "_junit_merge",
        lua.create_function(super::group::junit_merge)?,
    )?;
    table.raw_set(
        "_record_durations",
        lua.create_function(super::group::record_durations)?,
    )?;
    // Monotonic milliseconds (since the first call), for timing items of a shard one by one.
    table.raw_set(
        "_now_ms",
        lua.create_function(|_, ()| {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            let start = START.get_or_init(std::time::Instant::now);
            Ok(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
        })?,
    )?;
    table.raw_set(
        "warmup",
        lua.create_async_function(|lua, spec: Option<Table>| {
            let frame = caller_frame(&lua);
            let location = caller_location(&lua);
            async move {
                let ctx = HostContext::from_lua(&lua)?;
                let options =
                    lease::resolve(&ctx.config, spec.as_ref(), frame, "warmup").map_err(raise)?;
                let grouped = options.count > 0;
                let lease = warmup(&ctx, options, &location).await.map_err(raise)?;
                if grouped {
                    return lua.create_userdata(super::group::LuaGroup::new(lease));
                }
                lua.create_userdata(lease)
            }
        })?,
    )?;
    table.raw_set(
        "cleanup",
        lua.create_async_function(|lua, spec: Option<Table>| {
            let location = caller_location(&lua);
            async move {
                let dry_run = match &spec {
                    Some(spec) => {
                        for pair in spec.pairs::<Value, Value>() {
                            let (key, _) = pair?;
                            if key.to_string()? != "dry_run" {
                                return Err(recipe_error(
                                    &location,
                                    "cleanup",
                                    &format!(
                                        "unknown key `{}` (allowed: dry_run)",
                                        key.to_string()?
                                    ),
                                ));
                            }
                        }
                        spec.get::<Option<bool>>("dry_run")?.unwrap_or(false)
                    }
                    None => false,
                };
                let ctx = HostContext::from_lua(&lua)?;
                let lines = ctx
                    .provider
                    .sweep(dry_run, &ctx.cancel)
                    .await
                    .map_err(|source| {
                        raise(HostError::Engine {
                            context: format!("{location}cleanup"),
                            source,
                        })
                    })?;
                lua.create_sequence_from(lines)
            }
        })?,
    )?;
    table.raw_set(
        "_lease",
        lua.create_function(|lua, spec: Table| {
            let ctx = HostContext::from_lua(lua)?;
            let options = lease::resolve(
                &ctx.config,
                Some(&spec),
                caller_frame(lua),
                "recipe{}: lease",
            )
            .map_err(raise)?;
            lua.create_userdata(PlannedLease(options))
        })?,
    )?;
    table.raw_set(
        "_duration",
        lua.create_function(|_, value: Value| match duration(&value) {
            Ok(d) => Ok((Some(d.as_secs_f64()), None)),
            Err(message) => Ok((None, Some(message))),
        })?,
    )?;
    table.raw_set(
        "_at_caller",
        lua.create_function(|lua, (function, what): (Function, String)| {
            lua.create_function(move |lua, args: MultiValue| {
                let location = caller_location(lua);
                function.call::<MultiValue>(args).map_err(|err| {
                    if err.downcast_ref::<HostError>().is_some() {
                        return err;
                    }
                    raise(HostError::Sandbox {
                        message: format!("{location}{what}: {}", bare_message(&err)),
                    })
                })
            })
        })?,
    )?;
    table.raw_set(
        "_at_caller_async",
        lua.create_function(|lua, (function, what): (Function, String)| {
            lua.create_async_function(move |lua, args: MultiValue| {
                let location = caller_location(&lua);
                let function = function.clone();
                let what = what.clone();
                async move {
                    function
                        .call_async::<MultiValue>(args)
                        .await
                        .map_err(|err| {
                            if err.downcast_ref::<HostError>().is_some() {
                                return err;
                            }
                            raise(HostError::Sandbox {
                                message: format!("{location}{what}: {}", bare_message(&err)),
                            })
                        })
                }
            })
        })?,
    )?;
    let marker = lua.create_table()?;
    marker.raw_set("__name", "leasebox.recipe")?;
    marker.raw_set("__metatable", "leasebox.recipe")?;
    lua.set_named_registry_value(RECIPE_MARKER, &marker)?;
    table.raw_set("_recipe_mt", marker)?;
    let shard_marker = lua.create_table()?;
    shard_marker.raw_set("__name", "leasebox.shard_results")?;
    lua.set_named_registry_value(SHARD_MARKER, &shard_marker)?;
    table.raw_set("_shard_mt", shard_marker)?;
    Ok(table)
}

/// The message of a Lua error without mlua's wrapping and traceback.
fn bare_message(err: &mlua::Error) -> String {
    match err {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            bare_message(cause)
        }
        mlua::Error::RuntimeError(message) => message
            .split("\nstack traceback:")
            .next()
            .unwrap_or_default()
            .to_owned(),
        other => other.to_string(),
    }
}

/// The registry name of the metatable that marks what `shard{}` returns (a recipe file may
/// return it: the run is over).
pub(crate) const SHARD_MARKER: &str = "leasebox.shard_mt";

/// The registry name of the metatable that marks a `recipe{}` description.
pub(crate) const RECIPE_MARKER: &str = "leasebox.recipe_mt";

/// Acquire a lease and track it for release at the end of the run.
pub(crate) async fn warmup(
    ctx: &HostContext,
    options: LeaseOptions,
    location: &str,
) -> Result<LuaLease, HostError> {
    let started = std::time::Instant::now();
    let inner = ctx
        .provider
        .acquire(&options, &ctx.cancel)
        .await
        .map_err(|source| HostError::Engine {
            context: format!("{location}warmup"),
            source,
        })?;
    if inner.warm() {
        ctx.events
            .say(&format!("==> reusing warm lease {}", inner.id()));
    } else if inner.reused() {
        // A kept lease given with `--lease` must hold the boxes the recipe asks for.
        let held = inner.members().len().max(1);
        let asked = options.count.max(1) as usize;
        if held != asked {
            let box_word = |n: usize| if n == 1 { "box" } else { "boxes" };
            return Err(HostError::Engine {
                context: format!("{location}warmup"),
                source: Arc::new(crate::error::Failure::new(
                    crate::error::ErrorKind::OwnershipRefused,
                    format!(
                        "the kept lease {} holds {held} {}, but the recipe asks for {asked} (`count`); \
                         reuse a lease of {asked} {} (kept by a recipe's `leasebox.warmup{{ count = {asked}, keep = true }}`), or run without `--lease`",
                        inner.id(),
                        box_word(held),
                        box_word(asked)
                    ),
                )),
            });
        }
        ctx.events
            .say(&format!("==> reusing kept lease {}", inner.id()));
    } else {
        ctx.events.say(&format!(
            "==> leased {} ({} ms)",
            inner.id(),
            started.elapsed().as_millis()
        ));
    }
    let mut lease = LuaLease::new(inner, options);
    lease.tee = ctx.record;
    ctx.track(&lease);
    Ok(lease)
}

/// Attach the kept lease `id` (the REPL's `:lease take ID`) and track it (kept: the REPL does
/// not release a lease it did not make).
pub(crate) async fn attach(ctx: &HostContext, id: &str) -> Result<LuaLease, HostError> {
    let inner = ctx
        .provider
        .attach(id, &ctx.cancel)
        .await
        .map_err(|source| HostError::Engine {
            context: format!("attach lease {id}"),
            source,
        })?;
    let options = lease::resolve(&ctx.config, None, None, ":lease take")?;
    let mut lease = LuaLease::new(inner, options);
    lease.keep = true;
    lease.tee = ctx.record;
    ctx.track(&lease);
    Ok(lease)
}

/// `leasebox.parallel{ f1, f2, … }`: run the functions as concurrent async calls, wait for all,
/// return their first results in order; the first error in declaration order is re-raised
/// after every function finished.
async fn parallel(lua: Lua, functions: Table) -> mlua::Result<MultiValue> {
    let location = caller_location(&lua);
    let mut calls = Vec::new();
    for pair in functions.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let index = match key {
            Value::Integer(i) if i >= 1 => i,
            other => {
                return Err(recipe_error(
                    &location,
                    "parallel",
                    &format!(
                        "takes a list of functions, found key `{}`",
                        other.to_string()?
                    ),
                ));
            }
        };
        let Value::Function(function) = value else {
            return Err(recipe_error(
                &location,
                "parallel",
                &format!("item {index} is a {}, not a function", value.type_name()),
            ));
        };
        calls.push((index, function));
    }
    calls.sort_by_key(|(index, _)| *index);
    let results =
        futures::future::join_all(calls.iter().map(|(_, f)| f.call_async::<Value>(()))).await;
    let mut values = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(err) => {
                first_error.get_or_insert(err);
                values.push(Value::Nil);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(MultiValue::from_vec(values)),
    }
}

/// The Lua table of an exec result: `{ code, ok, ms, stdout?, stderr? }`.
pub(crate) fn result_table(lua: &Lua, result: &ExecOutcome) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("code", result.code)?;
    table.raw_set("ok", result.code == 0)?;
    table.raw_set("ms", result.ms)?;
    if let Some(stdout) = &result.stdout {
        table.raw_set("stdout", lua.create_string(stdout)?)?;
    }
    if let Some(stderr) = &result.stderr {
        table.raw_set("stderr", lua.create_string(stderr)?)?;
    }
    Ok(table)
}

/// The Lua userdata for a lease (used by the runner to hand a lease to step functions).
pub(crate) fn lease_userdata(lua: &Lua, lease: LuaLease) -> mlua::Result<AnyUserData> {
    lua.create_userdata(lease)
}

/// Call a Lua function as an async call (used by the runner for step functions).
pub(crate) async fn call_step(
    function: &Function,
    lease: AnyUserData,
    ctx: Table,
) -> mlua::Result<Value> {
    function.call_async::<Value>((lease, ctx)).await
}

/// The changed paths of a watch rerun (repository-relative, `/`-separated) as the hint of a
/// sync of `root`: relative to `root`, only those under it; `None` on a first run (no change
/// list) or for a root outside the repository.
pub(crate) fn changed_hint(
    changed: Option<&[String]>,
    repo_root: &std::path::Path,
    root: &std::path::Path,
) -> Option<Vec<String>> {
    let changed = changed?;
    let under = root.strip_prefix(repo_root).ok()?;
    if under.as_os_str().is_empty() {
        return Some(changed.to_vec());
    }
    let prefix = format!("{}/", under.to_string_lossy().replace('\\', "/"));
    Some(
        changed
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix).map(str::to_owned))
            .collect(),
    )
}

#[cfg(test)]
mod hint_tests {
    use super::changed_hint;
    use std::path::Path;

    #[test]
    fn the_hint_is_the_changed_paths_under_the_synced_root() {
        let repo = Path::new("/r");
        let changed = vec!["src/a.rs".to_owned(), "Cargo.toml".to_owned()];
        assert_eq!(
            changed_hint(None, repo, repo),
            None,
            "a first run has no hint"
        );
        assert_eq!(
            changed_hint(Some(&changed), repo, repo),
            Some(changed.clone())
        );
        assert_eq!(
            changed_hint(Some(&changed), repo, Path::new("/r/src")),
            Some(vec!["a.rs".to_owned()])
        );
        assert_eq!(
            changed_hint(Some(&changed), repo, Path::new("/elsewhere")),
            None
        );
    }
}
