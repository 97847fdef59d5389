//! Sync: stream the file set as a tar over exec stdin into a staging directory in the box and
//! swap it into the workdir, so deleted files disappear. Nothing is buffered whole: a blocking
//! thread reads one file at a time into a bounded channel of 64 KiB chunks.
//!
//! The archive holds `tree/<path>` for every file and link, then `meta/manifest.jsonl` (a
//! header line, then path, size, mode, mtime and sha256 of every file, hashed while it is
//! read, spooled to a temporary file so memory stays flat) and `meta/revision`,
//! the new revision stamp. The box keeps both in its state dir; a later sync that expected
//! another stamp is refused, since another client changed the box.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fileset::{self, EntryKind, FileSet};
use super::index::{IndexEntry, StatKey};
use super::scripts;
use super::{Session, SessionError, elapsed_ms};

pub(crate) const CHUNK: usize = 64 * 1024;

/// What to do when the box's revision stamp is not the one this client last wrote (another
/// client synced, the box was changed by hand, the local manifest was lost, an earlier apply
/// broke midway).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMismatch {
    /// Read the box's own manifest, compare, send what differs, and say so in one line.
    #[default]
    Reconcile,
    /// Stop with [`SessionError::Conflict`] (exit 78), naming the lease.
    Fail,
}

/// What to sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// The local directory to send (the repository root).
    pub root: PathBuf,
    /// Extra exclude patterns (gitignore syntax) on top of git's and `.leasebox-ignore`.
    pub excludes: Vec<String>,
    /// Replace the whole workdir (today's full sync: what the box created goes too), instead
    /// of mirroring the file set and leaving the rest (`sync { clean = true }`, `--sync-clean`).
    pub clean: bool,
    /// What to do on a revision mismatch (`sync { on_mismatch = "fail" }`).
    pub on_mismatch: OnMismatch,
    /// Paths (relative to `root`, `/`-separated) the caller believes changed since the last
    /// sync, from file events (`leasebox watch`). Only a hint: these are re-read whatever their
    /// stat says, and every other path is still checked against the manifest, so a missed or
    /// spurious event never leaves a wrong tree. `None`: no hint.
    pub changed: Option<Vec<String>>,
    /// Only decide what would be sent and deleted; change nothing in the box or locally.
    pub dry_run: bool,
}

/// What a sync did (or, with [`SyncOptions::dry_run`], would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Files and links sent.
    pub files: usize,
    /// Bytes of file content sent.
    pub bytes: u64,
    /// Files and links deleted in the box (ones an earlier sync sent that are gone locally).
    pub deleted: usize,
    /// Whether only the differences were sent (false: a first sync or a clean replace).
    pub incremental: bool,
    /// The files in the file set.
    pub total_files: usize,
    /// The first paths sent (at most [`SyncReport::SAMPLE`]).
    pub sent_paths: Vec<String>,
    /// The first paths deleted (at most [`SyncReport::SAMPLE`]).
    pub deleted_paths: Vec<String>,
    /// Paths of the sync set the box changed since the last sync, restored by this one.
    pub drift: Vec<String>,
    /// The box's revision stamp was not the one this client last wrote, and the sync
    /// compared against the box's own manifest instead.
    pub reconciled: bool,
    /// The new revision stamp (the old one when nothing had to change, or on a dry run).
    pub revision: String,
    /// Wall time in milliseconds.
    pub ms: u64,
    /// Notices about the file set and the sync (one line each).
    pub notices: Vec<String>,
}

impl SyncReport {
    /// How many paths [`SyncReport::sent_paths`] and [`SyncReport::deleted_paths`] keep.
    pub const SAMPLE: usize = 10;
}

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the workdir.
    pub path: String,
    /// Size in bytes (0 for links).
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time, unix seconds.
    pub mtime: u64,
    /// `sha256:<hex>` of the content; for links, of the link target.
    pub hash: String,
    /// The link target, for symlinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The first line of the manifest a sync leaves in the box (and that incremental sync
/// compares against). The manifest is JSON Lines: this header, then one [`ManifestEntry`] a
/// line, sorted by path, so neither end ever holds it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// Format version, 1.
    pub version: u32,
    /// The revision stamp this manifest belongs to.
    pub revision: String,
    /// This header starts a whole manifest (`false`: it starts lines an incremental sync
    /// appended, which replace earlier lines of the same paths).
    #[serde(default)]
    pub full: bool,
}

/// Read a manifest (journal included): its latest header and the entries it holds, sorted by
/// path.
///
/// # Errors
/// A line is not valid JSON of the expected shape.
pub fn parse_manifest(
    text: &str,
) -> Result<(ManifestHeader, Vec<ManifestEntry>), serde_json::Error> {
    let (header, entries) = super::index::resolve_manifest(text)?;
    let header =
        header.ok_or_else(|| <serde_json::Error as serde::de::Error>::custom("no header line"))?;
    Ok((header, entries.into_values().collect()))
}

impl Session {
    /// The sync itself, without its events (`Session::sync`, in `observe.rs`, reports it to
    /// the run's events).
    ///
    /// By default the sync mirrors the file set and leaves the rest: only new and changed
    /// files are sent, only files an earlier sync sent that are gone locally are deleted, and
    /// what the box created is never touched (see [`super::incremental`]).
    /// [`SyncOptions::clean`] replaces the whole workdir instead.
    ///
    /// # Errors
    /// The file set cannot be decided or a file cannot be read (named in the error), the box
    /// refuses (no `tar`; another client changed it and `on_mismatch` is `fail`), the
    /// connection is lost, or cancellation.
    pub(crate) async fn sync_tree(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<SyncReport, SessionError> {
        let start = Instant::now();
        let report = if options.clean && !options.dry_run {
            self.sync_clean(options, cancel).await?
        } else {
            self.sync_incremental(options, cancel).await?
        };
        let ms = elapsed_ms(start);
        if !options.dry_run {
            let timing = self.timing();
            let mut phase = super::Phase::new(
                "sync",
                timing.offset_ms(Instant::now()).saturating_sub(ms),
                ms,
            );
            phase.sync = Some(super::timing::SyncFigures {
                files: report.files as u64,
                bytes: report.bytes,
                deleted: report.deleted as u64,
                incremental: report.incremental,
            });
            timing.push(phase);
        }
        Ok(SyncReport { ms, ..report })
    }

    /// The full replace: a tar of the whole file set into a staging dir, swapped into place.
    async fn sync_clean(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<SyncReport, SessionError> {
        let root = options.root.clone();
        let excludes = options.excludes.clone();
        let set = tokio::task::spawn_blocking(move || fileset::collect(&root, &excludes))
            .await
            .map_err(|e| SessionError::Invalid(format!("file set walk failed: {e}")))??;
        self.sync_started(set.entries.len(), set.file_bytes());
        let revision = hex::encode(rand::random::<[u8; 8]>());
        let lease = self.lease();
        // A clean replace discards whatever the box holds, so another client's stamp only
        // stops it when the recipe asks.
        let expected = match options.on_mismatch {
            OnMismatch::Fail => self.sync_revision().unwrap_or_else(|| "-".to_owned()),
            OnMismatch::Reconcile => "-".to_owned(),
        };
        let args = [lease.workdir.clone(), lease.state_dir(), expected];
        let mut stream = self
            .open_script("sync", scripts::SYNC_RECEIVE, args, true)
            .await?;
        let stdin = stream
            .take_stdin()
            .ok_or_else(|| SessionError::Invalid("backend gave no stdin for sync".into()))?;

        let notices = set.notices.clone();
        let files = set.entries.len();
        let producer_revision = revision.clone();
        let started_ns = now_ns();
        let events = self.events();
        let producer = tokio::task::spawn_blocking(move || {
            let writer = super::observe::Counted::new(ChannelWriter::new(stdin), events);
            let mut entries = Vec::with_capacity(set.entries.len());
            let bytes = write_archive_recording(&set, &producer_revision, writer, &mut entries)?;
            Ok::<_, SessionError>((bytes, entries))
        });

        let (code, stderr) = super::drive(&mut stream, "sync", cancel, super::StdoutTo::Discard)
            .await
            .inspect_err(|_| producer.abort())?;
        let produced = producer
            .await
            .map_err(|e| SessionError::Invalid(format!("sync stream writer failed: {e}")))?;
        let out = super::ControlOutput {
            code,
            stdout: Vec::new(),
            stderr,
        };
        // A local read error cuts the stream short before the revision entry, so the box
        // keeps its old tree; report the local error, which says more than the box can.
        let (bytes, entries) = produced?;
        out.check("sync")?;
        self.store_index(super::index::LocalIndex {
            header: super::index::IndexHeader {
                version: 1,
                lease: lease.id.to_string(),
                revision: revision.clone(),
                synced_at_ns: started_ns,
                journal: 0,
            },
            entries: entries
                .into_iter()
                .map(|e| (e.entry.path.clone(), e))
                .collect(),
        });
        self.synced(&revision);
        Ok(SyncReport {
            files,
            bytes,
            total_files: files,
            revision,
            notices,
            ..SyncReport::default()
        })
    }
}

/// Nanoseconds since the epoch, now (local clock).
pub(crate) fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// Write the archive of `set` to `writer`: `tree/…`, then the manifest and the revision.
/// Returns the bytes of file content written.
///
/// # Errors
/// A file cannot be read (named), or the receiving end went away.
pub fn write_archive<W: Write>(
    set: &FileSet,
    revision: &str,
    writer: W,
) -> Result<u64, SessionError> {
    write_archive_recording(set, revision, writer, &mut Vec::new())
}

/// [`write_archive`], keeping what was sent (with the local stat it was read under) in
/// `sent`, for the local index.
pub(crate) fn write_archive_recording<W: Write>(
    set: &FileSet,
    revision: &str,
    writer: W,
    sent: &mut Vec<IndexEntry>,
) -> Result<u64, SessionError> {
    let mut builder = tar::Builder::new(writer);
    builder.mode(tar::HeaderMode::Complete);
    // The manifest goes to a temporary file as the files are archived, and follows them into
    // the archive: memory stays flat whatever the number of files.
    let mut manifest = Spool::new()?;
    manifest.line(&ManifestHeader {
        version: 1,
        revision: revision.to_owned(),
        full: true,
    })?;
    let mut total = 0u64;
    for entry in &set.entries {
        let tar_path = format!("tree/{}", entry.path);
        let Some((sent_entry, bytes)) =
            append_path(&mut builder, &set.root, &entry.path, &entry.kind, &tar_path)?
        else {
            continue;
        };
        total += bytes;
        manifest.line(&sent_entry.entry)?;
        sent.push(sent_entry);
    }
    manifest.append_to(&mut builder, "meta/manifest.jsonl")?;
    append_bytes(
        &mut builder,
        "meta/revision",
        format!("{revision}\n").as_bytes(),
    )
    .map_err(gone)?;
    let mut writer = builder.into_inner().map_err(gone)?;
    writer.flush().map_err(gone)?;
    Ok(total)
}

/// The receiving end of a sync stream went away.
pub(crate) fn gone(e: std::io::Error) -> SessionError {
    SessionError::TransportLost(format!("the box stopped reading the sync stream: {e}"))
}

/// Manifest lines spooled to a temporary file, to follow the files into the archive.
pub(crate) struct Spool {
    out: std::io::BufWriter<std::fs::File>,
}

fn spool_error(e: std::io::Error) -> SessionError {
    SessionError::local("cannot write the sync manifest to a temporary file", e)
}

impl Spool {
    pub(crate) fn new() -> Result<Spool, SessionError> {
        Ok(Spool {
            out: std::io::BufWriter::new(tempfile::tempfile().map_err(spool_error)?),
        })
    }

    pub(crate) fn line(&mut self, line: &dyn erased::Line) -> Result<(), SessionError> {
        line.write_to(&mut self.out).map_err(spool_error)
    }

    /// Append the spooled lines to `builder` as the member `path`.
    pub(crate) fn append_to<W: Write>(
        self,
        builder: &mut tar::Builder<W>,
        path: &str,
    ) -> Result<(), SessionError> {
        let mut spooled = self
            .out
            .into_inner()
            .map_err(|e| spool_error(e.into_error()))?;
        let length = spooled.stream_position().map_err(spool_error)?;
        spooled.rewind().map_err(spool_error)?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(length);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder
            .append_data(&mut header, path, spooled)
            .map_err(gone)
    }
}

/// Append the file or link at `root/path` to `builder` as `tar_path`, hashing it as it is
/// read. Returns what was sent (`None`: it vanished since the walk) and its bytes.
///
/// # Errors
/// It cannot be read (named), or the receiving end went away.
pub(crate) fn append_path<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &std::path::Path,
    path: &str,
    kind: &EntryKind,
    tar_path: &str,
) -> Result<Option<(IndexEntry, u64)>, SessionError> {
    let full = root.join(path);
    let unreadable = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            None
        } else {
            Some(SessionError::local(
                format!("cannot read `{}`", full.display()),
                e,
            ))
        }
    };
    match kind {
        EntryKind::Symlink(target) => {
            let meta = match std::fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) => return unreadable(e).map_or(Ok(None), Err),
            };
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            header.set_mtime(mtime_of(&meta));
            header.set_uid(0);
            header.set_gid(0);
            builder
                .append_link(&mut header, tar_path, target)
                .map_err(gone)?;
            let link = target.to_string_lossy().into_owned();
            Ok(Some((
                IndexEntry {
                    entry: ManifestEntry {
                        path: path.to_owned(),
                        size: 0,
                        mode: 0o777,
                        mtime: mtime_of(&meta),
                        hash: super::plan::link_hash(&link),
                        link: Some(link),
                    },
                    stat: StatKey::of(&meta),
                },
                0,
            )))
        }
        EntryKind::File => {
            let file = match std::fs::File::open(&full) {
                Ok(f) => f,
                Err(e) => return unreadable(e).map_or(Ok(None), Err),
            };
            let meta = file
                .metadata()
                .map_err(|e| SessionError::local(format!("cannot read `{}`", full.display()), e))?;
            let size = meta.len();
            let mode = mode_of(&meta);
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            header.set_mode(mode);
            header.set_mtime(mtime_of(&meta));
            header.set_uid(0);
            header.set_gid(0);
            let mut reader = ExactReader::new(file, size);
            builder
                .append_data(&mut header, tar_path, &mut reader)
                .map_err(|e| match reader.error.take() {
                    Some(read_err) => {
                        SessionError::local(format!("cannot read `{}`", full.display()), read_err)
                    }
                    None => gone(e),
                })?;
            Ok(Some((
                IndexEntry {
                    entry: ManifestEntry {
                        path: path.to_owned(),
                        size,
                        mode,
                        mtime: mtime_of(&meta),
                        hash: format!("sha256:{}", hex::encode(reader.hasher.finalize_reset())),
                        link: None,
                    },
                    stat: StatKey::of(&meta),
                },
                size,
            )))
        }
    }
}

pub(crate) fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    builder.append_data(&mut header, path, data)
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_: &std::fs::Metadata) -> u32 {
    0o644
}

fn mtime_of(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Reads exactly `size` bytes from a file whose header was already written, hashing them: a
/// file that grew is cut at `size`, one that shrank is padded with zeros, so the archive stays
/// well-formed. A read error is kept so the caller can name the file.
struct ExactReader<R> {
    inner: R,
    left: u64,
    hasher: Sha256,
    error: Option<std::io::Error>,
}

impl<R: Read> ExactReader<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactReader {
            inner,
            left: size,
            hasher: Sha256::new(),
            error: None,
        }
    }
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                // The file shrank while we read it: pad.
                buf[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => {
                let text = e.to_string();
                self.error = Some(e);
                return Err(std::io::Error::other(text));
            }
        };
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Write` that sends 64 KiB chunks into an exec's stdin channel, blocking when the box is
/// slower than the disk (so memory stays flat). Fanned out ([`ChannelWriter::fan_out`]), it
/// hands each chunk (one shared buffer) to every box's channel, blocking while the slowest box
/// catches up; a box that stopped reading is dropped (its own sync reports why), and writing
/// fails once none is left.
pub struct ChannelWriter {
    txs: Vec<mpsc::Sender<Bytes>>,
    fanned_out: bool,
    buf: Vec<u8>,
}

impl ChannelWriter {
    /// A writer feeding one box's `tx`.
    #[must_use]
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter {
            txs: vec![tx],
            fanned_out: false,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// A writer feeding every box's sender in `txs`.
    #[must_use]
    pub fn fan_out(txs: Vec<mpsc::Sender<Bytes>>) -> Self {
        ChannelWriter {
            txs,
            fanned_out: true,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// How many boxes still read.
    #[must_use]
    pub fn receivers(&self) -> usize {
        self.txs.len()
    }

    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.txs
            .retain(|tx| tx.blocking_send(chunk.clone()).is_ok());
        if self.txs.is_empty() {
            let what = if self.fanned_out {
                "every box closed its stdin"
            } else {
                "stdin closed"
            };
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, what));
        }
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buf()
    }
}

/// Manifest lines of either type, written as one JSON object and a newline.
pub(crate) mod erased {
    use std::io::Write;

    pub trait Line {
        fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()>;
    }

    impl<T: serde::Serialize> Line for T {
        fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
            serde_json::to_writer(&mut *out, self)?;
            out.write_all(b"\n")
        }
    }
}
