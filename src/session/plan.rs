//! What an incremental sync sends and deletes: the local file set, read through the local
//! index (unchanged stats reuse their hash), compared with what the box holds from earlier
//! syncs (the base: the index itself when the box's stamp is ours, else the box's manifest),
//! plus the paths the box changed since the last sync (drift, from the probe).
//!
//! A path is sent when the base lacks it, its content hash, mode or link target differ, or
//! the box changed it. A path of the base that is not in the file set is deleted. Nothing
//! else in the box is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::ops::Bound;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::SessionError;
use super::fileset::{EntryKind, FileSet};
use super::index::{IndexEntry, LocalIndex, StatKey};
use super::sync::ManifestEntry;

/// What the box holds from earlier syncs: the local index (when the box's stamp is ours) or
/// the box's own manifest.
#[derive(Debug, Clone, Copy)]
pub enum Base<'a> {
    /// The local index's entries.
    Index(&'a BTreeMap<String, IndexEntry>),
    /// The box's manifest.
    Manifest(&'a BTreeMap<String, ManifestEntry>),
}

impl<'a> Base<'a> {
    /// The entry of `path`.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&'a ManifestEntry> {
        match self {
            Base::Index(m) => m.get(path).map(|e| &e.entry),
            Base::Manifest(m) => m.get(path),
        }
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        match self {
            Base::Index(m) => m.is_empty(),
            Base::Manifest(m) => m.is_empty(),
        }
    }

    /// Every path, sorted.
    pub fn paths(&self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        match *self {
            Base::Index(m) => Box::new(m.keys()),
            Base::Manifest(m) => Box::new(m.keys()),
        }
    }

    /// The paths under the directory `dir` (`""`: all), sorted.
    pub fn under(&self, dir: &str) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        let start = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let bound = (Bound::Included(start.clone()), Bound::Unbounded);
        match *self {
            Base::Index(m) => Box::new(
                m.range::<String, _>(bound)
                    .map(|(k, _)| k)
                    .take_while(move |k| k.starts_with(&start)),
            ),
            Base::Manifest(m) => Box::new(
                m.range::<String, _>(bound)
                    .map(|(k, _)| k)
                    .take_while(move |k| k.starts_with(&start)),
            ),
        }
    }
}

/// What the probe found in the box.
#[derive(Debug, Default)]
pub struct Probe {
    /// The box's revision stamp (`None`: none).
    pub revision: Option<String>,
    /// The workdir holds nothing.
    pub workdir_empty: bool,
    /// The box's manifest, when it was printed.
    pub manifest: Option<String>,
    /// Files and links newer than the drift marker (`f`/`l` lines), relative paths.
    pub newer: Vec<String>,
    /// Directories newer than the marker and the names each still holds.
    pub dirs: BTreeMap<String, BTreeSet<String>>,
}

/// Strip the `./` that `find .` puts before every path (`.` itself is the empty path).
fn relative(p: &str) -> String {
    if p == "." {
        String::new()
    } else {
        p.strip_prefix("./").unwrap_or(p).to_owned()
    }
}

/// Read the probe's output (see [`super::sync_scripts`]).
///
/// # Errors
/// The output does not have the probe's shape (the box ran something else).
pub fn parse_probe(out: &[u8]) -> Result<Probe, String> {
    let bad = |what: &str| format!("unexpected sync probe output ({what})");
    let mut rest = out;
    let mut probe = Probe::default();
    let first = next_line(&mut rest).ok_or_else(|| bad("empty"))?;
    let rev = first
        .strip_prefix(b"revision ")
        .ok_or_else(|| bad("no revision"))?;
    let rev = String::from_utf8_lossy(rev);
    probe.revision = (rev != "-" && !rev.is_empty()).then(|| rev.into_owned());
    let workdir = next_line(&mut rest).unwrap_or_default();
    probe.workdir_empty = workdir == b"workdir empty";
    let mut section = next_line(&mut rest).unwrap_or_default();
    if section == b"manifest" {
        let mut manifest = String::new();
        while let Some(line) = next_line(&mut rest) {
            if line == b"." {
                break;
            }
            manifest.push_str(&String::from_utf8_lossy(line));
            manifest.push('\n');
        }
        probe.manifest = Some(manifest);
        section = next_line(&mut rest).unwrap_or_default();
    }
    if section != b"drift" {
        return Err(bad("no drift section"));
    }
    // Each drift record ends with a NUL byte (a path may hold newlines); `end` follows them.
    let mut records: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let last = records.pop().unwrap_or_default();
    if last != b"end\n" && last != b"end" {
        return Err(bad("cut short"));
    }
    let mut current: Option<String> = None;
    for record in records {
        let record = String::from_utf8_lossy(record);
        let Some((kind, path)) = record.split_once(' ') else {
            continue;
        };
        let path = relative(path);
        match kind {
            "f" | "l" => probe.newer.push(path),
            "d" => {
                probe.dirs.entry(path.clone()).or_default();
                current = Some(path);
            }
            "e" => {
                if let Some(dir) = &current {
                    let name = match path.rsplit_once('/') {
                        Some((_, n)) => n.to_owned(),
                        None => path.clone(),
                    };
                    probe.dirs.entry(dir.clone()).or_default().insert(name);
                }
            }
            _ => {}
        }
    }
    Ok(probe)
}

/// The next `\n`-ended line of `rest` (without its newline), or what is left at the end.
fn next_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let (line, after) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (*rest, &rest[rest.len()..]),
    };
    *rest = after;
    Some(line)
}

/// The paths of `base` the box changed since the last sync, by the probe's findings: newer
/// files and links, synced files replaced by directories, and synced paths missing from a
/// directory that changed.
#[must_use]
pub fn drifted(base: Base<'_>, probe: &Probe) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if base.is_empty() {
        return out;
    }
    if probe.workdir_empty {
        return base.paths().cloned().collect();
    }
    for path in &probe.newer {
        if base.get(path).is_some() {
            out.insert(path.clone());
        } else {
            // A synced directory the box replaced by a file or link: all under it.
            out.extend(base.under(path).cloned());
        }
    }
    for (dir, names) in &probe.dirs {
        if base.get(dir).is_some() {
            out.insert(dir.clone());
        }
        let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
        for path in base.under(dir) {
            let first = path[skip..].split('/').next().unwrap_or_default();
            if !names.contains(first) {
                out.insert(path.clone());
            }
        }
    }
    out
}

/// One path to send.
#[derive(Debug, Clone)]
pub struct Put {
    /// Relative path.
    pub path: String,
    /// File or link.
    pub kind: EntryKind,
    /// The local stat before it is read.
    pub stat: StatKey,
}

/// The decided sync.
#[derive(Debug, Default)]
pub struct SyncPlan {
    /// Paths to send, sorted.
    pub put: Vec<Put>,
    /// Paths of the base that stay as they are, with their (possibly refreshed) stat.
    pub keep: Vec<IndexEntry>,
    /// Paths to delete, sorted.
    pub delete: Vec<String>,
    /// Put paths where something of the box may be in the way (new paths, changed types,
    /// drift): a directory or link there is removed first.
    pub guard: Vec<String>,
    /// Ancestors of the guarded paths, top-down: a file or link there is removed first.
    pub guard_dirs: Vec<String>,
    /// Parents of deleted paths, deepest first: removed if the deletions left them empty.
    pub rmdirs: Vec<String>,
    /// Paths of the file set the box changed, restored by this sync.
    pub drift: Vec<String>,
    /// Whether the index has news worth saving even if nothing is sent (refreshed stats).
    pub index_dirty: bool,
}

impl SyncPlan {
    /// Nothing to send or delete.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.delete.is_empty()
    }
}

/// What [`plan`] compares.
pub struct PlanInput<'a> {
    /// The local file set.
    pub set: &'a FileSet,
    /// The local index (for hashes of unchanged files).
    pub index: Option<&'a LocalIndex>,
    /// What the box holds from earlier syncs.
    pub base: Base<'a>,
    /// Base paths the box changed.
    pub drift: &'a BTreeSet<String>,
    /// Paths to re-read whatever their stat says (the caller's hint).
    pub hint: &'a BTreeSet<String>,
    /// The box's workdir is empty and the base too: nothing can be in the way.
    pub fresh: bool,
}

/// The `sha256:<hex>` of a link target.
#[must_use]
pub fn link_hash(target: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(target.as_bytes())))
}

fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Decide what to send and delete.
///
/// # Errors
/// A local file cannot be read (named).
pub fn plan(input: &PlanInput<'_>) -> Result<SyncPlan, SessionError> {
    let mut out = SyncPlan::default();
    let mut present = BTreeSet::new();
    for entry in &input.set.entries {
        let full = input.set.root.join(&entry.path);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            // Gone since the walk: not in the set any more.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => {
                return Err(SessionError::local(
                    format!("cannot read `{}`", full.display()),
                    e,
                ));
            }
        };
        let stat = StatKey::of(&meta);
        present.insert(entry.path.as_str());
        let base = input.base.get(&entry.path);
        let cached = if input.hint.contains(&entry.path) {
            None
        } else {
            input.index.and_then(|i| i.reusable(&entry.path, &stat))
        };
        let local: Option<ManifestEntry> = match &entry.kind {
            EntryKind::Symlink(target) => {
                let link = target.to_string_lossy().into_owned();
                Some(ManifestEntry {
                    path: entry.path.clone(),
                    size: 0,
                    mode: 0o777,
                    mtime: mtime_secs(&stat),
                    hash: link_hash(&link),
                    link: Some(link),
                })
            }
            EntryKind::File => {
                if let Some(c) = cached.filter(|c| c.entry.link.is_none()) {
                    Some(c.entry.clone())
                } else if base.is_some_and(|b| b.link.is_none()) {
                    out.index_dirty = true;
                    let hash = file_hash(&full).map_err(|e| {
                        SessionError::local(format!("cannot read `{}`", full.display()), e)
                    })?;
                    Some(ManifestEntry {
                        path: entry.path.clone(),
                        size: stat.size,
                        mode: stat.mode & 0o7777,
                        mtime: mtime_secs(&stat),
                        hash,
                        link: None,
                    })
                } else {
                    None
                }
            }
        };
        let drifted = input.drift.contains(&entry.path);
        if !drifted
            && let (Some(l), Some(b)) = (&local, base)
            && l.hash == b.hash
            && l.mode == b.mode
            && l.link == b.link
        {
            let mut kept = l.clone();
            kept.mtime = mtime_secs(&stat);
            if cached.is_none() {
                out.index_dirty = true;
            }
            out.keep.push(IndexEntry { entry: kept, stat });
            continue;
        }
        if drifted && base.is_some() {
            out.drift.push(entry.path.clone());
        }
        let type_changed = base
            .is_none_or(|b| b.link.is_some() != matches!(entry.kind, EntryKind::Symlink(_)))
            || input.base.under(&entry.path).next().is_some();
        if !input.fresh && (type_changed || drifted) {
            out.guard.push(entry.path.clone());
        }
        out.put.push(Put {
            path: entry.path.clone(),
            kind: entry.kind.clone(),
            stat,
        });
    }
    for path in input.base.paths() {
        if !present.contains(path.as_str()) {
            out.delete.push(path.clone());
        }
    }
    let mut dirs = BTreeSet::new();
    for path in &out.guard {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            p = parent;
        }
    }
    // Sorted paths put a parent before its children.
    out.guard_dirs = dirs.into_iter().collect();
    let mut parents = BTreeSet::new();
    for path in &out.delete {
        if let Some((parent, _)) = path.rsplit_once('/') {
            parents.insert(parent.to_owned());
        }
    }
    // Reverse order: children before their parents.
    out.rmdirs = parents.into_iter().rev().collect();
    Ok(out)
}

/// Whole seconds of a stat's mtime (the manifest's unit).
#[must_use]
pub fn mtime_secs(stat: &StatKey) -> u64 {
    u64::try_from(stat.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_records_are_nul_ended_so_names_may_hold_newlines_and_end() {
        let out = b"revision 0123abcd\nworkdir used\nmanifest\n{\"version\":1}\n.\ndrift\n\
f ./new\nline\0d ./d\0e ./d/end\nf x\0e ./d/-a b\0l ./\\c\0end\n";
        let probe = parse_probe(out).unwrap();
        assert_eq!(probe.revision.as_deref(), Some("0123abcd"));
        assert!(!probe.workdir_empty);
        assert_eq!(probe.manifest.as_deref(), Some("{\"version\":1}\n"));
        assert_eq!(probe.newer, ["new\nline", "\\c"]);
        let names: Vec<&str> = probe.dirs["d"].iter().map(String::as_str).collect();
        assert_eq!(names, ["-a b", "end\nf x"]);
    }

    #[test]
    fn a_probe_cut_short_or_of_another_shape_is_refused() {
        assert!(parse_probe(b"revision -\nworkdir empty\ndrift\nf ./a\0").is_err());
        assert!(parse_probe(b"hello\n").is_err());
        assert!(parse_probe(b"revision -\nworkdir empty\nend\n").is_err());
        let empty = parse_probe(b"revision -\nworkdir empty\ndrift\nend\n").unwrap();
        assert!(empty.revision.is_none() && empty.workdir_empty && empty.newer.is_empty());
    }
}
