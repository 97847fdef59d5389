//! Decoding the Lua tables of the recipe API into the requests of the session layer: an
//! `exec{…}` / `exec("…")` into a [`Command`], a `shell{…}` into a [`ShellRequest`], a
//! `sync{…}` into [`SyncOptions`], an `env` table, a timeout, and the relative paths of `fetch`. Each error is a message for the recipe
//! line that gave the table (the bindings add the location).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use mlua::{Table, Value};

use super::engine::LeaseOptions;
use crate::session::{Command, OnMismatch, ShellRequest, SyncOptions};

pub(crate) fn string_value(key: &str, value: &Value) -> Result<String, String> {
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
pub(crate) fn command(value: &Value) -> Result<Command, String> {
    let table = match value {
        Value::String(s) => {
            return Ok(Command {
                argv: shell_argv(s)?,
                ..Command::default()
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
    let mut spec = Command::default();
    for_options(table, |key, value| {
        match key {
            "env" => spec.env = env_pairs(&value)?,
            "timeout" => {
                spec.timeout = Some(duration(&value).map_err(|m| format!("`timeout`: {m}"))?);
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
                    Value::String(s) => Bytes::from(s.as_bytes().to_vec()),
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
        Ok(())
    })?;
    spec.argv = argv_items(table)?;
    if spec.argv.is_empty() {
        return Err("needs at least the program to run".to_owned());
    }
    Ok(spec)
}

/// The argument of `box:shell()`: nothing (the box's `$SHELL`, else `/bin/sh`), a string (run
/// under `sh -c`), or a table `{ "program", "arg", …, env = {…}, cwd = "dir" }`.
pub(crate) fn shell_request(value: &Value) -> Result<ShellRequest, String> {
    let table = match value {
        Value::Nil => return Ok(ShellRequest::default()),
        Value::String(s) => {
            return Ok(ShellRequest {
                argv: shell_argv(s)?,
                ..ShellRequest::default()
            });
        }
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "takes nothing, a shell string, or a table {{ \"program\", \"arg\", …, env = …, cwd = … }}, got a {}",
                other.type_name()
            ));
        }
    };
    let mut request = ShellRequest::default();
    for_options(table, |key, value| {
        match key {
            "env" => request.env = env_pairs(&value)?,
            "cwd" => request.cwd = Some(string_value("cwd", &value)?),
            other => return Err(format!("unknown option `{other}` (allowed: env, cwd)")),
        }
        Ok(())
    })?;
    request.argv = argv_items(table)?;
    Ok(request)
}

/// `sh -c STRING`: how a command given as one string runs.
fn shell_argv(script: &mlua::LuaString) -> Result<Vec<String>, String> {
    Ok(vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_str().map_err(|e| e.to_string())?.to_owned(),
    ])
}

/// Each named option of an argv table (`{ "program", "arg", …, name = value }`) given to
/// `option`; the sequence part is skipped, any other key refused.
fn for_options(
    table: &mlua::Table,
    mut option: impl FnMut(&str, Value) -> Result<(), String>,
) -> Result<(), String> {
    let len = table.raw_len();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        match key {
            Value::Integer(i) if i >= 1 && usize::try_from(i).is_ok_and(|i| i <= len) => {}
            Value::String(key) => option(&key.to_str().map_err(|e| e.to_string())?, value)?,
            other => {
                return Err(format!(
                    "unexpected key `{}`",
                    other.to_string().unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

/// The sequence part of an argv table: strings, or numbers written as text.
fn argv_items(table: &mlua::Table) -> Result<Vec<String>, String> {
    let mut argv = Vec::new();
    for item in table.clone().sequence_values::<Value>() {
        argv.push(match item.map_err(|e| e.to_string())? {
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
    Ok(argv)
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

/// `sync{ ".", exclude = { … }, clean = true, on_mismatch = "fail" }`: what to send (the
/// repository root or a directory inside it) and how.
pub(crate) fn sync_options(
    repo_root: &Path,
    options: &LeaseOptions,
    spec: Option<&Table>,
) -> Result<SyncOptions, String> {
    let mut exclude = options.sync_exclude.clone();
    let mut root = repo_root.to_path_buf();
    let mut clean = false;
    let mut on_mismatch = OnMismatch::default();
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
                Value::String(s) if s == "clean" => match value {
                    Value::Boolean(b) => clean = b,
                    other => {
                        return Err(format!(
                            "`clean` must be true or false, not a {}",
                            other.type_name()
                        ));
                    }
                },
                Value::String(s) if s == "on_mismatch" => {
                    on_mismatch = on_mismatch_value(&value)?;
                }
                other => {
                    return Err(format!(
                        "unexpected key `{}` (sync takes {{ \".\", exclude = {{ … }}, clean = true|false, on_mismatch = \"reconcile\"|\"fail\" }})",
                        other.to_string().unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(SyncOptions {
        root,
        excludes: exclude,
        clean,
        on_mismatch,
        ..SyncOptions::default()
    })
}

/// `on_mismatch = "reconcile"|"fail"` of a `sync` table.
pub(crate) fn on_mismatch_value(value: &Value) -> Result<OnMismatch, String> {
    match value {
        Value::String(s) if s == "reconcile" => Ok(OnMismatch::Reconcile),
        Value::String(s) if s == "fail" => Ok(OnMismatch::Fail),
        other => Err(format!(
            "`on_mismatch` must be \"reconcile\" or \"fail\", not `{}`",
            other
                .to_string()
                .unwrap_or_else(|_| other.type_name().to_owned())
        )),
    }
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

/// The paths of a `fetch`: a string or a list, each relative to the workdir.
pub(crate) fn box_paths(value: &Value) -> Result<Vec<String>, String> {
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
pub(crate) fn local_dest(fetch_root: &Path, dest: &str) -> Result<PathBuf, String> {
    Ok(fetch_root.join(relative_path(dest)?))
}
