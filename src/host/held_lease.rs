//! The engine seam over the real engine: a [`HeldLease`] as a [`LeasedBox`]. Exec streams to
//! the terminal (lines prefixed with the step name for parallel steps), sync, fetch and the
//! interactive shell go through the lease's session, and release goes back into the lease
//! lifecycle. While failures are recorded (the REPL), a streamed exec also keeps the tail of its
//! output ([`TeeSink`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::engine::{EngineError, LeasedBox, TransferSummary};
use super::last::TEE_LIMIT;
use crate::leases::HeldLease;
use crate::session::{
    Command, ExecOutcome, FetchReport, OutputSink, PrefixSink, Session, ShellOutcome, ShellRequest,
    SyncOptions, SyncReport, TerminalSink,
};

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
        sync_on(self.session(), options, cancel).await
    }

    async fn exec(
        &self,
        command: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError> {
        // The lease's `exec_timeout` is already applied by the host.
        exec_on(self.session(), command, prefix, cancel).await
    }

    async fn shell(
        &self,
        request: &ShellRequest,
        cancel: &CancellationToken,
    ) -> Result<ShellOutcome, EngineError> {
        self.session().shell(request, cancel).await.map_err(engine)
    }

    async fn exec_teed(
        &self,
        command: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError> {
        if command.capture {
            return self.exec(command, prefix, cancel).await;
        }
        let tee = Arc::new(TeeSink {
            inner: terminal(prefix),
            out: Mutex::default(),
            err: Mutex::default(),
        });
        let mut outcome = self
            .session()
            .exec(command, Arc::clone(&tee) as Arc<dyn OutputSink>, cancel)
            .await
            .map_err(engine)?;
        outcome.stdout = Some(take(&tee.out));
        outcome.stderr = Some(take(&tee.err));
        Ok(outcome)
    }

    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        fetch_on(self.session(), paths, dest, cancel).await
    }

    async fn mark_kept(&self) -> Result<(), EngineError> {
        HeldLease::mark_kept(self).await.map_err(engine)
    }

    async fn release(&self, cancel: &CancellationToken) -> Result<(), EngineError> {
        HeldLease::release(self, cancel).await.map_err(engine)
    }

    async fn renew(&self) -> Result<(), EngineError> {
        HeldLease::renew(self).await.map(|_| ()).map_err(engine)
    }

    fn members(&self) -> Vec<Arc<dyn LeasedBox>> {
        if self.sessions().len() < 2 {
            return Vec::new();
        }
        let count = self.sessions().len();
        self.sessions()
            .iter()
            .enumerate()
            .map(|(i, session)| {
                Arc::new(GroupBox {
                    session: session.clone(),
                    index: i + 1,
                    count,
                }) as Arc<dyn LeasedBox>
            })
            .collect()
    }

    fn node(&self) -> Option<String> {
        node_of(self.session())
    }

    async fn sync_all(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<TransferSummary>, EngineError> {
        let reports = HeldLease::sync_all(self, options, cancel)
            .await
            .map_err(engine)?;
        if let Some(first) = reports.first() {
            for notice in &first.notices {
                self.session().events().warn(notice);
            }
        }
        Ok(reports.iter().map(TransferSummary::from).collect())
    }
}

/// The terminal, its lines prefixed with the step's name when one is given.
fn terminal(prefix: Option<&str>) -> Arc<dyn OutputSink> {
    match prefix {
        Some(name) => Arc::new(PrefixSink::new(name, TerminalSink)),
        None => Arc::new(TerminalSink),
    }
}

/// Sync a session's box; the sync's notices (drift restored, a fence mismatch reconciled) go
/// to the run's events.
async fn sync_on(
    session: &Session,
    options: &SyncOptions,
    cancel: &CancellationToken,
) -> Result<TransferSummary, EngineError> {
    let report = session.sync(options, cancel).await.map_err(engine)?;
    for notice in &report.notices {
        session.events().warn(notice);
    }
    Ok(TransferSummary::from(&report))
}

/// Run a command in a session's box, streaming to the terminal.
async fn exec_on(
    session: &Session,
    command: &Command,
    prefix: Option<&str>,
    cancel: &CancellationToken,
) -> Result<ExecOutcome, EngineError> {
    session
        .exec(command, terminal(prefix), cancel)
        .await
        .map_err(engine)
}

/// Fetch paths of a session's box's workdir into `dest`.
async fn fetch_on(
    session: &Session,
    paths: &[String],
    dest: &Path,
    cancel: &CancellationToken,
) -> Result<TransferSummary, EngineError> {
    let report = session.fetch(paths, dest, cancel).await.map_err(engine)?;
    Ok(TransferSummary::from(&report))
}

impl From<&SyncReport> for TransferSummary {
    fn from(report: &SyncReport) -> Self {
        TransferSummary {
            files: report.files as u64,
            bytes: report.bytes,
            deleted: report.deleted as u64,
            incremental: report.incremental,
            ms: report.ms,
        }
    }
}

impl From<&FetchReport> for TransferSummary {
    fn from(report: &FetchReport) -> Self {
        TransferSummary {
            files: report.entries as u64,
            bytes: report.bytes,
            deleted: 0,
            incremental: false,
            ms: report.ms,
        }
    }
}

/// The node a session's box runs on.
fn node_of(session: &Session) -> Option<String> {
    let lease = session.lease();
    lease
        .boxes
        .first()
        .and_then(|b| b.node_name().or(b.node_id()))
        .or_else(|| lease.handle.get("node_name").map(String::as_str))
        .map(str::to_owned)
}

/// One box of a held group: exec, sync, fetch and shell on its own session; the group is
/// released whole, by the lease.
struct GroupBox {
    session: Session,
    index: usize,
    count: usize,
}

#[async_trait]
impl LeasedBox for GroupBox {
    fn id(&self) -> String {
        format!("{}#{}", self.session.lease().id, self.index)
    }

    fn workdir(&self) -> String {
        self.session.lease().workdir.clone()
    }

    fn node(&self) -> Option<String> {
        node_of(&self.session)
    }

    async fn sync(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        sync_on(&self.session, options, cancel).await
    }

    async fn exec(
        &self,
        command: &Command,
        prefix: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, EngineError> {
        exec_on(&self.session, command, prefix, cancel).await
    }

    async fn shell(
        &self,
        request: &ShellRequest,
        cancel: &CancellationToken,
    ) -> Result<ShellOutcome, EngineError> {
        self.session.shell(request, cancel).await.map_err(engine)
    }

    async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<TransferSummary, EngineError> {
        fetch_on(&self.session, paths, dest, cancel).await
    }

    async fn release(&self, _cancel: &CancellationToken) -> Result<(), EngineError> {
        Err(engine(crate::error::Failure::new(
            crate::error::ErrorKind::Usage,
            format!(
                "box {} of {} belongs to group lease `{}`, which is released whole: call `cleanup()` on the group",
                self.index,
                self.count,
                self.session.lease().id
            ),
        )))
    }
}

/// Streams to the terminal and keeps the last [`TEE_LIMIT`] bytes of each stream.
struct TeeSink {
    inner: Arc<dyn OutputSink>,
    out: Mutex<Vec<u8>>,
    err: Mutex<Vec<u8>>,
}

fn keep_tail(buf: &Mutex<Vec<u8>>, data: &[u8]) {
    let mut buf = buf
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    buf.extend_from_slice(data);
    // Trim in large steps, so a chatty command does not move the buffer on every write.
    if buf.len() > 2 * TEE_LIMIT {
        let cut = buf.len() - TEE_LIMIT;
        buf.drain(..cut);
    }
}

fn take(buf: &Mutex<Vec<u8>>) -> Vec<u8> {
    let mut buf = std::mem::take(
        &mut *buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if buf.len() > TEE_LIMIT {
        let cut = buf.len() - TEE_LIMIT;
        buf.drain(..cut);
    }
    buf
}

impl OutputSink for TeeSink {
    fn stdout(&self, data: &[u8]) {
        keep_tail(&self.out, data);
        self.inner.stdout(data);
    }

    fn stderr(&self, data: &[u8]) {
        keep_tail(&self.err, data);
        self.inner.stderr(data);
    }

    fn finish(&self) {
        self.inner.finish();
    }
}
