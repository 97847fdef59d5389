//! The two manifests of the incremental sync.
//!
//! - The local index ([`LocalIndex`]): per lease, in the state dir (and in memory while the
//!   session lives). For every path the last sync left in the box: what the box got (size,
//!   mode, mtime, hash, link target) and the local stat it was read with (mtime and ctime in
//!   nanoseconds, inode). As in git's index, a file whose size, mtime, inode, ctime and mode are
//!   unchanged reuses the stored hash, unless its mtime is within [`RACY_WINDOW_NS`] of the
//!   sync that recorded it (the "racy" case: a write in the same timestamp tick would go
//!   unseen), when it is hashed again.
//! - The box's manifest (`W.lbx/manifest.jsonl`): JSON Lines, a [`ManifestHeader`], then one
//!   [`ManifestEntry`] a line; an incremental apply appends a header with its revision, the
//!   changed entries and `{"path":…,"gone":true}` lines, and a later line wins
//!   ([`resolve_manifest`]).
//!
//! The index is a cache: a missing, torn or foreign one is dropped, and the sync compares with
//! the box's own manifest instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::sync::{ManifestEntry, ManifestHeader};

/// Files modified this close (in nanoseconds) before the sync that recorded them are hashed
/// again: coarse file-system timestamps could hide a write made just after the read.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// The local stat a hash was computed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatKey {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// The full `st_mode` (type and permission bits).
    pub mode: u32,
}

impl StatKey {
    /// The stat key of `meta`.
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> StatKey {
        use std::os::unix::fs::MetadataExt;
        StatKey {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            mode: meta.mode(),
        }
    }
}

/// One path of the local index: what the box holds and the stat it was read with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// What the box got.
    #[serde(flatten)]
    pub entry: ManifestEntry,
    /// The local stat when it was read.
    pub stat: StatKey,
}

/// The index header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexHeader {
    /// Format version, 1.
    pub version: u32,
    /// The lease it belongs to.
    pub lease: String,
    /// The revision stamp the box got with these entries.
    pub revision: String,
    /// When the stats were taken (nanoseconds since the epoch, local clock).
    pub synced_at_ns: i128,
    /// Lines appended to the box's manifest since it was last written whole.
    pub journal: usize,
}

/// The local index of one lease.
#[derive(Debug, Clone)]
pub struct LocalIndex {
    /// Its header.
    pub header: IndexHeader,
    /// Entries by path.
    pub entries: BTreeMap<String, IndexEntry>,
}

impl LocalIndex {
    /// Whether the stored hash of `path` can be trusted for a file with `stat`.
    #[must_use]
    pub fn reusable(&self, path: &str, stat: &StatKey) -> Option<&IndexEntry> {
        let entry = self.entries.get(path)?;
        (entry.stat == *stat && stat.mtime_ns + RACY_WINDOW_NS <= self.header.synced_at_ns)
            .then_some(entry)
    }

    /// The revision stamp the index at `path` was written with (its first line only); `None`
    /// when it is missing, unreadable or of another lease.
    #[must_use]
    pub fn revision_at(path: &Path, lease: &str) -> Option<String> {
        let file = std::fs::File::open(path).ok()?;
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(file), &mut first).ok()?;
        let header: IndexHeader = serde_json::from_str(&first).ok()?;
        (header.version == 1 && header.lease == lease).then_some(header.revision)
    }

    /// Read the index at `path`; `None` when it is missing, unreadable or of another lease.
    #[must_use]
    pub fn load(path: &Path, lease: &str) -> Option<LocalIndex> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let header: IndexHeader = serde_json::from_str(lines.next()?).ok()?;
        if header.version != 1 || header.lease != lease {
            return None;
        }
        let mut entries = BTreeMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let entry: IndexEntry = serde_json::from_str(line).ok()?;
            entries.insert(entry.entry.path.clone(), entry);
        }
        Some(LocalIndex { header, entries })
    }

    /// Write the index to `path` (a temporary file renamed over it: readers see the old or
    /// the new one). Not fsynced: it is a cache, and a lost one only costs a comparison.
    ///
    /// # Errors
    /// The directory cannot be written.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        crate::atomic_file::create_private_dir(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".part")
            .tempfile_in(dir)?;
        let mut out = std::io::BufWriter::new(tmp);
        serde_json::to_writer(&mut out, &self.header)?;
        out.write_all(b"\n")?;
        for entry in self.entries.values() {
            serde_json::to_writer(&mut out, entry)?;
            out.write_all(b"\n")?;
        }
        let tmp = out.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// One line of the box's manifest.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ManifestLine {
    Header(ManifestHeader),
    Gone { path: String, gone: bool },
    Entry(ManifestEntry),
}

/// Read the box's manifest, journal included: its latest header and the entries it holds now.
///
/// # Errors
/// A line is not valid JSON of a manifest line's shape.
pub fn resolve_manifest(
    text: &str,
) -> Result<(Option<ManifestHeader>, BTreeMap<String, ManifestEntry>), serde_json::Error> {
    let mut header = None;
    let mut entries = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line)? {
            ManifestLine::Header(h) => {
                if h.full {
                    entries.clear();
                }
                header = Some(h);
            }
            ManifestLine::Gone { path, gone } => {
                if gone {
                    entries.remove(&path);
                }
            }
            ManifestLine::Entry(e) => {
                entries.insert(e.path.clone(), e);
            }
        }
    }
    Ok((header, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, hash: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.to_owned(),
            size: 1,
            mode: 0o644,
            mtime: 1,
            hash: hash.to_owned(),
            link: None,
        }
    }

    #[test]
    fn a_later_manifest_line_wins_and_gone_removes() {
        let mut text = String::new();
        for line in [
            serde_json::to_string(&ManifestHeader {
                version: 1,
                revision: "r1".into(),
                full: true,
            })
            .unwrap(),
            serde_json::to_string(&entry("a", "h1")).unwrap(),
            serde_json::to_string(&entry("b", "h1")).unwrap(),
            serde_json::to_string(&ManifestHeader {
                version: 1,
                revision: "r2".into(),
                full: false,
            })
            .unwrap(),
            serde_json::to_string(&entry("a", "h2")).unwrap(),
            r#"{"path":"b","gone":true}"#.to_owned(),
        ] {
            text.push_str(&line);
            text.push('\n');
        }
        let (header, entries) = resolve_manifest(&text).unwrap();
        assert_eq!(header.unwrap().revision, "r2");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries["a"].hash, "h2");
    }

    #[test]
    fn racy_entries_are_not_reused() {
        let stat = StatKey {
            size: 1,
            mtime_ns: 10 * 1_000_000_000,
            ctime_ns: 0,
            ino: 1,
            mode: 0o100_644,
        };
        let mut index = LocalIndex {
            header: IndexHeader {
                version: 1,
                lease: "l".into(),
                revision: "r".into(),
                synced_at_ns: 11 * 1_000_000_000,
                journal: 0,
            },
            entries: BTreeMap::new(),
        };
        index.entries.insert(
            "a".into(),
            IndexEntry {
                entry: entry("a", "h"),
                stat,
            },
        );
        assert!(index.reusable("a", &stat).is_none(), "racy");
        index.header.synced_at_ns = 13 * 1_000_000_000;
        assert!(index.reusable("a", &stat).is_some());
        let touched = StatKey {
            mtime_ns: stat.mtime_ns + 1,
            ..stat
        };
        assert!(index.reusable("a", &touched).is_none());
    }

    #[test]
    fn the_index_round_trips_and_belongs_to_one_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync/lbx_x.index");
        let mut index = LocalIndex {
            header: IndexHeader {
                version: 1,
                lease: "lbx_x".into(),
                revision: "r".into(),
                synced_at_ns: 5,
                journal: 3,
            },
            entries: BTreeMap::new(),
        };
        index.entries.insert(
            "a b".into(),
            IndexEntry {
                entry: entry("a b", "h"),
                stat: StatKey {
                    size: 1,
                    mtime_ns: 1,
                    ctime_ns: 2,
                    ino: 3,
                    mode: 4,
                },
            },
        );
        index.save(&path).unwrap();
        let back = LocalIndex::load(&path, "lbx_x").unwrap();
        assert_eq!(back.header, index.header);
        assert_eq!(back.entries, index.entries);
        assert!(LocalIndex::load(&path, "lbx_other").is_none());
    }
}
