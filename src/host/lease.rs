//! A recipe's lease options (`leasebox.warmup{…}` and `recipe{ lease = {…} }`) as the untrusted
//! config source of DESIGN §5.
//!
//! The host does not decide what a recipe may set: it converts the Lua table into
//! [`RecipeOption`]s (strings, integers, booleans, lists, each with the recipe file and the line
//! of the `warmup{}` / `recipe{}` call) and hands them to
//! [`Config::with_recipe`], which accepts the repository's own keys only, refuses user-only keys
//! and execution boundaries (naming where to set them instead), holds resources to the user's
//! `max_*` limits, and ranks the options above `.leasebox.toml` and below flags. The lease is
//! then made from that resolved config ([`LeaseOptions`]).
//!
//! The only options that are not config keys are the host's own:
//!
//! - `keep` (boolean): keep the lease when the recipe ends;
//! - `count` (whole number, 1–1000): how many boxes the lease holds (a shard group: one Nomad
//!   job whose group has count N); the user's `max_leases` bounds it;
//! - `distinct_hosts` (boolean): at most one box of the group a node (else they are spread);
//! - `timeout`: another name for `exec_timeout` (the lease's default exec timeout), which, like
//!   every timeout of the recipe API, also takes a number of seconds. It goes through the
//!   config as `exec_timeout`.

use std::path::PathBuf;
use std::sync::Arc;

use mlua::{Table, UserData, Value};

use super::engine::LeaseOptions;
use super::error::HostError;
use crate::config::{Config, RecipeOption, Source};

/// The resolved lease of a `recipe{}` description, kept in the inert plan until the host runs
/// it (resolved at the `recipe{}` call, so errors point at it).
#[derive(Debug, Clone)]
pub(crate) struct PlannedLease(pub LeaseOptions);

impl UserData for PlannedLease {}

/// Resolve a `lease{}` / `warmup{}` table (or none) against the run's config. `frame` is the
/// recipe file and line of the call; `what` names the call for messages (`warmup`,
/// `recipe{}: lease`).
///
/// # Errors
///
/// [`HostError::Config`] for what the config refuses (exit 78: `trust_refused` for a user-only
/// key, a boundary or a resource above the limit; `config_error` for an unknown option or a bad
/// value); [`HostError::Sandbox`] for a table that is not `key = value` options.
pub(crate) fn resolve(
    config: &Config,
    spec: Option<&Table>,
    frame: Option<(String, usize)>,
    what: &str,
) -> Result<LeaseOptions, HostError> {
    let (path, line) = frame.unwrap_or_else(|| ("recipe".to_owned(), 0));
    let location = format!("{path}:{line}: ");
    let (options, own) = match spec {
        Some(spec) => {
            recipe_options(spec, &PathBuf::from(&path), line).map_err(|m| HostError::Sandbox {
                message: format!("{location}{what}: {m}"),
            })?
        }
        None => (Vec::new(), HostOptions::default()),
    };
    let resolved = config
        .with_recipe(&options)
        .map_err(|source| HostError::Config {
            context: format!("{location}{what}"),
            source: Arc::new(source),
        })?;
    let settings = resolved.settings();
    Ok(LeaseOptions {
        image: settings.nomad.image.clone(),
        cpu: settings.nomad.cpu,
        memory_mb: settings.nomad.memory_mb,
        disk_mb: settings.nomad.disk_mb,
        sync_exclude: settings.sync_exclude.clone(),
        exec_timeout: settings.exec_timeout,
        exec_timeout_forced: settings.exec_timeout.is_some()
            && resolved
                .get("exec_timeout")
                .is_some_and(|r| matches!(r.source, Source::Flag { .. })),
        keep: own.keep,
        count: own.count.unwrap_or(0),
        distinct_hosts: own.distinct_hosts,
    })
}

/// The options of a lease table that are the host's own, not config keys.
#[derive(Debug, Default)]
struct HostOptions {
    keep: bool,
    count: Option<u32>,
    distinct_hosts: bool,
}

/// The config options of a lease table (sorted by name, so the first error is always the same)
/// and the host's own (`keep`, `count`, `distinct_hosts`).
fn recipe_options(
    spec: &Table,
    path: &std::path::Path,
    line: usize,
) -> Result<(Vec<RecipeOption>, HostOptions), String> {
    let mut options = Vec::new();
    let mut own = HostOptions::default();
    for pair in spec.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        let Value::String(key) = key else {
            return Err(format!(
                "unexpected positional value {}; lease options are `key = value`, e.g. \
                 `image = \"rust:1.88\"`",
                describe(&key)
            ));
        };
        let key = key.to_str().map_err(|e| e.to_string())?.to_owned();
        if key == "keep" || key == "distinct_hosts" {
            let flag = match value {
                Value::Boolean(b) => b,
                other => {
                    return Err(format!(
                        "`{key}` must be a boolean, got {}",
                        describe(&other)
                    ));
                }
            };
            if key == "keep" {
                own.keep = flag;
            } else {
                own.distinct_hosts = flag;
            }
            continue;
        }
        if key == "count" {
            own.count = Some(match value {
                Value::Integer(n) if (1..=MAX_COUNT).contains(&n) => u32::try_from(n).unwrap_or(1),
                other => {
                    return Err(format!(
                        "`count` must be a whole number of boxes from 1 to {MAX_COUNT}, got {} (the user's `max_leases` bounds it too)",
                        describe(&other)
                    ));
                }
            });
            continue;
        }
        let is_timeout = key == "timeout" || key == "exec_timeout";
        let value = if is_timeout {
            duration_value(&key, &value)?
        } else {
            toml_value(&key, &value)?
        };
        let key = if key == "timeout" {
            "exec_timeout".to_owned()
        } else {
            key
        };
        if options.iter().any(|o: &RecipeOption| o.key == key) {
            return Err(
                "give `exec_timeout` or `timeout`, not both (they are the same option)".to_owned(),
            );
        }
        options.push(RecipeOption {
            key,
            value,
            path: path.to_path_buf(),
            line,
        });
    }
    options.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((options, own))
}

/// The most boxes one lease may hold, whatever `max_leases` says.
pub(crate) const MAX_COUNT: i64 = 1000;

/// A Lua value as the config reads it: strings, integers (a Lua float stays a float, which a
/// count refuses), booleans, lists of those.
fn toml_value(key: &str, value: &Value) -> Result<toml::Value, String> {
    Ok(match value {
        Value::String(s) => toml::Value::String(
            s.to_str()
                .map_err(|_| format!("`{key}` is not valid UTF-8"))?
                .to_owned(),
        ),
        Value::Integer(i) => toml::Value::Integer(*i),
        Value::Number(n) => toml::Value::Float(*n),
        Value::Boolean(b) => toml::Value::Boolean(*b),
        Value::Table(t) => {
            let len = t.raw_len();
            let mut items = Vec::with_capacity(len);
            for (i, item) in t.clone().sequence_values::<Value>().enumerate() {
                let item = item.map_err(|e| e.to_string())?;
                if matches!(item, Value::Table(_)) {
                    return Err(format!("`{key}[{}]` must not be a table", i + 1));
                }
                items.push(toml_value(&format!("{key}[{}]", i + 1), &item)?);
            }
            if items.len() != t.pairs::<Value, Value>().count() {
                return Err(format!(
                    "`{key}` must be a list (`{{ \"a\", \"b\" }}`), not a table with keys"
                ));
            }
            toml::Value::Array(items)
        }
        other => return Err(format!("`{key}` cannot be {}", describe(other))),
    })
}

/// A timeout option: a string (`"20m"`) as is, a number of seconds as `"<n>s"` (or `"<n>ms"`).
fn duration_value(key: &str, value: &Value) -> Result<toml::Value, String> {
    let text = match value {
        Value::Integer(i) => format!("{i}s"),
        Value::Number(n) if n.is_finite() && n.fract() == 0.0 => format!("{n:.0}s"),
        Value::Number(n) if n.is_finite() => format!("{:.0}ms", n * 1000.0),
        _ => return toml_value(key, value),
    };
    Ok(toml::Value::String(text))
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {:?}", s.to_string_lossy()),
        Value::Integer(i) => format!("the number {i}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        other => format!("a {}", other.type_name()),
    }
}
