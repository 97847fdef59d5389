//! [`LeaseError`]: the errors of every backend, classified for the exit funnel.

use super::LeaseId;
use crate::error::{ErrorKind, HasKind};

/// Errors from a backend.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The connection to the box or the cluster failed.
    #[error("{0}")]
    Transport(String),
    /// The cluster could not place the box.
    #[error("{0}")]
    Placement(String),
    /// The box did not become ready in time.
    #[error("{0}")]
    ReadinessTimeout(String),
    /// Configuration given to the backend is unusable.
    #[error("{0}")]
    Config(String),
    /// The lease is not ours or its records disagree.
    #[error("{0}")]
    Ownership(String),
    /// The cluster refused for want of a capability; the message names it, what needs it and
    /// the token variable.
    #[error("{0}")]
    PermissionDenied(String),
    /// The lease does not exist on the backend.
    #[error("lease `{0}` not found")]
    NotFound(LeaseId),
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A local file operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),
    /// Warmup failed and could not confirm that what it created is gone: the claim must stay
    /// for `cleanup` to resolve.
    #[error("{error}; lease `{id}` may be left behind: `leasebox cleanup` resolves it")]
    LeftBehind {
        /// The lease.
        id: LeaseId,
        /// What went wrong first.
        error: Box<LeaseError>,
    },
}

impl LeaseError {
    /// Wrap an I/O error with a description naming the path.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LeaseError::Io {
            context: context.into(),
            source,
        }
    }
}

impl HasKind for LeaseError {
    fn kind(&self) -> ErrorKind {
        match self {
            LeaseError::Transport(_) => ErrorKind::TransportLost,
            LeaseError::Placement(_) => ErrorKind::PlacementFailed,
            LeaseError::ReadinessTimeout(_) => ErrorKind::ReadinessTimeout,
            LeaseError::Config(_) | LeaseError::Io { .. } => ErrorKind::ConfigError,
            LeaseError::Ownership(_) | LeaseError::NotFound(_) => ErrorKind::OwnershipRefused,
            LeaseError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            LeaseError::Cancelled => ErrorKind::Cancelled,
            LeaseError::Internal(_) => ErrorKind::Internal,
            LeaseError::LeftBehind { error, .. } => error.kind(),
        }
    }
}
