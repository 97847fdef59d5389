//! [`SessionError`]: what can go wrong in a session operation, classified for the exit funnel.

use std::time::Duration;

use crate::error::{ErrorKind, HasKind};
use crate::lease::LeaseError;

/// Errors from session operations.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The backend failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A command ran past its timeout and was stopped.
    #[error("{what} timed out after {}", humantime::format_duration(*.after))]
    Timeout {
        /// What timed out (`command `cargo test``, `sync`).
        what: String,
        /// The timeout.
        after: Duration,
    },
    /// The user cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The connection was lost and the result could not be read back.
    #[error("{0}")]
    TransportLost(String),
    /// Something the caller asked for is invalid (a bad path, an empty argv, a bad variable name).
    #[error("{0}")]
    Invalid(String),
    /// A local file could not be read or written.
    #[error("{context}")]
    Local {
        /// What failed, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operation in the box failed (its message comes from the box).
    #[error("{op} failed in the box: {message}")]
    Remote {
        /// `sync`, `fetch`, `prepare`.
        op: &'static str,
        /// What the box said.
        message: String,
    },
    /// The box lacks a tool the box-side scripts need.
    #[error("{0}")]
    BoxUnsuitable(String),
    /// The box was changed by another client since our last sync.
    #[error("{0}")]
    Conflict(String),
    /// The box refused to run a command.
    #[error("{message}")]
    Refused {
        /// What the box said.
        message: String,
        /// How to classify it.
        kind: ErrorKind,
    },
    /// A fetched archive tried to write outside its destination.
    #[error(
        "refused archive entry `{path}`: {reason}; nothing was written outside the destination"
    )]
    UnsafeArchive {
        /// The entry's path as given in the archive.
        path: String,
        /// Why it was refused.
        reason: String,
    },
}

impl SessionError {
    pub(crate) fn local(context: impl Into<String>, source: std::io::Error) -> Self {
        SessionError::Local {
            context: context.into(),
            source,
        }
    }
}

impl HasKind for SessionError {
    fn kind(&self) -> ErrorKind {
        match self {
            SessionError::Lease(e) => e.kind(),
            SessionError::Timeout { .. } => ErrorKind::Timeout,
            SessionError::Cancelled => ErrorKind::Cancelled,
            SessionError::TransportLost(_) => ErrorKind::TransportLost,
            SessionError::Invalid(_) => ErrorKind::Usage,
            SessionError::Local { .. } => ErrorKind::ConfigError,
            SessionError::Remote { .. } | SessionError::UnsafeArchive { .. } => {
                ErrorKind::CommandFailed
            }
            SessionError::Conflict(_) => ErrorKind::OwnershipRefused,
            SessionError::BoxUnsuitable(_) => ErrorKind::BoxUnsuitable,
            SessionError::Refused { kind, .. } => *kind,
        }
    }
}
