//! The last failed step: what the REPL shows as `last` and reruns with `:retry`.
//!
//! In a `recipe{}` it is the step that failed (for a parallel group, the members that failed,
//! the first in declaration order giving the code and output); in an imperative recipe, or at
//! the prompt, the last `box:exec` that returned non-zero. Its output is there even when the
//! step streamed it: while failures are recorded (the REPL, `run --repl-on-failure`) every exec
//! keeps a copy of what it printed (the last [`TEE_LIMIT`] bytes of each stream).

use mlua::{Lua, Table};

use super::bindings::LuaLease;
use crate::session::{Command, ExecOutcome};

/// How much of a streamed command's stdout and stderr is kept for `last` (the tail).
pub const TEE_LIMIT: usize = 1024 * 1024;

/// What `:retry` reruns.
#[derive(Clone)]
pub(crate) enum Retry {
    /// A `box:exec` of an imperative recipe or of the prompt: the same command on the same
    /// lease.
    Exec {
        /// The lease it ran on.
        lease: Box<LuaLease>,
        /// The command as it was run.
        command: Command,
    },
    /// Steps of a `recipe{}`, by name: a top-level step, or the failed members of a parallel
    /// group (in declaration order).
    Steps(Vec<String>),
}

/// A failed step, as `last` shows it.
#[derive(Clone)]
pub(crate) struct FailedStep {
    /// The step name, or the command of a `box:exec`.
    pub step: String,
    /// The recipe line of a `box:exec` (`recipes/ci.lua:12`), when known.
    pub at: Option<String>,
    /// The exit code (for a step that raised an error, its kind's code).
    pub code: i32,
    /// Its stdout (captured, or the copy of what it streamed).
    pub stdout: Option<Vec<u8>>,
    /// Its stderr.
    pub stderr: Option<Vec<u8>>,
    /// Wall time in milliseconds.
    pub ms: u64,
    /// The error a step raised (a Lua error, a transport failure, a timeout…), if any.
    pub error: Option<String>,
    /// What `:retry` reruns.
    pub retry: Retry,
}

impl FailedStep {
    /// The record of a `box:exec` that returned non-zero.
    pub(crate) fn exec(
        lease: &LuaLease,
        command: &Command,
        outcome: &ExecOutcome,
        location: &str,
    ) -> Self {
        let at = location.trim_end_matches([':', ' ']);
        FailedStep {
            step: command.argv.join(" "),
            at: (!at.is_empty()).then(|| at.to_owned()),
            code: outcome.code,
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            ms: outcome.ms,
            error: None,
            retry: Retry::Exec {
                lease: Box::new(lease.clone()),
                command: command.clone(),
            },
        }
    }

    /// `last`: `{ code, stdout, stderr, step, ms, at?, error? }`.
    pub(crate) fn to_table(&self, lua: &Lua) -> mlua::Result<Table> {
        let table = lua.create_table()?;
        table.raw_set("code", self.code)?;
        table.raw_set("step", self.step.as_str())?;
        table.raw_set("ms", self.ms)?;
        let text = |bytes: &Option<Vec<u8>>| -> mlua::Result<mlua::Value> {
            Ok(match bytes {
                Some(b) => mlua::Value::String(lua.create_string(b)?),
                None => mlua::Value::String(lua.create_string("")?),
            })
        };
        table.raw_set("stdout", text(&self.stdout)?)?;
        table.raw_set("stderr", text(&self.stderr)?)?;
        if let Some(at) = &self.at {
            table.raw_set("at", at.as_str())?;
        }
        if let Some(error) = &self.error {
            table.raw_set("error", error.as_str())?;
        }
        Ok(table)
    }
}
