//! [`HostError`]: everything that can go wrong while running a recipe, with the [`ErrorKind`]
//! each failure keeps when it reaches the exit funnel.
//!
//! Errors cross the Lua boundary in both directions. Going in, a Rust error (a transport
//! failure from the session, a cancellation, `leasebox.fail`) is raised into Lua as an mlua
//! external error wrapping a [`HostError`]; Lua code may catch and re-raise it, and it stays the
//! same value. Coming out, [`HostError::from_lua`] looks for that value in the mlua error chain
//! (so a transport failure stays a transport failure) and otherwise classifies what Lua itself
//! raised: syntax, runtime, memory limit.

use std::sync::Arc;

use crate::error::{ErrorKind, Failure, HasKind};

/// An engine error (session, backend, lease lifecycle) as the host carries it: anything with a
/// kind, shareable so it can travel through Lua and back.
pub trait KindedError: std::error::Error + HasKind + Send + Sync + 'static {}

impl<T: std::error::Error + HasKind + Send + Sync + 'static> KindedError for T {}

/// A shared engine error.
pub type EngineError = Arc<dyn KindedError>;

/// Everything that can go wrong while loading or running a recipe.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// The recipe (or a module it requires) does not parse. The message starts with
    /// `file:line:`.
    #[error("{message}")]
    Syntax {
        /// Lua's message, `recipes/x.lua:3: unexpected symbol near 'x'`.
        message: String,
    },
    /// Lua code raised an error. The message starts with `file:line:` and ends with a
    /// traceback.
    #[error("{message}")]
    Runtime {
        /// The error and its traceback.
        message: String,
    },
    /// The recipe touched something the sandbox does not offer (`io`, `debug`, a token, a
    /// module outside the repository), or called a primitive with options it does not take (a
    /// lease option the config refuses is [`HostError::Config`]).
    #[error("{message}")]
    Sandbox {
        /// What was refused and what to do instead.
        message: String,
    },
    /// The recipe allocated more than the memory limit.
    #[error("the recipe hit the memory limit of {limit_mib} MiB{location}")]
    Memory {
        /// The limit, in MiB.
        limit_mib: usize,
        /// Where, when known (`: recipes/x.lua:3`), else empty.
        location: String,
    },
    /// `leasebox.fail(message, code)` was called.
    #[error("{message}")]
    Failed {
        /// The recipe's message.
        message: String,
        /// The exit code (1–255).
        code: i32,
    },
    /// A step's command exited non-zero (or its function returned a failure).
    #[error("step `{step}` failed with exit code {code}")]
    StepFailed {
        /// The step name.
        step: String,
        /// The exit code.
        code: i32,
    },
    /// A step raised an error; the error keeps its kind.
    #[error("step `{step}`: {source}")]
    InStep {
        /// The step name.
        step: String,
        /// What the step raised.
        source: Box<HostError>,
    },
    /// The user cancelled the run (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
    /// The engine (session, backend, lease lifecycle) failed; its kind is kept.
    #[error("{context}: {source}")]
    Engine {
        /// What the host was doing, with the recipe location when known.
        context: String,
        /// The engine's error.
        source: EngineError,
    },
    /// A recipe's `lease{}` / `warmup{}` options refused by the config
    /// ([`Config::with_recipe`](crate::config::Config::with_recipe)): a user-only key, an
    /// execution boundary, a resource above the user's limit (`trust_refused`), an unknown
    /// option or a bad value (`config_error`). Exits 78 either way.
    #[error("{context}: {source}")]
    Config {
        /// Where and what: `recipes/x.lua:3: warmup`.
        context: String,
        /// The config's refusal, naming the key, the recipe line and what to do instead.
        source: Arc<crate::config::ConfigError>,
    },
    /// `leasebox run NAME` found no recipe, or found two.
    #[error("{message}")]
    Lookup {
        /// What was looked for, where, and what exists.
        message: String,
    },
    /// The recipe file could not be read.
    #[error("cannot read recipe `{path}`: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
}

impl HasKind for HostError {
    fn kind(&self) -> ErrorKind {
        match self {
            HostError::Syntax { .. }
            | HostError::Runtime { .. }
            | HostError::Sandbox { .. }
            | HostError::Memory { .. }
            | HostError::Read { .. } => ErrorKind::RecipeError,
            HostError::Failed { .. } | HostError::StepFailed { .. } => ErrorKind::CommandFailed,
            HostError::InStep { source, .. } => source.kind(),
            HostError::Cancelled => ErrorKind::Cancelled,
            // A primitive given bad arguments (a path that leaves the workdir, say) is the
            // recipe's error, not the command line's.
            HostError::Engine { source, .. } => match source.kind() {
                ErrorKind::Usage => ErrorKind::RecipeError,
                kind => kind,
            },
            HostError::Config { source, .. } => source.kind(),
            HostError::Lookup { .. } => ErrorKind::Usage,
        }
    }
}

impl HostError {
    /// Wrap an engine error, saying what the host was doing.
    pub fn engine(context: impl Into<String>, source: impl KindedError) -> Self {
        HostError::Engine {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// The process exit code: a failed command's own code passes through, every other kind
    /// uses [`ErrorKind::exit_code`].
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::Failed { code, .. } | HostError::StepFailed { code, .. } => *code,
            HostError::InStep { source, .. } => source.exit_code(),
            other => other.kind().exit_code(),
        }
    }

    /// The failure the CLI's exit funnel reports: kind, exit code and message.
    #[must_use]
    pub fn failure(&self) -> Failure {
        let message = crate::error::render_chain(self);
        match self.kind() {
            ErrorKind::CommandFailed => Failure::command_failed(self.exit_code(), message),
            kind => Failure::new(kind, message),
        }
    }

    /// Turn an error raised through Lua back into a host error, keeping its kind.
    ///
    /// `memory_limit` (bytes) is reported when the error is an allocation failure.
    #[must_use]
    pub fn from_lua(err: &mlua::Error, memory_limit: usize) -> HostError {
        if let Some(host) = err.downcast_ref::<HostError>() {
            return host.clone();
        }
        let limit_mib = memory_limit / (1024 * 1024);
        match err {
            mlua::Error::SyntaxError { message, .. } => HostError::Syntax {
                message: message.clone(),
            },
            mlua::Error::MemoryError(_) => HostError::Memory {
                limit_mib,
                location: String::new(),
            },
            mlua::Error::RuntimeError(message) => classify_runtime(message, limit_mib),
            mlua::Error::CallbackError { cause, traceback } => {
                match HostError::from_lua(cause, memory_limit) {
                    HostError::Runtime { message } if !message.contains("stack traceback:") => {
                        HostError::Runtime {
                            message: format!("{message}\n{}", traceback.trim_end()),
                        }
                    }
                    other => other,
                }
            }
            mlua::Error::WithContext { context, cause } => {
                match HostError::from_lua(cause, memory_limit) {
                    HostError::Runtime { message } => HostError::Runtime {
                        message: format!("{context}: {message}"),
                    },
                    other => other,
                }
            }
            other => HostError::Runtime {
                message: other.to_string(),
            },
        }
    }
}

/// Lua raised a string: a plain runtime error, unless it is the sandbox speaking (the stubs of
/// removed names raise messages ending in "not available in recipes") or an allocation failure
/// that came back through `pcall` and `error` as text.
fn classify_runtime(message: &str, limit_mib: usize) -> HostError {
    let message = &tidy_traceback(message);
    let first_line = message.lines().next().unwrap_or_default();
    if first_line.contains("not available in recipes") || first_line.contains("never readable") {
        return HostError::Sandbox {
            message: message.to_owned(),
        };
    }
    if first_line.ends_with("not enough memory") {
        let location = first_line
            .strip_suffix("not enough memory")
            .unwrap_or_default()
            .trim_end_matches([' ', ':']);
        return HostError::Memory {
            limit_mib,
            location: if location.is_empty() {
                String::new()
            } else {
                format!(" at {location}")
            },
        };
    }
    HostError::Runtime {
        message: message.to_owned(),
    }
}

/// Drop the traceback lines that only show the host's plumbing (the `error` call of the
/// sandbox stubs, mlua's async wrappers), keeping the recipe's own frames.
fn tidy_traceback(message: &str) -> String {
    let noise = |line: &str| {
        let line = line.trim();
        line == "[C]: in function 'error'"
            || line == "[C]: in ?"
            || line.starts_with("[leasebox sandbox]")
            || line.contains("__mlua_async_poll")
    };
    message
        .lines()
        .filter(|line| !noise(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Raise a host error into Lua (an mlua external error that keeps the value).
pub(crate) fn raise(err: HostError) -> mlua::Error {
    mlua::Error::external(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection lost")]
    struct Transport;

    impl HasKind for Transport {
        fn kind(&self) -> ErrorKind {
            ErrorKind::TransportLost
        }
    }

    #[test]
    fn kinds_and_codes() {
        let failed = HostError::Failed {
            message: "x".into(),
            code: 7,
        };
        assert_eq!(failed.kind(), ErrorKind::CommandFailed);
        assert_eq!(failed.exit_code(), 7);
        assert_eq!(failed.failure().code, 7);
        let step = HostError::InStep {
            step: "s".into(),
            source: Box::new(HostError::engine("box:exec", Transport)),
        };
        assert_eq!(step.kind(), ErrorKind::TransportLost);
        assert_eq!(step.exit_code(), 75);
        assert_eq!(HostError::Cancelled.exit_code(), 130);
        let memory = HostError::Memory {
            limit_mib: 1,
            location: String::new(),
        };
        assert_eq!(memory.exit_code(), 65);
    }

    #[test]
    fn an_engine_error_survives_a_trip_through_lua() {
        let lua = mlua::Lua::new();
        let f = lua
            .create_function(|_, ()| -> mlua::Result<()> {
                Err(raise(HostError::engine("box:exec", Transport)))
            })
            .unwrap();
        lua.globals().set("f", f).unwrap();
        let err = lua
            .load("local ok, e = pcall(f); error(e)")
            .exec()
            .unwrap_err();
        let host = HostError::from_lua(&err, 0);
        assert_eq!(host.kind(), ErrorKind::TransportLost, "{host}");
    }
}
