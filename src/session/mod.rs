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

mod exec;
mod fanout;
pub mod fetch;
pub mod fileset;
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

pub use exec::{Command, ExecOutcome};
pub use fanout::{TeeWriter, sync_group};
pub use fetch::FetchReport;
pub use output::{NullSink, OutputSink, PrefixSink, TerminalSink};
pub use shell::{ShellOutcome, ShellRequest};
pub use sync::{
    ManifestEntry, ManifestHeader, OnMismatch, SyncOptions, SyncReport, parse_manifest,
};
pub use terminal::stdin_is_terminal;
pub use timing::{
    Phase, PhaseStatus, SyncFigures, TIMING_FORMAT_VERSION, Timing, TimingReport, elapsed_ms,
};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, HasKind};
use crate::lease::{Backend, ExecEvent, ExecRequest, ExecStream, Lease, LeaseError};

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

type SyncHook = Box<dyn Fn(&str) + Send + Sync>;

struct Inner {
    backend: Arc<dyn Backend>,
    lease: Lease,
    timing: Arc<Timing>,
    sync_revision: Mutex<Option<String>>,
    sync_hook: Mutex<Option<SyncHook>>,
    index: Mutex<Option<Arc<index::LocalIndex>>>,
    index_path: Mutex<Option<std::path::PathBuf>>,
    kill_grace: Duration,
    hang_probe: Mutex<Duration>,
    events: Mutex<crate::events::Events>,
}

/// A lease attached to its backend. Cheap to clone; clones share timing and sync state.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Attach to `lease` on `backend`, recording phases into `timing`.
    pub fn new(backend: Arc<dyn Backend>, lease: Lease, timing: Arc<Timing>) -> Self {
        Session {
            inner: Arc::new(Inner {
                backend,
                lease,
                timing,
                sync_revision: Mutex::new(None),
                sync_hook: Mutex::new(None),
                index: Mutex::new(None),
                index_path: Mutex::new(None),
                kill_grace: Duration::from_secs(5),
                hang_probe: Mutex::new(Duration::from_secs(30)),
                events: Mutex::default(),
            }),
        }
    }

    /// The lease.
    #[must_use]
    pub fn lease(&self) -> &Lease {
        &self.inner.lease
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The timing recorder shared by this session.
    #[must_use]
    pub fn timing(&self) -> &Arc<Timing> {
        &self.inner.timing
    }

    /// The revision stamp the next sync expects to find in the box (`None`: no expectation).
    #[must_use]
    pub fn sync_revision(&self) -> Option<String> {
        self.inner
            .sync_revision
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Set the revision stamp the next sync expects (from the lease's claim).
    pub fn set_sync_revision(&self, revision: Option<String>) {
        *self
            .inner
            .sync_revision
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = revision;
    }

    /// Call `hook` with the new revision stamp after every successful sync (to persist it).
    pub fn on_synced(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        *self
            .inner
            .sync_hook
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }

    /// Keep the local index of the sync (what the box holds, with the local stats it was read
    /// under) in the file `path` too, so a later process reuses it (the lifecycle passes a
    /// per-lease file in the state dir).
    pub fn set_index_path(&self, path: std::path::PathBuf) {
        *self
            .inner
            .index_path
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(path);
    }

    pub(crate) fn index_path(&self) -> Option<std::path::PathBuf> {
        self.inner
            .index_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn synced(&self, revision: &str) {
        self.set_sync_revision(Some(revision.to_owned()));
        if let Some(hook) = &*self
            .inner
            .sync_hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            hook(revision);
        }
    }

    /// Create the workdir and state dir in the box and check that its tools are there.
    ///
    /// # Errors
    /// The box lacks `tar` or another needed tool, or cannot create the workdir.
    pub async fn prepare(&self, cancel: &CancellationToken) -> Result<(), SessionError> {
        let lease = self.lease();
        let out = self
            .control(
                "prepare",
                scripts::PREPARE,
                &[lease.workdir.clone(), lease.state_dir()],
                None,
                cancel,
            )
            .await?;
        if out.code == scripts::EXIT_UNSUITABLE {
            return Err(SessionError::BoxUnsuitable(unsuitable_message(
                &String::from_utf8_lossy(&out.stderr),
                lease,
            )));
        }
        out.check("prepare")?;
        Ok(())
    }

    /// Open an exec of the box-side script `script` (its `$0` is `leasebox-NAME`) with `args`,
    /// its stdin open when `stdin`: the one place the session opens an exec on the backend
    /// (verified exec, sync, fetch and the control scripts all go through it).
    pub(crate) async fn open_script(
        &self,
        name: &str,
        script: &str,
        args: impl IntoIterator<Item = String>,
        stdin: bool,
    ) -> Result<ExecStream, SessionError> {
        let argv = scripts::argv(name, script, args);
        let request = ExecRequest {
            argv,
            cwd: None,
            stdin,
            tty: None,
        };
        self.open(request).await
    }

    /// Open an exec on the backend as given (the interactive shell's terminal exec, and every
    /// script of [`Session::open_script`]).
    pub(crate) async fn open(&self, request: ExecRequest) -> Result<ExecStream, SessionError> {
        Ok(self.inner.backend.exec(&self.inner.lease, request).await?)
    }

    /// Run one small control script in the box and collect all of its output.
    pub(crate) async fn control(
        &self,
        name: &str,
        script: &str,
        args: &[String],
        stdin: Option<Bytes>,
        cancel: &CancellationToken,
    ) -> Result<ControlOutput, SessionError> {
        let mut stream = self
            .open_script(name, script, args.iter().cloned(), stdin.is_some())
            .await?;
        if let (Some(tx), Some(data)) = (stream.take_stdin(), stdin) {
            // The receiver may already be gone if the script failed early; its exit says why.
            let _ = tx.send(data).await;
        }
        let mut stdout = Vec::new();
        let (code, stderr) =
            drive(&mut stream, name, cancel, StdoutTo::Collect(&mut stdout)).await?;
        Ok(ControlOutput {
            code,
            stdout,
            stderr,
        })
    }

    pub(crate) fn kill_grace(&self) -> Duration {
        self.inner.kill_grace
    }

    /// After how long without output a running command's record is checked for a hung
    /// session (default 30 s).
    #[must_use]
    pub fn hang_probe(&self) -> Duration {
        *self
            .inner
            .hang_probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Change the hang probe interval.
    pub fn set_hang_probe(&self, every: Duration) {
        *self
            .inner
            .hang_probe
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = every;
    }
}

/// The message for a box that lacks a tool: which tool, which box, what to do.
fn unsuitable_message(stderr: &str, lease: &Lease) -> String {
    let tool = stderr
        .lines()
        .find_map(|l| l.strip_prefix("leasebox: missing-tool "))
        .unwrap_or("a needed tool")
        .trim();
    let (name, rest) = tool.split_once(' ').unwrap_or((tool, ""));
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!(" {rest}")
    };
    let box_name = match (lease.handle.get("image"), lease.handle.get("driver")) {
        (Some(image), Some(driver)) => format!("the box (image `{image}`, driver `{driver}`)"),
        (None, Some(driver)) => format!("the box (driver `{driver}`)"),
        _ => format!("the {} box", lease.backend),
    };
    format!(
        "{box_name} has no `{name}`{rest}; leasebox's box-side scripts need {}: use an image or a node that has them",
        scripts::NEEDED_TOOLS
    )
}

/// Where [`drive`] puts an operation's stdout.
pub(crate) enum StdoutTo<'a> {
    /// Nowhere.
    Discard,
    /// Into a buffer.
    Collect(&'a mut Vec<u8>),
    /// Into a channel, until its receiver goes away.
    Channel(Option<tokio::sync::mpsc::Sender<Bytes>>),
}

/// Drive an exec of a box-side operation to its end: stdout chunks go to `on_stdout`, stderr
/// is collected, and the exit code returned. Cancellation kills the exec; a lost or refused
/// connection is an error naming the operation.
pub(crate) async fn drive(
    stream: &mut ExecStream,
    op: &str,
    cancel: &CancellationToken,
    mut stdout: StdoutTo<'_>,
) -> Result<(i32, Vec<u8>), SessionError> {
    let mut stderr = Vec::new();
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => {
                stream.kill();
                return Err(SessionError::Cancelled);
            }
            event = stream.events.recv() => event,
        };
        match event {
            Some(ExecEvent::Stdout(b)) => match &mut stdout {
                StdoutTo::Discard => {}
                StdoutTo::Collect(buf) => buf.extend_from_slice(&b),
                StdoutTo::Channel(tx) => {
                    // A receiver that stopped (a refused archive entry) reports its own error.
                    if let Some(sender) = tx
                        && sender.send(b).await.is_err()
                    {
                        *tx = None;
                    }
                }
            },
            Some(ExecEvent::Stderr(b)) => stderr.extend_from_slice(&b),
            Some(ExecEvent::Exited(code)) => return Ok((code, stderr)),
            Some(ExecEvent::Lost(reason)) => {
                return Err(SessionError::TransportLost(format!(
                    "connection to the box lost during {op}: {reason}"
                )));
            }
            Some(ExecEvent::Refused { message, kind }) => {
                return Err(SessionError::Refused { message, kind });
            }
            None => {
                return Err(SessionError::TransportLost(format!(
                    "connection to the box lost during {op}"
                )));
            }
        }
    }
}

/// What a control script printed and how it exited.
#[derive(Debug, Default)]
pub(crate) struct ControlOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ControlOutput {
    /// Succeed on exit 0, else turn the script's stderr into an error for `op`.
    pub fn check(&self, op: &'static str) -> Result<(), SessionError> {
        if self.code == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.stderr);
        let message = text
            .lines()
            .map(|l| l.trim_start_matches("leasebox: "))
            .collect::<Vec<_>>()
            .join("; ");
        let message = if message.is_empty() {
            format!("exit code {}", self.code)
        } else {
            message
        };
        if op == "sync" && self.code == 3 {
            return Err(SessionError::Conflict(message));
        }
        Err(SessionError::Remote { op, message })
    }
}
