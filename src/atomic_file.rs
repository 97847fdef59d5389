//! Private files written atomically, and private directories: the one place the claims store,
//! the state dir and the trust store get them from. A leaf: it imports nothing of the crate, and
//! every layer may import it.
//!
//! [`write_atomic`] writes a temp file (mode 0600) in the same directory, fsyncs it, renames it
//! over the target and fsyncs the directory. Readers see the old content or the new, never a
//! mix, and a crash leaves at most a stray `.tmp-*.part` file (which listings ignore).
//! [`create_private_dir`] is `mkdir -p` with mode 0700 for what it creates.

use std::fs::{DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// How [`write_atomic`] treats an existing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Replace it.
    Yes,
    /// Fail with [`io::ErrorKind::AlreadyExists`].
    No,
}

/// Atomically make `path` contain `bytes` (mode 0600).
///
/// # Errors
/// The directory cannot be written, or (with [`Replace::No`]) `path` exists.
pub fn write_atomic(path: &Path, bytes: &[u8], replace: Replace) -> io::Result<()> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".part")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match replace {
        Replace::Yes => tmp.persist(path).map_err(|e| e.error)?,
        Replace::No => tmp.persist_noclobber(path).map_err(|e| e.error)?,
    };
    sync_dir(dir)
}

/// Fsync the directory holding `path`, so a rename or unlink in it is durable.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(parent(path))
}

/// `mkdir -p` with mode 0700 for what it creates; an existing directory is fine (its mode is
/// left alone), an existing non-directory is an error.
///
/// # Errors
/// `dir` exists and is not a directory, or it cannot be created.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists and is not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)
        }
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_or_refuses_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        write_atomic(&path, b"one", Replace::No).unwrap();
        let err = write_atomic(&path, b"two", Replace::No).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"three", Replace::Yes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dirs_are_0700_and_a_file_in_the_way_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        create_private_dir(&dir).unwrap();
        for d in [tmp.path().join("a"), dir.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        create_private_dir(&dir).unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = create_private_dir(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(err.to_string(), "it exists and is not a directory");
    }
}
