//! [`LockFile`]: an exclusive `flock` on a file that its holder may unlink.
//!
//! Lock files must not accumulate, so the holder of a lock may remove the file before releasing
//! it. That opens a race: a waiter may have opened the file before it was unlinked
//! and then acquire a lock on an inode no longer reachable by name, while a newcomer creates a
//! fresh file and locks that; both would believe they hold the lock. The cure (the one used by
//! many daemons' pid files) is to check, once locked, that the path still names the locked
//! inode, and start over if not. Whoever unlinks does so while still holding the lock.
//!
//! Locks are `flock`s taken through `std::fs::File::lock`: they belong to the open file, so two
//! handles in one process exclude each other like two processes do, and they vanish when the
//! process dies. std opens with `O_CLOEXEC`, so child processes never inherit them.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A locked lock file; the lock is released when this is dropped.
#[derive(Debug)]
pub(crate) struct LockFile {
    // Held for its lock; never read.
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Lock `path` (created if missing), waiting as long as it takes.
    pub(crate) fn acquire(path: &Path) -> io::Result<LockFile> {
        loop {
            let file = open(path)?;
            file.lock()?;
            if still_named(&file, path)? {
                return Ok(LockFile {
                    _file: file,
                    path: path.to_owned(),
                });
            }
        }
    }

    /// Lock `path` (created if missing) if nobody else holds it.
    pub(crate) fn try_acquire(path: &Path) -> io::Result<Option<LockFile>> {
        loop {
            let file = open(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
            if still_named(&file, path)? {
                return Ok(Some(LockFile {
                    _file: file,
                    path: path.to_owned(),
                }));
            }
        }
    }

    /// Remove the lock file, keeping the lock until drop. Waiters notice and start over.
    pub(crate) fn unlink(&self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Whether some handle (in this or another process) holds a lock on `path`. A missing file is
/// not held.
pub(crate) fn is_locked(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Whether `path` still names the inode `file` is open on.
fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn exclusion_survives_unlinking() {
        // Every holder unlinks the file before releasing: without the inode check, a waiter
        // on the old inode and a newcomer on a fresh file would both get in.
        let tmp = tempfile::tempdir().unwrap();
        let path = Arc::new(tmp.path().join("x.lock"));
        let inside = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let path = Arc::clone(&path);
                let inside = Arc::clone(&inside);
                std::thread::spawn(move || {
                    for _ in 0..150 {
                        let lock = LockFile::acquire(&path).unwrap();
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                        std::thread::yield_now();
                        inside.store(false, Ordering::SeqCst);
                        lock.unlink().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!path.exists());
    }

    #[test]
    fn try_acquire_and_is_locked_see_other_handles() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        assert!(!is_locked(&path).unwrap());
        let held = LockFile::try_acquire(&path).unwrap().unwrap();
        assert!(is_locked(&path).unwrap());
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(!is_locked(&path).unwrap());
        assert!(LockFile::try_acquire(&path).unwrap().is_some());
    }
}
