//! The host's one seam to the lease engine: what the host needs from a lease provider
//! ([`LeaseProvider`]: acquire a box, sweep stale leases) and from a leased box ([`LeasedBox`]:
//! sync, exec, fetch, release). Requests are the session layer's own types
//! ([`Command`], [`SyncOptions`]); results are [`ExecOutcome`] and [`TransferSummary`].
//!
//! The real implementation is [`RecipeLeases`](super::RecipeLeases) over the lease lifecycle,
//! whose boxes are [`HeldLease`](crate::leases::HeldLease)s (`held_lease.rs`); the CLI hands it
//! to [`run_recipe`](super::run_recipe). The host's own unit tests keep this seam for a fake:
//! the scratch-directory double (`scratch.rs`), which injects transport failures, counts
//! releases and records what each lease asked for; the tests over the real engine go through
//! `RecipeLeases` on the local backend. Every error is an [`EngineError`]: it keeps its
//! [`ErrorKind`](crate::error::ErrorKind) through Lua and back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use super::error::EngineError;

use crate::session::{Command, ExecOutcome, ShellOutcome, ShellRequest, SyncOptions};

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
    /// How many boxes (`count = N`: a shard group; 0 means 1).
    pub count: u32,
    /// At most one box a node (`distinct_hosts = true`); else the boxes are spread.
    pub distinct_hosts: bool,
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
    /// Only the differences were sent (sync only; false for a first or clean sync).
    pub incremental: bool,
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
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError>;
    /// Run a command, its output lines prefixed with `prefix` (steps running in parallel); a
    /// non-zero exit is a result, not an error.
    async fn exec(
        &self,
        command: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError>;
    /// Run an interactive command on a terminal in the box with this process's terminal
    /// attached, until it exits (`box:shell()`); a non-zero exit is a result, not an error.
    async fn shell(
        &self,
        request: &ShellRequest,
        cancel: &CancellationToken,
    ) -> Result<ShellOutcome, EngineError>;
    /// Run a command like [`exec`](LeasedBox::exec), streaming its output, and also keep a
    /// copy of the last [`TEE_LIMIT`](super::last::TEE_LIMIT) bytes of each stream in the outcome's `stdout` and
    /// `stderr` (for the REPL's `last`). The default captures and then prints what it captured.
    async fn exec_teed(
        &self,
        command: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError> {
        let mut captured = command.clone();
        captured.capture = true;
        let outcome = self.exec(&captured, prefix, cancel).await?;
        use std::io::Write as _;
        if let Some(out) = &outcome.stdout {
            let _ = std::io::stdout().write_all(out);
            let _ = std::io::stdout().flush();
        }
        if let Some(err) = &outcome.stderr {
            let _ = std::io::stderr().write_all(err);
        }
        Ok(outcome)
    }
    /// Fetch paths (relative to the workdir) into `dest`, at the same relative paths.
    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError>;
    /// Mark the lease kept after it was acquired (the REPL's `:lease keep`). The default does
    /// nothing.
    async fn mark_kept(&self) -> Result<(), EngineError> {
        Ok(())
    }
    /// Release the lease (purge the job, drop the claim).
    async fn release(&self, cancel: &CancellationToken) -> Result<(), EngineError>;
    /// Whether this is a box kept warm by `leasebox watch` from an earlier run.
    fn warm(&self) -> bool {
        false
    }
    /// Whether `leasebox watch` holds this box: the run neither releases it nor says it
    /// was kept (the watch does either when it ends).
    fn held_by_watch(&self) -> bool {
        false
    }
    /// Renew the lease while it is in use (`leasebox watch`): its claim's last use, and the
    /// box's own expiry where the backend can change it.
    async fn renew(&self) -> Result<(), EngineError> {
        Ok(())
    }

    /// The boxes of a group lease (a shard group, `warmup{ count = N }`), box 1 first, each a
    /// [`LeasedBox`] of its own (exec, sync, fetch, shell on that box; its release is refused:
    /// the group is released whole). Empty for a lease of one box, which is its own box.
    fn members(&self) -> Vec<Arc<dyn LeasedBox>> {
        Vec::new()
    }

    /// The name of the node the box runs on, when the backend knows one.
    fn node(&self) -> Option<String> {
        None
    }

    /// Sync every box of the lease: the file set decided and each file read once, the archive
    /// streamed to all boxes at once (a re-sync: each box for itself). Returns one summary a
    /// box. A one-box lease syncs itself.
    async fn sync_all(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<TransferSummary>, EngineError> {
        Ok(vec![self.sync(options, cancel).await?])
    }
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
    /// Attach the kept lease `id` (ownership checked as for `run --lease`): the REPL's
    /// `:lease take ID`. The default refuses.
    async fn attach(
        &self,
        id: &str,
        _cancel: &CancellationToken,
    ) -> Result<Arc<dyn LeasedBox>, EngineError> {
        Err(Arc::new(super::error::HostError::Sandbox {
            message: format!(
                "cannot attach lease `{id}`: this lease provider only leases new boxes"
            ),
        }))
    }
    /// Release expired, missing and orphaned leases of this repository; `dry_run` changes
    /// nothing. Returns one line per lease acted on (or that would be).
    /// Where the durations of earlier sharded runs are kept (the state dir's `history/`);
    /// `None`: nowhere (splits are by stable hash only).
    fn history_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    async fn sweep(
        &self,
        dry_run: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, EngineError>;
}
