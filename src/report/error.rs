//! Why a timing file cannot be drawn: each names the file and says what to do.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{ErrorKind, HasKind};

/// A timing file that cannot be read or drawn.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read (missing, a directory, unreadable).
    #[error(
        "cannot read the timing file `{}`: {source}; give the file a run wrote with \
         `leasebox run --timing-json FILE …`",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// Not JSON.
    #[error(
        "the timing file `{}` is not JSON (line {line}, column {column}: {message}); give the \
         file `leasebox run --timing-json FILE` wrote, unedited",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
        /// What it found.
        message: String,
    },
    /// JSON without a `format_version`: an older leasebox's file, or not a timing file.
    #[error(
        "the timing file `{}` has no `format_version`: it was written by a leasebox older than \
         this one's timing format {current} (or it is not a timing file); run again with \
         `--timing-json` to get a file this leasebox can draw",
        path.display()
    )]
    NoVersion {
        /// The file.
        path: PathBuf,
        /// The version this leasebox reads.
        current: u32,
    },
    /// A `format_version` this leasebox does not know.
    #[error(
        "the timing file `{}` has `format_version` {found}, which this leasebox ({version}) \
         cannot draw: it reads format {current}; draw it with the leasebox that wrote it, or \
         upgrade leasebox",
        path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// What the file says, as written.
        found: String,
        /// The version this leasebox reads.
        current: u32,
        /// This leasebox's version.
        version: &'static str,
    },
    /// The right version, but a field is missing or of the wrong type.
    #[error(
        "the timing file `{}` is not a valid timing file of format {current}: {message}; give \
         the file `leasebox run --timing-json FILE` wrote, unedited",
        path.display()
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The format version it claims.
        current: u32,
        /// What is wrong.
        message: String,
    },
}

impl HasKind for ReportError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}
