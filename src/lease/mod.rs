//! The Backend trait and its types: what every kind of box (a Nomad allocation, a local
//! scratch directory) must offer so that sync, fetch, verified exec, watch and the recipe host
//! can be written once over it.
//!
//! The trait is deliberately small: warm up a lease from a [`LeaseSpec`], open an exec stream
//! ([`ExecRequest`] in, [`ExecStream`] out), release a lease, and report status and listings.
//! Everything else happens in the `session` layer by running commands through [`Backend::exec`].
//!
//! Exec streams follow Nomad's semantics on every backend: dropping an [`ExecStream`] (or
//! losing its connection) leaves the command running, like a dropped websocket does on a Nomad
//! client; [`ExecStream::kill`] asks the backend to stop it, which only some backends can do
//! ([`Features::exec_kill`]) and which reaches only the exec'd process's own group. The session
//! layer stops a verified-exec command through its record, by the process group of its
//! supervisor's session, on every backend.
//!
//! An exec may run on a terminal ([`ExecRequest::tty`]): the command gets a pseudo-terminal of
//! the given [`TtySize`] (Nomad's `tty=true`; a real pty on the local backend), its stdout and
//! stderr arrive merged as [`ExecEvent::Stdout`] with the terminal's CR/LF line ends, and new
//! window sizes go in through [`ExecStream::resize`]. Interactive shells use it; nothing that
//! must be recorded or recovered does.

mod check;
mod id;
mod progress;

pub use check::{Check, CheckStatus};
pub use id::{LeaseId, LeaseIdError};
pub use progress::{ProgressSender, WarmupProgress};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, HasKind};

/// What a lease is asked to be: its id and the resources and placement the resolved config
/// allows. Backends ignore what they cannot honour (the local backend ignores image and
/// resources, and says so once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseSpec {
    /// The lease id, chosen by the caller before anything is created (so the claim can be
    /// written first).
    pub id: LeaseId,
    /// The container image, for image drivers.
    pub image: Option<String>,
    /// CPU in MHz.
    pub cpu: Option<u64>,
    /// Memory in MB.
    pub memory_mb: Option<u64>,
    /// Disk in MB.
    pub disk_mb: Option<u64>,
    /// The workdir inside the box as configured (may contain `${NOMAD_ALLOC_DIR}`); `None`
    /// lets the backend choose.
    pub workdir: Option<String>,
    /// The owner fingerprint recorded with the lease.
    pub owner: String,
    /// The repository root on this machine (recorded, never sent).
    pub repo_root: PathBuf,
    /// How long the lease may live.
    #[serde(with = "humantime_serde_secs")]
    pub ttl: Duration,
    /// How long the lease may sit unused.
    #[serde(with = "humantime_serde_secs")]
    pub idle: Duration,
    /// Where the backend reports what it sees while it waits for the box (nowhere by default).
    #[serde(skip)]
    pub progress: ProgressSender,
}

/// A lease that exists: enough to exec in it and release it, and to write its claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease id.
    pub id: LeaseId,
    /// The backend name (`local`, `nomad`).
    pub backend: String,
    /// The absolute workdir inside the box, resolved.
    pub workdir: String,
    /// Backend-specific references (for Nomad: `job_id`, `alloc_id`, `task`, `namespace`,
    /// `region`; for local: `root`). Stored in the claim as they are.
    #[serde(default)]
    pub handle: BTreeMap<String, String>,
}

impl Lease {
    /// The box-side state directory: a sibling of the workdir, never inside the synced tree.
    #[must_use]
    pub fn state_dir(&self) -> String {
        box_state_dir(&self.workdir)
    }
}

/// The box-side state directory for a workdir: `<workdir>.lbx`.
#[must_use]
pub fn box_state_dir(workdir: &str) -> String {
    format!("{}.lbx", workdir.trim_end_matches('/'))
}

/// One command to start in a box. The argv runs as given, without a shell.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The directory to start in; `None` means the backend's default (`/` on Nomad, the lease
    /// root on the local backend).
    pub cwd: Option<String>,
    /// Whether the caller will send stdin. When false the backend closes stdin at once (a
    /// Nomad session whose stdin is never closed never ends).
    pub stdin: bool,
    /// Run the command on a terminal of this size. `None` (the default): no terminal, stdout
    /// and stderr separate, and never a window size sent (it breaks TTY-off Nomad sessions).
    pub tty: Option<TtySize>,
}

/// The size of a terminal in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for TtySize {
    fn default() -> Self {
        TtySize { rows: 24, cols: 80 }
    }
}

/// An event from a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes the command wrote to stdout.
    Stdout(Bytes),
    /// Bytes the command wrote to stderr.
    Stderr(Bytes),
    /// The command exited with this code (signals as 128+n). Terminal.
    Exited(i32),
    /// The connection was lost before an exit code arrived. Terminal. The command may still be
    /// running in the box.
    Lost(String),
    /// The box refused to run the command (permission denied, the task is not running, an
    /// unknown allocation). Terminal; nothing ran, so there is nothing to recover.
    Refused {
        /// What the box said.
        message: String,
        /// How to classify it.
        kind: ErrorKind,
    },
}

/// A running exec: a stdin sink, an event source, and a way to stop the command.
///
/// The event channel ends after [`ExecEvent::Exited`] or [`ExecEvent::Lost`]; an event channel
/// that ends without either is a lost connection too. Dropping the stdin sender closes the
/// command's stdin. Dropping the whole stream leaves the command running.
#[derive(Debug)]
pub struct ExecStream {
    /// Send stdin bytes here; drop it to close stdin. `None` when the request had no stdin.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// Output and exit events, in order.
    pub events: mpsc::Receiver<ExecEvent>,
    /// Cancelling this asks the backend to stop the command (where it can) and end the stream.
    pub kill: CancellationToken,
    /// Send a new window size here; only a terminal exec ([`ExecRequest::tty`]) has one.
    pub resize: Option<mpsc::Sender<TtySize>>,
}

impl ExecStream {
    /// Ask the backend to stop the command and end the stream.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Take the stdin sender, leaving `None`.
    pub fn take_stdin(&mut self) -> Option<mpsc::Sender<Bytes>> {
        self.stdin.take()
    }
}

/// What a backend can do, for `leasebox backends --json` and for the session layer.
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    /// The backend name.
    pub name: &'static str,
    /// One line saying what a lease is on this backend.
    pub description: &'static str,
    /// The box is isolated from this machine (a container or a remote node).
    pub isolation: bool,
    /// `ExecStream::kill` really stops the exec'd process and its group (a verified-exec
    /// command, in a session of its own, is stopped through its record on every backend).
    pub exec_kill: bool,
    /// Images are honoured.
    pub image: bool,
    /// CPU, memory and disk requests are honoured.
    pub resources: bool,
    /// Whether the backend is usable in this build.
    pub available: bool,
}

/// The live state of a lease as its backend sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    /// The box exists and accepts execs.
    Ready,
    /// The box is being created.
    Pending,
    /// The box is gone (released, lost, or never created).
    Gone,
    /// The box exists but is not usable (failed, stopping).
    Unhealthy(String),
}

/// The ownership fields a box carries on the backend side, compared with the local claim
/// before a lease is reused, stopped or cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnershipRecord {
    /// The lease id.
    pub lease_id: String,
    /// The owner.
    pub owner: String,
    /// The scope fingerprint.
    pub scope: String,
    /// The workdir as configured.
    pub workdir: String,
    /// When the lease expires, if the record says.
    pub expires_at: Option<std::time::SystemTime>,
    /// Whether the record says leasebox created it.
    pub managed: bool,
}

/// A lease as found on the backend by [`Backend::list`].
#[derive(Debug, Clone, Serialize)]
pub struct RemoteLease {
    /// The lease id.
    pub id: LeaseId,
    /// Its state.
    pub state: RemoteState,
    /// Backend-specific details (for Nomad the ownership Meta).
    pub details: BTreeMap<String, String>,
    /// The ownership record.
    pub record: OwnershipRecord,
    /// What it takes to release it.
    pub lease: Lease,
}

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

/// A kind of box. Implementations: `backends::local::LocalBackend`, and the Nomad backend.
///
/// All methods are cancellable: long waits take a [`CancellationToken`] and return
/// [`LeaseError::Cancelled`] promptly when it fires, having cleaned up what they created.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// What this backend can do.
    fn features(&self) -> Features;

    /// The scope fingerprint recorded in claims: which cluster, namespace, region and task a
    /// lease lives in (the backend name for backends without such a notion).
    fn scope(&self) -> String {
        self.features().name.to_owned()
    }

    /// Create a box for `spec` and wait until it accepts execs. On failure nothing is left
    /// behind, or the error is [`LeaseError::LeftBehind`].
    async fn warmup(
        &self,
        spec: &LeaseSpec,
        cancel: &CancellationToken,
    ) -> Result<Lease, LeaseError>;

    /// Start a command in the box.
    async fn exec(&self, lease: &Lease, request: ExecRequest) -> Result<ExecStream, LeaseError>;

    /// Destroy the box and confirm it is gone. Releasing a box that is already gone succeeds.
    async fn release(&self, lease: &Lease, cancel: &CancellationToken) -> Result<(), LeaseError>;

    /// The live state of one lease.
    async fn status(&self, lease: &Lease) -> Result<RemoteState, LeaseError>;

    /// The ownership record the box itself carries (Nomad: the job's `Meta`; local: the lease
    /// directory's marker), as [`OwnershipRecord`] fields; `None` when the box is gone.
    async fn record(&self, lease: &Lease) -> Result<Option<OwnershipRecord>, LeaseError>;

    /// The leases this backend can see that belong to `owner`.
    async fn list(&self, owner: &str) -> Result<Vec<RemoteLease>, LeaseError>;
}

/// Serialize durations as whole seconds.
mod humantime_serde_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}
