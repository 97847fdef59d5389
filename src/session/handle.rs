//! [`Session`]: a lease attached to its backend, with the state its operations share (timing,
//! the sync revision and local index, the hang probe, the run's events), and the box's
//! preparation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{ControlOutput, SessionError, StdoutTo, Timing, drive, index, scripts};
use crate::lease::{Backend, ExecRequest, ExecStream, Lease};

pub(super) type SyncHook = Box<dyn Fn(&str) + Send + Sync>;

pub(super) struct Inner {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) lease: Lease,
    pub(super) timing: Arc<Timing>,
    pub(super) sync_revision: Mutex<Option<String>>,
    pub(super) sync_hook: Mutex<Option<SyncHook>>,
    pub(super) index: Mutex<Option<Arc<index::LocalIndex>>>,
    pub(super) index_path: Mutex<Option<std::path::PathBuf>>,
    pub(super) kill_grace: Duration,
    pub(super) hang_probe: Mutex<Duration>,
    pub(super) events: Mutex<crate::events::Events>,
    pub(super) reused: std::sync::atomic::AtomicBool,
}

/// A lease attached to its backend. Cheap to clone; clones share timing and sync state.
#[derive(Clone)]
pub struct Session {
    pub(super) inner: Arc<Inner>,
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
                reused: std::sync::atomic::AtomicBool::new(false),
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

    /// Mark the box as one an earlier run may have synced (a kept lease attached again): a
    /// group's sync then goes box by box, incrementally, never as one fanned-out replace that
    /// would drop what the boxes built.
    pub fn set_reused(&self) {
        self.inner
            .reused
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the box may hold an earlier run's sync (see [`Session::set_reused`]).
    #[must_use]
    pub fn reused(&self) -> bool {
        self.inner.reused.load(std::sync::atomic::Ordering::SeqCst)
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
