//! Error kinds and exit codes: the one table that turns any failure into a process exit.
//!
//! Every module keeps its own error type (with the file, key or lease it is about) and says
//! which [`ErrorKind`] it is through [`HasKind`]. The CLI's exit funnel (`cli::exit`) is the
//! only place that turns a kind into a process exit code, using [`ErrorKind::exit_code`].
//! The codes are documented for users in `docs/exit-codes.md`; a test keeps the two in step.

use serde::Serialize;

/// Exit code for a usage error (clap errors included).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a recipe error: syntax, runtime, sandbox, memory limit.
pub const EXIT_RECIPE: i32 = 65;
/// Exit code for a transport lost with no recorded result (also placement and readiness failures:
/// the cluster could not give us a box right now, try again later).
pub const EXIT_TRANSPORT: i32 = 75;
/// Exit code for a config, trust, ownership or permission refusal, or a box that lacks a needed
/// tool.
pub const EXIT_CONFIG: i32 = 78;
/// Exit code for a timeout.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code for an internal error (a bug, or an environment leasebox cannot work in).
pub const EXIT_INTERNAL: i32 = 125;
/// Exit code for a run cancelled by the user (Ctrl-C).
pub const EXIT_CANCELLED: i32 = 130;

/// What went wrong, as the user and `--json` consumers see it.
///
/// The names (in `snake_case`) are the `error_kind` values of `--json` output and timing files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A command or step ran and exited non-zero; its own code passes through.
    CommandFailed,
    /// The command line was wrong.
    Usage,
    /// A recipe could not be loaded or failed inside Lua.
    RecipeError,
    /// Configuration is invalid, or the environment (state or cache dir) is unusable.
    ConfigError,
    /// A repository asked for something only a trusted repository may set.
    TrustRefused,
    /// A lease is not ours, or its claim and remote record disagree.
    OwnershipRefused,
    /// The cluster refused an operation for want of a capability (the token's ACL policy).
    PermissionDenied,
    /// The box lacks a tool leasebox's box-side scripts need.
    BoxUnsuitable,
    /// The connection to the box was lost and no recorded result could be read.
    TransportLost,
    /// The cluster could not place the box.
    PlacementFailed,
    /// The box did not become ready in time.
    ReadinessTimeout,
    /// A command or step ran longer than its timeout.
    Timeout,
    /// The user cancelled the run.
    Cancelled,
    /// A bug in leasebox.
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind. `CommandFailed` has no fixed code: the command's
    /// own code is used instead, and this returns 1 as the fallback.
    #[must_use]
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::CommandFailed => 1,
            ErrorKind::Usage => EXIT_USAGE,
            ErrorKind::RecipeError => EXIT_RECIPE,
            ErrorKind::TransportLost | ErrorKind::PlacementFailed | ErrorKind::ReadinessTimeout => {
                EXIT_TRANSPORT
            }
            ErrorKind::ConfigError
            | ErrorKind::TrustRefused
            | ErrorKind::OwnershipRefused
            | ErrorKind::PermissionDenied
            | ErrorKind::BoxUnsuitable => EXIT_CONFIG,
            ErrorKind::Timeout => EXIT_TIMEOUT,
            ErrorKind::Internal => EXIT_INTERNAL,
            ErrorKind::Cancelled => EXIT_CANCELLED,
        }
    }

    /// The `snake_case` name used in `--json` and timing files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::CommandFailed => "command_failed",
            ErrorKind::Usage => "usage",
            ErrorKind::RecipeError => "recipe_error",
            ErrorKind::ConfigError => "config_error",
            ErrorKind::TrustRefused => "trust_refused",
            ErrorKind::OwnershipRefused => "ownership_refused",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::BoxUnsuitable => "box_unsuitable",
            ErrorKind::TransportLost => "transport_lost",
            ErrorKind::PlacementFailed => "placement_failed",
            ErrorKind::ReadinessTimeout => "readiness_timeout",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }

    /// Every kind, in documentation order.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::CommandFailed,
        ErrorKind::Usage,
        ErrorKind::RecipeError,
        ErrorKind::ConfigError,
        ErrorKind::TrustRefused,
        ErrorKind::OwnershipRefused,
        ErrorKind::PermissionDenied,
        ErrorKind::BoxUnsuitable,
        ErrorKind::TransportLost,
        ErrorKind::PlacementFailed,
        ErrorKind::ReadinessTimeout,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every module's error type so the exit funnel can classify it.
pub trait HasKind {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;
}

/// A failure on its way to the exit funnel: its kind, the exit code, and the message chain.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kind, for `--json` and the timing file.
    pub kind: ErrorKind,
    /// The exit code the process ends with.
    pub code: i32,
    /// The message shown to the user (already including causes), empty for a plain command
    /// failure whose output already told the story.
    pub message: String,
    /// What a `--json` command had to say besides the error (doctor's checks, cleanup's
    /// leases): fields merged into its one JSON error object ([`Failure::to_json`]).
    pub json: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Failure {
    /// A failure of the given kind with a message; the exit code follows the kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            code: kind.exit_code(),
            message: message.into(),
            json: None,
        }
    }

    /// A command that exited with `code` (1–255): the code passes through.
    pub fn command_failed(code: i32, message: impl Into<String>) -> Self {
        Failure {
            kind: ErrorKind::CommandFailed,
            code: if (1..=255).contains(&code) { code } else { 1 },
            message: message.into(),
            json: None,
        }
    }

    /// This failure with `fields` to carry in its JSON object (a `--json` command's own output).
    #[must_use]
    pub fn with_json(mut self, fields: serde_json::Map<String, serde_json::Value>) -> Self {
        self.json = Some(fields);
        self
    }

    /// The one JSON object a `--json` command prints on failure: `error_kind`, `message`,
    /// `exit_code`, and the command's own fields.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = self.json.clone().unwrap_or_default();
        object.insert("error_kind".into(), self.kind.as_str().into());
        object.insert("message".into(), self.message.clone().into());
        object.insert("exit_code".into(), self.code.into());
        serde_json::Value::Object(object)
    }

    /// Build a failure from any classified error, rendering its whole source chain.
    pub fn from_error<E: std::error::Error + HasKind + ?Sized>(err: &E) -> Self {
        Failure::new(err.kind(), render_chain(err))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl HasKind for Failure {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Render an error and its sources as `outer: inner: innermost`, skipping a source whose text
/// the outer message already contains.
pub fn render_chain<E: std::error::Error + ?Sized>(err: &E) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_design_table() {
        assert_eq!(ErrorKind::Usage.exit_code(), 2);
        assert_eq!(ErrorKind::RecipeError.exit_code(), 65);
        assert_eq!(ErrorKind::TransportLost.exit_code(), 75);
        assert_eq!(ErrorKind::ConfigError.exit_code(), 78);
        assert_eq!(ErrorKind::TrustRefused.exit_code(), 78);
        assert_eq!(ErrorKind::OwnershipRefused.exit_code(), 78);
        assert_eq!(ErrorKind::PermissionDenied.exit_code(), 78);
        assert_eq!(ErrorKind::Timeout.exit_code(), 124);
        assert_eq!(ErrorKind::Internal.exit_code(), 125);
        assert_eq!(ErrorKind::Cancelled.exit_code(), 130);
    }

    #[test]
    fn the_json_object_carries_kind_message_code_and_fields() {
        let mut fields = serde_json::Map::new();
        fields.insert("checks".into(), serde_json::json!([1]));
        let v = Failure::new(ErrorKind::PermissionDenied, "no")
            .with_json(fields)
            .to_json();
        assert_eq!(
            v,
            serde_json::json!({"error_kind": "permission_denied", "message": "no", "exit_code": 78, "checks": [1]})
        );
    }

    #[test]
    fn command_failure_passes_its_code_through() {
        assert_eq!(Failure::command_failed(3, "").code, 3);
        assert_eq!(Failure::command_failed(127, "").code, 127);
        assert_eq!(Failure::command_failed(-1, "").code, 1);
    }

    #[test]
    fn every_kind_is_documented_with_its_code() {
        // Each row of the table in docs/exit-codes.md is `| code | `kind` | meaning |`: every
        // kind has exactly one row, and the row's code is the kind's exit code.
        let doc = include_str!("../docs/exit-codes.md");
        let rows: Vec<(String, String)> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                // Rows only: the header's first cell is not a code.
                cells
                    .get(1)
                    .filter(|c| c.starts_with(|ch: char| ch.is_ascii_digit()))?;
                let kind = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((cells[1].to_owned(), kind.to_owned()))
            })
            .collect();
        for kind in ErrorKind::ALL {
            let found: Vec<&String> = rows
                .iter()
                .filter(|(_, k)| k == kind.as_str())
                .map(|(code, _)| code)
                .collect();
            let [code] = found.as_slice() else {
                panic!("docs/exit-codes.md has {} rows for `{kind}`", found.len());
            };
            let want = match kind {
                ErrorKind::CommandFailed => "1–255".to_owned(),
                other => other.exit_code().to_string(),
            };
            assert_eq!(
                **code, want,
                "docs/exit-codes.md gives `{kind}` the code {code}"
            );
        }
        let documented: Vec<&str> = rows.iter().map(|(_, k)| k.as_str()).collect();
        for name in documented {
            assert!(
                name == "null" || ErrorKind::ALL.iter().any(|k| k.as_str() == name),
                "docs/exit-codes.md documents `{name}`, which is not an error kind"
            );
        }
    }
}
