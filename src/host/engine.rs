//! The seam between the recipe host and the lease engine: what the host needs from a lease
//! provider (acquire a box, sweep stale leases) and from a leased box (sync, exec, fetch,
//! release).
//!
//! The CLI hands [`run_recipe`](super::run_recipe) an implementation over the session layer and
//! the lease lifecycle of `backends`; the host's own tests use a scratch-directory double.
//! Every error is an [`EngineError`]: it keeps its [`ErrorKind`](crate::error::ErrorKind)
//! through Lua and back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use super::error::EngineError;

/// The lease a recipe asks for: the run's config resolved with the recipe's `lease{}` /
/// `warmup{}` options by [`Config::with_recipe`](crate::config::Config::with_recipe) (the one
/// place that decides what a recipe may set: own keys only, up to the user's limits, below
/// flags), plus the host's own `keep`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseOptions {
    /// The container image (`nomad.image`), for image drivers.
    pub image: String,
    /// CPU in MHz (`nomad.cpu`).
    pub cpu: u64,
    /// Memory in MB (`nomad.memory_mb`).
    pub memory_mb: u64,
    /// Disk in MB (`nomad.disk_mb`).
    pub disk_mb: u64,
    /// The sync excludes of every sync to this lease (`sync.exclude`); a sync call's own
    /// excludes are added to them.
    pub sync_exclude: Vec<String>,
    /// The timeout of an exec on this lease that sets none (`exec_timeout`).
    pub exec_timeout: Option<Duration>,
    /// `exec_timeout` came from a flag: it bounds every exec, whatever timeout the recipe gives.
    pub exec_timeout_forced: bool,
    /// Keep the lease when the recipe ends (a host option, not a config key).
    pub keep: bool,
}

/// One command to run on a box.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The argv (a shell step is `["sh", "-c", script]`).
    pub argv: Vec<String>,
    /// Environment set for the command (on top of the box's clean environment).
    pub env: Vec<(String, String)>,
    /// Working directory relative to the workdir.
    pub cwd: Option<String>,
    /// Stop the command after this long (a timeout error).
    pub timeout: Option<Duration>,
    /// Capture stdout and stderr into the result (they are streamed otherwise).
    pub capture: bool,
    /// Bytes given to the command's stdin.
    pub stdin: Option<Vec<u8>>,
    /// Prefix each output line with this (steps running in parallel).
    pub prefix: Option<String>,
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// The exit code.
    pub code: i32,
    /// Captured stdout, when asked.
    pub stdout: Option<Vec<u8>>,
    /// Captured stderr, when asked.
    pub stderr: Option<Vec<u8>>,
    /// Wall time in milliseconds.
    pub ms: u64,
}

/// What to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSpec {
    /// The local directory to send (the repository root).
    pub root: PathBuf,
    /// Excludes on top of the ignore files and the built-in list.
    pub exclude: Vec<String>,
}

/// What a sync or fetch moved, for the recipe and the timing file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferSummary {
    /// Files sent or received.
    pub files: u64,
    /// Bytes sent or received.
    pub bytes: u64,
    /// Files deleted on the box (sync only).
    pub deleted: u64,
    /// Wall time in milliseconds.
    pub ms: u64,
}

/// A box leased for the recipe.
#[async_trait]
pub trait LeasedBox: Send + Sync {
    /// The lease id (`lbx_…`).
    fn id(&self) -> String;
    /// The absolute workdir inside the box.
    fn workdir(&self) -> String;
    /// Whether this is a kept lease the run reuses (`--lease ID`): never released by the run.
    fn reused(&self) -> bool {
        false
    }
    /// Send the repository into the workdir.
    async fn sync(
        &self,
        spec: &SyncSpec,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError>;
    /// Run a command; a non-zero exit is a result, not an error.
    async fn exec(
        &self,
        spec: &ExecSpec,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, EngineError>;
    /// Fetch paths (relative to the workdir) into `dest`, at the same relative paths.
    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError>;
    /// Release the lease (purge the job, drop the claim).
    async fn release(&self, cancel: &CancellationToken) -> Result<(), EngineError>;
}

/// Where boxes come from.
#[async_trait]
pub trait LeaseProvider: Send + Sync {
    /// Lease a box (or reuse the one the run was given with `--lease` / `watch`).
    async fn acquire(
        &self,
        options: &LeaseOptions,
        cancel: &CancellationToken,
    ) -> Result<Arc<dyn LeasedBox>, EngineError>;
    /// Release expired, missing and orphaned leases of this repository; `dry_run` changes
    /// nothing. Returns one line per lease acted on (or that would be).
    async fn sweep(
        &self,
        dry_run: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, EngineError>;
}
