//! What a session tells the run's [`Events`]: each sync's and fetch's start and end (files,
//! bytes, whether incremental, the error kind when it failed), and, for the terminal's bars,
//! the bytes sent or received so far.

use std::io::Write;

use super::fileset::{EntryKind, FileSet};
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

    /// Send the file set of `options.root` to the workdir, replacing what was there
    /// (`sync.rs`), reported to the run's events as `sync_start` and `sync_end`.
    ///
    /// # Errors
    /// The file set cannot be decided or a file cannot be read (named in the error), the box
    /// refuses (another client changed it, no `tar`), the connection is lost, or cancellation.
    pub async fn sync(
        &self,
        options: &SyncOptions,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<SyncReport, SessionError> {
        let start = std::time::Instant::now();
        let result = self.sync_tree(options, cancel).await;
        self.sync_ended(&result, super::elapsed_ms(start));
        result
    }

    /// A sync decided its file set.
    pub(crate) fn sync_started(&self, set: &FileSet) {
        // The size is read here (a `stat` a file, no content): the bar's total.
        let bytes = set
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File))
            .filter_map(|e| std::fs::symlink_metadata(set.root.join(&e.path)).ok())
            .map(|m| m.len())
            .sum();
        self.events().emit(Event::SyncStart {
            lease_id: self.lease().id.to_string(),
            files: set.entries.len() as u64,
            bytes,
        });
    }

    /// A sync ended, with its report or its error.
    pub(crate) fn sync_ended(&self, result: &Result<SyncReport, SessionError>, ms: u64) {
        let (files, bytes, incremental) = result
            .as_ref()
            .map_or((0, 0, false), |r| (r.files as u64, r.bytes, r.incremental));
        self.events().emit(Event::SyncEnd {
            lease_id: self.lease().id.to_string(),
            files,
            bytes,
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
