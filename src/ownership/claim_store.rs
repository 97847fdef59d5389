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
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::error::{ErrorKind, HasKind};
    use crate::ownership::{ClaimState, StateDir};

    const ID: &str = "lbx_0123456789ab";

    fn store() -> (tempfile::TempDir, ClaimStore) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::at(tmp.path().join("state"));
        dir.ensure().unwrap();
        (tmp, dir.claim_store())
    }

    fn claim(id: &str) -> Claim {
        let mut c = Claim::new(id, "local", "scope-1", "owner-1").unwrap();
        c.workdir = "/scratch/leasebox".into();
        c.repo_root = "/src/app".into();
        c
    }

    fn id(n: usize) -> String {
        format!("lbx_{n:012x}")
    }

    /// Names in the claims dir, to check nothing stray is left.
    fn names(store: &ClaimStore) -> BTreeSet<String> {
        fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn create_load_update_remove_round_trip() {
        let (_tmp, store) = store();
        let created = store.create(&claim(ID)).unwrap();
        assert_eq!(created.revision, 1);
        assert_eq!(store.load(ID).unwrap(), created);

        let updated = store
            .update(ID, 1, |c| {
                c.state = ClaimState::Active;
                c.alloc_id = Some("alloc-1".into());
                c.handle.insert("namespace".into(), "default".into());
                c.revision = 99; // ignored: the store owns it
            })
            .unwrap();
        assert_eq!(updated.revision, 2);
        assert_eq!(updated.state, ClaimState::Active);
        assert_eq!(store.load(ID).unwrap(), updated);

        let err = store.create(&claim(ID)).unwrap_err();
        assert!(matches!(err, OwnershipError::AlreadyExists { .. }), "{err}");
        assert_eq!(
            store.load(ID).unwrap(),
            updated,
            "failed create changed the claim"
        );

        store.remove(ID, 2).unwrap();
        assert!(matches!(
            store.load(ID),
            Err(OwnershipError::NotFound { .. })
        ));
        assert_eq!(store.get(ID).unwrap(), None);
        assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
    }

    #[test]
    fn compare_and_swap_conflict() {
        let (_tmp, store) = store();
        store.create(&claim(ID)).unwrap();
        store.update(ID, 1, |c| c.keep = true).unwrap();
        let err = store.update(ID, 1, |c| c.keep = false).unwrap_err();
        assert!(
            matches!(
                err,
                OwnershipError::Conflict {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::OwnershipRefused);
        assert!(err.to_string().contains("changed while in use"), "{err}");
        assert!(store.load(ID).unwrap().keep);
        let err = store.remove(ID, 1).unwrap_err();
        assert!(matches!(err, OwnershipError::Conflict { .. }), "{err}");
        assert!(store.load(ID).is_ok());
    }

    #[test]
    fn touch_refreshes_holder_and_moves_revision() {
        let (_tmp, store) = store();
        let mut c = claim(ID);
        c.last_used = std::time::UNIX_EPOCH;
        c.holder.pid = 1;
        store.create(&c).unwrap();
        let touched = store.touch(ID).unwrap();
        assert_eq!(touched.revision, 2);
        assert_eq!(touched.holder.pid, std::process::id());
        assert!(touched.last_used > std::time::UNIX_EPOCH);
        // A decision taken on the untouched claim now fails.
        assert!(matches!(
            store.remove(ID, 1),
            Err(OwnershipError::Conflict { .. })
        ));
    }

    #[test]
    fn update_may_not_change_the_id() {
        let (_tmp, store) = store();
        store.create(&claim(ID)).unwrap();
        let err = store
            .update(ID, 1, |c| c.id = "lbx_ffffffffffff".into())
            .unwrap_err();
        assert!(matches!(err, OwnershipError::IdChanged { .. }), "{err}");
        assert_eq!(store.load(ID).unwrap().revision, 1);
    }

    #[test]
    fn racing_updates_one_winner_per_revision() {
        let (_tmp, store) = store();
        store.create(&claim(ID)).unwrap();
        let rounds = 40;
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2u32)
            .map(|t| {
                let store = store.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let mut wins = Vec::new();
                    for round in 0..rounds {
                        // Both threads try the same revision: round + 1.
                        barrier.wait();
                        let expected = round + 1;
                        match store.update(ID, expected, |c| {
                            c.sync_revision = Some(format!("t{t}-r{expected}"));
                        }) {
                            Ok(c) => {
                                assert_eq!(c.revision, expected + 1);
                                wins.push(expected);
                            }
                            Err(OwnershipError::Conflict { found, .. }) => {
                                assert_eq!(found, expected + 1);
                            }
                            Err(e) => panic!("{e}"),
                        }
                        barrier.wait();
                    }
                    wins
                })
            })
            .collect();
        // A reader alongside never sees a torn file.
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..400 {
                    store.load(ID).unwrap();
                }
            })
        };
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        reader.join().unwrap();
        all.sort_unstable();
        assert_eq!(all, (1..=rounds).collect::<Vec<_>>());
        let last = store.load(ID).unwrap();
        assert_eq!(last.revision, rounds + 1);
        assert!(
            last.sync_revision
                .unwrap()
                .ends_with(&format!("-r{rounds}"))
        );
    }

    #[test]
    fn twenty_concurrent_creates_all_listed() {
        let (_tmp, store) = store();
        let threads: Vec<_> = (0..20)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || store.create(&claim(&id(n))).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let list = store.list().unwrap();
        assert!(list.corrupt.is_empty(), "{:?}", list.corrupt);
        let ids: BTreeSet<_> = list.claims.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, (0..20).map(id).collect());
        // No lock or temp files linger after the creates.
        assert!(
            names(&store).iter().all(|n| n.ends_with(".json")),
            "{:?}",
            names(&store)
        );
    }

    #[test]
    fn corrupt_files_are_reported_and_skipped_never_deleted() {
        let (_tmp, store) = store();
        store.create(&claim(ID)).unwrap();
        let bad_json = store.dir().join("lbx_000000000001.json");
        fs::write(&bad_json, b"{ not json").unwrap();
        let wrong_fields = store.dir().join("lbx_000000000002.json");
        fs::write(
            &wrong_fields,
            br#"{"id": "lbx_000000000002", "backend": 7}"#,
        )
        .unwrap();
        let bad_name = store.dir().join("notes.json");
        fs::write(&bad_name, b"{}").unwrap();
        let other_id = store.dir().join("lbx_000000000003.json");
        let mut misplaced = serde_json::to_vec(&claim(ID)).unwrap();
        misplaced.push(b'\n');
        fs::write(&other_id, &misplaced).unwrap();
        let link = store.dir().join("lbx_000000000004.json");
        std::os::unix::fs::symlink(store.claim_path(ID).unwrap(), &link).unwrap();
        fs::write(store.dir().join("README"), b"ignored").unwrap();
        fs::write(store.dir().join(".tmp-crashed.part"), b"{").unwrap();

        let list = store.list().unwrap();
        assert_eq!(list.claims.len(), 1);
        assert_eq!(list.claims[0].id, ID);
        let reported: Vec<_> = list.corrupt.iter().map(|c| c.path.clone()).collect();
        assert_eq!(
            reported,
            vec![
                bad_json.clone(),
                wrong_fields.clone(),
                other_id.clone(),
                link.clone(),
                bad_name.clone()
            ]
        );
        let reasons: Vec<_> = list.corrupt.iter().map(|c| c.reason.as_str()).collect();
        assert!(reasons[2].contains("not `lbx_000000000003`"), "{reasons:?}");
        assert!(reasons[3].contains("symbolic link"), "{reasons:?}");
        assert!(
            reasons[4].contains("`notes` is not a lease id"),
            "{reasons:?}"
        );
        for path in [&bad_json, &wrong_fields, &bad_name, &other_id, &link] {
            assert!(
                fs::symlink_metadata(path).is_ok(),
                "{} deleted",
                path.display()
            );
        }

        let err = store.load("lbx_000000000001").unwrap_err();
        assert!(matches!(err, OwnershipError::Corrupt { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::ConfigError);
        assert!(err.to_string().contains("lbx_000000000001.json"), "{err}");
    }

    #[test]
    fn missing_claims_dir_lists_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ClaimStore::new(tmp.path().join("absent"));
        assert_eq!(store.list().unwrap(), ClaimList::default());
    }

    #[test]
    fn bad_ids_are_refused_everywhere() {
        let (_tmp, store) = store();
        let bad = "lbx_../../etc/x";
        for result in [
            store.load(bad).map(|_| ()),
            store.update(bad, 1, |_| ()).map(|_| ()),
            store.remove(bad, 1),
            store.touch(bad).map(|_| ()),
            store.lock(bad).map(|_| ()),
            store.hold(bad).map(|_| ()),
            store.is_held(bad).map(|_| ()),
            store.claim_path(bad).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, OwnershipError::InvalidId { .. }), "{err}");
            assert_eq!(err.kind(), ErrorKind::Usage);
        }
        let mut c = claim(ID);
        c.id = "../escape".into();
        assert!(matches!(
            store.create(&c),
            Err(OwnershipError::InvalidId { .. })
        ));
        assert!(names(&store).is_empty());
    }

    #[test]
    fn lock_guard_spans_operations_and_excludes_others() {
        let (_tmp, store) = store();
        let lock = store.lock(ID).unwrap();
        assert!(!lock.exists().unwrap());
        let created = lock.create(&claim(ID)).unwrap();
        assert_eq!(lock.load().unwrap(), created);
        assert!(store.try_lock(ID).unwrap().is_none(), "lock not exclusive");

        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || {
                let result = store.update(ID, 2, |c| c.keep = true);
                tx.send(()).unwrap();
                result
            })
        };
        let updated = lock.update(1, |c| c.state = ClaimState::Active).unwrap();
        assert_eq!(updated.revision, 2);
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "update ran while the guard was held"
        );
        drop(lock);
        let after = waiter.join().unwrap().unwrap();
        assert_eq!(after.revision, 3);
        assert!(after.keep);
        assert_eq!(after.state, ClaimState::Active);

        let lock = store.lock(ID).unwrap();
        let c = lock.load().unwrap();
        lock.remove(c.revision).unwrap();
        assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
    }

    #[test]
    fn lock_on_missing_claim_leaves_nothing() {
        let (_tmp, store) = store();
        let lock = store.lock(ID).unwrap();
        assert!(matches!(lock.load(), Err(OwnershipError::NotFound { .. })));
        assert!(matches!(
            lock.update(1, |_| ()),
            Err(OwnershipError::NotFound { .. })
        ));
        drop(lock);
        assert!(matches!(
            store.update(ID, 1, |_| ()),
            Err(OwnershipError::NotFound { .. })
        ));
        assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
    }

    #[test]
    fn concurrent_remove_and_recreate_stay_consistent() {
        // Creates, removes and updates of one id from several threads: lock files come and
        // go, yet no write is lost or doubled and no file is left when the claim is gone.
        let (_tmp, store) = store();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut created = 0;
                    for _ in 0..50 {
                        let lock = store.lock(ID).unwrap();
                        match lock.load() {
                            Err(OwnershipError::NotFound { .. }) => {
                                lock.create(&claim(ID)).unwrap();
                                created += 1;
                            }
                            Ok(c) if c.revision >= 3 => lock.remove(c.revision).unwrap(),
                            Ok(c) => {
                                lock.update(c.revision, |_| ()).unwrap();
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    created
                })
            })
            .collect();
        let created: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // 200 steps in cycles of create, update, update, remove.
        assert_eq!(created, 50);
        assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
    }

    #[test]
    fn holder_lock_held_while_guard_lives() {
        let (_tmp, store) = store();
        assert!(matches!(
            store.hold(ID),
            Err(OwnershipError::NotFound { .. })
        ));
        assert!(names(&store).is_empty(), "{:?}", names(&store));
        store.create(&claim(ID)).unwrap();
        assert!(!store.is_held(ID).unwrap());

        let guard = store.hold(ID).unwrap();
        assert_eq!(guard.id(), ID);
        assert!(store.is_held(ID).unwrap());
        // Seen from another thread (another open file, as another process would).
        let seen = {
            let store = store.clone();
            std::thread::spawn(move || store.is_held(ID).unwrap())
                .join()
                .unwrap()
        };
        assert!(seen);
        let err = store.hold(ID).unwrap_err();
        assert!(matches!(err, OwnershipError::InUse { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::OwnershipRefused);

        drop(guard);
        assert!(!store.is_held(ID).unwrap());
        let guard = store.hold(ID).unwrap();
        // Removing the claim of a live holder leaves its hold file until the guard goes.
        store.remove(ID, 1).unwrap();
        assert!(store.is_held(ID).unwrap());
        drop(guard);
        assert!(!store.is_held(ID).unwrap());
        assert!(names(&store).is_empty(), "left behind: {:?}", names(&store));
    }

    /// Set in the child process of [`holder_lock_is_freed_when_the_process_dies`].
    const HOLD_CHILD_VAR: &str = "LEASEBOX_TEST_HOLD_CLAIMS_DIR";

    #[test]
    fn holder_lock_is_freed_when_the_process_dies() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        let (_tmp, store) = store();
        store.create(&claim(ID)).unwrap();
        // This test binary again, running only the helper below, which holds the lease.
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ownership::claim_store::tests::hold_in_child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLD_CHILD_VAR, store.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut held = false;
        for line in stdout.lines() {
            if line.unwrap().trim() == "held" {
                held = true;
                break;
            }
        }
        assert!(held, "child never took the hold");
        assert!(
            store.is_held(ID).unwrap(),
            "hold of a live process not seen"
        );
        assert!(matches!(store.hold(ID), Err(OwnershipError::InUse { .. })));
        // Killed, so no destructor runs: only the kernel releases the lock.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !store.is_held(ID).unwrap(),
            "hold of a dead process still seen"
        );
        drop(store.hold(ID).unwrap());
    }

    #[test]
    #[ignore = "helper: run by holder_lock_is_freed_when_the_process_dies in a child process"]
    fn hold_in_child_process() {
        use std::io::{Read, Write};
        let Some(dir) = std::env::var_os(HOLD_CHILD_VAR) else {
            return;
        };
        let _guard = ClaimStore::new(dir).hold(ID).unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "\nheld").unwrap();
        out.flush().unwrap();
        // Until killed (or the parent goes away and stdin closes).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }

    #[test]
    fn handles_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ClaimStore>();
        send_sync::<ClaimLock>();
        send_sync::<HolderGuard>();
        send_sync::<OwnershipError>();
    }

    #[test]
    fn claims_are_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, store) = store();
        store.create(&claim(ID)).unwrap();
        let mode = fs::metadata(store.claim_path(ID).unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(store.claim_path(ID).unwrap()).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.contains("\"revision\": 1"), "{text}");
    }
}
