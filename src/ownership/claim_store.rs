//! [`ClaimStore`]: the `claims/` directory of the state dir, one `<id>.json` per lease.
//!
//! Files per lease:
//!
//! - `<id>.json`: the [`Claim`], replaced atomically (temp file, fsync, rename, fsync dir);
//! - `<id>.lock`: the claim lock every write takes ([`ClaimLock`]), present only while held;
//! - `<id>.hold`: the holder lock of the process using the lease ([`HolderGuard`]).
//!
//! Reads ([`ClaimStore::load`], [`ClaimStore::list`]) take no lock: renames are atomic, so a
//! reader sees a whole claim, old or new. Writes are compare-and-swap on `revision` under the
//! claim lock. Ids are checked (`lbx_` + 12 lowercase hex) before they name any file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock_file::{self, LockFile};
use super::{Claim, ClaimLock, HolderGuard, OwnershipError, is_claim_id, validate_claim_id};

/// Claim files larger than this are corrupt (a claim is well under a kilobyte).
const MAX_CLAIM_BYTES: u64 = 1 << 20;

/// How long [`ClaimStore::hold`] retries a holder lock that is busy (a concurrent
/// [`ClaimStore::is_held`] probe holds it for a moment) before calling the lease in use.
const HOLD_PATIENCE: Duration = Duration::from_millis(200);

/// The claims directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimStore {
    dir: PathBuf,
}

/// Everything [`ClaimStore::list`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimList {
    /// Readable claims, oldest first (then by id).
    pub claims: Vec<Claim>,
    /// Claim files that could not be read, by path; left in place.
    pub corrupt: Vec<CorruptClaim>,
}

/// A file in `claims/` that looks like a claim but is not a readable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptClaim {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl ClaimStore {
    /// The store in `dir` (normally [`super::StateDir::claims`], after
    /// [`super::StateDir::ensure`]).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> ClaimStore {
        ClaimStore { dir: dir.into() }
    }

    /// The claims directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The claim file of `id`.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::InvalidId`] when `id` is not a lease id.
    pub fn claim_path(&self, id: &str) -> Result<PathBuf, OwnershipError> {
        validate_claim_id(id)?;
        Ok(self.json_path(id))
    }

    /// Write a new claim (revision 1) and return what was written.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::AlreadyExists`] when a claim with that id exists,
    /// [`OwnershipError::InvalidId`] for a bad id, [`OwnershipError::Io`] when the write fails.
    pub fn create(&self, claim: &Claim) -> Result<Claim, OwnershipError> {
        self.lock(&claim.id)?.create(claim)
    }

    /// Read a claim (no lock needed: writes are atomic renames).
    ///
    /// # Errors
    ///
    /// [`OwnershipError::NotFound`], [`OwnershipError::Corrupt`], [`OwnershipError::InvalidId`].
    pub fn load(&self, id: &str) -> Result<Claim, OwnershipError> {
        validate_claim_id(id)?;
        self.read_claim(id)
    }

    /// Read a claim if there is one.
    ///
    /// # Errors
    ///
    /// As [`ClaimStore::load`], except that a missing claim is `Ok(None)`.
    pub fn get(&self, id: &str) -> Result<Option<Claim>, OwnershipError> {
        match self.load(id) {
            Ok(claim) => Ok(Some(claim)),
            Err(OwnershipError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Compare-and-swap update under the claim lock: see [`ClaimLock::update`].
    ///
    /// # Errors
    ///
    /// [`OwnershipError::Conflict`] when the revision is no longer `expected_revision`, and
    /// the errors of [`ClaimStore::load`].
    pub fn update<F>(
        &self,
        id: &str,
        expected_revision: u64,
        change: F,
    ) -> Result<Claim, OwnershipError>
    where
        F: FnOnce(&mut Claim),
    {
        self.lock(id)?.update(expected_revision, change)
    }

    /// Compare-and-swap removal under the claim lock: see [`ClaimLock::remove`].
    ///
    /// # Errors
    ///
    /// [`OwnershipError::Conflict`] when the revision is no longer `expected_revision`, and
    /// the errors of [`ClaimStore::load`].
    pub fn remove(&self, id: &str, expected_revision: u64) -> Result<(), OwnershipError> {
        self.lock(id)?.remove(expected_revision)
    }

    /// Refresh `last_used` and `holder` (bumping the revision): see [`ClaimLock::touch`].
    ///
    /// # Errors
    ///
    /// The errors of [`ClaimStore::load`].
    pub fn touch(&self, id: &str) -> Result<Claim, OwnershipError> {
        self.lock(id)?.touch()
    }

    /// Renew a lease in use: see [`ClaimLock::renew`].
    ///
    /// # Errors
    ///
    /// The errors of [`ClaimStore::load`].
    pub fn renew(&self, id: &str) -> Result<Claim, OwnershipError> {
        self.lock(id)?.renew()
    }

    /// Take the claim lock, waiting for other holders. The claim need not exist (a caller may
    /// lock, find nothing, and create). Blocks the thread: from async code, call it from
    /// `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::InvalidId`], or [`OwnershipError::Io`] when the lock file cannot be
    /// opened.
    pub fn lock(&self, id: &str) -> Result<ClaimLock, OwnershipError> {
        validate_claim_id(id)?;
        let path = self.lock_path(id);
        let lock =
            LockFile::acquire(&path).map_err(|e| OwnershipError::io("lock claim file", path, e))?;
        Ok(ClaimLock::new(self.clone(), id.to_owned(), lock))
    }

    /// Take the claim lock if nobody holds it.
    ///
    /// # Errors
    ///
    /// As [`ClaimStore::lock`].
    pub fn try_lock(&self, id: &str) -> Result<Option<ClaimLock>, OwnershipError> {
        validate_claim_id(id)?;
        let path = self.lock_path(id);
        let lock = LockFile::try_acquire(&path)
            .map_err(|e| OwnershipError::io("lock claim file", path, e))?;
        Ok(lock.map(|lock| ClaimLock::new(self.clone(), id.to_owned(), lock)))
    }

    /// Become the holder of a lease: its holder lock is taken until the guard is dropped (or
    /// this process ends). Does not change the claim; call [`ClaimStore::touch`] to record
    /// the holder in it.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::InUse`] when another process (or another guard) holds it,
    /// [`OwnershipError::NotFound`] when there is no claim.
    pub fn hold(&self, id: &str) -> Result<HolderGuard, OwnershipError> {
        validate_claim_id(id)?;
        let path = self.hold_path(id);
        let started = std::time::Instant::now();
        let lock = loop {
            match LockFile::try_acquire(&path) {
                Ok(Some(lock)) => break lock,
                Ok(None) if started.elapsed() < HOLD_PATIENCE => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    return Err(OwnershipError::InUse {
                        id: id.to_owned(),
                        path,
                    });
                }
                Err(e) => return Err(OwnershipError::io("lock holder file", path, e)),
            }
        };
        // The guard's drop removes the hold file when the claim is missing.
        let guard = HolderGuard::new(self.clone(), id.to_owned(), lock);
        let json = self.json_path(id);
        match fs::symlink_metadata(&json) {
            Ok(_) => Ok(guard),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OwnershipError::NotFound {
                id: id.to_owned(),
                path: json,
            }),
            Err(e) => Err(OwnershipError::io("look for claim file", json, e)),
        }
    }

    /// Whether some process holds the lease (see [`ClaimStore::hold`]). `false` when the holder
    /// is gone, however it ended, or there never was one.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::InvalidId`], or [`OwnershipError::Io`] when the holder file exists
    /// but cannot be opened or probed: never a guess of "not held".
    pub fn is_held(&self, id: &str) -> Result<bool, OwnershipError> {
        validate_claim_id(id)?;
        let path = self.hold_path(id);
        lock_file::is_locked(&path).map_err(|e| OwnershipError::io("probe holder file", path, e))
    }

    /// Every claim in the store. Files that end in `.json` but are not readable claims (bad
    /// JSON, wrong fields, a name that is not a lease id, an id that does not match the name)
    /// are reported in [`ClaimList::corrupt`] and left in place; other files (locks, temp
    /// files) are ignored. A missing claims dir lists nothing.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<ClaimList, OwnershipError> {
        let mut list = ClaimList::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(list),
            Err(e) => return Err(OwnershipError::io("read claims dir", &self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| OwnershipError::io("read claims dir", &self.dir, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                if name.as_encoded_bytes().ends_with(b".json") {
                    list.corrupt.push(CorruptClaim {
                        path,
                        reason: "its name is not a lease id".to_owned(),
                    });
                }
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if !is_claim_id(id) {
                list.corrupt.push(CorruptClaim {
                    path,
                    reason: format!("`{id}` is not a lease id"),
                });
                continue;
            }
            match self.read_claim(id) {
                Ok(claim) => list.claims.push(claim),
                // Removed between the directory read and ours: not a claim any more.
                Err(OwnershipError::NotFound { .. }) => {}
                Err(OwnershipError::Corrupt { path, reason }) => {
                    list.corrupt.push(CorruptClaim { path, reason });
                }
                Err(e) => {
                    list.corrupt.push(CorruptClaim {
                        path,
                        reason: crate::error::render_chain(&e),
                    });
                }
            }
        }
        list.claims
            .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        list.corrupt.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(list)
    }

    /// Read and parse `<id>.json` (`id` already validated).
    pub(crate) fn read_claim(&self, id: &str) -> Result<Claim, OwnershipError> {
        let path = self.json_path(id);
        let corrupt = |reason: String| OwnershipError::Corrupt {
            path: path.clone(),
            reason,
        };
        let file = match open_no_follow(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OwnershipError::NotFound {
                    id: id.to_owned(),
                    path,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(corrupt("it is a symbolic link".to_owned()));
            }
            Err(e) => return Err(OwnershipError::io("read claim file", path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| OwnershipError::io("read claim file", &path, e))?;
        if !meta.is_file() {
            return Err(corrupt("it is not a regular file".to_owned()));
        }
        let mut bytes = Vec::new();
        file.take(MAX_CLAIM_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| OwnershipError::io("read claim file", &path, e))?;
        if bytes.len() as u64 > MAX_CLAIM_BYTES {
            return Err(corrupt(format!(
                "it is larger than {MAX_CLAIM_BYTES} bytes"
            )));
        }
        let claim: Claim = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if claim.id != id {
            return Err(corrupt(format!(
                "it holds the claim of `{}`, not `{id}`",
                claim.id
            )));
        }
        Ok(claim)
    }

    pub(crate) fn json_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(crate) fn lock_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    pub(crate) fn hold_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.hold"))
    }
}

fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests;
