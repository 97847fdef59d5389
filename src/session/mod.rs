//! Backend-independent operations on a lease, written once over [`Backend::exec`]: sync,
//! fetch, verified exec and timing. The local backend runs exactly the same box-side scripts
//! and wrapper as the Nomad backend.
//!
//! A [`Session`] is a lease attached to its backend. Everything it does in the box is an exec
//! of a small POSIX `sh` script (see [`scripts`]):
//!
//! - [`Session::sync`] mirrors the repository's file set into the workdir: only new and
//!   changed files travel, in one tar over stdin, with a deletion list; what the box created
//!   stays (`incremental.rs`, [`plan`], [`index`], [`sync_scripts`]). A clean sync streams the
//!   whole set into a staging directory and swaps it in ([`sync`]); [`sync_group`] does the
//!   first sync once for the N boxes of a shard group, one archive streamed to all
//!   (`fanout.rs`), and later syncs go through each box's own incremental [`Session::sync`].
//! - [`Session::fetch`] streams a tar back over stdout and extracts it safely ([`fetch`]).
//! - [`Session::exec`] runs a command under the verified-exec wrapper, whose detached
//!   supervisor records its pid, process group, output and exit code in the box, so a lost
//!   connection (or a killed exec'd process) is recovered by reading the record (`exec.rs`).
//! - [`Session::shell`] runs an interactive command on a terminal exec with this process's
//!   terminal attached in raw mode (`shell.rs`, the local terminal in `terminal.rs`); it is not
//!   under the wrapper: nothing records it.
//!
//! A session tells the run's [`Events`](crate::events::Events) what its syncs and fetches do
//! (`observe.rs`): start and end events, and byte counts for the terminal's bars.

mod control;
mod error;
mod exec;
mod fanout;
pub mod fetch;
pub mod fileset;
mod handle;
mod incremental;
pub mod index;
mod observe;
mod output;
pub mod plan;
pub mod scripts;
mod shell;
pub mod sync;
pub mod sync_scripts;
mod terminal;
mod timing;

pub(crate) use control::{ControlOutput, StdoutTo, drive};
pub use error::SessionError;
pub use exec::{Command, ExecOutcome};
pub use fanout::sync_group;
pub use fetch::FetchReport;
pub use handle::Session;
pub use output::{NullSink, OutputSink, PrefixSink, TerminalSink};
pub use shell::{ShellOutcome, ShellRequest};
pub use sync::{
    ManifestEntry, ManifestHeader, OnMismatch, SyncOptions, SyncReport, parse_manifest,
};
pub use terminal::stdin_is_terminal;
pub use timing::{
    Phase, PhaseStatus, SyncFigures, TIMING_FORMAT_VERSION, Timing, TimingReport, elapsed_ms,
};
