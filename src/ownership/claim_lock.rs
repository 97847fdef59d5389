//! [`ClaimLock`]: the per-claim lock (`claims/<id>.lock`) held across several operations, so a
//! caller can validate a claim, act on the remote job and then update or remove the claim with
//! nobody else writing it in between.
//!
//! Every write to a claim happens under its lock, and every write is compare-and-swap on
//! `revision`, so a decision made on a claim read earlier (even without the lock) fails loudly
//! if the claim changed since. The holder removes the lock file when it releases the lock, so
//! a lock file exists only while someone holds (or waits for) the lock and never outlives its
//! claim; see [`super::lock_file`] for why that is race-free.
//!
//! Do not take the same claim's lock twice in one process (for instance by calling
//! [`super::ClaimStore::update`] while holding a [`ClaimLock`] for that id): the second waits
//! for the first forever. Use the guard's own methods.

use std::fs;
use std::io;

use super::claim::whole_seconds;
use super::lock_file::LockFile;
use super::{Claim, ClaimStore, Holder, OwnershipError, claim};
use crate::atomic_file::{Replace, sync_parent, write_atomic};

/// The lock on one claim; released on drop.
#[derive(Debug)]
pub struct ClaimLock {
    store: ClaimStore,
    id: String,
    lock: LockFile,
}

impl ClaimLock {
    pub(crate) fn new(store: ClaimStore, id: String, lock: LockFile) -> ClaimLock {
        ClaimLock { store, id, lock }
    }

    /// The lease id this lock is for.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the claim exists.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::Io`] when the claims dir cannot be read.
    pub fn exists(&self) -> Result<bool, OwnershipError> {
        let path = self.store.json_path(&self.id);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(OwnershipError::io("look for claim file", path, e)),
        }
    }

    /// Read the claim.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::NotFound`] when there is none, [`OwnershipError::Corrupt`] when it
    /// cannot be parsed.
    pub fn load(&self) -> Result<Claim, OwnershipError> {
        self.store.read_claim(&self.id)
    }

    /// Write a new claim with this lock's id, at revision 1; returns what was written.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::AlreadyExists`] when the claim exists; [`OwnershipError::IdChanged`]
    /// when `claim.id` is not this lock's id.
    pub fn create(&self, claim: &Claim) -> Result<Claim, OwnershipError> {
        if claim.id != self.id {
            return Err(OwnershipError::IdChanged {
                id: self.id.clone(),
                new_id: claim.id.clone(),
            });
        }
        let mut claim = claim.clone();
        claim.revision = 1;
        let path = self.store.json_path(&self.id);
        match self.write(&mut claim, Replace::No) {
            Err(OwnershipError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                Err(OwnershipError::AlreadyExists {
                    id: self.id.clone(),
                    path,
                })
            }
            other => other.map(|()| claim),
        }
    }

    /// Change the claim if its revision is still `expected_revision`: `change` edits a copy,
    /// which is written with the next revision and returned.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::Conflict`] when the revision moved, [`OwnershipError::NotFound`] when
    /// the claim is gone, [`OwnershipError::IdChanged`] when `change` altered the id.
    pub fn update<F>(&self, expected_revision: u64, change: F) -> Result<Claim, OwnershipError>
    where
        F: FnOnce(&mut Claim),
    {
        let current = self.load()?;
        self.check_revision(&current, expected_revision)?;
        let mut claim = current.clone();
        change(&mut claim);
        if claim.id != self.id {
            return Err(OwnershipError::IdChanged {
                id: self.id.clone(),
                new_id: claim.id,
            });
        }
        claim.revision = current.revision + 1;
        self.write(&mut claim, Replace::Yes)?;
        Ok(claim)
    }

    /// Mark the claim used now by this process (`last_used` and `holder`), whatever its
    /// revision; bumps the revision, so a decision taken on an older read (such as "idle, so
    /// release it") fails its compare-and-swap.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::NotFound`] when the claim is gone.
    pub fn touch(&self) -> Result<Claim, OwnershipError> {
        let mut claim = self.load()?;
        claim.last_used = claim::now();
        claim.holder = Holder::current();
        claim.revision += 1;
        self.write(&mut claim, Replace::Yes)?;
        Ok(claim)
    }

    /// Renew the claim of a lease in use (`leasebox watch`): as [`ClaimLock::touch`], and its
    /// TTL counts from now ([`Claim::renewed`]).
    ///
    /// # Errors
    ///
    /// [`OwnershipError::NotFound`] when the claim is gone, or an I/O error.
    pub fn renew(&self) -> Result<Claim, OwnershipError> {
        let mut claim = self.load()?;
        let now = claim::now();
        claim.last_used = now;
        claim.renewed = Some(now);
        claim.holder = Holder::current();
        claim.revision += 1;
        self.write(&mut claim, Replace::Yes)?;
        Ok(claim)
    }

    /// Delete the claim if its revision is still `expected_revision`, with its holder file
    /// when no process holds it (a live holder's guard removes it on drop).
    ///
    /// # Errors
    ///
    /// [`OwnershipError::Conflict`] when the revision moved, [`OwnershipError::NotFound`] when
    /// the claim is gone.
    pub fn remove(self, expected_revision: u64) -> Result<(), OwnershipError> {
        let current = self.load()?;
        self.check_revision(&current, expected_revision)?;
        let path = self.store.json_path(&self.id);
        fs::remove_file(&path).map_err(|e| OwnershipError::io("remove claim file", &path, e))?;
        sync_parent(&path).map_err(|e| OwnershipError::io("sync claims dir", &path, e))?;
        // A live holder keeps its file; its guard removes it on drop now the claim is gone.
        let hold = self.store.hold_path(&self.id);
        if let Ok(Some(lock)) = LockFile::try_acquire(&hold) {
            let _ = lock.unlink();
        }
        Ok(())
    }

    fn check_revision(&self, current: &Claim, expected: u64) -> Result<(), OwnershipError> {
        if current.revision == expected {
            Ok(())
        } else {
            Err(OwnershipError::Conflict {
                id: self.id.clone(),
                expected,
                found: current.revision,
            })
        }
    }

    fn write(&self, claim: &mut Claim, replace: Replace) -> Result<(), OwnershipError> {
        claim.created = whole_seconds(claim.created);
        claim.last_used = whole_seconds(claim.last_used);
        let path = self.store.json_path(&self.id);
        let mut bytes = serde_json::to_vec_pretty(&claim).map_err(|e| {
            OwnershipError::io("serialise claim", &path, io::Error::other(e.to_string()))
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes, replace)
            .map_err(|e| OwnershipError::io("write claim file", &path, e))
    }
}

impl Drop for ClaimLock {
    fn drop(&mut self) {
        // Still holding the lock: unlink first, so the next holder starts on a fresh file.
        let _ = self.lock.unlink();
    }
}
