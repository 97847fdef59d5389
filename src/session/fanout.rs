//! Sync once for a shard group: the file set is decided, and every file read and hashed, once
//! for all N boxes, and the one archive is streamed to every box at the same time.
//!
//! [`sync_group`] is the first sync of a group's boxes: one blocking thread walks the file set
//! and writes the archive (`sync::write_archive`, which reads and hashes each file once) into
//! a fanned-out [`ChannelWriter`](super::sync::ChannelWriter), which hands each 64 KiB chunk
//! (one shared buffer, never copied) to every box's sync exec. Each box runs the same box-side
//! receive script as a one-box sync and ends with the same revision stamp and manifest. The
//! slowest box sets the pace (every box's stdin channel is bounded), so memory stays flat
//! whatever N and the tree.
//!
//! A box that already has a sync (a re-sync of the group, or a kept group attached again by a
//! later run) goes through its own [`Session::sync`], all boxes at once: that is where a box's
//! incremental re-sync happens, so each box sends only what changed for it and keeps what it
//! built.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::fileset;
use super::index::{IndexHeader, LocalIndex};
use super::scripts;
use super::sync::{ChannelWriter, SyncOptions, SyncReport, now_ns, write_archive_recording};
use super::{Session, SessionError, StdoutTo, elapsed_ms};

/// Sync the repository to every box of a group (`sessions`, box 1 first): once, fanned out,
/// for boxes never synced; box by box (concurrently) for a re-sync. Returns one report a box.
///
/// # Errors
/// The file set cannot be decided, a file cannot be read, or a box's sync failed (the first
/// failing box in box order, named).
pub async fn sync_group(
    sessions: &[Session],
    options: &SyncOptions,
    cancel: &CancellationToken,
) -> Result<Vec<SyncReport>, SessionError> {
    let Some(first) = sessions.first() else {
        return Ok(Vec::new());
    };
    if sessions.len() == 1 {
        return Ok(vec![first.sync(options, cancel).await?]);
    }
    if sessions
        .iter()
        .any(|s| s.sync_revision().is_some() || s.reused())
    {
        let reports =
            futures::future::join_all(sessions.iter().map(|s| s.sync(options, cancel))).await;
        return collect(reports);
    }
    let start = Instant::now();
    let result = fan_out(sessions, options, cancel).await;
    // One `sync_end` for the group (the event carries the error's kind only).
    let event = match &result {
        Ok(reports) => Ok(reports[0].clone()),
        Err(e) => Err(clone_kind(e)),
    };
    first.sync_ended(&event, elapsed_ms(start));
    result
}

/// An error of the same kind, for the `sync_end` event (errors do not clone).
fn clone_kind(e: &SessionError) -> SessionError {
    match e {
        SessionError::Cancelled => SessionError::Cancelled,
        SessionError::TransportLost(m) => SessionError::TransportLost(m.clone()),
        SessionError::Conflict(m) => SessionError::Conflict(m.clone()),
        SessionError::BoxUnsuitable(m) => SessionError::BoxUnsuitable(m.clone()),
        SessionError::Refused { message, kind } => SessionError::Refused {
            message: message.clone(),
            kind: *kind,
        },
        SessionError::Local { context, source } => SessionError::Local {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        SessionError::Timeout { what, after } => SessionError::Timeout {
            what: what.clone(),
            after: *after,
        },
        SessionError::Lease(inner) => SessionError::Refused {
            message: inner.to_string(),
            kind: crate::error::HasKind::kind(inner),
        },
        other => SessionError::Remote {
            op: "sync",
            message: other.to_string(),
        },
    }
}

fn collect(
    reports: Vec<Result<SyncReport, SessionError>>,
) -> Result<Vec<SyncReport>, SessionError> {
    let count = reports.len();
    let mut out = Vec::with_capacity(count);
    for (index, report) in reports.into_iter().enumerate() {
        out.push(report.map_err(|e| name_box(e, index + 1, count))?);
    }
    Ok(out)
}

/// Say which box of the group an error is about.
fn name_box(e: SessionError, index: usize, count: usize) -> SessionError {
    match e {
        SessionError::Remote { op, message } => SessionError::Remote {
            op,
            message: format!("box {index} of {count}: {message}"),
        },
        SessionError::TransportLost(m) => {
            SessionError::TransportLost(format!("box {index} of {count}: {m}"))
        }
        SessionError::Conflict(m) => SessionError::Conflict(format!("box {index} of {count}: {m}")),
        other => other,
    }
}

async fn fan_out(
    sessions: &[Session],
    options: &SyncOptions,
    cancel: &CancellationToken,
) -> Result<Vec<SyncReport>, SessionError> {
    let start = Instant::now();
    let root = options.root.clone();
    let excludes = options.excludes.clone();
    let set = tokio::task::spawn_blocking(move || fileset::collect(&root, &excludes))
        .await
        .map_err(|e| SessionError::Invalid(format!("file set walk failed: {e}")))??;
    let first = &sessions[0];
    first.sync_started(set.entries.len(), set.file_bytes());
    let revision = hex::encode(rand::random::<[u8; 8]>());
    let opened = futures::future::join_all(sessions.iter().map(|s| {
        let lease = s.lease();
        let expected = s.sync_revision().unwrap_or_else(|| "-".to_owned());
        let args = [lease.workdir.clone(), lease.state_dir(), expected];
        s.open_script("sync", scripts::SYNC_RECEIVE, args, true)
    }))
    .await;
    let mut streams = Vec::with_capacity(opened.len());
    for stream in opened {
        // Dropping the streams opened so far closes their stdin on a cut archive: those boxes
        // keep their old (empty) tree.
        streams.push(stream?);
    }
    let mut senders = Vec::with_capacity(streams.len());
    for stream in &mut streams {
        senders.push(
            stream
                .take_stdin()
                .ok_or_else(|| SessionError::Invalid("backend gave no stdin for sync".into()))?,
        );
    }
    let notices = set.notices.clone();
    let files = set.entries.len();
    let producer_revision = revision.clone();
    let events = first.events();
    let started_ns = now_ns();
    let producer = tokio::task::spawn_blocking(move || {
        let writer = super::observe::Counted::new(ChannelWriter::fan_out(senders), events);
        let mut entries = Vec::with_capacity(set.entries.len());
        let bytes = write_archive_recording(&set, &producer_revision, writer, &mut entries)?;
        Ok::<_, SessionError>((bytes, entries))
    });
    let driven = futures::future::join_all(
        streams
            .iter_mut()
            .map(|s| super::drive(s, "sync", cancel, StdoutTo::Discard)),
    )
    .await;
    let produced = producer
        .await
        .map_err(|e| SessionError::Invalid(format!("sync stream writer failed: {e}")))?;
    let count = sessions.len();
    let mut outcomes = Vec::with_capacity(count);
    for (index, result) in driven.into_iter().enumerate() {
        match result {
            Ok((code, stderr)) => outcomes.push(super::ControlOutput {
                code,
                stdout: Vec::new(),
                stderr,
            }),
            Err(e) => return Err(name_box(e, index + 1, count)),
        }
    }
    // A local read error cuts every stream short before the revision entry, so every box
    // keeps its old tree; report the local error, which says more than the boxes can.
    let (bytes, entries) = produced?;
    for (index, out) in outcomes.iter().enumerate() {
        out.check("sync")
            .map_err(|e| name_box(e, index + 1, count))?;
    }
    // Every box now holds what was sent: each keeps the same local index, so its next sync
    // is incremental on its own.
    for session in sessions {
        session.store_index(LocalIndex {
            header: IndexHeader {
                version: 1,
                lease: session.lease().id.to_string(),
                revision: revision.clone(),
                synced_at_ns: started_ns,
                journal: 0,
            },
            entries: entries
                .iter()
                .map(|e| (e.entry.path.clone(), e.clone()))
                .collect(),
        });
        session.synced(&revision);
    }
    let ms = elapsed_ms(start);
    first.timing().record("sync", ms);
    Ok(sessions
        .iter()
        .map(|_| SyncReport {
            files,
            bytes,
            total_files: files,
            revision: revision.clone(),
            ms,
            notices: notices.clone(),
            ..SyncReport::default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::sync::mpsc;

    use super::super::sync::CHUNK;
    use super::*;

    #[test]
    fn every_box_gets_every_chunk_and_a_closed_box_is_dropped() {
        let (a_tx, mut a_rx) = mpsc::channel(4);
        let (b_tx, b_rx) = mpsc::channel(4);
        drop(b_rx);
        let mut tee = ChannelWriter::fan_out(vec![a_tx, b_tx]);
        tee.write_all(&vec![7u8; CHUNK + 10]).unwrap();
        tee.flush().unwrap();
        let mut got = Vec::new();
        while let Ok(chunk) = a_rx.try_recv() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got.len(), CHUNK + 10);
        assert_eq!(tee.receivers(), 1);
        drop(a_rx);
        tee.write_all(b"x").unwrap();
        assert!(tee.flush().is_err());
    }
}
