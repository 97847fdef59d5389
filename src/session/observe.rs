//! What a session tells the run's [`Events`]: each sync's and fetch's start and end (files,
//! bytes, deletions, whether incremental, the error kind when it failed), and, for the terminal's bars,
//! the bytes sent or received so far.

use std::io::Write;

use super::{FetchReport, Session, SessionError, SyncOptions, SyncReport};
use crate::error::HasKind;
use crate::events::{Event, Events, Tick};

impl Session {
    /// Report this session's syncs and fetches to `events` (the default reports nowhere).
    pub fn set_events(&self, events: Events) {
        *self
            .inner
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = events;
    }

    /// The events this session reports to.
    #[must_use]
    pub fn events(&self) -> Events {
        self.inner
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Send the file set of `options.root` to the workdir (`sync.rs`): by default only what
    /// changed, mirroring the file set and leaving what the box created; a clean sync replaces
    /// the whole workdir. Reported to the run's events as `sync_start` and `sync_end` (a dry
    /// run, which changes nothing, reports nothing).
    ///
    /// # Errors
    /// The file set cannot be decided or a file cannot be read (named in the error), the box
    /// refuses (no `tar`; another client changed it and `on_mismatch` is `fail`), the
    /// connection is lost, or cancellation.
    pub async fn sync(
        &self,
        options: &SyncOptions,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<SyncReport, SessionError> {
        let start = std::time::Instant::now();
        let result = self.sync_tree(options, cancel).await;
        if !options.dry_run {
            self.sync_ended(&result, super::elapsed_ms(start));
        }
        result
    }

    /// A sync decided what it sends: `files` files and links, `bytes` bytes of content (the
    /// bar's total).
    pub(crate) fn sync_started(&self, files: usize, bytes: u64) {
        self.events().emit(Event::SyncStart {
            lease_id: self.lease().id.to_string(),
            files: files as u64,
            bytes,
        });
    }

    /// A sync ended, with its report or its error.
    pub(crate) fn sync_ended(&self, result: &Result<SyncReport, SessionError>, ms: u64) {
        let (files, bytes, deleted, incremental) = result.as_ref().map_or((0, 0, 0, false), |r| {
            (r.files as u64, r.bytes, r.deleted as u64, r.incremental)
        });
        self.events().emit(Event::SyncEnd {
            lease_id: self.lease().id.to_string(),
            files,
            bytes,
            deleted,
            incremental,
            ms,
            error_kind: result.as_ref().err().map(|e| e.kind().as_str().to_owned()),
        });
    }

    /// A fetch of `paths` began.
    pub(crate) fn fetch_started(&self, paths: &[String]) {
        self.events().emit(Event::FetchStart {
            lease_id: self.lease().id.to_string(),
            paths: paths.to_vec(),
        });
    }

    /// A fetch ended.
    pub(crate) fn fetch_ended(
        &self,
        paths: &[String],
        result: &Result<FetchReport, SessionError>,
        ms: u64,
    ) {
        let (files, bytes) = result
            .as_ref()
            .map_or((0, 0), |r| (r.entries as u64, r.bytes));
        self.events().emit(Event::FetchEnd {
            lease_id: self.lease().id.to_string(),
            paths: paths.to_vec(),
            files,
            bytes,
            ms,
            error_kind: result.as_ref().err().map(|e| e.kind().as_str().to_owned()),
        });
    }
}

/// A writer that tells `events` how many bytes went through it (the sync bar).
pub(crate) struct Counted<W> {
    inner: W,
    events: Events,
    sent: u64,
    told: u64,
}

impl<W: Write> Counted<W> {
    pub(crate) fn new(inner: W, events: Events) -> Self {
        Counted {
            inner,
            events,
            sent: 0,
            told: 0,
        }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.sent += n as u64;
        // Every 256 KiB is plenty for a bar.
        if self.sent - self.told >= 256 * 1024 {
            self.told = self.sent;
            self.events.tick(Tick::Synced { bytes: self.sent });
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.events.tick(Tick::Synced { bytes: self.sent });
        self.inner.flush()
    }
}

/// Tell `events` what a fetch has written so far.
pub(crate) fn fetched(events: &Events, report: &FetchReport) {
    events.tick(Tick::Fetched {
        files: report.entries as u64,
        bytes: report.bytes,
    });
}
