//! A test double of the lease engine: each lease is a scratch directory on this machine, sync
//! copies the tree, exec spawns the argv there. Only for the host's own unit tests; the real
//! local backend lives in `backends::local`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::engine::{EngineError, LeaseOptions, LeaseProvider, LeasedBox, TransferSummary};
use crate::error::{ErrorKind, HasKind};
use crate::session::{Command, ExecOutcome, ShellOutcome, ShellRequest, SyncOptions};

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ScratchError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HasKind for ScratchError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

fn fail(kind: ErrorKind, message: impl Into<String>) -> EngineError {
    Arc::new(ScratchError {
        kind,
        message: message.into(),
    })
}

#[derive(Default)]
pub(crate) struct ScratchProvider {
    pub dirs: Mutex<Vec<tempfile::TempDir>>,
    pub acquired: AtomicUsize,
    pub released: Arc<AtomicUsize>,
    pub requests: Mutex<Vec<LeaseOptions>>,
    /// Make every exec fail with this kind (transport loss simulation).
    pub exec_error: Option<ErrorKind>,
}

#[async_trait]
impl LeaseProvider for ScratchProvider {
    async fn acquire(
        &self,
        options: &LeaseOptions,
        _cancel: &CancellationToken,
    ) -> Result<Arc<dyn LeasedBox>, EngineError> {
        let dir = tempfile::tempdir().map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
        let n = self.acquired.fetch_add(1, Ordering::SeqCst);
        let workdir = dir.path().to_path_buf();
        self.dirs.lock().unwrap().push(dir);
        self.requests.lock().unwrap().push(options.clone());
        Ok(Arc::new(ScratchBox {
            id: format!("lbx_{n:012x}"),
            workdir,
            released: Arc::clone(&self.released),
            exec_error: self.exec_error,
        }))
    }

    async fn sweep(
        &self,
        dry_run: bool,
        _cancel: &CancellationToken,
    ) -> Result<Vec<String>, EngineError> {
        Ok(vec![format!("nothing to clean (dry run: {dry_run})")])
    }
}

pub(crate) struct ScratchBox {
    id: String,
    workdir: PathBuf,
    released: Arc<AtomicUsize>,
    exec_error: Option<ErrorKind>,
}

fn copy_tree(from: &Path, to: &Path, skip: &[String]) -> std::io::Result<u64> {
    let mut files = 0;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git"
            || name == "target"
            || skip.iter().any(|s| s.trim_end_matches('/') == name)
        {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files += copy_tree(&entry.path(), &to.join(&name), skip)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
            files += 1;
        }
    }
    Ok(files)
}

#[async_trait]
impl LeasedBox for ScratchBox {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn workdir(&self) -> String {
        self.workdir.display().to_string()
    }

    async fn sync(
        &self,
        options: &SyncOptions,
        _cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        let files = copy_tree(&options.root, &self.workdir, &options.excludes)
            .map_err(|e| fail(ErrorKind::TransportLost, e.to_string()))?;
        Ok(TransferSummary {
            files,
            ..TransferSummary::default()
        })
    }

    async fn exec(
        &self,
        spec: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError> {
        if let Some(kind) = self.exec_error {
            return Err(fail(kind, "the connection to the box was lost"));
        }
        let started = Instant::now();
        let mut command = tokio::process::Command::new(&spec.argv[0]);
        command
            .args(&spec.argv[1..])
            .current_dir(self.workdir.join(spec.cwd.as_deref().unwrap_or(".")))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(spec.env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| fail(ErrorKind::TransportLost, e.to_string()))?;
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let run = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            a.and(b)
                .map_err(|e| fail(ErrorKind::TransportLost, e.to_string()))?;
            let status = child
                .wait()
                .await
                .map_err(|e| fail(ErrorKind::TransportLost, e.to_string()))?;
            Ok::<_, EngineError>((status.code().unwrap_or(128), out, err))
        };
        let timeout = spec.timeout.unwrap_or(std::time::Duration::from_secs(3600));
        let (code, out, err) = tokio::select! {
            r = tokio::time::timeout(timeout, run) => r.map_err(|_| fail(ErrorKind::Timeout, "timed out"))??,
            () = cancel.cancelled() => return Err(fail(ErrorKind::Cancelled, "cancelled")),
        };
        if !spec.capture {
            let prefix = prefix.map(|p| format!("[{p}] ")).unwrap_or_default();
            for line in String::from_utf8_lossy(&out).lines() {
                println!("{prefix}{line}");
            }
            for line in String::from_utf8_lossy(&err).lines() {
                eprintln!("{prefix}{line}");
            }
        }
        Ok(ExecOutcome {
            code,
            stdout: spec.capture.then_some(out),
            stderr: spec.capture.then_some(err),
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            recovered: false,
        })
    }

    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        _cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        let mut files = 0;
        for path in paths {
            let from = self.workdir.join(path);
            let to = dest.join(path);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
            }
            if from.is_dir() {
                files += copy_tree(&from, &to, &[])
                    .map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
            } else {
                std::fs::copy(&from, &to)
                    .map_err(|e| fail(ErrorKind::TransportLost, format!("{path}: {e}")))?;
                files += 1;
            }
        }
        Ok(TransferSummary {
            files,
            ..TransferSummary::default()
        })
    }

    async fn shell(
        &self,
        _request: &ShellRequest,
        _cancel: &CancellationToken,
    ) -> Result<ShellOutcome, EngineError> {
        // The double has no terminal to attach; the real one is tested through a pty.
        Err(fail(
            ErrorKind::Usage,
            "a scratch box has no terminal".to_owned(),
        ))
    }

    async fn release(&self, _cancel: &CancellationToken) -> Result<(), EngineError> {
        self.released.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
