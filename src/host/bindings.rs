//! The host primitives as Lua sees them: the `leasebox` table (`warmup`, `parallel`, `args`,
//! `log`, `fail`, `cleanup`) and the `lease` userdata (`exec`, `sync`, `fetch`, `cleanup`).
//!
//! Every primitive that waits is an async Rust function; `leasebox.parallel` joins Lua
//! functions as concurrent async calls. Host state (the lease provider, the cancellation
//! token, the leases this run holds) is reached through the VM's app data
//! ([`HostContext`]). Engine errors are raised as [`HostError::Engine`] with the recipe line
//! that caused them, and keep their kind.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{
    AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value,
};
use tokio_util::sync::CancellationToken;

use super::args::RecipeArgs;
use super::engine::{ExecResult, ExecSpec, LeaseOptions, LeaseProvider, LeasedBox, SyncSpec};
use super::error::{HostError, raise};
use super::lease::{self, PlannedLease};
use super::sandbox::{caller_frame, caller_location};
use crate::config::Config;

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
    /// The run's config, which resolves every lease's options ([`Config::with_recipe`]).
    pub config: Config,
    /// The leases this run acquired, released at the end unless kept.
    pub leases: Mutex<Vec<LuaLease>>,
}

impl HostContext {
    pub(crate) fn from_lua(lua: &Lua) -> mlua::Result<Arc<HostContext>> {
        lua.app_data_ref::<Arc<HostContext>>()
            .map(|ctx| Arc::clone(&ctx))
            .ok_or_else(|| mlua::Error::runtime("the recipe host is not installed"))
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
            if lease.keep || self.keep_all {
                if !lease.released.load(Ordering::SeqCst) {
                    let id = lease.inner.id();
                    eprintln!(
                        "==> kept lease {id}: reuse it with `--lease {id}`, release it with \
                         `leasebox stop {id}`"
                    );
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
}

impl LuaLease {
    pub(crate) fn new(inner: Arc<dyn LeasedBox>, options: LeaseOptions) -> Self {
        LuaLease {
            keep: options.keep || inner.reused(),
            inner,
            options: Arc::new(options),
            released: Arc::default(),
            prefix: None,
        }
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

    /// Run a command, with the lease's default timeout.
    pub(crate) async fn exec(
        &self,
        mut spec: ExecSpec,
        cancel: &CancellationToken,
        location: &str,
    ) -> Result<ExecResult, HostError> {
        if self.options.exec_timeout_forced || spec.timeout.is_none() {
            spec.timeout = self.options.exec_timeout;
        }
        if spec.prefix.is_none() {
            spec.prefix.clone_from(&self.prefix);
        }
        self.inner
            .exec(&spec, cancel)
            .await
            .map_err(|source| HostError::Engine {
                context: format!("{location}exec `{}`", spec.argv.join(" ")),
                source,
            })
    }

    pub(crate) async fn release_now(&self) -> Result<(), HostError> {
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

impl UserData for LuaLease {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.inner.id()));
        fields.add_field_method_get("workdir", |_, this| Ok(this.inner.workdir()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| {
            Ok(format!("lease {}", this.inner.id()))
        });
        methods.add_async_method("exec", |lua, this, spec: Value| {
            let location = caller_location(&lua);
            async move {
                this.check_live(&location)?;
                let spec = exec_spec(&spec).map_err(|m| recipe_error(&location, "exec", &m))?;
                let ctx = HostContext::from_lua(&lua)?;
                let result = this
                    .exec(spec, &ctx.cancel, &location)
                    .await
                    .map_err(raise)?;
                result_table(&lua, &result)
            }
        });
        methods.add_async_method("sync", |lua, this, spec: Option<Table>| {
            let location = caller_location(&lua);
            async move {
                this.check_live(&location)?;
                let ctx = HostContext::from_lua(&lua)?;
                let spec = sync_spec(&ctx.repo_root, &this.options, spec.as_ref())
                    .map_err(|m| recipe_error(&location, "sync", &m))?;
                let summary = this
                    .inner
                    .sync(&spec, &ctx.cancel)
                    .await
                    .map_err(|source| {
                        raise(HostError::Engine {
                            context: format!("{location}sync"),
                            source,
                        })
                    })?;
                lua.create_table_from([
                    ("files", summary.files),
                    ("bytes", summary.bytes),
                    ("deleted", summary.deleted),
                    ("ms", summary.ms),
                ])
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
                    let summary =
                        this.inner
                            .fetch(&paths, &dest, &ctx.cancel)
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
        "warmup",
        lua.create_async_function(|lua, spec: Option<Table>| {
            let frame = caller_frame(&lua);
            let location = caller_location(&lua);
            async move {
                let ctx = HostContext::from_lua(&lua)?;
                let options =
                    lease::resolve(&ctx.config, spec.as_ref(), frame, "warmup").map_err(raise)?;
                let lease = warmup(&ctx, options, &location).await.map_err(raise)?;
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
    let marker = lua.create_table()?;
    marker.raw_set("__name", "leasebox.recipe")?;
    marker.raw_set("__metatable", "leasebox.recipe")?;
    lua.set_named_registry_value(RECIPE_MARKER, &marker)?;
    table.raw_set("_recipe_mt", marker)?;
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
    if inner.reused() {
        eprintln!("==> reusing kept lease {}", inner.id());
    } else {
        eprintln!(
            "==> leased {} ({} ms)",
            inner.id(),
            started.elapsed().as_millis()
        );
    }
    let lease = LuaLease::new(inner, options);
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

fn string_value(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.to_str().map_err(|e| e.to_string())?.to_owned()),
        other => Err(format!(
            "`{key}` must be a string, got a {}",
            other.type_name()
        )),
    }
}

fn string_list(key: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(_) => Ok(vec![string_value(key, value)?]),
        Value::Table(t) => {
            let mut out = Vec::new();
            for (i, item) in t.clone().sequence_values::<Value>().enumerate() {
                let item = item.map_err(|e| e.to_string())?;
                out.push(string_value(&format!("{key}[{}]", i + 1), &item)?);
            }
            if out.len() != t.pairs::<Value, Value>().count() {
                return Err(format!("`{key}` must be a list of strings"));
            }
            Ok(out)
        }
        other => Err(format!(
            "`{key}` must be a list of strings, got a {}",
            other.type_name()
        )),
    }
}

/// A timeout: a number of seconds or a humantime string (`"20m"`, `"1h 30m"`, `"90s"`).
pub(crate) fn duration(value: &Value) -> Result<Duration, String> {
    let parsed = match value {
        Value::Integer(i) if *i > 0 => Duration::from_secs(i.unsigned_abs()),
        Value::Number(n) if *n > 0.0 && n.is_finite() && *n < 1e12 => Duration::from_secs_f64(*n),
        Value::String(s) => {
            let s = s.to_str().map_err(|e| e.to_string())?;
            humantime::parse_duration(s.trim()).map_err(|e| {
                format!("`{s}` is not a duration like \"90s\", \"20m\" or \"1h 30m\": {e}")
            })?
        }
        other => {
            return Err(format!(
                "a timeout is a positive number of seconds or a string like \"20m\", got {}",
                other
                    .to_string()
                    .unwrap_or_else(|_| other.type_name().to_owned())
            ));
        }
    };
    if parsed.is_zero() {
        return Err("a timeout must be longer than zero".to_owned());
    }
    Ok(parsed)
}

/// `exec{ "cmd", "arg", env = …, timeout = …, capture = true, cwd = …, stdin = … }` or
/// `exec("shell string")`.
pub(crate) fn exec_spec(value: &Value) -> Result<ExecSpec, String> {
    let table = match value {
        Value::String(s) => {
            return Ok(ExecSpec {
                argv: vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    s.to_str().map_err(|e| e.to_string())?.to_owned(),
                ],
                ..ExecSpec::default()
            });
        }
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "takes a shell string or a table {{ \"program\", \"arg\", …, env = …, timeout = … }}, got a {}",
                other.type_name()
            ));
        }
    };
    let mut spec = ExecSpec::default();
    let len = table.raw_len();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        match key {
            Value::Integer(i) if i >= 1 && usize::try_from(i).is_ok_and(|i| i <= len) => {}
            Value::String(key) => {
                let key = key.to_str().map_err(|e| e.to_string())?.to_owned();
                match key.as_str() {
                    "env" => spec.env = env_pairs(&value)?,
                    "timeout" => {
                        spec.timeout =
                            Some(duration(&value).map_err(|m| format!("`timeout`: {m}"))?);
                    }
                    "capture" => {
                        spec.capture = match value {
                            Value::Boolean(b) => b,
                            other => {
                                return Err(format!(
                                    "`capture` must be a boolean, got a {}",
                                    other.type_name()
                                ));
                            }
                        }
                    }
                    "cwd" => spec.cwd = Some(string_value("cwd", &value)?),
                    "stdin" => {
                        spec.stdin = Some(match &value {
                            Value::String(s) => s.as_bytes().to_vec(),
                            other => {
                                return Err(format!(
                                    "`stdin` must be a string, got a {}",
                                    other.type_name()
                                ));
                            }
                        })
                    }
                    other => {
                        return Err(format!(
                            "unknown option `{other}` (allowed: env, timeout, capture, cwd, stdin)"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unexpected key `{}`",
                    other.to_string().unwrap_or_default()
                ));
            }
        }
    }
    for item in table.clone().sequence_values::<Value>() {
        let item = item.map_err(|e| e.to_string())?;
        spec.argv.push(match item {
            Value::String(s) => s.to_str().map_err(|e| e.to_string())?.to_owned(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(format!(
                    "argv items must be strings, got a {}",
                    other.type_name()
                ));
            }
        });
    }
    if spec.argv.is_empty() {
        return Err("needs at least the program to run".to_owned());
    }
    Ok(spec)
}

/// An `env` table: string keys, string/number/boolean values.
pub(crate) fn env_pairs(value: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Table(table) = value else {
        return Err(format!(
            "`env` must be a table, got a {}",
            value.type_name()
        ));
    };
    let mut env = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        let Value::String(key) = key else {
            return Err("`env` keys must be variable names".to_owned());
        };
        let key = key.to_str().map_err(|e| e.to_string())?.to_owned();
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`{key}` is not an environment variable name (letters, digits and `_`, not \
                 starting with a digit)"
            ));
        }
        let value = match value {
            Value::String(s) => s.to_str().map_err(|e| e.to_string())?.to_owned(),
            Value::Integer(_) | Value::Number(_) | Value::Boolean(_) => {
                value.to_string().map_err(|e| e.to_string())?
            }
            other => {
                return Err(format!(
                    "`env.{key}` must be a string, got a {}",
                    other.type_name()
                ));
            }
        };
        env.push((key, value));
    }
    env.sort();
    Ok(env)
}

/// `sync{ ".", exclude = { … } }`: what to send (the repository root or a directory inside it).
fn sync_spec(
    repo_root: &Path,
    options: &LeaseOptions,
    spec: Option<&Table>,
) -> Result<SyncSpec, String> {
    let mut exclude = options.sync_exclude.clone();
    let mut root = repo_root.to_path_buf();
    if let Some(spec) = spec {
        for pair in spec.pairs::<Value, Value>() {
            let (key, value) = pair.map_err(|e| e.to_string())?;
            match key {
                Value::Integer(1) => {
                    let dir = string_value("sync[1]", &value)?;
                    let relative =
                        relative_path(&dir).map_err(|m| format!("the directory to sync: {m}"))?;
                    root = repo_root.join(relative);
                }
                Value::String(s) if s == "exclude" => {
                    exclude.extend(string_list("exclude", &value)?);
                }
                other => {
                    return Err(format!(
                        "unexpected key `{}` (sync takes {{ \".\", exclude = {{ … }} }})",
                        other.to_string().unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(SyncSpec { root, exclude })
}

/// A path relative to the workdir on the box or to the current directory here: no absolute
/// path, no `..`.
fn relative_path(path: &str) -> Result<PathBuf, String> {
    let path = Path::new(path);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{}` must be a relative path without `..`",
                    path.display()
                ));
            }
        }
    }
    Ok(out)
}

fn box_paths(value: &Value) -> Result<Vec<String>, String> {
    let paths = string_list("paths", value)?;
    if paths.is_empty() {
        return Err("give at least one path to fetch".to_owned());
    }
    for path in &paths {
        relative_path(path)?;
    }
    Ok(paths)
}

/// Where fetched files land: inside the current directory, never outside it.
fn local_dest(fetch_root: &Path, dest: &str) -> Result<PathBuf, String> {
    Ok(fetch_root.join(relative_path(dest)?))
}

/// The Lua table of an exec result: `{ code, ok, ms, stdout?, stderr? }`.
pub(crate) fn result_table(lua: &Lua, result: &ExecResult) -> mlua::Result<Table> {
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
