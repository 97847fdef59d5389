//! The trust gate's two halves: the repository's `.leasebox.toml` read once ([`RepositoryFile`])
//! and the trust store ([`TrustStore`]) that pins a repository root to the sha256 of that file.
//!
//! `leasebox trust` records `{root, sha256, files}` in `<state dir>/trust.json`; a repository is
//! trusted while its `.leasebox.toml` still hashes to the recorded value **and** every file that
//! config makes leasebox read (the value of each path key it sets, today
//! `nomad.jobspec_template`: see [`KeyDef::reads_file`]) still hashes to its recorded value, so
//! any edit of any of them (a pull, a branch switch, a hostile commit) lapses the trust until the
//! user looks again. Such a file must resolve, symlinks followed, inside the repository root.
//! Every file's bytes are read once: the hash and what leasebox uses (the parsed entries, the
//! template it renders: [`PinnedFile::bytes`]) come from the same bytes, so no file can change
//! between the check and the use.
//!
//! Entries written before files were pinned (store format 1, no `files`) are read but never
//! trusted: the message says to run `leasebox trust` again.
//!
//! The store is a small JSON document, written atomically (a temp file renamed over it) under an
//! exclusive lock on `trust.json.lock`, so concurrent `leasebox trust` runs never lose an entry:
//!
//! ```json
//! {
//!   "version": 2,
//!   "repositories": [
//!     { "root": "/home/alice/src/app", "sha256": "9f86d0…", "trusted_at": 1790000000,
//!       "files": [{ "key": "nomad.jobspec_template", "path": "/home/alice/src/app/ci/lease.hcl",
//!                   "sha256": "3a7bd3…" }] }
//!   ]
//! }
//! ```
//!
//! The module is given the store's directory (the CLI passes the state dir); it never works out
//! the state dir itself.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{ConfigError, UntrustedOrigin};
use super::file::{self, FileEntry};
use super::keys::{KeyDef, TrustClass};
use super::resolve::REPOSITORY_FILE;
use super::source::Source;
use crate::atomic_file::{Replace, create_private_dir, write_atomic};

/// The trust store's file name inside the state dir.
pub const TRUST_FILE: &str = "trust.json";

/// The lock taken while the store is read, changed and written back.
const LOCK_FILE: &str = "trust.json.lock";

/// The store format written by this version (2: entries pin the files the config reads).
const VERSION: u32 = 2;

/// The store format before files were pinned: read, its entries never trusted.
const VERSION_UNPINNED: u32 = 1;

/// A repository's `.leasebox.toml`, read once: where it is, the sha256 of its bytes, and its
/// checked entries (no unknown keys, no wrong types, no user-only keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryFile {
    /// The repository root the file belongs to.
    pub root: PathBuf,
    /// The file: `<root>/.leasebox.toml`.
    pub path: PathBuf,
    /// The sha256 of the file's bytes, in lowercase hex.
    pub sha256: String,
    /// The keys it sets, by line.
    pub entries: Vec<FileEntry>,
    /// The files those keys make leasebox read, each read once and hashed.
    pub files: Vec<PinnedFile>,
}

/// A file a repository's `.leasebox.toml` makes leasebox read (the value of a path key), read
/// once: its bytes are what is hashed and what is used.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedFile {
    /// The key that names it.
    pub key: &'static KeyDef,
    /// The key's line in `.leasebox.toml`.
    pub line: usize,
    /// The file, canonical (symlinks resolved), inside the repository root.
    pub path: PathBuf,
    /// The sha256 of its bytes, in lowercase hex.
    pub sha256: String,
    /// Its bytes, as read for the hash.
    pub bytes: Arc<[u8]>,
}

impl std::fmt::Debug for PinnedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedFile")
            .field("key", &self.key.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Read the file a path key of `<root>/.leasebox.toml` names: relative to the root, symlinks
/// resolved, refused outside the root.
fn pin_file(
    root: &Path,
    toml: &Path,
    entry: &FileEntry,
) -> Result<Option<PinnedFile>, ConfigError> {
    let super::value::Value::String(raw) = &entry.value else {
        return Ok(None);
    };
    let canonical_root = canonical_root(root);
    let outside = |resolved: PathBuf| ConfigError::FileOutsideRepository {
        path: toml.to_owned(),
        line: entry.line,
        key: entry.key,
        value: raw.clone(),
        resolved,
        repo_root: canonical_root.clone(),
    };
    // `~/` is the home directory: never inside the repository as far as trust goes.
    if raw.starts_with("~/") || raw == "~" {
        return Err(outside(PathBuf::from(raw)));
    }
    let named = root.join(raw);
    let unreadable = |source| ConfigError::FileUnreadable {
        path: toml.to_owned(),
        line: entry.line,
        key: entry.key,
        file: named.clone(),
        source,
    };
    let path = named.canonicalize().map_err(unreadable)?;
    if !path.starts_with(&canonical_root) {
        return Err(outside(path));
    }
    let bytes = fs::read(&path).map_err(unreadable)?;
    Ok(Some(PinnedFile {
        key: entry.key,
        line: entry.line,
        path,
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.into(),
    }))
}

impl RepositoryFile {
    /// Read `<root>/.leasebox.toml`; `Ok(None)` when there is none.
    ///
    /// `user_config` is only used in the message of a user-only key (where to set it instead).
    ///
    /// # Errors
    ///
    /// [`ConfigError::RepositoryRead`] for an unreadable file; a syntax, unknown key or wrong
    /// type error naming the file and line; [`ConfigError::UserOnlyKey`] for a user-only key
    /// (checked before its value, whatever the value is); for a path key, a file outside the
    /// repository root ([`ConfigError::FileOutsideRepository`]) or one that cannot be read
    /// ([`ConfigError::FileUnreadable`]).
    pub fn read(
        root: &Path,
        user_config: Option<&Path>,
    ) -> Result<Option<RepositoryFile>, ConfigError> {
        let path = root.join(REPOSITORY_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::RepositoryRead { path, source }),
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Syntax {
            path: path.clone(),
            line: 1,
            message: "the file is not UTF-8".to_owned(),
        })?;
        let admit = |key: &'static super::KeyDef, line: usize| {
            if key.class == TrustClass::UserOnly {
                return Err(ConfigError::UserOnlyKey {
                    path: path.clone(),
                    line,
                    key,
                    origin: UntrustedOrigin::Repository,
                    user_config: user_config.map(Path::to_owned),
                });
            }
            Ok(())
        };
        let entries = file::parse_file_with(&path, &text, &admit)?;
        let mut files = Vec::new();
        for entry in entries.iter().filter(|e| e.key.reads_file()) {
            files.extend(pin_file(root, &path, entry)?);
        }
        Ok(Some(RepositoryFile {
            root: root.to_owned(),
            path,
            sha256,
            entries,
            files,
        }))
    }

    /// The execution boundaries the file sets (what `leasebox trust` approves).
    pub fn boundaries(&self) -> impl Iterator<Item = &FileEntry> {
        self.entries
            .iter()
            .filter(|e| e.key.class == TrustClass::Boundary)
    }

    /// The pinned file a key names, if the file sets that key.
    #[must_use]
    pub fn pinned(&self, key: &str) -> Option<&PinnedFile> {
        self.files.iter().find(|f| f.key.name == key)
    }

    /// The source of one of the file's entries, for provenance.
    #[must_use]
    pub fn source(&self, entry: &FileEntry) -> Source {
        Source::Repository {
            path: self.path.clone(),
            line: entry.line,
        }
    }
}

/// One trusted repository, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    /// The repository root, canonical (symlinks resolved).
    pub root: PathBuf,
    /// The sha256 (lowercase hex) of its `.leasebox.toml` when the user trusted it.
    pub sha256: String,
    /// When, in seconds since the Unix epoch.
    pub trusted_at: u64,
    /// The files the config made leasebox read, with their hashes then; `None` for an entry
    /// written before files were pinned (never trusted: `leasebox trust` must be run again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<TrustedFile>>,
}

/// One file pinned by a trust entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedFile {
    /// The key that names it (`nomad.jobspec_template`).
    pub key: String,
    /// The file, canonical.
    pub path: PathBuf,
    /// Its sha256 when the user trusted it.
    pub sha256: String,
}

impl TrustEntry {
    /// How `file` (the repository's config read now) compares with this entry.
    fn compare(self, file: &RepositoryFile) -> TrustStatus {
        if self.sha256 != file.sha256 {
            return TrustStatus::Changed(self);
        }
        let Some(trusted) = &self.files else {
            return TrustStatus::Unpinned(self);
        };
        for now in &file.files {
            let then = trusted
                .iter()
                .find(|t| t.key == now.key.name && t.path == now.path);
            if then.is_none_or(|t| t.sha256 != now.sha256) {
                let (key, path, then) = (
                    now.key.name,
                    now.path.clone(),
                    then.map(|t| t.sha256.clone()),
                );
                return TrustStatus::FileChanged {
                    entry: self,
                    key,
                    path,
                    then,
                    now: now.sha256.clone(),
                };
            }
        }
        TrustStatus::Trusted(self)
    }
}

impl TrustEntry {
    /// Whether the repository's config and the files it makes leasebox read still have the
    /// trusted hashes, now: `trusted`, `changed` (`.leasebox.toml` changed), `file changed`
    /// (a file it names changed), `re-trust` (trusted by an earlier leasebox that pinned no
    /// files), `missing` (no `.leasebox.toml` there any more) or `unreadable`.
    #[must_use]
    pub fn state_now(&self) -> &'static str {
        match RepositoryFile::read(&self.root, None) {
            Ok(Some(file)) => match self.clone().compare(&file) {
                TrustStatus::Trusted(_) => "trusted",
                TrustStatus::Changed(_) => "changed",
                TrustStatus::FileChanged { .. } => "file changed",
                TrustStatus::Unpinned(_) => "re-trust",
                TrustStatus::NeverTrusted | TrustStatus::NoStore => "unknown",
            },
            Ok(None) => "missing",
            Err(_) => "unreadable",
        }
    }
}

/// Whether a repository's `.leasebox.toml` is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustStatus {
    /// Trusted, and the file still has the hash that was trusted.
    Trusted(TrustEntry),
    /// Never trusted (or the trust was revoked).
    NeverTrusted,
    /// Trusted once, but the file changed since: the trust has lapsed.
    Changed(TrustEntry),
    /// Trusted once, but a file the config makes leasebox read changed since: the trust has
    /// lapsed.
    FileChanged {
        /// The entry.
        entry: TrustEntry,
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Its hash when trusted (`None`: it was not pinned then).
        then: Option<String>,
        /// Its hash now.
        now: String,
    },
    /// Trusted by an earlier leasebox that pinned no files: the trust has lapsed until
    /// `leasebox trust` is run again.
    Unpinned(TrustEntry),
    /// No trust store to look in (no state dir): nothing is trusted.
    NoStore,
}

impl TrustStatus {
    /// Whether boundary keys from the file are accepted.
    #[must_use]
    pub fn is_trusted(&self) -> bool {
        matches!(self, TrustStatus::Trusted(_))
    }

    /// Why the repository is not trusted, as a clause ("this repository has never been
    /// trusted"); `current` is the file's hash now.
    #[must_use]
    pub fn why_not(&self, current: &str) -> String {
        match self {
            TrustStatus::Trusted(_) => "it is trusted".to_owned(),
            TrustStatus::NeverTrusted => "this repository has never been trusted".to_owned(),
            TrustStatus::Changed(entry) => format!(
                "its `.leasebox.toml` changed since you trusted it (sha256 {} then, {} now), so \
                 the trust has lapsed",
                short(&entry.sha256),
                short(current)
            ),
            TrustStatus::FileChanged {
                key,
                path,
                then,
                now,
                ..
            } => match then {
                Some(then) => format!(
                    "{} (named by `{key}`) changed since you trusted it (sha256 {} then, {} now), \
                     so the trust has lapsed",
                    path.display(),
                    short(then),
                    short(now)
                ),
                None => format!(
                    "{} (named by `{key}`) was not part of what you trusted, so the trust has lapsed",
                    path.display()
                ),
            },
            TrustStatus::Unpinned(_) => "it was trusted by an earlier leasebox that did not pin \
                 the files its config makes leasebox read (such as `nomad.jobspec_template`), so \
                 the trust has lapsed: run `leasebox trust` again"
                .to_owned(),
            TrustStatus::NoStore => {
                "there is no state dir to keep trust in (set `LEASEBOX_STATE_DIR`)".to_owned()
            }
        }
    }

    /// `trusted`, `never trusted`, `changed since trusted`, `no trust store`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            TrustStatus::Trusted(_) => "trusted",
            TrustStatus::NeverTrusted => "never trusted",
            TrustStatus::Changed(_) => "changed since trusted",
            TrustStatus::FileChanged { .. } => "a file it reads changed since trusted",
            TrustStatus::Unpinned(_) => "trusted by an earlier leasebox: trust it again",
            TrustStatus::NoStore => "no trust store",
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The store document.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustDoc {
    version: u32,
    repositories: Vec<TrustEntry>,
}

/// The trust store: `<dir>/trust.json`. See the module docs for the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    dir: PathBuf,
}

impl TrustStore {
    /// A store in `dir` (the state dir). Nothing is created until something is trusted.
    pub fn new(dir: impl Into<PathBuf>) -> TrustStore {
        TrustStore { dir: dir.into() }
    }

    /// The store's file.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.dir.join(TRUST_FILE)
    }

    /// Every trusted repository, sorted by root.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TrustStoreIo`] or [`ConfigError::TrustStoreCorrupt`].
    pub fn list(&self) -> Result<Vec<TrustEntry>, ConfigError> {
        let mut entries = self.read()?.repositories;
        entries.sort_by(|a, b| a.root.cmp(&b.root));
        Ok(entries)
    }

    /// Whether `file` is trusted: its root is recorded with the hash it has now.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TrustStoreIo`] or [`ConfigError::TrustStoreCorrupt`].
    pub fn status(&self, file: &RepositoryFile) -> Result<TrustStatus, ConfigError> {
        let root = canonical_root(&file.root);
        let doc = self.read()?;
        Ok(
            match doc.repositories.into_iter().find(|e| e.root == root) {
                Some(e) => e.compare(file),
                None => TrustStatus::NeverTrusted,
            },
        )
    }

    /// Trust `file`: record its root and hash (replacing an earlier entry for the root).
    ///
    /// # Errors
    ///
    /// [`ConfigError::TrustStoreIo`] or [`ConfigError::TrustStoreCorrupt`].
    pub fn trust(&self, file: &RepositoryFile) -> Result<TrustEntry, ConfigError> {
        let entry = TrustEntry {
            root: canonical_root(&file.root),
            sha256: file.sha256.clone(),
            trusted_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            files: Some(
                file.files
                    .iter()
                    .map(|f| TrustedFile {
                        key: f.key.name.to_owned(),
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                    })
                    .collect(),
            ),
        };
        let recorded = entry.clone();
        self.change(move |doc| {
            doc.repositories.retain(|e| e.root != entry.root);
            doc.repositories.push(entry);
        })?;
        Ok(recorded)
    }

    /// Revoke the trust of the repository at `root`; returns the entry removed, if any.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TrustStoreIo`] or [`ConfigError::TrustStoreCorrupt`].
    pub fn revoke(&self, root: &Path) -> Result<Option<TrustEntry>, ConfigError> {
        let canonical = canonical_root(root);
        let lexical = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
        if !self.path().exists() {
            return Ok(None);
        }
        let mut removed = None;
        self.change(|doc| {
            if let Some(i) = doc
                .repositories
                .iter()
                .position(|e| e.root == canonical || e.root == lexical)
            {
                removed = Some(doc.repositories.remove(i));
            }
        })?;
        Ok(removed)
    }

    fn read(&self) -> Result<TrustDoc, ConfigError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(TrustDoc {
                    version: VERSION,
                    repositories: Vec::new(),
                });
            }
            Err(source) => {
                return Err(ConfigError::TrustStoreIo {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let doc: TrustDoc =
            serde_json::from_slice(&bytes).map_err(|e| ConfigError::TrustStoreCorrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if doc.version == VERSION_UNPINNED {
            // Entries of the unpinned format carry no `files`: read as `Unpinned`.
            return Ok(TrustDoc {
                version: VERSION,
                repositories: doc
                    .repositories
                    .into_iter()
                    .map(|e| TrustEntry { files: None, ..e })
                    .collect(),
            });
        }
        if doc.version != VERSION {
            return Err(ConfigError::TrustStoreCorrupt {
                path,
                reason: format!("format version {} is not {VERSION}", doc.version),
            });
        }
        Ok(doc)
    }

    /// Read, change and write back the store under its lock.
    fn change(&self, edit: impl FnOnce(&mut TrustDoc)) -> Result<(), ConfigError> {
        let path = self.path();
        let io_err = |action: &'static str| {
            let path = path.clone();
            move |source| ConfigError::TrustStoreIo {
                action,
                path,
                source,
            }
        };
        create_private_dir(&self.dir).map_err(io_err("write"))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))
            .map_err(io_err("lock"))?;
        lock.lock().map_err(io_err("lock"))?;
        let mut doc = self.read()?;
        edit(&mut doc);
        doc.version = VERSION;
        doc.repositories.sort_by(|a, b| a.root.cmp(&b.root));
        let mut bytes =
            serde_json::to_vec_pretty(&doc).map_err(|e| io_err("write")(io::Error::other(e)))?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes, Replace::Yes).map_err(io_err("write"))?;
        drop(lock);
        Ok(())
    }
}

/// A repository root as the store keys it: canonical (symlinks resolved) when it exists, else
/// made absolute.
#[must_use]
pub fn canonical_root(root: &Path) -> PathBuf {
    root.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(root).unwrap_or_else(|_| root.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(REPOSITORY_FILE), text).unwrap();
        dir
    }

    #[test]
    fn a_repository_without_the_file_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RepositoryFile::read(dir.path(), None).unwrap(), None);
    }

    #[test]
    fn reads_entries_with_lines_and_hash() {
        let r = repo("[nomad]\nimage = \"rust\"\nnamespace = \"ci\"\n");
        let f = RepositoryFile::read(r.path(), None).unwrap().unwrap();
        assert_eq!(f.sha256.len(), 64);
        let lines: Vec<_> = f.entries.iter().map(|e| (e.key.name, e.line)).collect();
        assert_eq!(lines, [("nomad.image", 2), ("nomad.namespace", 3)]);
        let b: Vec<_> = f.boundaries().map(|e| e.key.name).collect();
        assert_eq!(b, ["nomad.namespace"]);
    }

    #[test]
    fn user_only_keys_are_refused_before_their_value_is_looked_at() {
        // A wrong type on a user-only key still says "user-only", not "wrong type".
        let r = repo("\n[nomad]\naddress = 12\n");
        let err = RepositoryFile::read(r.path(), None).unwrap_err();
        assert!(
            matches!(err, ConfigError::UserOnlyKey { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn trust_status_lapses_on_change_and_revoke_forgets() {
        let state = tempfile::tempdir().unwrap();
        let store = TrustStore::new(state.path().join("nested"));
        let r = repo("[nomad]\nnamespace = \"ci\"\n");
        let f = RepositoryFile::read(r.path(), None).unwrap().unwrap();
        assert_eq!(store.status(&f).unwrap(), TrustStatus::NeverTrusted);
        assert!(store.list().unwrap().is_empty());
        let entry = store.trust(&f).unwrap();
        assert_eq!(entry.root, r.path().canonicalize().unwrap());
        assert!(store.status(&f).unwrap().is_trusted());
        // Trusting again replaces, never duplicates.
        store.trust(&f).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);

        fs::write(
            r.path().join(REPOSITORY_FILE),
            "[nomad]\nnamespace = \"prod\"\n",
        )
        .unwrap();
        let changed = RepositoryFile::read(r.path(), None).unwrap().unwrap();
        let status = store.status(&changed).unwrap();
        assert!(matches!(status, TrustStatus::Changed(_)), "{status:?}");
        assert!(
            status
                .why_not(&changed.sha256)
                .contains("changed since you trusted it")
        );

        let revoked = store.revoke(r.path()).unwrap().unwrap();
        assert_eq!((revoked.root, revoked.sha256), (entry.root, entry.sha256));
        assert_eq!(store.status(&f).unwrap(), TrustStatus::NeverTrusted);
        assert_eq!(store.revoke(r.path()).unwrap(), None);
    }

    #[test]
    fn the_store_file_is_json_with_a_version() {
        let state = tempfile::tempdir().unwrap();
        let store = TrustStore::new(state.path());
        let r = repo("[lease]\nttl = \"2h\"\n");
        let f = RepositoryFile::read(r.path(), None).unwrap().unwrap();
        store.trust(&f).unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(doc["version"], 2);
        assert_eq!(doc["repositories"][0]["sha256"], f.sha256.as_str());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the store is private");

        fs::write(store.path(), "{ not json").unwrap();
        let err = store.list().unwrap_err();
        assert!(err.to_string().contains("is damaged"), "{err}");
        fs::write(store.path(), "{\"version\": 9, \"repositories\": []}").unwrap();
        assert!(store.list().unwrap_err().to_string().contains("version 9"));
    }

    #[test]
    fn concurrent_trusts_lose_no_entry() {
        let state = tempfile::tempdir().unwrap();
        let repos: Vec<_> = (0..8)
            .map(|i| repo(&format!("[nomad]\nnamespace = \"ns{i}\"\n")))
            .collect();
        std::thread::scope(|scope| {
            for r in &repos {
                let dir = state.path();
                scope.spawn(move || {
                    let f = RepositoryFile::read(r.path(), None).unwrap().unwrap();
                    TrustStore::new(dir).trust(&f).unwrap();
                });
            }
        });
        let store = TrustStore::new(state.path());
        assert_eq!(store.list().unwrap().len(), repos.len());
        for r in &repos {
            let f = RepositoryFile::read(r.path(), None).unwrap().unwrap();
            assert!(store.status(&f).unwrap().is_trusted());
        }
    }

    #[test]
    fn revoking_an_unknown_repository_is_none() {
        let state = tempfile::tempdir().unwrap();
        let store = TrustStore::new(state.path());
        assert_eq!(store.revoke(Path::new("/nowhere/at/all")).unwrap(), None);
    }
}
