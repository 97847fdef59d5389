//! The engine seam over the real engine: a [`Session`] as a [`LeasedBox`]. Exec streams to the
//! terminal (lines prefixed with the step name for parallel steps), sync and fetch go through
//! the session's tar protocol, and release is handed to whoever owns the lease lifecycle (a
//! [`Releaser`]).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::engine::{EngineError, ExecResult, ExecSpec, LeasedBox, SyncSpec, TransferSummary};
use crate::session::{Command, OutputSink, PrefixSink, Session, SyncOptions, TerminalSink};

/// Releases a session's lease (purge the job, drop the claim): the lease lifecycle's job.
#[async_trait]
pub trait Releaser: Send + Sync {
    /// Release the lease of `session`.
    async fn release(
        &self,
        session: &Session,
        cancel: &CancellationToken,
    ) -> Result<(), EngineError>;
}

/// A leased box backed by a session.
pub struct SessionBox {
    session: Session,
    releaser: Arc<dyn Releaser>,
    /// Excludes added to every sync (a recipe's lease passes its resolved `sync.exclude` with
    /// each sync instead, so the recipe provider gives none here).
    default_excludes: Vec<String>,
    /// Attached with `--lease ID`: never released by the run.
    reused: bool,
}

impl SessionBox {
    /// Wrap a session; `releaser` releases it at the end, `default_excludes` apply to every
    /// sync.
    #[must_use]
    pub fn new(
        session: Session,
        releaser: Arc<dyn Releaser>,
        default_excludes: Vec<String>,
    ) -> Self {
        SessionBox {
            session,
            releaser,
            default_excludes,
            reused: false,
        }
    }

    /// Mark the box as reused (a kept lease given with `--lease`): the run does not release it.
    #[must_use]
    pub fn reused(mut self) -> Self {
        self.reused = true;
        self
    }

    /// The session.
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }
}

fn engine<E: super::error::KindedError>(err: E) -> EngineError {
    Arc::new(err)
}

#[async_trait]
impl LeasedBox for SessionBox {
    fn id(&self) -> String {
        self.session.lease().id.to_string()
    }

    fn workdir(&self) -> String {
        self.session.lease().workdir.clone()
    }

    fn reused(&self) -> bool {
        self.reused
    }

    async fn sync(
        &self,
        spec: &SyncSpec,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        let mut excludes = self.default_excludes.clone();
        excludes.extend(spec.exclude.iter().cloned());
        let report = self
            .session
            .sync(
                &SyncOptions {
                    root: spec.root.clone(),
                    excludes,
                },
                cancel,
            )
            .await
            .map_err(engine)?;
        for notice in &report.notices {
            eprintln!("leasebox: {notice}");
        }
        Ok(TransferSummary {
            files: report.files as u64,
            bytes: report.bytes,
            deleted: 0,
            ms: report.ms,
        })
    }

    async fn exec(
        &self,
        spec: &ExecSpec,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, EngineError> {
        let command = Command {
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            // The lease's `exec_timeout` is already applied by the host.
            timeout: spec.timeout,
            capture: spec.capture,
            stdin: spec.stdin.clone().map(Bytes::from),
        };
        let sink: Arc<dyn OutputSink> = match &spec.prefix {
            Some(name) => Arc::new(PrefixSink::new(name, TerminalSink)),
            None => Arc::new(TerminalSink),
        };
        let outcome = self
            .session
            .exec(&command, sink, cancel)
            .await
            .map_err(engine)?;
        Ok(ExecResult {
            code: outcome.code,
            stdout: outcome.stdout,
            stderr: outcome.stderr,
            ms: outcome.ms,
        })
    }

    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        let report = self
            .session
            .fetch(paths, dest, cancel)
            .await
            .map_err(engine)?;
        Ok(TransferSummary {
            files: report.entries as u64,
            bytes: report.bytes,
            deleted: 0,
            ms: report.ms,
        })
    }

    async fn release(&self, cancel: &CancellationToken) -> Result<(), EngineError> {
        self.releaser.release(&self.session, cancel).await
    }
}
