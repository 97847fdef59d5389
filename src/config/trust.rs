//! The trust gate's two halves: the repository's `.leasebox.toml` read once ([`RepositoryFile`])
//! and the trust store ([`TrustStore`]) that pins a repository root to the sha256 of that file.
//!
//! `leasebox trust` records `{root, sha256}` in `<state dir>/trust.json`; a repository is trusted
//! while its `.leasebox.toml` still hashes to the recorded value, so any edit (a pull, a branch
//! switch, a hostile commit) lapses the trust until the user looks again. The file's bytes are
//! read once: the hash and the parsed entries come from the same bytes, so the file cannot
//! change between the check and the use.
//!
//! The store is a small JSON document, written atomically (a temp file renamed over it) under an
//! exclusive lock on `trust.json.lock`, so concurrent `leasebox trust` runs never lose an entry:
//!
//! ```json
//! {
//!   "version": 1,
//!   "repositories": [
//!     { "root": "/home/alice/src/app", "sha256": "9f86d0…", "trusted_at": 1790000000 }
//!   ]
//! }
//! ```
//!
//! The module is given the store's directory (the CLI passes the state dir); it never works out
//! the state dir itself.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{ConfigError, UntrustedOrigin};
use super::file::{self, FileEntry};
use super::keys::TrustClass;
use super::resolve::REPOSITORY_FILE;
use super::source::Source;
use crate::atomic_file::{Replace, create_private_dir, write_atomic};

/// The trust store's file name inside the state dir.
pub const TRUST_FILE: &str = "trust.json";

/// The lock taken while the store is read, changed and written back.
const LOCK_FILE: &str = "trust.json.lock";

/// The store format written by this version.
const VERSION: u32 = 1;

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
    /// (checked before its value, whatever the value is).
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
        Ok(Some(RepositoryFile {
            root: root.to_owned(),
            path,
            sha256,
            entries,
        }))
    }

    /// The execution boundaries the file sets (what `leasebox trust` approves).
    pub fn boundaries(&self) -> impl Iterator<Item = &FileEntry> {
        self.entries
            .iter()
            .filter(|e| e.key.class == TrustClass::Boundary)
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
}

impl TrustEntry {
    /// Whether the repository's file still has the trusted hash, now: `trusted`, `changed`
    /// (the trust has lapsed) or `missing` (no `.leasebox.toml` there any more).
    #[must_use]
    pub fn state_now(&self) -> &'static str {
        match fs::read(self.root.join(REPOSITORY_FILE)) {
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == self.sha256 => "trusted",
            Ok(_) => "changed",
            Err(_) => "missing",
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
                Some(e) if e.sha256 == file.sha256 => TrustStatus::Trusted(e),
                Some(e) => TrustStatus::Changed(e),
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
        assert_eq!(doc["version"], 1);
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
