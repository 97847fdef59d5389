//! [`OwnershipError`]: everything that can go wrong with the state dir and the claims in it,
//! each variant carrying the path or lease it is about and saying which [`ErrorKind`] it is.

use std::io;
use std::path::PathBuf;

use crate::error::{ErrorKind, HasKind};

/// A failure of the state dir or the claims store.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// No variable gives a usable state dir.
    #[error(
        "cannot find a state dir: {reason}; set `LEASEBOX_STATE_DIR` to an absolute path of a \
         writable directory"
    )]
    NoStateDir {
        /// Why none of the variables could be used.
        reason: String,
    },

    /// A variable names a relative path, which would move with the current directory.
    #[error(
        "`{var}` is `{value}`, a relative path; set it to an absolute path of a writable directory"
    )]
    RelativeStateDir {
        /// The variable (`LEASEBOX_STATE_DIR`).
        var: &'static str,
        /// Its value.
        value: String,
    },

    /// The state dir (or its `claims/` subdir) cannot be created or written.
    #[error(
        "state dir unusable: `{path}` (from {origin}) cannot be {action}; set \
         `LEASEBOX_STATE_DIR` to a writable directory"
    )]
    StateDirUnusable {
        /// The directory that failed.
        path: PathBuf,
        /// Where the state dir came from, e.g. `` `$XDG_STATE_HOME` ``.
        origin: String,
        /// What failed: `created`, `written`, ...
        action: &'static str,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },

    /// A string that is not a lease id was given where one is expected.
    #[error(
        "`{id}` is not a lease id: expected `lbx_` followed by 12 lowercase hex digits, as \
         `leasebox list` shows"
    )]
    InvalidId {
        /// The rejected string.
        id: String,
    },

    /// There is no claim for this lease in the state dir.
    #[error("no claim for lease `{id}` in `{path}`: it is not a lease of this state dir")]
    NotFound {
        /// The lease id.
        id: String,
        /// The claim file that does not exist.
        path: PathBuf,
    },

    /// A claim with this id already exists.
    #[error("a claim for lease `{id}` already exists at `{path}`")]
    AlreadyExists {
        /// The lease id.
        id: String,
        /// The existing claim file.
        path: PathBuf,
    },

    /// Compare-and-swap failed: the claim changed since the caller read it.
    #[error(
        "claim for lease `{id}` changed while in use (expected revision {expected}, found \
         {found}): another leasebox process updated it; look again with `leasebox status {id}`"
    )]
    Conflict {
        /// The lease id.
        id: String,
        /// The revision the caller expected.
        expected: u64,
        /// The revision on disk.
        found: u64,
    },

    /// The claim file exists but cannot be understood.
    #[error("claim file `{path}` is corrupt: {reason}; it was left in place for inspection")]
    Corrupt {
        /// The claim file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Another process holds the lease (its holder lock is taken).
    #[error("lease `{id}` is in use by another leasebox process (holder lock `{path}` is taken)")]
    InUse {
        /// The lease id.
        id: String,
        /// The holder lock file.
        path: PathBuf,
    },

    /// An update closure changed the id of the claim it was given.
    #[error("an update of the claim for lease `{id}` tried to change its id to `{new_id}`")]
    IdChanged {
        /// The lease id.
        id: String,
        /// The id the closure wrote.
        new_id: String,
    },

    /// A file operation in the state dir failed.
    #[error("failed to {action} `{path}`")]
    Io {
        /// What was being done, e.g. `read claim file`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
}

impl OwnershipError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        OwnershipError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl HasKind for OwnershipError {
    fn kind(&self) -> ErrorKind {
        match self {
            OwnershipError::NoStateDir { .. }
            | OwnershipError::RelativeStateDir { .. }
            | OwnershipError::StateDirUnusable { .. }
            | OwnershipError::Corrupt { .. }
            | OwnershipError::Io { .. } => ErrorKind::ConfigError,
            OwnershipError::InvalidId { .. } => ErrorKind::Usage,
            OwnershipError::NotFound { .. }
            | OwnershipError::Conflict { .. }
            | OwnershipError::InUse { .. } => ErrorKind::OwnershipRefused,
            OwnershipError::AlreadyExists { .. } | OwnershipError::IdChanged { .. } => {
                ErrorKind::Internal
            }
        }
    }
}
