//! The engine seam over the real engine: a [`HeldLease`] as a [`LeasedBox`]. Exec streams to
//! the terminal (lines prefixed with the step name for parallel steps), sync and fetch go
//! through the lease's session, and release goes back into the lease lifecycle.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::engine::{EngineError, LeasedBox, TransferSummary};
use crate::leases::HeldLease;
use crate::session::{Command, ExecOutcome, OutputSink, PrefixSink, SyncOptions, TerminalSink};

fn engine<E: super::error::KindedError>(err: E) -> EngineError {
    Arc::new(err)
}

#[async_trait]
impl LeasedBox for HeldLease {
    fn id(&self) -> String {
        self.lease().id.to_string()
    }

    fn workdir(&self) -> String {
        self.lease().workdir.clone()
    }

    fn reused(&self) -> bool {
        HeldLease::reused(self)
    }

    async fn sync(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        let report = self.session().sync(options, cancel).await.map_err(engine)?;
        for notice in &report.notices {
            eprintln!("leasebox: {notice}");
        }
        Ok(TransferSummary {
            files: report.files as u64,
            bytes: report.bytes,
            deleted: report.deleted as u64,
            incremental: report.incremental,
            ms: report.ms,
        })
    }

    async fn exec(
        &self,
        command: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError> {
        let sink: Arc<dyn OutputSink> = match prefix {
            Some(name) => Arc::new(PrefixSink::new(name, TerminalSink)),
            None => Arc::new(TerminalSink),
        };
        // The lease's `exec_timeout` is already applied by the host.
        self.session()
            .exec(command, sink, cancel)
            .await
            .map_err(engine)
    }

    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        let report = self
            .session()
            .fetch(paths, dest, cancel)
            .await
            .map_err(engine)?;
        Ok(TransferSummary {
            files: report.entries as u64,
            bytes: report.bytes,
            deleted: 0,
            incremental: false,
            ms: report.ms,
        })
    }

    async fn release(&self, cancel: &CancellationToken) -> Result<(), EngineError> {
        HeldLease::release(self, cancel).await.map_err(engine)
    }
}
