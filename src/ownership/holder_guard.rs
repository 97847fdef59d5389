//! [`HolderGuard`]: the process using a lease keeps an exclusive lock on `claims/<id>.hold`
//! for as long as the guard lives. The kernel drops the lock when the process dies, however it
//! dies, so `cleanup` can tell a live holder from a gone one with
//! [`super::ClaimStore::is_held`] without trusting a pid that may have been reused.

use super::ClaimStore;
use super::lock_file::LockFile;

/// Proof that this process holds a lease; the hold ends on drop.
#[derive(Debug)]
pub struct HolderGuard {
    store: ClaimStore,
    id: String,
    lock: LockFile,
}

impl HolderGuard {
    pub(crate) fn new(store: ClaimStore, id: String, lock: LockFile) -> HolderGuard {
        HolderGuard { store, id, lock }
    }

    /// The lease id held.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for HolderGuard {
    fn drop(&mut self) {
        // The claim was removed while we held it: the hold file is ours to remove.
        let claim = self.store.json_path(&self.id);
        if matches!(std::fs::symlink_metadata(claim), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        {
            let _ = self.lock.unlink();
        }
    }
}
